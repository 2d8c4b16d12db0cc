//! FLV tag bodies — the payloads of RTMP video and audio messages — to [`IngestEvent`]s, sans-IO.
//!
//! Formats: Adobe Flash Video File Format Specification 10.1 §E.4.2 (AUDIODATA) and §E.4.3 (VIDEODATA,
//! with AVCVIDEOPACKET), and the Veovera Enhanced RTMP specification (v1 `ExVideoTagHeader`, v2
//! `ExAudioTagHeader`). Packaged codecs: H.264 (legacy codec id 7, or FourCC `avc1`), H.265 (FourCC
//! `hvc1`, and the common non-standard legacy codec id 12) and AAC (sound format 10, or FourCC `mp4a`).
//! Decodable codecs ([`media::DecodableConfig`], transcoded downstream): video Sorenson H.263 (codec id
//! 2), VP6 and VP6 with alpha (4, 5), AV1 and VP9 (FourCCs `av01`, `vp09`); audio linear PCM (sound formats
//! 0 and 3), Flash ADPCM (1), MP3 (2, and 14 for 8 kHz), Nellymoser (4–6), G.711 A-law and µ-law (7, 8),
//! Speex (11), and the Enhanced RTMP FourCCs `.mp3`, `ac-3`, `ec-3`, `Opus` and `fLaC`. Anything else (screen
//! video, device-specific sound, unknown FourCCs …) is reported once per track as an
//! [`IngestEvent::Unusable`] and its tags are counted and dropped. Enhanced RTMP multitrack and ModEx
//! packets are not demuxed: counted, logged once, and the tracks in use carry on.
//!
//! A decodable track is announced when its configuration is known: at its Enhanced RTMP sequence start
//! when that carries it (OpusHead, FLAC STREAMINFO, an `av1C` with a sequence header), else at its first
//! frame (legacy sound formats from their SoundRate/SoundSize/SoundType bits; MP3 and AC-3 from their
//! frame headers, which also correct the FLV rate flags — FLV has no flag for 48 kHz; video from the
//! first keyframe's picture size).
//!
//! Timing: RTMP timestamps are 32-bit milliseconds, unwrapped here (one [`Unwrapper`] per publish, shared by
//! audio and video since they share the clock). Video is rescaled to 90 kHz (`pts = dts + composition
//! time`). Audio DTS is counted in samples at the sample rate from the first frame's timestamp, so frame
//! durations are exactly the frame's sample count (AAC, MPEG audio, AC-3, Opus and PCM, whose frames say
//! it); it resynchronises to the message timestamp when the two drift apart by more than two frames. Audio
//! codecs whose frame durations are not read here (FLAC, Flash ADPCM, Nellymoser, Speex) take the message
//! timestamp rescaled to the sample rate.
//!
//! What it does not do: no I/O, no clock; it does not parse SPS/PPS itself (the `media` crate does) nor
//! reorder frames.

use bytes::{BufMut, Bytes, BytesMut};
use media::ac3::Ac3Header;
use media::decodable::{
    flac_streaminfo_format, opus_head, opus_head_channels, opus_packet_samples,
};
use media::mpeg_audio::MpegAudioHeader;
use media::time::{Unwrapper, rescale};
use media::{
    AudioFormat, CodecConfig, DecodableCodec, DecodableConfig, Frame, MediaError, MediaTime,
    PcmFormat, TrackInfo, TrackKind, VideoParams,
};

use crate::{IngestEvent, UnusableTrack};

/// A malformed tag or a configuration record the `media` crate rejected. The tag is dropped; the parser
/// stays usable (these are not fatal for the connection).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FlvError {
    /// The tag body ends before a field.
    #[error("{what} truncated: need {need_bytes} bytes, have {have_bytes}")]
    Truncated {
        /// The structure being read.
        what: &'static str,
        /// Bytes needed.
        need_bytes: usize,
        /// Bytes available.
        have_bytes: usize,
    },
    /// A NAL unit length prefix points past the end of the frame.
    #[error("nal unit length at byte {offset_bytes} overruns the frame")]
    BadNalLength {
        /// Offset of the length prefix in the frame data.
        offset_bytes: usize,
    },
    /// A decoder configuration record declares a NAL length size other than 1, 2, 3 or 4.
    #[error("unsupported nal length size {0}")]
    NalLengthSize(u8),
    /// The sequence header's decoder configuration record is invalid.
    #[error("{kind:?} sequence header rejected: {source}")]
    Config {
        /// Which track.
        kind: TrackKind,
        /// The parse error.
        source: MediaError,
    },
}

mod cue;
mod tags;

pub use self::tags::{
    AudioTag, VideoCodec, VideoPacket, VideoTag, parse_audio_tag, parse_video_tag,
};

/// Counters of one publish's FLV parsing, for the end-of-publish log.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FlvStats {
    /// Video frames emitted.
    pub video_frames: u64,
    /// Audio frames emitted.
    pub audio_frames: u64,
    /// Frames dropped because their track had no (valid) sequence header yet.
    pub frames_before_config: u64,
    /// Tags of unsupported codecs ignored.
    pub unsupported_tags: u64,
    /// Audio DTS resynchronisations to the message timestamp.
    pub audio_resyncs: u64,
}

/// The video track in use.
#[derive(Debug)]
enum VideoConfig {
    /// H.264 / HEVC: frames need their NAL unit lengths rewritten.
    Nal {
        codec: VideoCodec,
        record: Bytes,
        nal_length_size: u8,
    },
    /// A decodable codec. `has_track`: its Track was sent (else it waits for a keyframe to size it).
    Decodable {
        codec: DecodableCodec,
        extradata: Bytes,
        params: Option<VideoParams>,
        has_track: bool,
    },
}

/// The audio track in use.
#[derive(Debug)]
struct AudioConfig {
    /// The track announced (or, for a decodable codec configured by its sequence start but not yet
    /// announced, to be announced).
    track: TrackInfo,
    /// Its timescale: the sample rate, Hz.
    sample_rate: u32,
    /// DTS of the next frame, in samples (sample-rate ticks).
    next_dts: Option<i64>,
}

/// The per-publish FLV state: current configurations, the timestamp unwrapper and the audio sample clock.
#[derive(Debug)]
pub struct FlvParser {
    timestamps: Unwrapper,
    video: Option<VideoConfig>,
    audio: Option<AudioConfig>,
    max_frame_bytes: usize,
    stats: FlvStats,
    has_logged_early_frame: bool,
    has_logged_skipped: bool,
    /// The unsupported codec last reported per kind (video, audio), so each is reported once.
    reported_unsupported: [Option<String>; 2],
}

impl FlvParser {
    /// A parser for one publish. `max_frame_bytes` bounds a frame after NAL length rewriting.
    pub fn new(max_frame_bytes: usize) -> Self {
        Self {
            timestamps: Unwrapper::new(32),
            video: None,
            audio: None,
            max_frame_bytes,
            stats: FlvStats::default(),
            has_logged_early_frame: false,
            has_logged_skipped: false,
            reported_unsupported: [None, None],
        }
    }

    /// Counters so far.
    pub fn stats(&self) -> FlvStats {
        self.stats
    }

    /// An Enhanced RTMP packet type that is not demuxed: counted, logged once.
    fn skipped(&mut self, kind: TrackKind, what: &'static str) {
        self.stats.unsupported_tags += 1;
        if !std::mem::replace(&mut self.has_logged_skipped, true) {
            tracing::warn!(track = ?kind, what, "enhanced rtmp packet type not demuxed: ignored (further ones counted)");
        }
    }

    /// A tag of an unsupported codec: counted; reported as an [`IngestEvent::Unusable`] the first time
    /// (and when the codec changes), and the track of that kind is dropped.
    fn unsupported(&mut self, kind: TrackKind, name: String, out: &mut Vec<IngestEvent>) {
        self.stats.unsupported_tags += 1;
        let slot = &mut self.reported_unsupported[usize::from(kind == TrackKind::Audio)];
        if slot.as_ref() != Some(&name) {
            tracing::debug!(track = ?kind, codec = %name, "unsupported codec");
            *slot = Some(name.clone());
            match kind {
                TrackKind::Video => self.video = None,
                TrackKind::Audio => self.audio = None,
            }
            out.push(IngestEvent::Unusable(UnusableTrack::unsupported(
                kind, name,
            )));
        }
    }

    /// Handle one RTMP video message (type 9): `timestamp_ms` is the message's 32-bit timestamp (the DTS),
    /// `payload` the FLV video tag body. Appends 0..=2 events to `out`. On error the tag is dropped.
    pub fn video(
        &mut self,
        timestamp_ms: u32,
        payload: &Bytes,
        out: &mut Vec<IngestEvent>,
    ) -> Result<(), FlvError> {
        let dts_ms = self.timestamps.unwrap(u64::from(timestamp_ms));
        let (codec, is_keyframe, packet) = match parse_video_tag(payload)? {
            VideoTag::Supported {
                codec,
                is_keyframe,
                packet,
            } => (codec, is_keyframe, packet),
            VideoTag::Decodable {
                codec,
                is_keyframe,
                packet,
            } => return self.decodable_video(dts_ms, codec, is_keyframe, packet, out),
            VideoTag::Unsupported(name) => {
                self.unsupported(TrackKind::Video, name, out);
                return Ok(());
            }
            VideoTag::Skipped(what) => {
                self.skipped(TrackKind::Video, what);
                return Ok(());
            }
        };
        match packet {
            VideoPacket::SequenceStart(record) => self.video_config(codec, record, out),
            VideoPacket::CodedFrames {
                composition_time_ms,
                data,
            } => {
                let Some(nal_length_size) = self.video.as_ref().and_then(|c| match c {
                    VideoConfig::Nal {
                        codec: configured,
                        nal_length_size,
                        ..
                    } if *configured == codec => Some(*nal_length_size),
                    _ => None,
                }) else {
                    self.frame_before_config(TrackKind::Video);
                    return Ok(());
                };
                let (data, has_irap) =
                    normalize_nal_units(data, nal_length_size, codec, self.max_frame_bytes)?;
                if data.is_empty() {
                    return Ok(());
                }
                let pts_ms = dts_ms + i64::from(composition_time_ms);
                self.stats.video_frames += 1;
                out.push(IngestEvent::Frame(Frame {
                    track: TrackKind::Video,
                    dts: rescale(dts_ms, 1000, MediaTime::HZ_90K),
                    pts: rescale(pts_ms, 1000, MediaTime::HZ_90K),
                    is_keyframe: is_keyframe || has_irap,
                    data,
                }));
                Ok(())
            }
            VideoPacket::SequenceEnd => {
                tracing::debug!("video end of sequence");
                Ok(())
            }
            VideoPacket::Ignored(what) => {
                tracing::trace!(what, "ignoring video packet");
                Ok(())
            }
        }
    }

    fn video_config(
        &mut self,
        codec: VideoCodec,
        record: Bytes,
        out: &mut Vec<IngestEvent>,
    ) -> Result<(), FlvError> {
        if self.video.as_ref().is_some_and(|c| {
            matches!(c, VideoConfig::Nal { codec: c, record: r, .. } if *c == codec && *r == record)
        }) {
            return Ok(()); // repeated, unchanged sequence header
        }
        self.video = None;
        let parsed = match codec {
            VideoCodec::Avc => TrackInfo::from_avcc(record.clone()),
            VideoCodec::Hevc => TrackInfo::from_hvcc(record.clone()),
        };
        let info = parsed.map_err(|source| FlvError::Config {
            kind: TrackKind::Video,
            source,
        })?;
        let nal_length_size = match &info.config {
            CodecConfig::Avc(c) => c.nal_length_size,
            CodecConfig::Hevc(c) => c.nal_length_size,
            CodecConfig::Aac(_) | CodecConfig::Decodable(_) => 0,
        };
        if !(1..=4).contains(&nal_length_size) {
            return Err(FlvError::NalLengthSize(nal_length_size));
        }
        tracing::debug!(codec = %info.config.rfc6381(), nal_length_size, "video sequence header");
        self.reported_unsupported[0] = None;
        self.video = Some(VideoConfig::Nal {
            codec,
            record,
            nal_length_size,
        });
        out.push(IngestEvent::Track(info));
        Ok(())
    }

    /// A video tag of a decodable codec. Its track is announced once its picture size is known: from an
    /// AV1 sequence start's sequence header, else from the first keyframe (Sorenson H.263, VP6 and VP9
    /// picture headers, an AV1 temporal unit's sequence header); a keyframe whose size cannot be read
    /// still announces the track, without a size.
    fn decodable_video(
        &mut self,
        dts_ms: i64,
        codec: DecodableCodec,
        is_keyframe: bool,
        packet: VideoPacket,
        out: &mut Vec<IngestEvent>,
    ) -> Result<(), FlvError> {
        match packet {
            VideoPacket::SequenceStart(record) => {
                if matches!(&self.video, Some(VideoConfig::Decodable { codec: c, extradata, .. })
                    if *c == codec && *extradata == record)
                {
                    return Ok(());
                }
                // av1C (AV1-ISOBMFF §2.3): 4 bytes, then configOBUs that should hold the sequence header.
                let params = match codec {
                    DecodableCodec::Av1 => record
                        .get(4..)
                        .and_then(|obus| media::picture_size::av1_size(obus).ok())
                        .map(|(width, height)| VideoParams {
                            width,
                            height,
                            frame_rate: None,
                        }),
                    _ => None,
                };
                self.reported_unsupported[0] = None;
                self.video = Some(VideoConfig::Decodable {
                    codec,
                    extradata: record,
                    params,
                    has_track: false,
                });
                if params.is_some() {
                    self.announce_decodable_video(out);
                }
                Ok(())
            }
            VideoPacket::CodedFrames { data, .. } => {
                if data.is_empty() {
                    return Ok(());
                }
                // VP6 in FLV: the adjustment byte is the decoder's extradata (as FFmpeg takes it).
                let (extradata, frame) = match codec {
                    DecodableCodec::Vp6 | DecodableCodec::Vp6Alpha => {
                        (Some(data.slice(..1)), data.slice(1..))
                    }
                    _ => (None, data.clone()),
                };
                let is_current = matches!(&self.video, Some(VideoConfig::Decodable { codec: c, extradata: e, .. })
                    if *c == codec && extradata.as_ref().is_none_or(|x| x == e));
                if !is_current {
                    let needs_sequence_start =
                        matches!(codec, DecodableCodec::Av1 | DecodableCodec::Vp9);
                    if !is_keyframe || (needs_sequence_start && !self.has_video_codec(codec)) {
                        self.frame_before_config(TrackKind::Video);
                        return Ok(());
                    }
                    if !needs_sequence_start {
                        self.reported_unsupported[0] = None;
                        self.video = Some(VideoConfig::Decodable {
                            codec,
                            extradata: extradata.unwrap_or_default(),
                            params: None,
                            has_track: false,
                        });
                    }
                }
                if let Some(VideoConfig::Decodable {
                    params, has_track, ..
                }) = &mut self.video
                    && !*has_track
                {
                    if !is_keyframe {
                        self.frame_before_config(TrackKind::Video);
                        return Ok(());
                    }
                    let size = match codec {
                        DecodableCodec::SorensonH263 => {
                            media::picture_size::sorenson_h263_size(&frame)
                        }
                        DecodableCodec::Vp6 => media::picture_size::vp6_size(&data, false),
                        DecodableCodec::Vp6Alpha => media::picture_size::vp6_size(&data, true),
                        DecodableCodec::Vp9 => media::picture_size::vp9_size(&frame),
                        DecodableCodec::Av1 => media::picture_size::av1_size(&frame),
                        _ => Err(MediaError::Missing {
                            what: "video frame",
                            field: "picture size",
                        }),
                    };
                    match size {
                        Ok((width, height)) => {
                            *params = Some(VideoParams {
                                width,
                                height,
                                frame_rate: None,
                            })
                        }
                        Err(error) => {
                            tracing::debug!(%error, codec = codec.name(), "picture size unknown")
                        }
                    }
                    self.announce_decodable_video(out);
                }
                self.stats.video_frames += 1;
                let dts = rescale(dts_ms, 1000, MediaTime::HZ_90K);
                out.push(IngestEvent::Frame(Frame {
                    track: TrackKind::Video,
                    dts,
                    pts: dts,
                    is_keyframe,
                    data: frame,
                }));
                Ok(())
            }
            VideoPacket::SequenceEnd => Ok(()),
            VideoPacket::Ignored(what) => {
                tracing::trace!(what, "ignoring video packet");
                Ok(())
            }
        }
    }

    fn has_video_codec(&self, codec: DecodableCodec) -> bool {
        matches!(&self.video, Some(VideoConfig::Decodable { codec: c, .. }) if *c == codec)
    }

    /// Send the Track of the configured decodable video codec.
    fn announce_decodable_video(&mut self, out: &mut Vec<IngestEvent>) {
        if let Some(VideoConfig::Decodable {
            codec,
            extradata,
            params,
            has_track,
        }) = &mut self.video
        {
            *has_track = true;
            let info = TrackInfo::new(CodecConfig::Decodable(DecodableConfig::video(
                *codec,
                extradata.clone(),
                *params,
            )));
            tracing::debug!(codec = codec.name(), ?params, "video configuration");
            out.push(IngestEvent::Track(info));
        }
    }

    /// Handle one RTMP audio message (type 8): `timestamp_ms` is its 32-bit timestamp, `payload` the FLV
    /// audio tag body. Appends 0..=2 events to `out`. On error the tag is dropped.
    pub fn audio(
        &mut self,
        timestamp_ms: u32,
        payload: &Bytes,
        out: &mut Vec<IngestEvent>,
    ) -> Result<(), FlvError> {
        let ts_ms = self.timestamps.unwrap(u64::from(timestamp_ms));
        match parse_audio_tag(payload)? {
            AudioTag::AacConfig(asc) => {
                if self
                    .audio
                    .as_ref()
                    .is_some_and(|c| matches!(&c.track.config, CodecConfig::Aac(a) if a.asc == asc))
                {
                    return Ok(());
                }
                self.audio = None;
                let info =
                    TrackInfo::from_audio_specific_config(asc.clone()).map_err(|source| {
                        FlvError::Config {
                            kind: TrackKind::Audio,
                            source,
                        }
                    })?;
                let CodecConfig::Aac(aac) = &info.config else {
                    return Ok(()); // from_audio_specific_config always yields AAC
                };
                if aac.sample_rate == 0 || aac.samples_per_frame == 0 {
                    return Err(FlvError::Config {
                        kind: TrackKind::Audio,
                        source: MediaError::Invalid {
                            what: "AudioSpecificConfig",
                            field: "sample rate",
                            value: u64::from(aac.sample_rate),
                        },
                    });
                }
                tracing::debug!(codec = %aac.rfc6381(), sample_rate_hz = aac.sample_rate, "audio sequence header");
                self.reported_unsupported[1] = None;
                self.audio = Some(AudioConfig {
                    sample_rate: aac.sample_rate,
                    track: info.clone(),
                    next_dts: None,
                });
                out.push(IngestEvent::Track(info));
                Ok(())
            }
            AudioTag::AacFrame(data) => {
                if !self
                    .audio
                    .as_ref()
                    .is_some_and(|c| matches!(c.track.config, CodecConfig::Aac(_)))
                {
                    self.frame_before_config(TrackKind::Audio);
                    return Ok(());
                }
                if data.is_empty() {
                    return Ok(());
                }
                out.extend(self.audio_frame(ts_ms, data).map(IngestEvent::Frame));
                Ok(())
            }
            AudioTag::Config { codec, record } => {
                let format = match codec {
                    DecodableCodec::Opus => Some(AudioFormat {
                        sample_rate_hz: 48_000,
                        channels: opus_head_channels(&record).unwrap_or(2),
                    }),
                    DecodableCodec::Flac => flac_streaminfo_format(&record),
                    // AC-3, E-AC-3 and MP3 configure themselves from their frame headers.
                    _ => None,
                };
                let Some(format) = format else {
                    tracing::trace!(
                        codec = codec.name(),
                        "audio sequence start without configuration"
                    );
                    return Ok(());
                };
                // An empty Opus sequence start means mono/stereo (Enhanced RTMP v2): stereo.
                let record = match codec {
                    DecodableCodec::Opus if record.is_empty() => opus_head(2).unwrap_or_default(),
                    _ => record,
                };
                self.configure_audio(codec, record, format, out);
                Ok(())
            }
            AudioTag::Frames {
                codec,
                format,
                data,
            } => {
                if data.is_empty() {
                    return Ok(());
                }
                // The frame header says what MPEG audio and AC-3 really are; legacy tags say what the
                // others are; Opus and FLAC were configured by their sequence start.
                let from_header = match codec {
                    DecodableCodec::Mp1 | DecodableCodec::Mp2 | DecodableCodec::Mp3 => {
                        MpegAudioHeader::parse(&data).ok().map(|h| {
                            (
                                h.codec,
                                AudioFormat {
                                    sample_rate_hz: h.sample_rate_hz,
                                    channels: h.channels,
                                },
                            )
                        })
                    }
                    DecodableCodec::Ac3 | DecodableCodec::Eac3 => {
                        Ac3Header::parse(&data).ok().map(|h| {
                            (
                                h.codec,
                                AudioFormat {
                                    sample_rate_hz: h.sample_rate_hz,
                                    channels: h.channels,
                                },
                            )
                        })
                    }
                    _ => None,
                };
                let wanted = from_header.or(format.map(|f| (codec, f)));
                match wanted {
                    Some((codec, format)) => {
                        let is_same = self.audio.as_ref().is_some_and(|c| {
                            matches!(&c.track.config, CodecConfig::Decodable(d)
                                if d.codec == codec && d.audio == Some(format))
                        });
                        if !is_same {
                            self.configure_audio(codec, Bytes::new(), format, out);
                        }
                    }
                    None => {
                        let is_configured = self.audio.as_ref().is_some_and(|c| {
                            matches!(&c.track.config, CodecConfig::Decodable(d) if d.codec == codec)
                        });
                        if !is_configured {
                            self.frame_before_config(TrackKind::Audio);
                            return Ok(());
                        }
                    }
                }
                out.extend(self.audio_frame(ts_ms, data).map(IngestEvent::Frame));
                Ok(())
            }
            AudioTag::Ignored(what) => {
                tracing::trace!(what, "ignoring audio packet");
                Ok(())
            }
            AudioTag::Unsupported(name) => {
                self.unsupported(TrackKind::Audio, name, out);
                Ok(())
            }
            AudioTag::Skipped(what) => {
                self.skipped(TrackKind::Audio, what);
                Ok(())
            }
        }
    }

    /// Make `codec` with `extradata` and `format` the audio track and announce it.
    fn configure_audio(
        &mut self,
        codec: DecodableCodec,
        extradata: Bytes,
        format: AudioFormat,
        out: &mut Vec<IngestEvent>,
    ) {
        if format.sample_rate_hz == 0 || format.channels == 0 {
            return;
        }
        let info = TrackInfo::new(CodecConfig::Decodable(DecodableConfig::audio(
            codec, extradata, format,
        )));
        if self.audio.as_ref().is_some_and(|c| c.track == info) {
            return;
        }
        tracing::debug!(
            codec = codec.name(),
            sample_rate_hz = format.sample_rate_hz,
            channels = format.channels,
            "audio configuration"
        );
        self.reported_unsupported[1] = None;
        self.audio = Some(AudioConfig {
            sample_rate: format.sample_rate_hz,
            track: info.clone(),
            next_dts: None,
        });
        out.push(IngestEvent::Track(info));
    }

    /// Timestamp one audio frame of the configured track (see the module docs).
    fn audio_frame(&mut self, ts_ms: i64, data: Bytes) -> Option<Frame> {
        let config = self.audio.as_mut()?;
        let expected = rescale(ts_ms, 1000, config.sample_rate);
        let dts = match (frame_samples(&config.track.config, &data), config.next_dts) {
            (Some(spf), Some(next)) if (next - expected).abs() <= 2 * i64::from(spf) => next,
            (Some(_), Some(next)) => {
                self.stats.audio_resyncs += 1;
                tracing::debug!(drift_samples = next - expected, "audio timestamp resync");
                expected
            }
            _ => expected,
        };
        config.next_dts =
            frame_samples(&config.track.config, &data).map(|spf| dts + i64::from(spf));
        self.stats.audio_frames += 1;
        Some(Frame {
            track: TrackKind::Audio,
            dts,
            pts: dts,
            is_keyframe: true,
            data,
        })
    }

    fn frame_before_config(&mut self, kind: TrackKind) {
        self.stats.frames_before_config += 1;
        if !std::mem::replace(&mut self.has_logged_early_frame, true) {
            tracing::debug!(track = ?kind, "dropping frames received before their sequence header");
        }
    }
}

/// Samples per channel in an audio frame of `config`, when the frame or the configuration says: AAC's
/// frame length; the sum over the MPEG audio frames or AC-3 syncframes in `data` (E-AC-3 dependent
/// substreams excluded); an Opus packet's TOC; PCM and G.711 by size. `None` for FLAC, Flash ADPCM,
/// Nellymoser and Speex, or when the frames do not parse.
fn frame_samples(config: &CodecConfig, data: &[u8]) -> Option<u32> {
    let CodecConfig::Decodable(d) = config else {
        return match config {
            CodecConfig::Aac(a) => Some(a.samples_per_frame).filter(|&n| n > 0),
            _ => None,
        };
    };
    let channels = usize::from(d.audio?.channels.max(1));
    let by_size = |bytes_per_sample: usize| {
        u32::try_from(data.len() / (bytes_per_sample * channels))
            .ok()
            .filter(|&n| n > 0)
    };
    match d.codec {
        DecodableCodec::Mp1 | DecodableCodec::Mp2 | DecodableCodec::Mp3 => {
            walk_frames(data, |rest| {
                MpegAudioHeader::parse(rest)
                    .ok()
                    .map(|h| (h.frame_bytes, h.samples_per_frame))
            })
        }
        DecodableCodec::Ac3 | DecodableCodec::Eac3 => walk_frames(data, |rest| {
            Ac3Header::parse(rest).ok().map(|h| {
                let samples = if h.is_dependent {
                    0
                } else {
                    h.samples_per_frame
                };
                (h.frame_bytes, samples)
            })
        }),
        DecodableCodec::Opus => opus_packet_samples(data),
        DecodableCodec::Pcm(PcmFormat::U8)
        | DecodableCodec::G711Alaw
        | DecodableCodec::G711Mulaw => by_size(1),
        DecodableCodec::Pcm(_) => by_size(2),
        _ => None,
    }
}

/// Sum the samples of the consecutive frames that make up `data` (`header` gives a frame's length and
/// samples); `None` unless they cover it exactly.
fn walk_frames(data: &[u8], header: impl Fn(&[u8]) -> Option<(usize, u32)>) -> Option<u32> {
    let mut pos = 0;
    let mut samples = 0u32;
    while pos < data.len() {
        let (len, n) = header(&data[pos..])?;
        if len == 0 {
            return None;
        }
        pos += len;
        samples = samples.checked_add(n)?;
    }
    (pos == data.len() && samples > 0).then_some(samples)
}

/// Rewrite NAL units from `nal_length_size`-byte to 4-byte big-endian length prefixes (unchanged bytes when
/// already 4), validating the framing. Empty NAL units are dropped when rewriting, so the output is at most
/// 2.5× the input; it must also fit `max_bytes`. Returns the data and whether it holds an IDR (H.264 NAL
/// type 5) or IRAP (H.265 NAL types 16..=21) picture.
fn normalize_nal_units(
    data: Bytes,
    nal_length_size: u8,
    codec: VideoCodec,
    max_bytes: usize,
) -> Result<(Bytes, bool), FlvError> {
    let n = usize::from(nal_length_size);
    let is_irap = |nal: &[u8]| match (codec, nal.first()) {
        (VideoCodec::Avc, Some(h)) => h & 0x1F == 5,
        (VideoCodec::Hevc, Some(h)) => (16..=21).contains(&((h >> 1) & 0x3F)),
        (_, None) => false,
    };
    let mut has_irap = false;
    let mut out_len = 0usize;
    let mut pos = 0;
    while pos < data.len() {
        let prefix = data
            .get(pos..pos + n)
            .ok_or(FlvError::BadNalLength { offset_bytes: pos })?;
        let len = prefix
            .iter()
            .fold(0usize, |acc, &b| acc << 8 | usize::from(b));
        let nal = data
            .get(pos + n..pos + n + len)
            .ok_or(FlvError::BadNalLength { offset_bytes: pos })?;
        has_irap |= is_irap(nal);
        if len > 0 {
            out_len += 4 + len;
        }
        pos += n + len;
    }
    if n == 4 {
        return Ok((data, has_irap));
    }
    if out_len > max_bytes {
        return Err(FlvError::Truncated {
            what: "rewritten frame (over the size limit)",
            need_bytes: out_len,
            have_bytes: max_bytes,
        });
    }
    let mut out = BytesMut::with_capacity(out_len);
    let mut pos = 0;
    while pos < data.len() {
        let len = data[pos..pos + n]
            .iter()
            .fold(0usize, |acc, &b| acc << 8 | usize::from(b));
        if len > 0 {
            out.put_u32(len as u32);
            out.put_slice(&data[pos + n..pos + n + len]);
        }
        pos += n + len;
    }
    Ok((out.freeze(), has_irap))
}

#[cfg(test)]
mod tests;
