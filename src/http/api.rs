//! Operations: health, readiness, metrics and the JSON API under a bearer token.

use bytes::Bytes;
use hyper::{
    Method, Response, StatusCode,
    header::{self, HeaderValue},
};

use super::*;

impl Origin {
    /// `/healthz`, `/readyz` and the JSON API. Never cached.
    pub(super) async fn operations(
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
            (&Method::GET | &Method::HEAD, "/readyz")
                if self.hub.is_accepting() && !self.hub.is_draining() =>
            {
                text(StatusCode::OK, "ready\n")
            }
            (&Method::GET | &Method::HEAD, "/readyz") if self.hub.is_accepting() => {
                // Drain: out of the load balancers, still serving its streams.
                match self.node_state() {
                    crate::cluster::NodeState::Drained => {
                        text(StatusCode::SERVICE_UNAVAILABLE, "drained\n")
                    }
                    _ => text(StatusCode::SERVICE_UNAVAILABLE, "draining\n"),
                }
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
                    match self.metrics.encode(
                        &self.hub,
                        &self.auth,
                        self.requests_in_flight(),
                        self.mirrors.bytes(),
                    ) {
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
            _ => match self.api_refusal(headers) {
                Some(refusal) => refusal,
                None if path == "/api/recordings" || path.starts_with("/api/recordings/") => {
                    self.recordings_api(method, path).await
                }
                None => match self.cluster_api(method, path).await {
                    Some(response) => response,
                    None => self.api(method, path),
                },
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

    /// The answer to an API request whose bearer token is missing (401) or wrong (403); `None` when
    /// it is right.
    pub(super) fn api_refusal(&self, headers: &hyper::HeaderMap) -> Option<Response<ChunksBody>> {
        let text = |status: StatusCode, body: &'static str| {
            let mut r = Response::new(ChunksBody::new([Bytes::from_static(body.as_bytes())]));
            *r.status_mut() = status;
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; charset=utf-8"),
            );
            r
        };
        match self
            .auth
            .check_api_authorization(headers.get(header::AUTHORIZATION))
        {
            None => {
                let mut r = text(StatusCode::UNAUTHORIZED, "401 Unauthorized\n");
                r.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"estuary api\""),
                );
                Some(r)
            }
            Some(false) => Some(text(StatusCode::FORBIDDEN, "403 Forbidden\n")),
            Some(true) => None,
        }
    }

    /// `POST /api/streams/{stream}/metadata` or `…/splice` (`path`), its body read up to
    /// [`metadata::MAX_BODY_BYTES`] (`None` beyond): the token checked, then the event posted.
    pub(super) async fn metadata_request(
        &self,
        path: &str,
        headers: &hyper::HeaderMap,
        body: Option<Bytes>,
    ) -> Response<ChunksBody> {
        let mut response = match self.api_refusal(headers) {
            Some(refusal) => refusal,
            None => {
                let target = path.strip_prefix("/api/streams/").and_then(|p| {
                    p.strip_suffix("/metadata")
                        .map(|s| (s, false))
                        .or_else(|| p.strip_suffix("/splice").map(|s| (s, true)))
                });
                match target.filter(|(s, _)| s.parse::<media::name::StreamName>().is_ok()) {
                    Some((stream, false)) => self.post_metadata(stream, body).await,
                    Some((stream, true)) => self.post_splice(stream, body).await,
                    None => error_response(&OriginError::NotFound),
                }
            }
        };
        response.headers_mut().insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static(cache::PRIVATE),
        );
        response
    }

    /// The API proper, once the bearer token is right.
    pub(super) fn api(&self, method: &Method, path: &str) -> Response<ChunksBody> {
        let json = json_response;
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
        let Some(stream) = path
            .strip_prefix("/api/streams/")
            .filter(|s| s.parse::<media::name::StreamName>().is_ok())
        else {
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
}

/// An API answer: `value` as JSON with `status`.
pub(super) fn json_response(status: StatusCode, value: serde_json::Value) -> Response<ChunksBody> {
    let mut r = Response::new(ChunksBody::new([Bytes::from(value.to_string())]));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}
