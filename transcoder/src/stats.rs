//! Counters shared by a stream's threads, and the snapshot [`TranscodeStats`] built from them.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering::Relaxed};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// A snapshot of one stream's transcoding counters ([`crate::StreamTranscoder::stats`]).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct TranscodeStats {
    /// Media seconds processed per wall-clock second since the first frame: the span of source time
    /// that every active encoded rung has output (or that was pushed, with no encoded rung) divided by
    /// the wall time from the first push to now (or to `finish`). About 1.0 for a live stream that keeps
    /// up; above 1 when fed faster than real time.
    pub real_time_factor: f64,
    /// The media time counted by `real_time_factor`.
    pub media_processed: Duration,
    /// The wall time counted by `real_time_factor`.
    pub wall: Duration,
    /// How far the slowest active encoded rung's output trails the newest pushed video frame, in
    /// milliseconds of source time (0 without encoded rungs).
    pub lag_ms: i64,
    /// Source video frames handed to `push`.
    pub video_frames_in: u64,
    /// Source video frames dropped before decoding (queue overflow: dropped to the next keyframe;
    /// frames before the first keyframe).
    pub video_frames_dropped: u64,
    /// Source video frames the decoder rejected (and the non-keyframes skipped after them).
    pub decode_errors: u64,
    /// Pictures decoded.
    pub frames_decoded: u64,
    /// The audio rendition.
    pub audio: AudioStats,
    /// One entry per rung, in ladder order.
    pub rungs: Vec<RungStats>,
    /// Names of the rungs shed because the stream could not keep up, in shedding order.
    pub shed_rungs: Vec<String>,
}

/// Counters of one rung.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct RungStats {
    /// Rendition name.
    pub name: String,
    /// FFmpeg encoder name, or `copy`.
    pub encoder: String,
    /// Pictures received from the decoder (source frames for a copy rung).
    pub frames_in: u64,
    /// Frames emitted to the sink.
    pub frames_out: u64,
    /// Pictures dropped for this rung: its queue was full, or its frame rate cap.
    pub frames_dropped: u64,
    /// Pictures the encoder rejected or packets that could not be converted (skipped).
    pub encode_errors: u64,
    /// Mean wall time from the rung's thread taking a picture off its queue to emitting its encoded
    /// frame (scaling + encoding), in milliseconds (exponentially weighted over about the last 30
    /// frames). At live pace the rung adds about `encoder_held_frames` × the frame duration + this.
    pub encoder_delay_ms: f64,
    /// Most pictures the encoder held when it output a packet (0 for a zero-latency encoder).
    pub encoder_held_frames: u64,
    /// The rung was shed and emits nothing more.
    pub is_shed: bool,
    /// The rung emits nothing (more): its encoder failed to reopen, or the stream has no video source.
    pub is_failed: bool,
    /// A copy rung whose source keyframes left the segment grid: its rendition is encoded from then on
    /// (by a rung of the same name, listed after it).
    pub is_replaced: bool,
}

/// Counters of the audio rendition.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct AudioStats {
    /// Source audio frames handed to `push`.
    pub frames_in: u64,
    /// AAC frames emitted.
    pub frames_out: u64,
    /// Source frames dropped: queue overflow, or frames that arrived for a time already sent out as
    /// silence (the source's audio was missing for over a second while the video went on).
    pub frames_dropped: u64,
    /// Source frames the decoder rejected, or frames the encoder rejected.
    pub errors: u64,
    /// Gaps in the source audio (over 40 ms, up to ten seconds) filled with silence.
    pub gaps_filled: u64,
}

/// "No timestamp yet".
pub(crate) const NO_PTS: i64 = i64::MIN;

/// Per-rung counters, written by the rung's thread (or the push path for a copy rung).
#[derive(Debug)]
pub(crate) struct RungCounters {
    pub name: String,
    pub encoder: String,
    pub is_copy: bool,
    pub frames_in: AtomicU64,
    pub frames_out: AtomicU64,
    pub frames_dropped: AtomicU64,
    pub encode_errors: AtomicU64,
    /// Last emitted PTS (90 kHz), [`NO_PTS`] before the first.
    pub last_out_pts_90khz: AtomicI64,
    /// `f64` bits of the delay EWMA in milliseconds.
    pub delay_ms_bits: AtomicU64,
    pub held_frames_max: AtomicU64,
    pub is_shed: AtomicBool,
    pub is_failed: AtomicBool,
    /// A copy rung's fallback encoder that has not taken over (yet): not listed, not counted.
    pub is_standby: AtomicBool,
    /// A copy rung that its fallback encoder replaced.
    pub is_replaced: AtomicBool,
}

impl RungCounters {
    pub(crate) fn new(name: &str, encoder: &str, is_copy: bool) -> Self {
        Self {
            name: name.to_string(),
            encoder: encoder.to_string(),
            is_copy,
            frames_in: AtomicU64::new(0),
            frames_out: AtomicU64::new(0),
            frames_dropped: AtomicU64::new(0),
            encode_errors: AtomicU64::new(0),
            last_out_pts_90khz: AtomicI64::new(NO_PTS),
            delay_ms_bits: AtomicU64::new(0f64.to_bits()),
            held_frames_max: AtomicU64::new(0),
            is_shed: AtomicBool::new(false),
            is_failed: AtomicBool::new(false),
            is_standby: AtomicBool::new(false),
            is_replaced: AtomicBool::new(false),
        }
    }

    /// True while the rung still encodes (not shed, not failed, not a fallback on standby).
    pub(crate) fn is_active(&self) -> bool {
        !self.is_shed.load(Relaxed)
            && !self.is_failed.load(Relaxed)
            && !self.is_standby.load(Relaxed)
    }

    /// Record one output: its encoder delay and how many pictures the encoder still held.
    pub(crate) fn record_delay(&self, delay: Duration, held_frames: u64) {
        let ms = delay.as_secs_f64() * 1000.0;
        let old = f64::from_bits(self.delay_ms_bits.load(Relaxed));
        let new = if self.frames_out.load(Relaxed) == 0 {
            ms
        } else {
            old + (ms - old) / 30.0
        };
        self.delay_ms_bits.store(new.to_bits(), Relaxed);
        self.held_frames_max.fetch_max(held_frames, Relaxed);
    }

    fn snapshot(&self) -> RungStats {
        RungStats {
            name: self.name.clone(),
            encoder: self.encoder.clone(),
            frames_in: self.frames_in.load(Relaxed),
            frames_out: self.frames_out.load(Relaxed),
            frames_dropped: self.frames_dropped.load(Relaxed),
            encode_errors: self.encode_errors.load(Relaxed),
            encoder_delay_ms: f64::from_bits(self.delay_ms_bits.load(Relaxed)),
            encoder_held_frames: self.held_frames_max.load(Relaxed),
            is_shed: self.is_shed.load(Relaxed),
            is_failed: self.is_failed.load(Relaxed),
            is_replaced: self.is_replaced.load(Relaxed),
        }
    }
}

/// Counters of one stream, shared by the push path and every worker thread.
#[derive(Debug)]
pub(crate) struct StreamCounters {
    pub first_push: OnceLock<Instant>,
    pub finished_at: OnceLock<Instant>,
    /// PTS (90 kHz) of the first source video frame that was decoded / copied.
    pub first_pts_90khz: AtomicI64,
    pub last_push_pts_90khz: AtomicI64,
    pub video_frames_in: AtomicU64,
    pub video_frames_dropped: AtomicU64,
    pub decode_errors: AtomicU64,
    pub frames_decoded: AtomicU64,
    pub audio_frames_in: AtomicU64,
    pub audio_frames_out: AtomicU64,
    pub audio_frames_dropped: AtomicU64,
    pub audio_errors: AtomicU64,
    /// Gaps in the source audio filled with silence.
    pub audio_gap_fills: AtomicU64,
    pub rungs: Vec<RungCounters>,
    pub shed: Mutex<Vec<String>>,
}

impl StreamCounters {
    pub(crate) fn new(rungs: Vec<RungCounters>) -> Self {
        Self {
            first_push: OnceLock::new(),
            finished_at: OnceLock::new(),
            first_pts_90khz: AtomicI64::new(NO_PTS),
            last_push_pts_90khz: AtomicI64::new(NO_PTS),
            video_frames_in: AtomicU64::new(0),
            video_frames_dropped: AtomicU64::new(0),
            decode_errors: AtomicU64::new(0),
            frames_decoded: AtomicU64::new(0),
            audio_frames_in: AtomicU64::new(0),
            audio_frames_out: AtomicU64::new(0),
            audio_frames_dropped: AtomicU64::new(0),
            audio_errors: AtomicU64::new(0),
            audio_gap_fills: AtomicU64::new(0),
            rungs,
            shed: Mutex::new(Vec::new()),
        }
    }

    pub(crate) fn snapshot(&self) -> TranscodeStats {
        let first = self.first_pts_90khz.load(Relaxed);
        let newest = self.last_push_pts_90khz.load(Relaxed);
        let encoded: Vec<&RungCounters> = self
            .rungs
            .iter()
            .filter(|r| !r.is_copy && r.is_active())
            .collect();
        // The source time every active encoded rung has reached, or the newest pushed frame. A rung
        // that has not output yet counts only while none has (a fallback that just took over).
        let outputs: Vec<i64> = encoded
            .iter()
            .map(|r| r.last_out_pts_90khz.load(Relaxed))
            .collect();
        let reached = if encoded.is_empty() {
            newest
        } else {
            outputs
                .iter()
                .copied()
                .filter(|p| *p != NO_PTS)
                .min()
                .unwrap_or(NO_PTS)
        };
        let media_90khz = if first == NO_PTS || reached == NO_PTS {
            0
        } else {
            reached.saturating_sub(first).max(0)
        };
        let media_processed = Duration::from_micros((media_90khz as u64).saturating_mul(100) / 9);
        let wall = match (self.first_push.get(), self.finished_at.get()) {
            (Some(start), Some(end)) => end.saturating_duration_since(*start),
            (Some(start), None) => start.elapsed(),
            _ => Duration::ZERO,
        };
        let real_time_factor = if wall.is_zero() {
            0.0
        } else {
            media_processed.as_secs_f64() / wall.as_secs_f64()
        };
        let lag_ms = if encoded.is_empty() || newest == NO_PTS {
            0
        } else if reached == NO_PTS {
            if first == NO_PTS {
                0
            } else {
                newest.saturating_sub(first) / 90
            }
        } else {
            newest.saturating_sub(reached).max(0) / 90
        };
        TranscodeStats {
            real_time_factor,
            media_processed,
            wall,
            lag_ms,
            video_frames_in: self.video_frames_in.load(Relaxed),
            video_frames_dropped: self.video_frames_dropped.load(Relaxed),
            decode_errors: self.decode_errors.load(Relaxed),
            frames_decoded: self.frames_decoded.load(Relaxed),
            audio: AudioStats {
                frames_in: self.audio_frames_in.load(Relaxed),
                frames_out: self.audio_frames_out.load(Relaxed),
                frames_dropped: self.audio_frames_dropped.load(Relaxed),
                errors: self.audio_errors.load(Relaxed),
                gaps_filled: self.audio_gap_fills.load(Relaxed),
            },
            rungs: self
                .rungs
                .iter()
                .filter(|r| !r.is_standby.load(Relaxed))
                .map(RungCounters::snapshot)
                .collect(),
            shed_rungs: self.shed.lock().map(|s| s.clone()).unwrap_or_default(),
        }
    }
}
