//! The segment grid: where the segments of a transcoded stream start, on the source's presentation
//! timeline.
//!
//! Every video rendition of a ladder starts its segments on the same pictures: the transcoder forces an
//! IDR on the picture nearest each grid point, a copied source fits only while its own keyframes land
//! there, and the packager cuts every rendition there. [`SegmentClock`] is that grid, shared by both
//! sides so they cannot disagree.
//!
//! The grid is absolute (grid point `k` is `anchor + k × period`), so segment boundaries never drift
//! from it, and the period is a whole number of frames when the frame rate is known (2 s at 30000/1001
//! fps is 60 frames = 2.002 s), so a source whose keyframe interval is a whole number of segments keeps
//! fitting forever. The one exception is a splice point ([`SegmentClock::add_splice`], an SCTE-35 ad
//! break's out or return): the grid is re-anchored there, so that a segment starts exactly at the
//! splice time in every rendition (the segment before it is shorter) and the grid goes on from it.

use std::time::Duration;

/// Re-anchorings a grid remembers: the newest splice points (an ad break announced ahead is two, its
/// out and its return); older ones fold into the base, which only frames long gone could need.
const MAX_EPOCHS: usize = 8;

/// Where the grid is anchored from a point on: grid point `first_point + j` is at
/// `at_90khz + j × period`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct Epoch {
    /// Presentation time of `first_point`, 90 kHz ticks.
    at_90khz: i64,
    first_point: i64,
}

/// The segment grid on a source timeline (90 kHz ticks; see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentClock {
    /// The anchorings, oldest first: `epochs[0]` is the source's first keyframe (grid point 0) until
    /// more than [`MAX_EPOCHS`] splices; `epochs[1..len]` start at splice points.
    epochs: [Epoch; MAX_EPOCHS],
    len: usize,
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
                    epochs: Self::base(anchor_90khz),
                    len: 1,
                    period_num: frames.saturating_mul(90_000).saturating_mul(den),
                    period_den: num,
                    tolerance_90khz: (90_000 * den / num / 2).max(1),
                }
            }
            None => Self {
                epochs: Self::base(anchor_90khz),
                len: 1,
                period_num: target_90khz,
                period_den: 1,
                tolerance_90khz: UNKNOWN_RATE_TOLERANCE_90KHZ,
            },
        }
    }

    fn base(anchor_90khz: i64) -> [Epoch; MAX_EPOCHS] {
        let mut epochs = [Epoch::default(); MAX_EPOCHS];
        epochs[0].at_90khz = anchor_90khz;
        epochs
    }

    fn epochs(&self) -> &[Epoch] {
        &self.epochs[..self.len]
    }

    /// The same grid moved by `offset_90khz` (e.g. onto another timeline).
    pub fn shifted(mut self, offset_90khz: i64) -> Self {
        for e in &mut self.epochs[..self.len] {
            e.at_90khz = e.at_90khz.saturating_add(offset_90khz);
        }
        self
    }

    /// Presentation time of the grid's anchor (the source's first keyframe), 90 kHz ticks.
    pub fn anchor_90khz(&self) -> i64 {
        self.epochs[0].at_90khz
    }

    /// Re-anchor the grid at a splice point `at_90khz` (SCTE-35 §9.1: an out or return point of an ad
    /// break): the picture nearest it starts a segment in every rendition, the grid going on a period
    /// at a time from there. Grid points before it keep their place; the grid point that would have
    /// fallen inside the first period after it is dropped (no segment shorter than a period after the
    /// splice; the one before it is cut short).
    ///
    /// A point already on the grid (within the tolerance) changes nothing; one within half a period of
    /// another splice point is merged into it (a break's return as announced by its out and as sent
    /// by its in, a few milliseconds apart, make one boundary, not a segment of a frame). A point
    /// before a later splice point is placed between them, the later ones re-anchored after it: the
    /// caller gives only points that no frame has reached yet.
    pub fn add_splice(&mut self, at_90khz: i64) {
        let mut splices = [0i64; MAX_EPOCHS];
        let n = self.len - 1;
        for (slot, e) in splices.iter_mut().zip(&self.epochs[1..self.len]) {
            *slot = e.at_90khz;
        }
        if n > 0 && at_90khz < splices[n - 1] {
            // Between earlier splice points: rebuild the grid from the base with every point in order.
            self.len = 1;
            let mut all = splices[..n].to_vec();
            all.push(at_90khz);
            all.sort_unstable();
            for at in all {
                self.append_splice(at);
            }
        } else {
            self.append_splice(at_90khz);
        }
    }

    /// [`Self::add_splice`] for a point at or after the newest splice point.
    fn append_splice(&mut self, at_90khz: i64) {
        let k = self.index(at_90khz);
        if (self.point_90khz(k) - at_90khz).abs() <= self.tolerance_90khz {
            return;
        }
        let half_period = self.period_90khz() / 2;
        if self.epochs[1..self.len]
            .iter()
            .any(|e| (e.at_90khz - at_90khz).abs() <= half_period)
        {
            return;
        }
        let epoch = Epoch {
            at_90khz,
            first_point: k.saturating_add(1),
        };
        if self.len == MAX_EPOCHS {
            self.epochs.copy_within(1.., 0);
            self.len -= 1;
        }
        self.epochs[self.len] = epoch;
        self.len += 1;
    }

    /// The splice points the grid is re-anchored at (the newest seven at most), 90 kHz ticks.
    pub fn splice_points(&self) -> impl Iterator<Item = i64> + '_ {
        self.epochs[1..self.len].iter().map(|e| e.at_90khz)
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
        let reach = i128::from(pts_90khz) + i128::from(self.tolerance_90khz);
        let e = self
            .epochs()
            .iter()
            .rev()
            .find(|e| i128::from(e.at_90khz) <= reach)
            .unwrap_or(&self.epochs[0]);
        let scaled = (reach - i128::from(e.at_90khz)) * i128::from(self.period_den);
        (i128::from(e.first_point) + scaled.div_euclid(i128::from(self.period_num)))
            .clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64
    }

    /// Presentation time of grid point `k`, 90 kHz ticks (rounded down).
    pub fn point_90khz(&self, k: i64) -> i64 {
        let e = self
            .epochs()
            .iter()
            .rev()
            .find(|e| e.first_point <= k)
            .unwrap_or(&self.epochs[0]);
        let j = i128::from(k) - i128::from(e.first_point);
        let t = i128::from(e.at_90khz)
            + (j * i128::from(self.period_num)).div_euclid(i128::from(self.period_den));
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
    fn a_splice_point_starts_a_segment_and_the_grid_goes_on_from_it() {
        // 25 fps, 2 s segments: points every 180 000 ticks, frames every 3600.
        let mut c = SegmentClock::new(0, Duration::from_secs(2), Some((25, 1)));
        let before = c;
        c.add_splice(360_000 + 90_000); // an out at 5 s
        assert_eq!(c.index(360_000), 2, "points before it keep their place");
        assert_eq!(c.index(450_000 - 3600), 2, "the frame before the splice");
        assert_eq!(c.index(450_000), 3, "the splice starts the next point");
        assert_eq!(c.point_90khz(3), 450_000);
        assert_eq!(c.index(450_000 - 1000), 3, "within half a frame");
        assert_eq!(c.point_90khz(4), 630_000, "a period after the splice");
        assert_eq!(c.index(540_000), 3, "the old point at 6 s is gone");
        assert_eq!(c.index(630_000), 4);
        // On a grid point, or close to another splice point: nothing changes.
        let mut d = c;
        d.add_splice(630_000 + 100);
        d.add_splice(450_000 + 9_000);
        assert_eq!(d, c);
        let mut b = before;
        b.add_splice(180_000 - 1_000);
        assert_eq!(b, before, "half a frame from a point: that point");
        // The return 30 s later, then more splices than the grid remembers: the newest still hold.
        c.add_splice(450_000 + 30 * 90_000);
        assert_eq!(c.index(450_000 + 30 * 90_000), 3 + 15);
        for i in 1..=10 {
            c.add_splice(450_000 + 30 * 90_000 + i * 99_000);
        }
        let last = 450_000 + 30 * 90_000 + 10 * 99_000;
        assert_eq!(c.splice_points().count(), MAX_EPOCHS - 1);
        assert_eq!(c.point_90khz(c.index(last)), last);
        assert_eq!(c.point_90khz(c.index(last) + 1), last + 180_000);
        // Shifting moves the splice points with the anchor.
        let s = c.shifted(1_000);
        assert_eq!(s.point_90khz(s.index(last + 1_000)), last + 1_000);
    }

    #[test]
    fn an_early_return_goes_between_an_out_and_its_planned_return() {
        let mut c = SegmentClock::new(0, Duration::from_secs(2), Some((25, 1)));
        // An out at 5 s with a 31 s break announced, then the in at 15.5 s.
        c.add_splice(450_000);
        c.add_splice(450_000 + 31 * 90_000);
        c.add_splice(450_000 + 945_000);
        let points: Vec<i64> = c.splice_points().collect();
        assert_eq!(points, vec![450_000, 1_395_000, 3_240_000]);
        for at in points {
            assert_eq!(c.point_90khz(c.index(at)), at);
        }
        assert_eq!(c.index(1_395_000), 9, "the point after 5 s + 5 periods");
        assert_eq!(c.index(3_240_000), 9 + 11);
    }

    #[test]
    fn the_index_never_goes_back_across_splices() {
        let mut c = SegmentClock::new(1_234, Duration::from_secs(2), Some((30000, 1001)));
        for at in [500_000, 2_000_000, 700_000, 700_500, 1_900_000] {
            c.add_splice(at);
        }
        let mut last = i64::MIN;
        for pts in (0..3_000_000).step_by(3003) {
            let k = c.index(pts);
            assert!(k >= last, "index went back at {pts}");
            assert!(c.point_90khz(k) <= pts + c.tolerance_90khz());
            last = k;
        }
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
