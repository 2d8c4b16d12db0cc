//! Playback tokens: their claims, signing and verification (HMAC-SHA256, RFC 2104, over base64url
//! claims, RFC 4648 §5), and the reasons a request is refused.

use std::{net::IpAddr, time::Duration};

use base64::Engine;
use hmac::Mac;

use super::{Auth, B64, MAX_TOKEN_BYTES};

/// Claims of a playback token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenClaims {
    /// A stream (`live/demo`) or a prefix ending in `/` (`live/`).
    pub scope: String,
    /// Expiry, Unix seconds (UTC): valid while `now < expires_unix_s`.
    pub expires_unix_s: u64,
    /// Not valid before this Unix second, if given.
    pub not_before_unix_s: Option<u64>,
    /// Only this client address may use it, if given.
    pub client_ip: Option<IpAddr>,
}

impl TokenClaims {
    /// True when the scope covers stream `stream` (`live/{name}`).
    pub fn covers(&self, stream: &str) -> bool {
        if self.scope.ends_with('/') {
            stream.starts_with(&self.scope)
        } else {
            stream == self.scope
        }
    }

    pub(super) fn encode(&self) -> String {
        let mut s = format!("e={}&s={}", self.expires_unix_s, self.scope);
        if let Some(n) = self.not_before_unix_s {
            s.push_str(&format!("&n={n}"));
        }
        if let Some(ip) = self.client_ip {
            s.push_str(&format!("&ip={ip}"));
        }
        s
    }

    pub(super) fn decode(text: &str) -> Option<Self> {
        let (mut e, mut s, mut n, mut ip) = (None, None, None, None);
        for entry in text.split('&') {
            let (k, v) = entry.split_once('=')?;
            let slot = match k {
                "e" => &mut e,
                "s" => &mut s,
                "n" => &mut n,
                "ip" => &mut ip,
                _ => return None,
            };
            if slot.replace(v).is_some() {
                return None;
            }
        }
        let scope = s?;
        if scope.is_empty() || scope.len() > 200 || scope.contains(['&', '=']) {
            return None;
        }
        Some(Self {
            scope: scope.to_owned(),
            expires_unix_s: parse_u64(e?)?,
            not_before_unix_s: match n {
                Some(n) => Some(parse_u64(n)?),
                None => None,
            },
            client_ip: match ip {
                Some(ip) => Some(ip.parse().ok()?),
                None => None,
            },
        })
    }
}

fn parse_u64(s: &str) -> Option<u64> {
    (!s.is_empty() && s.len() <= 19 && s.bytes().all(|b| b.is_ascii_digit()))
        .then(|| s.parse().ok())
        .flatten()
}

/// Why a playback request was refused. `Missing` answers 401, the rest 403.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Denial {
    /// No token where one is needed.
    Missing,
    /// Not `{claims}.{signature}` in base64url, or claims that do not parse (after a valid signature).
    Malformed,
    /// The signature does not match (a forged or altered token, or another server's secret).
    BadSignature,
    /// `now ≥ expiry`.
    Expired,
    /// `now < not before`.
    NotYetValid,
    /// The scope does not cover the requested stream.
    OutOfScope,
    /// The token is bound to another client address.
    WrongClient,
    /// A trusted-edge header with the wrong value.
    EdgeSecret,
}

impl Denial {
    /// Every reason, in `Denial::index` order.
    pub const ALL: [Denial; 8] = [
        Denial::Missing,
        Denial::Malformed,
        Denial::BadSignature,
        Denial::Expired,
        Denial::NotYetValid,
        Denial::OutOfScope,
        Denial::WrongClient,
        Denial::EdgeSecret,
    ];

    /// A stable label for logs and metrics.
    pub fn reason(self) -> &'static str {
        match self {
            Denial::Missing => "missing",
            Denial::Malformed => "malformed",
            Denial::BadSignature => "bad_signature",
            Denial::Expired => "expired",
            Denial::NotYetValid => "not_yet_valid",
            Denial::OutOfScope => "out_of_scope",
            Denial::WrongClient => "wrong_client",
            Denial::EdgeSecret => "edge_secret",
        }
    }

    /// 401 for a missing token, 403 otherwise.
    pub fn status(self) -> hyper::StatusCode {
        match self {
            Denial::Missing => hyper::StatusCode::UNAUTHORIZED,
            _ => hyper::StatusCode::FORBIDDEN,
        }
    }

    pub(super) fn index(self) -> usize {
        Denial::ALL.iter().position(|d| *d == self).unwrap_or(0)
    }
}

impl Auth {
    /// A signed token for `claims`: `{claims}.{signature}`, base64url without padding (RFC 4648 §5), about
    /// 80 bytes, safe as one URL path segment (the one after `/t/`).
    pub fn sign(&self, claims: &TokenClaims) -> String {
        let text = B64.encode(claims.encode());
        let mut mac = self.token_mac.clone();
        mac.update(text.as_bytes());
        let sig = B64.encode(mac.finalize().into_bytes());
        format!("{text}.{sig}")
    }

    /// A token for `scope` (a stream `live/{name}` or a prefix ending in `/`) valid from `now_unix_s`
    /// (Unix seconds) for `ttl` (whole seconds, at least 1).
    pub fn sign_for(&self, scope: &str, ttl: Duration, now_unix_s: u64) -> String {
        self.sign(&TokenClaims {
            scope: scope.to_owned(),
            expires_unix_s: now_unix_s.saturating_add(ttl.as_secs().max(1)),
            not_before_unix_s: None,
            client_ip: None,
        })
    }

    /// Verify `token` for stream `stream` (`live/{name}`), asked by `client` at `now_unix_s` (Unix
    /// seconds). The signature (HMAC-SHA256, RFC 2104) is checked first, in constant time, before any
    /// claim is decoded; then expiry, not-before, scope and client (IPv4-mapped IPv6 equals IPv4).
    ///
    /// Errors: the [`Denial`] reason.
    pub fn verify(
        &self,
        token: &str,
        stream: &str,
        client: Option<IpAddr>,
        now_unix_s: u64,
    ) -> Result<TokenClaims, Denial> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(Denial::Malformed);
        }
        let (text, sig) = token.split_once('.').ok_or(Denial::Malformed)?;
        let mut sig_bytes = [0u8; 32];
        match B64.decode_slice(sig, &mut sig_bytes) {
            Ok(32) => {}
            _ => return Err(Denial::Malformed),
        }
        let mut mac = self.token_mac.clone();
        mac.update(text.as_bytes());
        mac.verify_slice(&sig_bytes)
            .map_err(|_| Denial::BadSignature)?;
        let claims = B64
            .decode(text)
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .and_then(|t| TokenClaims::decode(&t))
            .ok_or(Denial::Malformed)?;
        if now_unix_s >= claims.expires_unix_s {
            return Err(Denial::Expired);
        }
        if claims.not_before_unix_s.is_some_and(|n| now_unix_s < n) {
            return Err(Denial::NotYetValid);
        }
        if !claims.covers(stream) {
            return Err(Denial::OutOfScope);
        }
        if let Some(ip) = claims.client_ip
            && client.map(canonical_ip) != Some(canonical_ip(ip))
        {
            return Err(Denial::WrongClient);
        }
        Ok(claims)
    }
}

/// IPv4-mapped IPv6 addresses compare as IPv4.
fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}
