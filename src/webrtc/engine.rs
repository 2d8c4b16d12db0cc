//! The WebRTC engine: one task owning the UDP socket and every session's [`str0m::Rtc`] (sans-IO),
//! driving them with datagrams, timeouts and the streams' media.
//!
//! - ICE-lite on one UDP port, and ICE over TCP on one TCP port ([`super::tcp`]); a packet goes to
//!   the session that last received from its source address, else to the one whose
//!   [`str0m::Rtc::accepts`] takes it.
//! - Video: each (stream, rendition) keeps its frames since the latest keyframe ([`GopCache`]); a new
//!   viewer starts from them at once and keyframe requests replay them ([`super::viewer`]). NACKs
//!   are answered by str0m from its send buffer (1000 packets of history per session).
//! - Audio: the stream's Opus packets, as they come, to every connected session (RTP time = PTS in
//!   48 kHz, RFC 7587 §4.1).
//! - Sender reports map RTP time to the wall clock the same way for a stream's audio and video
//!   ([`StreamClock`]), so receivers keep them in sync.
//! - A frame lost between the hub and the engine (its queue full) breaks the rendition's chain: its
//!   cache is dropped and its viewers wait for the next keyframe; a viewer whose receiver reports
//!   more than [`HEAVY_LOSS`] lost is dropped to the next keyframe too.
//! - When a stream ends (its publisher did not come back), its sessions end.

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
    media::{Frequency, KeyframeRequestKind, MediaKind, MediaTime, Mid, Pt},
    net::{Protocol, Receive, TcpType},
};
use tokio::{
    net::UdpSocket,
    sync::{mpsc, oneshot},
};

use protocols::IngestEvent;

use super::{
    AudioPacket, SharedStats, VideoFrame, WhepError,
    viewer::{Timeline, VideoOut, Write},
    whip::{Received, WhipCodec, WhipIngest},
};

/// Most frames a GOP cache holds (10 s at 60 frames/s); a longer GOP is not cached past it, and
/// viewers joining then wait for the next keyframe.
pub const GOP_MAX_FRAMES: usize = 600;
/// Most bytes a GOP cache holds.
pub const GOP_MAX_BYTES: usize = 16 * 1024 * 1024;
/// Receiver-reported loss fraction above which a viewer is dropped to the next keyframe.
pub const HEAVY_LOSS: f32 = 0.25;
/// A cache not fed for this long is not replayed on keyframe requests (the publisher stopped).
const STALE_AFTER: Duration = Duration::from_secs(1);
/// A WHIP publisher is asked for a keyframe (PLI) at least this often, so a stream packaged as it
/// arrives can cut segments (browsers' encoders send keyframes only when asked).
pub const PUBLISH_KEYFRAME_INTERVAL: Duration = Duration::from_secs(2);
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
    /// The stream ended: its caches are dropped.
    Ended(Arc<str>),
}

/// A rendition's frames since its latest keyframe.
#[derive(Debug, Default)]
pub struct GopCache {
    frames: Vec<Arc<VideoFrame>>,
    bytes: usize,
    last_seq: Option<u64>,
    /// When the last frame came.
    updated: Option<Instant>,
}

impl GopCache {
    /// Add `frame`. Returns false when frames were lost before it (the cache was emptied).
    fn push(&mut self, frame: &Arc<VideoFrame>) -> bool {
        let intact = self.last_seq.is_none_or(|s| frame.seq == s + 1);
        self.last_seq = Some(frame.seq);
        if frame.is_keyframe || !intact {
            self.frames.clear();
            self.bytes = 0;
        }
        let first_is_key = self.frames.first().is_some_and(|f| f.is_keyframe);
        if frame.is_keyframe || first_is_key {
            if self.frames.len() < GOP_MAX_FRAMES && self.bytes + frame.data.len() <= GOP_MAX_BYTES
            {
                self.bytes += frame.data.len();
                self.frames.push(frame.clone());
            } else {
                self.frames.clear();
                self.bytes = 0;
            }
        }
        intact
    }
}

/// One stream's mapping from media time to the wall clock, for sender reports: anchored at its
/// first frame's arrival, re-anchored when the two drift a second apart (a restart, a jump).
#[derive(Debug, Clone, Copy)]
struct StreamClock {
    at: Instant,
    pts_90khz: i64,
}

impl StreamClock {
    fn wallclock(this: &mut Option<Self>, pts_90khz: i64, now: Instant) -> Instant {
        let clock = this.get_or_insert(Self { at: now, pts_90khz });
        let offset_us = (pts_90khz - clock.pts_90khz) * 100 / 9;
        let mapped = if offset_us >= 0 {
            clock.at + Duration::from_micros(offset_us as u64)
        } else {
            clock
                .at
                .checked_sub(Duration::from_micros(offset_us.unsigned_abs()))
                .unwrap_or(now)
        };
        let drift = if mapped > now {
            mapped - now
        } else {
            now - mapped
        };
        if drift > Duration::from_secs(1) {
            *clock = Self { at: now, pts_90khz };
            return now;
        }
        mapped
    }
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
}

/// A WHIP session's side.
struct Publish {
    ingest: WhipIngest,
    events: mpsc::Sender<IngestEvent>,
    started: Instant,
    /// When a keyframe was last asked for.
    keyframe_asked: Option<Instant>,
    /// Events the publish task could not take (it was behind), counted once logged.
    lost_events: u64,
}

/// Datagrams the kernel would not take yet (its send buffer full), sent when the socket is writable
/// again; at most [`MAX_PENDING_BYTES`].
#[derive(Default)]
struct Pending {
    datagrams: std::collections::VecDeque<(SocketAddr, Vec<u8>, u64)>,
    bytes: usize,
}

/// Most bytes waiting for the socket; beyond, datagrams are dropped (and the sessions they were for
/// are dropped to the next keyframe).
pub const MAX_PENDING_BYTES: usize = 8 * 1024 * 1024;
/// The UDP socket's kernel buffers asked for, bytes (each capped by `net.core.{w,r}mem_max`): a
/// keyframe to hundreds of viewers leaves at once.
pub const SOCKET_BUFFER_BYTES: usize = 4 * 1024 * 1024;

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
                    let _ = s.rtc.handle_input(Input::Timeout(now));
                    Self::ask_keyframe(s, now, false);
                }
                while let Some(w) = s.out.poll(now) {
                    Self::write_video(id, s, &w, now, now);
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
        if let Some(s) = self.sessions.get_mut(&id)
            && let Err(error) = s.rtc.handle_input(input)
        {
            tracing::debug!(session = id, %error, "webrtc input rejected");
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
            Command::Audio(packet) => self.audio(&packet),
            Command::Ended(stream) => {
                self.gops.retain(|(s, _), _| *s != stream);
                self.clocks.remove(&stream);
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
        self.sessions.insert(
            id,
            Session {
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
                publish: None,
            },
        );
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

    fn whip(
        &mut self,
        stream: String,
        sdp: &str,
        events: mpsc::Sender<IngestEvent>,
    ) -> Result<(u64, String), WhepError> {
        if self.sessions.len() >= self.limits.sessions {
            return Err(WhepError::Busy("in all"));
        }
        let now = Instant::now();
        let (rtc, answer) = self.answer(sdp, true, now)?;
        let id = self.new_id();
        self.sessions.insert(
            id,
            Session {
                stream: stream.into(),
                rendition: "".into(),
                rtc,
                video: None,
                audio: None,
                out: VideoOut::new(now),
                audio_timeline: Timeline::default(),
                connected: false,
                next_timeout: now,
                reported: HashMap::new(),
                publish: Some(Publish {
                    ingest: WhipIngest::new(),
                    events,
                    started: now,
                    keyframe_asked: None,
                    lost_events: 0,
                }),
            },
        );
        self.drive(id);
        Ok((id, answer))
    }

    /// Ask a publisher for a keyframe when its converter wants one (`urgent`) or every
    /// [`PUBLISH_KEYFRAME_INTERVAL`].
    fn ask_keyframe(s: &mut Session, now: Instant, urgent: bool) {
        let (Some(p), Some((mid, _))) = (&mut s.publish, s.video) else {
            return;
        };
        if !s.connected {
            return;
        }
        let due = p.keyframe_asked.is_none_or(|t| {
            let since = now.duration_since(t);
            since >= PUBLISH_KEYFRAME_INTERVAL || (urgent && since >= Duration::from_millis(300))
        });
        if !due {
            return;
        }
        if let Some(mut writer) = s.rtc.writer(mid)
            && writer.is_request_keyframe_possible(KeyframeRequestKind::Pli)
            && writer
                .request_keyframe(None, KeyframeRequestKind::Pli)
                .is_ok()
        {
            p.keyframe_asked = Some(now);
        }
    }

    /// A publisher's frame: converted, handed to its publish task.
    fn published(id: u64, s: &mut Session, data: &str0m::media::MediaData) {
        let Some(p) = &mut s.publish else { return };
        let codec = match data.params.spec().codec {
            Codec::H264 => WhipCodec::H264,
            Codec::Vp8 => WhipCodec::Vp8,
            Codec::Opus => WhipCodec::Opus,
            other => {
                tracing::debug!(session = id, codec = ?other, "WHIP media in a codec not taken");
                return;
            }
        };
        let received = Received {
            codec,
            rtp_time: data.time.numer(),
            arrival_ms: data
                .network_time
                .saturating_duration_since(p.started)
                .as_millis() as i64,
            contiguous: data.contiguous,
            data: &data.data,
        };
        for event in p.ingest.frame(received) {
            if p.events.try_send(event).is_err() {
                p.lost_events += 1;
                if p.lost_events == 1 {
                    tracing::warn!(session = id, stream = %s.stream, "WHIP publish behind: frames dropped (logged once)");
                }
            }
        }
        let urgent = p.ingest.wants_keyframe();
        if urgent {
            Self::ask_keyframe(s, data.network_time, true);
        }
    }

    fn video(&mut self, frame: Arc<VideoFrame>) {
        let key = (frame.stream.clone(), frame.rendition.clone());
        let now = Instant::now();
        let gop = self.gops.entry(key).or_default();
        gop.updated = Some(now);
        let intact = gop.push(&frame);
        let wallclock = StreamClock::wallclock(
            self.clocks.entry(frame.stream.clone()).or_default(),
            frame.pts_90khz,
            now,
        );
        let ids: Vec<u64> = self
            .sessions
            .iter()
            .filter(|(_, s)| s.stream == frame.stream && s.rendition == frame.rendition)
            .map(|(id, _)| *id)
            .collect();
        for id in ids {
            let Some(s) = self.sessions.get_mut(&id) else {
                continue;
            };
            if !intact {
                Self::drop_to_keyframe(&self.stats, s);
            }
            if let Some(w) = s.out.frame(&frame, now) {
                Self::write_video(id, s, &w, wallclock, now);
                self.drive(id);
            }
        }
    }

    fn drop_to_keyframe(stats: &SharedStats, s: &mut Session) {
        let before = s.out.dropped;
        s.out.drop_to_keyframe();
        if s.out.dropped > before {
            tracing::debug!(stream = %s.stream, "webrtc viewer dropped to the next keyframe");
            super::lock(stats)
                .entry(s.stream.clone())
                .or_default()
                .dropped_to_keyframe += 1;
        }
    }

    fn write_video(id: u64, s: &mut Session, w: &Write, wallclock: Instant, now: Instant) {
        let Some((mid, pt)) = s.video else { return };
        let Some(writer) = s.rtc.writer(mid) else {
            return;
        };
        // The payload type whose profile is the stream's (from the SPS in front of a keyframe), else
        // any H.264 one in packetization mode 1 (RFC 6184 §8.1): receivers decode any profile, but
        // the answer should say what is sent.
        let pt = pt.or_else(|| {
            let profile = w
                .frame
                .is_keyframe
                .then(|| sps_profile_idc(&w.frame.data))
                .flatten();
            let h264 = || {
                writer.payload_params().filter(|p| {
                    p.spec().codec == Codec::H264 && p.spec().format.packetization_mode == Some(1)
                })
            };
            h264()
                .find(|p| {
                    p.spec()
                        .format
                        .profile_level_id
                        .is_some_and(|id| Some((id >> 16) as u8) == profile)
                })
                .or_else(|| h264().next())
                .map(|p| p.pt())
        });
        let Some(pt) = pt else { return };
        s.video = Some((mid, Some(pt)));
        let time = MediaTime::new(w.time_90khz, Frequency::NINETY_KHZ);
        let wallclock = if w.is_live { wallclock } else { now };
        if let Err(error) = writer.write(pt, wallclock, time, w.frame.data.clone()) {
            tracing::debug!(session = id, %error, "webrtc video write failed");
        }
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
            match s.rtc.poll_output() {
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

    /// Send a datagram of session `id`, or queue it behind those the kernel has not taken yet.
    fn send(&mut self, id: u64, destination: SocketAddr, contents: Vec<u8>) {
        if self.pending.datagrams.is_empty() {
            match self.socket.try_send_to(&contents, destination) {
                Ok(_) => return,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(error) => {
                    tracing::debug!(session = id, %error, "webrtc udp send failed");
                    return;
                }
            }
        }
        if self.pending.bytes + contents.len() > MAX_PENDING_BYTES {
            // The machine cannot send as fast as the viewers are fed: this one restarts at a keyframe.
            if let Some(s) = self.sessions.get_mut(&id) {
                Self::drop_to_keyframe(&self.stats, s);
            }
            return;
        }
        self.pending.bytes += contents.len();
        self.pending
            .datagrams
            .push_back((destination, contents, id));
    }

    /// Send a frame on the ICE-TCP connection from `destination`; a connection that cannot take it
    /// loses it, and the session restarts at a keyframe.
    fn send_tcp(&mut self, id: u64, destination: SocketAddr, contents: Vec<u8>) {
        let Some(writer) = self.tcp.get(&destination) else {
            return;
        };
        if writer.try_send(contents).is_err()
            && let Some(s) = self.sessions.get_mut(&id)
        {
            Self::drop_to_keyframe(&self.stats, s);
        }
    }

    /// Send what waits, until the kernel's buffer is full again.
    fn flush(&mut self) {
        while let Some((destination, contents, id)) = self.pending.datagrams.front() {
            match self.socket.try_send_to(contents, *destination) {
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
                Err(error) => tracing::debug!(session = id, %error, "webrtc udp send failed"),
                Ok(_) => {}
            }
            if let Some((_, contents, _)) = self.pending.datagrams.pop_front() {
                self.pending.bytes -= contents.len();
            }
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

/// Whether an SDP offer's first video m-line lists VP8 before H.264 (RFC 3264 §5.1: in order of
/// preference).
fn prefers_vp8(sdp: &str) -> bool {
    let Some(m) = sdp.lines().find(|l| l.starts_with("m=video")) else {
        return false;
    };
    let codec_of = |pt: &str| {
        let prefix = format!("a=rtpmap:{pt} ");
        sdp.lines()
            .find_map(|l| l.strip_prefix(prefix.as_str()))
            .map(|rest| rest.split('/').next().unwrap_or("").to_ascii_uppercase())
    };
    m.split_whitespace()
        .skip(3)
        .filter_map(codec_of)
        .find(|c| c == "VP8" || c == "H264")
        .is_some_and(|c| c == "VP8")
}

/// The `profile_idc` of the first SPS (NAL unit type 7) in an Annex B access unit (ITU-T H.264
/// §7.3.2.1.1: the byte after the NAL unit header).
fn sps_profile_idc(annex_b: &[u8]) -> Option<u8> {
    annex_b
        .windows(5)
        .find(|w| w[..3] == [0, 0, 1] && w[3] & 0x1f == 7)
        .map(|w| w[4])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_publishers_codec_preference_is_read_from_its_offer() {
        let offer = |order: &str| {
            format!(
                "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=rtpmap:111 opus/48000/2\r\n\
                 m=video 9 UDP/TLS/RTP/SAVPF {order}\r\na=rtpmap:96 VP8/90000\r\n\
                 a=rtpmap:97 rtx/90000\r\na=rtpmap:102 H264/90000\r\n"
            )
        };
        assert!(prefers_vp8(&offer("96 97 102")));
        assert!(!prefers_vp8(&offer("97 102 96")));
        assert!(!prefers_vp8("v=0\r\n"));
    }

    #[test]
    fn the_profile_comes_from_the_sps_in_front_of_a_keyframe() {
        assert_eq!(
            sps_profile_idc(&[0, 0, 0, 1, 0x67, 100, 0, 31, 0, 0, 1, 0x68]),
            Some(100)
        );
        assert_eq!(sps_profile_idc(&[0, 0, 1, 0x65, 0x88]), None);
    }

    fn frame(seq: u64, is_keyframe: bool) -> Arc<VideoFrame> {
        Arc::new(VideoFrame {
            stream: "live/a".into(),
            rendition: "source".into(),
            seq,
            pts_90khz: seq as i64 * 3000,
            is_keyframe,
            data: vec![0u8; 100].into(),
        })
    }

    #[test]
    fn the_gop_cache_holds_the_frames_since_the_latest_keyframe() {
        let mut gop = GopCache::default();
        assert!(gop.push(&frame(1, false)));
        assert!(gop.frames.is_empty(), "nothing before a keyframe");
        assert!(gop.push(&frame(2, true)));
        assert!(gop.push(&frame(3, false)));
        assert_eq!(gop.frames.len(), 2);
        assert!(gop.push(&frame(4, true)));
        assert_eq!(gop.frames.len(), 1);
        // A frame lost on the way: the chain is broken until the next keyframe.
        assert!(!gop.push(&frame(6, false)));
        assert!(gop.frames.is_empty());
        assert!(gop.push(&frame(7, true)));
        assert_eq!(gop.frames.len(), 1);
    }

    #[test]
    fn a_gop_longer_than_the_bound_is_not_cached() {
        let mut gop = GopCache::default();
        gop.push(&frame(1, true));
        for seq in 2..=GOP_MAX_FRAMES as u64 + 1 {
            gop.push(&frame(seq, false));
        }
        assert!(gop.frames.is_empty());
        gop.push(&frame(GOP_MAX_FRAMES as u64 + 2, false));
        assert!(gop.frames.is_empty(), "not until the next keyframe");
    }

    #[test]
    fn the_stream_clock_maps_media_time_to_the_wall_clock_and_reanchors_on_jumps() {
        let t0 = Instant::now();
        let mut clock = None;
        assert_eq!(StreamClock::wallclock(&mut clock, 90_000, t0), t0);
        let later = StreamClock::wallclock(&mut clock, 135_000, t0);
        assert_eq!(later - t0, Duration::from_millis(500));
        // Ten seconds of media time in no time: re-anchored.
        assert_eq!(StreamClock::wallclock(&mut clock, 1_000_000, t0), t0);
    }
}
