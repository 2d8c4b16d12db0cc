//! Declaring and changing a stream's renditions: their tracks (a new track, a new configuration in
//! place, a discontinuity), bandwidths, the key source, the end of the stream; part publication
//! delays.

use media::{TrackInfo, TrackKind};

use super::*;

impl StreamPackager {
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
                r.set_dvr_window(self.config.dvr_window);
                r.set_first_discontinuity_sequence(self.first_discontinuity_sequence);
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
        self.place_unmapped_events_at_end();
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
}
