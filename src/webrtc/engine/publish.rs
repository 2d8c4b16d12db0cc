//! The engine's WHIP side (RFC 9725): a publisher's session, its frames converted
//! ([`crate::webrtc::whip`]) and handed to its publish task, keyframes asked for.

use std::time::{Duration, Instant};

use protocols::IngestEvent;
use str0m::{format::Codec, media::KeyframeRequestKind};
use tokio::sync::mpsc;

use super::{Engine, Session};
use crate::webrtc::{
    WhepError,
    whip::{Received, WhipCodec, WhipIngest},
};

/// A WHIP publisher is asked for a keyframe (PLI) at least this often, so a stream packaged as it
/// arrives can cut segments (browsers' encoders send keyframes only when asked).
pub const PUBLISH_KEYFRAME_INTERVAL: Duration = Duration::from_secs(2);

/// A WHIP session's side.
pub(super) struct Publish {
    ingest: WhipIngest,
    events: mpsc::Sender<IngestEvent>,
    started: Instant,
    /// When a keyframe was last asked for.
    keyframe_asked: Option<Instant>,
    /// Events the publish task could not take (it was behind), counted once logged.
    lost_events: u64,
}

impl Engine {
    pub(super) fn whip(
        &mut self,
        stream: String,
        sdp: &str,
        events: mpsc::Sender<IngestEvent>,
    ) -> Result<(u64, String), WhepError> {
        if self.sessions.len() >= self.limits.sessions {
            return Err(WhepError::Busy("in all"));
        }
        let now = Instant::now();
        let (rtc, answer) = self.answer(sdp, true, now)?;
        let id = self.new_id();
        let publish = Publish {
            ingest: WhipIngest::new(),
            events,
            started: now,
            keyframe_asked: None,
            lost_events: 0,
        };
        self.sessions.insert(
            id,
            Session::new(stream.into(), "".into(), rtc, Some(publish), now),
        );
        self.drive(id);
        Ok((id, answer))
    }

    /// Ask a publisher for a keyframe when its converter wants one (`urgent`) or every
    /// [`PUBLISH_KEYFRAME_INTERVAL`].
    pub(super) fn ask_keyframe(s: &mut Session, now: Instant, urgent: bool) {
        let (Some(p), Some((mid, _))) = (&mut s.publish, s.video) else {
            return;
        };
        if !s.connected {
            return;
        }
        let due = p.keyframe_asked.is_none_or(|t| {
            let since = now.duration_since(t);
            since >= PUBLISH_KEYFRAME_INTERVAL || (urgent && since >= Duration::from_millis(300))
        });
        if !due {
            return;
        }
        if let Some(mut writer) = s.rtc.writer(mid)
            && writer.is_request_keyframe_possible(KeyframeRequestKind::Pli)
            && writer
                .request_keyframe(None, KeyframeRequestKind::Pli)
                .is_ok()
        {
            p.keyframe_asked = Some(now);
        }
    }

    /// A publisher's frame: converted, handed to its publish task.
    pub(super) fn published(id: u64, s: &mut Session, data: &str0m::media::MediaData) {
        let Some(p) = &mut s.publish else { return };
        let codec = match data.params.spec().codec {
            Codec::H264 => WhipCodec::H264,
            Codec::Vp8 => WhipCodec::Vp8,
            Codec::Opus => WhipCodec::Opus,
            other => {
                tracing::debug!(session = id, codec = ?other, "WHIP media in a codec not taken");
                return;
            }
        };
        let received = Received {
            codec,
            rtp_time: data.time.numer(),
            arrival_ms: data
                .network_time
                .saturating_duration_since(p.started)
                .as_millis() as i64,
            contiguous: data.contiguous,
            data: &data.data,
        };
        for event in p.ingest.frame(received) {
            if p.events.try_send(event).is_err() {
                p.lost_events += 1;
                if p.lost_events == 1 {
                    tracing::warn!(session = id, stream = %s.stream, "WHIP publish behind: frames dropped (logged once)");
                }
            }
        }
        let urgent = p.ingest.wants_keyframe();
        if urgent {
            Self::ask_keyframe(s, data.network_time, true);
        }
    }
}

/// Whether an SDP offer's first video m-line lists VP8 before H.264 (RFC 3264 §5.1: in order of
/// preference).
pub(super) fn prefers_vp8(sdp: &str) -> bool {
    let Some(m) = sdp.lines().find(|l| l.starts_with("m=video")) else {
        return false;
    };
    let codec_of = |pt: &str| {
        let prefix = format!("a=rtpmap:{pt} ");
        sdp.lines()
            .find_map(|l| l.strip_prefix(prefix.as_str()))
            .map(|rest| rest.split('/').next().unwrap_or("").to_ascii_uppercase())
    };
    m.split_whitespace()
        .skip(3)
        .filter_map(codec_of)
        .find(|c| c == "VP8" || c == "H264")
        .is_some_and(|c| c == "VP8")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_publishers_codec_preference_is_read_from_its_offer() {
        let offer = |order: &str| {
            format!(
                "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=rtpmap:111 opus/48000/2\r\n\
                 m=video 9 UDP/TLS/RTP/SAVPF {order}\r\na=rtpmap:96 VP8/90000\r\n\
                 a=rtpmap:97 rtx/90000\r\na=rtpmap:102 H264/90000\r\n"
            )
        };
        assert!(prefers_vp8(&offer("96 97 102")));
        assert!(!prefers_vp8(&offer("97 102 96")));
        assert!(!prefers_vp8("v=0\r\n"));
    }
}
