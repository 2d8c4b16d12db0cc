//! Estuary's shared media vocabulary.
//!
//! Place in the data flow: ingest (RTMP/FLV, SRT/MPEG-TS) produces [`Frame`]s and [`TrackInfo`]s described
//! in these types; the transcoder and the packager consume them. This crate owns codec configuration
//! records (avcC, hvcC, AudioSpecificConfig), their RFC 6381 codec strings, and timestamps that always travel
//! with their timescale. Codecs that are only decoded and re-encoded ([`DecodableConfig`]: MP3, AC-3, Opus,
//! MPEG-2 video …) are described here too, with the frame-header parsers ingest needs to split and configure
//! them ([`mpeg_audio`], [`ac3`], [`mpeg_video`], [`picture_size`]).
//!
//! What it deliberately does not do: no I/O, no async runtime, no FFmpeg. Parsing functions take bytes and
//! return values or a [`MediaError`]; malformed input never panics.

pub mod aac;
pub mod ac3;
pub mod annex_b;
pub mod avc;
mod bits;
pub mod captions;
pub mod codec;
pub mod decodable;
pub mod frame;
pub mod grid;
pub mod hevc;
pub mod hevc_slice;
pub mod latm;
pub mod mpeg_audio;
pub mod mpeg_video;
pub mod name;
pub mod picture_size;
pub mod time;

pub use bits::{BitReader, ebsp_to_rbsp};
pub use codec::{CodecConfig, TrackInfo, TrackKind, VideoParams};
pub use decodable::{AudioFormat, DecodableCodec, DecodableConfig, PcmFormat};
pub use frame::Frame;
pub use grid::SegmentClock;
pub use time::MediaTime;

/// An error from parsing a codec configuration record or a bitstream structure.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MediaError {
    /// The structure ended before a field it declares.
    #[error("{what} truncated: need {need} bytes, have {have}")]
    Truncated {
        /// Which structure was being read.
        what: &'static str,
        /// Bytes needed.
        need: usize,
        /// Bytes available.
        have: usize,
    },
    /// A field holds a value the specification does not allow (or we do not support).
    #[error("{what}: invalid {field} ({value})")]
    Invalid {
        /// Which structure was being read.
        what: &'static str,
        /// The offending field.
        field: &'static str,
        /// The value found.
        value: u64,
    },
    /// The record holds no parameter set of a required kind.
    #[error("{what}: missing {field}")]
    Missing {
        /// Which structure was being read.
        what: &'static str,
        /// The missing element.
        field: &'static str,
    },
}
