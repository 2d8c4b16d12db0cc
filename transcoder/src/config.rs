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
#[derive(Debug, Clone, PartialEq)]
pub struct TranscodeOptions {
    /// The packager's segment target: the period of the segment grid (rounded to whole frames).
    pub segment_target: Duration,
    /// The segment grid on the source timeline (90 kHz): every encoded rung gets an IDR on the picture
    /// nearest each grid point, and a copy rung is forwarded only while the source's own keyframes land
    /// there. `None`: anchored at the source's first keyframe, with a period of [`Self::segment_target`]
    /// rounded to whole frames at [`Self::frame_rate`].
    pub clock: Option<media::SegmentClock>,
    /// The source's frame rate as measured ([`crate::SourceProbe`]), (numerator, denominator) frames
    /// per second: encoders are opened at it. `None`: the rate the source's SPS signals, else 30.
    pub frame_rate: Option<(u32, u32)>,
    /// The encoded rung that takes the copy rung's place (and name) from the first grid point where the
    /// source has no keyframe: opened only then, its track delivered with
    /// [`crate::TranscodeSink::replace_track`]. `None`: the copy rung is forwarded only while its keyframes
    /// fit, and left out in between.
    pub copy_fallback: Option<RungConfig>,
    /// Bound of each queue (caller → decoder, decoder → each encoder, caller → audio), in frames.
    pub queue_frames: usize,
    /// Audio rendition settings.
    pub audio: AudioConfig,
    /// The shedding gate this stream shares with the others of its process (clones of one set of
    /// options share it).
    pub shed_gate: crate::ShedGate,
}

impl Default for TranscodeOptions {
    fn default() -> Self {
        Self {
            segment_target: Duration::from_secs(2),
            clock: None,
            frame_rate: None,
            copy_fallback: None,
            queue_frames: 64,
            audio: AudioConfig::default(),
            shed_gate: crate::ShedGate::default(),
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

/// The H.264 bit rate (bit/s) the default ladder gives a rung of `height` lines at up to 30 frames per
/// second: the table of [`default_ladder`], interpolated linearly between its heights, and growing with
/// the pixel count above 1080 lines.
pub fn default_bitrate_for_height(height: u32) -> u64 {
    let table: Vec<(u32, u64)> = DEFAULT_RUNGS.iter().rev().copied().collect();
    let (h0, b0) = table[0];
    if height <= h0 {
        return b0 * u64::from(height.max(1)) / u64::from(h0);
    }
    for w in table.windows(2) {
        let ((ha, ba), (hb, bb)) = (w[0], w[1]);
        if height <= hb {
            return ba + (bb - ba) * u64::from(height - ha) / u64::from(hb - ha);
        }
    }
    let (ht, bt) = table[table.len() - 1];
    (bt as f64 * (f64::from(height) / f64::from(ht)).powi(2)).round() as u64
}

/// The lowest bit rate a rung is given when it is scaled down to its source's, bit/s.
pub const MIN_RUNG_BITRATE_BPS: u64 = 64_000;

/// A ladder fitted to its source, and the rung that takes the copy rung's place should the source's
/// keyframes leave the segment grid.
#[derive(Debug, Clone, PartialEq)]
pub struct FittedLadder {
    /// The rungs to start with.
    pub rungs: Vec<RungConfig>,
    /// The copy rung's fallback ([`crate::TranscodeOptions::copy_fallback`]), when a copy rung is kept.
    pub copy_fallback: Option<RungConfig>,
    /// What was changed and why, one line each, for the log.
    pub changes: Vec<String>,
}

/// Fit `rungs` (the configured ladder or [`default_ladder`]) to a source of `source` size and
/// `facts` ([`crate::SourceFacts`]):
/// - an encoded rung taller than the source is left out (upscaling adds bits, not picture);
/// - no encoded rung's bit rate exceeds its share of the source's measured bit rate (the source's rate
///   scaled by the rung's height over the source's, at least [`MIN_RUNG_BITRATE_BPS`]; max rate and
///   buffer scaled alike), so no lower rung is announced above the top one;
/// - the copy rung is kept only when `can_copy` (players can play the source codec as it is) and the
///   source's keyframes fit the grid; then an H.264 rung of the same name at the source's height is
///   its fallback; otherwise that rung replaces it from the start. Its bit rate is the default for its
///   height, at most the source's.
pub fn fit_ladder(
    rungs: &[RungConfig],
    source: media::VideoParams,
    facts: &crate::SourceFacts,
    can_copy: bool,
) -> FittedLadder {
    let mut changes = Vec::new();
    let source_bps = facts.video_bitrate_bps.filter(|b| *b > 0);
    let src_h = source.height.max(2);
    let mut out = Vec::new();
    let mut copy_fallback = None;
    for rung in rungs {
        if rung.copy {
            let fps = facts.frame_rate.or(source.frame_rate);
            let is_high_rate =
                fps.is_some_and(|(n, d)| d != 0 && f64::from(n) / f64::from(d) > 35.0);
            let default = default_bitrate_for_height(src_h) * if is_high_rate { 3 } else { 2 } / 2;
            let bitrate = source_bps.map_or(default, |s| s.min(default));
            let encoded = RungConfig {
                name: rung.name.clone(),
                height: Some(src_h & !1),
                codec: VideoCodec::H264,
                copy: false,
                bitrate_bps: bitrate.max(MIN_RUNG_BITRATE_BPS),
                maxrate_bps: bitrate.max(MIN_RUNG_BITRATE_BPS) * 11 / 10,
                bufsize_bits: bitrate.max(MIN_RUNG_BITRATE_BPS) * 2,
                max_frame_rate: rung.max_frame_rate,
                profile: None,
                preset: None,
                priority: u32::MAX,
            };
            if can_copy && facts.keyframes_fit_grid {
                out.push(rung.clone());
                copy_fallback = Some(encoded);
            } else {
                changes.push(format!(
                    "{}: encoded at {}p, {} kbit/s instead of copied ({})",
                    rung.name,
                    src_h & !1,
                    encoded.bitrate_bps / 1000,
                    if can_copy {
                        "the source's keyframes are not on the segment grid"
                    } else {
                        "players cannot play the source codec"
                    }
                ));
                out.push(encoded);
            }
            continue;
        }
        let height = rung.height.unwrap_or(0);
        if height > source.height {
            changes.push(format!(
                "{}: left out ({height} lines is taller than the {}-line source)",
                rung.name, source.height
            ));
            continue;
        }
        let mut r = rung.clone();
        if let Some(src_bps) = source_bps {
            let cap = (src_bps * u64::from(height) / u64::from(src_h)).max(MIN_RUNG_BITRATE_BPS);
            if r.bitrate_bps > cap {
                let scale = |v: u64| {
                    if v == 0 {
                        0
                    } else {
                        (u128::from(v) * u128::from(cap) / u128::from(r.bitrate_bps)) as u64
                    }
                };
                changes.push(format!(
                    "{}: {} kbit/s instead of {} (the source measures {} kbit/s)",
                    r.name,
                    cap / 1000,
                    r.bitrate_bps / 1000,
                    src_bps / 1000
                ));
                r.maxrate_bps = scale(r.maxrate_bps);
                r.bufsize_bits = scale(r.bufsize_bits);
                r.bitrate_bps = cap;
            }
        }
        out.push(r);
    }
    FittedLadder {
        rungs: out,
        copy_fallback,
        changes,
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
    fn fit_ladder_encodes_a_source_that_cannot_be_copied_at_its_size() {
        let src = params(720, 405);
        let l = fit_ladder(&default_ladder(src), src, &facts(None, true), false);
        let r = &l.rungs[0];
        assert_eq!(
            (r.name.as_str(), r.copy, r.height, r.bitrate_bps),
            ("source", false, Some(404), 887_500)
        );
        let mut high = params(1280, 720);
        high.frame_rate = Some((60, 1));
        let mut f = facts(None, false);
        f.frame_rate = Some((60, 1));
        let l = fit_ladder(&default_ladder(high), high, &f, true);
        assert_eq!(l.rungs[0].bitrate_bps, 3_750_000, "× 1.5 above 35 fps");
        validate_ladder(&l.rungs).unwrap();
    }

    #[test]
    fn default_ladder_high_frame_rate_raises_bit_rates() {
        let mut p = params(1280, 720);
        p.frame_rate = Some((60, 1));
        assert_eq!(default_ladder(p)[1].bitrate_bps, 1_800_000);
    }

    fn facts(bps: Option<u64>, fits: bool) -> crate::SourceFacts {
        crate::SourceFacts {
            clock: None,
            frame_rate: Some((24, 1)),
            video_bitrate_bps: bps,
            keyframes_fit_grid: fits,
        }
    }

    #[test]
    fn fit_ladder_caps_rungs_at_the_source_rate_and_keeps_a_fitting_copy() {
        // A 720p source at 0.5 Mbit/s: 480p and 360p get their share of it, in order.
        let l = fit_ladder(
            &default_ladder(params(1280, 720)),
            params(1280, 720),
            &facts(Some(500_000), true),
            true,
        );
        assert_eq!(names(&l.rungs), ["source", "480p", "360p"]);
        assert!(l.rungs[0].copy);
        assert_eq!(l.rungs[1].bitrate_bps, 333_333);
        assert_eq!(l.rungs[2].bitrate_bps, 250_000);
        assert!(l.rungs[1].maxrate_bps <= l.rungs[1].bitrate_bps * 11 / 10 + 1);
        let fb = l.copy_fallback.expect("a fallback for the copy");
        assert_eq!(
            (fb.name.as_str(), fb.height, fb.copy),
            ("source", Some(720), false)
        );
        assert_eq!(fb.bitrate_bps, 500_000);
        assert_eq!(l.changes.len(), 2);
        // A fast source leaves the defaults alone.
        let l = fit_ladder(
            &default_ladder(params(1280, 720)),
            params(1280, 720),
            &facts(Some(6_000_000), true),
            true,
        );
        assert_eq!(l.rungs[1].bitrate_bps, 1_200_000);
        assert!(l.changes.is_empty());
    }

    #[test]
    fn fit_ladder_encodes_the_top_when_keyframes_do_not_fit_or_the_codec_cannot_be_copied() {
        for (fits, can_copy) in [(false, true), (true, false)] {
            let l = fit_ladder(
                &default_ladder(params(1280, 720)),
                params(1280, 720),
                &facts(Some(4_000_000), fits),
                can_copy,
            );
            assert_eq!(names(&l.rungs), ["source", "480p", "360p"]);
            assert!(!l.rungs[0].copy);
            assert_eq!(l.rungs[0].height, Some(720));
            assert_eq!(l.rungs[0].bitrate_bps, 2_500_000);
            assert!(l.copy_fallback.is_none());
        }
        // A configured rung taller than the source is left out.
        let mut rungs = default_ladder(params(1920, 1080));
        rungs[1].height = Some(1440);
        let l = fit_ladder(&rungs, params(1280, 720), &facts(None, true), true);
        assert!(l.rungs.iter().all(|r| r.height.unwrap_or(0) <= 720));
        assert_eq!(l.changes.len(), 1, "{:?}", l.changes);
    }

    #[test]
    fn default_bitrate_for_height_interpolates_the_table() {
        assert_eq!(default_bitrate_for_height(720), 2_500_000);
        assert_eq!(default_bitrate_for_height(360), 700_000);
        assert_eq!(default_bitrate_for_height(540), 1_525_000);
        assert_eq!(default_bitrate_for_height(120), 200_000);
        assert_eq!(default_bitrate_for_height(2160), 18_000_000);
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
