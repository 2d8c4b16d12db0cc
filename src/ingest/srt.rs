//! SRT ingest: the async driver over `srt-tokio`, carrying MPEG-TS.
//!
//! Place in the data flow: a publisher (FFmpeg, OBS, `srt-live-transmit`, a hardware encoder) calls
//! `srt://HOST:9000?streamid=#!::r=live/{name},m=publish`. The driver decides during the handshake whether
//! to let it in — the stream ID ([`parse_stream_id`]), the connection limit, the passphrase policy and, for
//! streams without a passphrase, the [`Publisher`] itself, so a name that is already live is refused
//! before the connection opens — then feeds every SRT payload to a [`TsDemuxer`] and hands the events to
//! the [`PublishSession`]. Dropping the session when the connection ends gives SRT the same lifecycle as
//! RTMP (reconnect grace period, discontinuity, end of stream).
//!
//! SRT itself (handshake, retransmission, TSBPD, AES decryption) is `srt-tokio`'s. The driver owns the UDP
//! socket (its receive buffer), the clock (timeouts) and the supervision of `srt-tokio`'s listener task.
//! It does not offer SRT playback (`m=request`), caller or rendezvous mode, file mode, or groups (bonding).
//! Every connection is one task with an `srt` tracing span (`peer`, `stream`); a refused handshake and the
//! end of a publish are each logged once, the latter with the SRT and TS counters. A publish the session
//! refuses after it started ([`PublishSession::refusal`]: a codec Estuary cannot serve) is closed — SRT
//! cannot carry a reason past the handshake — and the reason is in that one log line.
//!
//! ## Decisions forced by `srt-tokio` 0.4.4
//! - A wrong passphrase is detected inside `srt-tokio`, which rejects the handshake itself (`BadSecret`)
//!   and reports only an untyped error to us; the driver logs it as a passphrase mismatch. Because the
//!   passphrase can only be checked by accepting, a stream **with** a passphrase is started at the
//!   [`Publisher`] only once the handshake succeeded: a caller without the right passphrase never creates
//!   or revives a stream, but a second publisher on a live protected name is closed right after its
//!   connection opens instead of being refused in the handshake.
//! - Only a caller that announces its key length (libsrt's `pbkeylen`, which FFmpeg leaves unset by
//!   default) is known to encrypt before accepting, so a refused passphrase is logged as a "mismatch" for
//!   those and as "missing or wrong" otherwise.
//! - One task inside `srt-tokio` receives and parses every datagram of the listening socket and runs
//!   every handshake, so a panic there ends every open SRT connection. Upstream `srt-protocol` 0.4.4
//!   panics on one crafted datagram (an empty stream-ID, congestion, filter or group handshake extension)
//!   and on key material sent to a listener without a passphrase by a caller that did not announce its
//!   key length (FFmpeg with only `passphrase=` set). The workspace therefore patches `srt-protocol`
//!   (`vendor/srt-protocol`, see `vendor/README.md`): such datagrams are ignored (srt-protocol warns about
//!   each; [`serve`] logs a count at most every 10 s) and such callers are rejected with `Unsecure`. The
//!   access callback cannot do it: it is told the announced key length, not whether key material came.
//!   If the task dies anyway, [`serve`] logs it and binds a new listener on the same address (publishers
//!   that reconnect continue after the grace period's discontinuity).

use std::collections::BTreeMap;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use srt_protocol::packet::CoreRejectReason;
use srt_protocol::settings::KeySettings;
use srt_tokio::access::{RejectReason, ServerRejectReason};
use srt_tokio::options::{ByteCount, KeySize, Passphrase};
use srt_tokio::{ConnectionRequest, SocketStatistics, SrtIncoming, SrtListener, SrtSocket};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tracing::Instrument;

use super::ts::{TsDemuxer, TsError};
use super::{Protocol, PublishRefused, PublishSession, Publisher, log_join, wait_for_shutdown};
pub use protocols::srt_stream_id::{
    ACCESS_CONTROL_PREFIX, StreamIdError, StreamRequest, parse_stream_id,
};

/// An SRT passphrase (`SRTO_PASSPHRASE`): 10 to 79 bytes. `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct SrtPassphrase(String);

/// A passphrase of the wrong length.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("an SRT passphrase has 10 to 79 bytes, this one has {0}")]
pub struct PassphraseLengthError(pub usize);

impl SrtPassphrase {
    /// Check the length SRT requires (10 to 79 bytes).
    pub fn new(passphrase: impl Into<String>) -> Result<Self, PassphraseLengthError> {
        let passphrase = passphrase.into();
        if (10..=79).contains(&passphrase.len()) {
            Ok(Self(passphrase))
        } else {
            Err(PassphraseLengthError(passphrase.len()))
        }
    }

    fn to_srt(&self) -> Option<Passphrase> {
        Passphrase::try_from(self.0.clone()).ok()
    }
}

impl std::fmt::Debug for SrtPassphrase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SrtPassphrase(<redacted>)")
    }
}

impl std::str::FromStr for SrtPassphrase {
    type Err = PassphraseLengthError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

/// Settings of the SRT listener. `Default` gives production values.
#[derive(Debug, Clone)]
pub struct SrtConfig {
    /// Most concurrent connections, handshakes in progress included; further callers are refused in the
    /// handshake (`Overload`). Default 256.
    pub max_connections: usize,
    /// Receiver latency (TSBPD delay): how long SRT may spend recovering a lost packet before the payload
    /// is released. The connection uses the larger of this and the publisher's own latency. Default
    /// 200 ms: SRT's guideline is at least 4× the round-trip time, so this covers RTTs up to ~50 ms;
    /// raise it for long-haul or lossy links (every millisecond is added to the glass-to-glass latency).
    pub latency: Duration,
    /// Requested UDP receive buffer (`SO_RCVBUF`), bytes. Default 4 MiB: at 17 Mbit/s on loopback the
    /// 64 KiB default lost up to ~21 % of packets to overflow (then retransmitted), 4 MiB none. Linux caps
    /// it at `net.core.rmem_max`; [`serve`] warns when the kernel granted less.
    pub udp_recv_buffer_bytes: usize,
    /// Time from the access decision to the open connection (the rest of the handshake). Default 5 s.
    pub handshake_timeout: Duration,
    /// A connection that delivers no payload for this long is closed. Default 10 s. (A publisher that
    /// vanishes is noticed earlier by SRT's own 5 s peer idle timeout.)
    pub idle_timeout: Duration,
    /// Largest PES packet (one frame) the TS demuxer buffers, bytes. Default 8 MiB.
    pub max_pes_bytes: usize,
    /// Passphrase of every stream without its own entry in `stream_passphrases`; `None`: unencrypted.
    pub passphrase: Option<SrtPassphrase>,
    /// Passphrases per stream name (`live/{name}`), taking precedence over `passphrase`.
    pub stream_passphrases: BTreeMap<String, SrtPassphrase>,
}

impl Default for SrtConfig {
    fn default() -> Self {
        Self {
            max_connections: 256,
            latency: Duration::from_millis(200),
            udp_recv_buffer_bytes: 4 << 20,
            handshake_timeout: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(10),
            max_pes_bytes: 8 << 20,
            passphrase: None,
            stream_passphrases: BTreeMap::new(),
        }
    }
}

impl SrtConfig {
    /// The passphrase a publish of `stream` (`live/{name}`) must use, if any.
    pub fn passphrase_for(&self, stream: &str) -> Option<&SrtPassphrase> {
        self.stream_passphrases
            .get(stream)
            .or(self.passphrase.as_ref())
    }
}

/// Why a caller is refused during the handshake. Logged once with the reject code sent to the caller.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Refusal {
    /// [`SrtConfig::max_connections`] connections are open.
    #[error("connection limit ({0}) reached")]
    ConnectionLimit(usize),
    /// The stream ID names no publish Estuary accepts.
    #[error("{0}")]
    StreamId(#[from] StreamIdError),
    /// The caller encrypts, but the stream has no passphrase.
    #[error("the caller sent a passphrase, but the stream has none configured")]
    UnexpectedPassphrase,
    /// The publisher refused the publish (already live, stream limit, shutting down).
    #[error("publish refused: {0}")]
    Publish(#[from] PublishRefused),
}

impl Refusal {
    /// The SRT reject reason sent to the caller (libsrt's `SRT_REJX_*` codes, 2000 + HTTP-like status, or
    /// core codes where libsrt has one: `SRT_REJ_UNSECURE` for a passphrase on only one side).
    pub fn reject_reason(&self) -> RejectReason {
        match self {
            Refusal::ConnectionLimit(_) => ServerRejectReason::Overload.into(),
            Refusal::StreamId(StreamIdError::UnsupportedMode(_) | StreamIdError::MissingMode) => {
                ServerRejectReason::BadMode.into()
            }
            Refusal::StreamId(_) => ServerRejectReason::BadRequest.into(),
            Refusal::UnexpectedPassphrase => CoreRejectReason::Unsecure.into(),
            Refusal::Publish(PublishRefused::AlreadyLive(_)) => ServerRejectReason::Conflict.into(),
            Refusal::Publish(PublishRefused::InvalidName(_)) => {
                ServerRejectReason::BadRequest.into()
            }
            Refusal::Publish(PublishRefused::Unauthorized(_)) => {
                ServerRejectReason::Unauthorized.into()
            }
            Refusal::Publish(PublishRefused::Forbidden(_)) => ServerRejectReason::Forbidden.into(),
            Refusal::Publish(_) => ServerRejectReason::Overload.into(),
        }
    }
}

/// Why an open connection ended abnormally. Logged once with the connection's counters.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectionError {
    /// No payload for [`SrtConfig::idle_timeout`].
    #[error("no payload received for {0:?}")]
    Idle(Duration),
    /// Reading from the SRT socket failed.
    #[error("read: {0}")]
    Read(io::Error),
    /// The payload is not MPEG-TS.
    #[error("{0}")]
    Ts(#[from] TsError),
    /// The publisher refused the publish after the handshake (streams with a passphrase).
    #[error("publish refused: {0}")]
    PublishRefused(#[from] PublishRefused),
}

/// Bind the SRT listener's UDP socket at `addr` (port 0 picks a free port), asking for a receive buffer
/// (`SO_RCVBUF`) of `recv_buffer_bytes`. Errors: the address cannot be bound.
pub fn bind_udp(addr: SocketAddr, recv_buffer_bytes: usize) -> io::Result<std::net::UdpSocket> {
    use socket2::{Domain, Protocol as IpProtocol, Socket, Type};
    let socket = Socket::new(
        Domain::for_address(addr),
        Type::DGRAM,
        Some(IpProtocol::UDP),
    )?;
    socket.set_recv_buffer_size(recv_buffer_bytes)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    Ok(socket.into())
}

/// Accept SRT publishers on `socket` (from [`bind_udp`]) until `shutdown` becomes `true`, one task per
/// caller, and deliver their streams to `publisher`.
///
/// Every caller is admitted or refused during the handshake (see the module docs). On shutdown the
/// listener closes, every connection ends (dropping its publish session) and `serve` returns once all
/// connection tasks have finished. A dropped `shutdown` sender means "never shut down". If `srt-tokio`'s
/// listener task dies, a new listener is bound on the same address (retried every 500 ms).
pub async fn serve(
    socket: std::net::UdpSocket,
    publisher: Arc<dyn Publisher>,
    config: SrtConfig,
    mut shutdown: watch::Receiver<bool>,
) {
    let local = match socket.local_addr() {
        Ok(local) => local,
        Err(e) => {
            tracing::error!(error = %e, "srt listener socket has no local address; SRT ingest disabled");
            return;
        }
    };
    log_receive_buffer(&socket, config.udp_recv_buffer_bytes);
    let shared = Arc::new(Shared {
        limit: Arc::new(Semaphore::new(config.max_connections)),
        publisher,
        config,
    });
    let mut tasks = JoinSet::new();
    let mut socket = Some(socket);
    'listener: loop {
        let started = match socket.take() {
            Some(socket) => start_listener(socket, local, &shared.config).await,
            None => {
                // The previous listener died: its socket may still be held for a moment by its
                // connections' tasks, so binding is retried.
                tokio::select! {
                    () = wait_for_shutdown(&mut shutdown) => break 'listener,
                    () = tokio::time::sleep(Duration::from_millis(500)) => {}
                }
                match bind_udp(local, shared.config.udp_recv_buffer_bytes) {
                    Ok(socket) => start_listener(socket, local, &shared.config).await,
                    Err(e) => Err(e),
                }
            }
        };
        let (mut listener, mut incoming) = match started {
            Ok(started) => started,
            Err(e) => {
                tracing::warn!(%local, error = %e, "srt listener could not start; retrying");
                continue;
            }
        };
        let mut listener_stats = listener.statistics().clone();
        let mut has_listener_stats = true;
        let mut malformed = MalformedDatagrams::default();
        loop {
            tokio::select! {
                () = wait_for_shutdown(&mut shutdown) => {
                    // The connections first (each drops its socket, which sends the SRT shutdown),
                    // then the listener: a listener closed under live connections closes their
                    // packet streams, and srt-tokio's connection tasks then spin, warning once per
                    // turn, until they time out (thousands of identical lines at every shutdown).
                    let drained = tokio::time::timeout(Duration::from_secs(3), async {
                        while let Some(joined) = tasks.join_next().await {
                            log_join(Protocol::Srt, joined);
                        }
                    })
                    .await;
                    if drained.is_err() {
                        tracing::warn!("srt connections still open 3 s into the shutdown: closing the listener under them");
                    }
                    close_listener(listener).await;
                    break 'listener;
                }
                request = incoming.incoming().next() => match request {
                    Some(request) => {
                        let permit = Arc::clone(&shared.limit).try_acquire_owned().ok();
                        tasks.spawn(admit(Arc::clone(&shared), request, permit, shutdown.clone()));
                    }
                    None => {
                        tracing::error!(
                            %local,
                            "srt listener task ended unexpectedly (a panic inside srt-tokio): its \
                             connections are gone; binding a new listener"
                        );
                        continue 'listener;
                    }
                },
                update = listener_stats.next(), if has_listener_stats => match update {
                    Some(update) => malformed.update(update.rx_parse_errors, Instant::now()),
                    None => has_listener_stats = false,
                },
                Some(joined) = tasks.join_next(), if !tasks.is_empty() => log_join(Protocol::Srt, joined),
            }
        }
    }
    while let Some(joined) = tasks.join_next().await {
        log_join(Protocol::Srt, joined);
    }
}

/// Rate-limited reporting of the datagrams `srt-tokio`'s listener could not parse (its statistics arrive
/// once a second; one line at most every [`MalformedDatagrams::INTERVAL`]).
#[derive(Default)]
struct MalformedDatagrams {
    /// The listener's `rx_parse_errors` counter at the last report.
    reported: u64,
    last_report: Option<Instant>,
}

impl MalformedDatagrams {
    const INTERVAL: Duration = Duration::from_secs(10);

    fn update(&mut self, total: u64, now: Instant) {
        let is_due = self
            .last_report
            .is_none_or(|last| now.duration_since(last) >= Self::INTERVAL);
        if total > self.reported && is_due {
            tracing::warn!(
                datagrams = total - self.reported,
                total,
                "srt listener ignored malformed datagrams (not SRT, or a handshake srt-protocol cannot parse)"
            );
            self.reported = total;
            self.last_report = Some(now);
        }
    }
}

/// What every connection task shares.
struct Shared {
    publisher: Arc<dyn Publisher>,
    config: SrtConfig,
    limit: Arc<Semaphore>,
}

async fn start_listener(
    socket: std::net::UdpSocket,
    local: SocketAddr,
    config: &SrtConfig,
) -> io::Result<(SrtListener, SrtIncoming)> {
    let socket = tokio::net::UdpSocket::from_std(socket)?;
    let buffer = ByteCount(u64::try_from(config.udp_recv_buffer_bytes).unwrap_or(u64::MAX));
    SrtListener::builder()
        .socket(socket)
        .latency(config.latency)
        .set(|options| options.connect.udp_recv_buffer_size = buffer)
        .bind(local)
        .await
}

/// Close a listener without letting a panic inside `srt-tokio`'s close (it unwraps its task's result)
/// reach the caller.
async fn close_listener(mut listener: SrtListener) {
    let closing = tokio::spawn(async move { listener.close().await });
    if tokio::time::timeout(Duration::from_secs(2), closing)
        .await
        .is_err()
    {
        tracing::warn!("srt listener did not close within 2 s");
    }
}

/// Log the receive buffer the kernel granted; warn when it is smaller than asked for.
fn log_receive_buffer(socket: &std::net::UdpSocket, requested_bytes: usize) {
    match socket2::SockRef::from(socket).recv_buffer_size() {
        // Linux reports twice the granted size (bookkeeping overhead included).
        Ok(granted) if granted < requested_bytes => tracing::warn!(
            requested_bytes,
            granted_bytes = granted,
            "srt udp receive buffer smaller than configured (raise net.core.rmem_max): \
             packets may be lost and retransmitted at high bit rates"
        ),
        Ok(granted) => tracing::debug!(
            requested_bytes,
            granted_bytes = granted,
            "srt udp receive buffer"
        ),
        Err(e) => tracing::warn!(error = %e, "srt udp receive buffer size unknown"),
    }
}

/// Decide on one caller, then (if admitted) run its connection. Runs in its own task with an `srt` span.
async fn admit(
    shared: Arc<Shared>,
    request: ConnectionRequest,
    permit: Option<OwnedSemaphorePermit>,
    shutdown: watch::Receiver<bool>,
) {
    let peer = request.remote();
    let span = tracing::info_span!("srt", %peer, stream = tracing::field::Empty);
    async move {
        let Some(_permit) = permit else {
            refuse(
                request,
                Refusal::ConnectionLimit(shared.config.max_connections),
            )
            .await;
            return;
        };
        let raw_id = request.stream_id().map(|id| id.as_str()).unwrap_or("");
        let target = match parse_stream_id(raw_id) {
            Ok(target) => target,
            Err(e) => return refuse(request, e.into()).await,
        };
        tracing::Span::current().record("stream", tracing::field::display(&target.stream));
        // Publish key or webhook, before anything else is set up for the caller.
        let auth_request = crate::vocab::PublishRequest {
            stream: target.stream.clone(),
            protocol: Protocol::Srt,
            peer,
            params: target.params.clone(),
        };
        if let Err(refused) = shared.publisher.authorize(&auth_request).await {
            return refuse(request, refused.into()).await;
        }
        // A caller that announces a key length encrypts. (One that does not may still send key material:
        // srt-tokio callers do; libsrt ones announce it. See the module docs.)
        let caller_encrypts = request.key_size() != KeySize::Unspecified;
        let passphrase = shared.config.passphrase_for(&target.stream).cloned();
        let key_settings = match &passphrase {
            None if caller_encrypts => return refuse(request, Refusal::UnexpectedPassphrase).await,
            None => None,
            Some(passphrase) => match passphrase.to_srt() {
                Some(passphrase) => Some(KeySettings {
                    key_size: request.key_size(),
                    passphrase,
                }),
                None => {
                    // Unreachable: SrtPassphrase checks the same length.
                    tracing::error!("srt passphrase rejected by srt-tokio; refusing");
                    return refuse(
                        request,
                        Refusal::Publish(PublishRefused::Unavailable("configuration")),
                    )
                    .await;
                }
            },
        };
        // Without a passphrase, start the publish now, so a name already live is refused in the handshake.
        let mut session = None;
        if key_settings.is_none() {
            match shared
                .publisher
                .begin_publish(&target.stream, Protocol::Srt, peer)
            {
                Ok(s) => session = Some(s),
                Err(refused) => return refuse(request, refused.into()).await,
            }
        }
        let timeout = shared.config.handshake_timeout;
        let socket = match tokio::time::timeout(timeout, request.accept(key_settings)).await {
            Ok(Ok(socket)) => socket,
            Ok(Err(_)) if passphrase.is_some() => {
                // srt-tokio rejected the handshake itself: the key material did not decrypt with the
                // stream's passphrase (BadSecret), or the caller sent none (Unsecure). Only a caller that
                // announced its key length is known to have sent key material.
                let what = if caller_encrypts {
                    "mismatch"
                } else {
                    "missing or wrong"
                };
                tracing::warn!(
                    "srt publish refused: SRT passphrase {what} from {peer} for {}",
                    target.stream
                );
                return;
            }
            Ok(Err(_)) => {
                // Without a passphrase srt-tokio (patched srt-protocol, see the module docs) rejects only a
                // caller that sent key material without announcing its key length. The session started
                // above ends here (the hub logs a disconnect).
                let refusal = Refusal::UnexpectedPassphrase;
                let reason = refusal.reject_reason();
                tracing::warn!(
                    code = i32::from(reason),
                    "srt publish refused in the handshake ({reason:?}): {refusal} (it sent key material \
                     without announcing its key length)"
                );
                return;
            }
            Err(_) => {
                tracing::warn!("srt handshake not completed within {timeout:?}");
                return;
            }
        };
        let session = match session {
            Some(session) => session,
            None => match shared
                .publisher
                .begin_publish(&target.stream, Protocol::Srt, peer)
            {
                Ok(session) => session,
                Err(refused) => {
                    let e = ConnectionError::from(refused);
                    tracing::warn!(error = %e, "srt connection closed right after the handshake");
                    return;
                }
            },
        };
        tracing::info!(
            user = target.user.as_deref(),
            latency_ms = socket.settings().recv_tsbpd_latency.as_millis() as u64,
            is_encrypted = passphrase.is_some(),
            "srt publish started"
        );
        let publish = ActivePublish {
            session,
            demuxer: TsDemuxer::new(shared.config.max_pes_bytes),
            srt_stats: SocketStatistics::default(),
        };
        publish
            .run(socket, shared.config.idle_timeout, shutdown)
            .await;
    }
    .instrument(span)
    .await;
}

/// Refuse a caller in the handshake, logging why once.
async fn refuse(request: ConnectionRequest, refusal: Refusal) {
    let reason = refusal.reject_reason();
    tracing::warn!(
        code = i32::from(reason),
        "srt publish refused in the handshake ({reason:?}): {refusal}"
    );
    // Fails only if the listener is gone, which serve reports.
    let _ = request.reject(reason).await;
}

/// One open publish connection.
struct ActivePublish {
    session: Box<dyn PublishSession>,
    demuxer: TsDemuxer,
    /// The latest SRT counters (srt-tokio publishes them once a second).
    srt_stats: SocketStatistics,
}

impl ActivePublish {
    async fn run(
        mut self,
        mut socket: SrtSocket,
        idle: Duration,
        mut shutdown: watch::Receiver<bool>,
    ) {
        let mut stats = socket.statistics().clone();
        let mut has_stats = true;
        let mut events = Vec::new();
        let mut deadline = Instant::now() + idle;
        let result: Result<&str, ConnectionError> = loop {
            tokio::select! {
                () = wait_for_shutdown(&mut shutdown) => break Ok("server shutting down"),
                update = stats.next(), if has_stats => match update {
                    Some(update) => {
                        self.session.transport_stats(crate::ingest::TransportStats {
                            packets_received: update.rx_data,
                            packets_lost: update.rx_loss_data,
                            packets_retransmitted: update.rx_retransmit_data,
                            packets_dropped: update.rx_dropped_data,
                            naks_sent: update.tx_nak,
                            bytes_received: update.rx_bytes,
                        });
                        self.srt_stats = update;
                    }
                    None => has_stats = false,
                },
                () = tokio::time::sleep_until(deadline) => break Err(ConnectionError::Idle(idle)),
                received = socket.next() => match received {
                    None => break Ok("connection closed"),
                    Some(Err(e)) => break Err(ConnectionError::Read(e)),
                    Some(Ok((_release_time, payload))) => {
                        deadline = Instant::now() + idle;
                        let pushed = self.demuxer.push(&payload, &mut events);
                        for event in events.drain(..) {
                            self.session.event(event);
                        }
                        if let Err(e) = pushed {
                            break Err(e.into());
                        }
                        if let Some(refused) = self.session.refusal() {
                            // Past the handshake, SRT can only close: the reason is in the log line.
                            break Err(refused.into());
                        }
                        if self.session.is_kicked() {
                            break Ok("kicked by the API");
                        }
                    }
                },
            }
        };
        self.demuxer.finish(&mut events);
        for event in events.drain(..) {
            self.session.event(event);
        }
        self.finish(result);
        // Dropping the socket closes the SRT connection (srt-tokio sends the shutdown).
        drop(socket);
    }

    /// Log the outcome with the counters (the span carries peer and stream) and end the publish.
    fn finish(self, result: Result<&str, ConnectionError>) {
        let ts = self.demuxer.stats();
        let srt = &self.srt_stats;
        macro_rules! ended {
            ($level:ident, $($message:tt)+) => {
                tracing::$level!(
                    ts_bytes = ts.bytes,
                    ts_packets = ts.packets,
                    frames = ts.frames,
                    ts_cc_errors = ts.cc_errors,
                    ts_resyncs = ts.resyncs,
                    pes_dropped = ts.pes_dropped,
                    video_keyframe_waits = ts.keyframe_waits,
                    srt_rx_packets = srt.rx_data,
                    srt_rx_unique_packets = srt.rx_unique_data,
                    srt_rx_lost_packets = srt.rx_loss_data,
                    srt_rx_retransmitted_packets = srt.rx_retransmit_data,
                    srt_rx_dropped_packets = srt.rx_dropped_data,
                    srt_rx_undecrypted_packets = srt.rx_decrypt_errors,
                    srt_tx_naks = srt.tx_nak,
                    srt_rx_bytes = srt.rx_bytes,
                    $($message)+
                )
            };
        }
        match result {
            Ok(why) => ended!(info, "srt publish ended ({why})"),
            Err(e) => ended!(warn, error = %e, "srt publish ended on error"),
        }
        drop(self.session);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn srt_passphrase_length_is_10_to_79_bytes_and_debug_hides_it() {
        assert_eq!(
            SrtPassphrase::new("123456789"),
            Err(PassphraseLengthError(9))
        );
        assert!(SrtPassphrase::new("1234567890").is_ok());
        assert!(SrtPassphrase::new("x".repeat(79)).is_ok());
        assert_eq!(
            SrtPassphrase::new("x".repeat(80)),
            Err(PassphraseLengthError(80))
        );
        let p = SrtPassphrase::new("very secret words").unwrap();
        assert!(!format!("{p:?}").contains("secret"));
        assert!(p.to_srt().is_some());
    }

    #[test]
    fn srt_stream_passphrase_takes_precedence_over_the_global_one() {
        let mut config = SrtConfig {
            passphrase: Some(SrtPassphrase::new("global passphrase").unwrap()),
            ..SrtConfig::default()
        };
        config.stream_passphrases.insert(
            "live/cam".into(),
            SrtPassphrase::new("camera passphrase").unwrap(),
        );
        assert_eq!(
            config.passphrase_for("live/cam"),
            Some(&SrtPassphrase::new("camera passphrase").unwrap())
        );
        assert_eq!(
            config.passphrase_for("live/other"),
            Some(&SrtPassphrase::new("global passphrase").unwrap())
        );
        assert_eq!(SrtConfig::default().passphrase_for("live/cam"), None);
    }

    #[test]
    fn srt_refusals_map_to_libsrt_reject_codes() {
        let code = |r: Refusal| i32::from(r.reject_reason());
        assert_eq!(code(Refusal::ConnectionLimit(1)), 2402);
        assert_eq!(code(StreamIdError::Missing.into()), 2400);
        assert_eq!(code(StreamIdError::Malformed("x").into()), 2400);
        assert_eq!(code(StreamIdError::InvalidName("x".into()).into()), 2400);
        assert_eq!(code(StreamIdError::MissingMode.into()), 2405);
        assert_eq!(
            code(StreamIdError::UnsupportedMode("request".into()).into()),
            2405
        );
        assert_eq!(code(Refusal::UnexpectedPassphrase), 1011);
        assert_eq!(
            code(PublishRefused::AlreadyLive("live/x".into()).into()),
            2409
        );
        assert_eq!(
            code(PublishRefused::Unavailable("stream limit reached").into()),
            2402
        );
    }
}
