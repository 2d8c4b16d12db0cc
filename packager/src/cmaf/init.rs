//! The CMAF header (init segment): `ftyp` + `moov` for one track (ISO/IEC 23000-19 §7.3.2.1).

use bytes::Bytes;
use media::{CodecConfig, TrackInfo, TrackKind, aac::AacConfig};

use super::CmafError;
use super::writer::BoxWriter;

/// `ftyp` major brand: ISO base media file format, 6th edition features (`tfdt`, version 1 `trun`).
const MAJOR_BRAND: [u8; 4] = *b"iso6";
/// `ftyp` compatible brands: `iso6`; `cmfc`, the CMAF structural brand (ISO/IEC 23000-19 §7); `mp41`
/// for older MP4 readers; `dash` for ISO/IEC 23009-1 segments.
const COMPATIBLE_BRANDS: [[u8; 4]; 4] = [*b"iso6", *b"cmfc", *b"mp41", *b"dash"];

/// Movie timescale (`mvhd`): milliseconds. Nothing is timed at this scale; durations are 0 (live).
const MOVIE_TIMESCALE: u32 = 1000;

/// `tkhd` flags: `track_enabled` (0x1) | `track_in_movie` (0x2) (ISO/IEC 14496-12 §8.3.2.3).
const TKHD_FLAGS: u32 = 0x00_0003;

/// ISO 639-2/T `und` packed as three 5-bit letters (`letter - 0x60`), ISO/IEC 14496-12 §8.4.2.3.
const LANGUAGE_UND: u16 =
    ((b'u' as u16 - 0x60) << 10) | ((b'n' as u16 - 0x60) << 5) | (b'd' as u16 - 0x60);

/// `url ` flags: media data is in the same file (ISO/IEC 14496-12 §8.7.2.3).
const URL_SELF_CONTAINED: u32 = 0x00_0001;

/// `VisualSampleEntry` resolution: 72 dpi in 16.16 fixed point (ISO/IEC 14496-12 §12.1.3.2).
const RESOLUTION_72_DPI: u32 = 0x0048_0000;

/// `VisualSampleEntry.depth`: images are in colour with no alpha (ISO/IEC 14496-12 §12.1.3.2).
const DEPTH_COLOUR: u16 = 0x0018;

/// MPEG-4 `objectTypeIndication` for Audio ISO/IEC 14496-3 (ISO/IEC 14496-1 §7.2.6.6.2, Table 5).
const OBJECT_TYPE_AUDIO_14496_3: u8 = 0x40;
/// MPEG-4 `streamType` AudioStream (ISO/IEC 14496-1 §7.2.6.6.2, Table 6).
const STREAM_TYPE_AUDIO: u8 = 0x05;

/// Descriptor tags (ISO/IEC 14496-1 §7.2.2.1, Table 1).
const ES_DESCR_TAG: u8 = 0x03;
const DECODER_CONFIG_DESCR_TAG: u8 = 0x04;
const DEC_SPECIFIC_INFO_TAG: u8 = 0x05;
const SL_CONFIG_DESCR_TAG: u8 = 0x06;
/// `SLConfigDescriptor.predefined`: reserved for use in MP4 files (ISO/IEC 14496-14 §3.1.2).
const SL_PREDEFINED_MP4: u8 = 0x02;

/// Largest body an MPEG-4 descriptor size field can express: four 7-bit groups (ISO/IEC 14496-1 §8.3.3).
const MAX_DESCRIPTOR_BODY_BYTES: usize = (1 << 28) - 1;

/// Write the CMAF header of one track: `ftyp` + `moov` (ISO/IEC 23000-19 §7.3.2.1), ready to be served
/// as the HLS `EXT-X-MAP` and the DASH initialization segment.
///
/// `track_id` is the `track_ID` used in `tkhd`, `trex` and every chunk's `tfhd` (non-zero; use the same
/// value with [`super::write_chunk`]). The media timescale (`mdhd`) is `track.timescale`; the movie
/// timescale is 1000 and all durations are 0 (live, fragments carry the timing).
///
/// The sample entry is `avc1` + `avcC` (ISO/IEC 14496-15 §5.4.2), `hvc1` + `hvcC` (ISO/IEC 14496-15
/// §8.4.1; the record must carry every parameter set) or `mp4a` + `esds` (ISO/IEC 14496-14 §3.1.2), with
/// the configuration record bytes copied unchanged.
///
/// Infallible form of [`try_write_init_segment`]: on an error (see there) it logs the error and returns
/// empty bytes, which callers must treat as "no init segment".
pub fn write_init_segment(track_id: u32, track: &TrackInfo) -> Bytes {
    match try_write_init_segment(track_id, track) {
        Ok(bytes) => bytes,
        Err(error) => {
            tracing::error!(track_id, %error, "cannot write cmaf init segment");
            Bytes::new()
        }
    }
}

/// Write the CMAF header of one track; see [`write_init_segment`].
///
/// Errors: [`CmafError::ZeroTrackId`], [`CmafError::ZeroTimescale`], [`CmafError::MissingVideoParams`],
/// [`CmafError::PictureTooLarge`] (a dimension above 65535), [`CmafError::DescriptorTooLarge`] (an
/// AudioSpecificConfig beyond 2^28 bytes), [`CmafError::BoxTooLarge`].
pub fn try_write_init_segment(track_id: u32, track: &TrackInfo) -> Result<Bytes, CmafError> {
    write_init_with(track_id, track, None)
}

/// Write the CMAF header of one track whose samples are encrypted with CENC scheme `cenc` under the key
/// with ID `kid` (ISO/IEC 23001-7): as [`try_write_init_segment`], but the sample entry is `encv` /
/// `enca` with a `sinf` (§8.12 of ISO/IEC 14496-12: `frma` with the original format, `schm` `cenc`
/// version 1.0, `schi` { `tenc` version 0: protected, 8-byte per-sample IVs, `default_KID` }), and the
/// `moov` carries a W3C Common `pssh` (version 1, listing `kid`, no data) from which a ClearKey CDM
/// builds its license request.
///
/// Errors: those of [`try_write_init_segment`].
pub fn try_write_protected_init_segment(
    track_id: u32,
    track: &TrackInfo,
    kid: &[u8; 16],
) -> Result<Bytes, CmafError> {
    write_init_with(track_id, track, Some(kid))
}

fn write_init_with(
    track_id: u32,
    track: &TrackInfo,
    kid: Option<&[u8; 16]>,
) -> Result<Bytes, CmafError> {
    if track_id == 0 {
        return Err(CmafError::ZeroTrackId);
    }
    if track.timescale == 0 {
        return Err(CmafError::ZeroTimescale);
    }
    if !track.config.is_packageable() {
        return Err(CmafError::UnpackageableCodec(track.config.name()));
    }
    let picture = match track.config.kind() {
        TrackKind::Video => {
            let params = track
                .config
                .video_params()
                .ok_or(CmafError::MissingVideoParams)?;
            let too_large = CmafError::PictureTooLarge {
                width: params.width,
                height: params.height,
            };
            let width_px = u16::try_from(params.width).map_err(|_| too_large.clone())?;
            let height_px = u16::try_from(params.height).map_err(|_| too_large)?;
            Some((width_px, height_px))
        }
        TrackKind::Audio => None,
    };

    // Everything but the record is under 1 KiB.
    let mut w = BoxWriter::with_capacity(1024 + track.config.record().len());
    write_ftyp(&mut w);
    w.boxed(b"moov", |w| {
        write_mvhd(w, track_id);
        w.boxed(b"mvex", |w| write_trex(w, track_id));
        w.boxed(b"trak", |w| {
            write_tkhd(w, track_id, picture);
            w.boxed(b"mdia", |w| {
                write_mdhd(w, track.timescale);
                write_hdlr(w, track.config.kind());
                w.boxed(b"minf", |w| write_minf(w, &track.config, picture, kid));
            });
        });
        if let Some(kid) = kid {
            write_common_pssh(w, kid);
        }
    });
    w.finish().map(Bytes::from)
}

/// `ftyp` (ISO/IEC 14496-12 §4.3): major brand, minor version 0, compatible brands.
fn write_ftyp(w: &mut BoxWriter) {
    w.boxed(b"ftyp", |w| {
        w.bytes(&MAJOR_BRAND);
        w.u32(0);
        for brand in &COMPATIBLE_BRANDS {
            w.bytes(brand);
        }
    });
}

/// `mvhd` version 0 (ISO/IEC 14496-12 §8.2.2; CMAF §7.5.1): times and duration 0, rate 1.0, volume 1.0,
/// unity matrix, `next_track_ID` after ours.
fn write_mvhd(w: &mut BoxWriter, track_id: u32) {
    w.full_box(b"mvhd", 0, 0, |w| {
        w.u32(0); // creation_time
        w.u32(0); // modification_time
        w.u32(MOVIE_TIMESCALE);
        w.u32(0); // duration: unknown (live)
        w.u32(0x0001_0000); // rate 1.0 (16.16)
        w.u16(0x0100); // volume 1.0 (8.8)
        w.zeros(2 + 4 * 2); // reserved
        w.unity_matrix();
        w.zeros(4 * 6); // pre_defined
        // All ones tells a writer adding tracks to search for a free id (§8.2.2.3).
        w.u32(track_id.saturating_add(1)); // next_track_ID
    });
}

/// `trex` (ISO/IEC 14496-12 §8.8.3): sample description 1; every other default is 0 because each `trun`
/// carries per-sample duration, size and flags.
fn write_trex(w: &mut BoxWriter, track_id: u32) {
    w.full_box(b"trex", 0, 0, |w| {
        w.u32(track_id);
        w.u32(1); // default_sample_description_index
        w.u32(0); // default_sample_duration
        w.u32(0); // default_sample_size
        w.u32(0); // default_sample_flags
    });
}

/// `tkhd` version 0 (ISO/IEC 14496-12 §8.3.2; CMAF §7.5.4): enabled and in movie, duration 0, volume 1.0
/// for audio, width/height in 16.16 fixed point for video (pixel dimensions; no sample aspect ratio).
fn write_tkhd(w: &mut BoxWriter, track_id: u32, picture: Option<(u16, u16)>) {
    w.full_box(b"tkhd", 0, TKHD_FLAGS, |w| {
        w.u32(0); // creation_time
        w.u32(0); // modification_time
        w.u32(track_id);
        w.u32(0); // reserved
        w.u32(0); // duration
        w.zeros(4 * 2); // reserved
        w.u16(0); // layer
        w.u16(0); // alternate_group
        w.u16(if picture.is_none() { 0x0100 } else { 0 }); // volume (8.8)
        w.u16(0); // reserved
        w.unity_matrix();
        let (width_px, height_px) = picture.unwrap_or((0, 0));
        w.u32(u32::from(width_px) << 16); // width (16.16)
        w.u32(u32::from(height_px) << 16); // height (16.16)
    });
}

/// `mdhd` version 0 (ISO/IEC 14496-12 §8.4.2): the media timescale, duration 0, language `und`.
fn write_mdhd(w: &mut BoxWriter, timescale: u32) {
    w.full_box(b"mdhd", 0, 0, |w| {
        w.u32(0); // creation_time
        w.u32(0); // modification_time
        w.u32(timescale);
        w.u32(0); // duration
        w.u16(LANGUAGE_UND); // pad(1) = 0, language
        w.u16(0); // pre_defined
    });
}

/// `hdlr` (ISO/IEC 14496-12 §8.4.3): `vide` or `soun`, with a null-terminated UTF-8 name.
fn write_hdlr(w: &mut BoxWriter, kind: TrackKind) {
    let (handler_type, name): (&[u8; 4], &[u8]) = match kind {
        TrackKind::Video => (b"vide", b"Estuary video\0"),
        TrackKind::Audio => (b"soun", b"Estuary audio\0"),
    };
    w.full_box(b"hdlr", 0, 0, |w| {
        w.u32(0); // pre_defined
        w.bytes(handler_type);
        w.zeros(4 * 3); // reserved
        w.bytes(name);
    });
}

/// `minf` body: media header, `dinf`, and a `stbl` with one sample entry and empty sample tables (all
/// samples live in fragments, ISO/IEC 14496-12 §8.8.1).
fn write_minf(
    w: &mut BoxWriter,
    config: &CodecConfig,
    picture: Option<(u16, u16)>,
    kid: Option<&[u8; 16]>,
) {
    match picture {
        // vmhd (§12.1.2): flags 1 (required), graphicsmode copy, opcolor 0.
        Some(_) => w.full_box(b"vmhd", 0, 1, |w| w.zeros(2 + 2 * 3)),
        // smhd (§12.2.2): balance 0 (centre), reserved.
        None => w.full_box(b"smhd", 0, 0, |w| w.zeros(2 + 2)),
    }
    w.boxed(b"dinf", |w| {
        w.full_box(b"dref", 0, 0, |w| {
            w.u32(1); // entry_count
            w.full_box(b"url ", 0, URL_SELF_CONTAINED, |_| {});
        });
    });
    w.boxed(b"stbl", |w| {
        w.full_box(b"stsd", 0, 0, |w| {
            w.u32(1); // entry_count
            write_sample_entry(w, config, picture, kid);
        });
        w.full_box(b"stts", 0, 0, |w| w.u32(0)); // entry_count
        w.full_box(b"stsc", 0, 0, |w| w.u32(0)); // entry_count
        w.full_box(b"stsz", 0, 0, |w| {
            w.u32(0); // sample_size
            w.u32(0); // sample_count
        });
        w.full_box(b"stco", 0, 0, |w| w.u32(0)); // entry_count
    });
}

fn write_sample_entry(
    w: &mut BoxWriter,
    config: &CodecConfig,
    picture: Option<(u16, u16)>,
    kid: Option<&[u8; 16]>,
) {
    let (width_px, height_px) = picture.unwrap_or((0, 0));
    match config {
        CodecConfig::Avc(avc) => {
            write_visual_sample_entry(w, (b"avc1", b"avcC", &avc.record), width_px, height_px, kid)
        }
        CodecConfig::Hevc(hevc) => write_visual_sample_entry(
            w,
            (b"hvc1", b"hvcC", &hevc.record),
            width_px,
            height_px,
            kid,
        ),
        CodecConfig::Aac(aac) => write_mp4a(w, aac, kid),
        // Refused by `write_init_with` before any box is written.
        CodecConfig::Decodable(_) => {}
    }
}

/// `VisualSampleEntry` (ISO/IEC 14496-12 §12.1.3) of type `entry` holding the decoder configuration box
/// `config_box` (`avcC`, ISO/IEC 14496-15 §5.4.2.1; `hvcC`, §8.4.1.1) whose body is `record` unchanged.
/// With a `kid`, the entry is `encv` and ends with its `sinf`.
fn write_visual_sample_entry(
    w: &mut BoxWriter,
    (entry, config_box, record): (&[u8; 4], &[u8; 4], &[u8]),
    width_px: u16,
    height_px: u16,
    kid: Option<&[u8; 16]>,
) {
    let fourcc = if kid.is_some() { b"encv" } else { entry };
    w.boxed(fourcc, |w| {
        w.zeros(6); // SampleEntry reserved
        w.u16(1); // data_reference_index
        w.u16(0); // pre_defined
        w.u16(0); // reserved
        w.zeros(4 * 3); // pre_defined
        w.u16(width_px);
        w.u16(height_px);
        w.u32(RESOLUTION_72_DPI); // horizresolution
        w.u32(RESOLUTION_72_DPI); // vertresolution
        w.u32(0); // reserved
        w.u16(1); // frame_count
        w.zeros(32); // compressorname: empty Pascal string, zero padded
        w.u16(DEPTH_COLOUR);
        w.i16(-1); // pre_defined
        w.boxed(config_box, |w| w.bytes(record));
        if let Some(kid) = kid {
            write_sinf(w, entry, kid);
        }
    });
}

/// `sinf` (ISO/IEC 14496-12 §8.12.1) of a `cenc`-protected track: `frma` (the original sample entry
/// type), `schm` (`cenc`, version 0x00010000), `schi` { `tenc` } (ISO/IEC 23001-7 §8.2: version 0,
/// `default_isProtected` 1, `default_Per_Sample_IV_Size` 8, `default_KID`).
fn write_sinf(w: &mut BoxWriter, original_format: &[u8; 4], kid: &[u8; 16]) {
    w.boxed(b"sinf", |w| {
        w.boxed(b"frma", |w| w.bytes(original_format));
        w.full_box(b"schm", 0, 0, |w| {
            w.bytes(b"cenc");
            w.u32(0x0001_0000);
        });
        w.boxed(b"schi", |w| {
            w.full_box(b"tenc", 0, 0, |w| {
                w.u8(0); // reserved
                w.u8(0); // reserved (version 0)
                w.u8(1); // default_isProtected
                w.u8(crate::cenc::PER_SAMPLE_IV_BYTES);
                w.bytes(kid);
            });
        });
    });
}

/// The W3C Common `pssh` box listing `kid` (as in the protected init segment), e.g. for `cenc:pssh`.
pub fn common_pssh_box(kid: &[u8; 16]) -> Bytes {
    let mut w = BoxWriter::with_capacity(64);
    write_common_pssh(&mut w, kid);
    w.finish().map(Bytes::from).unwrap_or_default()
}

/// `pssh` version 1 (ISO/IEC 23001-7 §8.1) of the W3C Common system ID, listing `kid`, with no data.
fn write_common_pssh(w: &mut BoxWriter, kid: &[u8; 16]) {
    w.full_box(b"pssh", 1, 0, |w| {
        w.bytes(&crate::cenc::W3C_COMMON_SYSTEM_ID);
        w.u32(1); // KID_count
        w.bytes(kid);
        w.u32(0); // DataSize
    });
}

/// `channelcount` for an AAC `channelConfiguration` (ISO/IEC 14496-3 §1.6.3.5, Table 1.19). 0 (channels
/// defined in a program config element) and reserved values fall back to 2: decoders read the
/// AudioSpecificConfig, not this field.
fn channel_count(channel_configuration: u8) -> u16 {
    match channel_configuration {
        1..=6 => u16::from(channel_configuration),
        7 | 12 | 14 => 8,
        11 => 7,
        13 => 24,
        _ => 2,
    }
}

/// `mp4a` `AudioSampleEntry` (ISO/IEC 14496-12 §12.2.3; ISO/IEC 14496-14 §3.1.2) with its `esds`.
///
/// `channelcount` is the core decoder's output channel count (see [`channel_count`]);
/// `samplerate` is the (core) sampling rate in 16.16 fixed point; a rate above 65535 Hz does not fit and
/// is written as 0. Decoders take both from the AudioSpecificConfig anyway.
fn write_mp4a(w: &mut BoxWriter, aac: &AacConfig, kid: Option<&[u8; 16]>) {
    let sample_rate_16_16 = u16::try_from(aac.sample_rate).map_or(0, |hz| u32::from(hz) << 16);
    let fourcc = if kid.is_some() { b"enca" } else { b"mp4a" };
    w.boxed(fourcc, |w| {
        w.zeros(6); // SampleEntry reserved
        w.u16(1); // data_reference_index
        w.zeros(4 * 2); // reserved
        w.u16(channel_count(aac.channels)); // channelcount
        w.u16(16); // samplesize (bits)
        w.u16(0); // pre_defined
        w.u16(0); // reserved
        w.u32(sample_rate_16_16); // samplerate
        write_esds(w, &aac.asc);
        if let Some(kid) = kid {
            write_sinf(w, b"mp4a", kid);
        }
    });
}

/// Number of bytes of an MPEG-4 descriptor's size field for a body of `len_bytes` (ISO/IEC 14496-1
/// §8.3.3: 7 bits per byte, the top bit set on every byte but the last). Minimal encoding.
fn size_field_len_bytes(len_bytes: usize) -> usize {
    match len_bytes {
        0..0x80 => 1,
        0x80..0x4000 => 2,
        0x4000..0x20_0000 => 3,
        _ => 4,
    }
}

/// Write a descriptor's tag and its size field for a body of `len_bytes` (at most
/// [`MAX_DESCRIPTOR_BODY_BYTES`], checked by the caller).
fn descriptor_header(w: &mut BoxWriter, tag: u8, len_bytes: usize) {
    w.u8(tag);
    let groups = size_field_len_bytes(len_bytes);
    for group in (0..groups).rev() {
        let bits = ((len_bytes >> (7 * group)) & 0x7F) as u8;
        w.u8(if group > 0 { bits | 0x80 } else { bits });
    }
}

/// Total length of a descriptor (tag, size field, body) with a body of `len_bytes`.
fn descriptor_len_bytes(len_bytes: usize) -> usize {
    1 + size_field_len_bytes(len_bytes) + len_bytes
}

/// `esds` (ISO/IEC 14496-14 §3.1.2): an `ES_Descriptor` (ISO/IEC 14496-1 §7.2.6.5) holding a
/// `DecoderConfigDescriptor` (§7.2.6.6; AAC, audio stream, bitrates unknown = 0) with the
/// AudioSpecificConfig as `DecoderSpecificInfo` (§7.2.6.7), and an `SLConfigDescriptor` (predefined 2).
fn write_esds(w: &mut BoxWriter, asc: &[u8]) {
    // objectTypeIndication(1) streamType/upStream/reserved(1) bufferSizeDB(3) maxBitrate(4) avgBitrate(4)
    let decoder_config_len = 13 + descriptor_len_bytes(asc.len());
    let sl_config_len = 1;
    // ES_ID(2) flags(1)
    let es_len = 3 + descriptor_len_bytes(decoder_config_len) + descriptor_len_bytes(sl_config_len);
    if es_len > MAX_DESCRIPTOR_BODY_BYTES {
        w.fail(CmafError::DescriptorTooLarge { len_bytes: es_len });
        return;
    }
    w.full_box(b"esds", 0, 0, |w| {
        descriptor_header(w, ES_DESCR_TAG, es_len);
        // ES_ID 0 in a file: the track_ID identifies the stream (ISO/IEC 14496-14 §3.1.2).
        w.u16(0);
        w.u8(0); // streamDependenceFlag 0, URL_Flag 0, OCRstreamFlag 0, streamPriority 0

        descriptor_header(w, DECODER_CONFIG_DESCR_TAG, decoder_config_len);
        w.u8(OBJECT_TYPE_AUDIO_14496_3);
        w.u8((STREAM_TYPE_AUDIO << 2) | 0x01); // streamType, upStream 0, reserved 1
        w.u24(0); // bufferSizeDB: unknown
        w.u32(0); // maxBitrate: unknown
        w.u32(0); // avgBitrate: 0 = variable / unknown
        descriptor_header(w, DEC_SPECIFIC_INFO_TAG, asc.len());
        w.bytes(asc);

        descriptor_header(w, SL_CONFIG_DESCR_TAG, sl_config_len);
        w.u8(SL_PREDEFINED_MP4);
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cmaf_descriptor_size_field_uses_minimal_groups() {
        let mut w = BoxWriter::with_capacity(16);
        descriptor_header(&mut w, 5, 0x7F);
        descriptor_header(&mut w, 5, 0x80);
        descriptor_header(&mut w, 5, MAX_DESCRIPTOR_BODY_BYTES);
        #[rustfmt::skip]
        let expected: &[u8] = &[
            5, 0x7F,                   // 127: one group
            5, 0x81, 0x00,             // 128: 0b1_0000000 in two groups
            5, 0xFF, 0xFF, 0xFF, 0x7F, // 2^28 - 1: four full groups
        ];
        assert_eq!(w.finish().expect("no error"), expected);
    }

    #[test]
    fn cmaf_language_und_packs_to_0x55c4() {
        assert_eq!(LANGUAGE_UND, 0x55C4);
    }

    #[test]
    fn cmaf_channel_count_maps_configurations() {
        assert_eq!(channel_count(0), 2);
        assert_eq!(channel_count(1), 1);
        assert_eq!(channel_count(6), 6);
        assert_eq!(channel_count(7), 8);
        assert_eq!(channel_count(11), 7);
        assert_eq!(channel_count(13), 24);
    }
}
