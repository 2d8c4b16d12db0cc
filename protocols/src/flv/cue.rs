//! RTMP `onCuePoint` ad markers ([`crate::rtmp::cue_point`]) placed on the publish's timeline.

use media::MediaTime;
use media::time::rescale;

use super::FlvParser;
use crate::rtmp::cue_point::CuePoint;
use crate::scte35::{self, SpliceInfo};
use crate::{IngestEvent, SpliceEvent};

impl FlvParser {
    /// An ad marker from an `onCuePoint` data message with its 32-bit RTMP timestamp (ms, the clock
    /// of the media messages): appends the SCTE-35 splice_insert it stands for (SCTE 35 §9.7.3),
    /// splicing at timestamp + pre-roll on the frames' 90 kHz timeline — out of the network with
    /// the break's duration and auto return, or back in. A timestamp behind the last media message
    /// (encoders that send data messages at 0) counts from that message instead. The media clock
    /// is not moved.
    pub fn cue_point(&mut self, timestamp_ms: u32, cue: &CuePoint, out: &mut Vec<IngestEvent>) {
        let stamped = self.timestamps.nearest(u64::from(timestamp_ms));
        let at_ms = self
            .timestamps
            .last()
            .map_or(stamped, |last| last.max(stamped))
            + i64::try_from(cue.pre_roll_ms).unwrap_or(i64::MAX / 2);
        let at_90khz = rescale(at_ms, 1000, MediaTime::HZ_90K);
        let section = scte35::write_splice_insert(
            cue.event_id,
            cue.start,
            Some(at_90khz.rem_euclid(1 << 33) as u64),
            cue.duration_ms.map(|d| d * 90),
        );
        match SpliceInfo::parse(&section) {
            Ok(info) => out.push(IngestEvent::Splice(SpliceEvent {
                info,
                pts_90khz: Some(at_90khz),
            })),
            // A section written here always reads back; should it not, say so.
            Err(e) => tracing::warn!(error = %e, ?cue, "cue point: splice_insert not written"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scte35::SpliceDirection;

    #[test]
    fn a_cue_point_splices_at_its_timestamp_plus_pre_roll_with_its_duration() {
        let mut p = FlvParser::new(1 << 20);
        let mut out = Vec::new();
        let cue = CuePoint {
            event_id: 9,
            start: true,
            pre_roll_ms: 2000,
            duration_ms: Some(6000),
        };
        p.cue_point(10_000, &cue, &mut out);
        let [IngestEvent::Splice(splice)] = out.as_slice() else {
            panic!("{out:?}")
        };
        assert_eq!(splice.pts_90khz, Some(12_000 * 90));
        assert_eq!(splice.info.direction(), SpliceDirection::Out);
        assert_eq!(splice.info.duration_90khz(), Some(6000 * 90));
        // Back in: a timestamp behind the media (0) counts from the last media message.
        let mut p = FlvParser::new(1 << 20);
        let _ = p.timestamps.unwrap(100_000);
        out.clear();
        let back = CuePoint {
            start: false,
            pre_roll_ms: 500,
            duration_ms: None,
            ..cue
        };
        p.cue_point(0, &back, &mut out);
        let [IngestEvent::Splice(splice)] = out.as_slice() else {
            panic!("{out:?}")
        };
        assert_eq!(splice.pts_90khz, Some(100_500 * 90));
        assert_eq!(splice.info.direction(), SpliceDirection::In);
        // Across the 32-bit wrap, on the unwrapped clock.
        let mut p = FlvParser::new(1 << 20);
        let _ = p.timestamps.unwrap(u64::from(u32::MAX - 1));
        out.clear();
        p.cue_point(5, &back, &mut out);
        let [IngestEvent::Splice(splice)] = out.as_slice() else {
            panic!("{out:?}")
        };
        assert_eq!(splice.pts_90khz, Some(((1i64 << 32) + 505) * 90));
    }
}
