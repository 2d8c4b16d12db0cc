//! AC-3 and E-AC-3 syncframe headers (ATSC A/52:2018 §5.3.1 `syncinfo`, §5.3.2 `bsi`; Annex E §E.2.2 for
//! E-AC-3), for splitting elementary streams into syncframes and configuring their track.
//!
//! Both start with the syncword 0x0B77; the 5-bit `bsid` at the same position in both tells them apart
//! (≤ 10: AC-3, 11..=16: E-AC-3, A/52 Annex E §E.2.3.1.6).

use crate::MediaError;
use crate::bits::BitReader;
use crate::decodable::DecodableCodec;

const WHAT: &str = "AC-3 syncframe header";

/// Nominal bit rates in kbit/s by `frmsizecod / 2` (A/52 Table 5.18).
const AC3_BITRATES_KBPS: [u32; 19] = [
    32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384, 448, 512, 576, 640,
];

/// Full-bandwidth channels by `acmod` (A/52 Table 5.8): 1+1 (dual mono), 1/0, 2/0, 3/0, 2/1, 3/1, 2/2, 3/2.
const ACMOD_CHANNELS: [u8; 8] = [2, 1, 2, 3, 3, 4, 4, 5];

/// The fields of one AC-3 or E-AC-3 syncframe header that framing and configuration need.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ac3Header {
    /// [`DecodableCodec::Ac3`] or [`DecodableCodec::Eac3`].
    pub codec: DecodableCodec,
    /// Sampling frequency, Hz.
    pub sample_rate_hz: u32,
    /// Channels, the LFE channel included (5.1 = 6).
    pub channels: u8,
    /// The whole syncframe, bytes.
    pub frame_bytes: usize,
    /// Samples per channel: 1536 for AC-3, 256 × blocks (256, 512, 768 or 1536) for E-AC-3.
    pub samples_per_frame: u32,
    /// E-AC-3 only: a dependent substream (`strmtyp` 1), or an independent substream other than 0, which
    /// belongs to the same access unit as the independent substream 0 frame before it.
    pub is_dependent: bool,
}

/// True if `data` starts with the AC-3 syncword 0x0B77 (a lone final 0x0B may be the start of one).
pub fn is_ac3_sync(data: &[u8]) -> bool {
    matches!(data, [0x0B] | [0x0B, 0x77, ..])
}

impl Ac3Header {
    /// Parse the syncframe header at the start of `data`.
    ///
    /// AC-3 (§5.3.1–2): syncword u16, crc1 u16, fscod u2, frmsizecod u6, bsid u5, bsmod u3, acmod u3,
    /// [cmixlev u2 if 3 front channels] [surmixlev u2 if surround] [dsurmod u2 if 2/0], lfeon u1. Frame
    /// size from Table 5.18: 2 × bit rate words at 48 kHz, 3 × at 32 kHz, `⌊bit rate × 1536 / 44 100 / 16⌋
    /// + (frmsizecod & 1)` words at 44.1 kHz.
    ///
    /// E-AC-3 (§E.2.2): syncword u16, strmtyp u2, substreamid u3, frmsiz u11 (words − 1), fscod u2,
    /// fscod2 u2 if fscod = 3 (24, 22.05, 16 kHz; then 6 blocks) else numblkscod u2 (1, 2, 3, 6 blocks),
    /// acmod u3, lfeon u1, bsid u5.
    ///
    /// Errors: [`MediaError::Truncated`] for fewer than 7 bytes; [`MediaError::Invalid`] for a bad
    /// syncword, a reserved fscod, fscod2 or frmsizecod, a bsid above 16, or the reserved strmtyp 3.
    pub fn parse(data: &[u8]) -> Result<Self, MediaError> {
        if data.len() < 7 {
            return Err(MediaError::Truncated {
                what: WHAT,
                need: 7,
                have: data.len(),
            });
        }
        let invalid = |field, value: u32| MediaError::Invalid {
            what: WHAT,
            field,
            value: u64::from(value),
        };
        if data[..2] != [0x0B, 0x77] {
            return Err(invalid(
                "syncword",
                u32::from(data[0]) << 8 | u32::from(data[1]),
            ));
        }
        // bsid sits at bits 40..45 in both syntaxes.
        let bsid = u32::from(data[5] >> 3);
        let mut r = BitReader::new(&data[2..], WHAT);
        match bsid {
            0..=10 => {
                let _crc1 = r.read_bits(16)?;
                let fscod = r.read_bits(2)?;
                let frmsizecod = r.read_bits(6)?;
                let _bsid = r.read_bits(5)?;
                let _bsmod = r.read_bits(3)?;
                let acmod = r.read_bits(3)?;
                if acmod & 0x01 != 0 && acmod != 1 {
                    r.skip_bits(2)?; // cmixlev
                }
                if acmod & 0x04 != 0 {
                    r.skip_bits(2)?; // surmixlev
                }
                if acmod == 2 {
                    r.skip_bits(2)?; // dsurmod
                }
                let lfeon = r.read_bits(1)?;
                let Some(&bitrate_kbps) = AC3_BITRATES_KBPS.get((frmsizecod / 2) as usize) else {
                    return Err(invalid("frmsizecod", frmsizecod));
                };
                let (sample_rate_hz, words) = match fscod {
                    0 => (48_000, 2 * bitrate_kbps),
                    1 => (
                        44_100,
                        bitrate_kbps * 1000 * 1536 / 44_100 / 16 + (frmsizecod & 1),
                    ),
                    2 => (32_000, 3 * bitrate_kbps),
                    _ => return Err(invalid("fscod", fscod)),
                };
                Ok(Self {
                    codec: DecodableCodec::Ac3,
                    sample_rate_hz,
                    channels: ACMOD_CHANNELS[acmod as usize] + lfeon as u8,
                    frame_bytes: words as usize * 2,
                    samples_per_frame: 1536,
                    is_dependent: false,
                })
            }
            11..=16 => {
                let strmtyp = r.read_bits(2)?;
                let substreamid = r.read_bits(3)?;
                let frmsiz = r.read_bits(11)?;
                let fscod = r.read_bits(2)?;
                let (sample_rate_hz, blocks) = if fscod == 3 {
                    let fscod2 = r.read_bits(2)?;
                    let rate = match fscod2 {
                        0 => 24_000,
                        1 => 22_050,
                        2 => 16_000,
                        _ => return Err(invalid("fscod2", fscod2)),
                    };
                    (rate, 6)
                } else {
                    let numblkscod = r.read_bits(2)?;
                    (
                        [48_000, 44_100, 32_000][fscod as usize],
                        [1, 2, 3, 6][numblkscod as usize],
                    )
                };
                let acmod = r.read_bits(3)?;
                let lfeon = r.read_bits(1)?;
                if strmtyp == 3 {
                    return Err(invalid("strmtyp", strmtyp));
                }
                Ok(Self {
                    codec: DecodableCodec::Eac3,
                    sample_rate_hz,
                    channels: ACMOD_CHANNELS[acmod as usize] + lfeon as u8,
                    frame_bytes: (frmsiz as usize + 1) * 2,
                    samples_per_frame: 256 * blocks,
                    is_dependent: strmtyp == 1 || substreamid != 0,
                })
            }
            _ => Err(invalid("bsid", bsid)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ac3_5_1_48khz_448k() {
        // The first syncframe of FFmpeg's `-c:a ac3 -ac 6` (448 kbit/s) as it sent it in Enhanced RTMP:
        // 0B 77 | 46 DF (crc1) | 1E: fscod 00 (48 kHz), frmsizecod 011110 (30: 448 kbit/s) |
        // 40: bsid 01000, bsmod 000 | EB: acmod 111 (3/2), cmixlev 01, surmixlev 01, lfeon 1 …
        let h = Ac3Header::parse(&[0x0B, 0x77, 0x46, 0xDF, 0x1E, 0x40, 0xEB, 0xF8]).unwrap();
        assert_eq!(
            h,
            Ac3Header {
                codec: DecodableCodec::Ac3,
                sample_rate_hz: 48_000,
                channels: 6,
                frame_bytes: 1792, // 896 words; the FLV tag held 1797 = 5-byte header + 1792
                samples_per_frame: 1536,
                is_dependent: false,
            }
        );
    }

    #[test]
    fn ac3_44100_frame_sizes_alternate() {
        // fscod 01, frmsizecod 000000 (32 kbit/s, 69 words) and 000001 (70 words); bsid 8, acmod 010 (2/0),
        // dsurmod 00, lfeon 0 → stereo.
        let even = Ac3Header::parse(&[0x0B, 0x77, 0, 0, 0x40, 0x40, 0x40, 0x00]).unwrap();
        let odd = Ac3Header::parse(&[0x0B, 0x77, 0, 0, 0x41, 0x40, 0x40, 0x00]).unwrap();
        assert_eq!((even.sample_rate_hz, even.channels), (44_100, 2));
        assert_eq!((even.frame_bytes, odd.frame_bytes), (138, 140));
    }

    #[test]
    fn eac3_independent_and_dependent_substreams() {
        // FFmpeg's `-c:a eac3` 5.1 at 48 kHz: 0B 77 | 03 7F: strmtyp 00, substreamid 000, frmsiz
        // 0x37F (896 words) | 3F: fscod 00, numblkscod 11 (6 blocks), acmod 111, lfeon 1 | 87: bsid 10000 …
        let h = Ac3Header::parse(&[0x0B, 0x77, 0x03, 0x7F, 0x3F, 0x87, 0xC0]).unwrap();
        assert_eq!(
            h,
            Ac3Header {
                codec: DecodableCodec::Eac3,
                sample_rate_hz: 48_000,
                channels: 6,
                frame_bytes: 1792,
                samples_per_frame: 1536,
                is_dependent: false,
            }
        );
        // strmtyp 01 (dependent), fscod 11 + fscod2 00 (24 kHz, 6 blocks), acmod 010, lfeon 0, bsid 16.
        let d = Ac3Header::parse(&[0x0B, 0x77, 0x40, 0x3F, 0xC4, 0x80, 0x00]).unwrap();
        assert_eq!(
            (
                d.is_dependent,
                d.sample_rate_hz,
                d.samples_per_frame,
                d.frame_bytes
            ),
            (true, 24_000, 1536, 128)
        );
    }

    #[test]
    fn ac3_invalid_headers_are_errors() {
        assert!(matches!(
            Ac3Header::parse(&[0x0B, 0x77, 0]),
            Err(MediaError::Truncated { .. })
        ));
        let field = |b: &[u8]| match Ac3Header::parse(b) {
            Err(MediaError::Invalid { field, .. }) => field,
            other => panic!("{other:?}"),
        };
        assert_eq!(field(&[0x0B, 0x78, 0, 0, 0, 0x40, 0]), "syncword");
        assert_eq!(field(&[0x0B, 0x77, 0, 0, 0xC0, 0x40, 0x40]), "fscod");
        assert_eq!(field(&[0x0B, 0x77, 0, 0, 0x26, 0x40, 0x40]), "frmsizecod"); // 38
        assert_eq!(field(&[0x0B, 0x77, 0, 0, 0x1E, 0x88, 0x40]), "bsid"); // 17
        assert!(
            is_ac3_sync(&[0x0B]) && is_ac3_sync(&[0x0B, 0x77, 1]) && !is_ac3_sync(&[0x0B, 0x78])
        );
    }
}
