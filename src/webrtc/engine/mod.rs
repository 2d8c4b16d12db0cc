//! The WebRTC engine: one task owning the UDP socket and every session's [`str0m::Rtc`] (sans-IO),
//! driving them with datagrams, timeouts and the streams' media.
//!
//! - ICE-lite on one UDP port, and ICE over TCP on one TCP port ([`super::tcp`]); a packet goes to
//!   the session that last received from its source address, else to the one whose
//!   [`str0m::Rtc::accepts`] takes it.
//! - Video: each (stream, rendition) keeps its frames since the latest keyframe ([`GopCache`]); a new
//!   viewer starts from them at once and keyframe requests replay them ([`super::viewer`]). NACKs
//!   are answered by str0m from its send buffer (1000 packets of history per session); `video`
//!   holds that path.
//! - Timed events (timed metadata, SCTE-35 markers): over the data channel a viewer opens, just
//!   before the frame each belongs to, with that frame's RTP timestamp ([`events`]).
//! - Audio: the stream's Opus packets, as they come, to every connected session (RTP time = PTS in
//!   48 kHz, RFC 7587 §4.1).
//! - Sender reports map RTP time to the wall clock the same way for a stream's audio and video
//!   (`cache::StreamClock`), so receivers keep them in sync.
//! - A frame lost between the hub and the engine (its queue full) breaks the rendition's chain: its
//!   cache is dropped and its viewers wait for the next keyframe; a viewer whose receiver reports
//!   more than [`HEAVY_LOSS`] lost is dropped to the next keyframe too.
//! - When a stream ends (its publisher did not come back), its sessions end.
//! - A panic inside str0m (on a peer's hostile input) ends that session only (`guarded`).

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
    media::{Frequency, MediaKind, MediaTime, Mid, Pt},
    net::{Protocol, Receive, TcpType},
};
use tokio::{
    net::UdpSocket,
    sync::{mpsc, oneshot},
};

use protocols::IngestEvent;

mod cache;
pub mod events;
mod publish;
mod send;
mod video;

pub use cache::{GOP_MAX_BYTES, GOP_MAX_FRAMES, GopCache};
use cache::{STALE_AFTER, StreamClock};
pub use publish::PUBLISH_KEYFRAME_INTERVAL;
use publish::{Publish, prefers_vp8};
use send::Pending;
pub use send::{MAX_PENDING_BYTES, SOCKET_BUFFER_BYTES};

use super::{
    AudioPacket, SharedStats, VideoFrame, WhepError,
    viewer::{Timeline, VideoOut},
};

/// Receiver-reported loss fraction above which a viewer is dropped to the next keyframe.
pub const HEAVY_LOSS: f32 = 0.25;
/// How often str0m reports each session's counters.
const STATS_INTERVAL: Duration = Duration::from_secs(1);

/// What the engine is asked to do.
pub enum Command {
    /// Answer a WHEP offer for `stream`'s `rendition`.
    Offer {
        /// `live/{name}`.
        stream: String,
        /// The video rendition to send.
        rendition: Arc<str>,
        /// The SDP offer.
        sdp: String,
        /// The session id and the SDP answer.
        reply: oneshot::Sender<Result<(u64, String), WhepError>>,
    },
    /// Answer a WHIP offer publishing `stream`: its media become `events` (for the stream's publish
    /// session, in its own task).
    Whip {
        /// `live/{name}`.
        stream: String,
        /// The SDP offer.
        sdp: String,
        /// Where the publish's events go.
        events: mpsc::Sender<IngestEvent>,
        /// The session id and the SDP answer.
        reply: oneshot::Sender<Result<(u64, String), WhepError>>,
    },
    /// End a session (WHEP or WHIP `DELETE`); replies whether it existed.
    Delete {
        /// `live/{name}`: the session must be of this stream.
        stream: String,
        /// The session.
        id: u64,
        /// A WHIP session (else WHEP).
        is_publish: bool,
        /// Whether it existed.
        reply: oneshot::Sender<bool>,
    },
    /// End a WHIP session: its publish was refused or kicked.
    EndPublish(u64),
    /// An ICE-TCP connection opened: frames for `peer` go to `writer`.
    TcpOpen {
        /// The connection's remote address.
        peer: SocketAddr,
        /// Its writer's queue.
        writer: mpsc::Sender<Vec<u8>>,
    },
    /// A frame (RFC 4571) received on an ICE-TCP connection.
    TcpFrame {
        /// The connection's remote address.
        peer: SocketAddr,
        /// The listener's address.
        local: SocketAddr,
        /// The packet.
        data: Vec<u8>,
    },
    /// An ICE-TCP connection closed.
    TcpClosed {
        /// The connection's remote address.
        peer: SocketAddr,
    },
    /// A video frame of a stream's rendition.
    Video(VideoFrame),
    /// An Opus packet of a stream.
    Audio(AudioPacket),
    /// A timed event of a stream, for its viewers' data channels.
    Event(Arc<super::TimedEvent>),
    /// The stream ended: its caches are dropped.
    Ended(Arc<str>),
}

struct Session {
    stream: Arc<str>,
    rendition: Arc<str>,
    rtc: Rtc,
    video: Option<(Mid, Option<Pt>)>,
    audio: Option<(Mid, Option<Pt>)>,
    out: VideoOut,
    audio_timeline: Timeline,
    connected: bool,
    next_timeout: Instant,
    /// The NACK count str0m last reported, per media.
    reported: HashMap<Mid, u64>,
    /// Set for a WHIP session (a publisher).
    publish: Option<Publish>,
    /// The timed events this viewer has been sent over its data channel.
    events: events::ViewerEvents,
}

impl Session {
    /// A session not connected yet: a viewer of `rendition`, or a publisher (`publish`).
    fn new(
        stream: Arc<str>,
        rendition: Arc<str>,
        rtc: Rtc,
        publish: Option<Publish>,
        now: Instant,
    ) -> Self {
        Self {
            stream,
            rendition,
            rtc,
            video: None,
            audio: None,
            out: VideoOut::new(now),
            audio_timeline: Timeline::default(),
            connected: false,
            next_timeout: now,
            reported: HashMap::new(),
            publish,
            events: events::ViewerEvents::default(),
        }
    }
}

/// The engine's state.
pub struct Engine {
    socket: UdpSocket,
    pending: Pending,
    local: SocketAddr,
    /// Candidates announced in answers.
    candidates: Vec<SocketAddr>,
    /// The ICE-TCP port, when offered (passive candidates on the candidates' addresses).
    tcp_port: Option<u16>,
    /// Open ICE-TCP connections' writers, by remote address.
    tcp: HashMap<SocketAddr, mpsc::Sender<Vec<u8>>>,
    sessions: HashMap<u64, Session>,
    /// The session that last took a datagram from each address.
    by_source: HashMap<SocketAddr, u64>,
    next_id: u64,
    gops: HashMap<(Arc<str>, Arc<str>), GopCache>,
    clocks: HashMap<Arc<str>, Option<StreamClock>>,
    /// Each stream's recent timed events.
    events: HashMap<Arc<str>, events::StreamEvents>,
    stats: SharedStats,
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
        tcp_port: Option<u16>,
        stats: SharedStats,
        limits: Limits,
    ) -> std::io::Result<Self> {
        let local = socket.local_addr()?;
        let sock = socket2::SockRef::from(&socket);
        for (what, result) in [
            ("send", sock.set_send_buffer_size(SOCKET_BUFFER_BYTES)),
            ("receive", sock.set_recv_buffer_size(SOCKET_BUFFER_BYTES)),
        ] {
            if let Err(error) = result {
                tracing::warn!(%error, what, "webrtc udp buffer size not set");
            }
        }
        let candidates = if candidates.is_empty() {
            vec![local]
        } else {
            candidates
        };
        Ok(Self {
            socket,
            pending: Pending::default(),
            local,
            candidates,
            tcp_port,
            tcp: HashMap::new(),
            sessions: HashMap::new(),
            by_source: HashMap::new(),
            next_id: 1,
            gops: HashMap::new(),
            clocks: HashMap::new(),
            events: HashMap::new(),
            stats,
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
                .flat_map(|s| [Some(s.next_timeout), s.out.due()])
                .flatten()
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
                writable = self.socket.writable(), if !self.pending.datagrams.is_empty() => {
                    if writable.is_ok() {
                        self.flush();
                    }
                }
                _ = tokio::time::sleep_until(deadline.into()) => self.tick(Instant::now()),
            }
        }
    }

    /// Timeouts and due catch-up writes.
    fn tick(&mut self, now: Instant) {
        let due: Vec<u64> = self
            .sessions
            .iter()
            .filter(|(_, s)| s.next_timeout <= now || s.out.due().is_some_and(|d| d <= now))
            .map(|(id, _)| *id)
            .collect();
        for id in due {
            if let Some(s) = self.sessions.get_mut(&id) {
                if s.next_timeout <= now {
                    let rtc = &mut s.rtc;
                    if guarded(id, "timeout", || rtc.handle_input(Input::Timeout(now))).is_none() {
                        self.remove(id);
                        continue;
                    }
                    Self::ask_keyframe(s, now, false);
                }
                while let Some(w) = s.out.poll(now) {
                    Self::write_video(id, s, &w, now, now, self.events.get(&s.stream));
                    if s.out.due().is_some_and(|d| d > now) {
                        break;
                    }
                }
            }
            self.drive(id);
        }
    }

    fn receive(&mut self, data: &[u8], source: SocketAddr) {
        self.receive_on(Protocol::Udp, data, source, self.local);
    }

    /// A packet from `source` to `destination` (our UDP socket, or the ICE-TCP listener). Returns
    /// whether a session took it.
    fn receive_on(
        &mut self,
        proto: Protocol,
        data: &[u8],
        source: SocketAddr,
        destination: SocketAddr,
    ) -> bool {
        let Ok(contents) = data.try_into() else {
            return false;
        };
        let input = Input::Receive(
            Instant::now(),
            Receive {
                proto,
                source,
                destination,
                contents,
            },
        );
        let known = self
            .by_source
            .get(&source)
            .copied()
            .filter(|id| self.sessions.get(id).is_some_and(|s| s.rtc.accepts(&input)));
        let Some(id) = known.or_else(|| {
            self.sessions
                .iter()
                .find(|(_, s)| s.rtc.accepts(&input))
                .map(|(id, _)| *id)
        }) else {
            return false;
        };
        self.by_source.insert(source, id);
        if let Some(s) = self.sessions.get_mut(&id) {
            match guarded(id, "input", || s.rtc.handle_input(input)) {
                Some(Ok(())) => {}
                Some(Err(error)) => tracing::debug!(session = id, %error, "webrtc input rejected"),
                None => {
                    self.remove(id);
                    return true;
                }
            }
        }
        self.drive(id);
        true
    }

    fn command(&mut self, command: Command) {
        match command {
            Command::Offer {
                stream,
                rendition,
                sdp,
                reply,
            } => {
                let _ = reply.send(self.offer(stream, rendition, &sdp));
            }
            Command::Whip {
                stream,
                sdp,
                events,
                reply,
            } => {
                let _ = reply.send(self.whip(stream, &sdp, events));
            }
            Command::Delete {
                stream,
                id,
                is_publish,
                reply,
            } => {
                let ours = self
                    .sessions
                    .get(&id)
                    .is_some_and(|s| *s.stream == *stream && s.publish.is_some() == is_publish);
                if ours {
                    self.remove(id);
                }
                let _ = reply.send(ours);
            }
            Command::TcpOpen { peer, writer } => {
                self.tcp.insert(peer, writer);
            }
            Command::TcpFrame { peer, local, data } => {
                // A connection no session takes is closed (its writer's sender dropped).
                if !self.receive_on(Protocol::Tcp, &data, peer, local) {
                    self.tcp.remove(&peer);
                }
            }
            Command::TcpClosed { peer } => {
                self.tcp.remove(&peer);
                self.by_source.remove(&peer);
            }
            Command::EndPublish(id) => {
                if let Some(s) = self.sessions.get_mut(&id) {
                    s.rtc.disconnect();
                }
                self.remove(id);
            }
            Command::Video(frame) => self.video(Arc::new(frame)),
            Command::Event(event) => self
                .events
                .entry(event.stream.clone())
                .or_default()
                .push(event),
            Command::Audio(packet) => self.audio(&packet),
            Command::Ended(stream) => {
                self.gops.retain(|(s, _), _| *s != stream);
                self.clocks.remove(&stream);
                self.events.remove(&stream);
                let ended: Vec<u64> = self
                    .sessions
                    .iter()
                    .filter(|(_, s)| s.stream == stream)
                    .map(|(id, _)| *id)
                    .collect();
                for id in ended {
                    if let Some(s) = self.sessions.get_mut(&id) {
                        s.rtc.disconnect();
                    }
                    self.remove(id);
                }
                let mut stats = super::lock(&self.stats);
                if stats.get(&stream).is_some_and(|s| s.sessions == 0) {
                    stats.remove(&stream);
                }
            }
        }
    }

    fn offer(
        &mut self,
        stream: String,
        rendition: Arc<str>,
        sdp: &str,
    ) -> Result<(u64, String), WhepError> {
        if self.sessions.len() >= self.limits.sessions {
            return Err(WhepError::Busy("in all"));
        }
        let stream: Arc<str> = stream.into();
        let watchers = super::lock(&self.stats)
            .get(&stream)
            .map_or(0, |s| s.sessions);
        if watchers >= self.limits.sessions_per_stream {
            return Err(WhepError::Busy("for this stream"));
        }
        let now = Instant::now();
        let (rtc, answer) = self.answer(sdp, false, now)?;
        let id = self.new_id();
        super::lock(&self.stats)
            .entry(stream.clone())
            .or_default()
            .sessions += 1;
        self.sessions
            .insert(id, Session::new(stream, rendition, rtc, None, now));
        self.drive(id);
        Ok((id, answer))
    }

    /// A session id: random (a session's URL is not guessed), unused.
    fn new_id(&mut self) -> u64 {
        loop {
            let mut bytes = [0u8; 8];
            if getrandom::fill(&mut bytes).is_err() {
                self.next_id += 1;
                return self.next_id;
            }
            // 53 bits: exact in JSON numbers.
            let id = u64::from_le_bytes(bytes) >> 11;
            if id != 0 && !self.sessions.contains_key(&id) {
                return id;
            }
        }
    }

    /// An ICE-lite session answering `sdp`, with our candidates: (session, SDP answer). A publisher's
    /// (`is_publish`) takes H.264, VP8 and Opus; a viewer's sends H.264 and Opus.
    fn answer(
        &self,
        sdp: &str,
        is_publish: bool,
        now: Instant,
    ) -> Result<(Rtc, String), WhepError> {
        guarded(0, "offer", || self.answer_unguarded(sdp, is_publish, now)).unwrap_or_else(|| {
            Err(WhepError::BadOffer(
                "the offer could not be answered (str0m failed on it)".into(),
            ))
        })
    }

    fn answer_unguarded(
        &self,
        sdp: &str,
        is_publish: bool,
        now: Instant,
    ) -> Result<(Rtc, String), WhepError> {
        let offer =
            SdpOffer::from_sdp_string(sdp).map_err(|e| WhepError::BadOffer(e.to_string()))?;
        let config = RtcConfig::new().set_ice_lite(true).clear_codecs();
        // A publisher's first choice of video codec is kept (str0m answers in its configured order).
        let config = if is_publish && prefers_vp8(sdp) {
            config.enable_vp8(true).enable_h264(true)
        } else {
            config.enable_h264(true).enable_vp8(is_publish)
        };
        let mut rtc = config
            .enable_opus(true)
            .set_stats_interval(Some(STATS_INTERVAL))
            .build(now);
        for addr in &self.candidates {
            let candidate =
                Candidate::host(*addr, "udp").map_err(|e| WhepError::BadOffer(e.to_string()))?;
            rtc.add_local_candidate(candidate);
            if let Some(port) = self.tcp_port {
                let candidate = Candidate::builder()
                    .tcp()
                    .host(SocketAddr::new(addr.ip(), port))
                    .tcptype(TcpType::Passive)
                    .build()
                    .map_err(|e| WhepError::BadOffer(e.to_string()))?;
                rtc.add_local_candidate(candidate);
            }
        }
        let answer = rtc
            .sdp_api()
            .accept_offer(offer)
            .map_err(|e| WhepError::BadOffer(e.to_string()))?;
        Ok((rtc, answer.to_sdp_string()))
    }

    fn audio(&mut self, packet: &AudioPacket) {
        let now = Instant::now();
        let wallclock = StreamClock::wallclock(
            self.clocks.entry(packet.stream.clone()).or_default(),
            packet.pts_48khz * 15 / 8,
            now,
        );
        let ids: Vec<u64> = self
            .sessions
            .iter()
            .filter(|(_, s)| s.stream == packet.stream && s.connected && s.publish.is_none())
            .map(|(id, _)| *id)
            .collect();
        for id in ids {
            let Some(s) = self.sessions.get_mut(&id) else {
                continue;
            };
            let Some((mid, pt)) = s.audio else { continue };
            let Some(writer) = s.rtc.writer(mid) else {
                continue;
            };
            let pt = pt.or_else(|| {
                writer
                    .payload_params()
                    .find(|p| p.spec().codec == Codec::Opus)
                    .map(|p| p.pt())
            });
            let Some(pt) = pt else { continue };
            s.audio = Some((mid, Some(pt)));
            let time = MediaTime::new(
                s.audio_timeline.at(packet.pts_48khz),
                Frequency::FORTY_EIGHT_KHZ,
            );
            if let Err(error) = writer.write(pt, wallclock, time, packet.data.clone()) {
                tracing::debug!(session = id, %error, "webrtc audio write failed");
            }
            self.drive(id);
        }
    }

    /// Poll a session's output: send datagrams, handle events, note its next timeout; remove it when
    /// it has disconnected.
    fn drive(&mut self, id: u64) {
        let mut remove = false;
        let (mut bytes, mut packets) = (0u64, 0u64);
        loop {
            let Some(s) = self.sessions.get_mut(&id) else {
                return;
            };
            let Some(output) = guarded(id, "output", || s.rtc.poll_output()) else {
                remove = true;
                break;
            };
            match output {
                Ok(Output::Timeout(t)) => {
                    s.next_timeout = t;
                    break;
                }
                Ok(Output::Transmit(t)) => {
                    bytes += t.contents.len() as u64;
                    packets += 1;
                    let (proto, destination) = (t.proto, t.destination);
                    let contents = Vec::from(t.contents);
                    if proto == Protocol::Tcp {
                        self.send_tcp(id, destination, contents);
                    } else {
                        self.send(id, destination, contents);
                    }
                }
                Ok(Output::Event(event)) => {
                    if self.event(id, event) {
                        remove = true;
                        break;
                    }
                }
                Err(error) => {
                    tracing::info!(session = id, %error, "webrtc session failed");
                    remove = true;
                    break;
                }
            }
        }
        if packets > 0
            && let Some(s) = self.sessions.get(&id)
            && s.publish.is_none()
        {
            let mut stats = super::lock(&self.stats);
            let st = stats.entry(s.stream.clone()).or_default();
            st.bytes_sent += bytes;
            st.packets_sent += packets;
        }
        if remove {
            self.remove(id);
        }
    }

    /// Act on a session's event. Returns true when the session is over.
    fn event(&mut self, id: u64, event: Event) -> bool {
        let Some(s) = self.sessions.get_mut(&id) else {
            return true;
        };
        let now = Instant::now();
        match event {
            Event::MediaAdded(m) if m.kind == MediaKind::Video => {
                s.video.get_or_insert((m.mid, None));
            }
            Event::MediaAdded(m) if m.kind == MediaKind::Audio => {
                s.audio.get_or_insert((m.mid, None));
            }
            Event::IceConnectionStateChange(IceConnectionState::Disconnected) => return true,
            Event::MediaData(data) => Self::published(id, s, &data),
            Event::Connected if s.publish.is_some() => {
                s.connected = true;
                tracing::info!(session = id, stream = %s.stream, "webrtc publisher connected");
                Self::ask_keyframe(s, now, true);
            }
            Event::Connected => {
                s.connected = true;
                let gop = self
                    .gops
                    .get(&(s.stream.clone(), s.rendition.clone()))
                    .map_or(&[][..], |g| &g.frames[..]);
                s.out.connected(gop, now);
                tracing::info!(
                    session = id, stream = %s.stream, rendition = %s.rendition,
                    cached_frames = gop.len(), "webrtc viewer connected"
                );
            }
            Event::ChannelOpen(cid, label) if s.publish.is_none() => {
                tracing::debug!(session = id, %label, "webrtc data channel open: timed events go there");
                s.events.channel = Some(cid);
            }
            Event::ChannelClose(cid) if s.events.channel == Some(cid) => s.events.channel = None,
            Event::KeyframeRequest(_) if s.publish.is_some() => {}
            Event::KeyframeRequest(request) => {
                // A cache the publisher stopped feeding is not replayed: its pictures are stale.
                let gop = self
                    .gops
                    .get(&(s.stream.clone(), s.rendition.clone()))
                    .filter(|g| {
                        g.updated
                            .is_some_and(|t| now.duration_since(t) < STALE_AFTER)
                    })
                    .map_or(&[][..], |g| &g.frames[..]);
                let replayed = s.out.keyframe_request(gop, now);
                tracing::debug!(session = id, kind = ?request.kind, replayed, "keyframe request");
                super::lock(&self.stats)
                    .entry(s.stream.clone())
                    .or_default()
                    .keyframe_requests += 1;
            }
            Event::MediaEgressStats(e) => {
                let seen = s.reported.entry(e.mid).or_default();
                let new_nacks = e.nacks.saturating_sub(*seen);
                *seen = e.nacks.max(*seen);
                if new_nacks > 0 {
                    super::lock(&self.stats)
                        .entry(s.stream.clone())
                        .or_default()
                        .nacks += new_nacks;
                }
                if Some(e.mid) == s.video.map(|v| v.0) && e.loss.is_some_and(|l| l > HEAVY_LOSS) {
                    Self::drop_to_keyframe(&self.stats, s);
                }
            }
            _ => {}
        }
        false
    }

    /// Forget session `id`.
    fn remove(&mut self, id: u64) {
        let Some(s) = self.sessions.remove(&id) else {
            return;
        };
        self.by_source.retain(|_, v| *v != id);
        tracing::info!(session = id, stream = %s.stream, "webrtc session ended");
        if s.publish.is_some() {
            return;
        }
        let mut stats = super::lock(&self.stats);
        let live = self.clocks.contains_key(&s.stream);
        if let Some(st) = stats.get_mut(&s.stream) {
            st.sessions = st.sessions.saturating_sub(1);
            if st.sessions == 0 && !live {
                stats.remove(&s.stream);
            }
        }
    }
}

/// `f` (a call into str0m for session `id`: 0 before it exists), with a panic caught: `None` then,
/// logged with context. A peer's hostile input must not take down the engine and every other session
/// with it; the caller ends the session.
fn guarded<T>(id: u64, what: &str, f: impl FnOnce() -> T) -> Option<T> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(v) => Some(v),
        Err(panic) => {
            let message = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            tracing::error!(session = id, what, %message, "str0m panicked: the session is ended, the engine goes on");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_inside_str0m_is_caught_and_reported() {
        assert_eq!(guarded(7, "input", || 3), Some(3));
        let hook = std::panic::take_hook();
        std::panic::set_hook(Box::new(|_| {}));
        let caught = guarded(7, "input", || -> u8 { panic!("hostile packet") });
        std::panic::set_hook(hook);
        assert_eq!(caught, None);
    }
}
