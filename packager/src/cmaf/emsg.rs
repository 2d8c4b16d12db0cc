//! The DASH event message box `emsg` (ISO/IEC 23009-1 §5.10.3.3), version 1: an event with an
//! absolute presentation time on the track's media timeline, placed before a chunk's `moof` (ISO/IEC
//! 23000-19 §7.4.5). The same bytes serve HLS (hls.js, Safari and Shaka read ID3 in `emsg` from fMP4
//! segments) and DASH (declared by an `InbandEventStream` in the MPD).

use super::{CmafError, writer::BoxWriter};

/// One event message, version 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventMessage<'a> {
    /// Ticks per second of `presentation_time` and `event_duration` (use the track's timescale).
    pub timescale: u32,
    /// When the event starts, on the track's media (presentation) timeline, ticks.
    pub presentation_time: u64,
    /// How long it lasts, ticks; `0xFFFF_FFFF` for unknown (ISO/IEC 23009-1 §5.10.3.3.5).
    pub event_duration: u32,
    /// Identifies the event within its scheme and value: a repeat with the same id is the same event.
    pub id: u32,
    /// The event scheme, e.g. [`ID3_SCHEME`].
    pub scheme_id_uri: &'a str,
    /// The scheme's sub-type (empty for ID3).
    pub value: &'a str,
    /// The event's payload, as the scheme defines it.
    pub message_data: &'a [u8],
}

/// The AOM ID3-in-emsg scheme (AOMedia "Carriage of ID3 Timed Metadata in CMAF", §3): `value` is empty
/// and `message_data` is one complete ID3v2 tag.
pub const ID3_SCHEME: &str = "https://aomedia.org/emsg/ID3";

/// `event_duration` of an event whose duration is not known.
pub const UNKNOWN_DURATION: u32 = 0xFFFF_FFFF;

/// Write one `emsg` box (version 1, flags 0).
///
/// Errors: [`CmafError::BoxTooLarge`] for a message over 4 GiB.
pub fn try_write_emsg(message: &EventMessage<'_>) -> Result<Vec<u8>, CmafError> {
    let mut w = BoxWriter::with_capacity(
        12 + 20
            + message.scheme_id_uri.len()
            + message.value.len()
            + 2
            + message.message_data.len(),
    );
    w.full_box(b"emsg", 1, 0, |w| {
        w.u32(message.timescale);
        w.u64(message.presentation_time);
        w.u32(message.event_duration);
        w.u32(message.id);
        // Null-terminated UTF-8 strings (ISO/IEC 14496-12 §4.2 `string`): a NUL inside would end
        // the string early, so it is cut there.
        for s in [message.scheme_id_uri, message.value] {
            w.bytes(s.split('\0').next().unwrap_or_default().as_bytes());
            w.u8(0);
        }
        w.bytes(message.message_data);
    });
    w.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emsg_v1_reads_back_with_an_independent_parser() {
        use mp4_atom::{Decode, Emsg, EmsgTimestamp};
        let bytes = try_write_emsg(&EventMessage {
            timescale: 90_000,
            presentation_time: 1 << 40,
            event_duration: 450_000,
            id: 7,
            scheme_id_uri: ID3_SCHEME,
            value: "",
            message_data: b"ID3 payload",
        })
        .unwrap();
        let emsg = Emsg::decode(&mut bytes.as_slice()).unwrap();
        assert_eq!(emsg.timescale, 90_000);
        assert_eq!(emsg.presentation_time, EmsgTimestamp::Absolute(1 << 40));
        assert_eq!(emsg.event_duration, 450_000);
        assert_eq!(emsg.id, 7);
        assert_eq!(emsg.scheme_id_uri, ID3_SCHEME);
        assert_eq!(emsg.value, "");
        assert_eq!(emsg.message_data, b"ID3 payload");
    }
}
