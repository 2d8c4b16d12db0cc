//! Which stream names this node claims in the cluster, and when each claim's lease is due for renewal:
//! the sans-IO part of stream ownership (takes `now`, returns what to do).
//!
//! A claim starts *pending* when a publish is admitted ([`Claims::insert`]), and is *confirmed* once the
//! publish has begun ([`Claims::confirm`]). A pending claim never confirmed within
//! [`PENDING_TIMEOUT`] (the publish was refused after its admission, or its connection closed) is
//! released, so that no name stays owned by a node that does not serve it.

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

/// How long an admitted publish may take to begin before its claim is released.
pub const PENDING_TIMEOUT: Duration = Duration::from_secs(10);

/// One claimed name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Claim {
    /// When the lease was last set or renewed in the store.
    renewed_at: Instant,
    /// When the publish was admitted.
    claimed_at: Instant,
    /// The publish began.
    confirmed: bool,
}

/// What a renewal pass has to do.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Due {
    /// Names whose lease to renew (compare-and-renew).
    pub renew: Vec<String>,
    /// Names to release (compare-and-delete): pending too long.
    pub release: Vec<String>,
}

/// The names this node claims.
#[derive(Debug, Default)]
pub struct Claims {
    claims: HashMap<String, Claim>,
}

impl Claims {
    /// A claim set or renewed in the store at `now`, pending until confirmed (a claim already held
    /// keeps its state).
    pub fn insert(&mut self, name: &str, now: Instant) {
        self.claims
            .entry(name.to_owned())
            .and_modify(|c| c.renewed_at = now)
            .or_insert(Claim {
                renewed_at: now,
                claimed_at: now,
                confirmed: false,
            });
    }

    /// The publish of `name` began: its claim is kept until [`Claims::remove`].
    pub fn confirm(&mut self, name: &str) {
        if let Some(c) = self.claims.get_mut(name) {
            c.confirmed = true;
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
    /// [`PENDING_TIMEOUT`]. Names in sorted order.
    pub fn due(&self, now: Instant, lease: Duration) -> Due {
        let mut due = Due::default();
        for (name, c) in &self.claims {
            if !c.confirmed && now.duration_since(c.claimed_at) >= PENDING_TIMEOUT {
                due.release.push(name.clone());
            } else if now.duration_since(c.renewed_at) >= lease / 3 {
                due.renew.push(name.clone());
            }
        }
        due.renew.sort();
        due.release.sort();
        due
    }

    /// Every claimed name, sorted.
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.claims.keys().cloned().collect();
        names.sort();
        names
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leases_are_renewed_every_third_of_a_lease_and_pending_claims_expire() {
        let t0 = Instant::now();
        let lease = Duration::from_secs(9);
        let mut claims = Claims::default();
        claims.insert("live/a", t0);
        claims.insert("live/b", t0);
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
        claims.insert("live/a", t0 + PENDING_TIMEOUT);
        assert!(
            claims
                .due(t0 + PENDING_TIMEOUT * 3, lease)
                .release
                .is_empty()
        );
    }
}
