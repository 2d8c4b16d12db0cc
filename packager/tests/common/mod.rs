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
