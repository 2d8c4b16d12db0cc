//! End to end: an RTMP publish served as low-latency DASH over the same CMAF objects as LL-HLS. The MPD
//! is parsed with `dash-mpd-core` and checked against the objects the origin serves (parsed with
//! `mp4-atom`), FFmpeg reads it, the segment in progress arrives chunk by chunk, and dash.js and Shaka
//! Player play it in headless Chromium.

use std::{
    path::Path,
    time::{Duration, Instant},
};

use crate::common::*;
use bytes::Bytes;
use dash_mpd_core as mpd;
use http_body_util::{BodyExt, Empty};
use hyper::StatusCode;

const FFMPEG: &str = "ffmpeg";

/// Fetch and parse the MPD; checks its HTTP headers and the library's conformity rules.
async fn fetch_mpd(url: &str) -> (mpd::MPD, String) {
    let r = get(url).await;
    assert_eq!(r.status, StatusCode::OK, "{url}");
    assert_eq!(r.header("content-type"), "application/dash+xml");
    let text = r.text();
    let m = mpd::parse(&text).unwrap_or_else(|e| panic!("MPD parses: {e}\n{text}"));
    let problems = mpd::check_conformity(&m);
    assert!(problems.is_empty(), "{problems:?}\n{text}");
    (m, text)
}

/// (number, t, d) of every segment a SegmentTemplate's timeline lists.
fn listed(st: &mpd::SegmentTemplate) -> Vec<(u64, u64, u64)> {
    let mut out = Vec::new();
    let mut number = st.startNumber.unwrap_or(1);
    let mut t = 0;
    for s in &st
        .SegmentTimeline
        .as_ref()
        .expect("SegmentTimeline")
        .segments
    {
        t = s.t.unwrap_or(t);
        for _ in 0..=s.r.unwrap_or(0) {
            out.push((number, t, s.d));
            number += 1;
            t += s.d;
        }
    }
    out
}

/// The Representations of the MPD's last period: (rendition, SegmentTemplate).
fn representations(m: &mpd::MPD) -> Vec<(String, mpd::SegmentTemplate)> {
    let period = m.periods.last().expect("a period");
    period
        .adaptations
        .iter()
        .flat_map(|a| a.representations.iter())
        .map(|r| {
            // Representation@id is `{rendition}-p{first msn of the period}`.
            let id = r.id.clone().expect("Representation@id");
            let rendition = id.rsplit_once("-p").expect("{rendition}-p{msn}").0;
            (
                rendition.to_owned(),
                r.SegmentTemplate.clone().expect("SegmentTemplate"),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn mpd_lists_exactly_the_segments_the_origin_serves() {
    let server = start_server("[streams]\nreconnect_grace = \"1s\"\n").await;
    let clip = fixture("bbb-720p-2s-gop.mp4");
    let mut publisher = publish_loop(
        Path::new(FFMPEG),
        &clip,
        &format!("rtmp://{}/live/dash", server.rtmp_addr),
    );
    let base = format!("http://{}/live/dash/", server.http_addr);
    let first = wait_for_200(&format!("{base}manifest.mpd"), Duration::from_secs(15))
        .await
        .expect("MPD");
    assert_eq!(first.header("cache-control"), "public, max-age=1");
    tokio::time::sleep(Duration::from_secs(8)).await;

    let (m, text) = fetch_mpd(&format!("{base}manifest.mpd")).await;
    eprintln!("{text}");
    assert_eq!(m.mpdtype.as_deref(), Some("dynamic"));
    assert!(m.minimumUpdatePeriod.is_some() && m.timeShiftBufferDepth.is_some());
    assert!(m.suggestedPresentationDelay.is_some());
    let ast = m.availabilityStartTime.expect("availabilityStartTime");
    let publish = m.publishTime.expect("publishTime");
    let now_ms = estuary::hub::unix_ms();
    assert!(publish.timestamp_millis() <= now_ms && publish > ast);
    assert!(!m.ServiceDescription.is_empty());

    // The UTCTiming clock is served next to the MPD and agrees with ours.
    let timing = &m.UTCTiming[0];
    assert_eq!(timing.schemeIdUri, "urn:mpeg:dash:utc:http-xsdate:2014");
    let clock = get(&format!("{base}{}", timing.value.as_deref().unwrap())).await;
    assert_eq!(clock.status, StatusCode::OK);
    assert_eq!(clock.header("cache-control"), "no-store");
    let served = chrono::DateTime::parse_from_rfc3339(clock.text().trim()).expect("xs:dateTime");
    assert!((served.timestamp_millis() - estuary::hub::unix_ms()).abs() < 1000);

    let reps = representations(&m);
    assert_eq!(
        reps.iter().map(|r| r.0.as_str()).collect::<Vec<_>>(),
        ["source", "audio"]
    );
    let mut checked = 0;
    for (id, st) in &reps {
        let init_url = format!("{base}{}", st.initialization.as_deref().unwrap());
        let init = get(&init_url).await;
        assert_eq!(init.status, StatusCode::OK, "{init_url}");
        assert_eq!(st.availabilityTimeComplete, Some(false));
        assert!(st.availabilityTimeOffset.unwrap() > 0.0);
        let segments = listed(st);
        assert!(segments.len() >= 4, "{id}: {segments:?}");
        for (k, (number, t, d)) in segments.iter().enumerate() {
            let url = format!(
                "{base}{}",
                st.media
                    .as_deref()
                    .unwrap()
                    .replace("$Number$", &number.to_string())
            );
            let seg = get(&url).await;
            assert_eq!(seg.status, StatusCode::OK, "{url}");
            // Cached until it has left the window: 12 + 2 segments of 2 s.
            assert_eq!(seg.header("cache-control"), "public, max-age=28, immutable");
            assert!(!seg.header("expires").is_empty(), "{url}: Expires");
            let ept = earliest_presentation_time(&seg.body);
            if k + 1 == segments.len() {
                // The last one may be in progress: listed with the usual duration (a prediction of
                // its end, corrected by the next MPD); its start is known.
                let ts = st.timescale.unwrap() as i64;
                assert!(
                    (ept - *t as i64).abs() <= ts / 20,
                    "{id} {number}: announced at {t}, starts at {ept}"
                );
            } else {
                assert_eq!(
                    ept, *t as i64,
                    "{id} {number}: S@t is the segment's tfdt-derived EPT"
                );
            }
            if let Some((_, next_t, _)) = segments.get(k + 1) {
                assert_eq!(t + d, *next_t, "{id} {number}: timeline is contiguous");
            }
            checked += 1;
        }
    }
    eprintln!("{checked} listed segments fetched and checked");

    // FFmpeg reads the MPD and decodes both tracks.
    let probe = probe_first(
        &format!("{base}manifest.mpd"),
        Some("v:0"),
        "stream=codec_name,width,height",
    )
    .await;
    assert_eq!(probe, "h264,1280,720");
    let out = ffmpeg_decode(&format!("{base}manifest.mpd"), Some(4)).await;
    assert!(
        out.status.success(),
        "ffmpeg -i manifest.mpd: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    // The publisher goes away: once the grace period is over the MPD still parses, with a duration, no
    // update period and every listed segment complete.
    drop(publisher.0.kill());
    let deadline = Instant::now() + Duration::from_secs(10);
    let ended = loop {
        let (m, text) = fetch_mpd(&format!("{base}manifest.mpd")).await;
        if m.mediaPresentationDuration.is_some() {
            break (m, text);
        }
        assert!(Instant::now() < deadline, "MPD never ended:\n{text}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(ended.0.minimumUpdatePeriod.is_none(), "{}", ended.1);
    for (id, st) in representations(&ended.0) {
        assert_eq!(st.availabilityTimeComplete, None, "{id}");
        let (number, _, _) = *listed(&st).last().unwrap();
        let url = format!("{base}{id}/{number}.m4s");
        assert_eq!(get(&url).await.status, StatusCode::OK, "{url}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn segment_in_progress_arrives_chunk_by_chunk() {
    use hyper_util::{client::legacy::Client, rt::TokioExecutor};
    let server = start_server("").await;
    let clip = fixture("bbb-720p-2s-gop.mp4");
    let _publisher = publish_loop(
        Path::new(FFMPEG),
        &clip,
        &format!("rtmp://{}/live/chunked", server.rtmp_addr),
    );
    let base = format!("http://{}/live/chunked/", server.http_addr);
    wait_for_200(&format!("{base}manifest.mpd"), Duration::from_secs(15))
        .await
        .expect("MPD");
    tokio::time::sleep(Duration::from_secs(3)).await;

    let client: Client<_, Empty<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let mut ttfb_ms = Vec::new();
    let mut complete_ms = Vec::new();
    // The segment in progress (the last one listed), answered with its chunks so far and then each
    // new one; then the next ones, each requested the moment the previous one completes, before
    // it exists (as a player with availabilityTimeOffset may): answered from its first chunk on.
    let (m, _) = fetch_mpd(&format!("{base}manifest.mpd")).await;
    let (_, st) = &representations(&m)[0];
    let (in_progress, _, _) = *listed(st).last().unwrap();
    for number in in_progress + 1..in_progress + 4 {
        let url = format!("{base}source/{number}.m4s");
        let start = Instant::now();
        let resp = client
            .request(
                hyper::Request::get(url.as_str())
                    .body(Empty::new())
                    .unwrap(),
            )
            .await
            .expect("request");
        assert_eq!(resp.status(), StatusCode::OK);
        assert!(resp.headers().get("content-length").is_none());
        assert_eq!(
            resp.headers()
                .get("transfer-encoding")
                .and_then(|v| v.to_str().ok()),
            Some("chunked")
        );
        let mut body = resp.into_body();
        let mut first = None;
        let mut arrivals = 0;
        let mut bytes = Vec::new();
        while let Some(frame) = body.frame().await {
            let frame = frame.expect("body frame");
            if let Some(data) = frame.data_ref() {
                first.get_or_insert(start.elapsed());
                arrivals += 1;
                bytes.extend_from_slice(data);
            }
        }
        let done = start.elapsed();
        let first = first.expect("some bytes");
        // Byte-identical to the complete segment served afterwards.
        let again = get(&url).await;
        assert_eq!(again.body.as_ref(), bytes.as_slice(), "{url}");
        assert_eq!(again.header("content-length"), bytes.len().to_string());
        let parts = chunks(&bytes).len();
        eprintln!(
            "segment {number}: first byte after {first:?}, complete after {done:?}, {parts} chunks \
             in {arrivals} body frames"
        );
        assert!(parts >= 3, "{parts} chunks");
        assert!(
            done >= first + Duration::from_millis(900),
            "the first chunk came well before the segment was complete: {first:?} vs {done:?}"
        );
        ttfb_ms.push(first.as_millis());
        complete_ms.push(done.as_millis());
    }
    eprintln!("time to first byte (ms): {ttfb_ms:?}; to the last byte: {complete_ms:?}");
}

/// Print a player report's headline numbers (they go into the issue notes).
fn summary(r: &serde_json::Value) -> String {
    let keys = [
        "player",
        "ok",
        "played_seconds",
        "stalls",
        "stall_seconds",
        "latency_avg",
        "latency_min",
        "latency_max",
        "target_latency",
        "playback_rate_min",
        "playback_rate_max",
        "levels_played",
        "switch_requests",
        "http_errors",
        "video_freezes",
        "errors",
    ];
    keys.iter()
        .map(|k| format!("{k}={}", r[*k]))
        .collect::<Vec<_>>()
        .join(" ")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ladder_plays_in_dash_js_low_latency_and_shaka_without_a_stall() {
    let server = start_server("[transcode]\nenabled = true\nencoder = \"auto\"\n").await;
    let clip = fixture("bbb-720p-2s-gop.mp4");
    let _publisher = publish_loop(
        Path::new(FFMPEG),
        &clip,
        &format!("rtmp://{}/live/dashladder", server.rtmp_addr),
    );
    let url = format!("http://{}/live/dashladder/manifest.mpd", server.http_addr);
    wait_for_200(&url, Duration::from_secs(15))
        .await
        .expect("MPD");
    tokio::time::sleep(Duration::from_secs(4)).await;
    let (m, _) = fetch_mpd(&url).await;
    let heights: Vec<u64> = m.periods[0].adaptations[0]
        .representations
        .iter()
        .filter_map(|r| r.height)
        .collect();
    assert_eq!(heights, [720, 480, 360]);

    // dash.js in low-latency mode (2 s segments, 0.5 s chunks, target 2 s from the ServiceDescription),
    // its own ABR.
    let u = url.clone();
    let dashjs = blocking(move || play_dash("dashjs", &u, 18, &["--low-latency"])).await;
    eprintln!("dash.js: {}", summary(&dashjs));
    assert_eq!(dashjs["ok"], true, "{dashjs}");
    assert_eq!(dashjs["stalls"], 0, "{dashjs}");
    assert_eq!(dashjs["http_errors"], 0, "{dashjs}");
    assert!(
        dashjs["played_seconds"].as_f64().unwrap() >= 16.0,
        "{dashjs}"
    );
    assert_eq!(dashjs["target_latency"], 2.0, "{dashjs}");
    let latency = dashjs["latency_avg"].as_f64().expect("latency");
    assert!(
        (0.5..3.0).contains(&latency),
        "dash.js live latency {latency}: {dashjs}"
    );

    // Shaka Player in low-latency mode, forced through every rendition.
    let u = url.clone();
    let shaka =
        blocking(move || play_dash("shaka", &u, 18, &["--low-latency", "--switch-every", "5"]))
            .await;
    eprintln!("Shaka: {}", summary(&shaka));
    assert_eq!(shaka["ok"], true, "{shaka}");
    assert_eq!(shaka["stalls"], 0, "{shaka}");
    assert_eq!(shaka["http_errors"], 0, "{shaka}");
    assert!(shaka["played_seconds"].as_f64().unwrap() >= 15.0, "{shaka}");
    assert!(shaka["latency_avg"].as_f64().is_some(), "{shaka}");
    let played: Vec<u64> = shaka["levels_played"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| l["seconds"].as_f64().unwrap_or(0.0) > 1.0)
        .filter_map(|l| l["height"].as_u64())
        .collect();
    assert_eq!(played.len(), 3, "every rendition played: {shaka}");
}

/// dash.js and Shaka continue across a re-publish (a new Period), on an encrypted stream: both players
/// continue into the new Period (same key, new init segment) through EME. (The clear stream takes the
/// same path without EME; it ran as a second 72 s test, the same scenario, and went for CI time.)
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn encrypted_players_recover_across_a_re_publish_period() {
    players_recover_across_a_re_publish(true).await;
}

async fn players_recover_across_a_re_publish(encrypted: bool) {
    let server = start_server(if encrypted {
        "[encryption]\nenabled = true\n"
    } else {
        ""
    })
    .await;
    let clip = fixture("bbb-720p-2s-gop.mp4");
    let rtmp = format!("rtmp://{}/live/republish", server.rtmp_addr);
    // Content keys and the license need a token, also with open playback.
    let url = format!("{}manifest.mpd", play_base(&server, "live/republish"));
    let mut publisher = publish_loop(Path::new(FFMPEG), &clip, &rtmp);
    wait_for_200(&url, Duration::from_secs(15))
        .await
        .expect("MPD");
    tokio::time::sleep(Duration::from_secs(3)).await;
    // EME (ClearKey) needs the page on http://127.0.0.1, and the license URL resolves against the
    // page: through the harness's proxy the page sits in the stream's directory.
    let extra: &'static [&'static str] = if encrypted {
        &["--low-latency", "--proxy"]
    } else {
        &["--low-latency"]
    };
    for player in ["dashjs", "shaka"] {
        let u = url.clone();
        let run = tokio::task::spawn_blocking(move || play_dash(player, &u, 22, extra));
        // The publisher drops 8 s into playback and is back 2 s later (within the grace period).
        tokio::time::sleep(Duration::from_secs(8)).await;
        drop(publisher.0.kill());
        let _ = publisher.0.wait();
        tokio::time::sleep(Duration::from_secs(2)).await;
        publisher = publish_loop(Path::new(FFMPEG), &clip, &rtmp);
        let report = run.await.expect("player");
        eprintln!(
            "{player} across a re-publish (encrypted: {encrypted}): {}",
            summary(&report)
        );
        // The outage itself empties the buffer (no media for 2 s), then the player continues in the
        // new Period and returns to low latency. The MPD lists only segments that exist, so no
        // request goes to a segment that a Period never produces.
        assert!(
            report["fatal_errors"].as_array().unwrap().is_empty(),
            "{report}"
        );
        assert!(report["stalls"].as_u64().unwrap() <= 2, "{report}");
        assert!(report["stall_seconds"].as_f64().unwrap() < 6.0, "{report}");
        assert!(
            report["played_seconds"].as_f64().unwrap() >= 15.0,
            "{report}"
        );
        assert!(report["latency_last"].as_f64().unwrap() < 4.0, "{report}");
        assert!(report["http_errors"].as_u64().unwrap() <= 2, "{report}");
    }
    let (m, text) = fetch_mpd(&url).await;
    assert!(m.periods.len() >= 2, "a Period per publish:\n{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_abandoned_segment_response_is_cut_off_not_completed() {
    use hyper_util::{client::legacy::Client, rt::TokioExecutor};
    // A long grace period: the publisher's segment stays open, and no chunk comes.
    let server = start_server("[streams]\nreconnect_grace = \"30s\"\n").await;
    let clip = fixture("bbb-720p-2s-gop.mp4");
    let mut publisher = publish_loop(
        Path::new(FFMPEG),
        &clip,
        &format!("rtmp://{}/live/abandoned", server.rtmp_addr),
    );
    let base = format!("http://{}/live/abandoned/", server.http_addr);
    wait_for_200(&format!("{base}manifest.mpd"), Duration::from_secs(15))
        .await
        .expect("MPD");
    // Past the first segment, so that a segment is in progress; ask for the next one.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (m, _) = fetch_mpd(&format!("{base}manifest.mpd")).await;
    let (_, st) = &representations(&m)[0];
    let (in_progress, _, _) = *listed(st).last().unwrap();
    let url = format!("{base}source/{}.m4s", in_progress + 1);
    let client: Client<_, Empty<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let resp = client
        .request(
            hyper::Request::get(url.as_str())
                .body(Empty::new())
                .unwrap(),
        )
        .await
        .expect("request");
    assert_eq!(resp.status(), StatusCode::OK);
    let mut body = resp.into_body();
    let first = body.frame().await.expect("a first chunk").expect("data");
    assert!(first.data_ref().is_some_and(|d| !d.is_empty()));
    // The publisher stalls without disconnecting (a frozen encoder, a dead network path): its
    // connection stays open, so its segment stays open and no chunk comes.
    let pid = publisher.0.id().to_string();
    let stopped = std::process::Command::new("kill")
        .args(["-STOP", &pid])
        .status()
        .unwrap();
    assert!(stopped.success());
    let start = Instant::now();
    let ending = loop {
        match tokio::time::timeout(Duration::from_secs(15), body.frame()).await {
            Ok(Some(Ok(_))) => continue,
            Ok(Some(Err(e))) => break Ok(e),
            Ok(None) => break Err("the response ended as if the segment were complete"),
            Err(_) => break Err("no end within 15 s"),
        }
    };
    let _ = std::process::Command::new("kill")
        .args(["-CONT", &pid])
        .status();
    drop(publisher.0.kill());
    let error = ending.unwrap();
    eprintln!("cut off after {:?}: {error}", start.elapsed());
    // 3× the target duration without a chunk (2 s segments), plus what was already buffered.
    assert!(
        start.elapsed() < Duration::from_secs(9),
        "{:?}",
        start.elapsed()
    );
}
