//! The store's key names, in one place (under the prefix `estuary:`):
//! - `stream:{stream}:owner` — the node id of the stream's owner, expiring with its lease;
//! - `stream:{stream}:sequence` — a hash: `msn`, every media sequence number below it may have been
//!   used (reserved ahead of use); `discontinuity`, the discontinuity sequence number of the latest
//!   publish; never expires (a CDN may cache a stream's objects for as long as it likes);
//! - `stream:{stream}:keys` — the stream's kept content keys, sealed ([`super::vault`]); never
//!   expires (a CDN or a player may hold segments for as long as it likes);
//! - `nodes` — a set of node ids that have reported;
//! - `node:{id}` — a node's [`NodeRecord`](super::registry::NodeRecord) as JSON, expiring after
//!   three heartbeats;
//! - `node:{id}:placed` — publishes recently placed on the node by the placement API, expiring.

/// Key names under a prefix (default `estuary:`).
#[derive(Debug, Clone)]
pub struct Keys {
    prefix: String,
}

impl Default for Keys {
    fn default() -> Self {
        Self {
            prefix: "estuary:".into(),
        }
    }
}

impl Keys {
    /// The owner of `stream` (`live/{name}`).
    pub fn owner(&self, stream: &str) -> String {
        format!("{}stream:{stream}:owner", self.prefix)
    }

    /// The sequence numbers of `stream` (`live/{name}`).
    pub fn sequence(&self, stream: &str) -> String {
        format!("{}stream:{stream}:sequence", self.prefix)
    }

    /// The sealed content keys of `stream` (`live/{name}`).
    pub fn content_keys(&self, stream: &str) -> String {
        format!("{}stream:{stream}:keys", self.prefix)
    }

    /// The set of node ids.
    pub fn nodes(&self) -> String {
        format!("{}nodes", self.prefix)
    }

    /// A node's record.
    pub fn node(&self, node_id: &str) -> String {
        format!("{}node:{node_id}", self.prefix)
    }

    /// A node's recent placements.
    pub fn placed(&self, node_id: &str) -> String {
        format!("{}node:{node_id}:placed", self.prefix)
    }
}
