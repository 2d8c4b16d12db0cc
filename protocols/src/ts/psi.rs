//! PSI sections (ISO/IEC 13818-1 §2.4.4): reassembly across packets, the long-form section header,
//! CRC_32.

use super::MAX_SECTION_BYTES;
use super::packet::{CcCheck, Continuity, Packet};

/// Reassembles PSI sections (§2.4.4.1–2) from the packets of one PID.
#[derive(Debug, Default)]
pub(super) struct SectionAssembler {
    /// Bytes of the section(s) being collected; at most [`MAX_SECTION_BYTES`] + one packet.
    pub(super) buf: Vec<u8>,
    is_collecting: bool,
    cc: Continuity,
}

impl SectionAssembler {
    /// Add one packet; complete sections are appended to `sections`. Returns how many sections were lost
    /// or malformed.
    pub(super) fn push(&mut self, p: &Packet<'_>, sections: &mut Vec<Vec<u8>>) -> u64 {
        let mut errors = 0;
        match self.cc.check(p) {
            CcCheck::Duplicate => return 0,
            CcCheck::Gap => {
                errors += u64::from(self.is_collecting && !self.buf.is_empty());
                self.buf.clear();
                self.is_collecting = false;
            }
            CcCheck::InOrder => {}
        }
        let mut rest = p.payload;
        if p.is_unit_start {
            // pointer_field u8: bytes of the previous section before the first new one.
            let Some((&pointer, after)) = p.payload.split_first() else {
                return errors + 1;
            };
            let pointer = usize::from(pointer);
            if pointer > after.len() {
                self.buf.clear();
                self.is_collecting = false;
                return errors + 1;
            }
            if self.is_collecting {
                self.buf.extend_from_slice(&after[..pointer]);
                errors += self.drain(sections);
                errors += u64::from(self.is_collecting && !self.buf.is_empty());
            }
            self.buf.clear();
            self.is_collecting = true;
            rest = &after[pointer..];
        } else if !self.is_collecting {
            return errors;
        }
        self.buf.extend_from_slice(rest);
        errors + self.drain(sections)
    }

    /// Move the complete sections at the front of `buf` to `sections`; stop at stuffing (0xFF) or an
    /// incomplete section.
    fn drain(&mut self, sections: &mut Vec<Vec<u8>>) -> u64 {
        let mut start = 0;
        let mut errors = 0;
        loop {
            let b = &self.buf[start..];
            if b.first() == Some(&0xFF) {
                self.is_collecting = false;
                start = self.buf.len();
                break;
            }
            if b.len() < 3 {
                break;
            }
            // table_id u8, section_syntax_indicator u1, '0' u1, reserved u2, section_length u12.
            let total = 3 + usize::from(u16::from_be_bytes([b[1], b[2]]) & 0x0FFF);
            if total > MAX_SECTION_BYTES {
                errors += 1;
                self.is_collecting = false;
                start = self.buf.len();
                break;
            }
            if b.len() < total {
                break;
            }
            sections.push(b[..total].to_vec());
            start += total;
        }
        self.buf.drain(..start);
        errors
    }
}

/// The long-form PSI section fields we use.
#[derive(Debug, Clone, Copy)]
pub(super) struct PsiSection<'a> {
    pub(super) table_id_extension: u16,
    pub(super) version: u8,
    pub(super) is_current: bool,
    /// The bytes after last_section_number, before CRC_32.
    pub(super) body: &'a [u8],
}

/// Parse a long-form section with `table_id` (§2.4.4.10, Table 2-30 layout): table_id u8,
/// section_syntax_indicator u1 (= 1), '0', reserved u2, section_length u12, table_id_extension u16,
/// reserved u2, version_number u5, current_next_indicator u1, section_number u8, last_section_number u8,
/// body, CRC_32 u32 (MPEG-2 CRC, Annex A: the CRC over the whole section is 0). `Ok(None)` for another
/// table_id; `Err` names the broken field.
pub(super) fn parse_psi_section(
    section: &[u8],
    table_id: u8,
) -> Result<Option<PsiSection<'_>>, &'static str> {
    if section.first() != Some(&table_id) {
        return Ok(None);
    }
    if section.len() < 12 {
        return Err("section_length");
    }
    if section[1] & 0x80 == 0 {
        return Err("section_syntax_indicator");
    }
    if crc32_mpeg2(section) != 0 {
        return Err("CRC_32");
    }
    Ok(Some(PsiSection {
        table_id_extension: u16::from_be_bytes([section[3], section[4]]),
        version: (section[5] >> 1) & 0x1F,
        is_current: section[5] & 0x01 != 0,
        body: &section[8..section.len() - 4],
    }))
}

/// CRC-32/MPEG-2 (ISO/IEC 13818-1 Annex A): polynomial 0x04C11DB7, initial value 0xFFFFFFFF, no
/// reflection, no final XOR.
pub(crate) fn crc32_mpeg2(data: &[u8]) -> u32 {
    const TABLE: [u32; 256] = {
        let mut table = [0u32; 256];
        let mut i = 0;
        while i < 256 {
            let mut c = (i as u32) << 24;
            let mut k = 0;
            while k < 8 {
                c = if c & 0x8000_0000 != 0 {
                    (c << 1) ^ 0x04C1_1DB7
                } else {
                    c << 1
                };
                k += 1;
            }
            table[i] = c;
            i += 1;
        }
        table
    };
    data.iter().fold(!0u32, |crc, &b| {
        (crc << 8) ^ TABLE[usize::from((crc >> 24) as u8 ^ b)]
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ts_crc32_mpeg2_check_value() {
        // CRC-32/MPEG-2 check value of "123456789" (the catalogue's standard test vector).
        assert_eq!(crc32_mpeg2(b"123456789"), 0x0376_E6E7);
    }
}
