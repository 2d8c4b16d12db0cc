//! A recording's rendition as one MP4 file (with the recording's audio, for a video rendition):
//! remuxed in process by FFmpeg ([`transcoder::remux_to_mp4`], no re-encode), kept in the
//! recording's `downloads/` folder and made again when the recording has grown since.

use std::path::PathBuf;

use media::TrackKind;
use packager::vod::RecordedRendition;

use super::{Loaded, Recorder};

/// Why a download cannot be made.
#[derive(Debug, thiserror::Error)]
pub enum DownloadError {
    /// No such rendition, or it has no segment.
    #[error("no such rendition with segments")]
    NotFound,
    /// FFmpeg could not remux it (e.g. the track configuration changed mid-recording).
    #[error("cannot remux: {0}")]
    Remux(#[from] transcoder::RemuxError),
    /// The folder cannot be made.
    #[error("cannot write the download: {0}")]
    Io(#[from] std::io::Error),
}

/// The tracks of rendition `r` for the remuxer: its segments in runs that share an init segment.
fn track(dir: &std::path::Path, r: &RecordedRendition) -> transcoder::RemuxTrack {
    let mut runs: Vec<transcoder::RemuxRun> = Vec::new();
    let mut current = None;
    for s in &r.segments {
        if current != Some(s.init_id) {
            runs.push(transcoder::RemuxRun {
                init: dir.join(&r.name).join(format!("init-{}.mp4", s.init_id)),
                segments: Vec::new(),
            });
            current = Some(s.init_id);
        }
        if let Some(run) = runs.last_mut() {
            run.segments
                .push(dir.join(&r.name).join(format!("{}.m4s", s.msn)));
        }
    }
    transcoder::RemuxTrack { runs }
}

/// The MP4 file of rendition `rendition` of recording `l` (with its audio, for a video rendition):
/// made now unless made before from the same segments. Blocking (FFmpeg reads and writes files).
///
/// Errors: [`DownloadError`].
pub fn prepare(recorder: &Recorder, l: &Loaded, rendition: &str) -> Result<PathBuf, DownloadError> {
    let r = l
        .recording
        .rendition(rendition)
        .filter(|r| !r.segments.is_empty())
        .ok_or(DownloadError::NotFound)?;
    let dir = recorder.dir_of(&l.stream, l.id.as_str());
    let mut tracks = vec![track(&dir, r)];
    let mut count = r.segments.len();
    if r.kind == TrackKind::Video
        && let Some(a) = l
            .recording
            .renditions
            .iter()
            .find(|a| a.kind == TrackKind::Audio && !a.segments.is_empty())
    {
        tracks.push(track(&dir, a));
        count += a.segments.len();
    }
    let folder = dir.join("downloads");
    std::fs::create_dir_all(&folder)?;
    // Named by the segments it holds: a recording that grew gets a new file.
    let out = folder.join(format!("{rendition}-{count}.mp4"));
    if out.exists() {
        return Ok(out);
    }
    let report = transcoder::remux_to_mp4(&tracks, &out)?;
    tracing::info!(stream = %l.stream, recording = %l.id, rendition, duration_ms = report.duration_ms, bytes = report.bytes, "recording remuxed to MP4");
    // Older files of the same rendition are out of date.
    if let Ok(entries) = std::fs::read_dir(&folder) {
        for e in entries.filter_map(Result::ok) {
            let name = e.file_name();
            let name = name.to_string_lossy();
            let older = name
                .strip_prefix(rendition)
                .and_then(|n| n.strip_prefix('-'))
                .and_then(|n| n.strip_suffix(".mp4"))
                .is_some_and(|n| n.bytes().all(|b| b.is_ascii_digit()));
            // Not one another request may be sending now.
            let settled = e
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|age| age > std::time::Duration::from_secs(600));
            if older && settled && e.path() != out {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
    Ok(out)
}
