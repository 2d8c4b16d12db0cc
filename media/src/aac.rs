//! AAC: the AudioSpecificConfig.

use bytes::Bytes;

use crate::MediaError;

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
    pub fn parse(asc: Bytes) -> Result<Self, MediaError> {
        let _ = asc;
        Err(MediaError::Missing { what: "AudioSpecificConfig", field: "parser" })
    }

    /// RFC 6381 codec string: `mp4a.40.{object_type}`.
    pub fn rfc6381(&self) -> String {
        format!("mp4a.40.{}", self.object_type)
    }
}
