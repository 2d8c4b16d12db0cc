//! The push path of a [`StreamTranscoder`]: source frames in (never blocking on the workers, or
//! waiting with `push_wait`), the segment grid anchored at the first keyframe, the copy rungs while the
//! source's keyframes fit the grid, the decoder's and audio worker's queues (dropping to the next
//! keyframe on overflow), held frames and track changes.

use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use crossbeam_channel::TrySendError;
use media::{Frame, SegmentClock, TrackInfo, TrackKind, time::rescale};

use super::{AUDIO_RENDITION, StreamTranscoder, send_blocking};
use crate::AudioMode;
use crate::audio::AudioInput;
use crate::video::VideoInput;

/// What became of a message for the decoder.
enum Delivery {
    Delivered,
    /// The queue was full: dropped.
    Full,
    /// The decoder is gone (stopping).
    Gone,
}

/// The push path tells the audio worker where the video is at most this often (90 kHz ticks of
/// video time): 100 ms.
const VIDEO_AT_STEP_90KHZ: i64 = 9_000;

impl StreamTranscoder {
    /// The held frames: see [`Self::start_with_backlog`].
    pub(super) fn push_backlog(&self, backlog: Vec<Frame>) {
        if backlog.is_empty() {
            return;
        }
        self.shared.counters.first_push.get_or_init(Instant::now);
        let mut video = Vec::new();
        let mut audio = Vec::new();
        for frame in backlog {
            match frame.track {
                TrackKind::Video => {
                    self.push_video_into(frame, &mut |input| {
                        video.push(input);
                        Delivery::Delivered
                    });
                }
                TrackKind::Audio => {
                    if let Some(frame) = self.pass_audio_through(frame) {
                        audio.push(frame);
                    }
                }
            }
        }
        if let Some(tx) = &self.video_tx
            && !video.is_empty()
            && !send_blocking(tx, VideoInput::Backlog(video), &self.shared)
        {
            tracing::error!(stream = %self.shared.stream, "held video frames not delivered to the decoder");
        }
        if let Some(tx) = &self.audio_tx
            && !audio.is_empty()
            && !send_blocking(tx, AudioInput::Backlog(audio), &self.shared)
        {
            tracing::error!(stream = %self.shared.stream, "held audio frames not delivered");
        }
    }

    /// Hand over one source frame (video: 4-byte length-prefixed NAL units; audio: one raw AAC access
    /// unit), timestamps in its track's timescale. Never blocks on the workers: when the decoder's
    /// bounded queue is full the frame is dropped and so is every following video frame up to the next
    /// keyframe (counted in [`TranscodeStats::video_frames_dropped`]); audio frames are dropped singly.
    /// Video frames before the first keyframe are dropped (they cannot be decoded).
    ///
    /// [`TranscodeStats::video_frames_dropped`]: crate::TranscodeStats::video_frames_dropped
    pub fn push(&self, frame: Frame) {
        self.push_inner(frame, false);
    }

    /// Like [`StreamTranscoder::push`] but waits for room in the queues instead of dropping, and turns
    /// load shedding off for the rest of the stream: for inputs read faster than real time (files,
    /// tests, benchmarks). Do not mix with `push` on a live stream.
    pub fn push_wait(&self, frame: Frame) {
        self.shared.is_offline.store(true, Relaxed);
        self.push_inner(frame, true);
    }

    /// The source changed a track's configuration: copy rungs (or passthrough audio) get the new track,
    /// the decoder is reopened with it (encoded rungs get a new track if their size changes). Video
    /// frames are dropped up to the next keyframe. Waits up to a second for queue room.
    pub fn set_track(&self, track: &TrackInfo) {
        match track.kind() {
            TrackKind::Video => {
                for (_, name) in &self.copy_rungs {
                    self.shared.sink.track(name, track.clone());
                }
                if let Some(tx) = &self.video_tx {
                    if let Ok(mut st) = self.push_state.lock() {
                        st.is_dropping = true;
                    }
                    if tx
                        .send_timeout(VideoInput::Track(track.clone()), Duration::from_secs(1))
                        .is_err()
                    {
                        tracing::error!(stream = %self.shared.stream, "video track change not delivered to the decoder");
                    }
                }
            }
            TrackKind::Audio => match (&self.audio_tx, self.audio_mode) {
                (_, AudioMode::Passthrough) => {
                    self.shared.sink.track(AUDIO_RENDITION, track.clone())
                }
                (Some(tx), AudioMode::Transcode) => {
                    if tx
                        .send_timeout(AudioInput::Track(track.clone()), Duration::from_secs(1))
                        .is_err()
                    {
                        tracing::error!(stream = %self.shared.stream, "audio track change not delivered");
                    }
                }
                (None, AudioMode::Transcode) => {}
            },
        }
    }

    fn push_inner(&self, frame: Frame, wait: bool) {
        self.shared.counters.first_push.get_or_init(Instant::now);
        match frame.track {
            TrackKind::Video => {
                self.tell_audio_video_at(&frame);
                let Some(tx) = self.video_tx.clone() else {
                    self.push_video_into(frame, &mut |_| Delivery::Delivered);
                    return;
                };
                self.push_video_into(frame, &mut |msg| {
                    if wait {
                        if send_blocking(&tx, msg, &self.shared) {
                            Delivery::Delivered
                        } else {
                            Delivery::Gone
                        }
                    } else {
                        match tx.try_send(msg) {
                            Ok(()) => Delivery::Delivered,
                            Err(TrySendError::Full(_)) => Delivery::Full,
                            Err(TrySendError::Disconnected(_)) => Delivery::Gone,
                        }
                    }
                });
            }
            TrackKind::Audio => self.push_audio(frame, wait),
        }
    }

    /// The push path of one source video frame: the grid at the first keyframe, the copy rungs (while
    /// the source's keyframes fit the grid), then the decoder's input through `deliver`.
    fn push_video_into(&self, frame: Frame, deliver: &mut dyn FnMut(VideoInput) -> Delivery) {
        let Some(source) = &self.video_source else {
            return;
        };
        let c = &self.shared.counters;
        c.video_frames_in.fetch_add(1, Relaxed);
        let Ok(mut st) = self.push_state.lock() else {
            return;
        };
        let to_90khz = |t| rescale(t, source.timescale, media::MediaTime::HZ_90K);
        let (pts, dts) = (to_90khz(frame.pts), to_90khz(frame.dts));
        if !st.has_seen_keyframe {
            if !frame.is_keyframe {
                c.video_frames_dropped.fetch_add(1, Relaxed);
                return;
            }
            st.has_seen_keyframe = true;
            self.shared
                .composition_offset_90khz
                .store(pts - dts, Relaxed);
            c.first_pts_90khz.store(pts, Relaxed);
            let rate = self.frame_rate.or_else(|| {
                source
                    .config
                    .video_params()
                    .and_then(|p| p.frame_rate)
                    .filter(|(n, d)| *n > 0 && *d > 0)
            });
            let clock = *self
                .shared
                .clock
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get_or_insert_with(|| SegmentClock::new(pts, self.segment_target, rate));
            tracing::debug!(stream = %self.shared.stream, anchor = clock.anchor_90khz(), period_s = clock.period_s(), "segment grid");
        }
        c.last_push_pts_90khz.store(pts, Relaxed);

        if !self.copy_rungs.is_empty() && !st.is_copy_replaced {
            let point = self.shared.clock().map_or(0, |clock| clock.index(pts));
            if st.is_copy_forwarded && point >= st.copy_next_point {
                let fits = frame.is_keyframe && source.config.is_clean_random_access(&frame.data);
                if fits {
                    st.copy_next_point = point + 1;
                } else {
                    st.is_copy_forwarded = false;
                    for (idx, _) in &self.copy_rungs {
                        c.rungs[*idx]
                            .is_replaced
                            .store(self.fallback_idx.is_some(), Relaxed);
                    }
                    let names: Vec<&str> =
                        self.copy_rungs.iter().map(|(_, n)| n.as_str()).collect();
                    let why = if frame.is_keyframe {
                        "an open-GOP keyframe (not IDR)"
                    } else {
                        "no keyframe"
                    };
                    match self.fallback_idx {
                        Some(idx) => {
                            st.is_copy_replaced = true;
                            st.pending_takeover = Some(point);
                            c.rungs[idx].is_standby.store(false, Relaxed);
                            tracing::warn!(
                                stream = %self.shared.stream,
                                renditions = ?names,
                                grid_point = point,
                                pts_90khz = pts,
                                reason = why,
                                "the source's keyframes left the segment grid: the copied rendition is encoded from this segment on"
                            );
                        }
                        None => tracing::warn!(
                            stream = %self.shared.stream,
                            renditions = ?names,
                            grid_point = point,
                            reason = why,
                            "the source's keyframes left the segment grid: the copied rendition stops"
                        ),
                    }
                }
            }
            for (idx, name) in &self.copy_rungs {
                let rc = &c.rungs[*idx];
                rc.frames_in.fetch_add(1, Relaxed);
                if st.is_copy_forwarded {
                    self.shared.sink.frame(name, frame.clone());
                    rc.frames_out.fetch_add(1, Relaxed);
                    rc.last_out_pts_90khz.store(pts, Relaxed);
                } else {
                    rc.frames_dropped.fetch_add(1, Relaxed);
                }
            }
        }
        if self.video_tx.is_none() {
            return;
        }
        let frame = Frame { pts, dts, ..frame };
        if st.is_dropping && !frame.is_keyframe {
            c.video_frames_dropped.fetch_add(1, Relaxed);
            return;
        }
        let takeover_at = st.pending_takeover;
        match deliver(VideoInput::Frame { frame, takeover_at }) {
            Delivery::Delivered => {
                st.is_dropping = false;
                st.pending_takeover = None;
            }
            Delivery::Full => {
                if !st.has_warned_overflow {
                    st.has_warned_overflow = true;
                    tracing::warn!(
                        stream = %self.shared.stream,
                        "decoder queue full: dropping video to the next keyframe"
                    );
                }
                c.video_frames_dropped.fetch_add(1, Relaxed);
                st.is_dropping = true;
            }
            Delivery::Gone => {
                c.video_frames_dropped.fetch_add(1, Relaxed);
                st.is_dropping = true;
            }
        }
    }

    /// Count a source audio frame and forward it when audio passes through; the frame back when it
    /// is to be transcoded (`None`: passed through, or no audio source).
    fn pass_audio_through(&self, frame: Frame) -> Option<Frame> {
        if !self.has_audio_source {
            return None;
        }
        let c = &self.shared.counters;
        c.audio_frames_in.fetch_add(1, Relaxed);
        match self.audio_mode {
            AudioMode::Passthrough => {
                self.shared.sink.frame(AUDIO_RENDITION, frame);
                c.audio_frames_out.fetch_add(1, Relaxed);
                None
            }
            AudioMode::Transcode => Some(frame),
        }
    }

    /// Tell the transcoded audio where the video is (every [`VIDEO_AT_STEP_90KHZ`] of video time, B-frames'
    /// reordering and jumps back under 10 s ignored), so
    /// that audio missing from the source is filled with silence while the video goes on. Advisory:
    /// never waits, nothing is counted when the queue is full.
    fn tell_audio_video_at(&self, frame: &Frame) {
        let (Some(tx), Some(source)) = (&self.audio_tx, &self.video_source) else {
            return;
        };
        let pts = rescale(frame.pts, source.timescale, media::MediaTime::HZ_90K);
        let Ok(mut st) = self.push_state.lock() else {
            return;
        };
        if st
            .video_told_to_audio_90khz
            .is_some_and(|told| (-10 * 90_000..VIDEO_AT_STEP_90KHZ).contains(&(pts - told)))
        {
            return;
        }
        if tx.try_send(AudioInput::VideoAt(pts)).is_ok() {
            st.video_told_to_audio_90khz = Some(pts);
        }
    }

    fn push_audio(&self, frame: Frame, wait: bool) {
        let Some(frame) = self.pass_audio_through(frame) else {
            return;
        };
        let Some(tx) = &self.audio_tx else {
            return;
        };
        let msg = AudioInput::Frame(frame);
        let delivered = if wait {
            send_blocking(tx, msg, &self.shared)
        } else {
            match tx.try_send(msg) {
                Ok(()) => true,
                Err(TrySendError::Full(_)) => {
                    if let Ok(mut st) = self.push_state.lock()
                        && !st.has_warned_audio_overflow
                    {
                        st.has_warned_audio_overflow = true;
                        tracing::warn!(stream = %self.shared.stream, "audio queue full: dropping audio frames");
                    }
                    false
                }
                Err(TrySendError::Disconnected(_)) => false,
            }
        };
        if !delivered {
            self.shared
                .counters
                .audio_frames_dropped
                .fetch_add(1, Relaxed);
        }
    }
}
