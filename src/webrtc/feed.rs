//! What one stream offers WebRTC viewers (sans-IO; held in the hub's stream state, fed with the
//! frames the packager is given): which video renditions a browser's WebRTC decoder takes, and why not
//! the others; each rendition's packaged frames (length-prefixed H.264, ISO/IEC 14496-15 §5.3) turned
//! into the engine's [`VideoFrame`]s (Annex B, ITU-T H.264 Annex B, SPS and PPS before each keyframe).
//!
//! A rendition fits when it is H.264 and no frame has gone back in presentation time (B-frames, which
//! WebRTC receivers do not reorder). The ladder's encoded H.264 rungs always fit (x264 `zerolatency`,
//! no B-frames, keyframes on the segment grid); a `copy` rung or a stream packaged as it arrives fits
//! when its source does.

use std::sync::Arc;

use media::{CodecConfig, Frame, TrackInfo, TrackKind, time::rescale};

use super::VideoFrame;

/// Why a WHEP request for a stream's rendition cannot be served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NoRendition {
    /// The stream's video track is not known yet.
    NotYet,
    /// No rendition of that name.
    Unknown(String),
    /// The rendition (or, without a choice, every rendition) does not fit: why.
    Unfit(String),
}

#[derive(Debug)]
struct RenditionFeed {
    name: Arc<str>,
    fit: Result<(), String>,
    /// SPS and PPS (NAL units without start codes).
    parameter_sets: Vec<bytes::Bytes>,
    timescale: u32,
    last_pts: Option<i64>,
    seq: u64,
}

/// One stream's WebRTC feed.
#[derive(Debug)]
pub struct WebRtcFeed {
    stream: Arc<str>,
    renditions: Vec<RenditionFeed>,
}

impl WebRtcFeed {
    /// The feed of `stream` (`live/{name}`), with no rendition yet.
    pub fn new(stream: &str) -> Self {
        Self {
            stream: stream.into(),
            renditions: Vec::new(),
        }
    }

    /// Forget every rendition (a new publish starts).
    pub fn clear(&mut self) {
        self.renditions.clear();
    }

    /// A video rendition's track is (re)set: it fits when it is H.264. Audio tracks are ignored.
    pub fn track(&mut self, rendition: &str, track: &TrackInfo) {
        if track.kind() != TrackKind::Video {
            return;
        }
        let (fit, parameter_sets) = match &track.config {
            CodecConfig::Avc(c) => (Ok(()), c.sps.iter().chain(c.pps.iter()).cloned().collect()),
            other => (
                Err(format!(
                    "rendition {rendition} is {}: WebRTC viewers are served H.264",
                    other.rfc6381()
                )),
                Vec::new(),
            ),
        };
        let seq = self.find(rendition).map_or(0, |r| r.seq);
        self.renditions.retain(|r| &*r.name != rendition);
        self.renditions.push(RenditionFeed {
            name: rendition.into(),
            fit,
            parameter_sets,
            timescale: track.timescale.max(1),
            last_pts: None,
            seq,
        });
    }

    fn find(&self, rendition: &str) -> Option<&RenditionFeed> {
        self.renditions.iter().find(|r| &*r.name == rendition)
    }

    /// A packaged frame of `rendition`: the engine's frame when the rendition fits. A frame presented
    /// before the one before it marks the rendition unfit (B-frames) from then on.
    pub fn frame(&mut self, rendition: &str, frame: &Frame) -> Option<VideoFrame> {
        if frame.track != TrackKind::Video {
            return None;
        }
        let stream = self.stream.clone();
        let r = self.renditions.iter_mut().find(|r| &*r.name == rendition)?;
        r.fit.as_ref().ok()?;
        if r.last_pts.is_some_and(|last| frame.pts < last) {
            tracing::info!(%stream, rendition, "B-frames seen: the rendition is not sent to WebRTC viewers");
            r.fit = Err(format!(
                "rendition {rendition} has B-frames, which browsers' WebRTC decoders do not take: \
                 publish without them (x264 `-bf 0` or `-tune zerolatency`) or transcode it"
            ));
            return None;
        }
        r.last_pts = Some(frame.pts);
        let prefix: &[bytes::Bytes] = if frame.is_keyframe {
            &r.parameter_sets
        } else {
            &[]
        };
        match media::annex_b::from_length_prefixed(&frame.data, prefix) {
            Ok(data) => {
                r.seq += 1;
                Some(VideoFrame {
                    stream,
                    rendition: r.name.clone(),
                    seq: r.seq,
                    pts_90khz: rescale(frame.pts, r.timescale, 90_000),
                    is_keyframe: frame.is_keyframe,
                    data: data.into(),
                })
            }
            Err(error) => {
                tracing::debug!(%stream, rendition, %error, "frame not sent to WebRTC viewers");
                None
            }
        }
    }

    /// Every video rendition, in the order their tracks came, with why it does not fit.
    pub fn renditions(&self) -> impl Iterator<Item = (&str, Result<(), &str>)> {
        self.renditions
            .iter()
            .map(|r| (&*r.name, r.fit.as_ref().map(|_| ()).map_err(String::as_str)))
    }

    /// The rendition for a WHEP request: `requested`, or else `source` when it fits, or else the first
    /// that fits.
    ///
    /// Errors: [`NoRendition`].
    pub fn choose(&self, requested: Option<&str>) -> Result<Arc<str>, NoRendition> {
        if self.renditions.is_empty() {
            return Err(NoRendition::NotYet);
        }
        if let Some(name) = requested {
            let r = self
                .find(name)
                .ok_or_else(|| NoRendition::Unknown(name.to_owned()))?;
            return match &r.fit {
                Ok(()) => Ok(r.name.clone()),
                Err(why) => Err(NoRendition::Unfit(why.clone())),
            };
        }
        // The source as it arrives (a passthrough stream, or the ladder's copy rung) when it fits:
        // no transcoding delay, the publisher's quality; else the first rung that fits.
        let source = self
            .renditions
            .iter()
            .find(|r| &*r.name == packager::stream::SOURCE_RENDITION && r.fit.is_ok());
        if let Some(r) = source.or_else(|| self.renditions.iter().find(|r| r.fit.is_ok())) {
            return Ok(r.name.clone());
        }
        let why: Vec<&str> = self
            .renditions
            .iter()
            .filter_map(|r| r.fit.as_ref().err().map(String::as_str))
            .collect();
        Err(NoRendition::Unfit(why.join("; ")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn avc() -> TrackInfo {
        // Baseline 3.0, 640x360 (an x264 SPS) and a PPS.
        let sps = Bytes::from_static(&[
            0x67, 0x42, 0xc0, 0x1e, 0xd9, 0x00, 0xa0, 0x2f, 0xf9, 0x70, 0x11, 0x00, 0x00, 0x03,
            0x00, 0x01, 0x00, 0x00, 0x03, 0x00, 0x32, 0x0f, 0x16, 0x2e, 0x48,
        ]);
        let pps = Bytes::from_static(&[0x68, 0xcb, 0x83, 0xcb, 0x20]);
        TrackInfo::new(CodecConfig::Avc(
            media::avc::AvcConfig::from_parameter_sets(&[sps], &[pps]).expect("valid SPS"),
        ))
    }

    fn frame(pts: i64, is_keyframe: bool) -> Frame {
        Frame {
            track: TrackKind::Video,
            pts,
            dts: pts,
            is_keyframe,
            data: Bytes::from_static(&[0, 0, 0, 2, 0x65, 0x88]),
        }
    }

    #[test]
    fn h264_fits_until_a_frame_goes_back_in_time() {
        let mut feed = WebRtcFeed::new("live/a");
        assert_eq!(feed.choose(None), Err(NoRendition::NotYet));
        feed.track("source", &avc());
        let key = feed.frame("source", &frame(3000, true)).expect("sent");
        assert_eq!((key.seq, key.pts_90khz), (1, 3000));
        // SPS, PPS, then the slice, each behind a start code.
        assert_eq!(&key.data[..5], &[0, 0, 0, 1, 0x67]);
        assert!(key.data.ends_with(&[0, 0, 0, 1, 0x65, 0x88]));
        let next = feed.frame("source", &frame(6000, false)).expect("sent");
        assert_eq!(
            next.data.len(),
            6,
            "no parameter sets before a non-keyframe"
        );
        assert_eq!(feed.choose(Some("source")).as_deref(), Ok("source"));
        assert!(feed.frame("source", &frame(4500, false)).is_none());
        let Err(NoRendition::Unfit(why)) = feed.choose(None) else {
            panic!("unfit")
        };
        assert!(why.contains("B-frames"), "{why}");
        assert!(feed.frame("source", &frame(9000, false)).is_none());
    }

    #[test]
    fn the_first_fit_rendition_is_chosen_unless_one_is_asked_for() {
        let mut feed = WebRtcFeed::new("live/a");
        let vp9 = TrackInfo {
            config: CodecConfig::Decodable(media::DecodableConfig {
                codec: media::DecodableCodec::Vp9,
                extradata: Bytes::new(),
                audio: None,
                video: None,
            }),
            ..avc()
        };
        feed.track("source", &vp9);
        feed.track("720p", &avc());
        feed.track("360p", &avc());
        assert_eq!(feed.choose(None).as_deref(), Ok("720p"));
        // A source that fits comes first, whatever the order.
        let mut h264 = WebRtcFeed::new("live/b");
        h264.track("360p", &avc());
        h264.track("source", &avc());
        assert_eq!(h264.choose(None).as_deref(), Ok("source"));
        assert_eq!(feed.choose(Some("360p")).as_deref(), Ok("360p"));
        assert_eq!(
            feed.choose(Some("1080p")),
            Err(NoRendition::Unknown("1080p".into()))
        );
        assert!(matches!(
            feed.choose(Some("source")),
            Err(NoRendition::Unfit(_))
        ));
        // Sequence numbers go on across a new track of the same rendition.
        feed.frame("720p", &frame(0, true));
        feed.track("720p", &avc());
        assert_eq!(feed.frame("720p", &frame(10, true)).map(|f| f.seq), Some(2));
    }
}
