//! End to end: `[encryption]` (HLS `METHOD=AES-128`) on a real RTMP publish. Served parts and segments
//! decrypt with `openssl` under the served key and the playlist's IV, FFmpeg and hls.js play the
//! stream, and hls.js given a wrong key plays nothing.

mod common;

use std::{io::Write, path::Path, process::Command, time::Duration};

use common::*;
use hyper::StatusCode;

const FFMPEG: &str = "ffmpeg";

fn openssl_decrypt(key: &[u8], iv_hex: &str, ciphertext: &[u8]) -> Option<Vec<u8>> {
    let key_hex: String = key.iter().map(|b| format!("{b:02x}")).collect();
    let mut child = Command::new("openssl")
        .args(["enc", "-d", "-aes-128-cbc", "-K", &key_hex, "-iv", iv_hex])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("openssl runs");
    // Write from another thread: openssl writes its output while it reads, and a full stdout pipe
    // would otherwise block both sides.
    let mut stdin = child.stdin.take().unwrap();
    let input = ciphertext.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let out = child.wait_with_output().unwrap();
    let _ = writer.join();
    out.status.success().then_some(out.stdout)
}

/// (msn, key URI, IV hex) of every segment of a media playlist, from its EXT-X-KEY tags.
fn segment_keys(text: &str, first_msn: u64) -> Vec<(u64, String, String)> {
    let mut out = Vec::new();
    let mut msn = first_msn;
    let mut key: Option<(String, String)> = None;
    for line in text.lines() {
        if let Some(attrs) = line.strip_prefix("#EXT-X-KEY:") {
            assert!(attrs.starts_with("METHOD=AES-128,"), "{line}");
            let uri = attr(attrs, "URI").expect("URI");
            let iv = attr(attrs, "IV").expect("IV");
            key = Some((uri, iv.trim_start_matches("0x").to_owned()));
        } else if line.starts_with("#EXTINF") {
            let (uri, iv) = key.clone().expect("EXT-X-KEY before the segment");
            out.push((msn, uri, iv));
            msn += 1;
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn encrypted_ll_hls_decrypts_with_openssl_and_plays_in_ffmpeg_and_hls_js() {
    let server = start_server("[encryption]\nenabled = true\nrotate_every_segments = 2\n").await;
    let clip = fixture("bbb-720p-2s-gop.mp4");
    let _publisher = publish_loop(
        Path::new(FFMPEG),
        &clip,
        &format!("rtmp://{}/live/secret", server.rtmp_addr),
    );
    let base = format!("http://{}/live/secret/", server.http_addr);
    wait_for_200(&format!("{base}index.m3u8"), Duration::from_secs(15))
        .await
        .expect("multivariant");
    tokio::time::sleep(Duration::from_secs(7)).await;

    let text = get(&format!("{base}source/media.m3u8")).await.text();
    let facts = parse_media(&text);
    let map = text.find("#EXT-X-MAP").unwrap();
    assert!(
        map < text.find("#EXT-X-KEY").unwrap(),
        "MAP before KEY:\n{text}"
    );
    let keys = segment_keys(&text, facts.media_sequence);
    assert!(keys.len() >= 3, "{text}");
    let uris: std::collections::BTreeSet<&String> = keys.iter().map(|k| &k.1).collect();
    assert!(
        uris.len() >= 2,
        "the key rotates every 2 segments: {uris:?}"
    );
    // The init segment stays clear.
    let init = get(&format!("{base}source/{}", facts.map_uri)).await;
    assert_eq!(&init.body[4..8], b"ftyp");

    let mut decrypted = 0;
    for (msn, uri, iv) in &keys {
        let key_url = format!("{base}{}", uri.trim_start_matches("../"));
        let key = get(&key_url).await;
        assert_eq!(key.status, StatusCode::OK, "{key_url}");
        assert_eq!(key.body.len(), 16);
        assert_eq!(key.header("cache-control"), "private, no-store");
        let seg = get(&format!("{base}source/{msn}.m4s")).await;
        assert_eq!(seg.status, StatusCode::OK);
        assert_eq!(seg.body.len() % 16, 0);
        let clear = openssl_decrypt(&key.body, iv, &seg.body).expect("segment decrypts");
        // The clear segment is CMAF chunks whose tfdt continue one another.
        let c = chunks(&clear);
        assert!(c.len() >= 3 && c[0].2, "{msn}: {c:?}");
        // Each part is its own message under the same key and IV; together they are the segment.
        let mut from_parts = Vec::new();
        for i in 0..c.len() {
            let part = get(&format!("{base}source/{msn}.{i}.m4s")).await;
            if part.status != StatusCode::OK {
                break; // parts older than the listing window may already be pruned
            }
            from_parts.extend(openssl_decrypt(&key.body, iv, &part.body).expect("part decrypts"));
        }
        if from_parts.len() == clear.len() {
            assert_eq!(from_parts, clear, "{msn}: parts decrypt to the segment");
        }
        // A wrong key does not give the clear segment.
        let mut wrong = key.body.to_vec();
        wrong[0] ^= 1;
        assert_ne!(
            openssl_decrypt(&wrong, iv, &seg.body).as_deref(),
            Some(clear.as_slice())
        );
        decrypted += 1;
    }
    eprintln!("{decrypted} encrypted segments decrypted with openssl");

    // No clear DASH while the stream is encrypted (CENC is not built yet).
    assert_eq!(
        get(&format!("{base}manifest.mpd")).await.status,
        StatusCode::NOT_FOUND
    );
    // A key that was never issued.
    assert_eq!(
        get(&format!("{base}keys/1.key")).await.status,
        StatusCode::NOT_FOUND
    );

    // FFmpeg decodes the encrypted stream.
    let out = ffmpeg_decode(&format!("{base}index.m3u8"), Some(4)).await;
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "ffmpeg: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    // hls.js plays it in low-latency mode, parts and all.
    let url = format!("{base}index.m3u8");
    let report = blocking(move || play_hls(&url, 16)).await;
    eprintln!("hls.js encrypted: {report}");
    assert_eq!(report["ok"], true, "{report}");
    assert_eq!(report["stalls"], 0, "{report}");
    assert!(
        report["played_seconds"].as_f64().unwrap() >= 14.0,
        "{report}"
    );
    assert!(
        report["fatal_errors"]
            .as_array()
            .is_none_or(|a| a.is_empty()),
        "{report}"
    );

    // The same player given a wrong key (every key byte flipped by the harness's proxy) shows nothing.
    let url = format!("{base}index.m3u8");
    let wrong = blocking(move || play_hls_args(&url, 6, &["--corrupt-keys"])).await;
    eprintln!("hls.js with a wrong key: {wrong}");
    assert_eq!(wrong["ok"], false, "{wrong}");
    assert_eq!(wrong["played_seconds"].as_f64(), Some(0.0), "{wrong}");
    assert_eq!(wrong["frames_decoded"].as_u64().unwrap_or(0), 0, "{wrong}");
    assert!(wrong["error_count"].as_u64().unwrap() > 0, "{wrong}");
}
