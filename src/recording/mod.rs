//! Recordings: every rendition of a live stream written to disk as it is produced, replayed as VOD.
//!
//! Layout: `{data_dir}/recordings/live/{name}/{recording id}/` holds `index.jsonl` ([`index`]), the
//! content keys of an encrypted stream (`keys.json`, mode 0600) and one folder per rendition with
//! its init segments (`init-{id}.mp4`) and segments (`{msn}.m4s`): the live stream's CMAF bytes,
//! named as the live URLs name them ([`packager::urls`]), so the VOD playlists and MPD
//! ([`packager::vod`]) address them the same way.
//!
//! A recording begins with the stream and continues across reconnects within the grace period (the
//! same stream entry), and across a restart of the origin (a crash, `kill -9`) when the stream is
//! published again within the grace period of its last write: the segments after the restart follow
//! a discontinuity. It completes when the stream ends; an unfinished recording not resumed within
//! the grace period is closed as interrupted. Completion fires the webhook (`POST` of the
//! recording's facts, [`RecordingFacts`]) and applies retention: recordings that ended more than
//! `max_age` ago, then the oldest while all recordings take more than `max_bytes`, are deleted
//! (never one being recorded).
//!
//! Layout of the module: the service and retention (here), the index format and its reader
//! ([`index`]), the tap on the packager and the writer thread ([`writer`]), the MP4 download
//! ([`download`]).

pub mod download;
pub mod index;
pub mod writer;

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    path::{Path, PathBuf},
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, SystemTime},
};

use packager::urls::{RecordingId, VOD_PREFIX};
use serde::Serialize;

pub use index::Loaded;
pub use writer::RecordingTap;

use crate::hub::unix_ms;

/// The recordings' folder under the data directory.
pub const RECORDINGS_DIR: &str = "recordings";
/// The folder under the data directory of the DVR stores of streams that are not recorded: written
/// like recordings, deleted when their stream ends (and at the next housekeeping after a crash).
pub const DVR_DIR: &str = "dvr";

/// `[recording]`: which streams are recorded, retention and the completion webhook.
#[derive(Debug, Clone, Default)]
pub struct RecordingConfig {
    /// Record every stream (unless `streams` says otherwise).
    pub enabled: bool,
    /// Per-stream choice overriding `enabled`: `live/{name}` → record or not.
    pub streams: BTreeMap<String, bool>,
    /// Delete recordings that ended longer ago than this.
    pub max_age: Option<Duration>,
    /// Delete the oldest recordings while all of them take more than this many bytes.
    pub max_bytes: Option<u64>,
    /// `POST` a recording's facts here when it completes.
    pub webhook_url: Option<hyper::Uri>,
}

impl RecordingConfig {
    /// True when stream `name` (`live/{name}`) is recorded.
    pub fn records(&self, name: &str) -> bool {
        self.streams.get(name).copied().unwrap_or(self.enabled)
    }

    /// True when any stream may be recorded.
    pub fn any(&self) -> bool {
        self.enabled || self.streams.values().any(|v| *v)
    }
}

/// Status of a recording.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordingStatus {
    /// Being written.
    Recording,
    /// Ended with its stream.
    Complete,
    /// Cut by an origin that stopped without ending it (closed by the origin that found it, or not
    /// closed yet).
    Interrupted,
}

/// One rendition of a recording, as the API lists it.
#[derive(Debug, Clone, Serialize)]
pub struct RenditionFacts {
    /// Rendition name.
    pub name: String,
    /// `video` or `audio`.
    pub kind: &'static str,
    /// RFC 6381 codec string of its latest init segment.
    pub codec: String,
    /// Picture width and height in pixels (video).
    pub size: Option<(u32, u32)>,
    /// Segments recorded.
    pub segments: usize,
    /// Duration of its segments, ms.
    pub duration_ms: u64,
    /// Size of its segments, bytes.
    pub bytes: u64,
}

/// A recording as the API lists it and the webhook sends it.
#[derive(Debug, Clone, Serialize)]
pub struct RecordingFacts {
    /// The stream, `live/{name}`.
    pub stream: String,
    /// The recording's id.
    pub id: String,
    /// Status.
    pub status: RecordingStatus,
    /// When it began, Unix ms.
    pub started_ms: i64,
    /// When its media ends (wall clock of its last segment's end), Unix ms.
    pub ended_ms: i64,
    /// Duration of its longest rendition, ms.
    pub duration_ms: u64,
    /// Bytes on disk (init segments and segments).
    pub bytes: u64,
    /// Its renditions.
    pub renditions: Vec<RenditionFacts>,
    /// The VOD multivariant playlist's path (under the same token scheme as the live stream).
    pub hls: String,
    /// The static MPD's path (`None` for an encrypted recording: replayed over HLS AES-128 only).
    pub dash: Option<String>,
    /// One MP4 file per video rendition (with the audio), or of the audio alone.
    pub downloads: Vec<String>,
}

/// Why a recording was not deleted.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DeleteError {
    /// No such recording.
    #[error("no such recording")]
    NotFound,
    /// It is being recorded.
    #[error("the recording is in progress")]
    InProgress,
    /// The disk refused.
    #[error("cannot delete: {0}")]
    Io(String),
}

/// The recordings of this origin: starts them, lists, reads, deletes and expires them.
#[derive(Debug)]
pub struct Recorder {
    root: PathBuf,
    /// Where the DVR stores of streams not recorded go ([`DVR_DIR`]).
    dvr_root: PathBuf,
    config: RecordingConfig,
    reconnect_grace: Duration,
    /// Recordings being written: (stream, id).
    active: Mutex<HashSet<(String, String)>>,
    /// Loaded indexes by directory, with the index's length when loaded.
    cache: Mutex<HashMap<PathBuf, (u64, Arc<Loaded>)>>,
    /// Segments written since start.
    pub(crate) segments: AtomicU64,
    /// Bytes of segments written since start.
    pub(crate) bytes: AtomicU64,
    /// Recordings stopped by a write error or a writer that could not keep up.
    pub(crate) failures: AtomicU64,
    /// Recordings deleted by retention.
    pub(crate) expired: AtomicU64,
    webhook: Option<Webhook>,
}

impl Recorder {
    /// The recordings under `{data_dir}/recordings`, recorded per `config`; an unfinished recording
    /// is resumed by a publish within `reconnect_grace` of its last write.
    pub fn new(data_dir: &Path, config: RecordingConfig, reconnect_grace: Duration) -> Arc<Self> {
        let webhook = config.webhook_url.clone().map(Webhook::new);
        Arc::new(Self {
            root: data_dir.join(RECORDINGS_DIR),
            dvr_root: data_dir.join(DVR_DIR),
            config,
            reconnect_grace,
            active: Mutex::default(),
            cache: Mutex::default(),
            segments: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            expired: AtomicU64::new(0),
            webhook,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &RecordingConfig {
        &self.config
    }

    /// The directory of recording `id` of `stream`.
    pub fn dir_of(&self, stream: &str, id: &str) -> PathBuf {
        self.root.join(stream).join(id)
    }

    /// Begin recording `stream` when it is recorded, or when it has a DVR window (`dvr`: its
    /// segments that leave the live window are served from the recording). A recorded stream
    /// resumes its latest recording when it is unfinished and was written within the grace period
    /// (an origin restart), else starts a new one; a stream recorded only for its DVR window gets a
    /// store under [`DVR_DIR`], deleted when the stream ends. `None` when neither, or when the
    /// directory cannot be made (logged, counted: the stream goes on unrecorded).
    pub fn start(self: &Arc<Self>, stream: &str, dvr: bool) -> Option<RecordingTap> {
        let keep = self.config.records(stream);
        if !keep && !dvr {
            return None;
        }
        let begun = if keep {
            self.begin(stream)
        } else {
            self.begin_dvr_store(stream)
        };
        match begun {
            Ok(tap) => Some(tap),
            Err((path, error)) => {
                tracing::error!(%stream, path = %path.display(), %error, "cannot start recording (the live stream goes on unrecorded)");
                self.failures.fetch_add(1, Ordering::Relaxed);
                None
            }
        }
    }

    fn begin(self: &Arc<Self>, stream: &str) -> Result<RecordingTap, (PathBuf, std::io::Error)> {
        let folder = self.root.join(stream);
        std::fs::create_dir_all(&folder).map_err(|e| (folder.clone(), e))?;
        if let Some((id, dir)) = self.latest_unfinished(stream) {
            let fresh = std::fs::metadata(dir.join(index::INDEX_FILE))
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| SystemTime::now().duration_since(t).ok())
                .is_some_and(|age| age <= self.reconnect_grace + Duration::from_secs(2));
            if fresh && self.mark_active(stream, &id) {
                let resumed = (|| {
                    writer::end_cut_line(&dir)?;
                    let mut index = writer::open_index(&dir)?;
                    writer::append_line(
                        &mut index,
                        &index::IndexLine::Resume { at_ms: unix_ms() },
                    )?;
                    writer::spawn(
                        self.clone(),
                        stream.to_owned(),
                        id.clone(),
                        dir.clone(),
                        index,
                        true,
                        false,
                    )
                })();
                return match resumed {
                    Ok(tap) => {
                        tracing::info!(%stream, recording = %id, "recording resumed after a restart (its next segments follow a discontinuity)");
                        Ok(tap)
                    }
                    Err(e) => {
                        self.unmark_active(stream, &id);
                        Err((dir, e))
                    }
                };
            }
            // Closed here without retention: the publish waits for this (retention runs at the
            // next housekeeping).
            self.close_interrupted(stream, &id, &dir, false);
        }
        let now = unix_ms();
        let (id, dir) = (1..=999)
            .map(|n| RecordingId::at(now, n).as_str().to_owned())
            .map(|id| (folder.join(&id), id))
            .find(|(dir, _)| !dir.exists())
            .map(|(dir, id)| (id, dir))
            .ok_or_else(|| {
                (
                    folder.clone(),
                    std::io::Error::other("999 recordings began in one second"),
                )
            })?;
        // Claimed before its folder exists: retention never sees it unclaimed.
        self.mark_active(stream, &id);
        let started = self.create(stream, &id, &dir, now, false);
        if started.is_ok() {
            tracing::info!(%stream, recording = %id, dir = %dir.display(), "recording started");
        }
        started
    }

    /// Make the folder of a claimed recording (or DVR store) `id`, its index with the start line,
    /// and its writer; the claim is dropped on failure.
    fn create(
        self: &Arc<Self>,
        stream: &str,
        id: &str,
        dir: &Path,
        now: i64,
        dvr_only: bool,
    ) -> Result<RecordingTap, (PathBuf, std::io::Error)> {
        let made = (|| {
            std::fs::create_dir_all(dir)?;
            let mut index = writer::open_index(dir)?;
            writer::append_line(
                &mut index,
                &index::IndexLine::Start(index::StartLine {
                    stream: stream.to_owned(),
                    id: id.to_owned(),
                    at_ms: now,
                }),
            )?;
            writer::spawn(
                self.clone(),
                stream.to_owned(),
                id.to_owned(),
                dir.to_owned(),
                index,
                false,
                dvr_only,
            )
        })();
        made.map_err(|e| {
            self.unmark_active(stream, id);
            (dir.to_owned(), e)
        })
    }

    /// Recordings and DVR stores being written (or closed) now.
    pub fn writers(&self) -> usize {
        self.active.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    fn unmark_active(&self, stream: &str, id: &str) {
        self.active
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&(stream.to_owned(), id.to_owned()));
    }

    /// A DVR store for `stream` (not recorded): earlier stores of the stream that nothing writes
    /// are deleted first.
    fn begin_dvr_store(
        self: &Arc<Self>,
        stream: &str,
    ) -> Result<RecordingTap, (PathBuf, std::io::Error)> {
        let folder = self.dvr_root.join(stream);
        self.remove_stale_dvr_stores(&folder, stream);
        let now = unix_ms();
        let id = (1..=999)
            .map(|n| RecordingId::at(now, n).as_str().to_owned())
            .find(|id| !folder.join(id).exists())
            .ok_or_else(|| (folder.clone(), std::io::Error::other("no free store id")))?;
        let dir = folder.join(&id);
        self.mark_active(stream, &id);
        let started = self.create(stream, &id, &dir, now, true);
        if started.is_ok() {
            tracing::info!(%stream, dir = %dir.display(), "DVR store started (deleted when the stream ends)");
        }
        started
    }

    /// Delete the DVR stores under `folder` (of `stream`) that nothing writes.
    fn remove_stale_dvr_stores(&self, folder: &Path, stream: &str) {
        let Ok(ids) = std::fs::read_dir(folder) else {
            return;
        };
        for e in ids.filter_map(Result::ok) {
            let id = e.file_name().to_string_lossy().to_string();
            if !self.is_active(stream, &id) {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }

    /// A DVR store's writer is done: it is deleted.
    pub(crate) fn dvr_store_finished(&self, stream: &str, id: &str, dir: &Path) {
        self.active
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&(stream.to_owned(), id.to_owned()));
        if let Err(error) = std::fs::remove_dir_all(dir) {
            tracing::warn!(%stream, dir = %dir.display(), %error, "cannot delete a DVR store");
        }
    }

    fn mark_active(&self, stream: &str, id: &str) -> bool {
        self.active
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert((stream.to_owned(), id.to_owned()))
    }

    fn is_active(&self, stream: &str, id: &str) -> bool {
        self.active
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(&(stream.to_owned(), id.to_owned()))
    }

    /// The latest recording of `stream` without an `end` line, if it is not being written.
    fn latest_unfinished(&self, stream: &str) -> Option<(String, PathBuf)> {
        let mut ids: Vec<String> = std::fs::read_dir(self.root.join(stream))
            .ok()?
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|id| RecordingId::parse(id).is_some())
            .collect();
        ids.sort_by_key(|id| RecordingId::parse(id));
        let id = ids.pop()?;
        let dir = self.dir_of(stream, &id);
        let loaded = index::load(&dir).ok()?;
        (loaded.ended_ms.is_none() && !self.is_active(stream, &id)).then_some((id, dir))
    }

    /// Close an unfinished recording no origin writes any more: an `end` line marked interrupted,
    /// then the webhook and retention as for any completed recording.
    fn close_interrupted(&self, stream: &str, id: &str, dir: &Path, retention: bool) {
        // Claimed while it is closed: a resume, another closer or retention cannot step in.
        if !self.mark_active(stream, id) {
            return;
        }
        let end_ms = index::load(dir).map_or_else(|_| unix_ms(), |l| l.media_end_ms);
        let closed = writer::end_cut_line(dir)
            .and_then(|()| writer::open_index(dir))
            .and_then(|mut f| {
                writer::append_line(
                    &mut f,
                    &index::IndexLine::End {
                        at_ms: end_ms,
                        interrupted: true,
                    },
                )
            });
        match closed {
            Ok(()) => {
                tracing::warn!(%stream, recording = %id, "recording was cut by an origin that stopped without ending it: closed as interrupted (playable up to its last complete segment)");
                self.complete(stream, id, retention);
            }
            Err(error) => {
                self.unmark_active(stream, id);
                tracing::error!(%stream, recording = %id, %error, "cannot close an interrupted recording");
            }
        }
    }

    /// A recording's writer is done: no longer active; webhook; retention.
    pub(crate) fn finished(&self, stream: &str, id: &str) {
        self.complete(stream, id, true);
    }

    /// A recording is complete (or closed as interrupted): no longer active; webhook; retention
    /// when `retention`.
    fn complete(&self, stream: &str, id: &str, retention: bool) {
        self.unmark_active(stream, id);
        let facts = self.get(stream, id).map(|l| self.facts(&l));
        if let Some(f) = &facts {
            tracing::info!(%stream, recording = %id, duration_ms = f.duration_ms, bytes = f.bytes, status = ?f.status, "recording complete");
        }
        if let (Some(hook), Some(facts)) = (&self.webhook, facts) {
            let mut body = serde_json::to_value(&facts).unwrap_or_default();
            if let Some(o) = body.as_object_mut() {
                o.insert("event".into(), "recording_complete".into());
                o.insert(
                    "dir".into(),
                    self.dir_of(stream, id).display().to_string().into(),
                );
            }
            hook.post(body, format!("recording webhook ({stream} {id})"));
        }
        if retention {
            self.apply_retention();
        }
    }

    /// The recording `id` of `stream`, read from disk (cached until its index grows).
    pub fn get(&self, stream: &str, id: &str) -> Option<Arc<Loaded>> {
        RecordingId::parse(id)?;
        let dir = self.dir_of(stream, id);
        let len = std::fs::metadata(dir.join(index::INDEX_FILE)).ok()?.len();
        if let Some((l, loaded)) = self
            .cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&dir)
            && *l == len
        {
            return Some(loaded.clone());
        }
        let loaded = match index::load(&dir) {
            Ok(l) if l.stream == stream => Arc::new(l),
            Ok(_) => return None,
            Err(error) => {
                tracing::warn!(%stream, recording = %id, %error, "unreadable recording");
                return None;
            }
        };
        if loaded.bad_lines > 1 {
            tracing::warn!(%stream, recording = %id, bad_lines = loaded.bad_lines, "recording index has damaged lines (skipped)");
        }
        self.cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(dir, (len, loaded.clone()));
        Some(loaded)
    }

    /// Every recording on disk, oldest first.
    pub fn list(&self) -> Vec<Arc<Loaded>> {
        let mut out = Vec::new();
        let live = self
            .root
            .join(media::name::LIVE_PREFIX.trim_end_matches('/'));
        let Ok(names) = std::fs::read_dir(&live) else {
            return out;
        };
        for name in names.filter_map(Result::ok) {
            let Some(name) = name.file_name().to_str().map(str::to_owned) else {
                continue;
            };
            let Ok(stream) = media::name::StreamName::from_name(&name) else {
                continue;
            };
            let Ok(ids) = std::fs::read_dir(live.join(&name)) else {
                continue;
            };
            for id in ids.filter_map(Result::ok) {
                if let Some(id) = id.file_name().to_str()
                    && let Some(l) = self.get(stream.as_str(), id)
                {
                    out.push(l);
                }
            }
        }
        out.sort_by(|a, b| (a.started_ms, &a.id).cmp(&(b.started_ms, &b.id)));
        out
    }

    /// The facts of a loaded recording, for the API and the webhook.
    pub fn facts(&self, l: &Loaded) -> RecordingFacts {
        let status = if self.is_active(&l.stream, l.id.as_str()) {
            RecordingStatus::Recording
        } else if l.interrupted || l.ended_ms.is_none() {
            RecordingStatus::Interrupted
        } else {
            RecordingStatus::Complete
        };
        let base = format!("/{VOD_PREFIX}{}/{}/", l.stream, l.id);
        let renditions: Vec<RenditionFacts> = l
            .recording
            .renditions
            .iter()
            .map(|r| RenditionFacts {
                name: r.name.clone(),
                kind: match r.kind {
                    media::TrackKind::Video => "video",
                    media::TrackKind::Audio => "audio",
                },
                codec: r.inits.last().map(|i| i.codec.clone()).unwrap_or_default(),
                size: r.inits.last().and_then(|i| i.size),
                segments: r.segments.len(),
                duration_ms: r.duration_ticks().saturating_mul(1000)
                    / u64::from(r.timescale.max(1)),
                bytes: r.size_bytes(),
            })
            .collect();
        let has_video = renditions.iter().any(|r| r.kind == "video");
        let downloads = renditions
            .iter()
            .filter(|r| r.segments > 0 && (r.kind == "video" || !has_video))
            .map(|r| format!("{base}{}.mp4", r.name))
            .collect();
        RecordingFacts {
            stream: l.stream.clone(),
            id: l.id.to_string(),
            status,
            started_ms: l.started_ms,
            ended_ms: l.media_end_ms,
            duration_ms: l.recording.duration_ms(),
            bytes: l.bytes,
            renditions,
            hls: format!("{base}index.m3u8"),
            dash: (!l.recording.is_encrypted()).then(|| format!("{base}manifest.mpd")),
            downloads,
        }
    }

    /// Delete recording `id` of `stream` (not while it is being recorded).
    ///
    /// Errors: [`DeleteError`].
    pub fn delete(&self, stream: &str, id: &str) -> Result<(), DeleteError> {
        if RecordingId::parse(id).is_none() || stream.parse::<media::name::StreamName>().is_err() {
            return Err(DeleteError::NotFound);
        }
        if self.is_active(stream, id) {
            return Err(DeleteError::InProgress);
        }
        let dir = self.dir_of(stream, id);
        if !dir.join(index::INDEX_FILE).exists() {
            return Err(DeleteError::NotFound);
        }
        self.cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&dir);
        std::fs::remove_dir_all(&dir).map_err(|e| DeleteError::Io(e.to_string()))
    }

    /// Apply retention now: close unfinished recordings nobody writes (older than the grace
    /// period), delete those that ended more than `max_age` ago, then the oldest while all take more
    /// than `max_bytes`. Never one being recorded.
    pub fn apply_retention(&self) {
        let all = self.list();
        let now = unix_ms();
        let mut kept = Vec::new();
        for l in all {
            let active = self.is_active(&l.stream, l.id.as_str());
            let ended_at = l.ended_ms.unwrap_or(l.media_end_ms);
            let too_old = self.config.max_age.is_some_and(|age| {
                now.saturating_sub(ended_at) > i64::try_from(age.as_millis()).unwrap_or(i64::MAX)
            });
            if !active && too_old {
                self.expire(&l, "older than recording.max_age");
            } else {
                kept.push((l, active));
            }
        }
        if let Some(max) = self.config.max_bytes {
            let mut total: u64 = kept.iter().map(|(l, _)| l.bytes).sum();
            for (l, active) in &kept {
                if total <= max {
                    break;
                }
                if *active {
                    continue;
                }
                if self.expire(l, "recordings over recording.max_bytes") {
                    total = total.saturating_sub(l.bytes);
                }
            }
        }
    }

    fn expire(&self, l: &Loaded, reason: &str) -> bool {
        match self.delete(&l.stream, l.id.as_str()) {
            Ok(()) => {
                self.expired.fetch_add(1, Ordering::Relaxed);
                tracing::info!(stream = %l.stream, recording = %l.id, bytes = l.bytes, reason, "recording deleted by retention");
                true
            }
            Err(error) => {
                tracing::warn!(stream = %l.stream, recording = %l.id, %error, "retention could not delete a recording");
                false
            }
        }
    }

    /// Close recordings left unfinished by an origin that stopped (not resumed within the grace
    /// period), then apply retention; every `every` until `shutdown` turns true.
    pub async fn run_housekeeping(
        self: Arc<Self>,
        every: Duration,
        mut shutdown: tokio::sync::watch::Receiver<bool>,
    ) {
        let mut interval = tokio::time::interval(every);
        loop {
            tokio::select! {
                _ = interval.tick() => {
                    let me = self.clone();
                    let _ = tokio::task::spawn_blocking(move || me.housekeeping()).await;
                }
                _ = shutdown.changed() => {
                    if *shutdown.borrow() { return; }
                }
            }
        }
    }

    fn housekeeping(&self) {
        // DVR stores left by an origin that stopped.
        if let Ok(names) = std::fs::read_dir(self.dvr_root.join("live")) {
            for name in names.filter_map(Result::ok) {
                let stream = format!("live/{}", name.file_name().to_string_lossy());
                self.remove_stale_dvr_stores(&name.path(), &stream);
            }
        }
        for l in self.list() {
            if l.ended_ms.is_some() || self.is_active(&l.stream, l.id.as_str()) {
                continue;
            }
            let dir = self.dir_of(&l.stream, l.id.as_str());
            let stale = std::fs::metadata(dir.join(index::INDEX_FILE))
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| SystemTime::now().duration_since(t).ok())
                .is_some_and(|age| age > self.reconnect_grace + Duration::from_secs(2));
            if stale {
                self.close_interrupted(&l.stream, l.id.as_str(), &dir, false);
            }
        }
        self.apply_retention();
    }
}

/// The completion webhook: `POST {url}` with the recording's facts as JSON (plus `"event":
/// "recording_complete"` and `"dir"`, the recording's directory), answered within 10 s or logged
/// as failed. A notification: nothing waits for it.
struct Webhook {
    url: hyper::Uri,
    client: hyper_util::client::legacy::Client<
        hyper_util::client::legacy::connect::HttpConnector,
        http_body_util::Full<bytes::Bytes>,
    >,
    /// The runtime it is sent from (writers are threads of their own).
    runtime: Option<tokio::runtime::Handle>,
}

impl std::fmt::Debug for Webhook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Webhook").field("url", &self.url).finish()
    }
}

impl Webhook {
    const TIMEOUT: Duration = Duration::from_secs(10);

    fn new(url: hyper::Uri) -> Self {
        let client =
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .build_http();
        Self {
            url,
            client,
            runtime: tokio::runtime::Handle::try_current().ok(),
        }
    }

    fn post(&self, body: serde_json::Value, what: String) {
        let Some(rt) = &self.runtime else { return };
        let req = hyper::Request::post(self.url.clone())
            .header(hyper::header::CONTENT_TYPE, "application/json")
            .header(hyper::header::USER_AGENT, "estuary")
            .body(http_body_util::Full::new(bytes::Bytes::from(
                body.to_string(),
            )));
        let Ok(req) = req else { return };
        let client = self.client.clone();
        rt.spawn(async move {
            match tokio::time::timeout(Self::TIMEOUT, client.request(req)).await {
                Ok(Ok(resp)) if resp.status().is_success() => {}
                Ok(Ok(resp)) => tracing::warn!(
                    status = resp.status().as_u16(),
                    "{what} answered with an error"
                ),
                Ok(Err(error)) => tracing::warn!(%error, "{what} failed"),
                Err(_) => tracing::warn!("{what}: no answer within {:?}", Self::TIMEOUT),
            }
        });
    }
}

#[cfg(test)]
mod tests;
