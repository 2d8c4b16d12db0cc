//! `estuary config`: the effective configuration, every key with the value in force.

use super::*;

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
                http_sendfile_cache_mb: Some(self.origin.sendfile_cache_bytes >> 20),
                http_sendfile_dir: self.origin.sendfile_dir.clone(),
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
            cluster: match &self.cluster {
                None => ClusterSection {
                    enabled: Some(false),
                    ..Default::default()
                },
                Some(c) => ClusterSection {
                    enabled: Some(true),
                    redis_url: Some(crate::cluster::redacted_url(c.redis_url.expose())),
                    node_id: Some(c.node_id.clone()),
                    advertise_http: c.advertise_http.clone(),
                    advertise_rtmp: c.advertise_rtmp.clone(),
                    advertise_srt: c.advertise_srt.clone(),
                    lease: Some(c.lease),
                    heartbeat: Some(c.heartbeat),
                },
            },
            webrtc: WebRtcSection {
                enabled: Some(self.webrtc.is_some()),
                udp_listen: self.webrtc.as_ref().map(|w| w.udp_listen),
                tcp: self.webrtc.as_ref().map(|w| w.tcp_listen.is_some()),
                tcp_listen: self.webrtc.as_ref().and_then(|w| w.tcp_listen),
                public_addrs: self.webrtc.as_ref().map(|w| w.public_addrs.clone()),
                max_sessions: self.webrtc.as_ref().map(|w| w.max_sessions),
                max_sessions_per_stream: self.webrtc.as_ref().map(|w| w.max_sessions_per_stream),
            },
            dvr: DvrSection {
                window: hub.dvr.window,
                streams: hub
                    .dvr
                    .streams
                    .iter()
                    .map(|(k, v)| {
                        let text = v.map_or("0s".to_owned(), |d| {
                            humantime::format_duration(d).to_string()
                        });
                        (k.clone(), text)
                    })
                    .collect(),
            },
            recording: RecordingSection {
                enabled: Some(self.recording.enabled),
                streams: self.recording.streams.clone(),
                max_age: self.recording.max_age,
                max_bytes: self.recording.max_bytes,
                webhook_url: self.recording.webhook_url.as_ref().map(|u| u.to_string()),
            },
        }
    }
}
