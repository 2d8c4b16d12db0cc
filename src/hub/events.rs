//! Timed events posted to a live stream ([`packager::events`]): timed metadata and ad breaks
//! (SCTE-35 splice_inserts the origin writes), checked, rate limited per stream, held until the next
//! frame at the live edge of ingest arrives and stamped with its presentation time by the publish
//! session (so the part holding that frame is still open in every rendition). Events posted while the
//! publisher is away wait for the first frame of its return. (SCTE-35 markers a publisher sends are
//! placed at their own splice time by the session.)

use std::{sync::atomic::Ordering, time::Instant};

use packager::events::{EventError, EventPayload, SpliceDirection, SpliceMarker, TimedMetadata};

use super::{Hub, StreamEntry};

/// Events a stream takes in a burst.
pub const BURST_EVENTS: f64 = 20.0;
/// Events per second a stream takes sustained.
pub const EVENTS_PER_SECOND: f64 = 10.0;
/// Events waiting for a frame at most (a stream whose publisher is away for its grace period at the
/// sustained rate stays below).
const MAX_WAITING: usize = 256;

/// The `splice_event_id` of a stream's first ad break asked through the API: a range of its own, so
/// that it does not meet the publisher's ids (encoders count from small numbers).
pub const FIRST_BREAK_ID: u32 = 0x4000_0001;

/// Why a timed metadata event was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum EventRefused {
    /// No such stream, or it has ended.
    #[error("no such live stream")]
    NoStream,
    /// A field the event cannot be carried with.
    #[error("{0}")]
    Invalid(EventError),
    /// The id is used by an event still listed or waiting.
    #[error("an event with id {0:?} is still in the stream's window")]
    IdInUse(String),
    /// Over the stream's rate ([`BURST_EVENTS`], [`EVENTS_PER_SECOND`]), or too many waiting for
    /// the publisher.
    #[error("too many events for this stream: retry in {retry_after_s} s")]
    RateLimited {
        /// When one more event would be taken, whole seconds (at least 1).
        retry_after_s: u64,
    },
}

impl EventRefused {
    /// The reason's label in metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            EventRefused::NoStream => "no_stream",
            EventRefused::Invalid(EventError::TooLarge { .. }) => "too_large",
            EventRefused::Invalid(_) => "invalid",
            EventRefused::IdInUse(_) => "id_in_use",
            EventRefused::RateLimited { .. } => "rate_limited",
        }
    }
}

/// A stream's events not yet stamped, and its rate limit.
#[derive(Debug)]
pub struct EventQueue {
    waiting: Vec<EventPayload>,
    /// The `splice_event_id` of the next ad break asked through the API.
    next_break_id: u32,
    /// Token bucket: (tokens, when last refilled).
    bucket: (f64, Instant),
}

impl Default for EventQueue {
    fn default() -> Self {
        Self {
            waiting: Vec::new(),
            next_break_id: FIRST_BREAK_ID,
            bucket: (BURST_EVENTS, Instant::now()),
        }
    }
}

impl EventQueue {
    /// Take one token at `now`, or say when one will be there.
    fn take_token(&mut self, now: Instant) -> Result<(), EventRefused> {
        let (tokens, at) = self.bucket;
        let tokens = (tokens + now.saturating_duration_since(at).as_secs_f64() * EVENTS_PER_SECOND)
            .min(BURST_EVENTS);
        if tokens < 1.0 {
            self.bucket = (tokens, now);
            let wait_s = (1.0 - tokens) / EVENTS_PER_SECOND;
            return Err(EventRefused::RateLimited {
                retry_after_s: wait_s.ceil().max(1.0) as u64,
            });
        }
        self.bucket = (tokens - 1.0, now);
        Ok(())
    }
}

impl Hub {
    /// Post a timed metadata event to live stream `name` (`live/{name}`): checked, counted against the
    /// stream's rate, and stamped with the next frame its publisher sends (after a reconnect, the
    /// first frame of the new publish).
    ///
    /// Errors: [`EventRefused`]; nothing is kept of a refused event.
    pub fn post_metadata(&self, name: &str, event: TimedMetadata) -> Result<(), EventRefused> {
        let result = self.queue_metadata(name, event);
        if let Err(refused) = &result {
            self.count_event_refusal(refused.reason());
        }
        result
    }

    /// Count a timed metadata post refused for `reason` (a label of [`EventRefused::reason`]), e.g.
    /// a body that is not an event at all.
    pub fn count_event_refusal(&self, reason: &'static str) {
        *self
            .event_refusals
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(reason)
            .or_default() += 1;
    }

    fn queue_metadata(&self, name: &str, event: TimedMetadata) -> Result<(), EventRefused> {
        event.validate().map_err(EventRefused::Invalid)?;
        self.queue(name, EventPayload::Metadata(event)).map(|_| ())
    }

    /// Ask for an ad break on live stream `name` lasting `duration_ms`: an SCTE-35 splice_insert out
    /// of the network (immediate, the break's duration with auto return; SCTE 35 §9.7.3), placed at
    /// the next frame the publisher sends like timed metadata, listed as an `SCTE35-OUT` DATERANGE
    /// and a DASH SCTE-35 Event. Returns its `splice_event_id` (its DATERANGE id is
    /// `splice-{id}`).
    ///
    /// Errors: as [`Self::post_metadata`] (no stream, the rate limit).
    pub fn post_ad_break(&self, name: &str, duration_ms: u64) -> Result<u32, EventRefused> {
        let result = self.queue_break(name, duration_ms);
        if let Err(refused) = &result {
            self.count_event_refusal(refused.reason());
        }
        result
    }

    fn queue_break(&self, name: &str, duration_ms: u64) -> Result<u32, EventRefused> {
        let entry = self.get(name).ok_or(EventRefused::NoStream)?;
        let id = {
            let mut st = entry.lock();
            let id = st.events.next_break_id;
            st.events.next_break_id = id.checked_add(1).unwrap_or(FIRST_BREAK_ID);
            id
        };
        let section =
            protocols::scte35::write_splice_insert(id, true, None, Some(duration_ms * 90));
        let marker = SpliceMarker {
            id: format!("splice-{id}"),
            direction: SpliceDirection::Out,
            section,
            planned_duration_ms: Some(duration_ms),
        };
        self.queue(name, EventPayload::Splice(marker))?;
        Ok(id)
    }

    /// Queue `payload` on stream `name` until its next frame: checks the stream, the id, the rate.
    fn queue(&self, name: &str, payload: EventPayload) -> Result<(), EventRefused> {
        let entry = self.get(name).ok_or(EventRefused::NoStream)?;
        let mut st = entry.lock();
        if st.ended_at.is_some() || st.packager.is_ended() {
            return Err(EventRefused::NoStream);
        }
        let id = payload.id().to_owned();
        if st.packager.has_event_id(&id) || st.events.waiting.iter().any(|e| e.id() == id) {
            return Err(EventRefused::IdInUse(id));
        }
        if st.events.waiting.len() >= MAX_WAITING {
            return Err(EventRefused::RateLimited { retry_after_s: 1 });
        }
        st.events.take_token(Instant::now())?;
        tracing::debug!(stream = %name, %id, kind = payload.kind().as_str(), "timed event queued");
        st.events.waiting.push(payload);
        entry.events_waiting.store(true, Ordering::Release);
        Ok(())
    }
}

impl Hub {
    /// Timed metadata events refused since the start, by reason ([`EventRefused::reason`]).
    pub fn event_refusals(&self) -> Vec<(&'static str, u64)> {
        let counts = self
            .event_refusals
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        counts.iter().map(|(r, n)| (*r, *n)).collect()
    }
}

impl StreamEntry {
    /// Stamp the events waiting (if any) with presentation time `input_pts_90khz` (90 kHz ticks on
    /// the current publish's input timeline): called by the publish session for each frame at the
    /// live edge of ingest, before the frame goes on. Returns the splice points the ad breaks among
    /// them ask for ([`SpliceMarker::splice_points`]), same timeline, for the session's ladder.
    ///
    /// [`SpliceMarker::splice_points`]: packager::events::SpliceMarker::splice_points
    pub(super) fn stamp_waiting_events(&self, input_pts_90khz: i64) -> Vec<i64> {
        if !self.events_waiting.load(Ordering::Acquire) {
            return Vec::new();
        }
        let mut st = self.lock();
        self.events_waiting.store(false, Ordering::Release);
        let mut points = Vec::new();
        for payload in std::mem::take(&mut st.events.waiting) {
            self.send_to_webrtc(&payload, input_pts_90khz);
            let sequence = match payload {
                EventPayload::Metadata(m) => st.packager.add_event(m, input_pts_90khz),
                EventPayload::Splice(m) => {
                    points.extend(m.splice_points(input_pts_90khz));
                    st.packager.add_splice(m, input_pts_90khz)
                }
            };
            tracing::debug!(stream = %self.name, sequence, pts_90khz = input_pts_90khz, "timed metadata stamped");
        }
        points
    }

    /// Hand a stamped event (at `input_pts_90khz`, the timeline of the frames the WebRTC viewers are
    /// sent) to the stream's WebRTC viewers, when WebRTC is on: see [`crate::webrtc::TimedEvent`].
    pub(super) fn send_to_webrtc(&self, payload: &EventPayload, input_pts_90khz: i64) {
        use base64::Engine as _;
        let Some(webrtc) = &self.webrtc else {
            return;
        };
        let json = match payload {
            EventPayload::Metadata(m) => serde_json::json!({
                "kind": "metadata",
                "id": m.id,
                "class": m.class,
                "data": m.data,
                "duration_ms": m.duration_ms,
                "pts_90khz": input_pts_90khz,
            }),
            EventPayload::Splice(m) => serde_json::json!({
                "kind": "scte35",
                "id": m.id,
                "direction": match m.direction {
                    SpliceDirection::Out => "out",
                    SpliceDirection::In => "in",
                    SpliceDirection::Cmd => "cmd",
                },
                "section": base64::engine::general_purpose::STANDARD.encode(&m.section),
                "planned_duration_ms": m.planned_duration_ms,
                "pts_90khz": input_pts_90khz,
            }),
        };
        webrtc.event(crate::webrtc::TimedEvent {
            stream: self.name.as_str().into(),
            pts_90khz: input_pts_90khz,
            json: json.to_string().into(),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn the_bucket_takes_a_burst_then_the_sustained_rate() {
        let mut q = EventQueue::default();
        let t0 = q.bucket.1;
        for _ in 0..BURST_EVENTS as usize {
            q.take_token(t0).unwrap();
        }
        assert_eq!(
            q.take_token(t0),
            Err(EventRefused::RateLimited { retry_after_s: 1 })
        );
        // 100 ms later: one more at 10 per second.
        q.take_token(t0 + Duration::from_millis(100)).unwrap();
        assert!(q.take_token(t0 + Duration::from_millis(110)).is_err());
        // A quiet minute refills the burst, no more.
        let later = t0 + Duration::from_secs(60);
        for _ in 0..BURST_EVENTS as usize {
            q.take_token(later).unwrap();
        }
        assert!(q.take_token(later).is_err());
    }
}
