//! H.264 / AVC: the `avcC` decoder configuration record and the SPS fields Estuary needs.
//!
//! [`AvcConfig::parse`] reads an `AVCDecoderConfigurationRecord` (ISO/IEC 14496-15 §5.3.3.1) as carried in
//! an `avcC` box or an RTMP/FLV AVC sequence header; [`AvcConfig::from_parameter_sets`] builds one from
//! SPS/PPS NAL units found in-band (MPEG-TS ingest). [`parse_sps`] reads a sequence parameter set
//! (ITU-T H.264 §7.3.2.1.1) far enough to know the displayed picture size and the VUI frame rate.
//!
//! Layout: this file (NAL unit types, the `avcC` record), `sps` (sequence parameter set and VUI
//! timing), `pps` (picture parameter set), `slice` (slice header length, for Common Encryption).

mod pps;
mod slice;
mod sps;

use bytes::{BufMut, Bytes, BytesMut};

use crate::{MediaError, VideoParams, bits::ByteReader};

pub use self::pps::{AvcPps, parse_pps};
pub use self::slice::{slice_header_bits, slice_header_bytes};
pub(crate) use self::sps::plausible_frame_rate;
pub use self::sps::{AvcSps, MAX_PLAUSIBLE_FRAME_RATE, parse_sps};

const WHAT_AVCC: &str = "avcC";

/// nal_unit_type of a sequence parameter set (ITU-T H.264 Table 7-1).
pub const NAL_TYPE_SPS: u8 = 7;
/// nal_unit_type of a picture parameter set (ITU-T H.264 Table 7-1).
pub const NAL_TYPE_PPS: u8 = 8;
/// nal_unit_type of an access unit delimiter (ITU-T H.264 Table 7-1).
pub const NAL_TYPE_AUD: u8 = 9;

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bits::annotated_hex as annotated;
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
