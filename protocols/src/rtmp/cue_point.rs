//! Ad markers that RTMP encoders send in the stream: an AMF0 data message (type 18, or 15 for AMF3)
//! named `onCuePoint` (also behind `@setDataFrame`), whose object says where an ad break starts.
//!
//! The layout read is YouTube Live's RTMP cue point, the one publicly documented and the one
//! OvenMediaEngine's RTMP push sends:
//!
//! | property             | AMF0 type | meaning                                            |
//! |----------------------|-----------|----------------------------------------------------|
//! | `type`               | string    | `com.youtube.cuepoint`                             |
//! | `version`            | string    | `0.1` (not checked)                                |
//! | `pre_roll_time_sec`  | number    | seconds from the message's timestamp to the break  |
//! | `cue_point_start`    | boolean   | true: the break starts; false: it ends early       |
//! | `break_duration_sec` | number    | the break's length, s (optional on an end)         |
//! | `splice_event_id`    | number    | the SCTE-35 splice_event_id to use (default 0)     |
//!
//! The ingest turns one into the SCTE-35 splice_insert it stands for (SCTE 35 §9.7.3): out of the
//! network at timestamp + pre-roll with the break's duration and auto return, or back in. Other
//! `onCuePoint` layouts (the vendor-specific ones of some broadcast encoders) are refused with the
//! reason, never guessed at.

use super::amf::{self, Amf0Value};

/// The `type` of a YouTube Live cue point.
pub const YOUTUBE_CUE_POINT_TYPE: &str = "com.youtube.cuepoint";

/// The longest pre-roll taken, ms: a cue point further ahead is refused.
pub const MAX_PRE_ROLL_MS: u64 = 60 * 60 * 1000;

/// The longest ad break taken, ms (SCTE-35's break_duration is 33 bits of 90 kHz: about 26.5 h).
pub const MAX_BREAK_MS: u64 = 24 * 60 * 60 * 1000;

/// An ad break announced by an RTMP encoder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CuePoint {
    /// The SCTE-35 splice_event_id.
    pub event_id: u32,
    /// True where the break starts (a splice out of the network), false where it ends early (back in).
    pub start: bool,
    /// From the message's timestamp to the splice, ms.
    pub pre_roll_ms: u64,
    /// The break's planned length, ms (`None` on an end without one).
    pub duration_ms: Option<u64>,
}

/// Why an `onCuePoint` message was not taken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CuePointError {
    /// No object after the name.
    #[error("onCuePoint without an object")]
    NoObject,
    /// A `type` other than YouTube's (truncated to 64 bytes).
    #[error("onCuePoint of type {0:?} is not read (only {YOUTUBE_CUE_POINT_TYPE:?})")]
    UnsupportedType(String),
    /// A property missing or out of range.
    #[error("onCuePoint {property}: {why}")]
    Invalid {
        /// The property.
        property: &'static str,
        /// What is wrong with it.
        why: &'static str,
    },
}

/// Read the values of a data message named `onCuePoint` (`values` are those after the name).
/// Errors: see [`CuePointError`].
pub fn parse(values: &[Amf0Value]) -> Result<CuePoint, CuePointError> {
    let object = amf::as_object(values.first()).ok_or(CuePointError::NoObject)?;
    let kind = amf::as_str(object.get("type")).unwrap_or("");
    if kind != YOUTUBE_CUE_POINT_TYPE {
        return Err(CuePointError::UnsupportedType(
            kind.chars().take(64).collect(),
        ));
    }
    let start = match object.get("cue_point_start") {
        Some(Amf0Value::Boolean(b)) => *b,
        Some(Amf0Value::Number(n)) => *n != 0.0,
        _ => {
            return Err(CuePointError::Invalid {
                property: "cue_point_start",
                why: "missing or not a boolean",
            });
        }
    };
    let seconds_ms = |property: &'static str, max_ms: u64| -> Result<Option<u64>, CuePointError> {
        match object.get(property) {
            None | Some(Amf0Value::Null) | Some(Amf0Value::Undefined) => Ok(None),
            Some(Amf0Value::Number(s)) if s.is_finite() && *s >= 0.0 => {
                let ms = (s * 1000.0).round();
                if ms > max_ms as f64 {
                    Err(CuePointError::Invalid {
                        property,
                        why: "too long",
                    })
                } else {
                    Ok(Some(ms as u64))
                }
            }
            Some(_) => Err(CuePointError::Invalid {
                property,
                why: "not a number of seconds ≥ 0",
            }),
        }
    };
    let pre_roll_ms = seconds_ms("pre_roll_time_sec", MAX_PRE_ROLL_MS)?.unwrap_or(0);
    let duration_ms = seconds_ms("break_duration_sec", MAX_BREAK_MS)?;
    if start && duration_ms.is_none_or(|d| d == 0) {
        return Err(CuePointError::Invalid {
            property: "break_duration_sec",
            why: "a break's start needs a duration over 0 s",
        });
    }
    let event_id = match object.get("splice_event_id") {
        None => 0,
        Some(Amf0Value::Number(n))
            if n.fract() == 0.0 && (0.0..=f64::from(u32::MAX)).contains(n) =>
        {
            *n as u32
        }
        Some(_) => {
            return Err(CuePointError::Invalid {
                property: "splice_event_id",
                why: "not a 32-bit unsigned integer",
            });
        }
    };
    Ok(CuePoint {
        event_id,
        start,
        pre_roll_ms,
        duration_ms,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn youtube(start: bool, pre_roll: f64, duration: f64, id: f64) -> Vec<Amf0Value> {
        vec![amf::object([
            ("type", amf::string(YOUTUBE_CUE_POINT_TYPE)),
            ("version", amf::string("0.1")),
            ("pre_roll_time_sec", Amf0Value::Number(pre_roll)),
            ("cue_point_start", Amf0Value::Boolean(start)),
            ("break_duration_sec", Amf0Value::Number(duration)),
            ("splice_event_id", Amf0Value::Number(id)),
        ])]
    }

    #[test]
    fn youtube_cue_points_read_as_breaks() {
        assert_eq!(
            parse(&youtube(true, 2.56, 30.0, 7.0)),
            Ok(CuePoint {
                event_id: 7,
                start: true,
                pre_roll_ms: 2560,
                duration_ms: Some(30_000),
            })
        );
        // An early end: no duration needed.
        let end = vec![amf::object([
            ("type", amf::string(YOUTUBE_CUE_POINT_TYPE)),
            ("cue_point_start", Amf0Value::Boolean(false)),
        ])];
        assert_eq!(
            parse(&end),
            Ok(CuePoint {
                event_id: 0,
                start: false,
                pre_roll_ms: 0,
                duration_ms: None,
            })
        );
    }

    #[test]
    fn other_layouts_and_bad_values_are_refused_with_the_reason() {
        assert_eq!(parse(&[]), Err(CuePointError::NoObject));
        let adobe = vec![amf::object([
            ("name", amf::string("scte35")),
            ("type", amf::string("event")),
        ])];
        assert_eq!(
            parse(&adobe),
            Err(CuePointError::UnsupportedType("event".into()))
        );
        assert!(matches!(
            parse(&youtube(true, 2.0, 0.0, 1.0)),
            Err(CuePointError::Invalid {
                property: "break_duration_sec",
                ..
            })
        ));
        assert!(matches!(
            parse(&youtube(true, -1.0, 30.0, 1.0)),
            Err(CuePointError::Invalid {
                property: "pre_roll_time_sec",
                ..
            })
        ));
        assert!(matches!(
            parse(&youtube(true, 1e12, 30.0, 1.0)),
            Err(CuePointError::Invalid {
                property: "pre_roll_time_sec",
                ..
            })
        ));
        assert!(matches!(
            parse(&youtube(true, 1.0, 30.0, 1.5)),
            Err(CuePointError::Invalid {
                property: "splice_event_id",
                ..
            })
        ));
        assert!(matches!(
            parse(&youtube(true, 1.0, f64::NAN, 1.0)),
            Err(CuePointError::Invalid {
                property: "break_duration_sec",
                ..
            })
        ));
    }

    proptest! {
        #[test]
        fn any_amf_object_parses_or_errs_without_panicking(
            pre_roll in proptest::num::f64::ANY,
            duration in proptest::num::f64::ANY,
            id in proptest::num::f64::ANY,
            start in any::<bool>(),
        ) {
            if let Ok(c) = parse(&youtube(start, pre_roll, duration, id)) {
                prop_assert!(c.pre_roll_ms <= MAX_PRE_ROLL_MS);
                prop_assert!(c.duration_ms.is_none_or(|d| d <= MAX_BREAK_MS));
            }
        }
    }
}
