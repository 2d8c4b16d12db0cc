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

use crate::vocab::PublishRefused;
pub use crate::vocab::PublishRequest;

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

/// A secret string from the configuration (never shown by `Debug`).
#[derive(Clone, PartialEq, Eq)]
pub struct SecretString(String);

impl SecretString {
    /// Wrap `s`.
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }

    /// The secret text.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for SecretString {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
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

    fn encode(&self) -> String {
        let mut s = format!("e={}&s={}", self.expires_unix_s, self.scope);
        if let Some(n) = self.not_before_unix_s {
            s.push_str(&format!("&n={n}"));
        }
        if let Some(ip) = self.client_ip {
            s.push_str(&format!("&ip={ip}"));
        }
        s
    }

    fn decode(text: &str) -> Option<Self> {
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

    fn index(self) -> usize {
        Denial::ALL.iter().position(|d| *d == self).unwrap_or(0)
    }
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

/// The publish webhook: `POST {url}` with a JSON body
/// `{"action": "publish"|"unpublish", "stream", "protocol", "client", "params": {…}}`.
/// For `publish`, a 2xx answer within the timeout allows it; anything else refuses it (fail-closed).
/// `unpublish` is a notification: its answer is ignored.
#[derive(Debug)]
pub struct Webhook {
    config: WebhookConfig,
    client: hyper_util::client::legacy::Client<
        hyper_util::client::legacy::connect::HttpConnector,
        http_body_util::Full<bytes::Bytes>,
    >,
}

impl Webhook {
    fn new(config: WebhookConfig) -> Self {
        let client =
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .build_http();
        Self { config, client }
    }

    /// POST `action` for `request`; `Ok(status)` when an answer came in time.
    async fn call(&self, action: &str, request: &PublishRequest) -> Result<u16, String> {
        let body = serde_json::json!({
            "action": action,
            "stream": request.stream,
            "protocol": request.protocol.as_str(),
            "client": request.peer.to_string(),
            "params": request.params,
        })
        .to_string();
        let req = hyper::Request::post(self.config.url.clone())
            .header(hyper::header::CONTENT_TYPE, "application/json")
            .header(hyper::header::USER_AGENT, "estuary")
            .body(http_body_util::Full::new(bytes::Bytes::from(body)))
            .map_err(|e| e.to_string())?;
        match tokio::time::timeout(self.config.timeout, self.client.request(req)).await {
            Err(_) => Err(format!("no answer within {:?}", self.config.timeout)),
            Ok(Err(e)) => Err(e.to_string()),
            Ok(Ok(resp)) => Ok(resp.status().as_u16()),
        }
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
            edge: config
                .trusted_edge
                .as_ref()
                .map(|e| (e.header.clone(), e.secret.expose().as_bytes().to_vec())),
            webhook: config.webhook.clone().map(Webhook::new),
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

    /// The publish key of `stream` (`live/{name}`): the first 16 bytes of HMAC-SHA256 of the stream name
    /// under a key derived from the secret, as 22 base64url characters.
    pub fn publish_key(&self, stream: &str) -> String {
        let mut mac = self.publish_mac.clone();
        mac.update(stream.as_bytes());
        B64.encode(&mac.finalize().into_bytes()[..16])
    }

    /// True when `presented` is `stream`'s publish key (constant time).
    pub fn check_publish_key(&self, stream: &str, presented: &str) -> bool {
        let mut raw = [0u8; 16];
        if !matches!(
            B64.decode_slice(presented.trim_end_matches('='), &mut raw),
            Ok(16)
        ) {
            return false;
        }
        let mut mac = self.publish_mac.clone();
        mac.update(stream.as_bytes());
        mac.verify_truncated_left(&raw).is_ok()
    }

    /// Decide on a publish: by key, by webhook, or open. A refusal is counted; the driver logs it with its
    /// reason (never the key).
    ///
    /// Errors: [`PublishRefused::Unauthorized`] (no key), [`PublishRefused::Forbidden`] (wrong key,
    /// webhook refusal or failure).
    pub async fn authorize_publish(&self, request: &PublishRequest) -> Result<(), PublishRefused> {
        let verdict = match self.publish {
            PublishMode::Open => Ok(()),
            PublishMode::Key => match request.params.get("key") {
                None => Err(PublishRefused::Unauthorized(
                    "no publish key (add ?key=… to the stream key, or key=… to the SRT stream id)",
                )),
                Some(k) if self.check_publish_key(&request.stream, k) => Ok(()),
                Some(_) => Err(PublishRefused::Forbidden("wrong publish key")),
            },
            PublishMode::Webhook => match &self.webhook {
                None => Err(PublishRefused::Forbidden("no webhook configured")),
                Some(hook) => match hook.call("publish", request).await {
                    Ok(status) if (200..300).contains(&status) => Ok(()),
                    Ok(status) => {
                        tracing::warn!(stream = %request.stream, status, "publish webhook denied");
                        Err(PublishRefused::Forbidden("denied by the webhook"))
                    }
                    Err(e) => {
                        tracing::warn!(stream = %request.stream, error = %e, "publish webhook failed: refusing (fail-closed)");
                        Err(PublishRefused::Forbidden("webhook unavailable"))
                    }
                },
            },
        };
        verdict.inspect_err(|why| {
            self.stats.publish_refusals.fetch_add(1, Ordering::Relaxed);
            // The ingest driver logs the refusal (once, with its connection's context).
            tracing::debug!(
                stream = %request.stream,
                protocol = request.protocol.as_str(),
                peer = %request.peer,
                reason = %why,
                "publish refused"
            );
        })
    }

    /// Tell the webhook (if any) that a publish ended; fire and forget, failures logged.
    pub fn notify_unpublish(self: &Arc<Self>, request: PublishRequest) {
        if self.webhook.is_none() {
            return;
        }
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let auth = self.clone();
        handle.spawn(async move {
            if let Some(hook) = &auth.webhook
                && let Err(e) = hook.call("unpublish", &request).await
            {
                tracing::warn!(stream = %request.stream, error = %e, "unpublish webhook failed");
            }
        });
    }
}

/// The current Unix time, seconds.
pub fn unix_now_s() -> u64 {
    u64::try_from(crate::vocab::unix_ms() / 1000).unwrap_or(0)
}

/// IPv4-mapped IPv6 addresses compare as IPv4.
fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

fn read_secret_file(path: &Path) -> Result<Option<Vec<u8>>, AuthError> {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let s = text.lines().next().unwrap_or("").trim();
            if s.len() < MIN_SECRET_BYTES {
                return Err(AuthError::TooShort {
                    origin: path.display().to_string(),
                });
            }
            Ok(Some(s.as_bytes().to_vec()))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(AuthError::Io {
            path: path.to_owned(),
            source,
        }),
    }
}

/// Read `path`, or create it with a fresh random secret (mode 0600; a concurrent creator wins).
fn load_or_create_secret(path: &Path) -> Result<Vec<u8>, AuthError> {
    if let Some(s) = read_secret_file(path)? {
        return Ok(s);
    }
    let io = |source| AuthError::Io {
        path: path.to_owned(),
        source,
    };
    if let Some(dir) = path.parent()
        && !dir.exists()
    {
        // The data directory holds key material: private to the origin's user.
        let mut builder = std::fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        builder.create(dir).map_err(io)?;
    }
    let mut raw = [0u8; 32];
    getrandom::fill(&mut raw).map_err(|e| io(std::io::Error::other(e.to_string())))?;
    let text = B64.encode(raw);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(path) {
        Ok(mut f) => {
            use std::io::Write;
            f.write_all(format!("{text}\n").as_bytes())
                .and_then(|()| f.sync_all())
                .map_err(io)?;
            tracing::info!(path = %path.display(), "generated a new server secret");
            Ok(text.into_bytes())
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            read_secret_file(path)?.ok_or_else(|| io(e))
        }
        Err(e) => Err(io(e)),
    }
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
