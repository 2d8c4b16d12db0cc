//! MPEG-TS demux throughput on a real stream, compared with FFmpeg's demuxer on the same file.
//!
//! Input: `fixtures/bbb-720p-2s-gop.mp4` (30 s of 720p24 H.264 High with B-frames + AAC-LC 44.1 kHz)
//! looped 12 times into MPEG-TS by FFmpeg with stream copy (`ffmpeg -stream_loop 11 -i bbb.mp4 -c copy
//! -f mpegts`, timestamps continued across loops), about 55 MB, made once in the temporary directory
//! (again when the fixture is newer; `ESTUARY_BENCH_TS=/path.ts` to use another file).
//!
//! Ours: `estuary::ingest::ts::TsDemuxer` over the file held in memory, pushed in 1456-byte chunks (the
//! `srt-live-transmit` payload size, not 188-aligned), events drained after every push as the SRT driver
//! does, `finish()` at the end: the full path from bytes to `media::Frame`s and `TrackInfo`s (sync,
//! PSI, PES reassembly, Annex B → length-prefixed samples, ADTS stripping, timestamps). Median of ≥ 5 runs
//! after a warm-up.
//!
//! Peer, timed in the same run on the same file: `ffmpeg -hide_banner -loglevel error -nostdin -f mpegts
//! -i x.ts -map 0 -c copy -f null -` (its demuxer and parsers, no decoding), median of 5 runs after a
//! warm-up; its wall time includes process start and reading the file (page cache). Prints MB/s,
//! frames/s and the ratio; asserts nothing about time.
//!
//! `cargo bench --bench ts_demux` (about 15 s plus the build).

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use estuary::ingest::IngestEvent;
use estuary::ingest::ts::{TsDemuxer, TsStats};

/// `srt-live-transmit`'s SRT payload size.
const CHUNK_BYTES: usize = 1456;
/// How many times the 30 s fixture is played into the TS file.
const LOOPS: u32 = 12;
const MAX_PES_BYTES: usize = 8 << 20;

fn main() {
    let path = bench_ts();
    let file = std::fs::read(&path).expect("read the bench TS");
    let mb = file.len() as f64 / 1e6;
    println!(
        "ts_demux: TsDemuxer::push in {CHUNK_BYTES}-byte chunks vs ffmpeg -f mpegts -c copy -f null"
    );
    println!(
        "input: {} — {:.1} MB, {} × 30 s of 720p24 H.264 + AAC 44.1 kHz; {} cores (shared, noisy)",
        path.display(),
        mb,
        LOOPS,
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );

    let stats = demux(&file);
    println!(
        "one pass: {} packets, {} video + {} audio frames, {} resyncs, {} cc errors, {} pes dropped",
        stats.packets,
        stats.video_frames,
        stats.audio_frames,
        stats.resyncs,
        stats.cc_errors,
        stats.pes_dropped
    );
    assert_eq!(
        (stats.cc_errors, stats.pes_dropped, stats.resyncs),
        (0, 0, 0),
        "the bench input demuxes cleanly"
    );
    let frames = stats.frames;

    let ours = time_runs(5, Duration::from_secs(5), || demux(&file));
    let peer = time_ffmpeg(&path, 5);
    let probed = ffprobe_packets(&path);

    println!();
    println!("| what | median | best | MB/s (median) | frames/s (median) | vs ffmpeg |");
    println!("| --- | ---: | ---: | ---: | ---: | ---: |");
    let ours_median = median(&ours);
    let peer_median = peer.as_deref().map(median);
    let row = |name: &str, times: &[Duration], frames: u64| {
        let m = median(times).as_secs_f64();
        let ratio =
            peer_median.map_or("—".to_owned(), |p| format!("{:.2}×", p.as_secs_f64() / m));
        println!(
            "| {name} | {:.1} ms | {:.1} ms | {:.0} | {:.0} | {ratio} |",
            m * 1e3,
            times[0].as_secs_f64() * 1e3,
            mb / m,
            frames as f64 / m,
        );
    };
    row(
        &format!("ours: TsDemuxer, {CHUNK_BYTES}-byte pushes"),
        &ours,
        frames,
    );
    match &peer {
        Some(times) => row(
            "ffmpeg -f mpegts -i x.ts -map 0 -c copy -f null - (process + demux)",
            times,
            probed.unwrap_or(frames),
        ),
        None => println!("| ffmpeg not run (not installed or failed) | | | | | |"),
    }
    if let Some(p) = peer_median {
        println!(
            "ours is {:.2}× ffmpeg's speed ({:.0} vs {:.0} MB/s)",
            p.as_secs_f64() / ours_median.as_secs_f64(),
            mb / ours_median.as_secs_f64(),
            mb / p.as_secs_f64()
        );
    }
    if let Some(p) = probed
        && p != frames
    {
        println!("note: ffprobe counts {p} packets, our demuxer {frames} frames");
    }
}

/// Where the bench TS lives: `$ESTUARY_BENCH_TS`, or a file in the temporary directory, made by FFmpeg
/// from the fixture when missing or older than it.
fn bench_ts() -> PathBuf {
    if let Some(p) = std::env::var_os("ESTUARY_BENCH_TS") {
        return PathBuf::from(p);
    }
    let path = std::env::temp_dir().join(format!("estuary-bench-bbb-720p-x{LOOPS}.ts"));
    let mp4 = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/bbb-720p-2s-gop.mp4");
    let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    if path.exists() && modified(&path) >= modified(&mp4) {
        return path;
    }
    let tmp = path.with_extension("ts.partial");
    let status = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-nostdin", "-y"])
        .args(["-stream_loop", &(LOOPS - 1).to_string(), "-i"])
        .arg(&mp4)
        .args(["-map", "0", "-c", "copy", "-f", "mpegts"])
        .arg(&tmp)
        .status()
        .expect("ffmpeg is installed (needed to make the bench input)");
    assert!(status.success(), "ffmpeg failed to make {}", path.display());
    std::fs::rename(&tmp, &path).expect("rename the finished TS into place");
    path
}

/// One full demux of `file` in [`CHUNK_BYTES`] pushes; events are dropped after each push.
fn demux(file: &[u8]) -> TsStats {
    let mut demuxer = TsDemuxer::new(MAX_PES_BYTES);
    let mut out: Vec<IngestEvent> = Vec::with_capacity(64);
    for chunk in file.chunks(CHUNK_BYTES) {
        demuxer
            .push(chunk, &mut out)
            .expect("the bench input is MPEG-TS");
        black_box(&out);
        out.clear();
    }
    demuxer.finish(&mut out);
    black_box(&out);
    demuxer.stats()
}

/// One warm-up, then at least `min_runs` runs and `min_time`; sorted times.
fn time_runs<R>(min_runs: usize, min_time: Duration, mut f: impl FnMut() -> R) -> Vec<Duration> {
    black_box(f());
    let start = Instant::now();
    let mut times = Vec::new();
    while times.len() < min_runs || start.elapsed() < min_time {
        let t = Instant::now();
        black_box(f());
        times.push(t.elapsed());
    }
    times.sort();
    times
}

fn median(sorted: &[Duration]) -> Duration {
    sorted[sorted.len() / 2]
}

/// Wall times (sorted) of `runs` FFmpeg demux-only runs after one warm-up.
fn time_ffmpeg(ts: &Path, runs: usize) -> Option<Vec<Duration>> {
    let mut times = Vec::new();
    for i in 0..=runs {
        let t = Instant::now();
        let status = Command::new("ffmpeg")
            .args([
                "-hide_banner",
                "-loglevel",
                "error",
                "-nostdin",
                "-f",
                "mpegts",
                "-i",
            ])
            .arg(ts)
            .args(["-map", "0", "-c", "copy", "-f", "null", "-"])
            .status()
            .ok()?;
        let elapsed = t.elapsed();
        if !status.success() {
            return None;
        }
        if i > 0 {
            times.push(elapsed);
        }
    }
    times.sort();
    Some(times)
}

/// Packets FFmpeg sees in `ts` (video + audio), counted by ffprobe.
fn ffprobe_packets(ts: &Path) -> Option<u64> {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-count_packets",
            "-show_entries",
            "stream=nb_read_packets",
            "-of",
            "csv=p=0",
        ])
        .arg(ts)
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    // A TS lists its streams once per program too: count each stream once.
    let counts: Vec<u64> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.trim().trim_end_matches(',').parse::<u64>().ok())
        .collect();
    Some(counts.iter().take(counts.len() / 2).sum())
}
