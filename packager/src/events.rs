//! Timed events carried with the media: timed metadata posted through the API, stamped with a
//! presentation time on the stream's output timeline and written
//! - into CMAF as an `emsg` box with an ID3 tag ([`crate::cmaf::emsg`], the AOM ID3 scheme) before the
//!   chunk of the part that holds the stamped frame, in every video rendition (in the audio rendition
//!   when the stream has no video: a player demuxing both would otherwise raise each event twice —
//!   hls.js adds a cue per `emsg` of either);
//! - into every LL-HLS media playlist as `EXT-X-DATERANGE` (RFC 8216bis §4.4.5.1), dated on the
//!   EXT-X-PROGRAM-DATE-TIME clock;
//! - into the MPD as an `InbandEventStream` declaration of the ID3 scheme (ISO/IEC 23009-1 §5.10.3.2).
//!
//! Sans-IO: the caller stamps each event with a presentation time ([`crate::StreamPackager::add_event`]).

use std::{fmt::Write as _, sync::Arc};

use base64::Engine as _;

/// The most bytes of an event's data (its ID3 frame and its DATERANGE attribute grow with it).
pub const MAX_DATA_BYTES: usize = 16 * 1024;
/// The most bytes of an event's id or class.
pub const MAX_NAME_BYTES: usize = 256;

/// What kind of event it is (metrics and the API count per kind).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EventKind {
    /// Timed metadata from the API.
    Metadata,
    /// An SCTE-35 splice marker (from the publisher, or an ad break asked through the API).
    Scte35,
}

impl EventKind {
    /// The kind's name in metrics labels and the API.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Metadata => "metadata",
            EventKind::Scte35 => "scte35",
        }
    }
}

/// Which way an SCTE-35 marker splices (RFC 8216bis §4.4.5.1.4 names the attribute after it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpliceDirection {
    /// Out of the network feed: a break starts (`SCTE35-OUT`).
    Out,
    /// Back in: the break ends (`SCTE35-IN`).
    In,
    /// Any other command (`SCTE35-CMD`).
    Cmd,
}

/// An SCTE-35 splice marker to carry: the section as received (or written), and what the caller read
/// from it (the packager does not parse SCTE-35).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpliceMarker {
    /// The DATERANGE `ID`: an out and the in that ends it share one (`splice-{splice_event_id}`,
    /// `signal-{segmentation_event_id}`), so a player pairs them.
    pub id: String,
    /// Out, in or another command.
    pub direction: SpliceDirection,
    /// The whole splice_info_section (SCTE 35 §9.6), CRC included.
    pub section: bytes::Bytes,
    /// The break's announced duration, ms (`PLANNED-DURATION` of an out).
    pub planned_duration_ms: Option<u64>,
}

impl SpliceMarker {
    /// The splice points this marker at `at_90khz` asks a ladder to start segments at (90 kHz ticks,
    /// the same timeline): an out and, when it announces a duration, its planned return; an in; none
    /// for another command (a cancel, a time_signal that neither starts nor ends a break).
    pub fn splice_points(&self, at_90khz: i64) -> Vec<i64> {
        match self.direction {
            SpliceDirection::Out => std::iter::once(at_90khz)
                .chain(self.planned_duration_ms.map(|ms| {
                    at_90khz.saturating_add(i64::try_from(ms).unwrap_or(i64::MAX / 90) * 90)
                }))
                .collect(),
            SpliceDirection::In => vec![at_90khz],
            SpliceDirection::Cmd => Vec::new(),
        }
    }
}

/// What a stamped event carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventPayload {
    /// Timed metadata.
    Metadata(TimedMetadata),
    /// An SCTE-35 marker.
    Splice(SpliceMarker),
}

impl EventPayload {
    /// The DATERANGE `ID`.
    pub fn id(&self) -> &str {
        match self {
            EventPayload::Metadata(m) => &m.id,
            EventPayload::Splice(s) => &s.id,
        }
    }

    /// Its kind.
    pub fn kind(&self) -> EventKind {
        match self {
            EventPayload::Metadata(_) => EventKind::Metadata,
            EventPayload::Splice(_) => EventKind::Scte35,
        }
    }
}

/// A timed metadata event as posted, before it is stamped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimedMetadata {
    /// Unique among the stream's events in the window (the DATERANGE `ID`, the ID3 frame's
    /// description): printable ASCII without `"`, at most [`MAX_NAME_BYTES`].
    pub id: String,
    /// The DATERANGE `CLASS` (e.g. `com.example.gift`): same alphabet and limit as `id`.
    pub class: Option<String>,
    /// The payload, UTF-8 text (JSON is passed as its text), at most [`MAX_DATA_BYTES`].
    pub data: String,
    /// How long the event lasts, ms (DATERANGE `DURATION`, the `emsg` `event_duration`).
    pub duration_ms: Option<u64>,
}

/// Why an event is refused ([`TimedMetadata::validate`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EventError {
    /// An empty id.
    #[error("the event has no id")]
    MissingId,
    /// An id or class with a character a DATERANGE quoted-string cannot carry, or too long.
    #[error("{field} must be 1 to {MAX_NAME_BYTES} printable ASCII characters without '\"'")]
    BadName {
        /// `id` or `class`.
        field: &'static str,
    },
    /// Data over [`MAX_DATA_BYTES`].
    #[error("data of {len_bytes} bytes is over the limit of {MAX_DATA_BYTES}")]
    TooLarge {
        /// Its length.
        len_bytes: usize,
    },
}

fn is_quoted_string_safe(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_NAME_BYTES
        && s.bytes().all(|b| (0x20..0x7f).contains(&b) && b != b'"')
}

impl TimedMetadata {
    /// Check the limits above.
    pub fn validate(&self) -> Result<(), EventError> {
        if self.id.is_empty() {
            return Err(EventError::MissingId);
        }
        if !is_quoted_string_safe(&self.id) {
            return Err(EventError::BadName { field: "id" });
        }
        if self
            .class
            .as_deref()
            .is_some_and(|c| !is_quoted_string_safe(c))
        {
            return Err(EventError::BadName { field: "class" });
        }
        if self.data.len() > MAX_DATA_BYTES {
            return Err(EventError::TooLarge {
                len_bytes: self.data.len(),
            });
        }
        Ok(())
    }
}

/// An event placed on the stream's output timeline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StampedEvent {
    /// Order of arrival within the stream (the `emsg` id): events stamped with the same frame keep it.
    pub sequence: u32,
    /// What it carries.
    pub payload: EventPayload,
    /// Presentation time of the frame it is stamped with (a splice: its splice time), output timeline,
    /// 90 kHz ticks.
    pub pts_90khz: i64,
    /// That frame's EXT-X-PROGRAM-DATE-TIME (Unix ms), once the stream's wall-clock anchor is known.
    pub program_date_time_ms: Option<i64>,
    /// For a splice back in: the out it ends (same id), as (its presentation time in 90 kHz ticks, its
    /// program date time in Unix ms once known). Its DATERANGE then repeats the out's `START-DATE`
    /// with the break's `DURATION` (RFC 8216bis §4.4.5.1: tags with one ID agree on their attributes).
    pub opened_by: Option<(i64, Option<i64>)>,
    /// The ID3v2.4 tag its `emsg` carries ([`id3_tag`]): timed metadata only.
    pub id3: Option<Arc<[u8]>>,
}

impl StampedEvent {
    /// The kind of event.
    pub fn kind(&self) -> EventKind {
        self.payload.kind()
    }

    /// The DATERANGE `ID`.
    pub fn id(&self) -> &str {
        self.payload.id()
    }

    /// The `emsg` box of this event for a track of `timescale` ticks per second (empty for an event
    /// that is not carried in the segments: an SCTE-35 marker).
    pub fn emsg(&self, timescale: u32) -> Vec<u8> {
        let (EventPayload::Metadata(event), Some(id3)) = (&self.payload, &self.id3) else {
            return Vec::new();
        };
        let pts = media::time::rescale(self.pts_90khz, 90_000, timescale).max(0);
        let duration = event
            .duration_ms
            .map_or(crate::cmaf::emsg::UNKNOWN_DURATION, |ms| {
                u32::try_from(u128::from(ms) * u128::from(timescale) / 1000)
                    .unwrap_or(u32::MAX - 1)
                    .min(u32::MAX - 1)
            });
        crate::cmaf::emsg::try_write_emsg(&crate::cmaf::emsg::EventMessage {
            timescale,
            presentation_time: u64::try_from(pts).unwrap_or(0),
            event_duration: duration,
            id: self.sequence,
            scheme_id_uri: crate::cmaf::emsg::ID3_SCHEME,
            value: "",
            message_data: id3,
        })
        .unwrap_or_else(|error| {
            tracing::error!(id = %event.id, %error, "cannot write emsg");
            Vec::new()
        })
    }

    /// The `EXT-X-DATERANGE` tag line (with its newline), or `None` before the program date time is
    /// known. RFC 8216bis §4.4.5.1: `ID`, `CLASS`, `START-DATE`, `DURATION` (seconds) and the data in
    /// `X-DATA`, base64 (RFC 4648 §4) in a quoted-string, since a quoted-string cannot carry `"` or a
    /// line break.
    ///
    /// An SCTE-35 marker (§4.4.5.1.4): its section in hex as `SCTE35-OUT` (with `PLANNED-DURATION`
    /// when the break announces one), `SCTE35-IN` or `SCTE35-CMD`; a splice back in that ends an out
    /// listed under the same id repeats the out's `START-DATE` and adds the break's `DURATION`.
    pub fn daterange(&self) -> Option<String> {
        let own_start = self.program_date_time_ms?;
        match &self.payload {
            EventPayload::Metadata(e) => {
                let mut line = format!(
                    "#EXT-X-DATERANGE:ID=\"{}\",START-DATE=\"{}\"",
                    e.id,
                    crate::hls::format_program_date_time(own_start)
                );
                if let Some(class) = &e.class {
                    let _ = write!(line, ",CLASS=\"{class}\"");
                }
                if let Some(ms) = e.duration_ms {
                    let _ = write!(line, ",DURATION={:.3}", ms as f64 / 1000.0);
                }
                let _ = writeln!(
                    line,
                    ",X-DATA=\"{}\"",
                    base64::engine::general_purpose::STANDARD.encode(e.data.as_bytes())
                );
                Some(line)
            }
            EventPayload::Splice(m) => {
                let (start, duration_s) = match (m.direction, self.opened_by) {
                    (SpliceDirection::In, Some((out_pts, Some(out_ms)))) => (
                        out_ms,
                        Some((self.pts_90khz - out_pts).max(0) as f64 / 90_000.0),
                    ),
                    _ => (own_start, None),
                };
                let mut line = format!(
                    "#EXT-X-DATERANGE:ID=\"{}\",START-DATE=\"{}\"",
                    m.id,
                    crate::hls::format_program_date_time(start)
                );
                if let Some(d) = duration_s {
                    let _ = write!(line, ",DURATION={d:.3}");
                }
                if let (SpliceDirection::Out, Some(ms)) = (m.direction, m.planned_duration_ms) {
                    let _ = write!(line, ",PLANNED-DURATION={:.3}", ms as f64 / 1000.0);
                }
                let attribute = match m.direction {
                    SpliceDirection::Out => "SCTE35-OUT",
                    SpliceDirection::In => "SCTE35-IN",
                    SpliceDirection::Cmd => "SCTE35-CMD",
                };
                // A hexadecimal-sequence: [0-9A-F] after 0x (RFC 8216bis §4.2).
                let _ = write!(line, ",{attribute}=0x");
                for b in m.section.iter() {
                    let _ = write!(line, "{b:02X}");
                }
                line.push('\n');
                Some(line)
            }
        }
    }
}

/// An ID3v2.4 tag (id3.org ID3v2.4.0 structure §3) with one `TXXX` frame (frames §4.2.6): UTF-8
/// (encoding 3), the description `description`, the value `value`. Sizes are syncsafe integers.
pub fn id3_tag(description: &str, value: &str) -> Vec<u8> {
    let mut frame = Vec::with_capacity(2 + description.len() + value.len());
    frame.push(3);
    frame.extend_from_slice(
        description
            .split('\0')
            .next()
            .unwrap_or_default()
            .as_bytes(),
    );
    frame.push(0);
    frame.extend_from_slice(value.as_bytes());
    let mut tag = Vec::with_capacity(20 + frame.len());
    tag.extend_from_slice(b"ID3\x04\x00\x00");
    tag.extend_from_slice(&syncsafe(10 + frame.len()));
    tag.extend_from_slice(b"TXXX");
    tag.extend_from_slice(&syncsafe(frame.len()));
    tag.extend_from_slice(&[0, 0]);
    tag.extend_from_slice(&frame);
    tag
}

/// A 28-bit syncsafe integer (ID3v2.4 structure §6.2): 7 bits per byte. Sizes over 2^28 − 1 are cut
/// to it (an event's data is far below).
fn syncsafe(n: usize) -> [u8; 4] {
    let n = u32::try_from(n).unwrap_or(u32::MAX).min((1 << 28) - 1);
    [
        (n >> 21) as u8 & 0x7f,
        (n >> 14) as u8 & 0x7f,
        (n >> 7) as u8 & 0x7f,
        n as u8 & 0x7f,
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(data: &str) -> TimedMetadata {
        TimedMetadata {
            id: "gift-42".into(),
            class: Some("com.example.gift".into()),
            data: data.into(),
            duration_ms: Some(5000),
        }
    }

    #[test]
    fn id3_tag_is_one_txxx_frame_with_syncsafe_sizes() {
        let value = "x".repeat(300);
        let tag = id3_tag("gift-42", &value);
        assert_eq!(&tag[..6], b"ID3\x04\x00\x00");
        let size = |b: &[u8]| {
            (usize::from(b[0]) << 21)
                | (usize::from(b[1]) << 14)
                | (usize::from(b[2]) << 7)
                | usize::from(b[3])
        };
        assert_eq!(size(&tag[6..10]), tag.len() - 10);
        assert_eq!(&tag[10..14], b"TXXX");
        assert_eq!(size(&tag[14..18]), tag.len() - 20);
        assert!(tag[6..10].iter().chain(&tag[14..18]).all(|b| b & 0x80 == 0));
        assert_eq!(tag[20], 3);
        assert_eq!(&tag[21..28], b"gift-42");
        assert_eq!(tag[28], 0);
        assert_eq!(&tag[29..], value.as_bytes());
    }

    #[test]
    fn validate_refuses_what_a_daterange_cannot_carry() {
        assert_eq!(event("{}").validate(), Ok(()));
        let mut e = event("");
        e.id = String::new();
        assert_eq!(e.validate(), Err(EventError::MissingId));
        e.id = "a\"b".into();
        assert_eq!(e.validate(), Err(EventError::BadName { field: "id" }));
        e.id = "ok".into();
        e.class = Some("line\nbreak".into());
        assert_eq!(e.validate(), Err(EventError::BadName { field: "class" }));
        let big = event(&"x".repeat(MAX_DATA_BYTES + 1));
        assert!(matches!(big.validate(), Err(EventError::TooLarge { .. })));
    }

    #[test]
    fn daterange_carries_id_class_date_duration_and_base64_data() {
        let e = StampedEvent {
            sequence: 3,
            payload: EventPayload::Metadata(event("{\"a\":1}")),
            pts_90khz: 900_000,
            program_date_time_ms: Some(1_700_000_000_123),
            opened_by: None,
            id3: Some(id3_tag("gift-42", "{\"a\":1}").into()),
        };
        assert_eq!(
            e.daterange().unwrap(),
            "#EXT-X-DATERANGE:ID=\"gift-42\",START-DATE=\"2023-11-14T22:13:20.123Z\",\
             CLASS=\"com.example.gift\",DURATION=5.000,X-DATA=\"eyJhIjoxfQ==\"\n"
        );
        let unknown = StampedEvent {
            program_date_time_ms: None,
            ..e
        };
        assert_eq!(unknown.daterange(), None);
    }

    #[test]
    fn emsg_time_is_the_stamp_in_the_track_timescale() {
        use mp4_atom::{Decode, Emsg, EmsgTimestamp};
        let e = StampedEvent {
            sequence: 9,
            payload: EventPayload::Metadata(event("hi")),
            pts_90khz: 90_000 * 10,
            program_date_time_ms: None,
            opened_by: None,
            id3: Some(id3_tag("gift-42", "hi").into()),
        };
        let emsg = Emsg::decode(&mut e.emsg(48_000).as_slice()).unwrap();
        assert_eq!(emsg.timescale, 48_000);
        assert_eq!(emsg.presentation_time, EmsgTimestamp::Absolute(480_000));
        assert_eq!(emsg.event_duration, 240_000);
        assert_eq!(emsg.id, 9);
        assert_eq!(emsg.message_data, id3_tag("gift-42", "hi"));
    }

    #[test]
    fn splice_markers_are_scte35_dateranges_and_an_in_closes_its_out() {
        let section = bytes::Bytes::from_static(&[0xFC, 0x30, 0x11]);
        let marker = |direction| SpliceMarker {
            id: "splice-7".into(),
            direction,
            section: section.clone(),
            planned_duration_ms: Some(30_000),
        };
        let out = StampedEvent {
            sequence: 1,
            payload: EventPayload::Splice(marker(SpliceDirection::Out)),
            pts_90khz: 900_000,
            program_date_time_ms: Some(1_700_000_000_000),
            opened_by: None,
            id3: None,
        };
        assert_eq!(
            out.daterange().unwrap(),
            "#EXT-X-DATERANGE:ID=\"splice-7\",START-DATE=\"2023-11-14T22:13:20.000Z\",\
             PLANNED-DURATION=30.000,SCTE35-OUT=0xFC3011\n"
        );
        assert!(out.emsg(90_000).is_empty(), "not in the segments");
        let back = StampedEvent {
            sequence: 2,
            payload: EventPayload::Splice(marker(SpliceDirection::In)),
            pts_90khz: 900_000 + 29 * 90_000,
            program_date_time_ms: Some(1_700_000_029_000),
            opened_by: Some((900_000, Some(1_700_000_000_000))),
            id3: None,
        };
        assert_eq!(
            back.daterange().unwrap(),
            "#EXT-X-DATERANGE:ID=\"splice-7\",START-DATE=\"2023-11-14T22:13:20.000Z\",\
             DURATION=29.000,SCTE35-IN=0xFC3011\n"
        );
        assert_eq!(back.kind(), EventKind::Scte35);
    }
}
