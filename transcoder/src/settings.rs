//! Encoder settings per rung: the FFmpeg options every encoded rung is opened with.
//!
//! Low latency by default (x264/x265 `tune=zerolatency`: no lookahead, no B-frames, no frame
//! threading delay), constant-ish bit rate with a VBV (`b`, `maxrate`, `bufsize`), closed GOPs and no
//! scene-cut keyframes; keyframes are forced by the transcoder (IDR, `forced-idr=1`) on the segment
//! grid, so the natural keyframe interval is set far beyond it (10 × the segment target).

use std::time::Duration;

use crate::{RungConfig, VideoCodec};

/// Default encoder preset.
pub(crate) const DEFAULT_PRESET: &str = "veryfast";
/// Natural keyframe interval as a multiple of the segment target (forced keyframes come first).
const KEYINT_SEGMENTS: f64 = 10.0;

/// Default profile per codec: `high` for H.264, `main` for HEVC.
pub(crate) fn default_profile(codec: VideoCodec) -> &'static str {
    match codec {
        VideoCodec::H264 => "high",
        VideoCodec::Hevc => "main",
    }
}

/// The natural keyframe interval in frames: 10 segment targets at `fps` (at least 1).
pub(crate) fn keyint_frames(segment_target: Duration, fps: f64) -> u32 {
    let fps = if fps.is_finite() && fps > 0.0 {
        fps
    } else {
        30.0
    };
    (segment_target.as_secs_f64() * KEYINT_SEGMENTS * fps)
        .ceil()
        .clamp(1.0, 100_000.0) as u32
}

/// Encoder threads for an output `height`: 1 up to 720 lines (no frame-threading delay, the rungs of a
/// ladder already run in parallel), 2 above.
pub(crate) fn encoder_threads(height: u32) -> u32 {
    if height > 720 { 2 } else { 1 }
}

/// Rate control of a rung: (bit rate, max rate, buffer size), in bits per second and bits.
pub(crate) fn rate_control(rung: &RungConfig) -> (u64, u64, u64) {
    let bitrate = rung.bitrate_bps;
    let maxrate = if rung.maxrate_bps == 0 {
        bitrate
    } else {
        rung.maxrate_bps.max(bitrate)
    };
    let bufsize = if rung.bufsize_bits == 0 {
        maxrate * 2
    } else {
        rung.bufsize_bits
    };
    (bitrate, maxrate, bufsize)
}

/// Map an x264-style preset name to NVENC's `p1` (fastest) .. `p7` (slowest); `p1`..`p7` pass through.
fn nvenc_preset(preset: &str) -> &'static str {
    match preset {
        "p1" | "ultrafast" => "p1",
        "p2" | "superfast" | "veryfast" => "p2",
        "p3" | "faster" | "fast" => "p3",
        "p4" | "medium" => "p4",
        "p5" | "slow" => "p5",
        "p6" | "slower" => "p6",
        "p7" | "veryslow" | "placebo" => "p7",
        _ => "p2",
    }
}

/// The FFmpeg options (`avcodec_open2` dictionary: generic `AVCodecContext` options and the encoder's
/// private ones) for a rung encoded with `encoder` (`libx264`, `libx265`, `h264_nvenc`, `hevc_nvenc`).
pub(crate) fn video_encoder_options(
    encoder: &str,
    rung: &RungConfig,
    height: u32,
    keyint: u32,
) -> Vec<(&'static str, String)> {
    let (bitrate, maxrate, bufsize) = rate_control(rung);
    let preset = rung.preset.as_deref().unwrap_or(DEFAULT_PRESET);
    let profile = rung
        .profile
        .clone()
        .unwrap_or_else(|| default_profile(rung.codec).to_string());
    let mut o: Vec<(&'static str, String)> = vec![
        ("b", bitrate.to_string()),
        ("maxrate", maxrate.to_string()),
        ("bufsize", bufsize.to_string()),
        ("g", keyint.to_string()),
        ("bf", "0".to_string()),
        ("forced-idr", "1".to_string()),
        ("profile", profile),
    ];
    let is_nvenc = encoder.ends_with("_nvenc");
    if is_nvenc {
        o.extend([
            ("preset", nvenc_preset(preset).to_string()),
            ("tune", "ll".to_string()),
            ("zerolatency", "1".to_string()),
            ("delay", "0".to_string()),
            (
                "rc",
                if maxrate > bitrate { "vbr" } else { "cbr" }.to_string(),
            ),
            ("rc-lookahead", "0".to_string()),
            ("no-scenecut", "1".to_string()),
        ]);
        return o;
    }
    let threads = encoder_threads(height);
    o.extend([
        ("preset", preset.to_string()),
        ("tune", "zerolatency".to_string()),
        ("threads", threads.to_string()),
    ]);
    match rung.codec {
        VideoCodec::H264 => o.extend([
            ("sc_threshold", "0".to_string()),
            ("rc-lookahead", "0".to_string()),
            (
                "x264-params",
                "scenecut=0:open-gop=0:bframes=0:rc-lookahead=0:sync-lookahead=0".to_string(),
            ),
        ]),
        VideoCodec::Hevc => o.push((
            "x265-params",
            format!(
                "scenecut=0:open-gop=0:bframes=0:rc-lookahead=0:frame-threads=1:pools={threads}:\
                 keyint={keyint}:log-level=error"
            ),
        )),
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rung(codec: VideoCodec) -> RungConfig {
        RungConfig {
            name: "480p".into(),
            height: Some(480),
            codec,
            copy: false,
            bitrate_bps: 1_200_000,
            maxrate_bps: 0,
            bufsize_bits: 0,
            max_frame_rate: None,
            profile: None,
            preset: None,
            priority: 1,
        }
    }

    fn get<'a>(o: &'a [(&'static str, String)], key: &str) -> Option<&'a str> {
        o.iter().find(|(k, _)| *k == key).map(|(_, v)| v.as_str())
    }

    #[test]
    fn x264_options_are_low_latency_cbr_with_forced_idr() {
        let o = video_encoder_options("libx264", &rung(VideoCodec::H264), 480, 480);
        assert_eq!(get(&o, "preset"), Some("veryfast"));
        assert_eq!(get(&o, "tune"), Some("zerolatency"));
        assert_eq!(get(&o, "profile"), Some("high"));
        assert_eq!(get(&o, "b"), Some("1200000"));
        assert_eq!(get(&o, "maxrate"), Some("1200000"));
        assert_eq!(get(&o, "bufsize"), Some("2400000"));
        assert_eq!(get(&o, "bf"), Some("0"));
        assert_eq!(get(&o, "sc_threshold"), Some("0"));
        assert_eq!(get(&o, "forced-idr"), Some("1"));
        assert_eq!(get(&o, "threads"), Some("1"));
        assert!(get(&o, "x264-params").unwrap().contains("scenecut=0"));
    }

    #[test]
    fn x265_and_nvenc_options() {
        let o = video_encoder_options("libx265", &rung(VideoCodec::Hevc), 480, 480);
        assert_eq!(get(&o, "profile"), Some("main"));
        assert!(get(&o, "x265-params").unwrap().contains("scenecut=0"));
        let mut r = rung(VideoCodec::H264);
        r.preset = Some("medium".into());
        r.maxrate_bps = 1_500_000;
        let o = video_encoder_options("h264_nvenc", &r, 480, 480);
        assert_eq!(get(&o, "preset"), Some("p4"));
        assert_eq!(get(&o, "rc"), Some("vbr"));
        assert_eq!(get(&o, "x264-params"), None);
    }

    #[test]
    fn keyint_is_ten_segments() {
        assert_eq!(keyint_frames(Duration::from_secs(2), 24.0), 480);
        assert_eq!(keyint_frames(Duration::from_secs(2), f64::NAN), 600);
    }
}
