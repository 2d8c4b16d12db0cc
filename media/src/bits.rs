//! Bit reader for RBSP (emulation prevention removed) with Exp-Golomb codes (ITU-T H.264 §9.1).
//!
//! H.264 and H.265 NAL units carry their payload as an EBSP: the encoder inserts an
//! `emulation_prevention_three_byte` (0x03) after every two zero bytes that would otherwise be followed by a
//! byte ≤ 0x03 (ITU-T H.264 §7.4.1, ITU-T H.265 §7.4.2). [`BitReader::from_ebsp`] strips those bytes and then
//! reads the raw bit string: fixed-width fields `u(n)` (§7.2), unsigned and signed Exp-Golomb codes `ue(v)`
//! and `se(v)` (§9.1, §9.1.1).
//!
//! Every read is bounded: running past the end returns [`MediaError::Truncated`] and an Exp-Golomb code
//! with more than 31 leading zero bits (a value that cannot fit in 32 bits) returns
//! [`MediaError::Invalid`]. Nothing here panics on malformed input.

use crate::MediaError;

/// Remove emulation prevention bytes from an encapsulated byte sequence (EBSP → RBSP).
///
/// Every `0x03` that follows two `0x00` bytes is dropped (ITU-T H.264 §7.3.1, `emulation_prevention_three_byte`);
/// the zero-run counter restarts after a dropped byte, so `00 00 03 00 00 03` yields `00 00 00 00`.
pub fn ebsp_to_rbsp(ebsp: &[u8]) -> Vec<u8> {
    let mut rbsp = Vec::with_capacity(ebsp.len());
    let mut zeros = 0usize;
    for &byte in ebsp {
        if zeros >= 2 && byte == 0x03 {
            zeros = 0;
            continue;
        }
        zeros = if byte == 0 { zeros + 1 } else { 0 };
        rbsp.push(byte);
    }
    rbsp
}

/// How many bytes of `ebsp` hold its first `rbsp_bytes` RBSP bytes (the emulation prevention bytes
/// among them counted), i.e. where RBSP byte `rbsp_bytes` starts in the EBSP; `None` if `ebsp` is
/// shorter.
pub fn ebsp_len_for_rbsp(ebsp: &[u8], rbsp_bytes: usize) -> Option<usize> {
    let mut produced = 0usize;
    let mut zeros = 0usize;
    for (i, &byte) in ebsp.iter().enumerate() {
        if produced == rbsp_bytes {
            return Some(i);
        }
        if zeros >= 2 && byte == 0x03 {
            zeros = 0;
            continue;
        }
        zeros = if byte == 0 { zeros + 1 } else { 0 };
        produced += 1;
    }
    (produced == rbsp_bytes).then_some(ebsp.len())
}

/// A most-significant-bit-first reader over an RBSP.
///
/// `what` names the structure being read (for example `"SPS"`) and is carried into errors.
#[derive(Debug, Clone)]
pub struct BitReader<'a> {
    data: &'a [u8],
    /// Position of the next bit to read, counted from the first bit of `data`.
    pos_bits: usize,
    what: &'static str,
}

impl<'a> BitReader<'a> {
    /// A reader over bytes that are already an RBSP (or any plain bit string, such as an
    /// AudioSpecificConfig).
    pub fn new(data: &'a [u8], what: &'static str) -> Self {
        Self {
            data,
            pos_bits: 0,
            what,
        }
    }

    /// Strip emulation prevention bytes from `ebsp` into `buf` and return a reader over the result.
    /// The caller owns `buf` so the reader can borrow it.
    pub fn from_ebsp(ebsp: &[u8], buf: &'a mut Vec<u8>, what: &'static str) -> Self {
        *buf = ebsp_to_rbsp(ebsp);
        Self::new(buf, what)
    }

    /// Number of bits left before the end of the data.
    pub fn remaining_bits(&self) -> usize {
        (self.data.len() * 8).saturating_sub(self.pos_bits)
    }

    fn truncated(&self, bits: usize) -> MediaError {
        MediaError::Truncated {
            what: self.what,
            need: (self.pos_bits + bits).div_ceil(8),
            have: self.data.len(),
        }
    }

    /// Check that `bits` more bits are available.
    fn ensure(&self, bits: usize) -> Result<(), MediaError> {
        if bits > self.remaining_bits() {
            Err(self.truncated(bits))
        } else {
            Ok(())
        }
    }

    /// Read one bit as a flag, `u(1)`.
    pub fn read_flag(&mut self) -> Result<bool, MediaError> {
        Ok(self.read_bits(1)? == 1)
    }

    /// Read `n` bits (0 ≤ `n` ≤ 32) as an unsigned integer, `u(n)`, most significant bit first.
    /// `n > 32` is [`MediaError::Invalid`].
    pub fn read_bits(&mut self, n: u32) -> Result<u32, MediaError> {
        Ok(self.read_bits_u64(n)? as u32)
    }

    /// Read `n` bits (0 ≤ `n` ≤ 64) as an unsigned integer; for 48-bit fields such as HEVC's
    /// `general_constraint_indicator_flags`. `n > 64` is [`MediaError::Invalid`].
    pub fn read_bits_u64(&mut self, n: u32) -> Result<u64, MediaError> {
        if n > 64 {
            return Err(MediaError::Invalid {
                what: self.what,
                field: "bit count",
                value: u64::from(n),
            });
        }
        let n = n as usize;
        self.ensure(n)?;
        let mut value = 0u64;
        for _ in 0..n {
            // In range: `ensure` checked pos_bits + n <= data.len() * 8.
            let byte = self.data[self.pos_bits / 8];
            let bit = (byte >> (7 - (self.pos_bits % 8))) & 1;
            value = (value << 1) | u64::from(bit);
            self.pos_bits += 1;
        }
        Ok(value)
    }

    /// Read a byte, `u(8)`.
    pub fn read_u8(&mut self) -> Result<u8, MediaError> {
        Ok(self.read_bits(8)? as u8)
    }

    /// Bits read so far.
    pub fn position_bits(&self) -> usize {
        self.pos_bits
    }

    /// Skip `n` bits.
    pub fn skip_bits(&mut self, n: usize) -> Result<(), MediaError> {
        self.ensure(n)?;
        self.pos_bits += n;
        Ok(())
    }

    /// Skip to the next byte boundary (no-op when already aligned).
    pub fn byte_align(&mut self) -> Result<(), MediaError> {
        let rem = self.pos_bits % 8;
        if rem == 0 {
            Ok(())
        } else {
            self.skip_bits(8 - rem)
        }
    }

    /// Read an unsigned Exp-Golomb code, `ue(v)` (ITU-T H.264 §9.1): `leadingZeroBits` zeros, a one, then
    /// `leadingZeroBits` bits. More than 31 leading zeros is [`MediaError::Invalid`] (field
    /// `"exp-golomb leading zeros"`), so the result always fits in a `u32` (at most 2³² − 2).
    pub fn read_ue(&mut self) -> Result<u32, MediaError> {
        let mut leading_zeros = 0u32;
        while !self.read_flag()? {
            leading_zeros += 1;
            if leading_zeros > 31 {
                return Err(MediaError::Invalid {
                    what: self.what,
                    field: "exp-golomb leading zeros",
                    value: u64::from(leading_zeros),
                });
            }
        }
        let suffix = self.read_bits(leading_zeros)?;
        // At most 2^31 - 1 + 2^31 - 1 = 2^32 - 2: no overflow.
        Ok(((1u64 << leading_zeros) - 1 + u64::from(suffix)) as u32)
    }

    /// Read an unsigned Exp-Golomb code and check it against an inclusive maximum; a larger value is
    /// [`MediaError::Invalid`] naming `field`.
    pub fn read_ue_max(&mut self, field: &'static str, max: u32) -> Result<u32, MediaError> {
        let value = self.read_ue()?;
        if value > max {
            return Err(MediaError::Invalid {
                what: self.what,
                field,
                value: u64::from(value),
            });
        }
        Ok(value)
    }

    /// Read a signed Exp-Golomb code, `se(v)` (ITU-T H.264 §9.1.1): codeNum k maps to
    /// (−1)^(k+1) · ⌈k ÷ 2⌉, i.e. 0, 1, −1, 2, −2, …
    pub fn read_se(&mut self) -> Result<i32, MediaError> {
        let k = i64::from(self.read_ue()?);
        let magnitude = (k + 1) / 2;
        // |value| <= 2^31 - 1: fits in i32.
        Ok(if k % 2 == 1 { magnitude } else { -magnitude } as i32)
    }
}

/// A byte cursor for the byte-aligned parts of configuration records (avcC, hvcC), returning
/// [`MediaError::Truncated`] instead of panicking.
#[derive(Debug, Clone)]
pub struct ByteReader<'a> {
    data: &'a [u8],
    pos: usize,
    what: &'static str,
}

impl<'a> ByteReader<'a> {
    /// A cursor at the start of `data`; `what` names the structure for errors.
    pub fn new(data: &'a [u8], what: &'static str) -> Self {
        Self { data, pos: 0, what }
    }

    /// Bytes consumed so far.
    pub fn position_bytes(&self) -> usize {
        self.pos
    }

    /// Take the next `len` bytes.
    pub fn take(&mut self, len: usize) -> Result<&'a [u8], MediaError> {
        let end = self
            .pos
            .checked_add(len)
            .filter(|&end| end <= self.data.len())
            .ok_or(MediaError::Truncated {
                what: self.what,
                need: self.pos.saturating_add(len),
                have: self.data.len(),
            })?;
        let slice = &self.data[self.pos..end];
        self.pos = end;
        Ok(slice)
    }

    /// Read one byte.
    pub fn u8(&mut self) -> Result<u8, MediaError> {
        Ok(self.take(1)?[0])
    }

    /// Read a big-endian 16-bit integer.
    pub fn u16(&mut self) -> Result<u16, MediaError> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    /// Read a big-endian 32-bit integer.
    pub fn u32(&mut self) -> Result<u32, MediaError> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// Read a big-endian 48-bit integer into the low bits of a `u64`.
    pub fn u48(&mut self) -> Result<u64, MediaError> {
        Ok(self
            .take(6)?
            .iter()
            .fold(0u64, |acc, &b| (acc << 8) | u64::from(b)))
    }
}

/// `num / den` reduced to lowest terms, if both are non-zero and the reduced terms fit in `u32`.
/// Used for frame rates from VUI timing info (`time_scale` over a multiple of `num_units_in_tick`).
pub fn reduced_ratio(num: u64, den: u64) -> Option<(u32, u32)> {
    if num == 0 || den == 0 {
        return None;
    }
    let (mut a, mut b) = (num, den);
    while b != 0 {
        (a, b) = (b, a % b);
    }
    Some((u32::try_from(num / a).ok()?, u32::try_from(den / a).ok()?))
}

/// Bytes from an annotated hex dump, for unit tests: on each line, the leading whitespace-separated
/// two-digit hex tokens are the data and everything from the first other token on is a comment.
#[cfg(test)]
pub fn annotated_hex(text: &str) -> bytes::Bytes {
    let digits: String = text
        .lines()
        .flat_map(|l| {
            l.split_whitespace()
                .take_while(|t| t.len() == 2 && u8::from_str_radix(t, 16).is_ok())
        })
        .collect();
    (0..digits.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&digits[i..i + 2], 16).expect("two hex digits, checked above"))
        .collect::<Vec<u8>>()
        .into()
}

/// A most-significant-bit-first writer, for building test bitstreams (with Exp-Golomb codes and
/// emulation prevention) in unit tests.
#[cfg(test)]
#[derive(Debug, Default)]
pub struct BitWriter {
    bytes: Vec<u8>,
    bits_in_last: u32,
}

#[cfg(test)]
impl BitWriter {
    /// Append the low `n` bits of `value`.
    pub fn bits(&mut self, n: u32, value: u64) -> &mut Self {
        for i in (0..n).rev() {
            if self.bits_in_last.is_multiple_of(8) {
                self.bytes.push(0);
                self.bits_in_last = 0;
            }
            let bit = ((value >> i) & 1) as u8;
            if let Some(last) = self.bytes.last_mut() {
                *last |= bit << (7 - self.bits_in_last);
            }
            self.bits_in_last += 1;
        }
        self
    }

    /// Append a flag.
    pub fn flag(&mut self, flag: bool) -> &mut Self {
        self.bits(1, u64::from(flag))
    }

    /// Append `ue(v)`.
    pub fn ue(&mut self, value: u32) -> &mut Self {
        let code = u64::from(value) + 1;
        let len = 64 - code.leading_zeros();
        self.bits(len - 1, 0).bits(len, code)
    }

    /// Append `se(v)`.
    pub fn se(&mut self, value: i32) -> &mut Self {
        let k = if value > 0 {
            2 * i64::from(value) - 1
        } else {
            -2 * i64::from(value)
        };
        self.ue(k as u32)
    }

    /// Append `rbsp_trailing_bits()` (a one, then zeros to the byte boundary) and return the bytes with
    /// emulation prevention inserted (an EBSP).
    pub fn finish_ebsp(&mut self) -> Vec<u8> {
        self.bits(1, 1);
        let mut out = Vec::with_capacity(self.bytes.len() + 4);
        let mut zeros = 0;
        for &byte in &self.bytes {
            if zeros >= 2 && byte <= 3 {
                out.push(3);
                zeros = 0;
            }
            zeros = if byte == 0 { zeros + 1 } else { 0 };
            out.push(byte);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn ebsp_to_rbsp_drops_emulation_prevention_bytes() {
        // 00 00 03 01 → 00 00 01; a 03 not preceded by two zeros stays; zero run restarts after a drop.
        assert_eq!(ebsp_to_rbsp(&[0x00, 0x00, 0x03, 0x01]), [0x00, 0x00, 0x01]);
        assert_eq!(
            ebsp_to_rbsp(&[0x00, 0x03, 0x00, 0x03]),
            [0x00, 0x03, 0x00, 0x03]
        );
        assert_eq!(ebsp_to_rbsp(&[0, 0, 3, 0, 0, 3, 0]), [0, 0, 0, 0, 0]);
        assert_eq!(ebsp_to_rbsp(&[0, 0, 0, 3]), [0, 0, 0]);
    }

    #[test]
    fn bit_reader_reads_fixed_and_exp_golomb_fields() {
        // 101 | 00110 | 00111 | 000: u(3) = 5, ue = 5, se = −3, then three zero bits.
        let data = [0b1010_0110, 0b0011_1000];
        let mut r = BitReader::new(&data, "test");
        assert_eq!(r.read_bits(3).unwrap(), 5);
        // Next bits: 0 0 1 1 0 → ue: two zeros, one, suffix "10" → 2^2 - 1 + 2 = 5.
        assert_eq!(r.read_ue().unwrap(), 5);
        // Next bits: 0 0 1 1 1 → se codeNum 2^2 - 1 + 3 = 6 → −3.
        assert_eq!(r.read_se().unwrap(), -3);
        assert_eq!(r.remaining_bits(), 3);
        assert_eq!(r.read_bits(3).unwrap(), 0);
        assert!(matches!(
            r.read_flag(),
            Err(MediaError::Truncated {
                need: 3,
                have: 2,
                ..
            })
        ));
    }

    #[test]
    fn bit_reader_ue_boundaries() {
        // 31 leading zeros, a one, 31 ones: the largest representable code, 2^32 - 2.
        let mut w = BitWriter::default();
        w.bits(31, 0).bits(1, 1).bits(31, u64::from(u32::MAX));
        let data = w.bytes.clone();
        assert_eq!(
            BitReader::new(&data, "test").read_ue().unwrap(),
            u32::MAX - 1
        );
        // 32 leading zeros: invalid, not a panic or a wrap.
        let data = [0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff];
        assert!(matches!(
            BitReader::new(&data, "test").read_ue(),
            Err(MediaError::Invalid {
                field: "exp-golomb leading zeros",
                value: 32,
                ..
            })
        ));
        // Leading zeros running off the end: truncated.
        assert!(matches!(
            BitReader::new(&[0, 0], "test").read_ue(),
            Err(MediaError::Truncated { .. })
        ));
    }

    #[test]
    fn bit_reader_u64_and_alignment() {
        let data = [0xff, 0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc];
        let mut r = BitReader::new(&data, "test");
        r.skip_bits(3).unwrap();
        r.byte_align().unwrap();
        assert_eq!(r.remaining_bits(), 48);
        assert_eq!(r.read_bits_u64(48).unwrap(), 0x1234_5678_9abc);
        assert!(r.read_bits_u64(65).is_err());
    }

    #[test]
    fn reduced_ratio_reduces_and_bounds() {
        // x264 30 fps: time_scale 60, num_units_in_tick 1 → 60 / (2 · 1) = 30 / 1.
        assert_eq!(reduced_ratio(60, 2), Some((30, 1)));
        // NTSC 29.97: 60000 / (2 · 1001).
        assert_eq!(reduced_ratio(60000, 2002), Some((30000, 1001)));
        assert_eq!(reduced_ratio(0, 2), None);
        assert_eq!(reduced_ratio(1, 0), None);
        assert_eq!(
            reduced_ratio(u64::from(u32::MAX), 2 * u64::from(u32::MAX)),
            Some((1, 2))
        );
        assert_eq!(reduced_ratio(1, 2 * u64::from(u32::MAX)), None);
    }

    #[test]
    fn byte_reader_reports_truncation() {
        let mut r = ByteReader::new(&[1, 2, 3], "rec");
        assert_eq!(r.u16().unwrap(), 0x0102);
        assert_eq!(
            r.u16(),
            Err(MediaError::Truncated {
                what: "rec",
                need: 4,
                have: 3
            })
        );
        assert_eq!(
            r.take(usize::MAX).unwrap_err(),
            MediaError::Truncated {
                what: "rec",
                need: usize::MAX,
                have: 3
            }
        );
        assert_eq!(r.u8().unwrap(), 3);
    }

    proptest! {
        #[test]
        fn exp_golomb_round_trips(values in proptest::collection::vec(any::<i32>(), 1..20)) {
            let mut w = BitWriter::default();
            for &v in &values {
                w.ue(v.unsigned_abs().min(u32::MAX - 1)).se(v.max(-i32::MAX));
            }
            let ebsp = w.finish_ebsp();
            let mut buf = Vec::new();
            let mut r = BitReader::from_ebsp(&ebsp, &mut buf, "test");
            for &v in &values {
                prop_assert_eq!(r.read_ue().unwrap(), v.unsigned_abs().min(u32::MAX - 1));
                prop_assert_eq!(r.read_se().unwrap(), v.max(-i32::MAX));
            }
        }

        #[test]
        fn bit_reader_never_panics(data in proptest::collection::vec(any::<u8>(), 0..32), ops in proptest::collection::vec(0u8..6, 0..64)) {
            let mut buf = Vec::new();
            let mut r = BitReader::from_ebsp(&data, &mut buf, "test");
            for op in ops {
                let _ = match op {
                    0 => r.read_ue().map(|_| ()),
                    1 => r.read_se().map(|_| ()),
                    2 => r.read_bits(32).map(|_| ()),
                    3 => r.read_bits_u64(48).map(|_| ()),
                    4 => r.skip_bits(13),
                    _ => r.byte_align(),
                };
            }
        }
    }
}
