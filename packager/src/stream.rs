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

/// Packages one stream (passthrough: one video and one audio rendition).
#[derive(Debug)]
pub struct StreamPackager {
    config: PackagerConfig,
    video: Option<Rendition>,
    audio: Option<Rendition>,
    /// Msn of the next segment to open, shared by the renditions.
    next_msn: u64,
    /// Target duration in whole seconds, fixed when the playlists are first published.
    target_duration_secs: Option<u32>,
    /// Segment cut times announced by the video rendition, in 90 kHz ticks, for the audio rendition.
    audio_cuts: VecDeque<i64>,
    /// Wall-clock anchor: (Unix ms, output DTS in 90 kHz ticks) of the same instant.
    anchor: Option<(i64, i64)>,
    /// Offset added to input timestamps (90 kHz ticks) so that the output timeline continues across
    /// re-publishes.
    input_offset_90k: Option<i64>,
    is_ended: bool,
    late_tracks_ignored: u64,
}

impl StreamPackager {
    /// A packager whose first segment gets media sequence number `first_msn` (≥ 1). The config must
    /// have passed [`PackagerConfig::validate`].
    pub fn new(config: PackagerConfig, first_msn: u64) -> Self {
        Self {
            config,
            video: None,
            audio: None,
            next_msn: first_msn.max(1),
            target_duration_secs: None,
            audio_cuts: VecDeque::new(),
            anchor: None,
            input_offset_90k: None,
            is_ended: false,
            late_tracks_ignored: 0,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &PackagerConfig {
        &self.config
    }

    /// EXT-X-TARGETDURATION in seconds, once the playlists are published.
    pub fn target_duration_secs(&self) -> Option<u32> {
        self.target_duration_secs
    }

    /// True once playlists can be served (the first segment is complete and the target duration fixed).
    pub fn is_ready(&self) -> bool {
        self.target_duration_secs.is_some()
    }

    /// True after [`Self::end`].
    pub fn is_ended(&self) -> bool {
        self.is_ended
    }

    /// The msn the next segment will get: persist it to continue numbering after this packager.
    pub fn next_msn(&self) -> u64 {
        self.next_msn
    }

    /// The renditions, video first.
    pub fn renditions(&self) -> impl Iterator<Item = &Rendition> {
        self.video.iter().chain(self.audio.iter())
    }

    /// The rendition called `name`.
    pub fn rendition(&self, name: &str) -> Option<&Rendition> {
        self.renditions().find(|r| r.name() == name)
    }

    /// Tracks announced after the playlists were published (ignored until the next publish).
    pub fn late_tracks_ignored(&self) -> u64 {
        self.late_tracks_ignored
    }

    /// Declare or change a track's configuration. A track first seen after the playlists were published
    /// is ignored (counted); a changed configuration starts a new init segment after a discontinuity on
    /// every rendition.
    pub fn set_track(&mut self, track: TrackInfo) {
        let kind = track.kind();
        let init_id = self.next_msn;
        let slot = match kind {
            TrackKind::Video => &mut self.video,
            TrackKind::Audio => &mut self.audio,
        };
        match slot {
            Some(r) if r.track() == &track => {}
            Some(r) => {
                r.change_track(track, init_id);
                // A new video configuration starts with a keyframe: every rendition cuts here, so msns stay
                // aligned. (A new audio configuration cuts only the audio rendition: cutting video mid-GOP
                // would start a segment without a keyframe.)
                let cut_all = kind == TrackKind::Video;
                for r in [&mut self.video, &mut self.audio].into_iter().flatten() {
                    if (cut_all || r.kind() == kind) && r.has_open_segment() {
                        r.cut(None);
                    }
                    // Discontinuities apply to the whole stream so players keep the renditions aligned.
                    r.mark_discontinuity();
                }
                self.audio_cuts.clear();
            }
            None if self.target_duration_secs.is_some() => self.late_tracks_ignored += 1,
            None => {
                let name = match kind {
                    TrackKind::Video => SOURCE_RENDITION,
                    TrackKind::Audio => AUDIO_RENDITION,
                };
                *slot = Some(Rendition::new(
                    name,
                    track,
                    init_id,
                    self.config.window_segments,
                ));
            }
        }
    }

    /// The publisher reconnected: the next segments follow an EXT-X-DISCONTINUITY and the new input
    /// timeline is shifted to continue the output timeline.
    pub fn discontinuity(&mut self) {
        for r in [&mut self.video, &mut self.audio].into_iter().flatten() {
            if r.has_open_segment() {
                r.cut(None);
            }
            r.mark_discontinuity();
        }
        self.input_offset_90k = None;
        self.anchor = None;
        self.audio_cuts.clear();
    }

    /// Close every rendition: playlists get EXT-X-ENDLIST.
    pub fn end(&mut self) {
        for r in [&mut self.video, &mut self.audio].into_iter().flatten() {
            r.end();
        }
        self.is_ended = true;
    }

    fn ticks_90k(kind_timescale: u32, ticks: i64) -> i64 {
        rescale(ticks, kind_timescale, 90_000)
    }

    /// Package one frame. `now_ms` is the wall clock (Unix ms) when it arrived, used only for
    /// EXT-X-PROGRAM-DATE-TIME.
    pub fn push_frame(&mut self, mut frame: Frame, now_ms: i64) -> Update {
        let mut update = Update::default();
        if self.is_ended {
            return update;
        }
        let has_video = self.video.is_some();
        let Some(timescale) = self.rendition_mut(frame.track).map(|r| r.timescale()) else {
            return update;
        };
        // Map the input timeline onto the output timeline.
        let offset_90k = *self.input_offset_90k.get_or_insert_with(|| {
            let end = [&self.video, &self.audio]
                .into_iter()
                .flatten()
                .filter_map(|r| r.timeline_end().map(|t| rescale(t, r.timescale(), 90_000)))
                .max();
            match end {
                Some(end) => end - rescale(frame.dts, timescale, 90_000),
                None => 0,
            }
        });
        let offset = rescale(offset_90k, 90_000, timescale);
        frame.dts += offset;
        frame.pts += offset;

        let segment_target = duration_ticks(self.config.segment_target, timescale);
        // A forced cut happens only beyond the target duration plus the timestamp jitter we absorb.
        let jitter = duration_ticks(crate::config::JITTER_TOLERANCE, timescale);
        let max_segment = jitter
            + match self.target_duration_secs {
                Some(td) => i64::from(td) * i64::from(timescale),
                None => duration_ticks(self.config.max_target_duration, timescale),
            };
        let part_limit = duration_ticks(self.config.advertised_part_target(), timescale);
        let next_msn = self.next_msn;
        let td_fixed = self.target_duration_secs.is_some();
        let pending_audio_cut = self.audio_cuts.front().copied();

        let Some(r) = self.rendition_mut(frame.track) else {
            return update;
        };
        let Some(frame) = r.admit(frame) else {
            return update;
        };
        let frame_90k = Self::ticks_90k(timescale, frame.dts);

        // Where to cut.
        let mut cut: Option<Cut> = None;
        match r.open_segment_elapsed(frame.dts) {
            None => {
                if r.kind() == TrackKind::Video && !frame.is_keyframe {
                    r.count_dropped();
                    return update;
                }
                cut = Some(Cut::Open);
            }
            Some(elapsed) => {
                let seg_elapsed = elapsed - r.est_duration_ticks();
                let is_video = r.kind() == TrackKind::Video;
                if is_video || !has_video {
                    if frame.is_keyframe && seg_elapsed + jitter >= segment_target {
                        cut = Some(Cut::Natural);
                    } else if elapsed > max_segment {
                        cut = Some(Cut::Forced);
                    }
                } else if pending_audio_cut.is_some_and(|t| frame_90k >= t) {
                    cut = Some(Cut::Natural);
                } else if elapsed > max_segment + i64::from(timescale) {
                    // Video stalled: audio cuts on its own rather than growing without bound.
                    cut = Some(Cut::Forced);
                }
            }
        }

        let mut cut_dts_90k = None;
        let mut first_segment_secs = None;
        if let Some(kind) = cut {
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
                // then ends at the limit and the gap stays a gap in the timeline.
                // (Audio may exceed by less than half a second: EXTINF rounds to the target duration.)
                let limit = match r.kind() {
                    TrackKind::Video => max_segment,
                    TrackKind::Audio => max_segment - jitter + i64::from(timescale) / 2 - 1,
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
                if was_first && !td_fixed {
                    first_segment_secs =
                        Some((frame.dts - seg_start) as f64 / f64::from(timescale));
                }
                update.has_new_media = true;
            }
            let is_video = r.kind() == TrackKind::Video;
            let msn = match r.next_msn() {
                Some(n) => n,
                // Audio joins the video's segment in progress so that msns match across renditions.
                None if !is_video => self
                    .video
                    .as_ref()
                    .and_then(|v| v.segments().back().map(|s| s.msn))
                    .unwrap_or(next_msn),
                None => next_msn,
            };
            // Program date time from the stream's wall-clock anchor.
            let anchor = *self.anchor.get_or_insert((now_ms, frame_90k));
            let pdt_ms = anchor.0 + (frame_90k - anchor.1) / 90;
            let r = self.rendition_mut(frame.track).expect("present above");
            r.open_segment(msn, frame.dts, pdt_ms, frame.is_keyframe);
            if is_video || !has_video {
                self.next_msn = self.next_msn.max(msn + 1);
            }
            if is_video {
                if kind != Cut::Open {
                    cut_dts_90k = Some(frame_90k);
                }
            } else {
                while self.audio_cuts.front().is_some_and(|t| *t <= frame_90k) {
                    self.audio_cuts.pop_front();
                }
            }
        }

        let r = self.rendition_mut(frame.track).expect("present above");
        if r.push(frame, part_limit) {
            update.has_new_media = true;
        }

        if let Some(t) = cut_dts_90k
            && self.audio.is_some()
        {
            // Bounded: a stalled audio track must not let the queue grow.
            if self.audio_cuts.len() >= 64 {
                self.audio_cuts.pop_front();
            }
            // The audio rendition's open segment is cut at its first frame at or after t; on the first
            // video segment, audio aligns its msn with video's.
            self.audio_cuts.push_back(t);
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

    fn rendition_mut(&mut self, kind: TrackKind) -> Option<&mut Rendition> {
        match kind {
            TrackKind::Video => self.video.as_mut(),
            TrackKind::Audio => self.audio.as_mut(),
        }
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
