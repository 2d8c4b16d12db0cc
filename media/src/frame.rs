//! One encoded access unit.

use bytes::Bytes;

use crate::codec::TrackKind;

/// One encoded access unit (a video frame or an audio frame) with its timestamps.
///
/// Timestamps are in the track's timescale ([`crate::TrackInfo::timescale`]): 90 kHz for video, the
/// sample rate for audio. They are unwrapped (64-bit, monotonic DTS within a publish session).
///
/// `data` is the sample as CMAF stores it: for H.264/HEVC, NAL units each prefixed by a 4-byte big-endian
/// length (ISO/IEC 14496-15 §5.3.2, `lengthSizeMinusOne = 3`), without parameter sets being required;
/// for AAC, one raw access unit (no ADTS header). For a decodable codec
/// ([`crate::CodecConfig::Decodable`]), the codec's own access unit as its decoder takes it (see
/// [`crate::decodable`]).
#[derive(Clone, PartialEq, Eq)]
pub struct Frame {
    /// Which track of the stream the frame belongs to.
    pub track: TrackKind,
    /// Decode timestamp, in track timescale ticks.
    pub dts: i64,
    /// Presentation timestamp, in track timescale ticks (`pts - dts` is the composition offset, may be < 0
    /// only for malformed sources; it is kept as signed).
    pub pts: i64,
    /// True for a sync sample (IDR / IRAP for video, an I picture with its sequence header for MPEG-2, the
    /// publisher's keyframe flag for the other decodable video codecs; every audio frame).
    pub is_keyframe: bool,
    /// The sample bytes (see the type docs for the layout).
    pub data: Bytes,
}

impl Frame {
    /// Composition offset `pts - dts`, in track timescale ticks.
    pub fn composition_offset(&self) -> i64 {
        self.pts - self.dts
    }
}

impl std::fmt::Debug for Frame {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Frame")
            .field("track", &self.track)
            .field("dts", &self.dts)
            .field("pts", &self.pts)
            .field("is_keyframe", &self.is_keyframe)
            .field("len_bytes", &self.data.len())
            .finish()
    }
}
