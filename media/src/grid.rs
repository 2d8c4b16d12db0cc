//! The segment grid: where the segments of a transcoded stream start, on the source's presentation
//! timeline.
//!
//! Every video rendition of a ladder starts its segments on the same pictures: the transcoder forces an
//! IDR on the picture nearest each grid point, a copied source fits only while its own keyframes land
//! there, and the packager cuts every rendition there. [`SegmentClock`] is that grid, shared by both
//! sides so they cannot disagree.
//!
//! The grid is absolute (grid point `k` is `anchor + k × period`, never re-anchored), so segment
//! boundaries never drift from it, and the period is a whole number of frames when the frame rate is
//! known (2 s at 30000/1001 fps is 60 frames = 2.002 s), so a source whose keyframe interval is a
//! whole number of segments keeps fitting forever.

use std::time::Duration;

/// The segment grid on a source timeline (90 kHz ticks; see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentClock {
    /// Presentation time of grid point 0 (the source's first keyframe), 90 kHz ticks.
    anchor_90khz: i64,
    /// Grid period as the fraction `period_num / period_den` of 90 kHz ticks (exact for rates such as
    /// 30000/1001 fps).
    period_num: i64,
    period_den: i64,
    /// A picture presented up to this much before a grid point starts that point's segment: half a
    /// frame interval (the picture nearest the point), or 2 ms when the frame rate is unknown (RTMP
    /// timestamps are whole milliseconds). 90 kHz ticks.
    tolerance_90khz: i64,
}

/// Tolerance when the frame rate is unknown: 2 ms in 90 kHz ticks.
const UNKNOWN_RATE_TOLERANCE_90KHZ: i64 = 180;

impl SegmentClock {
    /// The grid anchored at `anchor_90khz` (the first keyframe's PTS) whose period is `segment_target`
    /// rounded to a whole number of frames at `frame_rate` (frames per second as numerator,
    /// denominator; at least one frame), or exactly `segment_target` when the rate is unknown.
    pub fn new(
        anchor_90khz: i64,
        segment_target: Duration,
        frame_rate: Option<(u32, u32)>,
    ) -> Self {
        let target_90khz = i64::try_from(segment_target.as_micros() * 9 / 100)
            .unwrap_or(i64::MAX / 4)
            .max(1);
        match frame_rate.filter(|(n, d)| *n > 0 && *d > 0) {
            Some((num, den)) => {
                let (num, den) = (i64::from(num), i64::from(den));
                // Frames per period: target × fps, rounded to nearest, at least one.
                let frames = ((i128::from(target_90khz) * i128::from(num)
                    + i128::from(90_000 * den) / 2)
                    / i128::from(90_000 * den))
                .max(1) as i64;
                // Period = frames × den / num seconds = frames × 90 000 × den / num ticks.
                Self {
                    anchor_90khz,
                    period_num: frames.saturating_mul(90_000).saturating_mul(den),
                    period_den: num,
                    tolerance_90khz: (90_000 * den / num / 2).max(1),
                }
            }
            None => Self {
                anchor_90khz,
                period_num: target_90khz,
                period_den: 1,
                tolerance_90khz: UNKNOWN_RATE_TOLERANCE_90KHZ,
            },
        }
    }

    /// The same grid moved by `offset_90khz` (e.g. onto another timeline).
    pub fn shifted(self, offset_90khz: i64) -> Self {
        Self {
            anchor_90khz: self.anchor_90khz.saturating_add(offset_90khz),
            ..self
        }
    }

    /// Presentation time of grid point 0, 90 kHz ticks.
    pub fn anchor_90khz(&self) -> i64 {
        self.anchor_90khz
    }

    /// The grid period in seconds (for display and target durations, not for timeline arithmetic).
    pub fn period_s(&self) -> f64 {
        self.period_num as f64 / self.period_den as f64 / 90_000.0
    }

    /// The grid period rounded down to whole 90 kHz ticks.
    pub fn period_90khz(&self) -> i64 {
        self.period_num / self.period_den
    }

    /// How early a picture may be presented and still start a grid point's segment, 90 kHz ticks.
    pub fn tolerance_90khz(&self) -> i64 {
        self.tolerance_90khz
    }

    /// The grid point a picture presented at `pts_90khz` belongs to: the largest `k` whose point is at
    /// or before `pts + tolerance`. Negative before the anchor.
    pub fn index(&self, pts_90khz: i64) -> i64 {
        let rel = i128::from(pts_90khz) - i128::from(self.anchor_90khz)
            + i128::from(self.tolerance_90khz);
        let scaled = rel * i128::from(self.period_den);
        scaled
            .div_euclid(i128::from(self.period_num))
            .clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64
    }

    /// Presentation time of grid point `k`, 90 kHz ticks (rounded down).
    pub fn point_90khz(&self, k: i64) -> i64 {
        let t = i128::from(self.anchor_90khz)
            + (i128::from(k) * i128::from(self.period_num)).div_euclid(i128::from(self.period_den));
        t.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64
    }
}

/// The frame rates cameras and broadcast use, as (numerator, denominator) frames per second.
const COMMON_FRAME_RATES: [(u32, u32); 12] = [
    (12, 1),
    (15, 1),
    (24000, 1001),
    (24, 1),
    (25, 1),
    (30000, 1001),
    (30, 1),
    (48, 1),
    (50, 1),
    (60000, 1001),
    (60, 1),
    (120, 1),
];

/// `fps` frames per second as (numerator, denominator): the nearest common rate (24000/1001, 25,
/// 30000/1001, …) when within 0.5 % of it — timestamps in whole milliseconds make 23.976 fps look like
/// 23.8 to 24.4 from frame to frame, but not over many frames — else the rate rounded to 1/1000.
/// `None` for a rate that is not positive and finite.
pub fn snap_frame_rate(fps: f64) -> Option<(u32, u32)> {
    if !(fps.is_finite() && fps > 0.0) {
        return None;
    }
    let near = COMMON_FRAME_RATES
        .iter()
        .map(|&(n, d)| ((f64::from(n) / f64::from(d) - fps).abs() / fps, (n, d)))
        .min_by(|a, b| a.0.total_cmp(&b.0))?;
    if near.0 <= 0.005 {
        return Some(near.1);
    }
    let milli = (fps * 1000.0).round();
    (milli >= 1.0 && milli <= f64::from(u32::MAX)).then_some((milli as u32, 1000))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn period_is_a_whole_number_of_frames() {
        let c = SegmentClock::new(0, Duration::from_secs(2), Some((30000, 1001)));
        // 60 frames of 3003 ticks.
        assert_eq!(c.point_90khz(1), 180_180);
        assert_eq!(c.point_90khz(100), 18_018_000);
        assert_eq!(c.tolerance_90khz(), 1501);
        let c = SegmentClock::new(0, Duration::from_secs(2), Some((25, 1)));
        assert_eq!(c.point_90khz(3), 540_000);
        let c = SegmentClock::new(0, Duration::from_secs(2), None);
        assert_eq!(c.point_90khz(1), 180_000);
        assert_eq!(c.tolerance_90khz(), 180);
        // A very low rate still has a period of at least one frame.
        let c = SegmentClock::new(0, Duration::from_millis(100), Some((1, 1)));
        assert_eq!(c.point_90khz(1), 90_000);
    }

    #[test]
    fn index_takes_the_picture_nearest_each_point() {
        // 23.976 fps: frames every 3753.75 ticks; the period is 48 frames = 180 180 ticks.
        let c = SegmentClock::new(1_000, Duration::from_secs(2), Some((24000, 1001)));
        assert_eq!(c.index(1_000), 0);
        assert_eq!(c.index(1_000 + 180_180 - 3754), 0, "a whole frame early");
        assert_eq!(c.index(1_000 + 180_180 - 1_000), 1, "within half a frame");
        assert_eq!(c.index(1_000 + 180_180 + 90), 1, "a millisecond late");
        assert_eq!(c.index(1_000 + 2 * 180_180), 2);
        assert_eq!(c.index(1_000 - 180_180), -1);
        // No drift: the millionth point is exactly where a million periods put it.
        assert_eq!(c.point_90khz(1_000_000), 1_000 + 180_180_000_000);
    }

    #[test]
    fn snap_frame_rate_finds_common_rates() {
        assert_eq!(snap_frame_rate(23.9), Some((24000, 1001)));
        assert_eq!(snap_frame_rate(29.97), Some((30000, 1001)));
        assert_eq!(snap_frame_rate(25.0), Some((25, 1)));
        assert_eq!(snap_frame_rate(17.3), Some((17_300, 1000)));
        assert_eq!(snap_frame_rate(f64::NAN), None);
        assert_eq!(snap_frame_rate(0.0), None);
    }
}
