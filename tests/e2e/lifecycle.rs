//! End to end: stream lifecycle (second publisher refused, blocking timeout 503, reconnect within the grace
//! period → discontinuity, end after the grace period → EXT-X-ENDLIST, re-publish → msns never repeat) and
//! hostile RTMP input while another stream keeps playing in hls.js.

use std::{
    path::Path,
    time::{Duration, Instant},
};

use crate::common::*;
use hyper::StatusCode;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

const FFMPEG: &str = "ffmpeg";

fn msns(facts: &MediaFacts) -> Vec<u64> {
    facts.segments.iter().map(|s| s.0).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn lifecycle_refuse_second_publisher_reconnect_discontinuity_end_and_republish() {
    let server = start_server(
        "[streams]\nreconnect_grace = \"8s\"\nended_linger = \"60s\"\nmax_waiters_per_stream = 2\n",
    )
    .await;
    let clip = fixture("bbb-720p-2s-gop.mp4");
    let rtmp = format!("rtmp://{}/live/life", server.rtmp_addr);
    let base = format!("http://{}/live/life/", server.http_addr);
    let mut first = publish_loop(Path::new(FFMPEG), &clip, &rtmp);
    wait_for_200(&format!("{base}index.m3u8"), Duration::from_secs(10))
        .await
        .expect("ready");
    tokio::time::sleep(Duration::from_secs(3)).await;

    // A second publisher on a live name is refused; the first keeps going.
    let second = tokio::task::spawn_blocking({
        let clip = clip.clone();
        let rtmp = rtmp.clone();
        move || {
            std::process::Command::new(FFMPEG)
                .args(["-hide_banner", "-loglevel", "quiet", "-re", "-i"])
                .arg(&clip)
                .args(["-t", "3", "-c", "copy", "-f", "flv", &rtmp])
                .status()
                .unwrap()
        }
    });
    let status = second.await.unwrap();
    assert!(!status.success(), "second publisher was not refused");
    let before = parse_media(&get(&format!("{base}source/media.m3u8")).await.text());
    let (hm, hp) = before
        .preload_hint
        .clone()
        .unwrap()
        .trim_end_matches(".m4s")
        .split_once('.')
        .map(|(a, b)| (a.to_owned(), b.to_owned()))
        .unwrap();
    let r = get(&format!(
        "{base}source/media.m3u8?_HLS_msn={hm}&_HLS_part={hp}"
    ))
    .await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "first publisher still producing parts"
    );

    // Blocked requests per stream are bounded: beyond the limit (2 here), 503 at once.
    let live = parse_media(&get(&format!("{base}source/media.m3u8")).await.text());
    let ahead = format!(
        "{base}source/media.m3u8?_HLS_msn={}&_HLS_part=3",
        live.segments.last().unwrap().0 + 2
    );
    let waiting: Vec<_> = (0..2)
        .map(|_| {
            tokio::spawn({
                let u = ahead.clone();
                async move { get(&u).await.status }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let over = get(&ahead).await;
    assert_eq!(
        over.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "third waiter not refused"
    );
    assert!(over.elapsed < Duration::from_secs(1));
    for w in waiting {
        assert_eq!(w.await.unwrap(), StatusCode::OK);
    }

    // Publisher gone: a blocking request that cannot be satisfied within 3× target duration gets 503.
    first.kill();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let facts = parse_media(&get(&format!("{base}source/media.m3u8")).await.text());
    let last = *msns(&facts).last().unwrap();
    let t = Instant::now();
    let r = get(&format!(
        "{base}source/media.m3u8?_HLS_msn={}&_HLS_part=0",
        last + 2
    ))
    .await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    let waited = t.elapsed();
    eprintln!("unsatisfiable blocking request answered 503 after {waited:?}");
    assert!(
        waited >= Duration::from_secs(5),
        "503 came too early: {waited:?}"
    );

    // Reconnect within the grace period: same playlists, a discontinuity, msns continue.
    let _again = publish_loop(Path::new(FFMPEG), &clip, &rtmp);
    let deadline = Instant::now() + Duration::from_secs(15);
    let text = loop {
        let text = get(&format!("{base}source/media.m3u8")).await.text();
        if text.contains("#EXT-X-DISCONTINUITY\n")
            && parse_media(&text).segments.iter().any(|s| s.0 > last + 1)
        {
            break text;
        }
        assert!(
            Instant::now() < deadline,
            "no discontinuity after reconnect:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let after = parse_media(&text);
    let all = msns(&after);
    assert!(all.windows(2).all(|w| w[1] == w[0] + 1), "msns {all:?}");
    assert!(!after.has_endlist);
    let audio = get(&format!("{base}audio/media.m3u8")).await.text();
    assert!(
        audio.contains("#EXT-X-DISCONTINUITY\n"),
        "audio playlist lacks the discontinuity"
    );
    // The re-published stream still decodes across the discontinuity.
    let out = ffmpeg_decode(&format!("{base}index.m3u8"), Some(4)).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    drop(_again);

    // After the grace period: EXT-X-ENDLIST, no preload hint.
    let deadline = Instant::now() + Duration::from_secs(15);
    let ended = loop {
        let text = get(&format!("{base}source/media.m3u8")).await.text();
        if text.contains("#EXT-X-ENDLIST") {
            break text;
        }
        assert!(Instant::now() < deadline, "stream did not end");
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert!(!ended.contains("PRELOAD-HINT"));
    let ended_last = *msns(&parse_media(&ended)).last().unwrap();

    // A new publish on the ended name starts new playlists whose msns never repeat the old ones.
    let _third = publish_loop(Path::new(FFMPEG), &clip, &rtmp);
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let text = get(&format!("{base}source/media.m3u8")).await.text();
        if !text.contains("#EXT-X-ENDLIST") && text.contains("#EXTINF") {
            let f = parse_media(&text);
            assert!(
                f.media_sequence > ended_last,
                "msn {} repeats (old last {ended_last})",
                f.media_sequence
            );
            assert!(!f.map_uri.is_empty());
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no new playlist after re-publish"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// A plain (non-digest) RTMP client handshake: C0+C1, read S0+S1+S2, send C2.
async fn handshake(addr: std::net::SocketAddr) -> TcpStream {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let mut c0c1 = vec![3u8];
    c0c1.extend_from_slice(&[0u8; 8]);
    c0c1.extend((0..1528u32).map(|i| (i * 7 + 3) as u8));
    s.write_all(&c0c1).await.unwrap();
    let mut s0s1s2 = vec![0u8; 1 + 1536 * 2];
    tokio::time::timeout(Duration::from_secs(5), s.read_exact(&mut s0s1s2))
        .await
        .expect("S0S1S2 in time")
        .unwrap();
    s.write_all(&s0s1s2[1..1537]).await.unwrap();
    s
}

/// Send `bytes` and expect the server to close the connection within 5 s.
async fn expect_closed(mut s: TcpStream, bytes: &[u8], what: &str) {
    let _ = s.write_all(bytes).await;
    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match tokio::time::timeout_at(deadline.into(), s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return,
            Ok(Ok(_)) => continue, // protocol replies before the close
            Err(_) => panic!("{what}: connection not closed"),
        }
    }
}

fn chunk_fmt0(csid: u8, len: u32, type_id: u8, payload: &[u8]) -> Vec<u8> {
    let mut v = vec![csid & 0x3f, 0, 0, 0];
    v.extend_from_slice(&len.to_be_bytes()[1..]);
    v.push(type_id);
    v.extend_from_slice(&0u32.to_le_bytes());
    v.extend_from_slice(payload);
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hostile_rtmp_input_never_disturbs_a_playing_stream() {
    let server = start_server("").await;
    let clip = fixture("bbb-720p-2s-gop.mp4");
    let _good = publish_loop(
        Path::new(FFMPEG),
        &clip,
        &format!("rtmp://{}/live/good", server.rtmp_addr),
    );
    let url = format!("http://{}/live/good/index.m3u8", server.http_addr);
    wait_for_200(&url, Duration::from_secs(10))
        .await
        .expect("good stream ready");
    let player = tokio::task::spawn_blocking({
        let url = url.clone();
        move || play_hls(&url, 15)
    });
    let addr = server.rtmp_addr;
    let attacks = tokio::spawn(async move {
        let mut rounds = 0;
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(12) {
            // Garbage instead of a handshake.
            let s = TcpStream::connect(addr).await.unwrap();
            expect_closed(s, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", "garbage handshake").await;
            let s = TcpStream::connect(addr).await.unwrap();
            let noise: Vec<u8> = (0..4096u32)
                .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
                .collect();
            expect_closed(s, &noise, "noise handshake").await;
            // Garbage after a valid handshake.
            let s = handshake(addr).await;
            expect_closed(s, &noise, "noise after handshake").await;
            // An oversize message (16 MiB declared).
            let s = handshake(addr).await;
            expect_closed(
                s,
                &chunk_fmt0(3, 0x00FF_FFFF, 20, &[0u8; 128]),
                "oversize message",
            )
            .await;
            // A 22-byte AMF command holding only "connect" (panicked rml_rtmp's session).
            let amf = [0x02, 0x00, 0x07, b'c', b'o', b'n', b'n', b'e', b'c', b't'];
            let s = handshake(addr).await;
            let mut msg = chunk_fmt0(3, amf.len() as u32, 20, &amf);
            msg.extend_from_slice(&noise[..64]);
            expect_closed(s, &msg, "truncated connect").await;
            // Two chunk streams interleaved mid-message, then more chunk streams than allowed.
            let s = handshake(addr).await;
            let mut bytes = chunk_fmt0(4, 300, 8, &[0xAF; 128]);
            bytes.extend(chunk_fmt0(5, 300, 9, &[0x17; 128]));
            for csid in 6..63u8 {
                bytes.extend(chunk_fmt0(csid, 200, 8, &[0xAF; 64]));
            }
            for csid in 0..200u16 {
                bytes.extend([0x00, (csid & 0xff) as u8, 0, 0, 0, 0, 0, 100, 8, 0, 0, 0, 0]);
                bytes.extend([0u8; 16]);
            }
            expect_closed(s, &bytes, "interleaved chunk streams").await;
            // A truncated message, then the client disappears.
            let mut s = handshake(addr).await;
            let _ = s.write_all(&chunk_fmt0(3, 1000, 20, &[0x02, 0x00])).await;
            drop(s);
            rounds += 1;
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        rounds
    });
    let rounds = attacks.await.expect("attacks ran");
    let report = player.await.unwrap();
    eprintln!("{rounds} rounds of hostile connections; hls.js report: {report}");
    assert!(rounds >= 2);
    assert_eq!(report["ok"], true, "{report}");
    // The attacked server keeps the other stream playing: no stall, no fatal error.
    assert_eq!(report["stalls"], 0, "{report}");
    assert!(
        report["played_seconds"].as_f64().unwrap() >= 13.5,
        "{report}"
    );
    assert!(
        report["fatal_errors"].as_array().unwrap().is_empty(),
        "{report}"
    );
    // The server still accepts new publishes and serves.
    let _other = publish_loop(
        Path::new(FFMPEG),
        &clip,
        &format!("rtmp://{}/live/after", server.rtmp_addr),
    );
    wait_for_200(
        &format!("http://{}/live/after/index.m3u8", server.http_addr),
        Duration::from_secs(10),
    )
    .await
    .expect("new publish after attacks");
}
