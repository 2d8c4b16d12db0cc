//! The H.264 picture parameter set (ITU-T H.264 | ISO/IEC 14496-10 §7.3.2.2), read as far as slice
//! headers depend on it.

use super::NAL_TYPE_PPS;
use crate::{MediaError, bits::BitReader};

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
