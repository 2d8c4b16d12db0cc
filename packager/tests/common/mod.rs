//! Synthetic streams shared by the packager's integration tests.
#![allow(dead_code)]

use bytes::Bytes;
use media::{
    CodecConfig, Frame, TrackInfo, TrackKind, VideoParams, aac::AacConfig, avc::AvcConfig,
};
use packager::{PackagerConfig, StreamPackager};

pub fn video_track() -> TrackInfo {
    TrackInfo::new(CodecConfig::Avc(AvcConfig {
        record: Bytes::from_static(&[1, 0x64, 0, 0x1f, 0xff, 0xe0, 0]),
        profile_idc: 0x64,
        constraint_flags: 0,
        level_idc: 0x1f,
        nal_length_size: 4,
        sps: vec![],
        pps: vec![],
        params: VideoParams {
            width: 1280,
            height: 720,
            frame_rate: Some((30, 1)),
        },
    }))
}

/// The same H.264 stream after the encoder switched to 640x360 (a new sequence header).
pub fn video_track_360p() -> TrackInfo {
    let mut t = video_track();
    if let CodecConfig::Avc(c) = &mut t.config {
        c.params = VideoParams {
            width: 640,
            height: 360,
            frame_rate: Some((30, 1)),
        };
        c.record = Bytes::from_static(&[1, 0x64, 0, 0x1e, 0xff, 0xe0, 0]);
    }
    t
}

pub fn audio_track() -> TrackInfo {
    TrackInfo::new(CodecConfig::Aac(AacConfig {
        asc: Bytes::from_static(&[0x11, 0x90]),
        object_type: 2,
        sample_rate: 48_000,
        channels: 2,
        samples_per_frame: 1024,
    }))
}

pub fn vframe(dts: i64, cts: i64, key: bool) -> Frame {
    Frame {
        track: TrackKind::Video,
        dts,
        pts: dts + cts,
        is_keyframe: key,
        data: Bytes::from(vec![0u8, 0, 0, 4, 0x65, 1, 2, 3]),
    }
}

pub fn aframe(dts: i64) -> Frame {
    Frame {
        track: TrackKind::Audio,
        dts,
        pts: dts,
        is_keyframe: true,
        data: Bytes::from_static(&[0x21, 0x10, 0x04]),
    }
}

/// Feed `secs` seconds of 30 fps video (keyframe every `gop` frames, ms-rounded timestamps like RTMP) and
/// 48 kHz AAC, interleaved by time.
pub fn feed(p: &mut StreamPackager, secs: f64, gop: u64, start_ms: i64) {
    let frames = (secs * 30.0) as u64;
    let mut a = 0i64;
    for i in 0..frames {
        let ms = start_ms + (i as f64 * 1000.0 / 30.0).round() as i64;
        while (a * 1024 * 1000 / 48_000) < ms - start_ms {
            p.push_frame(aframe(start_ms * 48 + a * 1024), 1_700_000_000_000 + ms);
            a += 1;
        }
        p.push_frame(
            vframe(ms * 90, if i % 3 == 1 { 6000 } else { 3000 }, i % gop == 0),
            1_700_000_000_000 + ms,
        );
        p.check_invariants().unwrap();
    }
}

pub fn packager(config: PackagerConfig) -> StreamPackager {
    let mut p = StreamPackager::new(config, 1000);
    p.set_track(video_track());
    p.set_track(audio_track());
    p
}

/// An encoded rung's track: H.264 at `width`×`height`, `level` (level_idc), 30 fps.
pub fn rung_track(width: u32, height: u32, level: u8) -> TrackInfo {
    let mut t = video_track();
    if let CodecConfig::Avc(c) = &mut t.config {
        c.params = VideoParams {
            width,
            height,
            frame_rate: Some((30, 1)),
        };
        c.level_idc = level;
        c.record = Bytes::from(vec![1, 0x64, 0, level, 0xff, 0xe0, 0]);
    }
    t
}

/// A transcoded ladder's packager (first msn `first_msn`): the 30 fps, 2 s producer grid anchored at
/// the source's first keyframe (PTS 3000 ticks), renditions `source` (720p), `360p` and `audio`.
pub fn ladder_packager(first_msn: u64) -> StreamPackager {
    let mut p = StreamPackager::new(PackagerConfig::default(), first_msn);
    p.set_segment_clock(Some(media::SegmentClock::new(
        3000,
        std::time::Duration::from_secs(2),
        Some((30, 1)),
    )));
    p.set_rendition_track("source", video_track());
    p.set_rendition_track("audio", audio_track());
    p.set_rendition_track("360p", rung_track(640, 360, 0x1e));
    p
}

/// The time in ms (whole, as RTMP carries it) of frame `i` at 30 fps.
pub fn frame_ms(i: u64) -> i64 {
    (i as f64 * 1000.0 / 30.0).round() as i64
}

/// Feed `frames` 30 fps frames: before each, the 48 kHz AAC frames due `audio_lead_ms` ahead (as
/// rendition `audio`, unless `skip_audio` says to leave one out), then `video(p, i, ms, now)`; the
/// invariants are checked after each frame.
pub fn feed_ladder(
    p: &mut StreamPackager,
    frames: u64,
    audio_lead_ms: i64,
    skip_audio: impl Fn(i64) -> bool,
    mut video: impl FnMut(&mut StreamPackager, u64, i64, i64),
) {
    let mut a = 0i64;
    for i in 0..frames {
        let ms = frame_ms(i);
        let now = 1_700_000_000_000 + ms;
        while a * 1024 * 1000 / 48_000 < ms + audio_lead_ms {
            if !skip_audio(a * 1024 * 1000 / 48_000) {
                p.push_rendition_frame("audio", aframe(a * 1024), now);
            }
            a += 1;
        }
        video(p, i, ms, now);
        p.check_invariants().unwrap();
    }
}

/// Push video frame `i` (at `ms`, a keyframe if `key`) to both video renditions of
/// [`ladder_packager`], `source` and `360p`, encoded in step.
pub fn push_ladder_video(p: &mut StreamPackager, ms: i64, key: bool, now: i64) {
    p.push_rendition_frame("source", vframe(ms * 90, 3000, key), now);
    p.push_rendition_frame("360p", vframe(ms * 90, 3000, key), now);
}

/// Record the preload hint (rendition, msn, part) of every rendition of a ready `p` into `hints`.
pub fn record_preload_hints(p: &StreamPackager, hints: &mut Vec<(String, u64, usize)>) {
    if p.is_ready() {
        for r in p.renditions() {
            if let Some((m, part)) = packager::hls::preload_hint(p, r) {
                hints.push((r.name().to_owned(), m, part));
            }
        }
    }
}

/// Every hinted part of a segment that completed came to exist (no hint into a part that a cut made
/// impossible).
pub fn assert_hinted_parts_came(p: &StreamPackager, hints: &[(String, u64, usize)]) {
    for (name, m, part) in hints {
        let r = p.rendition(name).unwrap();
        if r.segment(*m).is_some_and(|s| s.is_complete) {
            assert!(
                r.part(*m, *part).is_some(),
                "{name}: hinted {m}.{part} never came"
            );
        }
    }
}

/// Each complete audio segment after the first (msn, start in 90 kHz ticks, ...) starts within half
/// an AAC frame (1024 samples at 48 kHz) of the video segment with the same msn in `video`.
pub fn assert_audio_starts_with_video(
    audio: &[(u64, i64, bool, i64)],
    video: &[(u64, i64, bool, i64)],
) {
    for (m, pts, ..) in audio.iter().skip(1) {
        let v = video.iter().find(|s| s.0 == *m).expect("same msn in video");
        assert!(
            (pts - v.1).abs() <= 90_000 * 1024 / 48_000 / 2 + 1,
            "audio msn {m} at {pts}, video at {}",
            v.1
        );
    }
}
