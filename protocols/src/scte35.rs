//! SCTE-35 splice information (ANSI/SCTE 35 2022): the `splice_info_section` (§9.6) that ad markers
//! travel in — in MPEG-TS on a PID of stream type 0x86, in RTMP data messages, or made by the API —
//! with the commands a live origin acts on (`splice_insert` §9.7.3, `time_signal` §9.7.4) and the
//! `segmentation_descriptor` (§10.3.3) that qualifies a `time_signal`.
//!
//! Sans-IO: [`SpliceInfo::parse`] takes one complete section and checks its CRC; the section's bytes
//! are kept whole, since HLS (`SCTE35-OUT`/`-IN`/`-CMD`, RFC 8216bis §4.4.5.1.4) and DASH
//! (`urn:scte:scte35:2014:xml+bin`) carry them unchanged.

use bytes::Bytes;
use media::{BitReader, MediaError};

/// `table_id` of a splice_info_section (§9.6.1).
pub const TABLE_ID: u8 = 0xFC;
/// MPEG-TS stream type of SCTE-35 sections in a PMT (SCTE 35 §8.1).
pub const STREAM_TYPE: u8 = 0x86;
/// The most bytes a section can have: a 12-bit `section_length` plus the 3 bytes before it.
pub const MAX_SECTION_BYTES: usize = 4096 + 3;
/// PTS values wrap at 2^33 ticks of 90 kHz (ISO/IEC 13818-1 §2.4.3.7).
const PTS_WRAP: u64 = 1 << 33;

/// Why a section is not read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Scte35Error {
    /// Not a splice_info_section.
    #[error("table_id 0x{0:02x} is not a splice_info_section (0xfc)")]
    NotSpliceInfo(u8),
    /// The section's length does not match its bytes.
    #[error("section_length {declared} does not match the {have} bytes given")]
    BadLength {
        /// `section_length` + 3.
        declared: usize,
        /// Bytes given.
        have: usize,
    },
    /// The CRC_32 over the section does not check (§9.6.1, ISO/IEC 13818-1 Annex A).
    #[error("CRC_32 mismatch")]
    Crc,
    /// An encrypted section (`encrypted_packet` = 1): its command cannot be read without the key.
    #[error("encrypted splice_info_section (algorithm {0})")]
    Encrypted(u8),
    /// A field that does not parse.
    #[error(transparent)]
    Field(#[from] MediaError),
}

/// A splice_info_section, read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpliceInfo {
    /// The whole section, CRC included, as received.
    pub section: Bytes,
    /// `pts_adjustment` (§9.6.1): added (mod 2^33) to every time in the command, 90 kHz ticks.
    pub pts_adjustment_90khz: u64,
    /// `tier` (§9.6.1), 12 bits: 0xFFF when unused.
    pub tier: u16,
    /// The command.
    pub command: SpliceCommand,
    /// The segmentation descriptors (§10.3.3); other descriptors are skipped.
    pub segmentation: Vec<SegmentationDescriptor>,
}

/// A splice command (§9.7).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SpliceCommand {
    /// `splice_null` (0x00): a heartbeat.
    Null,
    /// `splice_schedule` (0x04): splices at wall-clock times (not acted on live).
    Schedule,
    /// `splice_insert` (0x05).
    Insert(SpliceInsert),
    /// `time_signal` (0x06): a time, qualified by its segmentation descriptors.
    TimeSignal {
        /// `pts_time` of its splice_time() (without `pts_adjustment`), when specified.
        pts_90khz: Option<u64>,
    },
    /// `bandwidth_reservation` (0x07).
    BandwidthReservation,
    /// `private_command` (0xFF) with its `identifier`.
    Private(u32),
    /// A command type this version does not define.
    Other(u8),
}

/// A `splice_insert` (§9.7.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpliceInsert {
    /// `splice_event_id`.
    pub event_id: u32,
    /// `splice_event_cancel_indicator`: an earlier insert with this id is cancelled.
    pub cancel: bool,
    /// `out_of_network_indicator`: true leaves the network feed (a break starts), false returns.
    pub out_of_network: bool,
    /// `splice_immediate_flag`: splice at the next opportunity, no time given.
    pub immediate: bool,
    /// The program splice time (`pts_time`, without `pts_adjustment`), when given.
    pub pts_90khz: Option<u64>,
    /// `break_duration`, 90 kHz ticks, when given.
    pub duration_90khz: Option<u64>,
    /// `auto_return` of the break_duration: the splice back in happens by itself.
    pub auto_return: bool,
    /// `unique_program_id`, `avail_num`, `avails_expected`.
    pub unique_program_id: u16,
    /// See `unique_program_id`.
    pub avail_num: u8,
    /// See `unique_program_id`.
    pub avails_expected: u8,
}

/// A `segmentation_descriptor` (§10.3.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentationDescriptor {
    /// `segmentation_event_id`.
    pub event_id: u32,
    /// `segmentation_event_cancel_indicator`.
    pub cancel: bool,
    /// `segmentation_type_id` (Table 23), e.g. 0x34 provider placement opportunity start.
    pub type_id: u8,
    /// `segmentation_duration`, 90 kHz ticks, when given.
    pub duration_90khz: Option<u64>,
    /// `segmentation_upid_type` and the UPID's bytes.
    pub upid_type: u8,
    /// See `upid_type`.
    pub upid: Vec<u8>,
    /// `segment_num`, `segments_expected`.
    pub segment_num: u8,
    /// See `segment_num`.
    pub segments_expected: u8,
}

/// Which way a splice goes, as HLS names it (RFC 8216bis §4.4.5.1.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpliceDirection {
    /// Out of the network feed: an ad break starts (`SCTE35-OUT`).
    Out,
    /// Back into it: the break ends (`SCTE35-IN`).
    In,
    /// Anything else (`SCTE35-CMD`).
    Cmd,
}

/// Segmentation types that start an avail (Table 23): breaks, advertisements, placement
/// opportunities, overlays, promotions, ad blocks. The matching end is the type plus one.
const START_TYPES: [u8; 11] = [
    0x22, 0x30, 0x32, 0x34, 0x36, 0x38, 0x3A, 0x3C, 0x3E, 0x44, 0x46,
];

impl SegmentationDescriptor {
    /// Out for an avail's start, In for its end, Cmd for the other types.
    pub fn direction(&self) -> SpliceDirection {
        if START_TYPES.contains(&self.type_id) {
            SpliceDirection::Out
        } else if self.type_id > 0 && START_TYPES.contains(&(self.type_id - 1)) {
            SpliceDirection::In
        } else {
            SpliceDirection::Cmd
        }
    }
}

/// `splice_time()` (§9.8.1): the time when `time_specified_flag` is set.
fn splice_time(r: &mut BitReader<'_>) -> Result<Option<u64>, MediaError> {
    if r.read_flag()? {
        r.skip_bits(6)?;
        Ok(Some(r.read_bits_u64(33)?))
    } else {
        r.skip_bits(7)?;
        Ok(None)
    }
}

fn splice_insert(r: &mut BitReader<'_>) -> Result<SpliceInsert, MediaError> {
    let mut insert = SpliceInsert {
        event_id: r.read_bits(32)?,
        cancel: r.read_flag()?,
        out_of_network: false,
        immediate: false,
        pts_90khz: None,
        duration_90khz: None,
        auto_return: false,
        unique_program_id: 0,
        avail_num: 0,
        avails_expected: 0,
    };
    r.skip_bits(7)?;
    if insert.cancel {
        return Ok(insert);
    }
    insert.out_of_network = r.read_flag()?;
    let program_splice = r.read_flag()?;
    let has_duration = r.read_flag()?;
    insert.immediate = r.read_flag()?;
    // event_id_compliance_flag and reserved bits.
    r.skip_bits(4)?;
    if program_splice && !insert.immediate {
        insert.pts_90khz = splice_time(r)?;
    }
    if !program_splice {
        let components = r.read_u8()?;
        for _ in 0..components {
            let _tag = r.read_u8()?;
            if !insert.immediate {
                // Component splices: the first component's time stands for the program.
                let t = splice_time(r)?;
                insert.pts_90khz = insert.pts_90khz.or(t);
            }
        }
    }
    if has_duration {
        insert.auto_return = r.read_flag()?;
        r.skip_bits(6)?;
        insert.duration_90khz = Some(r.read_bits_u64(33)?);
    }
    insert.unique_program_id = r.read_bits(16)? as u16;
    insert.avail_num = r.read_u8()?;
    insert.avails_expected = r.read_u8()?;
    Ok(insert)
}

fn segmentation_descriptor(body: &[u8]) -> Result<Option<SegmentationDescriptor>, MediaError> {
    let mut r = BitReader::new(body, "segmentation_descriptor");
    // identifier: "CUEI".
    if r.read_bits(32)? != 0x4355_4549 {
        return Ok(None);
    }
    let event_id = r.read_bits(32)?;
    let cancel = r.read_flag()?;
    r.skip_bits(7)?;
    let mut d = SegmentationDescriptor {
        event_id,
        cancel,
        type_id: 0,
        duration_90khz: None,
        upid_type: 0,
        upid: Vec::new(),
        segment_num: 0,
        segments_expected: 0,
    };
    if cancel {
        return Ok(Some(d));
    }
    let program_segmentation = r.read_flag()?;
    let has_duration = r.read_flag()?;
    let delivery_not_restricted = r.read_flag()?;
    if delivery_not_restricted {
        r.skip_bits(5)?;
    } else {
        // web_delivery_allowed, no_regional_blackout, archive_allowed, device_restrictions (2).
        r.skip_bits(5)?;
    }
    if !program_segmentation {
        let components = r.read_u8()?;
        r.skip_bits(usize::from(components) * 48)?;
    }
    if has_duration {
        d.duration_90khz = Some(r.read_bits_u64(40)?);
    }
    d.upid_type = r.read_u8()?;
    let upid_len = r.read_u8()?;
    for _ in 0..upid_len {
        d.upid.push(r.read_u8()?);
    }
    d.type_id = r.read_u8()?;
    d.segment_num = r.read_u8()?;
    d.segments_expected = r.read_u8()?;
    Ok(Some(d))
}

impl SpliceInfo {
    /// Read one complete splice_info_section (from `table_id` to `CRC_32`).
    ///
    /// Errors: [`Scte35Error`] — not a section, a length that does not match, a CRC that does not
    /// check, an encrypted section, a field cut short.
    pub fn parse(section: &[u8]) -> Result<Self, Scte35Error> {
        let table_id = *section.first().ok_or(MediaError::Truncated {
            what: "splice_info_section",
            need: 1,
            have: 0,
        })?;
        if table_id != TABLE_ID {
            return Err(Scte35Error::NotSpliceInfo(table_id));
        }
        if section.len() < 3 {
            return Err(MediaError::Truncated {
                what: "splice_info_section",
                need: 3,
                have: section.len(),
            }
            .into());
        }
        let declared = (usize::from(section[1] & 0x0F) << 8 | usize::from(section[2])) + 3;
        if declared != section.len() || declared < 3 + 11 + 4 {
            return Err(Scte35Error::BadLength {
                declared,
                have: section.len(),
            });
        }
        if crate::ts::crc32_mpeg2(section) != 0 {
            return Err(Scte35Error::Crc);
        }
        let mut r = BitReader::new(&section[3..section.len() - 4], "splice_info_section");
        let _protocol_version = r.read_u8()?;
        let encrypted = r.read_flag()?;
        let algorithm = r.read_bits(6)? as u8;
        if encrypted {
            return Err(Scte35Error::Encrypted(algorithm));
        }
        let pts_adjustment_90khz = r.read_bits_u64(33)?;
        let _cw_index = r.read_u8()?;
        let tier = r.read_bits(12)? as u16;
        let command_length = r.read_bits(12)? as usize;
        let command_type = r.read_u8()?;
        let start = r.position_bits();
        let command = match command_type {
            0x00 => SpliceCommand::Null,
            0x04 => SpliceCommand::Schedule,
            0x05 => SpliceCommand::Insert(splice_insert(&mut r)?),
            0x06 => SpliceCommand::TimeSignal {
                pts_90khz: splice_time(&mut r)?,
            },
            0x07 => SpliceCommand::BandwidthReservation,
            0xFF => SpliceCommand::Private(r.read_bits(32)?),
            other => SpliceCommand::Other(other),
        };
        // The command's declared length wins (0xFFF: legacy "unknown", then what was read).
        if command_length != 0xFFF {
            let read = (r.position_bits() - start) / 8;
            r.skip_bits(command_length.saturating_sub(read) * 8)?;
        } else if matches!(command, SpliceCommand::Schedule | SpliceCommand::Other(_)) {
            return Err(MediaError::Invalid {
                what: "splice_info_section",
                field: "splice_command_length",
                value: 0xFFF,
            }
            .into());
        }
        let mut segmentation = Vec::new();
        let loop_len = r.read_bits(16)? as usize;
        let mut left = loop_len;
        while left >= 2 {
            let tag = r.read_u8()?;
            let len = usize::from(r.read_u8()?);
            left = left.saturating_sub(2 + len);
            let pos = r.position_bits() / 8 + 3;
            let body = section.get(pos..pos + len).ok_or(MediaError::Truncated {
                what: "splice_descriptor",
                need: pos + len,
                have: section.len(),
            })?;
            r.skip_bits(len * 8)?;
            if tag == 0x02
                && let Some(d) = segmentation_descriptor(body)?
            {
                segmentation.push(d);
            }
        }
        Ok(Self {
            section: Bytes::copy_from_slice(section),
            pts_adjustment_90khz,
            tier,
            command,
            segmentation,
        })
    }

    /// When the splice happens, 90 kHz ticks on the timeline of the stream's PTS (the command's
    /// time plus `pts_adjustment`, mod 2^33), or `None` for "now" (an immediate splice, a
    /// time_signal without a time, other commands).
    pub fn splice_pts_90khz(&self) -> Option<u64> {
        let t = match &self.command {
            SpliceCommand::Insert(i) if !i.cancel => i.pts_90khz?,
            SpliceCommand::TimeSignal { pts_90khz } => (*pts_90khz)?,
            _ => return None,
        };
        Some((t + self.pts_adjustment_90khz) % PTS_WRAP)
    }

    /// Which way it splices: a splice_insert by its `out_of_network_indicator`, a time_signal by its
    /// first segmentation descriptor's type; anything else (a cancel, a heartbeat) is a command.
    pub fn direction(&self) -> SpliceDirection {
        match &self.command {
            SpliceCommand::Insert(i) if !i.cancel => {
                if i.out_of_network {
                    SpliceDirection::Out
                } else {
                    SpliceDirection::In
                }
            }
            SpliceCommand::TimeSignal { .. } => self
                .segmentation
                .iter()
                .find(|d| !d.cancel)
                .map_or(SpliceDirection::Cmd, SegmentationDescriptor::direction),
            _ => SpliceDirection::Cmd,
        }
    }

    /// How long the break lasts, 90 kHz ticks, when the section says: a splice_insert's
    /// break_duration, else the first segmentation descriptor's duration.
    pub fn duration_90khz(&self) -> Option<u64> {
        match &self.command {
            SpliceCommand::Insert(i) if i.duration_90khz.is_some() => i.duration_90khz,
            _ => self.segmentation.iter().find_map(|d| d.duration_90khz),
        }
    }

    /// True for a command that marks a splice point (an insert that is not a cancel, a time_signal
    /// with a start or end type): the origin cuts a segment there.
    pub fn is_splice_point(&self) -> bool {
        match &self.command {
            SpliceCommand::Insert(i) => !i.cancel,
            SpliceCommand::TimeSignal { .. } => self.direction() != SpliceDirection::Cmd,
            _ => false,
        }
    }
}

/// Write a splice_info_section holding a `splice_insert` (§9.7.3): event `event_id`, out of the
/// network (`out` = true) or back in, at `pts_90khz` (or immediate when `None`), lasting
/// `duration_90khz` with auto return when given; protocol version 0, no encryption, tier 0xFFF, no
/// descriptors; the CRC_32 computed. For ad breaks asked through the API.
pub fn write_splice_insert(
    event_id: u32,
    out: bool,
    pts_90khz: Option<u64>,
    duration_90khz: Option<u64>,
) -> Bytes {
    let mut cmd = Vec::with_capacity(20);
    cmd.extend_from_slice(&event_id.to_be_bytes());
    cmd.push(0x7F); // not cancelled, reserved bits set
    let flags = (u8::from(out) << 7)
        | (1 << 6) // program_splice_flag
        | (u8::from(duration_90khz.is_some()) << 5)
        | (u8::from(pts_90khz.is_none()) << 4)
        | 0x0F; // event_id_compliance_flag and reserved
    cmd.push(flags);
    if let Some(t) = pts_90khz {
        let t = t % PTS_WRAP;
        // time_specified_flag, 6 reserved bits, 33-bit pts_time.
        cmd.push(0xFE | (t >> 32) as u8);
        cmd.extend_from_slice(&(t as u32).to_be_bytes());
    }
    if let Some(d) = duration_90khz {
        let d = d % PTS_WRAP;
        // auto_return, 6 reserved bits, 33-bit duration.
        cmd.push(0xFE | (d >> 32) as u8);
        cmd.extend_from_slice(&(d as u32).to_be_bytes());
    }
    cmd.extend_from_slice(&[0, 0, 0, 0]); // unique_program_id, avail_num, avails_expected
    let mut s = Vec::with_capacity(32 + cmd.len());
    s.push(TABLE_ID);
    s.extend_from_slice(&[0, 0]); // section_syntax_indicator 0, private 0, sap_type 3 and the length below
    s.push(0); // protocol_version
    s.extend_from_slice(&[0, 0, 0, 0, 0]); // not encrypted, algorithm 0, pts_adjustment 0
    s.push(0); // cw_index
    let command_length = cmd.len() as u16;
    // tier 0xFFF, splice_command_length (12 bits).
    s.push(0xFF);
    s.push(0xF0 | (command_length >> 8) as u8);
    s.push(command_length as u8);
    s.push(0x05);
    s.extend_from_slice(&cmd);
    s.extend_from_slice(&[0, 0]); // descriptor_loop_length
    let section_length = (s.len() - 3 + 4) as u16;
    // section_syntax_indicator 0, private_indicator 0, sap_type 3 (unspecified), section_length.
    s[1] = 0x30 | (section_length >> 8) as u8;
    s[2] = section_length as u8;
    let crc = crate::ts::crc32_mpeg2(&s);
    s.extend_from_slice(&crc.to_be_bytes());
    Bytes::from(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base64(s: &str) -> Vec<u8> {
        // A small decoder for the test vectors (standard alphabet, padded).
        let value = |c: u8| match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => panic!("not base64: {c}"),
        };
        let bytes: Vec<u8> = s.bytes().filter(|c| *c != b'=').collect();
        let mut out = Vec::new();
        for chunk in bytes.chunks(4) {
            let mut n = 0u32;
            for (i, c) in chunk.iter().enumerate() {
                n |= u32::from(value(*c)) << (18 - 6 * i);
            }
            out.extend_from_slice(&n.to_be_bytes()[1..chunk.len()]);
        }
        out
    }

    /// SCTE 35 2022 §14.2: a splice_insert out of network with a 60 s break (auto return).
    #[test]
    fn the_specification_s_splice_insert_sample_reads() {
        let section =
            base64("/DAvAAAAAAAA///wFAVIAACPf+/+c2nALv4AUsz1AAAAAAAKAAhDVUVJAAABNWLbowo=");
        let info = SpliceInfo::parse(&section).unwrap();
        let SpliceCommand::Insert(insert) = &info.command else {
            panic!("{info:?}")
        };
        assert_eq!(insert.event_id, 0x4800_008F);
        assert!(insert.out_of_network && !insert.cancel && !insert.immediate);
        assert_eq!(insert.pts_90khz, Some(0x0_7369_C02E));
        assert_eq!(insert.duration_90khz, Some(0x0052_CCF5));
        assert!(insert.auto_return);
        assert_eq!(info.direction(), SpliceDirection::Out);
        assert_eq!(info.splice_pts_90khz(), Some(0x0_7369_C02E));
        assert!(info.is_splice_point());
    }

    /// SCTE 35 2022 §14.1: a time_signal with a placement opportunity start.
    #[test]
    fn the_specification_s_time_signal_sample_reads() {
        let section =
            base64("/DA0AAAAAAAA///wBQb+cr0AUAAeAhxDVUVJSAAAjn/PAAGlmbAICAAAAAAsoKGKNAIAmsnRfg==");
        let info = SpliceInfo::parse(&section).unwrap();
        assert_eq!(
            info.command,
            SpliceCommand::TimeSignal {
                pts_90khz: Some(0x0_72BD_0050)
            }
        );
        let d = &info.segmentation[0];
        assert_eq!(d.type_id, 0x34);
        assert_eq!(d.duration_90khz, Some(0x0000_01A5_99B0));
        assert_eq!(d.upid_type, 0x08);
        assert_eq!(info.direction(), SpliceDirection::Out);
        assert_eq!(info.duration_90khz(), Some(0x0000_01A5_99B0));
    }

    #[test]
    fn written_inserts_read_back() {
        for (out, pts, duration) in [
            (true, Some(900_000u64), Some(30 * 90_000u64)),
            (false, Some((1 << 33) - 1), None),
            (true, None, None),
        ] {
            let section = write_splice_insert(7, out, pts, duration);
            let info = SpliceInfo::parse(&section).unwrap();
            let SpliceCommand::Insert(i) = &info.command else {
                panic!()
            };
            assert_eq!(i.event_id, 7);
            assert_eq!(i.out_of_network, out);
            assert_eq!(i.pts_90khz, pts);
            assert_eq!(i.immediate, pts.is_none());
            assert_eq!(i.duration_90khz, duration);
            assert_eq!(info.section, section);
        }
    }

    #[test]
    fn damaged_sections_are_refused() {
        let mut section = write_splice_insert(1, true, Some(0), None).to_vec();
        assert!(SpliceInfo::parse(&section[..section.len() - 1]).is_err());
        section[10] ^= 1;
        assert_eq!(SpliceInfo::parse(&section), Err(Scte35Error::Crc));
        assert_eq!(
            SpliceInfo::parse(&[0x00]),
            Err(Scte35Error::NotSpliceInfo(0))
        );
        assert!(SpliceInfo::parse(&[]).is_err());
    }

    proptest::proptest! {
        #[test]
        fn any_bytes_are_read_or_refused(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300)) {
            let _ = SpliceInfo::parse(&bytes);
            // With a right table id, length and CRC, the body itself is read.
            let mut s = bytes.clone();
            if s.len() >= 18 {
                s[0] = TABLE_ID;
                let len = s.len() - 3;
                s[1] = (s[1] & 0xF0) | ((len >> 8) as u8 & 0x0F);
                s[2] = len as u8;
                let n = s.len() - 4;
                let crc = crate::ts::crc32_mpeg2(&s[..n]);
                s[n..].copy_from_slice(&crc.to_be_bytes());
                let _ = SpliceInfo::parse(&s);
            }
        }
    }
}
