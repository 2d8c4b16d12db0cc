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

use super::{IngestEvent, UnusableTrack};

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

/// A video codec Estuary ingests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VideoCodec {
    /// H.264 / AVC (`avcC` configuration, ISO/IEC 14496-15 §5).
    Avc,
    /// H.265 / HEVC (`hvcC` configuration, ISO/IEC 14496-15 §8).
    Hevc,
}

/// What a video tag carries (after its header).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VideoPacket {
    /// A decoder configuration record (`avcC` / `hvcC`): AVCPacketType 0 / PacketTypeSequenceStart.
    SequenceStart(Bytes),
    /// Coded frame data (length-prefixed NAL units) with its composition time offset in milliseconds
    /// (signed 24-bit; 0 for PacketTypeCodedFramesX).
    CodedFrames {
        /// `pts - dts`, ms.
        composition_time_ms: i32,
        /// NAL units, each prefixed by a big-endian length of the configured size.
        data: Bytes,
    },
    /// End of sequence.
    SequenceEnd,
    /// A packet type that carries nothing we use (metadata, MPEG-2 TS sequence start, command frames).
    Ignored(&'static str),
}

/// A parsed video tag body (§E.4.3.1 VIDEODATA / Enhanced RTMP ExVideoTagHeader).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VideoTag {
    /// A supported codec.
    Supported {
        /// The codec.
        codec: VideoCodec,
        /// FrameType 1 (key frame).
        is_keyframe: bool,
        /// The payload.
        packet: VideoPacket,
    },
    /// A codec that is decoded downstream (Sorenson H.263, VP6, AV1, VP9).
    Decodable {
        /// The codec.
        codec: DecodableCodec,
        /// FrameType 1 (key frame).
        is_keyframe: bool,
        /// The payload: a sequence start carries the codec's configuration record (`av1C`, `vpcC`);
        /// coded frames have no composition time (these codecs have no B-frames in FLV).
        packet: VideoPacket,
    },
    /// An unsupported codec, named for the log.
    Unsupported(String),
    /// A packet type not demuxed (Enhanced RTMP `multitrack` or `modex`), whatever its codec.
    Skipped(&'static str),
}

/// Parse a video tag body's header. Pure: no state.
pub fn parse_video_tag(payload: &Bytes) -> Result<VideoTag, FlvError> {
    let b0 = *payload.first().ok_or(truncated("video tag", 1, 0))?;
    if b0 & 0x80 != 0 {
        return parse_ex_video_tag(payload, b0);
    }
    // Legacy: FrameType (UB[4]) | CodecID (UB[4]).
    let frame_type = b0 >> 4;
    let codec = match b0 & 0x0F {
        7 => VideoCodec::Avc,
        12 => VideoCodec::Hevc, // not in the FLV spec, but widely used before Enhanced RTMP
        id @ (2 | 4 | 5) => {
            let codec = match id {
                2 => DecodableCodec::SorensonH263,
                4 => DecodableCodec::Vp6,
                _ => DecodableCodec::Vp6Alpha,
            };
            // §E.4.3.1: the codec's packet follows the header byte (VP6: its adjustment byte first).
            let packet = if frame_type == 5 {
                VideoPacket::Ignored("command frame")
            } else {
                VideoPacket::CodedFrames {
                    composition_time_ms: 0,
                    data: payload.slice(1..),
                }
            };
            return Ok(VideoTag::Decodable {
                codec,
                is_keyframe: frame_type == 1,
                packet,
            });
        }
        id => {
            return Ok(VideoTag::Unsupported(
                legacy_video_codec_name(id).to_owned(),
            ));
        }
    };
    if frame_type == 5 {
        // Video info / command frame: one byte, no media.
        return Ok(VideoTag::Supported {
            codec,
            is_keyframe: false,
            packet: VideoPacket::Ignored("command frame"),
        });
    }
    if payload.len() < 5 {
        return Err(truncated("avc video packet header", 5, payload.len()));
    }
    // AVCPacketType (UI8), CompositionTime (SI24, ms).
    let packet = match payload[1] {
        0 => VideoPacket::SequenceStart(payload.slice(5..)),
        1 => VideoPacket::CodedFrames {
            composition_time_ms: read_si24(&payload[2..5]),
            data: payload.slice(5..),
        },
        2 => VideoPacket::SequenceEnd,
        _ => VideoPacket::Ignored("unknown avc packet type"),
    };
    Ok(VideoTag::Supported {
        codec,
        is_keyframe: frame_type == 1,
        packet,
    })
}

fn parse_ex_video_tag(payload: &Bytes, b0: u8) -> Result<VideoTag, FlvError> {
    // IsExHeader (UB[1]) | FrameType (UB[3]) | PacketType (UB[4]), then a FourCC.
    let frame_type = (b0 >> 4) & 0x07;
    let packet_type = b0 & 0x0F;
    if payload.len() < 5 {
        return Err(truncated("enhanced video tag header", 5, payload.len()));
    }
    let fourcc = &payload[1..5];
    if packet_type == 6 || packet_type == 7 {
        let what = if packet_type == 6 {
            "multitrack"
        } else {
            "modex"
        };
        return Ok(VideoTag::Skipped(what));
    }
    let codec = match fourcc {
        b"avc1" => VideoCodec::Avc,
        b"hvc1" => VideoCodec::Hevc,
        b"av01" | b"vp09" => {
            let codec = if fourcc == b"av01" {
                DecodableCodec::Av1
            } else {
                DecodableCodec::Vp9
            };
            let packet = match packet_type {
                _ if frame_type == 5 => VideoPacket::Ignored("command frame"),
                0 => VideoPacket::SequenceStart(payload.slice(5..)),
                // No composition time for these FourCCs (Enhanced RTMP: SI24 only for avc1/hvc1).
                1 | 3 => VideoPacket::CodedFrames {
                    composition_time_ms: 0,
                    data: payload.slice(5..),
                },
                2 => VideoPacket::SequenceEnd,
                4 => VideoPacket::Ignored("metadata"),
                5 => VideoPacket::Ignored("mpeg-2 ts sequence start"),
                _ => VideoPacket::Ignored("unknown enhanced packet type"),
            };
            return Ok(VideoTag::Decodable {
                codec,
                is_keyframe: frame_type == 1,
                packet,
            });
        }
        other => {
            return Ok(VideoTag::Unsupported(format!(
                "fourcc {}",
                String::from_utf8_lossy(other)
            )));
        }
    };
    if frame_type == 5 && packet_type != 4 {
        return Ok(VideoTag::Supported {
            codec,
            is_keyframe: false,
            packet: VideoPacket::Ignored("command frame"),
        });
    }
    let packet = match packet_type {
        0 => VideoPacket::SequenceStart(payload.slice(5..)),
        1 => {
            if payload.len() < 8 {
                return Err(truncated("enhanced coded frames header", 8, payload.len()));
            }
            VideoPacket::CodedFrames {
                composition_time_ms: read_si24(&payload[5..8]),
                data: payload.slice(8..),
            }
        }
        2 => VideoPacket::SequenceEnd,
        3 => VideoPacket::CodedFrames {
            composition_time_ms: 0,
            data: payload.slice(5..),
        },
        4 => VideoPacket::Ignored("metadata"),
        5 => VideoPacket::Ignored("mpeg-2 ts sequence start"),
        _ => VideoPacket::Ignored("unknown enhanced packet type"),
    };
    Ok(VideoTag::Supported {
        codec,
        is_keyframe: frame_type == 1,
        packet,
    })
}

fn legacy_video_codec_name(id: u8) -> &'static str {
    match id {
        2 => "sorenson h.263",
        3 => "screen video",
        4 => "vp6",
        5 => "vp6 with alpha",
        6 => "screen video v2",
        _ => "unknown video codec id",
    }
}

/// What an audio tag carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AudioTag {
    /// AAC AudioSpecificConfig (AACPacketType 0 / SequenceStart).
    AacConfig(Bytes),
    /// One raw AAC access unit (AACPacketType 1 / CodedFrames).
    AacFrame(Bytes),
    /// The configuration record of a decodable codec (Enhanced RTMP SequenceStart: an OpusHead, a FLAC
    /// STREAMINFO; may be empty).
    Config {
        /// The codec.
        codec: DecodableCodec,
        /// The record as received.
        record: Bytes,
    },
    /// Frames of a decodable codec (one or more MP3 frames or AC-3 syncframes, one Opus packet, PCM
    /// samples …).
    Frames {
        /// The codec (for MPEG audio, what the tag says: the frame header may say another layer).
        codec: DecodableCodec,
        /// What a legacy tag's SoundRate/SoundSize/SoundType bits and sound format say (rates 5512, 11 025,
        /// 22 050, 44 100 Hz; 8 and 16 kHz for the formats that fix them); `None` for Enhanced RTMP.
        format: Option<AudioFormat>,
        /// The frame bytes.
        data: Bytes,
    },
    /// Nothing to use (AAC sequence end, multichannel config).
    Ignored(&'static str),
    /// An unsupported audio codec, named for the log.
    Unsupported(String),
    /// A packet type not demuxed (Enhanced RTMP `multitrack` or `modex`), whatever its codec.
    Skipped(&'static str),
}

/// Parse an audio tag body's header (§E.4.2.1 AUDIODATA / Enhanced RTMP ExAudioTagHeader). Pure.
pub fn parse_audio_tag(payload: &Bytes) -> Result<AudioTag, FlvError> {
    let b0 = *payload.first().ok_or(truncated("audio tag", 1, 0))?;
    // SoundFormat (UB[4]) | SoundRate (UB[2]) | SoundSize (UB[1]) | SoundType (UB[1]).
    match b0 >> 4 {
        10 => {
            let packet_type =
                *payload
                    .get(1)
                    .ok_or(truncated("aac audio packet header", 2, payload.len()))?;
            Ok(match packet_type {
                0 => AudioTag::AacConfig(payload.slice(2..)),
                1 => AudioTag::AacFrame(payload.slice(2..)),
                _ => AudioTag::Ignored("unknown aac packet type"),
            })
        }
        9 => {
            // Enhanced audio: SoundFormat 9 (ExHeader) | AudioPacketType (UB[4]), then a FourCC.
            if payload.len() < 5 {
                return Err(truncated("enhanced audio tag header", 5, payload.len()));
            }
            let packet_type = b0 & 0x0F;
            if packet_type == 5 || packet_type == 7 {
                return Ok(AudioTag::Skipped(if packet_type == 5 {
                    "multitrack"
                } else {
                    "modex"
                }));
            }
            let fourcc = &payload[1..5];
            let codec = match fourcc {
                b"mp4a" => {
                    return Ok(match packet_type {
                        0 => AudioTag::AacConfig(payload.slice(5..)),
                        1 => AudioTag::AacFrame(payload.slice(5..)),
                        _ => AudioTag::Ignored("enhanced audio packet without media"),
                    });
                }
                b".mp3" => DecodableCodec::Mp3,
                b"ac-3" => DecodableCodec::Ac3,
                b"ec-3" => DecodableCodec::Eac3,
                b"Opus" => DecodableCodec::Opus,
                b"fLaC" => DecodableCodec::Flac,
                other => {
                    return Ok(AudioTag::Unsupported(format!(
                        "fourcc {}",
                        String::from_utf8_lossy(other)
                    )));
                }
            };
            Ok(match packet_type {
                0 => AudioTag::Config {
                    codec,
                    record: payload.slice(5..),
                },
                1 => AudioTag::Frames {
                    codec,
                    format: None,
                    data: payload.slice(5..),
                },
                2 => AudioTag::Ignored("audio sequence end"),
                4 => AudioTag::Ignored("multichannel config"),
                _ => AudioTag::Ignored("enhanced audio packet without media"),
            })
        }
        format @ (0..=8 | 11 | 14) => {
            // SoundRate: 5.5, 11, 22, 44 kHz; SoundSize: 8 or 16 bits; SoundType: mono or stereo.
            let flag_rate_hz = [5512, 11_025, 22_050, 44_100][usize::from((b0 >> 2) & 0x03)];
            let is_16_bit = b0 & 0x02 != 0;
            let flag_channels = 1 + (b0 & 0x01);
            let (codec, sample_rate_hz, channels) = match format {
                // Format 0 is "platform endian": little-endian in practice, as FFmpeg reads it.
                0 | 3 if is_16_bit => (
                    DecodableCodec::Pcm(PcmFormat::S16Le),
                    flag_rate_hz,
                    flag_channels,
                ),
                0 | 3 => (
                    DecodableCodec::Pcm(PcmFormat::U8),
                    flag_rate_hz,
                    flag_channels,
                ),
                1 => (DecodableCodec::AdpcmSwf, flag_rate_hz, flag_channels),
                2 => (DecodableCodec::Mp3, flag_rate_hz, flag_channels),
                14 => (DecodableCodec::Mp3, 8_000, flag_channels),
                4 => (DecodableCodec::Nellymoser, 16_000, 1),
                5 => (DecodableCodec::Nellymoser, 8_000, 1),
                6 => (DecodableCodec::Nellymoser, flag_rate_hz, flag_channels),
                7 => (DecodableCodec::G711Alaw, 8_000, flag_channels),
                8 => (DecodableCodec::G711Mulaw, 8_000, flag_channels),
                _ => (DecodableCodec::Speex, 16_000, 1),
            };
            Ok(AudioTag::Frames {
                codec,
                format: Some(AudioFormat {
                    sample_rate_hz,
                    channels,
                }),
                data: payload.slice(1..),
            })
        }
        format => Ok(AudioTag::Unsupported(
            legacy_sound_format_name(format).to_owned(),
        )),
    }
}

fn legacy_sound_format_name(format: u8) -> &'static str {
    match format {
        15 => "device-specific sound",
        _ => "unknown sound format",
    }
}

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

fn read_si24(b: &[u8]) -> i32 {
    // Sign-extend a big-endian 24-bit two's complement value.
    (i32::from(b[0]) << 24 | i32::from(b[1]) << 16 | i32::from(b[2]) << 8) >> 8
}

fn truncated(what: &'static str, need_bytes: usize, have_bytes: usize) -> FlvError {
    FlvError::Truncated {
        what,
        need_bytes,
        have_bytes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// avcC of a 64x48 constrained-baseline stream from libx264 (`ffmpeg -f lavfi -i
    /// testsrc2=size=64x48 -c:v libx264 -profile:v baseline -frames:v 1 -f flv`): version 1, profile 66,
    /// compat 0xC0, level 10, lengthSizeMinusOne 3, one 23-byte SPS, one 5-byte PPS.
    #[rustfmt::skip]
    const AVCC: [u8; 39] = [
        0x01, 0x42, 0xc0, 0x0a, 0xff, 0xe1, 0x00, 0x17,
        0x67, 0x42, 0xc0, 0x0a, 0xd9, 0x04, 0x7b, 0x01, 0x10, 0x00, 0x00, 0x03, 0x00, 0x10, 0x00, 0x00,
        0x03, 0x03, 0x20, 0xf1, 0x22, 0x64, 0x80,
        0x01, 0x00, 0x05, 0x68, 0xcb, 0x83, 0xcb, 0x20,
    ];

    /// hvcC of a 64x48 Main-profile stream from libx265 (mp4 `-tag:v hvc1`), trimmed to its VPS, SPS and
    /// PPS arrays (the x265 SEI array dropped, numOfArrays set to 3); lengthSizeMinusOne 3.
    #[rustfmt::skip]
    const HVCC: [u8; 109] = [
        0x01, 0x01, 0x60, 0x00, 0x00, 0x00, 0x90, 0x00, 0x00, 0x00, 0x00, 0x00, 0x1e, 0xf0, 0x00, 0xfc,
        0xfd, 0xf8, 0xf8, 0x00, 0x00, 0x0f, 0x03, 0xa0, 0x00, 0x01, 0x00, 0x18, 0x40, 0x01, 0x0c, 0x01,
        0xff, 0xff, 0x01, 0x60, 0x00, 0x00, 0x03, 0x00, 0x90, 0x00, 0x00, 0x03, 0x00, 0x00, 0x03, 0x00,
        0x1e, 0x95, 0x98, 0x09, 0xa1, 0x00, 0x01, 0x00, 0x29, 0x42, 0x01, 0x01, 0x01, 0x60, 0x00, 0x00,
        0x03, 0x00, 0x90, 0x00, 0x00, 0x03, 0x00, 0x00, 0x03, 0x00, 0x1e, 0xa0, 0x20, 0x83, 0x16, 0x59,
        0x59, 0xae, 0x4c, 0xaf, 0x01, 0x68, 0x08, 0x00, 0x00, 0x03, 0x00, 0x08, 0x00, 0x00, 0x03, 0x00,
        0xc8, 0x40, 0xa2, 0x00, 0x01, 0x00, 0x06, 0x44, 0x01, 0xc1, 0x73, 0xd0, 0x89,
    ];

    /// AudioSpecificConfig: AAC-LC (object type 2), 48 kHz (index 3), stereo: 00010 0011 0010 000.
    const ASC_48K_STEREO: [u8; 2] = [0x11, 0x90];

    fn tag(header: &[u8], body: &[u8]) -> Bytes {
        Bytes::from([header, body].concat())
    }

    fn frames(events: &[IngestEvent]) -> Vec<&Frame> {
        events
            .iter()
            .filter_map(|e| {
                if let IngestEvent::Frame(f) = e {
                    Some(f)
                } else {
                    None
                }
            })
            .collect()
    }

    #[test]
    fn flv_avc_negative_composition_time_header() {
        let t = tag(
            &[
                0x27, // FrameType 2 (inter) | CodecID 7 (AVC)
                0x01, // AVCPacketType 1 (NALU)
                0xFF, 0xFF, 0xDF, // CompositionTime SI24 = -33 ms
            ],
            &[0, 0, 0, 2, 0x41, 0x9A], // one 2-byte non-IDR slice NAL
        );
        match parse_video_tag(&t).unwrap() {
            VideoTag::Supported {
                codec,
                is_keyframe,
                packet:
                    VideoPacket::CodedFrames {
                        composition_time_ms,
                        ..
                    },
            } => {
                assert_eq!(
                    (codec, is_keyframe, composition_time_ms),
                    (VideoCodec::Avc, false, -33)
                );
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn flv_enhanced_hvc1_headers_parse() {
        let start = tag(
            &[
                0x90, // IsExHeader 1 | FrameType 1 (key) | PacketType 0 (SequenceStart)
                b'h', b'v', b'c', b'1', // FourCC
            ],
            &HVCC,
        );
        assert_eq!(
            parse_video_tag(&start).unwrap(),
            VideoTag::Supported {
                codec: VideoCodec::Hevc,
                is_keyframe: true,
                packet: VideoPacket::SequenceStart(Bytes::from_static(&HVCC)),
            }
        );
        let coded = tag(
            &[
                0xA1, // IsExHeader | FrameType 2 (inter) | PacketType 1 (CodedFrames)
                b'h', b'v', b'c', b'1', 0x00, 0x00, 0x50, // CompositionTime SI24 = 80 ms
            ],
            &[0, 0, 0, 3, 0x02, 0x01, 0xD0],
        );
        assert!(matches!(
            parse_video_tag(&coded).unwrap(),
            VideoTag::Supported {
                codec: VideoCodec::Hevc,
                is_keyframe: false,
                packet: VideoPacket::CodedFrames {
                    composition_time_ms: 80,
                    ..
                }
            }
        ));
        let coded_x = tag(&[0x93, b'h', b'v', b'c', b'1'], &[0, 0, 0, 1, 0x26]); // CodedFramesX, no cts
        assert!(matches!(
            parse_video_tag(&coded_x).unwrap(),
            VideoTag::Supported {
                is_keyframe: true,
                packet: VideoPacket::CodedFrames {
                    composition_time_ms: 0,
                    ..
                },
                ..
            }
        ));
        let metadata = tag(&[0x94, b'h', b'v', b'c', b'1'], &[0x02]);
        assert!(matches!(
            parse_video_tag(&metadata).unwrap(),
            VideoTag::Supported {
                packet: VideoPacket::Ignored(_),
                ..
            }
        ));
        let vp8 = tag(&[0x90, b'v', b'p', b'0', b'8'], &[]);
        assert_eq!(
            parse_video_tag(&vp8).unwrap(),
            VideoTag::Unsupported("fourcc vp08".into())
        );
        // av01 / vp09 coded frames have no composition time: the body follows the FourCC.
        let av1 = tag(&[0x91, b'a', b'v', b'0', b'1'], &[0x12, 0x00]);
        assert_eq!(
            parse_video_tag(&av1).unwrap(),
            VideoTag::Decodable {
                codec: DecodableCodec::Av1,
                is_keyframe: true,
                packet: VideoPacket::CodedFrames {
                    composition_time_ms: 0,
                    data: Bytes::from_static(&[0x12, 0x00]),
                },
            }
        );
        assert!(parse_video_tag(&tag(&[0x91, b'h', b'v'], &[])).is_err());
    }

    #[test]
    fn flv_audio_headers_parse() {
        let cfg = tag(&[0xAF, 0x00], &ASC_48K_STEREO); // AAC, 44 kHz flag, 16-bit, stereo; AACPacketType 0
        assert_eq!(
            parse_audio_tag(&cfg).unwrap(),
            AudioTag::AacConfig(Bytes::from_static(&ASC_48K_STEREO))
        );
        assert!(matches!(
            parse_audio_tag(&tag(&[0xAF, 0x01], &[1, 2])).unwrap(),
            AudioTag::AacFrame(_)
        ));
        // SoundFormat 2 (MP3) | SoundRate 3 (44 kHz) | SoundSize 1 (16-bit) | SoundType 1 (stereo).
        assert_eq!(
            parse_audio_tag(&tag(&[0x2F], &[0xFF, 0xFB])).unwrap(),
            AudioTag::Frames {
                codec: DecodableCodec::Mp3,
                format: Some(AudioFormat {
                    sample_rate_hz: 44_100,
                    channels: 2
                }),
                data: Bytes::from_static(&[0xFF, 0xFB]),
            }
        );
        // SoundFormat 14 (MP3 8 kHz), 11 (Speex: 16 kHz mono), 7 (G.711 A-law: 8 kHz) whatever the flags.
        for (b0, codec, rate, channels) in [
            (0xE6, DecodableCodec::Mp3, 8_000, 1),
            (0xB6, DecodableCodec::Speex, 16_000, 1),
            (0x73, DecodableCodec::G711Alaw, 8_000, 2),
            (0x0A, DecodableCodec::Pcm(PcmFormat::S16Le), 22_050, 1),
            (0x34, DecodableCodec::Pcm(PcmFormat::U8), 11_025, 1),
            (0x1D, DecodableCodec::AdpcmSwf, 44_100, 2),
            (0x52, DecodableCodec::Nellymoser, 8_000, 1),
        ] {
            assert_eq!(
                parse_audio_tag(&tag(&[b0], &[1])).unwrap(),
                AudioTag::Frames {
                    codec,
                    format: Some(AudioFormat {
                        sample_rate_hz: rate,
                        channels
                    }),
                    data: Bytes::from_static(&[1]),
                },
                "{b0:#04x}"
            );
        }
        assert_eq!(
            parse_audio_tag(&tag(&[0xF2], &[1])).unwrap(),
            AudioTag::Unsupported("device-specific sound".into())
        );
        let ex = tag(&[0x91, b'm', b'p', b'4', b'a'], &[1, 2]); // SoundFormat 9 (ex) | CodedFrames
        assert!(matches!(
            parse_audio_tag(&ex).unwrap(),
            AudioTag::AacFrame(_)
        ));
        assert!(parse_audio_tag(&Bytes::from_static(&[0xAF])).is_err());
    }

    #[test]
    fn flv_nal_length_rewrite_to_four_bytes() {
        let data = Bytes::from_static(&[0x00, 0x02, 0x65, 0x88, 0x00, 0x00, 0x00, 0x01, 0x06]);
        let (out, has_irap) = normalize_nal_units(data, 2, VideoCodec::Avc, 1 << 20).unwrap();
        // The empty NAL unit is dropped.
        assert_eq!(&out[..], &[0, 0, 0, 2, 0x65, 0x88, 0, 0, 0, 1, 0x06]);
        assert!(has_irap);
        let bad = Bytes::from_static(&[0x00, 0x09, 0x65]);
        assert_eq!(
            normalize_nal_units(bad, 2, VideoCodec::Avc, 1 << 20),
            Err(FlvError::BadNalLength { offset_bytes: 0 })
        );
    }

    #[test]
    fn flv_unsupported_codecs_are_reported_once_and_early_frames_dropped() {
        let mut p = FlvParser::new(1 << 20);
        let mut out = Vec::new();
        // SoundFormat 15 (device-specific) twice, screen video (codec id 3) twice.
        p.audio(0, &tag(&[0xF2], &[0x01, 0x02]), &mut out).unwrap();
        p.audio(23, &tag(&[0xF2], &[0x01, 0x02]), &mut out).unwrap();
        p.video(0, &tag(&[0x13], &[0x00]), &mut out).unwrap();
        p.video(40, &tag(&[0x23], &[0x00]), &mut out).unwrap();
        // Frames before their sequence headers.
        p.video(0, &tag(&[0x17, 1, 0, 0, 0], &[0, 0, 0, 1, 0x65]), &mut out)
            .unwrap();
        p.audio(0, &tag(&[0xAF, 1], &[0x21]), &mut out).unwrap();
        assert_eq!(out.len(), 2, "{out:?}");
        assert!(matches!(&out[0], IngestEvent::Unusable(u)
            if u.kind == TrackKind::Audio && u.codec == "device-specific sound"));
        assert!(matches!(&out[1], IngestEvent::Unusable(u)
            if u.kind == TrackKind::Video && u.codec == "screen video"));
        assert_eq!(p.stats().unsupported_tags, 4);
        assert_eq!(p.stats().frames_before_config, 2);
    }

    #[test]
    fn flv_multitrack_packets_are_skipped_without_disturbing_the_tracks() {
        let mut p = FlvParser::new(1 << 20);
        let mut out = Vec::new();
        p.audio(0, &tag(&[0xAF, 0], &ASC_48K_STEREO), &mut out)
            .unwrap();
        // SoundFormat 9 | AudioPacketType 5 (Multitrack); IsExHeader | PacketType 6 (Multitrack).
        p.audio(
            0,
            &tag(&[0x95, 0x00], &[b'm', b'p', b'4', b'a', 1]),
            &mut out,
        )
        .unwrap();
        p.video(
            0,
            &tag(&[0x96, 0x00], &[b'a', b'v', b'c', b'1', 1]),
            &mut out,
        )
        .unwrap();
        p.audio(21, &tag(&[0xAF, 1], &[0x21]), &mut out).unwrap();
        assert!(
            matches!(&out[..], [IngestEvent::Track(_), IngestEvent::Frame(_)]),
            "{out:?}"
        );
        assert_eq!(p.stats().unsupported_tags, 2);
    }

    fn tracks(events: &[IngestEvent]) -> Vec<&TrackInfo> {
        events
            .iter()
            .filter_map(|e| match e {
                IngestEvent::Track(t) => Some(t),
                _ => None,
            })
            .collect()
    }

    fn decodable(track: &TrackInfo) -> &DecodableConfig {
        match &track.config {
            CodecConfig::Decodable(d) => d,
            other => panic!("not decodable: {other:?}"),
        }
    }

    /// An MP3 frame as FFmpeg's libmp3lame sent it in FLV: header FF FB 94 44 (MPEG-1 Layer III,
    /// 128 kbit/s, 48 kHz, joint stereo), 384 bytes in all.
    fn mp3_frame() -> Vec<u8> {
        let mut f = vec![0xFF, 0xFB, 0x94, 0x44];
        f.resize(384, 0x55);
        f
    }

    #[test]
    fn flv_legacy_mp3_configures_from_its_frame_header_and_counts_samples() {
        let mut p = FlvParser::new(1 << 20);
        let mut out = Vec::new();
        // 0x2F: MP3, SoundRate 44 kHz (FLV has no 48 kHz flag), 16-bit, stereo. 1152 samples at 48 kHz
        // = 24 ms, so FFmpeg's RTMP timestamps are exact here: 0, 24, 48 …; one comes 1 ms late.
        for ts in [0, 24, 49, 72] {
            p.audio(ts, &tag(&[0x2F], &mp3_frame()), &mut out).unwrap();
        }
        let t = tracks(&out);
        assert_eq!(t.len(), 1);
        assert_eq!(t[0].timescale, 48_000);
        let d = decodable(t[0]);
        assert_eq!(d.codec, DecodableCodec::Mp3);
        assert_eq!(
            d.audio,
            Some(AudioFormat {
                sample_rate_hz: 48_000,
                channels: 2
            })
        );
        let f = frames(&out);
        assert_eq!(
            f.iter().map(|f| f.dts).collect::<Vec<_>>(),
            [0, 1152, 2304, 3456]
        );
        assert_eq!(f[0].data.len(), 384);
    }

    #[test]
    fn flv_enhanced_ac3_opus_and_flac_tracks() {
        // As FFmpeg 7+ sends them: AC-3 with an empty sequence start and a multichannel config, then
        // syncframes (0B 77 46 DF 1E 40 EB …: 48 kHz, 448 kbit/s, 3/2 + LFE).
        let mut p = FlvParser::new(1 << 20);
        let mut out = Vec::new();
        p.audio(0, &tag(&[0x90, b'a', b'c', b'-', b'3'], &[]), &mut out)
            .unwrap();
        p.audio(
            0,
            &tag(
                &[0x94, b'a', b'c', b'-', b'3'],
                &[0x01, 0x06, 0x00, 0x00, 0x06, 0x0F],
            ),
            &mut out,
        )
        .unwrap();
        let mut syncframe = vec![0x0B, 0x77, 0x46, 0xDF, 0x1E, 0x40, 0xEB, 0xF8];
        syncframe.resize(1792, 0);
        for ts in [0, 32, 64] {
            p.audio(
                ts,
                &tag(&[0x91, b'a', b'c', b'-', b'3'], &syncframe),
                &mut out,
            )
            .unwrap();
        }
        let t = tracks(&out);
        assert_eq!(t.len(), 1);
        assert_eq!(
            (
                decodable(t[0]).codec,
                decodable(t[0]).audio.map(|a| a.channels)
            ),
            (DecodableCodec::Ac3, Some(6))
        );
        let dts: Vec<i64> = frames(&out).iter().map(|f| f.dts).collect();
        assert_eq!(dts, [0, 1536, 3072]);

        // Opus: the sequence start is an OpusHead (RFC 7845 §5.1), stereo, pre-skip 312.
        #[rustfmt::skip]
        let opus_head = [
            b'O', b'p', b'u', b's', b'H', b'e', b'a', b'd', 0x01, 0x02, 0x38, 0x01,
            0x80, 0xBB, 0x00, 0x00, 0x00, 0x00, 0x00,
        ];
        let mut out = Vec::new();
        p.audio(
            0,
            &tag(&[0x91, b'O', b'p', b'u', b's'], &[0xFC, 0x01]),
            &mut out,
        )
        .unwrap(); // a packet before the sequence start: dropped
        p.audio(
            0,
            &tag(&[0x90, b'O', b'p', b'u', b's'], &opus_head),
            &mut out,
        )
        .unwrap();
        p.audio(
            0,
            &tag(&[0x91, b'O', b'p', b'u', b's'], &[0xFC, 0x01]),
            &mut out,
        )
        .unwrap();
        p.audio(
            21,
            &tag(&[0x91, b'O', b'p', b'u', b's'], &[0xFC, 0x02]),
            &mut out,
        )
        .unwrap();
        let t = tracks(&out);
        let d = decodable(t[0]);
        assert_eq!((d.codec, t[0].timescale), (DecodableCodec::Opus, 48_000));
        assert_eq!(&d.extradata[..], &opus_head);
        let dts: Vec<i64> = frames(&out).iter().map(|f| f.dts).collect();
        assert_eq!(dts, [0, 960]); // TOC 0xFC: one 20 ms CELT frame

        // FLAC: FFmpeg sends the bare STREAMINFO (48 kHz, 6 channels).
        #[rustfmt::skip]
        let streaminfo = [
            0x04, 0x00, 0x04, 0x00, 0x00, 0x00, 0x00, 0x00, 0x48, 0x2A, 0x0B, 0xB8, 0x0B, 0x70,
            0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        ];
        let mut out = Vec::new();
        p.audio(
            0,
            &tag(&[0x90, b'f', b'L', b'a', b'C'], &streaminfo),
            &mut out,
        )
        .unwrap();
        let t = tracks(&out);
        assert_eq!(
            (
                decodable(t[0]).codec,
                t[0].timescale,
                decodable(t[0]).audio.map(|a| a.channels)
            ),
            (DecodableCodec::Flac, 48_000, Some(6))
        );
    }

    #[test]
    fn flv_legacy_pcm_and_vp6_tracks() {
        let mut p = FlvParser::new(1 << 20);
        let mut out = Vec::new();
        // 0x3F: PCM little-endian, 44 kHz, 16-bit, stereo: 441 samples = 10 ms = 1764 bytes.
        for ts in [0, 10, 20] {
            p.audio(ts, &tag(&[0x3F], &[0u8; 1764]), &mut out).unwrap();
        }
        let t = tracks(&out);
        assert_eq!(
            (decodable(t[0]).codec, t[0].timescale),
            (DecodableCodec::Pcm(PcmFormat::S16Le), 44_100)
        );
        let dts: Vec<i64> = frames(&out).iter().map(|f| f.dts).collect();
        assert_eq!(dts, [0, 441, 882]);

        // VP6 (codec id 4): an inter frame before any keyframe is dropped; the keyframe announces the
        // track, sized from its header: adjustment 0x00, key frame, version 6 profile 3, 15 × 20
        // macroblocks.
        let mut out = Vec::new();
        p.video(0, &tag(&[0x24], &[0x00, 0xBE, 0x36]), &mut out)
            .unwrap();
        p.video(
            0,
            &tag(&[0x14], &[0x00, 0x3E, 0x36, 15, 20, 15, 20, 0xAA]),
            &mut out,
        )
        .unwrap();
        p.video(40, &tag(&[0x24], &[0x00, 0xBE, 0x01]), &mut out)
            .unwrap();
        let t = tracks(&out);
        assert_eq!(t.len(), 1);
        let d = decodable(t[0]);
        assert_eq!(
            (d.codec, &d.extradata[..]),
            (DecodableCodec::Vp6, &[0x00][..])
        );
        assert_eq!(d.video.map(|v| (v.width, v.height)), Some((320, 240)));
        let f = frames(&out);
        assert_eq!(f.len(), 2);
        assert!(f[0].is_keyframe && !f[1].is_keyframe);
        assert_eq!(&f[0].data[..], &[0x3E, 0x36, 15, 20, 15, 20, 0xAA]); // without the adjustment byte
        assert_eq!(f[1].dts, 3600);
        assert_eq!(p.stats().frames_before_config, 1);
    }

    // The tests below need the `media` crate's configuration record parsers.

    #[test]
    fn flv_avc_sequence_header_then_frames_with_negative_cts() {
        let mut p = FlvParser::new(1 << 20);
        let mut out = Vec::new();
        p.video(0, &tag(&[0x17, 0, 0, 0, 0], &AVCC), &mut out)
            .unwrap();
        // Same header again: no new Track event.
        p.video(0, &tag(&[0x17, 0, 0, 0, 0], &AVCC), &mut out)
            .unwrap();
        assert_eq!(out.len(), 1);
        match &out[0] {
            IngestEvent::Track(t) => {
                assert_eq!(&t.config.record()[..], &AVCC);
                assert_eq!(t.timescale, 90_000);
            }
            other => panic!("unexpected {other:?}"),
        }
        // Keyframe at 1000 ms with cts 66 ms, then an inter frame at 1033 ms with cts -33 ms.
        p.video(
            1000,
            &tag(&[0x17, 1, 0x00, 0x00, 0x42], &[0, 0, 0, 2, 0x65, 0x88]),
            &mut out,
        )
        .unwrap();
        p.video(
            1033,
            &tag(&[0x27, 1, 0xFF, 0xFF, 0xDF], &[0, 0, 0, 2, 0x41, 0x9A]),
            &mut out,
        )
        .unwrap();
        let f = frames(&out);
        assert_eq!(
            (f[0].dts, f[0].pts, f[0].is_keyframe),
            (90_000, 95_940, true)
        );
        assert_eq!(
            (f[1].dts, f[1].pts, f[1].is_keyframe),
            (92_970, 90_000, false)
        );
        assert_eq!(f[1].composition_offset(), -2970);
    }

    #[test]
    fn flv_changed_sequence_header_emits_new_track() {
        let mut p = FlvParser::new(1 << 20);
        let mut out = Vec::new();
        p.video(0, &tag(&[0x17, 0, 0, 0, 0], &AVCC), &mut out)
            .unwrap();
        p.video(0, &tag(&[0x90, b'h', b'v', b'c', b'1'], &HVCC), &mut out)
            .unwrap();
        p.video(
            40,
            &tag(&[0xA3, b'h', b'v', b'c', b'1'], &[0, 0, 0, 2, 0x26, 0x01]),
            &mut out,
        )
        .unwrap(); // FrameType 2
        assert!(matches!(&out[1], IngestEvent::Track(t) if t.config.record()[..] == HVCC));
        let f = frames(&out);
        assert_eq!((f[0].dts, f[0].is_keyframe), (3600, true)); // NAL type 19 (IDR_W_RADL) counts as key
    }

    #[test]
    fn flv_timestamps_unwrap_across_32_bits() {
        let mut p = FlvParser::new(1 << 20);
        let mut out = Vec::new();
        p.video(0xFFFF_FFF0, &tag(&[0x17, 0, 0, 0, 0], &AVCC), &mut out)
            .unwrap();
        p.video(
            0xFFFF_FFF0,
            &tag(&[0x17, 1, 0, 0, 0], &[0, 0, 0, 1, 0x65]),
            &mut out,
        )
        .unwrap();
        p.video(
            0x0000_0010,
            &tag(&[0x27, 1, 0, 0, 0], &[0, 0, 0, 1, 0x41]),
            &mut out,
        )
        .unwrap();
        let f = frames(&out);
        assert_eq!(f[0].dts, 0xFFFF_FFF0_i64 * 90);
        assert_eq!(f[1].dts, 0x1_0000_0010_i64 * 90);
    }

    #[test]
    fn flv_aac_durations_are_exact_despite_ms_rounding() {
        let mut p = FlvParser::new(1 << 20);
        let mut out = Vec::new();
        p.audio(0, &tag(&[0xAF, 0], &ASC_48K_STEREO), &mut out)
            .unwrap();
        assert!(matches!(&out[0], IngestEvent::Track(t) if t.timescale == 48_000));
        // 1024 samples at 48 kHz = 21.333 ms: RTMP timestamps go 1000, 1021, 1043, 1064, ...
        for i in 0..50u32 {
            let ts = 1000 + (i * 1024 * 1000 + 24_000) / 48_000;
            p.audio(ts, &tag(&[0xAF, 1], &[0x21, 0x10]), &mut out)
                .unwrap();
        }
        let f = frames(&out);
        assert_eq!(f[0].dts, 48_000);
        assert!(f.windows(2).all(|w| w[1].dts - w[0].dts == 1024));
        // A 2-second gap resynchronises to the message timestamp.
        p.audio(4000, &tag(&[0xAF, 1], &[0x21]), &mut out).unwrap();
        assert_eq!(frames(&out).last().unwrap().dts, 192_000);
        assert_eq!(p.stats().audio_resyncs, 1);
    }

    proptest! {
        #[test]
        fn flv_parser_never_panics(
            tags in proptest::collection::vec((any::<bool>(), any::<u32>(), proptest::collection::vec(any::<u8>(), 0..64)), 0..64)
        ) {
            let mut p = FlvParser::new(4096);
            let mut out = Vec::new();
            // Seed valid configs so frame paths are reached too.
            let _ = p.video(0, &tag(&[0x17, 0, 0, 0, 0], &AVCC), &mut out);
            let _ = p.audio(0, &tag(&[0xAF, 0], &ASC_48K_STEREO), &mut out);
            for (is_video, ts, body) in tags {
                let body = Bytes::from(body);
                let _ = if is_video { p.video(ts, &body, &mut out) } else { p.audio(ts, &body, &mut out) };
            }
        }
    }
}
