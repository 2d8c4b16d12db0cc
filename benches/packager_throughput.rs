//! Packager throughput on real frames, compared with FFmpeg's HLS/fMP4 muxer on the same input.
//!
//! Ours: the fixture FLV's H.264 and AAC access units (turned into `media::Frame`s by
//! `estuary::ingest::flv::FlvParser`, video at 90 kHz, audio at 44.1 kHz) pushed through
//! `packager::StreamPackager::push_frame`, rendering the frame's rendition media playlist
//! (`packager::hls::render_media_playlist`) each time a part is produced — what the origin does per part,
//! all in memory. A second row also includes reading the FLV tags from the file bytes and the FLV parser.
//!
//! Peer, timed in the same run: `ffmpeg -hide_banner -loglevel error -i in.flv -c copy -f hls
//! -hls_segment_type fmp4 -hls_time 2 -hls_flags independent_segments out/index.m3u8` — the same packets
//! (counted with ffprobe), but including process start, FLV demux and writing files; `-f null` gives its
//! start + demux cost alone. Prints frames/s and ratios; asserts nothing about time.
//!
//! Encryption: clear and encrypted passes (HLS AES-128 parts and segments plus DASH CENC chunks, keys
//! from the origin's key source) interleaved in one loop; prints the extra share of a core per live
//! stream, scaled to 3 Mbit/s.
//!
//! `cargo bench --bench packager_throughput` (about 40 s).

use std::hint::black_box;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use bytes::Bytes;
use estuary::ingest::{IngestEvent, flv::FlvParser};
use media::TrackKind;
use packager::{
    PackagerConfig, StreamPackager,
    hls::render_media_playlist,
    stream::{AUDIO_RENDITION, SOURCE_RENDITION},
};

use testkit::flv::{FlvTag, TagKind};
use testkit::percentile;

/// Wall clock passed to the packager (only used for EXT-X-PROGRAM-DATE-TIME).
const NOW_MS: i64 = 1_763_700_000_000;
/// Largest frame the FLV parser accepts, bytes.
const MAX_FRAME_BYTES: usize = 16 << 20;

fn main() {
    let flv_path = testkit::flv::fixture_flv();
    let file = Bytes::from(std::fs::read(&flv_path).expect("read the bench FLV"));
    let tags = testkit::flv::read_flv_tags(&file).expect("parse the bench FLV");
    let events = to_events(&tags);
    let (video, audio) = count_frames(&events);
    let frames = video + audio;
    let media_s = media_duration_s(&events);
    let looped_events = to_events(&testkit::flv::looped_tags(&tags, 10));
    let (lv, la) = count_frames(&looped_events);

    println!(
        "packager_throughput: StreamPackager::push_frame + render_media_playlist per produced part"
    );
    println!(
        "input: {} — {frames} frames ({video} H.264 720p24, {audio} AAC 44.1 kHz), {media_s:.1} s of media; \
         {} cores (shared, noisy)",
        flv_path.display(),
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    let stats = package(&events);
    println!(
        "one pass: {} parts, {} segments, {} playlist renders ({} bytes rendered)",
        stats.parts, stats.segments, stats.renders, stats.playlist_bytes
    );

    let min = Duration::from_secs(3);
    let ours = time_it(min, 20, || package(&events));
    let ours_flv = time_it(min, 20, || {
        let tags = testkit::flv::read_flv_tags(&file).expect("parsed above");
        package(&to_events(&tags))
    });
    let ours_long = time_it(min, 5, || package(&looped_events));
    // Encryption cost: clear and encrypted passes interleaved, so machine noise hits both alike.
    let (mut clear, mut encrypted) = (Vec::new(), Vec::new());
    black_box(package_with(&events, true));
    let started = Instant::now();
    while clear.len() < 15 || started.elapsed() < Duration::from_secs(4) {
        let t = Instant::now();
        black_box(package_with(&events, false));
        clear.push(t.elapsed());
        let t = Instant::now();
        black_box(package_with(&events, true));
        encrypted.push(t.elapsed());
    }
    clear.sort();
    encrypted.sort();
    let media_bytes: usize = events
        .iter()
        .map(|e| match e {
            IngestEvent::Frame(f) => f.data.len(),
            IngestEvent::Track(_) | IngestEvent::Unusable(_) | IngestEvent::Splice(_) => 0,
        })
        .sum();

    let packets = ffprobe_packets(&flv_path);
    let ffmpeg_hls = time_ffmpeg(&flv_path, true, 7);
    let ffmpeg_null = time_ffmpeg(&flv_path, false, 7);

    let ffmpeg_fps = ffmpeg_hls
        .as_ref()
        .map(|t| packets.unwrap_or(frames) as f64 / percentile(t, 50.0).as_secs_f64());
    println!();
    println!(
        "| what                                                   | frames | time median | time best | frames/s (median) | x real time | vs ffmpeg hls |"
    );
    println!(
        "|--------------------------------------------------------|--------|-------------|-----------|-------------------|-------------|---------------|"
    );
    let row = |what: &str, n: u64, secs: f64, times: &[Duration]| {
        let med = percentile(times, 50.0);
        let fps = n as f64 / med.as_secs_f64();
        let ratio = ffmpeg_fps.map_or("n/a".to_owned(), |f| format!("{:.1}x", fps / f));
        println!(
            "| {what:<54} | {n:>6} | {:>8.2} ms | {:>6.2} ms | {fps:>17.0} | {:>10.0}x | {ratio:>13} |",
            med.as_secs_f64() * 1e3,
            times[0].as_secs_f64() * 1e3,
            secs / med.as_secs_f64(),
        );
    };
    row(
        "ours: push_frame + render per part (in memory)",
        frames,
        media_s,
        &ours,
    );
    row(
        "ours: + FLV tag read + FlvParser (from file bytes)",
        frames,
        media_s,
        &ours_flv,
    );
    row(
        "ours: 10x looped input (300 s, window in steady state)",
        lv + la,
        media_s * 10.0,
        &ours_long,
    );
    row(
        "ours: clear (interleaved with the encrypted runs)",
        frames,
        media_s,
        &clear,
    );
    row(
        "ours: encrypted, HLS AES-128 parts+segments + DASH CENC",
        frames,
        media_s,
        &encrypted,
    );
    match (&ffmpeg_hls, &ffmpeg_null) {
        (Some(hls), null) => {
            let n = packets.unwrap_or(frames);
            row(
                "ffmpeg -c copy -f hls fmp4 (process+demux+mux+files)",
                n,
                media_s,
                hls,
            );
            if let Some(null) = null {
                row(
                    "ffmpeg -c copy -f null (process start + demux only)",
                    n,
                    media_s,
                    null,
                );
                // What the HLS muxing and file writes alone cost FFmpeg: the difference of the medians.
                let mux = percentile(hls, 50.0).saturating_sub(percentile(null, 50.0));
                if !mux.is_zero() {
                    let ours_fps = frames as f64 / percentile(&ours, 50.0).as_secs_f64();
                    let mux_fps = n as f64 / mux.as_secs_f64();
                    println!(
                        "ffmpeg hls minus null (mux + file writes only): {:.2} ms = {mux_fps:.0} frames/s; \
                         ours in memory is {:.1}x that",
                        mux.as_secs_f64() * 1e3,
                        ours_fps / mux_fps
                    );
                }
            }
        }
        (None, _) => println!("| ffmpeg not run (not installed or failed) |"),
    }
    if packets.is_some_and(|p| p != frames) {
        println!(
            "note: ffprobe counts {} packets, our parser {frames} frames",
            packets.unwrap_or(0)
        );
    }
    println!(
        "ffmpeg: 7 runs after one warm-up (median, best); times include process start, FLV demux and \
         writing the segment/playlist files (tmpfs or page cache), which ours does not do."
    );
    // Encryption's share of a core for one live stream: extra CPU seconds per media second, at the
    // input's bit rate and scaled to 3 Mbit/s (the cost is per byte).
    let (c, e) = (
        percentile(&clear, 50.0).as_secs_f64(),
        percentile(&encrypted, 50.0).as_secs_f64(),
    );
    let input_bps = media_bytes as f64 * 8.0 / media_s;
    let extra_core = (e - c) / media_s;
    println!();
    println!(
        "encryption: clear {:.2} ms, encrypted {:.2} ms per pass (median of {} interleaved pairs): \
         x{:.2}; extra {:.4} % of a core for this {:.2} Mbit/s stream (video + audio, live) = \
         {:.4} % of a core at 3 Mbit/s (goal <= 1 % per rendition)",
        c * 1e3,
        e * 1e3,
        clear.len(),
        e / c,
        extra_core * 100.0,
        input_bps / 1e6,
        extra_core * 100.0 * 3e6 / input_bps,
    );
}

/// FLV tags to ingest events through the origin's own FLV parser.
fn to_events(tags: &[FlvTag]) -> Vec<IngestEvent> {
    let mut parser = FlvParser::new(MAX_FRAME_BYTES);
    let mut out = Vec::with_capacity(tags.len());
    for tag in tags {
        let ts = tag.timestamp_ms as u32;
        let parsed = match tag.kind {
            TagKind::Video => parser.video(ts, &tag.body, &mut out),
            TagKind::Audio => parser.audio(ts, &tag.body, &mut out),
            TagKind::Script => Ok(()),
        };
        parsed.expect("the fixture's tags parse");
    }
    out
}

fn count_frames(events: &[IngestEvent]) -> (u64, u64) {
    let mut counts = (0, 0);
    for e in events {
        if let IngestEvent::Frame(f) = e {
            match f.track {
                TrackKind::Video => counts.0 += 1,
                TrackKind::Audio => counts.1 += 1,
            }
        }
    }
    counts
}

/// Span of the video DTS plus one frame, seconds.
fn media_duration_s(events: &[IngestEvent]) -> f64 {
    let dts: Vec<i64> = events
        .iter()
        .filter_map(|e| match e {
            IngestEvent::Frame(f) if f.track == TrackKind::Video => Some(f.dts),
            _ => None,
        })
        .collect();
    match (dts.first(), dts.last()) {
        (Some(a), Some(b)) if dts.len() > 1 => {
            (b - a) as f64 / 90_000.0 * dts.len() as f64 / (dts.len() - 1) as f64
        }
        _ => 0.0,
    }
}

#[derive(Debug, Default)]
struct PassStats {
    parts: u64,
    segments: u64,
    renders: u64,
    playlist_bytes: usize,
}

/// One packaging pass over `events` with a fresh packager (default config: 2 s segments, 500 ms parts).
fn package(events: &[IngestEvent]) -> PassStats {
    package_with(events, false)
}

/// [`package`], with every stream encrypted when `encrypt` (HLS AES-128 and DASH CENC, keys and IVs from
/// the origin's own CSPRNG-backed key source, a new HLS key every 10 segments).
fn package_with(events: &[IngestEvent], encrypt: bool) -> PassStats {
    let mut p = StreamPackager::new(PackagerConfig::default(), 1);
    if encrypt {
        let store = std::sync::Arc::new(estuary::hub::keys::KeyStore::default());
        p.set_key_source(Box::new(estuary::hub::keys::StreamKeys::new(store, 10)));
    }
    let mut stats = PassStats::default();
    for event in events {
        match event {
            IngestEvent::Unusable(u) => panic!("unexpected unusable track {u}"),
            IngestEvent::Splice(_) => {}
            IngestEvent::Track(track) => p.set_track(track.clone()),
            IngestEvent::Frame(frame) => {
                let rendition = match frame.track {
                    TrackKind::Video => SOURCE_RENDITION,
                    TrackKind::Audio => AUDIO_RENDITION,
                };
                let update = p.push_frame(frame.clone(), NOW_MS);
                if update.has_new_media
                    && let Some(text) = render_media_playlist(&p, rendition, false)
                {
                    stats.renders += 1;
                    stats.playlist_bytes += text.len();
                    black_box(text);
                }
            }
        }
    }
    for r in p.renditions() {
        stats.parts += r.counters().parts;
        stats.segments += r.counters().segments;
    }
    black_box(&p);
    stats
}

/// Run `f` once to warm up, then until `min_time` has passed and at least `min_iters` runs; sorted times.
fn time_it<R>(min_time: Duration, min_iters: usize, mut f: impl FnMut() -> R) -> Vec<Duration> {
    black_box(f());
    let mut times = Vec::new();
    let start = Instant::now();
    while times.len() < min_iters || start.elapsed() < min_time {
        let t = Instant::now();
        black_box(f());
        times.push(t.elapsed());
    }
    times.sort();
    times
}

/// Packets FFmpeg sees in `flv` (video + audio), counted by ffprobe.
fn ffprobe_packets(flv: &Path) -> Option<u64> {
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
        .arg(flv)
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.trim().trim_end_matches(',').parse::<u64>().ok())
        .sum()
}

/// Wall times (sorted) of `runs` FFmpeg runs after one warm-up: to HLS fMP4 files when `is_hls`, else to
/// the null muxer.
fn time_ffmpeg(flv: &Path, is_hls: bool, runs: usize) -> Option<Vec<Duration>> {
    let dir = std::env::temp_dir().join(format!("estuary-bench-ffmpeg-hls-{}", std::process::id()));
    let mut times = Vec::new();
    for i in 0..=runs {
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).ok()?;
        let mut cmd = Command::new("ffmpeg");
        cmd.args(["-hide_banner", "-loglevel", "error", "-y", "-i"])
            .arg(flv)
            .args(["-c", "copy"]);
        if is_hls {
            cmd.args([
                "-f",
                "hls",
                "-hls_segment_type",
                "fmp4",
                "-hls_time",
                "2",
                "-hls_flags",
                "independent_segments",
            ])
            .arg(dir.join("index.m3u8"));
        } else {
            cmd.args(["-f", "null", "-"]);
        }
        let t = Instant::now();
        let status = cmd.status().ok()?;
        let elapsed = t.elapsed();
        if !status.success() {
            return None;
        }
        if i > 0 {
            times.push(elapsed);
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    times.sort();
    Some(times)
}
