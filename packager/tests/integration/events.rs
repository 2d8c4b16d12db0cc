//! Timed metadata on synthetic streams: the `emsg` boxes in the parts (parsed with `mp4-atom`), the
//! EXT-X-DATERANGE tags (parsed with `m3u8-rs`) and the MPD's InbandEventStream (`dash-mpd-core`).

use crate::common::*;
use mp4_atom::{Decode, Emsg, EmsgTimestamp, Moof};
use packager::{
    StreamPackager,
    dash::{self, DashConfig},
    events::TimedMetadata,
    rendition::Part,
};

fn event(id: &str, data: &str) -> TimedMetadata {
    TimedMetadata {
        id: id.into(),
        class: Some("com.example.gift".into()),
        data: data.into(),
        duration_ms: Some(5000),
    }
}

/// The `emsg` boxes before a part's `moof`, and the presentation times of its samples.
fn read_part(part: &Part) -> (Vec<Emsg>, Vec<i64>) {
    let mut buf = &part.bytes[..];
    let mut emsgs = Vec::new();
    while buf.len() >= 8 && &buf[4..8] == b"emsg" {
        emsgs.push(Emsg::decode(&mut buf).expect("emsg parses"));
    }
    let moof = Moof::decode(&mut buf).expect("moof follows");
    let traf = &moof.traf[0];
    let mut dts = traf.tfdt.as_ref().expect("tfdt").base_media_decode_time as i64;
    let mut pts = Vec::new();
    for e in traf.trun.iter().flat_map(|t| t.samples.iter()) {
        pts.push(dts + e.cts.unwrap_or(0));
        dts += i64::from(e.duration.unwrap_or(0));
    }
    (emsgs, pts)
}

/// Every (emsg, part's sample presentation times) of rendition `name`.
fn emsgs_of(p: &StreamPackager, name: &str) -> Vec<(Emsg, Vec<i64>)> {
    p.rendition(name)
        .unwrap()
        .segments()
        .iter()
        .flat_map(|s| s.parts.iter())
        .flat_map(|part| {
            let (emsgs, pts) = read_part(part);
            emsgs.into_iter().map(move |e| (e, pts.clone()))
        })
        .collect()
}

fn absolute(e: &Emsg) -> u64 {
    match e.presentation_time {
        EmsgTimestamp::Absolute(t) => t,
        EmsgTimestamp::Relative(_) => panic!("emsg version 0"),
    }
}

#[test]
fn an_event_rides_in_the_part_holding_its_frame_and_is_listed_as_a_daterange() {
    let mut p = packager(Default::default());
    feed(&mut p, 4.0, 60, 0);
    // Stamped with the next frame to arrive: frame 120 (4 s), PTS 4000 ms + 3000 ticks of
    // composition offset.
    let stamp_90khz = 4000 * 90 + 3000;
    let seq = p.add_event(event("gift-42", "{\"gift\":\"rose\"}"), stamp_90khz);
    assert!(p.has_event_id("gift-42"));
    feed(&mut p, 4.0, 60, 4000);

    let video = emsgs_of(&p, "source");
    assert_eq!(video.len(), 1, "one emsg in the video rendition");
    let (emsg, part_pts) = &video[0];
    assert_eq!(emsg.id, seq);
    assert_eq!(emsg.scheme_id_uri, "https://aomedia.org/emsg/ID3");
    assert_eq!(emsg.timescale, 90_000);
    assert_eq!(absolute(emsg), stamp_90khz as u64);
    assert_eq!(emsg.event_duration, 5 * 90_000);
    assert!(
        part_pts.contains(&stamp_90khz),
        "the part holds the stamped frame: {part_pts:?}"
    );
    assert_eq!(
        emsg.message_data,
        packager::events::id3_tag("gift-42", "{\"gift\":\"rose\"}")
    );
    assert!(emsgs_of(&p, "audio").is_empty(), "audio rides without it");

    // The media playlists list it, dated on the program date time clock of its frame.
    for rendition in ["source", "audio"] {
        let text = packager::hls::render_media_playlist(&p, rendition, false).unwrap();
        let m3u8_rs::Playlist::MediaPlaylist(media) =
            m3u8_rs::parse_playlist_res(text.as_bytes()).unwrap()
        else {
            panic!("media playlist")
        };
        let ranges: Vec<_> = media
            .segments
            .iter()
            .filter_map(|s| s.daterange.as_ref())
            .collect();
        assert_eq!(ranges.len(), 1, "{text}");
        let d = ranges[0];
        assert_eq!(d.id, "gift-42");
        assert_eq!(d.class.as_deref(), Some("com.example.gift"));
        assert_eq!(d.duration, Some(5.0));
        // The first frame (presentation time 3000 ticks) arrived at 1_700_000_000_000 (the feed's
        // clock, the wall-clock anchor); the stamped frame is presented 4 s after it.
        let expected = chrono::DateTime::from_timestamp_millis(1_700_000_004_000).unwrap();
        assert_eq!(d.start_date.with_timezone(&chrono::Utc), expected, "{text}");
        let x = d.x_prefixed.as_ref().expect("X-DATA");
        assert_eq!(
            x.get("X-DATA").map(|v| v.as_str()),
            Some("eyJnaWZ0Ijoicm9zZSJ9")
        );
        // The segment it is listed before holds its start.
        let seg = media
            .segments
            .iter()
            .position(|s| s.daterange.is_some())
            .unwrap();
        let msn = media.media_sequence + seg as u64;
        let r = p.rendition(rendition).unwrap();
        let s = r.segment(msn).unwrap();
        let stamp = stamp_90khz * i64::from(r.timescale()) / 90_000;
        assert!(s.earliest_pts <= stamp);
        assert!(
            s.earliest_pts + s.duration_ticks() as i64 > stamp,
            "{msn} {} {}\n{text}",
            s.earliest_pts,
            s.duration_ticks()
        );
    }
    assert_eq!(
        p.event_counts().collect::<Vec<_>>(),
        vec![(packager::events::EventKind::Metadata, 1)]
    );

    // The MPD declares the ID3 scheme on the video AdaptationSet.
    let text = dash::render_mpd(&p, &DashConfig::default(), 1_700_000_100_000).unwrap();
    let mpd = dash_mpd_core::parse(&text).unwrap();
    let video_set = &mpd.periods[0].adaptations[0];
    assert_eq!(video_set.contentType.as_deref(), Some("video"));
    assert_eq!(
        video_set.InbandEventStream[0].schemeIdUri,
        "https://aomedia.org/emsg/ID3"
    );
    assert!(mpd.periods[0].adaptations[1].InbandEventStream.is_empty());
}

#[test]
fn every_video_rendition_of_a_ladder_carries_each_event_once_in_order() {
    let mut p = ladder_packager(1);
    let mut posted = Vec::new();
    feed_ladder(
        &mut p,
        600,
        20,
        |_| false,
        |p, i, ms, now| {
            let pts = ms * 90 + 3000;
            if i > 0 && i % 45 == 0 {
                // Two events on the same frame keep their order.
                for k in 0..2 {
                    let id = format!("e{i}-{k}");
                    posted.push((p.add_event(event(&id, "x"), pts), pts));
                }
            }
            p.push_rendition_frame("source", vframe(ms * 90, 3000, i % 60 == 0), now);
            p.push_rendition_frame("360p", vframe(ms * 90, 3000, i % 60 == 0), now);
        },
    );
    for name in ["source", "360p"] {
        let got: Vec<(u32, u64)> = emsgs_of(&p, name)
            .iter()
            .map(|(e, pts)| {
                assert!(
                    pts.contains(&(absolute(e) as i64)),
                    "{name}: in its frame's part"
                );
                (e.id, absolute(e))
            })
            .collect();
        // The window keeps the last segments only: every event in it, once, in order.
        let first = p.rendition(name).unwrap().segments()[0].earliest_pts;
        let want: Vec<(u32, u64)> = posted
            .iter()
            .filter(|(_, pts)| *pts >= first)
            .map(|(s, pts)| (*s, *pts as u64))
            .collect();
        assert!(want.len() >= 10, "{want:?}");
        assert_eq!(got, want, "{name}");
    }
    assert!(emsgs_of(&p, "audio").is_empty());
}

#[test]
fn events_before_the_first_frame_and_after_a_reconnect_find_their_frames() {
    let mut p = packager(Default::default());
    // Before any frame: stamped at the first frame's time once the timeline is known.
    p.add_event(event("early", "1"), 3000);
    feed(&mut p, 4.0, 60, 0);
    let early = emsgs_of(&p, "source");
    assert_eq!(early.len(), 1);
    assert_eq!(absolute(&early[0].0), 3000);
    let end = p
        .rendition("source")
        .unwrap()
        .timeline_end()
        .expect("timeline");

    // The publisher reconnects with a timeline starting at 0 again; the event stamped with its
    // first frame lands where the output timeline continues.
    p.discontinuity();
    p.add_event(event("after", "2"), 3000);
    feed(&mut p, 4.0, 60, 0);
    let all = emsgs_of(&p, "source");
    let after = all.iter().find(|(e, _)| e.id == 1).expect("second event");
    assert!(
        absolute(&after.0) as i64 >= end,
        "after the first publish's media"
    );
    assert!(after.1.contains(&(absolute(&after.0) as i64)));
    let text = packager::hls::render_media_playlist(&p, "source", false).unwrap();
    assert_eq!(text.matches("#EXT-X-DATERANGE:").count(), 2, "{text}");
    assert!(p.has_event_id("after"));
}

#[test]
fn a_stream_without_video_carries_events_in_its_audio() {
    let mut p = StreamPackager::new(Default::default(), 1);
    p.set_track(audio_track());
    for a in 0..400i64 {
        if a == 200 {
            p.add_event(event("radio", "on air"), a * 1024 * 90_000 / 48_000);
        }
        p.push_frame(
            aframe(a * 1024),
            1_700_000_000_000 + a * 1024 * 1000 / 48_000,
        );
    }
    let got = emsgs_of(&p, "audio");
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].0.timescale, 48_000);
    assert_eq!(absolute(&got[0].0), 200 * 1024);
}

#[test]
fn splice_markers_are_listed_paired_and_in_the_mpd_event_stream() {
    use packager::events::{SpliceDirection, SpliceMarker};
    let marker = |direction, section: &'static [u8]| SpliceMarker {
        id: "splice-9".into(),
        direction,
        section: bytes::Bytes::from_static(section),
        planned_duration_ms: Some(4000),
    };
    let mut p = packager(Default::default());
    feed(&mut p, 3.0, 60, 0);
    // An out announced for 4 s (ahead of the edge), its in 4 s later.
    p.add_splice(marker(SpliceDirection::Out, &[0xFC, 1]), 4000 * 90 + 3000);
    feed(&mut p, 3.0, 60, 3000);
    p.add_splice(marker(SpliceDirection::In, &[0xFC, 2]), 8000 * 90 + 3000);
    feed(&mut p, 3.0, 60, 6000);
    let text = packager::hls::render_media_playlist(&p, "source", false).unwrap();
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("#EXT-X-DATERANGE"))
        .collect();
    assert_eq!(
        lines,
        vec![
            "#EXT-X-DATERANGE:ID=\"splice-9\",START-DATE=\"2023-11-14T22:13:24.000Z\",PLANNED-DURATION=4.000,SCTE35-OUT=0xFC01",
            "#EXT-X-DATERANGE:ID=\"splice-9\",START-DATE=\"2023-11-14T22:13:24.000Z\",DURATION=4.000,SCTE35-IN=0xFC02",
        ],
        "{text}"
    );
    assert!(emsgs_of(&p, "source").is_empty(), "not in the segments");
    assert_eq!(
        p.event_counts().collect::<Vec<_>>(),
        vec![(packager::events::EventKind::Scte35, 2)]
    );
    let text = dash::render_mpd(&p, &DashConfig::default(), 1_700_000_100_000).unwrap();
    let mpd = dash_mpd_core::parse(&text).unwrap();
    let period = &mpd.periods[0];
    let stream = &period.event_streams[0];
    assert_eq!(stream.schemeIdUri, "urn:scte:scte35:2014:xml+bin");
    assert_eq!(stream.timescale, Some(90_000));
    // From the Period's start (the first frame's presentation time, 3000 ticks).
    let times: Vec<(Option<u64>, Option<u64>)> = stream
        .event
        .iter()
        .map(|e| (e.presentationTime, e.duration))
        .collect();
    assert_eq!(
        times,
        vec![(Some(4000 * 90), Some(4000 * 90)), (Some(8000 * 90), None)]
    );
    let binary = stream.event[0].signal[0].content.as_ref().unwrap();
    assert_eq!(binary.content, "/AE=");
}
