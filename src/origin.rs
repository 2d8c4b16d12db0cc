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
//! shutting down), and the JSON API under a bearer token ([`crate::auth::Auth::api_token`]):
//! `GET /api/streams`, `GET /api/streams/live/{name}` and `DELETE /api/streams/live/{name}` (disconnects
//! its publisher). See [`StreamReport`].
//!
//! The player page: `GET /live/{name}/` (also under `/t/{token}`) and its libraries under `/player/`
//! ([`crate::player`]).
//!
//! `HEAD` is answered like `GET` without a body; `OPTIONS` answers CORS preflights.

use std::{
    collections::VecDeque,
    convert::Infallible,
    net::SocketAddr,
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicU64, AtomicUsize, Ordering},
    },
    task::{Context, Poll},
    time::Duration,
};

use bytes::Bytes;
use futures::Stream;
use hyper::{
    Method, Request, Response, StatusCode,
    body::{Body, Frame, Incoming, SizeHint},
    header::{self, HeaderValue},
};
use packager::hls::{BlockingDecision, HlsDirectives, blocking_decision, is_upcoming};
use tokio::net::TcpListener;

use crate::{
    auth::{Auth, Denial, PlaybackMode},
    hub::{Hub, StreamEntry, StreamState},
};

/// The connection's peer address, attached to each request by [`serve`].
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr(pub SocketAddr);

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
    /// The player page ([`crate::player`]).
    pub player: crate::player::PlayerConfig,
}

impl Default for OriginConfig {
    fn default() -> Self {
        Self {
            cors_allow_origin: "*".into(),
            header_read_timeout: Duration::from_secs(10),
            max_connections: 20_000,
            player: Default::default(),
        }
    }
}

/// The rest of a segment still being produced: its next chunks as they appear, or an error when the
/// segment is abandoned (the response is then cut off, so no cache keeps it as complete).
pub type LiveTail = Pin<Box<dyn Stream<Item = Result<Bytes, OriginError>> + Send>>;

/// A response body made of shared byte chunks (a segment is sent as its parts, without copying),
/// optionally followed by a [`LiveTail`] (a segment in progress, sent with chunked transfer encoding).
#[derive(Default)]
pub struct ChunksBody {
    chunks: VecDeque<Bytes>,
    remaining: u64,
    tail: Option<LiveTail>,
    /// Counts the bytes as they are sent (`estuary_http_response_bytes_total`).
    meter: Option<prometheus_client::metrics::counter::Counter>,
    /// Marks the connection busy until the body is dropped (sent, or abandoned).
    in_flight: Option<InFlight>,
}

impl std::fmt::Debug for ChunksBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChunksBody")
            .field("chunks", &self.chunks.len())
            .field("remaining", &self.remaining)
            .field("live", &self.tail.is_some())
            .finish()
    }
}

impl ChunksBody {
    /// A body of `chunks`, sent in order.
    pub fn new(chunks: impl IntoIterator<Item = Bytes>) -> Self {
        let chunks: VecDeque<Bytes> = chunks.into_iter().filter(|c| !c.is_empty()).collect();
        let remaining = chunks.iter().map(|c| c.len() as u64).sum();
        Self {
            chunks,
            remaining,
            tail: None,
            meter: None,
            in_flight: None,
        }
    }

    /// A body of `chunks` followed by whatever `tail` yields (length unknown: chunked transfer).
    pub fn with_tail(chunks: impl IntoIterator<Item = Bytes>, tail: LiveTail) -> Self {
        Self {
            tail: Some(tail),
            ..Self::new(chunks)
        }
    }

    /// An empty body.
    pub fn empty() -> Self {
        Self::default()
    }
}

impl Body for ChunksBody {
    type Data = Bytes;
    type Error = OriginError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, OriginError>>> {
        if let Some(c) = self.chunks.pop_front() {
            self.remaining -= c.len() as u64;
            if let Some(m) = &self.meter {
                m.inc_by(c.len() as u64);
            }
            return Poll::Ready(Some(Ok(Frame::data(c))));
        }
        let Some(tail) = self.tail.as_mut() else {
            return Poll::Ready(None);
        };
        match tail.as_mut().poll_next(cx) {
            Poll::Ready(Some(Ok(c))) => {
                if let Some(m) = &self.meter {
                    m.inc_by(c.len() as u64);
                }
                Poll::Ready(Some(Ok(Frame::data(c))))
            }
            Poll::Ready(Some(Err(e))) => {
                self.tail = None;
                Poll::Ready(Some(Err(e)))
            }
            Poll::Ready(None) => {
                self.tail = None;
                Poll::Ready(None)
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.chunks.is_empty() && self.tail.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        if self.tail.is_some() {
            let mut h = SizeHint::new();
            h.set_lower(self.remaining);
            h
        } else {
            SizeHint::with_exact(self.remaining)
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
}

impl OriginError {
    /// The HTTP status for this error.
    pub fn status(&self) -> StatusCode {
        match self {
            OriginError::NotFound => StatusCode::NOT_FOUND,
            OriginError::BadRequest(_) => StatusCode::BAD_REQUEST,
            OriginError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            OriginError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            OriginError::Denied(d) => d.status(),
        }
    }
}

/// A parsed object path below `/live/{name}/`.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Object {
    Multivariant,
    Mpd,
    Time,
    Key {
        id: u64,
    },
    MediaPlaylist {
        rendition: String,
    },
    Init {
        rendition: String,
        id: u64,
    },
    Segment {
        rendition: String,
        msn: u64,
    },
    Part {
        rendition: String,
        msn: u64,
        part: usize,
    },
    /// The DASH CENC init segment of init segment `init_id` under CENC key `key_id`.
    CencInit {
        rendition: String,
        init_id: u64,
        key_id: u64,
    },
    /// The DASH CENC form of a segment, under CENC key `key_id`.
    CencSegment {
        rendition: String,
        msn: u64,
        key_id: u64,
    },
    /// The W3C ClearKey license endpoint (POST).
    License,
}

/// Which bytes of a segment are served: the LL-HLS ones (clear, or AES-128 once complete) or the DASH
/// CENC ones under the key with this id (streamed chunk by chunk like clear ones).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SegmentForm {
    Hls,
    Cenc { key_id: u64 },
}

fn parse_u64(s: &str) -> Option<u64> {
    (!s.is_empty() && s.len() <= 19 && s.bytes().all(|b| b.is_ascii_digit()))
        .then(|| s.parse().ok())
        .flatten()
}

/// Split `/t/{token}/rest` into the token and `/rest`; other paths have no token.
fn split_token(path: &str) -> (Option<&str>, &str) {
    match path.strip_prefix(crate::auth::TOKEN_PATH_PREFIX) {
        Some(after) => match after.find('/') {
            Some(i) => (Some(&after[..i]), &after[i..]),
            None => (Some(after), ""),
        },
        None => (None, path),
    }
}

/// Parse `/live/{name}/...` into the stream name (`live/{name}`) and the object.
fn parse_path(path: &str) -> Option<(String, Object)> {
    let rest = path.strip_prefix("/live/")?;
    let mut it = rest.split('/');
    let name = it.next()?;
    if !crate::ingest::is_valid_name(name) {
        return None;
    }
    let a = it.next()?;
    let b = it.next();
    let c = it.next();
    if it.next().is_some() {
        return None;
    }
    if let (Some("cenc"), Some(file)) = (b, c) {
        if !crate::ingest::is_valid_name(a) {
            return None;
        }
        let rendition = a.to_owned();
        let object = if let Some(ids) = file
            .strip_prefix("init-")
            .and_then(|f| f.strip_suffix(".mp4"))
        {
            let (init_id, key_id) = ids.split_once('-')?;
            Object::CencInit {
                rendition,
                init_id: parse_u64(init_id)?,
                key_id: parse_u64(key_id)?,
            }
        } else {
            let (msn, key_id) = file.strip_suffix(".m4s")?.split_once('-')?;
            Object::CencSegment {
                rendition,
                msn: parse_u64(msn)?,
                key_id: parse_u64(key_id)?,
            }
        };
        return Some((format!("live/{name}"), object));
    }
    if c.is_some() {
        return None;
    }
    let object = match b {
        None if a == "index.m3u8" => Object::Multivariant,
        None if a == "manifest.mpd" => Object::Mpd,
        None if a == packager::dash::UTC_TIMING_PATH => Object::Time,
        None if a == packager::dash::LICENSE_PATH => Object::License,
        None => return None,
        Some(file) if a == "keys" => Object::Key {
            id: parse_u64(file.strip_suffix(".key")?)?,
        },
        Some(file) => {
            if !crate::ingest::is_valid_name(a) {
                return None;
            }
            let rendition = a.to_owned();
            if file == "media.m3u8" {
                Object::MediaPlaylist { rendition }
            } else if let Some(id) = file
                .strip_prefix("init-")
                .and_then(|f| f.strip_suffix(".mp4"))
            {
                Object::Init {
                    rendition,
                    id: parse_u64(id)?,
                }
            } else if let Some(stem) = file.strip_suffix(".m4s") {
                match stem.split_once('.') {
                    None => Object::Segment {
                        rendition,
                        msn: parse_u64(stem)?,
                    },
                    Some((m, p)) => Object::Part {
                        rendition,
                        msn: parse_u64(m)?,
                        part: usize::try_from(parse_u64(p)?).ok()?,
                    },
                }
            } else {
                return None;
            }
        }
    };
    Some((format!("live/{name}"), object))
}

/// Cache-Control values by object type (documented in the README).
mod cache {
    /// Init segments: named by content for the stream's life, never reused.
    pub const IMMUTABLE: &str = "public, max-age=31536000, immutable";
    pub const LIVE_PLAYLIST: &str = "public, max-age=1";
    pub const BLOCKING_PLAYLIST: &str = "public, max-age=60";
    pub const ENDED_PLAYLIST: &str = "public, max-age=60";
    pub const ERROR: &str = "no-cache";
    pub const NO_STORE: &str = "no-store";
    pub const PRIVATE: &str = "private, no-store";
    /// The player page and its libraries: the same for every stream and viewer, and changed only
    /// by an upgrade.
    pub const PLAYER: &str = "public, max-age=300";
}

/// How long a response may be cached.
#[derive(Debug, Clone, Copy)]
enum Caching {
    /// A fixed Cache-Control value.
    Fixed(&'static str),
    /// A media object that leaves the live window: `public, max-age=N, immutable` and `Expires` N from
    /// now, N being no earlier than the object leaves the window.
    UntilOutOfWindow(Duration),
    /// A token check's answer: `public, max-age=N` (N ≤ [`AUTH_CHECK_MAX_AGE_S`]).
    MaxAge(u64),
}

struct Reply {
    status: StatusCode,
    content_type: &'static str,
    cache_control: Caching,
    body: ChunksBody,
}

impl Origin {
    /// An origin serving `hub`'s streams, under `auth`'s playback rules.
    pub fn new(hub: Arc<Hub>, config: OriginConfig, auth: Arc<Auth>) -> Arc<Self> {
        let player = crate::player::PlayerAssets::load(&config.player);
        Arc::new(Self {
            hub,
            config,
            auth,
            metrics: Default::default(),
            player,
        })
    }

    /// Answer one request (never fails: errors become statuses).
    pub async fn handle<B>(
        self: Arc<Self>,
        req: Request<B>,
    ) -> Result<Response<ChunksBody>, Infallible>
    where
        B: hyper::body::Body,
        B::Error: std::error::Error + Send + Sync + 'static,
    {
        let method = req.method().clone();
        let client = req.extensions().get::<ClientAddr>().map(|c| c.0.ip());
        let (token, rest) = split_token(req.uri().path());
        let parsed = parse_path(rest);
        // CORS preflights carry no credentials: never checked, never counted as refusals.
        let access = match &parsed {
            Some((stream, object)) if method != Method::OPTIONS => {
                self.check_access(req.headers(), token, stream, object, client)
            }
            _ => Ok(()),
        };
        let is_license = parsed.as_ref().is_some_and(|(_, o)| *o == Object::License);
        let path = req.uri().path();
        let page = match &parsed {
            None if self.config.player.enabled => crate::player::page_request(rest),
            _ => None,
        };
        let route = match &page {
            Some(_) => "player",
            None if path.starts_with(crate::player::ASSETS_PREFIX) => "player",
            None => route_label(path, parsed.as_ref().map(|(_, o)| o), req.uri().query()),
        };
        let mut response = match method {
            Method::GET | Method::HEAD if page.is_some() => {
                self.player_page(page.as_ref(), method == Method::HEAD)
            }
            Method::GET | Method::HEAD
                if token.is_none() && path.starts_with(crate::player::ASSETS_PREFIX) =>
            {
                self.player_asset(
                    &path[crate::player::ASSETS_PREFIX.len()..],
                    method == Method::HEAD,
                )
            }
            _ if path == "/healthz"
                || path == "/readyz"
                || path == "/metrics"
                || path.starts_with("/api/") =>
            {
                self.operations(&method, path, req.headers())
            }
            Method::OPTIONS => {
                let mut resp = Response::new(ChunksBody::empty());
                *resp.status_mut() = StatusCode::NO_CONTENT;
                let h = resp.headers_mut();
                h.insert(
                    header::ACCESS_CONTROL_ALLOW_METHODS,
                    HeaderValue::from_static("GET, HEAD, POST, OPTIONS"),
                );
                h.insert(
                    header::ACCESS_CONTROL_ALLOW_HEADERS,
                    HeaderValue::from_static("*"),
                );
                h.insert(
                    header::ACCESS_CONTROL_MAX_AGE,
                    HeaderValue::from_static("86400"),
                );
                resp
            }
            Method::GET | Method::HEAD if req.uri().path() == AUTH_CHECK_PATH => {
                match self.auth_check(req.headers(), client) {
                    Ok(reply) => reply_response(reply, method == Method::HEAD),
                    Err(e) => error_response(&e),
                }
            }
            _ if parsed.is_none() => error_response(&OriginError::NotFound),
            _ if access.is_err() => error_response(&OriginError::Denied(
                access.err().unwrap_or(Denial::Missing),
            )),
            Method::POST if is_license => {
                let Some((stream, _)) = parsed else {
                    return Ok(error_response(&OriginError::NotFound));
                };
                match self.license(&stream, req).await {
                    Ok(reply) => reply_response(reply, false),
                    Err(e) => error_response(&e),
                }
            }
            Method::GET | Method::HEAD if is_license => {
                error_response(&OriginError::MethodNotAllowed)
            }
            Method::GET | Method::HEAD => {
                let Some((stream, object)) = parsed else {
                    return Ok(error_response(&OriginError::NotFound));
                };
                match self.route(stream, object, &req).await {
                    Ok(reply) => reply_response(reply, method == Method::HEAD),
                    Err(e) => {
                        tracing::debug!(path = %rest, error = %e, "request failed");
                        error_response(&e)
                    }
                }
            }
            _ => error_response(&OriginError::MethodNotAllowed),
        };
        if let Ok(v) = HeaderValue::from_str(&self.config.cors_allow_origin) {
            response
                .headers_mut()
                .insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, v);
        }
        self.metrics
            .count_request(route, response.status().as_u16());
        response.body_mut().meter = Some(self.metrics.bytes_counter(route));
        Ok(response)
    }

    /// The player page ([`crate::player`]), or the redirect to it. Never token-checked: it holds no
    /// media; what it loads is checked.
    fn player_page(
        &self,
        page: Option<&crate::player::PageRequest>,
        is_head: bool,
    ) -> Response<ChunksBody> {
        let mut resp = match page {
            Some(crate::player::PageRequest::Redirect(to)) => {
                let mut r = Response::new(ChunksBody::empty());
                *r.status_mut() = StatusCode::MOVED_PERMANENTLY;
                if let Ok(v) = HeaderValue::from_str(to) {
                    r.headers_mut().insert(header::LOCATION, v);
                }
                r
            }
            _ => {
                let mut r = Response::new(ChunksBody::new([Bytes::from_static(
                    crate::player::PAGE_HTML.as_bytes(),
                )]));
                r.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("text/html; charset=utf-8"),
                );
                r
            }
        };
        resp.headers_mut().insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static(cache::PLAYER),
        );
        if is_head {
            *resp.body_mut() = ChunksBody::empty();
        }
        resp
    }

    /// A player library at `/player/{file}`: 200, 404 (no such file) or 503 (not installed).
    fn player_asset(&self, file: &str, is_head: bool) -> Response<ChunksBody> {
        if !self.config.player.enabled {
            return error_response(&OriginError::NotFound);
        }
        match self.player.get(file) {
            Ok(Some(bytes)) => reply_response(
                Reply {
                    status: StatusCode::OK,
                    content_type: "text/javascript; charset=utf-8",
                    cache_control: Caching::Fixed(cache::PLAYER),
                    body: ChunksBody::new([bytes]),
                },
                is_head,
            ),
            Ok(None) => error_response(&OriginError::NotFound),
            Err(why) => {
                let mut r = Response::new(ChunksBody::new([Bytes::from(format!("503 {why}\n"))]));
                *r.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
                let h = r.headers_mut();
                h.insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("text/plain; charset=utf-8"),
                );
                h.insert(
                    header::CACHE_CONTROL,
                    HeaderValue::from_static(cache::ERROR),
                );
                r
            }
        }
    }

    /// `/healthz`, `/readyz` and the JSON API. Never cached.
    fn operations(
        &self,
        method: &Method,
        path: &str,
        headers: &hyper::HeaderMap,
    ) -> Response<ChunksBody> {
        let text = |status: StatusCode, body: &'static str| {
            let mut r = Response::new(ChunksBody::new([Bytes::from_static(body.as_bytes())]));
            *r.status_mut() = status;
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; charset=utf-8"),
            );
            r
        };
        let mut response = match (method, path) {
            (&Method::GET | &Method::HEAD, "/healthz") => text(StatusCode::OK, "ok\n"),
            (&Method::GET | &Method::HEAD, "/readyz") if self.hub.is_accepting() => {
                text(StatusCode::OK, "ready\n")
            }
            (&Method::GET | &Method::HEAD, "/readyz") => {
                text(StatusCode::SERVICE_UNAVAILABLE, "shutting down\n")
            }
            (_, "/healthz" | "/readyz") => error_response(&OriginError::MethodNotAllowed),
            (_, "/metrics") => match self
                .auth
                .check_api_authorization(headers.get(header::AUTHORIZATION))
            {
                Some(true) if matches!(*method, Method::GET | Method::HEAD) => {
                    match self.metrics.encode(&self.hub, &self.auth) {
                        Ok(text) => {
                            let mut r = Response::new(ChunksBody::new([Bytes::from(text)]));
                            r.headers_mut().insert(
                                header::CONTENT_TYPE,
                                HeaderValue::from_static(
                                    "application/openmetrics-text; version=1.0.0; charset=utf-8",
                                ),
                            );
                            r
                        }
                        Err(_) => text(StatusCode::INTERNAL_SERVER_ERROR, "500\n"),
                    }
                }
                Some(true) => error_response(&OriginError::MethodNotAllowed),
                Some(false) => text(StatusCode::FORBIDDEN, "403 Forbidden\n"),
                None => {
                    let mut r = text(StatusCode::UNAUTHORIZED, "401 Unauthorized\n");
                    r.headers_mut().insert(
                        header::WWW_AUTHENTICATE,
                        HeaderValue::from_static("Bearer realm=\"estuary api\""),
                    );
                    r
                }
            },
            _ => match self
                .auth
                .check_api_authorization(headers.get(header::AUTHORIZATION))
            {
                None => {
                    let mut r = text(StatusCode::UNAUTHORIZED, "401 Unauthorized\n");
                    r.headers_mut().insert(
                        header::WWW_AUTHENTICATE,
                        HeaderValue::from_static("Bearer realm=\"estuary api\""),
                    );
                    r
                }
                Some(false) => text(StatusCode::FORBIDDEN, "403 Forbidden\n"),
                Some(true) => self.api(method, path),
            },
        };
        if method == Method::HEAD {
            *response.body_mut() = ChunksBody::empty();
        }
        response.headers_mut().insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static(cache::PRIVATE),
        );
        response
    }

    /// The API proper, once the bearer token is right.
    fn api(&self, method: &Method, path: &str) -> Response<ChunksBody> {
        let json = |status: StatusCode, value: serde_json::Value| {
            let mut r = Response::new(ChunksBody::new([Bytes::from(value.to_string())]));
            *r.status_mut() = status;
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            r
        };
        let not_found = || {
            json(
                StatusCode::NOT_FOUND,
                serde_json::json!({"error": "no such stream"}),
            )
        };
        if path == "/api/streams" {
            if !matches!(*method, Method::GET | Method::HEAD) {
                return error_response(&OriginError::MethodNotAllowed);
            }
            let mut names = self.hub.names();
            names.sort();
            let streams: Vec<StreamReport> = names
                .iter()
                .filter_map(|n| self.hub.get(n))
                .map(|e| StreamReport::of(&e))
                .collect();
            return json(StatusCode::OK, serde_json::json!({ "streams": streams }));
        }
        let Some(stream) = path.strip_prefix("/api/streams/").filter(|s| {
            s.strip_prefix("live/")
                .is_some_and(crate::ingest::is_valid_name)
        }) else {
            return json(
                StatusCode::NOT_FOUND,
                serde_json::json!({"error": "no such API route"}),
            );
        };
        match *method {
            Method::GET | Method::HEAD => match self.hub.get(stream) {
                Some(e) => json(
                    StatusCode::OK,
                    serde_json::to_value(StreamReport::of(&e)).unwrap_or_default(),
                ),
                None => not_found(),
            },
            Method::DELETE => {
                if self.hub.kick(stream) {
                    json(StatusCode::ACCEPTED, serde_json::json!({"kicked": stream}))
                } else if self.hub.get(stream).is_some() {
                    json(
                        StatusCode::CONFLICT,
                        serde_json::json!({"error": "the stream has no publisher"}),
                    )
                } else {
                    not_found()
                }
            }
            _ => error_response(&OriginError::MethodNotAllowed),
        }
    }

    /// May this request play `object` of `stream`? A request from the trusted edge (right header) may;
    /// a wrong edge header may not. Otherwise content keys and the license always need a valid token,
    /// and with `auth.playback = "token"` everything but the clock does; a token that is present is
    /// always checked. Refusals are counted and logged (rate-limited, never the token).
    ///
    /// Errors: the [`Denial`].
    fn check_access(
        &self,
        headers: &hyper::HeaderMap,
        token: Option<&str>,
        stream: &str,
        object: &Object,
        client: Option<std::net::IpAddr>,
    ) -> Result<(), Denial> {
        let verdict = match self.auth.edge(headers) {
            Some(true) => Ok(()),
            Some(false) => Err(Denial::EdgeSecret),
            None => self.check_token(token, stream, object, client).map(|_| ()),
        };
        if let Err(d) = verdict {
            self.auth.record_denial(d, stream, client);
        }
        verdict
    }

    /// The token rules of [`Origin::check_access`] without the edge: the token's expiry when one was
    /// checked.
    fn check_token(
        &self,
        token: Option<&str>,
        stream: &str,
        object: &Object,
        client: Option<std::net::IpAddr>,
    ) -> Result<Option<u64>, Denial> {
        if *object == Object::Time {
            // The DASH clock is public, token or not.
            return Ok(None);
        }
        let needs_token = matches!(object, Object::Key { .. } | Object::License)
            || self.auth.playback() == PlaybackMode::Token;
        match token {
            None if needs_token => Err(Denial::Missing),
            None => Ok(None),
            Some(t) => self
                .auth
                .verify(t, stream, client, crate::auth::unix_now_s())
                .map(|c| Some(c.expires_unix_s)),
        }
    }

    /// `GET /auth/check`: may the viewer play the URL in `X-Original-URI` (the path with its `/t/{token}`
    /// prefix, as the CDN received it)? 204 when yes, cacheable for at most [`AUTH_CHECK_MAX_AGE_S`]
    /// and never past the token's expiry; 401/403 as for the URL itself, never cacheable. The viewer's
    /// address is `X-Real-IP` (or the first `X-Forwarded-For` entry) when the trusted-edge header is
    /// right, else the connection's.
    fn auth_check(
        &self,
        headers: &hyper::HeaderMap,
        peer: Option<std::net::IpAddr>,
    ) -> Result<Reply, OriginError> {
        let client = match self.auth.edge(headers) {
            Some(false) => {
                self.auth.record_denial(Denial::EdgeSecret, "-", peer);
                return Err(OriginError::Denied(Denial::EdgeSecret));
            }
            Some(true) => forwarded_client(headers).or(peer),
            None => peer,
        };
        let original = headers
            .get("x-original-uri")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let path = original.split('?').next().unwrap_or("");
        let (token, rest) = split_token(path);
        // The player page is checked like the stream's multivariant playlist, so that an edge that
        // checks every `/t/` URL also lets the page through.
        let page_of = |rest: &str| {
            let name = rest.strip_prefix("/live/")?.strip_suffix('/')?;
            crate::ingest::is_valid_name(name)
                .then(|| (format!("live/{name}"), Object::Multivariant))
        };
        let Some((stream, object)) = parse_path(rest).or_else(|| page_of(rest)) else {
            return Err(OriginError::Denied(Denial::Malformed));
        };
        match self.check_token(token, &stream, &object, client) {
            Ok(expiry) => {
                let left = expiry.map_or(AUTH_CHECK_MAX_AGE_S, |e| {
                    e.saturating_sub(crate::auth::unix_now_s())
                });
                Ok(Reply {
                    status: StatusCode::NO_CONTENT,
                    content_type: "text/plain; charset=utf-8",
                    cache_control: Caching::MaxAge(left.min(AUTH_CHECK_MAX_AGE_S)),
                    body: ChunksBody::empty(),
                })
            }
            Err(d) => {
                self.auth.record_denial(d, &stream, client);
                Err(OriginError::Denied(d))
            }
        }
    }

    /// The W3C ClearKey license endpoint (W3C EME §9.1.3 ClearKey license request and response): a JSON
    /// `{"kids": [base64url KID, …], "type": …}` in, the stream's CENC keys for the KIDs it knows out,
    /// as a JWK set `{"keys": [{"kty": "oct", "kid": …, "k": …}], "type": "temporary"}`. 404 when it
    /// knows none of them (or the stream is not encrypted), 400 for a malformed request. Never cached.
    async fn license<B>(&self, stream: &str, req: Request<B>) -> Result<Reply, OriginError>
    where
        B: hyper::body::Body,
        B::Error: std::error::Error + Send + Sync + 'static,
    {
        use base64::Engine;
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let store = self.hub.keys(stream).ok_or(OriginError::NotFound)?;
        let body = http_body_util::BodyExt::collect(http_body_util::Limited::new(
            req.into_body(),
            MAX_LICENSE_REQUEST_BYTES,
        ))
        .await
        .map_err(|_| OriginError::BadRequest("license request body"))?
        .to_bytes();
        let request: LicenseRequest = serde_json::from_slice(&body)
            .map_err(|_| OriginError::BadRequest("license request"))?;
        if request.kids.len() > MAX_LICENSE_KIDS {
            return Err(OriginError::BadRequest("too many kids"));
        }
        let keys: Vec<serde_json::Value> = request
            .kids
            .iter()
            .filter_map(|kid| {
                // Padding is not part of base64url in JWK, but some CDMs send it.
                let raw = b64.decode(kid.trim_end_matches('=')).ok()?;
                let kid: [u8; 16] = raw.try_into().ok()?;
                store.cenc_by_kid(&kid)
            })
            .map(|k| {
                serde_json::json!({ "kty": "oct", "kid": b64.encode(k.kid), "k": b64.encode(k.key) })
            })
            .collect();
        if keys.is_empty() {
            tracing::info!(stream = %stream, "license request for unknown kids");
            return Err(OriginError::NotFound);
        }
        let body = serde_json::json!({ "keys": keys, "type": "temporary" }).to_string();
        Ok(Reply {
            status: StatusCode::OK,
            content_type: "application/json",
            cache_control: Caching::Fixed(cache::PRIVATE),
            body: ChunksBody::new([Bytes::from(body)]),
        })
    }

    async fn route<B>(
        &self,
        stream: String,
        object: Object,
        req: &Request<B>,
    ) -> Result<Reply, OriginError> {
        if object == Object::Time {
            // The DASH UTCTiming clock: answered for any stream name, never cached.
            return Ok(Reply {
                status: StatusCode::OK,
                content_type: "text/plain; charset=utf-8",
                cache_control: Caching::Fixed(cache::NO_STORE),
                body: ChunksBody::new([Bytes::from(packager::dash::format_utc_time(
                    crate::hub::unix_ms(),
                ))]),
            });
        }
        if let Object::Key { id } = object {
            // Served while kept, also for a stream not being published (after a restart, a CDN or
            // a player may still hold its segments).
            let key = self
                .hub
                .keys(&stream)
                .and_then(|k| k.get(id))
                .ok_or(OriginError::NotFound)?;
            return Ok(Reply {
                status: StatusCode::OK,
                content_type: "application/octet-stream",
                cache_control: Caching::Fixed(cache::PRIVATE),
                body: ChunksBody::new([Bytes::copy_from_slice(&key.key)]),
            });
        }
        let entry = self.hub.get(&stream).ok_or(OriginError::NotFound)?;
        entry.requests().count();
        let directives = match &object {
            Object::MediaPlaylist { .. } => HlsDirectives::parse(req.uri().query().unwrap_or(""))
                .map_err(|_| OriginError::BadRequest("directive"))?,
            _ => HlsDirectives::default(),
        };
        match object {
            Object::Multivariant => {
                let body = self
                    .wait_for(&entry, self.ready_timeout(), |st| {
                        Ok(if st.packager.is_ready() || st.packager.is_ended() {
                            Some(())
                        } else {
                            None
                        })
                    })
                    .await
                    .and_then(|()| {
                        entry
                            .lock()
                            .playlist(None, false)
                            .ok_or(OriginError::NotFound)
                    })?;
                let ended = entry.lock().packager.is_ended();
                Ok(playlist_reply(
                    body,
                    if ended {
                        cache::ENDED_PLAYLIST
                    } else {
                        cache::LIVE_PLAYLIST
                    },
                ))
            }
            Object::Time | Object::License | Object::Key { .. } => Err(OriginError::NotFound),
            Object::Mpd => {
                let dash = &self.hub.config().dash;
                let body = self
                    .wait_for(&entry, self.ready_timeout(), |st| match st.mpd(dash) {
                        Some(b) => Ok(Some(b)),
                        None if st.packager.is_ended() => Err(OriginError::NotFound),
                        None => Ok(None),
                    })
                    .await?;
                let ended = entry.lock().packager.is_ended();
                Ok(Reply {
                    status: StatusCode::OK,
                    content_type: "application/dash+xml",
                    cache_control: Caching::Fixed(if ended {
                        cache::ENDED_PLAYLIST
                    } else {
                        cache::LIVE_PLAYLIST
                    }),
                    body: ChunksBody::new([body]),
                })
            }
            Object::MediaPlaylist { rendition } => {
                let blocking = directives.msn.is_some();
                let timeout = self.blocking_timeout(&entry);
                let rendition_ref = rendition.as_str();
                self.wait_for(&entry, timeout, |st| {
                    if !st.packager.is_ready() && !st.packager.is_ended() {
                        return Ok(None);
                    }
                    let r = st
                        .packager
                        .rendition(rendition_ref)
                        .ok_or(OriginError::NotFound)?;
                    let Some(msn) = directives.msn else {
                        return Ok(Some(()));
                    };
                    match blocking_decision(r, msn, directives.part) {
                        BlockingDecision::Ready => Ok(Some(())),
                        BlockingDecision::Wait => Ok(None),
                        BlockingDecision::TooFarAhead => {
                            Err(OriginError::BadRequest("more than two segments ahead"))
                        }
                    }
                })
                .await?;
                let mut st = entry.lock();
                let body = st
                    .playlist(Some(&rendition), directives.skip)
                    .ok_or(OriginError::NotFound)?;
                let cc = if st.packager.is_ended() {
                    cache::ENDED_PLAYLIST
                } else if blocking {
                    cache::BLOCKING_PLAYLIST
                } else {
                    cache::LIVE_PLAYLIST
                };
                Ok(playlist_reply(body, cc))
            }
            Object::Init { rendition, id } => {
                let st = entry.lock();
                let r = st
                    .packager
                    .rendition(&rendition)
                    .ok_or(OriginError::NotFound)?;
                let bytes = r.init(id).ok_or(OriginError::NotFound)?.clone();
                Ok(media_reply(r.kind(), ChunksBody::new([bytes]), None))
            }
            Object::CencInit {
                rendition,
                init_id,
                key_id,
            } => {
                let st = entry.lock();
                let r = st
                    .packager
                    .rendition(&rendition)
                    .ok_or(OriginError::NotFound)?;
                let bytes = r
                    .cenc_init(init_id, key_id)
                    .ok_or(OriginError::NotFound)?
                    .clone();
                Ok(media_reply(r.kind(), ChunksBody::new([bytes]), None))
            }
            Object::CencSegment {
                rendition,
                msn,
                key_id,
            } => {
                self.segment(&entry, rendition, msn, SegmentForm::Cenc { key_id })
                    .await
            }
            Object::Segment { rendition, msn } => {
                self.segment(&entry, rendition, msn, SegmentForm::Hls).await
            }
            Object::Part {
                rendition,
                msn,
                part,
            } => {
                let timeout = self.blocking_timeout(&entry);
                let body = self
                    .wait_for(&entry, timeout, |st| {
                        let r = st
                            .packager
                            .rendition(&rendition)
                            .ok_or(OriginError::NotFound)?;
                        match r.part(msn, part) {
                            Some(p) => Ok(Some((
                                r.kind(),
                                ChunksBody::new([p.encrypted.clone().unwrap_or(p.bytes.clone())]),
                            ))),
                            None if is_upcoming(r, msn, Some(part)) => Ok(None),
                            None => Err(OriginError::NotFound),
                        }
                    })
                    .await?;
                Ok(media_reply(
                    body.0,
                    body.1,
                    Some(self.window_lifetime(&entry)),
                ))
            }
        }
    }

    /// A segment (complete: at once; in progress: its chunks so far, then each new one as it is cut;
    /// the next one: held until its first chunk) in the LL-HLS or the DASH CENC form.
    async fn segment(
        &self,
        entry: &Arc<StreamEntry>,
        rendition: String,
        msn: u64,
        form: SegmentForm,
    ) -> Result<Reply, OriginError> {
        let entry = entry.clone();
        // A complete segment is sent at once. The segment in progress (a low-latency DASH
        // player asks for it once its first chunk exists) is sent as it is produced: the
        // chunks so far, then each new one the moment it is cut. The next segment waits
        // for its first chunk.
        let timeout = self.blocking_timeout(&entry);
        // A segment asked for before it existed was announced by an MPD (the one after the
        // segment in progress). If a discontinuity makes it the first of a new Period instead,
        // it is not what was announced: 404, and the player's next MPD shows the new Period.
        let announced_only = entry
            .lock()
            .packager
            .rendition(&rendition)
            .is_some_and(|r| r.segment(msn).is_none());
        let (kind, parts, complete) = self
            .wait_for(&entry, timeout, |st| {
                let r = st
                    .packager
                    .rendition(&rendition)
                    .ok_or(OriginError::NotFound)?;
                if announced_only && r.segment(msn).is_some_and(|s| s.is_discontinuity) {
                    return Err(OriginError::NotFound);
                }
                match r.segment(msn) {
                    // An encrypted HLS segment is one message: served once complete.
                    Some(s) if form == SegmentForm::Hls && s.is_complete && s.key.is_some() => {
                        Ok(Some((
                            r.kind(),
                            s.encrypted.iter().cloned().collect::<Vec<_>>(),
                            true,
                        )))
                    }
                    Some(s) if form == SegmentForm::Hls && s.key.is_some() => Ok(None),
                    // Named by its key: under another key's name the segment does not exist.
                    Some(s)
                        if matches!(form, SegmentForm::Cenc { key_id }
                            if s.cenc.as_ref().is_none_or(|c| c.key.id != key_id)) =>
                    {
                        Err(OriginError::NotFound)
                    }
                    Some(s) if s.is_complete || !s.parts.is_empty() => Ok(Some((
                        r.kind(),
                        s.parts
                            .iter()
                            .map(|p| part_bytes(p, form))
                            .collect::<Vec<_>>(),
                        s.is_complete,
                    ))),
                    _ if is_upcoming(r, msn, None) => Ok(None),
                    _ => Err(OriginError::NotFound),
                }
            })
            .await?;
        if complete {
            return Ok(media_reply(
                kind,
                ChunksBody::new(parts),
                Some(self.window_lifetime(&entry)),
            ));
        }
        let guard = entry
            .try_wait(self.hub.config().max_waiters_per_stream)
            .ok_or(OriginError::Unavailable("too many blocked requests"))?;
        let tail = live_segment_tail(LiveSegment {
            entry: entry.clone(),
            rx: entry.subscribe(),
            rendition,
            msn,
            next_part: parts.len(),
            form,
            timeout,
            _guard: guard,
        });
        Ok(media_reply(
            kind,
            ChunksBody::with_tail(parts, tail),
            Some(self.window_lifetime(&entry)),
        ))
    }

    /// How long a segment or part produced now may be cached: no earlier than it leaves the live window
    /// (the window's segments plus two, times the target duration; an older object leaves sooner).
    fn window_lifetime(&self, entry: &StreamEntry) -> Duration {
        let config = self.hub.config();
        let td = entry
            .lock()
            .packager
            .target_duration_secs()
            .map(|td| Duration::from_secs(u64::from(td)))
            .unwrap_or(config.packager.segment_target);
        td * u32::try_from(config.packager.window_segments + 2).unwrap_or(u32::MAX)
    }

    /// 3× the target duration (RFC 8216bis §6.2.5.2), or 3× the segment target before it is fixed.
    fn blocking_timeout(&self, entry: &StreamEntry) -> Duration {
        let td = entry.lock().packager.target_duration_secs();
        match td {
            Some(td) => Duration::from_secs(3 * u64::from(td)),
            None => self.hub.config().packager.segment_target * 3,
        }
    }

    /// How long a playlist request waits for a stream that is publishing but not yet ready.
    fn ready_timeout(&self) -> Duration {
        self.hub.config().packager.max_target_duration + Duration::from_secs(2)
    }

    /// Evaluate `check` on the stream state now and after each update until it yields a value, fails, or
    /// `timeout` passes (503). Counts as one waiter while blocked.
    async fn wait_for<T>(
        &self,
        entry: &Arc<StreamEntry>,
        timeout: Duration,
        mut check: impl FnMut(&mut StreamState) -> Result<Option<T>, OriginError>,
    ) -> Result<T, OriginError> {
        let mut rx = entry.subscribe();
        if let Some(v) = check(&mut entry.lock())? {
            return Ok(v);
        }
        let _guard = entry
            .try_wait(self.hub.config().max_waiters_per_stream)
            .ok_or(OriginError::Unavailable("too many blocked requests"))?;
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            match tokio::time::timeout_at(deadline, rx.changed()).await {
                Ok(Ok(())) => {}
                // The entry was dropped (stream removed): nothing more will come.
                Ok(Err(_)) => return Err(OriginError::NotFound),
                Err(_) => return Err(OriginError::Unavailable("not available in time")),
            }
            {
                let mut st = entry.lock();
                if let Some(v) = check(&mut st)? {
                    return Ok(v);
                }
                if st.packager.is_ended() {
                    return Err(OriginError::NotFound);
                }
            }
            // If this entry was replaced by a new publish of the same name, stop waiting on it.
            if !self
                .hub
                .get(&entry.name)
                .is_some_and(|e| Arc::ptr_eq(&e, entry))
            {
                return Err(OriginError::NotFound);
            }
        }
    }
}

/// A segment in progress being streamed to one client.
struct LiveSegment {
    entry: Arc<StreamEntry>,
    rx: tokio::sync::watch::Receiver<u64>,
    rendition: String,
    msn: u64,
    /// Index of the next part to send.
    next_part: usize,
    /// Which bytes of each part.
    form: SegmentForm,
    /// Longest wait for one chunk (3× the target duration).
    timeout: Duration,
    /// Counts the response as a blocked request while it streams.
    _guard: crate::hub::WaiterGuard,
}

/// What a streamed segment does next.
enum TailStep {
    Chunk(Bytes),
    Done,
    Wait,
}

/// The chunks of segment `msn` from `next_part` on, each as soon as it exists; ends when the segment is
/// complete. Fails (cutting the response off) when the segment disappears, the stream goes away, or no
/// chunk comes within the timeout.
fn live_segment_tail(state: LiveSegment) -> LiveTail {
    Box::pin(futures::stream::unfold(Some(state), |state| async move {
        let mut st = state?;
        loop {
            let step = {
                let guard = st.entry.lock();
                match guard.packager.rendition(&st.rendition) {
                    None => Err(OriginError::NotFound),
                    Some(r) => match r.segment(st.msn) {
                        Some(seg) => match seg.parts.get(st.next_part) {
                            Some(p) => Ok(TailStep::Chunk(part_bytes(p, st.form))),
                            None if seg.is_complete => Ok(TailStep::Done),
                            None => Ok(TailStep::Wait),
                        },
                        None => Err(OriginError::NotFound),
                    },
                }
            };
            match step {
                Ok(TailStep::Chunk(b)) => {
                    st.next_part += 1;
                    return Some((Ok(b), Some(st)));
                }
                Ok(TailStep::Done) => return None,
                Ok(TailStep::Wait) => {
                    match tokio::time::timeout(st.timeout, st.rx.changed()).await {
                        Ok(Ok(())) => {}
                        Ok(Err(_)) => return Some((Err(OriginError::NotFound), None)),
                        Err(_) => {
                            tracing::warn!(
                                stream = %st.entry.name,
                                rendition = %st.rendition,
                                msn = st.msn,
                                "segment in progress got no chunk in time: response cut off"
                            );
                            return Some((Err(OriginError::Unavailable("segment stalled")), None));
                        }
                    }
                }
                Err(e) => return Some((Err(e), None)),
            }
        }
    }))
}

/// The bytes of part `p` in a segment of form `form` (clear for LL-HLS: an encrypted HLS segment is
/// served whole, never through here).
fn part_bytes(p: &packager::rendition::Part, form: SegmentForm) -> Bytes {
    match form {
        SegmentForm::Hls => p.bytes.clone(),
        SegmentForm::Cenc { .. } => p.cenc.clone().unwrap_or_default(),
    }
}

/// The `route` label of a request's metrics.
fn route_label(path: &str, object: Option<&Object>, query: Option<&str>) -> &'static str {
    match object {
        Some(Object::Multivariant) => "multivariant_playlist",
        Some(Object::MediaPlaylist { .. }) if query.is_some_and(|q| q.contains("_HLS_msn")) => {
            "blocking_playlist"
        }
        Some(Object::MediaPlaylist { .. }) => "media_playlist",
        Some(Object::Mpd) => "mpd",
        Some(Object::Time) => "time",
        Some(Object::Key { .. }) => "key",
        Some(Object::License) => "license",
        Some(Object::Init { .. }) => "init",
        Some(Object::Segment { .. }) => "segment",
        Some(Object::Part { .. }) => "part",
        Some(Object::CencInit { .. }) => "cenc_init",
        Some(Object::CencSegment { .. }) => "cenc_segment",
        None => match path {
            "/healthz" | "/readyz" => "health",
            "/metrics" => "metrics",
            AUTH_CHECK_PATH => "auth_check",
            p if p.starts_with("/api/") => "api",
            _ => "other",
        },
    }
}

/// One stream in the API (`GET /api/streams`).
#[derive(Debug, serde::Serialize)]
pub struct StreamReport {
    /// `live/{name}`.
    pub name: String,
    /// `live` (a publisher is connected), `reconnecting` (grace period) or `ended`.
    pub state: &'static str,
    /// `rtmp` or `srt`, while live.
    pub protocol: Option<&'static str>,
    /// The publisher's address, while live.
    pub client: Option<String>,
    /// Seconds since this publisher connected, while live.
    pub uptime_s: Option<f64>,
    /// Whether the stream is encrypted.
    pub encrypted: bool,
    /// The playlists' target duration, seconds (once fixed).
    pub target_duration_s: Option<u32>,
    /// The renditions.
    pub renditions: Vec<RenditionReport>,
    /// HTTP requests for the stream's objects since it started.
    pub requests_total: u64,
    /// HTTP requests per second over the last complete 10 s window.
    pub requests_per_s: f64,
    /// Requests blocked on the stream right now (blocking reloads, parts, segments in progress).
    pub blocked_requests: usize,
    /// What the publishers delivered since the stream started (updated about once a second).
    pub ingest: crate::hub::IngestCounters,
    /// The current (or last) SRT connection's receive counters.
    pub srt: Option<crate::ingest::TransportStats>,
    /// The ladder's state, when the stream is transcoded.
    pub transcoder: Option<TranscoderReport>,
    /// Source tracks of the current publish that are not used (e.g. MP3 audio on a stream packaged as
    /// it arrives), with why.
    pub unusable_tracks: Vec<UnusableTrackReport>,
}

/// A source track that is not used, in a [`StreamReport`].
#[derive(Debug, serde::Serialize)]
pub struct UnusableTrackReport {
    /// `video` or `audio`.
    pub kind: &'static str,
    /// The codec, lower case (`mp3`, `speex`, `stream_type 0x10` …).
    pub codec: String,
    /// Why it is not used.
    pub reason: String,
}

/// The transcoder's state in a [`StreamReport`].
#[derive(Debug, serde::Serialize)]
pub struct TranscoderReport {
    /// Media seconds processed per wall-clock second (about 1.0 when keeping up).
    pub real_time_factor: f64,
    /// How far the slowest encoded rung trails the newest source frame, ms.
    pub lag_ms: i64,
    /// Rungs shed because the stream could not keep up, in shedding order.
    pub shed_rungs: Vec<String>,
    /// Source frames the decoder rejected.
    pub decode_errors: u64,
    /// Source video frames dropped before decoding (queue overflow).
    pub frames_dropped: u64,
    /// Copied renditions encoded from a grid point on, because the source's keyframes left the
    /// segment grid there.
    pub replaced_copies: Vec<String>,
}

/// One rendition in a [`StreamReport`].
#[derive(Debug, serde::Serialize)]
pub struct RenditionReport {
    /// Its name (folder in URLs).
    pub name: String,
    /// `video` or `audio`.
    pub kind: &'static str,
    /// RFC 6381 codec string.
    pub codec: String,
    /// Picture width and height, pixels (video).
    pub width: Option<u32>,
    /// See `width`.
    pub height: Option<u32>,
    /// The BANDWIDTH it is announced with, bit/s.
    pub bandwidth_bps: Option<u64>,
    /// Measured over the complete segments in the window, bit/s.
    pub measured_bitrate_bps: Option<u64>,
    /// Frames packaged, frames dropped, parts and segments produced since the stream started.
    pub frames: u64,
    /// See `frames`.
    pub dropped_frames: u64,
    /// See `frames`.
    pub parts: u64,
    /// See `frames`.
    pub segments: u64,
}

impl StreamReport {
    /// The report of `entry` now.
    pub fn of(entry: &StreamEntry) -> Self {
        let st = entry.lock();
        let state = if st.packager.is_ended() || st.ended_at.is_some() {
            "ended"
        } else if st.publisher.is_some() {
            "live"
        } else {
            "reconnecting"
        };
        let renditions = st
            .packager
            .renditions()
            .map(|r| {
                let track = r.track();
                let params = track.config.video_params();
                let counters = r.counters();
                let (bytes, ticks) = r
                    .segments()
                    .iter()
                    .filter(|s| s.is_complete)
                    .fold((0u64, 0u64), |(b, t), s| {
                        (b + s.size_bytes() as u64, t + s.duration_ticks())
                    });
                RenditionReport {
                    name: r.name().to_owned(),
                    kind: match r.kind() {
                        media::TrackKind::Video => "video",
                        media::TrackKind::Audio => "audio",
                    },
                    codec: track.config.rfc6381(),
                    width: params.map(|p| p.width),
                    height: params.map(|p| p.height),
                    bandwidth_bps: r.declared_bandwidth(r.current_init_id()),
                    measured_bitrate_bps: (ticks > 0)
                        .then(|| bytes * 8 * u64::from(r.timescale()) / ticks),
                    frames: counters.frames,
                    dropped_frames: counters.dropped_frames,
                    parts: counters.parts,
                    segments: counters.segments,
                }
            })
            .collect();
        Self {
            name: entry.name.clone(),
            state,
            protocol: st.publisher.as_ref().map(|p| p.protocol.as_str()),
            client: st.publisher.as_ref().map(|p| p.peer.to_string()),
            uptime_s: st
                .publisher
                .as_ref()
                .map(|p| (p.since.elapsed().as_secs_f64() * 10.0).round() / 10.0),
            encrypted: st.packager.is_encrypted(),
            target_duration_s: st.packager.target_duration_secs(),
            renditions,
            requests_total: entry.requests().total(),
            requests_per_s: (entry.requests().per_second() * 10.0).round() / 10.0,
            blocked_requests: entry.waiters(),
            ingest: st.ingest,
            srt: st.transport,
            transcoder: st.transcode.as_ref().map(|t| TranscoderReport {
                real_time_factor: (t.real_time_factor * 1000.0).round() / 1000.0,
                lag_ms: t.lag_ms,
                shed_rungs: t.shed_rungs.clone(),
                decode_errors: t.decode_errors,
                frames_dropped: t.video_frames_dropped,
                replaced_copies: t
                    .rungs
                    .iter()
                    .filter(|r| r.is_replaced)
                    .map(|r| r.name.clone())
                    .collect(),
            }),
            unusable_tracks: st
                .unusable_tracks
                .iter()
                .map(|t| UnusableTrackReport {
                    kind: t.kind_name(),
                    codec: t.codec.clone(),
                    reason: t.reason.clone(),
                })
                .collect(),
        }
    }
}

/// The viewer's address as a trusted edge forwards it: `X-Real-IP`, else the first `X-Forwarded-For`.
fn forwarded_client(headers: &hyper::HeaderMap) -> Option<std::net::IpAddr> {
    let real = headers.get("x-real-ip").and_then(|v| v.to_str().ok());
    let forwarded = headers
        .get("x-forwarded-for")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(',').next());
    real.or(forwarded).and_then(|v| v.trim().parse().ok())
}

/// Largest ClearKey license request body accepted (bytes).
const MAX_LICENSE_REQUEST_BYTES: usize = 16 * 1024;
/// Most KIDs one license request may ask for.
const MAX_LICENSE_KIDS: usize = 64;

/// A W3C ClearKey license request (W3C EME §9.1.3).
#[derive(Debug, serde::Deserialize)]
struct LicenseRequest {
    kids: Vec<String>,
}

fn playlist_reply(body: Bytes, cache_control: &'static str) -> Reply {
    Reply {
        status: StatusCode::OK,
        content_type: "application/vnd.apple.mpegurl",
        cache_control: Caching::Fixed(cache_control),
        body: ChunksBody::new([body]),
    }
}

/// A media object: an init segment (`lifetime` `None`: immutable for a year) or a segment or part
/// cached until it has left the live window (`lifetime`).
fn media_reply(kind: media::TrackKind, body: ChunksBody, lifetime: Option<Duration>) -> Reply {
    Reply {
        status: StatusCode::OK,
        content_type: match kind {
            media::TrackKind::Video => "video/mp4",
            media::TrackKind::Audio => "audio/mp4",
        },
        cache_control: match lifetime {
            None => Caching::Fixed(cache::IMMUTABLE),
            Some(d) => Caching::UntilOutOfWindow(d),
        },
        body,
    }
}

/// The response for a successful `reply` (body left out for HEAD).
fn reply_response(reply: Reply, is_head: bool) -> Response<ChunksBody> {
    let len = reply.body.size_hint().exact();
    let mut resp = Response::new(if is_head {
        ChunksBody::empty()
    } else {
        reply.body
    });
    *resp.status_mut() = reply.status;
    let h = resp.headers_mut();
    // A segment in progress has no length yet: chunked transfer (HTTP/1.1) or DATA frames as its
    // chunks appear (HTTP/2).
    if let Some(len) = len {
        h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    }
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(reply.content_type),
    );
    match reply.cache_control {
        Caching::Fixed(v) => {
            h.insert(header::CACHE_CONTROL, HeaderValue::from_static(v));
        }
        Caching::UntilOutOfWindow(d) => {
            let secs = d.as_secs().max(1);
            if let Ok(v) = HeaderValue::from_str(&format!("public, max-age={secs}, immutable")) {
                h.insert(header::CACHE_CONTROL, v);
            }
            let at = std::time::SystemTime::now() + Duration::from_secs(secs);
            if let Ok(v) = HeaderValue::from_str(&httpdate::fmt_http_date(at)) {
                h.insert(header::EXPIRES, v);
            }
        }
        Caching::MaxAge(secs) => {
            if let Ok(v) = HeaderValue::from_str(&format!("public, max-age={secs}")) {
                h.insert(header::CACHE_CONTROL, v);
            }
        }
    }
    resp
}

fn error_response(e: &OriginError) -> Response<ChunksBody> {
    let mut resp = Response::new(ChunksBody::new([Bytes::from(format!("{}\n", e.status()))]));
    *resp.status_mut() = e.status();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    h.insert(
        header::CACHE_CONTROL,
        // A refusal depends on the token, which a CDN keeps out of its cache key: never stored.
        HeaderValue::from_static(if matches!(e, OriginError::Denied(_)) {
            cache::PRIVATE
        } else {
            cache::ERROR
        }),
    );
    if *e == OriginError::Denied(Denial::Missing) {
        h.insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Token realm=\"estuary\", path-prefix=\"/t/{token}/\""),
        );
    }
    if *e == OriginError::MethodNotAllowed {
        h.insert(
            header::ALLOW,
            HeaderValue::from_static("GET, HEAD, OPTIONS"),
        );
    }
    resp
}

/// What one connection's idle watchdog ([`IdleIo`]) looks at.
#[derive(Debug)]
struct ConnActivity {
    /// Requests whose response body has not been dropped yet (held blocking reloads included).
    in_flight: AtomicUsize,
    /// When a byte last moved either way or a response ended, ms after `born`.
    last_ms: AtomicU64,
    born: tokio::time::Instant,
}

impl ConnActivity {
    fn new() -> Self {
        Self {
            in_flight: AtomicUsize::new(0),
            last_ms: AtomicU64::new(0),
            born: tokio::time::Instant::now(),
        }
    }

    fn touch(&self) {
        self.last_ms
            .store(self.born.elapsed().as_millis() as u64, Ordering::Relaxed);
    }
}

/// One request in flight on a connection, from its headers until its response body is dropped.
struct InFlight(Arc<ConnActivity>);

impl InFlight {
    fn new(activity: Arc<ConnActivity>) -> Self {
        activity.in_flight.fetch_add(1, Ordering::Relaxed);
        Self(activity)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
        self.0.touch();
    }
}

/// A connection's socket that records its activity and reads end-of-stream once the connection has
/// had no request in flight and moved no byte for `idle`, so that hyper closes it. hyper's HTTP/1
/// header timeout already closes an idle HTTP/1.1 keep-alive connection; HTTP/2 has no idle timeout
/// of its own (its PINGs only find dead peers), so without this an HTTP/2 connection with no stream
/// would hold its connection slot for ever.
struct IdleIo {
    inner: tokio::net::TcpStream,
    activity: Arc<ConnActivity>,
    idle: Duration,
    timer: Pin<Box<tokio::time::Sleep>>,
}

impl IdleIo {
    fn new(inner: tokio::net::TcpStream, activity: Arc<ConnActivity>, idle: Duration) -> Self {
        Self {
            inner,
            activity,
            idle,
            timer: Box::pin(tokio::time::sleep(idle)),
        }
    }

    /// True once the connection has been idle for `idle`; otherwise the timer is armed for the
    /// moment it would be.
    fn poll_idle(&mut self, cx: &mut Context<'_>) -> bool {
        loop {
            let due = if self.activity.in_flight.load(Ordering::Relaxed) > 0 {
                tokio::time::Instant::now() + self.idle
            } else {
                let last = self.activity.last_ms.load(Ordering::Relaxed);
                self.activity.born + Duration::from_millis(last) + self.idle
            };
            if due <= tokio::time::Instant::now() {
                return true;
            }
            if self.timer.deadline() != due {
                self.timer.as_mut().reset(due);
            }
            if self.timer.as_mut().poll(cx).is_pending() {
                return false;
            }
        }
    }
}

impl tokio::io::AsyncRead for IdleIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        match Pin::new(&mut self.inner).poll_read(cx, buf) {
            Poll::Ready(r) => {
                if buf.filled().len() > before {
                    self.activity.touch();
                }
                Poll::Ready(r)
            }
            // End of stream (no bytes filled): hyper closes the connection.
            Poll::Pending if self.poll_idle(cx) => Poll::Ready(Ok(())),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl tokio::io::AsyncWrite for IdleIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        r
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Serve HTTP/1.1 and cleartext HTTP/2 (prior knowledge) on `listener` until `shutdown` turns true,
/// then shut down gracefully: stop accepting, let each connection finish the response in flight
/// (then close it; HTTP/2: GOAWAY) and return when all have, or after `grace`, cutting the rest.
/// Idle keep-alive connections close at once. End the streams first ([`Hub::end_all`]) so that
/// blocked playlist requests and segments in progress complete instead of running into the grace.
/// Connections that stay idle (no request in flight, no byte either way) for the header timeout are
/// closed, HTTP/1.1 and HTTP/2 alike.
pub async fn serve(
    listener: TcpListener,
    origin: Arc<Origin>,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
    grace: Duration,
) {
    use hyper_util::{
        rt::{TokioExecutor, TokioIo, TokioTimer},
        server::{conn::auto, graceful::GracefulShutdown},
    };
    let limit = Arc::new(tokio::sync::Semaphore::new(origin.config.max_connections));
    let graceful = GracefulShutdown::new();
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(origin.config.header_read_timeout)
        .max_buf_size(64 * 1024);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(256);
    loop {
        let permit = tokio::select! {
            p = limit.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => break },
            _ = shutdown.changed() => break,
        };
        let (stream, peer): (tokio::net::TcpStream, SocketAddr) = tokio::select! {
            r = listener.accept() => match r {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(error = %e, "http accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = shutdown.changed() => break,
        };
        let _ = stream.set_nodelay(true);
        let origin = origin.clone();
        let builder = builder.clone();
        let watcher = graceful.watcher();
        let header_timeout = origin.config.header_read_timeout;
        let mut stopping = shutdown.clone();
        tokio::spawn(async move {
            let _permit = permit;
            // A connection must start its first request within the header timeout. (hyper's own
            // header timeout starts only once the protocol is known, that is after the first bytes:
            // a client that never sends one would hold its connection slot for ever.) A shutdown
            // closes such connections at once: they have no response in flight.
            let mut first = [0u8; 1];
            let started = tokio::select! {
                r = tokio::time::timeout(header_timeout, stream.peek(&mut first)) => r,
                _ = stopping.changed() => return,
            };
            match started {
                Ok(Ok(n)) if n > 0 => {}
                Ok(_) => return,
                Err(_) => {
                    tracing::debug!(%peer, "http connection closed: nothing sent within the header timeout");
                    return;
                }
            }
            let activity = Arc::new(ConnActivity::new());
            let io = IdleIo::new(stream, activity.clone(), header_timeout);
            let service = hyper::service::service_fn(move |mut req: Request<Incoming>| {
                req.extensions_mut().insert(ClientAddr(peer));
                let in_flight = InFlight::new(activity.clone());
                let origin = origin.clone();
                async move {
                    let mut response = origin.handle(req).await?;
                    response.body_mut().in_flight = Some(in_flight);
                    Ok::<_, Infallible>(response)
                }
            });
            let connection = builder.serve_connection(TokioIo::new(io), service);
            if let Err(e) = watcher.watch(connection).await {
                tracing::debug!(%peer, error = %e, "http connection ended with an error");
            }
        });
    }
    // Stop accepting (new connections are refused), let every connection finish the response in
    // flight (HTTP/1.1: then close; HTTP/2: GOAWAY), and wait for them up to `grace`.
    drop(listener);
    let open = graceful.count();
    if open == 0 {
        return;
    }
    tracing::info!(
        connections = open,
        grace_ms = grace.as_millis() as u64,
        "http: finishing responses in flight"
    );
    if tokio::time::timeout(grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            grace_ms = grace.as_millis() as u64,
            "http: responses still in flight after the grace period are cut"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_parse_strictly() {
        assert_eq!(
            parse_path("/live/demo/index.m3u8"),
            Some(("live/demo".into(), Object::Multivariant))
        );
        assert_eq!(
            parse_path("/live/demo/source/123.4.m4s"),
            Some((
                "live/demo".into(),
                Object::Part {
                    rendition: "source".into(),
                    msn: 123,
                    part: 4
                }
            ))
        );
        assert_eq!(
            parse_path("/live/demo/audio/init-77.mp4"),
            Some((
                "live/demo".into(),
                Object::Init {
                    rendition: "audio".into(),
                    id: 77
                }
            ))
        );
        for bad in [
            "/live/../etc/passwd",
            "/live/demo/../x/media.m3u8",
            "/live/demo/source/-1.m4s",
            "/live/demo/source/1.2.3.m4s",
            "/live/demo/source/99999999999999999999.m4s",
            "/live/demo",
            "/live/demo/source/media.m3u8/x",
            "/live//index.m3u8",
            "/other/demo/index.m3u8",
        ] {
            assert_eq!(parse_path(bad), None, "{bad}");
        }
    }
}
