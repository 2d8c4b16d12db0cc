//! Estuary's transcoder: one decode per stream, an ABR ladder of encodes with aligned keyframes.
//!
//! Place in the data flow: ingest hands each published stream's [`media::Frame`]s to a
//! [`StreamTranscoder`] (one per publish); it decodes the source video once (FFmpeg, linked in process
//! through `ffmpeg-next`), scales each picture to every rung of the [`RungConfig`] ladder (swscale,
//! bicubic) and encodes the rungs in parallel (libx264 / libx265, or NVENC when [`probe_encoders`]
//! found it usable). Audio is decoded and re-encoded to AAC-LC once (or passed through). Every output
//! is delivered as [`media::Frame`]s and [`media::TrackInfo`]s to a [`TranscodeSink`] (the packager's
//! side), named by rendition.
//!
//! Guarantees:
//! - **A segment grid of its own.** Every encoded rung gets an IDR on the picture nearest each point of
//!   the segment grid ([`media::SegmentClock`]: a whole number of frames per segment, never drifting)
//!   and no other keyframe, whatever the source's keyframe interval; a copy rung is forwarded only while
//!   the source's own IDRs land there, and an encoded fallback takes its place when they stop (see
//!   [`StreamTranscoder`]). So all renditions cut segments at the same presentation times and every
//!   segment starts with a keyframe.
//! - **Source timeline.** Output PTS = source PTS of the same picture (90 kHz); output DTS =
//!   PTS − the composition offset of the source's first keyframe, so `tfdt` values match across
//!   renditions.
//! - **Bounded.** Every queue between the caller, the decoder and the encoders is bounded; overflow drops
//!   to the next keyframe and counts, a rung that cannot keep up gets shed (lowest priority first).
//! - **Threads.** All FFmpeg work runs on named `std::thread`s (`tx-{stream}-{role}`), never on an async
//!   runtime. `push` never blocks.
//!
//! What it deliberately does not do: no packaging, no I/O, no clocks except for measuring its own speed
//! and latency; no dependency on the packager or the HTTP side. FFmpeg's own logging is silenced
//! (level `quiet`): errors are reported through return values, counters and `tracing`.

mod audio;
mod bitstream;
mod config;
mod decode;
mod ffi;
mod keyframes;
mod opus;
mod probe;
mod remux;
mod resample;
mod settings;
mod source;
mod stats;
mod stream;
mod video;

pub use config::{
    AudioConfig, AudioMode, EncoderChoice, FittedLadder, MIN_RUNG_BITRATE_BPS, RungConfig,
    TranscodeOptions, VideoCodec, default_bitrate_for_height, default_ladder, fit_ladder,
};
pub use decode::check_decoder;
pub use keyframes::ShedGate;
pub use opus::{MAX_DRIFT_48KHZ, OPUS_RATE, OpusEncoder, OpusPacket};
pub use probe::{EncoderProbe, probe_encoders};
pub use remux::{RemuxError, RemuxReport, RemuxRun, RemuxTrack, remux_to_mp4};
pub use source::{SourceFacts, SourceProbe};
pub use stats::{AudioStats, RungStats, TranscodeStats};
pub use stream::{AUDIO_RENDITION, StreamTranscoder, TranscodeSink};

/// An error from setting up or running a transcode.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TranscodeError {
    /// An encoder is not compiled into this FFmpeg or cannot be opened on this machine.
    #[error("encoder {encoder} unavailable: {reason}")]
    EncoderUnavailable {
        /// FFmpeg encoder name, e.g. `h264_nvenc`.
        encoder: String,
        /// Why (FFmpeg's error text).
        reason: String,
    },
    /// The ladder configuration is not usable.
    #[error("invalid ladder: {0}")]
    InvalidLadder(String),
    /// A source track cannot be transcoded.
    #[error("invalid {kind} source track: {reason}")]
    InvalidTrack {
        /// `video` or `audio`.
        kind: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// FFmpeg refused to set up a codec or converter.
    #[error("{context}: {source}")]
    Ffmpeg {
        /// What was being set up, e.g. `opening the 480p encoder (libx264)`.
        context: String,
        /// FFmpeg's error.
        source: ffmpeg_next::Error,
    },
    /// A worker thread could not be started or did not report ready.
    #[error("worker thread {name}: {reason}")]
    Thread {
        /// Thread name.
        name: String,
        /// What went wrong.
        reason: String,
    },
}

impl TranscodeError {
    pub(crate) fn ffmpeg(context: impl Into<String>, source: ffmpeg_next::Error) -> Self {
        TranscodeError::Ffmpeg {
            context: context.into(),
            source,
        }
    }
}

/// Initialise FFmpeg once per process and silence its logging (nothing reaches stdout or stderr from
/// FFmpeg; failures are reported through return values and `tracing`).
pub(crate) fn init_ffmpeg() {
    static INIT: std::sync::Once = std::sync::Once::new();
    INIT.call_once(|| {
        if let Err(e) = ffmpeg_next::init() {
            tracing::warn!(error = %e, "ffmpeg initialisation reported an error");
        }
        ffmpeg_next::log::set_level(ffmpeg_next::log::Level::Quiet);
    });
}
