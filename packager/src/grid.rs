//! The segment starts every rendition of a stream shares: which media sequence number starts where.
//!
//! With a producer grid (a transcoded ladder, [`media::SegmentClock`]) entries are keyed by grid point
//! and made by whichever rendition reaches a point first; without one (a stream packaged as it
//! arrives) the leader makes them where its keyframes fall. Either way a rendition that cuts later at
//! the same place takes the same media sequence number, so segments align across renditions.

use std::collections::VecDeque;

/// How many segment starts are remembered (well beyond any live window).
const CAPACITY: usize = 2048;

/// One segment start on the shared grid (times on the output timeline).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct GridEntry {
    /// The segment's media sequence number.
    pub msn: u64,
    /// The producer grid point ([`media::SegmentClock::index`]), when there is a producer grid.
    pub point: Option<i64>,
    /// DTS of the segment's first frame, 90 kHz ticks.
    pub dts_90khz: i64,
    /// PTS of the segment's first frame (the keyframe), 90 kHz ticks.
    pub pts_90khz: i64,
    /// False when the segment was cut there without a keyframe (a forced cut).
    pub on_keyframe: bool,
    /// True when the times are a video frame's; false when audio reached the point first and the
    /// times are the grid's nominal ones (a video rendition refines them when it cuts there).
    pub from_video: bool,
}

impl GridEntry {
    /// Where a follower cuts: the DTS for video, the presentation time for audio (whose PTS = DTS).
    pub fn start(&self, is_video: bool) -> i64 {
        if is_video {
            self.dts_90khz
        } else {
            self.pts_90khz
        }
    }
}

/// The shared segment starts, oldest first (see the module docs).
#[derive(Debug, Default)]
pub(crate) struct Grid {
    entries: VecDeque<GridEntry>,
}

impl Grid {
    /// Remember a segment start (the oldest is forgotten beyond the capacity).
    pub fn push(&mut self, entry: GridEntry) {
        if self.entries.len() >= CAPACITY {
            self.entries.pop_front();
        }
        self.entries.push_back(entry);
    }

    /// Forget every start (a discontinuity: a new producer grid numbers its points anew).
    pub fn clear(&mut self) {
        self.entries.clear();
    }

    /// All starts, oldest first.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = &GridEntry> {
        self.entries.iter()
    }

    /// The newest start.
    pub fn last(&self) -> Option<&GridEntry> {
        self.entries.back()
    }

    /// The oldest start.
    pub fn first(&self) -> Option<&GridEntry> {
        self.entries.front()
    }

    /// The start of segment `msn`.
    pub fn by_msn(&self, msn: u64) -> Option<&GridEntry> {
        self.entries.iter().rev().find(|e| e.msn == msn)
    }

    /// The start of segment `msn`, to refine its times.
    pub fn by_msn_mut(&mut self, msn: u64) -> Option<&mut GridEntry> {
        self.entries.iter_mut().rev().find(|e| e.msn == msn)
    }

    /// The start at producer grid point `point`.
    pub fn by_point(&self, point: i64) -> Option<&GridEntry> {
        self.entries.iter().rev().find(|e| e.point == Some(point))
    }

    /// The newest start at or before producer grid point `point`.
    pub fn at_or_before_point(&self, point: i64) -> Option<&GridEntry> {
        self.entries
            .iter()
            .rev()
            .find(|e| e.point.is_some_and(|p| p <= point))
    }

    /// The newest start a video rendition made.
    pub fn last_from_video(&self) -> Option<&GridEntry> {
        self.entries.iter().rev().find(|e| e.from_video)
    }
}
