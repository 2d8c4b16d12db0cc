//! The TOML file's sections and the flags of `estuary serve`: what a user writes.

use std::{collections::BTreeMap, net::SocketAddr, path::PathBuf, time::Duration};

use serde::{Deserialize, Serialize};

use crate::ingest::srt::SrtPassphrase;

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
    /// `[cluster]`.
    #[serde(default)]
    pub cluster: ClusterSection,
    /// `[webrtc]`.
    #[serde(default)]
    pub webrtc: WebRtcSection,
    /// `[recording]`.
    #[serde(default)]
    pub recording: RecordingSection,
    /// `[dvr]`.
    #[serde(default)]
    pub dvr: DvrSection,
}

/// `[dvr]` keys: a rewind window on live streams, off by default.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DvrSection {
    /// How far back viewers can seek in every stream, e.g. `2h` (default: off; at most `24h`).
    #[serde(default, with = "humantime_serde")]
    pub window: Option<Duration>,
    /// Per-stream window overriding `window`: `"live/{name}" = "30m"` (`"0s"`: off).
    #[serde(default)]
    pub streams: BTreeMap<String, String>,
}

/// `[recording]` keys: live streams written to `{data_dir}/recordings/` and replayed as VOD.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RecordingSection {
    /// Record every stream (default false).
    pub enabled: Option<bool>,
    /// Per-stream choice overriding `enabled`: `"live/{name}" = true | false`.
    #[serde(default)]
    pub streams: BTreeMap<String, bool>,
    /// Delete recordings that ended longer ago than this, e.g. `7days` (default: kept).
    #[serde(default, with = "humantime_serde")]
    pub max_age: Option<Duration>,
    /// Delete the oldest recordings while all of them take more than this many bytes (default:
    /// no limit).
    pub max_bytes: Option<u64>,
    /// `POST` each completed recording's facts (JSON) to this `http://` URL, e.g. for an uploader.
    pub webhook_url: Option<String>,
}

/// `[webrtc]` keys: WebRTC viewers (WHEP) and publishers (WHIP), off by default.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct WebRtcSection {
    /// Serve WHEP (default `false`).
    pub enabled: Option<bool>,
    /// The UDP port of every session (default `0.0.0.0:8189`).
    pub udp_listen: Option<std::net::SocketAddr>,
    /// Addresses announced as ICE candidates (default: the bound address).
    pub public_addrs: Option<Vec<std::net::SocketAddr>>,
    /// ICE over TCP (RFC 6544, passive candidates) as a fallback for networks that block UDP
    /// (default `true`).
    pub tcp: Option<bool>,
    /// The TCP port of every ICE-TCP session (default: `udp_listen`'s address and port).
    pub tcp_listen: Option<std::net::SocketAddr>,
    /// Sessions in all (default 500).
    pub max_sessions: Option<usize>,
    /// Sessions per stream (default 200).
    pub max_sessions_per_stream: Option<usize>,
}

/// `[cluster]` keys: many origins as one service, on a shared Redis store (off by default).
#[derive(Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterSection {
    /// Join a cluster (default `false`).
    pub enabled: Option<bool>,
    /// The store: `redis://[user:password@]host:port[/db]` or `rediss://…` (required when enabled).
    pub redis_url: Option<String>,
    /// This node's name (default: the host name).
    pub node_id: Option<String>,
    /// How other origins and clients reach this node's HTTP origin (`http://host:port`).
    pub advertise_http: Option<String>,
    /// How publishers reach this node's RTMP listener (`rtmp://host:port`).
    pub advertise_rtmp: Option<String>,
    /// How publishers reach this node's SRT listener (`srt://host:port`).
    pub advertise_srt: Option<String>,
    /// A stream claim's lease (default `10s`, 3 s to 5 min).
    #[serde(default, with = "humantime_serde")]
    pub lease: Option<Duration>,
    /// How often this node reports itself (default `2s`, shorter than the lease).
    #[serde(default, with = "humantime_serde")]
    pub heartbeat: Option<Duration>,
}

impl std::fmt::Debug for ClusterSection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterSection")
            .field("enabled", &self.enabled)
            .field(
                "redis_url",
                &self.redis_url.as_deref().map(crate::cluster::redacted_url),
            )
            .field("node_id", &self.node_id)
            .finish_non_exhaustive()
    }
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
    /// Memory files that complete segments and parts are sent from with `sendfile`, MB at most
    /// (default 512; 0: bodies are copied into the socket on each request).
    pub http_sendfile_cache_mb: Option<u64>,
    /// Make those files as unnamed files in this directory (ext4, xfs or tmpfs), not as memory files:
    /// less CPU per byte sent, but pages that outlive the kernel's dirty expiry may be written to
    /// that disk (default: memory files).
    pub http_sendfile_dir: Option<std::path::PathBuf>,
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
    /// Record every stream to `{data_dir}/recordings/` (replayed under `/vod/`) without a config
    /// file.
    #[arg(long, env = "ESTUARY_RECORD")]
    pub record: bool,
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
