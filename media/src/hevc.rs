//! H.265 / HEVC: the `hvcC` decoder configuration record and the SPS fields Estuary needs.

use bytes::Bytes;

use crate::{MediaError, VideoParams};

/// A parsed `HEVCDecoderConfigurationRecord` (ISO/IEC 14496-15 §8.3.3.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HevcConfig {
    /// The record's bytes as received (the body of an `hvcC` box).
    pub record: Bytes,
    /// general_profile_space (0..=3).
    pub general_profile_space: u8,
    /// general_tier_flag.
    pub general_tier_flag: bool,
    /// general_profile_idc.
    pub general_profile_idc: u8,
    /// general_profile_compatibility_flags (32 bits, bit 31 = flag 0).
    pub general_profile_compatibility_flags: u32,
    /// general_constraint_indicator_flags (48 bits, in the low bits).
    pub general_constraint_indicator_flags: u64,
    /// general_level_idc.
    pub general_level_idc: u8,
    /// NAL unit length field size in bytes (1, 2 or 4).
    pub nal_length_size: u8,
    /// Video parameter sets (NAL units without start codes or length prefixes).
    pub vps: Vec<Bytes>,
    /// Sequence parameter sets.
    pub sps: Vec<Bytes>,
    /// Picture parameter sets.
    pub pps: Vec<Bytes>,
    /// Picture size and frame rate from the first SPS.
    pub params: VideoParams,
}

impl HevcConfig {
    /// Parse an hvcC record. Errors: truncated record, no SPS, or an SPS that cannot be parsed
    /// (ITU-T H.265 §7.3.2.2).
    pub fn parse(record: Bytes) -> Result<Self, MediaError> {
        let _ = record;
        Err(MediaError::Missing { what: "hvcC", field: "parser" })
    }

    /// RFC 6381 codec string per ISO/IEC 14496-15 Annex E, e.g. `hvc1.1.6.L93.B0`.
    pub fn rfc6381(&self) -> String {
        String::new()
    }
}
