//! MPEG audio frame headers (ISO/IEC 11172-3 §2.4.1.3 and §2.4.2.3; the lower sampling frequencies of
//! ISO/IEC 13818-3 §2.4.2.3; and the unofficial MPEG-2.5 extension that MP3 encoders use at 8–12 kHz).
//!
//! Used to split MPEG audio elementary streams into frames and to configure their track (sample rate,
//! channels) from the first header. Free-format streams (bitrate_index 0) cannot be split without decoding
//! and are rejected.

use crate::MediaError;
use crate::decodable::DecodableCodec;

const WHAT: &str = "MPEG audio frame header";

/// Bit rates in kbit/s by bitrate_index 1..=14 (index 0 is free format, 15 forbidden): ISO/IEC 11172-3
/// Table 2-B.2 (MPEG-1) and ISO/IEC 13818-3 Table B.1 (lower sampling frequencies, also used by MPEG-2.5).
const BITRATES_KBPS: [[u16; 14]; 5] = [
    // MPEG-1 Layer I
    [
        32, 64, 96, 128, 160, 192, 224, 256, 288, 320, 352, 384, 416, 448,
    ],
    // MPEG-1 Layer II
    [
        32, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384,
    ],
    // MPEG-1 Layer III
    [
        32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320,
    ],
    // MPEG-2/2.5 Layer I
    [
        32, 48, 56, 64, 80, 96, 112, 128, 144, 160, 176, 192, 224, 256,
    ],
    // MPEG-2/2.5 Layers II and III
    [8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160],
];

/// Sampling frequencies of MPEG-1 by sampling_frequency 0..=2 (11172-3 §2.4.2.3); MPEG-2 halves them,
/// MPEG-2.5 quarters them.
const MPEG1_RATES_HZ: [u32; 3] = [44_100, 48_000, 32_000];

/// The fields of one MPEG audio frame header that framing and configuration need.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MpegAudioHeader {
    /// [`DecodableCodec::Mp1`], [`DecodableCodec::Mp2`] or [`DecodableCodec::Mp3`] (by layer).
    pub codec: DecodableCodec,
    /// Sampling frequency, Hz.
    pub sample_rate_hz: u32,
    /// 1 (mode 3, single channel) or 2.
    pub channels: u8,
    /// The whole frame, header included, bytes.
    pub frame_bytes: usize,
    /// Samples per channel in the frame: 384 (Layer I), 1152 (Layer II, and Layer III of MPEG-1) or 576
    /// (Layer III at the lower sampling frequencies).
    pub samples_per_frame: u32,
}

/// True if `data` starts with an MPEG audio syncword (11 set bits; MPEG-1 and MPEG-2 set a 12th, MPEG-2.5
/// clears it). A lone `0xFF` at the end may be the start of one.
pub fn is_mpeg_audio_sync(data: &[u8]) -> bool {
    match data {
        [0xFF] => true,
        [0xFF, b1, ..] => b1 & 0xE0 == 0xE0,
        _ => false,
    }
}

impl MpegAudioHeader {
    /// Parse the 4-byte header at the start of `data`: syncword u11, ID u2 (00 MPEG-2.5, 10 MPEG-2,
    /// 11 MPEG-1), layer u2 (11 I, 10 II, 01 III), protection_bit u1, bitrate_index u4,
    /// sampling_frequency u2, padding_bit u1, private_bit u1, mode u2, mode_extension u2, copyright u1,
    /// original u1, emphasis u2.
    ///
    /// Frame length (11172-3 §2.4.3.1, 13818-3 §2.4.3.1): Layer I `(12 × bitrate / fs + padding) × 4`
    /// bytes; Layer II and MPEG-1 Layer III `144 × bitrate / fs + padding`; Layer III at the lower
    /// sampling frequencies `72 × bitrate / fs + padding`.
    ///
    /// Errors: [`MediaError::Truncated`] for fewer than 4 bytes; [`MediaError::Invalid`] for a bad
    /// syncword, the reserved ID or layer, free format or the forbidden bitrate_index, the reserved
    /// sampling_frequency or emphasis.
    pub fn parse(data: &[u8]) -> Result<Self, MediaError> {
        let Some(h) = data.get(..4) else {
            return Err(MediaError::Truncated {
                what: WHAT,
                need: 4,
                have: data.len(),
            });
        };
        let invalid = |field, value: u8| MediaError::Invalid {
            what: WHAT,
            field,
            value: u64::from(value),
        };
        if h[0] != 0xFF || h[1] & 0xE0 != 0xE0 {
            return Err(invalid("syncword", h[1] >> 5));
        }
        let version = (h[1] >> 3) & 0x03;
        let layer = (h[1] >> 1) & 0x03;
        let bitrate_index = h[2] >> 4;
        let sampling_frequency = (h[2] >> 2) & 0x03;
        let padding = u32::from((h[2] >> 1) & 0x01);
        let mode = h[3] >> 6;
        let emphasis = h[3] & 0x03;
        if version == 0b01 {
            return Err(invalid("ID", version));
        }
        if layer == 0 {
            return Err(invalid("layer", layer));
        }
        if bitrate_index == 0 || bitrate_index == 15 {
            return Err(invalid("bitrate_index", bitrate_index));
        }
        if sampling_frequency == 3 {
            return Err(invalid("sampling_frequency", sampling_frequency));
        }
        if emphasis == 2 {
            return Err(invalid("emphasis", emphasis));
        }
        let is_mpeg1 = version == 0b11;
        let rate_divisor = match version {
            0b11 => 1,
            0b10 => 2,
            _ => 4,
        };
        let sample_rate_hz = MPEG1_RATES_HZ[usize::from(sampling_frequency)] / rate_divisor;
        // layer field: 3 = Layer I, 2 = Layer II, 1 = Layer III.
        let table = match (is_mpeg1, layer) {
            (true, 3) => 0,
            (true, 2) => 1,
            (true, _) => 2,
            (false, 3) => 3,
            (false, _) => 4,
        };
        let bitrate_bps = u32::from(BITRATES_KBPS[table][usize::from(bitrate_index - 1)]) * 1000;
        let (codec, samples_per_frame, frame_bytes) = match layer {
            3 => (
                DecodableCodec::Mp1,
                384,
                (12 * bitrate_bps / sample_rate_hz + padding) * 4,
            ),
            2 => (
                DecodableCodec::Mp2,
                1152,
                144 * bitrate_bps / sample_rate_hz + padding,
            ),
            _ if is_mpeg1 => (
                DecodableCodec::Mp3,
                1152,
                144 * bitrate_bps / sample_rate_hz + padding,
            ),
            _ => (
                DecodableCodec::Mp3,
                576,
                72 * bitrate_bps / sample_rate_hz + padding,
            ),
        };
        Ok(Self {
            codec,
            sample_rate_hz,
            channels: if mode == 3 { 1 } else { 2 },
            frame_bytes: frame_bytes as usize,
            samples_per_frame,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mpeg1_layer3_44100_128k_stereo() {
        // The first MP3 frame of FFmpeg's libmp3lame output in FLV: FF FB 94 44.
        // syncword 0x7FF, ID 11 (MPEG-1), layer 01 (III), protection_bit 1 (no CRC); bitrate_index 9
        // (128 kbit/s), sampling_frequency 01 (48 kHz), padding 0, private 0; mode 01 (joint stereo), …
        let h = MpegAudioHeader::parse(&[0xFF, 0xFB, 0x94, 0x44]).unwrap();
        assert_eq!(
            h,
            MpegAudioHeader {
                codec: DecodableCodec::Mp3,
                sample_rate_hz: 48_000,
                channels: 2,
                frame_bytes: 384, // 144 × 128 000 / 48 000
                samples_per_frame: 1152,
            }
        );
        // Same at 44.1 kHz with padding: FF FB 92 64 → sampling_frequency 00, padding 1, mode 01.
        let h = MpegAudioHeader::parse(&[0xFF, 0xFB, 0x92, 0x64]).unwrap();
        assert_eq!((h.sample_rate_hz, h.frame_bytes), (44_100, 418)); // 417 + 1
    }

    #[test]
    fn lower_sampling_frequencies_and_layers() {
        // MPEG-2 Layer III 24 kHz, 64 kbit/s (index 8), mono (mode 11): FF F3 84 C4.
        let h = MpegAudioHeader::parse(&[0xFF, 0xF3, 0x84, 0xC4]).unwrap();
        assert_eq!(
            (
                h.codec,
                h.sample_rate_hz,
                h.channels,
                h.samples_per_frame,
                h.frame_bytes
            ),
            (DecodableCodec::Mp3, 24_000, 1, 576, 192) // 72 × 64 000 / 24 000
        );
        // MPEG-2.5 Layer III 8 kHz (ID 00, sampling_frequency 10), 8 kbit/s (index 1): FF E3 18 C4.
        let h = MpegAudioHeader::parse(&[0xFF, 0xE3, 0x18, 0xC4]).unwrap();
        assert_eq!((h.sample_rate_hz, h.frame_bytes), (8_000, 72));
        // MPEG-1 Layer II 48 kHz 192 kbit/s (index 10), stereo: FF FD A4 04.
        let h = MpegAudioHeader::parse(&[0xFF, 0xFD, 0xA4, 0x04]).unwrap();
        assert_eq!(
            (h.codec, h.samples_per_frame, h.frame_bytes),
            (DecodableCodec::Mp2, 1152, 576)
        );
        // MPEG-1 Layer I 44.1 kHz 384 kbit/s (index 12), padding: FF FF C2 00 → (12 × 384 000 / 44 100 + 1) × 4.
        let h = MpegAudioHeader::parse(&[0xFF, 0xFF, 0xC2, 0x00]).unwrap();
        assert_eq!((h.codec, h.frame_bytes), (DecodableCodec::Mp1, 420));
    }

    #[test]
    fn invalid_headers_are_errors() {
        assert!(matches!(
            MpegAudioHeader::parse(&[0xFF, 0xFB]),
            Err(MediaError::Truncated {
                need: 4,
                have: 2,
                ..
            })
        ));
        for (bytes, field) in [
            ([0xFF, 0x1B, 0x94, 0x44], "syncword"),
            ([0xFF, 0xEB, 0x94, 0x44], "ID"),    // ID 01 reserved
            ([0xFF, 0xF9, 0x94, 0x44], "layer"), // layer 00 reserved
            ([0xFF, 0xFB, 0x04, 0x44], "bitrate_index"), // free format
            ([0xFF, 0xFB, 0xF4, 0x44], "bitrate_index"), // forbidden
            ([0xFF, 0xFB, 0x9C, 0x44], "sampling_frequency"),
            ([0xFF, 0xFB, 0x94, 0x46], "emphasis"),
        ] {
            assert!(
                matches!(MpegAudioHeader::parse(&bytes), Err(MediaError::Invalid { field: f, .. }) if f == field),
                "{bytes:02x?}"
            );
        }
        assert!(is_mpeg_audio_sync(&[0xFF]) && is_mpeg_audio_sync(&[0xFF, 0xE3]));
        assert!(!is_mpeg_audio_sync(&[0xFF, 0xC0]) && !is_mpeg_audio_sync(&[0x0B, 0x77]));
    }
}
