//! Stream ownership: claiming a name (with its sequence numbers), confirming it, renewing its lease
//! and its msn reservation, and releasing it.

use std::{sync::Arc, time::Instant};

use redis::AsyncCommands;

use super::{
    ClaimRefused, Cluster, STORE_TIMEOUT,
    claims::{Continuation, RESERVE_BLOCK, SequenceWrite},
};

/// Claim a name and reserve its numbering, atomically. `KEYS[1]` the owner key, `KEYS[2]` the
/// sequence hash; `ARGV` the node id, the lease (ms), the lowest first msn this node would use, the
/// block size. Answers `{0, owner}` when another node holds the name, else `{1, first msn,
/// discontinuity sequence, sealed content keys or false}` having stored `msn = first + block` and the
/// discontinuity sequence (one more than the stored one; 0 for a stream never published). `KEYS[3]`
/// the sealed content keys.
pub(super) const CLAIM: &str = "\
local owner = redis.call('GET', KEYS[1])
if owner and owner ~= ARGV[1] then return {0, owner} end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
redis.call('HDEL', KEYS[2], 'ended')
redis.call('HSET', KEYS[2], 'live_ms', ARGV[5])
local stored = tonumber(redis.call('HGET', KEYS[2], 'msn') or '0')
local first = math.max(stored, tonumber(ARGV[3]))
local disc = redis.call('HGET', KEYS[2], 'discontinuity')
if disc then disc = tonumber(disc) + 1 else disc = 0 end
redis.call('HSET', KEYS[2], 'msn', string.format('%d', first + tonumber(ARGV[4])), 'discontinuity', string.format('%d', disc))
return {1, string.format('%d', first), string.format('%d', disc), redis.call('GET', KEYS[3])}";

/// Raise a stream's stored numbering, never lower it. `KEYS[1]` the sequence hash; `ARGV` the msn
/// reservation and the discontinuity sequence.
pub(super) const RAISE: &str = "\
local msn = tonumber(redis.call('HGET', KEYS[1], 'msn') or '0')
if tonumber(ARGV[1]) > msn then redis.call('HSET', KEYS[1], 'msn', ARGV[1]) end
local disc = tonumber(redis.call('HGET', KEYS[1], 'discontinuity') or '-1')
if tonumber(ARGV[2]) > disc then redis.call('HSET', KEYS[1], 'discontinuity', ARGV[2]) end
return 1";

/// `if GET owner == node then PEXPIRE owner lease`: renew only one's own claim, and note when the
/// stream was last known live (`live_ms` in the sequence hash, `KEYS[2]`; `ARGV[3]` now, Unix ms).
pub(super) const RENEW: &str = "\
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('HSET', KEYS[2], 'live_ms', ARGV[3])
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0";
/// `if GET owner == node then DEL owner`: release only one's own claim, and mark the stream ended
/// (`ended` in the sequence hash, `KEYS[2]`: nobody is about to bring it back).
pub(super) const RELEASE: &str = "\
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('HSET', KEYS[2], 'ended', '1')
  return redis.call('DEL', KEYS[1])
end
return 0";

impl Cluster {
    /// Claim `stream` (`live/{name}`) for a publish on this node: a new claim, or this node's own
    /// claim renewed (a reconnect, or a second publisher that the hub then refuses as on one origin).
    /// `floor_msn` is the lowest first media sequence number this node would use on its own (what
    /// it used before, its clock). The claim is pending until [`Cluster::confirm`]; its numbering is
    /// then [`Cluster::continuation`].
    ///
    /// Errors: [`ClaimRefused::OwnedElsewhere`] with the owner; [`ClaimRefused::StoreUnavailable`]
    /// when the store did not answer within [`STORE_TIMEOUT`].
    pub async fn claim(&self, stream: &str, floor_msn: u64) -> Result<Continuation, ClaimRefused> {
        let mut conn = self.conn.clone();
        let mut invocation = self.claim.key(self.keys.owner(stream));
        invocation
            .key(self.keys.sequence(stream))
            .key(self.keys.content_keys(stream))
            .arg(&self.config.node_id)
            .arg(self.lease_ms())
            .arg(floor_msn)
            .arg(RESERVE_BLOCK)
            .arg(crate::vocab::unix_ms());
        let call = invocation.invoke_async::<Vec<redis::Value>>(&mut conn);
        let answer = match tokio::time::timeout(STORE_TIMEOUT, call).await {
            Ok(Ok(answer)) => answer,
            Ok(Err(e)) => return Err(ClaimRefused::StoreUnavailable(e.to_string())),
            Err(_) => {
                return Err(ClaimRefused::StoreUnavailable(format!(
                    "no answer within {STORE_TIMEOUT:?}"
                )));
            }
        };
        let text =
            |i: usize| -> Option<String> { redis::from_redis_value(answer.get(i)?.clone()).ok() };
        let number = |i: usize| text(i).and_then(|t| t.parse::<u64>().ok());
        match number(0) {
            Some(1) => {
                let continuation = Continuation {
                    first_msn: number(1).unwrap_or(floor_msn).max(floor_msn),
                    discontinuity_sequence: number(2).unwrap_or(0),
                };
                self.claims().insert(stream, Instant::now(), continuation);
                if let Some(sealed) = text(3) {
                    self.keep_fetched_keys(stream, &sealed);
                }
                Ok(continuation)
            }
            Some(0) => Err(ClaimRefused::OwnedElsewhere {
                stream: stream.to_owned(),
                node: text(1).unwrap_or_else(|| "?".into()),
            }),
            _ => Err(ClaimRefused::StoreUnavailable(format!(
                "unexpected claim answer {answer:?}"
            ))),
        }
    }

    /// The numbering reserved for `stream` by this node's claim.
    pub fn continuation(&self, stream: &str) -> Option<Continuation> {
        self.claims().continuation(stream)
    }

    /// The publish of `stream` began: keep its claim until [`Cluster::release`].
    pub fn confirm(&self, stream: &str) {
        self.claims().confirm(stream);
    }

    /// Note where `stream`'s numbering is (after each packaged frame; cheap): the renewal pass
    /// reserves more numbers in the store before they are needed and stores a raised discontinuity
    /// sequence. Logs once when the stream runs past its reservation (the store is away).
    pub fn note_sequence(&self, stream: &str, next_msn: u64, latest_discontinuity: u64) {
        let in_time = self.claims().note(stream, next_msn, latest_discontinuity);
        if !in_time
            && !self
                .reservation_late_logged
                .swap(true, std::sync::atomic::Ordering::Relaxed)
        {
            tracing::warn!(%stream, next_msn, "media sequence numbers used past their reservation in the cluster store (unreachable): a failover now would rely on the clock");
        }
    }

    /// Whether this node holds `stream`.
    pub fn holds(&self, stream: &str) -> bool {
        self.claims().contains(stream)
    }

    /// The stream ended on this node: forget the claim and delete it from the store (compare-and-delete,
    /// in the background; a failure leaves the lease to run out). Its numbering stays in the store.
    pub fn release(self: &Arc<Self>, stream: &str) {
        self.take_fetched_keys(stream);
        if !self.claims().remove(stream) {
            return;
        }
        let this = self.clone();
        let stream = stream.to_owned();
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            handle.spawn(async move { this.delete(&stream).await });
        }
    }

    pub(super) async fn delete(&self, stream: &str) {
        let mut conn = self.conn.clone();
        let key = self.keys.owner(stream);
        let mut invocation = self.release.key(&key);
        invocation
            .key(self.keys.sequence(stream))
            .arg(&self.config.node_id);
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

    /// One renewal pass: release stale pending claims, renew due leases, write due sequence numbers.
    pub(super) async fn renew_due(&self) {
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
                    .key(self.keys.sequence(name))
                    .arg(node)
                    .arg(self.lease_ms())
                    .arg(crate::vocab::unix_ms())
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
                    self.store_up();
                }
                Ok(Ok(false)) => {
                    self.claims().remove(name);
                    tracing::error!(stream = %name, "cluster claim lost: another node holds the name");
                }
                Ok(Err(e)) => self.store_down(&e.to_string()),
                Err(_) => self.store_down("no answer in time"),
            }
        }
        for (name, write) in &due.sequence {
            self.raise_sequence(name, *write).await;
        }
    }

    async fn raise_sequence(&self, stream: &str, write: SequenceWrite) {
        let mut conn = self.conn.clone();
        let mut invocation = self.raise.key(self.keys.sequence(stream));
        invocation.arg(write.reserve_msn).arg(write.discontinuity);
        let call = invocation.invoke_async::<i64>(&mut conn);
        match tokio::time::timeout(STORE_TIMEOUT, call).await {
            Ok(Ok(_)) => {
                self.claims().sequence_written(stream, write);
                self.reservation_late_logged
                    .store(false, std::sync::atomic::Ordering::Relaxed);
            }
            Ok(Err(e)) => self.store_down(&e.to_string()),
            Err(_) => self.store_down("no answer in time"),
        }
    }

    pub(super) fn store_up(&self) {
        *self.store_down_at.lock().unwrap_or_else(|p| p.into_inner()) = None;
        if self
            .store_down_logged
            .swap(false, std::sync::atomic::Ordering::Relaxed)
        {
            tracing::info!("cluster store reachable again");
        }
    }

    pub(super) fn store_down(&self, why: &str) {
        *self.store_down_at.lock().unwrap_or_else(|p| p.into_inner()) = Some(Instant::now());
        if !self
            .store_down_logged
            .swap(true, std::sync::atomic::Ordering::Relaxed)
        {
            tracing::warn!(error = %why, "cluster store unreachable: live streams go on, new publishes are refused until it returns");
        }
    }

    /// Whether an operation failed for want of the store within the last `within`.
    pub(super) fn store_down_within(&self, within: std::time::Duration) -> bool {
        self.store_down_at
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_some_and(|at| at.elapsed() < within)
    }
}
