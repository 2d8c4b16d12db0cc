//! Which source tracks of a publish Estuary can use, decided when each track is announced.
//!
//! Place in the data flow: the hub's publish session asks the [`TrackGate`] about every
//! [`IngestEvent::Track`](crate::ingest::IngestEvent::Track) and
//! [`IngestEvent::Unusable`](crate::ingest::IngestEvent::Unusable) before handing a track to the packager
//! or the ladder, and about every frame's track kind before handing the frame on.
//!
//! The rules:
//! - H.264, HEVC and AAC are always used: packaged as they arrive, or transcoded.
//! - A codec that must be decoded ([`media::CodecConfig::Decodable`]: MPEG-2, MP3, AC-3 …) is used only
//!   by a transcoded stream, and only if this FFmpeg has a decoder for it.
//! - A video track that cannot be used refuses the publish ([`Verdict::Refuse`]): a stream without its
//!   video is not what the publisher meant to send.
//! - An audio track that cannot be used is reported ([`Verdict::Report`], once per codec) and its frames
//!   are dropped: the stream goes on with its video.
//!
//! Pure: no I/O, no clock; the decoder check is passed in.

use media::{TrackInfo, TrackKind};

use crate::ingest::{PublishRefused, UnusableTrack};

/// What to do with an announced track.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Use it: hand the track and its frames on.
    Use,
    /// Drop its frames and report it (log, API, metrics): a track newly found unusable.
    Report(UnusableTrack),
    /// Drop its frames; already reported.
    Ignore,
    /// Refuse the publish with this reason.
    Refuse(PublishRefused),
}

/// Whether this FFmpeg decodes a track (`Err` says why not), e.g. [`transcoder::check_decoder`].
pub type DecoderCheck = fn(&TrackInfo) -> Result<(), String>;

/// Per-kind state of one publish's tracks. See the module docs for the rules.
#[derive(Debug)]
pub struct TrackGate {
    is_transcoded: bool,
    /// The stream was to be transcoded but its transcoder could not start.
    has_transcoder_failed: bool,
    check_decoder: DecoderCheck,
    /// Per kind (video, audio): `None` = nothing announced yet or usable; `Some` = unusable, as reported.
    unusable: [Option<UnusableTrack>; 2],
    /// The latest announced track of each kind (for [`TrackGate::stop_transcoding`]).
    tracks: [Option<TrackInfo>; 2],
}

fn slot(kind: TrackKind) -> usize {
    match kind {
        TrackKind::Video => 0,
        TrackKind::Audio => 1,
    }
}

impl TrackGate {
    /// A gate for a publish that is transcoded (`is_transcoded`: it has a ladder) or packaged as it arrives.
    pub fn new(is_transcoded: bool, check_decoder: DecoderCheck) -> Self {
        Self {
            is_transcoded,
            has_transcoder_failed: false,
            check_decoder,
            unusable: [None, None],
            tracks: [None, None],
        }
    }

    /// Whether frames of `kind` go on (false while that kind's track is unusable).
    pub fn admits(&self, kind: TrackKind) -> bool {
        self.unusable[slot(kind)].is_none()
    }

    /// The tracks found unusable and not replaced by a usable one since.
    pub fn unusable_tracks(&self) -> impl Iterator<Item = &UnusableTrack> {
        self.unusable.iter().flatten()
    }

    /// A track was announced.
    pub fn track(&mut self, track: &TrackInfo) -> Verdict {
        let kind = track.kind();
        self.tracks[slot(kind)] = Some(track.clone());
        let problem = if track.config.is_packageable() {
            None
        } else if !self.is_transcoded {
            let why = if self.has_transcoder_failed {
                "the stream's transcoder could not start"
            } else {
                "this stream is not transcoded"
            };
            Some(match kind {
                TrackKind::Video => format!(
                    "it cannot be packaged as it arrives (only H.264 and HEVC can) and {why}"
                ),
                TrackKind::Audio => format!("only AAC audio is packaged as it arrives and {why}"),
            })
        } else {
            (self.check_decoder)(track).err()
        };
        match problem {
            None => {
                self.unusable[slot(kind)] = None;
                Verdict::Use
            }
            Some(reason) => self.found_unusable(UnusableTrack {
                kind,
                codec: track.config.name().to_owned(),
                reason,
            }),
        }
    }

    /// Ingest reported a track in a codec it cannot parse.
    pub fn unusable(&mut self, track: UnusableTrack) -> Verdict {
        self.tracks[slot(track.kind)] = None;
        self.found_unusable(track)
    }

    /// The transcoder could not start: the stream is packaged as it arrives from now on. Returns the
    /// verdicts on the tracks announced so far under that rule (the usable ones are to be packaged).
    pub fn stop_transcoding(&mut self) -> Vec<(TrackInfo, Verdict)> {
        self.is_transcoded = false;
        self.has_transcoder_failed = true;
        let tracks: Vec<TrackInfo> = self.tracks.iter().flatten().cloned().collect();
        tracks
            .into_iter()
            .map(|t| {
                let verdict = self.track(&t);
                (t, verdict)
            })
            .collect()
    }

    fn found_unusable(&mut self, track: UnusableTrack) -> Verdict {
        if track.kind == TrackKind::Video {
            self.unusable[0] = Some(track.clone());
            return Verdict::Refuse(PublishRefused::UnsupportedCodec(track.to_string()));
        }
        let entry = &mut self.unusable[slot(track.kind)];
        if entry.as_ref() == Some(&track) {
            return Verdict::Ignore;
        }
        *entry = Some(track.clone());
        Verdict::Report(track)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use media::{AudioFormat, CodecConfig, DecodableCodec, DecodableConfig, VideoParams};

    fn mp3() -> TrackInfo {
        TrackInfo::new(CodecConfig::Decodable(DecodableConfig::audio(
            DecodableCodec::Mp3,
            Bytes::new(),
            AudioFormat {
                sample_rate_hz: 44_100,
                channels: 2,
            },
        )))
    }

    fn mpeg2() -> TrackInfo {
        TrackInfo::new(CodecConfig::Decodable(DecodableConfig::video(
            DecodableCodec::Mpeg2Video,
            Bytes::new(),
            Some(VideoParams {
                width: 720,
                height: 405,
                frame_rate: Some((25, 1)),
            }),
        )))
    }

    fn aac() -> TrackInfo {
        TrackInfo::from_audio_specific_config(Bytes::from_static(&[0x11, 0x90])).unwrap()
    }

    fn decodes(_: &TrackInfo) -> Result<(), String> {
        Ok(())
    }

    fn no_decoder(t: &TrackInfo) -> Result<(), String> {
        Err(format!("this FFmpeg has no {} decoder", t.config.name()))
    }

    #[test]
    fn gate_transcoded_stream_uses_decodable_tracks() {
        let mut gate = TrackGate::new(true, decodes);
        assert_eq!(gate.track(&mpeg2()), Verdict::Use);
        assert_eq!(gate.track(&mp3()), Verdict::Use);
        assert!(gate.admits(TrackKind::Audio) && gate.admits(TrackKind::Video));
    }

    #[test]
    fn gate_passthrough_refuses_decodable_video_and_reports_decodable_audio_once() {
        let mut gate = TrackGate::new(false, decodes);
        let Verdict::Refuse(PublishRefused::UnsupportedCodec(reason)) = gate.track(&mpeg2()) else {
            panic!("mpeg-2 video must be refused on a passthrough stream");
        };
        assert!(
            reason.contains("mpeg-2 video") && reason.contains("not transcoded"),
            "{reason}"
        );
        let Verdict::Report(report) = gate.track(&mp3()) else {
            panic!("mp3 must be reported");
        };
        assert_eq!(
            (report.kind, report.codec.as_str()),
            (TrackKind::Audio, "mp3")
        );
        assert_eq!(gate.track(&mp3()), Verdict::Ignore);
        assert!(!gate.admits(TrackKind::Audio));
        assert_eq!(gate.unusable_tracks().count(), 2);
        // The publisher switches to AAC: usable again.
        assert_eq!(gate.track(&aac()), Verdict::Use);
        assert!(gate.admits(TrackKind::Audio));
    }

    #[test]
    fn gate_unsupported_codecs_refuse_video_and_report_audio() {
        let mut gate = TrackGate::new(true, no_decoder);
        assert!(
            matches!(gate.track(&mp3()), Verdict::Report(r) if r.reason.contains("no mp3 decoder"))
        );
        let speex = UnusableTrack::unsupported(TrackKind::Audio, "speex");
        assert_eq!(gate.unusable(speex.clone()), Verdict::Report(speex.clone()));
        assert_eq!(gate.unusable(speex), Verdict::Ignore);
        let screen = UnusableTrack::unsupported(TrackKind::Video, "screen video");
        assert_eq!(
            gate.unusable(screen),
            Verdict::Refuse(PublishRefused::UnsupportedCodec(
                "video codec screen video: codec not supported".into()
            ))
        );
    }

    #[test]
    fn gate_stop_transcoding_rejudges_the_tracks() {
        let mut gate = TrackGate::new(true, decodes);
        assert_eq!(gate.track(&aac()), Verdict::Use);
        assert_eq!(gate.track(&mpeg2()), Verdict::Use);
        let verdicts = gate.stop_transcoding();
        assert!(
            matches!(&verdicts[0].1, Verdict::Refuse(PublishRefused::UnsupportedCodec(r))
                if r.contains("transcoder could not start")),
            "{verdicts:?}"
        );
        assert_eq!(verdicts[1].1, Verdict::Use);
    }
}
