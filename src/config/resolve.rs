//! Sections resolved under the flags and environment: auth, SRT, transcoding.

use std::time::Duration;

use crate::ingest::srt::{SrtConfig, SrtPassphrase};

use super::*;

/// The `[auth]` section under the flags and environment.
pub(super) fn resolve_auth(
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
                .unwrap_or(crate::auth::DEFAULT_EDGE_HEADER)
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
        cluster_hop: false,
    })
}

/// The `[srt]` section over the defaults; `flag_passphrase` (flag or env) beats `srt.passphrase`.
pub(super) fn resolve_srt(
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
        if stream.parse::<media::name::StreamName>().is_err() {
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

pub(super) fn resolve_transcode(
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
        if s.parse::<media::name::StreamName>().is_err() {
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

/// The `[cluster]` section: `None` when not enabled.
pub(super) fn resolve_cluster(
    section: super::file::ClusterSection,
) -> Result<Option<crate::cluster::ClusterConfig>, ConfigError> {
    let invalid = |key: &str, why: &str| ConfigError::Invalid(format!("cluster.{key}: {why}"));
    if !section.enabled.unwrap_or(false) {
        return Ok(None);
    }
    let redis_url = section
        .redis_url
        .ok_or_else(|| invalid("redis_url", "required when the cluster is enabled"))?;
    if !(redis_url.starts_with("redis://") || redis_url.starts_with("rediss://")) {
        return Err(invalid(
            "redis_url",
            "must start with redis:// or rediss://",
        ));
    }
    let node_id = match section.node_id {
        Some(id) => id,
        None => {
            host_name().ok_or_else(|| invalid("node_id", "no host name to default to: set one"))?
        }
    };
    if node_id.is_empty()
        || node_id.len() > 64
        || !node_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
    {
        return Err(invalid(
            "node_id",
            "1 to 64 characters among letters, digits, '.', '-' and '_'",
        ));
    }
    for (key, value, scheme) in [
        ("advertise_http", &section.advertise_http, "http://"),
        ("advertise_rtmp", &section.advertise_rtmp, "rtmp://"),
        ("advertise_srt", &section.advertise_srt, "srt://"),
    ] {
        if value.as_ref().is_some_and(|v| !v.starts_with(scheme)) {
            return Err(invalid(key, &format!("must start with {scheme}")));
        }
    }
    let lease = section.lease.unwrap_or(Duration::from_secs(10));
    if !(Duration::from_secs(3)..=Duration::from_secs(300)).contains(&lease) {
        return Err(invalid("lease", "must be between 3s and 5m"));
    }
    let heartbeat = section.heartbeat.unwrap_or(Duration::from_secs(2));
    if heartbeat < Duration::from_millis(100) || heartbeat >= lease {
        return Err(invalid(
            "heartbeat",
            "must be at least 100ms and shorter than the lease",
        ));
    }
    Ok(Some(crate::cluster::ClusterConfig {
        redis_url: crate::auth::SecretString::new(redis_url),
        node_id,
        advertise_http: section.advertise_http,
        advertise_rtmp: section.advertise_rtmp,
        advertise_srt: section.advertise_srt,
        lease,
        heartbeat,
    }))
}

/// This machine's host name (`/proc/sys/kernel/hostname`, else `$HOSTNAME`).
fn host_name() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_owned())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .filter(|s| !s.is_empty())
}
