//! Segmenter, live window and LL-HLS rendering on synthetic streams, checked with `m3u8-rs` and
//! `mp4-atom` as independent parsers.

use crate::common::*;
use bytes::Bytes;
use packager::{PackagerConfig, StreamPackager, hls};
use proptest::prelude::*;

#[test]
fn segmenter_cuts_on_keyframes_and_aligns_audio_msn() {
    let mut p = packager(PackagerConfig::default());
    feed(&mut p, 20.0, 60, 0);
    assert_eq!(p.target_duration_s(), Some(2));
    let v = p.rendition("source").unwrap();
    let a = p.rendition("audio").unwrap();
    let vs: Vec<_> = v.segments().iter().filter(|s| s.is_complete).collect();
    assert!(vs.len() >= 8, "{} segments", vs.len());
    for s in &vs {
        assert!(s.starts_with_keyframe && s.parts[0].is_independent);
        let d = s.duration_ticks() as f64 / 90_000.0;
        assert!((d - 2.0).abs() < 0.01, "segment {} lasts {d}", s.msn);
        for part in &s.parts {
            let pd = part.duration_ticks as f64 / 90_000.0;
            assert!((0.85 * 0.502..=0.502).contains(&pd), "part lasts {pd}");
        }
    }
    // Audio segments carry the same msns as video segments and start at the presentation time of the
    // video segment's keyframe (its tfdt: decode times are moved by the keyframe's 3000-tick
    // composition offset), within one AAC frame; their program date times agree to the millisecond
    // rounding.
    for s in a.segments().iter().filter(|s| s.is_complete) {
        let vseg = v.segment(s.msn).expect("same msn in video");
        let at = s.start_dts as f64 / 48_000.0;
        let vt = vseg.start_dts as f64 / 90_000.0;
        assert_eq!(
            vseg.start_dts, vseg.earliest_pts,
            "video tfdt is its first sample's PTS"
        );
        let pdt_gap_ms = s.program_date_time_ms - vseg.program_date_time_ms;
        assert!(
            (pdt_gap_ms as f64 - (at - vt) * 1000.0).abs() <= 1.0,
            "msn {}: PDT gap {pdt_gap_ms} ms vs media gap {} ms",
            s.msn,
            (at - vt) * 1000.0
        );
        assert!(
            (at - vt).abs() <= 1024.0 / 48_000.0 / 2.0 + 0.002 || s.msn == 1000,
            "audio {at} vs video {vt} at msn {}",
            s.msn
        );
    }
    assert_eq!(v.counters().forced_cuts, 0);
}

/// Audio parts end at the AAC frame nearest to each video part end (in presentation time), so the
/// last audio part of a segment is a full part that ends at the cut. (A short remainder part published
/// after the rest of its segment made hls.js 1.7 treat the segment as fully buffered and skip that
/// part, leaving a hole in the audio at every such boundary.)
#[test]
fn audio_parts_follow_the_video_part_grid() {
    let mut p = packager(PackagerConfig::default());
    feed(&mut p, 20.0, 60, 0);
    let v = p.rendition("source").unwrap();
    let a = p.rendition("audio").unwrap();
    let frame = 1024.0 / 48_000.0;
    let audio_target = p.advertised_part_target(a).as_secs_f64();
    assert!((audio_target - 0.524).abs() < 1e-9, "{audio_target}");
    let text = hls::render_media_playlist(&p, "audio", false).unwrap();
    assert!(text.contains("#EXT-X-PART-INF:PART-TARGET=0.524"), "{text}");
    let mut checked = 0;
    for s in a
        .segments()
        .iter()
        .filter(|s| s.is_complete && s.msn > 1000)
    {
        let vs = v.segment(s.msn).expect("same msn in video");
        // Video part ends in presentation time: a video segment's tfdt is its keyframe's presentation
        // time (decode times are moved by the first keyframe's composition offset).
        let mut vt = vs.start_dts as f64 / 90_000.0;
        let mut at = s.start_dts as f64 / 48_000.0;
        assert_eq!(s.parts.len(), vs.parts.len(), "msn {}", s.msn);
        for (ap, vp) in s.parts.iter().zip(&vs.parts) {
            vt += vp.duration_ticks as f64 / 90_000.0;
            at += ap.duration_ticks as f64 / 48_000.0;
            let d = ap.duration_ticks as f64 / 48_000.0;
            assert!(
                d <= audio_target + 1e-9,
                "msn {}: audio part lasts {d}",
                s.msn
            );
            assert!(d >= 0.85 * 0.5, "msn {}: audio part lasts {d}", s.msn);
            assert!(
                (at - vt).abs() <= frame / 2.0 + 1e-6,
                "msn {}: audio part ends at {at}, video at {vt}",
                s.msn
            );
            checked += 1;
        }
    }
    assert!(checked >= 30, "{checked} parts checked");
}

/// One GOP of 2.5 s in a stream of 2 s GOPs, packaged as it arrives: the segmenter waits for the late
/// keyframe (a segment is never cut without one), so every segment starts with a keyframe; the 2.5 s
/// segment rounds to more than the 2 s target duration and is counted as an overrun.
#[test]
fn segmenter_waits_for_a_late_keyframe_and_every_segment_starts_with_one() {
    let mut p = packager(PackagerConfig::default());
    let mut a = 0i64;
    // Keyframes at 0, 2, 4, 6.5, 8.5, 10.5, ... s (30 fps).
    let mut next_key = 0i64;
    for i in 0..(16 * 30) {
        let ms = (i as f64 * 1000.0 / 30.0).round() as i64;
        while a * 1024 * 1000 / 48_000 < ms {
            p.push_frame(aframe(a * 1024), 1_700_000_000_000 + ms);
            a += 1;
        }
        let key = ms >= next_key;
        if key {
            next_key = if next_key == 4000 {
                6500
            } else {
                next_key + 2000
            };
        }
        p.push_frame(vframe(ms * 90, 3000, key), 1_700_000_000_000 + ms);
        p.check_invariants().unwrap();
    }
    let v = p.rendition("source").unwrap();
    assert_eq!(v.counters().forced_cuts, 0, "never cut without a keyframe");
    assert_eq!(v.counters().target_duration_overruns, 1);
    let complete: Vec<_> = v.segments().iter().filter(|s| s.is_complete).collect();
    assert!(complete.len() >= 6, "{} segments", complete.len());
    for s in &complete {
        assert!(
            s.starts_with_keyframe && s.parts[0].is_independent,
            "msn {}",
            s.msn
        );
    }
    // Start times are presentation times: the frames' DTS plus their 33 ms composition offset.
    let starts: Vec<i64> = complete.iter().map(|s| s.start_dts / 90).collect();
    assert!(
        starts
            .windows(2)
            .any(|w| (w[0] - 4033).abs() <= 2 && (w[1] - 6533).abs() <= 2),
        "{starts:?}"
    );
}

/// Keyframe intervals that vary from 1.3 to 5.4 s (a clip passed through with its own GOP), packaged as
/// it arrives: no segment without a keyframe, none shorter than half the segment target, and once a
/// 5.4 s interval has been seen, a keyframe is taken early (at least half the target in) rather than
/// risk a segment past what the target duration allows.
#[test]
fn segmenter_irregular_gop_never_cuts_without_a_keyframe_nor_below_half_the_target() {
    let mut p = packager(PackagerConfig::default());
    let gaps_ms = [
        2000, 2000, 1300, 1300, 5400, 1300, 1300, 2600, 1300, 5400, 1300, 1300, 1300,
    ];
    let mut keys = vec![0i64];
    for g in gaps_ms {
        keys.push(keys.last().unwrap() + g);
    }
    let end_ms = *keys.last().unwrap() + 2000;
    let mut a = 0i64;
    for i in 0.. {
        let ms = (i as f64 * 1000.0 / 30.0).round() as i64;
        if ms > end_ms {
            break;
        }
        while a * 1024 * 1000 / 48_000 < ms {
            p.push_frame(aframe(a * 1024), 1_700_000_000_000 + ms);
            a += 1;
        }
        let key = keys.iter().any(|k| (ms - k).abs() <= 16 && ms >= *k);
        p.push_frame(vframe(ms * 90, 3000, key), 1_700_000_000_000 + ms);
        p.check_invariants().unwrap();
    }
    let v = p.rendition("source").unwrap();
    assert_eq!(v.counters().forced_cuts, 0);
    let complete: Vec<_> = v.segments().iter().filter(|s| s.is_complete).collect();
    for s in &complete {
        let secs = s.duration_ticks() as f64 / 90_000.0;
        assert!(s.starts_with_keyframe, "msn {}", s.msn);
        assert!(secs >= 1.0 - 0.002, "msn {} lasts {secs}", s.msn);
    }
    // Past the first 5.4 s interval, a 1.3 s keyframe is taken rather than waiting for 2.6 s.
    let lasts: Vec<f64> = complete
        .iter()
        .map(|s| (s.duration_ticks() as f64 / 90_000.0 * 10.0).round() / 10.0)
        .collect();
    assert!(lasts.contains(&1.3), "{lasts:?}");
    // The audio segment of each msn covers the video's (within one AAC frame), also where a long
    // keyframe interval took the video past the target duration: no audio sample cut short, no gap
    // left in the audio timeline (which puts the renditions' live edges apart in a player).
    let a = p.rendition("audio").unwrap();
    assert_eq!(a.counters().timeline_gaps, 0);
    let frame_s = 1024.0 / 48_000.0;
    let mut compared = 0;
    for s in &complete {
        let Some(audio) = a.segment(s.msn).filter(|x| x.is_complete) else {
            continue;
        };
        let (vs, as_) = (
            s.duration_ticks() as f64 / 90_000.0,
            audio.duration_ticks() as f64 / 48_000.0,
        );
        assert!(
            (vs - as_).abs() <= frame_s + 0.001,
            "msn {}: video {vs} s, audio {as_} s",
            s.msn
        );
        compared += 1;
    }
    assert!(
        compared >= complete.len() - 1,
        "{compared} of {}",
        complete.len()
    );
}

/// The segment grid of a clock given by the producer (a transcoded ladder): an encoded rung with
/// keyframes only on the grid, a copied source with a keyframe every second (half of them between grid
/// points) and audio all cut on the grid points, with the same msns, and the target duration follows
/// from the grid before the first segment would say so.
#[test]
fn producer_grid_cuts_every_rendition_on_its_points_and_nowhere_else() {
    let mut p = ladder_packager(5000);
    let first_pts = 3000;
    let mut hints: Vec<(String, u64, usize)> = Vec::new();
    feed_ladder(
        &mut p,
        20 * 30,
        0,
        |_| false,
        |p, i, ms, now| {
            p.push_rendition_frame("source", vframe(ms * 90, 3000, i % 30 == 0), now);
            // The encoded rung trails by two frames.
            if i >= 2 {
                let j = i - 2;
                p.push_rendition_frame("360p", vframe(frame_ms(j) * 90, 3000, j % 60 == 0), now);
            }
            record_preload_hints(p, &mut hints);
        },
    );
    assert_eq!(p.target_duration_s(), Some(2));
    let segs = |name: &str| -> Vec<(u64, i64, bool, i64)> {
        p.rendition(name)
            .unwrap()
            .segments()
            .iter()
            .filter(|s| s.is_complete)
            .map(|s| {
                (
                    s.msn,
                    s.earliest_pts * 90_000 / i64::from(p.rendition(name).unwrap().timescale()),
                    s.starts_with_keyframe,
                    s.duration_ticks() as i64,
                )
            })
            .collect()
    };
    let src = segs("source");
    let rung = segs("360p");
    assert!(src.len() >= 8, "{src:?}");
    for (m, pts, key, dur) in &src {
        assert!(*key, "source msn {m}");
        assert_eq!(
            (pts - first_pts) % 180_000,
            0,
            "source msn {m} starts at {pts}"
        );
        assert!((dur - 180_000).abs() <= 180, "source msn {m} lasts {dur}");
    }
    let common: Vec<_> = rung
        .iter()
        .filter(|r| src.iter().any(|s| s.0 == r.0))
        .collect();
    assert!(common.len() >= 7);
    for r in common {
        let s = src.iter().find(|s| s.0 == r.0).unwrap();
        assert_eq!((r.0, r.1, r.2), (s.0, s.1, s.2), "360p vs source");
    }
    assert_audio_starts_with_video(&segs("audio"), &src);
    assert_hinted_parts_came(&p, &hints);
}

/// A splice point (an SCTE-35 out at 5.333 s, its return 4 s later) re-anchors the producer grid: every
/// rendition starts a segment there (video on the keyframe the transcoder forced, audio on its frame
/// nearest it), the segment before is cut short, the grid goes on from the splice, msns stay aligned;
/// the preload hint never points past the shortened segment's end.
#[test]
fn splice_points_start_a_segment_in_every_rendition() {
    let mut p = ladder_packager(100);
    let first_pts = 3000;
    let out = first_pts + frame_ms(160) * 90;
    let back = out + 4 * 90_000;
    assert!(p.add_splice_point(out) && p.add_splice_point(back));
    let clock = p.segment_clock().unwrap();
    // The transcoder forces a keyframe where the grid index changes, and nowhere else.
    let key = |i: u64| {
        let pts = first_pts + frame_ms(i) * 90;
        i == 0 || clock.index(pts) != clock.index(first_pts + frame_ms(i - 1) * 90)
    };
    let mut hints: Vec<(String, u64, usize)> = Vec::new();
    feed_ladder(
        &mut p,
        16 * 30,
        40,
        |_| false,
        |p, i, ms, now| {
            push_ladder_video(p, ms, key(i), now);
            record_preload_hints(p, &mut hints);
        },
    );
    // Each rendition's complete segments: (msn, start relative to the source's first keyframe in 90 kHz
    // ticks, starts with a keyframe, duration in 90 kHz ticks).
    let first = {
        let r = p.rendition("source").unwrap();
        r.segments().front().unwrap().earliest_pts * 90_000 / i64::from(r.timescale())
    };
    let segs = |name: &str| -> Vec<(u64, i64, bool, i64)> {
        let r = p.rendition(name).unwrap();
        let ts = i64::from(r.timescale());
        r.segments()
            .iter()
            .filter(|s| s.is_complete)
            .map(|s| {
                (
                    s.msn,
                    s.earliest_pts * 90_000 / ts - first,
                    s.starts_with_keyframe,
                    s.duration_ticks() as i64 * 90_000 / ts,
                )
            })
            .collect()
    };
    let src = segs("source");
    let starts: Vec<i64> = src.iter().map(|s| s.1).collect();
    let (o, b) = (out - first_pts, back - first_pts);
    // 0, 2, 4 s on the first grid; 5.333 s (the out); 7.333 s; 9.333 s (the return); 11.333 s …
    assert_eq!(
        &starts[..7],
        &[0, 180_000, 360_000, o, o + 180_000, b, b + 180_000],
        "{src:?}"
    );
    assert_eq!(
        src[2].3,
        o - 360_000,
        "the segment before the out is cut short"
    );
    assert_eq!(src[4].3, b - o - 180_000, "and the one before the return");
    assert!(
        src.iter().all(|s| s.2),
        "every segment starts on a keyframe"
    );
    assert_eq!(
        segs("360p"),
        src,
        "the encoded rung cuts at the same frames"
    );
    let msns: Vec<u64> = src.iter().map(|s| s.0).collect();
    assert_eq!(&msns[..7], &[100, 101, 102, 103, 104, 105, 106]);
    assert_audio_starts_with_video(&segs("audio"), &src);
    assert_hinted_parts_came(&p, &hints);
}

/// A copied source whose keyframes left the grid is replaced by an encoder from a grid point on: that
/// rendition continues with a new init segment, and the segment with that msn follows a discontinuity
/// in every rendition (audio included, which had already started it), and starts a new DASH Period.
#[test]
fn replacing_a_rendition_marks_one_discontinuity_in_every_rendition() {
    let mut p = ladder_packager(5000);
    let mut replaced_at = None;
    // Audio runs 100 ms ahead of video.
    feed_ladder(
        &mut p,
        16 * 30,
        100,
        |_| false,
        |p, i, ms, now| {
            if i == 240 {
                // 8 s: the copy stops; the fallback encoder's first frame is an IDR here.
                p.replace_rendition_track("source", rung_track(1280, 720, 0x20));
                replaced_at = p.rendition("source").unwrap().next_msn();
            }
            p.push_rendition_frame("source", vframe(ms * 90, 3000, i % 60 == 0), now);
            p.push_rendition_frame("360p", vframe(ms * 90, 3000, i % 60 == 0), now);
        },
    );
    let m = replaced_at.unwrap();
    for r in p.renditions() {
        let flagged: Vec<u64> = r
            .segments()
            .iter()
            .filter(|s| s.is_discontinuity)
            .map(|s| s.msn)
            .collect();
        assert_eq!(flagged, [m], "{}", r.name());
    }
    let src = p.rendition("source").unwrap();
    assert_ne!(
        src.segment(m).unwrap().init_id,
        src.segment(m - 1).unwrap().init_id
    );
    assert!(
        p.periods().iter().any(|per| per.first_msn == m),
        "{:?}",
        p.periods()
    );
    let text = hls::render_media_playlist(&p, "audio", false).unwrap();
    assert_eq!(text.matches("#EXT-X-DISCONTINUITY\n").count(), 1);
}

/// The playlists appear only once every rendition has a complete segment (a player joining then plays
/// every variant it is offered; FFmpeg 5.1 crashed on a variant without one), with measured rates.
#[test]
fn playlists_wait_for_every_rendition_and_announce_measured_rates() {
    let mut p = StreamPackager::new(PackagerConfig::default(), 100);
    p.set_rendition_track("source", video_track());
    p.set_rendition_track("audio", audio_track());
    p.set_rendition_track("360p", rung_track(640, 360, 0x1e));
    let mut ready_at = None;
    feed_ladder(
        &mut p,
        8 * 30,
        0,
        |_| false,
        |p, i, ms, now| {
            p.push_rendition_frame("source", vframe(ms * 90, 3000, i % 60 == 0), now);
            // The 360p rung starts one segment late.
            if i >= 60 {
                p.push_rendition_frame("360p", vframe(ms * 90, 3000, i % 60 == 0), now);
            }
            if p.is_ready() && ready_at.is_none() {
                ready_at = Some(ms);
            }
            if !p.is_ready() {
                assert!(hls::render_multivariant(p).is_none());
                assert!(hls::render_media_playlist(p, "source", false).is_none());
            }
        },
    );
    let ready_at = ready_at.expect("ready");
    assert!((4000..4100).contains(&ready_at), "ready at {ready_at} ms");
    let mv = hls::render_multivariant(&p).unwrap();
    assert_eq!(mv.matches("#EXT-X-STREAM-INF").count(), 2, "{mv}");
    assert!(!mv.contains("BANDWIDTH=1,"), "{mv}");
    assert!(mv.contains("FRAME-RATE=30.000"), "{mv}");
}

/// RFC 8216bis §6.2.5.2: a blocking request for a part past the last part of its (complete) segment is
/// a request for part 0 of the next segment, answered when that exists, not when the segment closed.
#[test]
fn blocking_request_past_the_last_part_waits_for_the_next_segment() {
    let mut p = packager(PackagerConfig::default());
    feed(&mut p, 4.6, 60, 0);
    let v = p.rendition("source").unwrap();
    let done = v.last_complete_msn().unwrap();
    let parts = v.segment(done).unwrap().parts.len();
    use hls::BlockingDecision::*;
    // The next segment has its first part by now.
    assert_eq!(hls::blocking_decision(v, done, Some(parts)), Ready);
    let mut p = packager(PackagerConfig::default());
    feed(&mut p, 2.0, 60, 0);
    // Exactly at the cut: the keyframe opened the next segment but no part of it exists yet.
    let v = p.rendition("source").unwrap();
    if let Some(done) = v.last_complete_msn() {
        let parts = v.segment(done).unwrap().parts.len();
        let next_has_part = v.part(done + 1, 0).is_some();
        assert_eq!(
            hls::blocking_decision(v, done, Some(parts)),
            if next_has_part { Ready } else { Wait }
        );
    }
}

#[test]
fn segmenter_obs_250_frame_gop_sets_target_duration_9() {
    let mut p = packager(PackagerConfig::default());
    feed(&mut p, 20.0, 250, 0);
    assert_eq!(p.target_duration_s(), Some(9));
    assert_eq!(p.rendition("source").unwrap().counters().forced_cuts, 0);
}

#[test]
fn playlists_parse_with_m3u8_rs_and_follow_ll_hls_rules() {
    let mut p = packager(PackagerConfig::default());
    feed(&mut p, 40.0, 60, 0);
    let mv = hls::render_multivariant(&p).unwrap();
    let parsed = m3u8_rs::parse_playlist_res(mv.as_bytes()).expect("multivariant parses");
    let m3u8_rs::Playlist::MasterPlaylist(master) = parsed else {
        panic!("not multivariant")
    };
    assert_eq!(master.variants.len(), 1);
    let var = &master.variants[0];
    assert_eq!(var.codecs.as_deref(), Some("avc1.64001f,mp4a.40.2"));
    assert_eq!(
        var.resolution.map(|r| (r.width, r.height)),
        Some((1280, 720))
    );
    assert_eq!(var.audio.as_deref(), Some("audio"));
    assert_eq!(master.alternatives.len(), 1);

    let text = hls::render_media_playlist(&p, "source", false).unwrap();
    let m3u8_rs::Playlist::MediaPlaylist(media) =
        m3u8_rs::parse_playlist_res(text.as_bytes()).unwrap()
    else {
        panic!("not a media playlist")
    };
    assert_eq!(media.target_duration, 2);
    assert!(media.media_sequence >= 1000);
    assert_eq!(media.segments.len(), 12, "window of 12 complete segments");
    for s in &media.segments {
        assert!(s.duration <= 2.002 && s.duration.round() <= 2.0);
    }
    assert!(text.contains("#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,CAN-SKIP-UNTIL=12.0,PART-HOLD-BACK=1.506,HOLD-BACK=6.0"));
    assert!(text.contains("#EXT-X-PART-INF:PART-TARGET=0.502"));
    assert!(text.contains("#EXT-X-PRELOAD-HINT:TYPE=PART,URI="));
    assert!(text.contains("#EXT-X-RENDITION-REPORT:URI=\"../audio/media.m3u8\",LAST-MSN="));
    // Parts listed only for the last 3 target durations (6 s = 3 segments + the open one).
    let listed: std::collections::BTreeSet<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("#EXT-X-PART:"))
        .filter_map(|l| l.split("URI=\"").nth(1)?.split('.').next())
        .collect();
    assert!(listed.len() <= 4, "parts listed for {listed:?}");

    // A delta update skips the older segments.
    let delta = hls::render_media_playlist(&p, "source", true).unwrap();
    assert!(delta.contains("#EXT-X-SKIP:SKIPPED-SEGMENTS="), "{delta}");
    assert!(delta.len() < text.len());
    m3u8_rs::parse_playlist_res(delta.as_bytes()).expect("delta parses");
}

#[test]
fn blocking_decisions() {
    let mut p = packager(PackagerConfig::default());
    feed(&mut p, 10.0, 60, 0);
    let v = p.rendition("source").unwrap();
    let (lm, lp) = v.last_part().unwrap();
    let (nm, np) = v.next_part().unwrap();
    use hls::BlockingDecision::*;
    assert_eq!(hls::blocking_decision(v, lm, Some(lp)), Ready);
    assert_eq!(hls::blocking_decision(v, nm, Some(np)), Wait);
    assert_eq!(hls::blocking_decision(v, lm + 2, Some(0)), Wait);
    assert_eq!(hls::blocking_decision(v, lm + 3, Some(0)), TooFarAhead);
    assert_eq!(hls::blocking_decision(v, lm - 1, None), Ready);
}

#[test]
fn chunks_parse_with_mp4_atom_and_tfdt_is_continuous() {
    use mp4_atom::{Decode, Moof};
    let mut p = packager(PackagerConfig::default());
    feed(&mut p, 12.0, 60, 0);
    for name in ["source", "audio"] {
        let r = p.rendition(name).unwrap();
        let mut expected: Option<u64> = None;
        for s in r.segments() {
            for part in &s.parts {
                let mut buf = &part.bytes[..];
                let moof = Moof::decode(&mut buf).expect("moof parses");
                let traf = &moof.traf[0];
                let tfdt = traf.tfdt.as_ref().expect("tfdt").base_media_decode_time;
                if let Some(e) = expected {
                    assert_eq!(tfdt, e, "{name}: tfdt continuity at msn {}", s.msn);
                }
                let sum: u64 = traf
                    .trun
                    .iter()
                    .flat_map(|t| t.samples.iter())
                    .map(|e| u64::from(e.duration.unwrap_or(0)))
                    .sum();
                assert_eq!(sum, part.duration_ticks);
                expected = Some(tfdt + sum);
            }
        }
    }
}

#[test]
fn reconnect_adds_discontinuity_and_continues_msn_and_timeline() {
    let mut p = packager(PackagerConfig::default());
    feed(&mut p, 6.0, 60, 0);
    let before = p.rendition("source").unwrap().next_part().unwrap().0;
    p.discontinuity();
    // The new publisher's clock starts again at 0.
    feed(&mut p, 6.0, 60, 0);
    let v = p.rendition("source").unwrap();
    let disc: Vec<_> = v.segments().iter().filter(|s| s.is_discontinuity).collect();
    assert_eq!(disc.len(), 1);
    assert!(disc[0].msn >= before);
    let text = hls::render_media_playlist(&p, "source", false).unwrap();
    assert!(text.contains("#EXT-X-DISCONTINUITY\n"));
    p.check_invariants().unwrap();
    // Output timeline keeps going forward.
    let starts: Vec<i64> = v.segments().iter().map(|s| s.start_dts).collect();
    assert!(starts.windows(2).all(|w| w[1] > w[0]), "{starts:?}");
}

#[test]
fn a_reconnect_whose_audio_comes_first_keeps_every_renditions_numbers_consecutive() {
    // FFmpeg's RTMP output often sends audio before the first video frame: the audio opens the
    // new publish's first segment, and the video must join it, not skip a number.
    for lead_ms in [100i64, 600, 1000] {
        let mut p = packager(PackagerConfig::default());
        feed(&mut p, 5.0, 60, 0);
        p.discontinuity();
        let mut a = 0i64;
        for i in 0..300u64 {
            let ms = frame_ms(i);
            while a * 1024 * 1000 / 48_000 < ms + lead_ms {
                p.push_frame(
                    aframe(a * 1024),
                    1_700_000_010_000 + a * 1024 * 1000 / 48_000,
                );
                a += 1;
            }
            p.push_frame(vframe(ms * 90, 3000, i % 60 == 0), 1_700_000_010_000 + ms);
            p.check_invariants()
                .unwrap_or_else(|e| panic!("audio {lead_ms} ms ahead, frame {i}: {e}"));
        }
        let msns = |r: &str| -> Vec<u64> {
            p.rendition(r)
                .unwrap()
                .segments()
                .iter()
                .map(|s| s.msn)
                .collect()
        };
        assert_eq!(msns("source"), msns("audio"), "audio {lead_ms} ms ahead");
        let disc: Vec<u64> = ["source", "audio"]
            .iter()
            .flat_map(|r| p.rendition(r).unwrap().segments().iter())
            .filter(|s| s.is_discontinuity)
            .map(|s| s.msn)
            .collect();
        assert_eq!(disc, vec![1003, 1003], "audio {lead_ms} ms ahead");
    }
}

#[test]
fn a_delta_update_never_skips_a_discontinuity() {
    let mut p = packager(PackagerConfig::default());
    feed(&mut p, 4.0, 60, 0);
    p.discontinuity();
    // 16 s after the reconnect: the discontinuity is older than CAN-SKIP-UNTIL (12 s), still listed.
    feed(&mut p, 16.0, 60, 0);
    let full = hls::render_media_playlist(&p, "source", false).unwrap();
    assert!(full.contains("#EXT-X-DISCONTINUITY\n"), "{full}");
    let delta = hls::render_media_playlist(&p, "source", true).unwrap();
    // Segments before it may go; it and what follows stay, so the tag is seen.
    assert!(delta.contains("#EXT-X-DISCONTINUITY\n"), "{delta}");
    assert!(delta.contains("#EXT-X-SKIP:SKIPPED-SEGMENTS="), "{delta}");
    m3u8_rs::parse_playlist_res(delta.as_bytes()).expect("delta parses");
}

#[test]
fn a_stream_continued_from_elsewhere_starts_at_its_discontinuity_sequence() {
    let mut p = packager(PackagerConfig::default());
    // The previous publish (on another origin) ended at discontinuity sequence 6.
    p.set_first_discontinuity_sequence(7);
    feed(&mut p, 6.0, 60, 0);
    for name in ["source", "audio"] {
        let text = hls::render_media_playlist(&p, name, false).unwrap();
        assert!(text.contains("#EXT-X-DISCONTINUITY-SEQUENCE:7\n"), "{text}");
        assert!(!text.contains("#EXT-X-DISCONTINUITY\n"), "{text}");
    }
    assert_eq!(p.latest_discontinuity_sequence(), 7);
    p.discontinuity();
    feed(&mut p, 6.0, 60, 0);
    assert_eq!(p.latest_discontinuity_sequence(), 8);
    let text = hls::render_media_playlist(&p, "source", false).unwrap();
    assert!(
        text.contains("#EXT-X-DISCONTINUITY-SEQUENCE:7\n")
            && text.contains("#EXT-X-DISCONTINUITY\n")
    );
    p.check_invariants().unwrap();
}

#[test]
fn end_of_stream_closes_playlists() {
    let mut p = packager(PackagerConfig::default());
    feed(&mut p, 5.0, 60, 0);
    p.end();
    let text = hls::render_media_playlist(&p, "source", false).unwrap();
    assert!(text.trim_end().ends_with("#EXT-X-ENDLIST"));
    assert!(!text.contains("PRELOAD-HINT"));
}

#[test]
fn part_target_200ms_works() {
    let cfg = PackagerConfig {
        part_target: std::time::Duration::from_millis(200),
        ..Default::default()
    };
    let mut p = packager(cfg);
    feed(&mut p, 8.0, 60, 0);
    let v = p.rendition("source").unwrap();
    for s in v.segments().iter().filter(|s| s.is_complete) {
        for part in &s.parts {
            assert!(
                part.duration_ticks <= 18_180,
                "part {} ticks",
                part.duration_ticks
            );
        }
        assert!(s.parts.len() >= 10);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn invariants_hold_for_arbitrary_frame_patterns(
        steps in proptest::collection::vec((1i64..6000, any::<bool>(), 0i64..9000, any::<bool>()), 1..600)
    ) {
        let mut p = packager(PackagerConfig::default());
        let mut dts = 0i64;
        for (step, key, cts, audio) in steps {
            dts += step;
            if audio {
                p.push_frame(aframe(dts * 48_000 / 90_000), 1_700_000_000_000 + dts / 90);
            } else {
                p.push_frame(vframe(dts, cts, key), 1_700_000_000_000 + dts / 90);
            }
            prop_assert!(p.check_invariants().is_ok(), "{:?}", p.check_invariants());
        }
        if let Some(text) = hls::render_media_playlist(&p, "source", false) {
            prop_assert!(m3u8_rs::parse_playlist_res(text.as_bytes()).is_ok());
            let td = p.target_duration_s().unwrap();
            for r in p.renditions() {
                // EXTINF rounds to at most the target duration, but for counted overruns (a stream
                // packaged as it arrives waits for its keyframes); video never starts a segment
                // without one but for counted forced cuts (no keyframe for twice the maximum).
                let over = r
                    .segments()
                    .iter()
                    .filter(|s| s.is_complete)
                    .filter(|s| (s.duration_ticks() as f64 / f64::from(r.timescale())).round() > f64::from(td))
                    .count() as u64;
                prop_assert!(over <= r.counters().target_duration_overruns, "{over} segments > {td}");
                if r.kind() == media::TrackKind::Video && r.counters().forced_cuts == 0 {
                    prop_assert!(r.segments().iter().all(|s| s.starts_with_keyframe));
                }
            }
        }
    }
}

#[test]
fn codec_change_starts_new_init_after_a_discontinuity_on_every_rendition() {
    let mut p = packager(PackagerConfig::default());
    feed(&mut p, 6.0, 60, 0);
    let old_init = p.rendition("source").unwrap().current_init_id();
    // The encoder switches to 640x360 (a new sequence header) and keeps its clock.
    p.set_track(video_track_360p());
    feed(&mut p, 6.0, 60, 6000);
    p.check_invariants().unwrap();
    let v = p.rendition("source").unwrap();
    let new_init = v.current_init_id();
    assert_ne!(new_init, old_init);
    assert!(
        v.init(old_init).is_some(),
        "old init kept while its segments are in the window"
    );
    let text = hls::render_media_playlist(&p, "source", false).unwrap();
    let maps: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("#EXT-X-MAP"))
        .collect();
    assert_eq!(maps.len(), 2, "{text}");
    let disc = text
        .find("#EXT-X-DISCONTINUITY\n")
        .expect("video discontinuity");
    assert!(text.find(&format!("init-{new_init}.mp4")).unwrap() > disc);
    let audio = hls::render_media_playlist(&p, "audio", false).unwrap();
    assert!(
        audio.contains("#EXT-X-DISCONTINUITY\n"),
        "audio follows the discontinuity"
    );
    // The new init segment describes the new picture size.
    use mp4_atom::{Decode, Ftyp, Moov};
    let mut buf = &v.init(new_init).unwrap()[..];
    Ftyp::decode(&mut buf).unwrap();
    let moov = Moov::decode(&mut buf).unwrap();
    assert_eq!(moov.trak[0].tkhd.width.integer(), 640);
}

#[test]
fn parts_are_pruned_from_the_playlist_but_stay_downloadable() {
    let mut p = packager(PackagerConfig::default());
    feed(&mut p, 30.0, 60, 0);
    let v = p.rendition("source").unwrap();
    let oldest = v.segments().front().unwrap();
    let text = hls::render_media_playlist(&p, "source", false).unwrap();
    assert!(
        !text.contains(&format!("URI=\"{}.0.m4s\"", oldest.msn)),
        "old parts still listed"
    );
    assert!(
        v.part(oldest.msn, 0).is_some(),
        "old part no longer downloadable"
    );
    // Window: 12 complete segments + the open one. A segment that left it stays available for its
    // duration plus the playlist's (RFC 8216bis §6.2.2: 2 s + 24 s here), then goes.
    assert_eq!(v.segments().iter().filter(|s| s.is_complete).count(), 12);
    let left = oldest.msn - 1;
    assert!(
        v.segment(left).is_some(),
        "segment {left} removed as it left the playlist"
    );
    assert!(v.part(left, 0).is_some());
    feed(&mut p, 24.0, 60, 30_000);
    let v = p.rendition("source").unwrap();
    assert!(
        v.segment(left).is_some(),
        "24 s later: still within its deadline"
    );
    feed(&mut p, 10.0, 60, 54_000);
    let v = p.rendition("source").unwrap();
    assert!(
        v.segment(left).is_none(),
        "segment {left} kept past its deadline"
    );
    p.check_invariants().unwrap();
}

/// The announced frame rate is measured over the first segment: a rung whose SPS says 30 fps (what an
/// encoder was told for a source without VUI timing) but whose frames come every 1001/24 ms (timestamps
/// in whole milliseconds) is announced as 24000/1001 in the multivariant playlist and the MPD.
#[test]
fn announced_frame_rate_is_measured_not_taken_from_the_sps() {
    use packager::rendition::measured_frame_rate;
    assert_eq!(
        measured_frame_rate(96, 4 * 90_000 + 360, 90_000),
        Some((24000, 1001))
    );
    assert_eq!(measured_frame_rate(60, 2 * 90_000, 90_000), Some((30, 1)));
    assert_eq!(measured_frame_rate(50, 2 * 90_000, 90_000), Some((25, 1)));
    assert_eq!(
        measured_frame_rate(41, 2 * 90_000, 90_000),
        Some((20500, 1000))
    );
    assert_eq!(measured_frame_rate(1, 90_000, 90_000), None);
    assert_eq!(measured_frame_rate(10, 0, 90_000), None);

    let mut p = StreamPackager::new(PackagerConfig::default(), 100);
    p.set_rendition_track("source", rung_track(1280, 720, 0x1f));
    p.set_rendition_track("audio", audio_track());
    let mut a = 0i64;
    for i in 0..(8 * 24u64) {
        // 24000/1001 fps with timestamps rounded to the millisecond, as RTMP carries them.
        let ms = (i as f64 * 1001.0 / 24.0).round() as i64;
        let now = 1_700_000_000_000 + ms;
        while a * 1024 * 1000 / 48_000 < ms {
            p.push_rendition_frame("audio", aframe(a * 1024), now);
            a += 1;
        }
        p.push_rendition_frame("source", vframe(ms * 90, 3000, i % 48 == 0), now);
    }
    let mv = hls::render_multivariant(&p).unwrap();
    assert!(mv.contains(",FRAME-RATE=23.976,"), "{mv}");
    let mpd = packager::dash::render_mpd(&p, &Default::default(), 1_700_000_010_000).unwrap();
    assert!(mpd.contains("frameRate=\"24000/1001\""), "{mpd}");
}

#[test]
fn ladder_renditions_cut_at_the_same_times_with_the_same_msns() {
    let mut p = StreamPackager::new(PackagerConfig::default(), 5000);
    p.set_rendition_track("source", video_track());
    p.set_rendition_track("audio", audio_track());
    // Encoded rungs come up a few frames late (encoder start-up) but on the source timeline, with their
    // keyframes forced where the source's segment-starting keyframes are.
    let mut rungs_started = false;
    let mut a = 0i64;
    for i in 0..(30 * 30u64) {
        let ms = (i as f64 * 1000.0 / 30.0).round() as i64;
        let now = 1_700_000_000_000 + ms;
        while a * 1024 * 1000 / 48_000 < ms {
            p.push_rendition_frame("audio", aframe(a * 1024), now);
            a += 1;
        }
        let key = i % 60 == 0;
        p.push_rendition_frame(
            "source",
            vframe(ms * 90, if i % 3 == 1 { 6000 } else { 3000 }, key),
            now,
        );
        if i == 5 {
            p.set_rendition_track("480p", rung_track(854, 480, 0x1e));
            p.set_rendition_track("360p", rung_track(640, 360, 0x1e));
            rungs_started = true;
        }
        if rungs_started && i >= 3 {
            // Delayed output of frame i-3.
            let j = i - 3;
            // The encoder's timestamps carry their own millisecond rounding (floor, not round).
            let jms = (j as f64 * 1000.0 / 30.0).floor() as i64;
            for rung in ["480p", "360p"] {
                p.push_rendition_frame(rung, vframe(jms * 90, 3000, j % 60 == 0), now);
            }
        }
        p.check_invariants().unwrap();
    }
    assert_eq!(p.leader(), Some("source"));
    let names: Vec<&str> = p.renditions().map(|r| r.name()).collect();
    assert_eq!(names, ["source", "480p", "360p", "audio"]);
    let src = p.rendition("source").unwrap();
    for rung in ["480p", "360p"] {
        let r = p.rendition(rung).unwrap();
        let complete: Vec<_> = r.segments().iter().filter(|s| s.is_complete).collect();
        assert!(complete.len() >= 10, "{rung}: {} segments", complete.len());
        for s in complete {
            let t = src
                .segment(s.msn)
                .unwrap_or_else(|| panic!("{rung} msn {} not in source", s.msn));
            assert_eq!(
                s.start_dts, t.start_dts,
                "{rung} msn {}: tfdt differs",
                s.msn
            );
            assert_eq!(
                s.duration_ticks(),
                t.duration_ticks(),
                "{rung} msn {}: EXTINF differs",
                s.msn
            );
        }
    }
    let mv = hls::render_multivariant(&p).unwrap();
    let m3u8_rs::Playlist::MasterPlaylist(master) =
        m3u8_rs::parse_playlist_res(mv.as_bytes()).unwrap()
    else {
        panic!("not multivariant")
    };
    let res: Vec<_> = master
        .variants
        .iter()
        .map(|v| v.resolution.map(|r| (r.width, r.height)))
        .collect();
    assert_eq!(res, [Some((1280, 720)), Some((854, 480)), Some((640, 360))]);
    assert!(
        master
            .variants
            .iter()
            .all(|v| v.audio.as_deref() == Some("audio"))
    );
    let text = hls::render_media_playlist(&p, "480p", false).unwrap();
    for other in ["source", "360p", "audio"] {
        assert!(
            text.contains(&format!(
                "#EXT-X-RENDITION-REPORT:URI=\"../{other}/media.m3u8\""
            )),
            "{other}"
        );
    }
}

/// Frames lost upstream before a keyframe (an SRT too-late drop, then the demuxer's wait for the next
/// keyframe) leave a hole in the input; every frame after it is still packaged. Found over a lossy SRT
/// link: the frame duration estimate had averaged in the 300 ms hole, parts then ended past the next
/// frame, and that frame was dropped as "going backwards" — a reference picture, so Chromium's decoder
/// failed on the next one.
#[test]
fn frames_after_a_hole_before_a_keyframe_are_all_packaged() {
    let mut p = packager(PackagerConfig::default());
    // 24 fps (3750 ticks), keyframe every 2 s; frames from 5.1 s to just before the 6 s keyframe lost.
    let step = 3750i64;
    let mut fed = 0u64;
    let mut a = 0i64;
    for i in 0..(12 * 24) {
        let dts = i * step;
        let ms = dts / 90;
        while a * 1024 * 1000 / 48_000 < ms {
            p.push_frame(aframe(a * 1024), 1_700_000_000_000 + ms);
            a += 1;
        }
        if (5_100..6_000).contains(&ms) {
            continue;
        }
        p.push_frame(vframe(dts, 2 * step, i % 48 == 0), 1_700_000_000_000 + ms);
        fed += 1;
        p.check_invariants().unwrap();
    }
    let v = p.rendition("source").unwrap();
    assert_eq!(v.counters().dropped_frames, 0, "{:?}", v.counters());
    assert_eq!(v.counters().frames, fed, "{:?}", v.counters());
    assert_eq!(v.counters().timeline_overlaps, 0, "{:?}", v.counters());
    // The estimate stayed one frame: parts after the hole are part-target long, not stretched.
    assert_eq!(v.est_duration_ticks(), step);
}

/// A shorter variant whose segments peak above a taller one's (a capped top rung on a busy scene) is
/// never announced above it: the taller one's BANDWIDTH is raised (still at least its own peak), so a
/// player with bandwidth to spare ends on the best picture.
#[test]
fn a_taller_variant_never_announces_less_bandwidth() {
    let mut p = StreamPackager::new(PackagerConfig::default(), 100);
    p.set_rendition_track("source", video_track());
    p.set_rendition_track("360p", rung_track(640, 360, 0x1e));
    for i in 0..(6 * 30u64) {
        let ms = (i as f64 * 1000.0 / 30.0).round() as i64;
        let now = 1_700_000_000_000 + ms;
        p.push_rendition_frame("source", vframe(ms * 90, 3000, i % 60 == 0), now);
        let mut big = vframe(ms * 90, 3000, i % 60 == 0);
        let mut data = vec![0u8, 0, 3, 0xe8, 0x65];
        data.resize(4 + 1000, 7);
        big.data = Bytes::from(data);
        p.push_rendition_frame("360p", big, now);
    }
    let mv = hls::render_multivariant(&p).unwrap();
    let m3u8_rs::Playlist::MasterPlaylist(master) =
        m3u8_rs::parse_playlist_res(mv.as_bytes()).unwrap()
    else {
        panic!("not multivariant")
    };
    let bw: Vec<(u64, u64)> = master
        .variants
        .iter()
        .map(|v| (v.resolution.unwrap().height, v.bandwidth))
        .collect();
    assert_eq!(bw.len(), 2);
    assert!(bw[0].0 > bw[1].0 && bw[0].1 > bw[1].1, "{bw:?}");
    let peak_360 = p.rendition("360p").unwrap().peak_segment_bps();
    assert!(bw[1].1 >= peak_360, "{bw:?} vs peak {peak_360}");
}

/// A gap in the audio (2.4 s of it missing, across a grid point) on a producer grid: the audio segment
/// before it ends at the limit, the next one starts at the grid point its first frame belongs to, and
/// no audio segment is a frame or two long. (A transcoded stream never gets there: its audio worker
/// fills gaps up to 10 s with silence. An audio gap spanning a whole segment on passthrough audio
/// leaves that segment's audio a frame long: msns stay aligned with the video's.)
#[test]
fn producer_grid_audio_gap_leaves_no_sliver_segment() {
    let mut p = ladder_packager(100);
    let gap = |t: i64| (5_000..7_400).contains(&t);
    feed_ladder(&mut p, 16 * 30, 0, gap, |p, i, ms, now| {
        p.push_rendition_frame("source", vframe(ms * 90, 3000, i % 60 == 0), now);
    });
    let audio = p.rendition("audio").unwrap();
    let video = p.rendition("source").unwrap();
    for s in audio.segments().iter().filter(|s| s.is_complete) {
        let secs = s.duration_ticks() as f64 / 48_000.0;
        assert!(secs > 0.5, "audio msn {} lasts {secs}", s.msn);
        assert!(
            video.segment(s.msn).is_some(),
            "audio msn {} not in video",
            s.msn
        );
    }
}
