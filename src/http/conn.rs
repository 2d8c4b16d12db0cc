//! Connections: the accept loop, HTTP/1.1 and HTTP/2, graceful shutdown and the idle watchdog.

use std::{
    convert::Infallible,
    net::SocketAddr,
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicU64, AtomicUsize, Ordering},
    },
    task::{Context, Poll},
    time::Duration,
};

use hyper::{Request, body::Incoming};
use tokio::net::TcpListener;

use super::*;

/// What one connection's idle watchdog ([`IdleIo`]) looks at.
#[derive(Debug)]
pub(super) struct ConnActivity {
    /// Requests whose response body has not been dropped yet (held blocking reloads included).
    pub(super) in_flight: AtomicUsize,
    /// When a byte last moved either way or a response ended, ms after `born`.
    pub(super) last_ms: AtomicU64,
    pub(super) born: tokio::time::Instant,
}

impl ConnActivity {
    pub(super) fn new() -> Self {
        Self {
            in_flight: AtomicUsize::new(0),
            last_ms: AtomicU64::new(0),
            born: tokio::time::Instant::now(),
        }
    }

    fn touch(&self) {
        self.last_ms
            .store(self.born.elapsed().as_millis() as u64, Ordering::Relaxed);
    }
}

/// One request in flight on a connection, from its headers until its response body is dropped;
/// counted on the connection and in the origin's total.
pub(super) struct InFlight(Arc<ConnActivity>, Arc<AtomicUsize>);

impl InFlight {
    pub(super) fn new(activity: Arc<ConnActivity>, total: Arc<AtomicUsize>) -> Self {
        activity.in_flight.fetch_add(1, Ordering::Relaxed);
        total.fetch_add(1, Ordering::Relaxed);
        Self(activity, total)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
        self.1.fetch_sub(1, Ordering::Relaxed);
        self.0.touch();
    }
}

/// A connection's socket that records its activity and reads end-of-stream once the connection has
/// had no request in flight and moved no byte for `idle`, so that hyper closes it. hyper's HTTP/1
/// header timeout already closes an idle HTTP/1.1 keep-alive connection; HTTP/2 has no idle timeout
/// of its own (its PINGs only find dead peers), so without this an HTTP/2 connection with no stream
/// would hold its connection slot for ever.
pub(super) struct IdleIo {
    pub(super) inner: tokio::net::TcpStream,
    pub(super) activity: Arc<ConnActivity>,
    pub(super) idle: Duration,
    pub(super) timer: Pin<Box<tokio::time::Sleep>>,
}

impl IdleIo {
    fn new(inner: tokio::net::TcpStream, activity: Arc<ConnActivity>, idle: Duration) -> Self {
        Self {
            inner,
            activity,
            idle,
            timer: Box::pin(tokio::time::sleep(idle)),
        }
    }

    /// True once the connection has been idle for `idle`; otherwise the timer is armed for the
    /// moment it would be.
    fn poll_idle(&mut self, cx: &mut Context<'_>) -> bool {
        loop {
            let due = if self.activity.in_flight.load(Ordering::Relaxed) > 0 {
                tokio::time::Instant::now() + self.idle
            } else {
                let last = self.activity.last_ms.load(Ordering::Relaxed);
                self.activity.born + Duration::from_millis(last) + self.idle
            };
            if due <= tokio::time::Instant::now() {
                return true;
            }
            if self.timer.deadline() != due {
                self.timer.as_mut().reset(due);
            }
            if self.timer.as_mut().poll(cx).is_pending() {
                return false;
            }
        }
    }
}

impl tokio::io::AsyncRead for IdleIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        match Pin::new(&mut self.inner).poll_read(cx, buf) {
            Poll::Ready(r) => {
                if buf.filled().len() > before {
                    self.activity.touch();
                }
                Poll::Ready(r)
            }
            // End of stream (no bytes filled): hyper closes the connection.
            Poll::Pending if self.poll_idle(cx) => Poll::Ready(Ok(())),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl tokio::io::AsyncWrite for IdleIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        r
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Serve HTTP/1.1 and cleartext HTTP/2 (prior knowledge) on `listener` until `shutdown` turns true,
/// then shut down gracefully: stop accepting, let each connection finish the response in flight
/// (then close it; HTTP/2: GOAWAY) and return when all have, or after `grace`, cutting the rest.
/// Idle keep-alive connections close at once. End the streams first ([`Hub::end_all`]) so that
/// blocked playlist requests and segments in progress complete instead of running into the grace.
/// Connections that stay idle (no request in flight, no byte either way) for the header timeout are
/// closed, HTTP/1.1 and HTTP/2 alike.
pub async fn serve(
    listener: TcpListener,
    origin: Arc<Origin>,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
    grace: Duration,
) {
    use hyper_util::{
        rt::{TokioExecutor, TokioIo, TokioTimer},
        server::{conn::auto, graceful::GracefulShutdown},
    };
    let limit = Arc::new(tokio::sync::Semaphore::new(origin.config.max_connections));
    let graceful = GracefulShutdown::new();
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(origin.config.header_read_timeout)
        .max_buf_size(64 * 1024);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(256);
    loop {
        let permit = tokio::select! {
            p = limit.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => break },
            _ = shutdown.changed() => break,
        };
        let (stream, peer): (tokio::net::TcpStream, SocketAddr) = tokio::select! {
            r = listener.accept() => match r {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(error = %e, "http accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = shutdown.changed() => break,
        };
        let _ = stream.set_nodelay(true);
        let origin = origin.clone();
        let builder = builder.clone();
        // Held for the connection's life, whoever serves it: the shutdown waits for every watcher.
        let watcher = graceful.watcher();
        let header_timeout = origin.config.header_read_timeout;
        let mut stopping = shutdown.clone();
        tokio::spawn(async move {
            let _permit = permit;
            // A connection must start its first request within the header timeout. (hyper's own
            // header timeout starts only once the protocol is known, that is after the first bytes:
            // a client that never sends one would hold its connection slot for ever.) A shutdown
            // closes such connections at once: they have no response in flight.
            let mut first = [0u8; 3];
            let started = tokio::select! {
                r = tokio::time::timeout(header_timeout, stream.peek(&mut first)) => r,
                _ = stopping.changed() => return,
            };
            let n = match started {
                Ok(Ok(n)) if n > 0 => n,
                Ok(_) => return,
                Err(_) => {
                    tracing::debug!(%peer, "http connection closed: nothing sent within the header timeout");
                    return;
                }
            };
            // HTTP/2 with prior knowledge starts with its preface (`PRI * HTTP/2.0`): hyper's. Every
            // other connection starts on the origin's HTTP/1.1 loop, which hands it to hyper if a
            // request needs it. (A lone "P" could start either: hyper's automatic builder serves
            // both protocols.)
            let h2 = b"PRI".starts_with(&first[..n]);
            let (stream, prefix) = if h2 {
                (stream, bytes::Bytes::new())
            } else {
                match h1::serve_connection(stream, peer, origin.clone(), stopping, header_timeout)
                    .await
                {
                    h1::Ended::Closed => return,
                    h1::Ended::HandOff { stream, prefix } => (stream, prefix),
                }
            };
            let activity = Arc::new(ConnActivity::new());
            let io = h1::Prefixed {
                prefix,
                inner: IdleIo::new(stream, activity.clone(), header_timeout),
            };
            let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                let in_flight = InFlight::new(activity.clone(), origin.in_flight.clone());
                let origin = origin.clone();
                async move {
                    let mut response = origin.handle(req, Some(peer)).await?;
                    response.body_mut().in_flight = Some(in_flight);
                    Ok::<_, Infallible>(response)
                }
            });
            let connection = builder.serve_connection(TokioIo::new(io), service);
            if let Err(e) = watcher.watch(connection).await {
                tracing::debug!(%peer, error = %e, "http connection ended with an error");
            }
        });
    }
    // Stop accepting (new connections are refused), let every connection finish the response in
    // flight (HTTP/1.1: then close; HTTP/2: GOAWAY), and wait for them up to `grace`.
    drop(listener);
    let open = graceful.count();
    if open == 0 {
        return;
    }
    tracing::info!(
        connections = open,
        grace_ms = grace.as_millis() as u64,
        "http: finishing responses in flight"
    );
    if tokio::time::timeout(grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            grace_ms = grace.as_millis() as u64,
            "http: responses still in flight after the grace period are cut"
        );
    }
}
