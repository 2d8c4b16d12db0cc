//! FLV files: read into tags, looped into a longer publish, and the bench inputs made once with FFmpeg.
//!
//! FLV file layout (Adobe Flash Video File Format Specification 10.1, annex E): a 9-byte header
//! (`FLV`, version, flags, header size), then `PreviousTagSize0` (4 bytes), then tags, each followed by its
//! `PreviousTagSize`. A tag is: type (1 byte: 8 audio, 9 video, 18 script data), data size (24 bits),
//! timestamp (24 bits, milliseconds) plus an extended upper byte, stream id (24 bits, always 0), body.

use std::path::{Path, PathBuf};
use std::process::Command;

use bytes::Bytes;

/// The kind of an FLV tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TagKind {
    /// Type 8: an audio tag body (AUDIODATA), an RTMP audio message payload.
    Audio,
    /// Type 9: a video tag body (VIDEODATA), an RTMP video message payload.
    Video,
    /// Type 18: script data (`onMetaData`).
    Script,
}

/// One FLV tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlvTag {
    /// What the body is.
    pub kind: TagKind,
    /// The tag timestamp (the DTS), milliseconds, already combined with its extended byte.
    pub timestamp_ms: i64,
    /// The tag body, exactly what an RTMP audio/video message carries.
    pub body: Bytes,
}

impl FlvTag {
    /// True for a video tag carrying a coded frame (AVCPacketType 1, or an Enhanced RTMP coded-frames
    /// packet), as opposed to a sequence header or end of sequence.
    pub fn is_video_frame(&self) -> bool {
        if self.kind != TagKind::Video || self.body.is_empty() {
            return false;
        }
        let b0 = self.body[0];
        if b0 & 0x80 != 0 {
            // Enhanced RTMP: PacketType in the low nibble; 1 = CodedFrames, 3 = CodedFramesX.
            matches!(b0 & 0x0F, 1 | 3)
        } else {
            self.body.get(1) == Some(&1)
        }
    }

    /// The composition time (PTS − DTS, ms) of a video frame tag: signed 24 bits after the AVCPacketType
    /// (legacy FLV), or after the FourCC of an Enhanced RTMP CodedFrames packet (0 for CodedFramesX).
    pub fn composition_time_ms(&self) -> i64 {
        let b = &self.body;
        let at = match b.first() {
            Some(b0) if b0 & 0x80 != 0 => match b0 & 0x0F {
                1 => 5,
                _ => return 0,
            },
            Some(_) => 2,
            None => return 0,
        };
        let Some(c) = b.get(at..at + 3) else {
            return 0;
        };
        let raw = (i64::from(c[0]) << 16) | (i64::from(c[1]) << 8) | i64::from(c[2]);
        if raw & 0x80_0000 != 0 {
            raw - 0x100_0000
        } else {
            raw
        }
    }

    /// True for a video tag carrying a decoder configuration record (AVCPacketType 0, or an Enhanced RTMP
    /// SequenceStart).
    pub fn is_sequence_start(&self) -> bool {
        match self.body.first() {
            Some(b0) if b0 & 0x80 != 0 => b0 & 0x0F == 0,
            Some(_) => self.body.get(1) == Some(&0),
            None => false,
        }
    }
}

/// Where the fixture FLV lives: `$ESTUARY_BENCH_FLV`, or a file in the temporary directory.
pub fn fixture_flv_path() -> PathBuf {
    match std::env::var_os("ESTUARY_BENCH_FLV") {
        Some(p) => PathBuf::from(p),
        None => std::env::temp_dir().join("estuary-bench-bbb-720p-2s-gop.flv"),
    }
}

/// The fixture as FLV, made once (again if the fixture is newer) by FFmpeg (`-c copy`, no re-encoding)
/// from `fixtures/bbb-720p-2s-gop.mp4` (30 s, 24 fps H.264 with a keyframe every 2 s, AAC-LC 44.1 kHz).
pub fn fixture_flv() -> PathBuf {
    let path = fixture_flv_path();
    let mp4 = crate::fixture("bbb-720p-2s-gop.mp4");
    let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    // Reuse the FLV unless the fixture changed after it was made (or we were given a file explicitly).
    if path.exists()
        && (std::env::var_os("ESTUARY_BENCH_FLV").is_some() || modified(&path) >= modified(&mp4))
    {
        return path;
    }
    make_flv(&mp4, &["-t", "60", "-c", "copy"], &path);
    path
}

/// Run `ffmpeg -i {input} {args} -f flv` into a temporary file, then rename it to `path` (an interrupted
/// run never leaves a partial file under the final name). Panics if FFmpeg is missing or fails.
fn make_flv(input: &Path, args: &[&str], path: &Path) {
    let tmp = path.with_extension("flv.partial");
    let status = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-y", "-i"])
        .arg(input)
        .args(args)
        .args(["-f", "flv"])
        .arg(&tmp)
        .status()
        .expect("ffmpeg is installed (needed to make the bench input)");
    assert!(status.success(), "ffmpeg failed to make {}", path.display());
    std::fs::rename(&tmp, path).expect("rename the finished FLV into place");
}

/// Parse a whole FLV file into its tags. Errors name the byte offset where the file stops making sense.
pub fn read_flv_tags(file: &Bytes) -> Result<Vec<FlvTag>, String> {
    if file.len() < 9 || &file[..3] != b"FLV" {
        return Err("not an FLV file (no FLV signature)".into());
    }
    let header_bytes = u32::from_be_bytes([file[5], file[6], file[7], file[8]]) as usize;
    // Skip the header and PreviousTagSize0.
    let mut at = header_bytes + 4;
    let mut tags = Vec::new();
    while at < file.len() {
        if file.len() - at < 11 {
            return Err(format!("truncated tag header at byte {at}"));
        }
        let h = &file[at..at + 11];
        let size = (usize::from(h[1]) << 16) | (usize::from(h[2]) << 8) | usize::from(h[3]);
        let ts = (u32::from(h[7]) << 24)
            | (u32::from(h[4]) << 16)
            | (u32::from(h[5]) << 8)
            | u32::from(h[6]);
        let body_start = at + 11;
        let body_end = body_start + size;
        if body_end + 4 > file.len() {
            return Err(format!(
                "tag at byte {at} overruns the file ({size} bytes body)"
            ));
        }
        let kind = match h[0] & 0x1F {
            8 => Some(TagKind::Audio),
            9 => Some(TagKind::Video),
            18 => Some(TagKind::Script),
            _ => None,
        };
        if let Some(kind) = kind {
            tags.push(FlvTag {
                kind,
                timestamp_ms: i64::from(ts),
                body: file.slice(body_start..body_end),
            });
        }
        at = body_end + 4;
    }
    Ok(tags)
}

/// D: the composition time (ms) of the first video keyframe tag (FrameType 1 in the high nibble, or the
/// Enhanced RTMP equivalent bits).
pub fn first_keyframe_composition_ms(tags: &[FlvTag]) -> i64 {
    tags.iter()
        .find(|t| t.is_video_frame() && (t.body[0] >> 4) & 0x07 == 1)
        .map_or(0, FlvTag::composition_time_ms)
}

/// The file's media tags `loops` times back to back, each loop shifted by the video period (last video
/// DTS + one frame − first video DTS) so that the video timeline and its 2 s GOP grid continue. Audio tags
/// that would not move forward (the file's audio starts before its video, so it overlaps the previous
/// loop's tail) are dropped; sequence headers and script tags are kept only in the first loop, and a video
/// end of sequence only when there is a single loop.
pub fn looped_tags(tags: &[FlvTag], loops: usize) -> Vec<FlvTag> {
    looped_tags_iter(tags, loops).collect()
}

/// [`looped_tags`] as they are needed (a loop of hours without holding it in memory).
pub fn looped_tags_iter(
    tags: &[FlvTag],
    loops: usize,
) -> Box<dyn Iterator<Item = FlvTag> + Send + '_> {
    let video: Vec<i64> = tags
        .iter()
        .filter(|t| t.is_video_frame())
        .map(|t| t.timestamp_ms)
        .collect();
    let (Some(&first), Some(&last)) = (video.first(), video.last()) else {
        return Box::new(tags.iter().cloned());
    };
    // (last - first) spans n - 1 frame durations; the period is n of them, rounded to whole ms.
    let n = video.len() as i64;
    let period_ms = if n > 1 {
        ((last - first) * n + (n - 1) / 2) / (n - 1)
    } else {
        40
    };
    let mut last_audio = i64::MIN;
    let mut last_video = i64::MIN;
    Box::new(
        (0..loops)
            .flat_map(move |n| tags.iter().map(move |t| (n, t)))
            .filter_map(move |(n, tag)| {
                let shift = period_ms * n as i64;
                let is_media_frame = match tag.kind {
                    TagKind::Video => tag.is_video_frame(),
                    TagKind::Audio => tag.body.get(1) == Some(&1),
                    TagKind::Script => false,
                };
                // Sequence headers and metadata once, at the start; a sequence end would not be at
                // the end.
                let is_sequence_end =
                    tag.kind == TagKind::Video && !is_media_frame && !tag.is_sequence_start();
                if (n > 0 && !is_media_frame) || (loops > 1 && is_sequence_end) {
                    return None;
                }
                let ts = tag.timestamp_ms + shift;
                let last = match tag.kind {
                    TagKind::Audio => &mut last_audio,
                    TagKind::Video => &mut last_video,
                    TagKind::Script => return Some(tag.clone()),
                };
                if is_media_frame {
                    if ts <= *last {
                        return None;
                    }
                    *last = ts;
                }
                Some(FlvTag {
                    kind: tag.kind,
                    timestamp_ms: ts,
                    body: tag.body.clone(),
                })
            }),
    )
}

/// A 3 Mbit/s contribution stream as FLV, made once in the temporary directory (again if the fixture is
/// newer) by FFmpeg from `fixtures/bbb-720p-2s-gop.mp4`: libx264 `veryfast` 720p 24 fps at 2.87 Mbit/s
/// CBR (`nal-hrd=cbr`, 1 s buffer), a keyframe every 2 s, AAC-LC 128 kbit/s — 3.0 Mbit/s in all, 30 s.
pub fn contribution_flv_3mbps() -> PathBuf {
    let path = std::env::temp_dir().join("estuary-bench-bbb-720p-3mbps.flv");
    let mp4 = crate::fixture("bbb-720p-2s-gop.mp4");
    let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    if path.exists() && modified(&path) >= modified(&mp4) {
        return path;
    }
    make_flv(
        &mp4,
        &[
            "-c:v",
            "libx264",
            "-preset",
            "veryfast",
            "-b:v",
            "2870k",
            "-minrate",
            "2870k",
            "-maxrate",
            "2870k",
            "-bufsize",
            "2870k",
            "-x264-params",
            "nal-hrd=cbr",
            "-g",
            "48",
            "-keyint_min",
            "48",
            "-sc_threshold",
            "0",
            "-c:a",
            "aac",
            "-b:a",
            "128k",
        ],
        &path,
    );
    path
}
