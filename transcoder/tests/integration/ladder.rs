//! End-to-end ladder tests on real frames from the Big Buck Bunny fixture (720p24 H.264 with B-frames,
//! keyframes every 2 s, AAC 44.1 kHz).

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::common::{
    Recorded, RecordingSink, encode_fixture, expected_segment_starts, load_fixture, probe_annex_b,
    to_annex_b,
};
use media::{CodecConfig, Frame, TrackKind, hevc::HevcConfig, time::rescale};
use transcoder::{
    EncoderProbe, RungConfig, SourceProbe, StreamTranscoder, TranscodeOptions, TranscodeStats,
    VideoCodec, default_ladder,
};

const BBB: &str = "bbb-720p-2s-gop.mp4";

fn encoded_rung(name: &str, height: u32, codec: VideoCodec, bitrate_bps: u64) -> RungConfig {
    RungConfig {
        name: name.into(),
        height: Some(height),
        codec,
        copy: false,
        bitrate_bps,
        maxrate_bps: bitrate_bps * 11 / 10,
        bufsize_bits: bitrate_bps * 2,
        max_frame_rate: None,
        profile: None,
        preset: None,
        priority: 1,
    }
}

fn keyframe_pts(rec: &Recorded) -> Vec<i64> {
    rec.frames
        .iter()
        .filter(|f| f.is_keyframe)
        .map(|f| f.pts)
        .collect()
}

/// Check one encoded rung against the source: every source picture once, same PTS, DTS = PTS − D,
/// keyframes exactly at `starts`, the configured size, decodable by ffmpeg.
fn check_encoded_rung(
    rec: &Recorded,
    source_pts_sorted: &[i64],
    d_90khz: i64,
    starts: &[i64],
    (width, height): (u32, u32),
    label: &str,
) {
    assert_eq!(
        rec.frames_before_track, 0,
        "{label}: frame before its track"
    );
    let track = rec.tracks.last().expect("track");
    assert_eq!(track.timescale, 90_000);
    let params = track.config.video_params().unwrap();
    assert_eq!(
        (params.width, params.height),
        (width, height),
        "{label}: size"
    );
    let (n, d) = params
        .frame_rate
        .expect("the encoded SPS signals its frame rate");
    assert_eq!(
        f64::from(n) / f64::from(d),
        24.0,
        "{label}: frame rate in the SPS VUI"
    );
    let pts: Vec<i64> = rec.frames.iter().map(|f| f.pts).collect();
    assert_eq!(
        pts, source_pts_sorted,
        "{label}: PTS equal the source's, in order"
    );
    for f in &rec.frames {
        assert_eq!(f.dts, f.pts - d_90khz, "{label}: DTS = PTS - D");
        assert_eq!(f.track, TrackKind::Video);
    }
    assert_eq!(
        keyframe_pts(rec),
        starts,
        "{label}: keyframes on the segment grid"
    );
}

#[test]
fn default_ladder_720p_renditions_align_with_the_copy_rung() {
    let src = load_fixture(BBB, 6);
    let video = src.video.clone().unwrap();
    let audio = src.audio.clone().unwrap();
    let params = video.config.video_params().unwrap();
    assert_eq!((params.width, params.height), (1280, 720));
    let ladder = default_ladder(params);
    let names: Vec<&str> = ladder.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["source", "480p", "360p"]);

    let sink = Arc::new(RecordingSink::default());
    let options = TranscodeOptions::default();
    let tx = StreamTranscoder::start(
        "live/test",
        Some(&video),
        Some(&audio),
        &ladder,
        &EncoderProbe::software(),
        &options,
        sink.clone(),
    )
    .expect("start");
    for f in &src.frames {
        tx.push_wait(f.clone());
    }
    let stats = tx.finish();

    assert_eq!(sink.names(), ["360p", "480p", "audio", "source"]);

    // Copy rung: the source frames unchanged, with the source track.
    let copy = sink.get("source");
    let source_video: Vec<&Frame> = src.video_frames().collect();
    assert_eq!(copy.tracks, vec![video.clone()]);
    assert_eq!(copy.frames.len(), source_video.len());
    assert!(copy.frames.iter().zip(&source_video).all(|(a, b)| a == *b));

    let d = source_video[0].pts - source_video[0].dts;
    assert!(
        d > 0,
        "the fixture has B-frames, so its first keyframe has a composition offset"
    );
    let starts = expected_segment_starts(&source_video, 180_000);
    // FLV from the 2 s GOP fixture: DTS starts at 0, the first keyframe's PTS is its composition offset.
    assert_eq!(starts[0], d);
    assert!(starts.len() >= 3, "{starts:?}");
    assert!(
        starts.windows(2).all(|w| w[1] - w[0] == 180_000),
        "{starts:?}"
    );
    let mut source_pts: Vec<i64> = source_video.iter().map(|f| f.pts).collect();
    source_pts.sort_unstable();

    check_encoded_rung(
        &sink.get("480p"),
        &source_pts,
        d,
        &starts,
        (854, 480),
        "480p",
    );
    check_encoded_rung(
        &sink.get("360p"),
        &source_pts,
        d,
        &starts,
        (640, 360),
        "360p",
    );
    // The copy rung's keyframes at the segment starts have the same DTS as the encoded ones.
    for rung in ["480p", "360p"] {
        let rec = sink.get(rung);
        for k in rec.frames.iter().filter(|f| f.is_keyframe) {
            let c = copy.frames.iter().find(|f| f.pts == k.pts).unwrap();
            assert!(c.is_keyframe);
            assert_eq!(
                c.dts, k.dts,
                "{rung}: keyframe DTS (tfdt) matches the copy rung"
            );
        }
        let probed = probe_annex_b(&to_annex_b(&rec), "h264", rung);
        assert_eq!(probed.codec_name, "h264");
        assert_eq!(probed.frames as usize, source_pts.len());
        assert_eq!(
            probed.decode_errors, "",
            "{rung}: ffmpeg decodes without errors"
        );
        assert_eq!(
            (probed.width, probed.height),
            if rung == "480p" {
                (854, 480)
            } else {
                (640, 360)
            }
        );
        let CodecConfig::Avc(avc) = &rec.tracks[0].config else {
            panic!("avc")
        };
        assert_eq!(avc.profile_idc, 100, "high profile");
        assert!(avc.rfc6381().starts_with("avc1.64"));
    }

    // Audio: AAC-LC 48 kHz stereo, 1024 ticks apart, starting at the source's first audio PTS.
    let aud = sink.get("audio");
    let track = aud.tracks.last().unwrap();
    let CodecConfig::Aac(aac) = &track.config else {
        panic!("aac")
    };
    assert_eq!(
        (aac.object_type, aac.sample_rate, aac.channels),
        (2, 48_000, 2)
    );
    assert_eq!(track.timescale, 48_000);
    let first_src = src.audio_frames().next().unwrap();
    assert_eq!(
        aud.frames[0].pts,
        rescale(first_src.pts, src.audio.as_ref().unwrap().timescale, 48_000)
    );
    assert!(aud.frames.windows(2).all(|w| w[1].pts - w[0].pts == 1024));
    assert!(aud.frames.iter().all(|f| f.dts == f.pts && f.is_keyframe));
    let src_audio_s = src.audio_frames().count() as f64 * 1024.0 / 44_100.0;
    let out_audio_s = aud.frames.len() as f64 * 1024.0 / 48_000.0;
    assert!(
        (src_audio_s - out_audio_s).abs() < 0.1,
        "audio duration kept: {src_audio_s} s in, {out_audio_s} s out"
    );

    // Counters.
    assert_eq!(stats.video_frames_dropped, 0);
    assert_eq!(stats.decode_errors, 0);
    assert!(stats.shed_rungs.is_empty());
    for r in &stats.rungs {
        assert_eq!(r.frames_out as usize, source_video.len(), "{}", r.name);
        assert_eq!((r.frames_dropped, r.encode_errors), (0, 0), "{}", r.name);
        if r.name != "source" {
            assert_eq!(r.encoder, "libx264");
            assert_eq!(
                r.encoder_held_frames, 0,
                "zero-latency encoder holds no frames"
            );
        }
    }
    assert_eq!(stats.audio.frames_out as usize, aud.frames.len());
    println!(
        "default 720p ladder (480p+360p x264 veryfast + AAC), full speed: real-time factor {:.2} \
         ({:.2} s media in {:.2} s wall); encoder delay 480p {:.1} ms, 360p {:.1} ms",
        stats.real_time_factor,
        stats.media_processed.as_secs_f64(),
        stats.wall.as_secs_f64(),
        stats.rungs[1].encoder_delay_ms,
        stats.rungs[2].encoder_delay_ms,
    );
}

#[test]
fn hevc_rung_gives_hvc1_config_and_decodes() {
    let src = load_fixture(BBB, 4);
    let video = src.video.clone().unwrap();
    let mut ladder = default_ladder(video.config.video_params().unwrap());
    ladder.truncate(1); // source copy only
    ladder.push(encoded_rung("360p-hevc", 360, VideoCodec::Hevc, 500_000));
    let (tx, sink) = start_software(
        "live/hevc",
        Some(&video),
        None,
        &ladder,
        &TranscodeOptions::default(),
    );
    for f in src.video_frames() {
        tx.push_wait(f.clone());
    }
    let stats = tx.finish();
    assert_eq!(stats.rungs[1].encoder, "libx265");

    let rec = sink.get("360p-hevc");
    let track = rec.tracks.last().unwrap();
    let CodecConfig::Hevc(hevc) = &track.config else {
        panic!("hevc track expected")
    };
    assert!(hevc.rfc6381().starts_with("hvc1."), "{}", hevc.rfc6381());
    let reparsed = HevcConfig::parse(hevc.record.clone()).expect("hvcC parses");
    assert_eq!((reparsed.params.width, reparsed.params.height), (640, 360));
    assert!(!reparsed.vps.is_empty() && !reparsed.sps.is_empty() && !reparsed.pps.is_empty());

    let source_video: Vec<&Frame> = src.video_frames().collect();
    let d = source_video[0].pts - source_video[0].dts;
    let mut source_pts: Vec<i64> = source_video.iter().map(|f| f.pts).collect();
    source_pts.sort_unstable();
    let starts = expected_segment_starts(&source_video, 180_000);
    check_encoded_rung(&rec, &source_pts, d, &starts, (640, 360), "hevc");

    let probed = probe_annex_b(&to_annex_b(&rec), "hevc", "hevc");
    assert_eq!(probed.codec_name, "hevc");
    assert_eq!((probed.width, probed.height), (640, 360));
    assert_eq!(probed.frames as usize, source_pts.len());
    assert_eq!(probed.decode_errors, "");
}

#[test]
fn without_copy_rung_keyframes_follow_a_time_grid_and_frame_rate_cap_applies() {
    let src = load_fixture(BBB, 4);
    let video = src.video.clone().unwrap();
    let mut capped = encoded_rung("240p", 240, VideoCodec::H264, 300_000);
    capped.max_frame_rate = Some(12.0);
    let ladder = vec![encoded_rung("360p", 360, VideoCodec::H264, 700_000), capped];
    let sink = Arc::new(RecordingSink::default());
    let options = TranscodeOptions {
        segment_target: Duration::from_millis(1000),
        ..TranscodeOptions::default()
    };
    let tx = StreamTranscoder::start(
        "live/grid",
        Some(&video),
        None,
        &ladder,
        &EncoderProbe::software(),
        &options,
        sink.clone(),
    )
    .expect("start");
    for f in src.video_frames() {
        tx.push_wait(f.clone());
    }
    tx.finish();

    let mut pts: Vec<i64> = src.video_frames().map(|f| f.pts).collect();
    pts.sort_unstable();
    // A pure 1 s grid over the decoded pictures (presentation order).
    let mut expected = Vec::new();
    for p in &pts {
        if expected.last().is_none_or(|l: &i64| p - l >= 90_000 - 180) {
            expected.push(*p);
        }
    }
    assert_eq!(keyframe_pts(&sink.get("360p")), expected);
    let capped = sink.get("240p");
    assert_eq!(
        keyframe_pts(&capped),
        expected,
        "forced keyframes survive the cap"
    );
    let n = capped.frames.len();
    // 24 fps capped to 12 fps: about half the pictures.
    assert!(
        n >= pts.len() / 2 - 2 && n <= pts.len() / 2 + expected.len(),
        "{n} of {}",
        pts.len()
    );
    assert!(capped.frames.windows(2).all(|w| w[1].dts > w[0].dts));
}

#[test]
fn bad_input_is_skipped_and_later_good_frames_still_encode() {
    let src = load_fixture(BBB, 4);
    let video = src.video.clone().unwrap();
    let audio = src.audio.clone().unwrap();
    let ladder = vec![encoded_rung("360p", 360, VideoCodec::H264, 700_000)];
    let (tx, sink) = start_software(
        "live/bad",
        Some(&video),
        Some(&audio),
        &ladder,
        &TranscodeOptions::default(),
    );
    // Deterministic garbage (xorshift), some of it claiming to be keyframes.
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut noise = |len: usize| -> bytes::Bytes {
        (0..len)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state as u8
            })
            .collect()
    };
    for i in 0..30i64 {
        tx.push_wait(Frame {
            track: TrackKind::Video,
            dts: i * 3750,
            pts: i * 3750,
            is_keyframe: i % 10 == 0,
            data: noise(200 + (i as usize * 37) % 900),
        });
        tx.push_wait(Frame {
            track: TrackKind::Audio,
            dts: i * 1024,
            pts: i * 1024,
            is_keyframe: true,
            data: noise(100 + (i as usize * 13) % 300),
        });
    }
    // Then the real stream, 10 s later on the timeline.
    let offset_90khz = 900_000;
    let offset_audio = 441_000;
    for f in &src.frames {
        let mut f = f.clone();
        let off = if f.track == TrackKind::Video {
            offset_90khz
        } else {
            offset_audio
        };
        f.pts += off;
        f.dts += off;
        tx.push_wait(f);
    }
    let stats = tx.finish();
    assert!(stats.decode_errors > 0, "garbage was rejected: {stats:?}");
    let rec = sink.get("360p");
    let good_pts: BTreeSet<i64> = src.video_frames().map(|f| f.pts + offset_90khz).collect();
    assert!(
        rec.frames.len() >= good_pts.len() - 1,
        "{} frames out",
        rec.frames.len()
    );
    let good_out = rec
        .frames
        .iter()
        .filter(|f| good_pts.contains(&f.pts))
        .count();
    assert!(good_out >= good_pts.len() - 1);
    assert!(rec.frames.windows(2).all(|w| w[1].dts > w[0].dts));
    let first_good = rec
        .frames
        .iter()
        .find(|f| good_pts.contains(&f.pts))
        .unwrap();
    assert!(first_good.is_keyframe, "the first good picture is an IDR");
    let aud = sink.get("audio");
    assert!(
        aud.frames.len() > 100,
        "audio recovered: {} frames",
        aud.frames.len()
    );
}

#[test]
fn overload_sheds_the_lowest_priority_rung_one_stream_at_a_time_and_keeps_memory_bounded() {
    let src = load_fixture(BBB, 4);
    let video = src.video.clone().unwrap();
    let mut ladder = default_ladder(video.config.video_params().unwrap());
    assert_eq!(ladder[1].name, "480p");
    assert!(ladder[1].priority < ladder[2].priority);
    // Make it expensive so a 2-core machine cannot keep up with frames pushed without pacing.
    ladder[1].preset = Some("medium".into());
    // Two streams of one process: their options share one shedding gate (settling time: two
    // segment targets, 2 s).
    let options = TranscodeOptions {
        segment_target: Duration::from_millis(1000),
        queue_frames: 16,
        ..TranscodeOptions::default()
    };
    let streams: Vec<(StreamTranscoder, Arc<RecordingSink>)> = ["live/overload", "live/overload-2"]
        .into_iter()
        .map(|name| start_software(name, Some(&video), None, &ladder, &options))
        .collect();
    let started = Instant::now();
    let frames: Vec<&Frame> = src.video_frames().collect();
    let span_90khz = 4 * 90_000;
    let mut round = 0i64;
    let mut first_shed: Option<Instant> = None;
    'outer: while started.elapsed() < Duration::from_secs(30) {
        for f in &frames {
            let mut f = (*f).clone();
            f.pts += round * span_90khz;
            f.dts += round * span_90khz;
            for (tx, _) in &streams {
                tx.push(f.clone());
            }
            // About 8× real time each: far more than two cores encode, without spinning.
            std::thread::sleep(Duration::from_millis(5));
            if first_shed.is_none()
                && streams
                    .iter()
                    .any(|(tx, _)| !tx.stats().shed_rungs.is_empty())
            {
                first_shed = Some(Instant::now());
            }
            // Both stay overloaded for 1 s more: within the gate's 2 s, the other must not shed.
            if first_shed.is_some_and(|t| t.elapsed() >= Duration::from_secs(1)) {
                break 'outer;
            }
        }
        round += 1;
    }
    let all: Vec<TranscodeStats> = streams.iter().map(|(tx, _)| tx.stats()).collect();
    let shed: Vec<usize> = (0..all.len())
        .filter(|i| !all[*i].shed_rungs.is_empty())
        .collect();
    assert_eq!(
        shed.len(),
        1,
        "one stream sheds, the other waits for the gate: {all:?}"
    );
    let (tx, sink) = streams.into_iter().nth(shed[0]).unwrap();
    let stats = tx.stats();
    assert_eq!(
        stats.shed_rungs.first().map(String::as_str),
        Some("480p"),
        "{stats:?}"
    );
    let dropped =
        stats.video_frames_dropped + stats.rungs.iter().map(|r| r.frames_dropped).sum::<u64>();
    assert!(
        dropped > 0,
        "overflow dropped frames instead of queueing them"
    );
    assert!(stats.rungs[1].is_shed && !stats.rungs[0].is_shed);
    let t = Instant::now();
    drop(tx);
    assert!(t.elapsed() < Duration::from_secs(5), "drop joins promptly");
    let frames_after = sink.get("480p").frames.len();
    assert!(frames_after as u64 <= stats.rungs[1].frames_out + 16);
}

#[test]
fn drop_stops_the_threads_without_finish() {
    let src = load_fixture(BBB, 4);
    let video = src.video.clone().unwrap();
    let audio = src.audio.clone().unwrap();
    let ladder = default_ladder(video.config.video_params().unwrap());
    let (tx, _sink) = start_software(
        "live/drop",
        Some(&video),
        Some(&audio),
        &ladder,
        &TranscodeOptions::default(),
    );
    for f in src.frames.iter().take(100) {
        tx.push(f.clone());
    }
    let t = Instant::now();
    drop(tx);
    assert!(t.elapsed() < Duration::from_secs(5));
}

#[test]
fn start_rejects_an_invalid_ladder_and_unknown_encoder() {
    let src = load_fixture(BBB, 4);
    let video = src.video.clone().unwrap();
    let sink = Arc::new(RecordingSink::default());
    let mut bad = encoded_rung("a", 360, VideoCodec::H264, 500_000);
    bad.height = None;
    let err = StreamTranscoder::start(
        "live/x",
        Some(&video),
        None,
        &[bad],
        &EncoderProbe::software(),
        &TranscodeOptions::default(),
        sink.clone(),
    )
    .unwrap_err();
    assert!(err.to_string().contains("invalid ladder"), "{err}");
    let probe = EncoderProbe {
        h264: "no_such_encoder".into(),
        hevc: "libx265".into(),
    };
    let err = StreamTranscoder::start(
        "live/x",
        Some(&video),
        None,
        &[encoded_rung("a", 360, VideoCodec::H264, 500_000)],
        &probe,
        &TranscodeOptions::default(),
        sink.clone(),
    )
    .unwrap_err();
    assert!(err.to_string().contains("no_such_encoder"), "{err}");
    let mut bad_preset = encoded_rung("a", 360, VideoCodec::H264, 500_000);
    bad_preset.preset = Some("warp-speed".into());
    let err = StreamTranscoder::start(
        "live/x",
        Some(&video),
        None,
        &[bad_preset],
        &EncoderProbe::software(),
        &TranscodeOptions::default(),
        sink.clone(),
    )
    .unwrap_err();
    assert!(err.to_string().contains("unknown preset"), "{err}");
    let mut bad_profile = encoded_rung("a", 360, VideoCodec::H264, 500_000);
    bad_profile.profile = Some("ultra-high".into());
    let err = StreamTranscoder::start(
        "live/x",
        Some(&video),
        None,
        &[bad_profile],
        &EncoderProbe::software(),
        &TranscodeOptions::default(),
        Arc::new(RecordingSink::default()),
    )
    .unwrap_err();
    assert!(err.to_string().contains("profile \"ultra-high\""), "{err}");
}

#[test]
fn audio_passthrough_forwards_source_frames_and_track() {
    let src = load_fixture(BBB, 4);
    let audio = src.audio.clone().unwrap();
    let sink = Arc::new(RecordingSink::default());
    let mut options = TranscodeOptions::default();
    options.audio.mode = transcoder::AudioMode::Passthrough;
    let tx = StreamTranscoder::start(
        "live/pass",
        src.video.as_ref(),
        Some(&audio),
        &default_ladder(src.video.as_ref().unwrap().config.video_params().unwrap())[..1],
        &EncoderProbe::software(),
        &options,
        sink.clone(),
    )
    .expect("start");
    for f in &src.frames {
        tx.push(f.clone());
    }
    let stats = tx.finish();
    let aud = sink.get("audio");
    assert_eq!(aud.tracks, vec![audio]);
    let source_audio: Vec<Frame> = src.audio_frames().cloned().collect();
    assert_eq!(aud.frames, source_audio);
    assert_eq!(stats.audio.frames_out as usize, source_audio.len());
    assert_eq!(sink.names(), ["audio", "source"]);
}

#[test]
fn track_change_reopens_the_decoder_and_output_continues() {
    let src = load_fixture(BBB, 4);
    let video = src.video.clone().unwrap();
    let audio = src.audio.clone().unwrap();
    let ladder = default_ladder(video.config.video_params().unwrap());
    let (tx, sink) = start_software(
        "live/change",
        Some(&video),
        Some(&audio),
        &ladder,
        &TranscodeOptions::default(),
    );
    // First 2 s, then a (re-sent) configuration, then the rest from the next keyframe on.
    let second_gop = src
        .frames
        .iter()
        .position(|f| f.track == TrackKind::Video && f.is_keyframe && f.dts > 0)
        .unwrap();
    for f in &src.frames[..second_gop] {
        tx.push_wait(f.clone());
    }
    tx.set_track(&video);
    tx.set_track(&audio);
    for f in &src.frames[second_gop..] {
        tx.push_wait(f.clone());
    }
    let stats = tx.finish();
    assert_eq!(stats.decode_errors, 0, "{stats:?}");
    assert_eq!(
        sink.get("source").tracks.len(),
        2,
        "copy rung got the new track"
    );
    let n = src.video_frames().count();
    for rung in ["480p", "360p"] {
        let rec = sink.get(rung);
        assert!(
            rec.frames.len() >= n - 3,
            "{rung}: {} of {n}",
            rec.frames.len()
        );
        assert!(rec.frames.windows(2).all(|w| w[1].dts > w[0].dts));
    }
    let aud = sink.get("audio");
    assert!(aud.frames.windows(2).all(|w| w[1].pts - w[0].pts == 1024));
}

/// The source measured before the ladder starts: the 2 s-GOP fixture fits the 2 s grid (24 fps, its
/// keyframe at 2 s is an IDR); the same picture with x264's 250-frame interval (OBS's default) and
/// scene cuts does not.
#[test]
fn source_probe_measures_rate_bit_rate_and_whether_keyframes_fit_the_grid() {
    let measure = |src: &crate::common::Source| {
        let mut probe = SourceProbe::new(
            Duration::from_secs(2),
            src.video.as_ref(),
            src.audio.as_ref(),
        );
        let mut held_when_done = None;
        for f in &src.frames {
            if probe.push(f.clone()) {
                held_when_done = Some(f.pts);
                break;
            }
        }
        assert!(
            held_when_done.is_some(),
            "the probe finishes within the clip"
        );
        let (facts, held) = probe.finish();
        (facts, held)
    };
    let (facts, held) = measure(&load_fixture(BBB, 4));
    assert_eq!(facts.frame_rate, Some((24, 1)));
    assert!(facts.keyframes_fit_grid);
    let clock = facts.clock.expect("a grid");
    assert_eq!(clock.point_90khz(1) - clock.anchor_90khz(), 180_000);
    let bps = facts.video_bitrate_bps.expect("bit rate");
    assert!((300_000..3_000_000).contains(&bps), "{bps} bit/s");
    // About one segment of video (and its audio) is held, nothing beyond ~2.2 s.
    let held_video = held.iter().filter(|f| f.track == TrackKind::Video).count();
    assert!(
        (48..=60).contains(&held_video),
        "{held_video} video frames held"
    );

    let obs = encode_fixture(BBB, 6, "g250", &["-g", "250", "-sc_threshold", "40"]);
    let (facts, _) = measure(&obs);
    assert_eq!(facts.frame_rate, Some((24, 1)));
    assert!(
        !facts.keyframes_fit_grid,
        "a 250-frame GOP does not fit a 2 s grid"
    );
}

/// A copied source whose keyframe interval changes (2 s, then 1.5 s: as after an x264 scene cut) is
/// forwarded while its IDRs land on the grid, and at the first grid point without one its fallback
/// encoder takes the rendition's name: the copy stops there, `replace_track` comes, and the encoded
/// frames begin with an IDR on that grid point and keep one on every later point.
#[test]
fn copy_rung_is_replaced_by_its_fallback_where_the_source_leaves_the_grid() {
    let src = encode_fixture(
        BBB,
        10,
        "keys-0-2-4-5.5",
        &[
            "-force_key_frames",
            "0,2,4,5.5,7,8.5",
            "-x264-params",
            "keyint=1000:min-keyint=1:scenecut=0",
        ],
    );
    let video = src.video.clone().unwrap();
    let audio = src.audio.clone().unwrap();
    let params = video.config.video_params().unwrap();
    let ladder = vec![
        // The default ladder's copy rung.
        default_ladder(params).remove(0),
        encoded_rung("120p", 120, VideoCodec::H264, 150_000),
    ];
    let fallback = RungConfig {
        name: "source".into(),
        height: Some(params.height),
        ..encoded_rung("source", params.height, VideoCodec::H264, 300_000)
    };
    let sink = Arc::new(RecordingSink::default());
    let options = TranscodeOptions {
        copy_fallback: Some(fallback),
        ..TranscodeOptions::default()
    };
    let tx = StreamTranscoder::start(
        "live/test",
        Some(&video),
        Some(&audio),
        &ladder,
        &EncoderProbe::software(),
        &options,
        sink.clone(),
    )
    .expect("start");
    for f in &src.frames {
        tx.push_wait(f.clone());
    }
    let stats = tx.finish();
    let first_pts = src.video_frames().next().unwrap().pts;
    let rec = sink.get("source");
    assert_eq!(rec.replaced.len(), 1, "one takeover");
    let (at, _) = rec.replaced[0];
    let (copied, encoded) = rec.frames.split_at(at);
    // The copy ran up to 6 s (grid point 3), where the source had no keyframe. (The B-frames just
    // before 6 s come after the first frame past it in decode order and reference it: they go with it.)
    let last_copied = copied.iter().map(|f| f.pts).max().unwrap() - first_pts;
    assert!(
        (6 * 90_000 - 4 * 3_750..6 * 90_000).contains(&last_copied),
        "last copied frame at {last_copied}"
    );
    let copied_keys: Vec<i64> = copied
        .iter()
        .filter(|f| f.is_keyframe)
        .map(|f| (f.pts - first_pts) / 90)
        .collect();
    assert_eq!(
        copied_keys,
        [0, 2000, 4000, 5500],
        "the source's own keyframes, copied"
    );
    // The encoder starts on the grid point with an IDR and has keyframes only on grid points.
    assert!(encoded[0].is_keyframe);
    assert_eq!(
        encoded.iter().map(|f| f.pts).min().unwrap() - first_pts,
        6 * 90_000
    );
    let keys: Vec<i64> = encoded
        .iter()
        .filter(|f| f.is_keyframe)
        .map(|f| f.pts - first_pts)
        .collect();
    assert_eq!(keys, [6 * 90_000, 8 * 90_000], "fallback keyframes");
    // Every fallback IDR carries the fallback's own SPS and PPS in-band (a client that keeps the copy's
    // init segment across the discontinuity decodes with them); copied samples are untouched.
    let CodecConfig::Avc(new_avcc) = &rec.replaced[0].1.config else {
        panic!("the fallback's track is H.264")
    };
    let nal_units = |data: &[u8]| {
        let mut out = Vec::new();
        let mut rest = data;
        while rest.len() >= 4 {
            let len = u32::from_be_bytes(rest[..4].try_into().unwrap()) as usize;
            out.push(rest[4..4 + len].to_vec());
            rest = &rest[4 + len..];
        }
        out
    };
    for key in encoded.iter().filter(|f| f.is_keyframe) {
        let nals = nal_units(&key.data);
        assert!(nals.contains(&new_avcc.sps[0].to_vec()), "in-band SPS");
        assert!(nals.contains(&new_avcc.pps[0].to_vec()), "in-band PPS");
        let first_slice = nals
            .iter()
            .position(|n| matches!(n[0] & 0x1f, 1 | 5))
            .unwrap();
        let sps_at = nals.iter().position(|n| n[0] & 0x1f == 7).unwrap();
        assert!(sps_at < first_slice, "parameter sets before the slices");
    }
    for (f, s) in copied.iter().zip(src.video_frames()) {
        assert_eq!(f.data, s.data, "copied samples as they came");
    }
    let lower: Vec<i64> = sink
        .get("120p")
        .frames
        .iter()
        .filter(|f| f.is_keyframe)
        .map(|f| f.pts - first_pts)
        .collect();
    assert_eq!(lower, [0, 180_000, 360_000, 540_000, 720_000]);
    let copy_stats = stats
        .rungs
        .iter()
        .find(|r| r.name == "source" && r.encoder == "copy")
        .unwrap();
    assert!(copy_stats.is_replaced);
    assert!(
        stats
            .rungs
            .iter()
            .any(|r| r.name == "source" && r.encoder == "libx264" && r.frames_out > 0),
        "{:?}",
        stats.rungs
    );
}

/// A transcoder on the software encoders with `ladder` and `options`, recording into a fresh sink.
fn start_software(
    name: &str,
    video: Option<&media::TrackInfo>,
    audio: Option<&media::TrackInfo>,
    ladder: &[RungConfig],
    options: &TranscodeOptions,
) -> (StreamTranscoder, Arc<RecordingSink>) {
    let sink = Arc::new(RecordingSink::default());
    let tx = StreamTranscoder::start(
        name,
        video,
        audio,
        ladder,
        &EncoderProbe::software(),
        options,
        sink.clone(),
    )
    .expect("start");
    (tx, sink)
}

/// A transcoder with the source's audio only (no video, no rung), recording into a fresh sink.
fn start_audio_only(audio: &media::TrackInfo) -> (StreamTranscoder, Arc<RecordingSink>) {
    start_software(
        "live/test",
        None,
        Some(audio),
        &[],
        &TranscodeOptions::default(),
    )
}

/// Audio missing for 2.5 s (a publisher's hiccup): the transcoded audio fills the gap with silence,
/// so its timeline stays continuous (AAC frames 1024 samples apart throughout) and its segments keep
/// lining up with the video's; the fill is counted.
#[test]
fn audio_gap_is_filled_with_silence() {
    let src = load_fixture(BBB, 8);
    let audio = src.audio.clone().unwrap();
    let (tx, sink) = start_audio_only(&audio);
    let ts = i64::from(audio.timescale);
    for f in src.audio_frames() {
        if (3 * ts..11 * ts / 2).contains(&f.pts) {
            continue;
        }
        tx.push_wait(f.clone());
    }
    let stats = tx.finish();
    let out = sink.get("audio");
    assert!(out.frames.len() > 300, "{} frames", out.frames.len());
    for w in out.frames.windows(2) {
        assert_eq!(w[1].pts - w[0].pts, 1024, "output audio continuous");
    }
    let span = out.frames.last().unwrap().pts - out.frames[0].pts;
    assert!(
        span > 7 * 48_000,
        "{span} ticks: the gap was filled, not skipped"
    );
    assert_eq!(stats.audio.gaps_filled, 1);
}

/// Three frames lost at three places (about 70 ms each, as after SRT packet loss): each gap is filled
/// with silence, so the audio after it stays where the source put it (without the fill, every loss
/// would move the rest of the audio earlier against the video, by 210 ms in all here).
#[test]
fn a_few_lost_audio_frames_keep_the_audio_in_place() {
    let src = load_fixture(BBB, 8);
    let audio = src.audio.clone().unwrap();
    let (tx, sink) = start_audio_only(&audio);
    let frames: Vec<&Frame> = src.audio_frames().collect();
    let lost = |i: usize| [50, 120, 200].iter().any(|&at| (at..at + 3).contains(&i));
    for (i, f) in frames.iter().enumerate() {
        if !lost(i) {
            tx.push_wait((*f).clone());
        }
    }
    let stats = tx.finish();
    let out = sink.get("audio");
    for w in out.frames.windows(2) {
        assert_eq!(w[1].pts - w[0].pts, 1024, "output audio continuous");
    }
    let source_span = rescale(
        frames.last().unwrap().pts - frames[0].pts,
        audio.timescale,
        48_000,
    );
    let out_span = out.frames.last().unwrap().pts - out.frames[0].pts;
    assert!(
        (out_span - source_span).abs() <= 2 * 1024,
        "output spans {out_span} samples, the source {source_span}: the audio kept its place"
    );
    assert_eq!(stats.audio.gaps_filled, 3);
}

/// The source's audio stops arriving at 2 s while the video goes on, and comes back late, in a burst
/// (everything from 2 s on, once the video is at 6 s): silence is emitted while the video goes on,
/// keeping the audio rendition within about a second of the video before any of the burst arrives;
/// the burst's frames for the time already sent as silence are dropped, the rest continue in place.
#[test]
fn audio_missing_while_the_video_goes_on_is_filled_before_it_returns() {
    let src = load_fixture(BBB, 8);
    let video = src.video.clone().unwrap();
    let audio = src.audio.clone().unwrap();
    let (tx, sink) = start_software(
        "live/test",
        Some(&video),
        Some(&audio),
        &[encoded_rung("120p", 120, VideoCodec::H264, 150_000)],
        &TranscodeOptions::default(),
    );
    let (vts, ats) = (i64::from(video.timescale), i64::from(audio.timescale));
    let v0 = src.video_frames().next().unwrap().pts;
    let a0 = src.audio_frames().next().unwrap().pts;
    let mut held = Vec::new();
    let mut released = false;
    let first_out = || sink.get("audio").frames.first().map(|f| f.pts);
    let out_reach = || {
        let out = sink.get("audio").frames;
        match (out.first(), out.last()) {
            (Some(a), Some(b)) => b.pts + 1024 - a.pts,
            _ => 0,
        }
    };
    for f in &src.frames {
        match f.track {
            TrackKind::Audio if !released && f.pts - a0 >= 2 * ats => held.push(f.clone()),
            TrackKind::Video if !released && f.pts - v0 >= 6 * vts => {
                // Before the burst: the audio rendition already reaches 4.5 to 5 s (6 s of video,
                // less the one-second wait and the 100 ms steps), all of it silence past 2 s.
                let deadline = Instant::now() + Duration::from_secs(20);
                while out_reach() < 4_500 * 48 && Instant::now() < deadline {
                    std::thread::sleep(Duration::from_millis(20));
                }
                assert!(first_out().is_some());
                let reach = out_reach();
                assert!(
                    (4_500 * 48..=5_300 * 48).contains(&reach),
                    "audio rendition reaches {} ms before the source's audio came back",
                    reach / 48
                );
                released = true;
                for h in held.drain(..) {
                    tx.push_wait(h);
                }
                tx.push_wait(f.clone());
            }
            _ => tx.push_wait(f.clone()),
        }
    }
    let stats = tx.finish();
    let out = sink.get("audio");
    for w in out.frames.windows(2) {
        assert_eq!(w[1].pts - w[0].pts, 1024, "output audio continuous");
    }
    let last_source = src.audio_frames().last().unwrap().pts - a0;
    let out_span = out.frames.last().unwrap().pts - out.frames[0].pts;
    assert!(
        (out_span - rescale(last_source, audio.timescale, 48_000)).abs() <= 2 * 1024,
        "output spans {out_span} samples: the audio after the burst is in place"
    );
    assert_eq!(stats.audio.gaps_filled, 1);
    // About 3 s of the burst (2 s to ~5 s) came for time already sent as silence.
    let dropped_ms = stats.audio.frames_dropped as i64 * 1024 * 1000 / i64::from(audio.timescale);
    assert!(
        (2_600..=3_400).contains(&dropped_ms),
        "{} late frames dropped ({dropped_ms} ms)",
        stats.audio.frames_dropped
    );
}
