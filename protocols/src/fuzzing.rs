//! Entry points for fuzzing every protocol parser that sees network bytes (built with the `fuzzing`
//! feature; not part of the crate's API). Each takes arbitrary bytes and must return without
//! panicking, whatever they are; a panic is a bug. They drive the same code the ingest drivers run:
//!
//! | target | what it parses |
//! | --- | --- |
//! | [`rtmp_handshake`] | C0/C1/C2 ([`crate::rtmp::handshake`], RTMP 1.0 §5.2) |
//! | [`rtmp_chunks`] | the chunk stream ([`crate::rtmp::chunk`], RTMP 1.0 §5.3) |
//! | [`rtmp_session`] | a whole connection after the handshake: chunks, control messages, AMF0 commands, media |
//! | [`amf0`] | AMF0 values ([`crate::rtmp::amf`]) |
//! | [`flv_tags`] | FLV audio/video tag bodies, legacy and Enhanced RTMP, with their codec configuration records |
//! | [`codec_configs`] | avcC, hvcC, AudioSpecificConfig, H.264/HEVC SPS/PPS and slice headers ([`media`]) |
//! | [`ts_demux`] | MPEG-TS: packets, PAT/PMT, PES, ADTS and Annex B ([`crate::ts`]) |
//! | [`srt_stream_id`] | SRT stream IDs ([`crate::srt_stream_id::parse_stream_id`]) |
//! | [`scte35`] | SCTE-35 splice_info_sections ([`crate::scte35::SpliceInfo::parse`]) |
//!
//! The `fuzz/` crate runs them under libFuzzer (`cargo fuzz`); the e2e test `fuzz_smoke` replays the
//! seed corpora and random mutations of them in every test run.

use bytes::Bytes;

use crate::flv::FlvParser;
use crate::rtmp::{
    amf,
    chunk::{ChunkDecoder, ChunkDecoderConfig},
    handshake::{HandshakeProgress, ServerHandshake},
    session::{ServerSession, SessionConfig, SessionEvent},
};
use crate::ts::TsDemuxer;

/// Split `data` into pieces whose sizes come from its first byte (network reads of any size).
fn pieces(data: &[u8]) -> impl Iterator<Item = &[u8]> {
    let step = data.first().map_or(1, |b| usize::from(*b % 64) + 1);
    data.get(1..).unwrap_or(&[]).chunks(step)
}

/// The server side of the RTMP handshake, fed in reads of varying size.
pub fn rtmp_handshake(data: &[u8]) {
    let mut handshake = ServerHandshake::new();
    for piece in pieces(data) {
        match handshake.process(piece) {
            Ok(HandshakeProgress::InProgress { .. }) => {}
            Ok(HandshakeProgress::Complete { remaining, .. }) => {
                let _ = remaining.len();
                return;
            }
            Err(_) => return,
        }
    }
}

/// The chunk stream decoder with small limits, draining every message.
pub fn rtmp_chunks(data: &[u8]) {
    let mut decoder = ChunkDecoder::new(ChunkDecoderConfig {
        max_message_bytes: 64 * 1024,
        max_chunk_streams: 16,
        max_buffered_bytes: 256 * 1024,
    });
    for piece in pieces(data) {
        if decoder.push(piece).is_err() {
            return;
        }
        loop {
            match decoder.next_message() {
                Ok(Some(_)) => {}
                Ok(None) => break,
                Err(_) => return,
            }
        }
        decoder.check_invariants();
    }
}

/// A server session after the handshake: every event handled as the RTMP driver does (publishes
/// accepted, media through the FLV parser).
pub fn rtmp_session(data: &[u8]) {
    let mut session = ServerSession::new(SessionConfig::default());
    let mut flv = FlvParser::new(1 << 20);
    let mut events = Vec::new();
    for piece in pieces(data) {
        if session.receive(piece).is_err() {
            return;
        }
        loop {
            match session.poll() {
                Ok(Some(SessionEvent::PublishRequested(request))) => {
                    if session.accept_publish(&request.stream).is_err() {
                        return;
                    }
                }
                Ok(Some(SessionEvent::Media {
                    kind,
                    timestamp_ms,
                    payload,
                })) => {
                    let _ = match kind {
                        crate::rtmp::session::MediaKind::Video => {
                            flv.video(timestamp_ms, &payload, &mut events)
                        }
                        crate::rtmp::session::MediaKind::Audio => {
                            flv.audio(timestamp_ms, &payload, &mut events)
                        }
                    };
                    events.clear();
                }
                Ok(Some(SessionEvent::CuePoint { timestamp_ms, cue })) => {
                    if let Ok(cue) = cue {
                        flv.cue_point(timestamp_ms, &cue, &mut events);
                    }
                    events.clear();
                }
                Ok(Some(SessionEvent::Unpublished | SessionEvent::Rejected(_))) => return,
                Ok(None) => break,
                Err(_) => return,
            }
        }
        while session.take_outgoing().is_some() {}
    }
}

/// AMF0 decoding and validation.
pub fn amf0(data: &[u8]) {
    let _ = amf::validate(data);
    if let Ok(values) = amf::decode(data) {
        let _ = amf::encode(&values);
    }
}

/// FLV tag bodies as records `[tag type][length, u16 big-endian][body]` (type 8 audio, 9 video, other
/// both), each also through the stateful parser (configuration records, then frames).
pub fn flv_tags(data: &[u8]) {
    let mut flv = FlvParser::new(1 << 20);
    let mut events = Vec::new();
    let mut rest = data;
    let mut timestamp_ms = 0u32;
    while let [kind, hi, lo, tail @ ..] = rest {
        let len = usize::from(u16::from_be_bytes([*hi, *lo])).min(tail.len());
        let (body, tail) = tail.split_at(len);
        rest = tail;
        let tag = Bytes::copy_from_slice(body);
        timestamp_ms = timestamp_ms.wrapping_add(33);
        let _ = match kind {
            8 => flv.audio(timestamp_ms, &tag, &mut events),
            9 => flv.video(timestamp_ms, &tag, &mut events),
            _ => {
                let _ = crate::flv::parse_video_tag(&tag);
                crate::flv::parse_audio_tag(&tag).map(|_| ())
            }
        };
        events.clear();
    }
}

/// Codec configuration records and parameter sets: the first byte picks the parser.
pub fn codec_configs(data: &[u8]) {
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    let bytes = Bytes::copy_from_slice(rest);
    match which % 8 {
        0 => {
            let _ = media::avc::AvcConfig::parse(bytes);
        }
        1 => {
            let _ = media::hevc::HevcConfig::parse(bytes);
            let _ = media::hevc::parse_hvcc_header(rest);
        }
        2 => {
            let _ = media::aac::AacConfig::parse(bytes);
            let _ = media::aac::parse_audio_specific_config(rest);
        }
        3 => {
            let _ = media::avc::parse_sps(rest);
            let _ = media::avc::parse_pps(rest);
        }
        4 => {
            let _ = media::hevc::parse_sps(rest);
            let _ = media::hevc_slice::parse_sps(rest);
            let _ = media::hevc_slice::parse_pps(rest);
        }
        5 => {
            // Parameter sets then a slice: `len(sps) len(pps)` then the three NAL units.
            let (sps, pps, slice) = split3(rest);
            let sps: Vec<_> = media::avc::parse_sps(sps).into_iter().collect();
            let pps: Vec<_> = media::avc::parse_pps(pps).into_iter().collect();
            let _ = media::avc::slice_header_bytes(slice, &sps, &pps);
        }
        6 => {
            let (sps, pps, slice) = split3(rest);
            let sps: Vec<_> = media::hevc_slice::parse_sps(sps).into_iter().collect();
            let pps: Vec<_> = media::hevc_slice::parse_pps(pps).into_iter().collect();
            let _ = media::hevc_slice::slice_header_bytes(slice, &sps, &pps);
        }
        _ => {
            // Annex B (the MPEG-TS video payload), each NAL unit through the parsers its type selects.
            for nal in media::annex_b::nal_units(rest) {
                let _ = media::hevc::nal_unit_type(nal);
                let _ = media::avc::parse_sps(nal);
                let _ = media::hevc::parse_sps(nal);
            }
        }
    }
}

/// `[a][b]rest` → (`a` bytes, `b` bytes, the rest), clamped.
fn split3(data: &[u8]) -> (&[u8], &[u8], &[u8]) {
    let a = usize::from(data.first().copied().unwrap_or(0));
    let b = usize::from(data.get(1).copied().unwrap_or(0));
    let rest = data.get(2..).unwrap_or(&[]);
    let (x, rest) = rest.split_at(a.min(rest.len()));
    let (y, z) = rest.split_at(b.min(rest.len()));
    (x, y, z)
}

/// The MPEG-TS demuxer (the SRT payload), fed in reads of varying size, then finished.
pub fn ts_demux(data: &[u8]) {
    let mut demuxer = TsDemuxer::new(1 << 20);
    let mut events = Vec::new();
    for piece in pieces(data) {
        if demuxer.push(piece, &mut events).is_err() {
            return;
        }
        events.clear();
        demuxer.check_invariants();
    }
    demuxer.finish(&mut events);
}

/// An SCTE-35 splice_info_section as given, then the same bytes made a section with a right table
/// id, length and CRC (so that mutations reach the commands and descriptors, not only the CRC check).
pub fn scte35(data: &[u8]) {
    use crate::scte35::SpliceInfo;
    let read = |info: SpliceInfo| {
        let _ = (
            info.splice_pts_90khz(),
            info.direction(),
            info.duration_90khz(),
        );
        let _ = info.is_splice_point();
    };
    if let Ok(info) = SpliceInfo::parse(data) {
        read(info);
    }
    if data.len() >= 18 && data.len() <= crate::scte35::MAX_SECTION_BYTES {
        let mut s = data.to_vec();
        let len = s.len() - 3;
        s[0] = crate::scte35::TABLE_ID;
        s[1] = (s[1] & 0xF0) | ((len >> 8) as u8 & 0x0F);
        s[2] = len as u8;
        let n = s.len() - 4;
        let crc = crate::ts::crc32_mpeg2(&s[..n]);
        s[n..].copy_from_slice(&crc.to_be_bytes());
        if let Ok(info) = SpliceInfo::parse(&s) {
            read(info);
        }
    }
}

/// An SRT stream ID (any bytes; the listener takes it as UTF-8, lossily).
pub fn srt_stream_id(data: &[u8]) {
    let _ = crate::srt_stream_id::parse_stream_id(&String::from_utf8_lossy(data));
}
