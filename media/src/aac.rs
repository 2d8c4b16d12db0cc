//! AAC: the AudioSpecificConfig, and ADTS headers converted to one.
//!
//! [`AacConfig::parse`] reads an AudioSpecificConfig (ISO/IEC 14496-3 §1.6.2.1) as carried in an `esds`
//! DecoderSpecificInfo or an RTMP/FLV AAC sequence header. [`AacConfig::from_adts_header`] builds the
//! equivalent AudioSpecificConfig from an ADTS frame header (ISO/IEC 14496-3 §1.A.2.2), for MPEG-TS ingest.
//!
//! [`parse_audio_specific_config`] returns every field read, including the SBR/PS signalling.
//!
//! HE-AAC: for explicitly signalled SBR (audioObjectType 5 or 29, or the backward-compatible sync
//! extension), [`AacConfig::sample_rate`] is the *core* AAC sampling frequency and
//! [`AacConfig::samples_per_frame`] counts core samples, so one frame always lasts
//! `samples_per_frame / sample_rate` seconds and the core rate is a valid track timescale; the SBR
//! output rate (twice the core rate) is in [`AudioSpecificConfig::extension_sample_rate`]. Implicit SBR (a plain AAC-LC config whose stream carries SBR
//! data) cannot be seen in the config and is reported as AAC-LC.

use bytes::Bytes;

use crate::{MediaError, bits::BitReader};

const WHAT_ASC: &str = "AudioSpecificConfig";
const WHAT_ADTS: &str = "ADTS header";

/// Sampling frequencies by samplingFrequencyIndex 0..=12 (ISO/IEC 14496-3 §1.6.3.4, Table 1.18);
/// 13 and 14 are reserved, 15 means an explicit 24-bit frequency follows.
pub(crate) const SAMPLING_FREQUENCIES_HZ: [u32; 13] = [
    96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350,
];

/// Value of syncExtensionType announcing a backward-compatible SBR extension (§1.6.2.1).
const SYNC_EXTENSION_SBR: u32 = 0x2b7;
/// Value of syncExtensionType announcing a backward-compatible PS extension (§1.6.2.1).
const SYNC_EXTENSION_PS: u32 = 0x548;

/// A parsed AudioSpecificConfig (ISO/IEC 14496-3 §1.6.2.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AacConfig {
    /// The AudioSpecificConfig bytes as received.
    pub asc: Bytes,
    /// audioObjectType (2 = AAC-LC, 5 = SBR/HE-AAC, 29 = PS).
    pub object_type: u8,
    /// Sampling frequency in Hz.
    pub sample_rate: u32,
    /// channelConfiguration (1 = mono, 2 = stereo, 6 = 5.1 …; 0 = defined in the PCE).
    pub channels: u8,
    /// Samples per frame per channel (1024, or 960 with frameLengthFlag).
    pub samples_per_frame: u32,
}

impl AacConfig {
    /// Parse an AudioSpecificConfig. Errors: truncated, sampling frequency index 15 without an explicit
    /// frequency, or unsupported object type.
    ///
    /// The fields are those of [`parse_audio_specific_config`] (which see for the syntax covered and the
    /// HE-AAC conventions), `channels` being the channelConfiguration; the rest of the details
    /// (SBR/PS signalling, core object type, PCE channel count) are available by calling it on
    /// [`AacConfig::asc`].
    pub fn parse(asc: Bytes) -> Result<Self, MediaError> {
        let details = parse_audio_specific_config(&asc)?;
        Ok(Self {
            object_type: details.object_type,
            sample_rate: details.sample_rate,
            channels: details.channel_configuration,
            samples_per_frame: details.samples_per_frame,
            asc,
        })
    }

    /// Build the AudioSpecificConfig for the ADTS frame whose header starts `data`, and return it with
    /// the header length and the whole frame length, both in bytes.
    ///
    /// Returns `(config, header_len_bytes, frame_len_bytes)`: the header is 7 bytes, or 9 with a CRC
    /// (`protection_absent = 0`); the frame length (`aac_frame_length`) includes the header, so the raw
    /// access unit is `data[header_len_bytes..frame_len_bytes]`. Only the header needs to be present in
    /// `data`. The ASC is the 2-byte form audioObjectType = profile_ObjectType + 1, the header's
    /// samplingFrequencyIndex and channelConfiguration, frameLengthFlag 0 (ADTS frames are 1024 samples),
    /// dependsOnCoreCoder 0, extensionFlag 0.
    ///
    /// Fields per ISO/IEC 14496-3 §1.A.2.2.1–2: syncword u12 = 0xFFF, ID u1, layer u2 = 0,
    /// protection_absent u1, profile_ObjectType u2, sampling_frequency_index u4, private_bit u1,
    /// channel_configuration u3, original_copy u1, home u1, copyright_identification_bit u1,
    /// copyright_identification_start u1, aac_frame_length u13, adts_buffer_fullness u11,
    /// number_of_raw_data_blocks_in_frame u2.
    ///
    /// Errors: [`MediaError::Truncated`] when `data` is shorter than the header; [`MediaError::Invalid`]
    /// for a bad syncword, a layer other than 0, sampling frequency index 13–15, channel configuration 0
    /// (the PCE would be inside the raw data block: unsupported), an `aac_frame_length` shorter than the
    /// header, or more than one raw data block per frame (unsupported).
    pub fn from_adts_header(data: &[u8]) -> Result<(AacConfig, usize, usize), MediaError> {
        if data.len() < 7 {
            return Err(MediaError::Truncated {
                what: WHAT_ADTS,
                need: 7,
                have: data.len(),
            });
        }
        let mut r = BitReader::new(data, WHAT_ADTS);
        let invalid = |field, value: u32| MediaError::Invalid {
            what: WHAT_ADTS,
            field,
            value: u64::from(value),
        };
        let syncword = r.read_bits(12)?;
        if syncword != 0xfff {
            return Err(invalid("syncword", syncword));
        }
        let _id = r.read_flag()?;
        let layer = r.read_bits(2)?;
        if layer != 0 {
            return Err(invalid("layer", layer));
        }
        let protection_absent = r.read_flag()?;
        let profile = r.read_bits(2)?;
        let sampling_frequency_index = r.read_bits(4)?;
        if sampling_frequency_index as usize >= SAMPLING_FREQUENCIES_HZ.len() {
            return Err(invalid(
                "sampling_frequency_index",
                sampling_frequency_index,
            ));
        }
        let _private_bit = r.read_flag()?;
        let channel_configuration = r.read_bits(3)?;
        if channel_configuration == 0 {
            return Err(invalid("channel_configuration", channel_configuration));
        }
        r.skip_bits(4)?; // original_copy, home, copyright_identification_bit/start
        let frame_len_bytes = r.read_bits(13)? as usize;
        let _adts_buffer_fullness = r.read_bits(11)?;
        let raw_data_blocks = r.read_bits(2)?;
        if raw_data_blocks != 0 {
            return Err(invalid(
                "number_of_raw_data_blocks_in_frame",
                raw_data_blocks,
            ));
        }
        let header_len_bytes = if protection_absent { 7 } else { 9 };
        if data.len() < header_len_bytes {
            return Err(MediaError::Truncated {
                what: WHAT_ADTS,
                need: header_len_bytes,
                have: data.len(),
            });
        }
        if frame_len_bytes < header_len_bytes {
            return Err(invalid("aac_frame_length", frame_len_bytes as u32));
        }
        // audioObjectType u5, samplingFrequencyIndex u4, channelConfiguration u4, GASpecificConfig 000.
        let asc =
            ((profile + 1) << 11) | (sampling_frequency_index << 7) | (channel_configuration << 3);
        let config = Self::parse(Bytes::copy_from_slice(&(asc as u16).to_be_bytes()))?;
        Ok((config, header_len_bytes, frame_len_bytes))
    }

    /// RFC 6381 codec string: `mp4a.40.{object_type}`.
    pub fn rfc6381(&self) -> String {
        format!("mp4a.40.{}", self.object_type)
    }
}

/// Every field of an AudioSpecificConfig that Estuary reads (ISO/IEC 14496-3 §1.6.2.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AudioSpecificConfig {
    /// The first audioObjectType (2 = AAC-LC, 5 = SBR/HE-AAC, 29 = PS), as used in `mp4a.40.N`.
    pub object_type: u8,
    /// Core sampling frequency in Hz (for HE-AAC the AAC core rate, half the output rate).
    pub sample_rate: u32,
    /// channelConfiguration (0 = defined in the program_config_element).
    pub channel_configuration: u8,
    /// Core samples per frame per channel (1024, or 960 with frameLengthFlag).
    pub samples_per_frame: u32,
    /// The object type of the core coder: equal to [`AudioSpecificConfig::object_type`], except for explicit hierarchical
    /// SBR/PS signalling (object type 5 or 29) where it is the underlying type (usually 2).
    pub core_object_type: u8,
    /// SBR output sampling frequency in Hz when SBR is explicitly signalled (object type 5/29, or a sync
    /// extension with sbrPresentFlag set); `None` otherwise.
    pub extension_sample_rate: Option<u32>,
    /// Whether SBR (spectral band replication, HE-AAC) is explicitly signalled.
    pub has_sbr: bool,
    /// Whether parametric stereo (HE-AAC v2) is explicitly signalled.
    pub has_ps: bool,
    /// Number of output channels of the core decoder: from the channelConfiguration (Table 1.19: 1–6 as
    /// numbered, 7 → 8, 11 → 7, 12 → 8, 13 → 24, 14 → 8) or, for configuration 0, counted in the
    /// program_config_element (front/side/back elements, a CPE counting 2, plus LFEs). Parametric
    /// stereo's mono-to-stereo upmix is not counted.
    pub channel_count: u8,
}

impl AudioSpecificConfig {
    /// RFC 6381 codec string: `mp4a.40.{object_type}`.
    pub fn rfc6381(&self) -> String {
        format!("mp4a.40.{}", self.object_type)
    }
}

/// Parse an AudioSpecificConfig completely.
///
/// Reads (ISO/IEC 14496-3 §1.6.2.1) the 5-bit audioObjectType with its escape (31 → 32 + 6 bits),
/// the 4-bit samplingFrequencyIndex (15 → explicit 24-bit frequency; 13, 14 and an explicit 0 Hz are
/// [`MediaError::Invalid`]), the 4-bit channelConfiguration, the SBR/PS extension fields for object
/// types 5 and 29, the GASpecificConfig (§4.4.1) including a program_config_element when the channel
/// configuration is 0, epConfig for error-resilient types (only 0 and 1 are supported), and the
/// backward-compatible SBR/PS sync extension when at least 16 bits remain. Supported core object types:
/// 1 (Main), 2 (LC), 3 (SSR), 4 (LTP), 6 (Scalable), 17 (ER LC), 19 (ER LTP), 20 (ER Scalable),
/// 22 (ER BSAC); others are [`MediaError::Invalid`] (`field: "audioObjectType"`). Trailing bytes
/// (some muxers pad the config with zeros) are ignored.
///
/// HE-AAC conventions are described in the [module documentation](self): `sample_rate` and
/// `samples_per_frame` describe the AAC core, `extension_sample_rate` the SBR output.
pub fn parse_audio_specific_config(asc: &[u8]) -> Result<AudioSpecificConfig, MediaError> {
    let mut r = BitReader::new(asc, WHAT_ASC);
    let object_type = read_object_type(&mut r)?;
    let sample_rate = read_sampling_frequency(&mut r)?;
    let channels = r.read_bits(4)? as u8;

    let is_explicit_sbr = object_type == 5 || object_type == 29;
    let mut core_object_type = object_type;
    let mut extension_sample_rate = None;
    let mut has_sbr = false;
    let mut has_ps = false;
    if is_explicit_sbr {
        has_sbr = true;
        has_ps = object_type == 29;
        extension_sample_rate = Some(read_sampling_frequency(&mut r)?);
        core_object_type = read_object_type(&mut r)?;
        if core_object_type == 22 {
            r.skip_bits(4)?; // extensionChannelConfiguration
        }
    }

    let (frame_length_flag, pce_channel_count) = match core_object_type {
        1 | 2 | 3 | 4 | 6 | 17 | 19 | 20 | 22 => {
            read_ga_specific_config(&mut r, channels, core_object_type)?
        }
        other => {
            return Err(MediaError::Invalid {
                what: WHAT_ASC,
                field: "audioObjectType",
                value: u64::from(other),
            });
        }
    };
    if (17..=27).contains(&core_object_type) {
        let ep_config = r.read_bits(2)?;
        if ep_config >= 2 {
            return Err(MediaError::Invalid {
                what: WHAT_ASC,
                field: "epConfig",
                value: u64::from(ep_config),
            });
        }
    }

    if !is_explicit_sbr && r.remaining_bits() >= 16 && r.read_bits(11)? == SYNC_EXTENSION_SBR {
        match read_object_type(&mut r)? {
            5 => {
                has_sbr = r.read_flag()?; // sbrPresentFlag
                if has_sbr {
                    extension_sample_rate = Some(read_sampling_frequency(&mut r)?);
                    if r.remaining_bits() >= 12 && r.read_bits(11)? == SYNC_EXTENSION_PS {
                        has_ps = r.read_flag()?; // psPresentFlag
                    }
                }
            }
            22 => {
                has_sbr = r.read_flag()?;
                if has_sbr {
                    extension_sample_rate = Some(read_sampling_frequency(&mut r)?);
                }
                r.skip_bits(4)?; // extensionChannelConfiguration
            }
            _ => {}
        }
    }

    let channel_count = match (channels, pce_channel_count) {
        (0, Some(n)) => n,
        (7, _) | (12, _) | (14, _) => 8,
        (11, _) => 7,
        (13, _) => 24,
        (n, _) => n,
    };
    Ok(AudioSpecificConfig {
        object_type,
        sample_rate,
        channel_configuration: channels,
        samples_per_frame: if frame_length_flag { 960 } else { 1024 },
        core_object_type,
        extension_sample_rate,
        has_sbr,
        has_ps,
        channel_count,
    })
}

/// `GetAudioObjectType()` (§1.6.2.1): 5 bits, 31 escapes to 32 + 6 more bits.
fn read_object_type(r: &mut BitReader<'_>) -> Result<u8, MediaError> {
    let object_type = r.read_bits(5)? as u8;
    if object_type == 31 {
        Ok(32 + r.read_bits(6)? as u8)
    } else {
        Ok(object_type)
    }
}

/// samplingFrequencyIndex u4 and, for index 15, samplingFrequency u24 (§1.6.2.1, Table 1.18).
fn read_sampling_frequency(r: &mut BitReader<'_>) -> Result<u32, MediaError> {
    let index = r.read_bits(4)?;
    let hz = match index {
        15 => r.read_bits(24)?,
        i => *SAMPLING_FREQUENCIES_HZ
            .get(i as usize)
            .ok_or(MediaError::Invalid {
                what: WHAT_ASC,
                field: "samplingFrequencyIndex",
                value: u64::from(i),
            })?,
    };
    if hz == 0 {
        return Err(MediaError::Invalid {
            what: WHAT_ASC,
            field: "samplingFrequency",
            value: 0,
        });
    }
    Ok(hz)
}

/// `GASpecificConfig()` (ISO/IEC 14496-3 §4.4.1, Table 4.1). Returns frameLengthFlag and, when the
/// channel configuration is 0, the channel count of the program_config_element.
fn read_ga_specific_config(
    r: &mut BitReader<'_>,
    channel_configuration: u8,
    object_type: u8,
) -> Result<(bool, Option<u8>), MediaError> {
    let frame_length_flag = r.read_flag()?;
    if r.read_flag()? {
        r.skip_bits(14)?; // dependsOnCoreCoder → coreCoderDelay
    }
    let extension_flag = r.read_flag()?;
    let pce_channel_count = if channel_configuration == 0 {
        Some(read_program_config_element(r)?)
    } else {
        None
    };
    if object_type == 6 || object_type == 20 {
        r.skip_bits(3)?; // layerNr
    }
    if extension_flag {
        if object_type == 22 {
            r.skip_bits(5 + 11)?; // numOfSubFrame, layer_length
        }
        if matches!(object_type, 17 | 19 | 20 | 23) {
            r.skip_bits(3)?; // aacSection/Scalefactor/SpectralDataResilienceFlag
        }
        let _extension_flag3 = r.read_flag()?;
    }
    Ok((frame_length_flag, pce_channel_count))
}

/// `program_config_element()` (ISO/IEC 14496-3 §4.4.1.1, Table 4.2), returning its channel count
/// (front, side and back elements, a channel pair counting 2, plus LFE elements). The byte alignment
/// before the comment field is relative to the start of the AudioSpecificConfig, where the reader
/// started.
fn read_program_config_element(r: &mut BitReader<'_>) -> Result<u8, MediaError> {
    r.skip_bits(4 + 2 + 4)?; // element_instance_tag, object_type, sampling_frequency_index
    let num_front = r.read_bits(4)?;
    let num_side = r.read_bits(4)?;
    let num_back = r.read_bits(4)?;
    let num_lfe = r.read_bits(2)?;
    let num_assoc_data = r.read_bits(3)?;
    let num_valid_cc = r.read_bits(4)?;
    if r.read_flag()? {
        r.skip_bits(4)?; // mono_mixdown_element_number
    }
    if r.read_flag()? {
        r.skip_bits(4)?; // stereo_mixdown_element_number
    }
    if r.read_flag()? {
        r.skip_bits(3)?; // matrix_mixdown_idx, pseudo_surround_enable
    }
    let mut channels = num_lfe;
    for _ in 0..num_front + num_side + num_back {
        let is_cpe = r.read_flag()?;
        r.skip_bits(4)?; // element tag select
        channels += if is_cpe { 2 } else { 1 };
    }
    r.skip_bits(4 * (num_lfe + num_assoc_data) as usize)?; // lfe / assoc_data element tag selects
    r.skip_bits(5 * num_valid_cc as usize)?; // cc_element_is_ind_sw, valid_cc_element_tag_select
    r.byte_align()?;
    let comment_field_bytes = r.read_bits(8)?;
    r.skip_bits(8 * comment_field_bytes as usize)?;
    // At most 3 × 15 × 2 + 3 = 93 channels: fits in u8.
    Ok(channels as u8)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bits::BitWriter;
    use proptest::prelude::*;

    /// Both parsers, checked to agree on the shared fields.
    fn parse(bytes: &[u8]) -> Result<AudioSpecificConfig, MediaError> {
        let details = parse_audio_specific_config(bytes);
        let config = AacConfig::parse(Bytes::copy_from_slice(bytes));
        match (&details, config) {
            (Ok(d), Ok(c)) => {
                assert_eq!(&c.asc[..], bytes);
                assert_eq!(
                    (
                        c.object_type,
                        c.sample_rate,
                        c.channels,
                        c.samples_per_frame
                    ),
                    (
                        d.object_type,
                        d.sample_rate,
                        d.channel_configuration,
                        d.samples_per_frame
                    )
                );
            }
            (Err(e), Err(f)) => assert_eq!(e, &f),
            (d, c) => panic!("parsers disagree: {d:?} vs {c:?}"),
        }
        details
    }

    #[test]
    fn asc_lc_stereo_44k_with_zero_padding() {
        // /work/shared/media/bbb-720p-h264-aac-90s-excerpt.mp4: 00010 (LC) 0100 (44100) 0010 (stereo)
        // 000 (GASpecificConfig), then 14 zero bytes of padding from the muxer.
        let mut asc = vec![0x12, 0x10];
        asc.extend([0; 14]);
        let c = parse(&asc).unwrap();
        assert_eq!(
            (
                c.object_type,
                c.sample_rate,
                c.channel_configuration,
                c.samples_per_frame
            ),
            (2, 44100, 2, 1024)
        );
        assert_eq!(
            (c.has_sbr, c.has_ps, c.extension_sample_rate),
            (false, false, None)
        );
        assert_eq!(c.rfc6381(), "mp4a.40.2");
    }

    #[test]
    fn asc_lc_51_48k() {
        // /work/shared/media/bbb-720p-h264-aac51-5s.mp4: 00010 (LC) 0011 (48000) 0110 (5.1) 000.
        let c = parse(&[0x11, 0xb0]).unwrap();
        assert_eq!(
            (
                c.object_type,
                c.sample_rate,
                c.channel_configuration,
                c.channel_count
            ),
            (2, 48000, 6, 6)
        );
    }

    #[test]
    fn asc_lc_71_counts_eight_channels() {
        // FFmpeg `aac` encoder, `pan=7.1`, 44100 Hz: 00010 0100 0111 (config 7 = 7.1, 8 channels) 000.
        let c = parse(&[0x12, 0x38]).unwrap();
        assert_eq!((c.channel_configuration, c.channel_count), (7, 8));
    }

    #[test]
    fn asc_ffmpeg_sync_extension_without_sbr() {
        // camera-face-540p-hevc-aac-6s.mov: 12 10 (LC 44100 stereo) then 56 e5 00:
        // syncExtensionType 0x2b7 (01010110111), extensionAudioObjectType 00101 (SBR), sbrPresentFlag 0.
        let c = parse(&[0x12, 0x10, 0x56, 0xe5, 0x00]).unwrap();
        assert_eq!(
            (c.object_type, c.sample_rate, c.channel_configuration),
            (2, 44100, 2)
        );
        assert_eq!((c.has_sbr, c.extension_sample_rate), (false, None));
        // FFmpeg at 96 kHz mono: 00010 0000 (96000) 0001 (mono) 000, same extension.
        let c = parse(&[0x10, 0x08, 0x56, 0xe5, 0x00]).unwrap();
        assert_eq!((c.sample_rate, c.channel_configuration), (96000, 1));
    }

    #[test]
    fn asc_program_config_element_quad() {
        // FFmpeg `aac` encoder with `pan=quad` at 48 kHz writes channelConfiguration 0 and a PCE:
        // 00010 0011 0000 | GA 000 | PCE: tag 0000, object_type 01, sfi 0011, front 0001, side 0000,
        // back 0001, lfe 00, assoc 000, cc 0000, no mixdowns (000), front CPE tag 0 (1 0000),
        // back CPE tag 1 (1 0001), byte alignment, comment_field_bytes 13 "Lavc59.37.100",
        // then the sync extension 56 e5 00 (SBR signalled absent).
        let asc = [
            0x11, 0x80, 0x04, 0xc4, 0x04, 0x00, 0x21, 0x10, 0x0d, b'L', b'a', b'v', b'c', b'5',
            b'9', b'.', b'3', b'7', b'.', b'1', b'0', b'0', 0x56, 0xe5, 0x00,
        ];
        let c = parse(&asc).unwrap();
        assert_eq!(
            (c.sample_rate, c.channel_configuration, c.channel_count),
            (48000, 0, 4)
        );
        assert!(!c.has_sbr);
        // Cut inside the comment: the PCE is truncated.
        assert!(matches!(
            parse(&asc[..15]),
            Err(MediaError::Truncated { .. })
        ));
    }

    #[test]
    fn asc_he_aac_explicit_hierarchical() {
        // HE-AAC 48 kHz stereo as usually signalled in HLS: 00101 (SBR) 0110 (core 24000) 0010 (stereo)
        // 0011 (extension 48000) 00010 (core LC) 000 (GASpecificConfig) + 7 padding bits.
        let c = parse(&[0x2b, 0x11, 0x88, 0x00]).unwrap();
        assert_eq!((c.object_type, c.core_object_type), (5, 2));
        // The core rate is the timescale: 1024 core samples per frame at 24 kHz.
        assert_eq!(
            (c.sample_rate, c.extension_sample_rate, c.samples_per_frame),
            (24000, Some(48000), 1024)
        );
        assert_eq!(
            (c.has_sbr, c.has_ps, c.channel_configuration),
            (true, false, 2)
        );
        assert_eq!(c.rfc6381(), "mp4a.40.5");
        // HE-AAC v2: 11101 (PS) 0110 (24000) 0001 (mono core) 0011 (48000) 00010 (LC) 000.
        let c = parse(&[0xeb, 0x09, 0x88, 0x00]).unwrap();
        assert_eq!(
            (c.object_type, c.core_object_type, c.channel_configuration),
            (29, 2, 1)
        );
        assert_eq!(
            (c.has_sbr, c.has_ps, c.extension_sample_rate),
            (true, true, Some(48000))
        );
        assert_eq!(c.rfc6381(), "mp4a.40.29");
    }

    #[test]
    fn asc_backward_compatible_sbr_and_ps() {
        // LC 22050 Hz stereo, then sync extension 0x2b7, SBR, sbrPresentFlag 1, extension 44100,
        // sync extension 0x548, psPresentFlag 1.
        let mut w = BitWriter::default();
        w.bits(5, 2).bits(4, 7).bits(4, 2).bits(3, 0);
        w.bits(11, 0x2b7)
            .bits(5, 5)
            .flag(true)
            .bits(4, 4)
            .bits(11, 0x548)
            .flag(true);
        // 49 bits; the writer's stop bit and zero padding complete the seventh byte.
        let c = parse(&w.finish_ebsp()).unwrap();
        assert_eq!(
            (c.object_type, c.sample_rate, c.extension_sample_rate),
            (2, 22050, Some(44100))
        );
        assert_eq!((c.has_sbr, c.has_ps), (true, true));
        assert_eq!(c.rfc6381(), "mp4a.40.2");
    }

    #[test]
    fn asc_escape_explicit_frequency_and_960() {
        // audioObjectType 31 → 32 + 6 bits: 31 + 000000 = 32 (Layer-1): unsupported, not a panic.
        let mut w = BitWriter::default();
        w.bits(5, 31).bits(6, 0).bits(4, 3).bits(4, 2).bits(3, 0);
        assert!(matches!(
            parse(&w.finish_ebsp()),
            Err(MediaError::Invalid {
                field: "audioObjectType",
                value: 32,
                ..
            })
        ));
        // Index 15 with an explicit 24-bit frequency (8 kHz-ish 7999 Hz), frameLengthFlag 1 → 960.
        let mut w = BitWriter::default();
        w.bits(5, 2)
            .bits(4, 15)
            .bits(24, 7999)
            .bits(4, 1)
            .flag(true)
            .flag(false)
            .flag(false);
        let c = parse(&w.finish_ebsp()).unwrap();
        assert_eq!(
            (c.sample_rate, c.channel_configuration, c.samples_per_frame),
            (7999, 1, 960)
        );
        // Index 15 with the frequency missing, index 13 (reserved), explicit 0 Hz.
        assert!(matches!(
            parse(&[0x17, 0x80]),
            Err(MediaError::Truncated { .. })
        ));
        assert!(matches!(
            parse(&[0x16, 0x90]),
            Err(MediaError::Invalid {
                field: "samplingFrequencyIndex",
                value: 13,
                ..
            })
        ));
        assert!(matches!(
            parse(&[0x17, 0x80, 0x00, 0x00, 0x01, 0x00]),
            Err(MediaError::Invalid {
                field: "samplingFrequency",
                value: 0,
                ..
            })
        ));
        assert!(matches!(parse(&[0x12]), Err(MediaError::Truncated { .. })));
    }

    #[test]
    fn adts_header_from_ffmpeg() {
        // `ffmpeg -f lavfi -i sine=sample_rate=44100 -c:a aac -ac 2 -f adts`, first header:
        // fff (sync) 0 (MPEG-4) 00 (layer) 1 (no CRC) | 01 (LC) 0100 (44100) 0 (private) 010 (stereo)
        // 0 0 0 0 | aac_frame_length 345 | buffer fullness 0x7ff | 00 (one raw data block).
        let header = [0xff, 0xf1, 0x50, 0x80, 0x2b, 0x3f, 0xfc];
        let (c, header_len, frame_len) = AacConfig::from_adts_header(&header).unwrap();
        assert_eq!((header_len, frame_len), (7, 345));
        // Same config as the mp4 muxer's core ASC for this input.
        assert_eq!(&c.asc[..], &[0x12, 0x10]);
        assert_eq!(
            (
                c.object_type,
                c.sample_rate,
                c.channels,
                c.samples_per_frame
            ),
            (2, 44100, 2, 1024)
        );
        // With a CRC (protection_absent 0): 9-byte header, and those 9 bytes are required.
        let mut crc = [0xff, 0xf0, 0x50, 0x80, 0x2b, 0x3f, 0xfc, 0x12, 0x34];
        assert_eq!(AacConfig::from_adts_header(&crc).unwrap().1, 9);
        assert_eq!(
            AacConfig::from_adts_header(&crc[..8]),
            Err(MediaError::Truncated {
                what: "ADTS header",
                need: 9,
                have: 8
            })
        );
        crc[1] = 0xf3; // layer 01
        assert!(matches!(
            AacConfig::from_adts_header(&crc),
            Err(MediaError::Invalid { field: "layer", .. })
        ));
    }

    #[test]
    fn adts_header_rejections() {
        assert_eq!(
            AacConfig::from_adts_header(&[0xff, 0xf1, 0x50]),
            Err(MediaError::Truncated {
                what: "ADTS header",
                need: 7,
                have: 3
            })
        );
        let bad_sync = [0xff, 0xe1, 0x50, 0x80, 0x2b, 0x3f, 0xfc];
        assert!(matches!(
            AacConfig::from_adts_header(&bad_sync),
            Err(MediaError::Invalid {
                field: "syncword",
                ..
            })
        ));
        // FFmpeg with `pan=quad`: channel_configuration 0 (PCE inside the raw data) is unsupported.
        let quad = [0xff, 0xf1, 0x50, 0x00, 0x4e, 0x3f, 0xfc];
        assert!(matches!(
            AacConfig::from_adts_header(&quad),
            Err(MediaError::Invalid {
                field: "channel_configuration",
                value: 0,
                ..
            })
        ));
        // Frame length 6 < 7-byte header.
        let short = [0xff, 0xf1, 0x50, 0x80, 0x00, 0xdf, 0xfc];
        assert!(matches!(
            AacConfig::from_adts_header(&short),
            Err(MediaError::Invalid {
                field: "aac_frame_length",
                value: 6,
                ..
            })
        ));
        // Two raw data blocks.
        let multi = [0xff, 0xf1, 0x50, 0x80, 0x2b, 0x3f, 0xfd];
        assert!(matches!(
            AacConfig::from_adts_header(&multi),
            Err(MediaError::Invalid {
                field: "number_of_raw_data_blocks_in_frame",
                value: 1,
                ..
            })
        ));
        // Sampling frequency index 13.
        let reserved = [0xff, 0xf1, 0x74, 0x80, 0x2b, 0x3f, 0xfc];
        assert!(matches!(
            AacConfig::from_adts_header(&reserved),
            Err(MediaError::Invalid {
                field: "sampling_frequency_index",
                value: 13,
                ..
            })
        ));
    }

    proptest! {
        #[test]
        fn parsers_never_panic_on_random_bytes(data in proptest::collection::vec(any::<u8>(), 0..64)) {
            if let Ok(c) = AacConfig::parse(Bytes::from(data.clone())) {
                prop_assert!(c.sample_rate > 0);
                prop_assert!(c.samples_per_frame == 1024 || c.samples_per_frame == 960);
            }
            if let Ok((c, header_len, frame_len)) = AacConfig::from_adts_header(&data) {
                prop_assert!(header_len == 7 || header_len == 9);
                prop_assert!(frame_len >= header_len && data.len() >= header_len);
                prop_assert_eq!(c.asc.len(), 2);
            }
        }

        #[test]
        fn adts_round_trips_to_asc(profile in 0u8..4, sfi in 0u8..13, channels in 1u8..8, frame_len in 7u16..8192) {
            let header = [
                0xff,
                0xf1,
                (profile << 6) | (sfi << 2) | (channels >> 2),
                ((channels & 3) << 6) | (frame_len >> 11) as u8,
                (frame_len >> 3) as u8,
                ((frame_len & 7) as u8) << 5 | 0x1f,
                0xfc,
            ];
            let (c, header_len, parsed_len) = AacConfig::from_adts_header(&header).unwrap();
            prop_assert_eq!((header_len, parsed_len), (7, usize::from(frame_len)));
            prop_assert_eq!(c.object_type, profile + 1);
            prop_assert_eq!(c.sample_rate, SAMPLING_FREQUENCIES_HZ[usize::from(sfi)]);
            prop_assert_eq!(c.channels, channels);
        }
    }
}
