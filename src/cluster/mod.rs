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
//! Layout: this file (settings, [`Cluster`]: admission, renewals, release), `claims` (which names this
//! node holds and when each is due, sans-IO), `keys` (the store's key names).

pub mod claims;
pub mod keys;

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use redis::{AsyncCommands, Script, aio::ConnectionManager};
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

/// `if GET key == node then PEXPIRE key lease`: renew only one's own claim.
const RENEW: &str = "if redis.call('GET', KEYS[1]) == ARGV[1] then \
    return redis.call('PEXPIRE', KEYS[1], ARGV[2]) else return 0 end";
/// `if GET key == node then DEL key`: release only one's own claim.
const RELEASE: &str = "if redis.call('GET', KEYS[1]) == ARGV[1] then \
    return redis.call('DEL', KEYS[1]) else return 0 end";

/// This node's membership: claims stream names, renews and releases them. Shared by the hub (which
/// admits publishes) and its own renewal task ([`Cluster::run`]).
pub struct Cluster {
    config: ClusterConfig,
    keys: keys::Keys,
    conn: ConnectionManager,
    claims: Mutex<Claims>,
    renew: Script,
    release: Script,
    /// Renewal failures are logged once until a renewal succeeds again.
    store_down_logged: std::sync::atomic::AtomicBool,
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
    pub async fn connect(config: ClusterConfig) -> Result<Arc<Self>, ClusterError> {
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
        Ok(Arc::new(Self {
            keys: keys::Keys::default(),
            conn,
            claims: Mutex::default(),
            renew: Script::new(RENEW),
            release: Script::new(RELEASE),
            store_down_logged: Default::default(),
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

    /// Claim `stream` (`live/{name}`) for a publish on this node: a new claim, or this node's own
    /// claim renewed (a reconnect, or a second publisher that the hub then refuses as on one origin).
    /// The claim is pending until [`Cluster::confirm`].
    ///
    /// Errors: [`ClaimRefused::OwnedElsewhere`] with the owner; [`ClaimRefused::StoreUnavailable`]
    /// when the store did not answer within [`STORE_TIMEOUT`].
    pub async fn claim(&self, stream: &str) -> Result<(), ClaimRefused> {
        let key = self.keys.owner(stream);
        let node = &self.config.node_id;
        let mut conn = self.conn.clone();
        let unavailable = |e: String| ClaimRefused::StoreUnavailable(e);
        let attempt = async {
            let set: Option<String> = redis::cmd("SET")
                .arg(&key)
                .arg(node)
                .arg("NX")
                .arg("PX")
                .arg(self.lease_ms())
                .query_async(&mut conn)
                .await
                .map_err(|e| unavailable(e.to_string()))?;
            if set.is_some() {
                return Ok(());
            }
            let renewed: i64 = self
                .renew
                .key(&key)
                .arg(node)
                .arg(self.lease_ms())
                .invoke_async(&mut conn)
                .await
                .map_err(|e| unavailable(e.to_string()))?;
            if renewed == 1 {
                return Ok(());
            }
            let owner: Option<String> = conn
                .get(&key)
                .await
                .map_err(|e| unavailable(e.to_string()))?;
            Err(ClaimRefused::OwnedElsewhere {
                stream: stream.to_owned(),
                node: owner.unwrap_or_else(|| "?".into()),
            })
        };
        match tokio::time::timeout(STORE_TIMEOUT, attempt).await {
            Ok(Ok(())) => {
                self.claims().insert(stream, Instant::now());
                Ok(())
            }
            Ok(Err(refused)) => Err(refused),
            Err(_) => Err(unavailable(format!("no answer within {STORE_TIMEOUT:?}"))),
        }
    }

    /// The publish of `stream` began: keep its claim until [`Cluster::release`].
    pub fn confirm(&self, stream: &str) {
        self.claims().confirm(stream);
    }

    /// Whether this node holds `stream`.
    pub fn holds(&self, stream: &str) -> bool {
        self.claims().contains(stream)
    }

    /// The stream ended on this node: forget the claim and delete it from the store (compare-and-delete,
    /// in the background; a failure leaves the lease to run out).
    pub fn release(self: &Arc<Self>, stream: &str) {
        if !self.claims().remove(stream) {
            return;
        }
        let this = self.clone();
        let stream = stream.to_owned();
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            handle.spawn(async move { this.delete(&stream).await });
        }
    }

    async fn delete(&self, stream: &str) {
        let mut conn = self.conn.clone();
        let key = self.keys.owner(stream);
        let mut invocation = self.release.key(&key);
        invocation.arg(&self.config.node_id);
        let call = invocation.invoke_async::<i64>(&mut conn);
        match tokio::time::timeout(STORE_TIMEOUT, call).await {
            Ok(Ok(_)) => tracing::debug!(%stream, "cluster claim released"),
            Ok(Err(e)) => {
                tracing::warn!(%stream, error = %e, "cluster claim not released: its lease will run out")
            }
            Err(_) => {
                tracing::warn!(%stream, "cluster claim not released in time: its lease will run out")
            }
        }
    }

    /// The node holding `stream`, if any.
    ///
    /// Errors: the store's, or a timeout.
    pub async fn owner(&self, stream: &str) -> Result<Option<String>, ClaimRefused> {
        let mut conn = self.conn.clone();
        let key = self.keys.owner(stream);
        match tokio::time::timeout(STORE_TIMEOUT, conn.get::<_, Option<String>>(&key)).await {
            Ok(Ok(owner)) => Ok(owner),
            Ok(Err(e)) => Err(ClaimRefused::StoreUnavailable(e.to_string())),
            Err(_) => Err(ClaimRefused::StoreUnavailable("timeout".into())),
        }
    }

    /// Renew this node's leases and release stale pending claims, every sixth of a lease, until
    /// `shutdown` turns true; then release every claim.
    pub async fn run(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        let mut interval =
            tokio::time::interval((self.config.lease / 6).max(Duration::from_millis(100)));
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = interval.tick() => self.renew_due().await,
                _ = shutdown.changed() => {
                    if *shutdown.borrow() { break; }
                }
            }
        }
        let names = self.claims().names();
        for name in names {
            self.claims().remove(&name);
            self.delete(&name).await;
        }
    }

    async fn renew_due(&self) {
        let due = self.claims().due(Instant::now(), self.config.lease);
        for name in &due.release {
            self.claims().remove(name);
            tracing::info!(stream = %name, "cluster claim released: the admitted publish never began");
            self.delete(name).await;
        }
        for name in &due.renew {
            let mut conn = self.conn.clone();
            let key = self.keys.owner(name);
            let node = &self.config.node_id;
            // Renew, or (the lease ran out while the store was away and nobody took the name) claim
            // again; anything else means another node holds it.
            let renew = async {
                let renewed: i64 = self
                    .renew
                    .key(&key)
                    .arg(node)
                    .arg(self.lease_ms())
                    .invoke_async(&mut conn)
                    .await?;
                if renewed == 1 {
                    return Ok(true);
                }
                let set: Option<String> = redis::cmd("SET")
                    .arg(&key)
                    .arg(node)
                    .arg("NX")
                    .arg("PX")
                    .arg(self.lease_ms())
                    .query_async(&mut conn)
                    .await?;
                Ok::<bool, redis::RedisError>(set.is_some())
            };
            match tokio::time::timeout(STORE_TIMEOUT, renew).await {
                Ok(Ok(true)) => {
                    self.claims().renewed(name, Instant::now());
                    if self
                        .store_down_logged
                        .swap(false, std::sync::atomic::Ordering::Relaxed)
                    {
                        tracing::info!("cluster store reachable again: leases renewed");
                    }
                }
                Ok(Ok(false)) => {
                    self.claims().remove(name);
                    tracing::error!(stream = %name, "cluster claim lost: another node holds the name");
                }
                Ok(Err(e)) => self.store_down(&e.to_string()),
                Err(_) => self.store_down("no answer in time"),
            }
        }
    }

    fn store_down(&self, why: &str) {
        if !self
            .store_down_logged
            .swap(true, std::sync::atomic::Ordering::Relaxed)
        {
            tracing::warn!(error = %why, "cluster store unreachable: live streams go on, new publishes are refused until it returns");
        }
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
