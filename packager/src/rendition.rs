//! One rendition: its segmenter state and its live window of segments and parts.
//!
//! A rendition is one CMAF track (one init segment at a time) cut into segments and parts. Frames come in
//! already timestamped on the output timeline; the rendition decides where parts end, writes each part as
//! one CMAF chunk (moof + mdat, [`crate::cmaf::write_chunk`]) and keeps the last `window_segments`
//! complete segments plus the one in progress.

use std::collections::VecDeque;

use bytes::Bytes;
use media::{Frame, TrackInfo, TrackKind};

use crate::cmaf::{self, FragmentSample};

/// A part: one CMAF chunk (moof + mdat). RFC 8216bis §4.4.4.9 (EXT-X-PART).
#[derive(Debug, Clone)]
pub struct Part {
    /// The chunk's bytes.
    pub bytes: Bytes,
    /// Base media decode time (`tfdt`) of its first sample, in track timescale ticks.
    pub start_dts: i64,
    /// Duration in track timescale ticks (sum of its sample durations).
    pub duration_ticks: u64,
    /// True when the part starts with a sync sample (INDEPENDENT=YES).
    pub is_independent: bool,
    /// The part encrypted on its own (AES-128-CBC, PKCS#7) under its segment's key and IV, when the
    /// stream is encrypted ([`crate::crypto`]).
    pub encrypted: Option<Bytes>,
    /// The same chunk with its samples encrypted with CENC `cenc` for DASH ([`crate::cenc`]), when the
    /// stream is encrypted: `senc`/`saiz`/`saio` in its `traf`.
    pub cenc: Option<Bytes>,
}

/// A segment: a sequence of parts starting (normally) with a keyframe. Its bytes are its parts' bytes
/// concatenated.
#[derive(Debug, Clone)]
pub struct Segment {
    /// Media sequence number (RFC 8216bis §4.4.3.2); unique per stream name, never 0.
    pub msn: u64,
    /// Which init segment the segment needs (`init-{init_id}.mp4`).
    pub init_id: u64,
    /// True when an EXT-X-DISCONTINUITY precedes this segment.
    pub is_discontinuity: bool,
    /// Base media decode time of the first sample, in track timescale ticks.
    pub start_dts: i64,
    /// Earliest presentation time of the segment's samples, in track timescale ticks (ISO/IEC 14496-12
    /// §8.16.3: the `tfdt` plus the smallest composition offset; the keyframe's PTS for a segment that
    /// starts with a closed-GOP keyframe). The DASH timeline lists segments by this time.
    pub earliest_pts: i64,
    /// Wall-clock time of the first sample, Unix milliseconds (EXT-X-PROGRAM-DATE-TIME).
    pub program_date_time_ms: i64,
    /// The parts produced so far.
    pub parts: Vec<Part>,
    /// True once the segment is cut (its EXTINF can be listed).
    pub is_complete: bool,
    /// True when the segment starts with a sync sample.
    pub starts_with_keyframe: bool,
    /// The key and IV of the segment and its parts, when the stream is encrypted.
    pub key: Option<crate::crypto::SegmentKey>,
    /// The whole segment encrypted as one message (not the concatenation of the encrypted parts), once
    /// it is complete.
    pub encrypted: Option<Bytes>,
    /// Where the next segment starts, when that is before the end its last part declared (ticks; see
    /// [`RenditionCounters::timeline_overlaps`]).
    pub cut_dts: Option<i64>,
    /// The CENC key and IV base of the segment's DASH form, when the stream is encrypted.
    pub cenc: Option<crate::cenc::CencSegmentKey>,
    /// The producer grid point the segment starts at ([`media::SegmentClock::index`]), when the stream
    /// is cut on a producer grid.
    pub grid_point: Option<i64>,
}

impl Segment {
    /// Duration in track timescale ticks: from the segment's start to the end of its last part's last
    /// sample, or to where the next segment starts if that is earlier.
    ///
    /// A frame that arrived earlier than a part had predicted (see
    /// [`RenditionCounters::timeline_overlaps`]) makes that part's declared duration overlap the next
    /// part; the overlap is not counted twice.
    pub fn duration_ticks(&self) -> u64 {
        let Some(last) = self.parts.last() else {
            return 0;
        };
        let declared_end = last
            .start_dts
            .saturating_add(i64::try_from(last.duration_ticks).unwrap_or(i64::MAX));
        let end = self.cut_dts.map_or(declared_end, |c| c.min(declared_end));
        u64::try_from(end - self.start_dts).unwrap_or(0)
    }

    /// Size in bytes: the sum of its parts.
    pub fn size_bytes(&self) -> usize {
        self.parts.iter().map(|p| p.bytes.len()).sum()
    }

    /// Size in bytes of its DASH CENC form (the sum of its parts' [`Part::cenc`]).
    pub fn cenc_size_bytes(&self) -> usize {
        self.parts
            .iter()
            .map(|p| p.cenc.as_ref().map_or(0, Bytes::len))
            .sum()
    }
}

/// A protected init segment: the init segment `init_id` with the CENC key `key_id` (`tenc`, `pssh`).
#[derive(Debug)]
struct CencInit {
    init_id: u64,
    key_id: u64,
    bytes: Bytes,
}

/// What happened to a rendition on one input, for counters and logs.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RenditionCounters {
    /// Frames packaged.
    pub frames: u64,
    /// Frames dropped: before the first keyframe, before a track configuration, or going backwards.
    pub dropped_frames: u64,
    /// Segments cut without a keyframe because the keyframe came too late for the target duration.
    pub forced_cuts: u64,
    /// Parts produced.
    pub parts: u64,
    /// Segments completed.
    pub segments: u64,
    /// Input DTS steps that were not where the previous part predicted (beyond the snap tolerance).
    pub timeline_gaps: u64,
    /// Frames that arrived after the previous frame but before the end the previous part declared for its
    /// last sample (beyond the snap tolerance). They are packaged: dropping a picture would break the
    /// ones that reference it; the declared duration then overlaps the next part by the difference.
    pub timeline_overlaps: u64,
    /// Segments whose duration rounds to more than the target duration (RFC 8216bis §4.4.3.1): a
    /// source's keyframe interval longer than any seen before the target duration was fixed (only on a
    /// stream packaged as it arrives, which is never cut without a keyframe).
    pub target_duration_overruns: u64,
}

/// How many recent DTS steps the frame duration estimate is the median of.
const DURATION_WINDOW: usize = 9;

/// Estimated frame duration (ticks): the median of the last [`DURATION_WINDOW`] positive DTS steps, so
/// that a gap (frames lost upstream, a keyframe wait) or a single late frame does not move it. The
/// estimate decides where a part's last sample ends before the next frame exists; an inflated one
/// (a running average after a 300 ms gap reached 1.9 frames) made parts end past the next frame.
#[derive(Debug, Clone)]
struct DurationEstimate {
    steps: [i64; DURATION_WINDOW],
    len: usize,
    next: usize,
    median: i64,
}

impl DurationEstimate {
    fn new(default_ticks: i64) -> Self {
        Self {
            steps: [0; DURATION_WINDOW],
            len: 0,
            next: 0,
            median: default_ticks.max(1),
        }
    }

    fn push(&mut self, step_ticks: i64) {
        if step_ticks <= 0 {
            return;
        }
        self.steps[self.next] = step_ticks;
        self.next = (self.next + 1) % DURATION_WINDOW;
        self.len = (self.len + 1).min(DURATION_WINDOW);
        let mut sorted = self.steps;
        let sorted = &mut sorted[..self.len];
        sorted.sort_unstable();
        self.median = sorted[(self.len - 1) / 2];
    }

    fn ticks(&self) -> i64 {
        self.median
    }

    /// The shortest recent step: the duration given to a part's last frame before the next frame
    /// exists. A frame that then comes later leaves a gap the next frame snaps over (up to 2 ms, the
    /// millisecond rounding of a constant frame rate) or a counted gap; one that came earlier than a
    /// longer guess would overlap the part before it (two samples at one time), which decoders handle
    /// worse (a variable-frame-rate phone clip did it at every other part).
    fn shortest(&self) -> i64 {
        self.steps[..self.len]
            .iter()
            .copied()
            .min()
            .unwrap_or(self.median)
            .max(1)
    }
}

/// One rendition: segmenter state plus its live window.
#[derive(Debug)]
pub struct Rendition {
    name: String,
    kind: TrackKind,
    track: TrackInfo,
    init_id: u64,
    /// Init segments still needed, with the track configuration each describes.
    inits: VecDeque<InitEntry>,
    /// Nominal bit rate (bit/s) declared by whoever produces the rendition (an encoder's max rate).
    nominal_bandwidth: Option<u64>,
    /// Lowest bit rate (bit/s) to declare when the bit rate is measured (see [`Self::declared_bandwidth`]).
    bandwidth_floor: u64,
    /// The highest bit rate of any complete segment so far (bit/s).
    peak_segment_bps: u64,
    segments: VecDeque<Segment>,
    /// Segments that left the window, still served until their deadline (RFC 8216bis §6.2.2), with it:
    /// the point of this rendition's timeline (ticks) after which they may go.
    retired: VecDeque<(Segment, i64)>,
    /// Frames of the part in progress.
    pending: Vec<Frame>,
    /// Frames pushed into the open segment (for its measured frame rate).
    open_segment_frames: u64,
    /// Where the previous part predicted the next frame's DTS (ticks).
    predicted_dts: Option<i64>,
    /// Estimated frame duration, ticks.
    est_duration: DurationEstimate,
    /// What video decode times are moved by: the composition offset of the rendition's first
    /// keyframe (see [`Self::admit`]), ticks.
    cts_shift: Option<i64>,
    last_dts: Option<i64>,
    chunk_sequence: u32,
    discontinuity_sequence: u64,
    next_is_discontinuity: bool,
    is_ended: bool,
    window_segments: usize,
    counters: RenditionCounters,
    /// Protected init segments for the DASH CENC form, per (init segment, key).
    cenc_inits: Vec<CencInit>,
    /// Samples of the open segment encrypted so far (the next sample's IV offset from the base).
    cenc_samples: u64,
    /// How samples are split for CENC (parameter sets parsed once per track configuration, not per
    /// part).
    framing: crate::cenc::SampleFraming,
    /// The caller's clock ([`Self::set_clock`]): (now, when the frame being pushed was received), Unix
    /// ms.
    clock_ms: (i64, Option<i64>),
    /// When the last frame of the part in progress was received, Unix ms (if known).
    pending_received_ms: Option<i64>,
    /// Publication delays of the parts closed since the last [`Self::take_publication_delays`], ms.
    publication_delays_ms: Vec<u32>,
}

/// Publication delays kept between two [`Rendition::take_publication_delays`] calls (older ones are
/// dropped: a caller that never drains them costs nothing).
const MAX_PENDING_DELAYS: usize = 256;

/// One init segment and what its segments carry.
#[derive(Debug)]
struct InitEntry {
    id: u64,
    bytes: Bytes,
    track: TrackInfo,
    /// Bit rate (bit/s) of the first segment completed with this init segment.
    first_segment_bps: Option<u64>,
    /// Frame rate (frames per second as numerator, denominator) measured over the first video
    /// segment completed with this init segment.
    first_segment_fps: Option<(u32, u32)>,
}

impl InitEntry {
    fn new(id: u64, track: &TrackInfo) -> Self {
        Self {
            id,
            bytes: cmaf::write_init_segment(1, track),
            track: track.clone(),
            first_segment_bps: None,
            first_segment_fps: None,
        }
    }
}

/// How many ticks of DTS jitter the part prediction absorbs: 2 ms ([`crate::config::JITTER_TOLERANCE`]).
fn snap_tolerance(timescale: u32) -> i64 {
    i64::from(timescale) / 500
}

impl Rendition {
    /// A rendition named `name` (e.g. `source`, `audio`) for `track`, whose first init segment is named by
    /// `init_id` (use the msn of its first segment: object names never repeat).
    pub fn new(
        name: impl Into<String>,
        track: TrackInfo,
        init_id: u64,
        window_segments: usize,
    ) -> Self {
        let kind = track.kind();
        let est = default_frame_duration(&track);
        let framing = crate::cenc::SampleFraming::for_config(&track.config);
        Self {
            name: name.into(),
            kind,
            inits: VecDeque::from([InitEntry::new(init_id, &track)]),
            nominal_bandwidth: None,
            bandwidth_floor: 0,
            peak_segment_bps: 0,
            track,
            init_id,
            segments: VecDeque::new(),
            retired: VecDeque::new(),
            pending: Vec::new(),
            open_segment_frames: 0,
            predicted_dts: None,
            est_duration: DurationEstimate::new(est),
            cts_shift: None,
            last_dts: None,
            chunk_sequence: 0,
            discontinuity_sequence: 0,
            next_is_discontinuity: false,
            cenc_inits: Vec::new(),
            cenc_samples: 0,
            framing,
            is_ended: false,
            window_segments,
            counters: RenditionCounters::default(),
            clock_ms: (0, None),
            pending_received_ms: None,
            publication_delays_ms: Vec::new(),
        }
    }

    /// Set the clock for the next [`Self::push`]: `now_ms` (Unix ms) is when anything it closes is
    /// published; `received_ms` is when the frame being pushed was received from the publisher (for a
    /// transcoded rendition, when its source frame was), if known.
    pub fn set_clock(&mut self, now_ms: i64, received_ms: Option<i64>) {
        self.clock_ms = (now_ms, received_ms);
    }

    /// The publication delay of each part closed since the last call, oldest first, ms: from the
    /// reception of the part's last frame (its source frame, for a transcoded rendition) to the part's
    /// publication. Parts whose last frame has no reception time are not listed.
    pub fn take_publication_delays(&mut self) -> Vec<u32> {
        std::mem::take(&mut self.publication_delays_ms)
    }

    /// The rendition's name (its folder in URLs).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Video or audio.
    pub fn kind(&self) -> TrackKind {
        self.kind
    }

    /// The current track configuration.
    pub fn track(&self) -> &TrackInfo {
        &self.track
    }

    /// Ticks per second of this rendition's timestamps.
    pub fn timescale(&self) -> u32 {
        self.track.timescale
    }

    /// Segments in the window, oldest first; the last one may be incomplete.
    pub fn segments(&self) -> &VecDeque<Segment> {
        &self.segments
    }

    /// EXT-X-DISCONTINUITY-SEQUENCE: discontinuities that have left the window.
    pub fn discontinuity_sequence(&self) -> u64 {
        self.discontinuity_sequence
    }

    /// True once the rendition has ended (EXT-X-ENDLIST).
    pub fn is_ended(&self) -> bool {
        self.is_ended
    }

    /// Counters since the rendition was created.
    pub fn counters(&self) -> RenditionCounters {
        self.counters
    }

    /// The init segment named `init-{id}.mp4`, while a segment in the window needs it.
    pub fn init(&self, id: u64) -> Option<&Bytes> {
        self.inits.iter().find(|e| e.id == id).map(|e| &e.bytes)
    }

    /// The protected init segment (DASH CENC) of init segment `init_id` with CENC key `key_id`, while a
    /// segment in the window needs it.
    pub fn cenc_init(&self, init_id: u64, key_id: u64) -> Option<&Bytes> {
        self.cenc_inits
            .iter()
            .find(|i| i.init_id == init_id && i.key_id == key_id)
            .map(|i| &i.bytes)
    }

    /// How this rendition's samples are encrypted with CENC (whole, or NAL subsamples).
    pub fn sample_framing(&self) -> &crate::cenc::SampleFraming {
        &self.framing
    }

    /// The track configuration that init segment `id` describes (what its segments carry), while a
    /// segment in the window needs it.
    pub fn init_track(&self, id: u64) -> Option<&TrackInfo> {
        self.inits.iter().find(|e| e.id == id).map(|e| &e.track)
    }

    /// Declare the rendition's nominal bit rate (bit/s), e.g. its encoder's max rate; see
    /// [`Self::declared_bandwidth`].
    pub fn set_nominal_bandwidth(&mut self, bps: u64) {
        self.nominal_bandwidth = Some(bps.max(1));
    }

    /// Declare the lowest bit rate (bit/s) a measured bit rate is raised to; see
    /// [`Self::declared_bandwidth`].
    pub fn set_bandwidth_floor(&mut self, bps: u64) {
        self.bandwidth_floor = bps;
    }

    /// The bit rate (bit/s) to declare for the segments made with init segment `init_id`: the nominal
    /// bit rate if one was declared, else the measured bit rate of the first segment completed with
    /// that init segment (raised to the floor). Fixed once known, as a DASH Representation's
    /// `@bandwidth` must be (players re-read it on every MPD update); `None` until then.
    pub fn declared_bandwidth(&self, init_id: u64) -> Option<u64> {
        self.nominal_bandwidth.or_else(|| {
            self.inits
                .iter()
                .find(|e| e.id == init_id)?
                .first_segment_bps
                .map(|b| b.max(self.bandwidth_floor))
        })
    }

    /// The highest bit rate of any complete segment since the rendition began, bit/s (RFC 8216bis
    /// §4.4.3.8 peak segment bit rate, over the whole stream rather than the window: HLS `BANDWIDTH`
    /// must never be below it). 0 before the first complete segment.
    pub fn peak_segment_bps(&self) -> u64 {
        self.peak_segment_bps
    }

    /// True once the rendition has a complete segment in its window.
    pub fn has_complete_segment(&self) -> bool {
        self.segments.iter().any(|s| s.is_complete)
    }

    /// The frame rate to announce (HLS `FRAME-RATE`, DASH `@frameRate`) for the segments made with
    /// init segment `init_id`, as (numerator, denominator) frames per second: measured over the first
    /// segment completed with it (snapped to a common rate such as 24000/1001 within 0.5 %), else the
    /// rate its SPS declares (VUI timing), else `None`. Measured first because the SPS can be wrong:
    /// an encoder told 30 fps for a 23.976 fps source writes 30. Fixed once measured.
    pub fn frame_rate(&self, init_id: u64) -> Option<(u32, u32)> {
        let e = self.inits.iter().find(|e| e.id == init_id)?;
        e.first_segment_fps.or_else(|| {
            e.track
                .config
                .video_params()?
                .frame_rate
                .filter(|(n, d)| *n > 0 && *d > 0)
        })
    }

    /// The RFC 6381 codec strings of the samples in the live window, oldest first, without repeats:
    /// one, unless the window spans a change of encoder (HLS `CODECS` lists every format a variant
    /// stream holds, RFC 8216bis §4.4.6.2).
    pub fn window_codecs(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        let ids = self
            .segments
            .iter()
            .map(|s| s.init_id)
            .chain(std::iter::once(self.init_id));
        for id in ids {
            let codec = self.init_track(id).unwrap_or(&self.track).config.rfc6381();
            if !out.contains(&codec) {
                out.push(codec);
            }
        }
        out
    }

    /// The init segment id of the segment in progress (or of the next one).
    pub fn current_init_id(&self) -> u64 {
        self.init_id
    }

    /// The segment with media sequence number `msn`, if in the window or still available after
    /// leaving it (RFC 8216bis §6.2.2; see [`Self::prune`]).
    pub fn segment(&self, msn: u64) -> Option<&Segment> {
        // Found by msn, not by position: should a rendition ever skip a number, a URL must still
        // get its own segment or a 404, never a neighbour's bytes.
        if let Some(first) = self.segments.front().map(|s| s.msn)
            && msn >= first
        {
            let guess = usize::try_from(msn - first).ok()?;
            return match self.segments.get(guess) {
                Some(seg) if seg.msn == msn => Some(seg),
                _ => self
                    .segments
                    .binary_search_by_key(&msn, |s| s.msn)
                    .ok()
                    .map(|i| &self.segments[i]),
            };
        }
        self.retired
            .binary_search_by_key(&msn, |(s, _)| s.msn)
            .ok()
            .map(|i| &self.retired[i].0)
    }

    /// Part `part_index` of segment `msn`, if produced and still in the window.
    pub fn part(&self, msn: u64, part_index: usize) -> Option<&Part> {
        self.segment(msn)?.parts.get(part_index)
    }

    /// The last part produced: `(msn, part_index)`.
    pub fn last_part(&self) -> Option<(u64, usize)> {
        let seg = self.segments.iter().rev().find(|s| !s.parts.is_empty())?;
        Some((seg.msn, seg.parts.len() - 1))
    }

    /// The next part to be produced: `(msn, part_index)` (the preload hint), if the rendition is live.
    pub fn next_part(&self) -> Option<(u64, usize)> {
        if self.is_ended {
            return None;
        }
        let last = self.segments.back()?;
        Some(if last.is_complete {
            (last.msn + 1, 0)
        } else {
            (last.msn, last.parts.len())
        })
    }

    /// Msn of the newest complete segment.
    pub fn last_complete_msn(&self) -> Option<u64> {
        self.segments
            .iter()
            .rev()
            .find(|s| s.is_complete)
            .map(|s| s.msn)
    }

    /// Msn the next new segment gets.
    pub fn next_msn(&self) -> Option<u64> {
        self.segments.back().map(|s| s.msn + 1)
    }

    /// True while a segment is open (frames can join it).
    pub fn has_open_segment(&self) -> bool {
        self.segments.back().is_some_and(|s| !s.is_complete)
    }

    /// Elapsed duration of the open segment if `frame_dts` joined it (ticks from its start to the frame's
    /// predicted end).
    pub fn open_segment_elapsed(&self, frame_dts: i64) -> Option<i64> {
        let seg = self.segments.back().filter(|s| !s.is_complete)?;
        Some(frame_dts + self.est_duration.ticks() - seg.start_dts)
    }

    /// DTS of the first frame of the part in progress, ticks.
    pub fn pending_start_dts(&self) -> Option<i64> {
        self.pending.first().map(|f| f.dts)
    }

    /// Estimated frame duration, ticks.
    pub fn est_duration_ticks(&self) -> i64 {
        self.est_duration.ticks()
    }

    /// DTS where the timeline of this rendition ends so far (the predicted next DTS), ticks.
    pub fn timeline_end(&self) -> Option<i64> {
        self.predicted_dts
            .or_else(|| self.last_dts.map(|d| d + self.est_duration.ticks()))
    }

    /// Replace the track configuration (new resolution or codec): the next segment uses a new init segment
    /// named `init_id` and is preceded by a discontinuity. Call [`Self::cut`] before the next frame.
    pub fn change_track(&mut self, track: TrackInfo, init_id: u64) {
        self.inits.push_back(InitEntry::new(init_id, &track));
        self.init_id = init_id;
        self.est_duration = DurationEstimate::new(default_frame_duration(&track));
        self.framing = crate::cenc::SampleFraming::for_config(&track.config);
        self.track = track;
        self.next_is_discontinuity = true;
    }

    /// Mark the next segment as following a discontinuity (publisher reconnected).
    pub fn mark_discontinuity(&mut self) {
        self.next_is_discontinuity = true;
    }

    /// Mark segment `msn` as following a discontinuity: the segment itself when it is already in the
    /// window (and not its first), else the next segment opened.
    pub fn mark_discontinuity_at(&mut self, msn: u64) {
        let first = self.segments.front().map(|s| s.msn);
        let is_ahead = self.segments.back().is_none_or(|s| s.msn < msn);
        match self.segments.iter_mut().find(|s| s.msn == msn) {
            Some(seg) if first != Some(msn) => seg.is_discontinuity = true,
            Some(_) => {}
            None if is_ahead => self.next_is_discontinuity = true,
            None => {}
        }
    }

    /// Align an incoming frame to the timeline: absorb DTS jitter at a part boundary (up to 2 ms) and
    /// reject frames whose DTS does not increase. A frame earlier than the part boundary predicted but
    /// after the previous frame is kept (counted in [`RenditionCounters::timeline_overlaps`]). Returns
    /// `None` for a dropped frame.
    pub fn admit(&mut self, mut frame: Frame) -> Option<Frame> {
        // Video decode times move forward by the composition offset of the rendition's first
        // keyframe, so a keyframe's decode time is its presentation time: every segment's `tfdt` is
        // the presentation time of its first sample, as audio's is, and the program date time maps
        // both the same way (RFC 8216bis §4.4.4.6); B-frames get negative composition offsets
        // (`trun` version 1, ISO/IEC 14496-12 §8.8.8).
        if self.kind == TrackKind::Video {
            if self.cts_shift.is_none() && frame.is_keyframe {
                self.cts_shift = Some((frame.pts - frame.dts).max(0));
            }
            frame.dts += self.cts_shift.unwrap_or(0);
        }
        if self.last_dts.is_some_and(|last| frame.dts <= last) {
            self.counters.dropped_frames += 1;
            return None;
        }
        if let Some(predicted) = self.predicted_dts {
            let delta = frame.dts - predicted;
            if delta.abs() <= snap_tolerance(self.track.timescale) {
                frame.dts -= delta;
                frame.pts -= delta;
            } else if delta < 0 {
                self.counters.timeline_overlaps += 1;
            } else {
                self.counters.timeline_gaps += 1;
            }
        }
        Some(frame)
    }

    /// Count a frame dropped before it could be packaged.
    pub fn count_dropped(&mut self) {
        self.counters.dropped_frames += 1;
    }

    /// Open a new segment with media sequence number `msn` whose first frame has DTS `start_dts` and PTS
    /// `start_pts` (ticks); `key` encrypts it and its parts.
    pub fn open_segment(
        &mut self,
        msn: u64,
        (start_dts, start_pts): (i64, i64),
        program_date_time_ms: i64,
        is_keyframe: bool,
        key: Option<crate::crypto::SegmentKey>,
        cenc: Option<crate::cenc::CencSegmentKey>,
    ) {
        debug_assert!(!self.has_open_segment(), "open_segment with a segment open");
        if let Some(c) = &cenc
            && !self
                .cenc_inits
                .iter()
                .any(|i| i.init_id == self.init_id && i.key_id == c.key.id)
        {
            let bytes = crate::cmaf::try_write_protected_init_segment(1, &self.track, &c.key.kid)
                .unwrap_or_else(|error| {
                    tracing::error!(%error, "cannot write protected cmaf init segment");
                    Bytes::new()
                });
            self.cenc_inits.push(CencInit {
                init_id: self.init_id,
                key_id: c.key.id,
                bytes,
            });
        }
        self.cenc_samples = 0;
        let is_discontinuity =
            std::mem::take(&mut self.next_is_discontinuity) && !self.segments.is_empty();
        self.segments.push_back(Segment {
            msn,
            init_id: self.init_id,
            is_discontinuity,
            start_dts,
            earliest_pts: start_pts,
            program_date_time_ms,
            parts: Vec::new(),
            is_complete: false,
            starts_with_keyframe: is_keyframe,
            key,
            encrypted: None,
            cut_dts: None,
            cenc,
            grid_point: None,
        });
    }

    /// Record the producer grid point the open segment starts at.
    pub fn set_open_grid_point(&mut self, point: Option<i64>) {
        if let Some(seg) = self.segments.back_mut().filter(|s| !s.is_complete) {
            seg.grid_point = point;
        }
    }

    /// Cut the open segment: close the part in progress (its last frame ends at `end_dts`, or at the
    /// estimated duration if `None`) and mark the segment complete. Prunes the window.
    pub fn cut(&mut self, end_dts: Option<i64>) {
        self.close_part(end_dts);
        let is_video = self.kind == TrackKind::Video;
        let frames = std::mem::take(&mut self.open_segment_frames);
        if let Some(seg) = self.segments.back_mut().filter(|s| !s.is_complete) {
            seg.cut_dts = end_dts;
            if seg.parts.is_empty() {
                // Nothing was produced (e.g. every frame dropped): forget the empty segment.
                self.segments.pop_back();
            } else {
                seg.is_complete = true;
                self.counters.segments += 1;
                if let Some(k) = &seg.key {
                    let clear: Vec<u8> = seg
                        .parts
                        .iter()
                        .flat_map(|p| p.bytes.iter().copied())
                        .collect();
                    seg.encrypted = Some(Bytes::from(crate::crypto::encrypt_aes128_cbc(
                        &k.key.key, &k.iv, &clear,
                    )));
                }
                let secs = seg.duration_ticks() as f64 / f64::from(self.track.timescale);
                let bps =
                    (secs > 0.0).then(|| (seg.size_bytes() as f64 * 8.0 / secs).ceil() as u64);
                self.peak_segment_bps = self.peak_segment_bps.max(bps.unwrap_or(0));
                let fps = (is_video && seg.starts_with_keyframe)
                    .then(|| {
                        measured_frame_rate(frames, seg.duration_ticks(), self.track.timescale)
                    })
                    .flatten();
                if let Some(e) = self.inits.iter_mut().find(|e| e.id == seg.init_id) {
                    if e.first_segment_bps.is_none() {
                        e.first_segment_bps = bps;
                    }
                    if e.first_segment_fps.is_none() {
                        e.first_segment_fps = fps;
                    }
                }
            }
        }
        self.prune();
    }

    /// Add a frame (already admitted) to the open segment's part in progress; closes the part when the
    /// next frame would take it past `part_limit_ticks`. Returns true when a part was produced.
    ///
    /// `boundary_hint`: where the next segment will start (ticks), when another rendition already cut
    /// there; a predicted part end within the jitter tolerance of it is placed exactly on it, so that
    /// aligned renditions get identical segment boundaries.
    ///
    /// `part_end_hint`: where this part should end (ticks); the part then closes with the frame whose
    /// end is nearest to it (audio following the video's part boundaries), `part_limit_ticks` remaining
    /// the upper bound.
    pub fn push(
        &mut self,
        frame: Frame,
        part_limit_ticks: i64,
        boundary_hint: Option<i64>,
        part_end_hint: Option<i64>,
    ) -> bool {
        debug_assert!(self.has_open_segment(), "push without an open segment");
        // The estimate learns this step after the part decision below: the caller admitted the frame
        // to the segment with the estimate as it was, and the part must end where that check assumed.
        let step = self.last_dts.map(|last| frame.dts - last);
        let learn = |r: &mut Self| {
            if let Some(step) = step {
                r.est_duration.push(step);
            }
        };
        self.predicted_dts = None;
        self.last_dts = Some(frame.dts);
        self.counters.frames += 1;
        self.open_segment_frames += 1;
        let part_start = self.pending.first().map_or(frame.dts, |f| f.dts);
        self.pending.push(frame);
        self.pending_received_ms = self.clock_ms.1;
        let last_dts = self.last_dts.expect("set above");
        let est = self.est_duration.ticks();
        let elapsed = last_dts + est - part_start;
        let predicted = last_dts + est;
        let at_hint = part_end_hint.is_some_and(|h| predicted + est / 2 > h);
        if at_hint || elapsed + est > part_limit_ticks {
            let end = boundary_hint.filter(|b| {
                *b > last_dts && (b - predicted).abs() <= snap_tolerance(self.track.timescale)
            });
            self.close_part(end);
            if let Some(end) = end {
                self.predicted_dts = Some(end);
            }
            learn(self);
            return true;
        }
        learn(self);
        false
    }

    /// Close the part in progress, if any. Its last frame ends at `end_dts` when known, else after the
    /// estimated frame duration (and the next frame's DTS is predicted there).
    pub fn close_part(&mut self, end_dts: Option<i64>) {
        if self.pending.is_empty() {
            return;
        }
        let frames = std::mem::take(&mut self.pending);
        let last = frames.last().expect("non-empty");
        let end = end_dts
            .unwrap_or(last.dts + self.est_duration.shortest())
            .max(last.dts + 1);
        if end_dts.is_none() {
            self.predicted_dts = Some(end);
        }
        let samples: Vec<FragmentSample<'_>> = frames
            .iter()
            .enumerate()
            .map(|(i, f)| {
                let next = frames.get(i + 1).map_or(end, |n| n.dts);
                FragmentSample {
                    duration: u32::try_from(next - f.dts).unwrap_or(u32::MAX),
                    composition_offset: i32::try_from(f.pts - f.dts).unwrap_or(0),
                    is_sync: f.is_keyframe,
                    data: &f.data,
                }
            })
            .collect();
        self.chunk_sequence = self.chunk_sequence.wrapping_add(1);
        let base = u64::try_from(frames[0].dts).unwrap_or(0);
        let bytes = cmaf::write_chunk(self.chunk_sequence, 1, base, &samples);
        drop(samples);
        let earliest = frames.iter().map(|f| f.pts).min().unwrap_or(i64::MAX);
        let seg = self
            .segments
            .back_mut()
            .expect("a part always belongs to an open segment");
        let encrypted = seg
            .key
            .as_ref()
            .map(|k| Bytes::from(crate::crypto::encrypt_aes128_cbc(&k.key.key, &k.iv, &bytes)));
        let framing = self.framing.clone();
        let seg = self
            .segments
            .back_mut()
            .expect("a part always belongs to an open segment");
        let cenc = seg.cenc.as_ref().map(|c| {
            let mut protection = Vec::with_capacity(frames.len());
            let mut data = Vec::with_capacity(frames.len());
            for f in &frames {
                let iv = c.iv_base.wrapping_add(self.cenc_samples).to_be_bytes();
                self.cenc_samples += 1;
                let subsamples = crate::cenc::subsamples(&framing, &f.data);
                data.push(crate::cenc::encrypt_sample(
                    &c.key.key,
                    &iv,
                    &subsamples,
                    &f.data,
                ));
                protection.push(crate::cenc::SampleProtection { iv, subsamples });
            }
            let samples: Vec<FragmentSample<'_>> = frames
                .iter()
                .zip(&data)
                .enumerate()
                .map(|(i, (f, d))| {
                    let next = frames.get(i + 1).map_or(end, |n| n.dts);
                    FragmentSample {
                        duration: u32::try_from(next - f.dts).unwrap_or(u32::MAX),
                        composition_offset: i32::try_from(f.pts - f.dts).unwrap_or(0),
                        is_sync: f.is_keyframe,
                        data: d,
                    }
                })
                .collect();
            crate::cmaf::try_write_protected_chunk(
                self.chunk_sequence,
                1,
                base,
                &samples,
                &protection,
                framing.has_subsamples(),
            )
            .unwrap_or_else(|error| {
                tracing::error!(%error, "cannot write protected cmaf chunk");
                Bytes::new()
            })
        });
        let part = Part {
            bytes,
            start_dts: frames[0].dts,
            duration_ticks: u64::try_from(end - frames[0].dts).unwrap_or(0),
            is_independent: frames[0].is_keyframe,
            encrypted,
            cenc,
        };
        seg.earliest_pts = seg.earliest_pts.min(earliest);
        seg.parts.push(part);
        self.counters.parts += 1;
        if let Some(received) = self.pending_received_ms.take() {
            if self.publication_delays_ms.len() >= MAX_PENDING_DELAYS {
                self.publication_delays_ms.remove(0);
            }
            let delay = (self.clock_ms.0 - received).clamp(0, i64::from(u32::MAX));
            self.publication_delays_ms.push(delay as u32);
        }
    }

    /// End the rendition: close what is open; playlists get EXT-X-ENDLIST.
    pub fn end(&mut self) {
        if self.has_open_segment() {
            self.cut(None);
        }
        self.is_ended = true;
    }

    /// Count a gap left in the timeline (a frame arrived later than the segment could stretch).
    pub fn count_timeline_gap(&mut self) {
        self.counters.timeline_gaps += 1;
    }

    /// Count a forced cut (keyframe too late for the target duration).
    pub fn count_forced_cut(&mut self) {
        self.counters.forced_cuts += 1;
    }

    /// Count a segment whose duration rounds to more than the target duration.
    pub fn count_target_duration_overrun(&mut self) {
        self.counters.target_duration_overruns += 1;
    }

    /// Keep the window at `window_segments` complete segments. A segment leaving it stays available
    /// (served, not listed) for its own duration plus the duration of the playlist it left (RFC
    /// 8216bis §6.2.2), measured on this rendition's timeline; init segments and protected init
    /// segments stay while a kept segment needs them.
    fn prune(&mut self) {
        let complete = self.segments.iter().filter(|s| s.is_complete).count();
        let mut excess = complete.saturating_sub(self.window_segments);
        let edge = self.timeline_end().unwrap_or(0);
        while excess > 0 {
            let Some(old) = self.segments.pop_front() else {
                break;
            };
            excess -= 1;
            // A discontinuity leaving the window: the next segment's discontinuity tag is now counted.
            if let Some(front) = self.segments.front()
                && front.is_discontinuity
            {
                self.discontinuity_sequence += 1;
            }
            let playlist_ticks: u64 = self
                .segments
                .iter()
                .map(Segment::duration_ticks)
                .sum::<u64>()
                + old.duration_ticks();
            let deadline = edge
                .saturating_add(i64::try_from(old.duration_ticks()).unwrap_or(i64::MAX))
                .saturating_add(i64::try_from(playlist_ticks).unwrap_or(i64::MAX));
            self.retired.push_back((old, deadline));
        }
        while self
            .retired
            .front()
            .is_some_and(|(_, deadline)| *deadline <= edge)
            || self.retired.len() > 2 * self.window_segments
        {
            self.retired.pop_front();
        }
        let oldest = self
            .retired
            .front()
            .map(|(s, _)| s)
            .or(self.segments.front());
        let oldest_needed = oldest.map_or(self.init_id, |s| s.init_id);
        while self.inits.len() > 1 && self.inits.front().is_some_and(|e| e.id < oldest_needed) {
            self.inits.pop_front();
        }
        let oldest_key = oldest.and_then(|s| s.cenc.as_ref()).map(|c| c.key.id);
        if let Some(oldest_key) = oldest_key {
            let inits = &self.inits;
            self.cenc_inits
                .retain(|c| c.key_id >= oldest_key && inits.iter().any(|e| e.id == c.init_id));
        }
    }

    /// Checks the window's invariants; returns a description of the first one broken.
    pub fn check_invariants(&self) -> Result<(), String> {
        let mut prev: Option<&Segment> = None;
        for (i, seg) in self.segments.iter().enumerate() {
            if seg.msn == 0 {
                return Err("msn 0".into());
            }
            if let Some(p) = prev {
                if seg.msn != p.msn + 1 {
                    return Err(format!("msn {} follows {}", seg.msn, p.msn));
                }
                let end = p.start_dts + i64::try_from(p.duration_ticks()).unwrap_or(i64::MAX);
                if seg.start_dts < end && !seg.is_discontinuity {
                    return Err(format!(
                        "segment {} starts at {} inside its predecessor ({}..{end})",
                        seg.msn, seg.start_dts, p.start_dts
                    ));
                }
                if !p.is_complete {
                    return Err(format!("incomplete segment {} is not the last", p.msn));
                }
            }
            if seg.is_complete && seg.parts.is_empty() {
                return Err(format!("complete segment {} has no parts", seg.msn));
            }
            if self.init(seg.init_id).is_none() {
                return Err(format!(
                    "segment {} needs missing init {}",
                    seg.msn, seg.init_id
                ));
            }
            if i + 1 < self.segments.len() && !seg.is_complete {
                return Err(format!("segment {} incomplete", seg.msn));
            }
            prev = Some(seg);
        }
        let complete = self.segments.iter().filter(|s| s.is_complete).count();
        if complete > self.window_segments {
            return Err(format!(
                "{complete} complete segments exceed the window of {}",
                self.window_segments
            ));
        }
        Ok(())
    }
}

/// A first guess of a frame's duration before any DTS step is seen: 1024 samples for AAC (or the
/// configured frame length), the SPS frame rate or 30 fps for video. In track timescale ticks.
fn default_frame_duration(track: &TrackInfo) -> i64 {
    match &track.config {
        media::CodecConfig::Aac(a) => i64::from(a.samples_per_frame.max(1)),
        cfg => match cfg.video_params().and_then(|p| p.frame_rate) {
            Some((num, den)) if num > 0 && den > 0 => {
                media::time::rescale(i64::from(den), num, track.timescale).max(1)
            }
            _ => i64::from(track.timescale / 30).max(1),
        },
    }
}

/// Frames per second of `frames` frames lasting `ticks` at `timescale`, as (numerator, denominator):
/// the nearest of the usual broadcast and camera rates when within 0.5 % of it (timestamps in whole
/// milliseconds make 23.976 fps look like 23.8 to 24.4 from frame to frame, but not over a segment),
/// else the rate rounded to 1/1000. `None` for fewer than 2 frames or no duration.
pub fn measured_frame_rate(frames: u64, ticks: u64, timescale: u32) -> Option<(u32, u32)> {
    if frames < 2 || ticks == 0 {
        return None;
    }
    media::grid::snap_frame_rate(frames as f64 * f64::from(timescale) / ticks as f64)
}
