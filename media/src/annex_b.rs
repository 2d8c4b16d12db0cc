//! Annex B byte streams (ITU-T H.264 Annex B, ITU-T H.265 Annex B): NAL units separated by start codes.
//!
//! MPEG-TS carries H.264 and HEVC elementary streams in this framing (ISO/IEC 13818-1 §2.14 and §2.17);
//! CMAF samples ([`crate::Frame`]) use 4-byte length prefixes instead. [`nal_units`] finds the NAL units;
//! the caller re-frames them.

/// Iterator over the NAL units of an Annex B byte stream; see [`nal_units`].
#[derive(Debug, Clone)]
pub struct NalUnits<'a> {
    data: &'a [u8],
    /// Where the next NAL unit starts (just past its start code), or `None` before the first start code
    /// has been looked for.
    next: Option<usize>,
}

/// The NAL units of `data`, an Annex B byte stream, in order: each without its start code and without
/// the `trailing_zero_8bits` (or the leading zero of a 4-byte start code) that follow it. Empty NAL units
/// are skipped, as are the bytes before the first start code (`0x000001`). Zero-copy; never fails.
///
/// A NAL unit cannot contain `0x000000`, `0x000001` or `0x000002` (emulation prevention, ITU-T H.264
/// §7.4.1 / H.265 §7.4.2), and cannot end with a zero byte (`rbsp_trailing_bits`), so the split is exact
/// for conforming streams.
pub fn nal_units(data: &[u8]) -> NalUnits<'_> {
    NalUnits { data, next: None }
}

impl<'a> Iterator for NalUnits<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        loop {
            let start = match self.next {
                Some(start) => start,
                None => find_start_code(self.data, 0)? + 3,
            };
            if start >= self.data.len() {
                self.next = Some(self.data.len());
                return None;
            }
            let (end, next) = match find_start_code(self.data, start) {
                Some(sc) => (sc, sc + 3),
                None => (self.data.len(), self.data.len()),
            };
            self.next = Some(next);
            let nal = trim_trailing_zeros(&self.data[start..end]);
            if !nal.is_empty() {
                return Some(nal);
            }
        }
    }
}

/// Offset of the first `00 00 01` at or after `from`.
///
/// Looks at every third byte while it is greater than 1: a start code's final `01` cannot be at any of
/// the three positions a byte greater than 1 rules out (it is neither `00` nor `01`).
fn find_start_code(data: &[u8], from: usize) -> Option<usize> {
    let mut i = from.checked_add(2)?;
    while i < data.len() {
        match data[i] {
            0 => i += 1,
            1 => {
                if data[i - 1] == 0 && data[i - 2] == 0 {
                    return Some(i - 2);
                }
                i += 3;
            }
            _ => i += 3,
        }
    }
    None
}

fn trim_trailing_zeros(nal: &[u8]) -> &[u8] {
    let end = nal.iter().rposition(|&b| b != 0).map_or(0, |p| p + 1);
    &nal[..end]
}

/// The Annex B byte stream of `sample`, a CMAF sample (NAL units each behind a 4-byte big-endian
/// length, ISO/IEC 14496-15 §5.3.2), with the NAL units of `prefix` (e.g. the SPS and PPS before a
/// keyframe, for a decoder that joins there) first; every NAL unit behind a 4-byte start code
/// (`0x00000001`). This is the framing RTP H.264 packetizers take (RFC 6184 §5).
///
/// Errors: [`crate::MediaError::Truncated`] when a length runs past the sample's end.
pub fn from_length_prefixed(
    sample: &[u8],
    prefix: &[bytes::Bytes],
) -> Result<Vec<u8>, crate::MediaError> {
    const START: [u8; 4] = [0, 0, 0, 1];
    let mut out =
        Vec::with_capacity(sample.len() + prefix.iter().map(|p| p.len() + 4).sum::<usize>());
    for nal in prefix.iter().filter(|p| !p.is_empty()) {
        out.extend_from_slice(&START);
        out.extend_from_slice(nal);
    }
    let mut rest = sample;
    while !rest.is_empty() {
        let truncated = |need: usize, have: usize| crate::MediaError::Truncated {
            what: "length-prefixed NAL unit",
            need,
            have,
        };
        let Some((len, body)) = rest.split_first_chunk::<4>() else {
            return Err(truncated(4, rest.len()));
        };
        let len = u32::from_be_bytes(*len) as usize;
        if body.len() < len {
            return Err(truncated(len, body.len()));
        }
        if len > 0 {
            out.extend_from_slice(&START);
            out.extend_from_slice(&body[..len]);
        }
        rest = &body[len..];
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn annex_b_three_and_four_byte_start_codes() {
        let data = [
            0x00, 0x00, 0x00, 0x01, 0x09, 0xF0, // 4-byte start code, AUD
            0x00, 0x00, 0x01, 0x67, 0x42,
            0x00, // 3-byte start code, SPS (trailing zero trimmed)
            0x00, 0x00, 0x00, 0x01, 0x65, 0x88, 0x84, // 4-byte start code, IDR slice
        ];
        let nals: Vec<&[u8]> = nal_units(&data).collect();
        assert_eq!(
            nals,
            vec![
                &[0x09, 0xF0][..],
                &[0x67, 0x42][..],
                &[0x65, 0x88, 0x84][..]
            ]
        );
    }

    #[test]
    fn annex_b_leading_garbage_empty_units_and_trailing_zeros_skipped() {
        let data = [
            0xAB, 0x01, 0x00, // garbage before the first start code
            0x00, 0x00, 0x01, // start code of an empty NAL unit
            0x00, 0x00, 0x01, 0x41, 0x9A, // non-IDR slice
            0x00, 0x00, 0x00, 0x00, // trailing_zero_8bits at the end of the stream
        ];
        let nals: Vec<&[u8]> = nal_units(&data).collect();
        assert_eq!(nals, vec![&[0x41, 0x9A][..]]);
    }

    #[test]
    fn annex_b_without_start_code_or_ending_in_one_is_empty() {
        assert_eq!(nal_units(&[]).count(), 0);
        assert_eq!(nal_units(&[0x00, 0x01]).count(), 0);
        assert_eq!(nal_units(&[0x65, 0x88, 0x01, 0x02]).count(), 0);
        assert_eq!(nal_units(&[0x00, 0x00, 0x01]).count(), 0);
        // A 0x01 byte right after two zeros anywhere is a start code, even at the very start.
        assert_eq!(
            nal_units(&[0x00, 0x00, 0x01, 0x06, 0x05]).collect::<Vec<_>>(),
            vec![&[0x06, 0x05][..]]
        );
    }

    /// A NAL unit body as an encoder writes it: no `00 00 0x` (x ≤ 3) inside, a non-zero last byte.
    fn nal_body() -> impl Strategy<Value = Vec<u8>> {
        proptest::collection::vec(any::<u8>(), 1..64).prop_map(|mut v| {
            let mut zeros = 0;
            for b in &mut v {
                if zeros >= 2 && *b <= 3 {
                    *b = 0x80;
                }
                zeros = if *b == 0 { zeros + 1 } else { 0 };
            }
            if let Some(last) = v.last_mut()
                && *last == 0
            {
                *last = 0x80;
            }
            v
        })
    }

    proptest! {
        #[test]
        fn annex_b_split_recovers_the_nal_units(
            units in proptest::collection::vec((nal_body(), any::<bool>(), 0usize..3), 0..16)
        ) {
            let mut data = Vec::new();
            for (nal, is_long, trailing_zeros) in &units {
                if *is_long {
                    data.push(0);
                }
                data.extend_from_slice(&[0, 0, 1]);
                data.extend_from_slice(nal);
                data.extend(std::iter::repeat_n(0, *trailing_zeros));
            }
            let got: Vec<&[u8]> = nal_units(&data).collect();
            let want: Vec<&[u8]> = units.iter().map(|(n, _, _)| n.as_slice()).collect();
            prop_assert_eq!(got, want);
        }

        #[test]
        fn annex_b_never_panics(data in proptest::collection::vec(0u8..3, 0..256)) {
            let total: usize = nal_units(&data).map(|n| n.len()).sum();
            prop_assert!(total <= data.len());
        }
    }

    #[test]
    fn length_prefixed_samples_become_annex_b_with_parameter_sets_first() {
        let sps = bytes::Bytes::from_static(&[0x67, 0x42, 0xc0, 0x1e]);
        let pps = bytes::Bytes::from_static(&[0x68, 0xce, 0x3c, 0x80]);
        let sample = [0, 0, 0, 3, 0x65, 0x88, 0x84, 0, 0, 0, 2, 0x06, 0x05];
        let out = from_length_prefixed(&sample, &[sps.clone(), pps.clone()]).unwrap();
        let nals: Vec<&[u8]> = nal_units(&out).collect();
        assert_eq!(
            nals,
            [
                &sps[..],
                &pps[..],
                &[0x65, 0x88, 0x84][..],
                &[0x06, 0x05][..]
            ]
        );
        assert!(out.starts_with(&[0, 0, 0, 1, 0x67]));
        assert_eq!(
            from_length_prefixed(&sample, &[]).unwrap().len(),
            sample.len()
        );
        assert!(matches!(
            from_length_prefixed(&[0, 0, 0, 9, 0x65], &[]),
            Err(crate::MediaError::Truncated {
                need: 9,
                have: 1,
                ..
            })
        ));
        assert!(from_length_prefixed(&[0, 0, 1], &[]).is_err());
    }
}
