//! One stream's entry in the hub: its state under a short lock (packager, publisher, counters, the
//! playlists and MPD rendered once per update), the version that wakes blocked requests, the blocked
//! request count and request rate, and the msn reservation on disk.

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
use packager::StreamPackager;
use tokio::sync::watch;

use super::{part_latency, unix_ms};
use crate::ingest::{Protocol, UnusableTrack};

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
    /// What the stream offers WebRTC viewers: its video renditions, which fit and why not (fed only
    /// when WebRTC is served).
    pub webrtc_feed: crate::webrtc::feed::WebRtcFeed,
    /// Timed metadata waiting for a frame to be stamped with, and the stream's event rate limit.
    pub(super) events: crate::hub::events::EventQueue,
    /// The stream's recording (or DVR store), while it is written: takes every segment completed.
    pub(crate) recording: Option<crate::recording::RecordingTap>,
    /// Where the segments of the DVR window that left the live window are read from: the
    /// recording's (or DVR store's) directory, kept after the recording completes.
    pub(crate) store_dir: Option<std::path::PathBuf>,
    pub(super) cache: HashMap<(String, bool), (u64, Bytes)>,
}

impl StreamState {
    /// The stream ended (its last segments were taken): its recording completes. A DVR store is
    /// deleted with it, so the playlists list the live window from now on.
    pub(crate) fn end_recording(&mut self) {
        if let Some(tap) = self.recording.take()
            && tap.is_dvr_only()
        {
            self.packager.set_dvr_window(None);
            self.store_dir = None;
        }
    }

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
    pub(super) state: Mutex<StreamState>,
    pub(super) version_tx: watch::Sender<u64>,
    pub(super) waiters: AtomicUsize,
    /// Set by [`Hub::kick`](super::Hub::kick): the current publisher's session reports it and its
    /// driver disconnects.
    pub(super) kicked: std::sync::atomic::AtomicBool,
    /// HTTP requests for this stream's objects.
    pub(super) requests: RequestRate,
    /// The hub's part publication latency histograms.
    pub(super) part_latency: part_latency::PartLatencyFamily,
    /// Where this stream's msn reservation is written ([`crate::hub::msn_store`]), if anywhere.
    pub(super) data_dir: Option<std::path::PathBuf>,
    /// Every msn below this is reserved on disk (0: nothing written yet).
    pub(super) reserved_msn: std::sync::atomic::AtomicU64,
    /// The cluster, which reserves the stream's numbers in its store.
    pub(super) cluster: Option<Arc<crate::cluster::Cluster>>,
    /// The WebRTC engine, when WHEP is served: given the stream's video frames and Opus packets.
    pub(super) webrtc: Option<Arc<crate::webrtc::WebRtc>>,
    /// Set while timed metadata waits in the state for a frame (checked without the lock per frame).
    pub(super) events_waiting: std::sync::atomic::AtomicBool,
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

    pub(super) fn new() -> Self {
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
        if let Some(cluster) = &self.cluster {
            cluster.note_sequence(
                &self.name,
                state.packager.next_msn(),
                state.packager.latest_discontinuity_sequence(),
            );
        }
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
        if let Some(tap) = state.recording.as_mut() {
            tap.collect(&state.packager);
            if !tap.is_writing() && state.packager.config().dvr_window.is_some() {
                // The store stopped (logged there): segments leaving the live window can no
                // longer be served.
                tracing::warn!(stream = %self.name, "DVR window closed: its store stopped; playlists list the live window only");
                state.packager.set_dvr_window(None);
            }
        }
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
