//! One rendition: its segmenter state and its live window of segments and parts.
//!
//! A rendition is one CMAF track (one init segment at a time) cut into segments and parts. Frames come in
//! already timestamped on the output timeline; the rendition decides where parts end, writes each part as
//! one CMAF chunk (moof + mdat, [`crate::cmaf::write_chunk`]) and keeps the last `window_segments`
//! complete segments plus the one in progress.

mod write;

use std::collections::VecDeque;

use bytes::Bytes;
use media::{Frame, TrackInfo, TrackKind};

use crate::cmaf::{self};

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

/// A segment that left the live window but is still listed (DVR, [`crate::PackagerConfig::dvr_window`]):
/// its facts only; the caller serves its bytes from its own store (e.g. a recording).
#[derive(Debug, Clone)]
pub struct ArchivedSegment {
    /// Media sequence number.
    pub msn: u64,
    /// Which init segment it needs.
    pub init_id: u64,
    /// True when an EXT-X-DISCONTINUITY precedes it.
    pub is_discontinuity: bool,
    /// Base media decode time of its first sample, ticks.
    pub start_dts: i64,
    /// Earliest presentation time, ticks.
    pub earliest_pts: i64,
    /// Duration, ticks ([`Segment::duration_ticks`]).
    pub duration_ticks: u64,
    /// Wall-clock time of its first sample, Unix ms.
    pub program_date_time_ms: i64,
    /// Its HLS AES-128 key and IV, when the stream is encrypted.
    pub key: Option<crate::crypto::SegmentKey>,
    /// True when the stream is encrypted for DASH (CENC): its CENC form is not kept, so the MPD
    /// does not list it.
    pub has_cenc: bool,
}

impl ArchivedSegment {
    fn of(s: &Segment) -> Self {
        Self {
            msn: s.msn,
            init_id: s.init_id,
            is_discontinuity: s.is_discontinuity,
            start_dts: s.start_dts,
            earliest_pts: s.earliest_pts,
            duration_ticks: s.duration_ticks(),
            program_date_time_ms: s.program_date_time_ms,
            key: s.key.clone(),
            has_cenc: s.cenc.is_some(),
        }
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
    /// DVR: segments that left the window and are still listed, oldest first, and their total
    /// duration (ticks); bounded by `dvr_window_ticks`.
    archive: VecDeque<ArchivedSegment>,
    archive_ticks: u64,
    /// DVR window, ticks (`None`: none).
    dvr_window_ticks: Option<u64>,
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
    /// Events stamped but not yet written: each goes, as an `emsg` box, before the chunk of the
    /// first part closed whose latest presentation time reaches its stamp (oldest first).
    events: VecDeque<std::sync::Arc<crate::events::StampedEvent>>,
    /// Events written into this rendition's parts.
    events_written: u64,
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
            archive: VecDeque::new(),
            archive_ticks: 0,
            dvr_window_ticks: None,
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
            events: VecDeque::new(),
            events_written: 0,
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

    /// Carry `event` in this rendition: its `emsg` goes before the chunk of the first part closed from
    /// now on whose latest presentation time is at or past the event's (the part holding the stamped
    /// frame, or the next one when that part is already out).
    pub fn queue_event(&mut self, event: std::sync::Arc<crate::events::StampedEvent>) {
        self.events.push_back(event);
    }

    /// Events written into this rendition's parts since it began.
    pub fn events_written(&self) -> u64 {
        self.events_written
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

    /// List segments that leave the window for `window` more (DVR), from now on (`None`: stop, and
    /// forget those listed so far).
    pub fn set_dvr_window(&mut self, window: Option<std::time::Duration>) {
        self.dvr_window_ticks = window.map(|w| {
            u64::try_from(crate::stream::duration_ticks(w, self.track.timescale)).unwrap_or(0)
        });
        if self.dvr_window_ticks.is_none() {
            // Their discontinuities leave the listing with them.
            let listed_front = |r: &Self| r.segments.front().is_some_and(|s| s.is_discontinuity);
            let dropped = self
                .archive
                .iter()
                .skip(1)
                .filter(|a| a.is_discontinuity)
                .count();
            let had = !self.archive.is_empty();
            self.archive.clear();
            self.archive_ticks = 0;
            if had {
                self.discontinuity_sequence += dropped as u64 + u64::from(listed_front(self));
            }
        }
    }

    /// DVR: the segments listed before the window, oldest first (their bytes are the caller's).
    pub fn archive(&self) -> &VecDeque<ArchivedSegment> {
        &self.archive
    }

    /// DVR: the archived segment `msn`, if listed.
    pub fn archived(&self, msn: u64) -> Option<&ArchivedSegment> {
        self.archive
            .binary_search_by_key(&msn, |a| a.msn)
            .ok()
            .map(|i| &self.archive[i])
    }

    /// EXT-X-DISCONTINUITY-SEQUENCE: the first sequence number plus the discontinuities that have
    /// left the playlist (the window and the DVR archive).
    pub fn discontinuity_sequence(&self) -> u64 {
        self.discontinuity_sequence
    }

    /// Start counting discontinuities at `sequence` (before the first segment; ignored after).
    pub(crate) fn set_first_discontinuity_sequence(&mut self, sequence: u64) {
        if self.segments.is_empty() && self.retired.is_empty() {
            self.discontinuity_sequence = sequence;
        }
    }

    /// The discontinuity sequence number of the newest segment: EXT-X-DISCONTINUITY-SEQUENCE plus
    /// the EXT-X-DISCONTINUITY tags in the window (and one more when the next segment follows one).
    pub fn latest_discontinuity_sequence(&self) -> u64 {
        let tags = self.segments.iter().filter(|s| s.is_discontinuity).count() as u64
            + self.archive.iter().filter(|a| a.is_discontinuity).count() as u64;
        self.discontinuity_sequence
            + tags
            + u64::from(self.next_is_discontinuity && !self.segments.is_empty())
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
    /// leaving it (RFC 8216bis §6.2.2; see `prune`).
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
