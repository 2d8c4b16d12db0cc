//! Recording and replay end to end: a stream published with FFmpeg over RTMP, recorded across a
//! publisher reconnect and a `kill -9` of the origin, then replayed as VOD under the live stream's
//! token scope: FFmpeg decodes the HLS replay end to end, hls.js and dash.js play HLS and DASH to
//! the end in headless Chromium, the MP4 download has the recording's duration, the API agrees with
//! the disk, and the completion webhook is called.
//!
//! `ESTUARY_E2E_RECORDING_PHASE_S` sets how long each of the four publishes lasts (default 6 s; the
//! 10-minute run of the closing note used 200 s, with the third publish cut at 100 s).
use std::{
    io::{Read, Write},
    path::Path,
    time::{Duration, Instant},
};

use crate::common::*;
use hyper::StatusCode;

/// The recording test's webhook listener: collects the bodies of the POSTs it gets.
fn webhook_listener() -> (
    std::net::SocketAddr,
    std::sync::Arc<std::sync::Mutex<Vec<serde_json::Value>>>,
) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let got = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = got.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            // Headers, then Content-Length bytes of body.
            let body = loop {
                let Ok(n) = conn.read(&mut chunk) else {
                    break None;
                };
                if n == 0 {
                    break None;
                }
                buf.extend_from_slice(&chunk[..n]);
                let text = String::from_utf8_lossy(&buf).to_string();
                if let Some(end) = text.find("\r\n\r\n") {
                    let len = text[..end]
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length:")
                                .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                        })
                        .unwrap_or(0);
                    if buf.len() >= end + 4 + len {
                        break Some(buf[end + 4..end + 4 + len].to_vec());
                    }
                }
            };
            if let Some(body) = body
                && let Ok(v) = serde_json::from_slice(&body)
            {
                sink.lock().unwrap().push(v);
            }
            let _ = conn.write_all(b"HTTP/1.1 204 No Content\r\nconnection: close\r\n\r\n");
        }
    });
    (addr, got)
}

async fn api(url: &str, method: &str) -> (StatusCode, serde_json::Value) {
    let r = request_with(
        method,
        url,
        &[("authorization", &format!("Bearer {}", test_api_token()))],
        None,
    )
    .await;
    (
        r.status,
        serde_json::from_slice(&r.body).unwrap_or_default(),
    )
}

fn ffprobe_duration(url: &str) -> f64 {
    let out = std::process::Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "format=duration",
            "-of",
            "csv=p=0",
            url,
        ])
        .output()
        .expect("ffprobe runs");
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or(0.0)
}

/// Decode `url` to the end with FFmpeg; the media time of the last frame decoded (s) and the
/// errors it printed.
fn ffmpeg_decode(url: &str) -> (f64, String) {
    let out = std::process::Command::new("ffmpeg")
        .args([
            "-hide_banner",
            "-nostats",
            "-v",
            "error",
            "-i",
            url,
            "-map",
            "0:v:0",
            "-f",
            "framemd5",
            "-",
        ])
        .output()
        .expect("ffmpeg runs");
    let text = String::from_utf8_lossy(&out.stdout);
    let mut tb = 1.0 / 90_000.0;
    let mut last = 0.0f64;
    let mut first: Option<f64> = None;
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("#tb 0: ") {
            if let Some((n, d)) = rest.split_once('/') {
                tb =
                    n.trim().parse::<f64>().unwrap_or(1.0) / d.trim().parse::<f64>().unwrap_or(1.0);
            }
        } else if !line.starts_with('#') {
            let f: Vec<&str> = line.split(',').map(str::trim).collect();
            if f.len() > 4
                && let (Ok(pts), Ok(dur)) = (f[2].parse::<f64>(), f[3].parse::<f64>())
            {
                first.get_or_insert(pts * tb);
                last = last.max((pts + dur) * tb);
            }
        }
    }
    (
        last - first.unwrap_or(0.0),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recording_survives_a_reconnect_and_a_kill_9_and_replays_as_vod_under_the_token() {
    let phase = Duration::from_secs(
        std::env::var("ESTUARY_E2E_RECORDING_PHASE_S")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(6),
    );
    let stream = "live/rec";
    let (hook_addr, hooks) = webhook_listener();
    let config = format!(
        "[streams]\nreconnect_grace = \"6s\"\nended_linger = \"60s\"\n\
         [recording]\nenabled = true\nwebhook_url = \"http://{hook_addr}/hook\"\n\
         [auth]\nplayback = \"token\"\npublish = \"open\"\nsecret = \"{TEST_SECRET}\"\n"
    );
    let data_dir = fresh_data_dir();
    let clip = fixture("camera-face-pexels-360p-h264-aac-20s.mp4");
    let publish = |rtmp: std::net::SocketAddr| {
        publish_loop(
            Path::new("ffmpeg"),
            &clip,
            &format!("rtmp://{rtmp}/{stream}"),
        )
    };
    let token = test_token(stream);

    // First life: a publish, a reconnect 2 s later, then `kill -9` of the origin mid-publish.
    let first = blocking({
        let (c, d) = (config.clone(), data_dir.clone());
        move || EstuaryProcess::start_in(&c, &d)
    })
    .await;
    let mut published = Duration::ZERO;
    for _ in 0..2 {
        let mut p = publish(first.rtmp_addr);
        let t0 = Instant::now();
        tokio::time::sleep(phase).await;
        p.kill();
        published += t0.elapsed();
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    let mut p = publish(first.rtmp_addr);
    let t0 = Instant::now();
    tokio::time::sleep(phase).await;
    let mut first = first;
    first = blocking(move || {
        first.kill_now();
        first
    })
    .await;
    published += t0.elapsed();
    p.kill();
    let first_log = first.log();
    drop(first);

    // Second life on the same data directory, published again within the grace period: the
    // recording continues after a discontinuity.
    let second = blocking({
        let (c, d) = (config.clone(), data_dir.clone());
        move || EstuaryProcess::start_in(&c, &d)
    })
    .await;
    let mut p = publish(second.rtmp_addr);
    let t0 = Instant::now();
    tokio::time::sleep(phase).await;
    p.kill();
    published += t0.elapsed();
    // The stream ends after the grace period; its recording completes.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !second.log().contains("recording complete") && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let log = second.log();
    assert!(
        log.contains("recording resumed after a restart"),
        "{first_log}\n---\n{log}"
    );
    assert!(log.contains("recording complete"), "{log}");

    // The API: one recording, complete, as on disk.
    let http = second.http_addr;
    let (status, list) = api(&format!("http://{http}/api/recordings"), "GET").await;
    assert_eq!(status, StatusCode::OK, "{list}");
    let recs = list["recordings"].as_array().expect("list").clone();
    assert_eq!(recs.len(), 1, "{list}");
    let rec = &recs[0];
    assert_eq!(rec["status"], "complete", "{rec}");
    let id = rec["id"].as_str().unwrap().to_owned();
    let on_disk: Vec<String> = std::fs::read_dir(data_dir.join("recordings/live/rec"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .collect();
    assert_eq!(on_disk, vec![id.clone()]);
    let disk_bytes: u64 = walk_bytes(
        &data_dir.join("recordings/live/rec").join(&id),
        &["index.jsonl", "downloads"],
    );
    assert_eq!(rec["bytes"].as_u64(), Some(disk_bytes), "{rec}");
    let recorded_s = rec["duration_ms"].as_f64().unwrap() / 1000.0;
    let published_s = published.as_secs_f64();
    println!(
        "recording {id}: {recorded_s:.3} s recorded of {published_s:.3} s published (4 publishes, one cut by kill -9), {} bytes",
        rec["bytes"]
    );
    // Lost: the segment in progress at the kill, and each publisher's start-up.
    assert!(
        recorded_s <= published_s + 1.0 && recorded_s >= published_s - 2.0 - 4.0 * 0.8,
        "recorded {recorded_s} s of {published_s} s published"
    );

    // The webhook got the completion.
    let deadline = Instant::now() + Duration::from_secs(10);
    while hooks.lock().unwrap().is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let got = hooks.lock().unwrap().clone();
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0]["event"], "recording_complete");
    assert_eq!(got[0]["id"], id.as_str());
    assert_eq!(got[0]["status"], "complete");

    // Replay under the live stream's token: refused without it, and with another stream's.
    let vod = format!("http://{http}/t/{token}/vod/live/rec/{id}/");
    let bare = get(&format!("http://{http}/vod/live/rec/{id}/index.m3u8")).await;
    assert_eq!(bare.status, StatusCode::UNAUTHORIZED);
    let other = get(&format!(
        "http://{http}/t/{}/vod/live/rec/{id}/index.m3u8",
        test_token("live/other")
    ))
    .await;
    assert_eq!(other.status, StatusCode::FORBIDDEN);
    let multivariant = get(&format!("{vod}index.m3u8")).await;
    assert_eq!(multivariant.status, StatusCode::OK);
    assert!(multivariant.header("cache-control").contains("immutable"));
    for rendition in ["source", "audio"] {
        let text = get(&format!("{vod}{rendition}/media.m3u8")).await.text();
        assert!(
            text.contains("#EXT-X-PLAYLIST-TYPE:VOD") && text.ends_with("#EXT-X-ENDLIST\n"),
            "{text}"
        );
        // The reconnects (two in the first life, the restart): one EXT-X-DISCONTINUITY each.
        let breaks = text.matches("#EXT-X-DISCONTINUITY\n").count();
        assert_eq!(breaks, 3, "{rendition}: {breaks} discontinuities\n{text}");
    }
    let hls_s = ffprobe_duration(&format!("{vod}index.m3u8"));
    let dash_s = ffprobe_duration(&format!("{vod}manifest.mpd"));
    let (decoded_s, errors) = blocking({
        let u = format!("{vod}index.m3u8");
        move || ffmpeg_decode(&u)
    })
    .await;
    println!(
        "vod: ffprobe hls {hls_s:.3} s, dash {dash_s:.3} s; ffmpeg decoded {decoded_s:.3} s of video"
    );
    assert!(
        (hls_s - recorded_s).abs() < 0.5,
        "hls {hls_s} vs {recorded_s}"
    );
    assert!(
        (decoded_s - recorded_s).abs() < 2.1,
        "decoded {decoded_s} vs {recorded_s}: {errors}"
    );
    assert!(errors.trim().is_empty(), "ffmpeg: {errors}");

    // hls.js and dash.js play the replay to its end.
    let report = blocking({
        let (h, d) = (format!("{vod}index.m3u8"), format!("{vod}manifest.mpd"));
        move || play_vod(&h, &d, 4.0, 40 + 2 * phase.as_secs() as u32)
    })
    .await;
    println!("vod players: {report}");
    assert_eq!(report["ok"], true, "{report}");

    // The MP4 download.
    let mp4 = get(&format!("{vod}source.mp4")).await;
    assert_eq!(mp4.status, StatusCode::OK);
    let file = data_dir.join("download-check.mp4");
    std::fs::write(&file, &mp4.body).unwrap();
    let mp4_s = ffprobe_duration(file.to_str().unwrap());
    println!("download: {} bytes, {mp4_s:.3} s", mp4.body.len());
    assert!(
        (mp4_s - recorded_s).abs() < 0.5,
        "mp4 {mp4_s} vs {recorded_s}"
    );

    // Delete: gone from the API and the disk.
    let (status, _) = api(
        &format!("http://{http}/api/recordings/live/rec/{id}"),
        "DELETE",
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert!(!data_dir.join("recordings/live/rec").join(&id).exists());
    let (_, list) = api(&format!("http://{http}/api/recordings"), "GET").await;
    assert_eq!(
        list["recordings"].as_array().map(Vec::len),
        Some(0),
        "{list}"
    );
}

/// Bytes of the files under `dir`, but those named in `skip` (and what is under them).
fn walk_bytes(dir: &Path, skip: &[&str]) -> u64 {
    let mut total = 0;
    for e in std::fs::read_dir(dir).unwrap().map(Result::unwrap) {
        let name = e.file_name().to_string_lossy().to_string();
        if skip.contains(&name.as_str()) {
            continue;
        }
        let meta = e.metadata().unwrap();
        if meta.is_dir() {
            total += walk_bytes(&e.path(), skip);
        } else {
            total += meta.len();
        }
    }
    total
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_encrypted_recording_keeps_its_keys_and_replays_over_hls_aes_128() {
    let stream = "live/rec-enc";
    let config = format!(
        "[streams]\nreconnect_grace = \"1s\"\n[recording]\nenabled = true\n[encryption]\nenabled = true\n\
         [auth]\nplayback = \"token\"\npublish = \"open\"\nsecret = \"{TEST_SECRET}\"\n"
    );
    let data_dir = fresh_data_dir();
    let origin = blocking({
        let d = data_dir.clone();
        move || EstuaryProcess::start_in(&config, &d)
    })
    .await;
    let mut p = publish_loop(
        Path::new("ffmpeg"),
        &fixture("camera-face-pexels-360p-h264-aac-20s.mp4"),
        &format!("rtmp://{}/{stream}", origin.rtmp_addr),
    );
    tokio::time::sleep(Duration::from_secs(9)).await;
    p.kill();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !origin.log().contains("recording complete") && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let http = origin.http_addr;
    let (_, list) = api(&format!("http://{http}/api/recordings"), "GET").await;
    let rec = &list["recordings"][0];
    assert_eq!(rec["status"], "complete", "{list}");
    assert!(
        rec["dash"].is_null(),
        "no DASH replay of an encrypted recording: {rec}"
    );
    let id = rec["id"].as_str().unwrap().to_owned();
    let dir = data_dir.join("recordings/live/rec-enc").join(&id);
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(dir.join("keys.json"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "the recording's keys are private");

    let vod = format!(
        "http://{http}/t/{}/vod/live/rec-enc/{id}/",
        test_token(stream)
    );
    let text = get(&format!("{vod}source/media.m3u8")).await.text();
    assert!(
        text.contains("#EXT-X-KEY:METHOD=AES-128,URI=\"../keys/"),
        "{text}"
    );
    // The segment served is the recorded one, encrypted under its key and IV.
    let first = text.lines().find(|l| l.ends_with(".m4s")).unwrap();
    let served = get(&format!("{vod}source/{first}")).await.body;
    let clear = std::fs::read(dir.join("source").join(first)).unwrap();
    assert_ne!(served.to_vec(), clear);
    assert_eq!(
        served.len(),
        (clear.len() / 16 + 1) * 16,
        "AES-128-CBC with PKCS#7 padding"
    );
    assert_eq!(
        get(&format!("{vod}manifest.mpd")).await.status,
        StatusCode::NOT_FOUND
    );
    let bare_key = text
        .lines()
        .find_map(|l| {
            l.split("URI=\"../")
                .nth(1)
                .and_then(|r| r.split('"').next())
        })
        .unwrap()
        .to_owned();
    let no_token = get(&format!("http://{http}/vod/live/rec-enc/{id}/{bare_key}")).await;
    assert_eq!(no_token.status, StatusCode::UNAUTHORIZED);
    // FFmpeg fetches the keys with the token and decodes the replay to its end.
    let recorded_s = rec["duration_ms"].as_f64().unwrap() / 1000.0;
    let (decoded_s, errors) = blocking({
        let u = format!("{vod}index.m3u8");
        move || ffmpeg_decode(&u)
    })
    .await;
    println!("encrypted recording: {recorded_s:.3} s recorded, ffmpeg decoded {decoded_s:.3} s");
    assert!(errors.trim().is_empty(), "ffmpeg: {errors}");
    assert!(
        (decoded_s - recorded_s).abs() < 1.0,
        "decoded {decoded_s} of {recorded_s}"
    );
}
