//! End to end: `[encryption]` on a real RTMP publish.
//!
//! - HLS `METHOD=AES-128`: served parts and segments decrypt with `openssl` under the served key and
//!   the playlist's IV, FFmpeg and hls.js play the stream, and hls.js given a wrong key plays nothing.
//! - DASH CENC `cenc` with W3C ClearKey: the license endpoint answers the W3C JSON request, every CMAF
//!   chunk decrypts with FFmpeg's CENC decryptor to exactly the clear chunk's samples, a re-publish
//!   keeps the stream's KID, and dash.js and Shaka play the stream through EME in headless Chromium.

use std::{io::Write, path::Path, process::Command, time::Duration};

use crate::common::*;
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
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
    let base = play_base(&server, "live/secret");
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
    let report = blocking(move || play_hls(&url, 12)).await;
    eprintln!("hls.js encrypted: {report}");
    assert_eq!(report["ok"], true, "{report}");
    assert_eq!(report["stalls"], 0, "{report}");
    assert!(
        report["played_seconds"].as_f64().unwrap() >= 10.0,
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

/// POST `body` to `url`; (status, Cache-Control, body).
async fn post(url: &str, body: &str) -> (StatusCode, String, bytes::Bytes) {
    use http_body_util::{BodyExt, Full};
    use hyper_util::{client::legacy::Client, rt::TokioExecutor};
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<bytes::Bytes>>();
    let req = hyper::Request::post(url)
        .header("content-type", "application/json")
        .body(Full::new(bytes::Bytes::from(body.to_owned())))
        .unwrap();
    let resp = client.request(req).await.expect("POST");
    let status = resp.status();
    let cc = resp
        .headers()
        .get("cache-control")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (status, cc, body)
}

/// MD5 of every packet's data (`ffprobe -show_data_hash`, which needs no decodable keyframe) of
/// `file`, decrypted by FFmpeg's demuxer with `key_hex` if given.
fn packet_md5s(file: &Path, key_hex: Option<&str>) -> Vec<String> {
    let mut cmd = Command::new("ffprobe");
    cmd.args(["-v", "quiet"]);
    if let Some(k) = key_hex {
        cmd.args(["-decryption_key", k]);
    }
    let out = cmd
        .args([
            "-show_entries",
            "packet=data_hash",
            "-show_data_hash",
            "MD5",
        ])
        .args(["-of", "csv=p=0"])
        .arg(file)
        .output()
        .expect("ffprobe runs");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

/// Split a segment into its CMAF chunks (each `moof` with its `mdat`).
fn chunk_bytes(segment: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut pos = 0;
    let mut start = None;
    while pos + 8 <= segment.len() {
        let size = u32::from_be_bytes(segment[pos..pos + 4].try_into().unwrap()) as usize;
        let kind = &segment[pos + 4..pos + 8];
        if kind == b"moof" {
            start = Some(pos);
        }
        pos += size.max(8);
        if kind == b"mdat"
            && let Some(s) = start.take()
        {
            out.push(segment[s..pos].to_vec());
        }
    }
    out
}

/// The KID (hex) of every Period's AdaptationSets, checking the ContentProtection elements on the way.
fn period_kids(mpd_text: &str) -> Vec<String> {
    let mpd = dash_mpd_core::parse(mpd_text).expect("MPD parses");
    let mut kids = Vec::new();
    for period in &mpd.periods {
        let mut period_kid = None;
        for a in &period.adaptations {
            let cp = &a.ContentProtection;
            let cenc = cp
                .iter()
                .find(|c| c.schemeIdUri == "urn:mpeg:dash:mp4protection:2011")
                .expect("mp4protection ContentProtection");
            assert_eq!(cenc.value.as_deref(), Some("cenc"));
            let kid = cenc
                .default_KID
                .clone()
                .expect("cenc:default_KID")
                .replace('-', "");
            assert_eq!(kid.len(), 32, "{kid}");
            let ck = cp
                .iter()
                .find(|c| c.schemeIdUri == "urn:uuid:e2719d58-a985-b3c9-781a-b030af78d30e")
                .expect("ClearKey ContentProtection");
            let laurl = ck.clearkey_laurl.as_ref().expect("clearkey:Laurl");
            assert_eq!(laurl.content.as_deref(), Some("license"));
            assert_eq!(laurl.lic_type.as_deref(), Some("EME-1.0"));
            // One key per Period: every AdaptationSet of it has the same KID.
            assert_eq!(*period_kid.get_or_insert(kid.clone()), kid);
            for r in &a.representations {
                let t = r.SegmentTemplate.as_ref().expect("SegmentTemplate");
                assert!(t.media.as_deref().unwrap().contains("/cenc/"), "{t:?}");
                assert!(
                    t.initialization.as_deref().unwrap().contains("/cenc/init-"),
                    "{t:?}"
                );
            }
        }
        kids.push(period_kid.expect("an AdaptationSet"));
    }
    kids
}

/// Ask the license endpoint for `kid_hex`; the key (hex) it answers.
async fn license_key(base: &str, kid_hex: &str) -> String {
    let kid: Vec<u8> = (0..16)
        .map(|i| u8::from_str_radix(&kid_hex[2 * i..2 * i + 2], 16).unwrap())
        .collect();
    let request = format!(
        r#"{{"kids":["{}"],"type":"temporary"}}"#,
        URL_SAFE_NO_PAD.encode(&kid)
    );
    let (status, cc, body) = post(&format!("{base}license"), &request).await;
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    assert_eq!(cc, "private, no-store");
    let json: serde_json::Value = serde_json::from_slice(&body).expect("license JSON");
    let k = &json["keys"][0];
    assert_eq!(k["kty"], "oct");
    assert_eq!(k["kid"], URL_SAFE_NO_PAD.encode(&kid));
    let key = URL_SAFE_NO_PAD.decode(k["k"].as_str().unwrap()).unwrap();
    assert_eq!(key.len(), 16);
    key.iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn dash_cenc_clearkey_decrypts_with_ffmpeg_and_plays_in_dash_js() {
    let server = start_server("[encryption]\nenabled = true\n").await;
    let clip = fixture("bbb-720p-2s-gop.mp4");
    let rtmp = format!("rtmp://{}/live/cenc", server.rtmp_addr);
    let mut publisher = publish_loop(Path::new(FFMPEG), &clip, &rtmp);
    let base = play_base(&server, "live/cenc");
    wait_for_200(&format!("{base}manifest.mpd"), Duration::from_secs(20))
        .await
        .expect("MPD");
    tokio::time::sleep(Duration::from_secs(5)).await;

    let mpd = get(&format!("{base}manifest.mpd")).await.text();
    assert!(
        mpd.contains(r#"xmlns:clearkey="http://dashif.org/guidelines/clearKey""#),
        "{mpd}"
    );
    let kids = period_kids(&mpd);
    assert_eq!(kids.len(), 1, "{mpd}");
    let key_hex = license_key(&base, &kids[0]).await;

    // The license endpoint: POST only; unknown KIDs and malformed requests are refused.
    let unknown = format!(r#"{{"kids":["{}"]}}"#, URL_SAFE_NO_PAD.encode([0u8; 16]));
    assert_eq!(
        post(&format!("{base}license"), &unknown).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        post(&format!("{base}license"), "{nope").await.0,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        get(&format!("{base}license")).await.status,
        StatusCode::METHOD_NOT_ALLOWED
    );

    // Every chunk of a complete CENC segment, video and audio, decrypts with FFmpeg's CENC decryptor
    // (`-decryption_key`, not our code) to exactly the samples of the clear chunk, which comes from
    // the HLS segment decrypted with openssl. (FFmpeg 5.1 mis-indexes the sample encryption of a
    // second `moof` in one file, its own CENC output included, so each chunk goes in its own file.)
    let dir = tempfile::tempdir().unwrap();
    let mut checked = 0;
    for rendition in ["source", "audio"] {
        let text = get(&format!("{base}{rendition}/media.m3u8")).await.text();
        let facts = parse_media(&text);
        let (msn, key_uri, iv) = segment_keys(&text, facts.media_sequence)
            .into_iter()
            .rev()
            .nth(1)
            .expect("a complete segment");
        let hls_key = get(&format!("{base}{}", key_uri.trim_start_matches("../"))).await;
        let hls_seg = get(&format!("{base}{rendition}/{msn}.m4s")).await;
        let clear = openssl_decrypt(&hls_key.body, &iv, &hls_seg.body).expect("HLS decrypts");
        let clear_init = get(&format!("{base}{rendition}/{}", facts.map_uri))
            .await
            .body;
        let tmpl = format!("{rendition}/cenc/init-");
        let at = mpd.find(&tmpl).expect("CENC init in the MPD");
        let init_name = &mpd[at..at + mpd[at..].find('"').unwrap()];
        let cenc_init = get(&format!("{base}{init_name}")).await;
        assert_eq!(cenc_init.status, StatusCode::OK, "{init_name}");
        for (fourcc, what) in [(&b"tenc"[..], "tenc"), (b"pssh", "pssh"), (b"sinf", "sinf")] {
            assert!(
                cenc_init.body.windows(4).any(|w| w == fourcc),
                "{rendition}: no {what} in the protected init segment"
            );
        }
        let key_id = init_name
            .trim_end_matches(".mp4")
            .rsplit('-')
            .next()
            .unwrap()
            .to_owned();
        let cenc_seg = get(&format!("{base}{rendition}/cenc/{msn}-{key_id}.m4s")).await;
        assert_eq!(cenc_seg.status, StatusCode::OK);
        // Under another key's name the segment does not exist.
        assert_eq!(
            get(&format!("{base}{rendition}/cenc/{msn}-1.m4s"))
                .await
                .status,
            StatusCode::NOT_FOUND
        );
        // Cached until it has left the window: 12 + 2 segments of 2 s.
        assert_eq!(
            cenc_seg.header("cache-control"),
            "public, max-age=28, immutable"
        );
        let (enc_chunks, clear_chunks) = (chunk_bytes(&cenc_seg.body), chunk_bytes(&clear));
        assert_eq!(enc_chunks.len(), clear_chunks.len(), "{rendition} {msn}");
        assert!(enc_chunks.len() >= 3);
        for (k, (enc, clr)) in enc_chunks.iter().zip(&clear_chunks).enumerate() {
            let (e, c) = (dir.path().join("e.mp4"), dir.path().join("c.mp4"));
            std::fs::write(&e, [&cenc_init.body[..], enc].concat()).unwrap();
            std::fs::write(&c, [&clear_init[..], clr].concat()).unwrap();
            let clear_md5 = packet_md5s(&c, None);
            assert!(!clear_md5.is_empty(), "{rendition} {msn}.{k}: no packets");
            assert_eq!(
                packet_md5s(&e, Some(&key_hex)),
                clear_md5,
                "{rendition} {msn}.{k}: CENC chunk does not decrypt to the clear one"
            );
            assert_ne!(
                packet_md5s(&e, None),
                clear_md5,
                "{rendition} {msn}.{k} is clear"
            );
            checked += 1;
        }
    }
    eprintln!("{checked} CENC chunks decrypted by FFmpeg to the clear samples");

    // dash.js plays it through EME (ClearKey) from a page in the stream's directory on
    // http://127.0.0.1, taking the license URL from the MPD. (Shaka plays the same through an nginx
    // edge in `cdn::encrypted_streams_play_through_the_edge…`: one run of each player, for CI time.)
    for player in ["dashjs"] {
        let url = format!("{base}manifest.mpd");
        let report =
            blocking(move || play_dash(player, &url, 12, &["--low-latency", "--proxy"])).await;
        eprintln!("{player} CENC/ClearKey: {report}");
        assert_eq!(report["ok"], true, "{player}: {report}");
        assert_eq!(report["stalls"], 0, "{player}: {report}");
        assert!(
            report["frames_decoded"].as_u64().unwrap() > 200,
            "{player}: {report}"
        );
        assert!(
            report["fatal_errors"]
                .as_array()
                .is_none_or(|a| a.is_empty()),
            "{player}: {report}"
        );
    }

    // A re-publish starts a new Period under the stream's same key (see packager::dash).
    publisher.kill();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let _again = publish_loop(Path::new(FFMPEG), &clip, &rtmp);
    let deadline = std::time::Instant::now() + Duration::from_secs(25);
    let kids = loop {
        let kids = period_kids(&get(&format!("{base}manifest.mpd")).await.text());
        if kids.len() >= 2 {
            break kids;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no second Period: {kids:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert_eq!(kids[0], kids[1], "one key per stream");
    assert_eq!(license_key(&base, &kids[1]).await, key_hex);
}

/// Keys of objects a CDN or a player may still hold are served after an origin restart (they are
/// persisted in the data directory), for the HLS key URI and the ClearKey license alike, before and
/// after the stream is published again.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn content_keys_survive_an_origin_restart() {
    let dir = fresh_data_dir();
    let config = "[encryption]\nenabled = true\nrotate_every_segments = 1\n";
    let server = start_server_in(config, &dir).await;
    let clip = fixture("bbb-720p-2s-gop.mp4");
    let mut publisher = publish_loop(
        Path::new(FFMPEG),
        &clip,
        &format!("rtmp://{}/live/kept", server.rtmp_addr),
    );
    let base = play_base(&server, "live/kept");
    wait_for_200(&format!("{base}manifest.mpd"), Duration::from_secs(20))
        .await
        .expect("MPD");
    tokio::time::sleep(Duration::from_secs(3)).await;
    let text = get(&format!("{base}source/media.m3u8")).await.text();
    let keys = segment_keys(&text, parse_media(&text).media_sequence);
    let (_, uri, _) = keys.first().expect("a segment key");
    let key_path = uri.trim_start_matches("../").to_owned();
    let hls_key = get(&format!("{base}{key_path}")).await.body;
    let kid = period_kids(&get(&format!("{base}manifest.mpd")).await.text())[0].clone();
    let cenc_key = license_key(&base, &kid).await;
    publisher.kill();
    server.shutdown().await;

    // A new origin process on the same data directory, nothing published.
    let server = start_server_in(config, &dir).await;
    let base = play_base(&server, "live/kept");
    assert_eq!(
        get(&format!("{base}index.m3u8")).await.status,
        StatusCode::NOT_FOUND
    );
    let again = get(&format!("{base}{key_path}")).await;
    assert_eq!(again.status, StatusCode::OK, "{key_path} after the restart");
    assert_eq!(again.body, hls_key);
    assert_eq!(again.header("cache-control"), "private, no-store");
    assert_eq!(license_key(&base, &kid).await, cenc_key);
    // Other streams have no keys.
    assert_eq!(
        get(&format!("{}{key_path}", play_base(&server, "live/other")))
            .await
            .status,
        StatusCode::NOT_FOUND
    );

    // Published again (a new stream after the restart): new keys join the old ones, which are still
    // served.
    let _publisher = publish_loop(
        Path::new(FFMPEG),
        &clip,
        &format!("rtmp://{}/live/kept", server.rtmp_addr),
    );
    wait_for_200(&format!("{base}manifest.mpd"), Duration::from_secs(20))
        .await
        .expect("MPD after the restart");
    let new_kid = period_kids(&get(&format!("{base}manifest.mpd")).await.text())[0].clone();
    assert_ne!(new_kid, kid);
    assert_eq!(get(&format!("{base}{key_path}")).await.body, hls_key);
    assert_eq!(license_key(&base, &kid).await, cenc_key);
    let _ = std::fs::remove_dir_all(&dir);
}
