//! Timed metadata in sync with the picture: events posted to `POST /api/streams/live/{name}/metadata`
//! every 2 s for 60 s while FFmpeg publishes over RTMP (the publisher drops and comes back half-way,
//! one event posted while it is away), played at once by hls.js (LL-HLS), dash.js and Shaka in headless
//! Chromium. For each player and event: raised once, never lost; the media time at which it was raised
//! against the cue's start, which must fall on a frame shown; how long before the post the stamped
//! frame was captured (read from the wall clock the publisher draws into each frame). hls.js's own
//! playlist parser reads the EXT-X-DATERANGE tags. On a transcoded stream beside it, every video
//! rendition carries each event once, in the part holding its frame (`emsg` read with `mp4-atom`),
//! the media playlists list it (parsed with `m3u8-rs`) and the MPD declares the ID3 scheme
//! (`dash-mpd-core`). Refusals: 401, 404, 400, 409, 413, 429; the API and the metrics count.

use std::time::{Duration, Instant};

use crate::common::*;

/// Seconds between two events.
const EVERY_S: u64 = 2;

/// How many events: `ESTUARY_SYNC_EVENTS`, default 10 (20 s; the closing measurement ran 30, 60 s).
fn event_count() -> u64 {
    std::env::var("ESTUARY_SYNC_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10)
        .max(6)
}

/// Frame duration of the publisher (30 frames/s), ms.
const FRAME_MS: f64 = 1000.0 / 30.0;

fn percentile(xs: &mut [f64], p: f64) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[((xs.len() - 1) as f64 * p).round() as usize]
}

/// The `emsg` boxes and sample presentation times of one part (or segment: its chunks in order).
fn read_chunks(mut buf: &[u8]) -> Vec<(mp4_atom::Emsg, Vec<i64>)> {
    use mp4_atom::{Decode, Emsg, Moof};
    let mut out = Vec::new();
    let mut pending = Vec::new();
    while buf.len() >= 8 {
        let size = u32::from_be_bytes(buf[..4].try_into().unwrap()) as usize;
        match &buf[4..8] {
            b"emsg" => pending.push(Emsg::decode(&mut buf).expect("emsg parses")),
            b"moof" => {
                let moof = Moof::decode(&mut buf).expect("moof parses");
                let traf = &moof.traf[0];
                let mut dts = traf.tfdt.as_ref().expect("tfdt").base_media_decode_time as i64;
                let mut pts = Vec::new();
                for e in traf.trun.iter().flat_map(|t| t.samples.iter()) {
                    pts.push(dts + e.cts.unwrap_or(0));
                    dts += i64::from(e.duration.unwrap_or(0));
                }
                out.extend(pending.drain(..).map(|e| (e, pts.clone())));
            }
            _ => buf = &buf[size.min(buf.len())..],
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timed_metadata_reaches_hls_js_dash_js_and_shaka_on_its_frame_across_a_reconnect() {
    let origin = blocking(|| {
        EstuaryProcess::start(
            "[transcode]\nenabled = true\nencoder = \"software\"\npassthrough_streams = [\"live/sync\"]\n",
        )
    })
    .await;
    let rtmp = |name: &str| format!("rtmp://{}/live/{name}", origin.rtmp_addr);
    let mut sync = Some(publish_clock(&rtmp("sync"), 60));
    let _ladder = publish_clock(&rtmp("ladder"), 60);
    let base = |name: &str| {
        let stream = format!("live/{name}");
        format!(
            "http://{}/t/{}/{stream}/",
            origin.http_addr,
            test_token(&stream)
        )
    };
    for (name, rendition) in [("sync", "source"), ("ladder", "audio")] {
        assert!(
            wait_for_200(
                &format!("{}{rendition}/media.m3u8", base(name)),
                Duration::from_secs(30)
            )
            .await
            .is_some(),
            "live/{name} is served"
        );
    }
    let api = |name: &str| {
        format!(
            "http://{}/api/streams/live/{name}/metadata",
            origin.http_addr
        )
    };
    let auth = format!("Bearer {}", test_api_token());
    let post = |name: &str, body: String| {
        let (url, auth) = (api(name), auth.clone());
        async move {
            request_with(
                "POST",
                &url,
                &[
                    ("authorization", &auth),
                    ("content-type", "application/json"),
                ],
                Some(&body),
            )
            .await
        }
    };

    // The three players, until each raised "end".
    let (hls_url, dash_url) = (
        format!("{}index.m3u8", base("sync")),
        format!("{}manifest.mpd", base("sync")),
    );
    let players = tokio::spawn(blocking(move || {
        play_events(&hls_url, &dash_url, "end", 150)
    }));
    tokio::time::sleep(Duration::from_secs(8)).await;

    // An event every 2 s for 60 s, to both streams; the publisher of live/sync leaves before event
    // 15 (posted while it is away) and comes back 2 s later.
    let events_n = event_count();
    let started = Instant::now();
    let mut posted = Vec::new();
    // Events posted while live/sync has no publisher: stamped with the first frame of its return.
    let mut waited = Vec::new();
    for i in 0..events_n {
        let due = started + Duration::from_secs(i * EVERY_S);
        tokio::time::sleep_until(due.into()).await;
        let id = format!("e{i}");
        if i == events_n / 2 {
            drop(sync.take());
            waited.push(id.clone());
        }
        if i == events_n / 2 + 1 {
            sync = Some(publish_clock(&rtmp("sync"), 60));
            // FFmpeg takes a moment to connect: this one may wait too.
            waited.push(id.clone());
        }
        let body = |now: i64| {
            serde_json::json!({
                "id": id,
                "data": { "posted_ms": now, "n": i },
                "duration": "1s",
                "class": "com.example.sync",
            })
            .to_string()
        };
        let r = post("sync", body(unix_ms())).await;
        assert_eq!(r.status, 202, "{}", r.text());
        let r = post("ladder", body(unix_ms())).await;
        assert_eq!(r.status, 202, "{}", r.text());
        posted.push(id);
    }

    // While the players catch up: the ladder's renditions and playlists, read by independent parsers.
    let ladder_base = base("ladder");
    let multivariant = get(&format!("{ladder_base}index.m3u8")).await;
    let m3u8_rs::Playlist::MasterPlaylist(master) =
        m3u8_rs::parse_playlist_res(&multivariant.body).unwrap()
    else {
        panic!("multivariant")
    };
    let video: Vec<String> = master
        .variants
        .iter()
        .map(|v| v.uri.trim_end_matches("/media.m3u8").to_owned())
        .collect();
    assert!(video.len() >= 2, "a ladder: {video:?}");
    let mut times_by_rendition = Vec::new();
    for name in &video {
        let url = format!("{ladder_base}{name}/media.m3u8");
        let text = get(&url).await.text();
        let m3u8_rs::Playlist::MediaPlaylist(media) =
            m3u8_rs::parse_playlist_res(text.as_bytes()).expect("media playlist parses")
        else {
            panic!("media playlist")
        };
        let listed = text.matches("#EXT-X-DATERANGE:").count();
        assert!(listed >= 8, "{name}: {listed} DATERANGE tags\n{text}");
        assert!(
            media
                .segments
                .iter()
                .filter_map(|s| s.daterange.as_ref())
                .all(|d| d.class.as_deref() == Some("com.example.sync")
                    && d.duration == Some(1.0)
                    && d.id.starts_with('e')),
            "{text}"
        );
        let mut times = std::collections::BTreeMap::new();
        for (k, s) in media.segments.iter().enumerate() {
            let msn = media.media_sequence + k as u64;
            let bytes = get(&format!("{ladder_base}{name}/{msn}.m4s")).await.body;
            for (emsg, pts) in read_chunks(&bytes) {
                let mp4_atom::EmsgTimestamp::Absolute(t) = emsg.presentation_time else {
                    panic!("emsg version 1")
                };
                assert_eq!(emsg.scheme_id_uri, "https://aomedia.org/emsg/ID3");
                assert!(
                    pts.contains(&(t as i64)),
                    "{name} segment {msn} ({}): the emsg at {t} rides in the chunk holding its frame: {pts:?}",
                    s.uri
                );
                assert!(
                    times.insert(emsg.id, t).is_none(),
                    "{name}: event {} twice",
                    emsg.id
                );
            }
        }
        assert!(times.len() >= 8, "{name}: {times:?}");
        times_by_rendition.push((name.clone(), times));
    }
    // Every rendition carries the same events at the same times (those in every window).
    let (first_name, first) = &times_by_rendition[0];
    for (name, times) in &times_by_rendition[1..] {
        for (id, t) in times {
            if let Some(t0) = first.get(id) {
                assert_eq!(t, t0, "event {id}: {name} and {first_name} agree");
            }
        }
        let common = times.keys().filter(|k| first.contains_key(k)).count();
        assert!(common >= 8, "{name} and {first_name} share {common} events");
    }
    let mpd = get(&format!("{ladder_base}manifest.mpd")).await.text();
    let mpd = dash_mpd_core::parse(&mpd).expect("MPD parses");
    let video_set = mpd
        .periods
        .last()
        .unwrap()
        .adaptations
        .iter()
        .find(|a| a.contentType.as_deref() == Some("video"))
        .expect("video AdaptationSet");
    assert_eq!(
        video_set.InbandEventStream[0].schemeIdUri,
        "https://aomedia.org/emsg/ID3"
    );

    // Refusals.
    let r = request_with("POST", &api("sync"), &[], Some(r#"{"id":"x","data":1}"#)).await;
    assert_eq!(r.status, 401);
    let r = post("nowhere", r#"{"id":"x","data":1}"#.into()).await;
    assert_eq!(r.status, 404, "{}", r.text());
    let r = post("sync", r#"{"id":"x","data":1,"colour":"red"}"#.into()).await;
    assert_eq!(r.status, 400, "{}", r.text());
    let r = post("sync", r#"{"id":"a\"quote","data":1}"#.into()).await;
    assert_eq!(r.status, 400, "{}", r.text());
    let r = post("sync", format!(r#"{{"id":"e{}","data":1}}"#, events_n - 1)).await;
    assert_eq!(r.status, 409, "an id in the window: {}", r.text());
    let big = serde_json::json!({"id": "big", "data": "x".repeat(17 * 1024)}).to_string();
    let r = post("sync", big).await;
    assert_eq!(r.status, 413, "{}", r.text());
    let mut limited = None;
    for k in 0..40 {
        let r = post("ladder", format!(r#"{{"id":"burst-{k}","data":"{k}"}}"#)).await;
        if r.status == 429 {
            limited = Some((k, r.headers.get("retry-after").cloned()));
            break;
        }
        assert_eq!(r.status, 202, "{}", r.text());
    }
    let (accepted, retry_after) = limited.expect("a burst is limited");
    assert!((19..=22).contains(&accepted), "{accepted} taken at once");
    assert!(retry_after.is_some());

    let r = post("sync", r#"{"id":"end","data":"end"}"#.into()).await;
    assert_eq!(r.status, 202);
    let report = players.await.unwrap();
    drop(sync);

    // Each player: every event raised once, on its frame.
    for player in ["hls", "dash", "shaka"] {
        let p = &report[player];
        let ids: Vec<&str> = p["events"]
            .as_array()
            .map(|a| a.iter().filter_map(|e| e["id"].as_str()).collect())
            .unwrap_or_default();
        println!(
            "{player}: errors {} stalls {} jumps {} events {ids:?}",
            p["errors"], p["stalls"], p["jumps"]
        );
    }
    assert!(report["ok"].as_bool().unwrap_or(false), "{report}");
    let mut summary = serde_json::Map::new();
    for player in ["hls", "dash", "shaka"] {
        let p = &report[player];
        assert!(p["errors"].as_array().unwrap().is_empty(), "{player}: {p}");
        let events = p["events"].as_array().unwrap();
        let ours: Vec<&serde_json::Value> = events.iter().filter(|e| e["id"] != "end").collect();
        let ids: std::collections::BTreeSet<&str> =
            ours.iter().map(|e| e["id"].as_str().unwrap()).collect();
        // The players join a few seconds before the first event: every event is ahead of them.
        let lost: Vec<&String> = posted
            .iter()
            .filter(|id| !ids.contains(id.as_str()))
            .collect();
        assert!(lost.is_empty(), "{player} lost {lost:?}: {p}");
        assert_eq!(ours.len(), posted.len(), "{player}: {p}");
        assert!(
            ours.iter().all(|e| e["raised"] == 1),
            "{player} raised an event twice: {p}"
        );
        let mut fire: Vec<f64> = ours
            .iter()
            .map(|e| e["fire_error_ms"].as_f64().unwrap())
            .collect();
        let frame_dt: Vec<f64> = ours
            .iter()
            .filter_map(|e| e["frame_dt_ms"].as_f64())
            .collect();
        assert_eq!(frame_dt.len(), ours.len(), "{player}: {p}");
        // The cue starts on a frame shown; where that frame was not shown (the compositor skipped
        // it, or playback jumped the reconnect's gap), on the frame grid of its neighbours.
        let on_frame = frame_dt.iter().filter(|d| **d <= 2.0).count();
        assert!(
            on_frame * 2 >= frame_dt.len(),
            "{player}: cues start on frames shown: {frame_dt:?}"
        );
        assert!(
            frame_dt.iter().filter(|d| **d <= 100.0).all(|d| {
                let off = d % FRAME_MS;
                off <= 2.0 || FRAME_MS - off <= 2.0
            }),
            "{player}: every cue starts on a frame: {frame_dt:?}"
        );
        assert!(
            fire.iter().all(|f| *f >= -40.0),
            "{player} raised an event before its frame: {fire:?}"
        );
        // Read where the stamped frame was shown (a jump over the reconnect's gap, or a frame the
        // compositor skipped, leaves a few out).
        let codes = ours
            .iter()
            .filter(|e| e["stamp_minus_post_ms"].is_number())
            .count();
        assert!(codes * 2 >= ours.len(), "{player}: codes read: {p}");
        for e in &ours {
            let Some(c) = e["stamp_minus_post_ms"].as_f64() else {
                continue;
            };
            let id = e["id"].as_str().unwrap();
            if waited.iter().any(|w| w == id) {
                // Stamped with the returning publisher's first frame, captured after the post.
                assert!((-1500.0..=6000.0).contains(&c), "{player} {id}: {c}");
            } else {
                assert!(
                    (-1500.0..=100.0).contains(&c),
                    "{player} {id}: the stamped frame was captured just before the post: {c}"
                );
            }
        }
        let mut capture: Vec<f64> = ours
            .iter()
            .filter(|e| !waited.iter().any(|w| e["id"] == w.as_str()))
            .filter_map(|e| e["stamp_minus_post_ms"].as_f64())
            .collect();
        summary.insert(
            player.into(),
            serde_json::json!({
                "events": ours.len(),
                "fire_error_ms": {"p50": percentile(&mut fire, 0.5), "max": percentile(&mut fire, 1.0)},
                "cues_on_a_frame_shown": on_frame,
                "stamp_minus_post_ms": {"p50": percentile(&mut capture, 0.5), "min": percentile(&mut capture, 0.0), "max": percentile(&mut capture, 1.0)},
                "stalls": p["stalls"],
                "jumps": p["jumps"],
            }),
        );
    }
    // hls.js's playlist parser: every event as a DATERANGE with its data, dated where its cue starts.
    let ranges = report["hls"]["dateranges"].as_object().unwrap();
    let cues = report["hls"]["events"].as_array().unwrap();
    let mut date_vs_cue = Vec::new();
    let mut first_dated_apart = Vec::new();
    for id in &posted {
        let d = ranges
            .get(id)
            .unwrap_or_else(|| panic!("hls.js parsed no DATERANGE {id}"));
        assert_eq!(d["class"], "com.example.sync");
        assert_eq!(d["duration"], 1.0);
        use base64::Engine as _;
        let data = base64::engine::general_purpose::STANDARD
            .decode(d["x_data"].as_str().unwrap())
            .unwrap();
        let data: serde_json::Value = serde_json::from_slice(&data).unwrap();
        let cue = cues.iter().find(|c| c["id"] == id.as_str()).unwrap();
        assert_eq!(data["posted_ms"], cue["posted_ms"]);
        let start = cue["start"].as_f64().unwrap();
        if let Some(t) = d["start_time"].as_f64() {
            date_vs_cue.push((t - start) * 1000.0);
        }
        if let Some(t) = d["first_start_time"].as_f64()
            && ((t - start) * 1000.0).abs() > 40.0
        {
            // Before the segment is loaded, hls.js dates it by EXT-X-PROGRAM-DATE-TIME, which
            // after a reconnect runs ahead of the media by the publisher's time away.
            first_dated_apart.push((id.clone(), ((t - start) * 1000.0).round()));
        }
    }
    assert!(
        date_vs_cue.iter().all(|d| d.abs() <= 40.0),
        "hls.js maps each DATERANGE's START-DATE to within a frame of its cue: {date_vs_cue:?}"
    );
    summary.insert(
        "daterange_vs_cue_ms".into(),
        serde_json::json!(date_vs_cue.iter().map(|d| d.round()).collect::<Vec<_>>()),
    );
    summary.insert(
        "daterange_first_dated_apart_ms".into(),
        serde_json::json!(first_dated_apart),
    );
    println!("timed metadata: {}", serde_json::Value::Object(summary));

    // The API and the metrics count them.
    let stream_api = format!("http://{}/api/streams/live/sync", origin.http_addr);
    let r = request_with("GET", &stream_api, &[("authorization", &auth)], None).await;
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(v["events"]["metadata"], events_n + 1, "{v}");
    let metrics = request_with(
        "GET",
        &format!("http://{}/metrics", origin.http_addr),
        &[("authorization", &auth)],
        None,
    )
    .await
    .text();
    assert!(
        metrics.contains(&format!(
            "estuary_stream_events_total{{stream=\"live/sync\",kind=\"metadata\"}} {}",
            events_n + 1
        )),
        "{metrics}"
    );
    for (reason, n) in [
        ("no_stream", 1),
        ("invalid", 2),
        ("too_large", 1),
        ("id_in_use", 1),
        ("rate_limited", 1),
    ] {
        assert!(
            metrics.contains(&format!(
                "estuary_event_refusals_total{{reason=\"{reason}\"}} {n}"
            )),
            "{reason}: {metrics}"
        );
    }
}

/// SCTE-35 from a real tool: GStreamer's mpegtsmux writes a splice_insert out (a 5 s break, 2 s
/// ahead) and, 5 s later, the splice_insert back in, into the MPEG-TS it publishes over SRT. The
/// media playlists list both as EXT-X-DATERANGE with the sections' bytes (`SCTE35-OUT`, then
/// `SCTE35-IN` under the same ID with the break's DURATION), dated where the splice time falls; the
/// MPD's Period has an SCTE-35 EventStream with both sections; the API counts them. Every rendition
/// starts a segment with a keyframe at the out and at the return.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scte35_from_an_srt_publisher_becomes_dateranges_and_a_dash_event_stream() {
    use base64::Engine as _;
    // The 360p source copied (its encoded fallback takes over where its keyframes leave the grid)
    // and one encoded rung.
    let origin = blocking(|| EstuaryProcess::start(COPY_AND_240P)).await;
    let publisher = gst_ts_publish(
        origin.srt_addr,
        "live/ads",
        &[
            "--seconds",
            "19",
            "--out-at",
            "3",
            "--lead",
            "2",
            "--break",
            "5",
        ],
    );
    let base = {
        let stream = "live/ads";
        format!(
            "http://{}/t/{}/{stream}/",
            origin.http_addr,
            test_token(stream)
        )
    };
    // Once the break is over: the out at 5 s, the in at 10 s (publisher time), listed.
    let mut text = String::new();
    let deadline = Instant::now() + Duration::from_secs(40);
    while Instant::now() < deadline {
        let r = get(&format!("{base}source/media.m3u8")).await;
        if r.status == 200 {
            text = r.text();
            if text.contains("SCTE35-IN=") {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // An ad break asked through the API, while the publisher goes on.
    let auth = format!("Bearer {}", test_api_token());
    let splice_api = format!("http://{}/api/streams/live/ads/splice", origin.http_addr);
    let headers = [
        ("authorization", auth.as_str()),
        ("content-type", "application/json"),
    ];
    let r = request_with(
        "POST",
        &splice_api,
        &headers,
        Some(r#"{"duration":"soon"}"#),
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.text());
    let r = request_with("POST", &splice_api, &headers, Some(r#"{"duration":"8s"}"#)).await;
    assert_eq!(r.status, 202, "{}", r.text());
    let posted: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    let break_id = posted["id"].as_str().unwrap().to_owned();
    let mut with_break = String::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline && !with_break.contains(&format!("ID=\"{break_id}\"")) {
        tokio::time::sleep(Duration::from_millis(300)).await;
        with_break = get(&format!("{base}source/media.m3u8")).await.text();
    }
    let break_line = with_break
        .lines()
        .find(|l| l.contains(&format!("ID=\"{break_id}\"")))
        .unwrap_or_else(|| panic!("the API's break is listed: {with_break}"))
        .to_owned();
    assert!(
        break_line.contains("PLANNED-DURATION=8.000"),
        "{break_line}"
    );
    let mpd_text = get(&format!("{base}manifest.mpd")).await.text();
    let api = format!("http://{}/api/streams/live/ads", origin.http_addr);
    let r = request_with("GET", &api, &[("authorization", &auth)], None).await;
    let report: serde_json::Value = serde_json::from_slice(&r.body).unwrap_or_default();
    let out = publisher.finish().await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let sent: Vec<serde_json::Value> = stdout
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .filter(|v: &serde_json::Value| v["marker"].is_string())
        .collect();
    assert_eq!(sent.len(), 2, "{stdout}");

    // The playlist, parsed by m3u8-rs; each DATERANGE's bytes read back as a splice_info_section.
    let m3u8_rs::Playlist::MediaPlaylist(media) =
        m3u8_rs::parse_playlist_res(text.as_bytes()).expect("media playlist parses")
    else {
        panic!("media playlist")
    };
    let ranges: Vec<&m3u8_rs::DateRange> = media
        .segments
        .iter()
        .filter_map(|s| s.daterange.as_ref())
        .collect();
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("#EXT-X-DATERANGE:"))
        .collect();
    assert_eq!(lines.len(), 2, "{text}");
    let hex_of = |line: &str, attr: &str| -> Vec<u8> {
        let at = line
            .find(&format!("{attr}=0x"))
            .unwrap_or_else(|| panic!("{attr} in {line}"));
        let hex = line[at + attr.len() + 3..].split(',').next().unwrap();
        assert!(
            hex.bytes()
                .all(|b| b.is_ascii_digit() || (b'A'..=b'F').contains(&b))
        );
        (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
            .collect()
    };
    let api_break = protocols::scte35::SpliceInfo::parse(&hex_of(&break_line, "SCTE35-OUT"))
        .expect("the API's break is a section");
    let protocols::scte35::SpliceCommand::Insert(b) = &api_break.command else {
        panic!("{api_break:?}")
    };
    assert!(b.out_of_network && b.immediate && b.auto_return);
    assert_eq!(b.duration_90khz, Some(8 * 90_000));
    assert_eq!(format!("splice-{}", b.event_id), break_id);
    let out_section = hex_of(lines[0], "SCTE35-OUT");
    let in_section = hex_of(lines[1], "SCTE35-IN");
    let out_info = protocols::scte35::SpliceInfo::parse(&out_section).expect("OUT is a section");
    let in_info = protocols::scte35::SpliceInfo::parse(&in_section).expect("IN is a section");
    let (protocols::scte35::SpliceCommand::Insert(o), protocols::scte35::SpliceCommand::Insert(i)) =
        (&out_info.command, &in_info.command)
    else {
        panic!("splice_inserts: {out_info:?} {in_info:?}")
    };
    assert!(o.out_of_network && !i.out_of_network);
    assert_eq!((o.event_id, i.event_id), (1, 1));
    assert_eq!(o.duration_90khz, Some(5 * 90_000));
    assert!(lines[0].contains("ID=\"splice-1\"") && lines[1].contains("ID=\"splice-1\""));
    assert!(lines[0].contains("PLANNED-DURATION=5.000"), "{}", lines[0]);
    // The in repeats the out's date and says how long the break lasted (5 s, to the timer's jitter).
    let dates: Vec<_> = ranges.iter().map(|d| d.start_date).collect();
    assert!(
        dates.is_empty() || dates.iter().all(|d| *d == dates[0]),
        "{text}"
    );
    let duration = lines[1]
        .split("DURATION=")
        .nth(1)
        .and_then(|v| v.split(',').next())
        .and_then(|v| v.parse::<f64>().ok())
        .expect("the in's DURATION");
    assert!((duration - 5.0).abs() < 0.3, "break lasted {duration} s");
    // Dated where the splice time falls: 2 s after the out was sent (the frame then reaching the
    // origin), give or take the path's latency.
    let start = start_date_ms(lines[0]);
    let sent_out = sent[0]["sent_unix_ms"].as_i64().unwrap();
    let late_ms = start - (sent_out + 2000);
    assert!(
        (-300..=1000).contains(&late_ms),
        "START-DATE {late_ms} ms from the splice time"
    );

    // The MPD: an SCTE-35 EventStream with both sections, 5 s apart.
    let mpd = dash_mpd_core::parse(&mpd_text).expect("MPD parses");
    let streams: Vec<&dash_mpd_core::EventStream> = mpd
        .periods
        .iter()
        .flat_map(|p| p.event_streams.iter())
        .filter(|s| s.schemeIdUri == "urn:scte:scte35:2014:xml+bin")
        .collect();
    let events: Vec<&dash_mpd_core::Event> = streams.iter().flat_map(|s| s.event.iter()).collect();
    // GStreamer's two, then the API's break.
    assert_eq!(events.len(), 3, "{mpd_text}");
    let events = &events[..2];
    let binaries: Vec<Vec<u8>> = events
        .iter()
        .map(|e| {
            let b = e.signal[0].content.as_ref().expect("Binary");
            base64::engine::general_purpose::STANDARD
                .decode(b.content.trim())
                .expect("base64")
        })
        .collect();
    assert_eq!(binaries, vec![out_section, in_section]);
    assert_eq!(streams[0].timescale, Some(90_000));
    assert_eq!(events[0].duration, Some(5 * 90_000));
    let t: Vec<u64> = events.iter().map(|e| e.presentationTime.unwrap()).collect();
    assert!(t[1].abs_diff(t[0] + 5 * 90_000) < 90_000 * 3 / 10, "{t:?}");
    assert_eq!(
        report["events"]["scte35"], 3,
        "two from GStreamer, one from the API: {report}"
    );

    // Every video rendition starts a segment with a keyframe at the out's splice time, at the return
    // the out announced (the in, sent 5 s after the out, falls on it to the timer's jitter) and at the
    // API's break: GStreamer's keyframes are 2 s apart from the start, on none of them.
    let api_start = start_date_ms(&break_line);
    let cuts = segments_starting_at(&base, &[start, start + 5_000, api_start]).await;
    println!(
        "scte35: out dated {late_ms} ms after its splice time; break {duration:.3} s; {} and {} bytes; \
         segments with a keyframe at the out, the return and the API's out in {cuts}",
        binaries[0].len(),
        binaries[1].len()
    );
}

/// An `EXT-X-DATERANGE` line's `START-DATE`, Unix ms.
pub(crate) fn start_date_ms(line: &str) -> i64 {
    line.split("START-DATE=\"")
        .nth(1)
        .and_then(|v| v.split('"').next())
        .and_then(|v| chrono::DateTime::parse_from_rfc3339(v).ok())
        .unwrap_or_else(|| panic!("START-DATE in {line}"))
        .timestamp_millis()
}

/// Checks that every video rendition of the stream at `base` has a segment starting (by its program
/// date time, within a frame) at each of `times_ms` (Unix ms) whose first picture FFmpeg decodes as
/// a keyframe; waits up to 20 s for the segments to be listed. Returns the renditions' names.
pub(crate) async fn segments_starting_at(base: &str, times_ms: &[i64]) -> String {
    let index = get(&format!("{base}index.m3u8")).await.text();
    let Ok(m3u8_rs::Playlist::MasterPlaylist(multivariant)) =
        m3u8_rs::parse_playlist_res(index.as_bytes())
    else {
        panic!("multivariant playlist: {index}")
    };
    let mut uris: Vec<String> = multivariant
        .variants
        .iter()
        .map(|v| v.uri.clone())
        .collect();
    uris.dedup();
    assert!(uris.len() >= 2, "a ladder: {index}");
    let last = *times_ms.iter().max().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut names = Vec::new();
    for uri in &uris {
        let url = format!("{base}{uri}");
        let deadline = Instant::now() + Duration::from_secs(20);
        let (playlist, starts) = loop {
            let text = get(&url).await.text();
            let Ok(m3u8_rs::Playlist::MediaPlaylist(p)) =
                m3u8_rs::parse_playlist_res(text.as_bytes())
            else {
                panic!("media playlist {uri}: {text}")
            };
            // Each segment's start: the latest program date time plus the durations since.
            let mut at: Option<f64> = None;
            let starts: Vec<Option<i64>> = p
                .segments
                .iter()
                .map(|s| {
                    if let Some(pdt) = s.program_date_time {
                        at = Some(pdt.timestamp_millis() as f64);
                    }
                    let start = at.map(|a| a.round() as i64);
                    at = at.map(|a| a + f64::from(s.duration) * 1000.0);
                    start
                })
                .collect();
            if starts.iter().flatten().any(|s| *s > last + 100) || Instant::now() > deadline {
                break (p, starts);
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        };
        let map = playlist
            .segments
            .iter()
            .find_map(|s| s.map.as_ref())
            .unwrap_or_else(|| panic!("{uri}: an EXT-X-MAP"));
        let rendition_base = format!("{base}{}", &uri[..uri.rfind('/').map_or(0, |i| i + 1)]);
        let init = get(&format!("{rendition_base}{}", map.uri)).await.body;
        for &t in times_ms {
            let found = playlist
                .segments
                .iter()
                .zip(&starts)
                .find(|(_, s)| s.is_some_and(|s| (s - t).abs() <= 40));
            let Some((segment, start)) = found else {
                panic!("{uri}: no segment starts at {t} (Unix ms); starts {starts:?}")
            };
            let bytes = get(&format!("{rendition_base}{}", segment.uri)).await.body;
            let path = dir.path().join("segment.mp4");
            std::fs::write(&path, [&init[..], &bytes[..]].concat()).unwrap();
            let (pict, key) = blocking(move || testkit::ffmpeg::first_frame_type(&path)).await;
            assert!(
                key && pict == "I",
                "{uri}: the segment at {start:?} starts with a {pict} picture"
            );
        }
        names.push(uri.split('/').next().unwrap_or(uri).to_owned());
    }
    names.join(", ")
}
