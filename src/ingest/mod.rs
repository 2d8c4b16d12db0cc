//! Ingest: protocol drivers (RTMP, SRT) that turn a publisher's bytes into [`IngestEvent`]s and hand
//! them to a [`PublishSession`] obtained from a [`Publisher`].
//!
//! The drivers own sockets; the protocol cores beneath them are sans-IO.

use std::net::SocketAddr;

pub use crate::vocab::{Protocol, PublishRefused, PublishRequest, TransportStats};
pub use media::name::is_valid_name;
pub use protocols::{IngestEvent, UnusableTrack, flv, ts};

pub mod rtmp;
pub mod srt;

/// The pipeline side of ingest: accepts or refuses publishes.
pub trait Publisher: Send + Sync + 'static {
    /// Decide whether `request` may publish (publish key, webhook), before [`Publisher::begin_publish`].
    /// The default allows everything.
    ///
    /// Errors: [`PublishRefused::Unauthorized`], [`PublishRefused::Forbidden`].
    fn authorize<'a>(
        &'a self,
        request: &'a PublishRequest,
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
