//! The video path to viewers: each frame into its rendition's GOP cache and onto every viewer of
//! that rendition (live, or queued behind a catch-up), written with the timed events due with it.

use std::{sync::Arc, time::Instant};

use str0m::format::Codec;
use str0m::media::{Frequency, MediaTime};

use super::{Engine, Session, SharedStats, StreamClock, events};
use crate::webrtc::{VideoFrame, viewer::Write};

impl Engine {
    pub(super) fn video(&mut self, frame: Arc<VideoFrame>) {
        let key = (frame.stream.clone(), frame.rendition.clone());
        let now = Instant::now();
        let gop = self.gops.entry(key).or_default();
        gop.updated = Some(now);
        let intact = gop.push(&frame);
        let wallclock = StreamClock::wallclock(
            self.clocks.entry(frame.stream.clone()).or_default(),
            frame.pts_90khz,
            now,
        );
        let ids: Vec<u64> = self
            .sessions
            .iter()
            .filter(|(_, s)| s.stream == frame.stream && s.rendition == frame.rendition)
            .map(|(id, _)| *id)
            .collect();
        for id in ids {
            let Some(s) = self.sessions.get_mut(&id) else {
                continue;
            };
            if !intact {
                Self::drop_to_keyframe(&self.stats, s);
            }
            if let Some(w) = s.out.frame(&frame, now) {
                Self::write_video(id, s, &w, wallclock, now, self.events.get(&s.stream));
                self.drive(id);
            }
        }
    }

    pub(super) fn drop_to_keyframe(stats: &SharedStats, s: &mut Session) {
        let before = s.out.dropped;
        s.out.drop_to_keyframe();
        if s.out.dropped > before {
            tracing::debug!(stream = %s.stream, "webrtc viewer dropped to the next keyframe");
            crate::webrtc::lock(stats)
                .entry(s.stream.clone())
                .or_default()
                .dropped_to_keyframe += 1;
        }
    }

    /// Write a video frame to session `id`, after the timed events of `events` due with it (over the
    /// viewer's data channel, when it opened one).
    pub(super) fn write_video(
        id: u64,
        s: &mut Session,
        w: &Write,
        wallclock: Instant,
        now: Instant,
        events: Option<&events::StreamEvents>,
    ) {
        if let (Some(cid), Some(events)) = (s.events.channel, events) {
            for message in s.events.due(events, w.frame.pts_90khz, w.time_90khz) {
                let sent = s
                    .rtc
                    .channel(cid)
                    .map(|mut c| c.write(false, message.as_bytes()));
                if !matches!(sent, Some(Ok(true))) {
                    tracing::debug!(
                        session = id,
                        ?sent,
                        "webrtc event not written to the data channel"
                    );
                }
            }
        }
        let Some((mid, pt)) = s.video else { return };
        let Some(writer) = s.rtc.writer(mid) else {
            return;
        };
        // The payload type whose profile is the stream's (from the SPS in front of a keyframe), else
        // any H.264 one in packetization mode 1 (RFC 6184 §8.1): receivers decode any profile, but
        // the answer should say what is sent.
        let pt = pt.or_else(|| {
            let profile = w
                .frame
                .is_keyframe
                .then(|| sps_profile_idc(&w.frame.data))
                .flatten();
            let h264 = || {
                writer.payload_params().filter(|p| {
                    p.spec().codec == Codec::H264 && p.spec().format.packetization_mode == Some(1)
                })
            };
            h264()
                .find(|p| {
                    p.spec()
                        .format
                        .profile_level_id
                        .is_some_and(|id| Some((id >> 16) as u8) == profile)
                })
                .or_else(|| h264().next())
                .map(|p| p.pt())
        });
        let Some(pt) = pt else { return };
        s.video = Some((mid, Some(pt)));
        let time = MediaTime::new(w.time_90khz, Frequency::NINETY_KHZ);
        let wallclock = if w.is_live { wallclock } else { now };
        if let Err(error) = writer.write(pt, wallclock, time, w.frame.data.clone()) {
            tracing::debug!(session = id, %error, "webrtc video write failed");
        }
    }
}

/// The `profile_idc` of the first SPS (NAL unit type 7) in an Annex B access unit (ITU-T H.264
/// §7.3.2.1.1: the byte after the NAL unit header).
fn sps_profile_idc(annex_b: &[u8]) -> Option<u8> {
    annex_b
        .windows(5)
        .find(|w| w[..3] == [0, 0, 1] && w[3] & 0x1f == 7)
        .map(|w| w[4])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_profile_comes_from_the_sps_in_front_of_a_keyframe() {
        assert_eq!(
            sps_profile_idc(&[0, 0, 0, 1, 0x67, 100, 0, 31, 0, 0, 1, 0x68]),
            Some(100)
        );
        assert_eq!(sps_profile_idc(&[0, 0, 1, 0x65, 0x88]), None);
    }
}
