//! Transport stream packets (ISO/IEC 13818-1 §2.4.3.2–4) and continuity counting (§2.4.3.3).

use super::TS_PACKET_BYTES;

/// The fields of a transport packet header (§2.4.3.2) and adaptation field (§2.4.3.4) that we use.
#[derive(Debug, Clone, Copy)]
pub(super) struct Packet<'a> {
    pub(super) pid: u16,
    pub(super) is_unit_start: bool,
    pub(super) scrambling_control: u8,
    pub(super) continuity_counter: u8,
    pub(super) has_payload: bool,
    pub(super) is_discontinuity: bool,
    /// random_access_indicator: the PES starting in this packet begins a random access point (§2.4.3.5).
    pub(super) is_random_access: bool,
    pub(super) payload: &'a [u8],
}

/// Why a packet is unusable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(super) enum PacketFault {
    #[error("transport_error_indicator set")]
    TransportError,
    #[error("reserved adaptation_field_control")]
    ReservedAdaptationFieldControl,
    #[error("adaptation_field_length {0} overruns the packet")]
    AdaptationFieldLength(u8),
}

/// Parse a 188-byte packet (sync byte already checked).
///
/// Header (§2.4.3.2): sync_byte u8, transport_error_indicator u1, payload_unit_start_indicator u1,
/// transport_priority u1, PID u13, transport_scrambling_control u2, adaptation_field_control u2,
/// continuity_counter u4. Adaptation field (§2.4.3.4): adaptation_field_length u8, then (if > 0)
/// discontinuity_indicator u1, random_access_indicator u1 and other flags.
pub(super) fn parse_packet(b: &[u8]) -> Result<Packet<'_>, PacketFault> {
    if b[1] & 0x80 != 0 {
        return Err(PacketFault::TransportError);
    }
    let pid = u16::from_be_bytes([b[1], b[2]]) & 0x1FFF;
    let adaptation_field_control = (b[3] >> 4) & 0x03;
    let (has_adaptation, has_payload) = match adaptation_field_control {
        0b01 => (false, true),
        0b10 => (true, false),
        0b11 => (true, true),
        _ => return Err(PacketFault::ReservedAdaptationFieldControl),
    };
    let mut payload_start = 4;
    let mut is_discontinuity = false;
    let mut is_random_access = false;
    if has_adaptation {
        let len = b[4];
        payload_start = 5 + usize::from(len);
        if payload_start > TS_PACKET_BYTES {
            return Err(PacketFault::AdaptationFieldLength(len));
        }
        is_discontinuity = len > 0 && b[5] & 0x80 != 0;
        is_random_access = len > 0 && b[5] & 0x40 != 0;
    }
    Ok(Packet {
        pid,
        is_unit_start: b[1] & 0x40 != 0,
        scrambling_control: b[3] >> 6,
        continuity_counter: b[3] & 0x0F,
        has_payload,
        is_discontinuity,
        is_random_access,
        payload: if has_payload {
            &b[payload_start..TS_PACKET_BYTES]
        } else {
            &[]
        },
    })
}

/// Continuity-counter tracking for one PID (§2.4.3.3).
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct Continuity {
    last: Option<u8>,
    has_duplicate: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum CcCheck {
    InOrder,
    /// The same counter again: a duplicate packet (allowed once), to be skipped.
    Duplicate,
    /// Packets were lost (or reordered).
    Gap,
}

impl Continuity {
    /// Check the next packet's counter. The counter only advances with a payload; a
    /// `discontinuity_indicator` (or the first packet) sets it without error.
    pub(super) fn check(&mut self, p: &Packet<'_>) -> CcCheck {
        if !p.has_payload {
            return CcCheck::InOrder;
        }
        let cc = p.continuity_counter;
        let Some(last) = self.last.filter(|_| !p.is_discontinuity) else {
            self.last = Some(cc);
            self.has_duplicate = false;
            return CcCheck::InOrder;
        };
        if cc == last && !self.has_duplicate {
            self.has_duplicate = true;
            return CcCheck::Duplicate;
        }
        self.has_duplicate = false;
        self.last = Some(cc);
        if cc == (last + 1) & 0x0F {
            CcCheck::InOrder
        } else {
            CcCheck::Gap
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ts_continuity_counter_wraps_and_ignores_packets_without_payload() {
        let mut cc = Continuity::default();
        let p = |counter: u8, has_payload: bool, is_discontinuity: bool| Packet {
            pid: 0x100,
            is_unit_start: false,
            scrambling_control: 0,
            continuity_counter: counter,
            has_payload,
            is_discontinuity,
            is_random_access: false,
            payload: &[],
        };
        assert_eq!(cc.check(&p(14, true, false)), CcCheck::InOrder);
        assert_eq!(cc.check(&p(15, true, false)), CcCheck::InOrder);
        assert_eq!(cc.check(&p(7, false, false)), CcCheck::InOrder); // adaptation field only
        assert_eq!(cc.check(&p(0, true, false)), CcCheck::InOrder); // 15 -> 0
        assert_eq!(cc.check(&p(0, true, false)), CcCheck::Duplicate);
        assert_eq!(cc.check(&p(0, true, false)), CcCheck::Gap); // a second repeat is an error
        assert_eq!(cc.check(&p(5, true, false)), CcCheck::Gap);
        assert_eq!(cc.check(&p(9, true, true)), CcCheck::InOrder); // discontinuity_indicator
    }
}
