//! `estuary serve`: binds the listeners and runs the hub, the origin and the ingest drivers until shutdown.

use std::{net::SocketAddr, sync::Arc};

use tokio::{net::TcpListener, sync::watch};

use crate::{
    config::Settings,
    http::{self, Origin},
    hub::Hub,
    hub::ladder::LadderSettings,
    ingest::{rtmp, srt},
};

/// A running server (for tests and `main`).
#[derive(Debug)]
pub struct Server {
    /// The bound HTTP address.
    pub http_addr: SocketAddr,
    /// The bound RTMP address.
    pub rtmp_addr: SocketAddr,
    /// The bound SRT address (UDP).
    pub srt_addr: SocketAddr,
    /// The stream hub.
    pub hub: Arc<Hub>,
    /// Access control (tokens, publish keys), with its refusal counters.
    pub auth: Arc<crate::auth::Auth>,
    shutdown: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    /// How long [`Server::shutdown`] lets HTTP responses in flight finish.
    shutdown_grace: std::time::Duration,
}

impl Server {
    /// Bind the listeners (port 0 picks a free port) and start serving. Errors: a listener cannot be bound.
    pub async fn start(settings: Settings) -> std::io::Result<Self> {
        raise_open_file_limit(&settings);
        let http = TcpListener::bind(settings.http_listen).await?;
        let rtmp_listener = TcpListener::bind(settings.rtmp_listen).await?;
        let http_addr = http.local_addr()?;
        let rtmp_addr = rtmp_listener.local_addr()?;
        let srt_socket = srt::bind_udp(settings.srt_listen, settings.srt.udp_recv_buffer_bytes)
            .map_err(|e| {
                std::io::Error::new(e.kind(), format!("srt listen {}: {e}", settings.srt_listen))
            })?;
        let srt_addr = srt_socket.local_addr()?;
        let data_dir = settings
            .hub
            .data_dir
            .clone()
            .unwrap_or_else(|| crate::config::DEFAULT_DATA_DIR.into());
        let auth = crate::auth::Auth::load(&settings.auth, &data_dir)
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        let mut hub_config = settings.hub.clone();
        hub_config.auth = Some(auth.clone());
        let cluster = match settings.cluster.clone() {
            Some(mut config) => Some({
                // Advertise where this node listens unless told otherwise (a wildcard address is
                // replaced by the node id, as a host name).
                let advertise = |scheme: &str, addr: SocketAddr| {
                    if addr.ip().is_unspecified() {
                        format!("{scheme}://{}:{}", config.node_id, addr.port())
                    } else {
                        format!("{scheme}://{addr}")
                    }
                };
                config.advertise_http = config
                    .advertise_http
                    .clone()
                    .or_else(|| Some(advertise("http", http_addr)));
                config.advertise_rtmp = config
                    .advertise_rtmp
                    .clone()
                    .or_else(|| Some(advertise("rtmp", rtmp_addr)));
                config.advertise_srt = config
                    .advertise_srt
                    .clone()
                    .or_else(|| Some(advertise("srt", srt_addr)));
                crate::cluster::Cluster::connect(config, auth.key_vault())
                    .await
                    .map_err(|e| std::io::Error::other(e.to_string()))?
            }),
            None => None,
        };
        hub_config.cluster = cluster.clone();
        if let Some(config) = &settings.webrtc {
            let webrtc = crate::webrtc::WebRtc::start(config).await.map_err(|e| {
                std::io::Error::new(
                    e.kind(),
                    format!("webrtc udp_listen {}: {e}", config.udp_listen),
                )
            })?;
            tracing::info!(udp = %webrtc.local_addr, tcp = ?webrtc.tcp_addr, "webrtc (whep, whip) serving");
            hub_config.webrtc = Some(webrtc);
        }
        if let Some(plan) = &settings.transcode {
            // Probe once at start: `nvenc` without NVENC fails here, clearly.
            let probe = transcoder::probe_encoders(plan.encoder)
                .map_err(|e| std::io::Error::other(format!("transcoder: {e}")))?;
            tracing::info!(h264 = %probe.h264, hevc = %probe.hevc, "video encoders");
            hub_config.ladder = Some(Arc::new(LadderSettings {
                rungs: plan.rungs.clone(),
                probe,
                options: plan.options.clone(),
                passthrough_streams: plan.passthrough_streams.clone(),
            }));
        }
        let recorder = hub_config.data_dir.as_deref().map(|dir| {
            crate::recording::Recorder::new(
                dir,
                settings.recording.clone(),
                hub_config.reconnect_grace,
            )
        });
        hub_config.recorder = recorder.clone();
        let hub = Hub::new(hub_config);
        let (shutdown, rx) = watch::channel(false);
        let origin = Origin::new(hub.clone(), settings.origin.clone(), auth.clone());
        let rtmp_config = rtmp::RtmpConfig {
            max_connections: settings.rtmp_max_connections,
            ..Default::default()
        };
        let mut tasks = vec![
            tokio::spawn(hub.clone().run_supervisor(rx.clone())),
            tokio::spawn(http::serve(
                http,
                origin.clone(),
                rx.clone(),
                settings.shutdown_grace,
            )),
            tokio::spawn(rtmp::serve(
                rtmp_listener,
                hub.clone(),
                rtmp_config,
                rx.clone(),
            )),
            tokio::spawn(srt::serve(
                srt_socket,
                hub.clone(),
                settings.srt.clone(),
                rx.clone(),
            )),
        ];
        if let Some(recorder) = recorder {
            tasks.push(tokio::spawn(
                recorder.run_housekeeping(std::time::Duration::from_secs(30), rx.clone()),
            ));
        }
        if let Some(cluster) = cluster {
            let probe_hub = hub.clone();
            let probe_origin = origin.clone();
            let cpu = std::sync::Mutex::new(crate::cluster::load::ProcessCpu::default());
            let probe: crate::cluster::LoadProbe = Arc::new(move || {
                let mut cpu = cpu.lock().unwrap_or_else(|p| p.into_inner());
                let mut load = probe_hub.node_load();
                load.cpu_busy = cpu.sample();
                load.cores = cpu.cores();
                load.http_requests = probe_origin.requests_in_flight();
                crate::cluster::NodeReport {
                    load,
                    draining: probe_hub.is_draining(),
                }
            });
            tasks.push(tokio::spawn(cluster.run(probe, rx)));
        }
        tracing::info!(
            %http_addr, %rtmp_addr, %srt_addr,
            playback = ?auth.playback(), publish = ?auth.publish_mode(),
            "estuary serving"
        );
        Ok(Self {
            http_addr,
            rtmp_addr,
            srt_addr,
            hub,
            auth,
            shutdown,
            tasks,
            shutdown_grace: settings.shutdown_grace,
        })
    }

    /// Graceful shutdown: `/readyz` turns 503 and every stream ends (EXT-X-ENDLIST; blocked playlist
    /// requests are answered), the listeners stop accepting, and HTTP responses in flight get up to
    /// `server.shutdown_grace` to finish before the tasks stop.
    pub async fn shutdown(self) {
        self.hub.end_all();
        let _ = self.shutdown.send(true);
        let deadline =
            tokio::time::Instant::now() + self.shutdown_grace + std::time::Duration::from_secs(2);
        for t in self.tasks {
            let _ = tokio::time::timeout_at(deadline, t).await;
        }
        // Every stream ended: the recordings' writers finish their queues and close their indexes
        // (what is left at the deadline is closed as interrupted at the next start).
        if let Some(recorder) = &self.hub.config().recorder {
            while recorder.writers() > 0 && tokio::time::Instant::now() < deadline {
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
        }
    }
}

/// Raise the soft limit of open files to the hard limit (as nginx's `worker_rlimit_nofile` does): every
/// HTTP, RTMP and SRT connection holds a descriptor, and the usual soft limit (1024) is far below
/// `server.http_max_connections`. Warns when even the hard limit is below what the limits allow.
fn raise_open_file_limit(settings: &Settings) {
    let wanted = (settings.origin.max_connections
        + settings.rtmp_max_connections
        + settings.srt.max_connections
        + 256) as u64;
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) if limit < wanted => tracing::warn!(
            open_files = limit,
            wanted,
            "the open-file limit is below the connection limits: raise the hard limit (ulimit -Hn, LimitNOFILE=)"
        ),
        Ok(limit) => tracing::debug!(open_files = limit, "open-file limit"),
        Err(e) => tracing::warn!(error = %e, "cannot raise the open-file limit"),
    }
}
