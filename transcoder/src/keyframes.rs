//! Pure per-frame policies: frame rate caps, load shedding. (Where segments start is
//! [`media::SegmentClock`].)
//!
//! Sans-IO: timestamps and an explicit `now` in, decisions out.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Drops pictures to keep a rung at or below a frame rate cap (90 kHz timestamps, presentation order).
///
/// A picture is admitted when its PTS is no earlier than a quarter interval before the next slot; the
/// next slot then advances by one interval (or restarts from the picture after a gap). Forced
/// keyframes are always admitted.
#[derive(Debug, Clone)]
pub(crate) struct FrameRateCap {
    interval_90khz: Option<i64>,
    next_slot_90khz: Option<i64>,
}

impl FrameRateCap {
    /// A cap of `max_fps` frames per second (`None`: no cap).
    pub(crate) fn new(max_fps: Option<f64>) -> Self {
        let interval_90khz = max_fps
            .filter(|f| f.is_finite() && *f > 0.0)
            .map(|f| ((90_000.0 / f).round() as i64).max(1));
        Self {
            interval_90khz,
            next_slot_90khz: None,
        }
    }

    /// True if the picture at `pts_90khz` is kept.
    pub(crate) fn admit(&mut self, pts_90khz: i64, is_forced: bool) -> bool {
        let Some(interval) = self.interval_90khz else {
            return true;
        };
        let next = match self.next_slot_90khz {
            None => pts_90khz,
            Some(n) => n,
        };
        if !is_forced && pts_90khz < next - interval / 4 {
            return false;
        }
        self.next_slot_90khz = Some(
            if pts_90khz - next > interval / 2 || pts_90khz < next - interval {
                pts_90khz + interval
            } else {
                next + interval
            },
        );
        true
    }
}

/// Queue occupancy (fraction of capacity) at or above which a queue counts as congested.
const CONGESTED_FRACTION: f64 = 0.75;
/// Occupancy below which congestion is over.
const RELIEVED_FRACTION: f64 = 0.5;

/// Decides when a stream cannot keep up: when its busiest queue stays at or above 3/4 of its capacity for
/// `shed_after` (hysteresis: the clock restarts only once occupancy falls below 1/2). After each
/// decision to shed the clock restarts, so rungs are shed one at a time.
#[derive(Debug, Clone)]
pub(crate) struct Congestion {
    shed_after: Duration,
    since: Option<Instant>,
}

impl Congestion {
    /// A detector that sheds after `shed_after` of sustained congestion.
    pub(crate) fn new(shed_after: Duration) -> Self {
        Self {
            shed_after,
            since: None,
        }
    }

    /// Observe the busiest queue's occupancy (0.0..=1.0) at `now`; true if a rung should be shed now.
    pub(crate) fn observe(&mut self, now: Instant, occupancy: f64) -> bool {
        if occupancy >= CONGESTED_FRACTION {
            let since = *self.since.get_or_insert(now);
            if now.duration_since(since) >= self.shed_after {
                self.since = None;
                return true;
            }
        } else if occupancy < RELIEVED_FRACTION {
            self.since = None;
        }
        false
    }
}

/// Shared by the transcoders that share a machine's cores (the streams of one origin): after one of
/// them sheds a rung, the others wait before shedding one too, so an overload drops the fewest rungs.
/// Without it, every congested stream of an overloaded process sheds at about the same moment,
/// although the first sheds are often enough (`ladder_vs_ffmpeg`'s streams per machine: five streams
/// each shed their 480p rung and left a third of a core idle).
///
/// Clones share one gate; [`Default`] makes a new one. Equal when shared.
#[derive(Debug, Clone, Default)]
pub struct ShedGate(Arc<Mutex<Option<Instant>>>);

impl PartialEq for ShedGate {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl ShedGate {
    /// Whether a stream may shed a rung at `now`: yes (recorded as the gate's last shed) unless
    /// another shed happened less than `settle` before.
    pub(crate) fn admit(&self, now: Instant, settle: Duration) -> bool {
        let mut last = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if last.is_some_and(|t| now.saturating_duration_since(t) < settle) {
            return false;
        }
        *last = Some(now);
        true
    }
}

/// One encoded rung as the shedding policy sees it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ShedCandidate {
    /// [`crate::RungConfig::priority`].
    pub priority: u32,
    /// Output height in pixels (the cost proxy for ties).
    pub height: u32,
    /// Still encoding (not shed, not failed).
    pub is_active: bool,
}

/// Which encoded rung to shed: the active one with the lowest priority, the tallest among equals. When
/// the ladder has no copy rung, the last active encoded rung is kept (the stream keeps one video
/// rendition and drops frames instead).
pub(crate) fn pick_rung_to_shed(rungs: &[ShedCandidate], has_copy: bool) -> Option<usize> {
    let active = rungs.iter().filter(|r| r.is_active).count();
    if active == 0 || (!has_copy && active == 1) {
        return None;
    }
    rungs
        .iter()
        .enumerate()
        .filter(|(_, r)| r.is_active)
        .min_by(|(_, a), (_, b)| a.priority.cmp(&b.priority).then(b.height.cmp(&a.height)))
        .map(|(i, _)| i)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_rate_cap_halves_60_fps_with_millisecond_jitter() {
        let mut cap = FrameRateCap::new(Some(30.0));
        // 60 fps with RTMP millisecond timestamps rescaled to 90 kHz.
        let kept: Vec<i64> = [0, 17, 33, 50, 67, 83, 100, 117, 133]
            .iter()
            .map(|ms| ms * 90)
            .filter(|pts| cap.admit(*pts, false))
            .collect();
        assert_eq!(kept, vec![0, 33 * 90, 67 * 90, 100 * 90, 133 * 90]);
    }

    #[test]
    fn frame_rate_cap_keeps_everything_below_the_cap_and_forced_frames() {
        let mut cap = FrameRateCap::new(Some(30.0));
        assert!(
            (0..48).all(|i| cap.admit(i * 3750, false)),
            "24 fps under a 30 fps cap"
        );
        let mut cap = FrameRateCap::new(Some(1.0));
        assert!(cap.admit(0, false));
        assert!(!cap.admit(3000, false));
        assert!(cap.admit(6000, true), "forced keyframes are never dropped");
        let mut none = FrameRateCap::new(None);
        assert!(none.admit(0, false) && none.admit(1, false));
    }

    #[test]
    fn congestion_needs_sustained_high_occupancy_with_hysteresis() {
        let t0 = Instant::now();
        let s = |ms| t0 + Duration::from_millis(ms);
        let mut c = Congestion::new(Duration::from_secs(2));
        assert!(!c.observe(s(0), 1.0));
        assert!(
            !c.observe(s(1000), 0.6),
            "between the marks: still congested"
        );
        assert!(c.observe(s(2000), 0.8));
        assert!(!c.observe(s(2100), 1.0), "the clock restarts after a shed");
        assert!(!c.observe(s(3000), 0.4), "relieved");
        assert!(!c.observe(s(3100), 1.0));
        assert!(!c.observe(s(5000), 1.0));
        assert!(c.observe(s(5100), 1.0));
    }

    #[test]
    fn a_shared_gate_lets_one_stream_shed_per_settling_time() {
        let t0 = Instant::now();
        let settle = Duration::from_secs(4);
        let gate = ShedGate::default();
        let other_stream = gate.clone();
        assert!(gate.admit(t0, settle));
        assert!(!other_stream.admit(t0 + Duration::from_secs(1), settle));
        assert!(!gate.admit(t0 + Duration::from_millis(3999), settle));
        assert!(other_stream.admit(t0 + settle, settle));
        // Another origin's gate is its own.
        assert!(ShedGate::default().admit(t0 + settle, settle));
        assert!(gate == other_stream && gate != ShedGate::default());
    }

    #[test]
    fn shed_lowest_priority_then_tallest_and_keep_one_without_copy() {
        let r = |priority, height, is_active| ShedCandidate {
            priority,
            height,
            is_active,
        };
        let rungs = [r(2, 480, true), r(1, 360, true), r(1, 720, true)];
        assert_eq!(pick_rung_to_shed(&rungs, true), Some(2));
        let rungs = [r(2, 480, true), r(1, 360, false), r(1, 720, false)];
        assert_eq!(pick_rung_to_shed(&rungs, true), Some(0));
        assert_eq!(pick_rung_to_shed(&rungs, false), None);
        assert_eq!(pick_rung_to_shed(&[], true), None);
    }
}
