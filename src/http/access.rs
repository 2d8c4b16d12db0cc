//! Playback access: the token check per request and the CDN's `auth_request` check.

use hyper::StatusCode;
use packager::urls::StreamObject as Object;

use crate::auth::{Denial, PlaybackMode};

use super::*;

impl Origin {
    /// May this request play `object` of `stream`? A request from the trusted edge (right header) may;
    /// a wrong edge header may not. Otherwise content keys and the license always need a valid token,
    /// and with `auth.playback = "token"` everything but the clock does; a token that is present is
    /// always checked. Refusals are counted and logged (rate-limited, never the token).
    ///
    /// Errors: the [`Denial`].
    pub(super) fn check_access(
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
    pub(super) fn check_token(
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
    pub(super) fn auth_check(
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
        // A recording's objects are checked as its live stream's (a download as a key: it always
        // needs a token).
        let vod = |rest: &str| {
            packager::urls::VodPath::parse(rest).map(|p| {
                let object = match p.object {
                    packager::urls::VodObject::Object(o) => o,
                    packager::urls::VodObject::Download { .. } => Object::Key { id: 0 },
                };
                (p.stream, object)
            })
        };
        let Some((stream, object)) = parse_path(rest)
            .or_else(|| page_of(rest))
            .or_else(|| vod(rest))
        else {
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
}

/// The viewer's address as a trusted edge forwards it: `X-Real-IP`, else the first `X-Forwarded-For`.
pub(super) fn forwarded_client(headers: &hyper::HeaderMap) -> Option<std::net::IpAddr> {
    let real = headers.get("x-real-ip").and_then(|v| v.to_str().ok());
    let forwarded = headers
        .get("x-forwarded-for")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(',').next());
    real.or(forwarded).and_then(|v| v.trim().parse().ok())
}
