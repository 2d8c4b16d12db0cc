//! Codec configurations and track descriptions.

use bytes::Bytes;

use crate::{
    MediaError, aac::AacConfig, avc::AvcConfig, decodable::DecodableConfig, hevc::HevcConfig,
};

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
    /// A codec that is decoded (by FFmpeg) and re-encoded, never packaged as it arrives: MP3, AC-3, Opus,
    /// PCM, MPEG-2 video, VP9, AV1 … (see [`crate::decodable`] for the frame layout).
    Decodable(DecodableConfig),
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
            CodecConfig::Decodable(c) => c.codec.rfc6381().to_owned(),
        }
    }

    /// A lower-case codec name for logs and APIs: `h264`, `hevc`, `aac`, or the decodable codec's name
    /// (`mp3`, `ac-3`, `mpeg-2 video` …).
    pub fn name(&self) -> &'static str {
        match self {
            CodecConfig::Avc(_) => "h264",
            CodecConfig::Hevc(_) => "hevc",
            CodecConfig::Aac(_) => "aac",
            CodecConfig::Decodable(c) => c.codec.name(),
        }
    }

    /// True for the codecs the CMAF writer and players handle as they arrive (H.264, HEVC, AAC): only
    /// these may be packaged without transcoding.
    pub fn is_packageable(&self) -> bool {
        !matches!(self, CodecConfig::Decodable(_))
    }

    /// Which kind of track this configuration describes.
    pub fn kind(&self) -> TrackKind {
        match self {
            CodecConfig::Avc(_) | CodecConfig::Hevc(_) => TrackKind::Video,
            CodecConfig::Aac(_) => TrackKind::Audio,
            CodecConfig::Decodable(c) => c.codec.kind(),
        }
    }

    /// Picture parameters for video configurations (`None` for audio, and for a decodable video codec
    /// whose source did not signal them).
    pub fn video_params(&self) -> Option<VideoParams> {
        match self {
            CodecConfig::Avc(c) => Some(c.params),
            CodecConfig::Hevc(c) => Some(c.params),
            CodecConfig::Aac(_) => None,
            CodecConfig::Decodable(c) => c.video,
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
            // Never copied: no clean random access point is promised.
            CodecConfig::Decodable(_) => false,
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

    /// The raw decoder configuration record bytes (avcC / hvcC body, the AudioSpecificConfig, or a
    /// decodable codec's extradata, possibly empty).
    pub fn record(&self) -> &Bytes {
        match self {
            CodecConfig::Avc(c) => &c.record,
            CodecConfig::Hevc(c) => &c.record,
            CodecConfig::Aac(c) => &c.asc,
            CodecConfig::Decodable(c) => &c.extradata,
        }
    }
}

/// Everything the packager needs to know about one track: its codec configuration and timescale.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackInfo {
    /// The parsed codec configuration.
    pub config: CodecConfig,
    /// Ticks per second of the track's timestamps: 90 000 for video, the sample rate for audio (90 000
    /// for a decodable audio codec without a known sample rate).
    pub timescale: u32,
}

impl TrackInfo {
    /// A track description from a codec configuration, choosing the conventional timescale
    /// (90 kHz for video, the sampling frequency for audio, 90 kHz when an audio codec's is unknown).
    pub fn new(config: CodecConfig) -> Self {
        let timescale = match &config {
            CodecConfig::Aac(a) => a.sample_rate,
            CodecConfig::Decodable(c) => c
                .audio
                .map(|a| a.sample_rate_hz)
                .filter(|&hz| hz > 0)
                .unwrap_or(crate::MediaTime::HZ_90K),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decodable::{AudioFormat, DecodableCodec};

    #[test]
    fn decodable_tracks_take_their_sample_rate_and_are_not_packageable() {
        let mp3 = TrackInfo::new(CodecConfig::Decodable(DecodableConfig::audio(
            DecodableCodec::Mp3,
            Bytes::new(),
            AudioFormat {
                sample_rate_hz: 44_100,
                channels: 2,
            },
        )));
        assert_eq!((mp3.timescale, mp3.kind()), (44_100, TrackKind::Audio));
        assert_eq!(
            (mp3.config.name(), mp3.config.rfc6381()),
            ("mp3", "mp4a.6B".into())
        );
        assert!(!mp3.config.is_packageable());
        let mpeg2 = TrackInfo::new(CodecConfig::Decodable(DecodableConfig::video(
            DecodableCodec::Mpeg2Video,
            Bytes::from_static(&[0, 0, 1, 0xB3]),
            Some(VideoParams {
                width: 720,
                height: 405,
                frame_rate: Some((25, 1)),
            }),
        )));
        assert_eq!((mpeg2.timescale, mpeg2.kind()), (90_000, TrackKind::Video));
        assert_eq!(mpeg2.config.video_params().map(|p| p.height), Some(405));
        assert_eq!(&mpeg2.config.record()[..], &[0, 0, 1, 0xB3]);
        let unknown_rate = CodecConfig::Decodable(DecodableConfig {
            codec: DecodableCodec::Opus,
            extradata: Bytes::new(),
            audio: None,
            video: None,
        });
        assert_eq!(TrackInfo::new(unknown_rate).timescale, 90_000);
    }
}
