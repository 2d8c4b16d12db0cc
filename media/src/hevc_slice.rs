//! H.265 / HEVC slice segment header length (ITU-T H.265 §7.3.6.1): where a VCL NAL unit's slice data
//! starts, so that Common Encryption can leave the header in the clear (ISO/IEC 23001-7 §9.5.2.2).
//!
//! [`parse_sps`] and [`parse_pps`] read the parameter-set fields slice headers depend on (a superset of
//! [`crate::hevc::parse_sps`]'s: reference picture sets with their used-by-current flags, coding tree
//! size, tool flags); [`slice_header_bits`] walks one slice segment header, including its
//! `byte_alignment()`, whose `alignment_bit_equal_to_one` and zero bits it checks — a wrong walk lands
//! on arbitrary bits and is reported as an error rather than a wrong length.
//!
//! Scope: single-layer streams (`nuh_layer_id` 0) without the screen content coding extension (a PPS
//! with `pps_scc_extension_flag` is an error); everything else of version 1 and the range extension.

use crate::{MediaError, bits::BitReader};

const WHAT_SPS: &str = "HEVC SPS";
const WHAT_PPS: &str = "HEVC PPS";
const WHAT_SLICE: &str = "HEVC slice segment header";

/// Upper bound on the pictures in one reference picture set (sps_max_dec_pic_buffering_minus1 ≤ 15).
const MAX_RPS_PICTURES: usize = 16;
/// Upper bound on `num_entry_point_offsets` (tiles × CTB rows of a level 6.2 picture is below this).
const MAX_ENTRY_POINTS: u32 = 1 << 12;
/// Bytes of a VCL NAL unit read for its header: more than the longest header those bounds allow
/// (4096 entry points of 32 bits, a 256-byte extension, the rest), so a picture's slice data is
/// never copied.
const MAX_HEADER_EBSP_BYTES: usize = 20 * 1024;

/// One short-term reference picture set: (DeltaPoc, UsedByCurrPic) of its negative pictures (closest
/// first), then of its positive pictures (§7.4.8).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ShortTermRps {
    /// DeltaPocS0 / UsedByCurrPicS0.
    pub negative: Vec<(i64, bool)>,
    /// DeltaPocS1 / UsedByCurrPicS1.
    pub positive: Vec<(i64, bool)>,
}

impl ShortTermRps {
    fn len(&self) -> usize {
        self.negative.len() + self.positive.len()
    }

    /// Pictures of the set used by the current picture (its share of NumPicTotalCurr, eq. 7-55).
    fn used(&self) -> u32 {
        self.negative
            .iter()
            .chain(&self.positive)
            .filter(|(_, used)| *used)
            .count() as u32
    }
}

/// The SPS fields HEVC slice segment headers depend on (ITU-T H.265 §7.3.2.2.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HevcSliceSps {
    /// sps_seq_parameter_set_id.
    pub seq_parameter_set_id: u32,
    /// separate_colour_plane_flag.
    pub has_separate_colour_planes: bool,
    /// ChromaArrayType (0 with separate colour planes).
    pub chroma_array_type: u32,
    /// PicSizeInCtbsY.
    pub pic_size_in_ctbs: u64,
    /// log2_max_pic_order_cnt_lsb_minus4 + 4.
    pub log2_max_poc_lsb: u32,
    /// sample_adaptive_offset_enabled_flag.
    pub has_sao: bool,
    /// The SPS's short-term reference picture sets.
    pub short_term_rps: Vec<ShortTermRps>,
    /// long_term_ref_pics_present_flag.
    pub has_long_term_refs: bool,
    /// num_long_term_ref_pics_sps.
    pub num_long_term_ref_pics_sps: u32,
    /// UsedByCurrPicLtSPSFlag of each.
    pub long_term_used: Vec<bool>,
    /// sps_temporal_mvp_enabled_flag.
    pub has_temporal_mvp: bool,
}

/// The PPS fields HEVC slice segment headers depend on (ITU-T H.265 §7.3.2.3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HevcSlicePps {
    /// pps_pic_parameter_set_id.
    pub pic_parameter_set_id: u32,
    /// pps_seq_parameter_set_id.
    pub seq_parameter_set_id: u32,
    /// dependent_slice_segments_enabled_flag.
    pub has_dependent_slice_segments: bool,
    /// output_flag_present_flag.
    pub has_output_flag: bool,
    /// num_extra_slice_header_bits.
    pub num_extra_slice_header_bits: u32,
    /// cabac_init_present_flag.
    pub has_cabac_init: bool,
    /// num_ref_idx_l0_default_active_minus1 + 1.
    pub num_ref_idx_l0_default: u32,
    /// num_ref_idx_l1_default_active_minus1 + 1.
    pub num_ref_idx_l1_default: u32,
    /// pps_slice_chroma_qp_offsets_present_flag.
    pub has_slice_chroma_qp_offsets: bool,
    /// weighted_pred_flag.
    pub has_weighted_pred: bool,
    /// weighted_bipred_flag.
    pub has_weighted_bipred: bool,
    /// tiles_enabled_flag.
    pub has_tiles: bool,
    /// entropy_coding_sync_enabled_flag.
    pub has_entropy_coding_sync: bool,
    /// pps_loop_filter_across_slices_enabled_flag.
    pub has_loop_filter_across_slices: bool,
    /// deblocking_filter_override_enabled_flag.
    pub has_deblocking_override: bool,
    /// pps_deblocking_filter_disabled_flag.
    pub is_deblocking_disabled: bool,
    /// lists_modification_present_flag.
    pub has_lists_modification: bool,
    /// slice_segment_header_extension_present_flag.
    pub has_header_extension: bool,
    /// chroma_qp_offset_list_enabled_flag (range extension).
    pub has_chroma_qp_offset_list: bool,
}

fn nal_payload<'a>(
    nal: &'a [u8],
    want_type: Option<u8>,
    what: &'static str,
) -> Result<&'a [u8], MediaError> {
    if nal.len() < 2 {
        return Err(MediaError::Truncated {
            what,
            need: 2,
            have: nal.len(),
        });
    }
    let nal_type = (nal[0] >> 1) & 0x3f;
    let layer = (u16::from_be_bytes([nal[0], nal[1]]) >> 3) & 0x3f;
    if want_type.is_some_and(|t| t != nal_type) || layer != 0 {
        return Err(MediaError::Invalid {
            what,
            field: if layer != 0 {
                "nuh_layer_id"
            } else {
                "nal_unit_type"
            },
            value: u64::from(if layer != 0 {
                layer
            } else {
                u16::from(nal_type)
            }),
        });
    }
    Ok(&nal[2..])
}

/// Ceil(Log2(n)) for n ≥ 1 (0 for n ≤ 1).
fn ceil_log2(n: u64) -> u32 {
    if n <= 1 {
        0
    } else {
        u64::BITS - (n - 1).leading_zeros()
    }
}

/// Parse an SPS NAL unit (2-byte header and emulation prevention bytes included) for slice headers.
///
/// Errors: [`MediaError::Truncated`]; [`MediaError::Invalid`] for another NAL unit type, a layer other
/// than 0, or an out-of-range field.
pub fn parse_sps(nal: &[u8]) -> Result<HevcSliceSps, MediaError> {
    let payload = nal_payload(nal, Some(crate::hevc::NAL_TYPE_SPS), WHAT_SPS)?;
    let mut buf = Vec::new();
    let mut r = BitReader::from_ebsp(payload, &mut buf, WHAT_SPS);
    let _vps_id = r.read_bits(4)?;
    let max_sub_layers_minus1 = r.read_bits(3)? as u8;
    if max_sub_layers_minus1 > 6 {
        return Err(MediaError::Invalid {
            what: WHAT_SPS,
            field: "sps_max_sub_layers_minus1",
            value: u64::from(max_sub_layers_minus1),
        });
    }
    let _temporal_id_nesting = r.read_flag()?;
    crate::hevc::read_profile_tier_level(&mut r, max_sub_layers_minus1)?;
    let seq_parameter_set_id = r.read_ue_max("sps_seq_parameter_set_id", 15)?;
    let chroma_format_idc = r.read_ue_max("chroma_format_idc", 3)?;
    let has_separate_colour_planes = chroma_format_idc == 3 && r.read_flag()?;
    let width = u64::from(r.read_ue_max("pic_width_in_luma_samples", 1 << 16)?);
    let height = u64::from(r.read_ue_max("pic_height_in_luma_samples", 1 << 16)?);
    if r.read_flag()? {
        for _ in 0..4 {
            let _conf_win_offset = r.read_ue()?;
        }
    }
    let _bit_depth_luma_minus8 = r.read_ue_max("bit_depth_luma_minus8", 8)?;
    let _bit_depth_chroma_minus8 = r.read_ue_max("bit_depth_chroma_minus8", 8)?;
    let log2_max_poc_lsb = r.read_ue_max("log2_max_pic_order_cnt_lsb_minus4", 12)? + 4;
    let ordering_info_for_all = r.read_flag()?;
    let first = if ordering_info_for_all {
        0
    } else {
        max_sub_layers_minus1
    };
    for _ in first..=max_sub_layers_minus1 {
        for _ in 0..3 {
            let _ = r.read_ue()?;
        }
    }
    let log2_min_cb = r.read_ue_max("log2_min_luma_coding_block_size_minus3", 3)? + 3;
    let log2_ctb = log2_min_cb + r.read_ue_max("log2_diff_max_min_luma_coding_block_size", 3)?;
    for _ in 0..4 {
        // transform block sizes, max transform hierarchy depths
        let _ = r.read_ue()?;
    }
    if r.read_flag()? && r.read_flag()? {
        crate::hevc::skip_scaling_list_data(&mut r)?;
    }
    let _amp = r.read_flag()?;
    let has_sao = r.read_flag()?;
    if r.read_flag()? {
        r.skip_bits(8)?;
        let _ = r.read_ue()?;
        let _ = r.read_ue()?;
        r.skip_bits(1)?;
    }
    let num_sets = r.read_ue_max("num_short_term_ref_pic_sets", 64)? as usize;
    let mut short_term_rps: Vec<ShortTermRps> = Vec::with_capacity(num_sets);
    for idx in 0..num_sets {
        let set = read_st_ref_pic_set(&mut r, idx, num_sets, &short_term_rps, WHAT_SPS)?;
        short_term_rps.push(set);
    }
    let has_long_term_refs = r.read_flag()?;
    let mut num_long_term_ref_pics_sps = 0;
    let mut long_term_used = Vec::new();
    if has_long_term_refs {
        num_long_term_ref_pics_sps = r.read_ue_max("num_long_term_ref_pics_sps", 32)?;
        for _ in 0..num_long_term_ref_pics_sps {
            r.skip_bits(log2_max_poc_lsb as usize)?;
            long_term_used.push(r.read_flag()?);
        }
    }
    let has_temporal_mvp = r.read_flag()?;
    let ctb = 1u64 << log2_ctb;
    Ok(HevcSliceSps {
        seq_parameter_set_id,
        has_separate_colour_planes,
        chroma_array_type: if has_separate_colour_planes {
            0
        } else {
            chroma_format_idc
        },
        pic_size_in_ctbs: width.div_ceil(ctb) * height.div_ceil(ctb),
        log2_max_poc_lsb,
        has_sao,
        short_term_rps,
        has_long_term_refs,
        num_long_term_ref_pics_sps,
        long_term_used,
        has_temporal_mvp,
    })
}

/// `st_ref_pic_set(idx)` (§7.3.7) with the derivation of §7.4.8 (eq. 7-61, 7-62), keeping the
/// used-by-current flags. In a slice header `idx` equals `num_sets` and may name its reference set.
fn read_st_ref_pic_set(
    r: &mut BitReader<'_>,
    idx: usize,
    num_sets: usize,
    previous: &[ShortTermRps],
    what: &'static str,
) -> Result<ShortTermRps, MediaError> {
    let invalid = |field, value: usize| MediaError::Invalid {
        what,
        field,
        value: value as u64,
    };
    let inter = idx != 0 && r.read_flag()?;
    let mut set = ShortTermRps::default();
    if inter {
        let delta_idx = if idx == num_sets {
            r.read_ue_max("delta_idx_minus1", 63)? as usize + 1
        } else {
            1
        };
        let reference = idx
            .checked_sub(delta_idx)
            .and_then(|i| previous.get(i))
            .ok_or(invalid("RefRpsIdx", idx))?;
        let negative_sign = r.read_flag()?;
        let abs = i64::from(r.read_ue_max("abs_delta_rps_minus1", (1 << 15) - 1)?) + 1;
        let delta_rps = if negative_sign { -abs } else { abs };
        let n = reference.len();
        // (used_by_curr_pic_flag, use_delta_flag) for each reference picture and the reference itself.
        let mut flags = Vec::with_capacity(n + 1);
        for _ in 0..=n {
            let used = r.read_flag()?;
            let use_delta = used || r.read_flag()?;
            flags.push((used, use_delta));
        }
        let (n_neg, n_pos) = (reference.negative.len(), reference.positive.len());
        let keep = |j: usize| flags[j].1;
        let used = |j: usize| flags[j].0;
        for j in (0..n_pos).rev() {
            let d = reference.positive[j].0 + delta_rps;
            if d < 0 && keep(n_neg + j) {
                set.negative.push((d, used(n_neg + j)));
            }
        }
        if delta_rps < 0 && keep(n) {
            set.negative.push((delta_rps, used(n)));
        }
        for j in 0..n_neg {
            let d = reference.negative[j].0 + delta_rps;
            if d < 0 && keep(j) {
                set.negative.push((d, used(j)));
            }
        }
        for j in (0..n_neg).rev() {
            let d = reference.negative[j].0 + delta_rps;
            if d > 0 && keep(j) {
                set.positive.push((d, used(j)));
            }
        }
        if delta_rps > 0 && keep(n) {
            set.positive.push((delta_rps, used(n)));
        }
        for j in 0..n_pos {
            let d = reference.positive[j].0 + delta_rps;
            if d > 0 && keep(n_neg + j) {
                set.positive.push((d, used(n_neg + j)));
            }
        }
    } else {
        let num_negative = r.read_ue_max("num_negative_pics", MAX_RPS_PICTURES as u32)?;
        let num_positive = r.read_ue_max("num_positive_pics", MAX_RPS_PICTURES as u32)?;
        let mut poc = 0i64;
        for _ in 0..num_negative {
            poc -= i64::from(r.read_ue()?) + 1;
            set.negative.push((poc, r.read_flag()?));
        }
        poc = 0;
        for _ in 0..num_positive {
            poc += i64::from(r.read_ue()?) + 1;
            set.positive.push((poc, r.read_flag()?));
        }
    }
    if set.len() > MAX_RPS_PICTURES {
        return Err(invalid("NumDeltaPocs", set.len()));
    }
    Ok(set)
}

/// Parse a PPS NAL unit (2-byte header and emulation prevention bytes included) for slice headers.
///
/// Errors: [`MediaError::Truncated`]; [`MediaError::Invalid`] for another NAL unit type, an
/// out-of-range field, or the screen content coding extension.
pub fn parse_pps(nal: &[u8]) -> Result<HevcSlicePps, MediaError> {
    let payload = nal_payload(nal, Some(crate::hevc::NAL_TYPE_PPS), WHAT_PPS)?;
    let mut buf = Vec::new();
    let mut r = BitReader::from_ebsp(payload, &mut buf, WHAT_PPS);
    let pic_parameter_set_id = r.read_ue_max("pps_pic_parameter_set_id", 63)?;
    let seq_parameter_set_id = r.read_ue_max("pps_seq_parameter_set_id", 15)?;
    let has_dependent_slice_segments = r.read_flag()?;
    let has_output_flag = r.read_flag()?;
    let num_extra_slice_header_bits = r.read_bits(3)?;
    let _sign_data_hiding = r.read_flag()?;
    let has_cabac_init = r.read_flag()?;
    let num_ref_idx_l0_default = r.read_ue_max("num_ref_idx_l0_default_active_minus1", 14)? + 1;
    let num_ref_idx_l1_default = r.read_ue_max("num_ref_idx_l1_default_active_minus1", 14)? + 1;
    let _init_qp_minus26 = r.read_se()?;
    let _constrained_intra_pred = r.read_flag()?;
    let has_transform_skip = r.read_flag()?;
    if r.read_flag()? {
        let _diff_cu_qp_delta_depth = r.read_ue()?;
    }
    let _cb_qp_offset = r.read_se()?;
    let _cr_qp_offset = r.read_se()?;
    let has_slice_chroma_qp_offsets = r.read_flag()?;
    let has_weighted_pred = r.read_flag()?;
    let has_weighted_bipred = r.read_flag()?;
    let _transquant_bypass = r.read_flag()?;
    let has_tiles = r.read_flag()?;
    let has_entropy_coding_sync = r.read_flag()?;
    if has_tiles {
        let columns = r.read_ue_max("num_tile_columns_minus1", 19)?;
        let rows = r.read_ue_max("num_tile_rows_minus1", 21)?;
        if !r.read_flag()? {
            for _ in 0..columns + rows {
                let _ = r.read_ue()?;
            }
        }
        let _loop_filter_across_tiles = r.read_flag()?;
    }
    let has_loop_filter_across_slices = r.read_flag()?;
    let mut has_deblocking_override = false;
    let mut is_deblocking_disabled = false;
    if r.read_flag()? {
        has_deblocking_override = r.read_flag()?;
        is_deblocking_disabled = r.read_flag()?;
        if !is_deblocking_disabled {
            let _beta = r.read_se()?;
            let _tc = r.read_se()?;
        }
    }
    if r.read_flag()? {
        crate::hevc::skip_scaling_list_data(&mut r)?;
    }
    let has_lists_modification = r.read_flag()?;
    let _log2_parallel_merge_level_minus2 = r.read_ue()?;
    let has_header_extension = r.read_flag()?;
    let mut has_chroma_qp_offset_list = false;
    if r.read_flag()? {
        let range = r.read_flag()?;
        let _multilayer = r.read_flag()?;
        let _three_d = r.read_flag()?;
        let scc = r.read_flag()?;
        let _extension_4bits = r.read_bits(4)?;
        if scc {
            return Err(MediaError::Invalid {
                what: WHAT_PPS,
                field: "pps_scc_extension_flag",
                value: 1,
            });
        }
        if range {
            if has_transform_skip {
                let _log2_max_transform_skip_block_size_minus2 = r.read_ue()?;
            }
            let _cross_component_prediction = r.read_flag()?;
            has_chroma_qp_offset_list = r.read_flag()?;
        }
    }
    Ok(HevcSlicePps {
        pic_parameter_set_id,
        seq_parameter_set_id,
        has_dependent_slice_segments,
        has_output_flag,
        num_extra_slice_header_bits,
        has_cabac_init,
        num_ref_idx_l0_default,
        num_ref_idx_l1_default,
        has_slice_chroma_qp_offsets,
        has_weighted_pred,
        has_weighted_bipred,
        has_tiles,
        has_entropy_coding_sync,
        has_loop_filter_across_slices,
        has_deblocking_override,
        is_deblocking_disabled,
        has_lists_modification,
        has_header_extension,
        has_chroma_qp_offset_list,
    })
}

/// The bytes of an HEVC VCL NAL unit (types 0–9 and 16–21; 2-byte header and emulation prevention bytes
/// included, no length prefix) that hold its NAL unit header and slice segment header, through its
/// `byte_alignment()` — what Common Encryption leaves in the clear. Same arguments and errors as
/// [`slice_header_bits`].
pub fn slice_header_bytes(
    nal: &[u8],
    sps: &[HevcSliceSps],
    pps: &[HevcSlicePps],
) -> Result<usize, MediaError> {
    let bits = slice_header_bits(nal, sps, pps)?;
    let ebsp = &nal[2..];
    let rbsp_bytes = bits / 8;
    let ebsp_bytes =
        crate::bits::ebsp_len_for_rbsp(ebsp, rbsp_bytes).ok_or(MediaError::Truncated {
            what: WHAT_SLICE,
            need: rbsp_bytes,
            have: ebsp.len(),
        })?;
    Ok(2 + ebsp_bytes)
}

/// The length in bits (a multiple of 8) of an HEVC slice segment header, `byte_alignment()` included,
/// counted in the RBSP after the 2-byte NAL unit header (ITU-T H.265 §7.3.6.1). `sps` and `pps` are
/// the stream's parameter sets, looked up by id.
///
/// Errors: [`MediaError::Invalid`] for a non-slice NAL unit type, an unknown parameter set, an
/// out-of-range field, or a `byte_alignment()` that is not a one bit followed by zero bits (the walk
/// went wrong); [`MediaError::Truncated`] when the NAL unit ends inside the header.
pub fn slice_header_bits(
    nal: &[u8],
    sps: &[HevcSliceSps],
    pps: &[HevcSlicePps],
) -> Result<usize, MediaError> {
    let invalid = |field, value: u64| MediaError::Invalid {
        what: WHAT_SLICE,
        field,
        value,
    };
    let payload = nal_payload(nal, None, WHAT_SLICE)?;
    let nal_type = (nal[0] >> 1) & 0x3f;
    if !matches!(nal_type, 0..=9 | 16..=21) {
        return Err(invalid("nal_unit_type", u64::from(nal_type)));
    }
    let payload = &payload[..payload.len().min(MAX_HEADER_EBSP_BYTES)];
    let mut buf = Vec::new();
    let mut r = BitReader::from_ebsp(payload, &mut buf, WHAT_SLICE);
    let first_slice_segment_in_pic = r.read_flag()?;
    if (16..=23).contains(&nal_type) {
        let _no_output_of_prior_pics = r.read_flag()?;
    }
    let pps_id = r.read_ue_max("slice_pic_parameter_set_id", 63)?;
    let pps = pps
        .iter()
        .find(|p| p.pic_parameter_set_id == pps_id)
        .ok_or(invalid("slice_pic_parameter_set_id", u64::from(pps_id)))?;
    let sps = sps
        .iter()
        .find(|s| s.seq_parameter_set_id == pps.seq_parameter_set_id)
        .ok_or(invalid(
            "pps_seq_parameter_set_id",
            u64::from(pps.seq_parameter_set_id),
        ))?;
    let mut dependent = false;
    if !first_slice_segment_in_pic {
        if pps.has_dependent_slice_segments {
            dependent = r.read_flag()?;
        }
        r.skip_bits(ceil_log2(sps.pic_size_in_ctbs) as usize)?; // slice_segment_address
    }
    if !dependent {
        r.skip_bits(pps.num_extra_slice_header_bits as usize)?;
        let slice_type = r.read_ue_max("slice_type", 2)?;
        let (is_b, is_p) = (slice_type == 0, slice_type == 1);
        if pps.has_output_flag {
            let _pic_output_flag = r.read_flag()?;
        }
        if sps.has_separate_colour_planes {
            let _colour_plane_id = r.read_bits(2)?;
        }
        let mut temporal_mvp = false;
        let mut num_pic_total_curr = 0u32;
        if nal_type != 19 && nal_type != 20 {
            r.skip_bits(sps.log2_max_poc_lsb as usize)?; // slice_pic_order_cnt_lsb
            let num_sets = sps.short_term_rps.len();
            let rps = if !r.read_flag()? {
                read_st_ref_pic_set(&mut r, num_sets, num_sets, &sps.short_term_rps, WHAT_SLICE)?
            } else {
                let idx = if num_sets > 1 {
                    r.read_bits(ceil_log2(num_sets as u64))? as usize
                } else {
                    0
                };
                sps.short_term_rps
                    .get(idx)
                    .cloned()
                    .ok_or(invalid("short_term_ref_pic_set_idx", idx as u64))?
            };
            num_pic_total_curr += rps.used();
            if sps.has_long_term_refs {
                let num_lt_sps = if sps.num_long_term_ref_pics_sps > 0 {
                    r.read_ue_max("num_long_term_sps", sps.num_long_term_ref_pics_sps)?
                } else {
                    0
                };
                let num_lt_pics = r.read_ue_max("num_long_term_pics", MAX_RPS_PICTURES as u32)?;
                for i in 0..num_lt_sps + num_lt_pics {
                    if i < num_lt_sps {
                        let idx = if sps.num_long_term_ref_pics_sps > 1 {
                            r.read_bits(ceil_log2(u64::from(sps.num_long_term_ref_pics_sps)))?
                        } else {
                            0
                        };
                        if sps
                            .long_term_used
                            .get(idx as usize)
                            .copied()
                            .unwrap_or(false)
                        {
                            num_pic_total_curr += 1;
                        }
                    } else {
                        r.skip_bits(sps.log2_max_poc_lsb as usize)?; // poc_lsb_lt
                        if r.read_flag()? {
                            num_pic_total_curr += 1;
                        }
                    }
                    if r.read_flag()? {
                        let _delta_poc_msb_cycle_lt = r.read_ue()?;
                    }
                }
            }
            if sps.has_temporal_mvp {
                temporal_mvp = r.read_flag()?;
            }
        }
        let mut sao = false;
        if sps.has_sao {
            sao |= r.read_flag()?;
            if sps.chroma_array_type != 0 {
                sao |= r.read_flag()?;
            }
        }
        if is_p || is_b {
            let mut l0 = pps.num_ref_idx_l0_default;
            let mut l1 = pps.num_ref_idx_l1_default;
            if r.read_flag()? {
                l0 = r.read_ue_max("num_ref_idx_l0_active_minus1", 14)? + 1;
                if is_b {
                    l1 = r.read_ue_max("num_ref_idx_l1_active_minus1", 14)? + 1;
                }
            }
            if pps.has_lists_modification && num_pic_total_curr > 1 {
                let entry_bits = ceil_log2(u64::from(num_pic_total_curr)) as usize;
                if r.read_flag()? {
                    r.skip_bits(entry_bits * l0 as usize)?;
                }
                if is_b && r.read_flag()? {
                    r.skip_bits(entry_bits * l1 as usize)?;
                }
            }
            if is_b {
                let _mvd_l1_zero = r.read_flag()?;
            }
            if pps.has_cabac_init {
                let _cabac_init = r.read_flag()?;
            }
            if temporal_mvp {
                let from_l0 = if is_b { r.read_flag()? } else { true };
                if (from_l0 && l0 > 1) || (!from_l0 && l1 > 1) {
                    let _collocated_ref_idx = r.read_ue()?;
                }
            }
            if (pps.has_weighted_pred && is_p) || (pps.has_weighted_bipred && is_b) {
                skip_pred_weight_table(&mut r, sps.chroma_array_type != 0, l0, is_b.then_some(l1))?;
            }
            let _five_minus_max_num_merge_cand =
                r.read_ue_max("five_minus_max_num_merge_cand", 4)?;
        }
        let _slice_qp_delta = r.read_se()?;
        if pps.has_slice_chroma_qp_offsets {
            let _cb = r.read_se()?;
            let _cr = r.read_se()?;
        }
        if pps.has_chroma_qp_offset_list {
            let _cu_chroma_qp_offset_enabled = r.read_flag()?;
        }
        let override_deblocking = pps.has_deblocking_override && r.read_flag()?;
        let mut deblocking_disabled = pps.is_deblocking_disabled;
        if override_deblocking {
            deblocking_disabled = r.read_flag()?;
            if !deblocking_disabled {
                let _beta = r.read_se()?;
                let _tc = r.read_se()?;
            }
        }
        if pps.has_loop_filter_across_slices && (sao || !deblocking_disabled) {
            let _slice_loop_filter_across_slices = r.read_flag()?;
        }
    }
    if pps.has_tiles || pps.has_entropy_coding_sync {
        let offsets = r.read_ue_max("num_entry_point_offsets", MAX_ENTRY_POINTS)?;
        if offsets > 0 {
            let len = r.read_ue_max("offset_len_minus1", 31)? as usize + 1;
            r.skip_bits(len * offsets as usize)?;
        }
    }
    if pps.has_header_extension {
        let len = r.read_ue_max("slice_segment_header_extension_length", 256)? as usize;
        r.skip_bits(8 * len)?;
    }
    // byte_alignment(): alignment_bit_equal_to_one, then zero bits to the byte boundary.
    if !r.read_flag()? {
        return Err(invalid("alignment_bit_equal_to_one", 0));
    }
    while !r.position_bits().is_multiple_of(8) {
        if r.read_flag()? {
            return Err(invalid("alignment_bit_equal_to_zero", 1));
        }
    }
    Ok(r.position_bits())
}

/// Skip `pred_weight_table()` (§7.3.6.3) of a single-layer slice (every reference picture has a POC
/// other than the current picture's, so every weight flag is present).
fn skip_pred_weight_table(
    r: &mut BitReader<'_>,
    has_chroma: bool,
    l0: u32,
    l1: Option<u32>,
) -> Result<(), MediaError> {
    let _luma_log2_weight_denom = r.read_ue_max("luma_log2_weight_denom", 7)?;
    if has_chroma {
        let _delta_chroma_log2_weight_denom = r.read_se()?;
    }
    for refs in std::iter::once(l0).chain(l1) {
        let mut luma = Vec::with_capacity(refs as usize);
        for _ in 0..refs {
            luma.push(r.read_flag()?);
        }
        let mut chroma = vec![false; refs as usize];
        if has_chroma {
            for c in &mut chroma {
                *c = r.read_flag()?;
            }
        }
        for i in 0..refs as usize {
            if luma[i] {
                let _delta_luma_weight = r.read_se()?;
                let _luma_offset = r.read_se()?;
            }
            if chroma[i] {
                for _ in 0..2 {
                    let _delta_chroma_weight = r.read_se()?;
                    let _delta_chroma_offset = r.read_se()?;
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn ceil_log2_matches_the_spec_function() {
        assert_eq!(
            [1, 2, 3, 4, 5, 8, 9, 920].map(ceil_log2),
            [0, 1, 2, 2, 3, 3, 4, 10]
        );
    }

    proptest! {
        #[test]
        fn parsers_never_panic_on_random_bytes(data in proptest::collection::vec(any::<u8>(), 0..96)) {
            let _ = parse_sps(&data);
            let _ = parse_pps(&data);
            let _ = crate::avc::parse_pps(&data);
            let sps = HevcSliceSps {
                seq_parameter_set_id: 0,
                has_separate_colour_planes: false,
                chroma_array_type: 1,
                pic_size_in_ctbs: 920,
                log2_max_poc_lsb: 8,
                has_sao: true,
                short_term_rps: vec![ShortTermRps {
                    negative: vec![(-1, true), (-2, true)],
                    positive: vec![(1, false)],
                }],
                has_long_term_refs: true,
                num_long_term_ref_pics_sps: 2,
                long_term_used: vec![true, false],
                has_temporal_mvp: true,
            };
            let pps = HevcSlicePps {
                pic_parameter_set_id: 0,
                seq_parameter_set_id: 0,
                has_dependent_slice_segments: true,
                has_output_flag: true,
                num_extra_slice_header_bits: 2,
                has_cabac_init: true,
                num_ref_idx_l0_default: 3,
                num_ref_idx_l1_default: 2,
                has_slice_chroma_qp_offsets: true,
                has_weighted_pred: true,
                has_weighted_bipred: true,
                has_tiles: true,
                has_entropy_coding_sync: true,
                has_loop_filter_across_slices: true,
                has_deblocking_override: true,
                is_deblocking_disabled: false,
                has_lists_modification: true,
                has_header_extension: true,
                has_chroma_qp_offset_list: true,
            };
            let mut nal = vec![0x02, 0x01];
            nal.extend_from_slice(&data);
            let _ = slice_header_bytes(&nal, std::slice::from_ref(&sps), std::slice::from_ref(&pps));
        }
    }
}
