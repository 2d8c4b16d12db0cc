//! The streams' lifecycle: a new entry for a publish (its first msn, its content keys), the end of a
//! stream whose publisher did not come back within the grace period, its removal after the linger
//! time (its msn remembered), and the end of every stream at shutdown.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, atomic::AtomicUsize, atomic::Ordering},
    time::{Duration, Instant},
};

use packager::StreamPackager;
use tokio::sync::watch;

use super::{
    Hub, IngestCounters, PublisherInfo, RequestRate, StreamEntry, StreamState, part_latency,
    unix_ms,
};

impl Hub {
    /// The first msn for a new packager of `name`: never 0, never a number used before for this name:
    /// at least what this process used, what the data directory has reserved
    /// ([`crate::hub::msn_store`]: across restarts and crashes), and the current Unix time in seconds (for
    /// a data directory that was lost).
    pub(super) fn first_msn(&self, name: &str) -> u64 {
        let remembered = self
            .next_msn
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
            .copied()
            .unwrap_or(1);
        let reserved = self
            .config
            .data_dir
            .as_deref()
            .and_then(|d| crate::hub::msn_store::load(d, name))
            .unwrap_or(1);
        let clock = u64::try_from(unix_ms() / 1000).unwrap_or(1);
        remembered.max(reserved).max(clock).max(1)
    }

    /// The first msn and discontinuity sequence number for a new packager of `name` whose numbering
    /// starts at least at `first_msn`: in a cluster, where this node's claim continues the stream
    /// ([`crate::cluster::Continuation`]), else `first_msn` and 0.
    fn numbering(&self, name: &str, first_msn: u64) -> (u64, u64) {
        match self
            .config
            .cluster
            .as_ref()
            .and_then(|c| c.continuation(name))
        {
            Some(c) => (first_msn.max(c.first_msn), c.discontinuity_sequence),
            None => (first_msn, 0),
        }
    }

    pub(super) fn new_entry(
        &self,
        name: &str,
        first_msn: u64,
        publisher: PublisherInfo,
    ) -> Arc<StreamEntry> {
        let (version_tx, _) = watch::channel(0);
        let (first_msn, discontinuity_sequence) = self.numbering(name, first_msn);
        let mut config = self.config.packager.clone();
        config.dvr_window = self.config.dvr.window_for(name);
        let recording = match &self.config.recorder {
            Some(r) => r.start(name, config.dvr_window.is_some()),
            None => None,
        };
        if config.dvr_window.is_some() && recording.is_none() {
            tracing::warn!(stream = %name, "no DVR window: its store cannot be written (see the error above, or set a data directory)");
            config.dvr_window = None;
        }
        let mut packager = StreamPackager::new(config, first_msn);
        packager.set_first_discontinuity_sequence(discontinuity_sequence);
        let policy = &self.config.encryption;
        let keys = policy
            .encrypts(name)
            .then_some(policy.rotate_every)
            .map(|every| {
                let file = self
                    .config
                    .data_dir
                    .as_deref()
                    .map(|d| crate::hub::keys::key_file(d, name));
                let mut store = crate::hub::keys::KeyStore::open(file);
                if let Some(cluster) = &self.config.cluster {
                    // Earlier publishes' keys (on other nodes too) stay served; new keys go to the
                    // store.
                    if let Some(json) = cluster.take_fetched_keys(name) {
                        store.merge_json(&json);
                    }
                    store = store.with_sink(cluster.key_sink(name));
                }
                let store = Arc::new(store);
                packager.set_key_source(Box::new(crate::hub::keys::StreamKeys::new(
                    store.clone(),
                    every,
                )));
                store
            });
        Arc::new(StreamEntry {
            name: name.to_owned(),
            state: Mutex::new(StreamState {
                packager,
                keys,
                publisher: Some(publisher),
                disconnected_at: None,
                ended_at: None,
                version: 0,
                ingest: IngestCounters::default(),
                transport: None,
                transcode: None,
                unusable_tracks: Vec::new(),
                webrtc_feed: crate::webrtc::feed::WebRtcFeed::new(name),
                events: Default::default(),
                store_dir: recording.as_ref().map(|t| t.dir().to_owned()),
                recording,
                cache: HashMap::new(),
            }),
            version_tx,
            waiters: AtomicUsize::new(0),
            kicked: Default::default(),
            requests: RequestRate::new(),
            part_latency: self.part_latency.clone(),
            data_dir: self.config.data_dir.clone(),
            reserved_msn: Default::default(),
            cluster: self.config.cluster.clone(),
            webrtc: self.config.webrtc.clone(),
            events_waiting: Default::default(),
        })
    }

    /// End streams whose grace period is over and remove ended streams after the linger time. Call
    /// periodically (every ~500 ms).
    pub fn tick(&self, now: Instant) {
        let entries = self.entries();
        let mut remove = Vec::new();
        for entry in entries {
            let mut st = entry.lock();
            if let Some(at) = st.disconnected_at
                && st.ended_at.is_none()
                && now.duration_since(at) >= self.config.reconnect_grace
            {
                st.packager.end();
                st.ended_at = Some(now);
                entry.bump(&mut st);
                st.end_recording();
                tracing::info!(stream = %entry.name, "publisher did not come back: stream ended");
                if let Some(webrtc) = &entry.webrtc {
                    webrtc.ended(&entry.name);
                }
                if let Some(cluster) = &self.config.cluster {
                    cluster.release(&entry.name);
                }
            }
            if let Some(at) = st.ended_at
                && now.duration_since(at) >= self.config.ended_linger
            {
                remove.push((entry.name.clone(), st.packager.next_msn()));
            }
        }
        if remove.is_empty() {
            return;
        }
        let mut streams = self.streams();
        let mut memory = self.next_msn.lock().unwrap_or_else(|p| p.into_inner());
        for (name, next) in remove {
            // Only remove if still ended (a re-publish may have replaced it meanwhile).
            if streams
                .get(&name)
                .is_some_and(|e| e.lock().ended_at.is_some())
            {
                if let Some(entry) = streams.remove(&name) {
                    for r in entry.lock().packager.renditions() {
                        self.part_latency.remove(&part_latency::RenditionLabels {
                            stream: name.clone(),
                            rendition: r.name().to_owned(),
                        });
                    }
                }
                memory.insert(name.clone(), next);
                tracing::info!(stream = %name, "stream removed");
            }
        }
    }

    /// Run [`Self::tick`] every 500 ms until `shutdown` turns true.
    pub async fn run_supervisor(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        let mut interval = tokio::time::interval(Duration::from_millis(500));
        loop {
            tokio::select! {
                _ = interval.tick() => self.tick(Instant::now()),
                _ = shutdown.changed() => {
                    if *shutdown.borrow() { return; }
                }
            }
        }
    }

    /// End every stream (graceful shutdown): playlists get EXT-X-ENDLIST.
    pub fn end_all(&self) {
        self.shutting_down.store(true, Ordering::Release);
        let entries = self.entries();
        for entry in entries {
            let mut st = entry.lock();
            if st.ended_at.is_none() {
                st.packager.end();
                st.ended_at = Some(Instant::now());
                entry.bump(&mut st);
                st.end_recording();
            }
        }
    }
}
