//! FLV tag headers (Adobe Flash Video File Format Specification 10.1 §E.4.2 AUDIODATA, §E.4.3 VIDEODATA;
//! Veovera Enhanced RTMP `ExVideoTagHeader` / `ExAudioTagHeader`): which codec and packet a tag body
//! carries, and where its payload starts. Pure: no state; the [`super::FlvParser`] acts on the result.

use bytes::Bytes;
use media::{AudioFormat, DecodableCodec, PcmFormat};

use super::FlvError;

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

pub(super) fn read_si24(b: &[u8]) -> i32 {
    // Sign-extend a big-endian 24-bit two's complement value.
    (i32::from(b[0]) << 24 | i32::from(b[1]) << 16 | i32::from(b[2]) << 8) >> 8
}

pub(super) fn truncated(what: &'static str, need_bytes: usize, have_bytes: usize) -> FlvError {
    FlvError::Truncated {
        what,
        need_bytes,
        have_bytes,
    }
}
