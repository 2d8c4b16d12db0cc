//! One stream's packager: its renditions, the shared segment grid, the target duration, msn numbering,
//! program date time and discontinuities.
//!
//! Sans-IO: the caller passes frames and the wall-clock time (`now_ms`, Unix milliseconds) explicitly.

use std::collections::VecDeque;

use media::{Frame, TrackInfo, TrackKind, time::rescale};

use crate::{PackagerConfig, rendition::Rendition};

/// The name of the passthrough video rendition.
pub const SOURCE_RENDITION: &str = "source";
/// The name of the audio rendition.
pub const AUDIO_RENDITION: &str = "audio";

/// What one input changed, so the caller knows whom to wake.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Update {
    /// A part or a segment was produced (playlists changed).
    pub has_new_media: bool,
    /// The playlists became available for the first time (the target duration is now fixed).
    pub became_ready: bool,
}

/// How many leader segment starts the grid remembers (well beyond any live window).
const GRID_CAPACITY: usize = 2048;

/// Packages one stream: any number of video renditions (the ladder) and an audio rendition.
///
/// The **leader** (the first video rendition declared; the audio rendition when there is no video) cuts
/// segments by the keyframe rule; every other rendition (a **follower**) cuts where the leader did — a video
/// follower at its first keyframe at or after the leader's cut time (the transcoder forces keyframes there),
/// the audio rendition at its first frame at or after it — and takes the same media sequence number, so
/// segments align across renditions.
#[derive(Debug)]
pub struct StreamPackager {
    config: PackagerConfig,
    renditions: Vec<Rendition>,
    /// Index of the leader in `renditions`.
    leader: Option<usize>,
    /// The leader's segment starts, oldest first. Video followers cut on the DTS (their keyframes
    /// carry the leader's PTS and the same composition offset); audio cuts on the presentation time,
    /// so that a segment's audio and video cover the same presentation interval.
    grid: VecDeque<GridEntry>,
    /// Where the leader's recent parts end, as presentation times (90 kHz ticks), oldest first. Audio
    /// closes its parts at the frame nearest to these, so that its parts track the video's and the last
    /// part of a segment ends at the cut (never a sliver published after the rest of the segment).
    leader_part_ends: VecDeque<i64>,
    /// Msn of the next segment the leader opens.
    next_msn: u64,
    /// Target duration in whole seconds, fixed when the playlists are first published.
    target_duration_secs: Option<u32>,
    /// Wall-clock anchor: (Unix ms, output PTS in 90 kHz ticks) of the same instant. Program date
    /// times are presentation times (RFC 8216bis §4.4.4.6: the date of the first sample), so players
    /// that align renditions by EXT-X-PROGRAM-DATE-TIME place audio and video where their media is.
    anchor: Option<(i64, i64)>,
    /// Offset added to input timestamps (90 kHz ticks) so that the output timeline continues across
    /// re-publishes.
    input_offset_90k: Option<i64>,
    is_ended: bool,
    /// Where each run of segments without a discontinuity starts (DASH Periods), oldest first.
    periods: VecDeque<PeriodStart>,
    /// The lowest msn at which a rendition opened a segment after a discontinuity, until the leader
    /// opens the segment that starts the new period.
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
    pub pts_90k: i64,
}

/// One leader segment start on the shared grid.
#[derive(Debug, Clone, Copy)]
struct GridEntry {
    msn: u64,
    /// DTS of the segment's first frame, 90 kHz ticks.
    dts_90k: i64,
    /// PTS of the segment's first frame (the keyframe), 90 kHz ticks.
    pts_90k: i64,
    /// False when the leader cut there without a keyframe (a forced cut): video followers cut there
    /// too, keyframe or not, so that every rendition keeps the same msns.
    on_keyframe: bool,
}

impl GridEntry {
    /// Where a follower cuts: the DTS for video, the presentation time for audio (whose PTS = DTS).
    fn start(&self, is_video: bool) -> i64 {
        if is_video { self.dts_90k } else { self.pts_90k }
    }
}

impl StreamPackager {
    /// A packager whose first segment gets media sequence number `first_msn` (≥ 1). The config must
    /// have passed [`PackagerConfig::validate`].
    pub fn new(config: PackagerConfig, first_msn: u64) -> Self {
        Self {
            config,
            renditions: Vec::new(),
            leader: None,
            grid: VecDeque::new(),
            leader_part_ends: VecDeque::new(),
            next_msn: first_msn.max(1),
            target_duration_secs: None,
            anchor: None,
            input_offset_90k: None,
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
    pub fn target_duration_secs(&self) -> Option<u32> {
        self.target_duration_secs
    }

    /// True once playlists can be served (the leader's first segment is complete and the target duration
    /// fixed).
    pub fn is_ready(&self) -> bool {
        self.target_duration_secs.is_some()
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

    /// The renditions: the leader first, then the other video renditions by picture height (highest
    /// first), then audio.
    pub fn renditions(&self) -> impl Iterator<Item = &Rendition> {
        let mut order: Vec<&Rendition> = self.renditions.iter().collect();
        let leader = self.leader();
        order.sort_by_key(|r| {
            let height = r.track().config.video_params().map_or(0, |p| p.height);
            (
                r.kind() == TrackKind::Audio,
                Some(r.name()) != leader,
                std::cmp::Reverse(height),
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
        self.input_offset_90k = None;
        self.anchor = None;
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
        let offset_90k = match self.input_offset_90k {
            Some(o) => o,
            None => {
                let end = self
                    .renditions
                    .iter()
                    .filter_map(|r| r.timeline_end().map(|t| rescale(t, r.timescale(), 90_000)))
                    .max();
                let o = end.map_or(0, |end| end - rescale(frame.dts, timescale, 90_000));
                self.input_offset_90k = Some(o);
                o
            }
        };
        let offset = rescale(offset_90k, 90_000, timescale);
        frame.dts += offset;
        frame.pts += offset;

        let is_leader = self.leader == Some(idx);
        let segment_target = duration_ticks(self.config.segment_target, timescale);
        // A forced cut happens only beyond the target duration plus the timestamp jitter we absorb.
        let jitter = duration_ticks(crate::config::JITTER_TOLERANCE, timescale);
        let jitter_90k = duration_ticks(crate::config::JITTER_TOLERANCE, 90_000);
        let max_segment = jitter
            + match self.target_duration_secs {
                Some(td) => i64::from(td) * i64::from(timescale),
                None => duration_ticks(self.config.max_target_duration, timescale),
            };
        let part_limit = duration_ticks(
            self.advertised_part_target(&self.renditions[idx]),
            timescale,
        );
        let td_fixed = self.target_duration_secs.is_some();

        let r = &mut self.renditions[idx];
        let Some(frame) = r.admit(frame) else {
            return update;
        };
        let frame_90k = rescale(frame.dts, timescale, 90_000);
        let is_video = r.kind() == TrackKind::Video;
        // How close to a grid point a follower's frame must be to start the segment there: the source's
        // timestamp jitter for video; for audio, whose frames do not fall on the video's times, half a
        // frame, so that audio cuts at the frame nearest the video boundary.
        let snap_90k = if is_video {
            jitter_90k
        } else {
            jitter_90k.max(rescale(r.est_duration_ticks(), timescale, 90_000) / 2)
        };

        // Where to cut, and the msn of the segment that starts here.
        let mut cut: Option<(Cut, u64)> = None;
        match r.open_segment_elapsed(frame.dts) {
            None => {
                if is_video && !frame.is_keyframe {
                    r.count_dropped();
                    return update;
                }
                let msn = if is_leader {
                    self.next_msn
                } else {
                    // Join the leader's segment that contains this frame (or the leader's next one).
                    let own_next = r.next_msn().unwrap_or(0);
                    let grid_msn = self
                        .grid
                        .iter()
                        .rev()
                        .find(|g| g.start(is_video) <= frame_90k + snap_90k)
                        // Audio that precedes the first keyframe's presentation time belongs
                        // to the first segment.
                        .or(self.grid.front())
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
                cut = Some((Cut::Open, msn));
            }
            Some(elapsed) => {
                let seg_elapsed = elapsed - r.est_duration_ticks();
                let open_msn = r.segments().back().map_or(0, |s| s.msn);
                if is_leader {
                    // After a forced cut (a keyframe came too late) the open segment has no keyframe:
                    // the next keyframe cuts whatever the elapsed time, so segments start on keyframes
                    // again instead of staying off the keyframe grid for good. (The transcoder's forced
                    // IDRs follow the same keyframes: a keyframe that late is past its grid anyway.)
                    let open_has_keyframe =
                        r.segments().back().is_none_or(|s| s.starts_with_keyframe);
                    if frame.is_keyframe
                        && (seg_elapsed + jitter >= segment_target || !open_has_keyframe)
                    {
                        cut = Some((Cut::Natural, open_msn + 1));
                    } else if elapsed > max_segment {
                        cut = Some((Cut::Forced, open_msn + 1));
                    }
                } else {
                    let next = self.grid.iter().find(|g| g.msn == open_msn + 1);
                    let reached = next.is_some_and(|g| frame_90k + snap_90k >= g.start(is_video));
                    if reached && (!is_video || frame.is_keyframe) {
                        cut = Some((Cut::Natural, open_msn + 1));
                    } else if reached && next.is_some_and(|g| !g.on_keyframe) {
                        // The leader's keyframe came too late and it cut without one: an encoded
                        // rung has keyframes only where the source has them, so waiting for one
                        // would put this rendition a segment behind the leader for good.
                        cut = Some((Cut::Forced, open_msn + 1));
                    } else if elapsed > max_segment + i64::from(timescale) {
                        // The leader stalled: cut on our own rather than grow without bound.
                        cut = Some((Cut::Forced, open_msn + 1));
                    }
                }
            }
        }

        // A video follower cutting where the leader did starts exactly on the leader's boundary (its own
        // timestamps may differ by the millisecond jitter of the source).
        let mut frame = frame;
        if let Some((Cut::Natural, msn)) = cut
            && is_video
            && !is_leader
            && let Some(start) = self
                .grid
                .iter()
                .find(|g| g.msn == msn)
                .map(|g| rescale(g.dts_90k, 90_000, timescale))
            && (frame.dts - start).abs() <= jitter
            && self.renditions[idx]
                .segments()
                .back()
                .is_some_and(|s| s.start_dts < start)
        {
            let delta = start - frame.dts;
            frame.dts += delta;
            frame.pts += delta;
        }
        let frame_90k = rescale(frame.dts, timescale, 90_000);

        let mut first_segment_secs = None;
        if let Some((kind, msn)) = cut {
            let r = &mut self.renditions[idx];
            if kind != Cut::Open {
                if kind == Cut::Forced {
                    r.count_forced_cut();
                    tracing::warn!(
                        rendition = r.name(),
                        max_segment_ticks = max_segment,
                        "keyframe too late for the target duration: segment cut without a keyframe"
                    );
                }
                let was_first = r.last_complete_msn().is_none();
                let seg_start = r
                    .segments()
                    .back()
                    .map(|s| s.start_dts)
                    .unwrap_or(frame.dts);
                // A timestamp gap must not stretch a segment past the target duration: the last frame
                // then ends at the limit and the gap stays a gap in the timeline. (Audio may exceed by
                // less than half a second: EXTINF rounds to the target duration.)
                let limit = if is_video {
                    max_segment
                } else {
                    max_segment - jitter + i64::from(timescale) / 2 - 1
                };
                let end = if td_fixed {
                    frame.dts.min(seg_start + limit)
                } else {
                    frame.dts
                };
                if end < frame.dts {
                    r.count_timeline_gap();
                }
                r.cut(Some(end));
                if is_leader && was_first && !td_fixed {
                    first_segment_secs =
                        Some((frame.dts - seg_start) as f64 / f64::from(timescale));
                }
                update.has_new_media = true;
            }
            // Program date time from the stream's wall-clock anchor.
            let pts_90k = rescale(frame.pts, timescale, 90_000);
            let anchor = *self.anchor.get_or_insert((now_ms, pts_90k));
            let pdt_ms = anchor.0 + (pts_90k - anchor.1).div_euclid(90);
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
            // A discontinuity opens a period unless the current period already starts at or after it.
            if r.segments().back().is_some_and(|s| s.is_discontinuity)
                && self.periods.back().is_none_or(|p| msn > p.first_msn)
            {
                self.pending_period_msn = Some(self.pending_period_msn.map_or(msn, |p| p.min(msn)));
            }
            if is_leader
                && (self.periods.is_empty() || self.pending_period_msn.is_some_and(|p| msn >= p))
            {
                if self.periods.len() >= PERIOD_CAPACITY {
                    self.periods.pop_front();
                }
                self.periods.push_back(PeriodStart {
                    first_msn: self.pending_period_msn.map_or(msn, |p| p.min(msn)),
                    start_ms: pdt_ms,
                    pts_90k,
                });
                self.pending_period_msn = None;
                self.availability_start_ms.get_or_insert(pdt_ms);
            }
            if is_leader {
                self.next_msn = self.next_msn.max(msn + 1);
                if self.grid.len() >= GRID_CAPACITY {
                    self.grid.pop_front();
                }
                self.grid.push_back(GridEntry {
                    msn,
                    dts_90k: frame_90k,
                    pts_90k,
                    on_keyframe: kind != Cut::Forced,
                });
                // The segment boundary ends the leader's last part too.
                if self.leader_part_ends.back().is_none_or(|e| *e < pts_90k) {
                    if self.leader_part_ends.len() >= GRID_CAPACITY {
                        self.leader_part_ends.pop_front();
                    }
                    self.leader_part_ends.push_back(pts_90k);
                }
            }
        }

        // Where this follower's next segment starts, if the leader has cut there already.
        let boundary_hint = if is_video && !is_leader {
            let open_msn = self.renditions[idx].segments().back().map_or(0, |s| s.msn);
            self.grid
                .iter()
                .find(|g| g.msn == open_msn + 1)
                .map(|g| rescale(g.dts_90k, 90_000, timescale))
        } else {
            None
        };
        // Where this audio part should end: at the leader's next part end, once known, else one part
        // target after its start (the leader's usual part length).
        let part_end_hint = if !is_video && !is_leader && self.leader.is_some() {
            let r = &self.renditions[idx];
            let start = r.pending_start_dts().unwrap_or(frame.dts);
            let start_90k = rescale(start, timescale, 90_000);
            let half_frame_90k = rescale(r.est_duration_ticks(), timescale, 90_000) / 2;
            let end_90k = self
                .leader_part_ends
                .iter()
                .copied()
                .find(|e| *e > start_90k + half_frame_90k)
                .unwrap_or(start_90k + duration_ticks(self.config.part_target, 90_000));
            Some(rescale(end_90k, 90_000, timescale))
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
        if let Some(secs) = first_segment_secs {
            // Jitter absorbed at part boundaries (≤ 2 ms) must not raise the target duration.
            let target = self
                .config
                .segment_target
                .as_secs_f64()
                .max(secs - crate::config::JITTER_TOLERANCE.as_secs_f64());
            let td = (target.ceil() as u32)
                .clamp(1, self.config.max_target_duration.as_secs().max(1) as u32);
            self.target_duration_secs = Some(td);
            update.became_ready = true;
            tracing::info!(
                target_duration_secs = td,
                first_segment_secs = secs,
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
        let (Some(end), Some(g)) = (r.timeline_end(), self.grid.back()) else {
            return;
        };
        let end_90k = rescale(end, r.timescale(), 90_000) + (g.pts_90k - g.dts_90k);
        if self.leader_part_ends.len() >= GRID_CAPACITY {
            self.leader_part_ends.pop_front();
        }
        self.leader_part_ends.push_back(end_90k);
    }

    /// Checks every rendition's invariants, and that no segment exceeds the target duration: a video
    /// segment never lasts longer than the target duration plus the 2 ms of timestamp jitter absorbed at
    /// part boundaries ([`crate::config::JITTER_TOLERANCE`]); an audio segment (cut at the first audio
    /// frame at or after the video cut, so up to one audio frame longer) rounds to at most the target
    /// duration, as RFC 8216bis §4.4.3.1 requires of every EXTINF.
    pub fn check_invariants(&self) -> Result<(), String> {
        for r in self.renditions() {
            r.check_invariants()
                .map_err(|e| format!("{}: {e}", r.name()))?;
            let Some(td) = self.target_duration_secs else {
                continue;
            };
            for s in r.segments().iter().filter(|s| s.is_complete) {
                let secs = s.duration_ticks() as f64 / f64::from(r.timescale());
                let ok = match r.kind() {
                    TrackKind::Video => {
                        secs <= f64::from(td) + crate::config::JITTER_TOLERANCE.as_secs_f64()
                    }
                    TrackKind::Audio => secs.round() <= f64::from(td),
                };
                if !ok {
                    return Err(format!(
                        "{}: segment {} lasts {secs:.3}s > target duration {td}",
                        r.name(),
                        s.msn
                    ));
                }
            }
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cut {
    Open,
    Natural,
    Forced,
}

/// A duration in ticks of `timescale`.
pub(crate) fn duration_ticks(d: std::time::Duration, timescale: u32) -> i64 {
    i64::try_from(d.as_nanos() * u128::from(timescale) / 1_000_000_000).unwrap_or(i64::MAX)
}
