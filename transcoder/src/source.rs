//! [`SourceProbe`]: what a ladder needs to know about a source before its encoders open.
//!
//! A stream's first segment of source frames is held (not decoded yet) while the probe measures the
//! frame rate (encoders are opened at the real rate, not a guess), the video bit rate (no rung above
//! the source's), and whether the source's keyframes sit on the segment grid (a copied rendition is
//! offered only then). Then the ladder is chosen, the transcoder starts, and the held frames go in
//! first ([`crate::StreamTranscoder::push_backlog`]), faster than real time. The first playlist needs
//! every rendition's first complete segment anyway, so holding the first segment delays it by the
//! time it takes to encode that segment, not by a segment.
//!
//! Sans-IO: frames in, facts out; no clock.

use std::time::Duration;

use media::{Frame, SegmentClock, TrackInfo, TrackKind, time::rescale};

/// What the probe learned about a source (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SourceFacts {
    /// The segment grid, anchored at the first keyframe's PTS (90 kHz, source timeline), its period a
    /// whole number of frames at [`Self::frame_rate`]. `None` without video (or no keyframe).
    pub clock: Option<SegmentClock>,
    /// The measured frame rate, (numerator, denominator) frames per second, snapped to a common rate.
    pub frame_rate: Option<(u32, u32)>,
    /// The video bit rate over the first segment (its first keyframe included), bit/s.
    pub video_bitrate_bps: Option<u64>,
    /// True when the source's first frame (in decode order) at grid point 1 is a clean random access
    /// point (IDR): a copy of the source starts its second segment where every encoded rung does.
    /// False when it is not, or when the probe gave up before grid point 1.
    pub keyframes_fit_grid: bool,
}

/// Holds a source's first frames and measures it (see the module docs).
#[derive(Debug)]
pub struct SourceProbe {
    segment_target: Duration,
    video: Option<TrackInfo>,
    held: Vec<Frame>,
    /// PTS (90 kHz) of the first video keyframe.
    first_keyframe_pts_90khz: Option<i64>,
    /// DTS (90 kHz) of the held video frames from the first keyframe on, in arrival order.
    video_dts_90khz: Vec<i64>,
    /// The audio track's timescale (0 without audio).
    audio_timescale: u32,
    /// PTS of the first and the last held audio frame, audio timescale ticks.
    audio_span: Option<(i64, i64)>,
    is_done: bool,
}

/// Frames held at most (a bound on memory for a source that never gives the probe what it needs).
const MAX_HELD_FRAMES: usize = 2048;

impl SourceProbe {
    /// A probe for a source whose segments target `segment_target`, with its video and audio tracks
    /// as far as they are announced. Without video there is nothing to measure: done at once.
    pub fn new(
        segment_target: Duration,
        video: Option<&TrackInfo>,
        audio: Option<&TrackInfo>,
    ) -> Self {
        Self {
            segment_target,
            video: video.filter(|t| t.kind() == TrackKind::Video).cloned(),
            held: Vec::new(),
            first_keyframe_pts_90khz: None,
            video_dts_90khz: Vec::new(),
            audio_timescale: audio.map_or(0, |a| a.timescale),
            audio_span: None,
            is_done: video.is_none(),
        }
    }

    /// True once the facts are known (or the probe gave up: more than three segment targets of media
    /// held without reaching grid point 1, or `MAX_HELD_FRAMES` frames).
    pub fn is_done(&self) -> bool {
        self.is_done
    }

    /// Hold one source frame (timestamps in its track's timescale). Video frames before the first
    /// keyframe are dropped (nothing can decode them). Returns [`Self::is_done`].
    pub fn push(&mut self, frame: Frame) -> bool {
        match frame.track {
            TrackKind::Video => {
                let Some(video) = &self.video else {
                    return self.is_done;
                };
                let ts = video.timescale;
                let pts = rescale(frame.pts, ts, 90_000);
                let dts = rescale(frame.dts, ts, 90_000);
                if self.first_keyframe_pts_90khz.is_none() {
                    if !frame.is_keyframe {
                        return self.is_done;
                    }
                    self.first_keyframe_pts_90khz = Some(pts);
                }
                self.video_dts_90khz.push(dts);
                let first = self.first_keyframe_pts_90khz.unwrap_or(pts);
                // Grid point 1 plus three frames (B-frame reordering) must have arrived.
                let margin = 3 * self.frame_step_90khz().unwrap_or(3_000);
                if pts - first >= self.target_90khz() + margin {
                    self.is_done = true;
                }
                if dts - self.video_dts_90khz[0] > 3 * self.target_90khz() {
                    self.is_done = true;
                }
            }
            TrackKind::Audio => {
                let span = self.audio_span.get_or_insert((frame.pts, frame.pts));
                span.1 = span.1.max(frame.pts);
                // Video that never comes must not hold audio for long.
                let held = rescale(span.1 - span.0, self.audio_timescale.max(1), 90_000);
                if self.audio_timescale > 0 && held > 3 * self.target_90khz() {
                    self.is_done = true;
                }
            }
        }
        self.held.push(frame);
        if self.held.len() >= MAX_HELD_FRAMES {
            self.is_done = true;
        }
        self.is_done
    }

    fn target_90khz(&self) -> i64 {
        i64::try_from(self.segment_target.as_micros() * 9 / 100).unwrap_or(i64::MAX / 4)
    }

    /// The mean DTS step over the held video frames (90 kHz), or the median when a gap (a step over
    /// three times the median) makes the mean meaningless.
    fn frame_step_90khz(&self) -> Option<i64> {
        let d = &self.video_dts_90khz;
        if d.len() < 3 {
            return None;
        }
        let mut steps: Vec<i64> = d
            .windows(2)
            .map(|w| w[1] - w[0])
            .filter(|s| *s > 0)
            .collect();
        if steps.is_empty() {
            return None;
        }
        steps.sort_unstable();
        let median = steps[steps.len() / 2];
        let span = d[d.len() - 1] - d[0];
        let steps_count = (d.len() - 1) as i64;
        if steps[steps.len() - 1] > 3 * median {
            Some(median)
        } else {
            Some((span + steps_count / 2) / steps_count)
        }
    }

    /// The facts, and the held frames in arrival order (video from its first keyframe on).
    pub fn finish(self) -> (SourceFacts, Vec<Frame>) {
        let frame_rate = self.measured_frame_rate();
        let clock = self
            .first_keyframe_pts_90khz
            .map(|anchor| SegmentClock::new(anchor, self.segment_target, frame_rate));
        let mut keyframes_fit_grid = false;
        let mut first_segment_bytes = 0u64;
        if let (Some(clock), Some(video)) = (clock, &self.video) {
            let mut reached = false;
            for f in self.held.iter().filter(|f| f.track == TrackKind::Video) {
                let pts = rescale(f.pts, video.timescale, 90_000);
                let k = clock.index(pts);
                if k < 1 {
                    first_segment_bytes += f.data.len() as u64;
                } else if !reached {
                    reached = true;
                    keyframes_fit_grid =
                        f.is_keyframe && video.config.is_clean_random_access(&f.data);
                }
            }
        }
        let period_s = clock.map_or(0.0, |c| c.period_s());
        let video_bitrate_bps = (first_segment_bytes > 0 && period_s > 0.0)
            .then(|| (first_segment_bytes as f64 * 8.0 / period_s).ceil() as u64);
        (
            SourceFacts {
                clock,
                frame_rate,
                video_bitrate_bps,
                keyframes_fit_grid,
            },
            self.held,
        )
    }

    fn measured_frame_rate(&self) -> Option<(u32, u32)> {
        let step = self.frame_step_90khz()?;
        media::grid::snap_frame_rate(90_000.0 / step as f64)
    }
}
