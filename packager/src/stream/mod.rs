//! One stream's packager: its renditions, the shared segment grid, the target duration, msn numbering,
//! program date time and discontinuities.
//!
//! Sans-IO: the caller passes frames and the wall-clock time (`now_ms`, Unix milliseconds) explicitly.
//!
//! Layout: the packager's state and what it reports (here), `tracks` (declaring and changing
//! renditions, the end of the stream), `push` (packaging frames on the segment grid), `cut` (where a
//! segment or part ends), `events` (timed events stamped onto the timeline).

mod cut;
mod events;
mod push;
mod tracks;

use cut::{Cut, Decision};

use std::collections::VecDeque;

use media::{SegmentClock, TrackKind, time::rescale};

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
    /// The closed-caption services the source's video carries (seen so far).
    captions: media::captions::CaptionServices,
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
    /// EXT-X-DISCONTINUITY-SEQUENCE of every rendition's first segment (RFC 8216bis §4.4.3.3): 0,
    /// or where the stream's previous publish (on another origin) left it, plus one.
    first_discontinuity_sequence: u64,
    /// Timed events ([`crate::events`]): stamped ones in the window, those waiting for the output
    /// timeline, counters.
    events: events::EventLog,
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
            captions: Default::default(),
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
            first_discontinuity_sequence: 0,
            events: events::EventLog::default(),
        }
    }

    /// Continue a stream that was published before (elsewhere): every rendition's first segment gets
    /// discontinuity sequence number `sequence` (EXT-X-DISCONTINUITY-SEQUENCE, RFC 8216bis §4.4.3.3),
    /// one more than the previous publish's latest, so that a player that followed the previous
    /// publish sees a discontinuity. Call before the first frame.
    pub fn set_first_discontinuity_sequence(&mut self, sequence: u64) {
        self.first_discontinuity_sequence = sequence;
        for r in &mut self.renditions {
            r.set_first_discontinuity_sequence(sequence);
        }
    }

    /// The discontinuity sequence number of the newest segment (of the rendition that has seen the
    /// most discontinuities): EXT-X-DISCONTINUITY-SEQUENCE plus the EXT-X-DISCONTINUITY tags in the
    /// window. A later publish of the stream continues from one more.
    pub fn latest_discontinuity_sequence(&self) -> u64 {
        self.renditions
            .iter()
            .map(Rendition::latest_discontinuity_sequence)
            .max()
            .unwrap_or(self.first_discontinuity_sequence)
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

    /// The source's video carries these closed-caption services ([`media::captions::scan_frame`]; the
    /// union with those already seen): the multivariant playlist announces them (`CLOSED-CAPTIONS`)
    /// on each variant that carries them, the MPD with an `Accessibility` descriptor.
    pub fn add_caption_services(&mut self, services: media::captions::CaptionServices) {
        self.captions = self.captions.union(services);
    }

    /// The closed-caption services a video rendition carries in its SEI: the source's, in a
    /// rendition packaged as it arrives (no producer grid) or in an H.264 one (a copy, or encoded by
    /// libx264 or NVENC, which write the captions of the pictures they are given); none in an HEVC
    /// rendition of a ladder (FFmpeg 5.1's libx265 writes no captions).
    pub fn caption_services(&self, r: &Rendition) -> media::captions::CaptionServices {
        let carries = r.kind() == TrackKind::Video
            && (self.clock.is_none() || matches!(r.track().config, media::CodecConfig::Avc(_)));
        if carries {
            self.captions
        } else {
            Default::default()
        }
    }

    /// DVR ([`PackagerConfig::dvr_window`]): list segments that leave the live window for `window`
    /// more, from now on; `None` stops it (a store that failed) and forgets those listed.
    pub fn set_dvr_window(&mut self, window: Option<std::time::Duration>) {
        self.config.dvr_window = window;
        for r in &mut self.renditions {
            r.set_dvr_window(window);
        }
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
