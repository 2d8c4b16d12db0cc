//! Test support: real frames from the fixtures (via a minimal FLV tag reader over `ffmpeg -c copy -f flv`
//! output, so timestamps are RTMP-like whole milliseconds), a recording sink, Annex B writers and
//! ffprobe checks.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

use bytes::{BufMut, Bytes, BytesMut};
use media::{CodecConfig, Frame, TrackInfo, TrackKind, time::rescale};
use transcoder::TranscodeSink;

/// The repository's fixture directory.
pub fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures")
}

/// Cargo's temp dir for integration tests (the system one for examples).
fn temp_root() -> PathBuf {
    option_env!("CARGO_TARGET_TMPDIR").map_or_else(std::env::temp_dir, PathBuf::from)
}

/// A source as ingest would deliver it: tracks and frames in arrival (FLV tag) order.
pub struct Source {
    pub video: Option<TrackInfo>,
    pub audio: Option<TrackInfo>,
    pub frames: Vec<Frame>,
}

impl Source {
    pub fn video_frames(&self) -> impl Iterator<Item = &Frame> {
        self.frames.iter().filter(|f| f.track == TrackKind::Video)
    }
    pub fn audio_frames(&self) -> impl Iterator<Item = &Frame> {
        self.frames.iter().filter(|f| f.track == TrackKind::Audio)
    }
}

/// Remux the first `secs` seconds of a fixture to FLV with `ffmpeg -c copy` (cached under the
/// target's temp dir) and read it.
pub fn load_fixture(name: &str, secs: u32) -> Source {
    static LOCK: Mutex<()> = Mutex::new(());
    let _guard = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let dir = temp_root().join("transcoder-fixtures");
    std::fs::create_dir_all(&dir).expect("create temp dir");
    let out = dir.join(format!("{name}-{secs}s.flv"));
    if !out.exists() {
        let tmp = dir.join(format!("{name}-{secs}s.{}.tmp.flv", std::process::id()));
        let status = Command::new("ffmpeg")
            .args(["-v", "error", "-y", "-i"])
            .arg(fixtures_dir().join(name))
            .args(["-t", &secs.to_string(), "-c", "copy", "-f", "flv"])
            .arg(&tmp)
            .status()
            .expect("run ffmpeg");
        assert!(status.success(), "ffmpeg remux to FLV failed");
        std::fs::rename(&tmp, &out).expect("rename FLV");
    }
    parse_flv(&std::fs::read(&out).expect("read FLV"))
}

/// Encode the first `secs` seconds of a fixture at 320x180 with libx264 and `x264_args` (keyframe
/// placement: `-force_key_frames`, `-g`, `-x264-params`), AAC audio, to FLV (cached under the
/// target's temp dir), and read it: sources with the keyframe intervals real encoders send.
pub fn encode_fixture(name: &str, secs: u32, label: &str, x264_args: &[&str]) -> Source {
    static LOCK: Mutex<()> = Mutex::new(());
    let _guard = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let dir = temp_root().join("transcoder-fixtures");
    std::fs::create_dir_all(&dir).expect("create temp dir");
    let out = dir.join(format!("{name}-{secs}s-{label}.flv"));
    if !out.exists() {
        let tmp = dir.join(format!(
            "{name}-{secs}s-{label}.{}.tmp.flv",
            std::process::id()
        ));
        let status = Command::new("ffmpeg")
            .args(["-v", "error", "-y", "-i"])
            .arg(fixtures_dir().join(name))
            .args([
                "-t",
                &secs.to_string(),
                "-vf",
                "scale=320:180",
                "-c:v",
                "libx264",
            ])
            .args(["-preset", "ultrafast", "-bf", "2", "-threads", "1"])
            .args(x264_args)
            .args(["-c:a", "aac", "-b:a", "64k", "-f", "flv"])
            .arg(&tmp)
            .status()
            .expect("run ffmpeg");
        assert!(status.success(), "ffmpeg encode to FLV failed");
        std::fs::rename(&tmp, &out).expect("rename FLV");
    }
    parse_flv(&std::fs::read(&out).expect("read FLV"))
}

fn u24(b: &[u8]) -> u32 {
    (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2])
}

/// Parse an FLV file (Adobe FLV spec v10.1 §E): AVC video (codec id 7) and AAC audio (sound format 10).
pub fn parse_flv(data: &[u8]) -> Source {
    assert!(data.starts_with(b"FLV"), "not an FLV file");
    let header_len = u32::from_be_bytes([data[5], data[6], data[7], data[8]]) as usize;
    let mut pos = header_len + 4; // header + PreviousTagSize0
    let mut video = None;
    let mut audio: Option<TrackInfo> = None;
    let mut frames = Vec::new();
    while pos + 11 <= data.len() {
        let tag_type = data[pos] & 0x1f;
        let size = u24(&data[pos + 1..]) as usize;
        let ts_ms = i64::from(u24(&data[pos + 4..]) | (u32::from(data[pos + 7]) << 24));
        let body_start = pos + 11;
        let body_end = body_start + size;
        if body_end > data.len() {
            break;
        }
        let body = &data[body_start..body_end];
        match tag_type {
            9 if body.len() >= 5 && body[0] & 0x0f == 7 => {
                let is_keyframe = body[0] >> 4 == 1;
                let raw_cts = u24(&body[2..]);
                // SI24: sign-extend.
                let cts_ms = i64::from(((raw_cts << 8) as i32) >> 8);
                match body[1] {
                    0 => {
                        video = Some(
                            TrackInfo::from_avcc(Bytes::copy_from_slice(&body[5..])).expect("avcC"),
                        )
                    }
                    1 => frames.push(Frame {
                        track: TrackKind::Video,
                        dts: ts_ms * 90,
                        pts: (ts_ms + cts_ms) * 90,
                        is_keyframe,
                        data: Bytes::copy_from_slice(&body[5..]),
                    }),
                    _ => {}
                }
            }
            8 if body.len() >= 2 && body[0] >> 4 == 10 => match body[1] {
                0 => {
                    audio = Some(
                        TrackInfo::from_audio_specific_config(Bytes::copy_from_slice(&body[2..]))
                            .expect("ASC"),
                    )
                }
                1 => {
                    let rate = audio.as_ref().map_or(44_100, |a| a.timescale);
                    let t = rescale(ts_ms, 1000, rate);
                    frames.push(Frame {
                        track: TrackKind::Audio,
                        dts: t,
                        pts: t,
                        is_keyframe: true,
                        data: Bytes::copy_from_slice(&body[2..]),
                    });
                }
                _ => {}
            },
            _ => {}
        }
        pos = body_end + 4;
    }
    Source {
        video,
        audio,
        frames,
    }
}

/// One rendition as the sink saw it.
#[derive(Default, Clone)]
pub struct Recorded {
    pub tracks: Vec<TrackInfo>,
    pub frames: Vec<Frame>,
    /// How many frames had been delivered when a `replace_track` came, with its track.
    pub replaced: Vec<(usize, TrackInfo)>,
    /// Frames delivered before any track (must stay 0).
    pub frames_before_track: usize,
}

/// A sink that records everything per rendition.
#[derive(Default)]
pub struct RecordingSink {
    pub renditions: Mutex<BTreeMap<String, Recorded>>,
}

impl TranscodeSink for RecordingSink {
    fn track(&self, rendition: &str, track: TrackInfo) {
        let mut r = self.renditions.lock().unwrap();
        r.entry(rendition.to_string())
            .or_default()
            .tracks
            .push(track);
    }

    fn replace_track(&self, rendition: &str, track: TrackInfo) {
        let mut r = self.renditions.lock().unwrap();
        let rec = r.entry(rendition.to_string()).or_default();
        rec.replaced.push((rec.frames.len(), track.clone()));
        rec.tracks.push(track);
    }

    fn frame(&self, rendition: &str, frame: Frame) {
        let mut r = self.renditions.lock().unwrap();
        let rec = r.entry(rendition.to_string()).or_default();
        if rec.tracks.is_empty() {
            rec.frames_before_track += 1;
        }
        rec.frames.push(frame);
    }
}

impl RecordingSink {
    pub fn get(&self, rendition: &str) -> Recorded {
        self.renditions
            .lock()
            .unwrap()
            .get(rendition)
            .cloned()
            .unwrap_or_default()
    }

    pub fn names(&self) -> Vec<String> {
        self.renditions.lock().unwrap().keys().cloned().collect()
    }
}

/// The NAL units of a 4-byte length-prefixed sample.
pub fn nal_units(sample: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut rest = sample;
    while rest.len() >= 4 {
        let len = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        assert!(len <= rest.len() - 4, "NAL length overruns the sample");
        out.push(&rest[4..4 + len]);
        rest = &rest[4 + len..];
    }
    assert!(rest.is_empty(), "trailing bytes in a sample");
    out
}

/// Write a rendition as an Annex B elementary stream (parameter sets before every keyframe).
pub fn to_annex_b(rec: &Recorded) -> Vec<u8> {
    let track = rec.tracks.last().expect("a track");
    let params: Vec<Bytes> = match &track.config {
        CodecConfig::Avc(c) => c.sps.iter().chain(&c.pps).cloned().collect(),
        CodecConfig::Hevc(c) => c.vps.iter().chain(&c.sps).chain(&c.pps).cloned().collect(),
        CodecConfig::Aac(_) | CodecConfig::Decodable(_) => panic!("not H.264 or HEVC"),
    };
    let mut out = BytesMut::new();
    for f in &rec.frames {
        if f.is_keyframe {
            for p in &params {
                out.put_slice(&[0, 0, 0, 1]);
                out.put_slice(p);
            }
        }
        for nal in nal_units(&f.data) {
            out.put_slice(&[0, 0, 0, 1]);
            out.put_slice(nal);
        }
    }
    out.to_vec()
}

/// What ffprobe says about an elementary stream file, and whether ffmpeg decodes it without errors.
pub struct Probed {
    pub codec_name: String,
    pub width: u32,
    pub height: u32,
    pub frames: u64,
    pub decode_errors: String,
}

/// Probe an Annex B file of format `fmt` (`h264` or `hevc`).
pub fn probe_annex_b(bytes: &[u8], fmt: &str, label: &str) -> Probed {
    let dir = temp_root().join("transcoder-out");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("{label}-{}.{fmt}", std::process::id()));
    std::fs::write(&path, bytes).unwrap();
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-f",
            fmt,
            "-select_streams",
            "v:0",
            "-count_frames",
        ])
        .args([
            "-show_entries",
            "stream=codec_name,width,height,nb_read_frames",
        ])
        .args(["-of", "csv=p=0"])
        .arg(&path)
        .output()
        .expect("run ffprobe");
    let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let fields: Vec<&str> = text.split(',').collect();
    assert_eq!(fields.len(), 4, "ffprobe output {text:?}");
    let decode = Command::new("ffmpeg")
        .args(["-v", "error", "-f", fmt, "-i"])
        .arg(&path)
        .args(["-f", "null", "-"])
        .output()
        .expect("run ffmpeg");
    let _ = std::fs::remove_file(&path);
    Probed {
        codec_name: fields[0].to_string(),
        width: fields[1].parse().unwrap(),
        height: fields[2].parse().unwrap(),
        frames: fields[3].parse().unwrap(),
        decode_errors: String::from_utf8_lossy(&decode.stderr).trim().to_string(),
    }
}

/// The segment starts the packager would cut the copy rung at: keyframes (decode order) whose PTS is
/// at least the previous start + target − 2 ms.
pub fn expected_segment_starts(frames: &[&Frame], target_90khz: i64) -> Vec<i64> {
    let mut starts: Vec<i64> = Vec::new();
    for f in frames {
        if !f.is_keyframe {
            continue;
        }
        if starts
            .last()
            .is_none_or(|last| f.pts - last >= target_90khz - 180)
        {
            starts.push(f.pts);
        }
    }
    starts
}
