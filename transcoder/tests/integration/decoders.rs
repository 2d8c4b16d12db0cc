//! Sources other than stereo AAC through the audio worker: 5.1 AAC downmixed to the stereo output, MP3
//! (a decodable codec) transcoded to AAC even when passthrough is configured. The output is checked by
//! FFmpeg (ADTS-wrapped, decoded, its loudness measured).

use std::process::Command;
use std::sync::Arc;

use crate::common::{RecordingSink, fixtures_dir, load_fixture};
use bytes::Bytes;
use media::mpeg_audio::MpegAudioHeader;
use media::{
    AudioFormat, CodecConfig, DecodableCodec, DecodableConfig, Frame, TrackInfo, TrackKind,
};
use transcoder::{AudioMode, EncoderProbe, StreamTranscoder, TranscodeOptions};

/// Run the audio of `frames` (track `audio`) through a transcoder without video.
fn transcode_audio(
    audio: &TrackInfo,
    frames: &[Frame],
    mode: AudioMode,
) -> (Arc<RecordingSink>, transcoder::TranscodeStats) {
    let sink = Arc::new(RecordingSink::default());
    let mut options = TranscodeOptions::default();
    options.audio.mode = mode;
    let tx = StreamTranscoder::start(
        "live/decoders",
        None,
        Some(audio),
        &[],
        &EncoderProbe::software(),
        &options,
        sink.clone(),
    )
    .expect("start");
    for f in frames {
        tx.push_wait(f.clone());
    }
    let stats = tx.finish();
    (sink, stats)
}

/// The AAC rendition as an ADTS stream (ISO/IEC 14496-3 §1.A.2), decoded by FFmpeg: (channels, mean
/// volume in dB).
fn decode_aac(track: &TrackInfo, frames: &[Frame]) -> (u32, f64) {
    let CodecConfig::Aac(aac) = &track.config else {
        panic!("not AAC: {track:?}");
    };
    let sf_index = [96_000, 88_200, 64_000, 48_000, 44_100, 32_000, 24_000]
        .iter()
        .position(|&r| r == aac.sample_rate)
        .expect("a standard rate") as u8;
    let mut adts = Vec::new();
    for f in frames {
        let len = f.data.len() + 7;
        adts.extend([
            0xFF,
            0xF1, // syncword, MPEG-4, layer 0, no CRC
            (aac.object_type - 1) << 6 | sf_index << 2 | (aac.channels >> 2),
            (aac.channels & 3) << 6 | (len >> 11) as u8,
            (len >> 3) as u8,
            ((len & 7) << 5) as u8 | 0x1F,
            0xFC,
        ]);
        adts.extend_from_slice(&f.data);
    }
    let path = temp_path("aac");
    std::fs::write(&path, &adts).unwrap();
    let out = Command::new("ffmpeg")
        .args(["-hide_banner", "-nostdin", "-i"])
        .arg(&path)
        .args(["-af", "volumedetect", "-f", "null", "-"])
        .output()
        .expect("ffmpeg runs");
    let _ = std::fs::remove_file(&path);
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && !log.contains("Error"), "{log}");
    let channels = if log.contains("stereo") { 2 } else { 0 };
    let mean = log
        .lines()
        .find_map(|l| l.split("mean_volume: ").nth(1))
        .and_then(|v| v.trim_end_matches(" dB").trim().parse().ok())
        .expect("volumedetect output");
    (channels, mean)
}

/// A temporary file path under the target's temp dir.
fn temp_path(ext: &str) -> std::path::PathBuf {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = option_env!("CARGO_TARGET_TMPDIR").map_or_else(std::env::temp_dir, Into::into);
    dir.join(format!("decoders-{}-{n}.{ext}", std::process::id()))
}

/// FFmpeg's mean volume (dB, `volumedetect`) of `path`.
fn mean_volume(path: &std::path::Path) -> f64 {
    let out = Command::new("ffmpeg")
        .args(["-hide_banner", "-nostdin", "-i"])
        .arg(path)
        .args(["-af", "volumedetect", "-f", "null", "-"])
        .output()
        .expect("ffmpeg runs");
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && !log.contains("Error"), "{log}");
    log.lines()
        .find_map(|l| l.split("mean_volume: ").nth(1))
        .and_then(|v| v.trim_end_matches(" dB").trim().parse().ok())
        .expect("volumedetect output")
}

/// The reference: FFmpeg's own AAC encode (`-c:a aac`, plus `args` such as `-ac 2`) of the first 3 s of
/// a fixture's audio, its mean volume in dB.
fn reference_mean_volume(name: &str, args: &[&str]) -> f64 {
    let path = temp_path("aac");
    let status = Command::new("ffmpeg")
        .args(["-v", "error", "-nostdin", "-y", "-i"])
        .arg(fixtures_dir().join(name))
        .args(["-t", "3", "-vn"])
        .args(args)
        .args(["-c:a", "aac", "-f", "adts"])
        .arg(&path)
        .status()
        .expect("ffmpeg runs");
    assert!(status.success());
    let db = mean_volume(&path);
    let _ = std::fs::remove_file(&path);
    db
}

#[test]
fn aac_5_1_is_downmixed_to_the_stereo_aac_rendition() {
    let src = load_fixture("bbb-720p-h264-aac51-5s.mp4", 3);
    let audio = src.audio.clone().unwrap();
    let CodecConfig::Aac(source) = &audio.config else {
        panic!("AAC source");
    };
    assert_eq!(source.channels, 6, "the fixture is 5.1");
    let frames: Vec<Frame> = src.audio_frames().cloned().collect();
    let (sink, stats) = transcode_audio(&audio, &frames, AudioMode::Transcode);
    assert_eq!(stats.audio.errors, 0, "{stats:?}");
    let out = sink.get("audio");
    let CodecConfig::Aac(aac) = &out.tracks[0].config else {
        panic!("AAC output");
    };
    assert_eq!((aac.channels, aac.sample_rate), (2, 48_000));
    // 3 s at 48 kHz is 140.6 frames of 1024 samples.
    assert!(
        (138..=142).contains(&out.frames.len()),
        "{}",
        out.frames.len()
    );
    let (channels, mean_db) = decode_aac(&out.tracks[0], &out.frames);
    assert_eq!(channels, 2);
    // As loud as `ffmpeg -ac 2 -c:a aac` makes it (the same swresample downmix matrix, not normalised
    // for float output: about 7.7 dB louder than a normalised one).
    let source_db = reference_mean_volume("bbb-720p-h264-aac51-5s.mp4", &["-ac", "2"]);
    assert!(
        (mean_db - source_db).abs() < 1.0,
        "output {mean_db} dB, `ffmpeg -ac 2 -c:a aac` {source_db} dB"
    );
}

#[test]
fn mp3_is_transcoded_to_aac_even_with_audio_passthrough() {
    // The MP3 fixture's audio as an elementary stream, split into frames at their headers.
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-nostdin", "-i"])
        .arg(fixtures_dir().join("bbb-trailer-360p-h264-mp3-12s.mp4"))
        .args([
            "-t",
            "3",
            "-vn",
            "-c:a",
            "copy",
            "-write_xing",
            "0",
            "-id3v2_version",
            "0",
        ])
        .args(["-f", "mp3", "-"])
        .output()
        .expect("ffmpeg runs");
    assert!(out.status.success());
    let es = out.stdout;
    let mut frames = Vec::new();
    let mut format = None;
    let (mut pos, mut samples) = (0usize, 0i64);
    while pos < es.len() {
        let h = MpegAudioHeader::parse(&es[pos..]).expect("an MP3 frame");
        format.get_or_insert(AudioFormat {
            sample_rate_hz: h.sample_rate_hz,
            channels: h.channels,
        });
        let end = (pos + h.frame_bytes).min(es.len());
        frames.push(Frame {
            track: TrackKind::Audio,
            dts: samples,
            pts: samples,
            is_keyframe: true,
            data: Bytes::copy_from_slice(&es[pos..end]),
        });
        samples += i64::from(h.samples_per_frame);
        pos = end;
    }
    let track = TrackInfo::new(CodecConfig::Decodable(DecodableConfig::audio(
        DecodableCodec::Mp3,
        Bytes::new(),
        format.unwrap(),
    )));
    assert_eq!(track.timescale, 44_100);
    let (sink, stats) = transcode_audio(&track, &frames, AudioMode::Passthrough);
    assert_eq!(stats.audio.errors, 0, "{stats:?}");
    let out = sink.get("audio");
    assert_eq!(out.tracks.len(), 1);
    assert_eq!(out.tracks[0].config.rfc6381(), "mp4a.40.2");
    assert!(out.frames.len() >= 135, "{}", out.frames.len());
    let (channels, mean_db) = decode_aac(&out.tracks[0], &out.frames);
    assert_eq!(channels, 2);
    // As loud as the source's first 3 s (quiet titles: about −52 dB).
    let source_db = reference_mean_volume("bbb-trailer-360p-h264-mp3-12s.mp4", &[]);
    assert!(
        (mean_db - source_db).abs() < 1.5,
        "output {mean_db} dB, source {source_db} dB"
    );
}

#[test]
fn aac_in_latm_is_decoded_and_downmixed() {
    // LOAS frames as MPEG-TS stream_type 0x11 carries them (FFmpeg's `-f latm`), split at their headers.
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-nostdin", "-i"])
        .arg(fixtures_dir().join("bbb-720p-h264-aac51-5s.mp4"))
        .args(["-t", "3", "-vn", "-c:a", "aac", "-f", "latm", "-"])
        .output()
        .expect("ffmpeg runs");
    assert!(out.status.success());
    let es = out.stdout;
    let (mut pos, mut samples, mut frames, mut config) = (0usize, 0i64, Vec::new(), None);
    while pos < es.len() {
        let f = media::latm::LoasFrame::parse(&es[pos..]).expect("a LOAS frame");
        config = config.or(f.config);
        frames.push(Frame {
            track: TrackKind::Audio,
            dts: samples,
            pts: samples,
            is_keyframe: true,
            data: Bytes::copy_from_slice(&es[pos..pos + f.frame_bytes]),
        });
        samples += 1024;
        pos += f.frame_bytes;
    }
    let config = config.expect("a StreamMuxConfig");
    assert_eq!(
        (config.format.sample_rate_hz, config.format.channels),
        (48_000, 6)
    );
    let track = TrackInfo::new(CodecConfig::Decodable(DecodableConfig::audio(
        DecodableCodec::AacLatm,
        Bytes::new(),
        config.format,
    )));
    let (sink, stats) = transcode_audio(&track, &frames, AudioMode::Transcode);
    assert_eq!(stats.audio.errors, 0, "{stats:?}");
    let out = sink.get("audio");
    // 3 s, and the AAC encoder's priming frame in the source.
    assert!(
        (138..=145).contains(&out.frames.len()),
        "{}",
        out.frames.len()
    );
    let (channels, mean_db) = decode_aac(&out.tracks[0], &out.frames);
    assert_eq!(channels, 2);
    let source_db = reference_mean_volume("bbb-720p-h264-aac51-5s.mp4", &["-ac", "2"]);
    assert!(
        (mean_db - source_db).abs() < 1.5,
        "output {mean_db} dB, reference {source_db} dB"
    );
}

#[test]
fn aac_5_1_becomes_stereo_20_ms_opus_packets_on_the_source_timeline() {
    let src = load_fixture("bbb-720p-h264-aac51-5s.mp4", 3);
    let audio = src.audio.clone().unwrap();
    let frames: Vec<Frame> = src.audio_frames().cloned().collect();
    let first_48khz = media::time::rescale(frames[0].pts, audio.timescale, 48_000);
    let (tx, rx) = std::sync::mpsc::channel();
    let encoder = transcoder::OpusEncoder::start(
        "live/opus",
        &audio,
        Box::new(move |p| {
            let _ = tx.send(p);
        }),
    )
    .expect("libopus opens");
    for f in frames {
        assert!(
            encoder.push(f),
            "the queue holds 3 s of frames pushed at once"
        );
    }
    let errors = encoder.errors();
    drop(encoder);
    assert_eq!(errors, 0);
    let packets: Vec<transcoder::OpusPacket> = rx.iter().collect();
    // 3 s is 150 packets of 20 ms (the last partial one is not sent).
    assert!(
        (145..=150).contains(&packets.len()),
        "{} packets",
        packets.len()
    );
    for w in packets.windows(2) {
        assert_eq!(
            w[1].pts_48khz - w[0].pts_48khz,
            960,
            "20 ms apart, in order"
        );
    }
    // libopus's look-ahead (312 samples) is taken off the first packet's time.
    assert!(
        (packets[0].pts_48khz - first_48khz).abs() <= 960,
        "{} vs source {first_48khz}",
        packets[0].pts_48khz
    );
    for p in &packets {
        // RFC 6716 §3.1: the TOC byte. Configurations 16..=31 are CELT (the low-delay application);
        // 3, 7, 11, 15, 19, 23, 27, 31 are 20 ms frames; the s bit is stereo; code 0 is one frame.
        let toc = p.data[0];
        assert_eq!((toc >> 3) % 4, 3, "20 ms: TOC {toc:#04x}");
        assert!(toc >> 3 >= 16, "CELT: TOC {toc:#04x}");
        assert_eq!(toc & 0x4, 0x4, "stereo: TOC {toc:#04x}");
        assert_eq!(toc & 0x3, 0, "one frame: TOC {toc:#04x}");
    }
}
