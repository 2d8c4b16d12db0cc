//! End to end SRT ingest: real libsrt 1.5 callers (Debian's FFmpeg 5.1 and `srt-live-transmit`) and
//! hand-made UDP datagrams against Estuary's SRT listener on 127.0.0.1:0.
//!
//! Tests that check what the server logs run `estuary serve` as a child process and read its standard
//! error; the others run the origin in process. The tests marked "needs the TS demuxer" check served media.

use std::net::UdpSocket;
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::common::*;
use hyper::StatusCode;

const CLIP: &str = "bbb-720p-2s-gop.mp4";

/// The SRT access-control stream ID of a publish of `stream`.
fn publish_id(stream: &str) -> String {
    format!("#!::r={stream},m=publish")
}

/// How an FFmpeg publish attempt went.
struct Attempt {
    /// `Some` when FFmpeg exited within the wait (refused); `None` when it was still publishing.
    exit: Option<ExitStatus>,
    elapsed: Duration,
    stderr: String,
}

/// Publish the clip once in real time to `url` with FFmpeg and wait at most `wait` for it to exit.
/// Blocking.
fn attempt_publish(url: &str, wait: Duration) -> Attempt {
    let start = Instant::now();
    let mut child = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-re", "-i"])
        .arg(fixture(CLIP))
        .args(["-c", "copy", "-f", "mpegts", url])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("ffmpeg runs");
    let exit = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break Some(status);
        }
        if start.elapsed() >= wait {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let elapsed = start.elapsed();
    let mut stderr = String::new();
    if let Some(mut pipe) = child.stderr.take() {
        use std::io::Read;
        let _ = pipe.read_to_string(&mut stderr);
    }
    Attempt {
        exit,
        elapsed,
        stderr,
    }
}

/// Assert that FFmpeg could not publish to `url`: it exits non-zero well before the clip would end.
fn assert_refused(url: &str) -> Attempt {
    let attempt = attempt_publish(url, Duration::from_secs(15));
    let Some(status) = attempt.exit else {
        panic!("ffmpeg kept publishing to {url}")
    };
    assert!(!status.success(), "ffmpeg succeeded publishing to {url}");
    assert!(
        attempt.elapsed < Duration::from_secs(10),
        "refusal of {url} took {:?}",
        attempt.elapsed
    );
    attempt
}

/// Assert that FFmpeg is still publishing to `url` after `seconds` (the handshake was accepted).
fn assert_connects(url: &str, seconds: u64) {
    let attempt = attempt_publish(url, Duration::from_secs(seconds));
    assert!(
        attempt.exit.is_none(),
        "ffmpeg could not publish to {url} ({:?}): {}",
        attempt.exit,
        attempt.stderr
    );
}

/// An SRT HSv5 conclusion handshake (SRT RFC draft §3.2.1) with `extensions` after the 48-byte handshake
/// body: header (16 bytes) — control bit + type 0 (handshake), type-specific info, timestamp, destination
/// socket id 0 — then version 5, encryption 0, extension flags, initial sequence number, MTU 1500, flow
/// window 8192, handshake type -1 (conclusion), socket id, SYN cookie, peer IP (16 bytes).
fn conclusion(extension_flags: u16, extensions: &[u8]) -> Vec<u8> {
    let mut p = Vec::new();
    p.extend(0x8000_0000u32.to_be_bytes());
    p.extend(0u32.to_be_bytes());
    p.extend(0u32.to_be_bytes());
    p.extend(0u32.to_be_bytes());
    p.extend(5u32.to_be_bytes());
    p.extend(0u16.to_be_bytes());
    p.extend(extension_flags.to_be_bytes());
    p.extend(12345u32.to_be_bytes());
    p.extend(1500u32.to_be_bytes());
    p.extend(8192u32.to_be_bytes());
    p.extend((-1i32).to_be_bytes());
    p.extend(0x0102_0304u32.to_be_bytes());
    p.extend(0i32.to_be_bytes());
    p.extend([127, 0, 0, 1]);
    p.extend([0u8; 12]);
    p.extend(extensions);
    p
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn srt_ffmpeg_publish_serves_ll_hls_that_ffprobe_reads() {
    // Needs the TS demuxer.
    let server = start_server("").await;
    let url = srt_url(server.srt_addr, &publish_id("live/srtffmpeg"), "");
    let _publisher = publish_srt_loop(&fixture(CLIP), &url);
    let multivariant = format!("http://{}/live/srtffmpeg/index.m3u8", server.http_addr);
    let found = wait_for_200(&multivariant, Duration::from_secs(20)).await;
    assert!(
        found.is_some(),
        "no multivariant playlist from the SRT publish"
    );
    let protocol = server
        .hub
        .get("live/srtffmpeg")
        .and_then(|e| e.lock().publisher.as_ref().map(|p| p.protocol));
    assert_eq!(protocol, Some(estuary::ingest::Protocol::Srt));
    // ffprobe starts a live playlist a few segments from its end: let two segments complete first
    // (probing a playlist with only the first segment in it fails now and then).
    let media = format!(
        "http://{}/live/srtffmpeg/source/media.m3u8",
        server.http_addr
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while parse_media(&get(&media).await.text()).segments.len() < 2 {
        assert!(std::time::Instant::now() < deadline, "no second segment");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let video = probe_first(&multivariant, Some("v:0"), "stream=codec_name,width,height").await;
    assert_eq!(video, "h264,1280,720");
    let audio = probe_first(&multivariant, Some("a:0"), "stream=codec_name").await;
    assert_eq!(audio, "aac");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn srt_live_transmit_publish_from_an_ffmpeg_pipe_decodes() {
    // Needs the TS demuxer.
    let server = start_server("").await;
    let mut ffmpeg = Command::new("ffmpeg")
        .args([
            "-hide_banner",
            "-loglevel",
            "error",
            "-re",
            "-stream_loop",
            "-1",
            "-i",
        ])
        .arg(fixture(CLIP))
        .args(["-c", "copy", "-f", "mpegts", "-"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("ffmpeg runs");
    let pipe = ffmpeg.stdout.take().expect("ffmpeg stdout");
    let _ffmpeg = Proc(ffmpeg, "ffmpeg to pipe");
    let target = format!(
        "srt://{}?streamid={}&latency=200",
        server.srt_addr,
        publish_id("live/srtlt")
    );
    let transmit = Command::new("srt-live-transmit")
        .args(["-q", "file://con", &target])
        .stdin(Stdio::from(pipe))
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("srt-live-transmit runs (package srt-tools)");
    let _transmit = Proc(transmit, "srt-live-transmit");
    let base = format!("http://{}/live/srtlt/", server.http_addr);
    let found = wait_for_200(&format!("{base}index.m3u8"), Duration::from_secs(20)).await;
    assert!(
        found.is_some(),
        "no multivariant playlist from srt-live-transmit"
    );
    let decoded = ffmpeg_decode(&format!("{base}index.m3u8"), Some(3)).await;
    assert!(
        decoded.status.success() && decoded.stderr.is_empty(),
        "ffmpeg could not decode the stream: {}",
        String::from_utf8_lossy(&decoded.stderr)
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn srt_handshake_refuses_bad_modes_malformed_ids_and_invalid_names_with_a_log_line() {
    blocking(|| {
        let server = EstuaryProcess::start("");
        let addr = server.srt_addr;
        let cases = [
            (
                "#!::r=live/a,m=request",
                "code=2405",
                "mode m=\"request\" is not offered",
            ),
            ("#!::r=live/b", "code=2405", "no m= key"),
            (
                "#!::r=live/c,,m=publish",
                "code=2400",
                "malformed stream id",
            ),
            (
                "#!::r=live/../x,m=publish",
                "code=2400",
                "invalid stream name",
            ),
            (
                "#!::r=other/d,m=publish",
                "code=2400",
                "invalid stream name",
            ),
        ];
        for (id, code, reason) in cases {
            assert_refused(&srt_url(addr, id, ""));
            let line = server.wait_for_line(
                &["srt publish refused in the handshake", code, reason],
                Duration::from_secs(5),
            );
            assert!(
                line.is_some(),
                "no refusal logged for {id:?}:\n{}",
                server.log()
            );
        }
        // No stream ID at all.
        assert_refused(&format!("srt://{addr}?latency=200000"));
        assert!(
            server
                .wait_for_line(
                    &["refused in the handshake", "no stream id"],
                    Duration::from_secs(5)
                )
                .is_some(),
            "{}",
            server.log()
        );
        // The plain form means publish.
        assert_connects(&srt_url(addr, "live/plain", ""), 3);
        assert!(
            server
                .wait_for_line(
                    &["srt publish started", "stream=live/plain"],
                    Duration::from_secs(5)
                )
                .is_some(),
            "{}",
            server.log()
        );
        assert!(!server.log().contains("panicked"), "{}", server.log());
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn srt_publish_on_a_name_live_over_rtmp_is_refused_and_rtmp_keeps_going() {
    let server = blocking(|| EstuaryProcess::start("")).await;
    let _rtmp = publish_loop(
        Path::new("ffmpeg"),
        &fixture(CLIP),
        &format!("rtmp://{}/live/taken", server.rtmp_addr),
    );
    let media = format!("http://{}/live/taken/source/media.m3u8", server.http_addr);
    let first = wait_for_200(&media, Duration::from_secs(20))
        .await
        .expect("the RTMP publish is served");
    let url = srt_url(server.srt_addr, &publish_id("live/taken"), "");
    let server = blocking(move || {
        assert_refused(&url);
        let line = server.wait_for_line(
            &[
                "srt publish refused in the handshake",
                "code=2409",
                "already being published",
            ],
            Duration::from_secs(5),
        );
        assert!(line.is_some(), "{}", server.log());
        server
    })
    .await;
    // The RTMP publish goes on: new segments keep coming.
    let before = parse_media(&first.text());
    tokio::time::sleep(Duration::from_secs(5)).await;
    let after = parse_media(&get(&media).await.text());
    let last = |f: &MediaFacts| f.segments.last().map(|s| s.0);
    assert!(
        last(&after) > last(&before),
        "RTMP stream stalled: {:?} then {:?}",
        last(&before),
        last(&after)
    );
    drop(server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn srt_second_publisher_on_a_live_srt_name_is_refused_and_the_first_keeps_going() {
    blocking(|| {
        let server = EstuaryProcess::start("");
        let url = srt_url(server.srt_addr, &publish_id("live/twice"), "");
        let mut first = publish_srt_loop(&fixture(CLIP), &url);
        assert!(
            server
                .wait_for_line(
                    &["srt publish started", "stream=live/twice"],
                    Duration::from_secs(10)
                )
                .is_some(),
            "{}",
            server.log()
        );
        assert_refused(&url);
        assert!(
            server
                .wait_for_line(
                    &["refused in the handshake", "code=2409", "live/twice"],
                    Duration::from_secs(5)
                )
                .is_some(),
            "{}",
            server.log()
        );
        // srt-live-transmit reports the rejection and gives up.
        let target = format!(
            "srt://{}?streamid={}&latency=200",
            server.srt_addr,
            publish_id("live/twice")
        );
        // Its input stays open (but empty) so it gets as far as the SRT handshake.
        let mut transmit = Command::new("timeout")
            .args([
                "10",
                "srt-live-transmit",
                "-a:no",
                "-t:5",
                "file://con",
                &target,
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("srt-live-transmit runs");
        let _input = transmit.stdin.take();
        let out = transmit.wait_with_output().expect("srt-live-transmit ends");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            text.to_lowercase().contains("reject"),
            "srt-live-transmit said: {text}"
        );
        // The first publisher is still connected.
        std::thread::sleep(Duration::from_secs(2));
        assert!(
            matches!(first.0.try_wait(), Ok(None)),
            "the first publisher stopped"
        );
        assert!(
            !server.log().contains("srt publish ended"),
            "{}",
            server.log()
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn srt_passphrase_right_connects_wrong_and_missing_are_refused_with_a_log_line() {
    blocking(|| {
        let server = EstuaryProcess::start(
            "[srt]\npassphrase = \"correct-horse-battery\"\n\
             [srt.passphrases]\n\"live/aes256\" = \"another-long-passphrase\"\n",
        );
        let addr = server.srt_addr;
        let id = publish_id("live/secret");
        assert_connects(&srt_url(addr, &id, "&passphrase=correct-horse-battery"), 3);
        assert!(
            server
                .wait_for_line(
                    &["srt publish started", "is_encrypted=true", "live/secret"],
                    Duration::from_secs(5)
                )
                .is_some(),
            "{}",
            server.log()
        );
        // A per-stream passphrase, AES-256.
        assert_connects(
            &srt_url(
                addr,
                &publish_id("live/aes256"),
                "&passphrase=another-long-passphrase&pbkeylen=32",
            ),
            3,
        );
        assert!(
            server
                .wait_for_line(
                    &["srt publish started", "live/aes256"],
                    Duration::from_secs(5)
                )
                .is_some(),
            "{}",
            server.log()
        );
        // The global passphrase does not open a stream that has its own.
        assert_refused(&srt_url(
            addr,
            &publish_id("live/aes256"),
            "&passphrase=correct-horse-battery",
        ));
        // A wrong passphrase from a caller that announces its key length (pbkeylen) …
        assert_refused(&srt_url(
            addr,
            &id,
            "&passphrase=wrong-horse-battery&pbkeylen=16",
        ));
        assert!(
            server
                .wait_for_line(
                    &["SRT passphrase mismatch from 127.0.0.1:", "for live/secret"],
                    Duration::from_secs(5)
                )
                .is_some(),
            "{}",
            server.log()
        );
        // … and from one that does not (libsrt's default), which srt-tokio cannot tell from a missing one.
        assert_refused(&srt_url(addr, &id, "&passphrase=wrong-horse-battery"));
        assert_refused(&srt_url(addr, &publish_id("live/nopass"), ""));
        for stream in ["live/secret", "live/nopass"] {
            assert!(
                server
                    .wait_for_line(
                        &[
                            "SRT passphrase missing or wrong from 127.0.0.1:",
                            &format!("for {stream}")
                        ],
                        Duration::from_secs(5)
                    )
                    .is_some(),
                "{}",
                server.log()
            );
        }
        let log = server.log();
        for secret in [
            "correct-horse-battery",
            "another-long-passphrase",
            "wrong-horse-battery",
        ] {
            assert!(!log.contains(secret), "a passphrase was logged:\n{log}");
        }
        // A refused caller never started a stream.
        assert!(!log.contains("publish started stream=live/nopass"), "{log}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn srt_caller_with_a_passphrase_is_refused_by_a_stream_without_one() {
    blocking(|| {
        let server = EstuaryProcess::start("");
        assert_refused(&srt_url(
            server.srt_addr,
            &publish_id("live/open"),
            "&passphrase=unneeded-passphrase&pbkeylen=16",
        ));
        assert!(
            server
                .wait_for_line(
                    &[
                        "refused in the handshake",
                        "code=1011",
                        "has none configured"
                    ],
                    Duration::from_secs(5)
                )
                .is_some(),
            "{}",
            server.log()
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn srt_random_datagrams_and_non_ts_payloads_do_not_panic_and_another_stream_is_served() {
    let server = blocking(|| EstuaryProcess::start("")).await;
    let srt_addr = server.srt_addr;
    // Random datagrams from one socket: data packets, control packets of every type, truncated ones.
    blocking(move || {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        for i in 0..3000 {
            let len = (rng.next() % 1500) as usize;
            let mut datagram = rng.bytes(len);
            if i % 2 == 0 && datagram.len() >= 2 {
                // A control packet of type 0..=8 (handshake, keepalive, ACK, NAK, …).
                datagram[0] = 0x80;
                datagram[1] = (rng.next() % 9) as u8;
            }
            let _ = socket.send_to(&datagram, srt_addr);
            if i % 100 == 0 {
                std::thread::sleep(Duration::from_millis(5));
            }
        }
    })
    .await;
    // A valid SRT handshake (srt-tokio's caller), then payloads that are not MPEG-TS.
    {
        use futures::SinkExt;
        let mut caller = srt_tokio::SrtSocket::builder()
            .latency(Duration::from_millis(120))
            .call(srt_addr, Some(&publish_id("live/garbage")))
            .await
            .expect("the handshake is accepted");
        let mut rng = Rng(42);
        for _ in 0..300 {
            let mut payload = rng.bytes(1316);
            for b in payload.iter_mut() {
                if *b == 0x47 {
                    *b = 0x46; // never a TS sync byte
                }
            }
            // The server closes the connection once it is sure this is not MPEG-TS.
            if caller
                .send((Instant::now(), bytes::Bytes::from(payload)))
                .await
                .is_err()
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(3)).await;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        let _ = caller.close().await;
    }
    let server = blocking(move || {
        assert!(
            server
                .wait_for_line(
                    &[
                        "srt publish ended on error",
                        "live/garbage",
                        "not an MPEG-TS stream"
                    ],
                    Duration::from_secs(10)
                )
                .is_some(),
            "{}",
            server.log()
        );
        server
    })
    .await;
    // Another stream is served.
    let _publisher = publish_srt_loop(
        &fixture(CLIP),
        &srt_url(srt_addr, &publish_id("live/after"), ""),
    );
    let mut server = blocking(move || {
        assert!(
            server
                .wait_for_line(
                    &["srt publish started", "live/after"],
                    Duration::from_secs(10)
                )
                .is_some(),
            "{}",
            server.log()
        );
        server
    })
    .await;
    assert!(server.is_running());
    let log = server.log();
    assert!(!log.contains("panicked"), "{log}");
    assert!(!log.contains("listener task ended"), "{log}");
    // Needs the TS demuxer from here on.
    let multivariant = format!("http://{}/live/after/index.m3u8", server.http_addr);
    let served = wait_for_200(&multivariant, Duration::from_secs(20)).await;
    assert!(
        served.is_some(),
        "the stream published after the garbage is not served"
    );
    let garbage = get(&format!(
        "http://{}/live/garbage/index.m3u8",
        server.http_addr
    ))
    .await;
    assert_eq!(garbage.status, StatusCode::NOT_FOUND);
}

/// Log lines containing every one of `needles`.
fn count_lines(server: &EstuaryProcess, needles: &[&str]) -> usize {
    server
        .log()
        .lines()
        .filter(|l| needles.iter().all(|n| l.contains(n)))
        .count()
}

/// Handshake datagrams that made srt-protocol 0.4.4 panic inside srt-tokio's listener task (each killed
/// every open SRT connection): a conclusion with an empty stream-ID (type 5), congestion (6), filter (7)
/// or group (8) extension, a conclusion with a well-formed congestion extension ("file", unimplemented),
/// and an SRT-extension control packet (type 0x7FFF, subtype 5) without a body.
fn crafted_datagrams() -> Vec<Vec<u8>> {
    let mut datagrams = Vec::new();
    for extension_type in [5u16, 6, 7, 8] {
        let mut extension = Vec::new();
        extension.extend(extension_type.to_be_bytes());
        extension.extend(0u16.to_be_bytes()); // length 0 words …
        extension.extend([0u8; 4]); // … then 4 bytes, so the parser enters the extension loop
        datagrams.push(conclusion(0x0004, &extension));
    }
    let mut congestion = Vec::new();
    congestion.extend(6u16.to_be_bytes());
    congestion.extend(1u16.to_be_bytes());
    congestion.extend(*b"elif"); // "file" as a little-endian word
    datagrams.push(conclusion(0x0004, &congestion));
    let mut srt_extension = Vec::new();
    srt_extension.extend(0xFFFFu16.to_be_bytes()); // control bit + type 0x7FFF
    srt_extension.extend(5u16.to_be_bytes()); // subtype: stream ID
    srt_extension.extend([0u8; 12]); // type-specific info, timestamp, destination socket id
    datagrams.push(srt_extension);
    datagrams
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn srt_crafted_handshakes_and_unexpected_passphrases_leave_a_live_publisher_streaming() {
    const ROUNDS: usize = 3;
    let server = blocking(|| EstuaryProcess::start("")).await;
    let addr = server.srt_addr;
    let mut publisher = publish_srt_loop(
        &fixture(CLIP),
        &srt_url(addr, &publish_id("live/steady"), ""),
    );
    let media = format!("http://{}/live/steady/source/media.m3u8", server.http_addr);
    let first = wait_for_200(&media, Duration::from_secs(20))
        .await
        .expect("the SRT publish is served");
    let before = parse_media(&first.text());
    let server = blocking(move || {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        for _ in 0..ROUNDS {
            for datagram in crafted_datagrams() {
                socket.send_to(&datagram, addr).unwrap();
            }
            // An FFmpeg caller with a passphrase but no announced key length (libsrt's default), to a
            // stream without one: refused with SRT_REJ_UNSECURE.
            let attempt = assert_refused(&srt_url(
                addr,
                &publish_id("live/open"),
                "&passphrase=unneeded-passphrase",
            ));
            assert!(
                attempt.stderr.contains("Input/output error"),
                "{}",
                attempt.stderr
            );
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while count_lines(
            &server,
            &[
                "refused in the handshake",
                "code=1011",
                "has none configured",
            ],
        ) < ROUNDS
        {
            assert!(Instant::now() < deadline, "{}", server.log());
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(
            server
                .wait_for_line(
                    &["srt listener ignored malformed datagrams"],
                    Duration::from_secs(5)
                )
                .is_some(),
            "{}",
            server.log()
        );
        server
    })
    .await;
    // The publisher's connection was never dropped: its playlist keeps advancing without a discontinuity.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let text = get(&media).await.text();
    let after = parse_media(&text);
    let last = |f: &MediaFacts| f.segments.last().map(|s| s.0);
    assert!(
        last(&after) > last(&before),
        "SRT stream stalled: {:?} then {:?}",
        last(&before),
        last(&after)
    );
    assert!(
        !text.lines().any(|l| l == "#EXT-X-DISCONTINUITY")
            && text.contains("#EXT-X-DISCONTINUITY-SEQUENCE:0\n"),
        "{text}"
    );
    assert!(
        matches!(publisher.0.try_wait(), Ok(None)),
        "the publisher stopped"
    );
    let log = server.log();
    assert_eq!(
        count_lines(&server, &["refused in the handshake", "code=1011"]),
        ROUNDS,
        "one refusal line per bad caller:\n{log}"
    );
    for absent in [
        "panicked",
        "listener task ended",
        "srt publish ended",
        "disconnected: grace period started stream=live/steady",
    ] {
        assert!(!log.contains(absent), "{absent:?} in:\n{log}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn srt_connection_limit_refuses_the_caller_beyond_it() {
    blocking(|| {
        let server = EstuaryProcess::start("[server]\nsrt_max_connections = 1\n");
        let addr = server.srt_addr;
        let _first = publish_srt_loop(&fixture(CLIP), &srt_url(addr, &publish_id("live/one"), ""));
        assert!(
            server
                .wait_for_line(
                    &["srt publish started", "live/one"],
                    Duration::from_secs(10)
                )
                .is_some(),
            "{}",
            server.log()
        );
        assert_refused(&srt_url(addr, &publish_id("live/two"), ""));
        assert!(
            server
                .wait_for_line(
                    &[
                        "refused in the handshake",
                        "code=2402",
                        "connection limit (1) reached"
                    ],
                    Duration::from_secs(5)
                )
                .is_some(),
            "{}",
            server.log()
        );
    })
    .await;
}

/// A server shut down (SIGTERM) under two live SRT publishers closes their connections before its
/// listener: it exits within its grace period, and srt-protocol's "closed socket" warning comes at
/// most once per connection. (The listener used to close first; srt-tokio's connection tasks then
/// polled their closed packet streams in a loop and logged thousands of identical lines per
/// connection until they timed out.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn srt_shutdown_under_live_publishers_logs_no_flood() {
    let mut server = blocking(|| EstuaryProcess::start("")).await;
    let mut publishers = Vec::new();
    for name in ["a", "b"] {
        let url = srt_url(server.srt_addr, &format!("#!::r=live/{name},m=publish"), "");
        publishers.push(publish_srt_loop(&fixture(CLIP), &url));
    }
    for name in ["a", "b"] {
        wait_for_200(
            &format!("http://{}/live/{name}/index.m3u8", server.http_addr),
            Duration::from_secs(20),
        )
        .await
        .unwrap_or_else(|| panic!("live/{name} plays"));
    }
    let signalled = Instant::now();
    server.terminate();
    let (status, server) = blocking(move || {
        let status = server.wait_exit(Duration::from_secs(15));
        (status, server)
    })
    .await;
    let took = signalled.elapsed();
    drop(publishers);
    let log = server.log();
    assert!(
        status.is_some_and(|s| s.success()),
        "exit {status:?}\n{log}"
    );
    let closed = count_lines(&server, &["closed socket"]);
    let lines = log.lines().count();
    eprintln!(
        "shutdown under 2 SRT publishers: exit after {took:?}, {lines} log lines, {closed} 'closed socket' warnings"
    );
    assert!(closed <= 2, "{closed} 'closed socket' lines:\n{log}");
    assert!(lines < 400, "{lines} log lines");
    assert!(took < Duration::from_secs(12), "exit took {took:?}");
}
