//! [`StreamTranscoder`]: one publish's threads, its push path and its counters.
//!
//! Layout: this file (the sink, the state shared with the workers, the transcoder's fields, its end),
//! `start` (checks, worker threads, an audio track added later), `push` (the push path: source frames,
//! the segment grid and copy rungs, queues, track changes).

mod push;
mod start;

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::Sender;
use media::{Frame, SegmentClock, TrackInfo};

use crate::AudioMode;
use crate::audio::AudioInput;
use crate::stats::{NO_PTS, StreamCounters, TranscodeStats};
use crate::video::VideoInput;

pub use media::name::AUDIO_RENDITION;

/// How often a blocked worker re-checks the stop flag.
pub(crate) const STOP_POLL: Duration = Duration::from_millis(50);

/// Where a [`StreamTranscoder`] delivers its renditions (the packager side).
///
/// Calls come from the transcoder's worker threads (encoded rungs, transcoded audio) and from the
/// caller of [`StreamTranscoder::push`] (copy rung, passthrough audio), concurrently for different
/// renditions but in order within one rendition. They should be quick (no blocking I/O) and must not
/// call back into the same `StreamTranscoder`.
pub trait TranscodeSink: Send + Sync + 'static {
    /// The track of `rendition`: called before the rendition's first frame, and again when it changes
    /// (new resolution, new source configuration). Video tracks use a 90 kHz timescale; the audio
    /// track's timescale is its sample rate.
    fn track(&self, rendition: &str, track: TrackInfo);
    /// `rendition` is produced by another encoder from its next segment on, with `track` (a copy rung
    /// whose source keyframes left the segment grid, replaced by its fallback encoder at a grid point;
    /// the next frame is that encoder's first IDR). The default treats it as a track change.
    fn replace_track(&self, rendition: &str, track: TrackInfo) {
        self.track(rendition, track);
    }
    /// One frame of `rendition`, in decode order, timestamps on the source timeline in the track's
    /// timescale; video data is 4-byte length-prefixed NAL units.
    fn frame(&self, rendition: &str, frame: Frame);
}

/// State shared by a stream's push path and worker threads.
pub(crate) struct Shared {
    /// Stream name, for logs and thread names.
    pub stream: String,
    /// Set by `Drop`: workers stop at the next message without flushing.
    pub stop: AtomicBool,
    /// Set by [`StreamTranscoder::push_wait`]: queues block instead of dropping, nothing is shed.
    pub is_offline: AtomicBool,
    /// Composition offset (pts − dts) of the source's first keyframe, 90 kHz; [`NO_PTS`] before it.
    pub composition_offset_90khz: AtomicI64,
    /// The segment grid (source timeline, 90 kHz): given in the options or anchored at the source's
    /// first keyframe by the push path, re-anchored at splice points
    /// ([`StreamTranscoder::splice_at`]), read by the decoder.
    pub clock: Mutex<Option<SegmentClock>>,
    pub counters: StreamCounters,
    pub sink: Arc<dyn TranscodeSink>,
}

impl Shared {
    pub(crate) fn is_stopped(&self) -> bool {
        self.stop.load(Relaxed)
    }

    /// The segment grid as it stands (`None` before the source's first keyframe).
    pub(crate) fn clock(&self) -> Option<SegmentClock> {
        *self.clock.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The output DTS for a picture at `pts_90khz`: PTS − the source's first keyframe composition
    /// offset.
    pub(crate) fn dts_for(&self, pts_90khz: i64) -> i64 {
        let d = self.composition_offset_90khz.load(Relaxed);
        if d == NO_PTS {
            pts_90khz
        } else {
            pts_90khz - d
        }
    }
}

/// Send `msg` on a bounded channel, waiting for room but giving up when the stream stops or the
/// receiver is gone. Returns false if the message was not delivered.
pub(crate) fn send_blocking<T>(tx: &Sender<T>, mut msg: T, shared: &Shared) -> bool {
    loop {
        match tx.send_timeout(msg, STOP_POLL) {
            Ok(()) => return true,
            Err(crossbeam_channel::SendTimeoutError::Timeout(m)) => {
                if shared.is_stopped() {
                    return false;
                }
                msg = m;
            }
            Err(crossbeam_channel::SendTimeoutError::Disconnected(_)) => return false,
        }
    }
}

/// The push path's per-stream state.
struct PushState {
    has_seen_keyframe: bool,
    /// Overflow: dropping source frames until the next keyframe.
    is_dropping: bool,
    /// The grid point at which the copy rungs must next start a segment with a source keyframe.
    copy_next_point: i64,
    /// The copy rungs are forwarded (their keyframes have fit the grid so far, or fit again).
    is_copy_forwarded: bool,
    /// The copy rungs were replaced by their fallback encoder.
    is_copy_replaced: bool,
    /// The grid point where the fallback takes over, until a frame carries it to the decoder.
    pending_takeover: Option<i64>,
    has_warned_overflow: bool,
    has_warned_audio_overflow: bool,
    /// The last video PTS (90 kHz) told to the audio worker ([`AudioInput::VideoAt`]).
    video_told_to_audio_90khz: Option<i64>,
}

/// Transcodes one published stream into a ladder of renditions on dedicated threads.
///
/// Threads: one video decoder (`tx-{stream}-dec`) when the ladder has an encoded rung, one encoder per
/// encoded rung (`tx-{stream}-{rung}`), one audio thread (`tx-{stream}-aud`) when audio is transcoded.
/// Copy rungs and passthrough audio are emitted on the caller's thread from `push`.
///
/// Forced keyframes: the segment grid ([`SegmentClock`], [`TranscodeOptions::clock`]) decides. Every
/// encoded rung gets an IDR on the decoded picture nearest each grid point (the first picture, in
/// presentation order, at or after the point minus half a frame) and no other keyframe (no scene-cut
/// or natural keyframes), so every encoded rendition starts each segment with a keyframe and its
/// segments last the grid period. A copy rung is forwarded only while the source's own keyframe is the
/// first frame (in decode order) at each grid point and is an IDR; at the first grid point where it is
/// not, the copy rung stops and, when [`TranscodeOptions::copy_fallback`] is set, that encoded rung
/// takes its name from that point on ([`TranscodeSink::replace_track`], logged once, counted in
/// [`crate::RungStats::is_replaced`]); without a fallback the copy rung stops there.
///
/// Timestamps: video in 90 kHz (sources at another timescale are rescaled for decoding); encoded
/// frames keep the source picture's PTS and get DTS = PTS − D, D being the composition offset of the
/// source's first keyframe. Transcoded audio starts at the first source audio PTS rescaled to the
/// output sample rate and advances 1024 ticks per AAC frame.
///
/// [`TranscodeOptions::clock`]: crate::TranscodeOptions::clock
/// [`TranscodeOptions::copy_fallback`]: crate::TranscodeOptions::copy_fallback
pub struct StreamTranscoder {
    shared: Arc<Shared>,
    push_state: Mutex<PushState>,
    video_source: Option<TrackInfo>,
    video_tx: Option<Sender<VideoInput>>,
    audio_tx: Option<Sender<AudioInput>>,
    audio_mode: AudioMode,
    /// The audio rendition's settings, for an audio track announced after the start.
    audio_config: crate::AudioConfig,
    queue_frames: usize,
    has_audio_source: bool,
    copy_rungs: Vec<(usize, String)>,
    /// Index of the copy fallback's counters, when there is a fallback.
    fallback_idx: Option<usize>,
    /// [`crate::TranscodeOptions::segment_target`], for a grid anchored at the first keyframe.
    segment_target: Duration,
    /// [`crate::TranscodeOptions::frame_rate`].
    frame_rate: Option<(u32, u32)>,
    threads: Vec<JoinHandle<()>>,
}

impl StreamTranscoder {
    /// A splice point at `pts_90khz` (source timeline, 90 kHz ticks; SCTE-35 §9.1, an ad break's out
    /// or return): the grid is re-anchored there ([`SegmentClock::add_splice`]), so every encoded rung
    /// gets an IDR on the picture nearest it, and a copy rung continues only if the source has its own
    /// IDR there (else its fallback takes over, as at any grid point). Give it before the source frame
    /// at that time is pushed; a picture already decoded cannot be made a keyframe, so a later one
    /// then starts the segment. Returns false before the grid exists (the caller re-anchors the grid
    /// it gives in the options instead).
    pub fn splice_at(&self, pts_90khz: i64) -> bool {
        let mut clock = self.shared.clock.lock().unwrap_or_else(|p| p.into_inner());
        clock.as_mut().map(|c| c.add_splice(pts_90khz)).is_some()
    }

    /// A snapshot of the counters: real-time factor, frames in/out/dropped per rung, shed rungs,
    /// encoder delay.
    pub fn stats(&self) -> TranscodeStats {
        self.shared.counters.snapshot()
    }

    /// End of stream: let every worker drain its queue and flush its codecs (all buffered frames are
    /// emitted), join the threads and return the final counters.
    pub fn finish(mut self) -> TranscodeStats {
        self.video_tx = None;
        self.audio_tx = None;
        for handle in self.threads.drain(..) {
            let _ = handle.join();
        }
        let _ = self.shared.counters.finished_at.set(Instant::now());
        self.shared.counters.snapshot()
    }
}

impl Drop for StreamTranscoder {
    /// Stops the workers (without flushing the encoders) and joins them.
    fn drop(&mut self) {
        self.shared.stop.store(true, Relaxed);
        self.video_tx = None;
        self.audio_tx = None;
        for handle in self.threads.drain(..) {
            let _ = handle.join();
        }
    }
}

impl std::fmt::Debug for StreamTranscoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamTranscoder")
            .field("stream", &self.shared.stream)
            .field("threads", &self.threads.len())
            .finish()
    }
}
