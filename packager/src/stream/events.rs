//! Timed events on a stream's timeline ([`crate::events`]): stamped on the input timeline of the
//! current publish, moved onto the output timeline once it is known, dated on the program date time
//! clock, handed to the renditions that carry them and kept while the window lists them.

use std::{collections::VecDeque, sync::Arc};

use media::TrackKind;

use super::*;
use crate::events::{EventKind, StampedEvent, TimedMetadata};

/// Stamped events kept at most (far more than a live window lists at the API's rate limit).
const MAX_EVENTS: usize = 1024;

/// The stream's events.
#[derive(Debug, Default)]
pub(super) struct EventLog {
    /// Stamped events on the output timeline, in sequence order, while a playlist may list them.
    stamped: VecDeque<Arc<StampedEvent>>,
    /// Events stamped on the input timeline of a publish whose output timeline is not known yet (no
    /// frame of it packaged): (sequence, event, input presentation time in 90 kHz ticks).
    unmapped: Vec<(u32, TimedMetadata, i64)>,
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
        let sequence = self.events.next_sequence;
        self.events.next_sequence = sequence.wrapping_add(1);
        *self.events.counts.entry(EventKind::Metadata).or_default() += 1;
        match self.input_offset_90khz {
            Some(offset) => self.stamp_event(sequence, event, input_pts_90khz + offset),
            None => self
                .events
                .unmapped
                .push((sequence, event, input_pts_90khz)),
        }
        sequence
    }

    /// True when an event with id `id` is stamped and listed, or waits for its timeline.
    pub fn has_event_id(&self, id: &str) -> bool {
        self.events.stamped.iter().any(|e| e.event.id == id)
            || self.events.unmapped.iter().any(|(_, e, _)| e.id == id)
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
    fn stamp_event(&mut self, sequence: u32, event: TimedMetadata, pts_90khz: i64) {
        let id3 = crate::events::id3_tag(&event.id, &event.data).into();
        let stamped = Arc::new(StampedEvent {
            sequence,
            event,
            pts_90khz,
            program_date_time_ms: self
                .anchor
                .map(|(ms, pts)| ms + (pts_90khz - pts).div_euclid(90)),
            id3,
        });
        if stamped.program_date_time_ms.is_none() {
            self.events.undated += 1;
        }
        let has_video = self.renditions.iter().any(|r| r.kind() == TrackKind::Video);
        for r in &mut self.renditions {
            if r.kind() == TrackKind::Video || !has_video {
                r.queue_event(stamped.clone());
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
        for (sequence, event, pts) in std::mem::take(&mut self.events.unmapped) {
            self.stamp_event(sequence, event, pts + offset);
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
        for (sequence, event, _) in std::mem::take(&mut self.events.unmapped) {
            self.stamp_event(sequence, event, end);
        }
    }

    /// Date the events stamped before the wall-clock anchor was known; forget those that ended before
    /// the leader's window starts.
    pub(super) fn tend_events(&mut self) {
        if let Some((ms, pts)) = self.anchor.filter(|_| self.events.undated > 0) {
            self.events.undated = 0;
            for e in self
                .events
                .stamped
                .iter_mut()
                .filter(|e| e.program_date_time_ms.is_none())
            {
                Arc::make_mut(e).program_date_time_ms =
                    Some(ms + (e.pts_90khz - pts).div_euclid(90));
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
            let end = e.pts_90khz
                + e.event
                    .duration_ms
                    .map_or(0, |ms| i64::try_from(ms * 90).unwrap_or(i64::MAX));
            if end >= start_90khz {
                break;
            }
            self.events.stamped.pop_front();
        }
    }
}
