//! WHIP ingest (RFC 9725), sans-IO: a WebRTC publisher's depacketised frames (str0m's `MediaData`)
//! turned into the [`IngestEvent`]s every publish gives the hub (tracks, then frames).
//!
//! - H.264 (RFC 6184): the access unit arrives in Annex B; SPS and PPS (in front of each IDR, as
//!   browsers send them) make the track, announced again when they change; frames are re-framed
//!   with 4-byte lengths (ISO/IEC 14496-15 §5.3), SPS, PPS and access unit delimiters left out.
//! - VP8 (RFC 7741): a decodable track (the ladder decodes it), sized from its keyframes.
//! - Opus (RFC 7587): a decodable track, 48 kHz stereo with an OpusHead (RFC 7845 §5.1); the ladder
//!   transcodes it to AAC for HLS and DASH.
//!
//! Timestamps: each track's first frame is placed at its arrival (ms on the session's clock); from
//! then on its RTP time alone moves it (90 kHz video, 48 kHz Opus), so network jitter never reaches
//! the media timeline. Audio and video line up to within the difference of their first frames'
//! delays (the video encoder's latency, tens of ms); sender reports are not used.
//!
//! A gap in the RTP sequence (a frame lost after retransmission gave up) makes the video wait for the
//! next keyframe, and the caller asks the publisher for one ([`WhipIngest::wants_keyframe`]).

use bytes::Bytes;
use media::{
    AudioFormat, CodecConfig, DecodableCodec, DecodableConfig, Frame, TrackInfo, TrackKind,
    VideoParams, avc::AvcConfig,
};
use protocols::IngestEvent;

/// A publisher's codec.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WhipCodec {
    /// H.264, RFC 6184.
    H264,
    /// VP8, RFC 7741.
    Vp8,
    /// Opus, RFC 7587.
    Opus,
}

/// One depacketised frame.
#[derive(Debug, Clone, Copy)]
pub struct Received<'a> {
    /// Its codec.
    pub codec: WhipCodec,
    /// RTP time (extended: it does not wrap), in the codec's clock (90 kHz video, 48 kHz Opus).
    pub rtp_time: u64,
    /// When its first packet arrived, ms on the session's clock.
    pub arrival_ms: i64,
    /// Whether it follows the previous frame of its track with no packet missing.
    pub contiguous: bool,
    /// The frame: an Annex B access unit (H.264), a VP8 frame, an Opus packet.
    pub data: &'a [u8],
}

#[derive(Debug, Clone, Copy)]
struct Clock {
    base_rtp: u64,
    base_pts: i64,
}

impl Clock {
    fn pts(this: &mut Option<Self>, rtp_time: u64, arrival_ms: i64, rate: i64) -> i64 {
        let clock = this.get_or_insert(Self {
            base_rtp: rtp_time,
            base_pts: arrival_ms * rate / 1000,
        });
        clock.base_pts + (rtp_time as i64 - clock.base_rtp as i64)
    }
}

/// One WHIP publish's converter.
#[derive(Debug, Default)]
pub struct WhipIngest {
    video_track: Option<TrackInfo>,
    audio_track: Option<TrackInfo>,
    video_clock: Option<Clock>,
    audio_clock: Option<Clock>,
    /// Video frames are dropped until the next keyframe (start, loss).
    needs_keyframe: bool,
    keyframe_wanted: bool,
    /// Frames dropped (waiting for a keyframe, malformed).
    pub dropped_frames: u64,
}

const VIDEO_RATE: i64 = 90_000;
const OPUS_RATE: i64 = 48_000;

impl WhipIngest {
    /// A converter for a new publish.
    pub fn new() -> Self {
        Self {
            needs_keyframe: true,
            ..Self::default()
        }
    }

    /// Whether the publisher should be asked for a keyframe (PLI) now; true once per need.
    pub fn wants_keyframe(&mut self) -> bool {
        std::mem::take(&mut self.keyframe_wanted)
    }

    /// The events for one received frame, in order.
    pub fn frame(&mut self, r: Received<'_>) -> Vec<IngestEvent> {
        match r.codec {
            WhipCodec::H264 => self.h264(r),
            WhipCodec::Vp8 => self.vp8(r),
            WhipCodec::Opus => self.opus(r),
        }
    }

    fn video_gate(&mut self, r: &Received<'_>, is_keyframe: bool) -> bool {
        if !r.contiguous && !is_keyframe {
            self.needs_keyframe = true;
        }
        if self.needs_keyframe && !is_keyframe {
            self.dropped_frames += 1;
            self.keyframe_wanted = true;
            return false;
        }
        self.needs_keyframe = false;
        true
    }

    fn video_frame(&mut self, r: &Received<'_>, is_keyframe: bool, data: Bytes) -> IngestEvent {
        let pts = Clock::pts(&mut self.video_clock, r.rtp_time, r.arrival_ms, VIDEO_RATE);
        IngestEvent::Frame(Frame {
            track: TrackKind::Video,
            pts,
            // WebRTC senders do not reorder (no B-frames).
            dts: pts,
            is_keyframe,
            data,
        })
    }

    fn h264(&mut self, r: Received<'_>) -> Vec<IngestEvent> {
        let (mut sps, mut pps) = (Vec::new(), Vec::new());
        let mut is_keyframe = false;
        let mut body = Vec::with_capacity(r.data.len() + 16);
        for nal in media::annex_b::nal_units(r.data) {
            match nal[0] & 0x1f {
                7 => sps.push(Bytes::copy_from_slice(nal)),
                8 => pps.push(Bytes::copy_from_slice(nal)),
                9 => {}
                t => {
                    is_keyframe |= t == 5;
                    body.extend_from_slice(&(nal.len() as u32).to_be_bytes());
                    body.extend_from_slice(nal);
                }
            }
        }
        let mut events = Vec::new();
        if !sps.is_empty() && !pps.is_empty() {
            match AvcConfig::from_parameter_sets(&sps, &pps) {
                Ok(config) => {
                    let track = TrackInfo::new(CodecConfig::Avc(config));
                    if self.video_track.as_ref() != Some(&track) {
                        self.video_track = Some(track.clone());
                        events.push(IngestEvent::Track(track));
                    }
                }
                Err(error) => {
                    tracing::debug!(%error, "WHIP H.264 parameter sets not usable");
                }
            }
        }
        if self.video_track.is_none() || body.is_empty() {
            self.dropped_frames += 1;
            self.keyframe_wanted = true;
            return events;
        }
        if self.video_gate(&r, is_keyframe) {
            events.push(self.video_frame(&r, is_keyframe, body.into()));
        }
        events
    }

    fn vp8(&mut self, r: Received<'_>) -> Vec<IngestEvent> {
        let mut events = Vec::new();
        let is_keyframe = r.data.first().is_some_and(|b| b & 1 == 0);
        if is_keyframe && let Ok((width, height)) = media::picture_size::vp8_size(r.data) {
            let params = VideoParams {
                width,
                height,
                frame_rate: None,
            };
            let track = TrackInfo::new(CodecConfig::Decodable(DecodableConfig::video(
                DecodableCodec::Vp8,
                Bytes::new(),
                Some(params),
            )));
            if self.video_track.as_ref() != Some(&track) {
                self.video_track = Some(track.clone());
                events.push(IngestEvent::Track(track));
            }
        }
        if self.video_track.is_none() {
            self.dropped_frames += 1;
            self.keyframe_wanted = true;
            return events;
        }
        if self.video_gate(&r, is_keyframe) {
            events.push(self.video_frame(&r, is_keyframe, Bytes::copy_from_slice(r.data)));
        }
        events
    }

    fn opus(&mut self, r: Received<'_>) -> Vec<IngestEvent> {
        let mut events = Vec::new();
        if self.audio_track.is_none() {
            let head = media::decodable::opus_head(2).unwrap_or_default();
            let track = TrackInfo::new(CodecConfig::Decodable(DecodableConfig::audio(
                DecodableCodec::Opus,
                head,
                AudioFormat {
                    sample_rate_hz: 48_000,
                    channels: 2,
                },
            )));
            self.audio_track = Some(track.clone());
            events.push(IngestEvent::Track(track));
        }
        if r.data.is_empty() {
            return events;
        }
        let pts = Clock::pts(&mut self.audio_clock, r.rtp_time, r.arrival_ms, OPUS_RATE);
        events.push(IngestEvent::Frame(Frame {
            track: TrackKind::Audio,
            pts,
            dts: pts,
            is_keyframe: true,
            data: Bytes::copy_from_slice(r.data),
        }));
        events
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPS: &[u8] = &[
        0x67, 0x42, 0xc0, 0x1e, 0xd9, 0x00, 0xa0, 0x2f, 0xf9, 0x70, 0x11, 0x00, 0x00, 0x03, 0x00,
        0x01, 0x00, 0x00, 0x03, 0x00, 0x32, 0x0f, 0x16, 0x2e, 0x48,
    ];
    const PPS: &[u8] = &[0x68, 0xcb, 0x83, 0xcb, 0x20];

    fn annex_b(nals: &[&[u8]]) -> Vec<u8> {
        nals.iter()
            .flat_map(|n| [&[0u8, 0, 0, 1][..], n].concat())
            .collect()
    }

    fn received(codec: WhipCodec, rtp_time: u64, arrival_ms: i64, data: &[u8]) -> Received<'_> {
        Received {
            codec,
            rtp_time,
            arrival_ms,
            contiguous: true,
            data,
        }
    }

    #[test]
    fn h264_becomes_a_track_and_length_prefixed_frames_on_the_arrival_timeline() {
        let mut w = WhipIngest::new();
        // A P-frame before any keyframe: dropped, a keyframe asked for.
        let p = annex_b(&[&[0x41, 0x9a]]);
        assert!(w.frame(received(WhipCodec::H264, 1000, 5, &p)).is_empty());
        assert!(w.wants_keyframe());
        assert!(!w.wants_keyframe(), "once per need");
        let idr = annex_b(&[&[0x09, 0xf0], SPS, PPS, &[0x65, 0x88, 0x84]]);
        let events = w.frame(received(WhipCodec::H264, 9000, 100, &idr));
        let [IngestEvent::Track(track), IngestEvent::Frame(frame)] = &events[..] else {
            panic!("{events:?}")
        };
        assert!(matches!(track.config, CodecConfig::Avc(_)));
        assert!(frame.is_keyframe);
        assert_eq!(frame.pts, 9000, "100 ms at 90 kHz");
        assert_eq!(&frame.data[..], &[0, 0, 0, 3, 0x65, 0x88, 0x84]);
        // The next frame: 3000 ticks later by RTP time, whenever it arrives; no new track.
        let events = w.frame(received(WhipCodec::H264, 12_000, 180, &p));
        let [IngestEvent::Frame(next)] = &events[..] else {
            panic!("{events:?}")
        };
        assert_eq!((next.pts, next.is_keyframe), (12_000, false));
        // A frame after a gap waits for the next keyframe.
        let mut gap = received(WhipCodec::H264, 18_000, 250, &p);
        gap.contiguous = false;
        assert!(w.frame(gap).is_empty());
        assert!(w.wants_keyframe());
        assert_eq!(w.dropped_frames, 2);
    }

    #[test]
    fn opus_is_a_48_khz_stereo_track_with_an_opus_head() {
        let mut w = WhipIngest::new();
        let events = w.frame(received(WhipCodec::Opus, 480_000, 40, &[0xfc, 1, 2]));
        let [IngestEvent::Track(track), IngestEvent::Frame(frame)] = &events[..] else {
            panic!("{events:?}")
        };
        let CodecConfig::Decodable(c) = &track.config else {
            panic!("{track:?}")
        };
        assert_eq!(c.codec, DecodableCodec::Opus);
        assert_eq!(&c.extradata[..8], b"OpusHead");
        assert_eq!(track.timescale, 48_000);
        assert_eq!(frame.pts, 40 * 48);
        let events = w.frame(received(WhipCodec::Opus, 480_960, 90, &[0xfc]));
        let [IngestEvent::Frame(next)] = &events[..] else {
            panic!("{events:?}")
        };
        assert_eq!(next.pts, 40 * 48 + 960);
    }

    #[test]
    fn vp8_keyframes_size_the_track() {
        let mut w = WhipIngest::new();
        // Frame tag (keyframe, show_frame), start code, 640x480.
        let key = [
            0x50, 0x2a, 0x00, 0x9d, 0x01, 0x2a, 0x80, 0x02, 0xe0, 0x01, 0, 0,
        ];
        let events = w.frame(received(WhipCodec::Vp8, 0, 0, &key));
        let [IngestEvent::Track(track), IngestEvent::Frame(frame)] = &events[..] else {
            panic!("{events:?}")
        };
        let CodecConfig::Decodable(c) = &track.config else {
            panic!("{track:?}")
        };
        assert_eq!(c.codec, DecodableCodec::Vp8);
        assert_eq!(c.video.map(|v| (v.width, v.height)), Some((640, 480)));
        assert!(frame.is_keyframe);
    }
}
