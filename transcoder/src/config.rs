//! Ladder and encoder configuration, and the default ladder derived from the source resolution.

use std::time::Duration;

use serde::Deserialize;

use crate::TranscodeError;

/// Which video encoders to use (`encoder = "auto" | "nvenc" | "software"` in the configuration).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EncoderChoice {
    /// Use NVENC where it actually opens on this machine, otherwise libx264 / libx265.
    #[default]
    Auto,
    /// NVENC only; [`crate::probe_encoders`] fails if it cannot be opened.
    Nvenc,
    /// libx264 / libx265 only (no probe).
    Software,
}

/// The codec of an encoded rung (`"h264"` or `"hevc"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VideoCodec {
    /// H.264 / AVC (`avc1` sample entry).
    H264,
    /// H.265 / HEVC (`hvc1` sample entry, parameter sets in the `hvcC`).
    Hevc,
}

impl VideoCodec {
    /// Lower-case name as in the configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            VideoCodec::H264 => "h264",
            VideoCodec::Hevc => "hevc",
        }
    }
}

/// One rung of the ladder: a video rendition, either encoded from the decoded source or a copy of it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RungConfig {
    /// Rendition name, unique within the ladder (e.g. `480p`, `source`); not `audio`.
    pub name: String,
    /// Output height in pixels (rounded down to even); the width follows the source's display aspect
    /// ratio, rounded to the nearest even number. `None` only with `copy`.
    #[serde(default)]
    pub height: Option<u32>,
    /// Output codec (ignored with `copy`).
    pub codec: VideoCodec,
    /// Pass the source frames through unchanged instead of encoding (never shed).
    #[serde(default)]
    pub copy: bool,
    /// Target bit rate in bits per second (`b:v`); ignored with `copy`.
    #[serde(default)]
    pub bitrate_bps: u64,
    /// VBV maximum rate in bits per second (`maxrate`); 0 means equal to `bitrate_bps`.
    #[serde(default)]
    pub maxrate_bps: u64,
    /// VBV buffer size in bits (`bufsize`); 0 means 2 × `maxrate_bps`.
    #[serde(default)]
    pub bufsize_bits: u64,
    /// Frame rate cap in frames per second: source frames are dropped (never a forced keyframe) to stay
    /// at or below it. `None` keeps the source rate.
    #[serde(default)]
    pub max_frame_rate: Option<f64>,
    /// Encoder profile; default `high` for H.264, `main` for HEVC.
    #[serde(default)]
    pub profile: Option<String>,
    /// Encoder preset (x264/x265 names; mapped to `p1`..`p7` for NVENC); default `veryfast`.
    #[serde(default)]
    pub preset: Option<String>,
    /// Shedding priority: when the stream cannot keep up, the encoded rung with the lowest priority is
    /// shed first (ties: the larger one first). A copy rung is never shed.
    #[serde(default)]
    pub priority: u32,
}

/// What to do with the source audio.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AudioMode {
    /// Decode and encode to AAC-LC at [`AudioConfig::sample_rate`] / `channels` / `bitrate_bps`.
    #[default]
    Transcode,
    /// Forward the source AAC frames and track unchanged.
    Passthrough,
}

/// The audio rendition (named [`crate::AUDIO_RENDITION`]), shared by every variant stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AudioConfig {
    /// Transcode (default) or pass through.
    pub mode: AudioMode,
    /// AAC-LC bit rate in bits per second (default 128 000).
    pub bitrate_bps: u64,
    /// Output sampling rate in Hz, also the audio track's timescale (default 48 000).
    pub sample_rate: u32,
    /// Output channel count (default 2).
    pub channels: u8,
}

impl Default for AudioConfig {
    fn default() -> Self {
        Self {
            mode: AudioMode::Transcode,
            bitrate_bps: 128_000,
            sample_rate: 48_000,
            channels: 2,
        }
    }
}

/// Per-stream options.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TranscodeOptions {
    /// The packager's segment target: forced keyframes follow this grid on the source timeline.
    pub segment_target: Duration,
    /// Bound of each queue (caller → decoder, decoder → each encoder, caller → audio), in frames.
    pub queue_frames: usize,
    /// Audio rendition settings.
    pub audio: AudioConfig,
}

impl Default for TranscodeOptions {
    fn default() -> Self {
        Self {
            segment_target: Duration::from_secs(2),
            queue_frames: 64,
            audio: AudioConfig::default(),
        }
    }
}

/// Heights of the default ladder's encoded rungs with their H.264 bit rates (bits per second) at up to
/// 30 frames per second.
const DEFAULT_RUNGS: [(u32, u64); 5] = [
    (1080, 4_500_000),
    (720, 2_500_000),
    (480, 1_200_000),
    (360, 700_000),
    (240, 400_000),
];

/// At most this many encoded rungs in the default ladder.
const DEFAULT_MAX_ENCODED_RUNGS: usize = 4;

/// The default ladder for a source: a `source` copy rung, then H.264 rungs (1080, 720, 480, 360 and
/// 240 lines at 4.5, 2.5, 1.2, 0.7 and 0.4 Mbit/s) that are clearly below the source (height < 90 % of
/// the source's), down to 360p; 240p is added when that leaves fewer than two encoded rungs (360p source: `source` + `240p`; 720p: `source`, `480p`, `360p`;
/// 1080p: `source`, `720p`, `480p`, `360p`). At most four encoded rungs. Bit rates are multiplied by
/// 1.5 above 35 frames per second. `maxrate` = 1.1 × bit rate, `bufsize` = 2 × bit rate. Priorities
/// grow as the height shrinks, so the most expensive rung is shed first.
pub fn default_ladder(source: media::VideoParams) -> Vec<RungConfig> {
    let is_high_rate = source
        .frame_rate
        .is_some_and(|(n, d)| d != 0 && f64::from(n) / f64::from(d) > 35.0);
    let mut ladder = vec![RungConfig {
        name: "source".to_string(),
        height: None,
        codec: VideoCodec::H264,
        copy: true,
        bitrate_bps: 0,
        maxrate_bps: 0,
        bufsize_bits: 0,
        max_frame_rate: None,
        profile: None,
        preset: None,
        priority: u32::MAX,
    }];
    let below: Vec<(u32, u64)> = DEFAULT_RUNGS
        .iter()
        .copied()
        .filter(|(h, _)| u64::from(*h) * 10 < u64::from(source.height) * 9)
        .collect();
    let mut chosen: Vec<(u32, u64)> = below.iter().copied().filter(|(h, _)| *h >= 360).collect();
    if chosen.len() < 2 {
        chosen.extend(below.iter().copied().filter(|(h, _)| *h < 360).take(1));
    }
    chosen.truncate(DEFAULT_MAX_ENCODED_RUNGS);
    for (i, (height, bitrate_bps)) in chosen.into_iter().enumerate() {
        let bitrate_bps = if is_high_rate {
            bitrate_bps * 3 / 2
        } else {
            bitrate_bps
        };
        ladder.push(RungConfig {
            name: format!("{height}p"),
            height: Some(height),
            codec: VideoCodec::H264,
            copy: false,
            bitrate_bps,
            maxrate_bps: bitrate_bps * 11 / 10,
            bufsize_bits: bitrate_bps * 2,
            max_frame_rate: None,
            profile: None,
            preset: None,
            priority: 1 + i as u32,
        });
    }
    ladder
}

/// The encoded rung that stands in for a copy rung when the source cannot be copied (its codec is not
/// one players take: MPEG-2, VP9 …): the copy rung's name, H.264 at the source's height, at the default
/// ladder's bit rate for the smallest of its heights at or above the source's (1080p's, scaled by the
/// picture area, above 1080 lines; × 1.5 above 35 frames per second), never shed before the others.
pub fn encoded_source_rung(copy: &RungConfig, source: media::VideoParams) -> RungConfig {
    let height = source.height.clamp(16, MAX_HEIGHT);
    let bitrate_bps = match DEFAULT_RUNGS.iter().rev().find(|(h, _)| *h >= height) {
        Some((_, bps)) => *bps,
        None => {
            let (top_height, top_bps) = DEFAULT_RUNGS[0];
            top_bps * u64::from(height) * u64::from(height)
                / (u64::from(top_height) * u64::from(top_height))
        }
    };
    let is_high_rate = source
        .frame_rate
        .is_some_and(|(n, d)| d != 0 && f64::from(n) / f64::from(d) > 35.0);
    let bitrate_bps = if is_high_rate {
        bitrate_bps * 3 / 2
    } else {
        bitrate_bps
    };
    RungConfig {
        name: copy.name.clone(),
        height: Some(height),
        codec: VideoCodec::H264,
        copy: false,
        bitrate_bps,
        maxrate_bps: bitrate_bps * 11 / 10,
        bufsize_bits: bitrate_bps * 2,
        max_frame_rate: copy.max_frame_rate,
        profile: None,
        preset: None,
        priority: u32::MAX,
    }
}

/// Presets accepted: x264/x265 names (mapped for NVENC) and NVENC's `p1`..`p7`.
const KNOWN_PRESETS: [&str; 17] = [
    "ultrafast",
    "superfast",
    "veryfast",
    "faster",
    "fast",
    "medium",
    "slow",
    "slower",
    "veryslow",
    "placebo",
    "p1",
    "p2",
    "p3",
    "p4",
    "p5",
    "p6",
    "p7",
];

/// H.264 profiles accepted for 8-bit 4:2:0 output.
const H264_PROFILES: [&str; 3] = ["baseline", "main", "high"];
/// HEVC profiles accepted for 8-bit 4:2:0 output.
const HEVC_PROFILES: [&str; 1] = ["main"];

/// Largest output height accepted for an encoded rung, in pixels.
pub(crate) const MAX_HEIGHT: u32 = 4320;

/// Check a ladder: unique non-empty names other than `audio`, at most one copy rung, a height
/// in 16..=4320 (odd heights are rounded down to even when encoding) and a positive bit rate for
/// every encoded rung, a known preset and profile, a positive finite frame rate cap.
pub(crate) fn validate_ladder(ladder: &[RungConfig]) -> Result<(), TranscodeError> {
    let bad = |msg: String| Err(TranscodeError::InvalidLadder(msg));
    let mut names = std::collections::HashSet::new();
    let mut copies = 0;
    for rung in ladder {
        if rung.name.is_empty() || rung.name == crate::AUDIO_RENDITION {
            return bad(format!(
                "rendition name {:?} is reserved or empty",
                rung.name
            ));
        }
        if !names.insert(rung.name.as_str()) {
            return bad(format!("rendition name {:?} appears twice", rung.name));
        }
        if let Some(fps) = rung.max_frame_rate
            && !(fps.is_finite() && fps > 0.0)
        {
            return bad(format!("{}: max_frame_rate must be positive", rung.name));
        }
        if rung.copy {
            copies += 1;
            continue;
        }
        match rung.height {
            Some(h) if (16..=MAX_HEIGHT).contains(&h) => {}
            other => {
                return bad(format!(
                    "{}: an encoded rung needs a height in 16..={MAX_HEIGHT}, got {other:?}",
                    rung.name
                ));
            }
        }
        if let Some(preset) = &rung.preset
            && !KNOWN_PRESETS.contains(&preset.as_str())
        {
            return bad(format!("{}: unknown preset {preset:?}", rung.name));
        }
        let profiles: &[&str] = match rung.codec {
            VideoCodec::H264 => &H264_PROFILES,
            VideoCodec::Hevc => &HEVC_PROFILES,
        };
        if let Some(profile) = &rung.profile
            && !profiles.contains(&profile.as_str())
        {
            return bad(format!(
                "{}: profile {profile:?} is not one of {profiles:?} (output is 8-bit 4:2:0)",
                rung.name
            ));
        }
        if rung.bitrate_bps == 0 || rung.bitrate_bps > i64::MAX as u64 / 4 {
            return bad(format!("{}: bitrate_bps must be positive", rung.name));
        }
    }
    if copies > 1 {
        return bad("more than one copy rung".to_string());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(width: u32, height: u32) -> media::VideoParams {
        media::VideoParams {
            width,
            height,
            frame_rate: Some((24, 1)),
        }
    }

    fn names(ladder: &[RungConfig]) -> Vec<&str> {
        ladder.iter().map(|r| r.name.as_str()).collect()
    }

    #[test]
    fn default_ladder_720p_source_has_copy_480p_360p() {
        let l = default_ladder(params(1280, 720));
        assert_eq!(names(&l), ["source", "480p", "360p"]);
        assert!(l[0].copy && l[0].height.is_none());
        assert_eq!(l[1].height, Some(480));
        assert_eq!(l[1].bitrate_bps, 1_200_000);
        assert_eq!(l[2].bitrate_bps, 700_000);
        assert!(
            l[1].priority < l[2].priority,
            "the larger rung is shed first"
        );
        validate_ladder(&l).unwrap();
    }

    #[test]
    fn default_ladder_1080p_and_360p_and_480p_sources() {
        assert_eq!(
            names(&default_ladder(params(1920, 1080))),
            ["source", "720p", "480p", "360p"]
        );
        assert_eq!(names(&default_ladder(params(640, 360))), ["source", "240p"]);
        assert_eq!(
            names(&default_ladder(params(854, 480))),
            ["source", "360p", "240p"]
        );
        assert_eq!(
            names(&default_ladder(params(3840, 2160))),
            ["source", "1080p", "720p", "480p", "360p"]
        );
        // Nothing fits below a tiny source: copy only.
        assert_eq!(names(&default_ladder(params(320, 180))), ["source"]);
    }

    #[test]
    fn encoded_source_rung_replaces_a_copy_rung() {
        let ladder = default_ladder(params(720, 405));
        let rung = encoded_source_rung(&ladder[0], params(720, 405));
        assert_eq!(
            (rung.name.as_str(), rung.copy, rung.height, rung.bitrate_bps),
            ("source", false, Some(405), 1_200_000) // 480p's rate
        );
        assert_eq!(
            encoded_source_rung(&ladder[0], params(1280, 720)).bitrate_bps,
            2_500_000
        );
        assert_eq!(
            encoded_source_rung(&ladder[0], params(3840, 2160)).bitrate_bps,
            18_000_000
        );
        let mut high = params(1280, 720);
        high.frame_rate = Some((60, 1));
        assert_eq!(encoded_source_rung(&ladder[0], high).bitrate_bps, 3_750_000);
        let mut with_source = default_ladder(params(720, 405));
        with_source[0] = rung;
        validate_ladder(&with_source).unwrap();
    }

    #[test]
    fn default_ladder_high_frame_rate_raises_bit_rates() {
        let mut p = params(1280, 720);
        p.frame_rate = Some((60, 1));
        assert_eq!(default_ladder(p)[1].bitrate_bps, 1_800_000);
    }

    #[test]
    fn validate_ladder_rejects_duplicates_missing_height_and_audio_name() {
        let mut l = default_ladder(params(1280, 720));
        l[2].name = "480p".into();
        assert!(validate_ladder(&l).is_err());
        let mut l = default_ladder(params(1280, 720));
        l[1].height = None;
        assert!(validate_ladder(&l).is_err());
        let mut l = default_ladder(params(1280, 720));
        l[1].name = "audio".into();
        assert!(validate_ladder(&l).is_err());
        let mut l = default_ladder(params(1280, 720));
        l[1].max_frame_rate = Some(f64::NAN);
        assert!(validate_ladder(&l).is_err());
    }
}
