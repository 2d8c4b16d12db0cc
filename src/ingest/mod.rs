//! Ingest: protocol drivers (RTMP, SRT) that turn a publisher's bytes into [`IngestEvent`]s and hand
//! them to a [`PublishSession`] obtained from a [`Publisher`].
//!
//! The drivers own sockets; the protocol cores beneath them are sans-IO.

use std::net::SocketAddr;

use media::{Frame, TrackInfo, TrackKind};

pub mod flv;
pub mod rtmp;
pub mod srt;
pub mod ts;

/// The transport a stream was published with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// RTMP (and Enhanced RTMP).
    Rtmp,
    /// SRT carrying MPEG-TS.
    Srt,
}

impl Protocol {
    /// Lower-case name for logs and APIs.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Rtmp => "rtmp",
            Protocol::Srt => "srt",
        }
    }
}

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

/// Why a publish was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PublishRefused {
    /// Another publisher is live on this stream name.
    #[error("stream {0} is already being published")]
    AlreadyLive(String),
    /// The stream name is not of the form `live/{name}` with a valid name.
    #[error("invalid stream name {0:?}")]
    InvalidName(String),
    /// The server is shutting down or at its stream limit.
    #[error("server unavailable: {0}")]
    Unavailable(&'static str),
    /// The publisher presented no credentials (no publish key).
    #[error("not authorised: {0}")]
    Unauthorized(&'static str),
    /// The publisher's credentials were refused (wrong publish key, or the webhook said no or did not
    /// answer).
    #[error("forbidden: {0}")]
    Forbidden(&'static str),
    /// The stream cannot be served in the codec it arrives in (the video codec is not supported, or the
    /// stream is packaged as it arrives and players cannot play its video codec). Sent after the publish
    /// started, when the track is announced: the driver then closes the connection with this reason.
    #[error("unsupported codec: {0}")]
    UnsupportedCodec(String),
}

/// The pipeline side of ingest: accepts or refuses publishes.
pub trait Publisher: Send + Sync + 'static {
    /// Decide whether `request` may publish (publish key, webhook), before [`Publisher::begin_publish`].
    /// The default allows everything.
    ///
    /// Errors: [`PublishRefused::Unauthorized`], [`PublishRefused::Forbidden`].
    fn authorize<'a>(
        &'a self,
        request: &'a crate::auth::PublishRequest,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), PublishRefused>> + Send + 'a>>
    {
        let _ = request;
        Box::pin(std::future::ready(Ok(())))
    }

    /// Begin publishing `stream` (the full stream name, e.g. `live/demo`). On success the returned session
    /// receives the stream's events; dropping it ends the publish (disconnect or unpublish).
    fn begin_publish(
        &self,
        stream: &str,
        protocol: Protocol,
        peer: SocketAddr,
    ) -> Result<Box<dyn PublishSession>, PublishRefused>;
}

/// One live publish. Calls are cheap and never block on I/O (the packager runs inline).
pub trait PublishSession: Send {
    /// Deliver the next event.
    fn event(&mut self, event: IngestEvent);

    /// True when the publisher should be disconnected (kicked through the API); the driver checks it
    /// after each packet it receives and closes the connection.
    fn is_kicked(&self) -> bool {
        false
    }

    /// Why the publish must end now, if it must: the session refused something the publisher sent (a
    /// video codec it cannot serve). The driver checks it after each packet it receives, tells the
    /// publisher (RTMP: an `onStatus` error with the reason) and closes the connection, logging the reason
    /// once; later events are ignored by the session.
    fn refusal(&self) -> Option<PublishRefused> {
        None
    }

    /// The transport's latest counters (SRT), for metrics. The default ignores them.
    fn transport_stats(&mut self, stats: TransportStats) {
        let _ = stats;
    }
}

/// A transport's receive counters since the connection started (SRT's statistics).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct TransportStats {
    /// Data packets received, retransmissions included.
    pub packets_received: u64,
    /// Data packets detected lost (sequence gaps).
    pub packets_lost: u64,
    /// Retransmitted data packets received.
    pub packets_retransmitted: u64,
    /// Packets dropped too late to play (SRT too-late packet drop).
    pub packets_dropped: u64,
    /// Loss reports (NAKs) sent.
    pub naks_sent: u64,
    /// Payload bytes received.
    pub bytes_received: u64,
}

/// Checks a stream name's `{name}` part: 1 to 64 characters of `A-Z a-z 0-9 _ - .`, not starting with `.`.
pub fn is_valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

/// Log a connection task that panicked or was cancelled (its error is the task's, not the peer's).
pub(crate) fn log_join(protocol: Protocol, joined: Result<(), tokio::task::JoinError>) {
    if let Err(e) = joined {
        tracing::error!(protocol = protocol.as_str(), error = %e, "ingest connection task failed");
    }
}

/// Resolves once `shutdown` is true (never, if its sender is gone without saying so).
pub(crate) async fn wait_for_shutdown(shutdown: &mut tokio::sync::watch::Receiver<bool>) {
    loop {
        if *shutdown.borrow_and_update() {
            return;
        }
        if shutdown.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}
