//! H.264 / AVC: the `avcC` decoder configuration record and the SPS fields Estuary needs.

use bytes::Bytes;

use crate::{MediaError, VideoParams};

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
    pub fn parse(record: Bytes) -> Result<Self, MediaError> {
        let _ = record;
        Err(MediaError::Missing { what: "avcC", field: "parser" })
    }

    /// RFC 6381 codec string: `avc1.PPCCLL` (hex of profile_idc, constraint flags, level_idc).
    pub fn rfc6381(&self) -> String {
        format!("avc1.{:02x}{:02x}{:02x}", self.profile_idc, self.constraint_flags, self.level_idc)
    }
}
