//! Estuary's ingest protocol cores, sans-IO: each parses bytes handed to it and returns events; none
//! owns a socket, a runtime or a clock (a caller passes `now` where time matters). The async drivers
//! (`estuary::ingest::rtmp`, `estuary::ingest::srt`) feed them.
//!
//! | module | what it parses |
//! | --- | --- |
//! | [`rtmp`] | RTMP handshake, chunk stream, AMF0 commands, publish session (RTMP 1.0 §5, Enhanced RTMP v2) |
//! | [`flv`] | FLV audio/video tag bodies into tracks and frames (FLV 10.1 §E.4, Enhanced RTMP FourCCs) |
//! | [`ts`] | MPEG-TS: packets, PAT/PMT, PES and elementary streams (ISO/IEC 13818-1) |
//! | [`scte35`] | SCTE-35 splice_info_sections: splice_insert, time_signal, segmentation descriptors (ANSI/SCTE 35) |
//! | [`srt_stream_id`] | SRT stream IDs (`#!::r=live/{name},m=publish`, SRT Access Control) |
//! | [`query`] | URL query strings |
//!
//! What they report is an [`IngestEvent`]: a track, a frame, or a track that cannot be used.

pub mod event;
pub mod flv;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
pub mod query;
pub mod rtmp;
pub mod scte35;
pub mod srt_stream_id;
pub mod ts;

pub use event::{IngestEvent, SpliceEvent, UnusableTrack};
