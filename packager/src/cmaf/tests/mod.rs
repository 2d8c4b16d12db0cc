//! Tests of the CMAF writer against independent oracles: the `mp4-atom` parser, `ffprobe` and `ffmpeg`.

mod chunk;
mod ffprobe;
mod init;
mod source_clip;

use bytes::Bytes;
use media::{CodecConfig, TrackInfo, aac::AacConfig, avc::AvcConfig, hevc::HevcConfig};
use mp4_atom::{Any, Decode};

/// The `avcC` body of `/work/shared/media/camera-bikes-272p-h264-10s.mp4` (640x272 H.264 High@2.1),
/// copied byte for byte from the file.
#[rustfmt::skip]
pub(super) const BIKES_AVCC: [u8; 42] = [
    0x01,             // configurationVersion
    0x64,             // AVCProfileIndication: High (100)
    0x00,             // profile_compatibility
    0x15,             // AVCLevelIndication: 2.1
    0xFF,             // reserved(6) = 1s, lengthSizeMinusOne = 3
    0xE1,             // reserved(3) = 1s, numOfSequenceParameterSets = 1
    0x00, 0x19,       // sequenceParameterSetLength = 25
    0x67, 0x64, 0x00, 0x15, 0xAC, 0xD9, 0x40, 0xA0, 0x23, 0xB0, 0x11, 0x00, 0x00, 0x03, 0x00, 0x01,
    0x00, 0x00, 0x03, 0x00, 0x32, 0x0F, 0x16, 0x2D, 0x96, // SPS NAL unit (type 7)
    0x01,             // numOfPictureParameterSets = 1
    0x00, 0x06,       // pictureParameterSetLength = 6
    0x68, 0xEB, 0xE3, 0xCB, 0x22, 0xC0, // PPS NAL unit (type 8)
];

/// The `hvcC` body of `/work/shared/media/camera-face-540p-hevc-aac-6s.mov` (960x540 HEVC Main@3.0),
/// copied byte for byte from the file.
#[rustfmt::skip]
pub(super) const FACE_HVCC: [u8; 104] = [
    0x01,                               // configurationVersion
    0x01,                               // profile_space 0, tier 0, general_profile_idc 1 (Main)
    0x60, 0x00, 0x00, 0x00,             // general_profile_compatibility_flags
    0xB0, 0x00, 0x00, 0x00, 0x00, 0x00, // general_constraint_indicator_flags
    0x5A,                               // general_level_idc 90 (3.0)
    0xF0, 0x00,                         // reserved, min_spatial_segmentation_idc 0
    0xFC,                               // reserved, parallelismType 0
    0xFD,                               // reserved, chroma_format_idc 1 (4:2:0)
    0xF8,                               // reserved, bit_depth_luma_minus8 0
    0xF8,                               // reserved, bit_depth_chroma_minus8 0
    0x00, 0x00,                         // avgFrameRate 0
    0x0B,                               // constantFrameRate 0, numTemporalLayers 1, nested 0, lengthSizeMinusOne 3
    0x03,                               // numOfArrays
    0xA0, 0x00, 0x01, 0x00, 0x18,       // complete, VPS (32), 1 NAL unit of 24 bytes
    0x40, 0x01, 0x0C, 0x01, 0xFF, 0xFF, 0x01, 0x60, 0x00, 0x00, 0x03, 0x00, 0xB0, 0x00, 0x00, 0x03,
    0x00, 0x00, 0x03, 0x00, 0x5A, 0x15, 0xC0, 0x90,
    0xA1, 0x00, 0x01, 0x00, 0x23,       // complete, SPS (33), 1 NAL unit of 35 bytes
    0x42, 0x01, 0x01, 0x01, 0x60, 0x00, 0x00, 0x03, 0x00, 0xB0, 0x00, 0x00, 0x03, 0x00, 0x00, 0x03,
    0x00, 0x5A, 0xA0, 0x07, 0x82, 0x00, 0x88, 0x7D, 0xE2, 0x05, 0x7B, 0x91, 0x65, 0x53, 0x50, 0x10,
    0x10, 0x10, 0x08,
    0xA2, 0x00, 0x01, 0x00, 0x07,       // complete, PPS (34), 1 NAL unit of 7 bytes
    0x44, 0x01, 0xC0, 0x2C, 0xBC, 0x14, 0xC9,
];

/// The AudioSpecificConfig of the same `.mov` (its `esds` DecoderSpecificInfo): AAC-LC, 44.1 kHz,
/// stereo, followed by an explicit "no SBR" sync extension.
#[rustfmt::skip]
pub(super) const FACE_ASC: [u8; 5] = [
    0x12, 0x10, // audioObjectType 2 (LC), samplingFrequencyIndex 4 (44100), channelConfiguration 2, GASpecificConfig 0
    0x56, 0xE5, 0x00, // syncExtensionType 0x2B7, extensionAudioObjectType 5 (SBR), sbrPresentFlag 0, padding
];

/// The AudioSpecificConfig of `/work/shared/media/camera-face-pexels-360p-h264-aac-20s.mp4`: AAC-LC,
/// samplingFrequencyIndex 3 (48 kHz), channelConfiguration 2.
pub(super) const PEXELS_ASC: [u8; 2] = [0x11, 0x90];

/// An H.264 track from [`BIKES_AVCC`] at `timescale`, parsed by the media crate's `avcC` parser.
pub(super) fn avc_track(timescale: u32) -> TrackInfo {
    let config =
        AvcConfig::parse(Bytes::from_static(&BIKES_AVCC)).expect("media parses the clip's avcC");
    TrackInfo {
        config: CodecConfig::Avc(config),
        timescale,
    }
}

/// An HEVC track from [`FACE_HVCC`] at 90 kHz, parsed by the media crate's `hvcC` parser.
pub(super) fn hevc_track() -> TrackInfo {
    let config =
        HevcConfig::parse(Bytes::from_static(&FACE_HVCC)).expect("media parses the clip's hvcC");
    TrackInfo {
        config: CodecConfig::Hevc(config),
        timescale: 90_000,
    }
}

/// An AAC track from an AudioSpecificConfig, parsed by the media crate; its timescale is its sample rate.
pub(super) fn aac_track(asc: &'static [u8]) -> TrackInfo {
    let config =
        AacConfig::parse(Bytes::from_static(asc)).expect("media parses the AudioSpecificConfig");
    TrackInfo {
        timescale: config.sample_rate,
        config: CodecConfig::Aac(config),
    }
}

/// Decode every top-level box of `bytes` with mp4-atom, failing the test on any error or leftover byte.
pub(super) fn decode_top_level(mut bytes: &[u8]) -> Vec<Any> {
    let mut atoms = Vec::new();
    while !bytes.is_empty() {
        match Any::decode(&mut bytes) {
            Ok(atom) => atoms.push(atom),
            Err(error) => panic!(
                "mp4-atom rejects our output: {error:?} ({} bytes left)",
                bytes.len()
            ),
        }
    }
    atoms
}

/// The body of the first box of type `fourcc` found anywhere in `bytes`, by scanning for the type and
/// reading the 32-bit size before it (independent of both our writer and mp4-atom).
pub(super) fn box_body<'a>(bytes: &'a [u8], fourcc: &[u8; 4]) -> &'a [u8] {
    let at = bytes
        .windows(4)
        .position(|window| window == fourcc)
        .unwrap_or_else(|| panic!("no {} box", String::from_utf8_lossy(fourcc)));
    assert!(at >= 4, "box type at offset {at} has no size before it");
    let size = u32::from_be_bytes(bytes[at - 4..at].try_into().expect("4 bytes")) as usize;
    &bytes[at + 4..at - 4 + size]
}
