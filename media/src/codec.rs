//! Codec configurations and track descriptions.

use bytes::Bytes;

use crate::{MediaError, aac::AacConfig, avc::AvcConfig, hevc::HevcConfig};

/// The kind of a track within a stream. A stream has at most one video and one audio track.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TrackKind {
    /// The video track.
    Video,
    /// The audio track.
    Audio,
}

/// A codec configuration, parsed from its decoder configuration record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CodecConfig {
    /// H.264 / AVC with its `avcC` record.
    Avc(AvcConfig),
    /// H.265 / HEVC with its `hvcC` record.
    Hevc(HevcConfig),
    /// AAC with its AudioSpecificConfig.
    Aac(AacConfig),
}

/// Picture parameters of a video codec configuration, read from its SPS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VideoParams {
    /// Displayed width in pixels (after cropping).
    pub width: u32,
    /// Displayed height in pixels (after cropping).
    pub height: u32,
    /// Frame rate from the VUI timing info, as (numerator, denominator) frames per second, if signalled.
    pub frame_rate: Option<(u32, u32)>,
}

impl CodecConfig {
    /// The RFC 6381 `codecs` parameter value, e.g. `avc1.64001f`, `hvc1.1.6.L93.B0`, `mp4a.40.2`.
    pub fn rfc6381(&self) -> String {
        match self {
            CodecConfig::Avc(c) => c.rfc6381(),
            CodecConfig::Hevc(c) => c.rfc6381(),
            CodecConfig::Aac(c) => c.rfc6381(),
        }
    }

    /// Which kind of track this configuration describes.
    pub fn kind(&self) -> TrackKind {
        match self {
            CodecConfig::Avc(_) | CodecConfig::Hevc(_) => TrackKind::Video,
            CodecConfig::Aac(_) => TrackKind::Audio,
        }
    }

    /// Picture parameters for video configurations; `None` for audio.
    pub fn video_params(&self) -> Option<VideoParams> {
        match self {
            CodecConfig::Avc(c) => Some(c.params),
            CodecConfig::Hevc(c) => Some(c.params),
            CodecConfig::Aac(_) => None,
        }
    }

    /// True when `sample` (one frame as [`crate::Frame`] stores it: 4-byte length-prefixed NAL units for
    /// video) starts a closed group of pictures that a decoder joining there decodes whole: an H.264
    /// IDR picture (nal_unit_type 5, ITU-T H.264 Table 7-1) or an HEVC IDR or BLA picture
    /// (nal_unit_type 16..=20, ITU-T H.265 Table 7-1). An open-GOP keyframe (an H.264 I picture with a
    /// recovery point, an HEVC CRA picture) is not: the pictures that follow it in decode order may
    /// reference pictures before it. Always true for audio. A malformed sample is not.
    pub fn is_clean_random_access(&self, sample: &[u8]) -> bool {
        let is_clean = |nal: &[u8]| match self {
            CodecConfig::Avc(_) => nal.first().is_some_and(|h| h & 0x1f == 5),
            CodecConfig::Hevc(_) => {
                crate::hevc::nal_unit_type(nal).is_some_and(|t| (16..=20).contains(&t))
            }
            CodecConfig::Aac(_) => true,
        };
        if self.kind() == TrackKind::Audio {
            return true;
        }
        let mut rest = sample;
        while rest.len() >= 4 {
            let len = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
            let Some(nal) = rest.get(4..4 + len) else {
                return false;
            };
            if is_clean(nal) {
                return true;
            }
            rest = &rest[4 + len..];
        }
        false
    }

    /// The raw decoder configuration record bytes (avcC / hvcC body, or the AudioSpecificConfig).
    pub fn record(&self) -> &Bytes {
        match self {
            CodecConfig::Avc(c) => &c.record,
            CodecConfig::Hevc(c) => &c.record,
            CodecConfig::Aac(c) => &c.asc,
        }
    }
}

/// Everything the packager needs to know about one track: its codec configuration and timescale.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackInfo {
    /// The parsed codec configuration.
    pub config: CodecConfig,
    /// Ticks per second of the track's timestamps: 90 000 for video, the sample rate for AAC.
    pub timescale: u32,
}

impl TrackInfo {
    /// A track description from a codec configuration, choosing the conventional timescale
    /// (90 kHz for video, the sampling frequency for AAC).
    pub fn new(config: CodecConfig) -> Self {
        let timescale = match &config {
            CodecConfig::Aac(a) => a.sample_rate,
            _ => crate::MediaTime::HZ_90K,
        };
        Self { config, timescale }
    }

    /// The track kind.
    pub fn kind(&self) -> TrackKind {
        self.config.kind()
    }

    /// Parse an `avcC` record (ISO/IEC 14496-15 §5.3.3.1) into a video track description.
    pub fn from_avcc(record: Bytes) -> Result<Self, MediaError> {
        Ok(Self::new(CodecConfig::Avc(AvcConfig::parse(record)?)))
    }

    /// Parse an `hvcC` record (ISO/IEC 14496-15 §8.3.3.1) into a video track description.
    pub fn from_hvcc(record: Bytes) -> Result<Self, MediaError> {
        Ok(Self::new(CodecConfig::Hevc(HevcConfig::parse(record)?)))
    }

    /// Parse an AudioSpecificConfig (ISO/IEC 14496-3 §1.6.2.1) into an audio track description.
    pub fn from_audio_specific_config(asc: Bytes) -> Result<Self, MediaError> {
        Ok(Self::new(CodecConfig::Aac(AacConfig::parse(asc)?)))
    }
}
