//! H.264 slice header and HEVC slice segment header lengths (what CENC leaves in the clear before the
//! slice data) on real streams
//! written by FFmpeg's libx264: the fixture as published (High, CABAC, B-frames, weighted prediction)
//! and re-encodings with other slice header shapes (Baseline CAVLC; interlaced fields with
//! pic_order_cnt_type 0 and bottom-field POC; several slices per picture; several reference frames
//! with list modifications). In a CABAC slice the header is followed by `cabac_alignment_one_bit`s up
//! to the next byte boundary (ITU-T H.264 §7.3.4) — an independent check that the parser stopped
//! exactly at the end of the header: a wrong length lands on arbitrary bits. HEVC headers end with
//! `byte_alignment()` (a one bit, then zeros), which the parser itself checks; x265 streams with
//! B-pyramid and weighted prediction, several slices, wavefront entry points, and without SAO.

use crate::common::fixture;
use media::avc::{AvcPps, AvcSps, parse_pps, parse_sps, slice_header_bits, slice_header_bytes};

/// An Annex B elementary stream from FFmpeg: `-i input {args} -an -f h264|hevc -`.
fn h264(input: &std::path::Path, args: &[&str]) -> Vec<u8> {
    let format = if args.contains(&"libx265") {
        "hevc"
    } else {
        "h264"
    };
    crate::common::ffmpeg_stdout(input, &[args, &["-an", "-f", format]].concat())
}

/// (slices parsed, CABAC slices whose alignment bits were all ones, CABAC slices checked).
fn check(stream: &[u8]) -> (usize, usize, usize) {
    let mut sps: Vec<AvcSps> = Vec::new();
    let mut pps: Vec<AvcPps> = Vec::new();
    let (mut slices, mut aligned, mut cabac) = (0, 0, 0);
    for nal in media::annex_b::nal_units(stream) {
        match nal.first().map(|h| h & 0x1F) {
            Some(7) => sps.push(parse_sps(nal).expect("SPS parses")),
            Some(8) => pps.push(parse_pps(nal).expect("PPS parses")),
            Some(1 | 5) => {
                let bits = slice_header_bits(nal, &sps, &pps).expect("slice header parses");
                let bytes = slice_header_bytes(nal, &sps, &pps).unwrap();
                assert!(bytes > 1 && bytes < nal.len(), "{bytes} of {}", nal.len());
                slices += 1;
                let pps_used = pps.last().unwrap();
                if pps_used.is_cabac {
                    cabac += 1;
                    let rbsp = media::ebsp_to_rbsp(&nal[1..]);
                    let ones =
                        (bits..bits.div_ceil(8) * 8).all(|b| rbsp[b / 8] & (0x80 >> (b % 8)) != 0);
                    if ones {
                        aligned += 1;
                    }
                }
            }
            _ => {}
        }
    }
    (slices, aligned, cabac)
}

#[test]
fn slice_header_lengths_end_where_the_slice_data_starts() {
    let clip = fixture("bbb-720p-2s-gop.mp4");
    let cases: [(&str, Vec<&str>); 5] = [
        (
            "fixture as published (copy)",
            vec!["-c:v", "copy", "-bsf:v", "h264_mp4toannexb"],
        ),
        (
            "baseline CAVLC",
            vec![
                "-t",
                "2",
                "-c:v",
                "libx264",
                "-profile:v",
                "baseline",
                "-preset",
                "ultrafast",
            ],
        ),
        (
            "interlaced fields, 4 slices",
            vec![
                "-t",
                "2",
                "-vf",
                "scale=640:360",
                "-c:v",
                "libx264",
                "-flags",
                "+ildct",
                "-x264-params",
                "interlaced=1:slices=4",
                "-preset",
                "veryfast",
            ],
        ),
        (
            "5 refs, b-pyramid, weighted prediction",
            vec![
                "-t",
                "2",
                "-vf",
                "scale=640:360",
                "-c:v",
                "libx264",
                "-x264-params",
                "ref=5:bframes=3:b-pyramid=normal:weightp=2:weightb=1",
                "-preset",
                "slow",
            ],
        ),
        (
            "no deblocking control, CABAC, poc type 2",
            vec![
                "-t",
                "2",
                "-vf",
                "scale=640:360",
                "-c:v",
                "libx264",
                "-x264-params",
                "bframes=0:no-deblock=1",
                "-preset",
                "veryfast",
            ],
        ),
    ];
    for (what, args) in cases {
        let stream = h264(&clip, &args);
        let (slices, aligned, cabac) = check(&stream);
        eprintln!("{what}: {slices} slices, {aligned}/{cabac} CABAC slices aligned with one bits");
        assert!(slices >= 40, "{what}: {slices} slices");
        assert_eq!(aligned, cabac, "{what}");
        if what != "baseline CAVLC" {
            assert!(cabac > 0, "{what}: no CABAC slice");
        }
    }
}

/// HEVC: (slice segments parsed, VCL NAL units seen).
fn check_hevc(stream: &[u8]) -> (usize, usize) {
    use media::hevc_slice::{HevcSlicePps, HevcSliceSps};
    let mut sps: Vec<HevcSliceSps> = Vec::new();
    let mut pps: Vec<HevcSlicePps> = Vec::new();
    let (mut parsed, mut vcl) = (0, 0);
    for nal in media::annex_b::nal_units(stream) {
        match media::hevc::nal_unit_type(nal) {
            Some(33) => sps.push(media::hevc_slice::parse_sps(nal).expect("SPS parses")),
            Some(34) => pps.push(media::hevc_slice::parse_pps(nal).expect("PPS parses")),
            Some(t @ (0..=9 | 16..=21)) => {
                vcl += 1;
                let bytes = media::hevc_slice::slice_header_bytes(nal, &sps, &pps)
                    .unwrap_or_else(|e| panic!("type {t} slice header: {e}"));
                assert!(bytes > 2 && bytes < nal.len(), "{bytes} of {}", nal.len());
                parsed += 1;
            }
            _ => {}
        }
    }
    (parsed, vcl)
}

#[test]
fn hevc_slice_segment_headers_end_with_their_byte_alignment() {
    let clip = fixture("bbb-720p-2s-gop.mp4");
    let x265 = |params: &'static str| {
        vec![
            "-t",
            "2",
            "-vf",
            "scale=640:360",
            "-c:v",
            "libx265",
            "-preset",
            "veryfast",
            "-x265-params",
            params,
        ]
    };
    for (what, args) in [
        ("x265 defaults (WPP)", x265("log-level=error")),
        (
            "b-pyramid, 4 refs, weighted prediction",
            x265("log-level=error:bframes=4:b-pyramid=1:ref=4:weightp=1:weightb=1"),
        ),
        (
            "4 slices (with WPP entry points)",
            x265("log-level=error:slices=4"),
        ),
        ("no SAO, no WPP", x265("log-level=error:sao=0:wpp=0")),
        (
            "open GOP, keyint 24",
            x265("log-level=error:keyint=24:open-gop=1"),
        ),
    ] {
        let stream = h264(&clip, &args);
        let (parsed, vcl) = check_hevc(&stream);
        eprintln!("{what}: {parsed}/{vcl} slice segment headers");
        assert!(parsed >= 48 && parsed == vcl, "{what}: {parsed}/{vcl}");
    }
}
