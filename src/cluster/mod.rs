//! Many origins as one service: stream ownership in a shared Redis (or Valkey) store.
//!
//! A publish claims its stream name (`live/{name}`) in the store before it begins: `SET key node NX PX
//! lease`, so one node in the cluster holds each name. The owner renews the lease every third of a lease
//! with a compare-and-renew script and releases it with a compare-and-delete when the stream ends, so a
//! node that lost its lease (it stalled past the lease, another node took the name) can never renew or
//! remove another node's claim. A node killed with `kill -9` stops renewing; its names free up when their
//! leases run out.
//!
//! Unreachable store: a publish that needs a new claim is refused (`server unavailable: cluster store
//! unreachable`, the driver's usual refusal): the cluster cannot know whether another node publishes the
//! name, and two origins writing one stream would reuse object URLs that CDNs cache as immutable. Live
//! streams go on; their renewals are retried at every pass, and a lease that ran out meanwhile is taken
//! back by the next renewal when nobody else took the name. Everything recovers when the store returns:
//! the connection is re-established in the background.
//!
//! Each stream's numbering outlives its node: the claim reserves media sequence numbers in the store
//! ahead of use and continues the discontinuity sequence, so a stream that comes back on another node
//! (after a `kill -9`) goes on upward, after a discontinuity, whatever the nodes' clocks say.
//!
//! Every node reports itself at each heartbeat (its URLs, load, state and streams): the registry
//! behind `GET /api/cluster`, proxying a playback request to a stream's owner, and publish placement.
//!
//! Layout: this file (settings, [`Cluster`], the background task), `ownership` (claims, renewals,
//! numbering, release), `directory` (heartbeats, nodes, where a stream is, placement), `claims`
//! (which names this node holds and what is due, sans-IO), `registry` (node records and the placement
//! rule, sans-IO), `keys` (the store's key names).

pub mod claims;
mod content_keys;
pub mod directory;
pub mod keys;
pub mod load;
mod ownership;
pub mod registry;
pub mod vault;

pub use claims::Continuation;
pub use directory::{LoadProbe, Location, NodeReport};
pub use registry::{NodeLoad, NodeRecord, NodeState};

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use redis::{Script, aio::ConnectionManager};
use tokio::sync::watch;

use crate::auth::SecretString;
use claims::Claims;

/// The longest a store operation may take before the store counts as unreachable.
pub const STORE_TIMEOUT: Duration = Duration::from_secs(2);

/// `[cluster]`: how this node joins a cluster.
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    /// `redis://[user:password@]host:port[/db]` or `rediss://…` (TLS).
    pub redis_url: SecretString,
    /// This node's name in the cluster (default: the host name).
    pub node_id: String,
    /// How other origins and clients reach this node's HTTP origin, e.g. `http://10.0.0.5:8080`.
    pub advertise_http: Option<String>,
    /// How publishers reach this node's RTMP listener, e.g. `rtmp://10.0.0.5:1935`.
    pub advertise_rtmp: Option<String>,
    /// How publishers reach this node's SRT listener, e.g. `srt://10.0.0.5:9000`.
    pub advertise_srt: Option<String>,
    /// A claim's lease (default 10 s): how long a name stays owned by a node that stopped renewing.
    pub lease: Duration,
    /// How often the node reports itself (default 2 s).
    pub heartbeat: Duration,
}

/// Why the store could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClusterError {
    /// The URL does not parse, or the first connection failed.
    #[error("cluster store {url}: {source}")]
    Store {
        /// The URL with its password hidden.
        url: String,
        /// What the client said.
        source: redis::RedisError,
    },
}

/// Why a name could not be claimed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ClaimRefused {
    /// Another node holds the name.
    #[error("stream {stream} is published on node {node}")]
    OwnedElsewhere {
        /// `live/{name}`.
        stream: String,
        /// The owner's node id.
        node: String,
    },
    /// The store did not answer in time, or failed.
    #[error("cluster store unreachable: {0}")]
    StoreUnavailable(String),
}

/// This node's membership: claims stream names, renews and releases them. Shared by the hub (which
/// admits publishes) and its own renewal task ([`Cluster::run`]).
pub struct Cluster {
    config: ClusterConfig,
    keys: keys::Keys,
    conn: ConnectionManager,
    claims: Mutex<Claims>,
    /// Where streams were found lately ([`Cluster::locate`]).
    locations: Mutex<HashMap<String, (Instant, Location)>>,
    claim: Script,
    raise: Script,
    renew: Script,
    release: Script,
    locate: Script,
    /// Store failures are logged once until an operation succeeds again.
    store_down_logged: std::sync::atomic::AtomicBool,
    /// When an operation last failed for want of the store (cleared by the next success).
    store_down_at: Mutex<Option<Instant>>,
    /// A stream ran past its msn reservation: logged once until a reservation is written.
    reservation_late_logged: std::sync::atomic::AtomicBool,
    /// Seals content keys for the store.
    vault: vault::KeyVault,
    /// Content keys fetched by claims, until their stream's entry takes them.
    fetched_keys: Mutex<HashMap<String, Vec<u8>>>,
    /// Sealed key sets to write, in order (written by [`Cluster::run`]).
    key_writes: tokio::sync::mpsc::UnboundedSender<(String, String)>,
    key_writes_rx: Mutex<Option<tokio::sync::mpsc::UnboundedReceiver<(String, String)>>>,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("node_id", &self.config.node_id)
            .field("redis_url", &redacted_url(self.config.redis_url.expose()))
            .finish()
    }
}

/// `url` with the password of its user info replaced by `…`.
pub fn redacted_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let userinfo = &url[scheme_end + 3..at];
            let user = userinfo.split(':').next().unwrap_or("");
            format!("{}{user}:…{}", &url[..scheme_end + 3], &url[at..])
        }
        _ => url.to_owned(),
    }
}

impl Cluster {
    /// Connect to the store (the first connection must succeed; later losses are recovered in the
    /// background).
    ///
    /// Errors: [`ClusterError::Store`] when the URL is invalid or the store does not answer.
    /// `vault` seals the content keys kept in the store (its key derived from the server secret).
    pub async fn connect(
        config: ClusterConfig,
        vault: vault::KeyVault,
    ) -> Result<Arc<Self>, ClusterError> {
        let url = redacted_url(config.redis_url.expose());
        let store = |source| ClusterError::Store {
            url: url.clone(),
            source,
        };
        let client = redis::Client::open(config.redis_url.expose()).map_err(store)?;
        let manager_config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(STORE_TIMEOUT))
            .set_response_timeout(Some(STORE_TIMEOUT));
        let conn = tokio::time::timeout(
            STORE_TIMEOUT * 2,
            ConnectionManager::new_with_config(client, manager_config),
        )
        .await
        .map_err(|_| {
            store(redis::RedisError::from((
                redis::ErrorKind::Io,
                "no answer",
                format!("within {:?}", STORE_TIMEOUT * 2),
            )))
        })?
        .map_err(store)?;
        tracing::info!(node = %config.node_id, store = %url, "joined the cluster");
        let key_writes = tokio::sync::mpsc::unbounded_channel();
        Ok(Arc::new(Self {
            keys: keys::Keys::default(),
            conn,
            claims: Mutex::default(),
            locations: Mutex::default(),
            claim: Script::new(ownership::CLAIM),
            raise: Script::new(ownership::RAISE),
            renew: Script::new(ownership::RENEW),
            release: Script::new(ownership::RELEASE),
            locate: Script::new(directory::LOCATE),
            store_down_logged: Default::default(),
            store_down_at: Mutex::default(),
            reservation_late_logged: Default::default(),
            vault,
            fetched_keys: Mutex::default(),
            key_writes: key_writes.0,
            key_writes_rx: Mutex::new(Some(key_writes.1)),
            config,
        }))
    }

    /// This node's settings.
    pub fn config(&self) -> &ClusterConfig {
        &self.config
    }

    fn claims(&self) -> std::sync::MutexGuard<'_, Claims> {
        self.claims.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn lease_ms(&self) -> u64 {
        u64::try_from(self.config.lease.as_millis()).unwrap_or(u64::MAX)
    }

    /// The node's background work until `shutdown` turns true: every sixth of a lease, renew leases,
    /// release stale pending claims and reserve sequence numbers; every heartbeat, report the node
    /// (`probe` says its load). At shutdown, release every claim and report the node gone.
    pub async fn run(self: Arc<Self>, probe: LoadProbe, mut shutdown: watch::Receiver<bool>) {
        let mut renewals =
            tokio::time::interval((self.config.lease / 6).max(Duration::from_millis(100)));
        renewals.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut heartbeats = tokio::time::interval(self.config.heartbeat);
        heartbeats.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut key_writes = self
            .key_writes_rx
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        loop {
            tokio::select! {
                Some((stream, sealed)) = async {
                    match key_writes.as_mut() {
                        Some(rx) => rx.recv().await,
                        None => std::future::pending().await,
                    }
                } => self.write_keys(&stream, &sealed).await,
                _ = renewals.tick() => self.renew_due().await,
                _ = heartbeats.tick() => {
                    let record = self.record(&probe(), crate::vocab::unix_ms());
                    self.heartbeat(&record).await;
                }
                _ = shutdown.changed() => {
                    if *shutdown.borrow() { break; }
                }
            }
        }
        // Keys created up to the end are written before the claims go.
        if let Some(rx) = key_writes.as_mut() {
            while let Ok((stream, sealed)) = rx.try_recv() {
                self.write_keys(&stream, &sealed).await;
            }
        }
        let names = self.claims().names();
        for name in names {
            self.claims().remove(&name);
            self.delete(&name).await;
        }
        let mut conn = self.conn.clone();
        let mut pipe = redis::pipe();
        pipe.cmd("DEL")
            .arg(self.keys.node(&self.config.node_id))
            .ignore()
            .cmd("SREM")
            .arg(self.keys.nodes())
            .arg(&self.config.node_id)
            .ignore();
        let gone = pipe.query_async::<()>(&mut conn);
        let _ = tokio::time::timeout(STORE_TIMEOUT, gone).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_hidden_in_store_urls() {
        assert_eq!(
            redacted_url("redis://user:secret@10.0.0.1:6379/0"),
            "redis://user:…@10.0.0.1:6379/0"
        );
        assert_eq!(redacted_url("rediss://:pw@host"), "rediss://:…@host");
        assert_eq!(
            redacted_url("redis://127.0.0.1:6379"),
            "redis://127.0.0.1:6379"
        );
    }
}
