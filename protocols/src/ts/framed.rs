//! Audio elementary streams split by their own frame headers, decoded downstream: MPEG audio
//! (stream_type 0x03, 0x04; ISO/IEC 11172-3 / 13818-3 frame headers), AAC in LATM (0x11; LOAS sync
//! layer, ISO/IEC 14496-3 §1.7, configured by its StreamMuxConfig), AC-3 and E-AC-3 (0x81, 0x87, or
//! 0x06 with an AC-3 / E-AC-3 descriptor; ATSC A/52 syncinfo, ETSI TS 102 366 Annex A for the DVB
//! signalling) and Opus (0x06 with an `Opus` registration descriptor; each access unit behind an
//! `opus_control_header`, as the Xiph.org "Encapsulation of Opus in MPEG-2 Transport Stream"
//! specification defines it).
//!
//! Every frame of a PES becomes one [`Frame`] (an E-AC-3 independent substream frame together with the
//! dependent substream frames after it); a frame split across PES packets is carried over. The track is
//! configured from the first frame header (sample rate, channels), and again when they change. Timestamps
//! are in samples, as for AAC: the first frame starting in a PES gets the PES PTS, the following ones the
//! previous one's plus its sample count, unless the PES PTS drifts from that count by more than two frames.

use bytes::Bytes;
use media::ac3::{Ac3Header, is_ac3_sync};
use media::decodable::{opus_head, opus_packet_samples};
use media::latm::{LoasFrame, is_loas_sync};
use media::mpeg_audio::{MpegAudioHeader, is_mpeg_audio_sync};
use media::{
    AudioFormat, CodecConfig, DecodableCodec, DecodableConfig, Frame, MediaError, TrackInfo,
    TrackKind,
};

use super::frame_split::{AudioFraming, FrameSplitter};
use super::{Ctx, once};
use crate::IngestEvent;

/// The longest frame carried over from one PES to the next (bytes): more than any MPEG audio frame
/// (≤ 2 KiB), AC-3 or E-AC-3 syncframe (≤ 4 KiB) or Opus access unit (≤ 120 ms of 510 kbit/s).
pub(super) const MAX_FRAME_BYTES: usize = 64 * 1024;

/// How an elementary stream is framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Framing {
    /// MPEG-1/2 audio, any layer.
    MpegAudio,
    /// MPEG-4 AAC in LATM with the LOAS sync layer.
    Latm,
    /// AC-3 or E-AC-3 (told apart by each syncframe's bsid).
    Ac3,
    /// Opus with `channels` channels (from the extension descriptor's channel_config_code).
    Opus {
        /// 1 to 8.
        channels: u8,
    },
}

/// One frame found at the start of the data.
#[derive(Debug, Clone, Copy)]
struct Unit {
    /// Bytes before the frame that the decoder does not take (the Opus control header).
    header_bytes: usize,
    /// The whole unit, header included.
    total_bytes: usize,
    /// Samples per channel.
    samples: u32,
    codec: DecodableCodec,
    format: AudioFormat,
    /// An E-AC-3 dependent substream, part of the access unit before it.
    is_dependent: bool,
}

impl AudioFraming for Framing {
    fn is_sync(&self, data: &[u8]) -> bool {
        match self {
            Framing::MpegAudio => is_mpeg_audio_sync(data),
            Framing::Latm => is_loas_sync(data),
            Framing::Ac3 => is_ac3_sync(data),
            // opus_control_header_prefix: 11 bits 0x3FF.
            Framing::Opus { .. } => match data {
                [0x7F] => true,
                [0x7F, b1, ..] => b1 & 0xE0 == 0xE0,
                _ => false,
            },
        }
    }

    fn frame_len(&self, data: &[u8]) -> Result<usize, MediaError> {
        self.unit(data).map(|unit| unit.total_bytes)
    }
}

impl Framing {
    /// The frame at the start of `data`; [`MediaError::Truncated`] when more bytes are needed.
    fn unit(self, data: &[u8]) -> Result<Unit, MediaError> {
        match self {
            Framing::MpegAudio => MpegAudioHeader::parse(data).map(|h| Unit {
                header_bytes: 0,
                total_bytes: h.frame_bytes,
                samples: h.samples_per_frame,
                codec: h.codec,
                format: AudioFormat {
                    sample_rate_hz: h.sample_rate_hz,
                    channels: h.channels,
                },
                is_dependent: false,
            }),
            // A frame without a StreamMuxConfig uses the last one: its format is filled in later.
            Framing::Latm => LoasFrame::parse(data).map(|f| Unit {
                header_bytes: 0,
                total_bytes: f.frame_bytes,
                samples: f.config.map_or(0, |c| c.samples_per_frame),
                codec: DecodableCodec::AacLatm,
                format: f.config.map_or(
                    AudioFormat {
                        sample_rate_hz: 0,
                        channels: 0,
                    },
                    |c| c.format,
                ),
                is_dependent: false,
            }),
            Framing::Ac3 => Ac3Header::parse(data).map(|h| Unit {
                header_bytes: 0,
                total_bytes: h.frame_bytes,
                samples: if h.is_dependent {
                    0
                } else {
                    h.samples_per_frame
                },
                codec: h.codec,
                format: AudioFormat {
                    sample_rate_hz: h.sample_rate_hz,
                    channels: h.channels,
                },
                is_dependent: h.is_dependent,
            }),
            Framing::Opus { channels } => opus_unit(data, channels),
        }
    }
}

/// An Opus access unit behind its control header: opus_control_header_prefix u11 (0x3FF),
/// start_trim_flag u1, end_trim_flag u1, control_extension_flag u1, reserved u2, au_size as a run of
/// 0xFF bytes plus a final byte (their sum), start_trim u16 and end_trim u16 if flagged,
/// control_extension_length u8 and its bytes if flagged, then au_size bytes of Opus packet.
fn opus_unit(data: &[u8], channels: u8) -> Result<Unit, MediaError> {
    const WHAT: &str = "opus_control_header";
    let truncated = |need: usize| MediaError::Truncated {
        what: WHAT,
        need,
        have: data.len(),
    };
    if data.len() < 2 {
        return Err(truncated(2));
    }
    if data[0] != 0x7F || data[1] & 0xE0 != 0xE0 {
        return Err(MediaError::Invalid {
            what: WHAT,
            field: "opus_control_header_prefix",
            value: u64::from(data[0]) << 8 | u64::from(data[1]),
        });
    }
    let flags = data[1];
    let mut pos = 2;
    let mut au_bytes = 0usize;
    loop {
        let b = *data.get(pos).ok_or(truncated(pos + 1))?;
        pos += 1;
        au_bytes += usize::from(b);
        if b != 0xFF {
            break;
        }
    }
    if flags & 0x10 != 0 {
        pos += 2; // start_trim
    }
    if flags & 0x08 != 0 {
        pos += 2; // end_trim
    }
    if flags & 0x04 != 0 {
        let len = *data.get(pos).ok_or(truncated(pos + 1))?;
        pos += 1 + usize::from(len);
    }
    let total_bytes = pos + au_bytes;
    let packet = data.get(pos..total_bytes).ok_or(truncated(total_bytes))?;
    let samples = opus_packet_samples(packet).ok_or(MediaError::Invalid {
        what: "Opus packet",
        field: "TOC",
        value: u64::from(packet.first().copied().unwrap_or(0)),
    })?;
    Ok(Unit {
        header_bytes: pos,
        total_bytes,
        samples,
        codec: DecodableCodec::Opus,
        format: AudioFormat {
            sample_rate_hz: 48_000,
            channels,
        },
        is_dependent: false,
    })
}

/// A framed audio elementary stream's state.
#[derive(Debug)]
pub(super) struct FramedAudioEs {
    framing: Framing,
    /// The configuration of the track announced last.
    config: Option<(DecodableCodec, AudioFormat)>,
    /// Samples per frame of the last configuration (LATM frames without one use it).
    samples_per_frame: u32,
    /// DTS of the next frame, in samples (sample-rate ticks).
    next_dts: Option<i64>,
    /// An access unit waiting for dependent substreams (E-AC-3): (DTS, samples, bytes).
    pending: Option<(i64, u32, Vec<u8>)>,
    /// Frames across PES boundaries (carrying at most [`MAX_FRAME_BYTES`]).
    pub(super) frames: FrameSplitter,
}

impl FramedAudioEs {
    pub(super) fn new(framing: Framing) -> Self {
        Self {
            framing,
            config: None,
            samples_per_frame: 0,
            next_dts: None,
            pending: None,
            frames: FrameSplitter::default(),
        }
    }

    /// One complete, intact PES.
    pub(super) fn pes(&mut self, payload: &[u8], timing: Option<super::Timing>, ctx: &mut Ctx<'_>) {
        let mut frames = std::mem::take(&mut self.frames);
        let framing = self.framing;
        let pts_90khz = timing.map(|t| t.pts_90khz);
        let errors = frames.split(
            &framing,
            MAX_FRAME_BYTES,
            payload,
            pts_90khz,
            |bytes, anchor| {
                if let Ok(unit) = framing.unit(bytes) {
                    self.unit(unit, bytes, anchor, ctx);
                }
            },
        );
        self.frames = frames;
        self.flush_pending(ctx);
        ctx.stats.audio_sync_errors += errors.count;
        if let Some(error) = errors.first
            && once(&mut ctx.logged.audio_sync_error)
        {
            tracing::warn!(%error, "audio frame skipped (further ones counted)");
        }
    }

    /// One whole unit; `anchor_90khz` is the PES PTS if this is the first unit starting in it.
    fn unit(&mut self, mut unit: Unit, bytes: &[u8], anchor_90khz: Option<i64>, ctx: &mut Ctx<'_>) {
        let frame = &bytes[unit.header_bytes..];
        if unit.samples == 0 && !unit.is_dependent {
            // A LATM frame that reuses the previous StreamMuxConfig.
            match self.config {
                Some((_, format)) if self.samples_per_frame > 0 => {
                    unit.format = format;
                    unit.samples = self.samples_per_frame;
                }
                _ => {
                    ctx.stats.frames_before_config += 1;
                    return;
                }
            }
        }
        if unit.is_dependent {
            match &mut self.pending {
                Some((_, _, data)) if data.len() + frame.len() <= MAX_FRAME_BYTES => {
                    data.extend_from_slice(frame)
                }
                _ => ctx.stats.audio_sync_errors += 1, // no independent frame to attach it to
            }
            return;
        }
        self.flush_pending(ctx);
        if unit.format.sample_rate_hz == 0 || unit.samples == 0 {
            return;
        }
        if self.config != Some((unit.codec, unit.format)) {
            let extradata = match unit.codec {
                DecodableCodec::Opus => opus_head(unit.format.channels).unwrap_or_default(),
                _ => Bytes::new(),
            };
            tracing::debug!(
                codec = unit.codec.name(),
                sample_rate_hz = unit.format.sample_rate_hz,
                channels = unit.format.channels,
                "mpeg-ts audio config"
            );
            self.next_dts = None;
            ctx.out
                .push(IngestEvent::Track(TrackInfo::new(CodecConfig::Decodable(
                    DecodableConfig::audio(unit.codec, extradata, unit.format),
                ))));
            self.config = Some((unit.codec, unit.format));
        }
        self.samples_per_frame = unit.samples;
        let rate = unit.format.sample_rate_hz;
        let spf = i64::from(unit.samples);
        let Some(dts) = super::audio::next_audio_dts(self.next_dts, anchor_90khz, (rate, spf), ctx)
        else {
            return;
        };
        self.next_dts = Some(dts + spf);
        self.pending = Some((dts, unit.samples, frame.to_vec()));
    }

    /// Emit the access unit waiting for dependent substreams.
    fn flush_pending(&mut self, ctx: &mut Ctx<'_>) {
        if let Some((dts, _, data)) = self.pending.take() {
            ctx.frame(Frame {
                track: TrackKind::Audio,
                dts,
                pts: dts,
                is_keyframe: true,
                data: Bytes::from(data),
            });
        }
    }

    /// Data was lost, or the stream ends: forget the partial frame.
    pub(super) fn reset(&mut self) {
        self.frames.clear();
        self.pending = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opus_control_header_fields() {
        // 7F E0: prefix, no trims, no extension; au_size 0xFF + 0x02 = 257; a 257-byte packet whose TOC
        // 0xFC is one 20 ms CELT frame.
        let mut au = vec![0x7F, 0xE0, 0xFF, 0x02, 0xFC];
        au.resize(4 + 257, 0xAA);
        let unit = opus_unit(&au, 2).unwrap();
        assert_eq!(
            (unit.header_bytes, unit.total_bytes, unit.samples),
            (4, 261, 960)
        );
        // 7F F0: start_trim present (2 bytes); au_size 3.
        let trimmed = [0x7F, 0xF0, 0x03, 0x00, 0x50, 0x00, 0x01, 0x02]; // TOC 0x00: SILK NB 10 ms
        let unit = opus_unit(&trimmed, 1).unwrap();
        assert_eq!(
            (unit.header_bytes, unit.total_bytes, unit.samples),
            (5, 8, 480)
        );
        assert!(matches!(
            opus_unit(&au[..100], 2),
            Err(MediaError::Truncated { .. })
        ));
        assert!(matches!(
            opus_unit(&[0x7F, 0x00, 0x01, 0xFC], 2),
            Err(MediaError::Invalid { .. })
        ));
    }
}
