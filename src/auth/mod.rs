//! Access control: signed playback tokens carried in the URL path, per-stream publish keys, the publish
//! webhook, and the trusted CDN edge.
//!
//! # Playback tokens
//! A token is `{claims}.{signature}`, both base64url without padding (RFC 4648 §5), so it fits in one
//! URL path segment: `/t/{token}/live/{name}/index.m3u8`. Every URI in our playlists and MPDs is relative,
//! so players resolve children (media playlists, init segments, segments, parts, preload hints,
//! rendition reports, keys, the ClearKey license) under the same `/t/{token}/` prefix, and the bytes of
//! every playlist, MPD and media object stay identical for every viewer.
//!
//! - `claims` is the UTF-8 text `e={expiry}&s={scope}[&n={not before}][&ip={client IP}]`: times in Unix
//!   seconds (UTC); `scope` is a stream (`live/demo`) or a prefix ending in `/` (`live/`).
//! - `signature` is HMAC-SHA256 (RFC 2104, FIPS 180-4) of the base64url claims text under a key derived
//!   from the server secret. It is checked first, in constant time, before any claim is read.
//!
//! Verification needs no server state: any origin with the secret verifies any token.
//!
//! # Publish keys
//! With `auth.publish = "key"`, stream `live/{name}` accepts publishers presenting
//! [`Auth::publish_key`]: 16 bytes of HMAC-SHA256 over the stream name, base64url (22 characters), as
//! the RTMP stream key `{name}?key=…` or the SRT stream ID entry `key=…`. With `"webhook"`, an HTTP POST
//! decides ([`Webhook`]).
//!
//! Layout: this file (settings, [`Auth`] with its derived keys, the trusted edge, the API token and the
//! refusal counters), `token` (playback tokens and [`Denial`]), `publish` (publish keys and the
//! webhook), `secret` (the server secret and its file).

use std::{
    net::IpAddr,
    path::{Path, PathBuf},
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

mod publish;
mod secret;
mod token;

pub use crate::vocab::PublishRequest;
pub use publish::Webhook;
pub use secret::SecretString;
use secret::{load_or_create_secret, read_secret_file};
pub use token::{Denial, TokenClaims};

type HmacSha256 = Hmac<Sha256>;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// The path prefix that carries a token: `/t/{token}/live/{name}/…`.
pub const TOKEN_PATH_PREFIX: &str = "/t/";

/// Shortest server secret accepted, bytes.
pub const MIN_SECRET_BYTES: usize = 32;

/// Longest token accepted, bytes (longer ones are malformed without being decoded).
pub const MAX_TOKEN_BYTES: usize = 1024;

/// File name of the generated secret inside the data directory.
pub const SECRET_FILE_NAME: &str = "secret";

/// `auth.playback`: whether viewers need a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlaybackMode {
    /// Every playback URL needs a valid token (the default).
    Token,
    /// Playlists and media need no token (content keys and the license still do).
    Open,
}

/// `auth.publish`: how publishers are authorised.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PublishMode {
    /// A per-stream publish key derived from the server secret (the default).
    Key,
    /// An HTTP POST to `auth.webhook_url` decides.
    Webhook,
    /// Anyone may publish.
    Open,
}

/// The resolved `[auth]` settings (secrets not yet loaded: see [`Auth::load`]).
#[derive(Debug, Clone)]
pub struct AuthConfig {
    /// Whether viewers need a token.
    pub playback: PlaybackMode,
    /// How publishers are authorised.
    pub publish: PublishMode,
    /// The server secret given in the configuration or `ESTUARY_AUTH_SECRET`.
    pub secret: Option<SecretString>,
    /// A file holding the server secret (first line; at least [`MIN_SECRET_BYTES`] bytes).
    pub secret_file: Option<PathBuf>,
    /// Where `publish = "webhook"` asks, and where `unpublish` notifications go.
    pub webhook: Option<WebhookConfig>,
    /// A CDN that validated the viewer itself presents this header; the origin then skips token checks.
    pub trusted_edge: Option<TrustedEdgeConfig>,
    /// The bearer token of the HTTP API (`api.token`); `None`: derived from the server secret
    /// ([`Auth::api_token`]).
    pub api_token: Option<SecretString>,
    /// The node is in a cluster: requests it proxies to another node carry the trusted-edge header
    /// ([`Auth::hop_header`]), and without a configured edge a value derived from the server secret
    /// (shared by every node) is trusted as one.
    pub cluster_hop: bool,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            playback: PlaybackMode::Token,
            publish: PublishMode::Key,
            secret: None,
            secret_file: None,
            webhook: None,
            trusted_edge: None,
            api_token: None,
            cluster_hop: false,
        }
    }
}

/// `auth.webhook_url` and `auth.webhook_timeout`.
#[derive(Debug, Clone)]
pub struct WebhookConfig {
    /// `http://host[:port]/path` (plain HTTP: the webhook is an internal service).
    pub url: hyper::Uri,
    /// Longest wait for the answer (default 2 s); no answer in time refuses the publish.
    pub timeout: Duration,
}

/// The trusted edge's header unless `auth.trusted_edge_header` names another.
pub const DEFAULT_EDGE_HEADER: &str = "x-estuary-edge";

/// `auth.trusted_edge_header` and `auth.trusted_edge_secret`.
#[derive(Debug, Clone)]
pub struct TrustedEdgeConfig {
    /// The header name (default `x-estuary-edge`).
    pub header: hyper::header::HeaderName,
    /// Its expected value (at least 16 bytes).
    pub secret: SecretString,
}

/// Why the secret could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// Reading or creating a secret file failed.
    #[error("auth secret file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A secret shorter than [`MIN_SECRET_BYTES`].
    #[error("{origin}: the secret must be at least {MIN_SECRET_BYTES} bytes")]
    TooShort {
        /// Where it came from (key or file).
        origin: String,
    },
}

/// Playback refusals counted by reason since start.
#[derive(Debug, Default)]
pub struct AuthStats {
    denials: [AtomicU64; 8],
    /// Unix second of the last log line per reason (logs are limited to one per reason per second).
    last_logged_s: [AtomicU64; 8],
    /// Publishes refused since start.
    pub publish_refusals: AtomicU64,
}

impl AuthStats {
    /// Refusals for `reason` since start.
    pub fn denials(&self, reason: Denial) -> u64 {
        self.denials[reason.index()].load(Ordering::Relaxed)
    }

    /// Count a refusal; true when it should be logged (the first of its reason this second).
    fn count(&self, reason: Denial, now_s: u64) -> bool {
        let i = reason.index();
        self.denials[i].fetch_add(1, Ordering::Relaxed);
        self.last_logged_s[i].swap(now_s, Ordering::Relaxed) != now_s
    }
}

/// Access control shared by the origin and the ingest drivers.
pub struct Auth {
    playback: PlaybackMode,
    publish: PublishMode,
    /// HMAC-SHA256 keyed with the token key (cloned per use: the key schedule is done once).
    token_mac: HmacSha256,
    /// HMAC-SHA256 keyed with the publish-key key.
    publish_mac: HmacSha256,
    edge: Option<(hyper::header::HeaderName, Vec<u8>)>,
    webhook: Option<Webhook>,
    /// The HTTP API's bearer token.
    api_token: String,
    /// The key that seals content keys in the cluster store (derived from the secret).
    vault_key: [u8; 32],
    /// Refusal counters.
    pub stats: AuthStats,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth")
            .field("playback", &self.playback)
            .field("publish", &self.publish)
            .field("trusted_edge", &self.edge.as_ref().map(|e| e.0.as_str()))
            .field("webhook", &self.webhook.as_ref().map(|w| &w.config.url))
            .finish()
    }
}

/// Derive a purpose-specific key from the server secret (HMAC-SHA256 as a PRF, RFC 2104).
fn derive(secret: &[u8], purpose: &str) -> HmacSha256 {
    let mut prf = HmacSha256::new_from_slice(secret).expect("HMAC takes any key length");
    prf.update(purpose.as_bytes());
    let key = prf.finalize().into_bytes();
    HmacSha256::new_from_slice(&key).expect("HMAC takes any key length")
}

impl Auth {
    /// Load the secret (`auth.secret` / `ESTUARY_AUTH_SECRET`, else `auth.secret_file`, else
    /// `{data_dir}/secret`, generated there on first start: 32 random bytes, base64url, mode 0600) and
    /// build the access control.
    ///
    /// Errors: [`AuthError`] when a file cannot be read or created, or a secret is too short.
    pub fn load(config: &AuthConfig, data_dir: &Path) -> Result<Arc<Self>, AuthError> {
        let secret = match (&config.secret, &config.secret_file) {
            (Some(s), _) => {
                let s = s.expose().trim();
                if s.len() < MIN_SECRET_BYTES {
                    return Err(AuthError::TooShort {
                        origin: "auth.secret".into(),
                    });
                }
                s.as_bytes().to_vec()
            }
            (None, Some(path)) => read_secret_file(path)?.ok_or_else(|| AuthError::Io {
                path: path.clone(),
                source: std::io::Error::new(std::io::ErrorKind::NotFound, "no such file"),
            })?,
            (None, None) => load_or_create_secret(&data_dir.join(SECRET_FILE_NAME))?,
        };
        Ok(Arc::new(Self::with_secret(config, &secret)))
    }

    /// Access control under `secret` (any length; [`Auth::load`] enforces the minimum).
    pub fn with_secret(config: &AuthConfig, secret: &[u8]) -> Self {
        Self {
            playback: config.playback,
            publish: config.publish,
            token_mac: derive(secret, "estuary playback token v1"),
            publish_mac: derive(secret, "estuary publish key v1"),
            edge: match (&config.trusted_edge, config.cluster_hop) {
                (Some(e), _) => Some((e.header.clone(), e.secret.expose().as_bytes().to_vec())),
                (None, true) => {
                    let mut mac = derive(secret, "estuary cluster hop v1");
                    mac.update(b"hop");
                    Some((
                        hyper::header::HeaderName::from_static(DEFAULT_EDGE_HEADER),
                        B64.encode(mac.finalize().into_bytes()).into_bytes(),
                    ))
                }
                (None, false) => None,
            },
            webhook: config.webhook.clone().map(Webhook::new),
            vault_key: {
                let mut mac = derive(secret, "estuary cluster key vault v1");
                mac.update(b"vault");
                mac.finalize().into_bytes().into()
            },
            api_token: match &config.api_token {
                Some(t) => t.expose().to_owned(),
                None => {
                    let mut mac = derive(secret, "estuary api token v1");
                    mac.update(b"api");
                    B64.encode(&mac.finalize().into_bytes()[..24])
                }
            },
            stats: AuthStats::default(),
        }
    }

    /// Whether viewers need a token.
    pub fn playback(&self) -> PlaybackMode {
        self.playback
    }

    /// How publishers are authorised.
    pub fn publish_mode(&self) -> PublishMode {
        self.publish
    }

    /// Count and (at most once per second per reason) log a refusal. Never logs the token.
    pub fn record_denial(&self, reason: Denial, stream: &str, client: Option<IpAddr>) {
        let now = unix_now_s();
        if self.stats.count(reason, now) {
            tracing::info!(
                %stream,
                client = client.map(|c| c.to_string()).as_deref().unwrap_or("?"),
                reason = reason.reason(),
                total = self.stats.denials(reason),
                "playback request refused"
            );
        }
    }

    /// Whether `headers` come from the trusted edge: `None` without the edge header (or with no edge
    /// configured), `Some(true)` with the right value, `Some(false)` with a wrong one. Constant time.
    pub fn edge(&self, headers: &hyper::HeaderMap) -> Option<bool> {
        use subtle::ConstantTimeEq;
        let (name, secret) = self.edge.as_ref()?;
        let value = headers.get(name)?;
        Some(bool::from(value.as_bytes().ct_eq(secret)))
    }

    /// The vault that seals content keys in the cluster store, under a key derived from the server
    /// secret (the same on every node that shares it).
    pub fn key_vault(&self) -> crate::cluster::vault::KeyVault {
        crate::cluster::vault::KeyVault::new(&self.vault_key)
    }

    /// The header a request proxied to another node of the cluster carries: the trusted edge's (the
    /// receiving node then skips the token check the first node made). `None` without an edge.
    pub fn hop_header(&self) -> Option<(hyper::header::HeaderName, hyper::header::HeaderValue)> {
        let (name, secret) = self.edge.as_ref()?;
        let value = hyper::header::HeaderValue::from_bytes(secret).ok()?;
        Some((name.clone(), value))
    }

    /// The HTTP API's bearer token: `api.token`, or 32 base64url characters derived from the server
    /// secret (`estuary api-token` prints it).
    pub fn api_token(&self) -> &str {
        &self.api_token
    }

    /// Check an `Authorization` header value for the API (`Bearer {token}`, constant time): `None`
    /// without one, `Some(true)` when right.
    pub fn check_api_authorization(
        &self,
        value: Option<&hyper::header::HeaderValue>,
    ) -> Option<bool> {
        use subtle::ConstantTimeEq;
        let presented = value?.as_bytes().strip_prefix(b"Bearer ")?;
        Some(bool::from(presented.ct_eq(self.api_token.as_bytes())))
    }
}

/// The current Unix time, seconds.
pub fn unix_now_s() -> u64 {
    u64::try_from(crate::vocab::unix_ms() / 1000).unwrap_or(0)
}

pub use protocols::query::query_params;

#[cfg(test)]
mod tests {
    use super::*;

    fn auth() -> Auth {
        Auth::with_secret(&AuthConfig::default(), b"0123456789abcdef0123456789abcdef")
    }

    const NOW: u64 = 1_800_000_000;

    fn claims(scope: &str) -> TokenClaims {
        TokenClaims {
            scope: scope.into(),
            expires_unix_s: NOW + 60,
            not_before_unix_s: None,
            client_ip: None,
        }
    }

    #[test]
    fn tokens_verify_by_the_matrix() {
        let a = auth();
        let other = Auth::with_secret(
            &AuthConfig::default(),
            b"another secret of at least 32 bytes!",
        );
        let good = a.sign(&claims("live/demo"));
        let tampered = {
            let (_, sig) = good.split_once('.').unwrap();
            let forged = B64.encode(claims("live/").encode());
            format!("{forged}.{sig}")
        };
        let bad_sig = {
            let (text, sig) = good.split_once('.').unwrap();
            let mut s = sig.as_bytes().to_vec();
            s[3] = if s[3] == b'A' { b'B' } else { b'A' };
            format!("{text}.{}", String::from_utf8(s).unwrap())
        };
        let client: IpAddr = "203.0.113.7".parse().unwrap();
        let cases: Vec<(&str, String, &str, Option<Denial>)> = vec![
            ("valid", good.clone(), "live/demo", None),
            (
                "other stream",
                good.clone(),
                "live/other",
                Some(Denial::OutOfScope),
            ),
            ("prefix scope", a.sign(&claims("live/")), "live/any", None),
            (
                "wrong prefix",
                a.sign(&claims("vod/")),
                "live/demo",
                Some(Denial::OutOfScope),
            ),
            (
                "prefix is not a name prefix",
                a.sign(&claims("live/dem")),
                "live/demo",
                Some(Denial::OutOfScope),
            ),
            (
                "bad signature",
                bad_sig,
                "live/demo",
                Some(Denial::BadSignature),
            ),
            (
                "tampered claims",
                tampered,
                "live/demo",
                Some(Denial::BadSignature),
            ),
            (
                "another server's secret",
                other.sign(&claims("live/demo")),
                "live/demo",
                Some(Denial::BadSignature),
            ),
            (
                "expired",
                a.sign(&TokenClaims {
                    expires_unix_s: NOW,
                    ..claims("live/demo")
                }),
                "live/demo",
                Some(Denial::Expired),
            ),
            (
                "not yet valid",
                a.sign(&TokenClaims {
                    not_before_unix_s: Some(NOW + 10),
                    ..claims("live/demo")
                }),
                "live/demo",
                Some(Denial::NotYetValid),
            ),
            (
                "valid after not-before",
                a.sign(&TokenClaims {
                    not_before_unix_s: Some(NOW),
                    ..claims("live/demo")
                }),
                "live/demo",
                None,
            ),
            (
                "bound to this client",
                a.sign(&TokenClaims {
                    client_ip: Some(client),
                    ..claims("live/demo")
                }),
                "live/demo",
                None,
            ),
            (
                "bound to another client",
                a.sign(&TokenClaims {
                    client_ip: Some("203.0.113.8".parse().unwrap()),
                    ..claims("live/demo")
                }),
                "live/demo",
                Some(Denial::WrongClient),
            ),
            ("no dot", "abc".into(), "live/demo", Some(Denial::Malformed)),
            (
                "short signature",
                "abc.def".into(),
                "live/demo",
                Some(Denial::Malformed),
            ),
            (
                "huge",
                "a".repeat(5000),
                "live/demo",
                Some(Denial::Malformed),
            ),
        ];
        for (name, token, stream, want) in cases {
            let got = a.verify(&token, stream, Some(client), NOW).err();
            assert_eq!(got, want, "{name}");
        }
        // Signed but unparsable claims are malformed, not accepted.
        let text = B64.encode("e=1&s=live/demo&x=1");
        let mut mac = a.token_mac.clone();
        mac.update(text.as_bytes());
        let token = format!("{text}.{}", B64.encode(mac.finalize().into_bytes()));
        assert_eq!(
            a.verify(&token, "live/demo", None, 0),
            Err(Denial::Malformed)
        );
        // IPv4-mapped IPv6 is the same client.
        let bound = a.sign(&TokenClaims {
            client_ip: Some(client),
            ..claims("live/demo")
        });
        assert!(
            a.verify(
                &bound,
                "live/demo",
                Some("::ffff:203.0.113.7".parse().unwrap()),
                NOW
            )
            .is_ok()
        );
        // Tokens are URL path safe.
        assert!(
            good.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)),
            "{good}"
        );
    }

    #[test]
    fn publish_keys_are_per_stream_and_checked() {
        let a = auth();
        let k = a.publish_key("live/demo");
        assert_eq!(k.len(), 22);
        assert!(a.check_publish_key("live/demo", &k));
        assert!(!a.check_publish_key("live/other", &k));
        assert!(!a.check_publish_key("live/demo", &a.publish_key("live/other")));
        assert!(!a.check_publish_key("live/demo", ""));
        assert!(!a.check_publish_key("live/demo", "not base64 !!"));
        assert!(!a.check_publish_key("live/demo", &format!("{k}AA")));
        // Different secrets, different keys; a token is not a publish key.
        let other = Auth::with_secret(
            &AuthConfig::default(),
            b"another secret of at least 32 bytes!",
        );
        assert_ne!(other.publish_key("live/demo"), k);
    }

    #[test]
    fn the_secret_is_generated_once_and_kept_private() {
        let dir = tempfile::tempdir().unwrap();
        let a = Auth::load(&AuthConfig::default(), dir.path()).unwrap();
        let b = Auth::load(&AuthConfig::default(), dir.path()).unwrap();
        assert_eq!(a.publish_key("live/x"), b.publish_key("live/x"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(SECRET_FILE_NAME))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let short = AuthConfig {
            secret: Some(SecretString::new("short")),
            ..Default::default()
        };
        let err = Auth::load(&short, dir.path()).unwrap_err().to_string();
        assert!(
            err.contains("auth.secret") && !err.contains("short\""),
            "{err}"
        );
        let configured = AuthConfig {
            secret: Some(SecretString::new("x".repeat(40))),
            ..Default::default()
        };
        let c = Auth::load(&configured, dir.path()).unwrap();
        assert_ne!(c.publish_key("live/x"), a.publish_key("live/x"));
        assert!(!format!("{configured:?}").contains("xxxx"));
    }

    #[test]
    fn query_params_are_percent_decoded() {
        let p = query_params("key=a%2Bb&x=1+2");
        assert_eq!(p.get("key").map(String::as_str), Some("a+b"));
        assert_eq!(p.get("x").map(String::as_str), Some("1 2"));
    }
}
