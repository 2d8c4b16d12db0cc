//! H.264 / AVC: the `avcC` decoder configuration record and the SPS fields Estuary needs.
//!
//! [`AvcConfig::parse`] reads an `AVCDecoderConfigurationRecord` (ISO/IEC 14496-15 §5.3.3.1) as carried in
//! an `avcC` box or an RTMP/FLV AVC sequence header; [`AvcConfig::from_parameter_sets`] builds one from
//! SPS/PPS NAL units found in-band (MPEG-TS ingest). [`parse_sps`] reads a sequence parameter set
//! (ITU-T H.264 §7.3.2.1.1) far enough to know the displayed picture size and the VUI frame rate.

use bytes::{BufMut, Bytes, BytesMut};

use crate::{
    MediaError, VideoParams,
    bits::{BitReader, ByteReader, reduced_ratio},
};

const WHAT_AVCC: &str = "avcC";
const WHAT_SPS: &str = "AVC SPS";

/// nal_unit_type of a sequence parameter set (ITU-T H.264 Table 7-1).
pub const NAL_TYPE_SPS: u8 = 7;
/// nal_unit_type of a picture parameter set (ITU-T H.264 Table 7-1).
pub const NAL_TYPE_PPS: u8 = 8;
/// nal_unit_type of an access unit delimiter (ITU-T H.264 Table 7-1).
pub const NAL_TYPE_AUD: u8 = 9;

/// Frame rates above this many frames per second are treated as "not signalled": some encoders write a
/// `time_scale` that is a clock rate (e.g. 48 000 with `num_units_in_tick` 1) rather than a frame rate,
/// which `fixed_frame_rate_flag = 0` permits (ITU-T H.264 §E.2.1).
pub const MAX_PLAUSIBLE_FRAME_RATE: u32 = 1000;

/// A parsed `AVCDecoderConfigurationRecord` (ISO/IEC 14496-15 §5.3.3.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AvcConfig {
    /// The record's bytes as received (the body of an `avcC` box).
    pub record: Bytes,
    /// `AVCProfileIndication` (profile_idc).
    pub profile_idc: u8,
    /// `profile_compatibility` (the constraint_set flags byte).
    pub constraint_flags: u8,
    /// `AVCLevelIndication` (level_idc).
    pub level_idc: u8,
    /// NAL unit length field size in bytes (1, 2 or 4).
    pub nal_length_size: u8,
    /// Sequence parameter sets (NAL units without start codes or length prefixes).
    pub sps: Vec<Bytes>,
    /// Picture parameter sets.
    pub pps: Vec<Bytes>,
    /// Picture size and frame rate from the first SPS.
    pub params: VideoParams,
}

impl AvcConfig {
    /// Parse an avcC record. Errors: truncated record, `configurationVersion != 1`, no SPS, or an SPS that
    /// cannot be parsed (ITU-T H.264 §7.3.2.1.1).
    ///
    /// Layout (ISO/IEC 14496-15 §5.3.3.1.2): `configurationVersion` u8 = 1, `AVCProfileIndication` u8,
    /// `profile_compatibility` u8, `AVCLevelIndication` u8, 6 reserved bits + `lengthSizeMinusOne` u2,
    /// 3 reserved bits + `numOfSequenceParameterSets` u5, each SPS as u16 length + bytes,
    /// `numOfPictureParameterSets` u8, each PPS as u16 length + bytes. The chroma/bit-depth/SPS-extension
    /// trailer that high profiles append is ignored, as are the reserved bits' values. A
    /// `lengthSizeMinusOne` of 2 (3-byte lengths) is rejected. Profile and level come from the record
    /// header; width, height and frame rate from the first SPS. Records without PPS are accepted.
    pub fn parse(record: Bytes) -> Result<Self, MediaError> {
        let mut r = ByteReader::new(&record, WHAT_AVCC);
        let version = r.u8()?;
        if version != 1 {
            return Err(MediaError::Invalid {
                what: WHAT_AVCC,
                field: "configurationVersion",
                value: u64::from(version),
            });
        }
        let profile_idc = r.u8()?;
        let constraint_flags = r.u8()?;
        let level_idc = r.u8()?;
        let length_size_minus_one = r.u8()? & 0b11;
        if length_size_minus_one == 2 {
            return Err(MediaError::Invalid {
                what: WHAT_AVCC,
                field: "lengthSizeMinusOne",
                value: u64::from(length_size_minus_one),
            });
        }
        let num_sps = r.u8()? & 0b1_1111;
        let sps = read_nal_list(
            &mut r,
            &record,
            usize::from(num_sps),
            NAL_TYPE_SPS,
            "SPS NAL unit type",
        )?;
        let num_pps = r.u8()?;
        let pps = read_nal_list(
            &mut r,
            &record,
            usize::from(num_pps),
            NAL_TYPE_PPS,
            "PPS NAL unit type",
        )?;
        let first_sps = sps.first().ok_or(MediaError::Missing {
            what: WHAT_AVCC,
            field: "SPS",
        })?;
        let params = parse_sps(first_sps)?.video_params();
        Ok(Self {
            record,
            profile_idc,
            constraint_flags,
            level_idc,
            nal_length_size: length_size_minus_one + 1,
            sps,
            pps,
            params,
        })
    }

    /// Build an avcC record from in-band parameter sets (NAL units with their one-byte header, without
    /// start codes, emulation prevention bytes kept) and parse it.
    ///
    /// The record uses 4-byte NAL lengths (`lengthSizeMinusOne = 3`, as [`crate::Frame`] data does) and
    /// takes profile, constraint flags and level from the first SPS. For profile_idc 100, 110, 122 and 244
    /// it appends the chroma_format / bit depth trailer with zero SPS extensions, as ISO/IEC 14496-15
    /// §5.3.3.1.2 requires. Errors: [`MediaError::Missing`] if `sps` or `pps` is empty,
    /// [`MediaError::Invalid`] for more than 31 SPS or 255 PPS, a parameter set longer than 65 535 bytes or
    /// of the wrong NAL unit type, and any error of [`parse_sps`] for the first SPS.
    pub fn from_parameter_sets(sps: &[Bytes], pps: &[Bytes]) -> Result<Self, MediaError> {
        let first_sps = sps.first().ok_or(MediaError::Missing {
            what: WHAT_AVCC,
            field: "SPS",
        })?;
        if pps.is_empty() {
            return Err(MediaError::Missing {
                what: WHAT_AVCC,
                field: "PPS",
            });
        }
        let info = parse_sps(first_sps)?;
        let num_sps =
            u8::try_from(sps.len())
                .ok()
                .filter(|&n| n <= 31)
                .ok_or(MediaError::Invalid {
                    what: WHAT_AVCC,
                    field: "numOfSequenceParameterSets",
                    value: sps.len() as u64,
                })?;
        let num_pps = u8::try_from(pps.len()).map_err(|_| MediaError::Invalid {
            what: WHAT_AVCC,
            field: "numOfPictureParameterSets",
            value: pps.len() as u64,
        })?;

        let mut out =
            BytesMut::with_capacity(16 + sps.iter().chain(pps).map(|n| n.len() + 2).sum::<usize>());
        out.put_u8(1); // configurationVersion
        out.put_u8(info.profile_idc); // AVCProfileIndication
        out.put_u8(info.constraint_flags); // profile_compatibility
        out.put_u8(info.level_idc); // AVCLevelIndication
        out.put_u8(0b1111_1100 | 3); // reserved '111111' + lengthSizeMinusOne = 3
        out.put_u8(0b1110_0000 | num_sps); // reserved '111' + numOfSequenceParameterSets
        put_nal_list(&mut out, sps, NAL_TYPE_SPS, "SPS NAL unit type")?;
        out.put_u8(num_pps);
        put_nal_list(&mut out, pps, NAL_TYPE_PPS, "PPS NAL unit type")?;
        if matches!(info.profile_idc, 100 | 110 | 122 | 244) {
            out.put_u8(0b1111_1100 | info.chroma_format_idc); // reserved + chroma_format
            out.put_u8(0b1111_1000 | (info.bit_depth_luma - 8)); // reserved + bit_depth_luma_minus8
            out.put_u8(0b1111_1000 | (info.bit_depth_chroma - 8)); // reserved + bit_depth_chroma_minus8
            out.put_u8(0); // numOfSequenceParameterSetExt
        }
        Self::parse(out.freeze())
    }

    /// RFC 6381 codec string: `avc1.PPCCLL` (hex of profile_idc, constraint flags, level_idc).
    pub fn rfc6381(&self) -> String {
        format!(
            "avc1.{:02x}{:02x}{:02x}",
            self.profile_idc, self.constraint_flags, self.level_idc
        )
    }
}

/// Read `count` length-prefixed NAL units (u16 length + bytes) as zero-copy slices of `record`, checking
/// that each is non-empty and has `nal_type`.
fn read_nal_list(
    r: &mut ByteReader<'_>,
    record: &Bytes,
    count: usize,
    nal_type: u8,
    field: &'static str,
) -> Result<Vec<Bytes>, MediaError> {
    let mut list = Vec::with_capacity(count);
    for _ in 0..count {
        let len = usize::from(r.u16()?);
        let start = r.position_bytes();
        let nal = r.take(len)?;
        let found = nal.first().map(|b| b & 0x1f);
        if found != Some(nal_type) {
            return Err(MediaError::Invalid {
                what: WHAT_AVCC,
                field,
                value: found.map_or(u64::MAX, u64::from),
            });
        }
        list.push(record.slice(start..start + len));
    }
    Ok(list)
}

/// Append each NAL unit as u16 length + bytes, checking its type and length.
fn put_nal_list(
    out: &mut BytesMut,
    nals: &[Bytes],
    nal_type: u8,
    field: &'static str,
) -> Result<(), MediaError> {
    for nal in nals {
        let len = u16::try_from(nal.len()).map_err(|_| MediaError::Invalid {
            what: WHAT_AVCC,
            field: "parameter set length",
            value: nal.len() as u64,
        })?;
        let found = nal.first().map(|b| b & 0x1f);
        if found != Some(nal_type) {
            return Err(MediaError::Invalid {
                what: WHAT_AVCC,
                field,
                value: found.map_or(u64::MAX, u64::from),
            });
        }
        out.put_u16(len);
        out.put_slice(nal);
    }
    Ok(())
}

/// The fields of an H.264 sequence parameter set that Estuary uses (ITU-T H.264 §7.3.2.1.1, §7.4.2.1.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AvcSps {
    /// profile_idc (66 Baseline, 77 Main, 100 High, 110 High 10, 122 High 4:2:2, 244 High 4:4:4 …).
    pub profile_idc: u8,
    /// constraint_set0..5_flags and reserved_zero_2bits, as one byte (the avcC `profile_compatibility`).
    pub constraint_flags: u8,
    /// level_idc (10 × the level number, e.g. 31 for level 3.1).
    pub level_idc: u8,
    /// seq_parameter_set_id (0..=31).
    pub seq_parameter_set_id: u8,
    /// chroma_format_idc: 0 monochrome, 1 4:2:0, 2 4:2:2, 3 4:4:4 (1 when absent, for non-high profiles).
    pub chroma_format_idc: u8,
    /// separate_colour_plane_flag (4:4:4 coded as three monochrome planes).
    pub has_separate_colour_planes: bool,
    /// Luma sample bit depth (8..=14).
    pub bit_depth_luma: u8,
    /// Chroma sample bit depth (8..=14).
    pub bit_depth_chroma: u8,
    /// pic_order_cnt_type (0, 1 or 2).
    pub pic_order_cnt_type: u8,
    /// log2_max_frame_num_minus4 + 4: the width of `frame_num` in slice headers (4..=16 bits).
    pub log2_max_frame_num: u8,
    /// log2_max_pic_order_cnt_lsb_minus4 + 4 (pic_order_cnt_type 0; else 0).
    pub log2_max_pic_order_cnt_lsb: u8,
    /// delta_pic_order_always_zero_flag (pic_order_cnt_type 1; else false).
    pub is_delta_pic_order_always_zero: bool,
    /// frame_mbs_only_flag: `false` means pictures may be coded as fields (interlaced).
    pub is_frame_mbs_only: bool,
    /// Coded width in luma samples (PicWidthInMbs × 16), before cropping.
    pub coded_width: u32,
    /// Coded frame height in luma samples ((2 − frame_mbs_only_flag) × PicHeightInMapUnits × 16).
    pub coded_height: u32,
    /// Displayed width in luma samples, after the frame cropping rectangle (§7.4.2.1.1, CropUnitX).
    pub width: u32,
    /// Displayed frame height in luma samples, after the frame cropping rectangle (CropUnitY).
    pub height: u32,
    /// Frame rate `time_scale / (2 × num_units_in_tick)` (§E.2.1) reduced to lowest terms, if the VUI
    /// signals timing info and the result is at most [`MAX_PLAUSIBLE_FRAME_RATE`].
    pub frame_rate: Option<(u32, u32)>,
}

impl AvcSps {
    /// The picture parameters shared with other codecs.
    pub fn video_params(&self) -> VideoParams {
        VideoParams {
            width: self.width,
            height: self.height,
            frame_rate: self.frame_rate,
        }
    }
}

/// Parse an H.264 sequence parameter set NAL unit (one-byte NAL header included, emulation prevention
/// bytes included, no start code or length prefix): ITU-T H.264 §7.3.2.1.1 up to the VUI timing info
/// (§E.1.1). Later fields (HRD, bitstream restriction) are not read.
///
/// Errors: [`MediaError::Truncated`] if the NAL ends early, [`MediaError::Invalid`] for a NAL unit type
/// other than 7 or an out-of-range field (chroma_format_idc > 3, bit depth above 14, pic_order_cnt_type
/// > 2, a cropping rectangle that leaves no picture, dimensions beyond `u32`, …).
pub fn parse_sps(nal: &[u8]) -> Result<AvcSps, MediaError> {
    let header = *nal.first().ok_or(MediaError::Truncated {
        what: WHAT_SPS,
        need: 1,
        have: 0,
    })?;
    if header & 0x1f != NAL_TYPE_SPS {
        return Err(MediaError::Invalid {
            what: WHAT_SPS,
            field: "nal_unit_type",
            value: u64::from(header & 0x1f),
        });
    }
    let mut buf = Vec::new();
    let mut r = BitReader::from_ebsp(&nal[1..], &mut buf, WHAT_SPS);
    let invalid = |field, value: u32| MediaError::Invalid {
        what: WHAT_SPS,
        field,
        value: u64::from(value),
    };

    let profile_idc = r.read_u8()?;
    let constraint_flags = r.read_u8()?;
    let level_idc = r.read_u8()?;
    let seq_parameter_set_id = r.read_ue_max("seq_parameter_set_id", 31)? as u8;

    let mut chroma_format_idc = 1;
    let mut has_separate_colour_planes = false;
    let mut bit_depth_luma = 8;
    let mut bit_depth_chroma = 8;
    if matches!(
        profile_idc,
        100 | 110 | 122 | 244 | 44 | 83 | 86 | 118 | 128 | 138 | 139 | 134 | 135
    ) {
        chroma_format_idc = r.read_ue_max("chroma_format_idc", 3)? as u8;
        if chroma_format_idc == 3 {
            has_separate_colour_planes = r.read_flag()?;
        }
        bit_depth_luma = 8 + r.read_ue_max("bit_depth_luma_minus8", 6)? as u8;
        bit_depth_chroma = 8 + r.read_ue_max("bit_depth_chroma_minus8", 6)? as u8;
        let _qpprime_y_zero_transform_bypass_flag = r.read_flag()?;
        if r.read_flag()? {
            // seq_scaling_matrix_present_flag: 6 4x4 lists, then 2 (or 6 for 4:4:4) 8x8 lists.
            let list_count = if chroma_format_idc == 3 { 12 } else { 8 };
            for i in 0..list_count {
                if r.read_flag()? {
                    skip_scaling_list(&mut r, if i < 6 { 16 } else { 64 })?;
                }
            }
        }
    }

    let log2_max_frame_num = 4 + r.read_ue_max("log2_max_frame_num_minus4", 12)? as u8;
    let pic_order_cnt_type = r.read_ue_max("pic_order_cnt_type", 2)? as u8;
    let mut log2_max_pic_order_cnt_lsb = 0;
    let mut is_delta_pic_order_always_zero = false;
    match pic_order_cnt_type {
        0 => {
            log2_max_pic_order_cnt_lsb =
                4 + r.read_ue_max("log2_max_pic_order_cnt_lsb_minus4", 12)? as u8;
        }
        1 => {
            is_delta_pic_order_always_zero = r.read_flag()?;
            let _offset_for_non_ref_pic = r.read_se()?;
            let _offset_for_top_to_bottom_field = r.read_se()?;
            let cycle = r.read_ue_max("num_ref_frames_in_pic_order_cnt_cycle", 255)?;
            for _ in 0..cycle {
                let _offset_for_ref_frame = r.read_se()?;
            }
        }
        _ => {}
    }
    let _max_num_ref_frames = r.read_ue()?;
    let _gaps_in_frame_num_value_allowed_flag = r.read_flag()?;
    let pic_width_in_mbs = u64::from(r.read_ue()?) + 1;
    let pic_height_in_map_units = u64::from(r.read_ue()?) + 1;
    let is_frame_mbs_only = r.read_flag()?;
    if !is_frame_mbs_only {
        let _mb_adaptive_frame_field_flag = r.read_flag()?;
    }
    let _direct_8x8_inference_flag = r.read_flag()?;
    let mut crop = [0u64; 4]; // left, right, top, bottom
    if r.read_flag()? {
        for c in &mut crop {
            *c = u64::from(r.read_ue()?);
        }
    }

    // §7.4.2.1.1: ChromaArrayType, SubWidthC/SubHeightC (Table 6-1), CropUnitX/CropUnitY.
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
    let field_factor = if is_frame_mbs_only { 1 } else { 2 };
    let crop_unit_x = sub_width_c;
    let crop_unit_y = sub_height_c * field_factor;
    let coded_width = pic_width_in_mbs * 16;
    let coded_height = field_factor * pic_height_in_map_units * 16;
    let crop_x = crop_unit_x * (crop[0] + crop[1]);
    let crop_y = crop_unit_y * (crop[2] + crop[3]);
    let to_u32 = |field, v: u64| u32::try_from(v).map_err(|_| invalid(field, u32::MAX));
    let coded_width = to_u32("pic_width_in_mbs_minus1", coded_width)?;
    let coded_height = to_u32("pic_height_in_map_units_minus1", coded_height)?;
    if crop_x >= u64::from(coded_width) {
        return Err(MediaError::Invalid {
            what: WHAT_SPS,
            field: "frame_crop_left/right_offset",
            value: crop_x,
        });
    }
    if crop_y >= u64::from(coded_height) {
        return Err(MediaError::Invalid {
            what: WHAT_SPS,
            field: "frame_crop_top/bottom_offset",
            value: crop_y,
        });
    }
    let width = coded_width - crop_x as u32;
    let height = coded_height - crop_y as u32;

    let frame_rate = if r.read_flag()? {
        read_vui_frame_rate(&mut r)?
    } else {
        None
    };

    Ok(AvcSps {
        profile_idc,
        constraint_flags,
        level_idc,
        seq_parameter_set_id,
        chroma_format_idc,
        has_separate_colour_planes,
        bit_depth_luma,
        bit_depth_chroma,
        pic_order_cnt_type,
        log2_max_frame_num,
        log2_max_pic_order_cnt_lsb,
        is_delta_pic_order_always_zero,
        is_frame_mbs_only,
        coded_width,
        coded_height,
        width,
        height,
        frame_rate,
    })
}

/// The fields of an H.264 picture parameter set that slice headers depend on (ITU-T H.264 §7.3.2.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AvcPps {
    /// pic_parameter_set_id (0..=255).
    pub pic_parameter_set_id: u8,
    /// seq_parameter_set_id (0..=31).
    pub seq_parameter_set_id: u8,
    /// entropy_coding_mode_flag (CABAC).
    pub is_cabac: bool,
    /// bottom_field_pic_order_in_frame_present_flag.
    pub has_bottom_field_pic_order_in_frame: bool,
    /// num_slice_groups_minus1 + 1 (FMO when above 1).
    pub num_slice_groups: u32,
    /// num_ref_idx_l0_default_active_minus1 + 1.
    pub num_ref_idx_l0_default_active: u32,
    /// num_ref_idx_l1_default_active_minus1 + 1.
    pub num_ref_idx_l1_default_active: u32,
    /// weighted_pred_flag.
    pub has_weighted_pred: bool,
    /// weighted_bipred_idc (0..=2).
    pub weighted_bipred_idc: u8,
    /// deblocking_filter_control_present_flag.
    pub has_deblocking_filter_control: bool,
    /// redundant_pic_cnt_present_flag.
    pub has_redundant_pic_cnt: bool,
}

const WHAT_PPS: &str = "AVC PPS";
const WHAT_SLICE: &str = "AVC slice header";

/// Parse an H.264 picture parameter set NAL unit (NAL header and emulation prevention bytes included)
/// up to `redundant_pic_cnt_present_flag` (ITU-T H.264 §7.3.2.2). A PPS with slice groups (FMO) is
/// parsed past its slice group map.
///
/// Errors: [`MediaError::Truncated`], or [`MediaError::Invalid`] for a NAL unit type other than 8 or an
/// out-of-range field.
pub fn parse_pps(nal: &[u8]) -> Result<AvcPps, MediaError> {
    let header = *nal.first().ok_or(MediaError::Truncated {
        what: WHAT_PPS,
        need: 1,
        have: 0,
    })?;
    if header & 0x1f != NAL_TYPE_PPS {
        return Err(MediaError::Invalid {
            what: WHAT_PPS,
            field: "nal_unit_type",
            value: u64::from(header & 0x1f),
        });
    }
    let mut buf = Vec::new();
    let mut r = BitReader::from_ebsp(&nal[1..], &mut buf, WHAT_PPS);
    let pic_parameter_set_id = r.read_ue_max("pic_parameter_set_id", 255)? as u8;
    let seq_parameter_set_id = r.read_ue_max("seq_parameter_set_id", 31)? as u8;
    let is_cabac = r.read_flag()?;
    let has_bottom_field_pic_order_in_frame = r.read_flag()?;
    let num_slice_groups = r.read_ue_max("num_slice_groups_minus1", 7)? + 1;
    if num_slice_groups > 1 {
        let map_type = r.read_ue_max("slice_group_map_type", 6)?;
        match map_type {
            0 => {
                for _ in 0..num_slice_groups {
                    let _run_length_minus1 = r.read_ue()?;
                }
            }
            2 => {
                for _ in 0..num_slice_groups - 1 {
                    let _top_left = r.read_ue()?;
                    let _bottom_right = r.read_ue()?;
                }
            }
            3..=5 => {
                let _slice_group_change_direction_flag = r.read_flag()?;
                let _slice_group_change_rate_minus1 = r.read_ue()?;
            }
            6 => {
                let units = r.read_ue_max("pic_size_in_map_units_minus1", 1 << 20)? + 1;
                let bits = u32::BITS - (num_slice_groups - 1).leading_zeros();
                r.skip_bits(units as usize * bits as usize)?;
            }
            _ => {}
        }
    }
    let num_ref_idx_l0_default_active =
        r.read_ue_max("num_ref_idx_l0_default_active_minus1", 31)? + 1;
    let num_ref_idx_l1_default_active =
        r.read_ue_max("num_ref_idx_l1_default_active_minus1", 31)? + 1;
    let has_weighted_pred = r.read_flag()?;
    let weighted_bipred_idc = r.read_bits(2)? as u8;
    let _pic_init_qp_minus26 = r.read_se()?;
    let _pic_init_qs_minus26 = r.read_se()?;
    let _chroma_qp_index_offset = r.read_se()?;
    let has_deblocking_filter_control = r.read_flag()?;
    let _constrained_intra_pred_flag = r.read_flag()?;
    let has_redundant_pic_cnt = r.read_flag()?;
    Ok(AvcPps {
        pic_parameter_set_id,
        seq_parameter_set_id,
        is_cabac,
        has_bottom_field_pic_order_in_frame,
        num_slice_groups,
        num_ref_idx_l0_default_active,
        num_ref_idx_l1_default_active,
        has_weighted_pred,
        weighted_bipred_idc,
        has_deblocking_filter_control,
        has_redundant_pic_cnt,
    })
}

/// The bytes of a coded slice NAL unit (types 1 and 5; NAL header and emulation prevention bytes
/// included, no length prefix) that hold its slice header (ITU-T H.264 §7.3.3): the NAL header byte
/// plus the header's bits rounded up to whole bytes — what Common Encryption leaves in the clear so
/// that the slice data alone is protected (ISO/IEC 23001-7 §9.5.2.2). `sps` and `pps` are the
/// stream's parameter sets (the PPS the slice names, and its SPS, are looked up by id).
///
/// Errors: [`MediaError::Invalid`] for another NAL unit type, an unknown parameter set id, an out-of-range
/// field, or slice groups whose `slice_group_change_cycle` needs the picture size (FMO types 3–5);
/// [`MediaError::Truncated`] when the NAL ends inside the header.
pub fn slice_header_bytes(nal: &[u8], sps: &[AvcSps], pps: &[AvcPps]) -> Result<usize, MediaError> {
    let bits = slice_header_bits(nal, sps, pps)?;
    let ebsp = &nal[1..];
    let rbsp_bytes = bits.div_ceil(8);
    let ebsp_bytes =
        crate::bits::ebsp_len_for_rbsp(ebsp, rbsp_bytes).ok_or(MediaError::Truncated {
            what: WHAT_SLICE,
            need: rbsp_bytes,
            have: ebsp.len(),
        })?;
    Ok(1 + ebsp_bytes)
}

/// The length in bits of a coded slice NAL unit's slice header, counted in its RBSP after the NAL
/// header byte; see [`slice_header_bytes`] (same arguments and errors). In a CABAC slice the bits
/// from there to the next byte boundary are `cabac_alignment_one_bit`s (§7.3.4).
pub fn slice_header_bits(nal: &[u8], sps: &[AvcSps], pps: &[AvcPps]) -> Result<usize, MediaError> {
    let invalid = |field, value: u64| MediaError::Invalid {
        what: WHAT_SLICE,
        field,
        value,
    };
    let header = *nal.first().ok_or(MediaError::Truncated {
        what: WHAT_SLICE,
        need: 1,
        have: 0,
    })?;
    let nal_unit_type = header & 0x1f;
    let nal_ref_idc = (header >> 5) & 0x3;
    if nal_unit_type != 1 && nal_unit_type != 5 {
        return Err(invalid("nal_unit_type", u64::from(nal_unit_type)));
    }
    let is_idr = nal_unit_type == 5;
    // The header of a slice is far shorter than this; a bounded copy keeps the work per NAL small.
    let ebsp = &nal[1..nal.len().min(1 + 1024)];
    let mut buf = Vec::new();
    let mut r = BitReader::from_ebsp(ebsp, &mut buf, WHAT_SLICE);
    let _first_mb_in_slice = r.read_ue()?;
    let slice_type = r.read_ue_max("slice_type", 9)? % 5;
    let (is_p, is_b, is_i, is_sp, is_si) = (
        slice_type == 0,
        slice_type == 1,
        slice_type == 2,
        slice_type == 3,
        slice_type == 4,
    );
    let pps_id = r.read_ue_max("pic_parameter_set_id", 255)?;
    let pps = pps
        .iter()
        .find(|p| u32::from(p.pic_parameter_set_id) == pps_id)
        .ok_or(invalid("pic_parameter_set_id", u64::from(pps_id)))?;
    let sps = sps
        .iter()
        .find(|s| s.seq_parameter_set_id == pps.seq_parameter_set_id)
        .ok_or(invalid(
            "seq_parameter_set_id",
            u64::from(pps.seq_parameter_set_id),
        ))?;
    if sps.has_separate_colour_planes {
        let _colour_plane_id = r.read_bits(2)?;
    }
    let _frame_num = r.read_bits(u32::from(sps.log2_max_frame_num))?;
    let mut is_field = false;
    if !sps.is_frame_mbs_only {
        is_field = r.read_flag()?;
        if is_field {
            let _bottom_field_flag = r.read_flag()?;
        }
    }
    if is_idr {
        let _idr_pic_id = r.read_ue()?;
    }
    if sps.pic_order_cnt_type == 0 {
        let _pic_order_cnt_lsb = r.read_bits(u32::from(sps.log2_max_pic_order_cnt_lsb))?;
        if pps.has_bottom_field_pic_order_in_frame && !is_field {
            let _delta_pic_order_cnt_bottom = r.read_se()?;
        }
    }
    if sps.pic_order_cnt_type == 1 && !sps.is_delta_pic_order_always_zero {
        let _delta_pic_order_cnt_0 = r.read_se()?;
        if pps.has_bottom_field_pic_order_in_frame && !is_field {
            let _delta_pic_order_cnt_1 = r.read_se()?;
        }
    }
    if pps.has_redundant_pic_cnt {
        let _redundant_pic_cnt = r.read_ue()?;
    }
    if is_b {
        let _direct_spatial_mv_pred_flag = r.read_flag()?;
    }
    let mut num_ref_idx_l0 = pps.num_ref_idx_l0_default_active;
    let mut num_ref_idx_l1 = pps.num_ref_idx_l1_default_active;
    if (is_p || is_sp || is_b) && r.read_flag()? {
        // num_ref_idx_active_override_flag
        num_ref_idx_l0 = r.read_ue_max("num_ref_idx_l0_active_minus1", 31)? + 1;
        if is_b {
            num_ref_idx_l1 = r.read_ue_max("num_ref_idx_l1_active_minus1", 31)? + 1;
        }
    }
    // ref_pic_list_modification() (§7.3.3.1)
    let lists = if is_b {
        2
    } else if is_i || is_si {
        0
    } else {
        1
    };
    for _ in 0..lists {
        if r.read_flag()? {
            loop {
                let idc = r.read_ue_max("modification_of_pic_nums_idc", 5)?;
                if idc == 3 {
                    break;
                }
                let _value = r.read_ue()?;
            }
        }
    }
    // pred_weight_table() (§7.3.3.2)
    if (pps.has_weighted_pred && (is_p || is_sp)) || (pps.weighted_bipred_idc == 1 && is_b) {
        let chroma_array_type = if sps.has_separate_colour_planes {
            0
        } else {
            sps.chroma_format_idc
        };
        let _luma_log2_weight_denom = r.read_ue()?;
        if chroma_array_type != 0 {
            let _chroma_log2_weight_denom = r.read_ue()?;
        }
        let tables = if is_b { 2 } else { 1 };
        for t in 0..tables {
            let refs = if t == 0 {
                num_ref_idx_l0
            } else {
                num_ref_idx_l1
            };
            for _ in 0..refs {
                if r.read_flag()? {
                    let _luma_weight = r.read_se()?;
                    let _luma_offset = r.read_se()?;
                }
                if chroma_array_type != 0 && r.read_flag()? {
                    for _ in 0..2 {
                        let _chroma_weight = r.read_se()?;
                        let _chroma_offset = r.read_se()?;
                    }
                }
            }
        }
    }
    // dec_ref_pic_marking() (§7.3.3.3)
    if nal_ref_idc != 0 {
        if is_idr {
            let _no_output_of_prior_pics_flag = r.read_flag()?;
            let _long_term_reference_flag = r.read_flag()?;
        } else if r.read_flag()? {
            loop {
                let mmco = r.read_ue_max("memory_management_control_operation", 6)?;
                if mmco == 0 {
                    break;
                }
                if mmco == 1 || mmco == 3 {
                    let _difference_of_pic_nums_minus1 = r.read_ue()?;
                }
                if mmco == 2 {
                    let _long_term_pic_num = r.read_ue()?;
                }
                if mmco == 3 || mmco == 6 {
                    let _long_term_frame_idx = r.read_ue()?;
                }
                if mmco == 4 {
                    let _max_long_term_frame_idx_plus1 = r.read_ue()?;
                }
            }
        }
    }
    if pps.is_cabac && !is_i && !is_si {
        let _cabac_init_idc = r.read_ue_max("cabac_init_idc", 2)?;
    }
    let _slice_qp_delta = r.read_se()?;
    if is_sp || is_si {
        if is_sp {
            let _sp_for_switch_flag = r.read_flag()?;
        }
        let _slice_qs_delta = r.read_se()?;
    }
    if pps.has_deblocking_filter_control {
        let idc = r.read_ue_max("disable_deblocking_filter_idc", 2)?;
        if idc != 1 {
            let _slice_alpha_c0_offset_div2 = r.read_se()?;
            let _slice_beta_offset_div2 = r.read_se()?;
        }
    }
    if pps.num_slice_groups > 1 {
        return Err(invalid(
            "num_slice_groups_minus1",
            u64::from(pps.num_slice_groups - 1),
        ));
    }
    Ok(r.position_bits())
}

/// Skip one `scaling_list(sizeOfScalingList)` (ITU-T H.264 §7.3.2.1.1.1): delta_scale values are read
/// until nextScale becomes 0, after which the remaining entries repeat the last scale and are absent.
fn skip_scaling_list(r: &mut BitReader<'_>, size: usize) -> Result<(), MediaError> {
    let mut last_scale = 8i64;
    let mut next_scale = 8i64;
    for _ in 0..size {
        if next_scale != 0 {
            let delta_scale = i64::from(r.read_se()?);
            if !(-128..=127).contains(&delta_scale) {
                return Err(MediaError::Invalid {
                    what: WHAT_SPS,
                    field: "delta_scale",
                    value: delta_scale as u64,
                });
            }
            next_scale = (last_scale + delta_scale + 256).rem_euclid(256);
        }
        if next_scale != 0 {
            last_scale = next_scale;
        }
    }
    Ok(())
}

/// Read `vui_parameters()` (ITU-T H.264 §E.1.1) up to the timing info, skipping aspect ratio, overscan,
/// video signal type and chroma location; frame rate = time_scale / (2 × num_units_in_tick) (§E.2.1).
fn read_vui_frame_rate(r: &mut BitReader<'_>) -> Result<Option<(u32, u32)>, MediaError> {
    if r.read_flag()? {
        // aspect_ratio_info_present_flag
        let aspect_ratio_idc = r.read_u8()?;
        if aspect_ratio_idc == 255 {
            r.skip_bits(32)?; // Extended_SAR: sar_width u(16), sar_height u(16)
        }
    }
    if r.read_flag()? {
        r.skip_bits(1)?; // overscan_appropriate_flag
    }
    if r.read_flag()? {
        // video_signal_type_present_flag: video_format u(3), video_full_range_flag u(1)
        r.skip_bits(4)?;
        if r.read_flag()? {
            r.skip_bits(24)?; // colour_primaries, transfer_characteristics, matrix_coefficients
        }
    }
    if r.read_flag()? {
        // chroma_loc_info_present_flag
        let _top = r.read_ue()?;
        let _bottom = r.read_ue()?;
    }
    if !r.read_flag()? {
        return Ok(None); // timing_info_present_flag
    }
    let num_units_in_tick = r.read_bits(32)?;
    let time_scale = r.read_bits(32)?;
    Ok(plausible_frame_rate(
        u64::from(time_scale),
        2 * u64::from(num_units_in_tick),
    ))
}

/// `num / den` reduced, or `None` if either is zero, it does not fit, or it exceeds
/// [`MAX_PLAUSIBLE_FRAME_RATE`].
pub(crate) fn plausible_frame_rate(num: u64, den: u64) -> Option<(u32, u32)> {
    reduced_ratio(num, den)
        .filter(|&(n, d)| u64::from(n) <= u64::from(d) * u64::from(MAX_PLAUSIBLE_FRAME_RATE))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bits::{BitWriter, annotated_hex as annotated};
    use proptest::prelude::*;

    /// `ffmpeg -f lavfi -i testsrc2=size=1280x720:rate=30 -t 0.2 -c:v libx264 -profile:v high x.mp4`
    /// (x264 core 164), avcC body.
    const X264_HIGH_720P30: &str = "
        01          configurationVersion
        64 00 1f    profile 100 (High), compat 0, level 31
        ff          reserved + lengthSizeMinusOne 3
        e1          reserved + 1 SPS
        00 1a       SPS length 26
          67 64 00 1f ac d9 40 50 05 bb 01 10 00 00 03 00 10 00 00 03 03 c0 f1 83 19 60
        01          1 PPS
        00 06       PPS length 6
          68 eb e3 cb 22 c0
        fd f8 f8 00 chroma_format 1, bit depths 8/8, no SPS extensions";

    #[test]
    fn avcc_x264_high_720p30() {
        let c = AvcConfig::parse(annotated(X264_HIGH_720P30)).unwrap();
        assert_eq!(c.rfc6381(), "avc1.64001f");
        assert_eq!(c.nal_length_size, 4);
        assert_eq!((c.sps.len(), c.pps.len()), (1, 1));
        assert_eq!(&c.pps[0][..], &[0x68, 0xeb, 0xe3, 0xcb, 0x22, 0xc0]);
        // SPS: chroma_format_idc 1, pic_width_in_mbs_minus1 79, pic_height_in_map_units_minus1 44,
        // frame_mbs_only 1, no cropping; VUI timing num_units_in_tick 1, time_scale 60 → 30 fps.
        assert_eq!(
            c.params,
            VideoParams {
                width: 1280,
                height: 720,
                frame_rate: Some((30, 1))
            }
        );
        let sps = parse_sps(&c.sps[0]).unwrap();
        assert_eq!(
            (
                sps.chroma_format_idc,
                sps.bit_depth_luma,
                sps.pic_order_cnt_type
            ),
            (1, 8, 0)
        );
    }

    #[test]
    fn avcc_bbb_main_720p24_with_video_signal_type() {
        // /work/shared/media/bbb-720p-h264-aac-90s-excerpt.mp4: Main L3.1, constraint_set1; VUI has
        // video_signal_type with colour description (1,1,1) before timing (time_scale 48 → 24 fps).
        let rec = annotated(
            "01 4d 40 1f ff e1
             00 1c 67 4d 40 1f e8 80 28 02 dd 80 b5 01 01 01 40 00 00 03 00 40 00 00 0c 03 c6 0c 44 80
             01 00 04 68 eb ef 20",
        );
        let c = AvcConfig::parse(rec).unwrap();
        assert_eq!(c.rfc6381(), "avc1.4d401f");
        assert_eq!(
            c.params,
            VideoParams {
                width: 1280,
                height: 720,
                frame_rate: Some((24, 1))
            }
        );
    }

    #[test]
    fn avcc_bbb_51_main_poc_type_2() {
        // /work/shared/media/bbb-720p-h264-aac51-5s.mp4: Main, pic_order_cnt_type 2, 25 fps.
        let rec = annotated(
            "01 4d 40 1f ff e1 00 17 67 4d 40 1f da 01 40 16 ec 04 40 00 00 03 00 40 00 00 0c 83 c6 0c a8
             01 00 04 68 ef 3c 80",
        );
        let c = AvcConfig::parse(rec).unwrap();
        assert_eq!(parse_sps(&c.sps[0]).unwrap().pic_order_cnt_type, 2);
        assert_eq!(
            c.params,
            VideoParams {
                width: 1280,
                height: 720,
                frame_rate: Some((25, 1))
            }
        );
    }

    #[test]
    fn avcc_camera_bikes_640x272() {
        // /work/shared/media/camera-bikes-272p-h264-10s.mp4: High L2.1, 40 × 17 macroblocks (272 is a
        // multiple of 16, so no cropping), time_scale 50 → 25 fps.
        let rec = annotated(
            "01 64 00 15 ff e1 00 19 67 64 00 15 ac d9 40 a0 23 b0 11 00 00 03 00 01 00 00 03 00 32 0f 16 2d 96
             01 00 06 68 eb e3 cb 22 c0",
        );
        let c = AvcConfig::parse(rec).unwrap();
        assert_eq!(c.rfc6381(), "avc1.640015");
        assert_eq!(
            c.params,
            VideoParams {
                width: 640,
                height: 272,
                frame_rate: Some((25, 1))
            }
        );
    }

    #[test]
    fn avcc_pexels_cropped_360p_implausible_timing_is_none() {
        // /work/shared/media/camera-face-pexels-360p-h264-aac-20s.mp4: High L3.0, constraint_set4 (0x08);
        // 640 × 368 coded, frame_crop_bottom_offset 4 × CropUnitY 2 = 8 → 360. The VUI says
        // num_units_in_tick 1, time_scale 48000 (a clock, not a frame rate: 24 000 fps), so no frame rate.
        let rec = annotated(
            "01 64 08 1e ff e1 00 1c 67 64 08 1e ac d9 40 a0 2f f9 66 a0 c0 c0 c8 00 00 03 00 08 00 05 dc 00 78 b1 6c b0
             01 00 05 68 eb ec b2 2c fd f8 f8 00",
        );
        let c = AvcConfig::parse(rec).unwrap();
        assert_eq!(c.rfc6381(), "avc1.64081e");
        assert_eq!(
            c.params,
            VideoParams {
                width: 640,
                height: 360,
                frame_rate: None
            }
        );
        let sps = parse_sps(&c.sps[0]).unwrap();
        assert_eq!((sps.coded_width, sps.coded_height), (640, 368));
    }

    #[test]
    fn sps_x264_baseline_1080p_cropped_from_1088() {
        // x264 `-preset ultrafast` testsrc2 1920x1080 at 30000/1001: Constrained Baseline (0xc0) L4.0,
        // 120 × 68 macroblocks, frame_crop_bottom_offset 4 → 1088 − 8; time_scale 60000 / (2 × 1001).
        let sps = parse_sps(&annotated(
            "67 42 c0 28 da 01 e0 08 9f 97 01 10 00 00 3e 90 00 0e a6 00 f1 83 2a",
        ))
        .unwrap();
        assert_eq!((sps.coded_width, sps.coded_height), (1920, 1088));
        assert_eq!(
            sps.video_params(),
            VideoParams {
                width: 1920,
                height: 1080,
                frame_rate: Some((30000, 1001))
            }
        );
        assert_eq!(
            (sps.profile_idc, sps.constraint_flags, sps.level_idc),
            (66, 0xc0, 40)
        );
    }

    #[test]
    fn sps_x264_interlaced_1080i() {
        // `-flags +ildct -x264opts interlaced=1` 1920x1080 25 fps: frame_mbs_only_flag 0, mb_adaptive 1,
        // pic_height_in_map_units 34 (field MB rows) → 2 × 34 × 16 = 1088; crop bottom 2 × CropUnitY
        // (SubHeightC 2 × 2) = 8 → 1080. time_scale 50 / (2 × 1) = 25 frames/s.
        let sps = parse_sps(&annotated(
            "67 64 00 28 ac d9 40 78 04 4f de 02 20 00 00 03 00 20 00 00 06 43 e2 c5 b2 c0",
        ))
        .unwrap();
        assert!(!sps.is_frame_mbs_only);
        assert_eq!((sps.coded_width, sps.coded_height), (1920, 1088));
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
    fn sps_x264_high422_10bit_and_high444() {
        // `-pix_fmt yuv422p10le -profile:v high422`: profile 122, chroma_format_idc 2, bit depths 10/10.
        let sps = parse_sps(&annotated(
            "67 7a 00 1f b6 cd 94 05 00 5b b0 11 00 00 03 00 01 00 00 03 00 3c 0f 18 31 96",
        ))
        .unwrap();
        assert_eq!(
            (
                sps.profile_idc,
                sps.chroma_format_idc,
                sps.bit_depth_luma,
                sps.bit_depth_chroma
            ),
            (122, 2, 10, 10)
        );
        assert_eq!(
            sps.video_params(),
            VideoParams {
                width: 1280,
                height: 720,
                frame_rate: Some((30, 1))
            }
        );
        // `-pix_fmt yuv444p -profile:v high444`: profile 244, chroma_format_idc 3, separate_colour_plane 0.
        let sps = parse_sps(&annotated(
            "67 f4 00 1f 91 9b 28 0a 00 b7 60 22 00 00 03 00 02 00 00 03 00 78 1e 30 63 2c",
        ))
        .unwrap();
        assert_eq!(
            (
                sps.profile_idc,
                sps.chroma_format_idc,
                sps.has_separate_colour_planes
            ),
            (244, 3, false)
        );
        assert_eq!(
            sps.video_params(),
            VideoParams {
                width: 1280,
                height: 720,
                frame_rate: Some((30, 1))
            }
        );
    }

    /// A synthetic High 4:4:4 SPS exercising the rarely used paths: scaling matrices (12 lists, one
    /// ending early with nextScale 0), pic_order_cnt_type 1 with a cycle, Extended_SAR, video signal type
    /// with colour description, chroma location, cropping in 4:4:4 (CropUnitX 1) and a field-coded frame.
    fn synthetic_high444_sps() -> Vec<u8> {
        let mut w = BitWriter::default();
        w.bits(8, 0x67).bits(8, 244).bits(8, 0).bits(8, 40); // NAL header, profile, compat, level
        w.ue(3); // seq_parameter_set_id
        w.ue(3).flag(false); // chroma_format_idc 4:4:4, separate_colour_plane_flag 0
        w.ue(2).ue(2).flag(false); // bit depths 10/10, qpprime bypass 0
        w.flag(true); // seq_scaling_matrix_present_flag
        for i in 0..12 {
            let present = i % 3 != 2;
            w.flag(present);
            if present {
                let size = if i < 6 { 16 } else { 64 };
                if i == 4 {
                    w.se(-8); // nextScale = 0 at j = 0: use the default list, nothing more coded
                } else {
                    for j in 0..size {
                        w.se(if j % 2 == 0 { 3 } else { -2 });
                    }
                }
            }
        }
        w.ue(0); // log2_max_frame_num_minus4
        w.ue(1); // pic_order_cnt_type 1
        w.flag(false).se(-2).se(1).ue(3).se(2).se(-4).se(6); // poc type 1 fields, cycle of 3
        w.ue(4).flag(false); // max_num_ref_frames, gaps
        w.ue(119).ue(33).flag(false).flag(true); // 120 MBs wide, 34 map units, field coded, MBAFF
        w.flag(true); // direct_8x8_inference_flag
        w.flag(true).ue(3).ue(5).ue(1).ue(3); // cropping: left 3, right 5, top 1, bottom 3
        w.flag(true); // vui_parameters_present_flag
        w.flag(true).bits(8, 255).bits(16, 4).bits(16, 3); // Extended_SAR 4:3
        w.flag(true).flag(false); // overscan info
        w.flag(true)
            .bits(3, 5)
            .flag(true)
            .flag(true)
            .bits(24, 0x010101); // video signal type + colour
        w.flag(true).ue(1).ue(2); // chroma location
        w.flag(true).bits(32, 1001).bits(32, 120_000).flag(true); // timing: 120000 / 2002 = 60000/1001
        w.finish_ebsp()
    }

    #[test]
    fn sps_synthetic_scaling_matrices_poc1_full_vui() {
        let sps = parse_sps(&synthetic_high444_sps()).unwrap();
        assert_eq!(sps.seq_parameter_set_id, 3);
        assert_eq!(sps.pic_order_cnt_type, 1);
        // 4:4:4 field coding: CropUnitX = 1, CropUnitY = 1 × 2. Width 1920 − 8, height 1088 − 8.
        assert_eq!(
            sps.video_params(),
            VideoParams {
                width: 1912,
                height: 1080,
                frame_rate: Some((60000, 1001))
            }
        );
    }

    #[test]
    fn sps_rejects_bad_fields() {
        // Not an SPS.
        assert!(matches!(
            parse_sps(&[0x68, 0xeb]),
            Err(MediaError::Invalid {
                field: "nal_unit_type",
                value: 8,
                ..
            })
        ));
        assert!(matches!(parse_sps(&[]), Err(MediaError::Truncated { .. })));
        // Cropping wider than the picture: 1 MB wide (16), crop left 8 × 2.
        let mut w = BitWriter::default();
        w.bits(8, 0x67)
            .bits(8, 66)
            .bits(8, 0)
            .bits(8, 30)
            .ue(0)
            .ue(0)
            .ue(2)
            .ue(1)
            .flag(false);
        w.ue(0)
            .ue(0)
            .flag(true)
            .flag(true)
            .flag(true)
            .ue(8)
            .ue(0)
            .ue(0)
            .ue(0)
            .flag(false);
        assert!(matches!(
            parse_sps(&w.finish_ebsp()),
            Err(MediaError::Invalid { value: 16, .. })
        ));
        // Every prefix that ends before time_scale does (bit 163, i.e. 21 RBSP bytes, 22 with the
        // emulation prevention byte) is truncated, never a panic.
        let full = annotated(
            "67 64 00 28 ac d9 40 78 04 4f de 02 20 00 00 03 00 20 00 00 06 43 e2 c5 b2 c0",
        );
        for len in 0..22 {
            assert!(
                matches!(parse_sps(&full[..len]), Err(MediaError::Truncated { .. })),
                "prefix {len}"
            );
        }
    }

    #[test]
    fn avcc_rejects_malformed_records() {
        let good = annotated(X264_HIGH_720P30);
        let mut bad = good.to_vec();
        bad[0] = 0;
        assert!(matches!(
            AvcConfig::parse(bad.into()),
            Err(MediaError::Invalid {
                field: "configurationVersion",
                ..
            })
        ));
        let mut bad = good.to_vec();
        bad[4] = 0xfe; // lengthSizeMinusOne 2
        assert!(matches!(
            AvcConfig::parse(bad.into()),
            Err(MediaError::Invalid {
                field: "lengthSizeMinusOne",
                ..
            })
        ));
        let mut bad = good.to_vec();
        bad[5] = 0xe0; // no SPS: then the SPS length bytes are read as numOfPPS → truncated/invalid
        assert!(AvcConfig::parse(bad.into()).is_err());
        assert_eq!(
            AvcConfig::parse(Bytes::from_static(&[1, 0x64, 0, 0x1f, 0xff, 0xe0, 0])),
            Err(MediaError::Missing {
                what: "avcC",
                field: "SPS"
            })
        );
        for len in 0..good.len() - 4 {
            assert!(AvcConfig::parse(good.slice(..len)).is_err(), "prefix {len}");
        }
    }

    #[test]
    fn from_parameter_sets_rebuilds_the_x264_record() {
        let c = AvcConfig::parse(annotated(X264_HIGH_720P30)).unwrap();
        let built = AvcConfig::from_parameter_sets(&c.sps, &c.pps).unwrap();
        // x264/FFmpeg write the same layout, high-profile trailer included: byte-identical.
        assert_eq!(built.record, c.record);
        assert_eq!(built, c);
        // Main profile: no trailer.
        let main = annotated(
            "01 4d 40 1f ff e1 00 17 67 4d 40 1f da 01 40 16 ec 04 40 00 00 03 00 40 00 00 0c 83 c6 0c a8
             01 00 04 68 ef 3c 80",
        );
        let c = AvcConfig::parse(main.clone()).unwrap();
        assert_eq!(
            AvcConfig::from_parameter_sets(&c.sps, &c.pps)
                .unwrap()
                .record,
            main
        );
        assert_eq!(
            AvcConfig::from_parameter_sets(&[], &c.pps),
            Err(MediaError::Missing {
                what: "avcC",
                field: "SPS"
            })
        );
        assert_eq!(
            AvcConfig::from_parameter_sets(&c.sps, &[]),
            Err(MediaError::Missing {
                what: "avcC",
                field: "PPS"
            })
        );
        assert!(AvcConfig::from_parameter_sets(&c.pps, &c.sps).is_err());
    }

    proptest! {
        #[test]
        fn parsers_never_panic_on_random_bytes(data in proptest::collection::vec(any::<u8>(), 0..96)) {
            let _ = AvcConfig::parse(Bytes::from(data.clone()));
            let _ = parse_sps(&data);
            let mut sps = data.clone();
            if let Some(b) = sps.first_mut() { *b = 0x67; }
            let _ = parse_sps(&sps);
            let _ = AvcConfig::from_parameter_sets(&[Bytes::from(sps)], &[Bytes::from_static(&[0x68, 0xce])]);
        }

        #[test]
        fn mutated_real_records_never_panic(pos in 0usize..64, byte in any::<u8>(), cut in 0usize..64) {
            let mut rec = annotated(X264_HIGH_720P30).to_vec();
            let pos = pos % rec.len();
            rec[pos] = byte;
            rec.truncate(rec.len() - cut.min(rec.len()));
            if let Ok(c) = AvcConfig::parse(Bytes::from(rec)) {
                prop_assert!(c.params.width > 0 && c.params.height > 0);
            }
        }
    }
}
