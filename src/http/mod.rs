//! The HTTP origin (hyper 1, HTTP/1.1 and cleartext HTTP/2): LL-HLS playlists with blocking reload, DASH,
//! init segments, segments and parts, with cache headers a CDN can follow and CORS.
//!
//! Routes (all objects relative to the multivariant playlist, so a path prefix carries through):
//! - `GET /live/{name}/index.m3u8` — multivariant playlist;
//! - `GET /live/{name}/{rendition}/media.m3u8[?_HLS_msn=M[&_HLS_part=P]][&_HLS_skip=YES]` — media playlist;
//! - `GET /live/{name}/manifest.mpd` — the DASH MPD ([`packager::dash`]);
//! - `GET /live/{name}/time` — the MPD's `UTCTiming` clock (xs:dateTime, never cached);
//! - `GET /live/{name}/keys/{id}.key` — an encrypted stream's AES-128 content key (`private, no-store`);
//! - `GET /live/{name}/{rendition}/init-{id}.mp4`, `{msn}.m4s`, `{msn}.{part}.m4s` — media objects. A
//!   segment still in progress (or the next one) is streamed: its chunks so far, then each new chunk
//!   the moment it is produced, with chunked transfer encoding, until the segment is complete.
//!
//! Every route above may be prefixed with `/t/{token}` (a playback token, [`crate::auth`]); relative URIs
//! carry the prefix to every child. With `auth.playback = "token"` (the default) a route without a valid
//! token answers 401 (none) or 403 (invalid, expired, out of scope); keys and the license always need
//! one. A request with the trusted-edge header skips the check. `GET /auth/check` answers whether the
//! token in `X-Original-URI` may play that path (for a CDN's `auth_request`).
//!
//! Operations: `GET /healthz` (liveness: 200 while the process serves), `GET /readyz` (200, or 503 once
//! shutting down or while draining), and the JSON API under a bearer token
//! ([`crate::auth::Auth::api_token`]): `GET /api/streams`, `GET /api/streams/live/{name}` and
//! `DELETE /api/streams/live/{name}` (disconnects its publisher), see [`StreamReport`]; the node's
//! drain and, in a cluster, the nodes and publish placement (`cluster_api`).
//!
//! In a cluster ([`crate::cluster`]) a request for a stream owned by another node is checked here and
//! proxied to the owner (`proxy`).
//!
//! The player page: `GET /live/{name}/` (also under `/t/{token}`) and its libraries under `/player/`
//! ([`crate::player`]).
//!
//! `HEAD` is answered like `GET` without a body; `OPTIONS` answers CORS preflights.
//!
//! Layout, by concern: [`Origin::handle`] here dispatches each request on its `Route`, parsed once in
//! `route` (the `/t/{token}` prefix, object paths in [`packager::urls`]' grammar, the query) with its
//! metrics label; `access` (token checks and
//! the CDN's `auth_request`), `objects` (playlists with blocking reload, the MPD, keys, media objects
//! and segments in progress), `license` (ClearKey), `api` (health, metrics, the JSON API),
//! `cluster_api` (drain, the node registry, placement), `proxy` (to a stream's owner), `pages`
//! (the player page), `reply` (cache policy and error statuses), `body` ([`ChunksBody`]), `conn`
//! ([`serve`]: connections, graceful shutdown, the idle watchdog), `h1` (HTTP/1.1 requests on the
//! origin's own connection loop; HTTP/2 and what the loop does not take go to hyper) and `zerocopy`
//! (complete segments and parts sent with `sendfile` from a file written on their first request).

mod access;
mod api;
mod body;
mod cluster_api;
mod conn;
mod h1;
mod license;
mod metadata;
mod objects;
mod pages;
mod proxy;
mod reply;
mod route;
mod vod;
mod whep;
mod whip;
mod zerocopy;

pub use crate::hub::report::{
    RenditionReport, StreamReport, TranscoderReport, UnusableTrackReport,
};
pub use body::{ChunksBody, LiveTail};
pub use conn::serve;
use conn::*;
use reply::*;
use route::*;

use std::{convert::Infallible, net::SocketAddr, sync::Arc, time::Duration};

use hyper::{
    Method, Request, Response, StatusCode,
    header::{self, HeaderValue},
};
use packager::urls::StreamObject as Object;

use crate::{
    auth::{Auth, Denial},
    hub::Hub,
};

/// The answer to a CORS preflight (`OPTIONS`, any path): 204 with the methods and headers allowed.
fn preflight_response() -> Response<ChunksBody> {
    let mut resp = Response::new(ChunksBody::empty());
    *resp.status_mut() = StatusCode::NO_CONTENT;
    let h = resp.headers_mut();
    h.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("GET, HEAD, POST, DELETE, OPTIONS"),
    );
    h.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        // `*` does not cover Authorization (WHEP's bearer token).
        HeaderValue::from_static("*, Authorization"),
    );
    h.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static("86400"),
    );
    resp
}

/// The request at the start of raw client bytes, as the origin's HTTP/1.1 connections parse it: its
/// method, target and body length when whole (the `http_request` fuzz target).
#[doc(hidden)]
pub fn parse_request_for_fuzzing(data: &[u8]) -> Option<(Method, hyper::Uri, usize)> {
    h1::parse_for_fuzzing(data)
}

/// The token check a CDN calls (`auth_request`): `GET` with the viewer's URL in `X-Original-URI`.
pub const AUTH_CHECK_PATH: &str = "/auth/check";

/// Longest time a CDN may cache a token check's "yes", seconds (shorter when the token expires sooner).
pub const AUTH_CHECK_MAX_AGE_S: u64 = 60;

/// HTTP settings.
#[derive(Debug, Clone)]
pub struct OriginConfig {
    /// `Access-Control-Allow-Origin` value (default `*`).
    pub cors_allow_origin: String,
    /// Time allowed to send the request headers (default 10 s).
    pub header_read_timeout: Duration,
    /// Connections served at once (default 20 000); further connections wait in the accept queue.
    pub max_connections: usize,
    /// Bytes of memory files that complete segments and parts are sent from with `sendfile`
    /// (`zerocopy`; default 512 MiB; 0: none).
    pub sendfile_cache_bytes: u64,
    /// Where those files are made: unnamed files in this directory, or memory files when `None`
    /// (the default). See `zerocopy`.
    pub sendfile_dir: Option<std::path::PathBuf>,
    /// The player page ([`crate::player`]).
    pub player: crate::player::PlayerConfig,
}

impl Default for OriginConfig {
    fn default() -> Self {
        Self {
            cors_allow_origin: "*".into(),
            header_read_timeout: Duration::from_secs(10),
            max_connections: 20_000,
            sendfile_cache_bytes: 512 << 20,
            sendfile_dir: None,
            player: Default::default(),
        }
    }
}

/// The origin: shared by every connection.
#[derive(Debug)]
pub struct Origin {
    hub: Arc<Hub>,
    config: OriginConfig,
    auth: Arc<Auth>,
    metrics: crate::metrics::Metrics,
    player: crate::player::PlayerAssets,
    /// Requests in flight (until their response body is dropped), on every connection.
    in_flight: Arc<std::sync::atomic::AtomicUsize>,
    /// The client of proxied requests (to a stream's owner in the cluster).
    proxy: proxy::ProxyClient,
    /// Memory files that media objects are sent from (`zerocopy`).
    mirrors: zerocopy::MirrorCache,
    /// `config.cors_allow_origin` as a header value (validated with the configuration).
    cors_allow_origin: Option<HeaderValue>,
}

/// Why a request failed; mapped to a status in one place ([`OriginError::status`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OriginError {
    /// Unknown stream, rendition or object, or an object outside the live window.
    #[error("not found")]
    NotFound,
    /// A malformed request (bad `_HLS_*` directive, or a request too far ahead of the live edge).
    #[error("bad request: {0}")]
    BadRequest(&'static str),
    /// The request could not be satisfied in time, or too many requests wait.
    #[error("unavailable: {0}")]
    Unavailable(&'static str),
    /// A method other than GET, HEAD or OPTIONS.
    #[error("method not allowed")]
    MethodNotAllowed,
    /// Playback refused ([`Denial`]): 401 without a token, 403 otherwise.
    #[error("access denied: {}", .0.reason())]
    Denied(Denial),
    /// The stream's owner in the cluster (or the cluster store) does not answer: 503, cached for
    /// one second.
    #[error("the stream's origin is unreachable")]
    OwnerUnreachable,
}

impl OriginError {
    /// The HTTP status for this error.
    pub fn status(&self) -> StatusCode {
        match self {
            OriginError::NotFound => StatusCode::NOT_FOUND,
            OriginError::BadRequest(_) => StatusCode::BAD_REQUEST,
            OriginError::Unavailable(_) | OriginError::OwnerUnreachable => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            OriginError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            OriginError::Denied(d) => d.status(),
        }
    }
}

impl Origin {
    /// An origin serving `hub`'s streams, under `auth`'s playback rules.
    pub fn new(hub: Arc<Hub>, config: OriginConfig, auth: Arc<Auth>) -> Arc<Self> {
        let player = crate::player::PlayerAssets::load(&config.player);
        Arc::new(Self {
            hub,
            auth,
            metrics: Default::default(),
            player,
            in_flight: Default::default(),
            proxy: proxy::ProxyClient::new(),
            mirrors: zerocopy::MirrorCache::new(
                config.sendfile_cache_bytes,
                config.sendfile_dir.as_deref(),
            ),
            cors_allow_origin: HeaderValue::from_maybe_shared(bytes::Bytes::from(
                config.cors_allow_origin.clone(),
            ))
            .ok(),
            config,
        })
    }

    /// HTTP requests in flight now (blocked reloads and responses still being sent included).
    pub fn requests_in_flight(&self) -> usize {
        self.in_flight.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Answer one request from the client at `peer` (`None`: not known, as in the fuzz targets); never
    /// fails: errors become statuses.
    pub async fn handle<B>(
        self: Arc<Self>,
        req: Request<B>,
        peer: Option<SocketAddr>,
    ) -> Result<Response<ChunksBody>, Infallible>
    where
        B: hyper::body::Body,
        B::Error: std::error::Error + Send + Sync + 'static,
    {
        let method = req.method().clone();
        let is_head = method == Method::HEAD;
        let client = peer.map(|p| p.ip());
        let route = Route::parse(
            req.uri().path(),
            req.uri().query(),
            self.config.player.enabled,
        );
        let label = route.label();
        let mut response = match (route, method) {
            (Route::Api(path), Method::POST)
                if path.ends_with("/metadata") || path.ends_with("/splice") =>
            {
                let path = path.to_owned();
                let (parts, body) = req.into_parts();
                let body = http_body_util::BodyExt::collect(http_body_util::Limited::new(
                    body,
                    metadata::MAX_BODY_BYTES,
                ))
                .await
                .ok()
                .map(|b| b.to_bytes());
                Box::pin(self.metadata_request(&path, &parts.headers, body)).await
            }
            // CORS preflights carry no credentials: never checked, never counted as refusals.
            (Route::Health(path) | Route::Api(path), method) => {
                Box::pin(self.operations(&method, path, req.headers())).await
            }
            (Route::Metrics, method) => {
                Box::pin(self.operations(&method, "/metrics", req.headers())).await
            }
            (_, Method::OPTIONS) => preflight_response(),
            (Route::PlayerPage(page), Method::GET | Method::HEAD) => {
                self.player_page(&page, is_head)
            }
            (Route::PlayerAsset(file), Method::GET | Method::HEAD) => {
                self.player_asset(file, is_head)
            }
            (Route::AuthCheck, Method::GET | Method::HEAD) => {
                match self.auth_check(req.headers(), client) {
                    Ok(reply) => reply_response(reply, is_head),
                    Err(e) => error_response(&e),
                }
            }
            // WHIP publishes: the publish key decides (never a playback token), and the stream is
            // published here (a cluster places it by its claim, as for RTMP and SRT).
            (
                Route::Object {
                    stream,
                    object: Object::Whip,
                    ..
                },
                Method::POST,
            ) => Box::pin(self.whip_offer(&stream, req, peer)).await,
            (
                Route::Object {
                    stream,
                    object: Object::WhipSession { id },
                    ..
                },
                Method::DELETE,
            ) => Box::pin(self.whip_delete(&stream, id, req.headers(), peer)).await,
            (
                Route::Object {
                    object: Object::Whip | Object::WhipSession { .. },
                    ..
                },
                _,
            ) => error_response(&OriginError::MethodNotAllowed),
            (Route::Vod { token, path }, Method::GET | Method::HEAD) => {
                // A recording plays under its live stream's token scope; its content keys always
                // need a token, as the live stream's do, and so does a download (the whole
                // recording in the clear, even an encrypted one's).
                let as_object = match &path.object {
                    packager::urls::VodObject::Object(o) => o.clone(),
                    packager::urls::VodObject::Download { .. } => Object::Key { id: 0 },
                };
                match self.check_access(req.headers(), token, &path.stream, &as_object, client) {
                    Err(denial) => error_response(&OriginError::Denied(denial)),
                    Ok(()) => match Box::pin(self.vod_object(path)).await {
                        Ok(reply) => reply_response(reply, is_head),
                        Err(e) => error_response(&e),
                    },
                }
            }
            (Route::Vod { .. }, _) => error_response(&OriginError::MethodNotAllowed),
            (
                Route::Object {
                    token,
                    stream,
                    object,
                    ..
                },
                method,
            ) => match self.check_access(
                req.headers(),
                token.or_else(|| {
                    matches!(object, Object::Whep | Object::WhepSession { .. })
                        .then(|| whep::bearer(req.headers()))
                        .flatten()
                }),
                &stream,
                &object,
                client,
            ) {
                Err(denial) => error_response(&OriginError::Denied(denial)),
                Ok(()) => match self.owner_elsewhere(&stream, &object, req.headers()).await {
                    Err(e) => error_response(&e),
                    Ok(Some(owner)) => {
                        let (parts, body) = req.into_parts();
                        match http_body_util::BodyExt::collect(http_body_util::Limited::new(
                            body,
                            license::MAX_LICENSE_REQUEST_BYTES,
                        ))
                        .await
                        {
                            Err(_) => error_response(&OriginError::BadRequest("body")),
                            Ok(body) => match Box::pin(self.proxy(
                                &owner,
                                &stream,
                                &parts,
                                body.to_bytes(),
                                client,
                            ))
                            .await
                            {
                                Ok(response) => response,
                                Err(e) => error_response(&e),
                            },
                        }
                    }
                    Ok(None) => match (object, method) {
                        (Object::Whep, Method::POST) => {
                            Box::pin(self.whep_offer(&stream, req)).await
                        }
                        (Object::WhepSession { id }, Method::DELETE) => {
                            Box::pin(self.whep_delete(&stream, id)).await
                        }
                        (Object::Whep | Object::WhepSession { .. }, _) => {
                            error_response(&OriginError::MethodNotAllowed)
                        }
                        (Object::License, Method::POST) => {
                            match Box::pin(self.license(&stream, req)).await {
                                Ok(reply) => reply_response(reply, false),
                                Err(e) => error_response(&e),
                            }
                        }
                        (Object::License, _) => error_response(&OriginError::MethodNotAllowed),
                        (object, Method::GET | Method::HEAD) => {
                            match self.object(stream, object, &req).await {
                                Ok(reply) => reply_response(reply, is_head),
                                Err(e) => {
                                    tracing::debug!(path = %req.uri().path(), error = %e, "request failed");
                                    error_response(&e)
                                }
                            }
                        }
                        _ => error_response(&OriginError::MethodNotAllowed),
                    },
                },
            },
            _ => error_response(&OriginError::NotFound),
        };
        if let Some(v) = &self.cors_allow_origin {
            response
                .headers_mut()
                .insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, v.clone());
        }
        self.metrics
            .count_request(label, response.status().as_u16());
        response.body_mut().meter = Some(self.metrics.bytes_counter(label));
        Ok(response)
    }
}
