//! Picture sizes of the video codecs RTMP carries besides H.264 and HEVC, read from the first bytes of a
//! keyframe or from the sequence header, so that a ladder can be sized before anything is decoded.
//!
//! Each function reads only the fields up to the size; the rest of the bitstream is the decoder's.
//! Errors mean "not found here" (truncated, not a keyframe, or malformed): the caller keeps waiting.

use crate::MediaError;
use crate::bits::BitReader;

/// Size of a Sorenson H.263 picture (Adobe FLV specification v10.1 §E.4.3.3 H263VIDEOPACKET):
/// PictureStartCode u17 (= 1), Version u5 (0 or 1), TemporalReference u8, PictureSize u3 — 0: width u8,
/// height u8 follow; 1: width u16, height u16; 2: 352×288; 3: 176×144; 4: 128×96; 5: 320×240; 6: 160×120.
pub fn sorenson_h263_size(frame: &[u8]) -> Result<(u32, u32), MediaError> {
    const WHAT: &str = "H263VIDEOPACKET";
    let invalid = |field, value: u32| MediaError::Invalid {
        what: WHAT,
        field,
        value: u64::from(value),
    };
    let mut r = BitReader::new(frame, WHAT);
    let start = r.read_bits(17)?;
    if start != 1 {
        return Err(invalid("PictureStartCode", start));
    }
    let version = r.read_bits(5)?;
    if version > 1 {
        return Err(invalid("Version", version));
    }
    let _temporal_reference = r.read_bits(8)?;
    let size = match r.read_bits(3)? {
        0 => (r.read_bits(8)?, r.read_bits(8)?),
        1 => (r.read_bits(16)?, r.read_bits(16)?),
        2 => (352, 288),
        3 => (176, 144),
        4 => (128, 96),
        5 => (320, 240),
        6 => (160, 120),
        other => return Err(invalid("PictureSize", other)),
    };
    if size.0 == 0 || size.1 == 0 {
        return Err(invalid("size", 0));
    }
    Ok(size)
}

/// Size of a VP6 key frame as FLV carries it (§E.4.3.4 VP6FLVVIDEOPACKET: HorizontalAdjustment u4 |
/// VerticalAdjustment u4, then — for VP6 with alpha — OffsetToAlpha u24, then the frame).
///
/// The VP6 frame header (On2 VP6 bitstream format, as FFmpeg's `vp6_parse_header` reads it): FrameType u1
/// (0 = key frame) | Quantizer u6 | Separated coefficients u1; on key frames Version u5 | Profile u2 |
/// Interlaced u1, a 16-bit coefficient partition offset when coefficients are separated or the profile is
/// 0, then stored macroblock rows u8 and columns u8. Size: 16 × columns − horizontal adjustment, 16 ×
/// rows − vertical adjustment.
pub fn vp6_size(body: &[u8], has_alpha: bool) -> Result<(u32, u32), MediaError> {
    const WHAT: &str = "VP6 frame header";
    let truncated = |need: usize| MediaError::Truncated {
        what: WHAT,
        need,
        have: body.len(),
    };
    let adjustment = *body.first().ok_or(truncated(1))?;
    let frame = body
        .get(if has_alpha { 4 } else { 1 }..)
        .ok_or(truncated(4))?;
    let (&b0, &b1) = (
        frame.first().ok_or(truncated(2))?,
        frame.get(1).ok_or(truncated(3))?,
    );
    if b0 & 0x80 != 0 {
        return Err(MediaError::Invalid {
            what: WHAT,
            field: "FrameType (not a key frame)",
            value: 1,
        });
    }
    let is_separated = b0 & 0x01 != 0;
    let profile = (b1 >> 1) & 0x03;
    let at = if is_separated || profile == 0 { 4 } else { 2 };
    let rows = u32::from(*frame.get(at).ok_or(truncated(at + 1))?);
    let cols = u32::from(*frame.get(at + 1).ok_or(truncated(at + 2))?);
    let width = (16 * cols).saturating_sub(u32::from(adjustment >> 4));
    let height = (16 * rows).saturating_sub(u32::from(adjustment & 0x0F));
    if width == 0 || height == 0 {
        return Err(MediaError::Invalid {
            what: WHAT,
            field: "size",
            value: 0,
        });
    }
    Ok((width, height))
}

/// The picture size of a VP8 keyframe (RFC 6386 §9.1: the 3-byte frame tag, the start code
/// `9d 01 2a`, then 14-bit width and height, each with a 2-bit scale above).
///
/// Errors: [`MediaError::Truncated`] for fewer than 10 bytes, [`MediaError::Invalid`] for an
/// interframe or a missing start code.
pub fn vp8_size(frame: &[u8]) -> Result<(u32, u32), MediaError> {
    const WHAT: &str = "VP8 keyframe";
    if frame.len() < 10 {
        return Err(MediaError::Truncated {
            what: WHAT,
            need: 10,
            have: frame.len(),
        });
    }
    if frame[0] & 1 != 0 {
        return Err(MediaError::Invalid {
            what: WHAT,
            field: "frame type (not a key frame)",
            value: 1,
        });
    }
    if frame[3..6] != [0x9d, 0x01, 0x2a] {
        return Err(MediaError::Invalid {
            what: WHAT,
            field: "start code",
            value: u64::from(frame[3]) << 16 | u64::from(frame[4]) << 8 | u64::from(frame[5]),
        });
    }
    let width = u32::from(u16::from_le_bytes([frame[6], frame[7]]) & 0x3fff);
    let height = u32::from(u16::from_le_bytes([frame[8], frame[9]]) & 0x3fff);
    Ok((width, height))
}

/// Size of a VP9 key frame (VP9 Bitstream Specification v0.6 §6.2 uncompressed_header): frame_marker u2
/// (= 2), profile_low_bit u1, profile_high_bit u1, reserved_zero u1 if profile 3, show_existing_frame u1
/// (must be 0), frame_type u1 (0 = KEY_FRAME), show_frame u1, error_resilient_mode u1, frame_sync_code
/// (0x49 0x83 0x42), color_config (§6.2.2: ten_or_twelve_bit u1 if profile ≥ 2, color_space u3,
/// color_range u1 unless sRGB, subsampling_x u1, subsampling_y u1, reserved_zero u1 in profiles 1 and 3),
/// frame_width_minus_1 u16, frame_height_minus_1 u16.
pub fn vp9_size(frame: &[u8]) -> Result<(u32, u32), MediaError> {
    const WHAT: &str = "VP9 uncompressed header";
    let invalid = |field, value: u32| MediaError::Invalid {
        what: WHAT,
        field,
        value: u64::from(value),
    };
    let mut r = BitReader::new(frame, WHAT);
    let marker = r.read_bits(2)?;
    if marker != 2 {
        return Err(invalid("frame_marker", marker));
    }
    let low = r.read_bits(1)?;
    let high = r.read_bits(1)?;
    let profile = high << 1 | low;
    if profile == 3 {
        r.skip_bits(1)?;
    }
    if r.read_flag()? {
        return Err(invalid("show_existing_frame", 1));
    }
    let frame_type = r.read_bits(1)?;
    if frame_type != 0 {
        return Err(invalid("frame_type (not a key frame)", frame_type));
    }
    r.skip_bits(2)?; // show_frame, error_resilient_mode
    let sync = r.read_bits(24)?;
    if sync != 0x49_83_42 {
        return Err(invalid("frame_sync_code", sync));
    }
    if profile >= 2 {
        r.skip_bits(1)?; // ten_or_twelve_bit
    }
    let color_space = r.read_bits(3)?;
    if color_space != 7 {
        r.skip_bits(1)?; // color_range
        if profile == 1 || profile == 3 {
            r.skip_bits(3)?; // subsampling_x, subsampling_y, reserved_zero
        }
    } else if profile == 1 || profile == 3 {
        r.skip_bits(1)?; // reserved_zero
    }
    let width = r.read_bits(16)? + 1;
    let height = r.read_bits(16)? + 1;
    Ok((width, height))
}

/// The maximum picture size of an AV1 sequence, from the first sequence header OBU in `obus` (a temporal
/// unit, or the configOBUs of an `av1C` record). AV1 Bitstream & Decoding Process Specification §5.3
/// (OBU header: forbidden u1, obu_type u4 (1 = OBU_SEQUENCE_HEADER), extension_flag u1, has_size_field u1,
/// reserved u1, an extension byte, leb128 obu_size) and §5.5 (sequence_header_obu: seq_profile u3,
/// still_picture u1, reduced_still_picture_header u1, then timing, decoder model and operating point
/// information, frame_width_bits_minus_1 u4, frame_height_bits_minus_1 u4, max_frame_width_minus_1,
/// max_frame_height_minus_1). OBUs without a size field are taken to run to the end of `obus`.
pub fn av1_size(obus: &[u8]) -> Result<(u32, u32), MediaError> {
    const WHAT: &str = "AV1 sequence header";
    let mut rest = obus;
    while let Some(&header) = rest.first() {
        let obu_type = (header >> 3) & 0x0F;
        let has_extension = header & 0x04 != 0;
        let has_size = header & 0x02 != 0;
        let mut pos = 1 + usize::from(has_extension);
        let size = if has_size {
            let mut size = 0u64;
            let mut i = 0;
            loop {
                let b = *rest.get(pos).ok_or(MediaError::Truncated {
                    what: WHAT,
                    need: pos + 1,
                    have: rest.len(),
                })?;
                pos += 1;
                size |= u64::from(b & 0x7F) << (7 * i);
                i += 1;
                if b & 0x80 == 0 || i == 8 {
                    break;
                }
            }
            usize::try_from(size).unwrap_or(usize::MAX)
        } else {
            rest.len().saturating_sub(pos)
        };
        let end = pos.saturating_add(size).min(rest.len());
        let payload = rest.get(pos..end).unwrap_or_default();
        if obu_type == 1 {
            return av1_sequence_header_size(payload);
        }
        rest = rest.get(end..).unwrap_or_default();
        if end == 0 {
            break;
        }
    }
    Err(MediaError::Missing {
        what: WHAT,
        field: "sequence header OBU",
    })
}

fn av1_sequence_header_size(payload: &[u8]) -> Result<(u32, u32), MediaError> {
    let mut r = BitReader::new(payload, "AV1 sequence header");
    let _seq_profile = r.read_bits(3)?;
    let _still_picture = r.read_flag()?;
    let is_reduced = r.read_flag()?;
    if is_reduced {
        r.skip_bits(5)?; // seq_level_idx[0]
    } else {
        let mut buffer_delay_bits = 0;
        let mut has_decoder_model = false;
        if r.read_flag()? {
            // timing_info: num_units_in_display_tick u32, time_scale u32, equal_picture_interval u1
            r.skip_bits(64)?;
            if r.read_flag()? {
                r.read_ue()?; // num_ticks_per_picture_minus_1, uvlc()
            }
            has_decoder_model = r.read_flag()?;
            if has_decoder_model {
                buffer_delay_bits = r.read_bits(5)? as usize + 1;
                r.skip_bits(32 + 5 + 5)?; // num_units_in_decoding_tick, two length fields
            }
        }
        let has_initial_display_delay = r.read_flag()?;
        let operating_points = r.read_bits(5)? + 1;
        for _ in 0..operating_points {
            r.skip_bits(12)?; // operating_point_idc
            if r.read_bits(5)? > 7 {
                r.skip_bits(1)?; // seq_tier
            }
            if has_decoder_model && r.read_flag()? {
                r.skip_bits(2 * buffer_delay_bits + 1)?; // decoder/encoder buffer delay, low_delay_mode_flag
            }
            if has_initial_display_delay && r.read_flag()? {
                r.skip_bits(4)?;
            }
        }
    }
    let width_bits = r.read_bits(4)? + 1;
    let height_bits = r.read_bits(4)? + 1;
    let width = r.read_bits(width_bits)? + 1;
    let height = r.read_bits(height_bits)? + 1;
    Ok((width, height))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sorenson_h263_sizes() {
        // PictureStartCode 0000 0000 0000 0000 1, Version 00000, TemporalReference 0, PictureSize 000,
        // width 1010 0000 (160), height 0111 1000 (120).
        let custom = [0x00, 0x00, 0x80, 0x00, 0x50, 0x3C, 0x00];
        assert_eq!(sorenson_h263_size(&custom).unwrap(), (160, 120));
        // PictureSize 101 (320×240): 17 + 5 + 8 bits, then 101.
        let qvga = [0x00, 0x00, 0x80, 0x02, 0x80];
        assert_eq!(sorenson_h263_size(&qvga).unwrap(), (320, 240));
        assert!(sorenson_h263_size(&[0x00, 0x01, 0x80, 0, 0, 0]).is_err());
        assert!(sorenson_h263_size(&[0x00, 0x00]).is_err());
    }

    #[test]
    fn vp6_key_frame_size_with_adjustment() {
        // Adjustment 0x14 (1 px horizontally, 4 vertically); key frame, quantizer 31, not separated;
        // version 6, profile 11, not interlaced; 15 rows, 20 columns (then displayed rows/columns).
        let body = [0x14, 0x3E, 0x36, 15, 20, 15, 20];
        assert_eq!(vp6_size(&body, false).unwrap(), (319, 236));
        // Profile 0: a 16-bit partition offset comes first. With alpha: a 24-bit offset after the
        // adjustment byte.
        let body = [0x00, 0, 0, 9, 0x3E, 0x30, 0x01, 0x23, 8, 10];
        assert_eq!(vp6_size(&body, true).unwrap(), (160, 128));
        assert!(vp6_size(&[0x00, 0xBE, 0x36, 15, 20], false).is_err()); // inter frame
        assert!(vp6_size(&[0x00, 0x3E], false).is_err());
    }

    #[test]
    fn vp9_key_frame_size() {
        // frame_marker 10, profile 0 (00), show_existing_frame 0, frame_type 0, show_frame 1, error_res 0
        // = 1000 0010, then 49 83 42, color_space 001 + color_range 0 + 4 bits of width,
        // frame_width_minus_1 = 639, frame_height_minus_1 = 359.
        let mut bits = String::from("10000010");
        bits += "010010011000001101000010"; // frame_sync_code
        bits += "0010"; // color_space 1 (BT.601), color_range 0
        bits += &format!("{:016b}{:016b}", 639, 359);
        while bits.len() % 8 != 0 {
            bits.push('0');
        }
        let bytes: Vec<u8> = (0..bits.len() / 8)
            .map(|i| u8::from_str_radix(&bits[8 * i..8 * i + 8], 2).unwrap())
            .collect();
        assert_eq!(vp9_size(&bytes).unwrap(), (640, 360));
        let mut inter = bytes.clone();
        inter[0] = 0b1000_0110; // frame_type 1
        assert!(vp9_size(&inter).is_err());
    }

    #[test]
    fn av1_sequence_header_in_config_obus() {
        // A sequence header OBU for 1280x720 built field by field (reduced_still_picture_header 0, no
        // timing info, one operating point, level 8 (4.0)): OBU header 0x0A (type 1, has_size_field),
        // obu_size, then seq_profile 000, still 0, reduced 0, timing_info_present 0,
        // initial_display_delay_present 0, operating_points_cnt_minus_1 00000, idc 0 (12 bits),
        // seq_level_idx 01000, seq_tier 1, frame_width_bits_minus_1 1010, frame_height_bits_minus_1 1001,
        // max_frame_width_minus_1 1279 (11 bits), max_frame_height_minus_1 719 (10 bits), …
        let mut bits = String::from("000" /* profile */);
        bits += "0" /* still */;
        bits += "0" /* reduced */;
        bits += "0" /* timing */;
        bits += "0" /* initial display delay */;
        bits += "00000" /* operating points − 1 */;
        bits += "000000000000" /* idc */;
        bits += "01000" /* seq_level_idx 8 */;
        bits += "1" /* tier */;
        bits += "1010" /* width bits − 1 = 10 */;
        bits += "1001" /* height bits − 1 = 9 */;
        bits += &format!("{:011b}{:010b}", 1279, 719);
        while bits.len() % 8 != 0 {
            bits.push('0');
        }
        let payload: Vec<u8> = (0..bits.len() / 8)
            .map(|i| u8::from_str_radix(&bits[8 * i..8 * i + 8], 2).unwrap())
            .collect();
        // A temporal delimiter OBU (type 2, size 0) first, then the sequence header.
        let mut obus = vec![0x12, 0x00, 0x0A, payload.len() as u8];
        obus.extend_from_slice(&payload);
        assert_eq!(av1_size(&obus).unwrap(), (1280, 720));
        assert!(matches!(
            av1_size(&[0x12, 0x00]),
            Err(MediaError::Missing { .. })
        ));
    }

    proptest::proptest! {
        #[test]
        fn picture_size_parsers_never_panic(data in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..64)) {
            let _ = sorenson_h263_size(&data);
            let _ = vp6_size(&data, false);
            let _ = vp6_size(&data, true);
            let _ = vp9_size(&data);
            let _ = av1_size(&data);
            let _ = crate::mpeg_video::MpegVideoUnit::parse(&data);
            let _ = crate::mpeg_audio::MpegAudioHeader::parse(&data);
            let _ = crate::ac3::Ac3Header::parse(&data);
            let _ = crate::decodable::opus_packet_samples(&data);
            let _ = crate::decodable::flac_streaminfo_format(&data);
        }
    }
}
