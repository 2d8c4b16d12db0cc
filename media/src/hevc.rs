//! H.265 / HEVC: the `hvcC` decoder configuration record and the SPS fields Estuary needs.
//!
//! [`HevcConfig::parse`] reads an `HEVCDecoderConfigurationRecord` (ISO/IEC 14496-15 §8.3.3.1) as carried
//! in an `hvcC` box or an enhanced-RTMP sequence start; [`HevcConfig::from_parameter_sets`] builds one from
//! VPS/SPS/PPS NAL units found in-band (MPEG-TS ingest). [`parse_sps`] reads a sequence parameter set
//! (ITU-T H.265 §7.3.2.2.1) for the profile/tier/level, the displayed picture size and the VUI frame rate.

use bytes::{BufMut, Bytes, BytesMut};

use crate::{
    MediaError, VideoParams,
    avc::plausible_frame_rate,
    bits::{BitReader, ByteReader},
};

const WHAT_HVCC: &str = "hvcC";
const WHAT_SPS: &str = "HEVC SPS";

/// nal_unit_type of a video parameter set (ITU-T H.265 Table 7-1).
pub const NAL_TYPE_VPS: u8 = 32;
/// nal_unit_type of a sequence parameter set (ITU-T H.265 Table 7-1).
pub const NAL_TYPE_SPS: u8 = 33;
/// nal_unit_type of a picture parameter set (ITU-T H.265 Table 7-1).
pub const NAL_TYPE_PPS: u8 = 34;
/// nal_unit_type of an access unit delimiter (ITU-T H.265 Table 7-1).
pub const NAL_TYPE_AUD: u8 = 35;

/// The nal_unit_type of an HEVC NAL unit from its two-byte header (ITU-T H.265 §7.3.1.2), or `None` for
/// a NAL unit shorter than its header.
pub fn nal_unit_type(nal: &[u8]) -> Option<u8> {
    (nal.len() >= 2).then(|| (nal[0] >> 1) & 0x3f)
}

/// A parsed `HEVCDecoderConfigurationRecord` (ISO/IEC 14496-15 §8.3.3.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HevcConfig {
    /// The record's bytes as received (the body of an `hvcC` box).
    pub record: Bytes,
    /// general_profile_space (0..=3).
    pub general_profile_space: u8,
    /// general_tier_flag.
    pub general_tier_flag: bool,
    /// general_profile_idc.
    pub general_profile_idc: u8,
    /// general_profile_compatibility_flags (32 bits, bit 31 = flag 0).
    pub general_profile_compatibility_flags: u32,
    /// general_constraint_indicator_flags (48 bits, in the low bits).
    pub general_constraint_indicator_flags: u64,
    /// general_level_idc.
    pub general_level_idc: u8,
    /// NAL unit length field size in bytes (1, 2 or 4).
    pub nal_length_size: u8,
    /// Video parameter sets (NAL units without start codes or length prefixes).
    pub vps: Vec<Bytes>,
    /// Sequence parameter sets.
    pub sps: Vec<Bytes>,
    /// Picture parameter sets.
    pub pps: Vec<Bytes>,
    /// Picture size and frame rate from the first SPS; the frame rate falls back to the record's
    /// `avgFrameRate` when the SPS VUI does not signal timing.
    pub params: VideoParams,
}

impl HevcConfig {
    /// Parse an hvcC record. Errors: truncated record, no SPS, or an SPS that cannot be parsed
    /// (ITU-T H.265 §7.3.2.2).
    ///
    /// Layout (ISO/IEC 14496-15 §8.3.3.1.2): the 23-byte header read by [`parse_hvcc_header`], then per
    /// array `array_completeness` u1, reserved u1, `NAL_unit_type` u6, `numNalus` u16, and per NAL unit
    /// `nalUnitLength` u16 + bytes. VPS, SPS and PPS arrays are kept (each NAL unit's own header must
    /// agree with the array type); other arrays (SEI) are skipped. Profile/tier/level come from the
    /// header, picture size from the first SPS, the frame rate from the SPS VUI or else from the
    /// header's `avgFrameRate`. Errors also: those of [`parse_hvcc_header`].
    pub fn parse(record: Bytes) -> Result<Self, MediaError> {
        let header = parse_hvcc_header(&record)?;
        let mut r = ByteReader::new(&record, WHAT_HVCC);
        r.take(HVCC_HEADER_LEN_BYTES)?;
        let (mut vps, mut sps, mut pps) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..header.num_arrays {
            let array_type = r.u8()? & 0x3f;
            let num_nalus = r.u16()?;
            for _ in 0..num_nalus {
                let len = usize::from(r.u16()?);
                let start = r.position_bytes();
                let nal = r.take(len)?;
                let list = match array_type {
                    NAL_TYPE_VPS => &mut vps,
                    NAL_TYPE_SPS => &mut sps,
                    NAL_TYPE_PPS => &mut pps,
                    _ => continue,
                };
                let found = nal_unit_type(nal);
                if found != Some(array_type) {
                    return Err(MediaError::Invalid {
                        what: WHAT_HVCC,
                        field: "NAL unit type in array",
                        value: found.map_or(u64::MAX, u64::from),
                    });
                }
                list.push(record.slice(start..start + len));
            }
        }
        let first_sps = sps.first().ok_or(MediaError::Missing {
            what: WHAT_HVCC,
            field: "SPS",
        })?;
        let mut params = parse_sps(first_sps)?.video_params();
        if params.frame_rate.is_none() {
            params.frame_rate =
                plausible_frame_rate(u64::from(header.avg_frame_rate_per_256s), 256);
        }
        Ok(Self {
            general_profile_space: header.general_profile_space,
            general_tier_flag: header.general_tier_flag,
            general_profile_idc: header.general_profile_idc,
            general_profile_compatibility_flags: header.general_profile_compatibility_flags,
            general_constraint_indicator_flags: header.general_constraint_indicator_flags,
            general_level_idc: header.general_level_idc,
            nal_length_size: header.nal_length_size,
            vps,
            sps,
            pps,
            params,
            record,
        })
    }

    /// Build an hvcC record from in-band parameter sets (NAL units with their two-byte header, without
    /// start codes, emulation prevention bytes kept) and parse it.
    ///
    /// The header is filled from the first SPS: its profile_tier_level general fields, chroma format, bit
    /// depths, `numTemporalLayers = sps_max_sub_layers_minus1 + 1` and `temporalIdNested =
    /// sps_temporal_id_nesting_flag`; `min_spatial_segmentation_idc`, `parallelismType`, `avgFrameRate` and
    /// `constantFrameRate` are written as 0 ("unknown"). NAL lengths are 4 bytes. One array per parameter
    /// set type, in VPS, SPS, PPS order, each with `array_completeness = 1` (as `hvc1` requires). Errors:
    /// [`MediaError::Missing`] if any list is empty, [`MediaError::Invalid`] for more than 65 535 NAL
    /// units of a type, a NAL unit longer than 65 535 bytes or of the wrong type, and any error of
    /// [`parse_sps`] for the first SPS.
    pub fn from_parameter_sets(
        vps: &[Bytes],
        sps: &[Bytes],
        pps: &[Bytes],
    ) -> Result<Self, MediaError> {
        if vps.is_empty() {
            return Err(MediaError::Missing {
                what: WHAT_HVCC,
                field: "VPS",
            });
        }
        let first_sps = sps.first().ok_or(MediaError::Missing {
            what: WHAT_HVCC,
            field: "SPS",
        })?;
        if pps.is_empty() {
            return Err(MediaError::Missing {
                what: WHAT_HVCC,
                field: "PPS",
            });
        }
        let info = parse_sps(first_sps)?;
        let ptl = info.profile_tier_level;

        let mut out = BytesMut::with_capacity(
            32 + vps
                .iter()
                .chain(sps)
                .chain(pps)
                .map(|n| n.len() + 2)
                .sum::<usize>(),
        );
        out.put_u8(1); // configurationVersion
        out.put_u8(
            ptl.general_profile_space << 6
                | u8::from(ptl.general_tier_flag) << 5
                | ptl.general_profile_idc,
        );
        out.put_u32(ptl.general_profile_compatibility_flags);
        out.put_slice(&ptl.general_constraint_indicator_flags.to_be_bytes()[2..]); // 48 bits
        out.put_u8(ptl.general_level_idc);
        out.put_u16(0xf000); // reserved '1111' + min_spatial_segmentation_idc 0
        out.put_u8(0xfc); // reserved '111111' + parallelismType 0
        out.put_u8(0xfc | info.chroma_format_idc); // reserved + chromaFormat
        out.put_u8(0xf8 | (info.bit_depth_luma - 8)); // reserved + bitDepthLumaMinus8
        out.put_u8(0xf8 | (info.bit_depth_chroma - 8)); // reserved + bitDepthChromaMinus8
        out.put_u16(0); // avgFrameRate: unspecified
        // constantFrameRate 0, numTemporalLayers, temporalIdNested, lengthSizeMinusOne 3.
        out.put_u8(info.max_sub_layers << 3 | u8::from(info.is_temporal_id_nested) << 2 | 3);
        out.put_u8(3); // numOfArrays
        for (nal_type, list) in [
            (NAL_TYPE_VPS, vps),
            (NAL_TYPE_SPS, sps),
            (NAL_TYPE_PPS, pps),
        ] {
            out.put_u8(0x80 | nal_type); // array_completeness 1, reserved 0, NAL_unit_type
            let count = u16::try_from(list.len()).map_err(|_| MediaError::Invalid {
                what: WHAT_HVCC,
                field: "numNalus",
                value: list.len() as u64,
            })?;
            out.put_u16(count);
            for nal in list {
                let len = u16::try_from(nal.len()).map_err(|_| MediaError::Invalid {
                    what: WHAT_HVCC,
                    field: "nalUnitLength",
                    value: nal.len() as u64,
                })?;
                let found = nal_unit_type(nal);
                if found != Some(nal_type) {
                    return Err(MediaError::Invalid {
                        what: WHAT_HVCC,
                        field: "NAL unit type in array",
                        value: found.map_or(u64::MAX, u64::from),
                    });
                }
                out.put_u16(len);
                out.put_slice(nal);
            }
        }
        Self::parse(out.freeze())
    }

    /// RFC 6381 codec string per ISO/IEC 14496-15 Annex E.3, e.g. `hvc1.1.6.L93.B0`:
    /// `hvc1.` + profile space letter (none for 0, `A`/`B`/`C` for 1/2/3) and general_profile_idc in
    /// decimal, `.` + the 32 compatibility flags in reverse bit order in hexadecimal without leading zeros,
    /// `.` + `L` (Main tier) or `H` (High tier) and general_level_idc in decimal, then each of the six
    /// constraint indicator bytes as two hex digits after a `.`, trailing zero bytes omitted (all six
    /// when all are zero). Hex digits are upper case. The sample entry is always written as `hvc1`
    /// (parameter sets in the record), which is what Estuary's init segments use.
    pub fn rfc6381(&self) -> String {
        let space = match self.general_profile_space {
            1 => "A",
            2 => "B",
            3 => "C",
            _ => "",
        };
        let mut s = format!(
            "hvc1.{space}{}.{:X}.{}{}",
            self.general_profile_idc,
            self.general_profile_compatibility_flags.reverse_bits(),
            if self.general_tier_flag { 'H' } else { 'L' },
            self.general_level_idc,
        );
        let constraint = self.general_constraint_indicator_flags.to_be_bytes();
        let constraint = &constraint[2..];
        let used = constraint
            .iter()
            .rposition(|&b| b != 0)
            .map_or(0, |i| i + 1);
        for b in &constraint[..used] {
            s.push_str(&format!(".{b:02X}"));
        }
        s
    }
}

/// Length of the fixed part of an hvcC record, up to and including `numOfArrays`.
pub const HVCC_HEADER_LEN_BYTES: usize = 23;

/// The fixed 23-byte part of an `HEVCDecoderConfigurationRecord` (ISO/IEC 14496-15 §8.3.3.1.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HvccHeader {
    /// general_profile_space (0..=3).
    pub general_profile_space: u8,
    /// general_tier_flag.
    pub general_tier_flag: bool,
    /// general_profile_idc.
    pub general_profile_idc: u8,
    /// general_profile_compatibility_flags (32 bits, bit 31 = flag 0).
    pub general_profile_compatibility_flags: u32,
    /// general_constraint_indicator_flags (48 bits, in the low bits).
    pub general_constraint_indicator_flags: u64,
    /// general_level_idc.
    pub general_level_idc: u8,
    /// `min_spatial_segmentation_idc` (12 bits; 0 = not signalled).
    pub min_spatial_segmentation_idc: u16,
    /// `parallelismType` (0 unknown/mixed, 1 slices, 2 tiles, 3 wavefront).
    pub parallelism_type: u8,
    /// `chromaFormat` (chroma_format_idc: 0 monochrome, 1 4:2:0, 2 4:2:2, 3 4:4:4).
    pub chroma_format_idc: u8,
    /// Luma bit depth (`bitDepthLumaMinus8 + 8`).
    pub bit_depth_luma: u8,
    /// Chroma bit depth (`bitDepthChromaMinus8 + 8`).
    pub bit_depth_chroma: u8,
    /// `avgFrameRate` in frames per 256 seconds (0 = not specified).
    pub avg_frame_rate_per_256s: u16,
    /// `constantFrameRate` (0 unknown, 1 constant, 2 constant per temporal layer).
    pub constant_frame_rate: u8,
    /// `numTemporalLayers` (0 unknown, 1 not temporally scalable, >1 layer count).
    pub num_temporal_layers: u8,
    /// `temporalIdNested`.
    pub is_temporal_id_nested: bool,
    /// NAL unit length field size in bytes (1, 2 or 4).
    pub nal_length_size: u8,
    /// `numOfArrays`.
    pub num_arrays: u8,
}

/// Parse the fixed 23-byte header of an hvcC record (the arrays that follow are not read).
///
/// Layout (ISO/IEC 14496-15 §8.3.3.1.2): `configurationVersion` u8 = 1, `general_profile_space` u2,
/// `general_tier_flag` u1, `general_profile_idc` u5, `general_profile_compatibility_flags` u32,
/// `general_constraint_indicator_flags` u48, `general_level_idc` u8, 4 reserved +
/// `min_spatial_segmentation_idc` u12, 6 reserved + `parallelismType` u2, 6 reserved + `chromaFormat` u2,
/// 5 reserved + `bitDepthLumaMinus8` u3, 5 reserved + `bitDepthChromaMinus8` u3, `avgFrameRate` u16,
/// `constantFrameRate` u2, `numTemporalLayers` u3, `temporalIdNested` u1, `lengthSizeMinusOne` u2,
/// `numOfArrays` u8. Reserved bits are not checked. Errors: [`MediaError::Truncated`] below 23 bytes,
/// [`MediaError::Invalid`] for `configurationVersion != 1` or `lengthSizeMinusOne == 2`.
pub fn parse_hvcc_header(record: &[u8]) -> Result<HvccHeader, MediaError> {
    let mut r = ByteReader::new(record, WHAT_HVCC);
    let version = r.u8()?;
    if version != 1 {
        return Err(MediaError::Invalid {
            what: WHAT_HVCC,
            field: "configurationVersion",
            value: u64::from(version),
        });
    }
    let b = r.u8()?;
    let general_profile_space = b >> 6;
    let general_tier_flag = b & 0x20 != 0;
    let general_profile_idc = b & 0x1f;
    let general_profile_compatibility_flags = r.u32()?;
    let general_constraint_indicator_flags = r.u48()?;
    let general_level_idc = r.u8()?;
    let min_spatial_segmentation_idc = r.u16()? & 0x0fff;
    let parallelism_type = r.u8()? & 0b11;
    let chroma_format_idc = r.u8()? & 0b11;
    let bit_depth_luma = (r.u8()? & 0b111) + 8;
    let bit_depth_chroma = (r.u8()? & 0b111) + 8;
    let avg_frame_rate_per_256s = r.u16()?;
    let b = r.u8()?;
    let length_size_minus_one = b & 0b11;
    if length_size_minus_one == 2 {
        return Err(MediaError::Invalid {
            what: WHAT_HVCC,
            field: "lengthSizeMinusOne",
            value: u64::from(length_size_minus_one),
        });
    }
    Ok(HvccHeader {
        general_profile_space,
        general_tier_flag,
        general_profile_idc,
        general_profile_compatibility_flags,
        general_constraint_indicator_flags,
        general_level_idc,
        min_spatial_segmentation_idc,
        parallelism_type,
        chroma_format_idc,
        bit_depth_luma,
        bit_depth_chroma,
        avg_frame_rate_per_256s,
        constant_frame_rate: b >> 6,
        num_temporal_layers: (b >> 3) & 0b111,
        is_temporal_id_nested: b & 0b100 != 0,
        nal_length_size: length_size_minus_one + 1,
        num_arrays: r.u8()?,
    })
}

/// The general part of `profile_tier_level()` (ITU-T H.265 §7.3.3); field meanings as in [`HevcConfig`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HevcProfileTierLevel {
    /// general_profile_space (0..=3).
    pub general_profile_space: u8,
    /// general_tier_flag (`true` = High tier).
    pub general_tier_flag: bool,
    /// general_profile_idc (1 Main, 2 Main 10, 3 Main Still Picture, 4 range extensions …).
    pub general_profile_idc: u8,
    /// general_profile_compatibility_flag[0..32], flag 0 in bit 31.
    pub general_profile_compatibility_flags: u32,
    /// The 48 bits from general_progressive_source_flag to general_inbld_flag/reserved bit, in the low
    /// bits (progressive_source_flag in bit 47).
    pub general_constraint_indicator_flags: u64,
    /// general_level_idc (30 × the level number, e.g. 93 for level 3.1).
    pub general_level_idc: u8,
}

/// The fields of an H.265 sequence parameter set that Estuary uses (ITU-T H.265 §7.3.2.2.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HevcSps {
    /// sps_video_parameter_set_id (0..=15).
    pub video_parameter_set_id: u8,
    /// sps_max_sub_layers_minus1 + 1 (1..=7).
    pub max_sub_layers: u8,
    /// sps_temporal_id_nesting_flag.
    pub is_temporal_id_nested: bool,
    /// The general profile, tier and level.
    pub profile_tier_level: HevcProfileTierLevel,
    /// sps_seq_parameter_set_id (0..=15).
    pub seq_parameter_set_id: u8,
    /// chroma_format_idc (0 monochrome, 1 4:2:0, 2 4:2:2, 3 4:4:4).
    pub chroma_format_idc: u8,
    /// separate_colour_plane_flag.
    pub has_separate_colour_planes: bool,
    /// pic_width_in_luma_samples (before the conformance window).
    pub coded_width: u32,
    /// pic_height_in_luma_samples (before the conformance window).
    pub coded_height: u32,
    /// Width after the conformance window (SubWidthC × (left + right offsets) removed).
    pub width: u32,
    /// Height after the conformance window (SubHeightC × (top + bottom offsets) removed).
    pub height: u32,
    /// BitDepthY (8..=16).
    pub bit_depth_luma: u8,
    /// BitDepthC (8..=16).
    pub bit_depth_chroma: u8,
    /// `vui_time_scale / vui_num_units_in_tick` (ITU-T H.265 §E.3.1) reduced, if the VUI signals timing,
    /// every field before it parsed cleanly, and the rate is at most
    /// [`crate::avc::MAX_PLAUSIBLE_FRAME_RATE`].
    pub frame_rate: Option<(u32, u32)>,
}

impl HevcSps {
    /// The picture parameters shared with other codecs.
    pub fn video_params(&self) -> VideoParams {
        VideoParams {
            width: self.width,
            height: self.height,
            frame_rate: self.frame_rate,
        }
    }
}

/// Parse an H.265 sequence parameter set NAL unit (two-byte NAL header included, emulation prevention
/// bytes included, no start code or length prefix), ITU-T H.265 §7.3.2.2.1.
///
/// Fields up to the bit depths are required: running out of data or an out-of-range value there is an
/// error ([`MediaError::Truncated`] / [`MediaError::Invalid`], also for a NAL unit type other than 33, a
/// `nuh_layer_id` other than 0, sps_max_sub_layers_minus1 of 7, or a conformance window that leaves no
/// picture). The VUI frame rate lies behind the reference picture sets and scaling lists; if anything
/// between the bit depths and `vui_timing_info` fails to parse, the frame rate is reported as `None`
/// rather than failing the whole SPS.
pub fn parse_sps(nal: &[u8]) -> Result<HevcSps, MediaError> {
    let Some(nal_type) = nal_unit_type(nal) else {
        return Err(MediaError::Truncated {
            what: WHAT_SPS,
            need: 2,
            have: nal.len(),
        });
    };
    if nal_type != NAL_TYPE_SPS {
        return Err(MediaError::Invalid {
            what: WHAT_SPS,
            field: "nal_unit_type",
            value: u64::from(nal_type),
        });
    }
    let nuh_layer_id = (u16::from_be_bytes([nal[0], nal[1]]) >> 3) & 0x3f;
    if nuh_layer_id != 0 {
        return Err(MediaError::Invalid {
            what: WHAT_SPS,
            field: "nuh_layer_id",
            value: u64::from(nuh_layer_id),
        });
    }
    let mut buf = Vec::new();
    let mut r = BitReader::from_ebsp(&nal[2..], &mut buf, WHAT_SPS);

    let video_parameter_set_id = r.read_bits(4)? as u8;
    let max_sub_layers_minus1 = r.read_bits(3)? as u8;
    if max_sub_layers_minus1 > 6 {
        return Err(MediaError::Invalid {
            what: WHAT_SPS,
            field: "sps_max_sub_layers_minus1",
            value: u64::from(max_sub_layers_minus1),
        });
    }
    let is_temporal_id_nested = r.read_flag()?;
    let profile_tier_level = read_profile_tier_level(&mut r, max_sub_layers_minus1)?;
    let seq_parameter_set_id = r.read_ue_max("sps_seq_parameter_set_id", 15)? as u8;
    let chroma_format_idc = r.read_ue_max("chroma_format_idc", 3)? as u8;
    let has_separate_colour_planes = chroma_format_idc == 3 && r.read_flag()?;
    let coded_width = r.read_ue()?;
    let coded_height = r.read_ue()?;
    let mut window = [0u64; 4]; // left, right, top, bottom
    if r.read_flag()? {
        for w in &mut window {
            *w = u64::from(r.read_ue()?);
        }
    }
    // §6.2 Table 6-1 with ChromaArrayType = 0 when separate_colour_plane_flag is set.
    let chroma_array_type = if has_separate_colour_planes {
        0
    } else {
        chroma_format_idc
    };
    let (sub_width_c, sub_height_c) = match chroma_array_type {
        1 => (2, 2),
        2 => (2, 1),
        _ => (1, 1),
    };
    let crop_x = sub_width_c * (window[0] + window[1]);
    let crop_y = sub_height_c * (window[2] + window[3]);
    if crop_x >= u64::from(coded_width) {
        return Err(MediaError::Invalid {
            what: WHAT_SPS,
            field: "conf_win_left/right_offset",
            value: crop_x,
        });
    }
    if crop_y >= u64::from(coded_height) {
        return Err(MediaError::Invalid {
            what: WHAT_SPS,
            field: "conf_win_top/bottom_offset",
            value: crop_y,
        });
    }
    let bit_depth_luma = 8 + r.read_ue_max("bit_depth_luma_minus8", 8)? as u8;
    let bit_depth_chroma = 8 + r.read_ue_max("bit_depth_chroma_minus8", 8)? as u8;
    let frame_rate = read_sps_tail_frame_rate(&mut r, max_sub_layers_minus1).unwrap_or(None);

    Ok(HevcSps {
        video_parameter_set_id,
        max_sub_layers: max_sub_layers_minus1 + 1,
        is_temporal_id_nested,
        profile_tier_level,
        seq_parameter_set_id,
        chroma_format_idc,
        has_separate_colour_planes,
        coded_width,
        coded_height,
        width: coded_width - crop_x as u32,
        height: coded_height - crop_y as u32,
        bit_depth_luma,
        bit_depth_chroma,
        frame_rate,
    })
}

/// `profile_tier_level(1, sps_max_sub_layers_minus1)` (ITU-T H.265 §7.3.3): the general fields, then the
/// sub-layer presence flags, the alignment bits when there are sub-layers, and each present sub-layer
/// profile (88 bits) and level (8 bits), which are skipped.
pub(crate) fn read_profile_tier_level(
    r: &mut BitReader<'_>,
    max_sub_layers_minus1: u8,
) -> Result<HevcProfileTierLevel, MediaError> {
    let general_profile_space = r.read_bits(2)? as u8;
    let general_tier_flag = r.read_flag()?;
    let general_profile_idc = r.read_bits(5)? as u8;
    let general_profile_compatibility_flags = r.read_bits(32)?;
    let general_constraint_indicator_flags = r.read_bits_u64(48)?;
    let general_level_idc = r.read_u8()?;
    let mut present = [(false, false); 7];
    for p in present.iter_mut().take(usize::from(max_sub_layers_minus1)) {
        *p = (r.read_flag()?, r.read_flag()?);
    }
    if max_sub_layers_minus1 > 0 {
        r.skip_bits(2 * (8 - usize::from(max_sub_layers_minus1)))?; // reserved_zero_2bits
    }
    for &(profile_present, level_present) in present.iter().take(usize::from(max_sub_layers_minus1))
    {
        if profile_present {
            r.skip_bits(88)?;
        }
        if level_present {
            r.skip_bits(8)?;
        }
    }
    Ok(HevcProfileTierLevel {
        general_profile_space,
        general_tier_flag,
        general_profile_idc,
        general_profile_compatibility_flags,
        general_constraint_indicator_flags,
        general_level_idc,
    })
}

/// The SPS from `log2_max_pic_order_cnt_lsb_minus4` to `vui_parameters_present_flag`
/// (ITU-T H.265 §7.3.2.2.1), then the VUI up to its timing info.
fn read_sps_tail_frame_rate(
    r: &mut BitReader<'_>,
    max_sub_layers_minus1: u8,
) -> Result<Option<(u32, u32)>, MediaError> {
    let log2_max_poc_lsb = r.read_ue_max("log2_max_pic_order_cnt_lsb_minus4", 12)? + 4;
    let sub_layer_ordering_info_present = r.read_flag()?;
    let first = if sub_layer_ordering_info_present {
        0
    } else {
        max_sub_layers_minus1
    };
    for _ in first..=max_sub_layers_minus1 {
        let _max_dec_pic_buffering_minus1 = r.read_ue()?;
        let _max_num_reorder_pics = r.read_ue()?;
        let _max_latency_increase_plus1 = r.read_ue()?;
    }
    for _ in 0..6 {
        // log2_min_luma_coding_block_size_minus3, log2_diff_max_min_luma_coding_block_size,
        // log2_min/diff luma transform block size, max_transform_hierarchy_depth_inter/intra.
        let _ = r.read_ue()?;
    }
    if r.read_flag()? && r.read_flag()? {
        // scaling_list_enabled_flag && sps_scaling_list_data_present_flag
        skip_scaling_list_data(r)?;
    }
    let _amp_enabled_flag = r.read_flag()?;
    let _sample_adaptive_offset_enabled_flag = r.read_flag()?;
    if r.read_flag()? {
        // pcm_enabled_flag: two u(4) bit depths, two ue sizes, pcm_loop_filter_disabled_flag.
        r.skip_bits(8)?;
        let _ = r.read_ue()?;
        let _ = r.read_ue()?;
        r.skip_bits(1)?;
    }
    let num_short_term_ref_pic_sets = r.read_ue_max("num_short_term_ref_pic_sets", 64)?;
    let mut sets: Vec<ShortTermRps> = Vec::new();
    for idx in 0..num_short_term_ref_pic_sets as usize {
        let set = read_st_ref_pic_set(r, idx, &sets)?;
        sets.push(set);
    }
    if r.read_flag()? {
        // long_term_ref_pics_present_flag
        let count = r.read_ue_max("num_long_term_ref_pics_sps", 32)?;
        for _ in 0..count {
            r.skip_bits(log2_max_poc_lsb as usize + 1)?; // lt_ref_pic_poc_lsb_sps, used_by_curr_pic_lt_sps_flag
        }
    }
    let _sps_temporal_mvp_enabled_flag = r.read_flag()?;
    let _strong_intra_smoothing_enabled_flag = r.read_flag()?;
    if !r.read_flag()? {
        return Ok(None); // vui_parameters_present_flag
    }
    read_vui_frame_rate(r)
}

/// Skip `scaling_list_data()` (ITU-T H.265 §7.3.4).
pub(crate) fn skip_scaling_list_data(r: &mut BitReader<'_>) -> Result<(), MediaError> {
    for size_id in 0..4u32 {
        let step = if size_id == 3 { 3 } else { 1 };
        for _matrix_id in (0..6).step_by(step) {
            if !r.read_flag()? {
                let _scaling_list_pred_matrix_id_delta = r.read_ue()?;
            } else {
                let coef_num = 64.min(1 << (4 + (size_id << 1)));
                if size_id > 1 {
                    let _scaling_list_dc_coef_minus8 = r.read_se()?;
                }
                for _ in 0..coef_num {
                    let _scaling_list_delta_coef = r.read_se()?;
                }
            }
        }
    }
    Ok(())
}

/// The delta POCs of one short-term reference picture set, needed because a later set may be predicted
/// from it (ITU-T H.265 §7.4.8).
#[derive(Debug, Default, Clone)]
struct ShortTermRps {
    /// DeltaPocS0 (negative pictures, closest first).
    negative: Vec<i64>,
    /// DeltaPocS1 (positive pictures, closest first).
    positive: Vec<i64>,
}

/// Upper bound on the pictures in one reference picture set (sps_max_dec_pic_buffering_minus1 ≤ 15).
const MAX_RPS_PICTURES: usize = 16;

/// Read `st_ref_pic_set(idx)` as it appears in an SPS (ITU-T H.265 §7.3.7), deriving DeltaPocS0/S1 with
/// equations 7-61/7-62 for inter-predicted sets.
fn read_st_ref_pic_set(
    r: &mut BitReader<'_>,
    idx: usize,
    previous: &[ShortTermRps],
) -> Result<ShortTermRps, MediaError> {
    let invalid = |field, value: usize| MediaError::Invalid {
        what: WHAT_SPS,
        field,
        value: value as u64,
    };
    let inter_ref_pic_set_prediction = idx != 0 && r.read_flag()?;
    let mut set = ShortTermRps::default();
    if inter_ref_pic_set_prediction {
        // In an SPS, delta_idx_minus1 is absent (0): the reference is the previous set.
        let reference = previous.get(idx - 1).ok_or(invalid("RefRpsIdx", idx))?;
        let negative_sign = r.read_flag()?;
        let abs_delta_rps = i64::from(r.read_ue_max("abs_delta_rps_minus1", (1 << 15) - 1)?) + 1;
        let delta_rps = if negative_sign {
            -abs_delta_rps
        } else {
            abs_delta_rps
        };
        let num_delta_pocs = reference.negative.len() + reference.positive.len();
        let mut use_delta = Vec::with_capacity(num_delta_pocs + 1);
        for _ in 0..=num_delta_pocs {
            let used_by_curr_pic = r.read_flag()?;
            use_delta.push(used_by_curr_pic || r.read_flag()?);
        }
        // Equations 7-61 and 7-62. Every index below is < use_delta.len() = NumDeltaPocs[RefRpsIdx] + 1.
        let (n_neg, n_pos) = (reference.negative.len(), reference.positive.len());
        for j in (0..n_pos).rev() {
            let d_poc = reference.positive[j] + delta_rps;
            if d_poc < 0 && use_delta[n_neg + j] {
                set.negative.push(d_poc);
            }
        }
        if delta_rps < 0 && use_delta[num_delta_pocs] {
            set.negative.push(delta_rps);
        }
        for (j, &delta_poc) in reference.negative.iter().enumerate() {
            let d_poc = delta_poc + delta_rps;
            if d_poc < 0 && use_delta[j] {
                set.negative.push(d_poc);
            }
        }
        for j in (0..n_neg).rev() {
            let d_poc = reference.negative[j] + delta_rps;
            if d_poc > 0 && use_delta[j] {
                set.positive.push(d_poc);
            }
        }
        if delta_rps > 0 && use_delta[num_delta_pocs] {
            set.positive.push(delta_rps);
        }
        for j in 0..n_pos {
            let d_poc = reference.positive[j] + delta_rps;
            if d_poc > 0 && use_delta[n_neg + j] {
                set.positive.push(d_poc);
            }
        }
    } else {
        let num_negative = r.read_ue_max("num_negative_pics", MAX_RPS_PICTURES as u32)? as usize;
        let num_positive = r.read_ue_max("num_positive_pics", MAX_RPS_PICTURES as u32)? as usize;
        let mut poc = 0i64;
        for _ in 0..num_negative {
            poc -= i64::from(r.read_ue()?) + 1; // delta_poc_s0_minus1
            let _used_by_curr_pic_s0_flag = r.read_flag()?;
            set.negative.push(poc);
        }
        poc = 0;
        for _ in 0..num_positive {
            poc += i64::from(r.read_ue()?) + 1; // delta_poc_s1_minus1
            let _used_by_curr_pic_s1_flag = r.read_flag()?;
            set.positive.push(poc);
        }
    }
    let total = set.negative.len() + set.positive.len();
    if total > MAX_RPS_PICTURES {
        return Err(invalid("NumDeltaPocs", total));
    }
    Ok(set)
}

/// `vui_parameters()` (ITU-T H.265 §E.2.1) up to `vui_timing_info`: frame rate =
/// vui_time_scale / vui_num_units_in_tick (§E.3.1).
fn read_vui_frame_rate(r: &mut BitReader<'_>) -> Result<Option<(u32, u32)>, MediaError> {
    if r.read_flag()? && r.read_u8()? == 255 {
        // aspect_ratio_info_present_flag, aspect_ratio_idc == EXTENDED_SAR: sar_width, sar_height
        r.skip_bits(32)?;
    }
    if r.read_flag()? {
        r.skip_bits(1)?; // overscan_info_present_flag → overscan_appropriate_flag
    }
    if r.read_flag()? {
        // video_signal_type_present_flag: video_format u(3), video_full_range_flag u(1)
        r.skip_bits(4)?;
        if r.read_flag()? {
            r.skip_bits(24)?; // colour_primaries, transfer_characteristics, matrix_coeffs
        }
    }
    if r.read_flag()? {
        // chroma_loc_info_present_flag
        let _top = r.read_ue()?;
        let _bottom = r.read_ue()?;
    }
    // neutral_chroma_indication_flag, field_seq_flag, frame_field_info_present_flag
    r.skip_bits(3)?;
    if r.read_flag()? {
        // default_display_window_flag: four offsets
        for _ in 0..4 {
            let _ = r.read_ue()?;
        }
    }
    if !r.read_flag()? {
        return Ok(None); // vui_timing_info_present_flag
    }
    let num_units_in_tick = r.read_bits(32)?;
    let time_scale = r.read_bits(32)?;
    Ok(plausible_frame_rate(
        u64::from(time_scale),
        u64::from(num_units_in_tick),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bits::{BitWriter, annotated_hex as annotated};
    use proptest::prelude::*;

    /// /work/shared/media/camera-face-540p-hevc-aac-6s.mov (a phone recording), hvcC body, unchanged.
    const CAMERA_540P: &str = "
        01                   configurationVersion
        01                   profile_space 0, tier Main, profile_idc 1 (Main)
        60 00 00 00          compatibility flags 1 and 2
        b0 00 00 00 00 00    constraints: progressive, non-packed, frame-only
        5a                   level_idc 90 (level 3)
        f0 00                min_spatial_segmentation_idc 0
        fc                   parallelismType 0
        fd                   chromaFormat 1 (4:2:0)
        f8 f8                bit depths 8 / 8
        00 00                avgFrameRate 0 (unspecified)
        0b                   constantFrameRate 0, numTemporalLayers 1, temporalIdNested 0, lengthSizeMinusOne 3
        03                   numOfArrays
        a0 00 01 00 18       complete VPS array, 1 NAL, 24 bytes
        40 01 0c 01 ff ff 01 60 00 00 03 00 b0 00 00 03 00 00 03 00 5a 15 c0 90
        a1 00 01 00 23       complete SPS array, 1 NAL, 35 bytes
        42 01 01 01 60 00 00 03 00 b0 00 00 03 00 00 03 00 5a a0 07 82 00 88 7d e2 05 7b 91 65 53 50 10
        10 10 08
        a2 00 01 00 07       complete PPS array, 1 NAL, 7 bytes
        44 01 c0 2c bc 14 c9";

    /// `ffmpeg -f lavfi -i testsrc2=size=1280x720:rate=30 -c:v libx265 x.mp4` (x265 3.5), hvcC body with
    /// the fourth array (an x265 info SEI of 2 kB) dropped and numOfArrays changed from 4 to 3.
    const X265_720P30: &str = "
        01 01 60 00 00 00    version 1, Main, compatibility flags 1 and 2
        90 00 00 00 00 00    constraints: progressive, frame-only
        5d                   level_idc 93 (level 3.1)
        f0 00 fc fd f8 f8    no segmentation/parallelism info, 4:2:0, 8 / 8 bit
        00 00 0f             avgFrameRate 0; 1 temporal layer, temporalIdNested 1, 4-byte lengths
        03                   numOfArrays (was 04)
        20 00 01 00 18       VPS array (array_completeness 0, as FFmpeg writes it)
        40 01 0c 01 ff ff 01 60 00 00 03 00 90 00 00 03 00 00 03 00 5d 95 98 09
        21 00 01 00 2b       SPS array, 43 bytes
        42 01 01 01 60 00 00 03 00 90 00 00 03 00 00 03 00 5d a0 02 80 80 2d 16 59 59 a4 93 2b c0 5a 02
        00 00 03 00 02 00 00 03 00 3c 10
        22 00 01 00 07       PPS array
        44 01 c1 72 b4 62 40";

    #[test]
    fn hvcc_camera_540p_from_544_coded() {
        let c = HevcConfig::parse(annotated(CAMERA_540P)).unwrap();
        assert_eq!(c.rfc6381(), "hvc1.1.6.L90.B0");
        assert_eq!((c.vps.len(), c.sps.len(), c.pps.len()), (1, 1, 1));
        let h = parse_hvcc_header(&c.record).unwrap();
        assert_eq!(
            (
                h.nal_length_size,
                h.chroma_format_idc,
                h.bit_depth_luma,
                h.num_arrays
            ),
            (4, 1, 8, 3)
        );
        assert_eq!((h.num_temporal_layers, h.is_temporal_id_nested), (1, false));
        // SPS: pic 960 × 544, conformance window bottom offset 2 × SubHeightC 2 = 4 → 540.
        let sps = parse_sps(&c.sps[0]).unwrap();
        assert_eq!((sps.coded_width, sps.coded_height), (960, 544));
        assert_eq!(
            c.params,
            VideoParams {
                width: 960,
                height: 540,
                frame_rate: None
            }
        );
    }

    #[test]
    fn hvcc_x265_720p30_main_l31() {
        let c = HevcConfig::parse(annotated(X265_720P30)).unwrap();
        assert_eq!(c.rfc6381(), "hvc1.1.6.L93.90");
        assert_eq!(c.general_profile_compatibility_flags, 0x6000_0000);
        assert_eq!(c.general_constraint_indicator_flags, 0x9000_0000_0000);
        // VUI timing: vui_num_units_in_tick 1, vui_time_scale 30.
        assert_eq!(
            c.params,
            VideoParams {
                width: 1280,
                height: 720,
                frame_rate: Some((30, 1))
            }
        );
    }

    #[test]
    fn sps_x265_1080p_conformance_window() {
        // x265 1920x1080 25 fps: HEVC pads only to the minimum coding block (8), so 1080 is coded as
        // is and there is no conformance window (contrast with H.264's 1088).
        let sps = parse_sps(&annotated(
            "42 01 01 01 60 00 00 03 00 90 00 00 03 00 00 03 00 78 a0 03 c0 80 10 e5 96 56 69 24 ca f0 16
             80 80 00 00 03 00 80 00 00 0c 84",
        ))
        .unwrap();
        assert_eq!((sps.coded_width, sps.coded_height), (1920, 1080));
        assert_eq!(sps.profile_tier_level.general_level_idc, 120);
        assert_eq!(
            sps.video_params(),
            VideoParams {
                width: 1920,
                height: 1080,
                frame_rate: Some((25, 1))
            }
        );
    }

    #[test]
    fn sps_x265_temporal_layers_and_scaling_list() {
        // `-x265-params scaling-list=default:temporal-layers=1`: sps_max_sub_layers_minus1 1, so the
        // profile_tier_level carries sub-layer presence flags and 7 × reserved_zero_2bits;
        // scaling_list_enabled_flag 1 without explicit data.
        let sps = parse_sps(&annotated(
            "42 01 02 01 60 00 00 03 00 90 00 00 03 00 00 03 00 5d 00 00 a0 02 80 80 2d 16 59 59 8a cd 24
             9c af 01 68 08 00 00 03 00 08 00 00 03 00 f0 40",
        ))
        .unwrap();
        assert_eq!((sps.max_sub_layers, sps.is_temporal_id_nested), (2, false));
        assert_eq!(
            sps.video_params(),
            VideoParams {
                width: 1280,
                height: 720,
                frame_rate: Some((30, 1))
            }
        );
    }

    #[test]
    fn hvcc_x265_rext_444_and_422_high_tier() {
        // `-pix_fmt yuv444p` 640x360 25 fps: Format Range Extensions (profile 4, compatibility flag 4),
        // constraints 9e 08 (max_12bit … lower_bit_rate), level 63.
        let rec = annotated(
            "01 04 08 00 00 00 9e 08 00 00 00 00 3f f0 00 fc ff f8 f8 00 00 0f 03
             20 00 01 00 17 40 01 0c 01 ff ff 04 08 00 00 03 00 9e 08 00 00 03 00 00 3f 95 98 09
             21 00 01 00 2a 42 01 01 04 08 00 00 03 00 9e 08 00 00 03 00 00 3f 90 00 a0 40 2d 2c b2 b3 49
             26 57 80 b4 04 00 00 03 00 04 00 00 03 00 64 20
             22 00 01 00 08 44 01 c1 72 86 0c 46 24",
        );
        let c = HevcConfig::parse(rec).unwrap();
        assert_eq!(c.rfc6381(), "hvc1.4.10.L63.9E.08");
        assert_eq!(parse_hvcc_header(&c.record).unwrap().chroma_format_idc, 3);
        let sps = parse_sps(&c.sps[0]).unwrap();
        assert_eq!(
            (sps.chroma_format_idc, sps.has_separate_colour_planes),
            (3, false)
        );
        assert_eq!(
            c.params,
            VideoParams {
                width: 640,
                height: 360,
                frame_rate: Some((25, 1))
            }
        );
        // `-pix_fmt yuv422p10le -x265-params high-tier=1:level-idc=5.1`, 60000/1001 fps.
        let rec = annotated(
            "01 24 08 00 00 00 9d 08 00 00 00 00 99 f0 00 fc fe fa fa 00 00 0f 03
             20 00 01 00 17 40 01 0c 01 ff ff 24 08 00 00 03 00 9d 08 00 00 03 00 00 99 95 98 09
             21 00 01 00 28 42 01 01 24 08 00 00 03 00 9d 08 00 00 03 00 00 99 b0 05 02 01 69 36 59 59 a4
             93 2b c0 5a 02 00 00 07 d2 00 01 d4 c0 10
             22 00 01 00 07 44 01 c1 72 b4 62 40",
        );
        let c = HevcConfig::parse(rec).unwrap();
        assert_eq!(c.rfc6381(), "hvc1.4.10.H153.9D.08");
        let sps = parse_sps(&c.sps[0]).unwrap();
        assert_eq!(
            (
                sps.chroma_format_idc,
                sps.bit_depth_luma,
                sps.bit_depth_chroma
            ),
            (2, 10, 10)
        );
        assert_eq!(
            c.params,
            VideoParams {
                width: 640,
                height: 360,
                frame_rate: Some((60000, 1001))
            }
        );
    }

    #[test]
    fn sps_x265_odd_size_with_vui_signal_type_and_display_window() {
        // 642x362 24 fps with colour description, chroma location, overscan and a default display
        // window: coded 648 × 368 (multiples of 8), conformance window right 3, bottom 3 (× 2).
        let sps = parse_sps(&annotated(
            "42 01 01 01 60 00 00 03 00 90 00 00 03 00 00 03 00 3f a0 05 12 01 71 c9 26 59 59 a4 93 2b c3
             ad 40 40 40 69 0b dc 00 00 03 00 04 00 00 03 00 60 20",
        ))
        .unwrap();
        assert_eq!((sps.coded_width, sps.coded_height), (648, 368));
        assert_eq!(
            sps.video_params(),
            VideoParams {
                width: 642,
                height: 362,
                frame_rate: Some((24, 1))
            }
        );
    }

    /// A synthetic Main SPS that walks every optional path between the conformance window and the VUI
    /// timing info: two sub-layers with sub-layer profile and level, explicit scaling_list_data (both
    /// prediction modes, DC coefficients), PCM, four short-term RPSs of which three are inter-predicted
    /// (including entries dropped because their dPoc would be 0), long-term reference pictures, and a VUI
    /// with Extended_SAR, overscan, colour description, chroma location and a default display window.
    /// Cross-checked with FFmpeg's independent parser:
    /// `ffmpeg -f hevc -i vps+this+pps.hevc -c copy -bsf:v trace_headers -f null -` reads the same
    /// conformance window and `vui_num_units_in_tick = 1001`, `vui_time_scale = 60000`.
    fn synthetic_sps() -> Vec<u8> {
        let mut w = BitWriter::default();
        w.bits(16, 0x4201); // NAL header: SPS, layer 0, temporal id plus1 1
        w.bits(4, 0).bits(3, 1).flag(false); // vps id 0, sps_max_sub_layers_minus1 1, nesting 0
        // profile_tier_level(1, 1): general Main, level 93.
        w.bits(8, 0x01)
            .bits(32, 0x6000_0000)
            .bits(48, 0x9000_0000_0000)
            .bits(8, 93);
        w.flag(true).flag(true).bits(14, 0); // sub-layer 0 profile and level present, reserved_zero_2bits × 7
        w.bits(8, 0x01)
            .bits(32, 0x6000_0000)
            .bits(48, 0x9000_0000_0000)
            .bits(8, 90); // sub-layer 0
        w.ue(0).ue(1); // sps_seq_parameter_set_id, chroma_format_idc 4:2:0
        w.ue(1280).ue(720).flag(true).ue(0).ue(2).ue(0).ue(4); // conformance window: right 4, bottom 8
        w.ue(0).ue(0).ue(4); // bit depths 8 / 8, log2_max_pic_order_cnt_lsb_minus4 4 (8 bits)
        w.flag(true); // sps_sub_layer_ordering_info_present_flag: two sub-layers
        w.ue(4).ue(2).ue(0).ue(4).ue(2).ue(0);
        w.ue(0).ue(3).ue(0).ue(3).ue(1).ue(1); // block sizes and transform hierarchy depths
        w.flag(true).flag(true); // scaling_list_enabled_flag, sps_scaling_list_data_present_flag
        for size_id in 0..4u32 {
            let step = if size_id == 3 { 3 } else { 1 };
            for matrix_id in (0..6).step_by(step) {
                let explicit = (size_id + matrix_id as u32).is_multiple_of(2);
                w.flag(explicit);
                if explicit {
                    if size_id > 1 {
                        w.se(8); // scaling_list_dc_coef_minus8
                    }
                    for i in 0..64.min(1 << (4 + (size_id << 1))) {
                        w.se(if i % 2 == 0 { 1 } else { -1 });
                    }
                } else {
                    w.ue(0); // scaling_list_pred_matrix_id_delta: default list
                }
            }
        }
        w.flag(true).flag(true); // amp, sample_adaptive_offset
        w.flag(true).bits(4, 7).bits(4, 7).ue(0).ue(1).flag(false); // pcm
        w.ue(4); // num_short_term_ref_pic_sets
        // RPS 0: explicit, S0 = [−1, −3], S1 = [+2].
        w.ue(2)
            .ue(1)
            .ue(0)
            .flag(true)
            .ue(1)
            .flag(true)
            .ue(1)
            .flag(true);
        // RPS 1 from RPS 0 with deltaRps −1: flags per entry (−1, −3, +2, deltaRps):
        // used; use_delta only; dropped; used → S0 = [−1, −2, −4], S1 = [].
        w.flag(true).flag(true).ue(0);
        w.flag(true)
            .flag(false)
            .flag(true)
            .flag(false)
            .flag(false)
            .flag(true);
        // RPS 2 from RPS 1 with deltaRps +2: entries (−1, −2, −4, deltaRps) → (+1, 0 dropped, −2, +2):
        // S0 = [−2], S1 = [+1, +2].
        w.flag(true).flag(false).ue(1);
        w.flag(true).flag(false).flag(false).flag(true).flag(true);
        // RPS 3 from RPS 2 with deltaRps −1: entries (−2, +1, +2, deltaRps) → (−3, 0 dropped, +1, −1):
        // S0 = [−1, −3], S1 = [+1].
        w.flag(true).flag(true).ue(0);
        w.flag(true).flag(false).flag(false).flag(true).flag(true);
        w.flag(true)
            .ue(2)
            .bits(8, 17)
            .flag(true)
            .bits(8, 200)
            .flag(false); // long-term pictures
        w.flag(true).flag(true); // sps_temporal_mvp_enabled_flag, strong_intra_smoothing_enabled_flag
        w.flag(true); // vui_parameters_present_flag
        w.flag(true).bits(8, 255).bits(16, 4).bits(16, 3); // Extended_SAR 4:3
        w.flag(true).flag(false); // overscan
        w.flag(true)
            .bits(3, 5)
            .flag(false)
            .flag(true)
            .bits(24, 0x01_01_01); // video signal type
        w.flag(true).ue(1).ue(1); // chroma location
        w.flag(false).flag(false).flag(false); // neutral chroma, field_seq, frame_field_info
        w.flag(true).ue(2).ue(2).ue(0).ue(0); // default display window
        w.flag(true)
            .bits(32, 1001)
            .bits(32, 60000)
            .flag(false)
            .flag(false); // timing, no HRD
        w.flag(false).flag(false); // bitstream_restriction_flag, sps_extension_present_flag
        w.finish_ebsp()
    }

    #[test]
    fn sps_synthetic_every_optional_path_reaches_timing() {
        let nal = synthetic_sps();
        let sps = parse_sps(&nal).unwrap();
        assert_eq!(sps.max_sub_layers, 2);
        assert_eq!(
            sps.video_params(),
            VideoParams {
                width: 1276,
                height: 712,
                frame_rate: Some((60000, 1001))
            }
        );
    }

    #[test]
    fn sps_synthetic_tail_failure_only_loses_the_frame_rate() {
        // Cut the synthetic SPS inside the reference picture sets: size still known, frame rate None.
        let nal = synthetic_sps();
        let sps = parse_sps(&nal[..240]).unwrap();
        assert_eq!(
            sps.video_params(),
            VideoParams {
                width: 1276,
                height: 712,
                frame_rate: None
            }
        );
        // Cut before the bit depths: an error.
        assert!(matches!(
            parse_sps(&nal[..36]),
            Err(MediaError::Truncated { .. })
        ));
    }

    #[test]
    fn avg_frame_rate_is_the_fallback() {
        // The camera record with avgFrameRate = 7680 (30 frames/s × 256).
        let mut rec = annotated(CAMERA_540P).to_vec();
        rec[19..21].copy_from_slice(&7680u16.to_be_bytes());
        let c = HevcConfig::parse(Bytes::from(rec)).unwrap();
        assert_eq!(c.params.frame_rate, Some((30, 1)));
        assert_eq!(
            parse_hvcc_header(&c.record)
                .unwrap()
                .avg_frame_rate_per_256s,
            7680
        );
    }

    #[test]
    fn rfc6381_profile_space_tier_and_constraint_trimming() {
        let mut c = HevcConfig::parse(annotated(X265_720P30)).unwrap();
        // Main 10 (profile 2, compatibility flag 2 → 0x4), Main tier level 4.1, constraint 0xB0.
        c.general_profile_idc = 2;
        c.general_profile_compatibility_flags = 0x2000_0000;
        c.general_level_idc = 123;
        c.general_constraint_indicator_flags = 0xb000_0000_0000;
        assert_eq!(c.rfc6381(), "hvc1.2.4.L123.B0");
        // The ISO/IEC 14496-15 Annex E example: profile space 1 (A), profile 4, flags 0x41 reversed to
        // 0x82000000, High tier level 120, constraint bytes B0 23.
        c.general_profile_space = 1;
        c.general_profile_idc = 4;
        c.general_profile_compatibility_flags = 0x41u32.reverse_bits();
        c.general_tier_flag = true;
        c.general_level_idc = 120;
        c.general_constraint_indicator_flags = 0xb023_0000_0000;
        assert_eq!(c.rfc6381(), "hvc1.A4.41.H120.B0.23");
        // Interior zero bytes are kept, trailing ones dropped, none left when all are zero.
        c.general_constraint_indicator_flags = 0x8000_0100_0000;
        assert_eq!(c.rfc6381(), "hvc1.A4.41.H120.80.00.01");
        c.general_constraint_indicator_flags = 0;
        c.general_profile_space = 3;
        assert_eq!(c.rfc6381(), "hvc1.C4.41.H120");
    }

    #[test]
    fn from_parameter_sets_builds_an_equivalent_record() {
        let original = HevcConfig::parse(annotated(CAMERA_540P)).unwrap();
        let built =
            HevcConfig::from_parameter_sets(&original.vps, &original.sps, &original.pps).unwrap();
        // Same bytes except temporalIdNested: the phone wrote 0 although the SPS says
        // sps_temporal_id_nesting_flag = 1, which the builder copies.
        let mut expected = original.record.to_vec();
        expected[21] |= 0b100;
        assert_eq!(built.record, expected);
        assert_eq!(built.rfc6381(), original.rfc6381());
        assert_eq!(built.params, original.params);
        assert!(
            parse_hvcc_header(&built.record)
                .unwrap()
                .is_temporal_id_nested
        );

        let x265 = HevcConfig::parse(annotated(X265_720P30)).unwrap();
        let built = HevcConfig::from_parameter_sets(&x265.vps, &x265.sps, &x265.pps).unwrap();
        // FFmpeg writes array_completeness 0; the builder writes 1 as hvc1 requires.
        let mut expected = x265.record.to_vec();
        for offset in [23, 23 + 5 + 24, 23 + 5 + 24 + 5 + 43] {
            expected[offset] |= 0x80;
        }
        assert_eq!(built.record, expected);

        let (v, s, p) = (&x265.vps, &x265.sps, &x265.pps);
        assert_eq!(
            HevcConfig::from_parameter_sets(&[], s, p),
            Err(MediaError::Missing {
                what: "hvcC",
                field: "VPS"
            })
        );
        assert_eq!(
            HevcConfig::from_parameter_sets(v, &[], p),
            Err(MediaError::Missing {
                what: "hvcC",
                field: "SPS"
            })
        );
        assert_eq!(
            HevcConfig::from_parameter_sets(v, s, &[]),
            Err(MediaError::Missing {
                what: "hvcC",
                field: "PPS"
            })
        );
        assert!(HevcConfig::from_parameter_sets(p, s, v).is_err());
    }

    #[test]
    fn hvcc_rejects_malformed_records() {
        let good = annotated(CAMERA_540P);
        let mut bad = good.to_vec();
        bad[0] = 0;
        assert!(matches!(
            HevcConfig::parse(bad.into()),
            Err(MediaError::Invalid {
                field: "configurationVersion",
                ..
            })
        ));
        let mut bad = good.to_vec();
        bad[21] = 0x0a; // lengthSizeMinusOne 2
        assert!(matches!(
            HevcConfig::parse(bad.into()),
            Err(MediaError::Invalid {
                field: "lengthSizeMinusOne",
                ..
            })
        ));
        let mut bad = good.to_vec();
        bad[22] = 1; // only the VPS array
        assert_eq!(
            HevcConfig::parse(bad.into()),
            Err(MediaError::Missing {
                what: "hvcC",
                field: "SPS"
            })
        );
        let mut bad = good.to_vec();
        bad[23] = 0xa1; // VPS NAL unit in an SPS array
        assert!(matches!(
            HevcConfig::parse(bad.into()),
            Err(MediaError::Invalid {
                field: "NAL unit type in array",
                value: 32,
                ..
            })
        ));
        for len in 0..good.len() {
            assert!(
                HevcConfig::parse(good.slice(..len)).is_err(),
                "prefix {len}"
            );
        }
        assert!(matches!(
            parse_sps(&[0x42]),
            Err(MediaError::Truncated { .. })
        ));
        assert!(matches!(
            parse_sps(&[0x40, 0x01, 0x0c]),
            Err(MediaError::Invalid {
                field: "nal_unit_type",
                value: 32,
                ..
            })
        ));
        assert!(matches!(
            parse_sps(&[0x42, 0x09, 0x01]),
            Err(MediaError::Invalid {
                field: "nuh_layer_id",
                value: 1,
                ..
            })
        ));
    }

    proptest! {
        #[test]
        fn parsers_never_panic_on_random_bytes(data in proptest::collection::vec(any::<u8>(), 0..128)) {
            let _ = HevcConfig::parse(Bytes::from(data.clone()));
            let _ = parse_sps(&data);
            let mut sps = data.clone();
            if sps.len() >= 2 {
                sps[0] = 0x42;
                sps[1] = 0x01;
            }
            if let Ok(parsed) = parse_sps(&sps) {
                prop_assert!(parsed.width > 0 && parsed.height > 0);
            }
            let vps = Bytes::from_static(&[0x40, 0x01, 0x0c]);
            let pps = Bytes::from_static(&[0x44, 0x01, 0xc1]);
            let _ = HevcConfig::from_parameter_sets(&[vps], &[Bytes::from(sps)], &[pps]);
        }

        #[test]
        fn mutated_real_records_never_panic(pos in 0usize..4096, byte in any::<u8>(), cut in 0usize..64) {
            let mut rec = annotated(X265_720P30).to_vec();
            let pos = pos % rec.len();
            rec[pos] = byte;
            rec.truncate(rec.len() - cut.min(rec.len()));
            let _ = HevcConfig::parse(Bytes::from(rec));
            let mut sps = synthetic_sps();
            let pos = pos % sps.len();
            sps[pos] = byte;
            let _ = parse_sps(&sps);
        }
    }
}
