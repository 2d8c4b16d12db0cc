//! End-to-end oracle: package real samples from the shared test clips into init + chunks, then let
//! `ffprobe` (FFmpeg's mov demuxer) read every packet back and `ffmpeg` decode the whole file.
//!
//! The clips are in `fixtures/` (see its README for origin and licences); FFmpeg must be
//! installed (`/usr/bin/ffprobe`, `/usr/bin/ffmpeg`). A missing clip or tool fails the test.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use media::TrackInfo;

use super::source_clip::{SourceTrack, read_track};
use super::{BIKES_AVCC, PEXELS_ASC, aac_track, avc_track};
use crate::cmaf::{FragmentSample, write_chunk, write_init_segment};

const MEDIA_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../fixtures");

/// What ffprobe must report for one packet.
struct ExpectedPacket {
    dts: i64,
    pts: i64,
    size_bytes: usize,
    is_sync: bool,
}

fn read_clip(name: &str) -> Vec<u8> {
    let path = Path::new(MEDIA_DIR).join(name);
    std::fs::read(&path)
        .unwrap_or_else(|error| panic!("test clip {} unreadable: {error}", path.display()))
}

/// A temporary file path unique to this process and test; removed on drop.
struct TempFile(PathBuf);

impl TempFile {
    fn new(name: &str, bytes: &[u8]) -> Self {
        let path =
            std::env::temp_dir().join(format!("estuary-cmaf-{}-{name}.mp4", std::process::id()));
        std::fs::write(&path, bytes).expect("write temp file");
        Self(path)
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Package `source` as init + chunks: a chunk starts at every sync sample and holds at most
/// `max_chunk_samples`. Composition offsets are shifted by the first sample's offset, so the first
/// sample presents at its decode time and later B-frames get negative offsets (as CMAF recommends).
fn package(
    file: &[u8],
    track: &TrackInfo,
    source: &SourceTrack,
    max_chunk_samples: usize,
) -> (Vec<u8>, Vec<ExpectedPacket>) {
    let mut output = write_init_segment(1, track).to_vec();
    assert!(!output.is_empty(), "init segment written");
    let shift = source
        .samples
        .first()
        .map_or(0, |sample| sample.composition_offset);

    let mut chunk_starts: Vec<usize> = Vec::new();
    for (index, sample) in source.samples.iter().enumerate() {
        let chunk_len = index - chunk_starts.last().copied().unwrap_or(0);
        if chunk_starts.is_empty() || sample.is_sync || chunk_len >= max_chunk_samples {
            chunk_starts.push(index);
        }
    }
    chunk_starts.push(source.samples.len());

    let mut expected = Vec::with_capacity(source.samples.len());
    for (sequence_number, bounds) in (1..).zip(chunk_starts.windows(2)) {
        let run = &source.samples[bounds[0]..bounds[1]];
        let samples: Vec<FragmentSample<'_>> = run
            .iter()
            .map(|sample| FragmentSample {
                duration: sample.duration,
                composition_offset: i32::try_from(sample.composition_offset - shift)
                    .expect("fits i32"),
                is_sync: sample.is_sync,
                data: &file[sample.range.clone()],
            })
            .collect();
        let chunk = write_chunk(sequence_number, 1, run[0].dts, &samples);
        assert!(!chunk.is_empty(), "chunk {sequence_number} written");
        output.extend_from_slice(&chunk);
        for sample in run {
            let dts = i64::try_from(sample.dts).expect("fits i64");
            expected.push(ExpectedPacket {
                dts,
                pts: dts + sample.composition_offset - shift,
                size_bytes: sample.range.len(),
                is_sync: sample.is_sync,
            });
        }
    }
    (output, expected)
}

/// One `-of compact` section line (`stream|key=value|…`) as a map.
fn fields(line: &str) -> HashMap<&str, &str> {
    line.split('|')
        .skip(1)
        .filter_map(|field| field.split_once('='))
        .collect()
}

/// Run ffprobe on `path`; returns the single stream's fields and every packet's fields.
fn probe(path: &Path) -> (HashMap<String, String>, Vec<HashMap<String, String>>) {
    let output = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_streams",
            "-show_packets",
            "-of",
            "compact",
        ])
        .arg(path)
        .output()
        .expect("ffprobe runs (install ffmpeg)");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && stderr.is_empty(),
        "ffprobe complains: {stderr}"
    );
    let stdout = String::from_utf8(output.stdout).expect("utf-8");
    let owned = |line: &str| -> HashMap<String, String> {
        fields(line)
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect()
    };
    let streams: Vec<_> = stdout
        .lines()
        .filter(|l| l.starts_with("stream|"))
        .map(owned)
        .collect();
    let packets: Vec<_> = stdout
        .lines()
        .filter(|l| l.starts_with("packet|"))
        .map(owned)
        .collect();
    assert_eq!(streams.len(), 1, "one track per CMAF file");
    (streams.into_iter().next().expect("one stream"), packets)
}

/// Decode the file (the first `max_frames` frames, or all) with ffmpeg; any decoder, demuxer or muxer
/// message fails the test.
fn assert_decodes_cleanly(path: &Path, max_frames: Option<u32>) {
    let mut command = Command::new("ffmpeg");
    command
        .args(["-v", "error", "-nostdin", "-threads", "1", "-i"])
        .arg(path);
    if let Some(frames) = max_frames {
        command.args(["-frames", &frames.to_string()]);
    }
    let output = command
        // Keep every decoded frame with its own timestamp in the input time base: the phone clip's
        // irregular timestamps would otherwise collide after rounding to the null muxer's 1/fps clock.
        .args([
            "-fps_mode",
            "passthrough",
            "-enc_time_base",
            "-1",
            "-f",
            "null",
            "-",
        ])
        .output()
        .expect("ffmpeg runs (install ffmpeg)");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && stderr.is_empty(),
        "ffmpeg decode complains: {stderr}"
    );
}

/// Compare ffprobe's packets with what we wrote. FFmpeg's mov demuxer keeps `pts >= dts` by adding
/// `dts_shift`, the magnitude of the most negative composition offset it has read, to every pts (it does
/// not shift dts); our chunks carry the offsets of the whole clip from the first `trun` on, so the shift is
/// the same for every packet, and presentation order and spacing must match exactly.
fn assert_packets(packets: &[HashMap<String, String>], expected: &[ExpectedPacket]) {
    assert_eq!(packets.len(), expected.len(), "packet count");
    let dts_shift = expected
        .iter()
        .map(|packet| packet.dts - packet.pts)
        .max()
        .unwrap_or(0)
        .max(0);
    for (index, (packet, want)) in packets.iter().zip(expected).enumerate() {
        let field = |key: &str| packet.get(key).map(String::as_str).unwrap_or("");
        assert_eq!(field("dts"), want.dts.to_string(), "packet {index} dts");
        assert_eq!(
            field("pts"),
            (want.pts + dts_shift).to_string(),
            "packet {index} pts"
        );
        assert_eq!(
            field("size"),
            want.size_bytes.to_string(),
            "packet {index} size"
        );
        assert_eq!(
            field("flags").starts_with('K'),
            want.is_sync,
            "packet {index} keyframe flag"
        );
    }
}

#[test]
fn cmaf_ffprobe_reads_h264_clip_with_b_frames() {
    let file = read_clip("camera-bikes-272p-h264-10s.mp4");
    assert!(
        file.windows(BIKES_AVCC.len())
            .any(|window| window == BIKES_AVCC),
        "BIKES_AVCC is the clip's own record"
    );
    let source = read_track(&file, b"vide");
    assert_eq!(source.timescale, 12_800);
    assert_eq!(source.samples.len(), 250);
    // Keep the source clock so packets compare tick for tick (ffprobe's time base is 1/mdhd timescale).
    let track = avc_track(source.timescale);
    let (output, expected) = package(&file, &track, &source, 12);
    assert!(
        expected.iter().any(|packet| packet.pts < packet.dts),
        "clip exercises negative offsets"
    );

    let temp = TempFile::new("h264", &output);
    let (stream, packets) = probe(&temp.0);
    assert_eq!(stream["codec_name"], "h264");
    assert_eq!(stream["codec_tag_string"], "avc1");
    assert_eq!(stream["profile"], "High");
    assert_eq!(stream["width"], "640");
    assert_eq!(stream["height"], "272");
    assert_eq!(stream["time_base"], "1/12800");
    assert_packets(&packets, &expected);
    assert_decodes_cleanly(&temp.0, None);
}

#[test]
fn cmaf_ffprobe_reads_aac_clip() {
    let file = read_clip("camera-face-pexels-360p-h264-aac-20s.mp4");
    let source = read_track(&file, b"soun");
    assert_eq!(source.timescale, 48_000);
    let track = aac_track(&PEXELS_ASC);
    let (output, expected) = package(&file, &track, &source, 24);

    let temp = TempFile::new("aac", &output);
    let (stream, packets) = probe(&temp.0);
    assert_eq!(stream["codec_name"], "aac");
    assert_eq!(stream["codec_tag_string"], "mp4a");
    assert_eq!(stream["profile"], "LC");
    assert_eq!(stream["sample_rate"], "48000");
    assert_eq!(stream["channels"], "2");
    assert_eq!(stream["time_base"], "1/48000");
    assert_packets(&packets, &expected);
    assert_decodes_cleanly(&temp.0, None);
}

#[test]
fn cmaf_ffprobe_reads_hevc_clip_as_hvc1() {
    let file = read_clip("camera-face-540p-hevc-aac-6s.mov");
    let source = read_track(&file, b"vide");
    let track = super::hevc_track();
    let track = TrackInfo {
        timescale: source.timescale,
        ..track
    };
    let (output, expected) = package(&file, &track, &source, 15);

    let temp = TempFile::new("hevc", &output);
    let (stream, packets) = probe(&temp.0);
    assert_eq!(stream["codec_name"], "hevc");
    assert_eq!(stream["codec_tag_string"], "hvc1");
    assert_eq!(stream["width"], "960");
    assert_eq!(stream["height"], "540");
    assert_packets(&packets, &expected);
    // Decoding all 169 frames at 960x540 takes seconds; the first 45 cover the first chunks.
    assert_decodes_cleanly(&temp.0, Some(45));
}
