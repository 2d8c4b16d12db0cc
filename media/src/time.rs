//! Timestamps that carry their timescale.

use std::fmt;

/// A media timestamp or duration: `ticks` counted at `timescale` ticks per second.
///
/// Rescaling uses 128-bit intermediates and rounds to nearest (ties away from zero), so it never
/// overflows for any `i64` tick count and timescale up to `u32::MAX`.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct MediaTime {
    /// Tick count (may be negative, e.g. a composition offset).
    pub ticks: i64,
    /// Ticks per second; never 0.
    pub timescale: u32,
}

impl MediaTime {
    /// The 90 kHz clock of MPEG-TS and of Estuary's video tracks.
    pub const HZ_90K: u32 = 90_000;

    /// A timestamp of `ticks` at `timescale` Hz. Panics if `timescale` is 0 (an internal invariant:
    /// timescales come from configuration records that are validated when parsed).
    pub const fn new(ticks: i64, timescale: u32) -> Self {
        assert!(timescale != 0, "timescale must be non-zero");
        Self { ticks, timescale }
    }

    /// A timestamp in milliseconds (timescale 1000).
    pub const fn from_ms(ms: i64) -> Self {
        Self::new(ms, 1000)
    }

    /// The same instant at another timescale, rounded to nearest.
    pub fn rescale(self, timescale: u32) -> Self {
        Self::new(rescale(self.ticks, self.timescale, timescale), timescale)
    }

    /// Seconds as `f64` (for display and playlist durations only, never for arithmetic on timelines).
    pub fn as_secs_f64(self) -> f64 {
        self.ticks as f64 / f64::from(self.timescale)
    }

    /// Whole milliseconds, rounded to nearest.
    pub fn as_ms(self) -> i64 {
        rescale(self.ticks, self.timescale, 1000)
    }
}

/// Rescale `ticks` from timescale `from` to timescale `to`, rounding to nearest (ties away from zero).
/// Saturates at the `i64` range. `from` must be non-zero (a 0 `from` returns 0).
pub fn rescale(ticks: i64, from: u32, to: u32) -> i64 {
    if from == to {
        return ticks;
    }
    if from == 0 {
        return 0;
    }
    let num = i128::from(ticks) * i128::from(to);
    let den = i128::from(from);
    let half = den / 2;
    let q = if num >= 0 {
        (num + half) / den
    } else {
        (num - half) / den
    };
    q.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64
}

impl fmt::Debug for MediaTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}Hz", self.ticks, self.timescale)
    }
}

/// Unwraps a wrapping timestamp clock (RTMP's 32-bit milliseconds, MPEG-TS's 33-bit 90 kHz) into a
/// monotonic-ish 64-bit tick count.
///
/// Each input is interpreted as the value closest to the previous output modulo `2^bits`, so both
/// forward wraps and small backward steps (B-frame PTS, interleaving jitter) are handled.
#[derive(Debug, Clone)]
pub struct Unwrapper {
    bits: u32,
    last: Option<i64>,
}

impl Unwrapper {
    /// An unwrapper for a clock of `bits` bits (1..=62).
    pub fn new(bits: u32) -> Self {
        assert!((1..=62).contains(&bits), "clock width out of range");
        Self { bits, last: None }
    }

    /// The last value [`Self::unwrap`] returned, if any.
    pub fn last(&self) -> Option<i64> {
        self.last
    }

    /// The unwrapped value nearest the last one for `raw` (only its low `bits` bits are used), without
    /// moving the clock: for a time announced ahead (an SCTE-35 splice time) on the same clock.
    pub fn nearest(&self, raw: u64) -> i64 {
        let modulus = 1i64 << self.bits;
        let raw = (raw & (modulus as u64 - 1)) as i64;
        match self.last {
            None => raw,
            Some(last) => {
                let base = last - last.rem_euclid(modulus);
                [base - modulus + raw, base + raw, base + modulus + raw]
                    .into_iter()
                    .min_by_key(|c| (*c - last).abs())
                    .unwrap_or(raw)
            }
        }
    }

    /// Unwrap one raw clock value (only its low `bits` bits are used).
    pub fn unwrap(&mut self, raw: u64) -> i64 {
        let modulus = 1i64 << self.bits;
        let raw = (raw & (modulus as u64 - 1)) as i64;
        let out = match self.last {
            None => raw,
            Some(last) => {
                let base = last - last.rem_euclid(modulus);
                let candidates = [base - modulus + raw, base + raw, base + modulus + raw];
                *candidates
                    .iter()
                    .min_by_key(|c| (*c - last).abs())
                    .expect("three candidates")
            }
        };
        self.last = Some(out);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rescale_ms_to_90k_is_exact() {
        assert_eq!(MediaTime::from_ms(33).rescale(90_000).ticks, 2970);
        assert_eq!(MediaTime::new(-3003, 90_000).rescale(1000).ticks, -33);
    }

    #[test]
    fn rescale_rounds_to_nearest_and_saturates() {
        assert_eq!(rescale(1, 3, 2), 1); // 0.667 -> 1
        assert_eq!(rescale(1, 4, 2), 1); // 0.5 -> 1 (away from zero)
        assert_eq!(rescale(-1, 4, 2), -1);
        assert_eq!(rescale(i64::MAX, 1, 90_000), i64::MAX);
    }

    #[test]
    fn unwrapper_rtmp_32bit_wrap() {
        let mut u = Unwrapper::new(32);
        assert_eq!(u.unwrap(0xFFFF_FFF0), 0xFFFF_FFF0);
        assert_eq!(u.unwrap(0x10), 0x1_0000_0010);
        // A small step back across the wrap (B-frame style) stays near.
        assert_eq!(u.unwrap(0xFFFF_FFFF), 0xFFFF_FFFF);
    }

    #[test]
    fn unwrapper_ts_33bit_wrap() {
        let mut u = Unwrapper::new(33);
        let top = (1u64 << 33) - 3000;
        assert_eq!(u.unwrap(top), top as i64);
        assert_eq!(u.unwrap(600), (1i64 << 33) + 600);
    }
}
