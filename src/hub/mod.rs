//! The stream hub: one entry per live stream name, publish sessions feeding each stream's packager, the
//! reconnect grace period and end of stream, and the notification that wakes blocked HTTP requests.
//!
//! The packager runs inline on the publishing connection's task under a short `std::sync::Mutex` (packaging
//! a frame takes microseconds); every change bumps a `watch` version that waiters subscribe to.
//!
//! Layout: this file (settings, the stream map and lookups), `stream` (one stream's entry and state),
//! `lifecycle` (new entries, end after the grace period, removal, shutdown), `session` (publish
//! sessions feeding the packager).

pub mod events;
pub mod keys;
pub mod ladder;
pub mod msn_store;
pub mod part_latency;
pub mod report;
pub mod track_gate;

mod lifecycle;
mod session;
mod stream;

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, MutexGuard, atomic::Ordering},
    time::Duration,
};

use packager::PackagerConfig;

pub use self::stream::{
    IngestCounters, PublisherInfo, RequestRate, StreamEntry, StreamState, WaiterGuard,
};
pub use crate::vocab::unix_ms;

/// Stream lifecycle settings.
#[derive(Debug, Clone)]
pub struct HubConfig {
    /// How cuts and windows are made.
    pub packager: PackagerConfig,
    /// How long a stream stays live after its publisher disconnects, waiting for a reconnect (default 10 s).
    pub reconnect_grace: Duration,
    /// How long an ended stream's playlists (with EXT-X-ENDLIST) stay served before removal (default 60 s).
    pub ended_linger: Duration,
    /// Blocked requests allowed per stream at once (default 20 000); beyond, 503.
    pub max_waiters_per_stream: usize,
    /// Streams allowed at once (default 1 000).
    pub max_streams: usize,
    /// The ABR ladder; `None` packages every stream as it arrives (passthrough).
    pub ladder: Option<Arc<crate::hub::ladder::LadderSettings>>,
    /// DASH signalling (target latency, playback-rate bounds).
    pub dash: packager::dash::DashConfig,
    /// Which streams are encrypted (HLS `METHOD=AES-128`, DASH CENC), and how often HLS keys rotate.
    pub encryption: EncryptionPolicy,
    /// Where state that survives a restart lives (content keys); `None`: memory only.
    pub data_dir: Option<std::path::PathBuf>,
    /// Publish authorisation (key or webhook) and unpublish notifications; `None`: anyone publishes.
    pub auth: Option<Arc<crate::auth::Auth>>,
    /// This node's cluster membership: a publish must claim its stream name first ([`crate::cluster`]).
    pub cluster: Option<Arc<crate::cluster::Cluster>>,
    /// WebRTC viewers (WHEP): the source video of a watched stream goes to them.
    pub webrtc: Option<Arc<crate::webrtc::WebRtc>>,
    /// What is recorded to disk ([`crate::recording`]); `None`: nothing.
    pub recorder: Option<Arc<crate::recording::Recorder>>,
    /// Which streams have a DVR window, and how long.
    pub dvr: DvrPolicy,
}

/// The DVR window of each stream ([`packager::PackagerConfig::dvr_window`]): segments older than the
/// live window stay listed for it, served from the stream's recording.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DvrPolicy {
    /// Every stream's window (`None`: off).
    pub window: Option<Duration>,
    /// Per-stream windows overriding it (`None`: off).
    pub streams: std::collections::BTreeMap<String, Option<Duration>>,
}

impl DvrPolicy {
    /// The DVR window of stream `name` (`live/{name}`), if it has one.
    pub fn window_for(&self, name: &str) -> Option<Duration> {
        match self.streams.get(name) {
            Some(w) => *w,
            None => self.window,
        }
    }
}

/// Which streams are encrypted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncryptionPolicy {
    /// Streams not named in `streams` are encrypted when true (default false).
    pub default: bool,
    /// Per-stream choices (`live/{name}` → encrypted).
    pub streams: std::collections::BTreeMap<String, bool>,
    /// A new HLS key every this many segments (≥ 1; default 10).
    pub rotate_every: u64,
}

impl Default for EncryptionPolicy {
    fn default() -> Self {
        Self {
            default: false,
            streams: Default::default(),
            rotate_every: 10,
        }
    }
}

impl EncryptionPolicy {
    /// True when stream `name` (`live/{name}`) is encrypted.
    pub fn encrypts(&self, name: &str) -> bool {
        self.streams.get(name).copied().unwrap_or(self.default)
    }
}

impl Default for HubConfig {
    fn default() -> Self {
        Self {
            packager: PackagerConfig::default(),
            reconnect_grace: Duration::from_secs(10),
            ended_linger: Duration::from_secs(60),
            max_waiters_per_stream: 20_000,
            max_streams: 1_000,
            ladder: None,
            dash: packager::dash::DashConfig::default(),
            encryption: EncryptionPolicy::default(),
            data_dir: None,
            auth: None,
            cluster: None,
            webrtc: None,
            recorder: None,
            dvr: DvrPolicy::default(),
        }
    }
}

/// All streams of this origin.
#[derive(Debug)]
pub struct Hub {
    config: HubConfig,
    streams: Mutex<HashMap<String, Arc<StreamEntry>>>,
    /// Next msn per stream name for streams that were removed, so numbering never repeats.
    next_msn: Mutex<HashMap<String, u64>>,
    /// Set by [`Hub::end_all`].
    shutting_down: std::sync::atomic::AtomicBool,
    /// Set by [`Hub::set_draining`].
    draining: std::sync::atomic::AtomicBool,
    /// Part publication latency per stream and rendition (`/metrics`).
    part_latency: part_latency::PartLatencyFamily,
    /// Timed metadata refused, by reason ([`events::EventRefused::reason`]).
    event_refusals: Mutex<std::collections::BTreeMap<&'static str, u64>>,
}

impl Hub {
    /// A hub with `config`.
    pub fn new(config: HubConfig) -> Arc<Self> {
        Arc::new(Self {
            config,
            streams: Mutex::new(HashMap::new()),
            next_msn: Mutex::new(HashMap::new()),
            shutting_down: Default::default(),
            draining: Default::default(),
            part_latency: part_latency::part_latency_family(),
            event_refusals: Default::default(),
        })
    }

    /// The part publication latency histograms, by stream and rendition.
    pub fn part_latency(&self) -> &part_latency::PartLatencyFamily {
        &self.part_latency
    }

    /// The configuration.
    pub fn config(&self) -> &HubConfig {
        &self.config
    }

    /// The stream called `name` (`live/{name}`), if live or lingering.
    pub fn get(&self, name: &str) -> Option<Arc<StreamEntry>> {
        self.streams().get(name).cloned()
    }

    /// The content keys of stream `name` (`live/{name}`): the live stream's, or, for a stream not being
    /// published (e.g. after an origin restart), those persisted in the data directory.
    pub fn keys(&self, name: &str) -> Option<Arc<crate::hub::keys::KeyStore>> {
        if let Some(k) = self.get(name).and_then(|e| e.lock().keys.clone()) {
            return Some(k);
        }
        let dir = self.config.data_dir.as_deref()?;
        crate::hub::keys::KeyStore::load(&crate::hub::keys::key_file(dir, name)).map(Arc::new)
    }

    /// Names of the streams in the hub.
    pub fn names(&self) -> Vec<String> {
        self.streams().keys().cloned().collect()
    }

    /// Disconnect the publisher of `name` (`live/{name}`): its ingest connection is closed at its next
    /// packet. The stream then waits for a reconnect like after any disconnect. False when the stream
    /// has no publisher.
    pub fn kick(&self, name: &str) -> bool {
        let Some(entry) = self.get(name) else {
            return false;
        };
        let has_publisher = entry.lock().publisher.is_some();
        if has_publisher {
            entry.kicked.store(true, Ordering::Release);
            tracing::info!(stream = %name, "publisher kicked by the API");
        }
        has_publisher
    }

    /// Drain (scale-in): refuse publishes of streams not live here (reconnects of this node's own
    /// streams are still taken), until `false` again. The streams go on until they end.
    pub fn set_draining(&self, draining: bool) {
        if self.draining.swap(draining, Ordering::AcqRel) != draining {
            tracing::info!(
                draining,
                "node drain {}",
                if draining { "started" } else { "cancelled" }
            );
        }
    }

    /// Whether the node drains.
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Acquire)
    }

    /// Streams with a publisher, or waiting for one within the grace period.
    pub fn live_streams(&self) -> usize {
        self.entries()
            .iter()
            .filter(|e| e.lock().ended_at.is_none())
            .count()
    }

    /// The hub's part of the load a cluster node reports: streams, publishing streams, transcoded
    /// streams and the slowest transcoder's real-time factor (CPU and HTTP figures are the caller's).
    pub fn node_load(&self) -> crate::cluster::NodeLoad {
        let mut load = crate::cluster::NodeLoad::default();
        for entry in self.entries() {
            let st = entry.lock();
            load.streams += 1;
            if st.publisher.is_some() {
                load.publishing += 1;
                if let Some(t) = &st.transcode {
                    load.transcoded += 1;
                    let f = t.real_time_factor;
                    load.min_real_time_factor =
                        Some(load.min_real_time_factor.map_or(f, |m: f64| m.min(f)));
                }
            }
        }
        load
    }

    /// False once the server is shutting down ([`Hub::end_all`]).
    pub fn is_accepting(&self) -> bool {
        !self.shutting_down.load(Ordering::Acquire)
    }

    /// The stream map. Lock order: the map before a stream entry's state; never across an `.await`.
    fn streams(&self) -> MutexGuard<'_, HashMap<String, Arc<StreamEntry>>> {
        self.streams.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A snapshot of the entries.
    fn entries(&self) -> Vec<Arc<StreamEntry>> {
        self.streams().values().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;
    use std::time::Instant;

    use super::*;
    use crate::ingest::{Protocol, PublishRefused, Publisher};

    fn hub() -> Arc<Hub> {
        Hub::new(HubConfig {
            reconnect_grace: Duration::from_secs(10),
            ended_linger: Duration::from_secs(60),
            ..Default::default()
        })
    }

    fn peer() -> SocketAddr {
        "127.0.0.1:5000".parse().unwrap()
    }

    #[test]
    fn hub_encrypts_the_streams_the_policy_names() {
        let hub = Hub::new(HubConfig {
            encryption: EncryptionPolicy {
                default: true,
                streams: [("live/open".to_owned(), false)].into_iter().collect(),
                rotate_every: 10,
            },
            ..Default::default()
        });
        let _a = hub
            .begin_publish("live/open", Protocol::Rtmp, peer())
            .unwrap();
        let _b = hub
            .begin_publish("live/other", Protocol::Rtmp, peer())
            .unwrap();
        let open = hub.get("live/open").unwrap();
        let other = hub.get("live/other").unwrap();
        assert!(!open.lock().packager.is_encrypted() && open.lock().keys.is_none());
        assert!(other.lock().packager.is_encrypted() && other.lock().keys.is_some());
    }

    #[test]
    fn hub_refuses_bad_names_and_a_second_publisher() {
        let hub = hub();
        for bad in [
            "demo",
            "live/",
            "live/../x",
            "other/demo",
            "live/a/b",
            "live/.hidden",
        ] {
            assert!(
                matches!(
                    hub.begin_publish(bad, Protocol::Rtmp, peer()),
                    Err(PublishRefused::InvalidName(_))
                ),
                "{bad}"
            );
        }
        let first = hub
            .begin_publish("live/demo", Protocol::Rtmp, peer())
            .unwrap();
        assert!(matches!(
            hub.begin_publish("live/demo", Protocol::Rtmp, peer()),
            Err(PublishRefused::AlreadyLive(_))
        ));
        drop(first);
        // Within the grace period the same entry is reused.
        let entry = hub.get("live/demo").unwrap();
        let _again = hub
            .begin_publish("live/demo", Protocol::Rtmp, peer())
            .unwrap();
        assert!(Arc::ptr_eq(&entry, &hub.get("live/demo").unwrap()));
        assert!(entry.lock().publisher.is_some());
    }

    #[test]
    fn hub_ends_after_grace_and_removes_after_linger_remembering_the_msn() {
        let hub = hub();
        let session = hub
            .begin_publish("live/demo", Protocol::Rtmp, peer())
            .unwrap();
        let first_msn = hub.get("live/demo").unwrap().lock().packager.next_msn();
        assert!(
            first_msn > 1_700_000_000,
            "msn base is the Unix time in seconds"
        );
        drop(session);
        let t0 = Instant::now();
        hub.tick(t0 + Duration::from_secs(5));
        assert!(!hub.get("live/demo").unwrap().lock().packager.is_ended());
        hub.tick(t0 + Duration::from_secs(11));
        let entry = hub.get("live/demo").unwrap();
        assert!(entry.lock().packager.is_ended());
        // A waiter subscribed before the end sees the version bump.
        assert!(entry.subscribe().has_changed().is_ok());
        hub.tick(t0 + Duration::from_secs(75));
        assert!(hub.get("live/demo").is_none());
        assert!(hub.names().is_empty());
        // The next publish of the name continues the numbering.
        let _s = hub
            .begin_publish("live/demo", Protocol::Rtmp, peer())
            .unwrap();
        assert!(hub.get("live/demo").unwrap().lock().packager.next_msn() >= first_msn);
    }

    #[test]
    fn hub_limits_waiters_per_stream() {
        let hub = Hub::new(HubConfig {
            max_waiters_per_stream: 2,
            ..Default::default()
        });
        let _s = hub
            .begin_publish("live/demo", Protocol::Rtmp, peer())
            .unwrap();
        let entry = hub.get("live/demo").unwrap();
        let a = entry.try_wait(2).unwrap();
        let _b = entry.try_wait(2).unwrap();
        assert!(entry.try_wait(2).is_none());
        drop(a);
        assert_eq!(entry.waiters(), 1);
        assert!(entry.try_wait(2).is_some());
    }
}
