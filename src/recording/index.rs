//! A recording's index on disk: `index.jsonl`, one JSON object per line, appended as the recording
//! grows and never rewritten, so that a recording cut by a crash is readable up to its last complete
//! line ([`load`]).
//!
//! Lines, in order of writing:
//! - `{"start": {...}}` once, when the recording begins ([`StartLine`]);
//! - `{"init": {...}}` before the first segment that needs an init segment ([`InitLine`]);
//! - `{"segment": {...}}` after the segment's file is written and synced ([`SegmentLine`]);
//! - `{"resume": {...}}` when an origin that restarted continues the recording;
//! - `{"end": {...}}` once, when it is complete.

use std::{
    io::BufRead,
    path::{Path, PathBuf},
};

use media::TrackKind;
use packager::{
    urls::RecordingId,
    vod::{RecordedInit, RecordedRendition, RecordedSegment, Recording},
};
use serde::{Deserialize, Serialize};

/// The index's file name in a recording's directory.
pub const INDEX_FILE: &str = "index.jsonl";

/// One line of the index.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "snake_case")]
pub enum IndexLine {
    /// The recording began.
    Start(StartLine),
    /// An init segment was written.
    Init(InitLine),
    /// A segment was written.
    Segment(SegmentLine),
    /// An origin continued the recording after a restart (its segments follow a discontinuity).
    Resume {
        /// When, Unix ms.
        at_ms: i64,
    },
    /// The recording is complete.
    End {
        /// When, Unix ms.
        at_ms: i64,
        /// True when it was closed after an origin stopped without ending it (a crash), by the
        /// origin that found it.
        #[serde(default)]
        interrupted: bool,
    },
}

/// `{"start": ...}`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct StartLine {
    /// The stream, `live/{name}`.
    pub stream: String,
    /// The recording's id.
    pub id: String,
    /// When it began, Unix ms.
    pub at_ms: i64,
}

/// `{"init": ...}`: init segment `{rendition}/init-{id}.mp4`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct InitLine {
    /// Rendition name.
    pub rendition: String,
    /// `video` or `audio`.
    pub kind: String,
    /// Ticks per second of the rendition's timestamps.
    pub timescale: u32,
    /// Init segment id.
    pub id: u64,
    /// RFC 6381 codec string.
    pub codec: String,
    /// Picture size in pixels (video).
    pub size: Option<(u32, u32)>,
    /// Frame rate, frames per second as (numerator, denominator) (video).
    pub frame_rate: Option<(u32, u32)>,
    /// Channels and sample rate in Hz (audio).
    pub audio: Option<(u8, u32)>,
    /// Size of the file, bytes.
    pub bytes: u64,
}

/// `{"segment": ...}`: segment `{rendition}/{msn}.m4s`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct SegmentLine {
    /// Rendition name.
    pub rendition: String,
    /// Media sequence number.
    pub msn: u64,
    /// The init segment it needs.
    pub init_id: u64,
    /// Earliest presentation time, rendition timescale ticks.
    pub earliest_pts: i64,
    /// Duration, ticks.
    pub duration_ticks: u64,
    /// Wall-clock time of its first sample, Unix ms.
    pub pdt_ms: i64,
    /// A discontinuity precedes it.
    pub discontinuity: bool,
    /// Size of the file, bytes.
    pub bytes: u64,
    /// AES-128 content key id and IV (hex) it is served encrypted with, if the stream was encrypted.
    pub key: Option<(u64, String)>,
}

/// What [`load`] found.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The stream, `live/{name}`.
    pub stream: String,
    /// The recording's id.
    pub id: RecordingId,
    /// When it began, Unix ms.
    pub started_ms: i64,
    /// When it ended (its `end` line), Unix ms.
    pub ended_ms: Option<i64>,
    /// The `end` line says it was closed after a crash.
    pub interrupted: bool,
    /// The wall-clock end of its last segment, Unix ms (its start when it has none).
    pub media_end_ms: i64,
    /// Renditions and segments, as the renderers take them.
    pub recording: Recording,
    /// Bytes of every file listed (init segments and segments).
    pub bytes: u64,
    /// Lines that did not parse (a line cut by a crash is the last one; anything else is damage).
    pub bad_lines: usize,
}

/// Errors reading an index.
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    /// The file cannot be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The index file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The first line is not a valid `start` line.
    #[error("{path}: no valid start line")]
    NoStart {
        /// The index file.
        path: PathBuf,
    },
}

/// Read the recording in `dir` (its `index.jsonl`). Lines that do not parse are skipped and counted
/// (a crash can cut the last one); a segment whose file is missing or shorter than listed is left
/// out (a damaged disk), so what is listed is what can be served.
///
/// Errors: the index cannot be read, or has no valid `start` line.
pub fn load(dir: &Path) -> Result<Loaded, IndexError> {
    let path = dir.join(INDEX_FILE);
    let file = std::fs::File::open(&path).map_err(|source| IndexError::Io {
        path: path.clone(),
        source,
    })?;
    let mut lines = std::io::BufReader::new(file).lines();
    let start = match lines.next() {
        Some(Ok(l)) => match serde_json::from_str::<IndexLine>(&l) {
            Ok(IndexLine::Start(s)) => s,
            _ => return Err(IndexError::NoStart { path }),
        },
        _ => return Err(IndexError::NoStart { path }),
    };
    let id = RecordingId::parse(&start.id).ok_or(IndexError::NoStart { path: path.clone() })?;
    let mut out = Loaded {
        stream: start.stream,
        id,
        started_ms: start.at_ms,
        ended_ms: None,
        interrupted: false,
        media_end_ms: start.at_ms,
        recording: Recording::default(),
        bytes: 0,
        bad_lines: 0,
    };
    // Each init segment's timescale, by (rendition, init id).
    let mut timescales: std::collections::HashMap<(String, u64), u32> = Default::default();
    for line in lines {
        let line = match line {
            Ok(l) => l,
            // Not UTF-8 (a damaged disk): skipped like any unreadable line.
            Err(e) if e.kind() == std::io::ErrorKind::InvalidData => {
                out.bad_lines += 1;
                continue;
            }
            Err(_) => {
                out.bad_lines += 1;
                break;
            }
        };
        match serde_json::from_str::<IndexLine>(&line) {
            Ok(IndexLine::Init(i)) => {
                out.bytes = out.bytes.saturating_add(i.bytes);
                timescales.insert((i.rendition.clone(), i.id), i.timescale.max(1));
                let kind = if i.kind == "audio" {
                    TrackKind::Audio
                } else {
                    TrackKind::Video
                };
                let r = rendition_mut(&mut out.recording, &i.rendition, kind, i.timescale);
                if r.init(i.id).is_none() {
                    r.inits.push(RecordedInit {
                        id: i.id,
                        codec: i.codec,
                        size: i.size,
                        frame_rate: i.frame_rate,
                        audio: i.audio,
                    });
                }
            }
            Ok(IndexLine::Segment(s)) => {
                let file = dir.join(&s.rendition).join(format!("{}.m4s", s.msn));
                let on_disk = std::fs::metadata(&file).map_or(0, |m| m.len());
                let Some(r) = out
                    .recording
                    .renditions
                    .iter_mut()
                    .find(|r| r.name == s.rendition)
                else {
                    out.bad_lines += 1;
                    continue;
                };
                // Times in the rendition's timescale (the first init segment's): a later init
                // segment may have another (audio at another sample rate after a reconnect).
                let ts = r.timescale.max(1);
                let own = timescales
                    .get(&(s.rendition.clone(), s.init_id))
                    .copied()
                    .unwrap_or(ts);
                let duration_ticks = u64::try_from(media::time::rescale(
                    i64::try_from(s.duration_ticks).unwrap_or(i64::MAX),
                    own,
                    ts,
                ))
                .unwrap_or(0);
                // A segment longer than an hour is damage, not media.
                let absurd = duration_ticks > 3600 * u64::from(ts);
                if on_disk < s.bytes || absurd || r.segments.last().is_some_and(|l| l.msn >= s.msn)
                {
                    out.bad_lines += 1;
                    continue;
                }
                let ms = duration_ticks.saturating_mul(1000) / u64::from(ts);
                out.media_end_ms = out
                    .media_end_ms
                    .max(s.pdt_ms.saturating_add(i64::try_from(ms).unwrap_or(0)));
                out.bytes = out.bytes.saturating_add(s.bytes);
                r.segments.push(RecordedSegment {
                    msn: s.msn,
                    init_id: s.init_id,
                    earliest_pts: media::time::rescale(s.earliest_pts, own, ts),
                    duration_ticks,
                    program_date_time_ms: s.pdt_ms,
                    is_discontinuity: s.discontinuity,
                    size_bytes: s.bytes,
                    key: s
                        .key
                        .and_then(|(id, iv)| Some((id, crate::hub::keys::unhex16(&iv)?))),
                });
            }
            Ok(IndexLine::End { at_ms, interrupted }) => {
                out.ended_ms = Some(at_ms);
                out.interrupted = interrupted;
            }
            Ok(IndexLine::Resume { .. }) => {}
            Ok(IndexLine::Start(_)) | Err(_) => out.bad_lines += 1,
        }
    }
    // Video by picture height (highest first), then audio.
    out.recording.renditions.sort_by_key(|r| {
        let height = r.inits.last().and_then(|i| i.size).map_or(0, |(_, h)| h);
        (r.kind == TrackKind::Audio, std::cmp::Reverse(height))
    });
    Ok(out)
}

fn rendition_mut<'a>(
    rec: &'a mut Recording,
    name: &str,
    kind: TrackKind,
    timescale: u32,
) -> &'a mut RecordedRendition {
    if let Some(i) = rec.renditions.iter().position(|r| r.name == name) {
        return &mut rec.renditions[i];
    }
    rec.renditions.push(RecordedRendition {
        name: name.to_owned(),
        kind,
        timescale,
        inits: Vec::new(),
        segments: Vec::new(),
    });
    rec.renditions.last_mut().expect("just pushed")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn line(l: &IndexLine) -> String {
        serde_json::to_string(l).unwrap() + "\n"
    }

    #[test]
    fn a_recording_cut_mid_line_loads_up_to_its_last_complete_segment() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("720p")).unwrap();
        let mut text = line(&IndexLine::Start(StartLine {
            stream: "live/x".into(),
            id: "20261206T061500Z".into(),
            at_ms: 1_000,
        }));
        text += &line(&IndexLine::Init(InitLine {
            rendition: "720p".into(),
            kind: "video".into(),
            timescale: 90_000,
            id: 7,
            codec: "avc1.64001f".into(),
            size: Some((1280, 720)),
            frame_rate: Some((30, 1)),
            audio: None,
            bytes: 700,
        }));
        for msn in 7..10 {
            std::fs::write(dir.path().join(format!("720p/{msn}.m4s")), [0u8; 100]).unwrap();
            text += &line(&IndexLine::Segment(SegmentLine {
                rendition: "720p".into(),
                msn,
                init_id: 7,
                earliest_pts: (msn as i64 - 7) * 180_000,
                duration_ticks: 180_000,
                pdt_ms: 1_000 + (msn as i64 - 7) * 2_000,
                discontinuity: false,
                bytes: 100,
                key: None,
            }));
        }
        // Segment 9's file is short (a damaged disk); then a line cut by a crash.
        std::fs::write(dir.path().join("720p/9.m4s"), [0u8; 10]).unwrap();
        text += "{\"segment\":{\"rendition\":\"720p\",\"ms";
        std::fs::File::create(dir.path().join(INDEX_FILE))
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
        let l = load(dir.path()).unwrap();
        assert_eq!(l.stream, "live/x");
        assert_eq!(l.id.as_str(), "20261206T061500Z");
        let r = l.recording.rendition("720p").unwrap();
        assert_eq!(r.segments.iter().map(|s| s.msn).collect::<Vec<_>>(), [7, 8]);
        assert_eq!(l.bad_lines, 2);
        assert_eq!(l.ended_ms, None);
        assert_eq!(l.media_end_ms, 5_000);
        assert_eq!(l.bytes, 900);
    }

    #[test]
    fn an_index_without_a_start_line_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(INDEX_FILE), "{\"end\":{\"at_ms\":1}}\n").unwrap();
        assert!(matches!(load(dir.path()), Err(IndexError::NoStart { .. })));
        assert!(matches!(
            load(&dir.path().join("missing")),
            Err(IndexError::Io { .. })
        ));
    }
}
