//! Codecs that Estuary decodes (with FFmpeg, in the transcoder) and re-encodes, but never packages as they
//! arrive: the CMAF writer and the players Estuary serves handle H.264, HEVC and AAC only
//! ([`crate::CodecConfig::is_packageable`]).
//!
//! A [`DecodableConfig`] names the codec and carries what a decoder needs besides the frames: the codec's
//! own configuration record when the format has one (`extradata`: an OpusHead, a FLAC STREAMINFO, an AV1
//! `av1C`, an MPEG-2 sequence header …) and the audio format or picture size when the source signals them.
//!
//! Frame data ([`crate::Frame::data`]) for these codecs is the codec's own access unit, exactly as its
//! decoder takes it: an MPEG-1/2 picture with its start codes (and the sequence and GOP headers that
//! precede it); one LOAS frame of AAC in LATM (sync layer included); one MPEG audio frame or one AC-3
//! syncframe, header included (an E-AC-3 access unit is an
//! independent substream frame followed by its dependent substream frames); one Opus packet (RFC 6716 §3,
//! without the MPEG-TS control header); one FLAC frame; raw PCM samples, interleaved; one VP6 / Sorenson
//! H.263 / VP9 frame; one AV1 temporal unit (low-overhead OBUs).

use bytes::Bytes;

use crate::codec::{TrackKind, VideoParams};

/// Sample layout of linear PCM (all interleaved).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PcmFormat {
    /// Unsigned 8-bit.
    U8,
    /// Signed 16-bit little-endian.
    S16Le,
    /// Signed 16-bit big-endian.
    S16Be,
}

/// A codec decoded and re-encoded, never packaged as it arrives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DecodableCodec {
    /// MPEG-4 AAC in LATM with its LOAS sync layer (ISO/IEC 14496-3 §1.7), as MPEG-TS carries it.
    AacLatm,
    /// MPEG-1/2 Audio Layer I (ISO/IEC 11172-3, 13818-3).
    Mp1,
    /// MPEG-1/2 Audio Layer II.
    Mp2,
    /// MPEG-1/2/2.5 Audio Layer III.
    Mp3,
    /// AC-3 (ATSC A/52).
    Ac3,
    /// E-AC-3 (ATSC A/52 Annex E).
    Eac3,
    /// Opus (RFC 6716); always decoded at 48 kHz.
    Opus,
    /// FLAC.
    Flac,
    /// Linear PCM.
    Pcm(PcmFormat),
    /// ITU-T G.711 A-law.
    G711Alaw,
    /// ITU-T G.711 µ-law.
    G711Mulaw,
    /// Flash ADPCM (FLV sound format 1).
    AdpcmSwf,
    /// Nellymoser Asao (FLV sound formats 4–6).
    Nellymoser,
    /// Speex (FLV sound format 11).
    Speex,
    /// MPEG-1 video (ISO/IEC 11172-2).
    Mpeg1Video,
    /// MPEG-2 video (ISO/IEC 13818-2).
    Mpeg2Video,
    /// Sorenson H.263 (FLV video codec 2).
    SorensonH263,
    /// On2 VP6 (FLV video codec 4).
    Vp6,
    /// On2 VP6 with an alpha channel (FLV video codec 5).
    Vp6Alpha,
    /// VP8 (RFC 6386; WebRTC publishers, RFC 7741 payloads).
    Vp8,
    /// VP9.
    Vp9,
    /// AV1.
    Av1,
}

impl DecodableCodec {
    /// Whether it is an audio or a video codec.
    pub fn kind(self) -> TrackKind {
        match self {
            Self::Mpeg1Video
            | Self::Mpeg2Video
            | Self::SorensonH263
            | Self::Vp6
            | Self::Vp6Alpha
            | Self::Vp8
            | Self::Vp9
            | Self::Av1 => TrackKind::Video,
            _ => TrackKind::Audio,
        }
    }

    /// A lower-case name for logs and APIs, e.g. `mp3`, `ac-3`, `mpeg-2 video`.
    pub fn name(self) -> &'static str {
        match self {
            Self::AacLatm => "aac latm",
            Self::Mp1 => "mp1",
            Self::Mp2 => "mp2",
            Self::Mp3 => "mp3",
            Self::Ac3 => "ac-3",
            Self::Eac3 => "e-ac-3",
            Self::Opus => "opus",
            Self::Flac => "flac",
            Self::Pcm(PcmFormat::U8) => "pcm u8",
            Self::Pcm(PcmFormat::S16Le) => "pcm s16le",
            Self::Pcm(PcmFormat::S16Be) => "pcm s16be",
            Self::G711Alaw => "g.711 a-law",
            Self::G711Mulaw => "g.711 mu-law",
            Self::AdpcmSwf => "adpcm",
            Self::Nellymoser => "nellymoser",
            Self::Speex => "speex",
            Self::Mpeg1Video => "mpeg-1 video",
            Self::Mpeg2Video => "mpeg-2 video",
            Self::SorensonH263 => "sorenson h.263",
            Self::Vp6 => "vp6",
            Self::Vp6Alpha => "vp6 with alpha",
            Self::Vp8 => "vp8",
            Self::Vp9 => "vp9",
            Self::Av1 => "av1",
        }
    }

    /// A codec string in the style of RFC 6381 (the MP4 registration authority's sample entry or
    /// `mp4a`/`mp4v` object type where one exists), for logs only: Estuary never announces these codecs to
    /// players.
    pub fn rfc6381(self) -> &'static str {
        match self {
            Self::AacLatm => "mp4a.40",
            Self::Mp1 | Self::Mp2 | Self::Mp3 => "mp4a.6B",
            Self::Ac3 => "ac-3",
            Self::Eac3 => "ec-3",
            Self::Opus => "Opus",
            Self::Flac => "fLaC",
            Self::Pcm(_) => "ipcm",
            Self::G711Alaw => "alaw",
            Self::G711Mulaw => "ulaw",
            Self::AdpcmSwf | Self::Nellymoser | Self::Speex => "flv-audio",
            Self::Mpeg1Video => "mp4v.6A",
            Self::Mpeg2Video => "mp4v.61",
            Self::SorensonH263 => "s263",
            Self::Vp6 | Self::Vp6Alpha => "vp6f",
            Self::Vp8 => "vp08",
            Self::Vp9 => "vp09",
            Self::Av1 => "av01",
        }
    }
}

/// Sample rate and channel count of an audio track, as the source signals them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AudioFormat {
    /// Samples per second per channel, Hz (also the track's timescale).
    pub sample_rate_hz: u32,
    /// Channels (1 = mono, 2 = stereo, 6 = 5.1 …).
    pub channels: u8,
}

/// The configuration of a track in a [`DecodableCodec`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodableConfig {
    /// The codec.
    pub codec: DecodableCodec,
    /// The codec's configuration record for its decoder (FFmpeg's `extradata`), empty when the format has
    /// none: OpusHead (RFC 7845 §5.1), FLAC STREAMINFO, `av1C`, `vpcC`, the MPEG-1/2 sequence header, or
    /// the VP6 adjustment byte.
    pub extradata: Bytes,
    /// Sample rate and channels (audio; required for PCM, G.711, ADPCM, Nellymoser and Speex, whose frames
    /// do not say).
    pub audio: Option<AudioFormat>,
    /// Picture size and frame rate (video), when the source signals them.
    pub video: Option<VideoParams>,
}

impl DecodableConfig {
    /// An audio configuration.
    pub fn audio(codec: DecodableCodec, extradata: Bytes, format: AudioFormat) -> Self {
        Self {
            codec,
            extradata,
            audio: Some(format),
            video: None,
        }
    }

    /// A video configuration.
    pub fn video(codec: DecodableCodec, extradata: Bytes, params: Option<VideoParams>) -> Self {
        Self {
            codec,
            extradata,
            audio: None,
            video: params,
        }
    }
}

/// The OpusHead identification header (RFC 7845 §5.1) for `channels` channels at 48 kHz, with no pre-skip
/// and no gain: mapping family 0 for one or two channels, family 1 (Vorbis channel order, §5.1.1.2) for
/// three to eight. `None` for other channel counts.
pub fn opus_head(channels: u8) -> Option<Bytes> {
    // Family 1: (streams, coupled streams, channel mapping) per channel count (RFC 7845 §5.1.1.2).
    let family1: (u8, u8, &[u8]) = match channels {
        1 | 2 => (0, 0, &[]),
        3 => (2, 1, &[0, 2, 1]),
        4 => (2, 2, &[0, 1, 2, 3]),
        5 => (3, 2, &[0, 4, 1, 2, 3]),
        6 => (4, 2, &[0, 4, 1, 2, 3, 5]),
        7 => (4, 3, &[0, 4, 1, 2, 3, 5, 6]),
        8 => (5, 3, &[0, 6, 1, 2, 3, 4, 5, 7]),
        _ => return None,
    };
    let mut head = Vec::with_capacity(21 + usize::from(channels));
    head.extend_from_slice(b"OpusHead");
    head.push(1); // version
    head.push(channels);
    head.extend_from_slice(&0u16.to_le_bytes()); // pre-skip, samples at 48 kHz
    head.extend_from_slice(&48_000u32.to_le_bytes()); // input sample rate (informational)
    head.extend_from_slice(&0i16.to_le_bytes()); // output gain, Q7.8 dB
    if channels <= 2 {
        head.push(0); // channel mapping family 0
    } else {
        head.push(1);
        head.push(family1.0);
        head.push(family1.1);
        head.extend_from_slice(family1.2);
    }
    Some(Bytes::from(head))
}

/// The channel count of an OpusHead (RFC 7845 §5.1: magic `OpusHead`, version, channel count …), if
/// `head` is one.
pub fn opus_head_channels(head: &[u8]) -> Option<u8> {
    if head.len() < 19 || &head[..8] != b"OpusHead" || head[9] == 0 {
        return None;
    }
    Some(head[9])
}

/// The Opus packet's duration in samples at 48 kHz, from its TOC byte and frame count (RFC 6716 §3.1:
/// config = TOC bits 7..3 gives the frame size, code = bits 1..0 the number of frames; code 3 has the
/// count in the low 6 bits of the next byte). `None` for an empty or truncated packet, or a duration over
/// 120 ms (§3.2.5).
pub fn opus_packet_samples(packet: &[u8]) -> Option<u32> {
    let toc = *packet.first()?;
    let config = toc >> 3;
    // Frame size at 48 kHz: SILK-only configs 0..=11 (10/20/40/60 ms), hybrid 12..=15 (10/20 ms), CELT-only
    // 16..=31 (2.5/5/10/20 ms).
    let frame_samples: u32 = match config {
        0..=11 => [480, 960, 1920, 2880][usize::from(config % 4)],
        12..=15 => [480, 960][usize::from(config % 2)],
        _ => [120, 240, 480, 960][usize::from(config % 4)],
    };
    let frames = match toc & 0x03 {
        0 => 1,
        1 | 2 => 2,
        _ => u32::from(*packet.get(1)? & 0x3F),
    };
    let samples = frame_samples * frames;
    (frames > 0 && samples <= 5760).then_some(samples)
}

/// Sample rate and channels from a FLAC STREAMINFO block, given either bare (34 bytes) or after the
/// `fLaC` marker and a metadata block header (FLAC format §7–8: min/max block size u16 each, min/max
/// frame size u24 each, sample rate u20, channels − 1 u3, bits per sample − 1 u5, …). `None` if it is
/// too short or the sample rate is 0.
pub fn flac_streaminfo_format(record: &[u8]) -> Option<AudioFormat> {
    let info = match record.strip_prefix(b"fLaC") {
        Some(rest) => rest.get(4..)?, // METADATA_BLOCK_HEADER: last flag u1, type u7 (0), length u24
        None => record,
    };
    if info.len() < 34 {
        return None;
    }
    let sample_rate_hz =
        u32::from(info[10]) << 12 | u32::from(info[11]) << 4 | u32::from(info[12]) >> 4;
    let channels = ((info[12] >> 1) & 0x07) + 1;
    (sample_rate_hz > 0).then_some(AudioFormat {
        sample_rate_hz,
        channels,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opus_toc_durations() {
        // TOC: config u5 | stereo u1 | code u2 (RFC 6716 §3.1).
        assert_eq!(opus_packet_samples(&[31 << 3, 0x7F]), Some(960)); // CELT FB 20 ms, one frame
        assert_eq!(opus_packet_samples(&[15 << 3]), Some(960)); // hybrid FB 20 ms
        assert_eq!(opus_packet_samples(&[12 << 3 | 0x04]), Some(480)); // hybrid SWB 10 ms, stereo
        assert_eq!(opus_packet_samples(&[9 << 3 | 1]), Some(2 * 960)); // SILK WB 20 ms, code 1: two
        assert_eq!(opus_packet_samples(&[16 << 3 | 3, 0x83]), Some(3 * 120)); // CELT 2.5 ms, code 3: M = 3
        assert_eq!(opus_packet_samples(&[11 << 3 | 3, 0x03]), None); // 3 × 60 ms > 120 ms
        assert_eq!(opus_packet_samples(&[3]), None); // code 3 without its frame count byte
        assert_eq!(opus_packet_samples(&[]), None);
    }

    #[test]
    fn opus_head_layouts() {
        let stereo = opus_head(2).unwrap();
        #[rustfmt::skip]
        assert_eq!(&stereo[..], &[
            b'O', b'p', b'u', b's', b'H', b'e', b'a', b'd',
            1,                      // version
            2,                      // channel count
            0, 0,                   // pre-skip
            0x80, 0xBB, 0x00, 0x00, // input sample rate 48 000, LE
            0, 0,                   // output gain
            0,                      // mapping family 0
        ]);
        let surround = opus_head(6).unwrap();
        assert_eq!(&surround[18..], &[1, 4, 2, 0, 4, 1, 2, 3, 5]); // family 1, 4 streams, 2 coupled, map
        assert_eq!(opus_head_channels(&surround), Some(6));
        assert_eq!(opus_head(9), None);
        assert_eq!(opus_head_channels(b"OpusTags"), None);
    }

    #[test]
    fn flac_streaminfo_bare_and_with_marker() {
        // FFmpeg's FLV muxer sends the bare 34-byte STREAMINFO: block sizes 1024/1024, frame sizes 0 and
        // 0x00482A, then sample rate 0x0BB80 = 48 000 (20 bits), channels − 1 = 5, bits − 1 = 23, …
        #[rustfmt::skip]
        let info = [
            0x04, 0x00, 0x04, 0x00, 0x00, 0x00, 0x00, 0x00, 0x48, 0x2A,
            0x0B, 0xB8, 0x0B, 0x70, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
            0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        ];
        let six = AudioFormat {
            sample_rate_hz: 48_000,
            channels: 6,
        };
        assert_eq!(flac_streaminfo_format(&info), Some(six));
        // The Enhanced RTMP form: `fLaC`, a metadata block header (last, STREAMINFO, length 34), the block.
        let mut marked = b"fLaC\x80\x00\x00\x22".to_vec();
        marked.extend_from_slice(&info);
        assert_eq!(flac_streaminfo_format(&marked), Some(six));
        assert_eq!(flac_streaminfo_format(&info[..20]), None);
    }
}
