//! The stream directory and the node registry: each node's heartbeat (its URLs, load and streams),
//! the list of nodes, where a stream is served, and publish placement.

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

use redis::AsyncCommands;

use super::{
    ClaimRefused, Cluster, STORE_TIMEOUT,
    registry::{NodeLoad, NodeRecord, NodeState},
};

/// How long a stream's location is remembered before the store is asked again.
pub const LOCATION_TTL: Duration = Duration::from_secs(1);

/// How long a lookup waits for the store when the stream's last known location can stand in.
pub const LOCATE_TIMEOUT: Duration = Duration::from_millis(300);

/// How long a stream's last known location is used while the store is unreachable.
pub const STALE_LOCATION_TTL: Duration = Duration::from_secs(300);

/// How long a placement counts against its node (until the publish shows in the node's load).
pub const PLACEMENT_TTL: Duration = Duration::from_secs(10);

/// Where a stream is served.
#[derive(Debug, Clone, PartialEq)]
pub enum Location {
    /// On this node (or claimed by it, its publish about to begin).
    Here,
    /// On another node, reachable at its record's `http`.
    Node(Box<NodeRecord>),
    /// By a node that has not reported within three heartbeats (dead, or cut off from the store).
    Unreachable(String),
    /// By nobody right now, but its node did not end it: it died within [`ORPHAN_WINDOW`] leases,
    /// and a publisher reconnecting to any node may bring the stream back.
    Orphaned,
    /// Nowhere in the cluster.
    Nowhere,
}

/// How many leases after its last renewal a stream whose node died (its claim ran out, never
/// released) counts as [`Location::Orphaned`] rather than gone.
pub const ORPHAN_WINDOW: u32 = 3;

/// `KEYS[1]` the owner key, `KEYS[2]` the sequence hash; `ARGV[1]` the node key prefix. Answers
/// `{owner, record or false}`, or `{'', live_ms or false, ended or false}` when nobody owns the
/// stream: one round trip.
pub(super) const LOCATE: &str = "\
local owner = redis.call('GET', KEYS[1])
if not owner then
  return {'', redis.call('HGET', KEYS[2], 'live_ms'), redis.call('HGET', KEYS[2], 'ended')}
end
return {owner, redis.call('GET', ARGV[1] .. owner)}";

/// What the node reports about itself at a heartbeat (built by the server from the hub and the
/// origin).
#[derive(Debug, Clone, Default)]
pub struct NodeReport {
    /// Its load.
    pub load: NodeLoad,
    /// Whether it drains.
    pub draining: bool,
}

/// Builds a [`NodeReport`] at each heartbeat.
pub type LoadProbe = std::sync::Arc<dyn Fn() -> NodeReport + Send + Sync>;

impl Cluster {
    /// This node's record at `now_ms`, from `report`.
    pub(super) fn record(&self, report: &NodeReport, now_ms: i64) -> NodeRecord {
        let streams = self.claims().confirmed();
        NodeRecord {
            node_id: self.config.node_id.clone(),
            http: self.config.advertise_http.clone().unwrap_or_default(),
            rtmp: self.config.advertise_rtmp.clone(),
            srt: self.config.advertise_srt.clone(),
            state: match (report.draining, report.load.publishing + streams.len()) {
                (false, _) => NodeState::Active,
                (true, 0) => NodeState::Drained,
                (true, _) => NodeState::Draining,
            },
            load: report.load.clone(),
            streams,
            updated_ms: now_ms,
        }
    }

    /// Write this node's record (expiring after three heartbeats) and add it to the node set.
    pub(super) async fn heartbeat(&self, record: &NodeRecord) {
        let Ok(json) = serde_json::to_string(record) else {
            return;
        };
        let ttl_ms = u64::try_from((self.config.heartbeat * 3).as_millis()).unwrap_or(u64::MAX);
        let mut conn = self.conn.clone();
        let mut pipe = redis::pipe();
        pipe.cmd("SET")
            .arg(self.keys.node(&self.config.node_id))
            .arg(json)
            .arg("PX")
            .arg(ttl_ms)
            .ignore()
            .cmd("SADD")
            .arg(self.keys.nodes())
            .arg(&self.config.node_id)
            .ignore();
        let write = pipe.query_async::<()>(&mut conn);
        match tokio::time::timeout(STORE_TIMEOUT, write).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => self.store_down(&e.to_string()),
            Err(_) => self.store_down("no answer in time"),
        }
    }

    /// Every node that reported within three heartbeats, by node id. Nodes whose record ran out are
    /// removed from the node set.
    ///
    /// Errors: the store is unreachable.
    pub async fn nodes(&self) -> Result<Vec<NodeRecord>, ClaimRefused> {
        let mut conn = self.conn.clone();
        let read = async {
            let mut ids: Vec<String> = conn.smembers(self.keys.nodes()).await?;
            ids.sort();
            if ids.is_empty() {
                return Ok(Vec::new());
            }
            let keys: Vec<String> = ids.iter().map(|id| self.keys.node(id)).collect();
            let records: Vec<Option<String>> =
                redis::cmd("MGET").arg(&keys).query_async(&mut conn).await?;
            let mut nodes = Vec::new();
            for (id, record) in ids.iter().zip(records) {
                match record.and_then(|r| serde_json::from_str::<NodeRecord>(&r).ok()) {
                    Some(r) => nodes.push(r),
                    None => {
                        let _: i64 = conn.srem(self.keys.nodes(), id).await?;
                    }
                }
            }
            Ok::<_, redis::RedisError>(nodes)
        };
        match tokio::time::timeout(STORE_TIMEOUT, read).await {
            Ok(Ok(nodes)) => Ok(nodes),
            Ok(Err(e)) => Err(ClaimRefused::StoreUnavailable(e.to_string())),
            Err(_) => Err(ClaimRefused::StoreUnavailable("timeout".into())),
        }
    }

    /// Where `stream` (`live/{name}`) is served, remembered for [`LOCATION_TTL`].
    ///
    /// Errors: the store is unreachable.
    pub async fn locate(&self, stream: &str) -> Result<Location, ClaimRefused> {
        if self.holds(stream) {
            return Ok(Location::Here);
        }
        let now = Instant::now();
        if let Some((at, location)) = self.locations().get(stream)
            && now.duration_since(*at) < LOCATION_TTL
        {
            return Ok(location.clone());
        }
        // The store just failed: a stream known before is answered from memory at once (the next
        // attempt is made when the failure is a second old), so viewers through this node keep
        // their pace through an outage.
        if self.store_down_within(LOCATION_TTL)
            && let Ok(location) = self.last_known(stream, String::new())
        {
            return Ok(location);
        }
        let mut conn = self.conn.clone();
        let mut invocation = self.locate.key(self.keys.owner(stream));
        invocation
            .key(self.keys.sequence(stream))
            .arg(self.keys.node(""));
        let call = invocation.invoke_async::<Vec<Option<String>>>(&mut conn);
        // With a location to fall back on, a slow store is not waited for long.
        let timeout = if self.locations().contains_key(stream) {
            LOCATE_TIMEOUT
        } else {
            STORE_TIMEOUT
        };
        let answer = match tokio::time::timeout(timeout, call).await {
            Ok(Ok(answer)) => {
                self.store_up();
                answer
            }
            Ok(Err(e)) => {
                self.store_down(&e.to_string());
                return self.last_known(stream, e.to_string());
            }
            Err(_) => {
                self.store_down("no answer in time");
                return self.last_known(stream, "timeout".into());
            }
        };
        let orphan_ms =
            i64::try_from((self.config.lease * ORPHAN_WINDOW).as_millis()).unwrap_or(i64::MAX);
        let location = match answer.as_slice() {
            [Some(none), live_ms, ended] if none.is_empty() => {
                let live_ms = live_ms.as_deref().and_then(|v| v.parse::<i64>().ok());
                match (live_ms, ended) {
                    (Some(at), None) if crate::vocab::unix_ms() - at < orphan_ms => {
                        Location::Orphaned
                    }
                    _ => Location::Nowhere,
                }
            }
            [Some(owner), ..] if *owner == self.config.node_id => Location::Here,
            [Some(owner), record] => match record
                .as_deref()
                .and_then(|r| serde_json::from_str::<NodeRecord>(r).ok())
                .filter(|r| !r.http.is_empty())
            {
                Some(r) => Location::Node(Box::new(r)),
                None => Location::Unreachable(owner.clone()),
            },
            _ => Location::Nowhere,
        };
        let mut locations = self.locations();
        if locations.len() > 10_000 {
            locations.retain(|_, (at, _)| now.duration_since(*at) < STALE_LOCATION_TTL);
        }
        locations.insert(stream.to_owned(), (now, location.clone()));
        Ok(location)
    }

    /// The store is unreachable: where `stream` was last found (within [`STALE_LOCATION_TTL`]), so
    /// that viewers of a stream on another node keep playing through an outage of the store.
    fn last_known(&self, stream: &str, error: String) -> Result<Location, ClaimRefused> {
        let now = Instant::now();
        match self.locations().get(stream) {
            Some((at, location)) if now.duration_since(*at) < STALE_LOCATION_TTL => {
                Ok(location.clone())
            }
            _ => Err(ClaimRefused::StoreUnavailable(error)),
        }
    }

    /// Forget where `stream` was found (its owner did not answer).
    pub fn forget_location(&self, stream: &str) {
        self.locations().remove(stream);
    }

    fn locations(&self) -> std::sync::MutexGuard<'_, HashMap<String, (Instant, Location)>> {
        self.locations.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The node a new publish should go to ([`super::registry::place`]): the most transcoding
    /// headroom among the nodes that take publishes and advertise the protocol's URL, counting the
    /// placements made in the last [`PLACEMENT_TTL`]. The placement is counted against the chosen
    /// node. `None` when no node qualifies.
    ///
    /// Errors: the store is unreachable.
    pub async fn place(
        &self,
        needs_rtmp: bool,
        needs_srt: bool,
    ) -> Result<Option<NodeRecord>, ClaimRefused> {
        let nodes = self.nodes().await?;
        let mut conn = self.conn.clone();
        let unavailable = |e: redis::RedisError| ClaimRefused::StoreUnavailable(e.to_string());
        let keys: Vec<String> = nodes.iter().map(|n| self.keys.placed(&n.node_id)).collect();
        let pending: Vec<Option<u64>> = if keys.is_empty() {
            Vec::new()
        } else {
            redis::cmd("MGET")
                .arg(&keys)
                .query_async(&mut conn)
                .await
                .map_err(unavailable)?
        };
        let pending: HashMap<&str, u64> = nodes
            .iter()
            .zip(pending)
            .map(|(n, p)| (n.node_id.as_str(), p.unwrap_or(0)))
            .collect();
        let Some(chosen) = super::registry::place(
            &nodes,
            |id| pending.get(id).copied().unwrap_or(0),
            needs_rtmp,
            needs_srt,
        )
        .cloned() else {
            return Ok(None);
        };
        let ttl_ms = u64::try_from(PLACEMENT_TTL.as_millis()).unwrap_or(u64::MAX);
        redis::pipe()
            .cmd("INCR")
            .arg(self.keys.placed(&chosen.node_id))
            .ignore()
            .cmd("PEXPIRE")
            .arg(self.keys.placed(&chosen.node_id))
            .arg(ttl_ms)
            .ignore()
            .query_async::<()>(&mut conn)
            .await
            .map_err(unavailable)?;
        Ok(Some(chosen))
    }
}
