//! PES packets (ISO/IEC 13818-1 §2.4.3.6–7): header parsing and per-PID reassembly, handing complete
//! PES payloads to the codec state.

use media::DecodableCodec;

use super::audio::AudioEs;
use super::framed::{FramedAudioEs, Framing};
use super::packet::{CcCheck, Continuity, Packet};
use super::video::{EsVideoCodec, VideoEs};
use super::{Ctx, once};

/// The PES header fields we use (§2.4.3.6–7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct PesHeader {
    /// PTS, raw 33-bit 90 kHz.
    pts_90khz: Option<u64>,
    /// DTS, raw 33-bit 90 kHz.
    dts_90khz: Option<u64>,
    /// Where the elementary stream data starts.
    payload_offset_bytes: usize,
}

/// Parse a PES header: packet_start_code_prefix u24 = 0x000001, stream_id u8, PES_packet_length u16;
/// then, except for the stream_ids without one (Table 2-21: program_stream_map, padding,
/// private_stream_2, ECM, EMM, DSMCC, H.222.1 type E, directory), '10' u2, scrambling/priority/alignment/
/// copyright/original u6, PTS_DTS_flags u2, six more flags u6, PES_header_data_length u8, and the optional
/// fields, PTS (and DTS) first: '001x' u4, ts[32..30] u3, marker, ts[29..15] u15, marker, ts[14..0] u15,
/// marker. Marker bits are not checked. `None` if it is not a PES header.
fn parse_pes_header(data: &[u8]) -> Option<PesHeader> {
    if data.len() < 6 || data[..3] != [0, 0, 1] {
        return None;
    }
    if matches!(
        data[3],
        0xBC | 0xBE | 0xBF | 0xF0 | 0xF1 | 0xF2 | 0xF8 | 0xFF
    ) {
        return Some(PesHeader {
            pts_90khz: None,
            dts_90khz: None,
            payload_offset_bytes: 6,
        });
    }
    if data.len() < 9 || data[6] & 0xC0 != 0x80 {
        return None;
    }
    let payload_offset_bytes = 9 + usize::from(data[8]);
    let fields = data.get(9..payload_offset_bytes)?;
    let (pts, dts) = match data[7] >> 6 {
        0b10 => (Some(read_timestamp(fields.get(..5)?)), None),
        0b11 => (
            Some(read_timestamp(fields.get(..5)?)),
            Some(read_timestamp(fields.get(5..10)?)),
        ),
        _ => (None, None),
    };
    Some(PesHeader {
        pts_90khz: pts,
        dts_90khz: dts,
        payload_offset_bytes,
    })
}

/// A 33-bit PTS/DTS from its 5-byte field (§2.4.3.7).
fn read_timestamp(b: &[u8]) -> u64 {
    (u64::from(b[0] >> 1) & 0x07) << 30
        | u64::from(b[1]) << 22
        | u64::from(b[2] >> 1) << 15
        | u64::from(b[3]) << 7
        | u64::from(b[4] >> 1)
}

/// What an elementary stream in use carries, as the PMT says (stream_type and descriptors).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum EsKind {
    /// H.264, HEVC, MPEG-1 or MPEG-2 video.
    Video(EsVideoCodec),
    /// AAC in ADTS.
    Adts,
    /// Audio split by its own frame headers (MPEG audio, AC-3, E-AC-3, Opus).
    Framed(Framing),
}

impl EsKind {
    /// True for a video stream.
    pub(super) fn is_video(self) -> bool {
        matches!(self, EsKind::Video(_))
    }
}

/// One elementary stream in use: its PES reassembly and codec state.
#[derive(Debug)]
pub(super) struct EsStream {
    pub(super) pid: u16,
    pub(super) kind: EsKind,
    cc: Continuity,
    pub(super) pes: PesBuffer,
    pub(super) codec: EsCodec,
}

#[derive(Debug)]
pub(super) enum EsCodec {
    Video(VideoEs),
    Audio(AudioEs),
    Framed(FramedAudioEs),
}

/// A PES being reassembled.
#[derive(Debug, Default)]
pub(super) struct PesBuffer {
    /// The PES so far, header included; at most `max_pes_bytes`.
    pub(super) data: Vec<u8>,
    is_active: bool,
    /// A packet of it was lost: drop it when complete.
    is_broken: bool,
    /// It outgrew `max_pes_bytes`: the rest is not buffered; drop it when complete.
    is_oversize: bool,
    /// Its first packet had random_access_indicator set.
    is_random_access: bool,
    /// 6 + PES_packet_length, when that is not 0.
    total_bytes: Option<usize>,
}

impl EsStream {
    /// State for a stream of `kind` on `pid`.
    pub(super) fn new(pid: u16, kind: EsKind) -> Self {
        let codec = match kind {
            EsKind::Video(codec) => EsCodec::Video(VideoEs::new(codec)),
            EsKind::Adts => EsCodec::Audio(AudioEs::default()),
            EsKind::Framed(framing) => EsCodec::Framed(FramedAudioEs::new(framing)),
        };
        Self {
            pid,
            kind,
            cc: Continuity::default(),
            pes: PesBuffer::default(),
            codec,
        }
    }

    pub(super) fn packet(&mut self, p: &Packet<'_>, ctx: &mut Ctx<'_>) {
        match self.cc.check(p) {
            CcCheck::Duplicate => return,
            CcCheck::Gap => {
                ctx.stats.cc_errors += 1;
                if once(&mut ctx.logged.cc_error) {
                    tracing::warn!(
                        pid = self.pid,
                        "mpeg-ts continuity error: packets lost (further ones counted)"
                    );
                }
                if self.pes.is_active {
                    self.pes.is_broken = true;
                }
                // Whatever was lost (even a whole access unit whose start never arrived), the pictures
                // after it may reference it: video waits for the next keyframe.
                if let EsCodec::Video(v) = &mut self.codec {
                    v.await_keyframe(ctx);
                }
            }
            CcCheck::InOrder => {}
        }
        if p.payload.is_empty() {
            return;
        }
        if p.is_unit_start {
            if self.pes.is_active {
                self.complete(ctx);
            }
            let pes = &mut self.pes;
            pes.data.clear();
            pes.is_active = true;
            pes.is_broken = false;
            pes.is_oversize = false;
            pes.is_random_access = p.is_random_access;
            pes.total_bytes = None;
        } else if !self.pes.is_active || self.pes.is_broken || self.pes.is_oversize {
            return;
        }
        let pes = &mut self.pes;
        if pes.data.len() + p.payload.len() > ctx.max_pes_bytes {
            pes.is_oversize = true;
            return;
        }
        let had_length = pes.data.len() >= 6;
        pes.data.extend_from_slice(p.payload);
        if !had_length && pes.data.len() >= 6 {
            let len = usize::from(u16::from_be_bytes([pes.data[4], pes.data[5]]));
            pes.total_bytes = (len != 0).then_some(6 + len);
        }
        if let Some(total) = pes.total_bytes
            && pes.data.len() >= total
        {
            pes.data.truncate(total);
            self.complete(ctx);
        }
    }

    /// The PES in `self.pes` is complete: hand its payload to the codec, or drop it.
    fn complete(&mut self, ctx: &mut Ctx<'_>) {
        let pes = &mut self.pes;
        pes.is_active = false;
        if pes.is_oversize {
            ctx.stats.pes_oversize += 1;
            ctx.stats.pes_dropped += 1;
            if once(&mut ctx.logged.oversize) {
                tracing::warn!(
                    pid = self.pid,
                    max_pes_bytes = ctx.max_pes_bytes,
                    "mpeg-ts pes over the size limit dropped (further ones counted)"
                );
            }
            self.codec.lost(ctx);
            return;
        }
        let Some(header) = parse_pes_header(&pes.data) else {
            ctx.drop_pes(self.pid, "no pes header");
            self.codec.lost(ctx);
            return;
        };
        if pes.is_broken {
            ctx.drop_pes(self.pid, "packets lost");
            match &mut self.codec {
                // A new access unit: what is held is complete.
                EsCodec::Video(v) if header.pts_90khz.is_some() => v.flush_held(ctx),
                codec => codec.lost(ctx),
            }
            return;
        }
        let timing = header
            .pts_90khz
            .map(|pts| ctx.timing(pts, header.dts_90khz));
        let payload = &pes.data[header.payload_offset_bytes..];
        match &mut self.codec {
            EsCodec::Video(v) => v.pes(
                self.pid,
                payload,
                timing,
                pes.total_bytes.is_some(),
                pes.is_random_access,
                ctx,
            ),
            EsCodec::Audio(a) => a.pes(payload, timing, ctx),
            EsCodec::Framed(a) => a.pes(payload, timing, ctx),
        }
    }

    /// End of input or of this stream: emit what is buffered.
    pub(super) fn finish(&mut self, ctx: &mut Ctx<'_>) {
        if self.pes.is_active {
            self.complete(ctx);
        }
        self.pes.data.clear();
        match &mut self.codec {
            EsCodec::Video(v) => v.flush_held(ctx),
            EsCodec::Audio(a) => a.frames.clear(),
            EsCodec::Framed(a) => a.reset(),
        }
    }
}

impl EsCodec {
    /// Data of this stream was lost: drop what depended on it.
    pub(super) fn lost(&mut self, ctx: &mut Ctx<'_>) {
        match self {
            EsCodec::Video(v) => {
                if v.held.take().is_some() {
                    ctx.stats.pes_dropped += 1;
                }
                v.await_keyframe(ctx);
            }
            EsCodec::Audio(a) => a.frames.clear(),
            EsCodec::Framed(a) => a.reset(),
        }
    }
}

/// The decodable video codec of an MPEG-1 (0x01) or MPEG-2 (0x02) stream_type.
pub(super) fn mpeg_video(stream_type: u8) -> EsKind {
    EsKind::Video(EsVideoCodec::Mpeg(if stream_type == 0x01 {
        DecodableCodec::Mpeg1Video
    } else {
        DecodableCodec::Mpeg2Video
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ts_pes_header_fields() {
        #[rustfmt::skip]
        let header = [
            0x00, 0x00, 0x01,             // packet_start_code_prefix
            0xE0,                         // stream_id: video stream 0
            0x00, 0x00,                   // PES_packet_length 0 (unbounded)
            0x84,                         // '10', not scrambled, data_alignment_indicator 1
            0xC0,                         // PTS_DTS_flags '11', no other optional field
            0x0A,                         // PES_header_data_length 10
            0x39, 0x00, 0x01, 0x00, 0x0B, // '0011', PTS = 2^32 + 5 (top bit set), marker bits
            0x11, 0x00, 0x07, 0xD8, 0x61, // '0001', DTS = 126 000
            0x00, 0x00, 0x00, 0x01, 0x09, // payload: an AUD
        ];
        assert_eq!(
            parse_pes_header(&header),
            Some(PesHeader {
                pts_90khz: Some((1 << 32) + 5),
                dts_90khz: Some(126_000),
                payload_offset_bytes: 19,
            })
        );
        // Padding stream (0xBE): no optional header.
        assert_eq!(
            parse_pes_header(&[0x00, 0x00, 0x01, 0xBE, 0x00, 0x02, 0xFF, 0xFF])
                .map(|h| h.payload_offset_bytes),
            Some(6)
        );
        // PES_header_data_length past the end, missing DTS bytes, bad prefix: not a header.
        assert_eq!(parse_pes_header(&header[..15]), None);
        let mut short = header;
        short[8] = 0x07; // claims PTS and DTS in 7 bytes
        assert_eq!(parse_pes_header(&short), None);
        assert_eq!(
            parse_pes_header(&[0x00, 0x00, 0x02, 0xE0, 0, 0, 0x80, 0, 0]),
            None
        );
    }
}
