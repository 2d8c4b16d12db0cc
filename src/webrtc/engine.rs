//! The WebRTC engine: one task owning the UDP socket and every session's [`str0m::Rtc`] (sans-IO),
//! driving them with datagrams, timeouts and the streams' frames.
//!
//! What it does (issue 21, first step): ICE-lite on one UDP port, sessions routed by
//! [`str0m::Rtc::accepts`], H.264 video of a source without B-frames sent as it arrives (RTP time =
//! the frame's PTS, 90 kHz), a new viewer starting at the next keyframe; NACKs are answered by str0m
//! from its send buffer. Not yet: Opus audio, a start from the cached GOP, PLI/FIR answers, ICE over
//! TCP, WHIP, NACK and PLI counters.

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::Arc,
    time::{Duration, Instant},
};

use str0m::{
    Candidate, Event, IceConnectionState, Input, Output, Rtc, RtcConfig,
    change::SdpOffer,
    format::Codec,
    media::{Frequency, MediaKind, MediaTime, Mid},
    net::{Protocol, Receive},
};
use tokio::{
    net::UdpSocket,
    sync::{mpsc, oneshot},
};

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

/// One frame for the sessions of a stream: H.264 in Annex B, 90 kHz presentation time.
#[derive(Debug, Clone)]
pub struct VideoFrame {
    /// `live/{name}`.
    pub stream: Arc<str>,
    /// Presentation time, 90 kHz ticks.
    pub pts_90khz: i64,
    /// A keyframe (with its SPS and PPS in front).
    pub is_keyframe: bool,
    /// Annex B access unit.
    pub data: Arc<[u8]>,
}

/// What the engine is asked to do.
pub enum Command {
    /// Answer a WHEP offer for `stream`.
    Offer {
        /// `live/{name}`.
        stream: String,
        /// The SDP offer.
        sdp: String,
        /// The session id and the SDP answer.
        reply: oneshot::Sender<Result<(u64, String), WhepError>>,
    },
    /// End a session (WHEP `DELETE`); replies whether it existed.
    Delete {
        /// `live/{name}`: the session must be of this stream.
        stream: String,
        /// The session.
        id: u64,
        /// Whether it existed.
        reply: oneshot::Sender<bool>,
    },
    /// A frame for the sessions of its stream.
    Frame(VideoFrame),
}

struct Session {
    stream: Arc<str>,
    rtc: Rtc,
    video: Option<Mid>,
    /// ICE and DTLS are up: media written now is sent (str0m drops what is written before).
    connected: bool,
    /// Waiting for a keyframe before the first frame sent.
    needs_keyframe: bool,
    next_timeout: Instant,
}

/// The engine's state.
pub struct Engine {
    socket: UdpSocket,
    local: SocketAddr,
    /// Candidates announced in answers.
    candidates: Vec<SocketAddr>,
    sessions: HashMap<u64, Session>,
    next_id: u64,
    /// Sessions per stream, shared with the hub (which sends frames only for watched streams).
    watched: Arc<std::sync::Mutex<HashMap<Arc<str>, usize>>>,
    limits: Limits,
}

/// Session limits.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Sessions in all.
    pub sessions: usize,
    /// Sessions per stream.
    pub sessions_per_stream: usize,
}

impl Engine {
    /// An engine on `socket`, announcing `candidates` (the socket's address when empty).
    pub fn new(
        socket: UdpSocket,
        candidates: Vec<SocketAddr>,
        watched: Arc<std::sync::Mutex<HashMap<Arc<str>, usize>>>,
        limits: Limits,
    ) -> std::io::Result<Self> {
        let local = socket.local_addr()?;
        let candidates = if candidates.is_empty() {
            vec![local]
        } else {
            candidates
        };
        Ok(Self {
            socket,
            local,
            candidates,
            sessions: HashMap::new(),
            next_id: 1,
            watched,
            limits,
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Run until `commands` closes.
    pub async fn run(mut self, mut commands: mpsc::Receiver<Command>) {
        let mut buf = vec![0u8; 2048];
        loop {
            let deadline = self
                .sessions
                .values()
                .map(|s| s.next_timeout)
                .min()
                .unwrap_or_else(|| Instant::now() + Duration::from_secs(1));
            tokio::select! {
                received = self.socket.recv_from(&mut buf) => match received {
                    Ok((n, source)) => self.receive(&buf[..n], source),
                    Err(error) => tracing::debug!(%error, "webrtc udp receive failed"),
                },
                command = commands.recv() => match command {
                    Some(c) => self.command(c),
                    None => return,
                },
                _ = tokio::time::sleep_until(deadline.into()) => {
                    let now = Instant::now();
                    let due: Vec<u64> = self
                        .sessions
                        .iter()
                        .filter(|(_, s)| s.next_timeout <= now)
                        .map(|(id, _)| *id)
                        .collect();
                    for id in due {
                        if let Some(s) = self.sessions.get_mut(&id) {
                            let _ = s.rtc.handle_input(Input::Timeout(now));
                        }
                        self.drive(id);
                    }
                }
            }
        }
    }

    fn receive(&mut self, data: &[u8], source: SocketAddr) {
        let Ok(contents) = data.try_into() else {
            return;
        };
        let input = Input::Receive(
            Instant::now(),
            Receive {
                proto: Protocol::Udp,
                source,
                destination: self.local,
                contents,
            },
        );
        let Some(id) = self
            .sessions
            .iter()
            .find(|(_, s)| s.rtc.accepts(&input))
            .map(|(id, _)| *id)
        else {
            return;
        };
        if let Some(s) = self.sessions.get_mut(&id)
            && let Err(error) = s.rtc.handle_input(input)
        {
            tracing::debug!(session = id, %error, "webrtc input rejected");
        }
        self.drive(id);
    }

    fn command(&mut self, command: Command) {
        match command {
            Command::Offer { stream, sdp, reply } => {
                let _ = reply.send(self.offer(stream, &sdp));
            }
            Command::Delete { stream, id, reply } => {
                let ours = self.sessions.get(&id).is_some_and(|s| *s.stream == *stream);
                if ours {
                    self.remove(id);
                }
                let _ = reply.send(ours);
            }
            Command::Frame(frame) => self.frame(&frame),
        }
    }

    fn offer(&mut self, stream: String, sdp: &str) -> Result<(u64, String), WhepError> {
        if self.sessions.len() >= self.limits.sessions {
            return Err(WhepError::Busy("in all"));
        }
        let stream: Arc<str> = stream.into();
        if self.watchers(&stream) >= self.limits.sessions_per_stream {
            return Err(WhepError::Busy("for this stream"));
        }
        let offer =
            SdpOffer::from_sdp_string(sdp).map_err(|e| WhepError::BadOffer(e.to_string()))?;
        let now = Instant::now();
        let mut rtc = RtcConfig::new()
            .set_ice_lite(true)
            .clear_codecs()
            .enable_h264(true)
            .enable_opus(true)
            .build(now);
        for addr in &self.candidates {
            let candidate =
                Candidate::host(*addr, "udp").map_err(|e| WhepError::BadOffer(e.to_string()))?;
            rtc.add_local_candidate(candidate);
        }
        let answer = rtc
            .sdp_api()
            .accept_offer(offer)
            .map_err(|e| WhepError::BadOffer(e.to_string()))?;
        let id = self.next_id;
        self.next_id += 1;
        *self.watched().entry(stream.clone()).or_default() += 1;
        self.sessions.insert(
            id,
            Session {
                stream,
                rtc,
                video: None,
                connected: false,
                needs_keyframe: true,
                next_timeout: now,
            },
        );
        self.drive(id);
        Ok((id, answer.to_sdp_string()))
    }

    fn frame(&mut self, frame: &VideoFrame) {
        let ids: Vec<u64> = self
            .sessions
            .iter()
            .filter(|(_, s)| s.stream == frame.stream)
            .map(|(id, _)| *id)
            .collect();
        for id in ids {
            let Some(s) = self.sessions.get_mut(&id) else {
                continue;
            };
            if !s.connected || (s.needs_keyframe && !frame.is_keyframe) {
                continue;
            }
            let Some(mid) = s.video else {
                continue;
            };
            let Some(writer) = s.rtc.writer(mid) else {
                continue;
            };
            let Some(pt) = writer
                .payload_params()
                .find(|p| {
                    p.spec().codec == Codec::H264 && p.spec().format.packetization_mode == Some(1)
                })
                .map(|p| p.pt())
            else {
                continue;
            };
            let time = MediaTime::new(frame.pts_90khz.max(0) as u64, Frequency::NINETY_KHZ);
            match writer.write(pt, Instant::now(), time, frame.data.clone()) {
                Ok(()) => s.needs_keyframe = false,
                Err(error) => tracing::debug!(session = id, %error, "webrtc write failed"),
            }
            self.drive(id);
        }
    }

    /// Poll a session's output: send datagrams, handle events, note its next timeout; remove it when
    /// it has disconnected.
    fn drive(&mut self, id: u64) {
        let Some(s) = self.sessions.get_mut(&id) else {
            return;
        };
        let mut remove = false;
        loop {
            match s.rtc.poll_output() {
                Ok(Output::Timeout(t)) => {
                    s.next_timeout = t;
                    break;
                }
                Ok(Output::Transmit(t)) => {
                    if let Err(error) = self.socket.try_send_to(&t.contents, t.destination) {
                        tracing::debug!(session = id, %error, "webrtc udp send failed");
                    }
                }
                Ok(Output::Event(Event::MediaAdded(m))) if m.kind == MediaKind::Video => {
                    s.video.get_or_insert(m.mid);
                }
                Ok(Output::Event(Event::IceConnectionStateChange(
                    IceConnectionState::Disconnected,
                ))) => {
                    remove = true;
                    break;
                }
                Ok(Output::Event(Event::Connected)) => {
                    s.connected = true;
                    tracing::info!(session = id, stream = %s.stream, "webrtc viewer connected");
                }
                Ok(Output::Event(_)) => {}
                Err(error) => {
                    tracing::info!(session = id, %error, "webrtc session failed");
                    remove = true;
                    break;
                }
            }
        }
        if remove {
            self.remove(id);
        }
    }

    fn watched(&self) -> std::sync::MutexGuard<'_, HashMap<Arc<str>, usize>> {
        self.watched.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn watchers(&self, stream: &Arc<str>) -> usize {
        self.watched().get(stream).copied().unwrap_or(0)
    }

    /// Forget session `id` (and, with its stream's last session, the stream's frames).
    fn remove(&mut self, id: u64) {
        let Some(s) = self.sessions.remove(&id) else {
            return;
        };
        tracing::info!(session = id, stream = %s.stream, "webrtc session ended");
        let mut watched = self.watched();
        if let Some(n) = watched.get_mut(&s.stream) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                watched.remove(&s.stream);
            }
        }
    }
}
