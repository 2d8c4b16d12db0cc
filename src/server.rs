//! `estuary serve`: binds the listeners and runs the hub, the origin and the ingest drivers until shutdown.

use std::{net::SocketAddr, sync::Arc};

use tokio::{net::TcpListener, sync::watch};

use crate::{
    config::Settings,
    hub::Hub,
    ingest::rtmp,
    origin::{self, Origin},
};

/// A running server (for tests and `main`).
#[derive(Debug)]
pub struct Server {
    /// The bound HTTP address.
    pub http_addr: SocketAddr,
    /// The bound RTMP address.
    pub rtmp_addr: SocketAddr,
    /// The stream hub.
    pub hub: Arc<Hub>,
    shutdown: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Server {
    /// Bind the listeners (port 0 picks a free port) and start serving. Errors: a listener cannot be bound.
    pub async fn start(settings: Settings) -> std::io::Result<Self> {
        let http = TcpListener::bind(settings.http_listen).await?;
        let rtmp_listener = TcpListener::bind(settings.rtmp_listen).await?;
        let http_addr = http.local_addr()?;
        let rtmp_addr = rtmp_listener.local_addr()?;
        let hub = Hub::new(settings.hub.clone());
        let (shutdown, rx) = watch::channel(false);
        let origin = Origin::new(hub.clone(), settings.origin.clone());
        let rtmp_config = rtmp::RtmpConfig {
            max_connections: settings.rtmp_max_connections,
            ..Default::default()
        };
        let tasks = vec![
            tokio::spawn(hub.clone().run_supervisor(rx.clone())),
            tokio::spawn(origin::serve(http, origin, rx.clone())),
            tokio::spawn(rtmp::serve(rtmp_listener, hub.clone(), rtmp_config, rx)),
        ];
        tracing::info!(%http_addr, %rtmp_addr, "estuary serving");
        Ok(Self {
            http_addr,
            rtmp_addr,
            hub,
            shutdown,
            tasks,
        })
    }

    /// Stop accepting, end every stream (EXT-X-ENDLIST) and stop the tasks.
    pub async fn shutdown(self) {
        self.hub.end_all();
        let _ = self.shutdown.send(true);
        for t in self.tasks {
            let _ = tokio::time::timeout(std::time::Duration::from_secs(5), t).await;
        }
    }
}
