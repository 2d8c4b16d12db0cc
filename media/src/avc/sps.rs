//! The H.264 sequence parameter set (ITU-T H.264 | ISO/IEC 14496-10 §7.3.2.1.1, §7.4.2.1.1) up to
//! its VUI timing info (§E.1.1): picture size, bit depths, the fields slice headers depend on, and the
//! frame rate.

use super::NAL_TYPE_SPS;
use crate::{
    MediaError, VideoParams,
    bits::{BitReader, reduced_ratio},
};

const WHAT_SPS: &str = "AVC SPS";

/// Frame rates above this many frames per second are treated as "not signalled": some encoders write a
/// `time_scale` that is a clock rate (e.g. 48 000 with `num_units_in_tick` 1) rather than a frame rate,
/// which `fixed_frame_rate_flag = 0` permits (ITU-T H.264 §E.2.1).
pub const MAX_PLAUSIBLE_FRAME_RATE: u32 = 1000;

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
}
