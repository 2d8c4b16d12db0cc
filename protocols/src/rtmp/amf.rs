//! AMF0 (Adobe AMF0 File Format Specification, 2007) for RTMP commands and data messages, through
//! `rml_amf0`, behind a guard.
//!
//! `rml_amf0` decodes recursively without a depth limit (deeply nested objects overflow the stack, which
//! aborts the process and cannot be caught) and reads short strings without reporting truncation. So
//! [`decode`] first walks the bytes with [`validate`] — bounded nesting depth, every value complete, only
//! the markers `rml_amf0` supports — and only then calls `rml_amf0`, inside `catch_unwind` as a last resort.

use std::collections::HashMap;
use std::io::Cursor;

pub use rml_amf0::Amf0Value;

/// Deepest nesting of objects / arrays accepted (a command needs 2; onMetaData rarely more than 3).
pub const MAX_DEPTH: usize = 16;

const NUMBER: u8 = 0x00;
const BOOLEAN: u8 = 0x01;
const STRING: u8 = 0x02;
const OBJECT: u8 = 0x03;
const NULL: u8 = 0x05;
const UNDEFINED: u8 = 0x06;
const ECMA_ARRAY: u8 = 0x08;
const OBJECT_END: u8 = 0x09;
const STRICT_ARRAY: u8 = 0x0A;

/// Why AMF0 bytes were rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Amf0Error {
    /// A value ends past the end of the input.
    #[error("amf0 value truncated at byte {offset}")]
    Truncated {
        /// Byte offset of the incomplete value.
        offset: usize,
    },
    /// A marker that is invalid or not supported (reference, date, long string, XML, typed object, AMF3).
    #[error("unsupported amf0 marker {marker:#04x} at byte {offset}")]
    UnsupportedMarker {
        /// The marker byte.
        marker: u8,
        /// Its offset.
        offset: usize,
    },
    /// An object property with an empty name that is not the object end (§2.5).
    #[error("amf0 object property without a name at byte {offset}")]
    EmptyPropertyName {
        /// Offset of the property.
        offset: usize,
    },
    /// Nesting deeper than [`MAX_DEPTH`].
    #[error("amf0 nesting deeper than {MAX_DEPTH}")]
    TooDeep,
    /// `rml_amf0` rejected the (structurally valid) input, e.g. invalid UTF-8.
    #[error("amf0 decode: {0}")]
    Decode(String),
    /// `rml_amf0` panicked (should be unreachable after validation).
    #[error("amf0 decoder panicked")]
    Panicked,
    /// Serialisation failed (e.g. a string longer than 65535 bytes).
    #[error("amf0 encode: {0}")]
    Encode(String),
}

/// Check that `bytes` is a sequence of complete AMF0 values that `rml_amf0` can decode, with nesting at
/// most [`MAX_DEPTH`]. Like `rml_amf0`, a top-level object-end marker ends the sequence.
pub fn validate(bytes: &[u8]) -> Result<(), Amf0Error> {
    let mut pos = 0;
    while let Some(&marker) = bytes.get(pos) {
        if marker == OBJECT_END {
            break;
        }
        pos = skip_value(bytes, pos, 0)?;
    }
    Ok(())
}

fn take(bytes: &[u8], pos: usize, len: usize) -> Result<&[u8], Amf0Error> {
    bytes
        .get(pos..pos.saturating_add(len))
        .ok_or(Amf0Error::Truncated { offset: pos })
}

/// Skip the value whose marker is at `pos`; returns the offset after it.
fn skip_value(bytes: &[u8], pos: usize, depth: usize) -> Result<usize, Amf0Error> {
    let marker = *bytes.get(pos).ok_or(Amf0Error::Truncated { offset: pos })?;
    let body = pos + 1;
    match marker {
        NUMBER => take(bytes, body, 8).map(|_| body + 8),
        BOOLEAN => take(bytes, body, 1).map(|_| body + 1),
        STRING => {
            let len =
                take(bytes, body, 2).map(|b| usize::from(u16::from_be_bytes([b[0], b[1]])))?;
            take(bytes, body + 2, len).map(|_| body + 2 + len)
        }
        NULL | UNDEFINED => Ok(body),
        OBJECT => skip_properties(bytes, body, depth + 1),
        ECMA_ARRAY => {
            take(bytes, body, 4)?; // associative count, ignored (the object end marker terminates)
            skip_properties(bytes, body + 4, depth + 1)
        }
        STRICT_ARRAY => {
            if depth + 1 > MAX_DEPTH {
                return Err(Amf0Error::TooDeep);
            }
            let count =
                take(bytes, body, 4).map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))?;
            let mut pos = body + 4;
            // Each element consumes at least one byte, so this loop is bounded by the input length.
            for _ in 0..count {
                match bytes.get(pos) {
                    None => break,
                    Some(&OBJECT_END) => {
                        pos += 1;
                        break;
                    }
                    Some(_) => pos = skip_value(bytes, pos, depth + 1)?,
                }
            }
            Ok(pos)
        }
        marker => Err(Amf0Error::UnsupportedMarker {
            marker,
            offset: pos,
        }),
    }
}

/// Skip object properties up to and including the `00 00 09` end (§2.5).
fn skip_properties(bytes: &[u8], mut pos: usize, depth: usize) -> Result<usize, Amf0Error> {
    if depth > MAX_DEPTH {
        return Err(Amf0Error::TooDeep);
    }
    loop {
        let len = take(bytes, pos, 2).map(|b| usize::from(u16::from_be_bytes([b[0], b[1]])))?;
        if len == 0 {
            return match take(bytes, pos + 2, 1)?[0] {
                OBJECT_END => Ok(pos + 3),
                _ => Err(Amf0Error::EmptyPropertyName { offset: pos }),
            };
        }
        take(bytes, pos + 2, len)?;
        pos += 2 + len;
        match bytes.get(pos) {
            None | Some(&OBJECT_END) => return Err(Amf0Error::Truncated { offset: pos }),
            Some(_) => pos = skip_value(bytes, pos, depth)?,
        }
    }
}

/// Decode all AMF0 values in `bytes` (validated first; see the module docs).
pub fn decode(bytes: &[u8]) -> Result<Vec<Amf0Value>, Amf0Error> {
    validate(bytes)?;
    let result = std::panic::catch_unwind(|| rml_amf0::deserialize(&mut Cursor::new(bytes)));
    match result {
        Ok(Ok(values)) => Ok(values),
        Ok(Err(e)) => Err(Amf0Error::Decode(e.to_string())),
        Err(_) => Err(Amf0Error::Panicked),
    }
}

/// Encode `values` as consecutive AMF0 values.
pub fn encode(values: &[Amf0Value]) -> Result<Vec<u8>, Amf0Error> {
    rml_amf0::serialize(&values.to_vec()).map_err(|e| Amf0Error::Encode(e.to_string()))
}

/// An AMF0 object from `(name, value)` pairs.
pub fn object<const N: usize>(properties: [(&str, Amf0Value); N]) -> Amf0Value {
    Amf0Value::Object(
        properties
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect::<HashMap<_, _>>(),
    )
}

/// A string value.
pub fn string(s: &str) -> Amf0Value {
    Amf0Value::Utf8String(s.to_owned())
}

/// The string inside `value`, if it is one.
pub fn as_str(value: Option<&Amf0Value>) -> Option<&str> {
    match value {
        Some(Amf0Value::Utf8String(s)) => Some(s),
        _ => None,
    }
}

/// The number inside `value`, if it is one.
pub fn as_number(value: Option<&Amf0Value>) -> Option<f64> {
    match value {
        Some(Amf0Value::Number(n)) => Some(*n),
        _ => None,
    }
}

/// The properties of an object (or ECMA array) value.
pub fn as_object(value: Option<&Amf0Value>) -> Option<&HashMap<String, Amf0Value>> {
    match value {
        Some(Amf0Value::Object(o)) => Some(o),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn amf0_decodes_connect_command() {
        #[rustfmt::skip]
        let bytes = [
            0x02, 0x00, 0x07, b'c', b'o', b'n', b'n', b'e', b'c', b't', // string "connect"
            0x00, 0x3F, 0xF0, 0, 0, 0, 0, 0, 0, // number 1.0
            0x03, // object
            0x00, 0x03, b'a', b'p', b'p', 0x02, 0x00, 0x04, b'l', b'i', b'v', b'e', // app: "live"
            0x00, 0x00, 0x09, // object end
        ];
        let values = decode(&bytes).unwrap();
        assert_eq!(as_str(values.first()), Some("connect"));
        assert_eq!(as_number(values.get(1)), Some(1.0));
        assert_eq!(
            as_str(as_object(values.get(2)).unwrap().get("app")),
            Some("live")
        );
    }

    #[test]
    fn amf0_rejects_deep_nesting_without_overflowing_the_stack() {
        // 100 000 nested strict arrays of one element: rml_amf0 alone would recurse 100 000 deep.
        let mut bytes = Vec::new();
        for _ in 0..100_000 {
            bytes.extend_from_slice(&[STRICT_ARRAY, 0, 0, 0, 1]);
        }
        bytes.push(NULL);
        assert_eq!(decode(&bytes), Err(Amf0Error::TooDeep));
        let mut bytes = Vec::new();
        for _ in 0..100_000 {
            bytes.extend_from_slice(&[OBJECT, 0, 1, b'a']);
        }
        assert_eq!(decode(&bytes), Err(Amf0Error::TooDeep));
    }

    #[test]
    fn amf0_rejects_truncated_string() {
        assert_eq!(
            decode(&[STRING, 0x00, 0x05, b'a']),
            Err(Amf0Error::Truncated { offset: 3 })
        );
    }

    proptest! {
        #[test]
        fn amf0_decode_never_panics_on_random_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = decode(&bytes);
        }

        #[test]
        fn amf0_decode_never_panics_on_structured_garbage(
            parts in proptest::collection::vec(
                prop_oneof![
                    Just(vec![OBJECT]), Just(vec![STRICT_ARRAY, 0, 0, 0, 3]), Just(vec![ECMA_ARRAY, 0, 0, 0, 1]),
                    Just(vec![0, 1, b'k']), Just(vec![0, 0, OBJECT_END]), Just(vec![STRING, 0, 2, b'h', b'i']),
                    Just(vec![NUMBER, 0, 0, 0, 0, 0, 0, 0, 0]), Just(vec![NULL]), Just(vec![OBJECT_END]),
                    proptest::collection::vec(any::<u8>(), 1..4),
                ],
                0..64,
            )
        ) {
            let bytes: Vec<u8> = parts.concat();
            let _ = decode(&bytes);
        }

        #[test]
        fn amf0_round_trips_commands(name in "[a-zA-Z@_]{1,20}", txn in 0u32..1000, s in "\\PC{0,40}") {
            let values = vec![string(&name), Amf0Value::Number(f64::from(txn)), Amf0Value::Null, string(&s)];
            prop_assert_eq!(decode(&encode(&values).unwrap()).unwrap(), values);
        }
    }
}
