//! Any origin answers for any stream: a playback request for a stream owned by another node of the
//! cluster is sent on to that node's HTTP origin, and its answer streamed back as it arrives.
//!
//! The viewer's token is checked here, on the first node; the internal hop carries the trusted-edge
//! header ([`crate::auth::Auth::hop_header`]) and the viewer's address (`X-Real-IP`), and
//! [`VIA_HEADER`] so that the owner answers itself and never proxies again (no loop while the
//! nodes' views of the directory differ). The owner's status, cache headers and bytes are passed on;
//! blocking playlist reloads wait on the owner, and preload-hint parts and segments in progress
//! stream through chunk by chunk as the owner produces them. An owner that does not answer is a
//! 503 cached for one second.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, Response, StatusCode, header};
use hyper_util::client::legacy::{Client, connect::HttpConnector};

use super::*;

/// Set on a request proxied from another node: it is answered here, never proxied again.
pub const VIA_HEADER: &str = "x-estuary-via";

/// The longest wait for a connection to another node.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// The longest wait for another node's response headers: beyond the longest blocking reload (the
/// owner answers those within three target durations).
pub const RESPONSE_TIMEOUT: Duration = Duration::from_secs(30);

/// Headers that belong to one connection (RFC 9110 §7.6.1) or that the first node sets itself.
const NOT_PASSED_ON: [header::HeaderName; 7] = [
    header::CONNECTION,
    header::TRANSFER_ENCODING,
    header::TE,
    header::TRAILER,
    header::UPGRADE,
    header::ACCESS_CONTROL_ALLOW_ORIGIN,
    header::PROXY_AUTHENTICATE,
];

/// The HTTP/1.1 client of the internal hop: pooled keep-alive connections per node.
pub(super) struct ProxyClient {
    client: Client<HttpConnector, Full<Bytes>>,
    /// When a failed hop to each node was last logged.
    logged: std::sync::Mutex<std::collections::HashMap<String, std::time::Instant>>,
}

/// A node that does not answer is logged at most once per this interval.
const LOG_EVERY: Duration = Duration::from_secs(10);

impl std::fmt::Debug for ProxyClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProxyClient").finish()
    }
}

impl ProxyClient {
    pub(super) fn new() -> Self {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(CONNECT_TIMEOUT));
        connector.set_nodelay(true);
        let client = Client::builder(hyper_util::rt::TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .pool_max_idle_per_host(4096)
            .build(connector);
        Self {
            client,
            logged: Default::default(),
        }
    }

    /// Whether a failed hop to `node` should be logged now (once per [`LOG_EVERY`]).
    fn should_log(&self, node: &str) -> bool {
        let mut logged = self.logged.lock().unwrap_or_else(|p| p.into_inner());
        let now = std::time::Instant::now();
        match logged.get(node) {
            Some(at) if now.duration_since(*at) < LOG_EVERY => false,
            _ => {
                logged.insert(node.to_owned(), now);
                true
            }
        }
    }
}

impl Origin {
    /// Where a request for `stream` is answered: `None` here, else the node to proxy it to. A request
    /// proxied from another node, the DASH clock, and a stream live here are answered here.
    ///
    /// Errors: [`OriginError::OwnerUnreachable`] when the owner has not reported lately, or when the
    /// store is unreachable and the stream is not here.
    pub(super) async fn owner_elsewhere(
        &self,
        stream: &str,
        object: &Object,
        headers: &hyper::HeaderMap,
    ) -> Result<Option<Box<crate::cluster::NodeRecord>>, OriginError> {
        let Some(cluster) = self.hub.config().cluster.as_ref() else {
            return Ok(None);
        };
        if *object == Object::Time || headers.contains_key(VIA_HEADER) {
            return Ok(None);
        }
        let here = self.hub.get(stream);
        if here.as_ref().is_some_and(|e| !e.lock().packager.is_ended()) {
            return Ok(None);
        }
        match cluster.locate(stream).await {
            Ok(crate::cluster::Location::Node(record)) => Ok(Some(record)),
            Ok(crate::cluster::Location::Unreachable(node)) => {
                tracing::debug!(%stream, %node, "the stream's owner has not reported lately");
                Err(OriginError::OwnerUnreachable)
            }
            // Its node died; its publisher may be reconnecting elsewhere: players retry.
            Ok(crate::cluster::Location::Orphaned) if here.is_none() => {
                Err(OriginError::OwnerUnreachable)
            }
            Ok(_) => Ok(None),
            // The store is away: what is here is served, the rest cannot be found.
            Err(_) if here.is_some() => Ok(None),
            Err(_) => Err(OriginError::OwnerUnreachable),
        }
    }

    /// Send `req` (its body already read: `body`) to `owner` and stream its answer back.
    ///
    /// Errors: [`OriginError::OwnerUnreachable`] when the owner cannot be reached or does not answer
    /// within [`RESPONSE_TIMEOUT`].
    pub(super) async fn proxy(
        &self,
        owner: &crate::cluster::NodeRecord,
        stream: &str,
        parts: &hyper::http::request::Parts,
        body: Bytes,
        client: Option<std::net::IpAddr>,
    ) -> Result<Response<ChunksBody>, OriginError> {
        let path = strip_token(parts.uri.path());
        let uri = match parts.uri.query() {
            Some(q) => format!("{}{path}?{q}", owner.http.trim_end_matches('/')),
            None => format!("{}{path}", owner.http.trim_end_matches('/')),
        };
        let mut request = Request::builder()
            .method(parts.method.clone())
            .uri(&uri)
            .header(VIA_HEADER, self.node_id())
            .body(Full::new(body))
            .map_err(|_| OriginError::BadRequest("path"))?;
        let h = request.headers_mut();
        if let Some((name, value)) = self.auth.hop_header() {
            h.insert(name, value);
        }
        if let Some(ip) = client.map(|c| c.to_string())
            && let Ok(v) = header::HeaderValue::from_str(&ip)
        {
            h.insert("x-real-ip", v);
        }
        for name in [header::CONTENT_TYPE, header::ACCEPT] {
            if let Some(v) = parts.headers.get(&name) {
                h.insert(name, v.clone());
            }
        }
        let answer =
            tokio::time::timeout(RESPONSE_TIMEOUT, self.proxy.client.request(request)).await;
        let response = match answer {
            Ok(Ok(r)) => r,
            Ok(Err(error)) => {
                if self.proxy.should_log(&owner.node_id) {
                    tracing::warn!(%stream, node = %owner.node_id, %error, "the stream's owner did not answer (logged once per node per 10 s)");
                }
                if let Some(cluster) = self.hub.config().cluster.as_ref() {
                    cluster.forget_location(stream);
                }
                return Err(OriginError::OwnerUnreachable);
            }
            Err(_) => {
                if self.proxy.should_log(&owner.node_id) {
                    tracing::warn!(%stream, node = %owner.node_id, "the stream's owner did not answer in time (logged once per node per 10 s)");
                }
                return Err(OriginError::OwnerUnreachable);
            }
        };
        let (head, incoming) = response.into_parts();
        let length = head
            .headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        let tail: LiveTail = Box::pin(futures::stream::unfold(incoming, |mut body| async move {
            loop {
                match body.frame().await? {
                    Ok(frame) => match frame.into_data() {
                        Ok(data) if data.is_empty() => continue,
                        Ok(data) => return Some((Ok(data), body)),
                        Err(_) => continue,
                    },
                    Err(_) => {
                        return Some((
                            Err(OriginError::Unavailable("owner connection lost")),
                            body,
                        ));
                    }
                }
            }
        }));
        let is_head = parts.method == Method::HEAD;
        let mut out = Response::new(if is_head {
            ChunksBody::empty()
        } else {
            ChunksBody::proxied(tail, length)
        });
        *out.status_mut() = head.status;
        let mut headers = head.headers;
        for name in NOT_PASSED_ON {
            headers.remove(name);
        }
        headers.remove("keep-alive");
        *out.headers_mut() = headers;
        if head.status == StatusCode::SERVICE_UNAVAILABLE {
            tracing::debug!(%stream, node = %owner.node_id, "the stream's owner answered 503");
        }
        Ok(out)
    }

    fn node_id(&self) -> &str {
        self.hub
            .config()
            .cluster
            .as_ref()
            .map_or("", |c| c.config().node_id.as_str())
    }
}

/// `path` without its `/t/{token}` prefix (the hop skips the token check: it was made here).
fn strip_token(path: &str) -> &str {
    match path.strip_prefix("/t/") {
        Some(rest) => rest.find('/').map_or("/", |i| &rest[i..]),
        None => path,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hop_drops_the_token_prefix_only() {
        assert_eq!(
            strip_token("/t/abc.def/live/x/index.m3u8"),
            "/live/x/index.m3u8"
        );
        assert_eq!(
            strip_token("/live/x/v0/media.m3u8"),
            "/live/x/v0/media.m3u8"
        );
        assert_eq!(strip_token("/t/abc"), "/");
    }
}
