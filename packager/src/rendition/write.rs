//! Writing a rendition: frames in, parts and segments cut and written as CMAF chunks, the live
//! window pruned.

use bytes::Bytes;
use media::{Frame, TrackInfo, TrackKind};

use crate::cmaf::{self, FragmentSample};

use super::*;

impl Rendition {
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
        let emsgs =
            self.take_event_messages(frames.iter().map(|f| f.pts).max().unwrap_or(i64::MIN));
        let bytes = prefixed(&emsgs, bytes);
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
            .map(|chunk| prefixed(&emsgs, chunk))
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

    /// The `emsg` boxes of the queued events stamped at or before `latest_pts` (ticks), concatenated
    /// in order, taken off the queue.
    fn take_event_messages(&mut self, latest_pts: i64) -> Vec<u8> {
        let ts = self.track.timescale;
        let mut out = Vec::new();
        while let Some(e) = self
            .events
            .front()
            .filter(|e| media::time::rescale(e.pts_90khz, 90_000, ts) <= latest_pts)
        {
            out.extend_from_slice(&e.emsg(ts));
            self.events.pop_front();
            self.events_written += 1;
        }
        out
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
    pub(super) fn prune(&mut self) {
        let complete = self.segments.iter().filter(|s| s.is_complete).count();
        let mut excess = complete.saturating_sub(self.window_segments);
        let edge = self.timeline_end().unwrap_or(0);
        while excess > 0 {
            let Some(old) = self.segments.pop_front() else {
                break;
            };
            excess -= 1;
            if self.dvr_window_ticks.is_some() {
                // Still listed (DVR): from the archive.
                self.archive_ticks += old.duration_ticks();
                self.archive.push_back(super::ArchivedSegment::of(&old));
            } else if let Some(front) = self.segments.front()
                && front.is_discontinuity
            {
                // A discontinuity leaving the playlist: the next segment's discontinuity tag is now
                // counted.
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
        if let Some(window) = self.dvr_window_ticks {
            let live: u64 = self.segments.iter().map(Segment::duration_ticks).sum();
            while self.archive_ticks + live > window {
                let Some(old) = self.archive.pop_front() else {
                    break;
                };
                self.archive_ticks = self.archive_ticks.saturating_sub(old.duration_ticks);
                let front_is_discontinuity = match self.archive.front() {
                    Some(a) => a.is_discontinuity,
                    None => self.segments.front().is_some_and(|s| s.is_discontinuity),
                };
                if front_is_discontinuity {
                    self.discontinuity_sequence += 1;
                }
            }
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
        let oldest_needed = self
            .archive
            .front()
            .map(|a| a.init_id)
            .or(oldest.map(|s| s.init_id))
            .unwrap_or(self.init_id);
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
}

/// `chunk` with `prefix` (event message boxes) before it; `chunk` itself when there is none or the
/// chunk could not be written.
fn prefixed(prefix: &[u8], chunk: Bytes) -> Bytes {
    if prefix.is_empty() || chunk.is_empty() {
        return chunk;
    }
    let mut out = Vec::with_capacity(prefix.len() + chunk.len());
    out.extend_from_slice(prefix);
    out.extend_from_slice(&chunk);
    Bytes::from(out)
}
