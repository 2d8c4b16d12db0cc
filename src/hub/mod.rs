//! The stream hub: one entry per live stream name, publish sessions feeding each stream's packager, the
//! reconnect grace period and end of stream, and the notification that wakes blocked HTTP requests.
//!
//! The packager runs inline on the publishing connection's task under a short `std::sync::Mutex` (packaging
//! a frame takes microseconds); every change bumps a `watch` version that waiters subscribe to.

pub mod keys;
pub mod ladder;
pub mod msn_store;
pub mod part_latency;
pub mod report;
pub mod track_gate;

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{
        Arc, Mutex, MutexGuard,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use bytes::Bytes;
use packager::{PackagerConfig, StreamPackager};
use tokio::sync::watch;

use crate::hub::track_gate::{TrackGate, Verdict};
use crate::ingest::{
    IngestEvent, Protocol, PublishRefused, PublishSession, Publisher, UnusableTrack,
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
        }
    }
}

/// Who publishes a stream.
#[derive(Debug, Clone)]
pub struct PublisherInfo {
    /// Transport.
    pub protocol: Protocol,
    /// The publisher's address.
    pub peer: SocketAddr,
    /// When the publish began.
    pub since: Instant,
}

/// Frames and bytes received from the stream's publishers (before transcoding).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct IngestCounters {
    /// Video frames received.
    pub video_frames: u64,
    /// Audio frames received.
    pub audio_frames: u64,
    /// Bytes of media received (frame payloads).
    pub bytes: u64,
}

/// Mutable state of one stream.
#[derive(Debug)]
pub struct StreamState {
    /// The stream's packager (renditions, live window).
    pub packager: StreamPackager,
    /// The current publisher, if connected.
    pub publisher: Option<PublisherInfo>,
    /// When the publisher went away (grace period running).
    pub disconnected_at: Option<Instant>,
    /// When the stream ended (EXT-X-ENDLIST added).
    pub ended_at: Option<Instant>,
    /// The stream's content keys, when it is encrypted.
    pub keys: Option<Arc<crate::hub::keys::KeyStore>>,
    /// Update counter (same value as the watch channel).
    pub version: u64,
    /// What the publishers delivered since the stream started (updated about once a second).
    pub ingest: IngestCounters,
    /// The current publisher's transport counters (SRT), if it reports any.
    pub transport: Option<crate::ingest::TransportStats>,
    /// The current transcoder's counters (real-time factor, lag, shed rungs; about once a second).
    pub transcode: Option<transcoder::TranscodeStats>,
    /// The current publish's tracks that are not used (an audio codec that cannot be packaged or
    /// decoded), as reported when found; cleared when a new publish starts.
    pub unusable_tracks: Vec<UnusableTrack>,
    cache: HashMap<(String, bool), (u64, Bytes)>,
}

impl StreamState {
    /// A rendered playlist for `key` (`""` = multivariant, else a rendition name; `skip` = delta update),
    /// rendered at most once per update and shared by every request.
    pub fn playlist(&mut self, rendition: Option<&str>, skip: bool) -> Option<Bytes> {
        let key = (rendition.unwrap_or("").to_owned(), skip);
        if let Some((v, bytes)) = self.cache.get(&key)
            && *v == self.version
        {
            return Some(bytes.clone());
        }
        let text = match rendition {
            None => packager::hls::render_multivariant(&self.packager)?,
            Some(r) => packager::hls::render_media_playlist(&self.packager, r, skip)?,
        };
        let bytes = Bytes::from(text);
        self.cache.insert(key, (self.version, bytes.clone()));
        Some(bytes)
    }

    /// The rendered DASH MPD, rendered at most once per update (its `publishTime` is when that
    /// happened) and shared by every request.
    pub fn mpd(&mut self, cfg: &packager::dash::DashConfig) -> Option<Bytes> {
        // Not a rendition name: names are validated and never contain a NUL.
        let key = ("\0mpd".to_owned(), false);
        if let Some((v, bytes)) = self.cache.get(&key)
            && *v == self.version
        {
            return Some(bytes.clone());
        }
        let text = packager::dash::render_mpd(&self.packager, cfg, unix_ms())?;
        let bytes = Bytes::from(text);
        self.cache.insert(key, (self.version, bytes.clone()));
        Some(bytes)
    }
}

/// One stream's entry in the hub.
#[derive(Debug)]
pub struct StreamEntry {
    /// Full stream name, `live/{name}`.
    pub name: String,
    state: Mutex<StreamState>,
    version_tx: watch::Sender<u64>,
    waiters: AtomicUsize,
    /// Set by [`Hub::kick`]: the current publisher's session reports it and its driver disconnects.
    kicked: std::sync::atomic::AtomicBool,
    /// HTTP requests for this stream's objects.
    requests: RequestRate,
    /// The hub's part publication latency histograms.
    part_latency: part_latency::PartLatencyFamily,
    /// Where this stream's msn reservation is written ([`crate::hub::msn_store`]), if anywhere.
    data_dir: Option<std::path::PathBuf>,
    /// Every msn below this is reserved on disk (0: nothing written yet).
    reserved_msn: std::sync::atomic::AtomicU64,
}

/// A request counter with the rate over its last complete window of at least
/// [`RequestRate::WINDOW`].
#[derive(Debug)]
pub struct RequestRate {
    total: std::sync::atomic::AtomicU64,
    /// (window start, requests since, the last complete window's rate in requests/s).
    window: Mutex<(Instant, u64, f64)>,
}

impl RequestRate {
    /// Shortest window a rate is measured over.
    pub const WINDOW: Duration = Duration::from_secs(10);

    fn new() -> Self {
        Self {
            total: Default::default(),
            window: Mutex::new((Instant::now(), 0, 0.0)),
        }
    }

    /// Count one request.
    pub fn count(&self) {
        self.total.fetch_add(1, Ordering::Relaxed);
        let mut w = self.window.lock().unwrap_or_else(|p| p.into_inner());
        w.1 += 1;
        let elapsed = w.0.elapsed();
        if elapsed >= Self::WINDOW {
            *w = (Instant::now(), 0, w.1 as f64 / elapsed.as_secs_f64());
        }
    }

    /// Requests since the stream started.
    pub fn total(&self) -> u64 {
        self.total.load(Ordering::Relaxed)
    }

    /// Requests per second over the last complete window (0 when none has completed, or when the
    /// current window has gone on for more than two windows without a request).
    pub fn per_second(&self) -> f64 {
        let w = self.window.lock().unwrap_or_else(|p| p.into_inner());
        if w.0.elapsed() >= 2 * Self::WINDOW {
            return w.1 as f64 / w.0.elapsed().as_secs_f64();
        }
        w.2
    }
}

impl StreamEntry {
    /// Lock the state. Never hold the guard across an `.await`.
    pub fn lock(&self) -> MutexGuard<'_, StreamState> {
        // A panic while holding the lock would be a bug in the packager; keep serving what is there.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// HTTP requests for this stream's objects (counted by the origin).
    pub fn requests(&self) -> &RequestRate {
        &self.requests
    }

    /// True when the API asked the current publisher to leave.
    pub fn is_kicked(&self) -> bool {
        self.kicked.load(Ordering::Acquire)
    }

    /// Subscribe to updates (call before checking the state, then await `changed()`).
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.version_tx.subscribe()
    }

    /// Try to register one more blocked request; `None` when the per-stream limit is reached. The guard
    /// unregisters on drop.
    pub fn try_wait(self: &Arc<Self>, limit: usize) -> Option<WaiterGuard> {
        let prev = self.waiters.fetch_add(1, Ordering::AcqRel);
        if prev >= limit {
            self.waiters.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        Some(WaiterGuard(self.clone()))
    }

    /// Requests blocked on this stream right now.
    pub fn waiters(&self) -> usize {
        self.waiters.load(Ordering::Acquire)
    }

    /// Observe the publication latency of the parts published since the last call (after each frame
    /// packaged).
    pub(crate) fn observe_part_latency(&self, state: &mut StreamState) {
        for (rendition, delays_ms) in state.packager.take_publication_delays() {
            let h = self
                .part_latency
                .get_or_create(&part_latency::RenditionLabels {
                    stream: self.name.clone(),
                    rendition,
                })
                .clone();
            for ms in delays_ms {
                h.observe(f64::from(ms) / 1000.0);
            }
        }
    }

    /// After the packager took input (with the state still locked, so nothing it made is visible
    /// yet): make sure every msn it may have used — the segment in progress included — is below the
    /// reservation on disk ([`crate::hub::msn_store`]), moving the reservation on when it is not.
    pub(crate) fn reserve_msns(&self, state: &StreamState) {
        let Some(dir) = &self.data_dir else {
            return;
        };
        let next = state.packager.next_msn();
        if next < self.reserved_msn.load(Ordering::Acquire) {
            return;
        }
        let reserved = next + crate::hub::msn_store::RESERVE_BLOCK;
        match crate::hub::msn_store::store(dir, &self.name, reserved) {
            Ok(()) => self.reserved_msn.store(reserved, Ordering::Release),
            Err(error) => {
                tracing::error!(stream = %self.name, %error, "cannot reserve media sequence numbers in the data directory: a restart relies on the clock")
            }
        }
    }

    /// Publish an update: bump the version and wake every waiter.
    pub(crate) fn bump(&self, state: &mut StreamState) {
        state.version += 1;
        let v = state.version;
        self.version_tx.send_replace(v);
    }
}

/// Registration of one blocked request (see [`StreamEntry::try_wait`]).
#[derive(Debug)]
pub struct WaiterGuard(Arc<StreamEntry>);

impl Drop for WaiterGuard {
    fn drop(&mut self) {
        self.0.waiters.fetch_sub(1, Ordering::AcqRel);
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
    /// Part publication latency per stream and rendition (`/metrics`).
    part_latency: part_latency::PartLatencyFamily,
}

impl Hub {
    /// A hub with `config`.
    pub fn new(config: HubConfig) -> Arc<Self> {
        Arc::new(Self {
            config,
            streams: Mutex::new(HashMap::new()),
            next_msn: Mutex::new(HashMap::new()),
            shutting_down: Default::default(),
            part_latency: part_latency::part_latency_family(),
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

    /// The first msn for a new packager of `name`: never 0, never a number used before for this name:
    /// at least what this process used, what the data directory has reserved
    /// ([`crate::hub::msn_store`]: across restarts and crashes), and the current Unix time in seconds (for
    /// a data directory that was lost).
    fn first_msn(&self, name: &str) -> u64 {
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

    fn new_entry(&self, name: &str, first_msn: u64, publisher: PublisherInfo) -> Arc<StreamEntry> {
        let (version_tx, _) = watch::channel(0);
        let mut packager = StreamPackager::new(self.config.packager.clone(), first_msn);
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
                let store = Arc::new(crate::hub::keys::KeyStore::open(file));
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
                cache: HashMap::new(),
            }),
            version_tx,
            waiters: AtomicUsize::new(0),
            kicked: Default::default(),
            requests: RequestRate::new(),
            part_latency: self.part_latency.clone(),
            data_dir: self.config.data_dir.clone(),
            reserved_msn: Default::default(),
        })
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
                tracing::info!(stream = %entry.name, "publisher did not come back: stream ended");
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
            }
        }
    }
}

impl Publisher for Hub {
    fn authorize<'a>(
        &'a self,
        request: &'a crate::auth::PublishRequest,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), PublishRefused>> + Send + 'a>>
    {
        Box::pin(async move {
            match &self.config.auth {
                Some(auth) => auth.authorize_publish(request).await,
                None => Ok(()),
            }
        })
    }

    fn begin_publish(
        &self,
        stream: &str,
        protocol: Protocol,
        peer: SocketAddr,
    ) -> Result<Box<dyn PublishSession>, PublishRefused> {
        let Ok(full) = stream.parse::<media::name::StreamName>() else {
            return Err(PublishRefused::InvalidName(stream.to_owned()));
        };
        let full = full.into_string();
        let info = PublisherInfo {
            protocol,
            peer,
            since: Instant::now(),
        };
        let mut streams = self.streams();
        let entry = match streams.get(&full).cloned() {
            Some(entry) => {
                let mut st = entry.lock();
                if st.publisher.is_some() {
                    return Err(PublishRefused::AlreadyLive(full));
                }
                if st.ended_at.is_none() {
                    // Reconnect within the grace period: same playlists, after a discontinuity.
                    st.packager.discontinuity();
                    st.publisher = Some(info);
                    entry.kicked.store(false, Ordering::Release);
                    st.disconnected_at = None;
                    entry.bump(&mut st);
                    tracing::info!(stream = %full, %peer, "publisher reconnected: continuing after a discontinuity");
                    drop(st);
                    entry
                } else {
                    let first = st.packager.next_msn().max(self.first_msn(&full));
                    drop(st);
                    let fresh = self.new_entry(&full, first, info);
                    streams.insert(full.clone(), fresh.clone());
                    // Wake anyone still blocked on the old entry.
                    entry.bump(&mut entry.lock());
                    fresh
                }
            }
            None => {
                if streams.len() >= self.config.max_streams {
                    return Err(PublishRefused::Unavailable("stream limit reached"));
                }
                let fresh = self.new_entry(&full, self.first_msn(&full), info);
                streams.insert(full.clone(), fresh.clone());
                fresh
            }
        };
        drop(streams);
        tracing::info!(stream = %full, %peer, protocol = protocol.as_str(), "publish started");
        let ladder = self
            .config
            .ladder
            .as_ref()
            .filter(|l| l.applies_to(&full))
            .map(|l| crate::hub::ladder::SessionLadder::new(l.clone()));
        let unpublish = self.config.auth.clone().map(|auth| {
            (
                auth,
                crate::auth::PublishRequest {
                    stream: full.clone(),
                    protocol,
                    peer,
                    params: Default::default(),
                },
            )
        });
        entry.lock().unusable_tracks.clear();
        Ok(Box::new(HubSession {
            gate: TrackGate::new(ladder.is_some(), transcoder::check_decoder),
            refused: None,
            entry,
            dropped_frames_logged: false,
            ladder,
            unpublish,
            ingest: IngestCounters::default(),
            flushed_at: Instant::now(),
        }))
    }
}

/// A publish session feeding one stream's packager.
struct HubSession {
    entry: Arc<StreamEntry>,
    /// Which source tracks are used (see [`crate::hub::track_gate`]).
    gate: TrackGate,
    /// Set when the gate refused the publish: the driver closes the connection, events are ignored.
    refused: Option<PublishRefused>,
    dropped_frames_logged: bool,
    /// The stream's ladder, when it is transcoded.
    ladder: Option<crate::hub::ladder::SessionLadder>,
    /// Who to tell when the publish ends (the webhook's `unpublish`).
    unpublish: Option<(Arc<crate::auth::Auth>, crate::auth::PublishRequest)>,
    /// Received since the last flush into the stream state.
    ingest: IngestCounters,
    /// When the counters were last flushed.
    flushed_at: Instant,
}

impl HubSession {
    /// Add the counters gathered since the last flush (and the transcoder's snapshot) to the state.
    fn flush_counters(&mut self) {
        let mut st = self.entry.lock();
        st.ingest.video_frames += self.ingest.video_frames;
        st.ingest.audio_frames += self.ingest.audio_frames;
        st.ingest.bytes += self.ingest.bytes;
        st.transcode = self.ladder.as_ref().and_then(|l| l.stats());
        self.ingest = IngestCounters::default();
        self.flushed_at = Instant::now();
    }
}

impl HubSession {
    /// Package a source frame directly (passthrough).
    fn package(&mut self, frame: media::Frame) {
        let mut st = self.entry.lock();
        let update = st.packager.push_frame(frame, unix_ms());
        self.entry.reserve_msns(&st);
        self.entry.observe_part_latency(&mut st);
        if update.became_ready {
            tracing::info!(stream = %self.entry.name, "playlists ready");
        }
        if update.has_new_media || update.became_ready {
            self.entry.bump(&mut st);
        }
        if !self.dropped_frames_logged
            && st
                .packager
                .renditions()
                .any(|r| r.counters().dropped_frames > 0)
        {
            self.dropped_frames_logged = true;
            tracing::warn!(stream = %self.entry.name, "frames dropped (before a keyframe or going backwards); counted");
        }
    }
}

impl HubSession {
    /// Act on a verdict that is not [`Verdict::Use`]: report an unusable track (one warning, the API and
    /// the metrics), or remember the refusal (the driver logs it once and closes the connection).
    fn judged(&mut self, verdict: Verdict) {
        match verdict {
            Verdict::Use | Verdict::Ignore => {}
            Verdict::Report(track) => {
                tracing::warn!(
                    stream = %self.entry.name,
                    kind = track.kind_name(),
                    codec = %track.codec,
                    reason = %track.reason,
                    "source track not used: the stream continues without it"
                );
                let mut st = self.entry.lock();
                st.unusable_tracks.retain(|t| t.kind != track.kind);
                st.unusable_tracks.push(track);
            }
            Verdict::Refuse(refused) => {
                tracing::debug!(stream = %self.entry.name, reason = %refused, "publish refused by its tracks");
                self.refused = Some(refused);
            }
        }
    }

    /// A source track is used (again): it is no longer reported.
    fn track_used(&self, kind: media::TrackKind) {
        let mut st = self.entry.lock();
        if st.unusable_tracks.iter().any(|t| t.kind == kind) {
            st.unusable_tracks.retain(|t| t.kind != kind);
        }
    }
}

impl PublishSession for HubSession {
    fn is_kicked(&self) -> bool {
        self.entry.is_kicked()
    }

    fn refusal(&self) -> Option<PublishRefused> {
        self.refused.clone()
    }

    fn transport_stats(&mut self, stats: crate::ingest::TransportStats) {
        self.entry.lock().transport = Some(stats);
    }

    fn event(&mut self, event: IngestEvent) {
        if self.refused.is_some() {
            return;
        }
        match event {
            IngestEvent::Track(track) => {
                tracing::info!(stream = %self.entry.name, codec = %track.config.rfc6381(), "track");
                match self.gate.track(&track) {
                    Verdict::Use => self.track_used(track.kind()),
                    verdict => return self.judged(verdict),
                }
                let failed = match &mut self.ladder {
                    Some(ladder) => ladder.track(&self.entry, track.clone()).err(),
                    None => {
                        self.entry.lock().packager.set_track(track.clone());
                        None
                    }
                };
                if let Some(held) = failed {
                    self.fall_back_to_source(held);
                }
            }
            IngestEvent::Unusable(track) => {
                let verdict = self.gate.unusable(track);
                self.judged(verdict);
            }
            IngestEvent::Frame(frame) => {
                match frame.track {
                    media::TrackKind::Video => self.ingest.video_frames += 1,
                    media::TrackKind::Audio => self.ingest.audio_frames += 1,
                }
                self.ingest.bytes += frame.data.len() as u64;
                if self.flushed_at.elapsed() >= Duration::from_secs(1) {
                    self.flush_counters();
                }
                if !self.gate.admits(frame.track) {
                    return;
                }
                let Some(ladder) = &mut self.ladder else {
                    self.package(frame);
                    return;
                };
                if let Err(frames) = ladder.frame(&self.entry, frame) {
                    self.fall_back_to_source(frames);
                }
            }
        }
    }
}

impl HubSession {
    /// The transcoder could not start: package the source as it arrives from now on, beginning with
    /// `frames` (those it held).
    fn fall_back_to_source(&mut self, frames: Vec<media::Frame>) {
        // The tracks that can be packaged as they arrive; the others are refused or reported.
        self.ladder = None;
        for (track, verdict) in self.gate.stop_transcoding() {
            match verdict {
                Verdict::Use => self.entry.lock().packager.set_track(track),
                verdict => self.judged(verdict),
            }
        }
        for frame in frames {
            if self.refused.is_none() && self.gate.admits(frame.track) {
                self.package(frame);
            }
        }
    }
}

impl Drop for HubSession {
    fn drop(&mut self) {
        self.flush_counters();
        // Stop the transcoder (joins its threads) before the stream is marked disconnected.
        self.ladder = None;
        let mut st = self.entry.lock();
        st.transcode = None;
        st.publisher = None;
        st.disconnected_at = Some(Instant::now());
        self.entry.bump(&mut st);
        tracing::info!(stream = %self.entry.name, "publisher disconnected: grace period started");
        drop(st);
        if let Some((auth, request)) = self.unpublish.take() {
            auth.notify_unpublish(request);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
