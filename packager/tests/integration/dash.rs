//! The DASH MPD on synthetic streams, parsed with `dash-mpd-core` and checked against the CMAF objects
//! themselves (parsed with `mp4-atom`).

use crate::common::*;
use dash_mpd_core as mpd;
use mp4_atom::{Decode, Moof};
use packager::{
    PackagerConfig, StreamPackager,
    dash::{self, DashConfig},
    rendition::Segment,
};

const NOW_MS: i64 = 1_700_000_100_000;

fn render(p: &StreamPackager) -> mpd::MPD {
    let text = dash::render_mpd(p, &DashConfig::default(), NOW_MS).expect("ready");
    assert!(text.starts_with("<?xml"), "{text}");
    let m = mpd::parse(&text).unwrap_or_else(|e| panic!("MPD parses: {e}\n{text}"));
    let problems = mpd::check_conformity(&m);
    assert!(problems.is_empty(), "{problems:?}\n{text}");
    m
}

/// The earliest presentation time of a segment computed from its bytes: for every chunk, `tfdt` plus
/// the running sample durations plus each sample's composition offset; the minimum over all samples.
fn earliest_presentation_time(s: &Segment) -> i64 {
    let mut best = i64::MAX;
    for part in &s.parts {
        let mut buf = &part.bytes[..];
        let moof = Moof::decode(&mut buf).expect("moof parses");
        let traf = &moof.traf[0];
        let mut dts = traf.tfdt.as_ref().expect("tfdt").base_media_decode_time as i64;
        for e in traf.trun.iter().flat_map(|t| t.samples.iter()) {
            best = best.min(dts + e.cts.unwrap_or(0));
            dts += i64::from(e.duration.unwrap_or(0));
        }
    }
    best
}

/// Expand a SegmentTimeline into (number, t, d) triples.
fn expand(st: &mpd::SegmentTemplate) -> Vec<(u64, u64, u64)> {
    let mut out = Vec::new();
    let mut number = st.startNumber.unwrap_or(1);
    let mut t = 0;
    for s in &st
        .SegmentTimeline
        .as_ref()
        .expect("SegmentTimeline")
        .segments
    {
        if let Some(st) = s.t {
            t = st;
        }
        for _ in 0..=s.r.unwrap_or(0) {
            out.push((number, t, s.d));
            number += 1;
            t += s.d;
        }
    }
    out
}

#[test]
fn mpd_timeline_matches_the_segments_served() {
    let mut p = packager(PackagerConfig::default());
    // 13.1 s: 6 complete 2 s segments and one in progress with a few parts.
    feed(&mut p, 13.1, 60, 0);
    let m = render(&p);
    assert_eq!(m.mpdtype.as_deref(), Some("dynamic"));
    let ast = m.availabilityStartTime.expect("availabilityStartTime");
    let first_video = &p.rendition("source").unwrap().segments()[0];
    assert_eq!(ast.timestamp_millis(), first_video.program_date_time_ms);
    assert_eq!(m.publishTime.unwrap().timestamp_millis(), NOW_MS);
    assert_eq!(
        m.minimumUpdatePeriod,
        Some(std::time::Duration::from_millis(500))
    );
    let longest = m.maxSegmentDuration.unwrap();
    assert!(
        longest >= std::time::Duration::from_secs(2)
            && longest < std::time::Duration::from_millis(2030),
        "{longest:?}"
    );
    assert_eq!(
        m.timeShiftBufferDepth,
        Some(std::time::Duration::from_secs(24))
    );
    assert_eq!(m.UTCTiming[0].schemeIdUri, dash::UTC_TIMING_SCHEME);
    assert_eq!(m.UTCTiming[0].value.as_deref(), Some("time"));
    let sd = &m.ServiceDescription[0];
    assert_eq!(sd.Latency[0].target, Some(2000.0));
    assert_eq!(sd.PlaybackRate[0].min, Some(0.96));
    assert_eq!(m.periods.len(), 1);
    let period = &m.periods[0];
    assert_eq!(period.start, Some(std::time::Duration::ZERO));
    assert_eq!(period.adaptations.len(), 2);

    for a in &period.adaptations {
        assert_eq!(a.segmentAlignment, Some(true));
        for rep in &a.representations {
            // Representation@id = `{rendition}-p{first msn of the period}`, unique across Periods.
            let (name, period_msn) = rep.id.as_deref().unwrap().rsplit_once("-p").unwrap();
            assert_eq!(Some(format!("p{period_msn}")), period.id);
            let r = p.rendition(name).unwrap();
            assert!(rep.bandwidth.unwrap() > 1);
            assert_eq!(
                rep.codecs.as_deref(),
                Some(r.track().config.rfc6381().as_str())
            );
            let st = rep.SegmentTemplate.as_ref().unwrap();
            assert_eq!(st.timescale, Some(u64::from(r.timescale())));
            assert_eq!(
                st.media.as_deref(),
                Some(format!("{name}/$Number$.m4s").as_str())
            );
            assert_eq!(st.availabilityTimeOffset, Some(1.5));
            assert_eq!(st.availabilityTimeComplete, Some(false));
            let pto = st.presentationTimeOffset.unwrap() as i64;
            let listed = expand(st);
            // Every segment of the window is listed, then the one in progress, and nothing that
            // does not exist yet.
            let window: Vec<&Segment> = r
                .segments()
                .iter()
                .filter(|s| !s.parts.is_empty())
                .collect();
            assert_eq!(listed.len(), window.len(), "{name}");
            assert!(
                !window.last().unwrap().is_complete,
                "{name}: in progress listed"
            );
            for (k, ((number, t, d), seg)) in listed.iter().zip(&window).enumerate() {
                assert_eq!(*number, seg.msn, "{name}: $Number$ is the msn");
                assert_eq!(
                    *t as i64,
                    earliest_presentation_time(seg),
                    "{name}: S@t of {number} is its earliest presentation time"
                );
                if let Some(next) = listed.get(k + 1) {
                    assert_eq!(t + d, next.1, "{name}: timeline contiguous at {number}");
                }
                if name == "source" {
                    // The period's clock maps the segment start to its program date time.
                    let wall = ast.timestamp_millis() as f64
                        + (*t as i64 - pto) as f64 * 1000.0 / f64::from(r.timescale());
                    assert!(
                        (wall - seg.program_date_time_ms as f64).abs() <= 1.0,
                        "{name} {number}: {wall} vs {}",
                        seg.program_date_time_ms
                    );
                }
            }
            assert!(rep.ProducerReferenceTime.is_empty());
        }
    }
    // Video and audio describe the same presentation interval to within one audio frame.
    let ends: Vec<f64> = period
        .adaptations
        .iter()
        .map(|a| {
            let st = a.representations[0].SegmentTemplate.as_ref().unwrap();
            let ts = st.timescale.unwrap() as f64;
            let l = expand(st);
            // The last complete segment's start (after it: the one in progress, the announced one).
            let (_, t, _) = l[l.len() - 3];
            (t as f64 - st.presentationTimeOffset.unwrap() as f64) / ts
        })
        .collect();
    assert!((ends[0] - ends[1]).abs() < 0.03, "{ends:?}");
}

#[test]
fn reconnect_starts_a_new_period_and_the_clock_restarts() {
    let mut p = packager(PackagerConfig::default());
    feed(&mut p, 6.0, 60, 0);
    p.discontinuity();
    // The new publisher's clock starts again at 0, 30 s later in wall-clock time.
    feed(&mut p, 6.0, 60, 30_000);
    let m = render(&p);
    assert_eq!(m.periods.len(), 2, "one period per run of segments");
    let v = p.rendition("source").unwrap();
    let second = v.segments().iter().find(|s| s.is_discontinuity).unwrap();
    let ids: Vec<_> = m.periods.iter().map(|p| p.id.clone().unwrap()).collect();
    assert_eq!(ids[1], format!("p{}", second.msn));
    let start = m.periods[1].start.unwrap();
    let ast = m.availabilityStartTime.unwrap().timestamp_millis();
    assert_eq!(start.as_millis() as i64, second.program_date_time_ms - ast);
    assert!(start.as_secs_f64() >= 30.0, "{start:?}");
    for (i, period) in m.periods.iter().enumerate() {
        for a in &period.adaptations {
            for rep in &a.representations {
                let st = rep.SegmentTemplate.as_ref().unwrap();
                let numbers: Vec<u64> = expand(st).iter().map(|x| x.0).collect();
                if i == 0 {
                    assert!(numbers.iter().all(|n| *n < second.msn), "{numbers:?}");
                } else {
                    assert_eq!(numbers[0], second.msn, "{:?}", rep.id);
                }
            }
        }
    }
    // Period ids and starts are stable across updates.
    feed(&mut p, 2.0, 60, 36_000);
    let again = render(&p);
    assert_eq!(again.periods[1].id, m.periods[1].id);
    assert_eq!(again.periods[1].start, m.periods[1].start);
}

#[test]
fn a_new_track_configuration_starts_a_period_with_its_init_segment() {
    let mut p = packager(PackagerConfig::default());
    feed(&mut p, 6.0, 60, 0);
    let old_init = p.rendition("source").unwrap().current_init_id();
    // The encoder switches to 640x360 (a new sequence header) and keeps its clock.
    p.set_track(video_track_360p());
    feed(&mut p, 6.0, 60, 6000);
    let new_init = p.rendition("source").unwrap().current_init_id();
    let m = render(&p);
    assert_eq!(m.periods.len(), 2);
    let video = |i: usize| -> &mpd::Representation {
        &m.periods[i]
            .adaptations
            .iter()
            .find(|a| a.contentType.as_deref() == Some("video"))
            .unwrap()
            .representations[0]
    };
    let init = |i: usize| {
        video(i)
            .SegmentTemplate
            .as_ref()
            .unwrap()
            .initialization
            .clone()
            .unwrap()
    };
    assert_eq!(init(0), format!("source/init-{old_init}.mp4"));
    assert_eq!(init(1), format!("source/init-{new_init}.mp4"));
    assert_eq!((video(0).width, video(1).width), (Some(1280), Some(640)));
    // The audio of the second period exists too (same presentation, same period boundary).
    assert!(
        m.periods[1]
            .adaptations
            .iter()
            .any(|a| a.contentType.as_deref() == Some("audio"))
    );
}

#[test]
fn an_ended_stream_has_a_duration_and_no_segment_in_progress() {
    let mut p = packager(PackagerConfig::default());
    feed(&mut p, 7.0, 60, 0);
    p.end();
    let m = render(&p);
    assert_eq!(m.minimumUpdatePeriod, None);
    let duration = m.mediaPresentationDuration.expect("duration once ended");
    let v = p.rendition("source").unwrap();
    let st = m.periods[0].adaptations[0].representations[0]
        .SegmentTemplate
        .as_ref()
        .unwrap();
    assert_eq!(st.availabilityTimeComplete, None);
    assert_eq!(expand(st).len(), v.segments().len());
    assert!(v.segments().iter().all(|s| s.is_complete));
    assert!((6.9..7.2).contains(&duration.as_secs_f64()), "{duration:?}");
}

#[test]
fn not_ready_means_no_mpd() {
    let mut p = packager(PackagerConfig::default());
    assert!(dash::render_mpd(&p, &DashConfig::default(), NOW_MS).is_none());
    feed(&mut p, 1.0, 60, 0);
    assert!(dash::render_mpd(&p, &DashConfig::default(), NOW_MS).is_none());
}

#[test]
fn bandwidth_is_fixed_for_the_period_and_nominal_rates_win() {
    let mut p = packager(PackagerConfig::default());
    p.set_rendition_bandwidth("audio", Some(141_000), 0);
    feed(&mut p, 5.0, 60, 0);
    let bandwidths = |m: &mpd::MPD| -> Vec<(String, u64)> {
        m.periods[0]
            .adaptations
            .iter()
            .flat_map(|a| a.representations.iter())
            .map(|r| {
                let id = r.id.clone().unwrap();
                (
                    id.rsplit_once("-p").unwrap().0.to_owned(),
                    r.bandwidth.unwrap(),
                )
            })
            .collect()
    };
    let before = bandwidths(&render(&p));
    assert_eq!(before[1], ("audio".to_owned(), 141_000));
    // The video's first segment sets its bit rate; later segments (here the same size) never move it.
    feed(&mut p, 8.0, 60, 5000);
    assert_eq!(bandwidths(&render(&p)), before);
}

#[test]
fn a_new_period_is_published_whole() {
    let mut p = packager(PackagerConfig::default());
    feed(&mut p, 6.0, 60, 0);
    p.discontinuity();
    // The new publisher's first keyframe opens the Period, but only its audio has chunks yet: the new
    // Period waits for its video.
    p.push_frame(vframe(0, 3000, true), 1_700_000_030_000);
    for a in 0..30 {
        p.push_frame(aframe(a * 1024), 1_700_000_030_000 + a * 21);
    }
    assert_eq!(p.periods().len(), 2);
    let m = render(&p);
    assert_eq!(
        m.periods.len(),
        1,
        "the new Period is not published without its video"
    );
    feed(&mut p, 1.0, 60, 30_000);
    let m = render(&p);
    assert_eq!(m.periods.len(), 2);
    assert_eq!(
        m.periods[1].adaptations.len(),
        2,
        "video and audio from the start"
    );
}

/// Every listed segment's (S@t, S@d) in an MPD, by Representation id and $Number$.
fn listed_segments(m: &mpd::MPD) -> std::collections::BTreeMap<(String, u64), (u64, u64)> {
    let mut out = std::collections::BTreeMap::new();
    for period in &m.periods {
        for a in &period.adaptations {
            for rep in &a.representations {
                let st = rep.SegmentTemplate.as_ref().expect("SegmentTemplate");
                for (number, t, d) in expand(st) {
                    out.insert((rep.id.clone().unwrap_or_default(), number), (t, d));
                }
            }
        }
    }
    out
}

#[test]
fn an_mpd_update_keeps_the_segments_earlier_mpds_listed_with_a_fixed_keyframe_interval() {
    // ISO/IEC 23009-1 §5.4: an MPD update keeps what earlier MPDs said of a segment. With a fixed
    // keyframe interval (2 s) every listed segment, the one in progress included, keeps its S@t and
    // S@d in every later MPD: video and audio, whose segments are cut at the AAC frame nearest the
    // video's cut and so differ by one frame from segment to segment (86 or 87 at 44.1 kHz here).
    for (sample_rate, label) in [(48_000u32, "48 kHz"), (44_100, "44.1 kHz")] {
        let mut p = StreamPackager::new(PackagerConfig::default(), 1000);
        p.set_track(video_track());
        let mut config = audio_track().config;
        if let media::CodecConfig::Aac(a) = &mut config {
            a.sample_rate = sample_rate;
            // AudioSpecificConfig: AAC-LC, sampling frequency index 3 (48 kHz) or 4 (44.1 kHz), stereo.
            a.asc = if sample_rate == 48_000 {
                bytes::Bytes::from_static(&[0x11, 0x90])
            } else {
                bytes::Bytes::from_static(&[0x12, 0x10])
            };
        }
        p.set_track(media::TrackInfo::new(config));
        let sr = i64::from(sample_rate);
        let mut first_seen: std::collections::BTreeMap<(String, u64), (u64, u64)> =
            Default::default();
        let mut mpds = 0;
        let mut a = 0i64;
        for i in 0..(16 * 30) {
            let ms = (i as f64 * 1000.0 / 30.0).round() as i64;
            while a * 1024 * 1000 / sr < ms {
                p.push_frame(aframe(a * 1024), 1_700_000_000_000 + a * 1024 * 1000 / sr);
                a += 1;
            }
            p.push_frame(
                vframe(ms * 90, if i % 3 == 1 { 6000 } else { 3000 }, i % 60 == 0),
                1_700_000_000_000 + ms,
            );
            p.check_invariants().unwrap();
            let Some(text) = dash::render_mpd(&p, &DashConfig::default(), NOW_MS + ms) else {
                continue;
            };
            mpds += 1;
            keep_first_listing(&mut first_seen, &text, label);
        }
        assert!(mpds > 300, "{label}: {mpds} MPDs");
        let audio_durations: std::collections::BTreeSet<u64> = first_seen
            .iter()
            .filter(|((id, _), _)| id.starts_with("audio"))
            .map(|(_, (_, d))| *d)
            .collect();
        // The property is not trivial: audio segment durations vary.
        assert!(audio_durations.len() > 1, "{label}: {audio_durations:?}");
    }
}

/// The same on a producer grid (a transcoded ladder: a copied source, an encoded rung trailing it by
/// two frames, audio 100 ms ahead of both): no listed segment, the one in progress included, changes
/// in a later MPD.
#[test]
fn an_mpd_update_keeps_the_segments_earlier_mpds_listed_on_a_producer_grid() {
    let mut p = ladder_packager(1000);
    let mut first_seen: std::collections::BTreeMap<(String, u64), (u64, u64)> = Default::default();
    let mut mpds = 0;
    feed_ladder(
        &mut p,
        16 * 30,
        100,
        |_| false,
        |p, i, ms, now| {
            p.push_rendition_frame("source", vframe(ms * 90, 3000, i % 30 == 0), now);
            if i >= 2 {
                let j = i - 2;
                p.push_rendition_frame("360p", vframe(frame_ms(j) * 90, 3000, j % 60 == 0), now);
            }
            let Some(text) = dash::render_mpd(p, &DashConfig::default(), NOW_MS + ms) else {
                return;
            };
            mpds += 1;
            keep_first_listing(&mut first_seen, &text, "ladder");
        },
    );
    assert!(mpds > 300, "{mpds} MPDs");
}

/// Record every segment an MPD lists and check that none changed since an earlier MPD listed it.
fn keep_first_listing(
    first_seen: &mut std::collections::BTreeMap<(String, u64), (u64, u64)>,
    text: &str,
    label: &str,
) {
    let m = mpd::parse(text).unwrap_or_else(|e| panic!("MPD parses: {e}\n{text}"));
    for (key, td) in listed_segments(&m) {
        let was = *first_seen.entry(key.clone()).or_insert(td);
        assert_eq!(
            was, td,
            "{label}: {key:?} first listed as (t, d) = {was:?}, later as {td:?}"
        );
    }
}
