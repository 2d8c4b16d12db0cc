//! A small big-endian box writer (ISO/IEC 14496-12 §4.2): boxes are opened with a placeholder size that
//! is patched when their body is complete.
//!
//! Errors are sticky: the first value that does not fit its field is recorded, later writes still
//! happen (so offsets stay consistent), and [`BoxWriter::finish`] returns the error. Callers therefore
//! write straight-line code and check once.

use super::{CmafError, FourCc};

/// Writes boxes into one pre-sized buffer.
pub(crate) struct BoxWriter {
    buf: Vec<u8>,
    error: Option<CmafError>,
}

impl BoxWriter {
    /// An empty writer whose buffer holds `capacity_bytes` without reallocating.
    pub(crate) fn with_capacity(capacity_bytes: usize) -> Self {
        Self {
            buf: Vec::with_capacity(capacity_bytes),
            error: None,
        }
    }

    /// Bytes written so far (the offset of the next byte).
    pub(crate) fn len_bytes(&self) -> usize {
        self.buf.len()
    }

    /// Record `error` unless an earlier error is already recorded.
    pub(crate) fn fail(&mut self, error: CmafError) {
        if self.error.is_none() {
            self.error = Some(error);
        }
    }

    pub(crate) fn u8(&mut self, value: u8) {
        self.buf.push(value);
    }

    pub(crate) fn u16(&mut self, value: u16) {
        self.buf.extend_from_slice(&value.to_be_bytes());
    }

    pub(crate) fn i16(&mut self, value: i16) {
        self.buf.extend_from_slice(&value.to_be_bytes());
    }

    /// A 24-bit unsigned integer (the low 24 bits of `value`).
    pub(crate) fn u24(&mut self, value: u32) {
        self.buf.extend_from_slice(&value.to_be_bytes()[1..]);
    }

    pub(crate) fn u32(&mut self, value: u32) {
        self.buf.extend_from_slice(&value.to_be_bytes());
    }

    pub(crate) fn i32(&mut self, value: i32) {
        self.buf.extend_from_slice(&value.to_be_bytes());
    }

    pub(crate) fn u64(&mut self, value: u64) {
        self.buf.extend_from_slice(&value.to_be_bytes());
    }

    pub(crate) fn bytes(&mut self, value: &[u8]) {
        self.buf.extend_from_slice(value);
    }

    /// `len_bytes` zero bytes (reserved fields).
    pub(crate) fn zeros(&mut self, len_bytes: usize) {
        self.buf.resize(self.buf.len() + len_bytes, 0);
    }

    /// The unity transformation matrix of `mvhd` and `tkhd` (ISO/IEC 14496-12 §8.2.2.3): 16.16 fixed point
    /// `a`, `b`, `c`, `d`, `x`, `y` and 2.30 fixed point `u`, `v`, `w`.
    pub(crate) fn unity_matrix(&mut self) {
        for value in [0x0001_0000, 0, 0, 0, 0x0001_0000, 0, 0, 0, 0x4000_0000_u32] {
            self.u32(value);
        }
    }

    /// Overwrite the four bytes at `offset` (previously written) with `value`.
    pub(crate) fn patch_u32(&mut self, offset: usize, value: u32) {
        let slot = offset
            .checked_add(4)
            .and_then(|end| self.buf.get_mut(offset..end));
        match slot {
            Some(slot) => slot.copy_from_slice(&value.to_be_bytes()),
            // Internal invariant: offsets come from `len_bytes` before the field was written.
            None => self.fail(CmafError::BoxTooLarge {
                fourcc: FourCc(*b"????"),
            }),
        }
    }

    /// A box (ISO/IEC 14496-12 §4.2 `Box`) of type `fourcc` whose body `body` writes. Its 32-bit size is
    /// patched afterwards; a body beyond 4 GiB records [`CmafError::BoxTooLarge`].
    pub(crate) fn boxed(&mut self, fourcc: &[u8; 4], body: impl FnOnce(&mut Self)) {
        let start = self.buf.len();
        self.u32(0);
        self.bytes(fourcc);
        body(self);
        let size = self.buf.len() - start;
        match u32::try_from(size) {
            Ok(size) => self.patch_u32(start, size),
            Err(_) => self.fail(CmafError::BoxTooLarge {
                fourcc: FourCc(*fourcc),
            }),
        }
    }

    /// A full box (ISO/IEC 14496-12 §4.2 `FullBox`): a box whose body starts with an 8-bit version and
    /// 24-bit flags.
    pub(crate) fn full_box(
        &mut self,
        fourcc: &[u8; 4],
        version: u8,
        flags: u32,
        body: impl FnOnce(&mut Self),
    ) {
        self.boxed(fourcc, |w| {
            w.u8(version);
            w.u24(flags);
            body(w);
        });
    }

    /// The bytes written, or the first error recorded.
    pub(crate) fn finish(self) -> Result<Vec<u8>, CmafError> {
        match self.error {
            Some(error) => Err(error),
            None => Ok(self.buf),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cmaf_writer_nested_boxes_patch_sizes() {
        let mut w = BoxWriter::with_capacity(64);
        w.boxed(b"moof", |w| {
            w.full_box(b"mfhd", 0, 0, |w| w.u32(7));
        });
        let bytes = w.finish().expect("no error recorded");
        #[rustfmt::skip]
        let expected: &[u8] = &[
            0, 0, 0, 24, b'm', b'o', b'o', b'f', // moof: size 8 + 16
            0, 0, 0, 16, b'm', b'f', b'h', b'd', // mfhd: size 16
            0, 0, 0, 0,                          // version 0, flags 0
            0, 0, 0, 7,                          // sequence_number 7
        ];
        assert_eq!(bytes, expected);
    }

    #[test]
    fn cmaf_writer_first_error_sticks() {
        let mut w = BoxWriter::with_capacity(0);
        w.fail(CmafError::ZeroTrackId);
        w.fail(CmafError::ZeroTimescale);
        assert_eq!(w.finish(), Err(CmafError::ZeroTrackId));
    }

    #[test]
    fn cmaf_writer_u24_writes_low_bits() {
        let mut w = BoxWriter::with_capacity(3);
        w.u24(0x0102_0304);
        assert_eq!(w.finish().expect("no error"), [2, 3, 4]);
    }
}
