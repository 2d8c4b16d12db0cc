//! Responses: cache policy per object type, CORS-neutral headers, and errors mapped to statuses.

use std::time::Duration;

use bytes::Bytes;
use hyper::{
    Response, StatusCode,
    body::Body,
    header::{self, HeaderValue},
};

use crate::auth::Denial;

use super::*;

/// Cache-Control values by object type (documented in the README).
pub(super) mod cache {
    /// Init segments: named by content for the stream's life, never reused.
    pub const IMMUTABLE: &str = "public, max-age=31536000, immutable";
    pub const LIVE_PLAYLIST: &str = "public, max-age=1";
    pub const BLOCKING_PLAYLIST: &str = "public, max-age=60";
    pub const ENDED_PLAYLIST: &str = "public, max-age=60";
    pub const ERROR: &str = "no-cache";
    pub const SHORT_ERROR: &str = "public, max-age=1";
    pub const NO_STORE: &str = "no-store";
    pub const PRIVATE: &str = "private, no-store";
    /// The player page and its libraries: the same for every stream and viewer, and changed only
    /// by an upgrade.
    pub const PLAYER: &str = "public, max-age=300";
}

/// How long a response may be cached.
#[derive(Debug, Clone, Copy)]
pub(super) enum Caching {
    /// A fixed Cache-Control value.
    Fixed(&'static str),
    /// A media object that leaves the live window: `public, max-age=N, immutable` and `Expires` N from
    /// now, N being no earlier than the object leaves the window.
    UntilOutOfWindow(Duration),
    /// A token check's answer: `public, max-age=N` (N ≤ [`AUTH_CHECK_MAX_AGE_S`]).
    MaxAge(u64),
}

pub(super) struct Reply {
    pub(super) status: StatusCode,
    pub(super) content_type: &'static str,
    pub(super) cache_control: Caching,
    pub(super) body: ChunksBody,
}

pub(super) fn playlist_reply(body: Bytes, cache_control: &'static str) -> Reply {
    Reply {
        status: StatusCode::OK,
        content_type: "application/vnd.apple.mpegurl",
        cache_control: Caching::Fixed(cache_control),
        body: ChunksBody::new([body]),
    }
}

/// A media object: an init segment (`lifetime` `None`: immutable for a year) or a segment or part
/// cached until it has left the live window (`lifetime`).
pub(super) fn media_reply(
    kind: media::TrackKind,
    body: ChunksBody,
    lifetime: Option<Duration>,
) -> Reply {
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
pub(super) fn reply_response(reply: Reply, is_head: bool) -> Response<ChunksBody> {
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
            if let Some((cache_control, expires)) = window_headers(d.as_secs().max(1)) {
                h.insert(header::CACHE_CONTROL, cache_control);
                h.insert(header::EXPIRES, expires);
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

/// `Cache-Control: public, max-age=N, immutable` and `Expires` N seconds from now, rendered once per
/// second and N on each thread (every media object of a stream shares them).
fn window_headers(secs: u64) -> Option<(HeaderValue, HeaderValue)> {
    type Rendered = (u64, u64, HeaderValue, HeaderValue);
    thread_local! {
        static LAST: std::cell::RefCell<Option<Rendered>> = const { std::cell::RefCell::new(None) };
    }
    let now = std::time::SystemTime::now();
    let second = now
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    LAST.with_borrow_mut(|last| {
        if let Some((s, n, cc, ex)) = last.as_ref()
            && (*s, *n) == (second, secs)
        {
            return Some((cc.clone(), ex.clone()));
        }
        let cc = HeaderValue::from_maybe_shared(Bytes::from(format!(
            "public, max-age={secs}, immutable"
        )))
        .ok()?;
        let at = now + Duration::from_secs(secs);
        let ex = HeaderValue::from_maybe_shared(Bytes::from(httpdate::fmt_http_date(at))).ok()?;
        *last = Some((second, secs, cc.clone(), ex.clone()));
        Some((cc, ex))
    })
}

pub(super) fn error_response(e: &OriginError) -> Response<ChunksBody> {
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
        HeaderValue::from_static(match e {
            OriginError::Denied(_) => cache::PRIVATE,
            // A moment's outage: a CDN may hold the answer for a second, not more.
            OriginError::OwnerUnreachable => cache::SHORT_ERROR,
            _ => cache::ERROR,
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
