//! The length of an H.264 coded slice's header (ITU-T H.264 | ISO/IEC 14496-10 §7.3.3): what Common
//! Encryption leaves in the clear (ISO/IEC 23001-7 §9.5.2.2).

use super::{AvcPps, AvcSps};
use crate::{MediaError, bits::BitReader};

const WHAT_SLICE: &str = "AVC slice header";

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
