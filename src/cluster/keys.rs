//! The store's key names, in one place: `estuary:stream:{stream}:owner` holds the node id of the
//! stream's owner (with the lease as its expiry).

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
}
