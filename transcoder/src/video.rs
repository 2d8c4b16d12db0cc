//! The video workers: one decoder per stream, one scaler + encoder per encoded rung.
//!
//! Layout: this file (what the push path, the decoder and the encoders pass each other; frame rates),
//! `decoder` (the decoder thread: forced keyframes, fan-out, load shedding), `encoder` (one rung's
//! thread: scale, encode, emit).

mod decoder;
mod encoder;

use std::sync::Arc;

use ffmpeg_next::{Rational, frame};
use media::{Frame, TrackInfo};

pub(crate) use self::decoder::{DecoderWorker, RungLink};
pub(crate) use self::encoder::EncoderWorker;
use crate::TranscodeOptions;

/// The 90 kHz time base of every video timestamp here.
const TB_90KHZ: Rational = Rational(1, 90_000);
/// Frame rate assumed when neither the source SPS nor the decoder signals one.
const FALLBACK_FPS: Rational = Rational(30, 1);

/// What the push path sends the decoder.
pub(crate) enum VideoInput {
    /// One source frame (timestamps in 90 kHz) and, at the source's first frame past a grid point where
    /// its keyframes left the grid, that grid point: the copy fallback encodes from the picture at it.
    Frame {
        frame: Frame,
        takeover_at: Option<i64>,
    },
    /// The frames held before the transcoder started, in order: decoded as fast as possible, every
    /// picture queued for every encoder (blocking instead of dropping).
    Backlog(Vec<VideoInput>),
    /// The source configuration changed: reopen the decoder.
    Track(TrackInfo),
}

/// One decoded source picture, shared by every rung.
pub(crate) struct Picture {
    frame: frame::Video,
    pts_90khz: i64,
    /// The source frame rate, for encoders (re)opened on this picture.
    frame_rate: Rational,
}

/// What the decoder sends an encoder.
pub(crate) struct EncoderInput {
    picture: Arc<Picture>,
    is_forced: bool,
}

fn is_again(e: &ffmpeg_next::Error) -> bool {
    matches!(e, ffmpeg_next::Error::Other { errno } if *errno == ffmpeg_next::error::EAGAIN)
        || matches!(e, ffmpeg_next::Error::Eof)
}

/// The frame rate signalled by a source track (SPS VUI), if any.
fn track_frame_rate(track: &TrackInfo) -> Option<Rational> {
    let (n, d) = track.config.video_params()?.frame_rate?;
    let (n, d) = (i32::try_from(n).ok()?, i32::try_from(d).ok()?);
    (n > 0 && d > 0).then(|| Rational(n, d).reduce())
}

/// The measured source frame rate given in the options, if any.
fn options_frame_rate(options: &TranscodeOptions) -> Option<Rational> {
    let (n, d) = options.frame_rate?;
    let (n, d) = (i32::try_from(n).ok()?, i32::try_from(d).ok()?);
    (n > 0 && d > 0).then(|| Rational(n, d).reduce())
}
