//! Writing a recording: the tap on a stream's packager (under the stream's lock: what completed since
//! the last look, as cheap `Bytes` clones) and the writer thread that puts it on disk.
//!
//! Crash safety: a segment's file is written and synced before its index line is appended (and
//! synced), so every segment the index lists is whole on disk; a line cut by a crash is skipped when
//! the index is read ([`super::index::load`]).
//!
//! Failure: when a write fails (disk full, unwritable) the recording stops with one error line and a
//! counted failure; the live stream goes on, and what was written stays listed. When the writer cannot
//! keep up (its queue of [`QUEUE_JOBS`] is full) the recording stops the same way.

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    fs::{File, OpenOptions},
    io::Write,
    path::{Path, PathBuf},
    sync::{Arc, atomic::Ordering, mpsc},
};

use bytes::Bytes;
use media::TrackKind;
use packager::StreamPackager;

use super::{
    Recorder,
    index::{INDEX_FILE, IndexLine, InitLine, SegmentLine},
};
use crate::hub::unix_ms;

/// Jobs queued for a recording's writer before the recording is stopped as unable to keep up
/// (about 40 s of a five-rendition ladder cut in 2 s segments).
pub const QUEUE_JOBS: usize = 512;

/// The file of a recording's content keys (mode 0600, replaced atomically).
pub const KEYS_FILE: &str = "keys.json";

/// What the writer does next.
enum Job {
    /// A DVR store's segments of `rendition` below `msn` left the window: their files go.
    Prune {
        rendition: String,
        msn: u64,
    },
    Init {
        line: InitLine,
        bytes: Bytes,
    },
    Segment {
        line: SegmentLine,
        parts: Vec<Bytes>,
    },
    Key {
        id: u64,
        key: [u8; 16],
    },
}

/// A stream's recording seen from its packager: call [`Self::collect`] after every update (with the
/// stream's state locked). Dropping it completes the recording.
#[derive(Debug)]
pub struct RecordingTap {
    stream: String,
    id: String,
    dir: PathBuf,
    dvr_only: bool,
    tx: Option<mpsc::SyncSender<Job>>,
    /// Per rendition, the msn of the last segment handed to the writer.
    last_msn: HashMap<String, u64>,
    /// Per rendition, the oldest msn a DVR store keeps (those below were pruned).
    pruned: HashMap<String, u64>,
    inits: HashSet<(String, u64)>,
    keys: HashSet<u64>,
    /// Renditions whose first segment in this process follows a discontinuity (a resumed recording).
    resumed: bool,
    recorder: Arc<Recorder>,
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Job")
    }
}

impl RecordingTap {
    /// The recording's id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The recording's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// False once the recording stopped (a write error, a writer that could not keep up).
    pub fn is_writing(&self) -> bool {
        self.tx.is_some()
    }

    /// True for a DVR store (deleted when its stream ends), false for a recording.
    pub fn is_dvr_only(&self) -> bool {
        self.dvr_only
    }

    /// Hand the writer every segment completed since the last call (with its init segment and
    /// content key the first time they are needed).
    pub fn collect(&mut self, packager: &StreamPackager) {
        if self.tx.is_none() {
            return;
        }
        for r in packager.renditions() {
            let name = r.name();
            // A DVR store keeps what the playlists list, no more.
            if self.dvr_only {
                let oldest = r
                    .archive()
                    .front()
                    .map(|a| a.msn)
                    .or(r.segments().front().map(|s| s.msn));
                if let Some(oldest) = oldest
                    && self.pruned.get(name).is_none_or(|p| *p < oldest)
                {
                    self.pruned.insert(name.to_owned(), oldest);
                    if !self.send(Job::Prune {
                        rendition: name.to_owned(),
                        msn: oldest,
                    }) {
                        return;
                    }
                }
            }
            let last = self.last_msn.get(name).copied();
            for s in r.segments().iter().filter(|s| s.is_complete) {
                if last.is_some_and(|l| s.msn <= l) {
                    continue;
                }
                if !self.inits.contains(&(name.to_owned(), s.init_id)) {
                    let Some(bytes) = r.init(s.init_id).cloned() else {
                        continue;
                    };
                    let track = r.init_track(s.init_id).unwrap_or(r.track());
                    let line = InitLine {
                        rendition: name.to_owned(),
                        kind: match r.kind() {
                            TrackKind::Video => "video".into(),
                            TrackKind::Audio => "audio".into(),
                        },
                        timescale: r.timescale(),
                        id: s.init_id,
                        codec: track.config.rfc6381(),
                        size: track.config.video_params().map(|p| (p.width, p.height)),
                        frame_rate: r.frame_rate(s.init_id),
                        audio: match &track.config {
                            media::CodecConfig::Aac(a) => Some((a.channels, a.sample_rate)),
                            _ => None,
                        },
                        bytes: bytes.len() as u64,
                    };
                    if !self.send(Job::Init { line, bytes }) {
                        return;
                    }
                    self.inits.insert((name.to_owned(), s.init_id));
                }
                if let Some(k) = &s.key
                    && self.keys.insert(k.key.id)
                    && !self.send(Job::Key {
                        id: k.key.id,
                        key: k.key.key,
                    })
                {
                    return;
                }
                // A resumed recording's first segment of each rendition follows the restart.
                let discontinuity =
                    s.is_discontinuity || (self.resumed && !self.last_msn.contains_key(name));
                let line = SegmentLine {
                    rendition: name.to_owned(),
                    msn: s.msn,
                    init_id: s.init_id,
                    earliest_pts: s.earliest_pts,
                    duration_ticks: s.duration_ticks(),
                    pdt_ms: s.program_date_time_ms,
                    discontinuity,
                    bytes: s.size_bytes() as u64,
                    key: s
                        .key
                        .as_ref()
                        .map(|k| (k.key.id, packager::crypto::hex(&k.iv))),
                };
                let parts = s.parts.iter().map(|p| p.bytes.clone()).collect();
                if !self.send(Job::Segment { line, parts }) {
                    return;
                }
                self.last_msn.insert(name.to_owned(), s.msn);
            }
        }
    }

    /// Queue `job`; false (and the recording stopped) when the writer is gone or cannot keep up.
    fn send(&mut self, job: Job) -> bool {
        let Some(tx) = &self.tx else { return false };
        match tx.try_send(job) {
            Ok(()) => true,
            Err(mpsc::TrySendError::Full(_)) => {
                tracing::error!(stream = %self.stream, recording = %self.id, queued = QUEUE_JOBS, "recording stopped: the disk cannot keep up with the stream (the live stream goes on; what was recorded is kept)");
                self.recorder.failures.fetch_add(1, Ordering::Relaxed);
                self.tx = None;
                false
            }
            // The writer stopped on a write error (logged and counted there).
            Err(mpsc::TrySendError::Disconnected(_)) => {
                self.tx = None;
                false
            }
        }
    }
}

/// Start the writer thread of the recording in `dir` (whose index is already open as `index`) and
/// its tap.
pub(super) fn spawn(
    recorder: Arc<Recorder>,
    stream: String,
    id: String,
    dir: PathBuf,
    index: File,
    resumed: bool,
    dvr_only: bool,
) -> std::io::Result<RecordingTap> {
    let (tx, rx) = mpsc::sync_channel(QUEUE_JOBS);
    let writer = Writer {
        dir: dir.clone(),
        index,
        keys: read_keys(&recorder, &stream, &id),
        created: HashSet::new(),
        dvr_only,
        written: HashMap::new(),
    };
    let rec = recorder.clone();
    let (s, i) = (stream.clone(), id.clone());
    std::thread::Builder::new()
        .name(format!("rec {stream}"))
        .spawn(move || writer.run(rx, &rec, &s, &i))?;
    Ok(RecordingTap {
        stream,
        id,
        dir,
        dvr_only,
        tx: Some(tx),
        last_msn: HashMap::new(),
        pruned: HashMap::new(),
        inits: HashSet::new(),
        keys: HashSet::new(),
        resumed,
        recorder,
    })
}

fn read_keys(recorder: &Recorder, stream: &str, id: &str) -> BTreeMap<u64, String> {
    let path = recorder.dir_of(stream, id).join(KEYS_FILE);
    std::fs::read(path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

struct Writer {
    dir: PathBuf,
    index: File,
    /// Content keys by id (hex), as `keys.json` holds them.
    keys: BTreeMap<u64, String>,
    /// Rendition folders made.
    created: HashSet<String>,
    /// A DVR store (not a recording): deleted when done, its segments as they leave the window.
    dvr_only: bool,
    /// A DVR store's segment files on disk, per rendition, oldest first.
    written: HashMap<String, std::collections::VecDeque<u64>>,
}

impl Writer {
    fn run(mut self, rx: mpsc::Receiver<Job>, recorder: &Arc<Recorder>, stream: &str, id: &str) {
        let mut failed = false;
        for job in rx.iter() {
            if let Err((path, error)) = self.write(job, recorder) {
                tracing::error!(%stream, recording = %id, path = %path.display(), %error, "recording stopped: cannot write (the live stream goes on; what was recorded is kept)");
                recorder.failures.fetch_add(1, Ordering::Relaxed);
                failed = true;
                break;
            }
        }
        drop(rx);
        if self.dvr_only {
            recorder.dvr_store_finished(stream, id, &self.dir);
            return;
        }
        let end = IndexLine::End {
            at_ms: unix_ms(),
            interrupted: false,
        };
        if let Err((path, error)) = self.append(&end)
            && !failed
        {
            tracing::error!(%stream, recording = %id, path = %path.display(), %error, "cannot close the recording's index (it stays readable)");
            recorder.failures.fetch_add(1, Ordering::Relaxed);
        }
        recorder.finished(stream, id);
    }

    fn write(&mut self, job: Job, recorder: &Recorder) -> Result<(), (PathBuf, std::io::Error)> {
        match job {
            Job::Init { line, bytes } => {
                let path = self.file(&line.rendition, &format!("init-{}.mp4", line.id))?;
                write_synced(&path, &[bytes])?;
                self.append(&IndexLine::Init(line))
            }
            Job::Segment { line, parts } => {
                let path = self.file(&line.rendition, &format!("{}.m4s", line.msn))?;
                write_synced(&path, &parts)?;
                if self.dvr_only {
                    self.written
                        .entry(line.rendition.clone())
                        .or_default()
                        .push_back(line.msn);
                }
                recorder.segments.fetch_add(1, Ordering::Relaxed);
                recorder.bytes.fetch_add(line.bytes, Ordering::Relaxed);
                self.append(&IndexLine::Segment(line))
            }
            Job::Prune { rendition, msn } => {
                let written = self.written.entry(rendition.clone()).or_default();
                while written.front().is_some_and(|m| *m < msn) {
                    if let Some(old) = written.pop_front() {
                        let path = self.dir.join(&rendition).join(format!("{old}.m4s"));
                        std::fs::remove_file(&path).map_err(|e| (path, e))?;
                    }
                }
                Ok(())
            }
            Job::Key { id, key } => {
                self.keys.insert(id, packager::crypto::hex(&key));
                let path = self.dir.join(KEYS_FILE);
                let json = serde_json::to_vec(&self.keys).unwrap_or_default();
                write_private(&path, &json).map_err(|e| (path, e))
            }
        }
    }

    /// The path of `file` in `rendition`'s folder, made if needed.
    fn file(&mut self, rendition: &str, file: &str) -> Result<PathBuf, (PathBuf, std::io::Error)> {
        let folder = self.dir.join(rendition);
        if !self.created.contains(rendition) {
            std::fs::create_dir_all(&folder).map_err(|e| (folder.clone(), e))?;
            self.created.insert(rendition.to_owned());
        }
        Ok(folder.join(file))
    }

    fn append(&mut self, line: &IndexLine) -> Result<(), (PathBuf, std::io::Error)> {
        let path = self.dir.join(INDEX_FILE);
        let mut text = serde_json::to_string(line).map_err(|e| (path.clone(), e.into()))?;
        text.push('\n');
        self.index
            .write_all(text.as_bytes())
            .and_then(|()| self.index.sync_data())
            .map_err(|e| (path, e))
    }
}

/// Write `chunks` to `path` and sync the data to the disk: under a temporary name, then renamed, so
/// that a reader (the DVR window serving a segment from disk) never sees part of it.
fn write_synced(path: &Path, chunks: &[Bytes]) -> Result<(), (PathBuf, std::io::Error)> {
    let tmp = path.with_extension("tmp");
    let go = || -> std::io::Result<()> {
        let mut f = File::create(&tmp)?;
        for c in chunks {
            f.write_all(c)?;
        }
        f.sync_data()?;
        std::fs::rename(&tmp, path)
    };
    go().map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        (path.to_owned(), e)
    })
}

/// Replace `path` atomically with `bytes`, readable by the owner only (it holds key material).
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(bytes)?;
    f.sync_data()?;
    std::fs::rename(&tmp, path)
}

/// End the index in `dir` with a newline when a crash cut its last line, so that a line appended
/// after it is a line of its own (the cut one stays unreadable and is skipped).
pub(super) fn end_cut_line(dir: &Path) -> std::io::Result<()> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = OpenOptions::new()
        .read(true)
        .append(true)
        .open(dir.join(INDEX_FILE))?;
    if f.metadata()?.len() == 0 {
        return Ok(());
    }
    f.seek(SeekFrom::End(-1))?;
    let mut last = [0u8; 1];
    f.read_exact(&mut last)?;
    if last[0] != b'\n' {
        f.write_all(b"\n")?;
        f.sync_data()?;
    }
    Ok(())
}

/// Open (or create) the index of the recording in `dir` for appending.
pub(super) fn open_index(dir: &Path) -> std::io::Result<File> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join(INDEX_FILE))
}

/// Append `line` to the index in `dir` (outside a writer: a recording's start, resume or closing).
pub(super) fn append_line(index: &mut File, line: &IndexLine) -> std::io::Result<()> {
    let mut text = serde_json::to_string(line).map_err(std::io::Error::from)?;
    text.push('\n');
    index.write_all(text.as_bytes())?;
    index.sync_data()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recording::{RecordingConfig, index};
    use std::time::Duration;

    fn segment(msn: u64) -> Job {
        Job::Segment {
            line: SegmentLine {
                rendition: "source".into(),
                msn,
                init_id: 4,
                earliest_pts: 0,
                duration_ticks: 180_000,
                pdt_ms: 1_000,
                discontinuity: false,
                bytes: 3,
                key: None,
            },
            parts: vec![Bytes::from_static(b"abc")],
        }
    }

    #[test]
    fn a_full_disk_stops_the_recording_once_and_keeps_what_was_written() {
        let tmp = tempfile::tempdir().unwrap();
        let recorder = Recorder::new(tmp.path(), RecordingConfig::default(), Duration::ZERO);
        let dir = recorder.dir_of("live/x", "20261206T061500Z");
        std::fs::create_dir_all(dir.join("source")).unwrap();
        let mut index = open_index(&dir).unwrap();
        append_line(
            &mut index,
            &IndexLine::Start(index::StartLine {
                stream: "live/x".into(),
                id: "20261206T061500Z".into(),
                at_ms: 1_000,
            }),
        )
        .unwrap();
        // Segment 5's file is on a full disk: writing it fails with ENOSPC.
        std::os::unix::fs::symlink("/dev/full", dir.join("source/5.tmp")).unwrap();
        let mut tap = spawn(
            recorder.clone(),
            "live/x".into(),
            "20261206T061500Z".into(),
            dir.clone(),
            index,
            false,
            false,
        )
        .unwrap();
        let init = Job::Init {
            line: InitLine {
                rendition: "source".into(),
                kind: "video".into(),
                timescale: 90_000,
                id: 4,
                codec: "avc1.64001f".into(),
                size: Some((1280, 720)),
                frame_rate: None,
                audio: None,
                bytes: 4,
            },
            bytes: Bytes::from_static(b"init"),
        };
        assert!(tap.send(init));
        assert!(tap.send(segment(4)));
        assert!(tap.send(segment(5)));
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while recorder.failures.load(Ordering::Relaxed) == 0 && std::time::Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(recorder.failures.load(Ordering::Relaxed), 1);
        // The writer is gone: the tap stops without another report.
        std::thread::sleep(Duration::from_millis(50));
        assert!(!tap.send(segment(6)));
        assert!(!tap.send(segment(7)));
        assert_eq!(recorder.failures.load(Ordering::Relaxed), 1);
        let loaded = index::load(&dir).unwrap();
        let r = loaded.recording.rendition("source").unwrap();
        assert_eq!(r.segments.iter().map(|s| s.msn).collect::<Vec<_>>(), [4]);
        assert!(loaded.ended_ms.is_some(), "the index is closed");
    }
}
