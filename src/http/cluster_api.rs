//! The cluster's part of the JSON API (bearer token as the rest): the nodes and their streams,
//! publish placement, and drain.
//!
//! - `GET /api/cluster` — `{"node": this node's id, "nodes": [NodeRecord…]}`: every node that reported
//!   within three heartbeats, its URLs, state (`active`, `draining`, `drained`), load and streams;
//! - `GET /api/ingest/live/{name}` — where to publish `live/{name}`: the RTMP and SRT URLs, with the
//!   publish key, of its owner when it is live, else of the node with the most transcoding headroom
//!   ([`crate::cluster::registry::place`]); 503 when no node takes publishes;
//! - `GET /api/node` — this node's state; `POST /api/node/drain` — refuse new publishes, leave
//!   placement, `/readyz` 503, keep serving the streams until they end (then `drained`);
//!   `DELETE /api/node/drain` — take publishes again.

use bytes::Bytes;
use hyper::{
    Method, Response, StatusCode,
    header::{self, HeaderValue},
};

use super::*;
use crate::cluster::{Location, NodeRecord, NodeState};

fn json(status: StatusCode, value: serde_json::Value) -> Response<ChunksBody> {
    let mut r = Response::new(ChunksBody::new([Bytes::from(value.to_string())]));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

fn unavailable(why: impl std::fmt::Display) -> Response<ChunksBody> {
    json(
        StatusCode::SERVICE_UNAVAILABLE,
        serde_json::json!({"error": format!("cluster store unreachable: {why}")}),
    )
}

impl Origin {
    /// This node's state: `active`, `draining`, or `drained` (draining and no live stream left).
    pub(super) fn node_state(&self) -> NodeState {
        match (self.hub.is_draining(), self.hub.live_streams()) {
            (false, _) => NodeState::Active,
            (true, 0) => NodeState::Drained,
            (true, _) => NodeState::Draining,
        }
    }

    /// The cluster routes of the API (the token is checked); `None` for other paths.
    pub(super) async fn cluster_api(
        &self,
        method: &Method,
        path: &str,
    ) -> Option<Response<ChunksBody>> {
        let get = matches!(*method, Method::GET | Method::HEAD);
        let cluster = self.hub.config().cluster.clone();
        let not_clustered = || {
            json(
                StatusCode::NOT_FOUND,
                serde_json::json!({"error": "this origin is not in a cluster"}),
            )
        };
        Some(match path {
            "/api/node" if get => json(
                StatusCode::OK,
                serde_json::json!({
                    "node": cluster.as_ref().map(|c| c.config().node_id.clone()),
                    "state": self.node_state(),
                    "live_streams": self.hub.live_streams(),
                }),
            ),
            "/api/node/drain" if *method == Method::POST || *method == Method::DELETE => {
                self.hub.set_draining(*method == Method::POST);
                json(
                    StatusCode::ACCEPTED,
                    serde_json::json!({
                        "state": self.node_state(),
                        "live_streams": self.hub.live_streams(),
                    }),
                )
            }
            "/api/node" | "/api/node/drain" => error_response(&OriginError::MethodNotAllowed),
            "/api/cluster" if get => match cluster {
                None => not_clustered(),
                Some(c) => match c.nodes().await {
                    Ok(nodes) => json(
                        StatusCode::OK,
                        serde_json::json!({"node": c.config().node_id, "nodes": nodes}),
                    ),
                    Err(e) => unavailable(e),
                },
            },
            "/api/cluster" => error_response(&OriginError::MethodNotAllowed),
            _ => {
                let stream = path
                    .strip_prefix("/api/ingest/")
                    .filter(|s| s.parse::<media::name::StreamName>().is_ok())?;
                if !get {
                    return Some(error_response(&OriginError::MethodNotAllowed));
                }
                let Some(c) = cluster else {
                    return Some(not_clustered());
                };
                self.placement(&c, stream).await
            }
        })
    }

    /// `GET /api/ingest/live/{name}`.
    async fn placement(
        &self,
        cluster: &crate::cluster::Cluster,
        stream: &str,
    ) -> Response<ChunksBody> {
        // A live stream's publisher goes back to its owner (any other node refuses the name).
        let owner = match cluster.locate(stream).await {
            Ok(Location::Here) => cluster.nodes().await.ok().and_then(|n| {
                n.into_iter()
                    .find(|n| n.node_id == cluster.config().node_id)
            }),
            Ok(Location::Node(record)) => Some(*record),
            Ok(_) => None,
            Err(e) => return unavailable(e),
        };
        let (node, live) = match owner {
            Some(n) => (n, true),
            None => match cluster.place(false, false).await {
                Ok(Some(n)) => (n, false),
                Ok(None) => {
                    return json(
                        StatusCode::SERVICE_UNAVAILABLE,
                        serde_json::json!({"error": "no node takes publishes (all draining or overloaded)"}),
                    );
                }
                Err(e) => return unavailable(e),
            },
        };
        let key = self.auth.publish_key(stream);
        json(
            StatusCode::OK,
            serde_json::json!({
                "stream": stream,
                "node": node.node_id,
                "live": live,
                "publish_key": key,
                "rtmp": publish_url_rtmp(&node, stream, &key),
                "srt": publish_url_srt(&node, stream, &key),
            }),
        )
    }
}

/// `rtmp://host:port/live/{name}?key={key}` on `node`, if it advertises RTMP.
fn publish_url_rtmp(node: &NodeRecord, stream: &str, key: &str) -> Option<String> {
    let base = node.rtmp.as_deref()?.trim_end_matches('/');
    Some(format!("{base}/{stream}?key={key}"))
}

/// `srt://host:port?streamid=#!::r=live/{name},m=publish,key={key}` on `node`, if it advertises SRT.
fn publish_url_srt(node: &NodeRecord, stream: &str, key: &str) -> Option<String> {
    let base = node.srt.as_deref()?.trim_end_matches('/');
    Some(format!(
        "{base}?streamid=#!::r={stream},m=publish,key={key}"
    ))
}
