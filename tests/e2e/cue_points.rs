//! Ad markers from an RTMP encoder: an `onCuePoint` data message in YouTube Live's layout, sent among
//! the media of a real-time publish (testkit's RTMP publisher, the bundled clip as FLV), becomes an
//! SCTE-35 splice_insert: an `EXT-X-DATERANGE` with `SCTE35-OUT` dated at the message's timestamp plus
//! its pre-roll, an event in the MPD's SCTE-35 `EventStream`, and a segment starting with a keyframe
//! in every rendition at the out and at the planned return. A cue point sent again is carried once; a
//! second break under the same event id is listed under an id of its own.

use std::time::{Duration, Instant};

use crate::common::*;
use crate::events::{segments_starting_at, start_date_ms};

/// Two encoded rungs, no copy: the clip's keyframes (every 2 s) say nothing about where they cut.
const TWO_RUNGS: &str = "[transcode]\n[[transcode.rungs]]\nname = \"240p\"\nheight = 240\n\
     bitrate_bps = 400000\n[[transcode.rungs]]\nname = \"144p\"\nheight = 144\nbitrate_bps = 200000\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rtmp_on_cue_point_becomes_a_daterange_an_mpd_event_and_segment_boundaries() {
    let origin = blocking(|| EstuaryProcess::start(TWO_RUNGS)).await;
    let stream = "live/cues";
    let base = format!(
        "http://{}/t/{}/{stream}/",
        origin.http_addr,
        test_token(stream)
    );
    let file = bytes::Bytes::from(std::fs::read(testkit::flv::fixture_flv()).expect("fixture FLV"));
    let mut tags = testkit::flv::read_flv_tags(&file).expect("FLV tags");
    let t0 = tags
        .iter()
        .find(|t| t.is_video_frame())
        .map_or(0, |t| t.timestamp_ms);
    // At 1 s: a break 2 s later (3 s into the clip, between its keyframes), 3 s long; sent again at
    // 1.5 s (the same splice: carried once). At 6 s a second break, 1.5 s later, 2 s long, under the
    // same event id: listed under an id of its own.
    let (sent_at, pre_roll_ms, break_ms) = (t0 + 1_000, 2_000, 3_000);
    for cue in [
        testkit::rtmp::cue_point_tag(sent_at, 77, 2.0, 3.0),
        testkit::rtmp::cue_point_tag(sent_at + 500, 77, 1.5, 3.0),
        testkit::rtmp::cue_point_tag(t0 + 6_000, 77, 1.5, 2.0),
    ] {
        let at = tags.partition_point(|t| t.timestamp_ms <= cue.timestamp_ms);
        tags.insert(at, cue);
    }
    let (socket, session) = testkit::rtmp::rtmp_publish(origin.rtmp_addr, "live", "cues")
        .await
        .expect("RTMP publish");
    let until = tokio::time::Instant::now() + Duration::from_secs(12);
    let publish = tokio::spawn(async move {
        testkit::rtmp::publish_realtime(socket, session, &tags, until).await
    });

    // Listed once the second out is: one DATERANGE per break, with the section's bytes.
    let mut text = String::new();
    let deadline = Instant::now() + Duration::from_secs(25);
    while Instant::now() < deadline && !text.contains("ID=\"splice-77-2\"") {
        tokio::time::sleep(Duration::from_millis(300)).await;
        text = get(&format!("{base}240p/media.m3u8")).await.text();
    }
    let outs: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("#EXT-X-DATERANGE:") && l.contains("SCTE35-OUT="))
        .collect();
    assert_eq!(outs.len(), 2, "two breaks: {text}");
    assert!(outs[1].contains("ID=\"splice-77-2\""), "{}", outs[1]);
    assert!(outs[1].contains("PLANNED-DURATION=2.000"), "{}", outs[1]);
    let line = outs[0].to_owned();
    assert!(line.contains("ID=\"splice-77\""), "{line}");
    assert!(line.contains("PLANNED-DURATION=3.000"), "{line}");
    let hex = line
        .split("SCTE35-OUT=0x")
        .nth(1)
        .and_then(|v| v.split(',').next())
        .expect("SCTE35-OUT bytes");
    let section: Vec<u8> = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex"))
        .collect();
    let info = protocols::scte35::SpliceInfo::parse(&section).expect("a splice_info_section");
    let protocols::scte35::SpliceCommand::Insert(insert) = &info.command else {
        panic!("a splice_insert: {info:?}")
    };
    assert!(insert.out_of_network && insert.auto_return && !insert.immediate);
    assert_eq!(insert.event_id, 77);
    assert_eq!(insert.duration_90khz, Some(break_ms as u64 * 90));

    // Dated at the clip's 3 s: the first segment's date plus 5 s, less where its first picture is
    // presented (the clip's B-frames put it a few frames after its timestamp), within a frame.
    let out_ms = start_date_ms(&line);
    let Ok(m3u8_rs::Playlist::MediaPlaylist(playlist)) =
        m3u8_rs::parse_playlist_res(text.as_bytes())
    else {
        panic!("media playlist: {text}")
    };
    let first_pdt = playlist
        .segments
        .first()
        .and_then(|s| s.program_date_time)
        .expect("the first segment's date")
        .timestamp_millis();
    let offset_ms = out_ms - first_pdt;
    assert!(
        (1_000 + pre_roll_ms - 200..=1_000 + pre_roll_ms + 50).contains(&offset_ms),
        "the out is {offset_ms} ms after the first segment's date: {text}"
    );
    // The MPD's SCTE-35 EventStream has it, with the same bytes and duration.
    let mpd_text = get(&format!("{base}manifest.mpd")).await.text();
    let mpd = dash_mpd_core::parse(&mpd_text).expect("MPD parses");
    let events: Vec<&dash_mpd_core::Event> = mpd
        .periods
        .iter()
        .flat_map(|p| p.event_streams.iter())
        .filter(|s| s.schemeIdUri == "urn:scte:scte35:2014:xml+bin")
        .flat_map(|s| s.event.iter())
        .collect();
    assert_eq!(events.len(), 2, "{mpd_text}");
    assert_eq!(events[0].duration, Some(break_ms as u64 * 90));
    assert_eq!(events[1].duration, Some(2 * 90_000));

    // Both rungs start a segment with a keyframe at the out and at the planned return.
    let second_ms = start_date_ms(outs[1]);
    assert!(
        (second_ms - out_ms - 4_500).abs() <= 50,
        "the second break {} ms after the first",
        second_ms - out_ms
    );
    let cuts = segments_starting_at(&base, &[out_ms, out_ms + break_ms, second_ms]).await;
    let report = publish.await.unwrap().expect("the publish ran");
    assert!(report.messages > 0);
    println!(
        "rtmp onCuePoint: out dated {offset_ms} ms into the stream (sent at 1000 ms with a {pre_roll_ms} ms \
         pre-roll); segments with a keyframe at the out and the return in {cuts}"
    );
}
