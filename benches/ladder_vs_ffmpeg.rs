//! The default ABR ladder, Estuary's transcoder against the FFmpeg CLI doing the identical ladder, in one run
//! on the same input, both at full speed (not paced).
//!
//! Input: the fixture FLV (30 s of 720p24 H.264 with a 2 s GOP and AAC-LC 44.1 kHz stereo, `-c copy` from
//! `fixtures/bbb-720p-2s-gop.mp4`), turned into `media::Frame`s by the origin's own
//! `estuary::ingest::flv::FlvParser` before any clock starts.
//!
//! Ours: `transcoder::StreamTranscoder` with `transcoder::default_ladder` for the source (720p: `source`
//! copy, `480p`, `360p`), `probe_encoders(Software)` (libx264), default options (2 s segment target, AAC-LC
//! 48 kHz stereo 128 kbit/s), a sink that only counts, every frame handed over with `push_wait` (no
//! shedding), then `finish()` (drains and flushes every codec). Timed from before `start` (opening the
//! codecs) to `finish` returning: wall time and this process's CPU time (user + system, every thread,
//! `/proc/self/stat`).
//!
//! Peer: one `ffmpeg` process doing the same work: one decode (1 thread, as ours), `split`, swscale bicubic
//! to each rung's size, libx264 with exactly the options `transcoder/src/settings.rs` gives each rung
//! (preset, tune, profile, bit rate / maxrate / bufsize, `g`, `bf`, `forced-idr`, `sc_threshold`,
//! `rc-lookahead`, the same `x264-params`, threads per encoder, global headers), IDRs forced on the same
//! source presentation times (the segment starts the transcoder computes: source keyframes ≥ 2 s − 2 ms
//! apart), the source video stream copied, AAC-LC 48 kHz stereo 128 kbit/s through swresample, all into
//! `-f null` (no muxing cost). Its CPU time is the waited-for children's user + system time
//! (`/proc/self/stat` `cutime` + `cstime`) around the process.
//!
//! A verification pass first (untimed; also the warm-up) runs both once more with the FFmpeg output written
//! to a Matroska file instead (and ours kept in memory), and compares per rendition: frames, bytes, and
//! the PTS of every keyframe; then the quality of each encoded rung, ours and FFmpeg's: PSNR and SSIM
//! (FFmpeg's `psnr` and `ssim` filters, averaged over Y, U and V and over the frames) against the
//! source scaled to the rung's size with lanczos, frame n against frame n.
//! Then `--runs=N` (default 3) alternating timed runs (ours, ffmpeg, ours, ...); medians are reported. Prints
//! numbers only; asserts nothing about time.
//!
//! Last, streams per machine (`capacity`): N transcoders at once, each fed in real time, against N CLI
//! processes with `-re`, for each N of `--streams` (default 4, 5, 6).
//!
//! `cargo bench --bench ladder_vs_ffmpeg` (about 6 min on 2 cores); `-- --runs=N`; `-- --no-verify`;
//! `-- --streams=N,M,…` (`--streams=0`: none).

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use bytes::Bytes;
use estuary::ingest::{IngestEvent, flv::FlvParser};
use media::{Frame, TrackInfo, TrackKind};
use transcoder::{
    EncoderChoice, EncoderProbe, RungConfig, StreamTranscoder, TranscodeOptions, TranscodeSink,
    TranscodeStats, VideoCodec, default_ladder, probe_encoders,
};

#[path = "ladder_vs_ffmpeg/capacity.rs"]
mod capacity;

use testkit::flv::TagKind;
use testkit::percentile;

/// Largest frame the FLV parser accepts, bytes.
const MAX_FRAME_BYTES: usize = 16 << 20;
/// Timestamp jitter the transcoder tolerates on the segment grid (its `JITTER_TOLERANCE_90KHZ`: 2 ms).
const JITTER_90KHZ: i64 = 180;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let runs: usize = args
        .iter()
        .find_map(|a| a.strip_prefix("--runs="))
        .map_or(3, |v| v.parse().expect("--runs=N"))
        .max(1);
    let verify = !args.iter().any(|a| a == "--no-verify");
    let streams: Vec<usize> = args
        .iter()
        .find_map(|a| a.strip_prefix("--streams="))
        .unwrap_or("4,5,6")
        .split(',')
        .filter(|v| !v.is_empty() && *v != "0")
        .map(|v| v.parse().expect("--streams=N,M,..."))
        .collect();

    let flv_path = testkit::flv::fixture_flv();
    let src = load_source(&flv_path);
    let params = src.video.config.video_params().expect("video parameters");
    let ladder = default_ladder(params);
    let probe = probe_encoders(EncoderChoice::Software).expect("software encoders");
    let options = TranscodeOptions::default();
    let forced = segment_starts_90khz(
        &src.frames,
        options.segment_target.as_micros() as i64 * 9 / 100,
    );
    let cmd = FfmpegLadder::new(&ladder, &probe, &src, &options, &forced);

    println!(
        "ladder_vs_ffmpeg: the default ladder, Estuary's StreamTranscoder vs the ffmpeg CLI, full speed"
    );
    println!(
        "input: {} — {} video frames ({}x{}, frame rate {:?}), {} audio frames, {:.2} s; {} cores (shared); load {}",
        flv_path.display(),
        src.frames
            .iter()
            .filter(|f| f.track == TrackKind::Video)
            .count(),
        params.width,
        params.height,
        params.frame_rate,
        src.frames
            .iter()
            .filter(|f| f.track == TrackKind::Audio)
            .count(),
        src.media_s,
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        loadavg()
    );
    println!(
        "ladder: {}; audio AAC-LC {} Hz {} ch {} bit/s; encoder {}; forced IDRs at {} source PTS (s): {}",
        ladder
            .iter()
            .map(|r| match r.height {
                Some(h) => format!("{} ({} lines, {} bit/s)", r.name, h, r.bitrate_bps),
                None => format!("{} (copy)", r.name),
            })
            .collect::<Vec<_>>()
            .join(", "),
        options.audio.sample_rate,
        options.audio.channels,
        options.audio.bitrate_bps,
        probe.h264,
        forced.len(),
        cmd.forced_times
    );
    println!(
        "\nffmpeg command (timed runs):\n  {}",
        shell_line(&cmd.args(None))
    );

    if verify {
        verify_same_work(&src, &ladder, &probe, &options, &cmd);
    }

    println!("\ntimed runs ({runs} each, alternating):");
    let mut ours = Vec::new();
    let mut theirs = Vec::new();
    for i in 0..runs {
        let o = run_ours(&src, &ladder, &probe, &options, false);
        println!(
            "  ours   #{}: wall {:6.2} s  CPU {:6.2} s  (RTF {:.2}; encoder delay {}; load {})",
            i + 1,
            o.wall,
            o.cpu,
            o.stats.real_time_factor,
            delays(&o.stats),
            loadavg()
        );
        ours.push(o);
        let t = run_ffmpeg(&cmd.args(None));
        println!(
            "  ffmpeg #{}: wall {:6.2} s  CPU {:6.2} s  (load {})",
            i + 1,
            t.wall,
            t.cpu,
            loadavg()
        );
        theirs.push(t);
    }

    let med = |v: Vec<f64>| {
        let mut v = v;
        v.sort_by(f64::total_cmp);
        percentile(&v, 50.0)
    };
    let ours_wall = med(ours.iter().map(|r| r.wall).collect());
    let ours_cpu = med(ours.iter().map(|r| r.cpu).collect());
    let ffmpeg_wall = med(theirs.iter().map(|r| r.wall).collect());
    let ffmpeg_cpu = med(theirs.iter().map(|r| r.cpu).collect());
    let rtf = med(ours.iter().map(|r| r.stats.real_time_factor).collect());
    let ratios: Vec<f64> = ours
        .iter()
        .zip(&theirs)
        .map(|(o, t)| o.cpu / t.cpu)
        .collect();
    println!();
    println!(
        "| medians of {runs} | wall s | CPU s (user+sys) | CPU s per media s | × real time (media / wall) |"
    );
    println!("|---|---:|---:|---:|---:|");
    println!(
        "| Estuary StreamTranscoder | {ours_wall:.2} | {ours_cpu:.2} | {:.3} | {:.2} (TranscodeStats RTF {rtf:.2}) |",
        ours_cpu / src.media_s,
        src.media_s / ours_wall
    );
    println!(
        "| ffmpeg CLI | {ffmpeg_wall:.2} | {ffmpeg_cpu:.2} | {:.3} | {:.2} |",
        ffmpeg_cpu / src.media_s,
        src.media_s / ffmpeg_wall
    );
    println!(
        "CPU ours/ffmpeg: {:.3} (median CPU / median CPU; per-pair ratios {}) — goal ≤ 0.95; wall ours/ffmpeg {:.3}",
        ours_cpu / ffmpeg_cpu,
        ratios
            .iter()
            .map(|r| format!("{r:.3}"))
            .collect::<Vec<_>>()
            .join(", "),
        ours_wall / ffmpeg_wall
    );
    println!(
        "real-time factor of the default ladder on this machine (median, TranscodeStats): {rtf:.2}; per-rung encoder delay \
         (median over runs, EWMA of scale + encode at full speed): {}",
        ladder
            .iter()
            .filter(|r| !r.copy)
            .map(|r| {
                let v: Vec<f64> = ours
                    .iter()
                    .filter_map(|o| o.stats.rungs.iter().find(|s| s.name == r.name))
                    .map(|s| s.encoder_delay_ms)
                    .collect();
                let held = ours
                    .iter()
                    .filter_map(|o| o.stats.rungs.iter().find(|s| s.name == r.name))
                    .map(|s| s.encoder_held_frames)
                    .max()
                    .unwrap_or(0);
                format!("{} {:.1} ms (held ≤ {held} frames)", r.name, med(v))
            })
            .collect::<Vec<_>>()
            .join(", ")
    );
    if !streams.is_empty() {
        capacity::report(&src, &ladder, &probe, &options, &cmd.args(None), &streams);
    }
}

// ---------------------------------------------------------------------------------------------------------
// Input.

struct Source {
    video: TrackInfo,
    audio: TrackInfo,
    /// Every frame in file order (video 90 kHz, audio at its sample rate), as the origin would push them.
    frames: Vec<Frame>,
    /// Span of the video (last − first PTS + one frame), seconds.
    media_s: f64,
    /// The FLV file read.
    path: std::path::PathBuf,
}

fn load_source(path: &Path) -> Source {
    let file = Bytes::from(std::fs::read(path).expect("read the bench FLV"));
    let tags = testkit::flv::read_flv_tags(&file).expect("parse the bench FLV");
    let mut parser = FlvParser::new(MAX_FRAME_BYTES);
    let mut events = Vec::new();
    for tag in &tags {
        let ts = tag.timestamp_ms as u32;
        let parsed = match tag.kind {
            TagKind::Video => parser.video(ts, &tag.body, &mut events),
            TagKind::Audio => parser.audio(ts, &tag.body, &mut events),
            TagKind::Script => Ok(()),
        };
        parsed.expect("the fixture's tags parse");
    }
    let (mut video, mut audio, mut frames) = (None, None, Vec::new());
    for e in events {
        match e {
            IngestEvent::Track(t) if t.kind() == TrackKind::Video => video = Some(t),
            IngestEvent::Track(t) => audio = Some(t),
            IngestEvent::Frame(f) => frames.push(f),
            IngestEvent::Unusable(u) => panic!("unexpected unusable track {u}"),
            IngestEvent::Splice(_) => {}
        }
    }
    let mut pts: Vec<i64> = frames
        .iter()
        .filter(|f| f.track == TrackKind::Video)
        .map(|f| f.pts)
        .collect();
    pts.sort_unstable();
    let n = pts.len() as f64;
    let media_s = (pts[pts.len() - 1] - pts[0]) as f64 / 90_000.0 * n / (n - 1.0);
    Source {
        video: video.expect("a video track"),
        audio: audio.expect("an audio track"),
        frames,
        media_s,
        path: path.to_path_buf(),
    }
}

/// The source PTS (90 kHz) where the transcoder starts segments when the ladder has a copy rung: source
/// keyframes in decode order, the first one, then each at least one segment target (− 2 ms) after the
/// previous start (`transcoder::keyframes::SegmentGrid`, restated: it is not public).
fn segment_starts_90khz(frames: &[Frame], target_90khz: i64) -> Vec<i64> {
    let mut starts: Vec<i64> = Vec::new();
    for f in frames
        .iter()
        .filter(|f| f.track == TrackKind::Video && f.is_keyframe)
    {
        if starts
            .last()
            .is_none_or(|last| f.pts - last >= target_90khz - JITTER_90KHZ)
        {
            starts.push(f.pts);
        }
    }
    starts
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

// ---------------------------------------------------------------------------------------------------------
// CPU time.

/// Clock ticks per second of `/proc` times (`getconf CLK_TCK`; 100 on Linux).
fn clock_ticks() -> f64 {
    static TICKS: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(100.0)
    })
}

/// (this process's user + system seconds over all its threads, its waited-for children's user + system
/// seconds), from `/proc/self/stat` (fields 14–17: utime, stime, cutime, cstime).
fn cpu_times() -> (f64, f64) {
    let stat = std::fs::read_to_string("/proc/self/stat").expect("/proc/self/stat");
    let after = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<f64> = after
        .split_whitespace()
        .map(|v| v.parse().unwrap_or(0.0))
        .collect();
    let t = clock_ticks();
    ((f[11] + f[12]) / t, (f[13] + f[14]) / t)
}

// ---------------------------------------------------------------------------------------------------------
// Ours.

/// What one rendition received.
#[derive(Debug, Default, Clone)]
struct Received {
    frames: u64,
    bytes: u64,
    /// PTS of every keyframe, ms (video only).
    keyframes_ms: Vec<i64>,
    /// Size from the rendition's track (video).
    size: Option<(u32, u32)>,
    timescale: u32,
    /// The encoded video as an Annex B stream (parameter sets, then every access unit with start
    /// codes), kept only in the verification pass, for the quality comparison.
    annex_b: Vec<u8>,
    /// The NAL unit length field size of the rendition's avcC (bytes).
    nal_length_size: usize,
}

/// Counts what each rendition emits (and the keyframe PTS, for the verification pass).
#[derive(Default)]
struct CountingSink {
    renditions: Mutex<BTreeMap<String, Received>>,
    /// Keep each video rendition's encoded stream ([`Received::annex_b`]).
    keep_video: bool,
}

impl TranscodeSink for CountingSink {
    fn track(&self, rendition: &str, track: TrackInfo) {
        let mut r = self.renditions.lock().expect("sink lock");
        let e = r.entry(rendition.to_string()).or_default();
        e.size = track.config.video_params().map(|p| (p.width, p.height));
        e.timescale = track.timescale;
        if self.keep_video
            && let media::CodecConfig::Avc(avc) = &track.config
        {
            e.nal_length_size = usize::from(avc.nal_length_size);
            for ps in avc.sps.iter().chain(&avc.pps) {
                e.annex_b.extend_from_slice(&[0, 0, 0, 1]);
                e.annex_b.extend_from_slice(ps);
            }
        }
    }

    fn frame(&self, rendition: &str, frame: Frame) {
        let mut r = self.renditions.lock().expect("sink lock");
        let e = r.entry(rendition.to_string()).or_default();
        e.frames += 1;
        e.bytes += frame.data.len() as u64;
        if self.keep_video && frame.track == TrackKind::Video && e.nal_length_size > 0 {
            // Length-prefixed NAL units to start codes.
            let (n, mut rest) = (e.nal_length_size, &frame.data[..]);
            while rest.len() > n {
                let len = rest[..n]
                    .iter()
                    .fold(0usize, |a, b| a << 8 | usize::from(*b));
                let Some(nal) = rest.get(n..n + len) else {
                    break;
                };
                e.annex_b.extend_from_slice(&[0, 0, 0, 1]);
                e.annex_b.extend_from_slice(nal);
                rest = &rest[n + len..];
            }
        }
        if frame.track == TrackKind::Video && frame.is_keyframe {
            let ts = i64::from(e.timescale.max(1));
            e.keyframes_ms
                .push((frame.pts * 1000 + ts / 2).div_euclid(ts));
        }
    }
}

struct OursRun {
    wall: f64,
    cpu: f64,
    stats: TranscodeStats,
    received: BTreeMap<String, Received>,
}

fn run_ours(
    src: &Source,
    ladder: &[RungConfig],
    probe: &EncoderProbe,
    options: &TranscodeOptions,
    keep_video: bool,
) -> OursRun {
    let sink = Arc::new(CountingSink {
        keep_video,
        ..Default::default()
    });
    let (cpu0, _) = cpu_times();
    let started = Instant::now();
    let tx = StreamTranscoder::start(
        "live/bench",
        Some(&src.video),
        Some(&src.audio),
        ladder,
        probe,
        options,
        sink.clone(),
    )
    .expect("start the transcoder");
    for f in &src.frames {
        tx.push_wait(f.clone());
    }
    let stats = tx.finish();
    let wall = started.elapsed().as_secs_f64();
    let (cpu1, _) = cpu_times();
    let received = sink.renditions.lock().expect("sink lock").clone();
    OursRun {
        wall,
        cpu: cpu1 - cpu0,
        stats,
        received,
    }
}

fn delays(stats: &TranscodeStats) -> String {
    stats
        .rungs
        .iter()
        .filter(|r| r.encoder != "copy")
        .map(|r| format!("{} {:.1} ms", r.name, r.encoder_delay_ms))
        .collect::<Vec<_>>()
        .join(", ")
}

// ---------------------------------------------------------------------------------------------------------
// The FFmpeg CLI doing the same ladder.

/// One encoded rung as the CLI gets it.
struct CliRung {
    name: String,
    width: u32,
    height: u32,
    /// Per-stream encoder options, in the order given (without the `-opt:v:N` prefix).
    options: Vec<(&'static str, String)>,
}

struct FfmpegLadder {
    input: String,
    rungs: Vec<CliRung>,
    copy_rung: Option<String>,
    /// Forced keyframe times, seconds, comma-separated (source PTS: the command uses `-copyts`).
    forced_times: String,
    audio: (u32, u8, u64),
}

impl FfmpegLadder {
    /// Mirror `transcoder/src/settings.rs` (`video_encoder_options`, `rate_control`, `keyint_frames`,
    /// `encoder_threads`) and `video.rs` (`output_size`, encoder frame rate, global header) for each rung.
    fn new(
        ladder: &[RungConfig],
        probe: &EncoderProbe,
        src: &Source,
        options: &TranscodeOptions,
        forced_90khz: &[i64],
    ) -> Self {
        let params = src.video.config.video_params().expect("video parameters");
        let mut fps = params
            .frame_rate
            .filter(|(n, d)| *n > 0 && *d > 0)
            .map_or(30.0, |(n, d)| f64::from(n) / f64::from(d));
        let mut rungs = Vec::new();
        for r in ladder.iter().filter(|r| !r.copy) {
            assert_eq!(
                r.codec,
                VideoCodec::H264,
                "the default ladder is H.264 only"
            );
            assert_eq!(probe.h264, "libx264", "software encoders were asked for");
            if let Some(cap) = r.max_frame_rate {
                fps = fps.min(cap);
            }
            let h = (r.height.expect("encoded rung height") & !1).max(2);
            // Display aspect: VideoParams are the displayed size; round the width to the nearest even.
            let num = u64::from(params.width) * u64::from(h);
            let den = u64::from(params.height.max(1));
            let w = (((num + den) / (2 * den)) * 2) as u32;
            let bitrate = r.bitrate_bps;
            let maxrate = if r.maxrate_bps == 0 {
                bitrate
            } else {
                r.maxrate_bps.max(bitrate)
            };
            let bufsize = if r.bufsize_bits == 0 {
                maxrate * 2
            } else {
                r.bufsize_bits
            };
            let keyint = (options.segment_target.as_secs_f64() * 10.0 * fps)
                .ceil()
                .clamp(1.0, 100_000.0) as u32;
            let threads = if h > 720 { 2 } else { 1 };
            let opts = vec![
                ("c", "libx264".to_string()),
                ("b", bitrate.to_string()),
                ("maxrate", maxrate.to_string()),
                ("bufsize", bufsize.to_string()),
                ("g", keyint.to_string()),
                ("bf", "0".to_string()),
                ("forced-idr", "1".to_string()),
                (
                    "profile",
                    r.profile.clone().unwrap_or_else(|| "high".into()),
                ),
                (
                    "preset",
                    r.preset.clone().unwrap_or_else(|| "veryfast".into()),
                ),
                ("tune", "zerolatency".to_string()),
                ("threads", threads.to_string()),
                ("sc_threshold", "0".to_string()),
                ("rc-lookahead", "0".to_string()),
                (
                    "x264-params",
                    "scenecut=0:open-gop=0:bframes=0:rc-lookahead=0:sync-lookahead=0".to_string(),
                ),
                ("flags", "+global_header".to_string()),
            ];
            rungs.push(CliRung {
                name: r.name.clone(),
                width: w,
                height: h,
                options: opts,
            });
        }
        let forced_times = forced_90khz
            .iter()
            .map(|p| format!("{:.6}", *p as f64 / 90_000.0))
            .collect::<Vec<_>>()
            .join(",");
        Self {
            input: testkit::flv::fixture_flv().display().to_string(),
            rungs,
            copy_rung: ladder.iter().find(|r| r.copy).map(|r| r.name.clone()),
            forced_times,
            audio: (
                options.audio.sample_rate,
                options.audio.channels,
                options.audio.bitrate_bps,
            ),
        }
    }

    /// The arguments: output to `-f null -`, or (`file`) to a Matroska file for verification.
    fn args(&self, file: Option<&Path>) -> Vec<String> {
        let mut a: Vec<String> = [
            "-hide_banner",
            "-nostdin",
            "-nostats",
            "-loglevel",
            "error",
            "-y",
            // Filtergraph (and so swscale) single-threaded, as ours.
            "-filter_complex_threads",
            "1",
            "-filter_threads",
            "1",
            // Source timestamps kept, so the forced-keyframe times are the source PTS.
            "-copyts",
            // One decoder thread, as ours (frame threading with 1 thread up to 1080p).
            "-threads",
            "1",
            "-i",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        a.push(self.input.clone());
        let n = self.rungs.len();
        let mut graph = format!(
            "[0:v]split={n}{}",
            (0..n).map(|i| format!("[s{i}]")).collect::<String>()
        );
        for (i, r) in self.rungs.iter().enumerate() {
            graph.push_str(&format!(
                ";[s{i}]scale={}:{}:flags=bicubic[v{i}]",
                r.width, r.height
            ));
        }
        a.extend(["-filter_complex".to_string(), graph]);
        for i in 0..n {
            a.extend(["-map".to_string(), format!("[v{i}]")]);
        }
        if self.copy_rung.is_some() {
            a.extend(["-map".into(), "0:v".into()]);
        }
        a.extend(["-map".into(), "0:a".into()]);
        // Every decoded picture goes to the encoders with its own timestamp (no CFR duplication/dropping).
        a.extend(["-fps_mode".into(), "passthrough".into()]);
        for (i, r) in self.rungs.iter().enumerate() {
            for (k, v) in &r.options {
                a.extend([format!("-{k}:v:{i}"), v.clone()]);
            }
            a.extend([
                format!("-force_key_frames:v:{i}"),
                self.forced_times.clone(),
            ]);
        }
        if self.copy_rung.is_some() {
            a.extend([format!("-c:v:{n}"), "copy".into()]);
        }
        let (rate, channels, bitrate) = self.audio;
        a.extend(
            [
                "-c:a",
                "aac",
                "-b:a",
                &bitrate.to_string(),
                "-ar",
                &rate.to_string(),
                "-ac",
                &channels.to_string(),
                "-flags:a",
                "+global_header",
            ]
            .iter()
            .map(|s| s.to_string()),
        );
        match file {
            None => a.extend(["-f".into(), "null".into(), "-".into()]),
            Some(p) => {
                a.extend(["-f".into(), "matroska".into()]);
                a.push(p.display().to_string());
            }
        }
        a
    }
}

fn shell_line(args: &[String]) -> String {
    let quote = |s: &String| {
        if s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.,:/+=".contains(c))
        {
            s.clone()
        } else {
            format!("'{}'", s.replace('\'', "'\\''"))
        }
    };
    std::iter::once("ffmpeg".to_string())
        .chain(args.iter().map(quote))
        .collect::<Vec<_>>()
        .join(" ")
}

struct CliRun {
    wall: f64,
    cpu: f64,
}

fn run_ffmpeg(args: &[String]) -> CliRun {
    let (_, c0) = cpu_times();
    let started = Instant::now();
    let status = Command::new("ffmpeg")
        .args(args)
        .stdin(Stdio::null())
        .status()
        .expect("ffmpeg is installed");
    let wall = started.elapsed().as_secs_f64();
    let (_, c1) = cpu_times();
    assert!(status.success(), "ffmpeg failed: {status}");
    CliRun { wall, cpu: c1 - c0 }
}

// ---------------------------------------------------------------------------------------------------------
// Verification: both did the same work.

fn verify_same_work(
    src: &Source,
    ladder: &[RungConfig],
    probe: &EncoderProbe,
    options: &TranscodeOptions,
    cmd: &FfmpegLadder,
) {
    println!("\nverification pass (untimed; also the warm-up): same work on both sides?");
    let ours = run_ours(src, ladder, probe, options, true);
    let dir = tempfile::tempdir().expect("temporary directory");
    let out = dir.path().join("ladder.mkv");
    run_ffmpeg(&cmd.args(Some(&out)));
    let theirs = ffprobe_streams(&out);
    // Output stream order: the encoded rungs, the copy rung, audio.
    let mut names: Vec<String> = cmd.rungs.iter().map(|r| r.name.clone()).collect();
    names.extend(cmd.copy_rung.clone());
    names.push(transcoder::AUDIO_RENDITION.to_string());
    println!(
        "  | rendition | size ours / ffmpeg | frames ours / ffmpeg | bytes ours / ffmpeg | keyframes ours / ffmpeg | keyframe PTS equal |"
    );
    println!("  |---|---|---:|---:|---:|---|");
    for (i, name) in names.iter().enumerate() {
        let o = ours.received.get(name).cloned().unwrap_or_default();
        let t = theirs.get(&i).cloned().unwrap_or_default();
        let cli_size = cmd
            .rungs
            .get(i)
            .map_or("-".to_string(), |r| format!("{}x{}", r.width, r.height));
        let is_video = name != transcoder::AUDIO_RENDITION;
        // Encoded rungs: compare IDR times. Copy rung: the source's own keyframes (both pass them through).
        let same_keys = if is_video {
            let equal = o.keyframes_ms == t.keyframes_ms;
            if equal {
                "yes".to_string()
            } else {
                format!("NO: ours {:?} ffmpeg {:?}", o.keyframes_ms, t.keyframes_ms)
            }
        } else {
            "-".to_string()
        };
        println!(
            "  | {name} | {} / {} | {} / {} | {} / {} ({:+.2} %) | {} / {} | {same_keys} |",
            o.size.map_or("-".to_string(), |(w, h)| format!("{w}x{h}")),
            cli_size,
            o.frames,
            t.frames,
            o.bytes,
            t.bytes,
            (o.bytes as f64 / t.bytes.max(1) as f64 - 1.0) * 100.0,
            if is_video {
                o.keyframes_ms.len().to_string()
            } else {
                "-".into()
            },
            if is_video {
                t.keyframes_ms.len().to_string()
            } else {
                "-".into()
            },
        );
    }
    println!(
        "  (ours took {:.2} s wall / {:.2} s CPU in this pass; bytes of ours are length-prefixed NAL units, ffmpeg's \
         as stored in Matroska — the same layout)",
        ours.wall, ours.cpu
    );

    // Quality: each encoded rung against the source scaled to the rung's size (lanczos), frame by frame.
    println!(
        "\nquality of each encoded rung against the source (scaled to the rung's size with lanczos; FFmpeg's psnr and ssim filters, frame by frame):"
    );
    println!(
        "  | rung | PSNR ours / ffmpeg (dB) | difference | SSIM ours / ffmpeg | difference (dB) |"
    );
    println!("  |---|---|---:|---|---:|");
    for (i, rung) in cmd.rungs.iter().enumerate() {
        let Some(o) = ours
            .received
            .get(&rung.name)
            .filter(|o| !o.annex_b.is_empty())
        else {
            println!("  | {} | (ours not kept) | | | |", rung.name);
            continue;
        };
        let ours_file = dir.path().join(format!("{}.h264", rung.name));
        std::fs::write(&ours_file, &o.annex_b).expect("write our rung");
        let q_ours = quality(&ours_file, "v:0", &src.path, rung.width, rung.height);
        let q_cli = quality(&out, &format!("v:{i}"), &src.path, rung.width, rung.height);
        println!(
            "  | {} | {:.3} / {:.3} | {:+.3} | {:.5} / {:.5} | {:+.3} |",
            rung.name,
            q_ours.psnr_db,
            q_cli.psnr_db,
            q_ours.psnr_db - q_cli.psnr_db,
            q_ours.ssim,
            q_cli.ssim,
            q_ours.ssim_db - q_cli.ssim_db,
        );
    }
}

/// Quality of a video stream against the source, averaged over the frames.
struct Quality {
    /// PSNR of Y, U and V together (the filter's `average`), dB.
    psnr_db: f64,
    /// SSIM of Y, U and V together (the filter's `All`).
    ssim: f64,
    /// The same SSIM in dB (`-10 log10(1 - SSIM)`).
    ssim_db: f64,
}

/// PSNR and SSIM of stream `spec` of `file` against the source video scaled to `width`x`height`
/// (lanczos), pairing frames by their index (both have every source picture, in order).
fn quality(file: &Path, spec: &str, source: &Path, width: u32, height: u32) -> Quality {
    // Timestamps from frame indexes, at any common clock, so that the filters pair frame n with n.
    let graph = format!(
        "[0:{spec}]setpts=N/(24*TB),split[d1][d2];\
         [1:v]scale={width}:{height}:flags=lanczos,setpts=N/(24*TB),split[r1][r2];\
         [d1][r1]psnr;[d2][r2]ssim"
    );
    let out = Command::new("ffmpeg")
        .args([
            "-hide_banner",
            "-nostdin",
            "-nostats",
            "-loglevel",
            "info",
            "-i",
        ])
        .arg(file)
        .arg("-i")
        .arg(source)
        .args(["-lavfi", &graph, "-f", "null", "-"])
        .stdout(Stdio::null())
        .output()
        .expect("ffmpeg is installed");
    let log = String::from_utf8_lossy(&out.stderr);
    let field = |line_tag: &str, key: &str| -> Option<f64> {
        let line = log.lines().find(|l| l.contains(line_tag))?;
        let rest = &line[line.find(key)? + key.len()..];
        rest.split_whitespace().next()?.parse().ok()
    };
    let (Some(psnr_db), Some(ssim)) = (field("PSNR y:", "average:"), field("SSIM Y:", "All:"))
    else {
        panic!("no PSNR/SSIM for {} {spec}: {log}", file.display());
    };
    Quality {
        psnr_db,
        ssim,
        ssim_db: -10.0 * (1.0 - ssim).log10(),
    }
}

/// Per output stream index: packets, bytes and keyframe PTS (ms) of a file, read with ffprobe.
fn ffprobe_streams(path: &Path) -> BTreeMap<usize, Received> {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "packet=stream_index,pts_time,size,flags",
            "-of",
            "csv=p=0",
        ])
        .arg(path)
        .output()
        .expect("ffprobe is installed");
    let text = String::from_utf8_lossy(&out.stdout);
    let mut streams: BTreeMap<usize, Received> = BTreeMap::new();
    for line in text.lines() {
        // stream_index,pts_time,size,flags
        let f: Vec<&str> = line.split(',').collect();
        if f.len() < 4 {
            continue;
        }
        let (Ok(idx), Ok(pts), Ok(size)) = (
            f[0].parse::<usize>(),
            f[1].parse::<f64>(),
            f[2].parse::<u64>(),
        ) else {
            continue;
        };
        let e = streams.entry(idx).or_default();
        e.frames += 1;
        e.bytes += size;
        if f[3].starts_with('K') {
            e.keyframes_ms.push((pts * 1000.0).round() as i64);
        }
    }
    for e in streams.values_mut() {
        e.keyframes_ms.sort_unstable();
    }
    streams
}
