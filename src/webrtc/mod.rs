//! WebRTC viewers (WHEP, draft-ietf-wish-whep) on str0m, sans-IO WebRTC (ICE, DTLS, SRTP, RTP/RTCP)
//! driven by this crate's own UDP socket and clock. First step of issue 21: video only (see
//! `engine`).
//!
//! [`WebRtc`] is the handle the HTTP origin and the hub share: it passes WHEP offers to the engine
//! task (`engine`, which owns the UDP socket and every session) and, for the streams that have
//! viewers, the hub's source video frames.

pub mod engine;

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{Arc, Mutex},
};

use tokio::sync::{mpsc, oneshot};

pub use engine::{VideoFrame, WhepError};

/// `[webrtc]` settings.
#[derive(Debug, Clone)]
pub struct WebRtcConfig {
    /// The UDP port of every session (ICE-lite).
    pub udp_listen: SocketAddr,
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
    /// Sessions per stream (kept by the engine), so the hub sends frames only for watched streams.
    watched: Arc<Mutex<HashMap<Arc<str>, usize>>>,
    /// The bound UDP address.
    pub local_addr: SocketAddr,
}

impl WebRtc {
    /// Bind the UDP socket and start the engine.
    ///
    /// Errors: the socket cannot be bound.
    pub async fn start(config: &WebRtcConfig) -> std::io::Result<Arc<Self>> {
        let socket = tokio::net::UdpSocket::bind(config.udp_listen).await?;
        let watched: Arc<Mutex<HashMap<Arc<str>, usize>>> = Default::default();
        let engine = engine::Engine::new(
            socket,
            config.public_addrs.clone(),
            watched.clone(),
            engine::Limits {
                sessions: config.max_sessions,
                sessions_per_stream: config.max_sessions_per_stream,
            },
        )?;
        let local_addr = engine.local_addr();
        let (commands, rx) = mpsc::channel(4096);
        tokio::spawn(engine.run(rx));
        Ok(Arc::new(Self {
            commands,
            watched,
            local_addr,
        }))
    }

    /// Answer a WHEP offer for `stream`: (session id, SDP answer).
    ///
    /// Errors: [`WhepError`].
    pub async fn offer(&self, stream: &str, sdp: &str) -> Result<(u64, String), WhepError> {
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(engine::Command::Offer {
                stream: stream.to_owned(),
                sdp: sdp.to_owned(),
                reply,
            })
            .await
            .map_err(|_| WhepError::Stopped)?;
        answer.await.map_err(|_| WhepError::Stopped)?
    }

    /// End session `id` of `stream`. False when `stream` has no such session.
    pub async fn delete(&self, stream: &str, id: u64) -> bool {
        let (reply, existed) = oneshot::channel();
        let command = engine::Command::Delete {
            stream: stream.to_owned(),
            id,
            reply,
        };
        if self.commands.send(command).await.is_err() {
            return false;
        }
        existed.await.unwrap_or(false)
    }

    /// WebRTC sessions of `stream` now.
    pub fn sessions(&self, stream: &str) -> usize {
        self.watched
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(stream)
            .copied()
            .unwrap_or(0)
    }

    /// Whether `stream` has WebRTC sessions (the hub converts its frames only then).
    pub fn is_watched(&self, stream: &str) -> bool {
        self.sessions(stream) > 0
    }

    /// A frame for `stream`'s sessions (dropped when the engine is behind).
    pub fn frame(&self, frame: VideoFrame) {
        let _ = self.commands.try_send(engine::Command::Frame(frame));
    }
}
