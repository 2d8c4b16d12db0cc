//! One stream's packager: its renditions, the shared segment grid, the target duration, msn numbering,
//! program date time and discontinuities.
//!
//! Sans-IO: the caller passes frames and the wall-clock time (`now_ms`, Unix milliseconds) explicitly.

mod cut;

use cut::{Cut, Decision};

use std::collections::VecDeque;

use media::{Frame, SegmentClock, TrackInfo, TrackKind, time::rescale};

use crate::{
    PackagerConfig,
    grid::{Grid, GridEntry},
    rendition::Rendition,
};

/// The name of the passthrough video rendition.
pub const SOURCE_RENDITION: &str = "source";
pub use media::name::AUDIO_RENDITION;

/// What one input changed, so the caller knows whom to wake.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Update {
    /// A part or a segment was produced (playlists changed).
    pub has_new_media: bool,
    /// The playlists became available for the first time (the target duration is now fixed).
    pub became_ready: bool,
}

/// How many leader part ends are remembered (well beyond any live window).
const PART_ENDS_CAPACITY: usize = 2048;

/// Packages one stream: any number of video renditions (the ladder) and an audio rendition.
///
/// Two ways to cut, one per kind of stream:
/// - **Producer grid** (a transcoded ladder, [`Self::set_segment_clock`]): the transcoder placed a
///   keyframe on the picture nearest each grid point and nowhere else (a copied source only while its
///   own keyframes land there). Every video rendition cuts at its first keyframe past the grid point
///   of its open segment, never at another keyframe; audio cuts at the frame nearest where the video
///   cut (or the grid point, when it gets there first). Segments last the grid period, every video
///   segment starts with a keyframe, and the target duration is known from the grid.
/// - **Keyframes as they come** (a stream packaged as it arrives): the **leader** (the first video
///   rendition declared; audio when there is no video) cuts at its first keyframe at or after the
///   segment target — or earlier (at least half the target) when waiting for the next keyframe would
///   overrun the target duration, judging by the longest keyframe interval seen — and never without a
///   keyframe except past twice [`PackagerConfig::max_target_duration`] (a source without keyframes;
///   counted, logged). The audio rendition cuts at its frame nearest the leader's cut.
///
/// Either way a rendition cutting where another already did takes the same media sequence number, so
/// segments align across renditions.
#[derive(Debug)]
pub struct StreamPackager {
    config: PackagerConfig,
    renditions: Vec<Rendition>,
    /// Index of the leader in `renditions`.
    leader: Option<usize>,
    /// The segment starts, oldest first. Video followers cut on the DTS (their keyframes carry the
    /// leader's PTS and the same composition offset); audio cuts on the presentation time, so that a
    /// segment's audio and video cover the same presentation interval.
    grid: Grid,
    /// The producer's segment grid on the current publish's input timeline, when it has one.
    clock: Option<SegmentClock>,
    /// Playlists are served: the target duration is fixed and every rendition has a complete segment
    /// (or the first video rendition has [`READY_WAIT_SEGMENTS`] without the laggards).
    is_published: bool,
    /// The longest interval between two of the leader's keyframes seen, 90 kHz ticks (keyframe rule).
    longest_keyframe_interval_90khz: i64,
    /// DTS of the leader's last keyframe, 90 kHz ticks (output timeline).
    last_keyframe_dts_90khz: Option<i64>,
    /// Where the leader's recent parts end, as presentation times (90 kHz ticks), oldest first. Audio
    /// closes its parts at the frame nearest to these, so that its parts track the video's and the last
    /// part of a segment ends at the cut (never a sliver published after the rest of the segment).
    leader_part_ends: VecDeque<i64>,
    /// Msn of the next segment the leader opens.
    next_msn: u64,
    /// Target duration in whole seconds, fixed when the playlists are first published.
    target_duration_s: Option<u32>,
    /// Wall-clock anchor: (Unix ms, output PTS in 90 kHz ticks) of the same instant. Program date
    /// times are presentation times (RFC 8216bis §4.4.4.6: the date of the first sample), so players
    /// that align renditions by EXT-X-PROGRAM-DATE-TIME place audio and video where their media is.
    anchor: Option<(i64, i64)>,
    /// Offset added to input timestamps (90 kHz ticks) so that the output timeline continues across
    /// re-publishes.
    input_offset_90khz: Option<i64>,
    is_ended: bool,
    /// Where each run of segments without a discontinuity starts (DASH Periods), oldest first.
    periods: VecDeque<PeriodStart>,
    /// The lowest msn at which a rendition opened a segment after a discontinuity (or where a
    /// replaced rendition continues), until a segment there starts the new period.
    pending_period_msn: Option<u64>,
    /// Wall-clock start of the first period, Unix ms: the DASH availabilityStartTime.
    availability_start_ms: Option<i64>,
    /// Declared bit rates: (rendition, nominal bit/s, floor bit/s).
    bandwidths: Vec<(String, Option<u64>, u64)>,
    /// Where segment keys come from when the stream is encrypted (HLS AES-128).
    key_source: Option<Box<dyn crate::crypto::KeySource>>,
    /// The DASH CENC key epoch: the msn of the stream's first segment (`None` until then). One key
    /// for the packager's life, every Period included: a re-publish keeps it, because a player may
    /// still fetch a segment the previous Period announced (Shaka keeps every timeline entry it has
    /// seen), and the URL it gets is the new Period's segment, which must decrypt under the key it
    /// licensed.
    cenc_epoch: Option<u64>,
}

fn apply_bandwidth(r: &mut Rendition, nominal_bps: Option<u64>, floor_bps: u64) {
    if let Some(b) = nominal_bps {
        r.set_nominal_bandwidth(b);
    }
    r.set_bandwidth_floor(floor_bps);
}

/// How many period starts are remembered (far more discontinuities than a live window holds).
const PERIOD_CAPACITY: usize = 64;

/// The start of one run of segments without a discontinuity (a DASH Period, ISO/IEC 23009-1 §5.3.2):
/// the leader's first segment of the run, when it was opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeriodStart {
    /// Msn of the first segment of the period (every rendition's segments from this msn on belong to it).
    pub first_msn: u64,
    /// Wall-clock time of the leader's first sample, Unix ms (its EXT-X-PROGRAM-DATE-TIME).
    pub start_ms: i64,
    /// Presentation time of that sample on the output timeline, 90 kHz ticks.
    pub pts_90khz: i64,
}

/// Complete segments of the first video rendition after which playlists are published without a
/// rendition that has none yet (a failed or shed encoder must not hold the stream back).
pub const READY_WAIT_SEGMENTS: usize = 3;

impl StreamPackager {
    /// A packager whose first segment gets media sequence number `first_msn` (≥ 1). The config must
    /// have passed [`PackagerConfig::validate`].
    pub fn new(config: PackagerConfig, first_msn: u64) -> Self {
        Self {
            config,
            renditions: Vec::new(),
            leader: None,
            grid: Grid::default(),
            clock: None,
            is_published: false,
            longest_keyframe_interval_90khz: 0,
            last_keyframe_dts_90khz: None,
            leader_part_ends: VecDeque::new(),
            next_msn: first_msn.max(1),
            target_duration_s: None,
            anchor: None,
            input_offset_90khz: None,
            is_ended: false,
            periods: VecDeque::new(),
            pending_period_msn: None,
            availability_start_ms: None,
            bandwidths: Vec::new(),
            key_source: None,
            cenc_epoch: None,
        }
    }

    /// The wall-clock start of the stream's first segment (Unix ms), once there is one: the DASH
    /// `MPD@availabilityStartTime`, against which every period start is measured.
    pub fn availability_start_ms(&self) -> Option<i64> {
        self.availability_start_ms
    }

    /// The period starts, oldest first: the first one is the stream's first segment, each later one a
    /// segment after a discontinuity (re-publish or new track configuration). Stable once listed.
    pub fn periods(&self) -> &VecDeque<PeriodStart> {
        &self.periods
    }

    /// The configuration.
    pub fn config(&self) -> &PackagerConfig {
        &self.config
    }

    /// EXT-X-TARGETDURATION in seconds, once the playlists are published.
    pub fn target_duration_s(&self) -> Option<u32> {
        self.target_duration_s
    }

    /// True once playlists can be served: the target duration is fixed and every rendition has a
    /// complete segment (or the first video rendition has [`READY_WAIT_SEGMENTS`] complete segments;
    /// renditions without one are then not listed until they have one). The first playlists a player
    /// gets list only what it can play, with measured bit and frame rates.
    pub fn is_ready(&self) -> bool {
        self.is_published
    }

    /// The producer's segment grid ([`SegmentClock`], on the source timeline of the current publish):
    /// every rendition is cut on it from now on (see the type docs). `None`: keyframes as they come.
    /// Set it before the publish's first frame; a discontinuity forgets it.
    pub fn set_segment_clock(&mut self, clock: Option<SegmentClock>) {
        if self.clock.is_some() && clock != self.clock {
            // Another producer grid mid-publish (the transcoder restarted): its points are not this
            // grid's, so the segments after it follow a discontinuity.
            let offset = self.input_offset_90khz;
            self.discontinuity();
            self.input_offset_90khz = offset;
        }
        self.clock = clock;
    }

    /// The longest interval between two of the leader's keyframes seen so far, 90 kHz ticks (0 before
    /// the second keyframe).
    pub fn longest_keyframe_interval_90khz(&self) -> i64 {
        self.longest_keyframe_interval_90khz
    }

    /// Where the open segment `seg` of rendition `r` will end, as a presentation time in `r`'s
    /// timescale (output timeline), when the grid tells: video ends where another video rendition
    /// already started the next segment, else at the producer grid's next point; audio ends on its
    /// frame nearest that boundary (the rule it is cut with), or nearest the leader's own cut once the
    /// leader has cut. `None` when it cannot be known (a stream packaged as it arrives, before its
    /// leader cut).
    pub fn predicted_segment_end(
        &self,
        r: &Rendition,
        seg: &crate::rendition::Segment,
    ) -> Option<i64> {
        if seg.is_complete {
            return None;
        }
        let ts = r.timescale();
        let next = self.grid.by_msn(seg.msn + 1).filter(|g| g.from_video);
        let boundary_90khz = match (next, self.clock, self.input_offset_90khz) {
            (Some(g), ..) => g.pts_90khz,
            (None, Some(clock), Some(offset)) => {
                let point = seg.grid_point?;
                clock.shifted(offset).point_90khz(point + 1)
            }
            // Keyframes as they come: audio ends near where the leader's segment will, if its
            // keyframe interval holds (the leader's last complete segment's).
            (None, None, _) if r.kind() == TrackKind::Audio => {
                let leader = self.leader.map(|l| &self.renditions[l])?;
                if leader.kind() != TrackKind::Video {
                    return None;
                }
                let lts = leader.timescale();
                let complete: Vec<_> = leader.segments().iter().filter(|s| s.is_complete).collect();
                let last = *complete.last()?;
                let usual = match complete.as_slice() {
                    [.., before, last] if !last.is_discontinuity => {
                        last.earliest_pts - before.earliest_pts
                    }
                    _ => i64::try_from(last.duration_ticks()).ok()?,
                };
                let open = leader
                    .segments()
                    .back()
                    .filter(|s| !s.is_complete && s.msn == seg.msn)?;
                if open.is_discontinuity {
                    return None;
                }
                rescale(open.earliest_pts + usual, lts, 90_000)
            }
            _ => return None,
        };
        let boundary = rescale(boundary_90khz, 90_000, ts);
        if r.kind() == TrackKind::Video {
            return Some(boundary);
        }
        // Audio: frames every `step` ticks from the segment's start; the cut comes before the first
        // frame whose start is at or past the boundary less half a frame.
        let step = r.est_duration_ticks().max(1);
        let start = seg.earliest_pts;
        let n = (boundary - step / 2 - start).max(0);
        let frames = n.div_euclid(step) + i64::from(n.rem_euclid(step) != 0);
        Some(start + frames.max(1) * step)
    }

    /// The producer grid in use, if any (source timeline of the current publish).
    pub fn segment_clock(&self) -> Option<SegmentClock> {
        self.clock
    }

    /// True after [`Self::end`].
    pub fn is_ended(&self) -> bool {
        self.is_ended
    }

    /// The msn the next segment will get: persist it to continue numbering after this packager.
    pub fn next_msn(&self) -> u64 {
        self.renditions
            .iter()
            .filter_map(Rendition::next_msn)
            .max()
            .unwrap_or(0)
            .max(self.next_msn)
    }

    /// The renditions: video by picture height (highest first; the leader first among equals), then
    /// audio.
    pub fn renditions(&self) -> impl Iterator<Item = &Rendition> {
        let mut order: Vec<&Rendition> = self.renditions.iter().collect();
        let leader = self.leader();
        order.sort_by_key(|r| {
            let height = r.track().config.video_params().map_or(0, |p| p.height);
            (
                r.kind() == TrackKind::Audio,
                std::cmp::Reverse(height),
                Some(r.name()) != leader,
            )
        });
        order.into_iter()
    }

    /// The rendition called `name`.
    pub fn rendition(&self, name: &str) -> Option<&Rendition> {
        self.renditions.iter().find(|r| r.name() == name)
    }

    /// The leader rendition's name, once there is one.
    pub fn leader(&self) -> Option<&str> {
        self.leader.map(|i| self.renditions[i].name())
    }

    /// Passthrough convenience: declare or change the source track of its kind (`source` for video,
    /// `audio` for audio). See [`Self::set_rendition_track`].
    pub fn set_track(&mut self, track: TrackInfo) {
        let name = match track.kind() {
            TrackKind::Video => SOURCE_RENDITION,
            TrackKind::Audio => AUDIO_RENDITION,
        };
        self.set_rendition_track(name, track);
    }

    /// Declare rendition `name` with `track`, or change its configuration. A changed configuration starts
    /// a new init segment after a discontinuity on every rendition (a new video configuration cuts every
    /// rendition; a new audio configuration cuts only audio, since cutting video mid-GOP would start a
    /// segment without a keyframe). A rendition whose kind differs from its earlier track is refused
    /// (logged).
    pub fn set_rendition_track(&mut self, name: &str, track: TrackInfo) {
        if !track.config.is_packageable() {
            // Callers route such tracks to the transcoder; refused here as a last line of defence.
            tracing::error!(
                rendition = name,
                codec = track.config.name(),
                "codec cannot be packaged: track ignored"
            );
            return;
        }
        let kind = track.kind();
        let init_id = self.next_msn();
        match self.renditions.iter().position(|r| r.name() == name) {
            Some(i) if self.renditions[i].track() == &track => {}
            Some(i) if self.renditions[i].kind() != kind => {
                tracing::warn!(rendition = name, "track kind changed: ignored");
            }
            Some(i) => {
                self.renditions[i].change_track(track, init_id);
                let cut_all = kind == TrackKind::Video;
                for r in &mut self.renditions {
                    if (cut_all || r.kind() == kind) && r.has_open_segment() {
                        r.cut(None);
                    }
                    r.mark_discontinuity();
                }
            }
            None => {
                let mut r = Rendition::new(name, track, init_id, self.config.window_segments);
                if let Some((_, nominal, floor)) = self.bandwidths.iter().find(|(n, ..)| n == name)
                {
                    apply_bandwidth(&mut r, *nominal, *floor);
                }
                self.renditions.push(r);
                let new = self.renditions.len() - 1;
                let leader_is_video = self
                    .leader
                    .is_some_and(|l| self.renditions[l].kind() == TrackKind::Video);
                // The first video rendition leads; audio leads only while there is no video. The leader
                // can change only before the playlists are published.
                if self.leader.is_none()
                    || (kind == TrackKind::Video && !leader_is_video && !self.is_ready())
                {
                    self.leader = Some(new);
                }
            }
        }
    }

    /// Encrypt every segment opened from now on (HLS `METHOD=AES-128`, [`crate::crypto`]) with keys and
    /// IVs from `source`.
    pub fn set_key_source(&mut self, source: Box<dyn crate::crypto::KeySource>) {
        self.key_source = Some(source);
    }

    /// True when segments are encrypted.
    pub fn is_encrypted(&self) -> bool {
        self.key_source.is_some()
    }

    /// Declare rendition `name`'s nominal bit rate (bit/s, e.g. an encoder's max rate) and the floor
    /// a measured bit rate is raised to (see [`Rendition::declared_bandwidth`]). Kept for a rendition
    /// declared later.
    pub fn set_rendition_bandwidth(
        &mut self,
        name: &str,
        nominal_bps: Option<u64>,
        floor_bps: u64,
    ) {
        self.bandwidths.retain(|(n, ..)| n != name);
        self.bandwidths
            .push((name.to_owned(), nominal_bps, floor_bps));
        if let Some(r) = self.renditions.iter_mut().find(|r| r.name() == name) {
            apply_bandwidth(r, nominal_bps, floor_bps);
        }
    }

    /// The publisher reconnected: the next segments follow an EXT-X-DISCONTINUITY and the new input
    /// timeline is shifted to continue the output timeline.
    pub fn discontinuity(&mut self) {
        for r in &mut self.renditions {
            if r.has_open_segment() {
                r.cut(None);
            }
            r.mark_discontinuity();
        }
        self.input_offset_90khz = None;
        self.anchor = None;
        // The next publish brings its own grid (its points are counted anew) and keyframes.
        self.clock = None;
        self.grid.clear();
        self.last_keyframe_dts_90khz = None;
    }

    /// Rendition `name` is produced by another encoder from its next segment on, with `track` (a copied
    /// source whose keyframes left the segment grid, replaced by an encoder at the same resolution):
    /// its open segment is cut where its frames stopped, its next segment uses a new init segment, and
    /// every rendition's segment with that msn follows an EXT-X-DISCONTINUITY (a new DASH Period), even
    /// one already started (RFC 8216bis §4.4.4.3: the encoding changes there, in every variant stream
    /// alike). Declares the rendition if it is unknown.
    pub fn replace_rendition_track(&mut self, name: &str, track: TrackInfo) {
        let Some(i) = self.renditions.iter().position(|r| r.name() == name) else {
            self.set_rendition_track(name, track);
            return;
        };
        if self.renditions[i].track() == &track {
            return;
        }
        if self.renditions[i].has_open_segment() {
            self.renditions[i].cut(None);
        }
        let msn = self.renditions[i].next_msn().unwrap_or(self.next_msn);
        let init_id = self.next_msn();
        self.renditions[i].change_track(track, init_id);
        for r in &mut self.renditions {
            r.mark_discontinuity_at(msn);
        }
        if self.periods.back().is_none_or(|p| msn > p.first_msn) {
            self.pending_period_msn = Some(self.pending_period_msn.map_or(msn, |p| p.min(msn)));
            // A period whose first segment was already opened (audio ahead) starts with it now.
            if let Some(g) = self.grid.by_msn(msn).copied() {
                let pdt = self
                    .anchor
                    .map(|(ms, pts)| ms + (g.pts_90khz - pts).div_euclid(90));
                if let Some(start_ms) = pdt {
                    self.periods.push_back(PeriodStart {
                        first_msn: msn,
                        start_ms,
                        pts_90khz: g.pts_90khz,
                    });
                    self.pending_period_msn = None;
                }
            }
        }
        tracing::info!(
            rendition = name,
            msn,
            "rendition replaced by another encoder: discontinuity"
        );
    }

    /// Close every rendition: playlists get EXT-X-ENDLIST.
    pub fn end(&mut self) {
        for r in &mut self.renditions {
            r.end();
        }
        self.is_ended = true;
    }

    /// Each rendition's part publication delays since the last call (ms; see
    /// [`Rendition::take_publication_delays`]), by rendition name.
    pub fn take_publication_delays(&mut self) -> Vec<(String, Vec<u32>)> {
        self.renditions
            .iter_mut()
            .filter_map(|r| {
                let d = r.take_publication_delays();
                (!d.is_empty()).then(|| (r.name().to_owned(), d))
            })
            .collect()
    }

    /// Passthrough convenience: package one source frame into the rendition of its kind.
    pub fn push_frame(&mut self, frame: Frame, now_ms: i64) -> Update {
        let name = match frame.track {
            TrackKind::Video => SOURCE_RENDITION,
            TrackKind::Audio => AUDIO_RENDITION,
        };
        self.push_rendition_frame(name, frame, now_ms)
    }

    /// Package one frame of rendition `name` (declared with [`Self::set_rendition_track`]; frames of
    /// unknown renditions are ignored). `now_ms` is the wall clock (Unix ms) when it arrived, used only
    /// for EXT-X-PROGRAM-DATE-TIME. Timestamps are on the stream's source timeline, in the rendition's
    /// timescale.
    pub fn push_rendition_frame(&mut self, name: &str, frame: Frame, now_ms: i64) -> Update {
        self.push_rendition_frame_received(name, frame, now_ms, Some(now_ms))
    }

    /// [`Self::push_rendition_frame`] for a frame received earlier than `now_ms`: `received_ms` (Unix
    /// ms) is when it (for a transcoded rendition: its source frame) came from the publisher, `None`
    /// when unknown. Parts' publication delays are measured from it
    /// ([`Self::take_publication_delays`]).
    pub fn push_rendition_frame_received(
        &mut self,
        name: &str,
        mut frame: Frame,
        now_ms: i64,
        received_ms: Option<i64>,
    ) -> Update {
        let mut update = Update::default();
        if self.is_ended {
            return update;
        }
        let Some(idx) = self.renditions.iter().position(|r| r.name() == name) else {
            return update;
        };
        // Parts this frame closes (a cut before it, or its own part) are published now.
        self.renditions[idx].set_clock(now_ms, received_ms);
        let timescale = self.renditions[idx].timescale();
        // Map the input timeline onto the output timeline (continuing it after a reconnect).
        let offset_90khz = match self.input_offset_90khz {
            Some(o) => o,
            None => {
                let end = self
                    .renditions
                    .iter()
                    .filter_map(|r| r.timeline_end().map(|t| rescale(t, r.timescale(), 90_000)))
                    .max();
                let o = end.map_or(0, |end| end - rescale(frame.dts, timescale, 90_000));
                self.input_offset_90khz = Some(o);
                o
            }
        };
        let offset = rescale(offset_90khz, 90_000, timescale);
        frame.dts += offset;
        frame.pts += offset;

        let is_leader = self.leader == Some(idx);
        let jitter = duration_ticks(crate::config::JITTER_TOLERANCE, timescale);
        let part_limit = duration_ticks(
            self.advertised_part_target(&self.renditions[idx]),
            timescale,
        );
        let r = &mut self.renditions[idx];
        let Some(frame) = r.admit(frame) else {
            return update;
        };
        let is_video = r.kind() == TrackKind::Video;
        let decision = match self.clock {
            Some(clock) => self.producer_cut(idx, &frame, clock.shifted(offset_90khz)),
            None => self.keyframe_cut(idx, &frame, is_leader),
        };
        let cut = match decision {
            Decision::Drop => {
                self.renditions[idx].count_dropped();
                return update;
            }
            Decision::Continue => None,
            Decision::Cut { kind, msn, point } => Some((kind, msn, point)),
        };

        // A video rendition cutting where another did starts exactly on that boundary (its own
        // timestamps may differ by the millisecond jitter of the source).
        let mut frame = frame;
        if let Some((kind, msn, _)) = cut
            && kind != Cut::Forced
            && is_video
            && let Some(start) = self
                .grid
                .by_msn(msn)
                .filter(|g| g.from_video)
                .map(|g| rescale(g.dts_90khz, 90_000, timescale))
            && (frame.dts - start).abs() <= jitter
            && self.renditions[idx]
                .segments()
                .back()
                .is_none_or(|s| s.start_dts < start)
        {
            let delta = start - frame.dts;
            frame.dts += delta;
            frame.pts += delta;
        }
        let frame_90khz = rescale(frame.dts, timescale, 90_000);
        let pts_90khz = rescale(frame.pts, timescale, 90_000);
        if is_leader && is_video && frame.is_keyframe {
            if let Some(last) = self.last_keyframe_dts_90khz {
                self.longest_keyframe_interval_90khz =
                    self.longest_keyframe_interval_90khz.max(frame_90khz - last);
            }
            self.last_keyframe_dts_90khz = Some(frame_90khz);
        }

        let mut first_segment_s = None;
        if let Some((kind, msn, point)) = cut {
            let limit = self.segment_limit_ticks(is_video, timescale);
            let td = self.target_duration_s;
            let r = &mut self.renditions[idx];
            if kind != Cut::Open {
                if kind == Cut::Forced {
                    r.count_forced_cut();
                    tracing::warn!(
                        rendition = r.name(),
                        limit_ticks = limit,
                        "no keyframe where the segment must end: segment cut without a keyframe"
                    );
                }
                let was_first = r.last_complete_msn().is_none();
                let seg_start = r
                    .segments()
                    .back()
                    .map(|s| s.start_dts)
                    .unwrap_or(frame.dts);
                // A timestamp gap must not stretch a segment past what the target duration allows:
                // the last frame then ends at the limit (or where it naturally ends, when the segment
                // already runs past the limit: a follower of a leader whose keyframe came late keeps
                // every one of its samples' durations, so its timeline stays the leader's) and the
                // gap stays a gap in the timeline.
                let end = match (td, r.timeline_end()) {
                    (Some(_), natural_end) => {
                        let natural_end = natural_end.unwrap_or(frame.dts);
                        frame.dts.min((seg_start + limit).max(natural_end))
                    }
                    (None, _) => frame.dts,
                };
                if end < frame.dts {
                    r.count_timeline_gap();
                }
                r.cut(Some(end));
                let last = r
                    .segments()
                    .back()
                    .map(|seg| (seg.msn, seg.duration_ticks() as f64 / f64::from(timescale)));
                if let (Some(td), Some((last_msn, secs))) = (td, last)
                    && secs.round() > f64::from(td)
                {
                    r.count_target_duration_overrun();
                    tracing::warn!(
                        rendition = r.name(),
                        msn = last_msn,
                        duration_s = secs,
                        target_duration_s = td,
                        "segment longer than the target duration (a keyframe interval longer than any seen before the playlists were published)"
                    );
                }
                let counts_for_td = match self.clock {
                    Some(_) => is_video,
                    None => is_leader,
                };
                if counts_for_td && was_first && td.is_none() {
                    first_segment_s = Some((frame.dts - seg_start) as f64 / f64::from(timescale));
                }
                update.has_new_media = true;
            }
            // Program date time from the stream's wall-clock anchor: when the frame came from the
            // publisher, not when it is packaged (a transcoded stream's first segment is held while
            // the source is measured, then packaged seconds later, faster than real time; anchored
            // then, every program date time — and DASH's availability times — ran that far ahead
            // of the wall clock).
            let anchor = *self
                .anchor
                .get_or_insert((received_ms.unwrap_or(now_ms), pts_90khz));
            let pdt_ms = anchor.0 + (pts_90khz - anchor.1).div_euclid(90);
            let epoch = *self.cenc_epoch.get_or_insert(msn);
            let (key, cenc) = match self.key_source.as_mut() {
                Some(ks) => {
                    let (key, iv) = ks.segment_key(msn);
                    let (cenc_key, iv_base) = ks.cenc_key(epoch);
                    (
                        Some(crate::crypto::SegmentKey { key, iv }),
                        Some(crate::cenc::CencSegmentKey {
                            key: cenc_key,
                            iv_base,
                        }),
                    )
                }
                None => (None, None),
            };
            let r = &mut self.renditions[idx];
            r.open_segment(
                msn,
                (frame.dts, frame.pts),
                pdt_ms,
                frame.is_keyframe,
                key,
                cenc,
            );
            r.set_open_grid_point(point);
            // The shared grid: the first rendition to start this segment records where.
            let registers = self.grid.by_msn(msn).is_none();
            if registers {
                self.grid.push(GridEntry {
                    msn,
                    point,
                    dts_90khz: frame_90khz,
                    pts_90khz,
                    on_keyframe: kind != Cut::Forced,
                    from_video: is_video,
                });
            } else if is_video
                && let Some(g) = self.grid.by_msn_mut(msn)
                && !g.from_video
            {
                // Audio got there first with the grid's nominal time: the keyframe's is exact.
                g.dts_90khz = frame_90khz;
                g.pts_90khz = pts_90khz;
                g.from_video = true;
            }
            self.next_msn = self.next_msn.max(msn + 1);
            // A discontinuity opens a period unless the current period already starts at or after it.
            let r = &self.renditions[idx];
            if r.segments().back().is_some_and(|s| s.is_discontinuity)
                && self.periods.back().is_none_or(|p| msn > p.first_msn)
            {
                self.pending_period_msn = Some(self.pending_period_msn.map_or(msn, |p| p.min(msn)));
            }
            let starts_period = match self.clock {
                // The first video rendition to open the period's first segment (or audio, on a
                // stream without video) gives the period its start.
                Some(_) => {
                    (is_video || !self.renditions.iter().any(|r| r.kind() == TrackKind::Video))
                        && (self.periods.is_empty()
                            || self.pending_period_msn.is_some_and(|p| msn >= p))
                }
                None => {
                    is_leader
                        && (self.periods.is_empty()
                            || self.pending_period_msn.is_some_and(|p| msn >= p))
                }
            };
            if starts_period {
                if self.periods.len() >= PERIOD_CAPACITY {
                    self.periods.pop_front();
                }
                self.periods.push_back(PeriodStart {
                    first_msn: self.pending_period_msn.map_or(msn, |p| p.min(msn)),
                    start_ms: pdt_ms,
                    pts_90khz,
                });
                self.pending_period_msn = None;
                self.availability_start_ms.get_or_insert(pdt_ms);
            }
            if is_leader {
                // The segment boundary ends the leader's last part too.
                if self.leader_part_ends.back().is_none_or(|e| *e < pts_90khz) {
                    if self.leader_part_ends.len() >= PART_ENDS_CAPACITY {
                        self.leader_part_ends.pop_front();
                    }
                    self.leader_part_ends.push_back(pts_90khz);
                }
            }
        }

        // Where this video rendition's next segment starts, if another has cut there already.
        let boundary_hint = if is_video {
            let open_msn = self.renditions[idx].segments().back().map_or(0, |s| s.msn);
            self.grid
                .by_msn(open_msn + 1)
                .filter(|g| g.from_video)
                .map(|g| rescale(g.dts_90khz, 90_000, timescale))
        } else {
            None
        };
        // Where this audio part should end: at the leader's next part end, once known, else one part
        // target after its start (the leader's usual part length).
        let part_end_hint = if !is_video && !is_leader && self.leader.is_some() {
            let r = &self.renditions[idx];
            let start = r.pending_start_dts().unwrap_or(frame.dts);
            let start_90khz = rescale(start, timescale, 90_000);
            let half_frame_90khz = rescale(r.est_duration_ticks(), timescale, 90_000) / 2;
            let end_90khz = self
                .leader_part_ends
                .iter()
                .copied()
                .find(|e| *e > start_90khz + half_frame_90khz)
                .unwrap_or(start_90khz + duration_ticks(self.config.part_target, 90_000));
            Some(rescale(end_90khz, 90_000, timescale))
        } else {
            None
        };
        let produced = self.renditions[idx].push(frame, part_limit, boundary_hint, part_end_hint);
        if produced {
            update.has_new_media = true;
            if is_leader {
                self.record_leader_part_end();
            }
        }
        if let Some(secs) = first_segment_s {
            let td = self.target_duration_for(secs);
            self.target_duration_s = Some(td);
            tracing::info!(
                target_duration_s = td,
                first_segment_s = secs,
                "target duration fixed"
            );
        }
        if !self.is_published && self.target_duration_s.is_some() && self.all_have_a_segment() {
            self.is_published = true;
            update.became_ready = true;
            tracing::info!(
                target_duration_s = self.target_duration_s,
                "playlists published"
            );
        }
        update
    }

    /// The Part Target Duration advertised for rendition `r` (RFC 8216bis §4.4.3.7), the longest any of
    /// its parts lasts: for video the configured part target plus the timestamp jitter
    /// ([`PackagerConfig::advertised_part_target`]); for audio one audio frame more, since audio parts
    /// end at the audio frame nearest to the video's part boundaries. Fixed by the track configuration,
    /// so it never changes while a playlist is live.
    pub fn advertised_part_target(&self, r: &Rendition) -> std::time::Duration {
        let base = self.config.advertised_part_target();
        match &r.track().config {
            media::CodecConfig::Aac(a) if a.sample_rate > 0 => {
                let frame_us =
                    u64::from(a.samples_per_frame) * 1_000_000 / u64::from(a.sample_rate);
                // Whole milliseconds, rounded up, so the rendered value (3 decimals) is exact.
                base + std::time::Duration::from_millis(frame_us.div_ceil(1000))
            }
            _ => base,
        }
    }

    /// Remember where the leader's latest part ends (presentation time, 90 kHz).
    fn record_leader_part_end(&mut self) {
        let Some(leader) = self.leader else { return };
        let r = &self.renditions[leader];
        let (Some(end), Some(g)) = (r.timeline_end(), self.grid.last_from_video()) else {
            return;
        };
        let end_90khz = rescale(end, r.timescale(), 90_000) + (g.pts_90khz - g.dts_90khz);
        if self.leader_part_ends.len() >= PART_ENDS_CAPACITY {
            self.leader_part_ends.pop_front();
        }
        self.leader_part_ends.push_back(end_90khz);
    }

    /// Checks every rendition's invariants, and that every complete segment's duration, rounded to the
    /// nearest second, is at most the target duration (RFC 8216bis §4.4.3.1), except segments counted
    /// as overruns ([`crate::rendition::RenditionCounters::target_duration_overruns`]: a keyframe
    /// interval longer than any seen before the target duration was fixed, on a stream packaged as it
    /// arrives).
    pub fn check_invariants(&self) -> Result<(), String> {
        for r in self.renditions() {
            r.check_invariants()
                .map_err(|e| format!("{}: {e}", r.name()))?;
            let Some(td) = self.target_duration_s else {
                continue;
            };
            let over = r
                .segments()
                .iter()
                .filter(|s| s.is_complete)
                .filter(|s| {
                    (s.duration_ticks() as f64 / f64::from(r.timescale())).round() > f64::from(td)
                })
                .count() as u64;
            if over > r.counters().target_duration_overruns {
                return Err(format!(
                    "{}: {over} segments round to more than the target duration {td} (counted: {})",
                    r.name(),
                    r.counters().target_duration_overruns
                ));
            }
        }
        Ok(())
    }
}

/// A duration in ticks of `timescale`.
pub(crate) fn duration_ticks(d: std::time::Duration, timescale: u32) -> i64 {
    i64::try_from(d.as_nanos() * u128::from(timescale) / 1_000_000_000).unwrap_or(i64::MAX)
}
