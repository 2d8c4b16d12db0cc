//! What the engine keeps per stream: each rendition's frames since its latest keyframe (a new
//! viewer starts from them, keyframe requests replay them) and the mapping from media time to the
//! wall clock its sender reports use.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use crate::webrtc::VideoFrame;

/// Most frames a GOP cache holds (10 s at 60 frames/s); a longer GOP is not cached past it, and
/// viewers joining then wait for the next keyframe.
pub const GOP_MAX_FRAMES: usize = 600;
/// Most bytes a GOP cache holds.
pub const GOP_MAX_BYTES: usize = 16 * 1024 * 1024;

/// A cache not fed for this long is not replayed on keyframe requests (the publisher stopped).
pub(super) const STALE_AFTER: Duration = Duration::from_secs(1);

/// A rendition's frames since its latest keyframe.
#[derive(Debug, Default)]
pub struct GopCache {
    pub(super) frames: Vec<Arc<VideoFrame>>,
    bytes: usize,
    last_seq: Option<u64>,
    /// When the last frame came.
    pub(super) updated: Option<Instant>,
}

impl GopCache {
    /// Add `frame`. Returns false when frames were lost before it (the cache was emptied).
    pub(super) fn push(&mut self, frame: &Arc<VideoFrame>) -> bool {
        let intact = self.last_seq.is_none_or(|s| frame.seq == s + 1);
        self.last_seq = Some(frame.seq);
        if frame.is_keyframe || !intact {
            self.frames.clear();
            self.bytes = 0;
        }
        let first_is_key = self.frames.first().is_some_and(|f| f.is_keyframe);
        if frame.is_keyframe || first_is_key {
            if self.frames.len() < GOP_MAX_FRAMES && self.bytes + frame.data.len() <= GOP_MAX_BYTES
            {
                self.bytes += frame.data.len();
                self.frames.push(frame.clone());
            } else {
                self.frames.clear();
                self.bytes = 0;
            }
        }
        intact
    }
}

/// One stream's mapping from media time to the wall clock, for sender reports: anchored at its
/// first frame's arrival, re-anchored when the two drift a second apart (a restart, a jump).
#[derive(Debug, Clone, Copy)]
pub(super) struct StreamClock {
    at: Instant,
    pts_90khz: i64,
}

impl StreamClock {
    pub(super) fn wallclock(this: &mut Option<Self>, pts_90khz: i64, now: Instant) -> Instant {
        let clock = this.get_or_insert(Self { at: now, pts_90khz });
        let offset_us = (pts_90khz - clock.pts_90khz) * 100 / 9;
        let mapped = if offset_us >= 0 {
            clock.at + Duration::from_micros(offset_us as u64)
        } else {
            clock
                .at
                .checked_sub(Duration::from_micros(offset_us.unsigned_abs()))
                .unwrap_or(now)
        };
        let drift = if mapped > now {
            mapped - now
        } else {
            now - mapped
        };
        if drift > Duration::from_secs(1) {
            *clock = Self { at: now, pts_90khz };
            return now;
        }
        mapped
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(seq: u64, is_keyframe: bool) -> Arc<VideoFrame> {
        Arc::new(VideoFrame {
            stream: "live/a".into(),
            rendition: "source".into(),
            seq,
            pts_90khz: seq as i64 * 3000,
            is_keyframe,
            data: vec![0u8; 100].into(),
        })
    }

    #[test]
    fn the_gop_cache_holds_the_frames_since_the_latest_keyframe() {
        let mut gop = GopCache::default();
        assert!(gop.push(&frame(1, false)));
        assert!(gop.frames.is_empty(), "nothing before a keyframe");
        assert!(gop.push(&frame(2, true)));
        assert!(gop.push(&frame(3, false)));
        assert_eq!(gop.frames.len(), 2);
        assert!(gop.push(&frame(4, true)));
        assert_eq!(gop.frames.len(), 1);
        // A frame lost on the way: the chain is broken until the next keyframe.
        assert!(!gop.push(&frame(6, false)));
        assert!(gop.frames.is_empty());
        assert!(gop.push(&frame(7, true)));
        assert_eq!(gop.frames.len(), 1);
    }

    #[test]
    fn a_gop_longer_than_the_bound_is_not_cached() {
        let mut gop = GopCache::default();
        gop.push(&frame(1, true));
        for seq in 2..=GOP_MAX_FRAMES as u64 + 1 {
            gop.push(&frame(seq, false));
        }
        assert!(gop.frames.is_empty());
        gop.push(&frame(GOP_MAX_FRAMES as u64 + 2, false));
        assert!(gop.frames.is_empty(), "not until the next keyframe");
    }

    #[test]
    fn the_stream_clock_maps_media_time_to_the_wall_clock_and_reanchors_on_jumps() {
        let t0 = Instant::now();
        let mut clock = None;
        assert_eq!(StreamClock::wallclock(&mut clock, 90_000, t0), t0);
        let later = StreamClock::wallclock(&mut clock, 135_000, t0);
        assert_eq!(later - t0, Duration::from_millis(500));
        // Ten seconds of media time in no time: re-anchored.
        assert_eq!(StreamClock::wallclock(&mut clock, 1_000_000, t0), t0);
    }
}
