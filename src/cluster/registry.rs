//! The node registry: what each node reports about itself at every heartbeat (its URLs, its load,
//! the streams it owns), and how a publish is placed on the node with the most transcoding headroom.
//! Sans-IO: records in and out as JSON, placement as a pure function of the records.

use serde::{Deserialize, Serialize};

/// A node's load at one heartbeat.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NodeLoad {
    /// Streams in the node's hub (live, waiting for a reconnect, or ended and lingering).
    pub streams: usize,
    /// Of those, streams with a publisher connected.
    pub publishing: usize,
    /// Of those, streams transcoded through the ladder.
    pub transcoded: usize,
    /// The slowest transcoded stream's real-time factor (media seconds per second; `None` without
    /// a transcoded stream). Below [`OVERLOADED_REAL_TIME_FACTOR`] the node is overloaded.
    pub min_real_time_factor: Option<f64>,
    /// The process's CPU time over the last heartbeat, as a fraction of all the machine's cores
    /// (0.0 idle, 1.0 every core busy).
    pub cpu_busy: f64,
    /// The machine's cores.
    pub cores: usize,
    /// HTTP requests in flight (blocked reloads included).
    pub http_requests: usize,
}

/// Where a node is in its life: serving, draining (no new publish, leaves placement, its streams go
/// on) or drained (draining and no stream left: safe to remove).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeState {
    /// Takes publishes.
    Active,
    /// Refuses new publishes; its streams go on.
    Draining,
    /// Draining, and no stream is left.
    Drained,
}

/// What a node reports at each heartbeat (`estuary:node:{id}`, JSON, expiring after three
/// heartbeats).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeRecord {
    /// The node id.
    pub node_id: String,
    /// How other origins and clients reach its HTTP origin (`http://host:port`).
    pub http: String,
    /// How publishers reach its RTMP listener (`rtmp://host:port`), if advertised.
    pub rtmp: Option<String>,
    /// How publishers reach its SRT listener (`srt://host:port`), if advertised.
    pub srt: Option<String>,
    /// Active, draining or drained.
    pub state: NodeState,
    /// Its load.
    pub load: NodeLoad,
    /// The streams it owns (`live/{name}`), sorted.
    pub streams: Vec<String>,
    /// When it reported, Unix ms.
    pub updated_ms: i64,
}

/// Below this real-time factor a transcoded stream falls behind: its node takes no new publish.
pub const OVERLOADED_REAL_TIME_FACTOR: f64 = 0.95;
/// Above this CPU fraction a node takes no new publish.
pub const OVERLOADED_CPU_BUSY: f64 = 0.90;
/// The CPU fraction a new stream is assumed to cost on a node that has no stream to measure by.
pub const DEFAULT_STREAM_COST: f64 = 0.10;

impl NodeRecord {
    /// Whether placement may choose this node: active, CPU below [`OVERLOADED_CPU_BUSY`], no
    /// transcoded stream below [`OVERLOADED_REAL_TIME_FACTOR`].
    pub fn takes_publishes(&self) -> bool {
        self.state == NodeState::Active
            && self.load.cpu_busy < OVERLOADED_CPU_BUSY
            && self
                .load
                .min_real_time_factor
                .is_none_or(|f| f >= OVERLOADED_REAL_TIME_FACTOR)
    }

    /// What one more stream costs here, as a CPU fraction: the node's average per publishing stream,
    /// or [`DEFAULT_STREAM_COST`] when it has none.
    pub fn stream_cost(&self) -> f64 {
        if self.load.publishing > 0 {
            (self.load.cpu_busy / self.load.publishing as f64).max(0.01)
        } else {
            DEFAULT_STREAM_COST
        }
    }

    /// The CPU headroom left once the publishes recently placed here (`pending`, not yet in its
    /// load) have started: `1 − cpu_busy − pending × stream_cost`.
    pub fn headroom(&self, pending: u64) -> f64 {
        1.0 - self.load.cpu_busy - pending as f64 * self.stream_cost()
    }
}

/// The node to place a new publish on: among those that [take publishes](NodeRecord::takes_publishes)
/// and advertise the needed URL (`needs_rtmp`, `needs_srt`), the one with the most
/// [headroom](NodeRecord::headroom) given `pending(node_id)` recent placements; ties go to fewer
/// streams, then to the lower node id. `None` when no node qualifies.
pub fn place(
    nodes: &[NodeRecord],
    pending: impl Fn(&str) -> u64,
    needs_rtmp: bool,
    needs_srt: bool,
) -> Option<&NodeRecord> {
    nodes
        .iter()
        .filter(|n| n.takes_publishes())
        .filter(|n| (!needs_rtmp || n.rtmp.is_some()) && (!needs_srt || n.srt.is_some()))
        .map(|n| {
            let p = pending(&n.node_id);
            (n, n.headroom(p), n.load.streams as u64 + p)
        })
        .filter(|(_, headroom, _)| *headroom > 1.0 - OVERLOADED_CPU_BUSY)
        .min_by(|a, b| {
            b.1.total_cmp(&a.1)
                .then(a.2.cmp(&b.2))
                .then(a.0.node_id.cmp(&b.0.node_id))
        })
        .map(|(n, _, _)| n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(id: &str, cpu_busy: f64, publishing: usize) -> NodeRecord {
        NodeRecord {
            node_id: id.into(),
            http: format!("http://{id}:8080"),
            rtmp: Some(format!("rtmp://{id}:1935")),
            srt: Some(format!("srt://{id}:9000")),
            state: NodeState::Active,
            load: NodeLoad {
                streams: publishing,
                publishing,
                cpu_busy,
                cores: 2,
                ..Default::default()
            },
            streams: Vec::new(),
            updated_ms: 0,
        }
    }

    #[test]
    fn placement_takes_the_most_headroom_and_counts_recent_placements() {
        let nodes = [node("a", 0.05, 1), node("b", 0.05, 1), node("c", 0.60, 3)];
        // Ties on headroom go to the lower id.
        assert_eq!(place(&nodes, |_| 0, true, false).unwrap().node_id, "a");
        // Two publishes just placed on a (0.05 each): b now has more headroom.
        let pending = |id: &str| if id == "a" { 2 } else { 0 };
        assert_eq!(place(&nodes, pending, true, false).unwrap().node_id, "b");
        // Spread 12 placements: the loaded node c gets none until a and b are as busy.
        let mut placed = std::collections::HashMap::<String, u64>::new();
        for _ in 0..12 {
            let n = place(
                &nodes,
                |id| placed.get(id).copied().unwrap_or(0),
                true,
                false,
            )
            .unwrap();
            *placed.entry(n.node_id.clone()).or_default() += 1;
        }
        assert_eq!(placed.get("a"), Some(&6));
        assert_eq!(placed.get("b"), Some(&6));
        assert_eq!(placed.get("c"), None);
    }

    #[test]
    fn draining_overloaded_and_url_less_nodes_are_never_chosen() {
        let mut draining = node("a", 0.0, 0);
        draining.state = NodeState::Draining;
        let busy = node("b", 0.95, 4);
        let mut behind = node("c", 0.2, 1);
        behind.load.min_real_time_factor = Some(0.8);
        let mut no_srt = node("d", 0.0, 0);
        no_srt.srt = None;
        let nodes = [draining, busy, behind, no_srt];
        assert!(place(&nodes, |_| 0, false, true).is_none());
        assert_eq!(place(&nodes, |_| 0, true, false).unwrap().node_id, "d");
        // A node whose headroom would drop under the threshold is not chosen either.
        assert!(place(&nodes, |_| 9, true, false).is_none());
    }

    #[test]
    fn records_round_trip_as_json() {
        let mut n = node("a", 0.25, 2);
        n.streams = vec!["live/x".into(), "live/y".into()];
        n.state = NodeState::Drained;
        let json = serde_json::to_string(&n).unwrap();
        assert!(json.contains("\"state\":\"drained\""));
        assert_eq!(serde_json::from_str::<NodeRecord>(&json).unwrap(), n);
    }
}
