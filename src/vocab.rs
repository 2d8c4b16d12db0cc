//! The vocabulary the modules share, with no dependency on any of them: how a stream was published
//! ([`Protocol`]), a publish attempt ([`PublishRequest`]) and its refusal ([`PublishRefused`]), the
//! transport's counters ([`TransportStats`]) and the wall clock ([`unix_ms`]). Imports point here,
//! never from here.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{SystemTime, UNIX_EPOCH};

/// The transport a stream was published with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// RTMP (and Enhanced RTMP).
    Rtmp,
    /// SRT carrying MPEG-TS.
    Srt,
    /// WebRTC (WHIP, RFC 9725).
    Whip,
}

impl Protocol {
    /// Lower-case name for logs and APIs.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Rtmp => "rtmp",
            Protocol::Srt => "srt",
            Protocol::Whip => "whip",
        }
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

/// A publish attempt, as the ingest driver saw it.
#[derive(Debug, Clone)]
pub struct PublishRequest {
    /// The full stream name, `live/{name}`.
    pub stream: String,
    /// RTMP or SRT.
    pub protocol: Protocol,
    /// The publisher's address.
    pub peer: SocketAddr,
    /// Query parameters (RTMP: after `?` in the stream key, percent-decoded; SRT: stream ID entries
    /// other than `r` and `m`). The publish key is `key`.
    pub params: BTreeMap<String, String>,
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

/// Wall clock, Unix milliseconds.
pub fn unix_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
