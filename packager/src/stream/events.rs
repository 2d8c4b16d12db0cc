//! Timed events on a stream's timeline ([`crate::events`]): stamped on the input timeline of the
//! current publish, moved onto the output timeline once it is known, dated on the program date time
//! clock, handed to the renditions that carry them and kept while the window lists them.

use std::{collections::VecDeque, sync::Arc};

use media::TrackKind;

use super::*;
use crate::events::{
    EventKind, EventPayload, SpliceDirection, SpliceMarker, StampedEvent, TimedMetadata,
};

/// Stamped events kept at most (far more than a live window lists at the API's rate limit).
const MAX_EVENTS: usize = 1024;

/// The stream's events.
#[derive(Debug, Default)]
pub(super) struct EventLog {
    /// Stamped events on the output timeline, in sequence order, while a playlist may list them.
    stamped: VecDeque<Arc<StampedEvent>>,
    /// Events stamped on the input timeline of a publish whose output timeline is not known yet (no
    /// frame of it packaged): (sequence, event, input presentation time in 90 kHz ticks).
    unmapped: Vec<(u32, EventPayload, i64)>,
    /// The sequence number of the next event.
    next_sequence: u32,
    /// Stamped events whose program date time is not known yet.
    undated: usize,
    /// Events stamped since the stream began, by kind.
    counts: std::collections::BTreeMap<EventKind, u64>,
}

impl StreamPackager {
    /// Stamp `event` with the presentation time `input_pts_90khz` (90 kHz ticks on the current
    /// publish's input timeline, the timeline frames are pushed on: the frame at the live edge of
    /// ingest when it arrived). It is carried in every video rendition (the audio rendition when the
    /// stream has no video) from the part holding that time, listed in the media playlists and
    /// counted. Returns its sequence number (its `emsg` id): events keep their order of arrival.
    ///
    /// The caller checks the event ([`TimedMetadata::validate`]) and that its id is not in use
    /// ([`Self::has_event_id`]).
    pub fn add_event(&mut self, event: TimedMetadata, input_pts_90khz: i64) -> u32 {
        self.add_payload(EventPayload::Metadata(event), input_pts_90khz)
    }

    /// Place an SCTE-35 marker at its splice time `input_pts_90khz` (90 kHz ticks on the current
    /// publish's input timeline; the live edge for a splice "now"): listed as an `EXT-X-DATERANGE`
    /// (`SCTE35-OUT`/`-IN`/`-CMD`) in every media playlist and as an `Event` of the Period's SCTE-35
    /// `EventStream` in the MPD, and counted. A splice back in that follows an out with the same id
    /// closes it (same `ID` and `START-DATE`, the break's `DURATION`). Returns its sequence number.
    pub fn add_splice(&mut self, marker: SpliceMarker, input_pts_90khz: i64) -> u32 {
        self.add_payload(EventPayload::Splice(marker), input_pts_90khz)
    }

    /// Start a segment at the splice point `input_pts_90khz` (90 kHz ticks on the current publish's
    /// input timeline) in every rendition: the producer grid is re-anchored there
    /// ([`SegmentClock::add_splice`]); the transcoder must force its keyframes there too. Give only a
    /// point no frame has reached yet. Returns false when there is no producer grid (a stream packaged
    /// as it arrives is cut on its source's keyframes).
    ///
    /// [`SegmentClock::add_splice`]: media::SegmentClock::add_splice
    pub fn add_splice_point(&mut self, input_pts_90khz: i64) -> bool {
        self.clock
            .as_mut()
            .map(|c| c.add_splice(input_pts_90khz))
            .is_some()
    }

    fn add_payload(&mut self, payload: EventPayload, input_pts_90khz: i64) -> u32 {
        let sequence = self.events.next_sequence;
        self.events.next_sequence = sequence.wrapping_add(1);
        *self.events.counts.entry(payload.kind()).or_default() += 1;
        match self.input_offset_90khz {
            Some(offset) => self.stamp_event(sequence, payload, input_pts_90khz + offset),
            None => self
                .events
                .unmapped
                .push((sequence, payload, input_pts_90khz)),
        }
        sequence
    }

    /// True when an event with id `id` is stamped and listed, or waits for its timeline.
    pub fn has_event_id(&self, id: &str) -> bool {
        self.events.stamped.iter().any(|e| e.id() == id)
            || self.events.unmapped.iter().any(|(_, e, _)| e.id() == id)
    }

    /// The stamped events a playlist may list, in sequence order.
    pub fn events(&self) -> impl Iterator<Item = &StampedEvent> {
        self.events.stamped.iter().map(|e| e.as_ref())
    }

    /// Events stamped since the stream began, by kind.
    pub fn event_counts(&self) -> impl Iterator<Item = (EventKind, u64)> + '_ {
        self.events.counts.iter().map(|(k, n)| (*k, *n))
    }

    /// Place an event at `pts_90khz` on the output timeline.
    fn stamp_event(&mut self, sequence: u32, payload: EventPayload, pts_90khz: i64) {
        let date = |anchor: Option<(i64, i64)>, pts: i64| {
            anchor.map(|(ms, at)| ms + (pts - at).div_euclid(90))
        };
        let id3 = match &payload {
            EventPayload::Metadata(m) => Some(crate::events::id3_tag(&m.id, &m.data).into()),
            EventPayload::Splice(_) => None,
        };
        let opened_by = match &payload {
            EventPayload::Splice(m) if m.direction == SpliceDirection::In => self
                .events
                .stamped
                .iter()
                .rev()
                .find(|e| {
                    matches!(&e.payload, EventPayload::Splice(o)
                        if o.id == m.id && o.direction == SpliceDirection::Out)
                })
                .map(|out| (out.pts_90khz, out.program_date_time_ms)),
            _ => None,
        };
        let stamped = Arc::new(StampedEvent {
            sequence,
            payload,
            pts_90khz,
            program_date_time_ms: date(self.anchor, pts_90khz),
            opened_by,
            id3,
        });
        if stamped.program_date_time_ms.is_none()
            || stamped.opened_by.is_some_and(|(_, ms)| ms.is_none())
        {
            self.events.undated += 1;
        }
        if stamped.id3.is_some() {
            let has_video = self.renditions.iter().any(|r| r.kind() == TrackKind::Video);
            for r in &mut self.renditions {
                if r.kind() == TrackKind::Video || !has_video {
                    r.queue_event(stamped.clone());
                }
            }
        }
        if self.events.stamped.len() >= MAX_EVENTS {
            self.events.stamped.pop_front();
        }
        self.events.stamped.push_back(stamped);
    }

    /// Once the current publish's output timeline is known: stamp the events that waited for it.
    pub(super) fn map_waiting_events(&mut self) {
        let Some(offset) = self.input_offset_90khz else {
            return;
        };
        for (sequence, payload, pts) in std::mem::take(&mut self.events.unmapped) {
            self.stamp_event(sequence, payload, pts + offset);
        }
    }

    /// At a discontinuity: events stamped on the ending publish's input timeline that never got an
    /// output time go where the output timeline ends now (the next publish continues from there).
    pub(super) fn place_unmapped_events_at_end(&mut self) {
        if self.events.unmapped.is_empty() {
            return;
        }
        let end = self
            .renditions
            .iter()
            .filter_map(|r| {
                r.timeline_end()
                    .map(|t| media::time::rescale(t, r.timescale(), 90_000))
            })
            .max()
            .unwrap_or(0);
        for (sequence, payload, _) in std::mem::take(&mut self.events.unmapped) {
            self.stamp_event(sequence, payload, end);
        }
    }

    /// Date the events stamped before the wall-clock anchor was known; forget those that ended before
    /// the leader's window starts.
    pub(super) fn tend_events(&mut self) {
        if let Some((ms, at)) = self.anchor.filter(|_| self.events.undated > 0) {
            self.events.undated = 0;
            let date = |pts: i64| ms + (pts - at).div_euclid(90);
            for e in self.events.stamped.iter_mut() {
                let undated_out = e.opened_by.filter(|(_, d)| d.is_none());
                if e.program_date_time_ms.is_none() || undated_out.is_some() {
                    let e = Arc::make_mut(e);
                    e.program_date_time_ms
                        .get_or_insert_with(|| date(e.pts_90khz));
                    if let Some((out_pts, None)) = e.opened_by {
                        e.opened_by = Some((out_pts, Some(date(out_pts))));
                    }
                }
            }
        }
        let Some(leader) = self.leader.map(|l| &self.renditions[l]) else {
            return;
        };
        let Some(first) = leader.segments().front() else {
            return;
        };
        let start_90khz = media::time::rescale(first.earliest_pts, leader.timescale(), 90_000);
        while let Some(e) = self.events.stamped.front() {
            let duration_ms = match &e.payload {
                EventPayload::Metadata(m) => m.duration_ms,
                EventPayload::Splice(m) => m.planned_duration_ms,
            };
            let end = e.pts_90khz.saturating_add(duration_ms.map_or(0, |ms| {
                i64::try_from(ms.saturating_mul(90)).unwrap_or(i64::MAX)
            }));
            if end >= start_90khz {
                break;
            }
            self.events.stamped.pop_front();
        }
    }
}
