//! Configuration: embedded defaults, an optional TOML file, `ESTUARY_…` environment variables and flags
//! (flag > env > file > default). Unknown keys and impossible values are rejected at start.

mod effective;
mod file;
mod resolve;
#[cfg(test)]
mod tests;

pub use effective::REDACTED;
pub use file::*;
use resolve::*;

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use crate::{http::OriginConfig, hub::HubConfig, ingest::srt::SrtConfig};

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
    "cluster",
    "webrtc",
    "recording",
    "dvr",
];

/// `server.data_dir` when none is given: relative to the working directory.
pub const DEFAULT_DATA_DIR: &str = "estuary-data";

pub use crate::player::DEFAULT_PLAYER_ASSETS_DIR;

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
    /// `[cluster]`, when this node joins one.
    pub cluster: Option<crate::cluster::ClusterConfig>,
    /// `[webrtc]`, when WHEP is served.
    pub webrtc: Option<crate::webrtc::WebRtcConfig>,
    /// `[recording]`: which streams are recorded, retention, the completion webhook.
    pub recording: crate::recording::RecordingConfig,
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
            if stream.parse::<media::name::StreamName>().is_err() {
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
        if let Some(v) = file.server.http_sendfile_cache_mb {
            origin.sendfile_cache_bytes = v.saturating_mul(1 << 20);
        }
        origin.sendfile_dir = file.server.http_sendfile_dir;
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
        let cluster = resolve_cluster(file.cluster)?;
        let webrtc = file.webrtc.enabled.unwrap_or(false).then(|| {
            let udp_listen = file
                .webrtc
                .udp_listen
                .unwrap_or(([0, 0, 0, 0], 8189).into());
            crate::webrtc::WebRtcConfig {
                udp_listen,
                tcp_listen: file
                    .webrtc
                    .tcp
                    .unwrap_or(true)
                    .then(|| file.webrtc.tcp_listen.unwrap_or(udp_listen)),
                public_addrs: file.webrtc.public_addrs.clone().unwrap_or_default(),
                max_sessions: file.webrtc.max_sessions.unwrap_or(500).max(1),
                max_sessions_per_stream: file.webrtc.max_sessions_per_stream.unwrap_or(200).max(1),
            }
        });
        auth.cluster_hop = cluster.is_some();
        let recording = resolve_recording(args, &file.recording)?;
        hub.dvr = resolve_dvr(&file.dvr)?;
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
            cluster,
            webrtc,
            recording,
        })
    }
}

/// `[dvr]`: windows parsed and bounded, stream names checked.
fn resolve_dvr(section: &file::DvrSection) -> Result<crate::hub::DvrPolicy, ConfigError> {
    const MAX: Duration = Duration::from_secs(24 * 3600);
    let check = |key: &str, w: Duration| {
        if w > MAX || (!w.is_zero() && w < Duration::from_secs(30)) {
            return Err(ConfigError::Invalid(format!(
                "{key}: a DVR window is 30s to 24h (or 0s: off)"
            )));
        }
        Ok((!w.is_zero()).then_some(w))
    };
    let mut streams = std::collections::BTreeMap::new();
    for (stream, text) in &section.streams {
        if stream.parse::<media::name::StreamName>().is_err() {
            return Err(ConfigError::Invalid(format!(
                "dvr.streams: keys are stream names like \"live/demo\", not {stream:?}"
            )));
        }
        let w = humantime::parse_duration(text)
            .map_err(|e| ConfigError::Invalid(format!("dvr.streams.\"{stream}\": {e}")))?;
        streams.insert(stream.clone(), check("dvr.streams", w)?);
    }
    Ok(crate::hub::DvrPolicy {
        window: match section.window {
            Some(w) => check("dvr.window", w)?,
            None => None,
        },
        streams,
    })
}

/// `[recording]` (and `--record`): stream names checked, the webhook URL parsed.
fn resolve_recording(
    args: &ServeArgs,
    section: &file::RecordingSection,
) -> Result<crate::recording::RecordingConfig, ConfigError> {
    for stream in section.streams.keys() {
        if stream.parse::<media::name::StreamName>().is_err() {
            return Err(ConfigError::Invalid(format!(
                "recording.streams: keys are stream names like \"live/demo\", not {stream:?}"
            )));
        }
    }
    let webhook_url = match &section.webhook_url {
        None => None,
        Some(url) => {
            let uri: hyper::Uri = url.parse().map_err(|_| {
                ConfigError::Invalid(format!("recording.webhook_url: not a URL: {url:?}"))
            })?;
            if uri.scheme_str() != Some("http") || uri.host().is_none() {
                return Err(ConfigError::Invalid(
                    "recording.webhook_url: must be an http:// URL".into(),
                ));
            }
            Some(uri)
        }
    };
    if section.max_bytes == Some(0) {
        return Err(ConfigError::Invalid(
            "recording.max_bytes: must be at least 1".into(),
        ));
    }
    Ok(crate::recording::RecordingConfig {
        enabled: args.record || section.enabled.unwrap_or(false),
        streams: section.streams.clone(),
        max_age: section.max_age,
        max_bytes: section.max_bytes,
        webhook_url,
    })
}
