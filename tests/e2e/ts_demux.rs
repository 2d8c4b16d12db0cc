//! MPEG-TS demuxer against real streams: the fixtures remuxed (`-c copy`) or re-encoded into MPEG-TS by the
//! system FFmpeg, demuxed by `estuary::ingest::ts::TsDemuxer` in SRT-sized chunks, and compared with an
//! independent reference — ffprobe's packet list of the same TS (count, PTS, DTS, keyframe flags) and
//! stream parameters, and the decoder configuration records stored in the source MP4/MOV.

use std::path::{Path, PathBuf};
use std::process::Command;

use bytes::Bytes;
use estuary::ingest::IngestEvent;
use estuary::ingest::ts::{TsDemuxer, TsStats};
use media::time::rescale;
use media::{CodecConfig, Frame, TrackInfo, TrackKind};

use crate::common::{ffprobe, fixture};

/// What `srt-live-transmit` puts in one SRT payload.
const SRT_LIVE_TRANSMIT_CHUNK_BYTES: usize = 1456;
/// What FFmpeg's SRT protocol puts in one payload (7 TS packets).
const FFMPEG_SRT_CHUNK_BYTES: usize = 1316;

/// Run FFmpeg: `-i input {args} -f mpegts {dir}/{name}`; returns the output path.
fn make_ts(dir: &Path, input: &Path, args: &[&str], name: &str) -> PathBuf {
    let out = dir.join(name);
    let status = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-nostdin", "-y", "-i"])
        .arg(input)
        .args(args)
        .args(["-f", "mpegts"])
        .arg(&out)
        .status()
        .expect("ffmpeg runs");
    assert!(status.success(), "ffmpeg made {name}");
    out
}

struct Demuxed {
    tracks: Vec<TrackInfo>,
    unusable: Vec<estuary::ingest::UnusableTrack>,
    splices: Vec<protocols::SpliceEvent>,
    video: Vec<Frame>,
    audio: Vec<Frame>,
    stats: TsStats,
}

/// Demux `ts` pushed in `chunk_bytes` pieces (each push must succeed), then `finish`.
fn demux(ts: &[u8], chunk_bytes: usize) -> Demuxed {
    let mut demuxer = TsDemuxer::new(8 << 20);
    let mut out = Vec::new();
    for chunk in ts.chunks(chunk_bytes) {
        demuxer.push(chunk, &mut out).expect("an MPEG-TS stream");
        demuxer.check_invariants();
    }
    demuxer.finish(&mut out);
    demuxer.check_invariants();
    let mut d = Demuxed {
        tracks: Vec::new(),
        unusable: Vec::new(),
        splices: Vec::new(),
        video: Vec::new(),
        audio: Vec::new(),
        stats: demuxer.stats(),
    };
    // Like an RTMP publisher's sequence headers, every track of the program is announced before the
    // first frame (the demuxer holds the start of the stream until the audio has configured itself).
    let first_frame = out
        .iter()
        .position(|e| matches!(e, IngestEvent::Frame(_)))
        .unwrap_or(out.len());
    let kinds: Vec<TrackKind> = out[..first_frame]
        .iter()
        .filter_map(|e| match e {
            IngestEvent::Track(t) => Some(t.kind()),
            _ => None,
        })
        .collect();
    // (A track whose first frame comes more than the demuxer's start-up hold after the first video
    // frame is announced when it appears: the camera clip's audio starts 2.4 s after its video.)
    let first_s = |kind: TrackKind| {
        let ts = out.iter().find_map(|e| match e {
            IngestEvent::Track(t) if t.kind() == kind => Some(t.timescale),
            _ => None,
        })?;
        out.iter().find_map(|e| match e {
            IngestEvent::Frame(f) if f.track == kind => Some(f.dts as f64 / f64::from(ts)),
            _ => None,
        })
    };
    let hold_s = estuary::ingest::ts::START_HOLD_90KHZ as f64 / 90_000.0;
    for kind in [TrackKind::Video, TrackKind::Audio] {
        let Some(first) = first_s(kind) else {
            continue;
        };
        let late = first_s(TrackKind::Video).is_some_and(|v| first - v > hold_s);
        assert!(
            late || kinds.contains(&kind),
            "{kind:?} announced after the first frame; before it: {kinds:?}"
        );
    }
    for event in out {
        match event {
            IngestEvent::Track(t) => {
                let frames = if t.kind() == TrackKind::Video {
                    &d.video
                } else {
                    &d.audio
                };
                assert!(
                    frames.is_empty() || d.tracks.iter().any(|x| x.kind() == t.kind()),
                    "a track precedes its frames"
                );
                d.tracks.push(t);
            }
            IngestEvent::Frame(f) => {
                assert!(
                    d.tracks.iter().any(|t| t.kind() == f.track),
                    "frame before its track: {f:?}"
                );
                match f.track {
                    TrackKind::Video => d.video.push(f),
                    TrackKind::Audio => d.audio.push(f),
                }
            }
            IngestEvent::Unusable(u) => d.unusable.push(u),
            IngestEvent::Splice(s) => d.splices.push(s),
        }
    }
    d
}

/// One packet of ffprobe's packet list.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ProbedPacket {
    pts: i64,
    dts: i64,
    is_keyframe: bool,
}

/// ffprobe's packets of `ts` by kind ("video" / "audio"), in 90 kHz ticks.
fn probe_packets(ts: &Path, kind: &str) -> Vec<ProbedPacket> {
    let text = ffprobe(
        &[
            "-show_entries",
            "packet=codec_type,pts,dts,flags",
            "-of",
            "json",
        ],
        ts.to_str().unwrap(),
    );
    let json: serde_json::Value = serde_json::from_str(&text).expect("ffprobe json");
    json["packets"]
        .as_array()
        .expect("packets")
        .iter()
        .filter(|p| p["codec_type"] == kind)
        .map(|p| {
            let pts = p["pts"].as_i64().expect("pts");
            ProbedPacket {
                pts,
                dts: p["dts"].as_i64().unwrap_or(pts),
                is_keyframe: p["flags"].as_str().unwrap_or("").starts_with('K'),
            }
        })
        .collect()
}

/// ffprobe's value of `entry` (e.g. `width`) for the first stream of `kind` in `path`.
fn probe_stream(path: &Path, kind: &str, entry: &str) -> String {
    let select = if kind == "video" { "v:0" } else { "a:0" };
    ffprobe(
        &[
            "-select_streams",
            select,
            "-show_entries",
            &format!("stream={entry}"),
            "-of",
            "csv=p=0",
        ],
        path.to_str().unwrap(),
    )
    .lines()
    .map(str::trim)
    .find(|l| !l.is_empty()) // a TS lists its streams once per program too
    .unwrap_or_default()
    .to_owned()
}

/// The body of the first box named `fourcc` in a file (a flat byte search: the sample entry's
/// configuration box of a single-video-track MP4/MOV).
fn box_body(file: &[u8], fourcc: &[u8; 4]) -> Bytes {
    let at = file
        .windows(4)
        .position(|w| w == fourcc)
        .unwrap_or_else(|| panic!("no {} box", String::from_utf8_lossy(fourcc)));
    let size = u32::from_be_bytes(file[at - 4..at].try_into().unwrap()) as usize;
    Bytes::copy_from_slice(&file[at + 4..at - 4 + size])
}

fn video_track(d: &Demuxed) -> &TrackInfo {
    let video: Vec<&TrackInfo> = d
        .tracks
        .iter()
        .filter(|t| t.kind() == TrackKind::Video)
        .collect();
    assert_eq!(video.len(), 1, "one video configuration for the whole file");
    video[0]
}

fn audio_track(d: &Demuxed) -> &TrackInfo {
    let audio: Vec<&TrackInfo> = d
        .tracks
        .iter()
        .filter(|t| t.kind() == TrackKind::Audio)
        .collect();
    assert_eq!(audio.len(), 1, "one audio configuration for the whole file");
    audio[0]
}

/// Video frames equal ffprobe's packets one for one: PTS, DTS (90 kHz) and keyframe flag.
fn assert_video_matches(d: &Demuxed, probed: &[ProbedPacket]) {
    assert_eq!(d.video.len(), probed.len(), "video frame count");
    let ours: Vec<ProbedPacket> = d
        .video
        .iter()
        .map(|f| ProbedPacket {
            pts: f.pts,
            dts: f.dts,
            is_keyframe: f.is_keyframe,
        })
        .collect();
    assert_eq!(ours, probed);
    assert!(d.video[0].is_keyframe, "starts with a keyframe");
}

/// Audio frames equal ffprobe's packets in number; timestamps within 2 samples of ffprobe's (which
/// derives the PTS of each but the first ADTS frame of a PES from rounded 90 kHz durations), first and
/// last exactly; exactly `samples_per_frame` apart.
fn assert_audio_matches(d: &Demuxed, probed: &[ProbedPacket], sample_rate: u32) {
    assert_eq!(d.audio.len(), probed.len(), "audio frame count");
    for (ours, theirs) in d.audio.iter().zip(probed) {
        let expected = rescale(theirs.pts, 90_000, sample_rate);
        assert!(
            (ours.dts - expected).abs() <= 2,
            "audio dts {} vs ffprobe {} ({} at 90 kHz)",
            ours.dts,
            expected,
            theirs.pts
        );
        assert_eq!(ours.pts, ours.dts);
    }
    assert_eq!(
        d.audio[0].dts,
        rescale(probed[0].pts, 90_000, sample_rate),
        "first audio timestamp"
    );
    assert!(d.audio.windows(2).all(|w| w[1].dts - w[0].dts == 1024));
    assert_eq!(d.stats.audio_resyncs, 0);
}

fn assert_clean(stats: &TsStats) {
    assert_eq!(
        (
            stats.resyncs,
            stats.cc_errors,
            stats.pes_dropped,
            stats.transport_errors,
            stats.psi_errors,
            stats.adts_errors,
            stats.config_errors,
            stats.frames_before_config,
        ),
        (0, 0, 0, 0, 0, 0, 0, 0),
        "{stats:?}"
    );
}

#[test]
fn ts_demux_h264_aac_remux_matches_ffprobe_and_mp4_config() {
    let dir = tempfile::tempdir().unwrap();
    let mp4 = fixture("bbb-720p-2s-gop.mp4");
    let ts_path = make_ts(dir.path(), &mp4, &["-c", "copy"], "bbb.ts");
    let ts = std::fs::read(&ts_path).unwrap();
    let d = demux(&ts, SRT_LIVE_TRANSMIT_CHUNK_BYTES);
    assert_clean(&d.stats);
    assert_eq!(d.stats.packets as usize * 188, ts.len());

    assert_video_matches(&d, &probe_packets(&ts_path, "video"));
    assert_eq!(d.video.len(), 720);
    let keyframes: Vec<usize> = (0..d.video.len())
        .filter(|&i| d.video[i].is_keyframe)
        .collect();
    assert_eq!(keyframes, (0..720).step_by(48).collect::<Vec<_>>());
    assert!(
        d.video.iter().any(|f| f.pts != f.dts),
        "the fixture has B-frames"
    );

    // The configuration built from in-band SPS/PPS equals the MP4's avcC in codec string and sets.
    let from_mp4 = TrackInfo::from_avcc(box_body(&std::fs::read(&mp4).unwrap(), b"avcC")).unwrap();
    let video = video_track(&d);
    assert_eq!(video.config.rfc6381(), from_mp4.config.rfc6381());
    assert_eq!(video.config.rfc6381(), "avc1.64001f");
    match (&video.config, &from_mp4.config) {
        (CodecConfig::Avc(ours), CodecConfig::Avc(theirs)) => {
            assert_eq!((&ours.sps, &ours.pps), (&theirs.sps, &theirs.pps));
        }
        other => panic!("unexpected configs {other:?}"),
    }
    let params = video.config.video_params().unwrap();
    assert_eq!(
        (params.width.to_string(), params.height.to_string()),
        (
            probe_stream(&ts_path, "video", "width"),
            probe_stream(&ts_path, "video", "height")
        )
    );

    let audio = audio_track(&d);
    let CodecConfig::Aac(aac) = &audio.config else {
        panic!("AAC expected")
    };
    assert_eq!(audio.config.rfc6381(), "mp4a.40.2");
    assert_eq!(
        aac.sample_rate.to_string(),
        probe_stream(&ts_path, "audio", "sample_rate")
    );
    assert_eq!(
        aac.channels.to_string(),
        probe_stream(&ts_path, "audio", "channels")
    );
    assert_eq!(audio.timescale, aac.sample_rate);
    assert_audio_matches(&d, &probe_packets(&ts_path, "audio"), aac.sample_rate);

    // Samples: 4-byte length-prefixed NAL units covering the whole sample, no AUD/SPS/PPS left in.
    for f in &d.video {
        let mut rest = &f.data[..];
        while !rest.is_empty() {
            let len = u32::from_be_bytes(rest[..4].try_into().unwrap()) as usize;
            let nal_type = rest[4] & 0x1F;
            assert!(
                !matches!(nal_type, 7..=9),
                "nal type {nal_type} in a sample"
            );
            rest = &rest[4 + len..];
        }
    }

    // Every chunking gives the same frames (FFmpeg's SRT payloads, single packets, one big push).
    for chunk in [FFMPEG_SRT_CHUNK_BYTES, 188, 1 << 20] {
        let other = demux(&ts, chunk);
        assert_eq!(other.video, d.video, "chunks of {chunk}");
        assert_eq!(other.audio, d.audio, "chunks of {chunk}");
        assert_eq!(other.tracks, d.tracks, "chunks of {chunk}");
    }
}

#[test]
fn ts_demux_hevc_aac_remux_matches_ffprobe_and_mov_config() {
    let dir = tempfile::tempdir().unwrap();
    let mov = fixture("camera-face-540p-hevc-aac-6s.mov");
    let ts_path = make_ts(
        dir.path(),
        &mov,
        &["-c", "copy", "-bsf:v", "hevc_mp4toannexb"],
        "face.ts",
    );
    let ts = std::fs::read(&ts_path).unwrap();
    let d = demux(&ts, SRT_LIVE_TRANSMIT_CHUNK_BYTES);
    assert_clean(&d.stats);

    let probed = probe_packets(&ts_path, "video");
    assert_video_matches(&d, &probed);
    let from_mov = TrackInfo::from_hvcc(box_body(&std::fs::read(&mov).unwrap(), b"hvcC")).unwrap();
    let video = video_track(&d);
    assert_eq!(video.config.rfc6381(), from_mov.config.rfc6381());
    assert!(video.config.rfc6381().starts_with("hvc1.1."));
    match (&video.config, &from_mov.config) {
        (CodecConfig::Hevc(ours), CodecConfig::Hevc(theirs)) => {
            assert_eq!(
                (&ours.vps, &ours.sps, &ours.pps),
                (&theirs.vps, &theirs.sps, &theirs.pps)
            );
        }
        other => panic!("unexpected configs {other:?}"),
    }
    let params = video.config.video_params().unwrap();
    assert_eq!((params.width, params.height), (960, 540));
    for f in &d.video {
        let mut rest = &f.data[..];
        while !rest.is_empty() {
            let len = u32::from_be_bytes(rest[..4].try_into().unwrap()) as usize;
            let nal_type = (rest[4] >> 1) & 0x3F;
            assert!(
                !matches!(nal_type, 32..=35),
                "nal type {nal_type} in a sample"
            );
            rest = &rest[4 + len..];
        }
    }

    let audio = audio_track(&d);
    let CodecConfig::Aac(aac) = &audio.config else {
        panic!("AAC expected")
    };
    assert_eq!(
        (aac.sample_rate.to_string(), aac.channels.to_string()),
        (
            probe_stream(&ts_path, "audio", "sample_rate"),
            probe_stream(&ts_path, "audio", "channels")
        )
    );
    assert_audio_matches(&d, &probe_packets(&ts_path, "audio"), aac.sample_rate);
}

#[test]
fn ts_demux_x264_b_frames_keep_pts_and_dts_apart() {
    let dir = tempfile::tempdir().unwrap();
    let ts_path = make_ts(
        dir.path(),
        &fixture("bbb-720p-2s-gop.mp4"),
        &[
            "-t",
            "4",
            "-an",
            "-vf",
            "scale=320:180",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-bf",
            "2",
            "-g",
            "24",
            "-threads",
            "1",
        ],
        "bframes.ts",
    );
    let ts = std::fs::read(&ts_path).unwrap();
    let d = demux(&ts, SRT_LIVE_TRANSMIT_CHUNK_BYTES);
    assert_clean(&d.stats);
    assert_video_matches(&d, &probe_packets(&ts_path, "video"));
    let reordered = d.video.iter().filter(|f| f.pts != f.dts).count();
    assert!(
        reordered > d.video.len() / 2,
        "{reordered} frames with pts != dts"
    );
    assert!(d.video.iter().all(|f| f.composition_offset() >= 0));
    assert!(
        d.video.windows(2).all(|w| w[1].dts > w[0].dts),
        "DTS increase"
    );
    assert!(d.audio.is_empty());
}

#[test]
fn ts_demux_srt_like_losses_never_emit_damaged_frames() {
    let dir = tempfile::tempdir().unwrap();
    let ts_path = make_ts(
        dir.path(),
        &fixture("bbb-720p-2s-gop.mp4"),
        &["-t", "10", "-c", "copy"],
        "bbb10.ts",
    );
    let ts = std::fs::read(&ts_path).unwrap();
    let clean = demux(&ts, SRT_LIVE_TRANSMIT_CHUNK_BYTES);
    // Lose every 37th 1456-byte payload (not 188-aligned: packets are cut in the middle).
    let mut demuxer = TsDemuxer::new(8 << 20);
    let mut out = Vec::new();
    for (i, chunk) in ts.chunks(SRT_LIVE_TRANSMIT_CHUNK_BYTES).enumerate() {
        if i % 37 != 36 {
            demuxer.push(chunk, &mut out).expect("still MPEG-TS");
            demuxer.check_invariants();
        }
    }
    demuxer.finish(&mut out);
    let stats = demuxer.stats();
    let lost = ts.chunks(SRT_LIVE_TRANSMIT_CHUNK_BYTES).count() / 37;
    assert!(stats.resyncs as usize >= lost / 2, "{stats:?}");
    assert!(stats.cc_errors > 0 && stats.pes_dropped > 0, "{stats:?}");
    let frames: Vec<Frame> = out
        .into_iter()
        .filter_map(|e| match e {
            IngestEvent::Frame(f) => Some(f),
            IngestEvent::Track(_) | IngestEvent::Unusable(_) | IngestEvent::Splice(_) => None,
        })
        .collect();
    // Audio survives the losses mostly; video drops from each loss to the next keyframe (pictures
    // whose references may be gone), so what it emits always decodes.
    let audio = frames
        .iter()
        .filter(|f| f.track == TrackKind::Audio)
        .count();
    assert!(
        audio > clean.audio.len() * 3 / 4,
        "{audio} of {} audio frames survive",
        clean.audio.len()
    );
    assert!(stats.keyframe_waits > 0, "{stats:?}");
    let mut j = 0;
    for f in frames.iter().filter(|f| f.track == TrackKind::Video) {
        let at = clean.video[j..]
            .iter()
            .position(|r| r == f)
            .unwrap_or_else(|| panic!("damaged, invented or reordered video frame {f:?}"));
        assert!(
            at == 0 || f.is_keyframe,
            "video resumed after a loss without a keyframe: {f:?}"
        );
        j += at + 1;
    }
    // Every frame that comes out is byte-identical to one of the loss-free run.
    for f in &frames {
        let reference = match f.track {
            TrackKind::Video => &clean.video,
            TrackKind::Audio => &clean.audio,
        };
        assert!(reference.contains(f), "damaged or invented frame {f:?}");
    }
}

/// Audio frames equal ffprobe's packets in number, are exactly `samples_per_frame` apart and start at
/// ffprobe's first PTS (in samples at `sample_rate`).
fn assert_framed_audio_matches(
    d: &Demuxed,
    probed: &[ProbedPacket],
    sample_rate: u32,
    samples_per_frame: i64,
) {
    assert_eq!(d.audio.len(), probed.len(), "audio frame count");
    assert_eq!(
        d.audio[0].dts,
        rescale(probed[0].pts, 90_000, sample_rate),
        "first audio timestamp"
    );
    assert!(
        d.audio
            .windows(2)
            .all(|w| w[1].dts - w[0].dts == samples_per_frame),
        "frames {samples_per_frame} samples apart"
    );
    assert_eq!((d.stats.audio_resyncs, d.stats.audio_sync_errors), (0, 0));
}

fn decodable(track: &TrackInfo) -> &media::DecodableConfig {
    match &track.config {
        CodecConfig::Decodable(d) => d,
        other => panic!("not a decodable codec: {other:?}"),
    }
}

#[test]
fn ts_demux_mpeg2_video_and_mp3_audio_match_ffprobe() {
    // MPEG-2 video (stream_type 0x02) from the camera clip with the trailer's MP3 (0x03), both copied.
    let dir = tempfile::tempdir().unwrap();
    let mp3 = fixture("bbb-trailer-360p-h264-mp3-12s.mp4");
    let ts_path = make_ts(
        dir.path(),
        &fixture("camera-city-cc0-405p-mpeg2-8s.mpg"),
        &[
            "-i",
            mp3.to_str().unwrap(),
            "-map",
            "0:v",
            "-map",
            "1:a",
            "-c",
            "copy",
            "-t",
            "6",
        ],
        "mpeg2-mp3.ts",
    );
    let ts = std::fs::read(&ts_path).unwrap();
    let d = demux(&ts, FFMPEG_SRT_CHUNK_BYTES);
    assert_clean(&d.stats);
    assert!(d.unusable.is_empty());

    let video = decodable(video_track(&d));
    assert_eq!(video.codec, media::DecodableCodec::Mpeg2Video);
    let params = video.video.expect("picture size from the sequence header");
    assert_eq!(
        format!("{},{}", params.width, params.height),
        probe_stream(&ts_path, "video", "width,height").trim_end_matches(',')
    );
    assert_eq!(params.frame_rate, Some((25, 1)));
    // One frame per picture, PTS/DTS from the PES, keyframes = I pictures with their sequence header,
    // exactly as ffprobe sees the packets.
    assert_video_matches(&d, &probe_packets(&ts_path, "video"));
    assert!(
        d.video.iter().any(|f| f.pts != f.dts),
        "the clip has B pictures"
    );
    assert!(d.video.iter().filter(|f| f.is_keyframe).count() >= 12);
    assert!(d.video[0].data.starts_with(&[0, 0, 1, 0xB3]));

    let audio_track = audio_track(&d);
    let audio = decodable(audio_track);
    assert_eq!(audio.codec, media::DecodableCodec::Mp3);
    assert_eq!(
        audio
            .audio
            .map(|a| format!("{},{}", a.sample_rate_hz, a.channels)),
        Some(
            probe_stream(&ts_path, "audio", "sample_rate,channels")
                .trim_end_matches(',')
                .to_owned()
        )
    );
    assert_eq!(audio_track.timescale, 44_100);
    assert_framed_audio_matches(&d, &probe_packets(&ts_path, "audio"), 44_100, 1152);
    assert!(d.audio.iter().all(|f| f.data.starts_with(&[0xFF])));
}

#[test]
fn ts_demux_ac3_eac3_opus_and_latm_5_1_from_ffmpeg_match_ffprobe() {
    // The 5.1 clip's audio encoded by FFmpeg into each codec (AC-3: 0x81, E-AC-3: 0x87, Opus: 0x06 with
    // its registration and extension descriptors, AAC in LATM: 0x11), 3 s each.
    let dir = tempfile::tempdir().unwrap();
    let clip = fixture("bbb-720p-h264-aac51-5s.mp4");
    for (codec, name, samples, extra) in [
        ("ac3", "ac-3", 1536, &[][..]),
        ("eac3", "e-ac-3", 1536, &[][..]),
        ("libopus", "opus", 960, &["-b:a", "256k"][..]),
        ("aac", "aac latm", 1024, &["-mpegts_flags", "latm"][..]),
    ] {
        let mut args = vec!["-map", "0:a", "-t", "3", "-c:a", codec];
        args.extend_from_slice(extra);
        let ts_path = make_ts(dir.path(), &clip, &args, &format!("{codec}.ts"));
        let ts = std::fs::read(&ts_path).unwrap();
        let d = demux(&ts, SRT_LIVE_TRANSMIT_CHUNK_BYTES);
        assert_clean(&d.stats);
        let track = audio_track(&d);
        let config = decodable(track);
        assert_eq!(
            (track.config.name(), config.audio.map(|a| a.channels)),
            (name, Some(6)),
            "{codec}"
        );
        assert_eq!(track.timescale, 48_000, "{codec}");
        assert_framed_audio_matches(&d, &probe_packets(&ts_path, "audio"), 48_000, samples);
        if codec == "libopus" {
            // OpusHead with mapping family 1 for six channels, and packets without control headers.
            assert_eq!(
                media::decodable::opus_head_channels(&config.extradata),
                Some(6)
            );
            assert!(d.audio.iter().all(|f| f.data[0] != 0x7F));
        }
    }
}
