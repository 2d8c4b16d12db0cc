//! Which stream names this node claims in the cluster, when each claim's lease is due for renewal,
//! and which of each stream's sequence numbers must be written to the store before they are used:
//! the sans-IO part of stream ownership (takes `now`, returns what to do).
//!
//! A claim starts *pending* when a publish is admitted ([`Claims::insert`]), and is *confirmed* once the
//! publish has begun ([`Claims::confirm`]). A pending claim never confirmed within
//! [`PENDING_TIMEOUT`] (the publish was refused after its admission, or its connection closed) is
//! released, so that no name stays owned by a node that does not serve it.
//!
//! Media sequence numbers are reserved in the store ahead of use, [`RESERVE_BLOCK`] at a time: the
//! claim reserves the first block, and a block is added whenever the stream's next number comes
//! within half a block of the reservation (at 2 s segments, a minute before it is needed), so a node
//! that dies never leaves a used number above what the store holds.

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

/// How long an admitted publish may take to begin before its claim is released.
pub const PENDING_TIMEOUT: Duration = Duration::from_secs(10);

/// How many media sequence numbers one store write reserves.
pub const RESERVE_BLOCK: u64 = 64;

/// Where a claimed stream's numbering goes on, as the store had it when the claim was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Continuation {
    /// The first media sequence number the publish may use: every number below it may have been
    /// used by an earlier publish of the stream, on any node.
    pub first_msn: u64,
    /// The discontinuity sequence number of this publish's first segment (0 for a stream never
    /// published; else one more than the previous publish's latest).
    pub discontinuity_sequence: u64,
}

/// One claimed name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Claim {
    /// When the lease was last set or renewed in the store.
    renewed_at: Instant,
    /// When the publish was admitted.
    claimed_at: Instant,
    /// The publish began.
    confirmed: bool,
    continuation: Continuation,
    /// Every msn below this is reserved in the store.
    reserved_msn: u64,
    /// The stream's next msn, as last noted.
    next_msn: u64,
    /// The discontinuity sequence in the store, and the stream's latest as last noted.
    stored_discontinuity: u64,
    latest_discontinuity: u64,
}

/// A stream's sequence numbers to write to the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SequenceWrite {
    /// Reserve every msn below this.
    pub reserve_msn: u64,
    /// The latest discontinuity sequence number.
    pub discontinuity: u64,
}

/// What a renewal pass has to do.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Due {
    /// Names whose lease to renew (compare-and-renew).
    pub renew: Vec<String>,
    /// Names to release (compare-and-delete): pending too long.
    pub release: Vec<String>,
    /// Sequence numbers to write (only ever raised in the store).
    pub sequence: Vec<(String, SequenceWrite)>,
}

/// The names this node claims.
#[derive(Debug, Default)]
pub struct Claims {
    claims: HashMap<String, Claim>,
}

impl Claims {
    /// A claim set or renewed in the store at `now`, with the numbering the store reserved for it
    /// (`continuation.first_msn` up to `+ RESERVE_BLOCK`); pending until confirmed (a claim already
    /// held keeps its confirmation).
    pub fn insert(&mut self, name: &str, now: Instant, continuation: Continuation) {
        let reserved = continuation.first_msn + RESERVE_BLOCK;
        let c = self.claims.entry(name.to_owned()).or_insert(Claim {
            renewed_at: now,
            claimed_at: now,
            confirmed: false,
            continuation,
            reserved_msn: reserved,
            next_msn: continuation.first_msn,
            stored_discontinuity: continuation.discontinuity_sequence,
            latest_discontinuity: continuation.discontinuity_sequence,
        });
        c.renewed_at = now;
        c.continuation = continuation;
        c.reserved_msn = c.reserved_msn.max(reserved);
        c.stored_discontinuity = c
            .stored_discontinuity
            .max(continuation.discontinuity_sequence);
    }

    /// The numbering reserved for `name` by its claim.
    pub fn continuation(&self, name: &str) -> Option<Continuation> {
        self.claims.get(name).map(|c| c.continuation)
    }

    /// The publish of `name` began: its claim is kept until [`Claims::remove`].
    pub fn confirm(&mut self, name: &str) {
        if let Some(c) = self.claims.get_mut(name) {
            c.confirmed = true;
        }
    }

    /// Note where `name`'s numbering is: its next msn and latest discontinuity sequence number.
    /// Returns false when `next_msn` is at or past the reservation (the store write is late: a node
    /// that died now could leave used numbers unreserved).
    pub fn note(&mut self, name: &str, next_msn: u64, latest_discontinuity: u64) -> bool {
        let Some(c) = self.claims.get_mut(name) else {
            return true;
        };
        c.next_msn = c.next_msn.max(next_msn);
        c.latest_discontinuity = c.latest_discontinuity.max(latest_discontinuity);
        next_msn < c.reserved_msn
    }

    /// The store now holds `write` for `name`.
    pub fn sequence_written(&mut self, name: &str, write: SequenceWrite) {
        if let Some(c) = self.claims.get_mut(name) {
            c.reserved_msn = c.reserved_msn.max(write.reserve_msn);
            c.stored_discontinuity = c.stored_discontinuity.max(write.discontinuity);
        }
    }

    /// Forget `name` (released, or lost to another node). True when it was claimed.
    pub fn remove(&mut self, name: &str) -> bool {
        self.claims.remove(name).is_some()
    }

    /// Whether `name` is claimed.
    pub fn contains(&self, name: &str) -> bool {
        self.claims.contains_key(name)
    }

    /// The lease of `name` was renewed at `now`.
    pub fn renewed(&mut self, name: &str, now: Instant) {
        if let Some(c) = self.claims.get_mut(name) {
            c.renewed_at = now;
        }
    }

    /// What to do at `now` with leases of `lease`: renew those renewed more than a third of a lease
    /// ago (so two renewals may fail before a lease runs out), release pending claims older than
    /// [`PENDING_TIMEOUT`], reserve a block more for streams within half a block of their
    /// reservation, and store raised discontinuity sequence numbers. Names in sorted order.
    pub fn due(&self, now: Instant, lease: Duration) -> Due {
        let mut due = Due::default();
        for (name, c) in &self.claims {
            if !c.confirmed && now.duration_since(c.claimed_at) >= PENDING_TIMEOUT {
                due.release.push(name.clone());
                continue;
            }
            if now.duration_since(c.renewed_at) >= lease / 3 {
                due.renew.push(name.clone());
            }
            let short = c.next_msn + RESERVE_BLOCK / 2 >= c.reserved_msn;
            if short || c.latest_discontinuity > c.stored_discontinuity {
                due.sequence.push((
                    name.clone(),
                    SequenceWrite {
                        reserve_msn: if short {
                            c.next_msn + RESERVE_BLOCK
                        } else {
                            c.reserved_msn
                        },
                        discontinuity: c.latest_discontinuity,
                    },
                ));
            }
        }
        due.renew.sort();
        due.release.sort();
        due.sequence.sort_by(|a, b| a.0.cmp(&b.0));
        due
    }

    /// Every claimed name, sorted.
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.claims.keys().cloned().collect();
        names.sort();
        names
    }

    /// The names whose publish began, sorted.
    pub fn confirmed(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .claims
            .iter()
            .filter(|(_, c)| c.confirmed)
            .map(|(n, _)| n.clone())
            .collect();
        names.sort();
        names
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const START: Continuation = Continuation {
        first_msn: 1000,
        discontinuity_sequence: 3,
    };

    #[test]
    fn leases_are_renewed_every_third_of_a_lease_and_pending_claims_expire() {
        let t0 = Instant::now();
        let lease = Duration::from_secs(9);
        let mut claims = Claims::default();
        claims.insert("live/a", t0, START);
        claims.insert("live/b", t0, START);
        claims.confirm("live/a");
        assert_eq!(
            claims.due(t0 + Duration::from_secs(2), lease),
            Due::default()
        );
        let due = claims.due(t0 + Duration::from_secs(3), lease);
        assert_eq!(due.renew, ["live/a", "live/b"]);
        claims.renewed("live/a", t0 + Duration::from_secs(3));
        claims.renewed("live/b", t0 + Duration::from_secs(3));
        // b was never confirmed: released after the pending timeout; a is renewed.
        let due = claims.due(t0 + PENDING_TIMEOUT, lease);
        assert_eq!(due.release, ["live/b"]);
        assert_eq!(due.renew, ["live/a"]);
        assert!(claims.remove("live/b"));
        assert!(!claims.remove("live/b"));
        assert!(claims.contains("live/a"));
        // Claiming again (a reconnect on this node) keeps the confirmation.
        claims.insert("live/a", t0 + PENDING_TIMEOUT, START);
        assert!(
            claims
                .due(t0 + PENDING_TIMEOUT * 3, lease)
                .release
                .is_empty()
        );
        assert_eq!(claims.confirmed(), ["live/a"]);
    }

    #[test]
    fn sequence_numbers_are_reserved_a_block_ahead_of_use() {
        let t0 = Instant::now();
        let lease = Duration::from_secs(9);
        let mut claims = Claims::default();
        claims.insert("live/a", t0, START);
        claims.confirm("live/a");
        assert_eq!(claims.continuation("live/a"), Some(START));
        // The claim reserved 1000..1064: nothing to write while more than half a block is left.
        assert!(claims.note("live/a", 1031, 3));
        assert!(claims.due(t0, lease).sequence.is_empty());
        assert!(claims.note("live/a", 1032, 3));
        let due = claims.due(t0, lease);
        let write = SequenceWrite {
            reserve_msn: 1032 + RESERVE_BLOCK,
            discontinuity: 3,
        };
        assert_eq!(due.sequence, [("live/a".to_owned(), write)]);
        claims.sequence_written("live/a", write);
        assert!(claims.due(t0, lease).sequence.is_empty());
        // A discontinuity (a reconnect, a new track configuration) is stored at once.
        claims.note("live/a", 1033, 4);
        assert_eq!(claims.due(t0, lease).sequence[0].1.discontinuity, 4);
        // Past the reservation: the store write is late.
        assert!(!claims.note("live/a", 1096, 4));
    }
}
