//! Packaging frames: each frame into its rendition, cut on the stream's segment grid (the leader's
//! keyframes, or the transcoder's clock), parts announced as they complete; the advertised part target.

use media::{Frame, TrackKind, time::rescale};

use super::*;

impl StreamPackager {
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
                self.map_waiting_events();
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
        if cut.is_some() {
            self.tend_events();
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
}
