//! Operations end to end: liveness and readiness, and the JSON API (list streams, one stream, kick a
//! publisher) behind its bearer token, with real RTMP and SRT publishers (Debian's FFmpeg).
use std::{
    path::Path,
    time::{Duration, Instant},
};

use crate::common::*;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::StatusCode;

const API_TOKEN: &str = "ops test api token, 16+ bytes";

async fn api(
    method: &str,
    url: &str,
    token: Option<&str>,
) -> (StatusCode, serde_json::Value, String) {
    use hyper_util::{client::legacy::Client, rt::TokioExecutor};
    let client: Client<_, Empty<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let mut req = hyper::Request::builder().method(method).uri(url);
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    let resp = client
        .request(req.body(Empty::new()).unwrap())
        .await
        .expect("http");
    let status = resp.status();
    let cc = resp
        .headers()
        .get("cache-control")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        serde_json::from_slice(&body).unwrap_or_default(),
        cc,
    )
}

/// Poll `GET /api/streams/{stream}` until `check` holds.
async fn wait_for_report(
    base: &str,
    stream: &str,
    timeout: Duration,
    check: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = Instant::now() + timeout;
    loop {
        let (status, v, _) = api(
            "GET",
            &format!("{base}/api/streams/{stream}"),
            Some(API_TOKEN),
        )
        .await;
        if status == StatusCode::OK && check(&v) {
            return v;
        }
        assert!(Instant::now() < deadline, "{stream}: {status} {v}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_readiness_and_the_stream_api_list_and_kick_publishers() {
    let server = start_server(&format!(
        "[auth]\nplayback = \"open\"\npublish = \"open\"\nsecret = \"{TEST_SECRET}\"\n[api]\ntoken = \"{API_TOKEN}\"\n"
    ))
    .await;
    let base = format!("http://{}", server.http_addr);
    let clip = fixture("bbb-720p-2s-gop.mp4");
    assert_eq!(get(&format!("{base}/healthz")).await.status, StatusCode::OK);
    assert_eq!(get(&format!("{base}/readyz")).await.status, StatusCode::OK);

    // The API needs its bearer token.
    let (status, _, cc) = api("GET", &format!("{base}/api/streams"), None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(cc, "private, no-store");
    let (status, _, _) = api(
        "GET",
        &format!("{base}/api/streams"),
        Some("a wrong token, 16+ bytes"),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, v, _) = api("GET", &format!("{base}/api/streams"), Some(API_TOKEN)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(v["streams"], serde_json::json!([]));

    let mut rtmp = publish_loop(
        Path::new("ffmpeg"),
        &clip,
        &format!("rtmp://{}/live/ops", server.rtmp_addr),
    );
    let mut srt = publish_srt_loop(
        &clip,
        &srt_url(server.srt_addr, "#!::r=live/ops-srt,m=publish", ""),
    );
    wait_for_200(
        &format!("{base}/live/ops/source/media.m3u8"),
        Duration::from_secs(20),
    )
    .await
    .expect("rtmp stream");
    wait_for_200(
        &format!("{base}/live/ops-srt/source/media.m3u8"),
        Duration::from_secs(20),
    )
    .await
    .expect("srt stream");
    for _ in 0..5 {
        get(&format!("{base}/live/ops/index.m3u8")).await;
    }
    let report = wait_for_report(&base, "live/ops", Duration::from_secs(10), |v| {
        v["renditions"].as_array().is_some_and(|r| {
            r.iter()
                .all(|r| r["measured_bitrate_bps"].as_u64().unwrap_or(0) > 0)
        })
    })
    .await;
    println!("GET /api/streams/live/ops: {report}");
    assert_eq!(report["state"], "live");
    assert_eq!(report["protocol"], "rtmp");
    assert!(report["client"].as_str().unwrap().starts_with("127.0.0.1:"));
    assert!(report["uptime_s"].as_f64().unwrap() > 0.0);
    assert!(report["requests_total"].as_u64().unwrap() >= 6, "{report}");
    let renditions = report["renditions"].as_array().unwrap();
    let video = renditions
        .iter()
        .find(|r| r["kind"] == "video")
        .expect("video");
    assert!(
        video["codec"].as_str().unwrap().starts_with("avc1."),
        "{video}"
    );
    assert_eq!(
        (video["width"].as_u64(), video["height"].as_u64()),
        (Some(1280), Some(720))
    );
    let bitrate = video["measured_bitrate_bps"].as_u64().unwrap();
    assert!((300_000..5_000_000).contains(&bitrate), "{video}");
    assert!(video["segments"].as_u64().unwrap() >= 1 && video["parts"].as_u64().unwrap() >= 4);
    let audio = renditions
        .iter()
        .find(|r| r["kind"] == "audio")
        .expect("audio");
    assert!(
        audio["codec"].as_str().unwrap().starts_with("mp4a.40."),
        "{audio}"
    );

    let (_, all, _) = api("GET", &format!("{base}/api/streams"), Some(API_TOKEN)).await;
    let names: Vec<&str> = all["streams"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["live/ops", "live/ops-srt"]);
    assert_eq!(all["streams"][1]["protocol"], "srt");

    // Kick both publishers: their connections close, the streams wait for a reconnect.
    for (stream, publisher) in [("live/ops", &mut rtmp), ("live/ops-srt", &mut srt)] {
        let (status, v, _) = api(
            "DELETE",
            &format!("{base}/api/streams/{stream}"),
            Some(API_TOKEN),
        )
        .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{v}");
        let after = wait_for_report(&base, stream, Duration::from_secs(5), |v| {
            v["state"] == "reconnecting"
        })
        .await;
        assert!(
            after["protocol"].is_null() && after["client"].is_null(),
            "{after}"
        );
        let deadline = Instant::now() + Duration::from_secs(10);
        while publisher.0.try_wait().unwrap().is_none() {
            assert!(
                Instant::now() < deadline,
                "{stream}: the publisher was not disconnected"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        println!(
            "kicked {stream}: publisher exited, state {}",
            after["state"]
        );
        // A stream without a publisher cannot be kicked again.
        let (status, _, _) = api(
            "DELETE",
            &format!("{base}/api/streams/{stream}"),
            Some(API_TOKEN),
        )
        .await;
        assert_eq!(status, StatusCode::CONFLICT);
    }
    // The publisher may come back (a kick is not a ban).
    let _again = publish_loop(
        Path::new("ffmpeg"),
        &clip,
        &format!("rtmp://{}/live/ops", server.rtmp_addr),
    );
    wait_for_report(&base, "live/ops", Duration::from_secs(10), |v| {
        v["state"] == "live"
    })
    .await;
    let (status, _, _) = api(
        "DELETE",
        &format!("{base}/api/streams/live/nope"),
        Some(API_TOKEN),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _, _) = api(
        "GET",
        &format!("{base}/api/streams/live/nope"),
        Some(API_TOKEN),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _, _) = api("POST", &format!("{base}/api/streams"), Some(API_TOKEN)).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);

    // Readiness turns off when the server starts shutting down; liveness stays.
    server.hub.end_all();
    assert_eq!(
        get(&format!("{base}/readyz")).await.status,
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(get(&format!("{base}/healthz")).await.status, StatusCode::OK);
}

#[test]
fn the_api_token_is_derived_from_the_secret_unless_configured() {
    let dir = fresh_data_dir();
    let out = |args: &[&str]| {
        let o = std::process::Command::new(env!("CARGO_BIN_EXE_estuary"))
            .args(args)
            .arg("--data-dir")
            .arg(&dir)
            .env_remove("ESTUARY_API_TOKEN")
            .env_remove("ESTUARY_AUTH_SECRET")
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8(o.stdout).unwrap().trim().to_owned()
    };
    let derived = out(&["api-token"]);
    assert_eq!(derived.len(), 32);
    assert_eq!(out(&["api-token"]), derived, "stable for a data directory");
    assert_eq!(
        out(&["api-token", "--api-token", "configured api token!!"]),
        "configured api token!!"
    );
}

/// The value of the sample `name{labels}` in an exposition (labels in the order they are printed).
fn sample(text: &str, name_and_labels: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name_and_labels)?.strip_prefix(' '))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}

/// The part publication latency histogram of one rendition: (count, [(le, cumulative count)]).
fn part_latency(text: &str, stream: &str, rendition: &str) -> (f64, Vec<(f64, f64)>) {
    let labels = format!("stream=\"{stream}\",rendition=\"{rendition}\"");
    let count = sample(
        text,
        &format!("estuary_part_publication_latency_seconds_count{{{labels}}}"),
    )
    .unwrap_or(0.0);
    // prometheus-client prints `le` first: `…_bucket{le="0.05",stream="…",rendition="…"} 3`.
    let suffix = format!(",{labels}}}");
    let buckets: Vec<(f64, f64)> = text
        .lines()
        .filter_map(|l| {
            let rest = l.strip_prefix("estuary_part_publication_latency_seconds_bucket{le=\"")?;
            let (le, rest) = rest.split_once('"')?;
            let value = rest.strip_prefix(&suffix)?.trim();
            let le = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().ok()?
            };
            Some((le, value.split_whitespace().next()?.parse().ok()?))
        })
        .collect();
    if count > 0.0 {
        assert_eq!(
            buckets.last().map(|b| b.1),
            Some(count),
            "+Inf bucket = count"
        );
        assert!(buckets.windows(2).all(|w| w[0].1 <= w[1].1), "cumulative");
    }
    (count, buckets)
}

async fn scrape(base: &str) -> String {
    use hyper_util::{client::legacy::Client, rt::TokioExecutor};
    let client: Client<_, Empty<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let req = hyper::Request::get(format!("{base}/metrics"))
        .header("authorization", format!("Bearer {API_TOKEN}"))
        .body(Empty::new())
        .unwrap();
    let resp = client.request(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/openmetrics-text"),
    );
    let text = String::from_utf8(
        resp.into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .to_vec(),
    )
    .unwrap();
    // An independent parser accepts it.
    if let Err(e) = openmetrics_parser::openmetrics::parse_openmetrics(&text) {
        panic!("not valid OpenMetrics: {e:?}\n{text}");
    }
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_move_during_a_publish_and_parse_as_openmetrics() {
    // live/metered is packaged as published; live/metered-srt is transcoded (a copy rung and 240p).
    let server = start_server(&format!(
        "[auth]\nplayback = \"token\"\npublish = \"open\"\nsecret = \"{TEST_SECRET}\"\n[api]\ntoken = \"{API_TOKEN}\"\n\
         [transcode]\nencoder = \"software\"\npassthrough_streams = [\"live/metered\"]\n\
         [[transcode.rungs]]\nname = \"source\"\ncopy = true\n\
         [[transcode.rungs]]\nname = \"240p\"\nheight = 240\nbitrate_bps = 300000\n"
    ))
    .await;
    let base = format!("http://{}", server.http_addr);
    assert_eq!(
        get(&format!("{base}/metrics")).await.status,
        StatusCode::UNAUTHORIZED
    );
    let _srt = publish_srt_loop(
        &fixture("bbb-720p-2s-gop.mp4"),
        &srt_url(server.srt_addr, "#!::r=live/metered-srt,m=publish", ""),
    );
    let _publisher = publish_loop(
        Path::new("ffmpeg"),
        &fixture("bbb-720p-2s-gop.mp4"),
        &format!("rtmp://{}/live/metered", server.rtmp_addr),
    );
    let play = play_base(&server, "live/metered");
    wait_for_200(&format!("{play}source/media.m3u8"), Duration::from_secs(20))
        .await
        .expect("playlist");
    let first = scrape(&base).await;
    let frames = "estuary_rendition_frames_total{stream=\"live/metered\",rendition=\"source\"}";
    let parts = "estuary_rendition_parts_total{stream=\"live/metered\",rendition=\"source\"}";
    let f0 = sample(&first, frames).expect("frames series");
    let p0 = sample(&first, parts).expect("parts series");
    assert_eq!(
        sample(
            &first,
            "estuary_stream_state{stream=\"live/metered\",state=\"live\"}"
        ),
        Some(1.0)
    );

    // Traffic: a segment, a blocking reload held while we scrape, a refused request.
    let text = get(&format!("{play}source/media.m3u8")).await.text();
    let facts = parse_media(&text);
    let (msn, _, uri) = facts.segments.last().cloned().expect("a segment");
    let seg = get(&format!("{play}source/{uri}")).await;
    assert_eq!(seg.status, StatusCode::OK);
    let blocked_url = format!("{play}source/media.m3u8?_HLS_msn={}&_HLS_part=0", msn + 2);
    let held = tokio::spawn(async move { get(&blocked_url).await.status });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let during = scrape(&base).await;
    assert!(
        sample(
            &during,
            "estuary_stream_blocked_requests{stream=\"live/metered\"}"
        )
        .unwrap_or(0.0)
            >= 1.0,
        "{during}"
    );
    assert!(
        sample(&during, "estuary_http_requests_in_flight").unwrap_or(0.0) >= 1.0,
        "the held request is in flight: {during}"
    );
    assert_eq!(sample(&during, "estuary_node_draining"), Some(0.0));
    assert_eq!(
        sample(&during, "estuary_node_live_streams"),
        Some(2.0),
        "live/metered and live/metered-srt"
    );
    assert_eq!(held.await.unwrap(), StatusCode::OK);

    // A player that closes its connection while its reload is held frees it at once, not at the
    // next publication (≥ 2 s away: the whole segment two ahead).
    let text = get(&format!("{play}source/media.m3u8")).await.text();
    let (msn, _, _) = parse_media(&text)
        .segments
        .last()
        .cloned()
        .expect("a segment");
    let target = format!("{play}source/media.m3u8?_HLS_msn={}", msn + 2);
    let target = target.strip_prefix(&base).expect("same origin").to_owned();
    let mut raw = tokio::net::TcpStream::connect(server.http_addr)
        .await
        .unwrap();
    tokio::io::AsyncWriteExt::write_all(
        &mut raw,
        format!("GET {target} HTTP/1.1\r\nhost: estuary\r\n\r\n").as_bytes(),
    )
    .await
    .unwrap();
    let blocked = "estuary_stream_blocked_requests{stream=\"live/metered\"}";
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(sample(&scrape(&base).await, blocked), Some(1.0));
    drop(raw);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        sample(&scrape(&base).await, blocked),
        Some(0.0),
        "a closed connection's held reload is freed"
    );

    let bare = get(&format!("{base}/live/metered/index.m3u8")).await;
    assert_eq!(bare.status, StatusCode::UNAUTHORIZED);
    tokio::time::sleep(Duration::from_secs(2)).await;

    let last = scrape(&base).await;
    println!("{last}");
    // Part publication latency: every published part observed, passthrough parts within a frame.
    let (n0, _) = part_latency(&first, "live/metered", "source");
    let (n1, buckets) = part_latency(&last, "live/metered", "source");
    assert!(n1 > n0, "part latency observations move: {n0} -> {n1}");
    assert!(
        n1 + 2.0 >= sample(&last, parts).unwrap(),
        "one observation per part: {n1} for {:?} parts",
        sample(&last, parts)
    );
    let within_50ms = buckets
        .iter()
        .find(|(le, _)| *le == 0.05)
        .map(|(_, c)| *c)
        .unwrap();
    assert!(
        within_50ms >= 0.9 * n1,
        "passthrough parts are published within 50 ms of their last frame: {buckets:?}"
    );
    let (_, audio) = part_latency(&last, "live/metered", "audio");
    println!("part latency buckets (s, cumulative): source {buckets:?}; audio {audio:?}");
    assert!(sample(&last, frames).unwrap() > f0, "frames move");
    assert!(
        sample(&last, "estuary_process_cpu_seconds_total").unwrap()
            > sample(&first, "estuary_process_cpu_seconds_total").unwrap(),
        "the process's CPU time moves"
    );
    assert!(sample(&last, parts).unwrap() > p0, "parts move");
    assert!(
        sample(
            &last,
            "estuary_rendition_segments_total{stream=\"live/metered\",rendition=\"audio\"}"
        )
        .unwrap()
            >= 1.0
    );
    assert!(
        sample(
            &last,
            "estuary_rendition_bitrate_bps{stream=\"live/metered\",rendition=\"source\"}"
        )
        .unwrap()
            > 100_000.0
    );
    assert!(
        sample(
            &last,
            "estuary_http_requests_total{route=\"blocking_playlist\",status=\"200\"}"
        )
        .unwrap()
            >= 1.0
    );
    assert!(
        sample(
            &last,
            "estuary_http_requests_total{route=\"segment\",status=\"200\"}"
        )
        .unwrap()
            >= 1.0
    );
    assert!(
        sample(
            &last,
            "estuary_http_requests_total{route=\"multivariant_playlist\",status=\"401\"}"
        )
        .unwrap()
            >= 1.0
    );
    assert!(
        sample(
            &last,
            "estuary_http_response_bytes_total{route=\"segment\"}"
        )
        .unwrap()
            >= seg.body.len() as f64
    );
    assert!(sample(&last, "estuary_auth_denials_total{reason=\"missing\"}").unwrap() >= 1.0);
    assert!(
        sample(
            &last,
            "estuary_stream_requests_total{stream=\"live/metered\"}"
        )
        .unwrap()
            >= 3.0
    );
    assert_eq!(sample(&last, "estuary_publish_refusals_total"), Some(0.0));
    assert!(
        sample(
            &last,
            "estuary_ingest_frames_total{stream=\"live/metered\",kind=\"video\"}"
        )
        .unwrap()
            > 0.0
    );
    assert!(
        sample(&last, "estuary_ingest_bytes_total{stream=\"live/metered\"}").unwrap() > 100_000.0
    );

    // The transcoded SRT stream: SRT counters and the transcoder's state.
    let srt_play = play_base(&server, "live/metered-srt");
    wait_for_200(
        &format!("{srt_play}240p/media.m3u8"),
        Duration::from_secs(30),
    )
    .await
    .expect("the 240p rendition");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let ladder = scrape(&base).await;
    let s = |k: &str| sample(&ladder, k);
    assert!(
        s("estuary_srt_packets_received_total{stream=\"live/metered-srt\"}").unwrap() > 100.0,
        "{ladder}"
    );
    assert_eq!(
        s("estuary_srt_packets_lost_total{stream=\"live/metered-srt\"}"),
        Some(0.0)
    );
    let rtf = s("estuary_transcoder_real_time_factor{stream=\"live/metered-srt\"}")
        .expect("real-time factor");
    assert!(rtf > 0.5 && rtf < 3.0, "{rtf}");
    assert_eq!(
        s("estuary_transcoder_rung_shed{stream=\"live/metered-srt\",rendition=\"240p\"}"),
        Some(0.0)
    );
    assert!(
        s("estuary_rendition_parts_total{stream=\"live/metered-srt\",rendition=\"240p\"}").unwrap()
            >= 1.0
    );
    println!(
        "transcoder real-time factor {rtf}, lag {:?} ms",
        s("estuary_transcoder_lag_ms{stream=\"live/metered-srt\"}")
    );
    // A transcoded part's latency counts from its source frame: decoding and encoding show.
    let (n, encoded) = part_latency(&ladder, "live/metered-srt", "240p");
    let (n_copy, copied) = part_latency(&ladder, "live/metered-srt", "source");
    assert!(n >= 1.0 && n_copy >= 1.0, "{ladder}");
    let mean = |name: &str, count: f64| {
        s(&format!(
            "estuary_part_publication_latency_seconds_sum{{stream=\"live/metered-srt\",rendition=\"{name}\"}}"
        ))
        .unwrap()
            / count
    };
    let (encoded_mean, copied_mean) = (mean("240p", n), mean("source", n_copy));
    println!(
        "transcoded part latency: 240p mean {encoded_mean:.4} s {encoded:?}; copy rung mean {copied_mean:.4} s {copied:?}"
    );
    assert!(
        encoded_mean > 0.0 && encoded_mean < 5.0,
        "the 240p parts' latency includes encoding: {encoded_mean}"
    );
    let (_, report, _) = api(
        "GET",
        &format!("{base}/api/streams/live/metered-srt"),
        Some(API_TOKEN),
    )
    .await;
    assert!(
        report["srt"]["packets_received"].as_u64().unwrap() > 0,
        "{report}"
    );
    assert!(
        report["transcoder"]["real_time_factor"].as_f64().unwrap() > 0.5,
        "{report}"
    );
}

#[test]
fn estuary_config_prints_file_env_and_flags_in_precedence_and_names_bad_keys() {
    let dir = fresh_data_dir();
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("estuary.toml");
    std::fs::write(
        &file,
        "[packager]\npart_target = \"400ms\"\nsegment_target = \"4s\"\nwindow_segments = 9\n",
    )
    .unwrap();
    let run = |env: &[(&str, &str)], args: &[&str]| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_estuary"));
        cmd.arg("config").arg("--config").arg(&file).args(args);
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.output().unwrap()
    };
    // file < env < flag
    let out = run(
        &[
            ("ESTUARY_PACKAGER__PART_TARGET", "250ms"),
            ("ESTUARY_PACKAGER__SEGMENT_TARGET", "3s"),
            ("ESTUARY_API__TOKEN", "an api token that is long"),
        ],
        &["--segment-target", "2s"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let effective: toml::Table = toml::from_str(&text).expect("the output is TOML");
    let packager = effective["packager"].as_table().unwrap();
    assert_eq!(packager["window_segments"].as_integer(), Some(9), "file");
    assert_eq!(
        packager["part_target"].as_str(),
        Some("250ms"),
        "env over file"
    );
    assert_eq!(
        packager["segment_target"].as_str(),
        Some("2s"),
        "flag over env"
    );
    assert_eq!(effective["api"]["token"].as_str(), Some("<redacted>"));
    assert!(!text.contains("an api token that is long"));
    // Rejections name the variable or the key.
    for (env, needle) in [
        (("ESTUARY_PACKAGER__PART_TARGT", "1s"), "part_targt"),
        (
            ("ESTUARY_PAKAGER__PART_TARGET", "1s"),
            "ESTUARY_PAKAGER__PART_TARGET",
        ),
        (
            ("ESTUARY_PACKAGER__PART_TARGET", "3s"),
            "packager.part_target",
        ),
    ] {
        let out = run(&[env], &[]);
        assert!(!out.status.success(), "{env:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(needle), "{env:?}: {err}");
    }
}

/// Every object URI a media playlist lists (segments, parts, the init segment), relative to it.
fn listed_objects(text: &str) -> Vec<String> {
    let facts = parse_media(text);
    let mut uris: Vec<String> = facts.segments.iter().map(|s| s.2.clone()).collect();
    uris.extend(facts.parts.iter().map(|p| p.1.clone()));
    uris.push(facts.map_uri.clone());
    uris
}

/// SIGTERM mid-stream: the origin stops accepting, answers the blocked playlist request and finishes
/// the segment being streamed (the stream ends), cuts a client that stops reading only after
/// `server.shutdown_grace`, and exits. Restarted on the same data directory and published again, its
/// media sequence numbers continue past the old ones and no URL the first process served comes back
/// with other bytes (a CDN may still hold the old ones). Then killed with `kill -9` while a segment is
/// in progress (its parts served) and restarted: the same again, that segment's number included.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_finishes_responses_in_flight_and_a_restart_never_reuses_a_url() {
    use std::collections::BTreeMap;
    use tokio::io::AsyncWriteExt;
    const GRACE_S: u64 = 4;
    let config = format!("[server]\nshutdown_grace = \"{GRACE_S}s\"\n");
    let data_dir = fresh_data_dir();
    let clip = fixture("bbb-720p-2s-gop.mp4");
    let stream = "live/restart";
    let token = test_token(stream);

    // First life.
    let mut first = blocking({
        let (config, dir) = (config.clone(), data_dir.clone());
        move || EstuaryProcess::start_in(&config, &dir)
    })
    .await;
    let mut publisher = publish_loop(
        Path::new("ffmpeg"),
        &clip,
        &format!("rtmp://{}/{stream}", first.rtmp_addr),
    );
    let base = format!("http://{}/t/{token}/{stream}/", first.http_addr);
    wait_for_200(&format!("{base}source/media.m3u8"), Duration::from_secs(20))
        .await
        .expect("first playlist");
    tokio::time::sleep(Duration::from_secs(6)).await;
    let mut served: BTreeMap<String, Bytes> = BTreeMap::new();
    let mut last_msn = 0;
    for rendition in ["source", "audio"] {
        let text = get(&format!("{base}{rendition}/media.m3u8")).await.text();
        let facts = parse_media(&text);
        last_msn = last_msn.max(facts.segments.last().expect("segments").0);
        for uri in listed_objects(&text) {
            let fetched = get(&format!("{base}{rendition}/{uri}")).await;
            assert_eq!(fetched.status, StatusCode::OK, "{rendition}/{uri}");
            served.insert(format!("{rendition}/{uri}"), fetched.body);
        }
    }
    let complete: Vec<String> = served
        .keys()
        .filter(|k| k.starts_with("source/") && k.ends_with(".m4s") && k.matches('.').count() == 1)
        .cloned()
        .collect();

    // Responses in flight at the signal: a blocking reload for a part not yet published, the
    // segment in progress (streamed), and a client that asks for segments and never reads.
    let facts = parse_media(&get(&format!("{base}source/media.m3u8")).await.text());
    let open_msn = facts.segments.last().unwrap().0 + 1;
    let blocked = tokio::spawn({
        let url = format!(
            "{base}source/media.m3u8?_HLS_msn={}&_HLS_part=0",
            open_msn + 1
        );
        async move { get(&url).await }
    });
    let streamed = tokio::spawn({
        let url = format!("{base}source/{open_msn}.m4s");
        async move { get(&url).await }
    });
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut stalled = socket.connect(first.http_addr).await.unwrap();
    // Pipelined requests for far more than the socket buffers hold (about 40 × 0.4 MB): the origin is
    // mid-response, blocked on the write, when the signal comes.
    for uri in complete.iter().cycle().take(40) {
        let path = format!("/t/{token}/{stream}/{uri}");
        stalled
            .write_all(format!("GET {path} HTTP/1.1\r\nHost: origin\r\n\r\n").as_bytes())
            .await
            .unwrap();
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let signalled = Instant::now();
    first.terminate();
    let blocked = blocked.await.expect("blocking reload answered");
    let streamed = streamed.await.expect("streamed segment finished");
    let answered_after = signalled.elapsed();
    // Not accepting any more.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        tokio::net::TcpStream::connect(first.http_addr)
            .await
            .is_err(),
        "new connections are refused once shutting down"
    );
    let (status, first) = blocking(move || {
        let status = first.wait_exit(Duration::from_secs(GRACE_S + 6));
        (status, first)
    })
    .await;
    let exited_after = signalled.elapsed();
    drop(stalled);
    publisher.kill();
    let log = first.log();
    assert!(
        status.is_some_and(|s| s.success()),
        "exit {status:?}\n{log}"
    );
    assert!(log.contains("SIGTERM"), "{log}");
    assert_eq!(blocked.status, StatusCode::OK);
    let blocked_facts = parse_media(&blocked.text());
    assert!(
        blocked_facts.has_endlist,
        "the held reload gets the ended playlist: {}",
        blocked.text()
    );
    assert_eq!(streamed.status, StatusCode::OK);
    let streamed_chunks = chunks(&streamed.body);
    assert!(
        !streamed_chunks.is_empty(),
        "the segment in progress ends cleanly, whole chunks"
    );
    assert!(
        answered_after < Duration::from_secs(2),
        "in-flight responses finish at once: {answered_after:?}"
    );
    assert!(
        exited_after >= Duration::from_secs(GRACE_S) - Duration::from_millis(500)
            && exited_after <= Duration::from_secs(GRACE_S + 3),
        "the non-reading client held the exit to the grace period: {exited_after:?}\n{log}"
    );
    assert!(log.contains("cut"), "{log}");
    println!(
        "shutdown: held reload and streamed segment ({} chunks) answered {answered_after:?} after SIGTERM, exit {exited_after:?} (grace {GRACE_S} s)",
        streamed_chunks.len()
    );

    // Second life on the same data directory, published again; then killed (`kill -9`) mid-segment.
    let mut second = blocking({
        let (config, dir) = (config.clone(), data_dir.clone());
        move || EstuaryProcess::start_in(&config, &dir)
    })
    .await;
    let mut publisher = publish_loop(
        Path::new("ffmpeg"),
        &clip,
        &format!("rtmp://{}/{stream}", second.rtmp_addr),
    );
    let base = format!("http://{}/t/{token}/{stream}/", second.http_addr);
    wait_for_200(&format!("{base}source/media.m3u8"), Duration::from_secs(20))
        .await
        .expect("playlist after the restart");
    tokio::time::sleep(Duration::from_secs(4)).await;
    let check_new_life =
        |text: &str, rendition: &str, seen_up_to: u64, served: &BTreeMap<String, Bytes>| {
            let facts = parse_media(text);
            assert!(
                facts.media_sequence > seen_up_to,
                "{rendition}: msn {} after the restart, up to {seen_up_to} seen before",
                facts.media_sequence
            );
            for uri in listed_objects(text) {
                assert!(
                    !served.contains_key(&format!("{rendition}/{uri}")),
                    "{rendition}/{uri} named again after the restart"
                );
            }
        };
    for rendition in ["source", "audio"] {
        let text = get(&format!("{base}{rendition}/media.m3u8")).await.text();
        check_new_life(&text, rendition, last_msn, &served);
    }
    let (mut gone, mut same) = (0, 0);
    for (path, bytes) in &served {
        let again = get(&format!("{base}{path}")).await;
        match again.status {
            StatusCode::NOT_FOUND => gone += 1,
            StatusCode::OK => {
                assert_eq!(&again.body, bytes, "{path} served with other bytes");
                same += 1;
            }
            other => panic!("{path}: {other}"),
        }
    }
    println!(
        "restart: msn continues past {last_msn}; {} old URLs: {gone} gone (404), {same} same bytes",
        served.len()
    );
    // Everything this life serves, up to a part of the segment in progress (its msn is the highest
    // seen), then the kill.
    let mut seen_up_to = last_msn;
    for rendition in ["source", "audio"] {
        let text = get(&format!("{base}{rendition}/media.m3u8")).await.text();
        let facts = parse_media(&text);
        seen_up_to = seen_up_to.max(facts.parts.iter().map(|p| p.0).max().unwrap_or(0));
        for uri in listed_objects(&text) {
            let fetched = get(&format!("{base}{rendition}/{uri}")).await;
            if fetched.status == StatusCode::OK {
                served.insert(format!("{rendition}/{uri}"), fetched.body);
            }
        }
    }
    second = blocking(move || {
        second.kill_now();
        second
    })
    .await;
    drop(second);
    publisher.kill();

    // Third life after the kill: still nothing named again, the segment in progress included.
    let third = blocking({
        let (config, dir) = (config.clone(), data_dir.clone());
        move || EstuaryProcess::start_in(&config, &dir)
    })
    .await;
    let _publisher = publish_loop(
        Path::new("ffmpeg"),
        &clip,
        &format!("rtmp://{}/{stream}", third.rtmp_addr),
    );
    let base = format!("http://{}/t/{token}/{stream}/", third.http_addr);
    wait_for_200(&format!("{base}source/media.m3u8"), Duration::from_secs(20))
        .await
        .expect("playlist after the kill");
    tokio::time::sleep(Duration::from_secs(4)).await;
    for rendition in ["source", "audio"] {
        let text = get(&format!("{base}{rendition}/media.m3u8")).await.text();
        check_new_life(&text, rendition, seen_up_to, &served);
    }
    let mut other_bytes = 0;
    for (path, bytes) in &served {
        let again = get(&format!("{base}{path}")).await;
        if again.status == StatusCode::OK && again.body != bytes {
            other_bytes += 1;
        }
    }
    assert_eq!(
        other_bytes, 0,
        "URLs served again with other bytes after kill -9"
    );
    println!(
        "kill -9: msn continues past {seen_up_to} (the segment in progress included); {} URLs from both lives, none with other bytes",
        served.len()
    );
}

/// The player page at `/t/{token}/live/{name}/` plays the stream in headless Chromium with hls.js
/// (AES-128) and with dash.js (CENC ClearKey, the license fetched next to the page), and shows the
/// latency and the rendition; without a token the same page says a token URL is needed; its
/// libraries come from npm (`player/node_modules`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_player_page_plays_with_hls_js_and_dash_js_and_asks_for_a_token() {
    let server = start_server(&format!(
        "[auth]\nplayback = \"token\"\npublish = \"open\"\nsecret = \"{TEST_SECRET}\"\n\
         [encryption]\nenabled = true\n"
    ))
    .await;
    let origin = format!("http://{}", server.http_addr);
    let _publisher = publish_loop(
        Path::new("ffmpeg"),
        &fixture("bbb-720p-2s-gop.mp4"),
        &format!("rtmp://{}/live/page", server.rtmp_addr),
    );
    let page = play_base(&server, "live/page");
    wait_for_200(&format!("{page}source/media.m3u8"), Duration::from_secs(20))
        .await
        .expect("playlist");

    // The page and its libraries over HTTP.
    let html = get(&page).await;
    assert_eq!(html.status, StatusCode::OK);
    assert!(html.header("content-type").starts_with("text/html"));
    assert!(html.text().contains("estuaryStatus"));
    let redirect = get(&format!("{origin}/live/page")).await;
    assert_eq!(redirect.status, StatusCode::MOVED_PERMANENTLY);
    assert_eq!(redirect.header("location"), "page/");
    let hls_js = get(&format!("{origin}/player/hls.min.js")).await;
    assert_eq!(hls_js.status, StatusCode::OK);
    let installed = std::fs::read(repo().join("player/node_modules/hls.js/dist/hls.min.js"))
        .expect("npm ci --prefix player");
    assert_eq!(
        hls_js.body.as_ref(),
        installed.as_slice(),
        "the npm package's file"
    );
    assert_eq!(
        get(&format!("{origin}/player/dash.all.min.js"))
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(
        get(&format!("{origin}/player/other.js")).await.status,
        StatusCode::NOT_FOUND
    );

    let hls = blocking({
        let url = page.clone();
        move || play_page(&url, 8)
    })
    .await;
    println!("page, hls.js: {hls}");
    assert_eq!(hls["ok"], true, "{hls}");
    assert_eq!(hls["engine"], "hls", "{hls}");
    assert!(hls["played_seconds"].as_f64().unwrap() >= 6.5, "{hls}");
    let latency = hls["latency"].as_f64().expect("the page shows the latency");
    assert!(latency > 0.3 && latency < 6.0, "{hls}");
    assert_eq!(hls["rendition"]["height"], 720, "{hls}");
    assert_eq!(hls["stalls"], 0, "{hls}");

    let dash = blocking({
        let url = format!("{page}?engine=dash");
        move || play_page(&url, 8)
    })
    .await;
    println!("page, dash.js: {dash}");
    assert_eq!(dash["ok"], true, "{dash}");
    assert_eq!(dash["engine"], "dash", "{dash}");
    assert!(dash["played_seconds"].as_f64().unwrap() >= 6.5, "{dash}");
    let latency = dash["latency"]
        .as_f64()
        .expect("the page shows the latency");
    assert!(latency > 0.3 && latency < 8.0, "{dash}");
    assert_eq!(dash["rendition"]["height"], 720, "{dash}");

    // Without a token the page loads and says what is needed; nothing plays.
    let bare = blocking({
        let url = format!("{origin}/live/page/");
        move || play_page(&url, 2)
    })
    .await;
    println!("page without a token: {bare}");
    assert_eq!(bare["needs_token"], true, "{bare}");
    assert_eq!(bare["http_status"], 401, "{bare}");
    assert_eq!(bare["ok"], false, "{bare}");
    assert!(
        bare["message"]
            .as_str()
            .unwrap_or("")
            .contains("estuary token"),
        "{bare}"
    );
}
