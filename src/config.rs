//! Configuration: embedded defaults, an optional TOML file, `ESTUARY_…` environment variables and flags
//! (flag > env > file > default). Unknown keys and impossible values are rejected at start.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use serde::Deserialize;

use crate::{hub::HubConfig, origin::OriginConfig};

/// The TOML file (every key optional).
#[derive(Debug, Default, Deserialize)]
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
}

/// `[server]` keys.
#[derive(Debug, Default, Deserialize)]
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
}

/// `[packager]` keys.
#[derive(Debug, Default, Deserialize)]
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
#[derive(Debug, Default, Deserialize)]
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
    /// TOML configuration file (optional; embedded defaults otherwise).
    #[arg(long, env = "ESTUARY_CONFIG")]
    pub config: Option<PathBuf>,
    /// Segment target, e.g. `2s` [default: 2s].
    #[arg(long, env = "ESTUARY_SEGMENT_TARGET", value_parser = humantime::parse_duration)]
    pub segment_target: Option<Duration>,
    /// Part target, e.g. `500ms` or `200ms` [default: 500ms].
    #[arg(long, env = "ESTUARY_PART_TARGET", value_parser = humantime::parse_duration)]
    pub part_target: Option<Duration>,
    /// Reconnect grace period, e.g. `10s` [default: 10s].
    #[arg(long, env = "ESTUARY_RECONNECT_GRACE", value_parser = humantime::parse_duration)]
    pub reconnect_grace: Option<Duration>,
}

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
        let file = match &args.config {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.clone(),
                    source,
                })?;
                toml::from_str::<FileConfig>(&text).map_err(|e| ConfigError::Parse {
                    path: path.clone(),
                    message: e.to_string(),
                })?
            }
            None => FileConfig::default(),
        };
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
        Ok(Self {
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
        })
    }
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
    }
}
