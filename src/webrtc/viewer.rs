//! What one WebRTC viewer is sent, and when (sans-IO: frames and `now` in, writes out). The engine
//! turns each [`Write`] into a str0m `Writer::write`.
//!
//! **Start and catch-up.** A viewer starts at once from the stream's latest keyframe: the frames
//! cached since it (the GOP the packager holds too) are queued and sent faster than real time, paced
//! at [`CATCH_UP_BPS`], with RTP times that advance with the wall clock of sending (so the receiver's
//! jitter estimate sees frames arriving on time and plays them at once); frames arriving meanwhile
//! join the queue. Once it is empty the viewer is live: each frame is written as it arrives, at RTP
//! time = its PTS + the offset the catch-up ended on (90 kHz, RFC 6184 §5.1), so the spacing is the
//! source's. A keyframe request (PLI/FIR, RFC 4585 §6.3.1, RFC 5104 §4.3.1) replays the cache the same
//! way, at most once per [`REPLAY_INTERVAL`].
//!
//! **Bounds.** The queue holds at most [`MAX_QUEUE_BYTES`]: a viewer that cannot take the catch-up (or
//! reports heavy loss) is dropped to the next keyframe, never buffered without bound.

use std::{
    collections::VecDeque,
    sync::Arc,
    time::{Duration, Instant},
};

use super::VideoFrame;

/// Pace of a catch-up, bit/s.
pub const CATCH_UP_BPS: u64 = 16_000_000;
/// Largest catch-up queue, bytes: more and the viewer waits for the next keyframe instead.
pub const MAX_QUEUE_BYTES: usize = 16 * 1024 * 1024;
/// At most one replay of the cached GOP per this interval.
pub const REPLAY_INTERVAL: Duration = Duration::from_secs(2);

/// Where a viewer's video is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VideoState {
    /// Not connected yet: nothing is written (str0m drops media before).
    Connecting,
    /// Waiting for the next keyframe (no cached GOP, or dropped).
    WaitKeyframe,
    /// Sending queued frames faster than real time.
    CatchingUp,
    /// Writing each frame as it arrives.
    Live,
}

/// One frame to write: `time_90khz` is its RTP time (90 kHz, before str0m's random offset).
#[derive(Debug, Clone)]
pub struct Write {
    /// The frame.
    pub frame: Arc<VideoFrame>,
    /// Its RTP time, 90 kHz ticks.
    pub time_90khz: u64,
    /// Whether it is sent as it arrived (not from a catch-up).
    pub is_live: bool,
}

/// A monotonic RTP timeline over source timestamps that may jump or restart: a time that would not
/// advance is moved just past the previous one, and the offset keeps the move.
#[derive(Debug, Clone, Default)]
pub struct Timeline {
    /// RTP time − source PTS.
    offset: i64,
    last: Option<i64>,
}

impl Timeline {
    /// The RTP time of a frame presented at `pts`: `pts` + offset, moved forward when it would not
    /// advance past the last.
    pub fn at(&mut self, pts: i64) -> u64 {
        let mut t = pts + self.offset;
        if let Some(last) = self.last
            && t <= last
        {
            self.offset += last + 1 - t;
            t = last + 1;
        }
        if t < 0 {
            self.offset -= t;
            t = 0;
        }
        self.last = Some(t);
        t as u64
    }

    /// Place the frame presented at `pts` at RTP time `t` (> the last), and the following frames after
    /// it at their source spacing.
    fn place(&mut self, pts: i64, t: i64) -> u64 {
        let t = self.last.map_or(t, |last| t.max(last + 1)).max(0);
        self.offset = t - pts;
        self.last = Some(t);
        t as u64
    }

    /// The last RTP time written.
    pub fn last(&self) -> Option<i64> {
        self.last
    }
}

/// A viewer's video.
#[derive(Debug)]
pub struct VideoOut {
    state: VideoState,
    queue: VecDeque<Arc<VideoFrame>>,
    queue_bytes: usize,
    /// When the next catch-up frame may be written.
    next_write: Instant,
    /// When the last frame was written.
    last_write: Option<Instant>,
    timeline: Timeline,
    last_replay: Option<Instant>,
    /// Times the viewer was dropped to the next keyframe.
    pub dropped: u64,
}

impl Default for VideoOut {
    fn default() -> Self {
        Self::new(Instant::now())
    }
}

impl VideoOut {
    /// A viewer not connected yet.
    pub fn new(now: Instant) -> Self {
        Self {
            state: VideoState::Connecting,
            queue: VecDeque::new(),
            queue_bytes: 0,
            next_write: now,
            last_write: None,
            timeline: Timeline::default(),
            last_replay: None,
            dropped: 0,
        }
    }

    /// Where the viewer is.
    pub fn state(&self) -> VideoState {
        self.state
    }

    /// The viewer connected: start from `gop` (the cached frames from the latest keyframe on), or wait
    /// for the next keyframe when it is empty.
    pub fn connected(&mut self, gop: &[Arc<VideoFrame>], now: Instant) {
        self.catch_up(gop, now);
    }

    fn catch_up(&mut self, gop: &[Arc<VideoFrame>], now: Instant) {
        self.queue.clear();
        self.queue_bytes = 0;
        if gop.first().is_some_and(|f| f.is_keyframe) {
            self.queue.extend(gop.iter().cloned());
            self.queue_bytes = gop.iter().map(|f| f.data.len()).sum();
            self.state = VideoState::CatchingUp;
            self.next_write = now;
        } else {
            self.state = VideoState::WaitKeyframe;
        }
    }

    /// A keyframe request: replay `gop` (at most once per [`REPLAY_INTERVAL`]). Returns whether it
    /// will.
    pub fn keyframe_request(&mut self, gop: &[Arc<VideoFrame>], now: Instant) -> bool {
        if matches!(
            self.state,
            VideoState::Connecting | VideoState::WaitKeyframe
        ) || self
            .last_replay
            .is_some_and(|t| now.duration_since(t) < REPLAY_INTERVAL)
            || gop.is_empty()
        {
            return false;
        }
        self.last_replay = Some(now);
        self.catch_up(gop, now);
        self.state == VideoState::CatchingUp
    }

    /// Wait for the next keyframe (the viewer cannot keep up, or frames were lost on the way here).
    pub fn drop_to_keyframe(&mut self) {
        if matches!(self.state, VideoState::CatchingUp | VideoState::Live) {
            self.dropped += 1;
        }
        if self.state != VideoState::Connecting {
            self.state = VideoState::WaitKeyframe;
        }
        self.queue.clear();
        self.queue_bytes = 0;
    }

    /// A frame of the viewer's rendition arrived: the write to do now, if any.
    pub fn frame(&mut self, frame: &Arc<VideoFrame>, now: Instant) -> Option<Write> {
        match self.state {
            VideoState::Connecting => None,
            VideoState::WaitKeyframe if !frame.is_keyframe => None,
            VideoState::WaitKeyframe | VideoState::Live => {
                self.state = VideoState::Live;
                self.last_write = Some(now);
                Some(Write {
                    frame: frame.clone(),
                    time_90khz: self.timeline.at(frame.pts_90khz),
                    is_live: true,
                })
            }
            VideoState::CatchingUp => {
                if self.queue_bytes + frame.data.len() > MAX_QUEUE_BYTES {
                    self.drop_to_keyframe();
                    return None;
                }
                self.queue_bytes += frame.data.len();
                self.queue.push_back(frame.clone());
                None
            }
        }
    }

    /// When the next catch-up write is due.
    pub fn due(&self) -> Option<Instant> {
        (self.state == VideoState::CatchingUp).then_some(self.next_write)
    }

    /// The next catch-up write, if due at `now`.
    pub fn poll(&mut self, now: Instant) -> Option<Write> {
        if self.state != VideoState::CatchingUp || now < self.next_write {
            return None;
        }
        let Some(frame) = self.queue.pop_front() else {
            self.state = VideoState::Live;
            return None;
        };
        self.queue_bytes -= frame.data.len();
        // RTP time advances with the wall clock of sending (at least one tick).
        let elapsed = self.last_write.map_or(0, |t| {
            now.saturating_duration_since(t).as_micros() as i64 * 9 / 100
        });
        let time = match self.timeline.last() {
            Some(last) => self.timeline.place(frame.pts_90khz, last + elapsed.max(1)),
            None => self.timeline.place(frame.pts_90khz, frame.pts_90khz),
        };
        self.last_write = Some(now);
        let bits = frame.data.len() as u64 * 8;
        self.next_write = now + Duration::from_micros(bits * 1_000_000 / CATCH_UP_BPS);
        if self.queue.is_empty() {
            self.state = VideoState::Live;
        }
        Some(Write {
            frame,
            time_90khz: time,
            is_live: false,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(seq: u64, is_keyframe: bool, len: usize) -> Arc<VideoFrame> {
        Arc::new(VideoFrame {
            stream: "live/a".into(),
            rendition: "source".into(),
            seq,
            pts_90khz: 3000 * seq as i64,
            is_keyframe,
            data: vec![0u8; len].into(),
        })
    }

    #[test]
    fn a_viewer_catches_up_on_the_cached_gop_then_goes_live_at_source_spacing() {
        let t0 = Instant::now();
        let gop: Vec<_> = (10..20).map(|i| frame(i, i == 10, 20_000)).collect();
        let mut v = VideoOut::new(t0);
        assert!(v.frame(&gop[0], t0).is_none(), "nothing before connected");
        v.connected(&gop, t0);
        assert_eq!(v.state(), VideoState::CatchingUp);
        // A live frame arriving during the catch-up joins the queue.
        assert!(v.frame(&frame(20, false, 20_000), t0).is_none());
        let mut now = t0;
        let mut times = Vec::new();
        while let Some(due) = v.due() {
            now = now.max(due);
            if let Some(w) = v.poll(now) {
                assert!(!w.is_live);
                times.push((w.frame.seq, w.time_90khz));
            }
        }
        assert_eq!(times.len(), 11, "the GOP and the frame that came meanwhile");
        assert_eq!(times[0].0, 10);
        // 20 000 bytes at 16 Mbit/s: 10 ms apart, 900 ticks.
        for w in times.windows(2) {
            assert_eq!(w[1].1 - w[0].1, 900, "{times:?}");
        }
        assert!(now.duration_since(t0) >= Duration::from_millis(100));
        assert_eq!(v.state(), VideoState::Live);
        let live = v.frame(&frame(21, false, 100), now).expect("written now");
        assert!(live.is_live);
        assert_eq!(live.time_90khz - times[10].1, 3000, "the source's spacing");
    }

    #[test]
    fn without_a_cached_keyframe_the_viewer_waits_for_the_next() {
        let t0 = Instant::now();
        let mut v = VideoOut::new(t0);
        v.connected(&[], t0);
        assert_eq!(v.state(), VideoState::WaitKeyframe);
        assert!(v.frame(&frame(1, false, 10), t0).is_none());
        assert!(v.frame(&frame(2, true, 10), t0).is_some());
        assert_eq!(v.state(), VideoState::Live);
    }

    #[test]
    fn a_catch_up_that_outgrows_its_bound_drops_to_the_next_keyframe() {
        let t0 = Instant::now();
        let mut v = VideoOut::new(t0);
        v.connected(&[frame(0, true, 1000)], t0);
        let big = frame(1, false, MAX_QUEUE_BYTES);
        assert!(v.frame(&big, t0).is_none());
        assert_eq!(v.state(), VideoState::WaitKeyframe);
        assert_eq!(v.dropped, 1);
        assert!(v.poll(t0 + Duration::from_secs(1)).is_none());
    }

    #[test]
    fn keyframe_requests_replay_the_gop_at_most_every_two_seconds_with_times_going_on() {
        let t0 = Instant::now();
        let gop = vec![frame(0, true, 100), frame(1, false, 100)];
        let mut v = VideoOut::new(t0);
        v.connected(&[], t0);
        let first = v.frame(&gop[0], t0).unwrap().time_90khz;
        let second = v.frame(&gop[1], t0).unwrap().time_90khz;
        assert_eq!(second - first, 3000);
        let t1 = t0 + Duration::from_millis(50);
        assert!(v.keyframe_request(&gop, t1));
        let replayed = v.poll(t1).unwrap();
        assert!(replayed.frame.is_keyframe);
        assert!(replayed.time_90khz > second, "RTP time never goes back");
        assert!(!v.keyframe_request(&gop, t1 + Duration::from_secs(1)));
        assert!(v.keyframe_request(&gop, t1 + REPLAY_INTERVAL));
    }

    #[test]
    fn the_timeline_survives_a_source_timestamp_restart() {
        let mut t = Timeline::default();
        assert_eq!(t.at(90_000), 90_000);
        assert_eq!(t.at(93_000), 93_000);
        // The publisher reconnects and starts again at 0.
        assert_eq!(t.at(0), 93_001);
        assert_eq!(t.at(3000), 96_001);
    }
}
