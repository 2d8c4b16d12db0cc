//! FLV tag bodies — the payloads of RTMP video and audio messages — to [`IngestEvent`]s, sans-IO.
//!
//! Formats: Adobe Flash Video File Format Specification 10.1 §E.4.2 (AUDIODATA) and §E.4.3 (VIDEODATA,
//! with AVCVIDEOPACKET), and the Veovera Enhanced RTMP specification (v1 `ExVideoTagHeader`, v2
//! `ExAudioTagHeader`). Supported codecs: H.264 (legacy codec id 7, or FourCC `avc1`), H.265 (FourCC
//! `hvc1`, and the common non-standard legacy codec id 12) and AAC (sound format 10, or FourCC `mp4a`).
//! Anything else is logged once and ignored.
//!
//! Timing: RTMP timestamps are 32-bit milliseconds, unwrapped here (one [`Unwrapper`] per publish, shared by
//! audio and video since they share the clock). Video is rescaled to 90 kHz (`pts = dts + composition
//! time`). AAC DTS is counted in samples at the sample rate from the first frame's timestamp, so frame
//! durations are exactly `samples_per_frame`; it resynchronises to the message timestamp when the two drift
//! apart by more than two frames.
//!
//! What it does not do: no I/O, no clock; it does not parse SPS/PPS itself (the `media` crate does) nor
//! reorder frames.

use bytes::{BufMut, Bytes, BytesMut};
use media::time::{Unwrapper, rescale};
use media::{CodecConfig, Frame, MediaError, MediaTime, TrackInfo, TrackKind};

use super::IngestEvent;

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
    /// An unsupported codec, named for the log.
    Unsupported(String),
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
        return Ok(VideoTag::Unsupported(format!(
            "enhanced rtmp {what} video packet"
        )));
    }
    let codec = match fourcc {
        b"avc1" => VideoCodec::Avc,
        b"hvc1" => VideoCodec::Hevc,
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
    /// Nothing to use (AAC sequence end, multichannel config).
    Ignored(&'static str),
    /// An unsupported audio codec, named for the log.
    Unsupported(String),
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
                return Ok(AudioTag::Unsupported(
                    "enhanced rtmp multitrack/modex audio packet".to_owned(),
                ));
            }
            let fourcc = &payload[1..5];
            if fourcc != b"mp4a" {
                return Ok(AudioTag::Unsupported(format!(
                    "fourcc {}",
                    String::from_utf8_lossy(fourcc)
                )));
            }
            Ok(match packet_type {
                0 => AudioTag::AacConfig(payload.slice(5..)),
                1 => AudioTag::AacFrame(payload.slice(5..)),
                _ => AudioTag::Ignored("enhanced audio packet without media"),
            })
        }
        format => Ok(AudioTag::Unsupported(
            legacy_sound_format_name(format).to_owned(),
        )),
    }
}

fn legacy_sound_format_name(format: u8) -> &'static str {
    match format {
        0 | 3 => "linear pcm",
        1 => "adpcm",
        2 | 14 => "mp3",
        4..=6 => "nellymoser",
        7 => "g.711 a-law",
        8 => "g.711 mu-law",
        11 => "speex",
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

#[derive(Debug)]
struct VideoConfig {
    codec: VideoCodec,
    record: Bytes,
    nal_length_size: u8,
}

#[derive(Debug)]
struct AudioConfig {
    asc: Bytes,
    sample_rate: u32,
    samples_per_frame: u32,
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
    has_logged_unsupported_video: bool,
    has_logged_unsupported_audio: bool,
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
            has_logged_unsupported_video: false,
            has_logged_unsupported_audio: false,
        }
    }

    /// Counters so far.
    pub fn stats(&self) -> FlvStats {
        self.stats
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
            VideoTag::Unsupported(name) => {
                self.stats.unsupported_tags += 1;
                if !std::mem::replace(&mut self.has_logged_unsupported_video, true) {
                    tracing::warn!(codec = %name, "unsupported video codec, ignoring the video track");
                }
                return Ok(());
            }
        };
        match packet {
            VideoPacket::SequenceStart(record) => self.video_config(codec, record, out),
            VideoPacket::CodedFrames {
                composition_time_ms,
                data,
            } => {
                let Some(config) = self.video.as_ref().filter(|c| c.codec == codec) else {
                    self.frame_before_config(TrackKind::Video);
                    return Ok(());
                };
                let (data, has_irap) =
                    normalize_nal_units(data, config.nal_length_size, codec, self.max_frame_bytes)?;
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
        if self
            .video
            .as_ref()
            .is_some_and(|c| c.codec == codec && c.record == record)
        {
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
            CodecConfig::Aac(_) => 0,
        };
        if !(1..=4).contains(&nal_length_size) {
            return Err(FlvError::NalLengthSize(nal_length_size));
        }
        tracing::debug!(codec = %info.config.rfc6381(), nal_length_size, "video sequence header");
        self.video = Some(VideoConfig {
            codec,
            record,
            nal_length_size,
        });
        out.push(IngestEvent::Track(info));
        Ok(())
    }

    /// Handle one RTMP audio message (type 8): `timestamp_ms` is its 32-bit timestamp, `payload` the FLV
    /// audio tag body. Appends 0..=1 events to `out`. On error the tag is dropped.
    pub fn audio(
        &mut self,
        timestamp_ms: u32,
        payload: &Bytes,
        out: &mut Vec<IngestEvent>,
    ) -> Result<(), FlvError> {
        let ts_ms = self.timestamps.unwrap(u64::from(timestamp_ms));
        match parse_audio_tag(payload)? {
            AudioTag::AacConfig(asc) => {
                if self.audio.as_ref().is_some_and(|c| c.asc == asc) {
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
                self.audio = Some(AudioConfig {
                    asc,
                    sample_rate: aac.sample_rate,
                    samples_per_frame: aac.samples_per_frame,
                    next_dts: None,
                });
                out.push(IngestEvent::Track(info));
                Ok(())
            }
            AudioTag::AacFrame(data) => {
                let Some(config) = self.audio.as_mut() else {
                    self.frame_before_config(TrackKind::Audio);
                    return Ok(());
                };
                if data.is_empty() {
                    return Ok(());
                }
                let spf = i64::from(config.samples_per_frame);
                let expected = rescale(ts_ms, 1000, config.sample_rate);
                let dts = match config.next_dts {
                    Some(next) if (next - expected).abs() <= 2 * spf => next,
                    Some(next) => {
                        self.stats.audio_resyncs += 1;
                        tracing::debug!(drift_samples = next - expected, "audio timestamp resync");
                        expected
                    }
                    None => expected,
                };
                config.next_dts = Some(dts + spf);
                self.stats.audio_frames += 1;
                out.push(IngestEvent::Frame(Frame {
                    track: TrackKind::Audio,
                    dts,
                    pts: dts,
                    is_keyframe: true,
                    data,
                }));
                Ok(())
            }
            AudioTag::Ignored(what) => {
                tracing::trace!(what, "ignoring audio packet");
                Ok(())
            }
            AudioTag::Unsupported(name) => {
                self.stats.unsupported_tags += 1;
                if !std::mem::replace(&mut self.has_logged_unsupported_audio, true) {
                    tracing::warn!(codec = %name, "unsupported audio codec, ignoring the audio track");
                }
                Ok(())
            }
        }
    }

    fn frame_before_config(&mut self, kind: TrackKind) {
        self.stats.frames_before_config += 1;
        if !std::mem::replace(&mut self.has_logged_early_frame, true) {
            tracing::debug!(track = ?kind, "dropping frames received before their sequence header");
        }
    }
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
        let av1 = tag(&[0x90, b'a', b'v', b'0', b'1'], &[]);
        assert_eq!(
            parse_video_tag(&av1).unwrap(),
            VideoTag::Unsupported("fourcc av01".into())
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
        assert_eq!(
            parse_audio_tag(&tag(&[0x2F], &[0xFF, 0xFB])).unwrap(),
            AudioTag::Unsupported("mp3".into())
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
    fn flv_unsupported_audio_and_early_frames_are_dropped() {
        let mut p = FlvParser::new(1 << 20);
        let mut out = Vec::new();
        p.audio(0, &tag(&[0x2F], &[0xFF, 0xFB, 0x90]), &mut out)
            .unwrap();
        p.audio(23, &tag(&[0x2F], &[0xFF, 0xFB, 0x90]), &mut out)
            .unwrap();
        p.video(0, &tag(&[0x17, 1, 0, 0, 0], &[0, 0, 0, 1, 0x65]), &mut out)
            .unwrap();
        p.audio(0, &tag(&[0xAF, 1], &[0x21]), &mut out).unwrap();
        assert!(out.is_empty());
        assert_eq!(p.stats().unsupported_tags, 2);
        assert_eq!(p.stats().frames_before_config, 2);
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
