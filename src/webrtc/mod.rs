//! WebRTC viewers (WHEP, draft-ietf-wish-whep) on str0m, sans-IO WebRTC (ICE, DTLS, SRTP, RTP/RTCP)
//! driven by this crate's own UDP socket and clock.
//!
//! - [`feed`]: what each stream offers WebRTC viewers (held by the hub, fed the packaged frames);
//! - [`viewer`]: what one viewer is sent, and when (start from the cached GOP, catch-up, replays);
//! - [`whip`]: what a WebRTC publisher's frames become for the hub (WHIP, RFC 9725);
//! - [`engine`]: the task owning the UDP socket and every session, viewers' and publishers' (and
//!   [`engine::events`]: the timed events each viewer is sent over its data channel).
//!
//! [`WebRtc`] is the handle the HTTP origin and the hub share: it passes WHEP offers to the engine
//! and the streams' video frames and Opus packets to it, and reads the per-stream counters.

pub mod engine;
pub mod feed;
pub mod tcp;
pub mod viewer;
pub mod whip;

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{Arc, Mutex},
};

use tokio::sync::{mpsc, oneshot};

/// Why a WHEP request was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WhepError {
    /// The body is not an SDP offer str0m can answer.
    #[error("malformed or unacceptable SDP offer: {0}")]
    BadOffer(String),
    /// The stream has no rendition a browser's WebRTC decoder takes.
    #[error("no WebRTC rendition: {0}")]
    NoRendition(String),
    /// The engine is stopping.
    #[error("WebRTC is shutting down")]
    Stopped,
    /// The session limit (in all, or for the stream) is reached.
    #[error("too many WebRTC sessions ({0})")]
    Busy(&'static str),
}

/// One video frame of a stream's rendition: H.264 in Annex B (ITU-T H.264 Annex B), SPS and PPS in
/// front of each keyframe.
#[derive(Debug, Clone)]
pub struct VideoFrame {
    /// `live/{name}`.
    pub stream: Arc<str>,
    /// The rendition (`source`, or a ladder rung's name).
    pub rendition: Arc<str>,
    /// 1, 2, 3 … per rendition: a gap means frames were lost on the way to the engine.
    pub seq: u64,
    /// Presentation time, 90 kHz ticks.
    pub pts_90khz: i64,
    /// A keyframe (IDR).
    pub is_keyframe: bool,
    /// The access unit.
    pub data: Arc<[u8]>,
}

/// A timed event of a stream (timed metadata or an SCTE-35 marker) for its WebRTC viewers: sent over
/// each viewer's data channel with the first video frame presented at or after it
/// ([`engine::events`]).
#[derive(Debug, Clone)]
pub struct TimedEvent {
    /// `live/{name}`.
    pub stream: Arc<str>,
    /// The presentation time it is stamped with, 90 kHz ticks on the same timeline as
    /// [`VideoFrame::pts_90khz`].
    pub pts_90khz: i64,
    /// The event as a JSON object (text): `{"kind": "metadata", "id", "class", "data",
    /// "duration_ms", "pts_90khz"}` or `{"kind": "scte35", "id", "direction", "section" (base64),
    /// "pts_90khz"}`.
    pub json: Arc<str>,
}

/// One Opus packet of a stream (20 ms, 48 kHz stereo).
#[derive(Debug, Clone)]
pub struct AudioPacket {
    /// `live/{name}`.
    pub stream: Arc<str>,
    /// Presentation time, 48 kHz ticks on the source's timeline.
    pub pts_48khz: i64,
    /// The Opus packet (RFC 6716 §3).
    pub data: Arc<[u8]>,
}

/// A stream's WebRTC counters (the JSON API's `webrtc`, the `estuary_stream_webrtc_*` metrics).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct WebRtcStats {
    /// Sessions now.
    pub sessions: usize,
    /// Bytes sent to its viewers (RTP, RTCP, retransmissions, DTLS and STUN).
    pub bytes_sent: u64,
    /// UDP datagrams sent to its viewers.
    pub packets_sent: u64,
    /// NACK messages received (RFC 4585 §6.2.1): each is answered from str0m's send buffer.
    pub nacks: u64,
    /// Keyframe requests received (PLI and FIR), answered by replaying the cached GOP.
    pub keyframe_requests: u64,
    /// Times a viewer was dropped to the next keyframe (could not keep up, heavy loss, frames lost on
    /// the way to the engine).
    pub dropped_to_keyframe: u64,
}

/// The engine's counters, per stream, shared with readers.
pub type SharedStats = Arc<Mutex<HashMap<Arc<str>, WebRtcStats>>>;

fn lock(stats: &SharedStats) -> std::sync::MutexGuard<'_, HashMap<Arc<str>, WebRtcStats>> {
    stats.lock().unwrap_or_else(|p| p.into_inner())
}

/// `[webrtc]` settings.
#[derive(Debug, Clone)]
pub struct WebRtcConfig {
    /// The UDP port of every session (ICE-lite).
    pub udp_listen: SocketAddr,
    /// The TCP port of ICE over TCP (RFC 6544, RFC 4571 framing), when it is offered.
    pub tcp_listen: Option<SocketAddr>,
    /// Addresses announced as candidates (default: the bound address).
    pub public_addrs: Vec<SocketAddr>,
    /// Sessions in all (default 500).
    pub max_sessions: usize,
    /// Sessions per stream (default 200).
    pub max_sessions_per_stream: usize,
}

/// The engine's handle.
#[derive(Debug)]
pub struct WebRtc {
    commands: mpsc::Sender<engine::Command>,
    /// Counters per stream (kept by the engine).
    stats: SharedStats,
    /// The bound UDP address.
    pub local_addr: SocketAddr,
    /// The bound ICE-TCP address, when offered.
    pub tcp_addr: Option<SocketAddr>,
}

impl WebRtc {
    /// Bind the UDP socket and start the engine.
    ///
    /// Errors: the socket cannot be bound.
    pub async fn start(config: &WebRtcConfig) -> std::io::Result<Arc<Self>> {
        let socket = tokio::net::UdpSocket::bind(config.udp_listen).await?;
        let tcp = match config.tcp_listen {
            Some(addr) => Some(tokio::net::TcpListener::bind(addr).await?),
            None => None,
        };
        let tcp_addr = tcp.as_ref().map(|l| l.local_addr()).transpose()?;
        let stats = SharedStats::default();
        let engine = engine::Engine::new(
            socket,
            config.public_addrs.clone(),
            tcp_addr.map(|a| a.port()),
            stats.clone(),
            engine::Limits {
                sessions: config.max_sessions,
                sessions_per_stream: config.max_sessions_per_stream,
            },
        )?;
        let local_addr = engine.local_addr();
        let (commands, rx) = mpsc::channel(COMMAND_QUEUE);
        tokio::spawn(engine.run(rx));
        if let Some(listener) = tcp {
            tokio::spawn(tcp::accept(listener, commands.clone(), config.max_sessions));
        }
        Ok(Arc::new(Self {
            commands,
            stats,
            local_addr,
            tcp_addr,
        }))
    }

    /// Answer a WHEP offer for `stream`'s video `rendition`: (session id, SDP answer).
    ///
    /// Errors: [`WhepError`].
    pub async fn offer(
        &self,
        stream: &str,
        rendition: Arc<str>,
        sdp: &str,
    ) -> Result<(u64, String), WhepError> {
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(engine::Command::Offer {
                stream: stream.to_owned(),
                rendition,
                sdp: sdp.to_owned(),
                reply,
            })
            .await
            .map_err(|_| WhepError::Stopped)?;
        answer.await.map_err(|_| WhepError::Stopped)?
    }

    /// Answer a WHIP offer publishing `stream`: (session id, SDP answer). The publish's events go to
    /// `events`; the engine drops its sender when the session ends.
    ///
    /// Errors: [`WhepError`].
    pub async fn whip(
        &self,
        stream: &str,
        sdp: &str,
        events: mpsc::Sender<protocols::IngestEvent>,
    ) -> Result<(u64, String), WhepError> {
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(engine::Command::Whip {
                stream: stream.to_owned(),
                sdp: sdp.to_owned(),
                events,
                reply,
            })
            .await
            .map_err(|_| WhepError::Stopped)?;
        answer.await.map_err(|_| WhepError::Stopped)?
    }

    /// End WHIP session `id`: its publish was refused or kicked.
    pub fn end_publish(&self, id: u64) {
        let _ = self.commands.try_send(engine::Command::EndPublish(id));
    }

    /// End session `id` of `stream` (a WHIP session when `is_publish`, else WHEP). False when
    /// `stream` has no such session.
    pub async fn delete(&self, stream: &str, id: u64, is_publish: bool) -> bool {
        let (reply, existed) = oneshot::channel();
        let command = engine::Command::Delete {
            stream: stream.to_owned(),
            id,
            is_publish,
            reply,
        };
        if self.commands.send(command).await.is_err() {
            return false;
        }
        existed.await.unwrap_or(false)
    }

    /// WebRTC sessions of `stream` now.
    pub fn sessions(&self, stream: &str) -> usize {
        lock(&self.stats).get(stream).map_or(0, |s| s.sessions)
    }

    /// `stream`'s counters, once it has had a session.
    pub fn stats(&self, stream: &str) -> Option<WebRtcStats> {
        lock(&self.stats).get(stream).cloned()
    }

    /// Whether `stream` has WebRTC sessions (its audio is encoded to Opus only then).
    pub fn is_watched(&self, stream: &str) -> bool {
        self.sessions(stream) > 0
    }

    /// A video frame for the stream's cache and sessions. When the engine is behind it is dropped; the
    /// engine sees the gap in [`VideoFrame::seq`].
    pub fn video(&self, frame: VideoFrame) {
        let _ = self.commands.try_send(engine::Command::Video(frame));
    }

    /// An Opus packet for the stream's sessions (dropped when the engine is behind).
    pub fn audio(&self, packet: AudioPacket) {
        let _ = self.commands.try_send(engine::Command::Audio(packet));
    }

    /// A timed event for the stream's viewers (dropped when the engine is far behind).
    pub fn event(&self, event: TimedEvent) {
        let _ = self
            .commands
            .try_send(engine::Command::Event(Arc::new(event)));
    }

    /// The stream ended: the engine forgets its cached frames.
    pub fn ended(&self, stream: &str) {
        let _ = self
            .commands
            .try_send(engine::Command::Ended(stream.into()));
    }
}

/// Commands queued for the engine (offers, deletes, frames): about 10 s of 10 streams' video and
/// audio.
const COMMAND_QUEUE: usize = 8192;
