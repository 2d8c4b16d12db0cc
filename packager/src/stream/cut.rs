//! Where segments are cut: on the producer's grid (transcoded renditions), or at keyframes
//! (passthrough), and the target duration fixed from what is known before the first playlist.

use media::{Frame, SegmentClock, TrackKind, time::rescale};

use crate::rendition::Rendition;

use super::*;

impl StreamPackager {
    /// The target duration (whole seconds) to fix when the first segment completes, lasting
    /// `first_segment_s`: with a producer grid, the grid period plus a frame of timestamp jitter,
    /// rounded as EXTINF values are (RFC 8216bis §4.4.3.1: each EXTINF rounded to the nearest integer
    /// is at most the target duration); otherwise the longest of the segment target, the first segment
    /// and the longest keyframe interval seen, rounded up (the 2 ms of jitter absorbed at part
    /// boundaries aside). At most [`PackagerConfig::max_target_duration`].
    pub(super) fn target_duration_for(&self, first_segment_s: f64) -> u32 {
        let jitter = crate::config::JITTER_TOLERANCE.as_secs_f64();
        let secs = match self.clock {
            Some(clock) => {
                let longest = clock.period_s() + 2.0 * clock.tolerance_90khz() as f64 / 90_000.0;
                (longest.max(first_segment_s) - 0.5).ceil()
            }
            None => (self
                .config
                .segment_target
                .as_secs_f64()
                .max(first_segment_s)
                .max(self.longest_keyframe_interval_90khz as f64 / 90_000.0)
                - jitter)
                .ceil(),
        };
        (secs as u32).clamp(1, self.config.max_target_duration.as_secs().max(1) as u32)
    }

    /// True when every rendition has a complete segment, or one has [`READY_WAIT_SEGMENTS`] (the
    /// others are then left out until they have one).
    pub(super) fn all_have_a_segment(&self) -> bool {
        let complete = |r: &Rendition| r.segments().iter().filter(|s| s.is_complete).count();
        self.renditions.iter().all(|r| complete(r) > 0)
            || self
                .renditions
                .iter()
                .any(|r| complete(r) >= READY_WAIT_SEGMENTS)
    }

    /// The longest a segment of this kind may last before it is cut without a keyframe, ticks: with a
    /// producer grid (or once the target duration is fixed) the most an EXTINF may round to the target
    /// duration (half a second more, less one tick; audio, cut at the frame nearest the video's cut,
    /// the same); before that [`PackagerConfig::max_target_duration`]; without a producer grid, video
    /// waits for a keyframe up to twice that.
    pub(super) fn segment_limit_ticks(&self, is_video: bool, timescale: u32) -> i64 {
        let ts = i64::from(timescale);
        let fixed = self
            .target_duration_s
            .map(|td| i64::from(td) * ts + ts / 2 - 1);
        match (self.clock, fixed) {
            (Some(_), Some(limit)) => limit,
            (None, Some(limit)) if !is_video => limit,
            _ => {
                let max = duration_ticks(self.config.max_target_duration, timescale);
                if self.clock.is_none() && is_video {
                    2 * max
                } else {
                    max
                }
            }
        }
    }

    /// Where rendition `idx` cuts with a producer grid (see the type docs).
    pub(super) fn producer_cut(&self, idx: usize, frame: &Frame, clock: SegmentClock) -> Decision {
        let r = &self.renditions[idx];
        let ts = r.timescale();
        let pts_90khz = rescale(frame.pts, ts, 90_000);
        let open = r.segments().back().filter(|s| !s.is_complete);
        if r.kind() == TrackKind::Video {
            let point = clock.index(pts_90khz).max(0);
            let Some(open) = open else {
                if !frame.is_keyframe {
                    return Decision::Drop;
                }
                let msn = self.msn_at_point(point, r.next_msn());
                return Decision::Cut {
                    kind: Cut::Open,
                    msn,
                    point: Some(point),
                };
            };
            let open_point = open.grid_point.unwrap_or(point);
            let elapsed = r.open_segment_elapsed(frame.dts).unwrap_or(0);
            if frame.is_keyframe && point > open_point {
                Decision::Cut {
                    kind: Cut::Natural,
                    msn: open.msn + 1,
                    point: Some(point),
                }
            } else if elapsed > self.segment_limit_ticks(true, ts) {
                Decision::Cut {
                    kind: Cut::Forced,
                    msn: open.msn + 1,
                    point: Some(point.max(open_point + 1)),
                }
            } else {
                Decision::Continue
            }
        } else {
            // Audio cuts at the frame nearest the boundary: where the video cut, or the grid point.
            let half_90khz = rescale(r.est_duration_ticks(), ts, 90_000) / 2;
            let Some(open) = open else {
                let point = clock.index(pts_90khz + half_90khz).max(0);
                let msn = self.msn_at_point(point, r.next_msn());
                return Decision::Cut {
                    kind: Cut::Open,
                    msn,
                    point: Some(point),
                };
            };
            let open_point = open.grid_point.unwrap_or(0);
            // The next segment's start: where a video rendition started it, else the grid point.
            let next = self
                .grid
                .by_msn(open.msn + 1)
                .filter(|g| g.point.is_some_and(|p| p > open_point));
            let boundary_90khz = next.map_or(clock.point_90khz(open_point + 1), |g| g.pts_90khz);
            let elapsed = r.open_segment_elapsed(frame.dts).unwrap_or(0);
            if pts_90khz + half_90khz >= boundary_90khz
                || elapsed > self.segment_limit_ticks(false, ts) + i64::from(ts)
            {
                // After a gap in the audio, the new segment belongs to the point its frame is at,
                // not to each point skipped (no segment of a frame or two).
                let point = next
                    .and_then(|g| g.point)
                    .unwrap_or_else(|| clock.index(pts_90khz + half_90khz).max(open_point + 1));
                Decision::Cut {
                    kind: Cut::Natural,
                    msn: open.msn + 1,
                    point: Some(point),
                }
            } else {
                Decision::Continue
            }
        }
    }

    /// The msn of a rendition's first segment at producer grid point `point`: the one another rendition
    /// started there (or the newest one before it), else the next number. Never below `own_next`.
    pub(super) fn msn_at_point(&self, point: i64, own_next: Option<u64>) -> u64 {
        let msn = match (self.grid.by_point(point), self.grid.last()) {
            (Some(g), _) => g.msn,
            (None, Some(last)) if last.point.is_none_or(|p| p < point) => last.msn + 1,
            (None, Some(_)) => self
                .grid
                .at_or_before_point(point)
                .map_or(self.next_msn, |g| g.msn),
            (None, None) => self.next_msn,
        };
        match own_next {
            Some(own) if own > msn => own,
            _ => msn,
        }
    }

    /// Where rendition `idx` cuts by the keyframe rule (see the type docs).
    pub(super) fn keyframe_cut(&self, idx: usize, frame: &Frame, is_leader: bool) -> Decision {
        let r = &self.renditions[idx];
        let timescale = r.timescale();
        let is_video = r.kind() == TrackKind::Video;
        let frame_90khz = rescale(frame.dts, timescale, 90_000);
        let jitter = duration_ticks(crate::config::JITTER_TOLERANCE, timescale);
        let jitter_90khz = duration_ticks(crate::config::JITTER_TOLERANCE, 90_000);
        let segment_target = duration_ticks(self.config.segment_target, timescale);
        // How close to a grid point a follower's frame must be to start the segment there: the source's
        // timestamp jitter for video; for audio, whose frames do not fall on the video's times, half a
        // frame, so that audio cuts at the frame nearest the video boundary.
        let snap_90khz = if is_video {
            jitter_90khz
        } else {
            jitter_90khz.max(rescale(r.est_duration_ticks(), timescale, 90_000) / 2)
        };
        let limit = self.segment_limit_ticks(is_video, timescale);
        match r.open_segment_elapsed(frame.dts) {
            None => {
                if is_video && !frame.is_keyframe {
                    return Decision::Drop;
                }
                let msn = if is_leader {
                    // Its own next number: a rendition's numbers never skip one (a player numbers
                    // segments by their place in the playlist). On its first segment, the one a
                    // follower (audio ahead of the first keyframe) already opened, if any.
                    r.next_msn()
                        .or_else(|| self.grid.first().map(|g| g.msn))
                        .unwrap_or(self.next_msn)
                } else {
                    // Join the leader's segment that contains this frame (or the leader's next one).
                    let own_next = r.next_msn().unwrap_or(0);
                    let grid_msn = self
                        .grid
                        .iter()
                        .rev()
                        .find(|g| g.start(is_video) <= frame_90khz + snap_90khz)
                        // Audio that precedes the first keyframe's presentation time belongs
                        // to the first segment.
                        .or(self.grid.first())
                        .map(|g| g.msn)
                        .unwrap_or(self.next_msn);
                    if own_next > 0 && grid_msn > own_next {
                        // Should not happen (followers cut where the leader does); visible if it does.
                        tracing::warn!(
                            rendition = r.name(),
                            from = own_next,
                            to = grid_msn,
                            "rendition behind the leader: media sequence numbers skipped"
                        );
                    }
                    grid_msn.max(own_next)
                };
                Decision::Cut {
                    kind: Cut::Open,
                    msn,
                    point: None,
                }
            }
            Some(elapsed) => {
                let seg_elapsed = elapsed - r.est_duration_ticks();
                let open_msn = r.segments().back().map_or(0, |s| s.msn);
                let next = |kind| Decision::Cut {
                    kind,
                    msn: open_msn + 1,
                    point: None,
                };
                if is_leader {
                    // Past the target: the first keyframe cuts. Earlier (but at least half the target)
                    // when the longest keyframe interval seen would take the segment past what the
                    // target duration allows.
                    let longest = rescale(self.longest_keyframe_interval_90khz, 90_000, timescale);
                    let ts = i64::from(timescale);
                    let would_overrun = self.target_duration_s.is_some_and(|td| {
                        2 * seg_elapsed >= segment_target
                            && seg_elapsed + longest > i64::from(td) * ts + ts / 2 - 1
                    });
                    if frame.is_keyframe
                        && (seg_elapsed + jitter >= segment_target || would_overrun)
                    {
                        next(Cut::Natural)
                    } else if elapsed > limit {
                        next(Cut::Forced)
                    } else {
                        Decision::Continue
                    }
                } else {
                    let next_entry = self.grid.by_msn(open_msn + 1);
                    let reached =
                        next_entry.is_some_and(|g| frame_90khz + snap_90khz >= g.start(is_video));
                    if reached && (!is_video || frame.is_keyframe) {
                        next(Cut::Natural)
                    } else if reached && next_entry.is_some_and(|g| !g.on_keyframe) {
                        // The leader cut without a keyframe: so does this rendition, or it would stay
                        // a segment behind.
                        next(Cut::Forced)
                    } else if elapsed
                        > self.segment_limit_ticks(true, timescale) + i64::from(timescale)
                    {
                        // The leader stalled (past the longest segment it may make): cut on our own
                        // rather than grow without bound. A long keyframe interval of the leader is
                        // no stall: cutting then would put this rendition's segments apart from the
                        // leader's.
                        next(Cut::Forced)
                    } else {
                        Decision::Continue
                    }
                }
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Cut {
    Open,
    Natural,
    Forced,
}

/// What to do with one frame of a rendition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Decision {
    /// Drop it (a video frame before the rendition's first keyframe).
    Drop,
    /// Add it to the open segment.
    Continue,
    /// Cut before it (or open the first segment with it): the new segment's msn and grid point.
    Cut {
        kind: Cut,
        msn: u64,
        point: Option<i64>,
    },
}
