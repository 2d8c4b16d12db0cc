//! MPEG-1 and MPEG-2 video headers (ISO/IEC 11172-2 §2.4.2; ISO/IEC 13818-2 §6.2.2 and §6.2.3): the
//! sequence header and sequence extension (picture size and frame rate of the track) and the picture
//! header's `picture_coding_type` (keyframes), for MPEG-TS ingest.
//!
//! Start codes (`00 00 01 xx`, 13818-2 Table 6-1) cannot be emulated inside MPEG-1/2 video data, so a
//! byte scan finds them.

use crate::MediaError;
use crate::bits::BitReader;
use crate::codec::VideoParams;

const WHAT: &str = "MPEG video sequence header";

/// `sequence_header_code` (0xB3), `extension_start_code` (0xB5), `group_start_code` (0xB8) and
/// `picture_start_code` (0x00): the byte after `00 00 01`.
pub mod start_code {
    /// sequence_header_code.
    pub const SEQUENCE_HEADER: u8 = 0xB3;
    /// extension_start_code.
    pub const EXTENSION: u8 = 0xB5;
    /// group_start_code.
    pub const GROUP: u8 = 0xB8;
    /// picture_start_code.
    pub const PICTURE: u8 = 0x00;
    /// sequence_end_code.
    pub const SEQUENCE_END: u8 = 0xB7;
}

/// Frame rates by `frame_rate_code` 1..=8 (13818-2 Table 6-4), as (numerator, denominator).
const FRAME_RATES: [(u32, u32); 8] = [
    (24_000, 1001),
    (24, 1),
    (25, 1),
    (30_000, 1001),
    (30, 1),
    (50, 1),
    (60_000, 1001),
    (60, 1),
];

/// The positions of the start codes in `data`: `(offset of the 00 00 01 prefix, start code value)`.
pub fn start_codes(data: &[u8]) -> impl Iterator<Item = (usize, u8)> + '_ {
    let mut i = 0;
    std::iter::from_fn(move || {
        while i + 3 < data.len() {
            if data[i] == 0 && data[i + 1] == 0 && data[i + 2] == 1 {
                let found = (i, data[i + 3]);
                i += 4;
                return Some(found);
            }
            i += 1;
        }
        None
    })
}

/// What the headers of one access unit (a PES payload holding one picture) say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MpegVideoUnit {
    /// The sequence header and the extensions that follow it (start codes included), up to the next
    /// group or picture start code; `None` if the unit has no sequence header.
    pub sequence_header: Option<Vec<u8>>,
    /// The picture size and frame rate from the sequence header (and sequence extension).
    pub params: Option<VideoParams>,
    /// `picture_coding_type` of the first picture (1 = I, 2 = P, 3 = B, 4 = D).
    pub picture_coding_type: Option<u8>,
}

impl MpegVideoUnit {
    /// Scan an access unit.
    ///
    /// Errors: those of [`parse_sequence_header`] for a sequence header that is present but invalid.
    pub fn parse(data: &[u8]) -> Result<Self, MediaError> {
        let mut unit = Self {
            sequence_header: None,
            params: None,
            picture_coding_type: None,
        };
        let mut header_start = None;
        for (at, code) in start_codes(data) {
            match code {
                start_code::SEQUENCE_HEADER if unit.sequence_header.is_none() => {
                    header_start = Some(at)
                }
                start_code::EXTENSION | start_code::SEQUENCE_HEADER => {}
                _ => {
                    if let Some(start) = header_start.take() {
                        let header = &data[start..at];
                        unit.params = Some(parse_sequence_header(header)?);
                        unit.sequence_header = Some(header.to_vec());
                    }
                    if code == start_code::PICTURE && unit.picture_coding_type.is_none() {
                        // temporal_reference u10, picture_coding_type u3.
                        unit.picture_coding_type = data.get(at + 5).map(|b| (b >> 3) & 0x07);
                    }
                }
            }
        }
        if let Some(start) = header_start {
            let header = &data[start..];
            unit.params = Some(parse_sequence_header(header)?);
            unit.sequence_header = Some(header.to_vec());
        }
        Ok(unit)
    }
}

/// Parse a sequence header, starting at its start code, and the sequence extension after it if there is
/// one (MPEG-2).
///
/// Sequence header (13818-2 §6.2.2.1): `00 00 01 B3`, horizontal_size_value u12, vertical_size_value u12,
/// aspect_ratio_information u4, frame_rate_code u4, bit_rate_value u18, marker u1,
/// vbv_buffer_size_value u10, constrained_parameters_flag u1, load_intra_quantiser_matrix u1 (+ 64 bytes),
/// load_non_intra_quantiser_matrix u1 (+ 64 bytes). Sequence extension (§6.2.2.3): `00 00 01 B5`,
/// extension_start_code_identifier u4 (= 1), profile_and_level_indication u8, progressive_sequence u1,
/// chroma_format u2, horizontal_size_extension u2, vertical_size_extension u2, bit_rate_extension u12,
/// marker u1, vbv_buffer_size_extension u8, low_delay u1, frame_rate_extension_n u2,
/// frame_rate_extension_d u5. Sizes are `extension << 12 | value`; the frame rate is Table 6-4's
/// `× (n + 1) / (d + 1)`.
///
/// Errors: [`MediaError::Truncated`]; [`MediaError::Invalid`] for a missing start code, a zero size, or
/// a forbidden or reserved frame_rate_code.
pub fn parse_sequence_header(header: &[u8]) -> Result<VideoParams, MediaError> {
    if header.len() < 12 {
        return Err(MediaError::Truncated {
            what: WHAT,
            need: 12,
            have: header.len(),
        });
    }
    let invalid = |field, value: u32| MediaError::Invalid {
        what: WHAT,
        field,
        value: u64::from(value),
    };
    if header[..4] != [0, 0, 1, start_code::SEQUENCE_HEADER] {
        return Err(invalid("sequence_header_code", u32::from(header[3])));
    }
    let mut r = BitReader::new(&header[4..], WHAT);
    let mut width = r.read_bits(12)?;
    let mut height = r.read_bits(12)?;
    let _aspect_ratio_information = r.read_bits(4)?;
    let frame_rate_code = r.read_bits(4)?;
    let Some(&(mut rate_num, mut rate_den)) =
        FRAME_RATES.get((frame_rate_code as usize).wrapping_sub(1))
    else {
        return Err(invalid("frame_rate_code", frame_rate_code));
    };
    let _bit_rate_value = r.read_bits(18)?;
    let _marker = r.read_bits(1)?;
    let _vbv_buffer_size_value = r.read_bits(10)?;
    let _constrained_parameters_flag = r.read_bits(1)?;
    // The quantiser matrices (if loaded) are skipped: the extension is found by its start code.
    // The extension, if any, follows the (byte-aligned) end of the header: find its start code.
    if let Some((at, _)) = start_codes(header).skip(1).find(|&(at, code)| {
        code == start_code::EXTENSION && header.get(at + 4).is_some_and(|b| b >> 4 == 1)
    }) {
        let mut e = BitReader::new(&header[at + 4..], WHAT);
        let _identifier = e.read_bits(4)?;
        let _profile_and_level = e.read_bits(8)?;
        let _progressive_sequence = e.read_bits(1)?;
        let _chroma_format = e.read_bits(2)?;
        width |= e.read_bits(2)? << 12;
        height |= e.read_bits(2)? << 12;
        let _bit_rate_extension = e.read_bits(12)?;
        let _marker = e.read_bits(1)?;
        let _vbv_buffer_size_extension = e.read_bits(8)?;
        let _low_delay = e.read_bits(1)?;
        let n = e.read_bits(2)?;
        let d = e.read_bits(5)?;
        rate_num *= n + 1;
        rate_den *= d + 1;
    }
    if width == 0 || height == 0 {
        return Err(invalid("size", width.min(height)));
    }
    Ok(VideoParams {
        width,
        height,
        frame_rate: Some((rate_num, rate_den)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The first access unit of `camera-city-cc0-405p-mpeg2-8s.mpg` (`ffmpeg -c copy -f mpeg2video`), up to
    /// the start of its first slice.
    #[rustfmt::skip]
    const FIRST_UNIT: [u8; 52] = [
        0x00, 0x00, 0x01, 0xB3,       // sequence_header_code
        0x2D, 0x01, 0x95,             // horizontal_size_value 0x2D0 = 720, vertical_size_value 0x195 = 405
        0x33,                         // aspect_ratio_information 3 (16:9), frame_rate_code 3 (25 Hz)
        0xFF, 0xFF, 0xE0, 0x18,       // bit_rate_value, marker, vbv_buffer_size_value, flags: no matrices
        0x00, 0x00, 0x01, 0xB5,       // extension_start_code
        0x14, 0x8A,                   // id 1 (sequence extension), profile/level 0x48 (Main@Main),
                                      // progressive_sequence 1, chroma_format 01 (4:2:0)
        0x00, 0x01, 0x00, 0x00,       // size extensions 0, bit_rate_extension, marker, vbv, low_delay 0,
                                      // frame_rate_extension_n 0, frame_rate_extension_d 0
        0x00, 0x00, 0x01, 0xB8,       // group_start_code
        0x00, 0x08, 0x00, 0x40,       // time code, closed_gop, broken_link
        0x00, 0x00, 0x01, 0x00,       // picture_start_code
        0x00, 0x0F, 0xFF, 0xF8,       // temporal_reference 0, picture_coding_type 001 (I), vbv_delay
        0x00, 0x00, 0x01, 0xB5,       // extension_start_code (picture coding extension)
        0x8F, 0xFF, 0xF3, 0x41, 0x80, 0x00,
        0x00, 0x00, 0x01, 0x01,       // slice_start_code (slice 1)
    ];

    #[test]
    fn mpeg2_first_unit_is_an_i_picture_with_its_sequence_header() {
        let unit = MpegVideoUnit::parse(&FIRST_UNIT).unwrap();
        assert_eq!(
            unit.params,
            Some(VideoParams {
                width: 720,
                height: 405,
                frame_rate: Some((25, 1)),
            })
        );
        assert_eq!(unit.sequence_header.as_deref(), Some(&FIRST_UNIT[..22]));
        assert_eq!(unit.picture_coding_type, Some(1));
    }

    #[test]
    fn mpeg_video_picture_without_sequence_header_and_extensions() {
        // A P picture alone: picture_start_code, temporal_reference 1, picture_coding_type 010.
        let p = [0, 0, 1, 0x00, 0x00, 0x50, 0xFF, 0xF8, 0, 0, 1, 0x01, 0xAA];
        let unit = MpegVideoUnit::parse(&p).unwrap();
        assert_eq!(
            (unit.sequence_header, unit.picture_coding_type),
            (None, Some(2))
        );
        // MPEG-2 size extensions and a frame rate extension: 1920 | 1 << 12, 59.94 × 2 / 1.
        let mut header = FIRST_UNIT[..22].to_vec();
        header[7] = 0x37; // frame_rate_code 7 (60000/1001)
        header[18] = 0x80; // horizontal_size_extension 01: its low bit is the third byte's first bit
        header[21] = 0x20; // frame_rate_extension_n 01
        let params = parse_sequence_header(&header).unwrap();
        assert_eq!(
            (params.width, params.frame_rate),
            (720 | 1 << 12, Some((120_000, 1001)))
        );
        // MPEG-1 (no extension) and invalid headers.
        assert_eq!(parse_sequence_header(&FIRST_UNIT[..12]).unwrap().width, 720);
        let mut bad = FIRST_UNIT[..12].to_vec();
        bad[7] = 0x39; // frame_rate_code 9: reserved
        assert!(matches!(
            parse_sequence_header(&bad),
            Err(MediaError::Invalid {
                field: "frame_rate_code",
                ..
            })
        ));
        assert!(matches!(
            parse_sequence_header(&FIRST_UNIT[..8]),
            Err(MediaError::Truncated { .. })
        ));
        let zero = [0, 0, 1, 0xB3, 0, 0, 0, 0x13, 0xFF, 0xFF, 0xE0, 0x18];
        assert!(parse_sequence_header(&zero).is_err());
    }
}
