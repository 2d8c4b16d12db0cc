//! Configuration: embedded defaults, an optional TOML file, `ESTUARY_…` environment variables and flags
//! (flag > env > file > default). Unknown keys and impossible values are rejected at start.

use std::{collections::BTreeMap, net::SocketAddr, path::PathBuf, time::Duration};

use serde::{Deserialize, Serialize};

use crate::{
    hub::HubConfig,
    ingest::srt::{SrtConfig, SrtPassphrase},
    origin::OriginConfig,
};

/// The TOML file (every key optional).
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// `[server]`.
    #[serde(default)]
    pub server: ServerSection,
    /// `[packager]`.
    #[serde(default)]
    pub packager: PackagerSection,
    /// `[streams]`.
    #[serde(default)]
    pub streams: StreamsSection,
    /// `[transcode]`.
    #[serde(default)]
    pub transcode: TranscodeSection,
    /// `[srt]`.
    #[serde(default)]
    pub srt: SrtSection,
    /// `[dash]`.
    #[serde(default)]
    pub dash: DashSection,
    /// `[encryption]`.
    #[serde(default)]
    pub encryption: EncryptionSection,
    /// `[auth]`.
    #[serde(default)]
    pub auth: AuthSection,
    /// `[api]`.
    #[serde(default)]
    pub api: ApiSection,
    /// `[player]`.
    #[serde(default)]
    pub player: PlayerSection,
}

/// `[player]` keys: the origin's player page (`/live/{name}/`).
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PlayerSection {
    /// Serve the player page and its libraries (default `true`).
    pub enabled: Option<bool>,
    /// Directory holding the npm packages `hls.js` and `dashjs` in `node_modules` layout (default
    /// `player/node_modules`, relative to the working directory; `npm ci --prefix player` fills it).
    pub assets_dir: Option<PathBuf>,
}

/// `[api]` keys: the HTTP API (`/api/streams`).
#[derive(Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ApiSection {
    /// Bearer token of the API (at least 16 bytes); absent: derived from the server secret
    /// (`estuary api-token` prints it).
    pub token: Option<String>,
}

impl std::fmt::Debug for ApiSection {
    /// The token is never shown.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiSection")
            .field("has_token", &self.token.is_some())
            .finish()
    }
}

/// `[auth]` keys: who may play and who may publish.
#[derive(Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AuthSection {
    /// `"token"` (default: playback URLs need a signed token, `/t/{token}/live/{name}/…`) or `"open"`
    /// (content keys and the ClearKey license still need one).
    pub playback: Option<String>,
    /// `"key"` (default: each stream's publish key, `estuary publish-key`), `"webhook"` or `"open"`.
    pub publish: Option<String>,
    /// The server secret (at least 32 bytes) signing tokens and deriving publish keys; prefer
    /// `ESTUARY_AUTH_SECRET` or `secret_file`. Absent: `secret_file`, else `{data_dir}/secret`,
    /// generated on first start.
    pub secret: Option<String>,
    /// A file whose first line is the server secret.
    pub secret_file: Option<PathBuf>,
    /// `publish = "webhook"`: `http://host[:port]/path` that receives a JSON POST per publish
    /// (2xx allows) and per unpublish (a notification).
    pub webhook_url: Option<String>,
    /// Longest wait for the webhook's answer (default `2s`); none in time refuses the publish.
    #[serde(default, with = "humantime_serde")]
    pub webhook_timeout: Option<Duration>,
    /// The header a trusted CDN edge presents (default `x-estuary-edge`).
    pub trusted_edge_header: Option<String>,
    /// Its value (at least 16 bytes); absent: no edge is trusted.
    pub trusted_edge_secret: Option<String>,
    /// Lifetime of the tokens `estuary token` prints when `--ttl` is not given (default `6h`).
    #[serde(default, with = "humantime_serde")]
    pub token_ttl: Option<Duration>,
}

impl std::fmt::Debug for AuthSection {
    /// Secrets are never shown.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthSection")
            .field("playback", &self.playback)
            .field("publish", &self.publish)
            .field("has_secret", &self.secret.is_some())
            .field("secret_file", &self.secret_file)
            .field("webhook_url", &self.webhook_url)
            .field("webhook_timeout", &self.webhook_timeout)
            .field("trusted_edge_header", &self.trusted_edge_header)
            .field(
                "has_trusted_edge_secret",
                &self.trusted_edge_secret.is_some(),
            )
            .field("token_ttl", &self.token_ttl)
            .finish()
    }
}

/// `[encryption]` keys: content protection of every stream.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct EncryptionSection {
    /// Encrypt every stream (HLS `METHOD=AES-128` and DASH CENC `cenc` with ClearKey; default false).
    pub enabled: Option<bool>,
    /// A new HLS content key every this many segments (default 10; DASH: one key per stream).
    pub rotate_every_segments: Option<u64>,
    /// Per-stream choice overriding `enabled`: `"live/{name}" = true | false`.
    #[serde(default)]
    pub streams: BTreeMap<String, bool>,
}

/// `[dash]` keys: low-latency DASH signalling (the MPD's `ServiceDescription`).
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DashSection {
    /// Target live latency players aim for (default: four part targets, `2000ms`).
    #[serde(default, with = "humantime_serde")]
    pub target_latency: Option<Duration>,
    /// Slowest catch-up playback rate (default 0.96).
    pub min_playback_rate: Option<f64>,
    /// Fastest catch-up playback rate (default 1.04).
    pub max_playback_rate: Option<f64>,
}

/// `[srt]` keys: SRT ingest (the listen address is `server.srt_listen`).
#[derive(Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SrtSection {
    /// Receiver latency (default `200ms`); the connection uses the larger of this and the publisher's.
    #[serde(default, with = "humantime_serde")]
    pub latency: Option<Duration>,
    /// UDP receive buffer, bytes (default 4 MiB = 4194304).
    pub udp_recv_buffer_bytes: Option<usize>,
    /// Passphrase of every stream without its own (10 to 79 bytes); absent: unencrypted.
    pub passphrase: Option<String>,
    /// Passphrases per stream: `"live/{name}" = "passphrase"`.
    #[serde(default)]
    pub passphrases: BTreeMap<String, String>,
}

impl std::fmt::Debug for SrtSection {
    /// Passphrases are never shown.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SrtSection")
            .field("latency", &self.latency)
            .field("udp_recv_buffer_bytes", &self.udp_recv_buffer_bytes)
            .field("has_passphrase", &self.passphrase.is_some())
            .field(
                "passphrase_streams",
                &self.passphrases.keys().collect::<Vec<_>>(),
            )
            .finish()
    }
}

/// `[transcode]` keys: the ABR ladder.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TranscodeSection {
    /// Transcode published streams into a ladder (default true); false packages every stream as it arrives.
    pub enabled: Option<bool>,
    /// `"auto"` (default: NVENC if it opens, else libx264/libx265), `"nvenc"` (fail at start without it) or
    /// `"software"`.
    pub encoder: Option<String>,
    /// Streams (`live/{name}`) that opt out of the ladder.
    #[serde(default)]
    pub passthrough_streams: Vec<String>,
    /// Frames queued per rung before load is shed (default 64).
    pub queue_frames: Option<usize>,
    /// `"transcode"` (default: AAC-LC at `audio_sample_rate`, `audio_channels`, `audio_bitrate_bps`) or
    /// `"passthrough"` (an AAC source as is).
    pub audio_mode: Option<String>,
    /// AAC bit rate, bit/s (default 128000).
    pub audio_bitrate_bps: Option<u64>,
    /// AAC sample rate, Hz (default 48000).
    pub audio_sample_rate: Option<u32>,
    /// AAC channels (default 2).
    pub audio_channels: Option<u8>,
    /// The rungs (`[[transcode.rungs]]`); absent: a default ladder derived from each source's resolution.
    pub rungs: Option<Vec<RungSection>>,
}

/// One `[[transcode.rungs]]` entry.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RungSection {
    /// Rendition name (its folder in URLs), e.g. `480p`.
    pub name: String,
    /// Picture height in pixels (width follows the source aspect ratio, even); omitted with `copy`.
    pub height: Option<u32>,
    /// `"h264"` (default) or `"hevc"`.
    pub codec: Option<String>,
    /// Pass the source through as this rung (no height, no encoding).
    #[serde(default)]
    pub copy: bool,
    /// Target bit rate, bit/s.
    pub bitrate_bps: Option<u64>,
    /// VBV maximum rate, bit/s (default: the bit rate).
    pub maxrate_bps: Option<u64>,
    /// VBV buffer size, bits (default: 2× the max rate).
    pub bufsize_bits: Option<u64>,
    /// Frame rate cap, frames/s.
    pub max_frame_rate: Option<f64>,
    /// Encoder profile (default `high` for H.264, `main` for HEVC).
    pub profile: Option<String>,
    /// Encoder preset (default `veryfast`).
    pub preset: Option<String>,
    /// Shedding priority: under load the lowest is dropped first (default 0; the copy rung is never shed).
    #[serde(default)]
    pub priority: u32,
}

/// `[server]` keys.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSection {
    /// HTTP listen address (default `0.0.0.0:8080`).
    pub http_listen: Option<SocketAddr>,
    /// RTMP listen address (default `0.0.0.0:1935`).
    pub rtmp_listen: Option<SocketAddr>,
    /// `Access-Control-Allow-Origin` (default `*`).
    pub cors_allow_origin: Option<String>,
    /// Concurrent HTTP connections (default 20000).
    pub http_max_connections: Option<usize>,
    /// Concurrent RTMP connections (default 1000).
    pub rtmp_max_connections: Option<usize>,
    /// SRT listen address, UDP (default `0.0.0.0:9000`).
    pub srt_listen: Option<SocketAddr>,
    /// Concurrent SRT connections, handshakes included (default 1000).
    pub srt_max_connections: Option<usize>,
    /// Directory for state that must survive a restart: content keys (default `estuary-data`, relative
    /// to the working directory). Must be private to the origin: it holds key material.
    pub data_dir: Option<std::path::PathBuf>,
    /// On shutdown, how long responses in flight may take to finish (default `10s`, at most `5m`).
    #[serde(default, with = "humantime_serde")]
    pub shutdown_grace: Option<Duration>,
    /// Time a client has to send a request's headers, and the longest a keep-alive connection stays
    /// idle between requests (default `10s`, 1 s–5 m).
    #[serde(default, with = "humantime_serde")]
    pub http_header_timeout: Option<Duration>,
}

/// `[packager]` keys.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PackagerSection {
    /// Segment target (default `2s`).
    #[serde(default, with = "humantime_serde")]
    pub segment_target: Option<Duration>,
    /// Part target (default `500ms`).
    #[serde(default, with = "humantime_serde")]
    pub part_target: Option<Duration>,
    /// Complete segments per media playlist (default 12).
    pub window_segments: Option<usize>,
    /// Longest target duration allowed while learning the keyframe interval (default `10s`).
    #[serde(default, with = "humantime_serde")]
    pub max_target_duration: Option<Duration>,
}

/// `[streams]` keys.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct StreamsSection {
    /// Reconnect grace period (default `10s`).
    #[serde(default, with = "humantime_serde")]
    pub reconnect_grace: Option<Duration>,
    /// How long an ended stream stays served (default `60s`).
    #[serde(default, with = "humantime_serde")]
    pub ended_linger: Option<Duration>,
    /// Blocked requests per stream (default 20000).
    pub max_waiters_per_stream: Option<usize>,
    /// Streams at once (default 1000).
    pub max_streams: Option<usize>,
}

/// Flags of `estuary serve` (each also from an `ESTUARY_…` variable).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ServeArgs {
    /// HTTP listen address [default: 0.0.0.0:8080].
    #[arg(long, env = "ESTUARY_HTTP_LISTEN")]
    pub http_listen: Option<SocketAddr>,
    /// RTMP listen address [default: 0.0.0.0:1935].
    #[arg(long, env = "ESTUARY_RTMP_LISTEN")]
    pub rtmp_listen: Option<SocketAddr>,
    /// SRT listen address, UDP [default: 0.0.0.0:9000].
    #[arg(long, env = "ESTUARY_SRT_LISTEN")]
    pub srt_listen: Option<SocketAddr>,
    /// SRT passphrase of every stream without its own (10 to 79 bytes); prefer the environment variable,
    /// which process listings do not show [default: none, unencrypted].
    #[arg(long, env = "ESTUARY_SRT_PASSPHRASE", hide_env_values = true)]
    pub srt_passphrase: Option<SrtPassphrase>,
    /// TOML configuration file (optional; embedded defaults otherwise).
    #[arg(long, env = "ESTUARY_CONFIG")]
    pub config: Option<PathBuf>,
    /// Segment target, e.g. `2s` [default: 2s].
    #[arg(long, env = "ESTUARY_SEGMENT_TARGET", value_parser = humantime::parse_duration)]
    pub segment_target: Option<Duration>,
    /// Encrypt every stream (HLS AES-128 and DASH CENC ClearKey) without a config file.
    #[arg(long, env = "ESTUARY_ENCRYPT")]
    pub encrypt: bool,
    /// Part target, e.g. `500ms` or `200ms` [default: 500ms].
    #[arg(long, env = "ESTUARY_PART_TARGET", value_parser = humantime::parse_duration)]
    pub part_target: Option<Duration>,
    /// Reconnect grace period, e.g. `10s` [default: 10s].
    #[arg(long, env = "ESTUARY_RECONNECT_GRACE", value_parser = humantime::parse_duration)]
    pub reconnect_grace: Option<Duration>,
    /// Directory for state that survives restarts (content keys, the generated server secret)
    /// [default: estuary-data].
    #[arg(long, env = "ESTUARY_DATA_DIR")]
    pub data_dir: Option<std::path::PathBuf>,
    /// Playback access: `token` or `open` [default: token].
    #[arg(long, env = "ESTUARY_AUTH_PLAYBACK")]
    pub playback_auth: Option<String>,
    /// Publish access: `key`, `webhook` or `open` [default: key].
    #[arg(long, env = "ESTUARY_AUTH_PUBLISH")]
    pub publish_auth: Option<String>,
    /// The server secret (at least 32 bytes); set it in the environment, which process listings do not
    /// show [default: auth.secret_file, else {data_dir}/secret, generated].
    #[arg(long, env = "ESTUARY_AUTH_SECRET", hide_env_values = true)]
    pub auth_secret: Option<crate::auth::SecretString>,
    /// Bearer token of the HTTP API (at least 16 bytes) [default: api.token, else derived from the
    /// server secret: `estuary api-token`].
    #[arg(long, env = "ESTUARY_API_TOKEN", hide_env_values = true)]
    pub api_token: Option<crate::auth::SecretString>,
}

impl std::str::FromStr for crate::auth::SecretString {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Self::new(s))
    }
}

/// Environment variables `ESTUARY_{SECTION}__{KEY}` override `[section] key` of the file.
pub const ENV_PREFIX: &str = "ESTUARY_";

/// Keys whose environment values are always strings (secrets).
const SECRET_KEYS: &[&str] = &[
    "auth.secret",
    "auth.trusted_edge_secret",
    "srt.passphrase",
    "api.token",
];

/// The sections of the TOML file.
pub const FILE_SECTIONS: &[&str] = &[
    "server",
    "packager",
    "streams",
    "transcode",
    "srt",
    "dash",
    "encryption",
    "auth",
    "api",
    "player",
];

/// `server.data_dir` when none is given: relative to the working directory.
pub const DEFAULT_DATA_DIR: &str = "estuary-data";

/// `player.assets_dir` when none is given: relative to the working directory (the repository's
/// `player/` package after `npm ci`).
pub const DEFAULT_PLAYER_ASSETS_DIR: &str = "player/node_modules";

/// The effective configuration of `estuary serve`.
#[derive(Debug, Clone)]
pub struct Settings {
    /// HTTP listen address.
    pub http_listen: SocketAddr,
    /// RTMP listen address.
    pub rtmp_listen: SocketAddr,
    /// Stream hub settings.
    pub hub: HubConfig,
    /// HTTP settings.
    pub origin: OriginConfig,
    /// RTMP connection limit.
    pub rtmp_max_connections: usize,
    /// SRT listen address (UDP).
    pub srt_listen: SocketAddr,
    /// SRT listener settings (connection limit, latency, buffer, passphrases).
    pub srt: SrtConfig,
    /// The ladder plan, `None` when transcoding is disabled. The encoders are probed when the server starts.
    pub transcode: Option<TranscodePlan>,
    /// Access control (the secret is loaded when the server starts).
    pub auth: crate::auth::AuthConfig,
    /// Lifetime of tokens printed by `estuary token` without `--ttl`.
    pub token_ttl: Duration,
    /// On shutdown, the longest wait for responses in flight.
    pub shutdown_grace: Duration,
}

/// The resolved `[transcode]` settings, before the encoder probe.
#[derive(Debug, Clone)]
pub struct TranscodePlan {
    /// Which encoders to use.
    pub encoder: transcoder::EncoderChoice,
    /// Explicit rungs, or `None` for the default ladder.
    pub rungs: Option<Vec<transcoder::RungConfig>>,
    /// Queue bounds, audio settings, the segment target.
    pub options: transcoder::TranscodeOptions,
    /// Streams that opt out.
    pub passthrough_streams: Vec<String>,
}

/// A configuration that cannot be used; the message names the key.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not valid TOML for our keys (unknown key, wrong type).
    #[error("config file {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's message (names the key and line).
        message: String,
    },
    /// A value out of range.
    #[error("{0}")]
    Invalid(String),
}

impl Settings {
    /// Resolve flags/env over the file over the defaults, and validate.
    pub fn load(args: &ServeArgs) -> Result<Self, ConfigError> {
        Self::load_with_env(args, std::env::vars())
    }

    /// [`Settings::load`] with the environment given: the file's table, then every
    /// `ESTUARY_{SECTION}__{KEY}` variable of `env` over it (a TOML value, e.g. `500ms`, `12`, `true`,
    /// `"quoted"`, `[{ name = "source", copy = true }]`; anything that does not parse as TOML is a
    /// string), then the flags.
    ///
    /// Errors: [`ConfigError`], naming the file or the variable and the key.
    pub fn load_with_env(
        args: &ServeArgs,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let (mut table, origin) = match &args.config {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.clone(),
                    source,
                })?;
                let table =
                    toml::from_str::<toml::Table>(&text).map_err(|e| ConfigError::Parse {
                        path: path.clone(),
                        message: e.to_string(),
                    })?;
                (table, path.clone())
            }
            None => (toml::Table::new(), PathBuf::from("(embedded defaults)")),
        };
        let mut from_env = Vec::new();
        for (name, value) in env {
            let Some((section, key)) = name
                .strip_prefix(ENV_PREFIX)
                .and_then(|rest| rest.split_once("__"))
            else {
                continue;
            };
            let (section, key) = (section.to_ascii_lowercase(), key.to_ascii_lowercase());
            if !FILE_SECTIONS.contains(&section.as_str()) || key.is_empty() || key.contains("__") {
                return Err(ConfigError::Invalid(format!(
                    "{name}: no key {section}.{key} (sections: {})",
                    FILE_SECTIONS.join(", ")
                )));
            }
            // Secrets are taken as they are: never typed, so never echoed in a type error.
            let is_secret = SECRET_KEYS.contains(&format!("{section}.{key}").as_str());
            let value = if is_secret {
                toml::Value::String(value)
            } else {
                toml::from_str::<toml::Table>(&format!("v = {value}"))
                    .ok()
                    .and_then(|mut t| t.remove("v"))
                    .unwrap_or(toml::Value::String(value))
            };
            let slot = table
                .entry(section.clone())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            let toml::Value::Table(section_table) = slot else {
                return Err(ConfigError::Invalid(format!(
                    "{name}: {section} is not a section"
                )));
            };
            section_table.insert(key.clone(), value);
            from_env.push(format!("{name} ({section}.{key})"));
        }
        let file = toml::Value::Table(table)
            .try_into::<FileConfig>()
            .map_err(|e| ConfigError::Parse {
                path: if from_env.is_empty() {
                    origin.clone()
                } else {
                    PathBuf::from(format!("{} with {}", origin.display(), from_env.join(", ")))
                },
                message: e.to_string(),
            })?;
        Self::resolve(args, file)
    }

    /// Resolve from already-parsed parts (for tests).
    pub fn resolve(args: &ServeArgs, file: FileConfig) -> Result<Self, ConfigError> {
        let mut hub = HubConfig::default();
        let p = &mut hub.packager;
        if let Some(v) = args.segment_target.or(file.packager.segment_target) {
            p.segment_target = v;
        }
        if let Some(v) = args.part_target.or(file.packager.part_target) {
            p.part_target = v;
        }
        if let Some(v) = file.packager.window_segments {
            p.window_segments = v;
        }
        if let Some(v) = file.packager.max_target_duration {
            p.max_target_duration = v;
        }
        p.validate()
            .map_err(|e| ConfigError::Invalid(format!("packager.{}: {}", e.key, e.reason)))?;
        hub.data_dir = Some(
            args.data_dir
                .clone()
                .or(file.server.data_dir.clone())
                .unwrap_or_else(|| DEFAULT_DATA_DIR.into()),
        );
        let every = file.encryption.rotate_every_segments.unwrap_or(10);
        if !(1..=100_000).contains(&every) {
            return Err(ConfigError::Invalid(
                "encryption.rotate_every_segments: must be between 1 and 100000".into(),
            ));
        }
        for stream in file.encryption.streams.keys() {
            if !stream
                .strip_prefix("live/")
                .is_some_and(crate::ingest::is_valid_name)
            {
                return Err(ConfigError::Invalid(format!(
                    "encryption.streams: keys are stream names like \"live/demo\", not {stream:?}"
                )));
            }
        }
        hub.encryption = crate::hub::EncryptionPolicy {
            default: args.encrypt || file.encryption.enabled.unwrap_or(false),
            streams: file.encryption.streams.clone(),
            rotate_every: every,
        };
        let d = &mut hub.dash;
        d.target_latency = file.dash.target_latency;
        if let Some(v) = file.dash.min_playback_rate {
            d.min_playback_rate = v;
        }
        if let Some(v) = file.dash.max_playback_rate {
            d.max_playback_rate = v;
        }
        if d.target_latency
            .is_some_and(|t| t < Duration::from_millis(100) || t > Duration::from_secs(60))
        {
            return Err(ConfigError::Invalid(
                "dash.target_latency: must be between 100ms and 60s".into(),
            ));
        }
        if !(0.5..=1.0).contains(&d.min_playback_rate)
            || !(1.0..=2.0).contains(&d.max_playback_rate)
        {
            return Err(ConfigError::Invalid(
                "dash.min_playback_rate / max_playback_rate: must be within 0.5..=1 and 1..=2"
                    .into(),
            ));
        }
        if let Some(v) = args.reconnect_grace.or(file.streams.reconnect_grace) {
            hub.reconnect_grace = v;
        }
        if let Some(v) = file.streams.ended_linger {
            hub.ended_linger = v;
        }
        if let Some(v) = file.streams.max_waiters_per_stream {
            hub.max_waiters_per_stream = v;
        }
        if let Some(v) = file.streams.max_streams {
            hub.max_streams = v;
        }
        if hub.reconnect_grace > Duration::from_secs(600) {
            return Err(ConfigError::Invalid(
                "streams.reconnect_grace: must be at most 10m".into(),
            ));
        }
        if hub.max_streams == 0 || hub.max_waiters_per_stream == 0 {
            return Err(ConfigError::Invalid(
                "streams.max_streams / max_waiters_per_stream: must be at least 1".into(),
            ));
        }
        let mut origin = OriginConfig::default();
        if let Some(v) = file.server.cors_allow_origin {
            if hyper::header::HeaderValue::from_str(&v).is_err() {
                return Err(ConfigError::Invalid(
                    "server.cors_allow_origin: not a valid header value".into(),
                ));
            }
            origin.cors_allow_origin = v;
        }
        if let Some(v) = file.server.http_max_connections {
            origin.max_connections = v.max(1);
        }
        origin.player = crate::player::PlayerConfig {
            enabled: file.player.enabled.unwrap_or(true),
            assets_dir: file
                .player
                .assets_dir
                .unwrap_or_else(|| DEFAULT_PLAYER_ASSETS_DIR.into()),
        };
        if let Some(v) = file.server.http_header_timeout {
            if !(Duration::from_secs(1)..=Duration::from_secs(300)).contains(&v) {
                return Err(ConfigError::Invalid(
                    "server.http_header_timeout: must be between 1s and 5m".into(),
                ));
            }
            origin.header_read_timeout = v;
        }
        let shutdown_grace = file
            .server
            .shutdown_grace
            .unwrap_or(Duration::from_secs(10));
        if shutdown_grace > Duration::from_secs(300) {
            return Err(ConfigError::Invalid(
                "server.shutdown_grace: must be at most 5m".into(),
            ));
        }
        let transcode = resolve_transcode(file.transcode, &hub.packager)?;
        let token_ttl = file.auth.token_ttl.unwrap_or(Duration::from_secs(6 * 3600));
        if token_ttl < Duration::from_secs(1) {
            return Err(ConfigError::Invalid(
                "auth.token_ttl: must be at least 1s".into(),
            ));
        }
        let mut auth = resolve_auth(args, file.auth)?;
        auth.api_token = args
            .api_token
            .clone()
            .or(file.api.token.map(crate::auth::SecretString::new));
        if auth.api_token.as_ref().is_some_and(|t| {
            t.expose().len() < 16 || hyper::header::HeaderValue::from_str(t.expose()).is_err()
        }) {
            return Err(ConfigError::Invalid(
                "api.token: must be at least 16 bytes of visible ASCII".into(),
            ));
        }
        let mut srt = resolve_srt(file.srt, args.srt_passphrase.clone())?;
        srt.max_connections = file.server.srt_max_connections.unwrap_or(1000).max(1);
        Ok(Self {
            transcode,
            http_listen: args
                .http_listen
                .or(file.server.http_listen)
                .unwrap_or(([0, 0, 0, 0], 8080).into()),
            rtmp_listen: args
                .rtmp_listen
                .or(file.server.rtmp_listen)
                .unwrap_or(([0, 0, 0, 0], 1935).into()),
            hub,
            origin,
            rtmp_max_connections: file.server.rtmp_max_connections.unwrap_or(1000).max(1),
            srt_listen: args
                .srt_listen
                .or(file.server.srt_listen)
                .unwrap_or(([0, 0, 0, 0], 9000).into()),
            srt,
            auth,
            token_ttl,
            shutdown_grace,
        })
    }
}

/// What `estuary config` shows for a secret that is set.
pub const REDACTED: &str = "<redacted>";

impl Settings {
    /// The effective configuration as a file: every key with the value in force (defaults, file,
    /// environment and flags applied), secrets shown as [`REDACTED`]. `transcode.rungs` is absent when
    /// each stream gets the default ladder derived from its source.
    pub fn effective(&self) -> FileConfig {
        let hub = &self.hub;
        let p = &hub.packager;
        let redacted = |set: bool| set.then(|| REDACTED.to_owned());
        let transcode = match &self.transcode {
            None => TranscodeSection {
                enabled: Some(false),
                ..Default::default()
            },
            Some(t) => TranscodeSection {
                enabled: Some(true),
                encoder: Some(
                    match t.encoder {
                        transcoder::EncoderChoice::Auto => "auto",
                        transcoder::EncoderChoice::Nvenc => "nvenc",
                        transcoder::EncoderChoice::Software => "software",
                    }
                    .into(),
                ),
                passthrough_streams: t.passthrough_streams.clone(),
                queue_frames: Some(t.options.queue_frames),
                audio_mode: Some(
                    match t.options.audio.mode {
                        transcoder::AudioMode::Transcode => "transcode",
                        transcoder::AudioMode::Passthrough => "passthrough",
                    }
                    .into(),
                ),
                audio_bitrate_bps: Some(t.options.audio.bitrate_bps),
                audio_sample_rate: Some(t.options.audio.sample_rate),
                audio_channels: Some(t.options.audio.channels),
                rungs: t.rungs.as_ref().map(|rungs| {
                    rungs
                        .iter()
                        .map(|r| RungSection {
                            name: r.name.clone(),
                            height: r.height,
                            codec: Some(
                                match r.codec {
                                    transcoder::VideoCodec::H264 => "h264",
                                    transcoder::VideoCodec::Hevc => "hevc",
                                }
                                .into(),
                            ),
                            copy: r.copy,
                            bitrate_bps: Some(r.bitrate_bps),
                            maxrate_bps: Some(r.maxrate_bps),
                            bufsize_bits: Some(r.bufsize_bits),
                            max_frame_rate: r.max_frame_rate,
                            profile: r.profile.clone(),
                            preset: r.preset.clone(),
                            priority: r.priority,
                        })
                        .collect()
                }),
            },
        };
        let a = &self.auth;
        FileConfig {
            server: ServerSection {
                http_listen: Some(self.http_listen),
                rtmp_listen: Some(self.rtmp_listen),
                cors_allow_origin: Some(self.origin.cors_allow_origin.clone()),
                http_max_connections: Some(self.origin.max_connections),
                rtmp_max_connections: Some(self.rtmp_max_connections),
                srt_listen: Some(self.srt_listen),
                srt_max_connections: Some(self.srt.max_connections),
                data_dir: hub.data_dir.clone(),
                shutdown_grace: Some(self.shutdown_grace),
                http_header_timeout: Some(self.origin.header_read_timeout),
            },
            packager: PackagerSection {
                segment_target: Some(p.segment_target),
                part_target: Some(p.part_target),
                window_segments: Some(p.window_segments),
                max_target_duration: Some(p.max_target_duration),
            },
            streams: StreamsSection {
                reconnect_grace: Some(hub.reconnect_grace),
                ended_linger: Some(hub.ended_linger),
                max_waiters_per_stream: Some(hub.max_waiters_per_stream),
                max_streams: Some(hub.max_streams),
            },
            transcode,
            srt: SrtSection {
                latency: Some(self.srt.latency),
                udp_recv_buffer_bytes: Some(self.srt.udp_recv_buffer_bytes),
                passphrase: redacted(self.srt.passphrase.is_some()),
                passphrases: self
                    .srt
                    .stream_passphrases
                    .keys()
                    .map(|k| (k.clone(), REDACTED.to_owned()))
                    .collect(),
            },
            dash: DashSection {
                target_latency: Some(hub.dash.effective_target_latency(p.part_target)),
                min_playback_rate: Some(hub.dash.min_playback_rate),
                max_playback_rate: Some(hub.dash.max_playback_rate),
            },
            encryption: EncryptionSection {
                enabled: Some(hub.encryption.default),
                rotate_every_segments: Some(hub.encryption.rotate_every),
                streams: hub.encryption.streams.clone(),
            },
            auth: AuthSection {
                playback: Some(
                    match a.playback {
                        crate::auth::PlaybackMode::Token => "token",
                        crate::auth::PlaybackMode::Open => "open",
                    }
                    .into(),
                ),
                publish: Some(
                    match a.publish {
                        crate::auth::PublishMode::Key => "key",
                        crate::auth::PublishMode::Webhook => "webhook",
                        crate::auth::PublishMode::Open => "open",
                    }
                    .into(),
                ),
                secret: redacted(a.secret.is_some()),
                secret_file: a.secret_file.clone(),
                webhook_url: a.webhook.as_ref().map(|w| w.url.to_string()),
                webhook_timeout: a.webhook.as_ref().map(|w| w.timeout),
                trusted_edge_header: a.trusted_edge.as_ref().map(|e| e.header.to_string()),
                trusted_edge_secret: redacted(a.trusted_edge.is_some()),
                token_ttl: Some(self.token_ttl),
            },
            api: ApiSection {
                token: redacted(a.api_token.is_some()),
            },
            player: PlayerSection {
                enabled: Some(self.origin.player.enabled),
                assets_dir: Some(self.origin.player.assets_dir.clone()),
            },
        }
    }
}

/// The `[auth]` section under the flags and environment.
fn resolve_auth(
    args: &ServeArgs,
    section: AuthSection,
) -> Result<crate::auth::AuthConfig, ConfigError> {
    use crate::auth::{
        AuthConfig, MIN_SECRET_BYTES, PlaybackMode, PublishMode, SecretString, TrustedEdgeConfig,
        WebhookConfig,
    };
    let invalid = |key: &str, why: &str| ConfigError::Invalid(format!("auth.{key}: {why}"));
    let playback = match args
        .playback_auth
        .as_deref()
        .or(section.playback.as_deref())
        .unwrap_or("token")
    {
        "token" => PlaybackMode::Token,
        "open" => PlaybackMode::Open,
        _ => return Err(invalid("playback", "must be \"token\" or \"open\"")),
    };
    let publish = match args
        .publish_auth
        .as_deref()
        .or(section.publish.as_deref())
        .unwrap_or("key")
    {
        "key" => PublishMode::Key,
        "webhook" => PublishMode::Webhook,
        "open" => PublishMode::Open,
        _ => {
            return Err(invalid(
                "publish",
                "must be \"key\", \"webhook\" or \"open\"",
            ));
        }
    };
    let secret = args
        .auth_secret
        .clone()
        .or(section.secret.map(SecretString::new));
    if secret
        .as_ref()
        .is_some_and(|s| s.expose().trim().len() < MIN_SECRET_BYTES)
    {
        return Err(invalid(
            "secret",
            &format!("must be at least {MIN_SECRET_BYTES} bytes"),
        ));
    }
    let webhook = match section.webhook_url {
        None => None,
        Some(url) => {
            let uri: hyper::Uri = url
                .parse()
                .map_err(|_| invalid("webhook_url", "not a URL"))?;
            if uri.scheme_str() != Some("http") || uri.host().is_none() {
                return Err(invalid(
                    "webhook_url",
                    "must be an http://host[:port]/path URL (plain HTTP, an internal service)",
                ));
            }
            let timeout = section.webhook_timeout.unwrap_or(Duration::from_secs(2));
            if !(Duration::from_millis(100)..=Duration::from_secs(30)).contains(&timeout) {
                return Err(invalid("webhook_timeout", "must be between 100ms and 30s"));
            }
            Some(WebhookConfig { url: uri, timeout })
        }
    };
    if publish == PublishMode::Webhook && webhook.is_none() {
        return Err(invalid(
            "webhook_url",
            "is required with publish = \"webhook\"",
        ));
    }
    let trusted_edge = match section.trusted_edge_secret {
        None => None,
        Some(secret) => {
            if secret.len() < 16 || hyper::header::HeaderValue::from_str(&secret).is_err() {
                return Err(invalid(
                    "trusted_edge_secret",
                    "must be at least 16 bytes of visible ASCII",
                ));
            }
            let header = section
                .trusted_edge_header
                .as_deref()
                .unwrap_or("x-estuary-edge")
                .parse::<hyper::header::HeaderName>()
                .map_err(|_| invalid("trusted_edge_header", "not a header name"))?;
            Some(TrustedEdgeConfig {
                header,
                secret: SecretString::new(secret),
            })
        }
    };
    Ok(AuthConfig {
        playback,
        publish,
        secret,
        secret_file: section.secret_file,
        webhook,
        trusted_edge,
        api_token: None,
    })
}

/// The `[srt]` section over the defaults; `flag_passphrase` (flag or env) beats `srt.passphrase`.
fn resolve_srt(
    section: SrtSection,
    flag_passphrase: Option<SrtPassphrase>,
) -> Result<SrtConfig, ConfigError> {
    let invalid = |key: &str, why: String| ConfigError::Invalid(format!("srt.{key}: {why}"));
    let mut srt = SrtConfig::default();
    if let Some(v) = section.latency {
        if !(Duration::from_millis(20)..=Duration::from_secs(60)).contains(&v) {
            return Err(invalid("latency", "must be between 20ms and 60s".into()));
        }
        srt.latency = v;
    }
    if let Some(v) = section.udp_recv_buffer_bytes {
        if !(64 << 10..=32 << 20).contains(&v) {
            return Err(invalid(
                "udp_recv_buffer_bytes",
                "must be between 65536 (64 KiB) and 33554432 (32 MiB)".into(),
            ));
        }
        srt.udp_recv_buffer_bytes = v;
    }
    srt.passphrase = match (flag_passphrase, section.passphrase) {
        (Some(p), _) => Some(p),
        (None, Some(p)) => {
            Some(SrtPassphrase::new(p).map_err(|e| invalid("passphrase", e.to_string()))?)
        }
        (None, None) => None,
    };
    for (stream, passphrase) in section.passphrases {
        if !stream
            .strip_prefix("live/")
            .is_some_and(crate::ingest::is_valid_name)
        {
            return Err(invalid(
                "passphrases",
                format!("keys are stream names like \"live/demo\", not {stream:?}"),
            ));
        }
        let passphrase = SrtPassphrase::new(passphrase)
            .map_err(|e| invalid(&format!("passphrases.\"{stream}\""), e.to_string()))?;
        srt.stream_passphrases.insert(stream, passphrase);
    }
    Ok(srt)
}

fn resolve_transcode(
    t: TranscodeSection,
    packager: &packager::PackagerConfig,
) -> Result<Option<TranscodePlan>, ConfigError> {
    use transcoder::{
        AudioConfig, AudioMode, EncoderChoice, RungConfig, TranscodeOptions, VideoCodec,
    };
    if !t.enabled.unwrap_or(true) {
        return Ok(None);
    }
    let invalid = |key: &str, why: &str| ConfigError::Invalid(format!("transcode.{key}: {why}"));
    let encoder = match t.encoder.as_deref().unwrap_or("auto") {
        "auto" => EncoderChoice::Auto,
        "nvenc" => EncoderChoice::Nvenc,
        "software" => EncoderChoice::Software,
        _ => {
            return Err(invalid(
                "encoder",
                "must be \"auto\", \"nvenc\" or \"software\"",
            ));
        }
    };
    let mut audio = AudioConfig::default();
    match t.audio_mode.as_deref().unwrap_or("transcode") {
        "transcode" => audio.mode = AudioMode::Transcode,
        "passthrough" => audio.mode = AudioMode::Passthrough,
        _ => {
            return Err(invalid(
                "audio_mode",
                "must be \"transcode\" or \"passthrough\"",
            ));
        }
    }
    if let Some(v) = t.audio_bitrate_bps {
        if !(16_000..=512_000).contains(&v) {
            return Err(invalid(
                "audio_bitrate_bps",
                "must be between 16000 and 512000",
            ));
        }
        audio.bitrate_bps = v;
    }
    if let Some(v) = t.audio_sample_rate {
        if ![32_000, 44_100, 48_000].contains(&v) {
            return Err(invalid(
                "audio_sample_rate",
                "must be 32000, 44100 or 48000",
            ));
        }
        audio.sample_rate = v;
    }
    if let Some(v) = t.audio_channels {
        if !(1..=2).contains(&v) {
            return Err(invalid("audio_channels", "must be 1 or 2"));
        }
        audio.channels = v;
    }
    let queue_frames = t.queue_frames.unwrap_or(64);
    if !(4..=1024).contains(&queue_frames) {
        return Err(invalid("queue_frames", "must be between 4 and 1024"));
    }
    let rungs = match t.rungs {
        None => None,
        Some(list) => {
            if list.is_empty() {
                return Err(invalid(
                    "rungs",
                    "must list at least one rung (or set enabled = false)",
                ));
            }
            let mut out = Vec::new();
            for (i, r) in list.into_iter().enumerate() {
                let key = |k: &str| format!("rungs[{i}].{k}");
                if !crate::ingest::is_valid_name(&r.name) || r.name == "audio" {
                    return Err(invalid(
                        &key("name"),
                        "1-64 of A-Z a-z 0-9 _ - ., not \"audio\"",
                    ));
                }
                if out.iter().any(|o: &RungConfig| o.name == r.name) {
                    return Err(invalid(&key("name"), "duplicate rung name"));
                }
                let codec = match r.codec.as_deref().unwrap_or("h264") {
                    "h264" => VideoCodec::H264,
                    "hevc" => VideoCodec::Hevc,
                    _ => return Err(invalid(&key("codec"), "must be \"h264\" or \"hevc\"")),
                };
                if !r.copy {
                    match r.height {
                        Some(h) if (64..=4320).contains(&h) && h % 2 == 0 => {}
                        _ => {
                            return Err(invalid(
                                &key("height"),
                                "an even number of pixels from 64 to 4320 is required unless copy = true",
                            ));
                        }
                    }
                }
                let bitrate = match (r.copy, r.bitrate_bps) {
                    (true, b) => b.unwrap_or(0),
                    (false, Some(b)) if (50_000..=100_000_000).contains(&b) => b,
                    (false, _) => {
                        return Err(invalid(
                            &key("bitrate_bps"),
                            "between 50000 and 100000000 is required",
                        ));
                    }
                };
                let maxrate = r.maxrate_bps.unwrap_or(bitrate);
                if maxrate < bitrate {
                    return Err(invalid(
                        &key("maxrate_bps"),
                        "must be at least the bit rate",
                    ));
                }
                if r.max_frame_rate
                    .is_some_and(|f| !(1.0..=240.0).contains(&f))
                {
                    return Err(invalid(&key("max_frame_rate"), "must be between 1 and 240"));
                }
                out.push(RungConfig {
                    name: r.name,
                    height: if r.copy { None } else { r.height },
                    codec,
                    copy: r.copy,
                    bitrate_bps: bitrate,
                    maxrate_bps: maxrate,
                    bufsize_bits: r.bufsize_bits.unwrap_or(maxrate * 2),
                    max_frame_rate: r.max_frame_rate,
                    profile: r.profile,
                    preset: r.preset,
                    priority: r.priority,
                });
            }
            Some(out)
        }
    };
    for s in &t.passthrough_streams {
        if !s
            .strip_prefix("live/")
            .is_some_and(crate::ingest::is_valid_name)
        {
            return Err(invalid(
                "passthrough_streams",
                "entries are stream names like \"live/demo\"",
            ));
        }
    }
    Ok(Some(TranscodePlan {
        encoder,
        rungs,
        options: TranscodeOptions {
            segment_target: packager.segment_target,
            queue_frames,
            audio,
            ..TranscodeOptions::default()
        },
        passthrough_streams: t.passthrough_streams,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flag_beats_file_beats_default() {
        let file: FileConfig = toml::from_str(
            "[server]\nhttp_listen = \"127.0.0.1:9999\"\nrtmp_listen = \"127.0.0.1:2000\"\n[packager]\npart_target = \"200ms\"\n",
        )
        .unwrap();
        let args = ServeArgs {
            http_listen: Some("127.0.0.1:1111".parse().unwrap()),
            ..Default::default()
        };
        let s = Settings::resolve(&args, file).unwrap();
        assert_eq!(s.http_listen, "127.0.0.1:1111".parse().unwrap());
        assert_eq!(s.rtmp_listen, "127.0.0.1:2000".parse().unwrap());
        assert_eq!(s.hub.packager.part_target, Duration::from_millis(200));
        assert_eq!(s.hub.packager.segment_target, Duration::from_secs(2));
    }

    #[test]
    fn srt_settings_resolve_with_defaults_flags_and_validation() {
        let s = Settings::resolve(&ServeArgs::default(), FileConfig::default()).unwrap();
        assert_eq!(s.srt_listen, "0.0.0.0:9000".parse().unwrap());
        assert_eq!(s.srt.latency, Duration::from_millis(200));
        assert_eq!(s.srt.udp_recv_buffer_bytes, 4 << 20);
        assert_eq!(s.srt.max_connections, 1000);
        assert!(s.srt.passphrase.is_none());

        let file: FileConfig = toml::from_str(
            "[server]\nsrt_listen = \"127.0.0.1:9999\"\nsrt_max_connections = 5\n\
             [srt]\nlatency = \"500ms\"\nudp_recv_buffer_bytes = 1048576\npassphrase = \"file passphrase\"\n\
             [srt.passphrases]\n\"live/cam\" = \"camera passphrase\"\n",
        )
        .unwrap();
        assert!(!format!("{:?}", file.srt).contains("file passphrase"));
        assert!(!format!("{:?}", file.srt).contains("camera passphrase"));
        let args = ServeArgs {
            srt_listen: Some("127.0.0.1:7000".parse().unwrap()),
            srt_passphrase: Some(SrtPassphrase::new("flag passphrase").unwrap()),
            ..Default::default()
        };
        let s = Settings::resolve(&args, file).unwrap();
        assert_eq!(s.srt_listen, "127.0.0.1:7000".parse().unwrap());
        assert_eq!(s.srt.max_connections, 5);
        assert_eq!(s.srt.latency, Duration::from_millis(500));
        assert_eq!(s.srt.udp_recv_buffer_bytes, 1 << 20);
        assert_eq!(
            s.srt.passphrase_for("live/other"),
            Some(&SrtPassphrase::new("flag passphrase").unwrap())
        );
        assert_eq!(
            s.srt.passphrase_for("live/cam"),
            Some(&SrtPassphrase::new("camera passphrase").unwrap())
        );
        assert!(!format!("{s:?}").contains("flag passphrase"));
        assert!(!format!("{args:?}").contains("flag passphrase"));

        for (toml_text, key) in [
            ("[srt]\npassphrase = \"short\"\n", "srt.passphrase"),
            ("[srt]\nlatency = \"5ms\"\n", "srt.latency"),
            (
                "[srt]\nudp_recv_buffer_bytes = 1000\n",
                "srt.udp_recv_buffer_bytes",
            ),
            (
                "[srt.passphrases]\n\"cam\" = \"long enough passphrase\"\n",
                "srt.passphrases",
            ),
            (
                "[srt.passphrases]\n\"live/cam\" = \"short\"\n",
                "srt.passphrases.\"live/cam\"",
            ),
        ] {
            let file: FileConfig = toml::from_str(toml_text).unwrap();
            let err = Settings::resolve(&ServeArgs::default(), file)
                .unwrap_err()
                .to_string();
            assert!(err.contains(key), "{toml_text}: {err}");
            assert!(!err.contains("short\""), "the secret is not echoed: {err}");
        }
        let err = toml::from_str::<FileConfig>("[srt]\nlatncy = \"1s\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("latncy"), "{err}");
    }

    #[test]
    fn encryption_is_chosen_per_stream_over_the_server_default_and_the_flag() {
        let file = || -> FileConfig {
            toml::from_str(
                "[encryption]\nrotate_every_segments = 3\n\
                 [encryption.streams]\n\"live/secret\" = true\n\"live/open\" = false\n",
            )
            .unwrap()
        };
        let s = Settings::resolve(&ServeArgs::default(), file()).unwrap();
        let p = &s.hub.encryption;
        assert!(p.encrypts("live/secret") && !p.encrypts("live/open") && !p.encrypts("live/x"));
        assert_eq!(p.rotate_every, 3);
        // --encrypt turns the default on; a stream's own `false` still wins.
        let args = ServeArgs {
            encrypt: true,
            ..Default::default()
        };
        let p = Settings::resolve(&args, file()).unwrap().hub.encryption;
        assert!(p.encrypts("live/x") && p.encrypts("live/secret") && !p.encrypts("live/open"));
        for (toml_text, key) in [
            (
                "[encryption.streams]\n\"secret\" = true\n",
                "encryption.streams",
            ),
            (
                "[encryption]\nrotate_every_segments = 0\n",
                "encryption.rotate_every_segments",
            ),
        ] {
            let file: FileConfig = toml::from_str(toml_text).unwrap();
            let err = Settings::resolve(&ServeArgs::default(), file)
                .unwrap_err()
                .to_string();
            assert!(err.contains(key), "{toml_text}: {err}");
        }
    }

    #[test]
    fn auth_defaults_are_secure_and_bad_values_are_rejected_with_the_key() {
        use crate::auth::{PlaybackMode, PublishMode};
        let s = Settings::resolve(&ServeArgs::default(), FileConfig::default()).unwrap();
        assert_eq!(s.auth.playback, PlaybackMode::Token);
        assert_eq!(s.auth.publish, PublishMode::Key);
        assert!(s.auth.secret.is_none() && s.auth.trusted_edge.is_none());
        assert_eq!(s.token_ttl, Duration::from_secs(6 * 3600));
        let file: FileConfig = toml::from_str(
            "[auth]\nplayback = \"open\"\npublish = \"webhook\"\nwebhook_url = \"http://127.0.0.1:9/hook\"\n\
             webhook_timeout = \"750ms\"\nsecret = \"a file secret that is long enough, 32+\"\n\
             trusted_edge_secret = \"edge secret 0123456789\"\ntrusted_edge_header = \"X-CDN-Auth\"\n\
             token_ttl = \"30m\"\n",
        )
        .unwrap();
        assert!(!format!("{:?}", file.auth).contains("long enough"));
        // Flags (and their environment variables) beat the file.
        let args = ServeArgs {
            playback_auth: Some("token".into()),
            auth_secret: Some(crate::auth::SecretString::new(
                "a flag secret that is long enough, 32+",
            )),
            ..Default::default()
        };
        let s = Settings::resolve(&args, file).unwrap();
        assert_eq!(s.auth.playback, PlaybackMode::Token);
        assert_eq!(s.auth.publish, PublishMode::Webhook);
        assert_eq!(
            s.auth.secret.as_ref().map(|s| s.expose()),
            Some("a flag secret that is long enough, 32+")
        );
        let hook = s.auth.webhook.as_ref().unwrap();
        assert_eq!(hook.timeout, Duration::from_millis(750));
        assert_eq!(
            s.auth.trusted_edge.as_ref().unwrap().header.as_str(),
            "x-cdn-auth"
        );
        assert_eq!(s.token_ttl, Duration::from_secs(1800));
        assert!(!format!("{s:?}").contains("long enough"));
        assert!(!format!("{s:?}").contains("edge secret 0123"));
        for (toml_text, key) in [
            ("[auth]\nplayback = \"none\"\n", "auth.playback"),
            ("[auth]\npublish = \"password\"\n", "auth.publish"),
            ("[auth]\npublish = \"webhook\"\n", "auth.webhook_url"),
            (
                "[auth]\nwebhook_url = \"https://hooks.example/x\"\n",
                "auth.webhook_url",
            ),
            ("[auth]\nwebhook_url = \"not a url\"\n", "auth.webhook_url"),
            (
                "[auth]\nwebhook_url = \"http://h/x\"\nwebhook_timeout = \"1m\"\n",
                "auth.webhook_timeout",
            ),
            ("[auth]\nsecret = \"short\"\n", "auth.secret"),
            (
                "[auth]\ntrusted_edge_secret = \"short\"\n",
                "auth.trusted_edge_secret",
            ),
            (
                "[auth]\ntrusted_edge_secret = \"long enough edge secret\"\ntrusted_edge_header = \"bad header\"\n",
                "auth.trusted_edge_header",
            ),
            ("[auth]\ntoken_ttl = \"0s\"\n", "auth.token_ttl"),
        ] {
            let file: FileConfig = toml::from_str(toml_text).unwrap();
            let err = Settings::resolve(&ServeArgs::default(), file)
                .unwrap_err()
                .to_string();
            assert!(err.contains(key), "{toml_text}: {err}");
            assert!(!err.contains("short\""), "a secret is not echoed: {err}");
        }
        let err = toml::from_str::<FileConfig>("[auth]\nplayback_mode = \"open\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("playback_mode"), "{err}");
    }

    #[test]
    fn environment_overrides_every_file_key_and_flags_override_the_environment() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("estuary.toml");
        std::fs::write(
            &path,
            "[packager]\npart_target = \"400ms\"\nwindow_segments = 8\n[server]\ncors_allow_origin = \"https://a.example\"\n",
        )
        .unwrap();
        let env = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let args = ServeArgs {
            config: Some(path.clone()),
            ..Default::default()
        };
        // File only.
        let s = Settings::load_with_env(&args, env(&[])).unwrap();
        assert_eq!(s.hub.packager.part_target, Duration::from_millis(400));
        assert_eq!(s.hub.packager.window_segments, 8);
        // The environment beats the file, for any key, typed as TOML.
        let s = Settings::load_with_env(
            &args,
            env(&[
                ("ESTUARY_PACKAGER__PART_TARGET", "250ms"),
                ("ESTUARY_PACKAGER__WINDOW_SEGMENTS", "10"),
                ("ESTUARY_SERVER__CORS_ALLOW_ORIGIN", "https://b.example"),
                ("ESTUARY_TRANSCODE__ENABLED", "false"),
                ("ESTUARY_ENCRYPTION__STREAMS", "{ \"live/x\" = true }"),
                ("ESTUARY_AUTH__PLAYBACK", "open"),
                (
                    "ESTUARY_AUTH__SECRET",
                    "12345678901234567890123456789012345",
                ),
                ("UNRELATED", "1"),
                ("ESTUARY_HTTP_LISTEN", "ignored here: a flag's variable"),
            ]),
        )
        .unwrap();
        assert_eq!(s.hub.packager.part_target, Duration::from_millis(250));
        assert_eq!(s.hub.packager.window_segments, 10);
        assert_eq!(s.origin.cors_allow_origin, "https://b.example");
        assert!(s.transcode.is_none());
        assert!(s.hub.encryption.encrypts("live/x") && !s.hub.encryption.encrypts("live/y"));
        assert_eq!(s.auth.playback, crate::auth::PlaybackMode::Open);
        assert_eq!(
            s.auth.secret.as_ref().map(|s| s.expose()),
            Some("12345678901234567890123456789012345"),
            "a secret of digits stays a string"
        );
        // A flag beats the environment.
        let flagged = ServeArgs {
            part_target: Some(Duration::from_millis(200)),
            ..args.clone()
        };
        let s =
            Settings::load_with_env(&flagged, env(&[("ESTUARY_PACKAGER__PART_TARGET", "250ms")]))
                .unwrap();
        assert_eq!(s.hub.packager.part_target, Duration::from_millis(200));
        // Rejections name the variable and the key.
        for (pairs, needle) in [
            (
                &[("ESTUARY_PACKAGR__PART_TARGET", "1s")][..],
                "ESTUARY_PACKAGR__PART_TARGET",
            ),
            (&[("ESTUARY_PACKAGER__PART_TARGT", "1s")][..], "part_targt"),
            (
                &[("ESTUARY_PACKAGER__WINDOW_SEGMENTS", "many")][..],
                "ESTUARY_PACKAGER__WINDOW_SEGMENTS",
            ),
            (
                &[("ESTUARY_PACKAGER__PART_TARGET", "5s")][..],
                "packager.part_target",
            ),
        ] {
            let err = Settings::load_with_env(&args, env(pairs))
                .unwrap_err()
                .to_string();
            assert!(err.contains(needle), "{pairs:?}: {err}");
        }
    }

    #[test]
    fn the_effective_configuration_round_trips_and_hides_secrets() {
        let file: FileConfig = toml::from_str(
            "[packager]\npart_target = \"300ms\"\n[transcode]\nencoder = \"software\"\n\
             [[transcode.rungs]]\nname = \"source\"\ncopy = true\n\
             [[transcode.rungs]]\nname = \"480p\"\nheight = 480\nbitrate_bps = 1200000\npriority = 2\n\
             [srt.passphrases]\n\"live/cam\" = \"camera passphrase\"\n\
             [encryption.streams]\n\"live/x\" = true\n[dash]\nmin_playback_rate = 0.9\n",
        )
        .unwrap();
        let args = ServeArgs {
            http_listen: Some("127.0.0.1:1234".parse().unwrap()),
            auth_secret: Some(crate::auth::SecretString::new(
                "a secret that is long enough, 32 bytes",
            )),
            ..Default::default()
        };
        let s = Settings::resolve(&args, file).unwrap();
        let text = toml::to_string_pretty(&s.effective()).unwrap();
        assert!(
            !text.contains("camera passphrase") && !text.contains("long enough"),
            "{text}"
        );
        assert!(text.contains("secret = \"<redacted>\""), "{text}");
        assert!(text.contains("\"live/cam\" = \"<redacted>\""), "{text}");
        // Without its secrets, the printed configuration resolves to the same settings.
        let again: FileConfig = toml::from_str(
            &text
                .lines()
                .filter(|l| !l.contains(REDACTED))
                .collect::<Vec<_>>()
                .join("\n"),
        )
        .unwrap();
        let s2 = Settings::resolve(&ServeArgs::default(), again).unwrap();
        assert_eq!(s2.http_listen, s.http_listen);
        assert_eq!(s2.hub.packager, s.hub.packager);
        assert_eq!(s2.hub.encryption, s.hub.encryption);
        assert_eq!(s2.hub.dash.min_playback_rate, 0.9);
        assert_eq!(
            s2.hub.dash.target_latency,
            Some(Duration::from_millis(1200))
        );
        let (r1, r2) = (s.transcode.unwrap(), s2.transcode.unwrap());
        assert_eq!(r1.rungs, r2.rungs);
        assert_eq!(r1.options.audio, r2.options.audio);
    }

    /// Every value `Settings::resolve` refuses, one row each: the message names the key.
    #[test]
    fn every_rejection_names_its_key() {
        let rung = |extra: &str| {
            format!(
                "[transcode]\n[[transcode.rungs]]\nname = \"r\"\nheight = 240\nbitrate_bps = 300000\n{extra}"
            )
        };
        let rows: Vec<(String, &str)> = vec![
            ("[packager]\nsegment_target = \"500ms\"".into(), "packager.segment_target"),
            ("[packager]\npart_target = \"50ms\"".into(), "packager.part_target"),
            ("[packager]\nwindow_segments = 2".into(), "packager.window_segments"),
            ("[packager]\nmax_target_duration = \"1s\"".into(), "packager.max_target_duration"),
            ("[encryption]\nrotate_every_segments = 0".into(), "encryption.rotate_every_segments"),
            ("[encryption]\nstreams = { \"demo\" = true }".into(), "encryption.streams"),
            ("[dash]\ntarget_latency = \"50ms\"".into(), "dash.target_latency"),
            ("[dash]\nmin_playback_rate = 0.2".into(), "dash.min_playback_rate"),
            ("[dash]\nmax_playback_rate = 3.0".into(), "max_playback_rate"),
            ("[streams]\nreconnect_grace = \"11m\"".into(), "streams.reconnect_grace"),
            ("[streams]\nmax_streams = 0".into(), "streams.max_streams"),
            ("[streams]\nmax_waiters_per_stream = 0".into(), "max_waiters_per_stream"),
            ("[server]\ncors_allow_origin = \"a\\nb\"".into(), "server.cors_allow_origin"),
            ("[server]\nshutdown_grace = \"6m\"".into(), "server.shutdown_grace"),
            ("[server]\nhttp_header_timeout = \"0s\"".into(), "server.http_header_timeout"),
            ("[auth]\ntoken_ttl = \"0s\"".into(), "auth.token_ttl"),
            ("[auth]\nplayback = \"maybe\"".into(), "auth.playback"),
            ("[auth]\npublish = \"anyone\"".into(), "auth.publish"),
            ("[auth]\nsecret = \"short\"".into(), "auth.secret"),
            ("[auth]\nwebhook_url = \"not a url\"".into(), "auth.webhook_url"),
            ("[auth]\nwebhook_url = \"https://example.com/x\"".into(), "auth.webhook_url"),
            ("[auth]\nwebhook_url = \"http://127.0.0.1/x\"\nwebhook_timeout = \"50ms\"".into(), "auth.webhook_timeout"),
            ("[auth]\npublish = \"webhook\"".into(), "auth.webhook_url"),
            ("[auth]\ntrusted_edge_secret = \"short\"".into(), "auth.trusted_edge_secret"),
            ("[auth]\ntrusted_edge_secret = \"0123456789abcdef0\"\ntrusted_edge_header = \"bad header\"".into(), "auth.trusted_edge_header"),
            ("[api]\ntoken = \"short\"".into(), "api.token"),
            ("[srt]\nlatency = \"10ms\"".into(), "srt.latency"),
            ("[srt]\nudp_recv_buffer_bytes = 1024".into(), "srt.udp_recv_buffer_bytes"),
            ("[srt]\npassphrase = \"short\"".into(), "srt.passphrase"),
            ("[srt.passphrases]\n\"demo\" = \"long enough passphrase\"".into(), "srt.passphrases"),
            ("[srt.passphrases]\n\"live/x\" = \"short\"".into(), "srt.passphrases.\"live/x\""),
            ("[transcode]\nencoder = \"gpu\"".into(), "transcode.encoder"),
            ("[transcode]\naudio_mode = \"copy\"".into(), "transcode.audio_mode"),
            ("[transcode]\naudio_bitrate_bps = 1000".into(), "transcode.audio_bitrate_bps"),
            ("[transcode]\naudio_sample_rate = 22050".into(), "transcode.audio_sample_rate"),
            ("[transcode]\naudio_channels = 6".into(), "transcode.audio_channels"),
            ("[transcode]\nqueue_frames = 2".into(), "transcode.queue_frames"),
            ("[transcode]\nrungs = []".into(), "transcode.rungs"),
            ("[transcode]\npassthrough_streams = [\"demo\"]".into(), "transcode.passthrough_streams"),
            (rung("").replace("name = \"r\"", "name = \"audio\""), "transcode.rungs[0].name"),
            (format!("{}\n[[transcode.rungs]]\nname = \"r\"\ncopy = true", rung("")), "transcode.rungs[1].name"),
            (rung("codec = \"av1\""), "transcode.rungs[0].codec"),
            (rung("").replace("height = 240", "height = 241"), "transcode.rungs[0].height"),
            (rung("").replace("bitrate_bps = 300000", "bitrate_bps = 10"), "transcode.rungs[0].bitrate_bps"),
            (rung("maxrate_bps = 100000"), "transcode.rungs[0].maxrate_bps"),
            (rung("max_frame_rate = 500.0"), "transcode.rungs[0].max_frame_rate"),
        ];
        for (text, key) in rows {
            let file: FileConfig = toml::from_str(&text).unwrap_or_else(|e| panic!("{text}: {e}"));
            let err = match Settings::resolve(&ServeArgs::default(), file) {
                Ok(_) => panic!("accepted: {text}"),
                Err(e) => e.to_string(),
            };
            assert!(
                err.starts_with(key)
                    || err.contains(&format!("{key}:"))
                    || err.contains(&format!("{key} ")),
                "{text}: {err} (want {key})"
            );
        }
    }

    #[test]
    fn unknown_keys_and_bad_values_are_rejected_with_the_key() {
        let err = toml::from_str::<FileConfig>("[packager]\nsegment_targte = \"2s\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("segment_targte"), "{err}");
        let file: FileConfig = toml::from_str("[packager]\npart_target = \"5s\"\n").unwrap();
        let err = Settings::resolve(&ServeArgs::default(), file)
            .unwrap_err()
            .to_string();
        assert!(err.contains("packager.part_target"), "{err}");
        let file: FileConfig = toml::from_str("[server]\nshutdown_grace = \"6m\"\n").unwrap();
        let err = Settings::resolve(&ServeArgs::default(), file)
            .unwrap_err()
            .to_string();
        assert!(err.contains("server.shutdown_grace"), "{err}");
        let err = toml::from_str::<FileConfig>("[player]\nassets = \"x\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("assets"), "{err}");
        let file: FileConfig =
            toml::from_str("[player]\nenabled = false\nassets_dir = \"/srv/player\"\n").unwrap();
        let settings = Settings::resolve(&ServeArgs::default(), file).unwrap();
        assert!(!settings.origin.player.enabled);
        assert_eq!(
            settings.origin.player.assets_dir,
            std::path::PathBuf::from("/srv/player")
        );
        assert_eq!(settings.shutdown_grace, Duration::from_secs(10));
    }
}
