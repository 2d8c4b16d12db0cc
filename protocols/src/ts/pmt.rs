//! Elementary streams of the PMT (ISO/IEC 13818-1 §2.4.4.8): what the demuxer makes of each, by
//! stream_type (Table 2-34) and descriptors (§2.6; ETSI EN 300 468 Annex D for the DVB audio ones).

use media::TrackKind;

use super::framed::Framing;
use super::pes::{self, EsKind};
use super::video::EsVideoCodec;
use super::{
    STREAM_TYPE_AAC_ADTS, STREAM_TYPE_AAC_LATM, STREAM_TYPE_AC3, STREAM_TYPE_EAC3,
    STREAM_TYPE_H264, STREAM_TYPE_HEVC, STREAM_TYPE_MPEG1_AUDIO, STREAM_TYPE_MPEG1_VIDEO,
    STREAM_TYPE_MPEG2_AUDIO, STREAM_TYPE_MPEG2_VIDEO, STREAM_TYPE_PRIVATE_DATA,
};
use crate::flv::VideoCodec;

/// What the demuxer makes of one elementary stream of the PMT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Classified {
    /// A stream it demuxes.
    Use(EsKind),
    /// A video or audio codec it does not handle, named for the report.
    Unusable(TrackKind, String),
    /// Anything else (data, subtitles, teletext …).
    Other,
}

/// Classify an elementary stream by its stream_type (ISO/IEC 13818-1 Table 2-34, and the ATSC user
/// private values 0x81 / 0x87) and, for private data (0x06), its descriptors (§2.6: descriptor_tag u8,
/// descriptor_length u8, body): registration_descriptor 0x05 (format_identifier `AC-3`, `EAC3`, `Opus`),
/// DVB AC-3 (0x6A), E-AC-3 (0x7A), DTS (0x7B) and AAC (0x7C) descriptors (ETSI EN 300 468 Annex D), and
/// the DVB extension descriptor (0x7F) with descriptor_tag_extension 0x80 holding Opus's
/// channel_config_code (1–8 channels; 0, dual mono, is not supported).
pub(super) fn classify_stream(stream_type: u8, descriptors: &[u8]) -> Classified {
    let mut tags = Vec::new();
    let mut registration = None;
    let mut opus_channel_config = None;
    let mut rest = descriptors;
    while let [tag, len, body @ ..] = rest {
        let Some(body) = body.get(..usize::from(*len)) else {
            break;
        };
        match *tag {
            0x05 if body.len() >= 4 => registration = Some([body[0], body[1], body[2], body[3]]),
            0x7F if body.len() >= 2 && body[0] == 0x80 => opus_channel_config = Some(body[1]),
            _ => {}
        }
        tags.push(*tag);
        rest = &rest[2 + usize::from(*len)..];
    }
    let unusable_audio = |name: &str| {
        Classified::Unusable(
            TrackKind::Audio,
            format!("{name} (stream_type 0x{stream_type:02x})"),
        )
    };
    let unusable_video = |name: &str| {
        Classified::Unusable(
            TrackKind::Video,
            format!("{name} (stream_type 0x{stream_type:02x})"),
        )
    };
    match stream_type {
        STREAM_TYPE_H264 => Classified::Use(EsKind::Video(EsVideoCodec::Nal(VideoCodec::Avc))),
        STREAM_TYPE_HEVC => Classified::Use(EsKind::Video(EsVideoCodec::Nal(VideoCodec::Hevc))),
        STREAM_TYPE_MPEG1_VIDEO | STREAM_TYPE_MPEG2_VIDEO => {
            Classified::Use(pes::mpeg_video(stream_type))
        }
        STREAM_TYPE_AAC_ADTS => Classified::Use(EsKind::Adts),
        STREAM_TYPE_MPEG1_AUDIO | STREAM_TYPE_MPEG2_AUDIO => {
            Classified::Use(EsKind::Framed(Framing::MpegAudio))
        }
        STREAM_TYPE_AC3 | STREAM_TYPE_EAC3 => Classified::Use(EsKind::Framed(Framing::Ac3)),
        STREAM_TYPE_PRIVATE_DATA => {
            if tags.contains(&0x6A)
                || tags.contains(&0x7A)
                || matches!(&registration, Some(r) if r == b"AC-3" || r == b"EAC3")
            {
                Classified::Use(EsKind::Framed(Framing::Ac3))
            } else if registration == Some(*b"Opus") {
                match opus_channel_config.unwrap_or(2) {
                    channels @ 1..=8 => Classified::Use(EsKind::Framed(Framing::Opus { channels })),
                    code => unusable_audio(&format!("opus channel_config_code 0x{code:02x}")),
                }
            } else if tags.contains(&0x7C) {
                Classified::Use(EsKind::Adts)
            } else if tags.contains(&0x7B) || registration.is_some_and(|r| r.starts_with(b"DTS")) {
                unusable_audio("dts")
            } else {
                Classified::Other
            }
        }
        0x10 => unusable_video("mpeg-4 visual"),
        0x20 => unusable_video("h.264 mvc"),
        0x21 => unusable_video("jpeg 2000"),
        0x33 => unusable_video("h.266 vvc"),
        0x42 => unusable_video("avs"),
        0xD1 => unusable_video("dirac"),
        0xEA => unusable_video("vc-1"),
        STREAM_TYPE_AAC_LATM => Classified::Use(EsKind::Framed(Framing::Latm)),
        0x1C => unusable_audio("mpeg-4 audio"),
        0x2D | 0x2E => unusable_audio("mpeg-h 3d audio"),
        0x82 | 0x85 | 0x8A => unusable_audio("dts"),
        0x83 => unusable_audio("dolby truehd"),
        _ => Classified::Other,
    }
}
