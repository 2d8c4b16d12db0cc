//! RTMP ingest: the async driver over sans-IO cores.
//!
//! Place in the data flow: a publisher (OBS, FFmpeg) connects to `rtmp://HOST:1935/live/{name}`; this
//! driver runs the handshake ([`handshake`]), the chunk stream and command session ([`chunk`],
//! [`session`]), turns audio/video messages into frames ([`crate::ingest::flv`]) and hands them to the
//! [`PublishSession`] the [`Publisher`] returned for `live/{name}`.
//!
//! The driver owns the sockets and the clock (timeouts) and nothing else; protocol logic lives in the cores.
//! Every connection is one task with a `rtmp` tracing span (`peer`, `stream`); its outcome is logged once
//! when it ends, and an error closes only that connection. A publish the session refuses after it started
//! ([`PublishSession::refusal`]: a codec Estuary cannot serve) gets a `NetStream.Publish.Rejected` error
//! status with the reason, and the connection closes once the publisher has had time to read it. It does not serve RTMP playback, RTMPS or RTMPE.

pub use protocols::rtmp::{amf, chunk, handshake, session};

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tracing::Instrument;

use self::handshake::{HandshakeError, HandshakeProgress, ServerHandshake};
use self::session::{
    MediaKind, Rejection, ServerSession, SessionConfig, SessionError, SessionEvent,
};
use super::flv::FlvParser;
use super::{Protocol, PublishRefused, PublishSession, Publisher, log_join, wait_for_shutdown};

/// Limits and timeouts of the RTMP listener. `Default` gives production values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtmpConfig {
    /// Most concurrent connections; further connections are closed at accept. Default 256.
    pub max_connections: usize,
    /// Time allowed for the whole handshake (C0+C1+C2). Default 10 s.
    pub handshake_timeout: Duration,
    /// A connection that sends nothing for this long is closed. Default 30 s.
    pub idle_timeout: Duration,
    /// Time allowed to write one reply. Default 10 s.
    pub write_timeout: Duration,
    /// Size of the per-connection read buffer, bytes. Default 64 KiB.
    pub read_buffer_bytes: usize,
    /// Chunk stream and session limits (message size, chunk streams, buffered bytes, chunk size).
    pub session: SessionConfig,
}

impl Default for RtmpConfig {
    fn default() -> Self {
        Self {
            max_connections: 256,
            handshake_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(30),
            write_timeout: Duration::from_secs(10),
            read_buffer_bytes: 64 * 1024,
            session: SessionConfig::default(),
        }
    }
}

/// Why a connection ended abnormally. Logged once by the connection task, with its span's peer and stream.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectionError {
    /// The client did not complete the handshake in time.
    #[error("handshake not completed within {0:?}")]
    HandshakeTimeout(Duration),
    /// The handshake bytes were invalid.
    #[error("handshake: {0}")]
    Handshake(#[from] HandshakeError),
    /// The client closed the connection before completing the handshake.
    #[error("peer closed the connection during the handshake")]
    HandshakeEof,
    /// Nothing received for the idle timeout.
    #[error("no data received for {0:?}")]
    Idle(Duration),
    /// Reading from the socket failed.
    #[error("read: {0}")]
    Read(std::io::Error),
    /// Writing to the socket failed.
    #[error("write: {0}")]
    Write(std::io::Error),
    /// The client did not read a reply in time.
    #[error("write not completed within {0:?}")]
    WriteTimeout(Duration),
    /// The RTMP session failed (chunk stream, command, limits).
    #[error("{0}")]
    Session(#[from] SessionError),
    /// The session refused the client (bad name, play).
    #[error("{0}")]
    Rejected(#[from] Rejection),
    /// The publisher refused the publish (at `publish`, or later: an unsupported codec).
    #[error("publish refused: {0}")]
    PublishRefused(#[from] PublishRefused),
    /// The publish was ended through the API.
    #[error("kicked by the API")]
    Kicked,
}

/// Accept RTMP connections on `listener` until `shutdown` becomes `true`, one task per connection, and
/// deliver publishes to `publisher`.
///
/// Connections beyond [`RtmpConfig::max_connections`] are closed at once. On shutdown the listener stops
/// accepting, every connection ends (dropping its publish session), and `serve` returns once all
/// connection tasks have finished. A dropped `shutdown` sender means "never shut down". Accept errors
/// (e.g. out of file descriptors) are logged and retried after 100 ms.
pub async fn serve(
    listener: TcpListener,
    publisher: Arc<dyn Publisher>,
    config: RtmpConfig,
    mut shutdown: watch::Receiver<bool>,
) {
    let limit = Arc::new(Semaphore::new(config.max_connections));
    let config = Arc::new(config);
    let mut tasks = JoinSet::new();
    loop {
        tokio::select! {
            () = wait_for_shutdown(&mut shutdown) => break,
            accepted = listener.accept() => match accepted {
                Ok((socket, peer)) => {
                    let Ok(permit) = Arc::clone(&limit).try_acquire_owned() else {
                        tracing::warn!(%peer, max = config.max_connections, "rtmp connection limit reached, closing");
                        continue;
                    };
                    let span = tracing::info_span!("rtmp", %peer, stream = tracing::field::Empty);
                    let connection = Connection {
                        peer,
                        publisher: Arc::clone(&publisher),
                        config: Arc::clone(&config),
                        shutdown: shutdown.clone(),
                        publish: None,
                    };
                    tasks.spawn(
                        async move {
                            let _permit = permit;
                            connection.run(socket).await;
                        }
                        .instrument(span),
                    );
                }
                Err(e) => {
                    tracing::warn!(error = %e, "rtmp accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            Some(joined) = tasks.join_next(), if !tasks.is_empty() => log_join(Protocol::Rtmp, joined),
        }
    }
    while let Some(joined) = tasks.join_next().await {
        log_join(Protocol::Rtmp, joined);
    }
}

/// The publish a connection currently feeds.
struct ActivePublish {
    session: Box<dyn PublishSession>,
    parser: FlvParser,
    /// Malformed media messages dropped (the first one is logged).
    flv_errors: u64,
    /// `onCuePoint` ad markers carried.
    cue_points: u64,
    /// `onCuePoint` messages refused (the first one is logged with its reason).
    refused_cue_points: u64,
}

impl ActivePublish {
    fn finish(self, why: &str) {
        let stats = self.parser.stats();
        // The connection span carries the stream name.
        tracing::info!(
            video_frames = stats.video_frames,
            audio_frames = stats.audio_frames,
            frames_before_config = stats.frames_before_config,
            unsupported_tags = stats.unsupported_tags,
            audio_resyncs = stats.audio_resyncs,
            malformed_media = self.flv_errors,
            cue_points = self.cue_points,
            refused_cue_points = self.refused_cue_points,
            "rtmp publish ended ({why})"
        );
        drop(self.session);
    }
}

struct Connection {
    peer: SocketAddr,
    publisher: Arc<dyn Publisher>,
    config: Arc<RtmpConfig>,
    shutdown: watch::Receiver<bool>,
    publish: Option<ActivePublish>,
}

/// How reading ended when it did not yield bytes.
enum ReadEnd {
    Eof,
    Shutdown,
}

impl Connection {
    async fn run(mut self, mut socket: TcpStream) {
        let _ = socket.set_nodelay(true);
        let result = self.serve(&mut socket).await;
        let why = match &result {
            Ok(()) => "connection closed",
            Err(ConnectionError::Kicked) => "kicked by the API",
            Err(ConnectionError::PublishRefused(_)) => "publish refused",
            Err(_) => "connection error",
        };
        if let Some(publish) = self.publish.take() {
            publish.finish(why);
        }
        match result {
            Ok(()) => tracing::info!("rtmp connection closed"),
            Err(ConnectionError::Kicked) => {
                tracing::info!("rtmp connection closed: kicked by the API")
            }
            Err(e) => tracing::warn!(error = %e, "rtmp connection closed on error"),
        }
    }

    async fn serve(&mut self, socket: &mut TcpStream) -> Result<(), ConnectionError> {
        let mut buf = vec![0u8; self.config.read_buffer_bytes.max(4096)];
        let Some(leftover) = self.handshake(socket, &mut buf).await? else {
            return Ok(());
        };
        let mut session = ServerSession::new(self.config.session);
        session.receive(&leftover)?;
        self.drive(&mut session, socket).await?;
        let idle = self.config.idle_timeout;
        loop {
            let deadline = Instant::now() + idle;
            let n = match self.read(socket, &mut buf, deadline).await {
                Ok(Ok(n)) => n,
                Ok(Err(ReadEnd::Eof | ReadEnd::Shutdown)) => return Ok(()),
                Err(None) => return Err(ConnectionError::Idle(idle)),
                Err(Some(e)) => return Err(ConnectionError::Read(e)),
            };
            session.receive(&buf[..n])?;
            self.drive(&mut session, socket).await?;
        }
    }

    /// Read once before `deadline`: `Ok(Ok(n))` bytes, `Ok(Err(_))` end of stream or shutdown,
    /// `Err(None)` timeout, `Err(Some(e))` I/O error.
    async fn read(
        &mut self,
        socket: &mut TcpStream,
        buf: &mut [u8],
        deadline: Instant,
    ) -> Result<Result<usize, ReadEnd>, Option<std::io::Error>> {
        tokio::select! {
            () = wait_for_shutdown(&mut self.shutdown) => Ok(Err(ReadEnd::Shutdown)),
            read = tokio::time::timeout_at(deadline, socket.read(buf)) => match read {
                Err(_) => Err(None),
                Ok(Err(e)) => Err(Some(e)),
                Ok(Ok(0)) => Ok(Err(ReadEnd::Eof)),
                Ok(Ok(n)) => Ok(Ok(n)),
            },
        }
    }

    /// Run the handshake; returns the bytes that followed C2, or `None` on shutdown.
    async fn handshake(
        &mut self,
        socket: &mut TcpStream,
        buf: &mut [u8],
    ) -> Result<Option<Vec<u8>>, ConnectionError> {
        let timeout = self.config.handshake_timeout;
        let deadline = Instant::now() + timeout;
        let mut handshake = ServerHandshake::new();
        loop {
            let n = match self.read(socket, buf, deadline).await {
                Ok(Ok(n)) => n,
                Ok(Err(ReadEnd::Eof)) => return Err(ConnectionError::HandshakeEof),
                Ok(Err(ReadEnd::Shutdown)) => return Ok(None),
                Err(None) => return Err(ConnectionError::HandshakeTimeout(timeout)),
                Err(Some(e)) => return Err(ConnectionError::Read(e)),
            };
            match handshake.process(&buf[..n])? {
                HandshakeProgress::InProgress { response } => {
                    write(socket, &response, self.config.write_timeout).await?
                }
                HandshakeProgress::Complete {
                    response,
                    remaining,
                } => {
                    write(socket, &response, self.config.write_timeout).await?;
                    return Ok(Some(remaining));
                }
            }
        }
    }

    /// Handle every event the session has, then send its replies.
    async fn drive(
        &mut self,
        session: &mut ServerSession,
        socket: &mut TcpStream,
    ) -> Result<(), ConnectionError> {
        let mut events = Vec::new();
        while let Some(event) = session.poll()? {
            match event {
                SessionEvent::PublishRequested(request) => {
                    tracing::Span::current().record("stream", request.stream.as_str());
                    let auth_request = crate::vocab::PublishRequest {
                        stream: request.stream.clone(),
                        protocol: Protocol::Rtmp,
                        peer: self.peer,
                        params: protocols::query::query_params(
                            request.query.as_deref().unwrap_or(""),
                        ),
                    };
                    let decided = match self.publisher.authorize(&auth_request).await {
                        Ok(()) => {
                            self.publisher
                                .begin_publish(&request.stream, Protocol::Rtmp, self.peer)
                        }
                        Err(refused) => Err(refused),
                    };
                    match decided {
                        Ok(publish_session) => {
                            session.accept_publish(&request.stream)?;
                            tracing::info!(
                                has_query = request.query.is_some(),
                                "rtmp publish started"
                            );
                            let max_frame_bytes = self
                                .config
                                .session
                                .decoder
                                .max_message_bytes
                                .saturating_mul(3);
                            self.publish = Some(ActivePublish {
                                session: publish_session,
                                parser: FlvParser::new(max_frame_bytes),
                                flv_errors: 0,
                                cue_points: 0,
                                refused_cue_points: 0,
                            });
                        }
                        Err(refused) => {
                            session.refuse_publish(&refused.to_string())?;
                            flush(session, socket, self.config.write_timeout).await?;
                            return Err(refused.into());
                        }
                    }
                }
                SessionEvent::Media {
                    kind,
                    timestamp_ms,
                    payload,
                } => {
                    let Some(publish) = self.publish.as_mut() else {
                        continue;
                    };
                    let parsed = match kind {
                        MediaKind::Video => {
                            publish.parser.video(timestamp_ms, &payload, &mut events)
                        }
                        MediaKind::Audio => {
                            publish.parser.audio(timestamp_ms, &payload, &mut events)
                        }
                    };
                    if let Err(e) = parsed {
                        publish.flv_errors += 1;
                        if publish.flv_errors == 1 {
                            tracing::warn!(error = %e, "dropping malformed media message (further ones are only counted)");
                        }
                    }
                    for event in events.drain(..) {
                        publish.session.event(event);
                    }
                    if let Some(refused) = publish.session.refusal() {
                        session.reject_publish(&refused.to_string())?;
                        flush(session, socket, self.config.write_timeout).await?;
                        if let Some(publish) = self.publish.take() {
                            publish.finish("publish refused");
                        }
                        // A publisher reads the server's messages only between its own writes: let
                        // it read the status before the connection goes (a closed socket would fail its
                        // next write first, and the reason would be lost).
                        linger(socket, REFUSAL_LINGER).await;
                        return Err(refused.into());
                    }
                }
                SessionEvent::CuePoint { timestamp_ms, cue } => {
                    let Some(publish) = self.publish.as_mut() else {
                        continue;
                    };
                    match cue {
                        Ok(cue) => {
                            publish.cue_points += 1;
                            tracing::info!(?cue, timestamp_ms, "rtmp onCuePoint ad marker");
                            publish.parser.cue_point(timestamp_ms, &cue, &mut events);
                            for event in events.drain(..) {
                                publish.session.event(event);
                            }
                        }
                        Err(e) => {
                            publish.refused_cue_points += 1;
                            if publish.refused_cue_points == 1 {
                                tracing::warn!(error = %e, "rtmp onCuePoint not carried (further ones are only counted)");
                            }
                        }
                    }
                }
                SessionEvent::Unpublished => {
                    if let Some(publish) = self.publish.take() {
                        publish.finish("unpublished");
                    }
                }
                SessionEvent::Rejected(rejection) => {
                    flush(session, socket, self.config.write_timeout).await?;
                    return Err(rejection.into());
                }
            }
        }
        if self.publish.as_ref().is_some_and(|p| p.session.is_kicked()) {
            return Err(ConnectionError::Kicked);
        }
        flush(session, socket, self.config.write_timeout).await
    }
}

/// How long a connection whose publish was refused after it started stays open for the publisher to
/// read the refusal (what it sends meanwhile is discarded); it closes earlier if the publisher does.
const REFUSAL_LINGER: Duration = Duration::from_secs(2);

/// Read and discard until the peer closes, `timeout` passes or the socket fails.
async fn linger(socket: &mut TcpStream, timeout: Duration) {
    let mut buf = [0u8; 4096];
    let _ = tokio::time::timeout(timeout, async {
        while matches!(socket.read(&mut buf).await, Ok(n) if n > 0) {}
    })
    .await;
}

/// Write all of `bytes` within `timeout`.
async fn write(
    socket: &mut TcpStream,
    bytes: &[u8],
    timeout: Duration,
) -> Result<(), ConnectionError> {
    if bytes.is_empty() {
        return Ok(());
    }
    match tokio::time::timeout(timeout, socket.write_all(bytes)).await {
        Err(_) => Err(ConnectionError::WriteTimeout(timeout)),
        Ok(Err(e)) => Err(ConnectionError::Write(e)),
        Ok(Ok(())) => Ok(()),
    }
}

/// Send the session's queued replies.
async fn flush(
    session: &mut ServerSession,
    socket: &mut TcpStream,
    timeout: Duration,
) -> Result<(), ConnectionError> {
    match session.take_outgoing() {
        Some(bytes) => write(socket, &bytes, timeout).await,
        None => Ok(()),
    }
}
