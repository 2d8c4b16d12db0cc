//! What the protocol cores report: tracks, frames, tracks that cannot be used, splice markers.

use media::{Frame, TrackInfo, TrackKind};

/// What an ingest driver reports for a publish session, in order of arrival.
#[derive(Debug, Clone)]
pub enum IngestEvent {
    /// A track's codec configuration: sent before the first frame of that track, and again whenever the
    /// publisher changes it (e.g. a new resolution). Frames that follow use it.
    Track(TrackInfo),
    /// One encoded frame, timestamps unwrapped and in its track's timescale.
    Frame(Frame),
    /// The publisher sends a track in a codec ingest cannot parse (an FLV codec id or FourCC, an MPEG-TS
    /// stream_type we do not handle): sent once when it is first seen (and again if the codec changes),
    /// so the session can refuse the publish (video) or report the track (audio). Its frames are dropped
    /// and counted by the parser.
    Unusable(UnusableTrack),
    /// An SCTE-35 splice_info_section the publisher sent (MPEG-TS stream type 0x86), read and its CRC
    /// checked, with when it splices.
    Splice(SpliceEvent),
}

/// An SCTE-35 section from the publisher and when it takes effect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpliceEvent {
    /// The section, read.
    pub info: crate::scte35::SpliceInfo,
    /// When it splices, on the frames' input timeline (90 kHz ticks, unwrapped as the frames'
    /// timestamps are); `None` for "at once" (an immediate splice, a time_signal without a time, a
    /// heartbeat).
    pub pts_90khz: Option<i64>,
}

/// A track of a publish that Estuary does not use, and why. Reported in the log, the JSON API and the
/// metrics; never dropped silently.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnusableTrack {
    /// Video or audio.
    pub kind: TrackKind,
    /// The codec as the source names it, lower case (`mp3`, `screen video`, `fourcc vp08`,
    /// `stream_type 0x10` …).
    pub codec: String,
    /// Why it cannot be used, lower case, e.g. `codec not supported`.
    pub reason: String,
}

impl UnusableTrack {
    /// A track whose codec ingest does not support.
    pub fn unsupported(kind: TrackKind, codec: impl Into<String>) -> Self {
        Self {
            kind,
            codec: codec.into(),
            reason: "codec not supported".to_owned(),
        }
    }

    /// `video` or `audio`.
    pub fn kind_name(&self) -> &'static str {
        match self.kind {
            TrackKind::Video => "video",
            TrackKind::Audio => "audio",
        }
    }
}

impl std::fmt::Display for UnusableTrack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} codec {}: {}",
            self.kind_name(),
            self.codec,
            self.reason
        )
    }
}
