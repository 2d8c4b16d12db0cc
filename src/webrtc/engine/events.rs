//! Timed events for WebRTC viewers (sans-IO): each stream's recent events, and which of them one
//! viewer has been sent.
//!
//! An event goes to a viewer over its data channel just before the video frame it belongs to (the
//! first frame presented at or after the event's time), in the same write, so it arrives with that
//! frame's packets and carries the frame's RTP timestamp (RFC 3550 §5.1; 90 kHz, the value the
//! viewer's `requestVideoFrameCallback` reports as `rtpTimestamp`): the page raises it when that frame
//! is shown. A viewer that joins is sent the events of the frames it is sent, the cached GOP's
//! included; none twice (a replayed GOP sends no event again).

use std::{collections::VecDeque, sync::Arc};

use crate::webrtc::TimedEvent;

/// Events remembered per stream: far more than a GOP's worth at the API's rate limit (10/s).
pub const MAX_EVENTS: usize = 256;
/// A presentation time this far before the previous one is a new timeline (the publisher came back
/// and its timestamps restarted), not reordering: 10 s in 90 kHz ticks.
const RESTART_90KHZ: i64 = 900_000;

/// One stream's recent events, in the order they were stamped.
#[derive(Debug, Default)]
pub struct StreamEvents {
    next_seq: u64,
    /// (sequence number, event), oldest first.
    recent: VecDeque<(u64, Arc<TimedEvent>)>,
}

impl StreamEvents {
    /// Remember an event (the oldest is forgotten beyond [`MAX_EVENTS`]).
    pub fn push(&mut self, event: Arc<TimedEvent>) {
        if self
            .recent
            .back()
            .is_some_and(|(_, last)| event.pts_90khz.saturating_add(RESTART_90KHZ) < last.pts_90khz)
        {
            // A new timeline: the old events' frames are gone.
            self.recent.clear();
        }
        if self.recent.len() >= MAX_EVENTS {
            self.recent.pop_front();
        }
        self.recent.push_back((self.next_seq, event));
        self.next_seq += 1;
    }
}

/// What one viewer has been sent of its stream's events.
#[derive(Debug, Default)]
pub struct ViewerEvents {
    /// The data channel the viewer opened (`None`: no events are sent).
    pub channel: Option<str0m::channel::ChannelId>,
    /// The first event sequence number not yet sent (or passed over).
    next_seq: u64,
    /// The presentation time of the first frame the viewer was sent (on the current timeline), 90 kHz
    /// ticks: events before it belong to frames it never saw.
    first_pts_90khz: Option<i64>,
    /// The presentation time of the latest frame it was sent, 90 kHz ticks.
    last_pts_90khz: Option<i64>,
}

impl ViewerEvents {
    /// The messages to send with a video frame presented at `pts_90khz` (source timeline) at RTP time
    /// `rtp_90khz`: the events due by then that this viewer has not been sent, each as
    /// `{"rtp_timestamp": …, "event": {…}}` (JSON text). Events before the viewer's first frame are
    /// passed over.
    pub fn due(&mut self, stream: &StreamEvents, pts_90khz: i64, rtp_90khz: u64) -> Vec<String> {
        if self
            .last_pts_90khz
            .is_some_and(|last| pts_90khz.saturating_add(RESTART_90KHZ) < last)
        {
            self.first_pts_90khz = None;
        }
        self.last_pts_90khz = Some(pts_90khz);
        let first = *self.first_pts_90khz.get_or_insert(pts_90khz);
        let mut out = Vec::new();
        let from = self.next_seq;
        for (seq, event) in stream.recent.iter().filter(|(s, _)| *s >= from) {
            if event.pts_90khz > pts_90khz {
                break;
            }
            self.next_seq = seq + 1;
            if event.pts_90khz >= first {
                out.push(format!(
                    "{{\"rtp_timestamp\":{},\"event\":{}}}",
                    rtp_90khz as u32, event.json
                ));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(pts_90khz: i64, id: &str) -> Arc<TimedEvent> {
        Arc::new(TimedEvent {
            stream: "live/a".into(),
            pts_90khz,
            json: format!("{{\"id\":\"{id}\"}}").into(),
        })
    }

    #[test]
    fn an_event_goes_with_its_frame_once_and_joins_skip_the_past() {
        let mut s = StreamEvents::default();
        s.push(event(1_000, "before"));
        let mut v = ViewerEvents::default();
        // The viewer's first frame (a keyframe at 3000) is after the first event.
        assert!(v.due(&s, 3_000, 10).is_empty());
        s.push(event(6_000, "gift"));
        assert!(v.due(&s, 5_999, 20).is_empty(), "not before its frame");
        assert_eq!(
            v.due(&s, 6_000, 30),
            vec!["{\"rtp_timestamp\":30,\"event\":{\"id\":\"gift\"}}".to_owned()]
        );
        assert!(v.due(&s, 9_000, 40).is_empty(), "sent once");
        // Two events stamped on the same frame, then one between two frames: in order.
        s.push(event(12_000, "a"));
        s.push(event(12_000, "b"));
        s.push(event(13_000, "c"));
        let sent = v.due(&s, 15_000, 50);
        assert_eq!(sent.len(), 3);
        assert!(sent[0].contains("\"a\"") && sent[2].contains("\"c\""));
        // The RTP timestamp wraps as RTP does.
        s.push(event(16_000, "wrap"));
        assert!(v.due(&s, 16_000, (1 << 32) + 7)[0].starts_with("{\"rtp_timestamp\":7,"));
    }

    #[test]
    fn a_restarted_timeline_starts_the_events_over() {
        let mut s = StreamEvents::default();
        let mut v = ViewerEvents::default();
        s.push(event(5_000_000, "old"));
        assert_eq!(v.due(&s, 5_000_000, 1).len(), 1);
        s.push(event(9_000_000, "never shown"));
        // The publisher came back: its timestamps start again near 0.
        s.push(event(3_000, "new"));
        assert_eq!(s.recent.len(), 1);
        let sent = v.due(&s, 3_000, 2);
        assert_eq!(sent.len(), 1);
        assert!(sent[0].contains("\"new\""));
    }

    #[test]
    fn the_log_is_bounded() {
        let mut s = StreamEvents::default();
        for i in 0..(MAX_EVENTS as i64 + 10) {
            s.push(event(i, "x"));
        }
        assert_eq!(s.recent.len(), MAX_EVENTS);
        let mut v = ViewerEvents::default();
        assert_eq!(
            v.due(&s, 0, 0).len(),
            0,
            "the oldest left are before frame 10"
        );
        assert_eq!(v.due(&s, i64::MAX, 0).len(), MAX_EVENTS);
    }
}
