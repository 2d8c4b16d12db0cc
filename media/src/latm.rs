//! MPEG-4 audio in LOAS/LATM (ISO/IEC 14496-3 §1.7): the AudioSyncStream framing MPEG-TS uses for
//! stream_type 0x11 (§1.7.2: syncword 0x2B7 u11, audioMuxLengthBytes u13, then one AudioMuxElement with
//! muxConfigPresent = 1), and the first AudioSpecificConfig of a StreamMuxConfig (§1.7.3), which gives the
//! track's sample rate, channels and frame length.
//!
//! The frames are decoded downstream (FFmpeg's `aac_latm` decoder takes them whole, sync layer included);
//! the payload is not unpacked here.

use crate::MediaError;
use crate::aac::SAMPLING_FREQUENCIES_HZ;
use crate::bits::BitReader;
use crate::decodable::AudioFormat;

const WHAT: &str = "LOAS AudioSyncStream";

/// What a StreamMuxConfig says about its first program and layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LatmConfig {
    /// The core AAC sampling frequency and the channelConfiguration.
    pub format: AudioFormat,
    /// Samples per frame: 1024, or 960 with frameLengthFlag.
    pub samples_per_frame: u32,
}

/// One AudioSyncStream frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoasFrame {
    /// The whole frame, the 3-byte sync header included.
    pub frame_bytes: usize,
    /// The configuration, when the frame carries a StreamMuxConfig (useSameStreamMux = 0).
    pub config: Option<LatmConfig>,
}

/// True if `data` starts with the LOAS syncword 0x2B7 (a lone final 0x56 may be the start of one).
pub fn is_loas_sync(data: &[u8]) -> bool {
    match data {
        [0x56] => true,
        [0x56, b1, ..] => b1 & 0xE0 == 0xE0,
        _ => false,
    }
}

impl LoasFrame {
    /// Parse the frame at the start of `data` (all of it must be there, for the StreamMuxConfig).
    ///
    /// Errors: [`MediaError::Truncated`] when the frame is not complete; [`MediaError::Invalid`] for a
    /// bad syncword, or a StreamMuxConfig with audioMuxVersionA = 1 (reserved) or an AudioSpecificConfig
    /// it cannot read (sampling frequency index 13–14, channel configuration 0: a PCE).
    pub fn parse(data: &[u8]) -> Result<Self, MediaError> {
        if data.len() < 3 {
            return Err(MediaError::Truncated {
                what: WHAT,
                need: 3,
                have: data.len(),
            });
        }
        let sync = u32::from(data[0]) << 3 | u32::from(data[1]) >> 5;
        if sync != 0x2B7 {
            return Err(invalid("syncword", sync));
        }
        let frame_bytes = 3 + (usize::from(data[1] & 0x1F) << 8 | usize::from(data[2]));
        let element = data.get(3..frame_bytes).ok_or(MediaError::Truncated {
            what: WHAT,
            need: frame_bytes,
            have: data.len(),
        })?;
        let mut r = BitReader::new(element, "AudioMuxElement");
        let use_same_stream_mux = r.read_flag()?;
        let config = if use_same_stream_mux {
            None
        } else {
            Some(stream_mux_config(&mut r)?)
        };
        Ok(Self {
            frame_bytes,
            config,
        })
    }
}

fn invalid(field: &'static str, value: u32) -> MediaError {
    MediaError::Invalid {
        what: WHAT,
        field,
        value: u64::from(value),
    }
}

/// LatmGetValue (§1.7.3): bytesForValue u2, then (bytesForValue + 1) bytes.
fn latm_value(r: &mut BitReader<'_>) -> Result<u32, MediaError> {
    let bytes = r.read_bits(2)? + 1;
    r.read_bits(8 * bytes)
}

/// StreamMuxConfig (§1.7.3, Table 1.42) up to its first AudioSpecificConfig: audioMuxVersion u1,
/// audioMuxVersionA u1 (if audioMuxVersion), taraBufferFullness (if audioMuxVersion),
/// allStreamsSameTimeFraming u1, numSubFrames u6, numProgram u4, numLayer u3, AudioSpecificConfig.
fn stream_mux_config(r: &mut BitReader<'_>) -> Result<LatmConfig, MediaError> {
    let audio_mux_version = r.read_bits(1)?;
    if audio_mux_version == 1 {
        if r.read_flag()? {
            return Err(invalid("audioMuxVersionA", 1));
        }
        latm_value(r)?; // taraBufferFullness
    }
    let _all_streams_same_time_framing = r.read_bits(1)?;
    let _num_sub_frames = r.read_bits(6)?;
    let _num_program = r.read_bits(4)?;
    let _num_layer = r.read_bits(3)?;
    if audio_mux_version == 1 {
        latm_value(r)?; // ascLen
    }
    audio_specific_config(r)
}

/// The fields of an AudioSpecificConfig (§1.6.2.1) the track needs: audioObjectType u5 (31: 32 + u6),
/// samplingFrequencyIndex u4 (15: a u24 frequency), channelConfiguration u4; for SBR/PS (object types 5
/// and 29) extensionSamplingFrequencyIndex and the core audioObjectType; for the general audio object
/// types, GASpecificConfig's frameLengthFlag u1 (960 samples instead of 1024).
fn audio_specific_config(r: &mut BitReader<'_>) -> Result<LatmConfig, MediaError> {
    let object_type = |r: &mut BitReader<'_>| -> Result<u32, MediaError> {
        let t = r.read_bits(5)?;
        Ok(if t == 31 { 32 + r.read_bits(6)? } else { t })
    };
    let frequency = |r: &mut BitReader<'_>| -> Result<u32, MediaError> {
        match r.read_bits(4)? {
            15 => r.read_bits(24),
            i => SAMPLING_FREQUENCIES_HZ
                .get(i as usize)
                .copied()
                .ok_or(invalid("samplingFrequencyIndex", i)),
        }
    };
    let mut object = object_type(r)?;
    let sample_rate_hz = frequency(r)?;
    let channel_configuration = r.read_bits(4)?;
    if object == 5 || object == 29 {
        frequency(r)?; // extensionSamplingFrequency (the SBR output rate)
        object = object_type(r)?;
    }
    let is_general_audio = matches!(object, 1..=4 | 6 | 7 | 17 | 19..=23);
    let samples_per_frame = if is_general_audio && r.read_flag()? {
        960
    } else {
        1024
    };
    if channel_configuration == 0 || channel_configuration > 7 || sample_rate_hz == 0 {
        return Err(invalid("channelConfiguration", channel_configuration));
    }
    // channelConfiguration 7 is 7.1 (8 channels); 1..=6 are that many channels (6 = 5.1).
    let channels = if channel_configuration == 7 {
        8
    } else {
        channel_configuration as u8
    };
    Ok(LatmConfig {
        format: AudioFormat {
            sample_rate_hz,
            channels,
        },
        samples_per_frame,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loas_frame_with_stream_mux_config() {
        // The first frame of FFmpeg's LATM muxer (`-c:a aac -f latm`, AAC-LC 48 kHz stereo), its first
        // 19 bytes, padded to its length:
        #[rustfmt::skip]
        let mut frame = vec![
            0x56, 0xE1, 0x28, // syncword 0x2B7, audioMuxLengthBytes 0x128 (296 bytes follow)
            0x20,             // useSameStreamMux 0, audioMuxVersion 0, allStreamsSameTimeFraming 1,
                              // numSubFrames 00000 (…
            0x00,             // …0), numProgram 0000, numLayer 000
            0x11, 0x90,       // AudioSpecificConfig: AAC-LC (00010), 48 kHz (0011), stereo (0010), 000
            0x1F, 0xE7, 0xF9, 0x0E, 0xF0, 0x10, 0x02, 0x63, 0x0B, 0xB3, 0x19, 0xA9,
        ];
        frame.resize(299, 0x11);
        let parsed = LoasFrame::parse(&frame).unwrap();
        assert_eq!(
            parsed,
            LoasFrame {
                frame_bytes: 299,
                config: Some(LatmConfig {
                    format: AudioFormat {
                        sample_rate_hz: 48_000,
                        channels: 2
                    },
                    samples_per_frame: 1024,
                }),
            }
        );
        // useSameStreamMux 1: no configuration.
        let same = [0x56, 0xE0, 0x02, 0x80, 0x00];
        assert_eq!(LoasFrame::parse(&same).unwrap().config, None);
        assert!(matches!(
            LoasFrame::parse(&frame[..10]),
            Err(MediaError::Truncated { need: 299, .. })
        ));
        assert!(LoasFrame::parse(&[0x57, 0xE0, 0x00]).is_err());
        assert!(
            is_loas_sync(&[0x56]) && is_loas_sync(&[0x56, 0xE3]) && !is_loas_sync(&[0x56, 0x00])
        );
    }
}
