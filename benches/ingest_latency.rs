//! Ingest-to-availability latency of the origin, end to end over real sockets, in one process.
//!
//! Measures, per part, the time from the moment the part's LAST video frame is written to the RTMP socket
//! (clock read just before the `write` call; the after-call reading is also reported, see [`Written`]) to
//! the moment an LL-HLS blocking playlist request for that part (`_HLS_msn=M&_HLS_part=P`) returns with
//! its full body. Everything runs on 127.0.0.1 in one tokio runtime (2 worker threads): the
//! server (`estuary::server::Server`), a publisher replaying the fixture FLV in real time with our own RTMP
//! client (rml_rtmp's client session), and raw HTTP/1.1 keep-alive viewers (waiters of the load generator,
//! `testkit::load`).
//!
//! Mapping a part to its last frame: after the blocking request returns, a separate connection fetches
//! `M.P.m4s` and reads its moof with mp4-atom; `tfdt` plus the durations of every sample but the last is
//! the last sample's DTS in 90 kHz ticks, and on a first publish the packager keeps input timestamps
//! (offset 0), so DTS / 90 is the RTMP timestamp in ms (matched within ±3 ms, since the packager may snap
//! up to 2 ms of timestamp jitter at part boundaries). A sample counts only if the request was sent
//! before that last frame was written (i.e. the request really blocked).
//!
//! Runs: one viewer at part target 200 ms and at 500 ms, then 200 viewers (each its own connection, each
//! following the preload hint) at 200 ms, reporting when the first and the LAST of them got each part.
//! Prints a table and a comparison with the goal (origin adds ≤ 20 ms p50, ≤ 50 ms p99); it asserts
//! nothing about time.
//!
//! Run 3, `ladder`: the same at 200 ms with `[transcode] enabled = true` (default ladder for the 720p
//! source: `source` copy, `480p`, `360p`; `encoder = "software"`, libx264), one viewer on each of
//! `/live/bench/{480p,360p,source}/media.m3u8` in the same run: the glass-to-part latency added by
//! transcoding. An encoded rung's frames keep the source picture's PTS and get DTS = PTS − D (D: the
//! composition offset of the source's first keyframe), so its part's last sample is matched to the source
//! frame whose PTS (RTMP timestamp + composition time, ms) equals the sample's DTS + D. The `source` rung
//! is matched by DTS as in the other runs. An encoded part is available tens of ms after that write, so
//! its request also counts as blocked when sent after the write but held open ≥ 10 ms (otherwise the
//! parts following a late one would be dropped); the bench also prints the strict-rule numbers and the
//! latency from the last write of any source frame with a PTS at or before the part's last picture.
//!
//! `cargo bench --bench ingest_latency` (about 4.5 minutes); `-- --quick` for 12 s runs, `-- --secs=N` for
//! N s runs, `-- --runs=0,2` (or `-- --runs=3` for the ladder run alone) for some runs only.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow};
use bytes::Bytes;
use estuary::config::{FileConfig, ServeArgs, Settings};
use estuary::server::Server;
use rml_rtmp::sessions::ClientSessionResult;
use rml_rtmp::time::RtmpTimestamp;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

use testkit::checks::{PartTiming, part_timing};
use testkit::flv::{FlvTag, TagKind};
use testkit::load::{Mode, Receipt, Record, Sink, Tally, Viewer, conn::Conn};
use testkit::percentile;
use testkit::process::{CpuSample, CpuSampler};
use testkit::rtmp::rtmp_publish;

const STREAM_KEY: &str = "bench";
/// The passthrough (or ladder copy) rendition.
const SOURCE_RENDITION: &str = "source";
/// The encoded rungs of the default ladder for the 720p fixture, measured in the ladder run.
const ENCODED_RENDITIONS: [&str; 2] = ["480p", "360p"];
/// How far a part's last DTS (ms, rounded) may be from an RTMP timestamp we wrote and still match it.
const MATCH_TOLERANCE_MS: i64 = 3;
/// Encoded renditions: a request sent after the source frame's write still counts as blocked when it
/// stayed open at least this long (an unblocked playlist request is answered in well under 1 ms; the
/// encoded part becomes available tens of ms after the frame's write).
const ENCODED_BLOCKED_MIN: Duration = Duration::from_millis(10);
/// Goal to compare with (not asserted).
const GOAL_P50: Duration = Duration::from_millis(20);
const GOAL_P99: Duration = Duration::from_millis(50);

/// When each video frame was written to the RTMP socket, keyed by its RTMP timestamp (ms).
type WriteLog = Arc<Mutex<BTreeMap<i64, Written>>>;

/// Clock readings around the write of one video frame's RTMP message.
#[derive(Debug, Clone, Copy)]
struct Written {
    /// Just before the `write` call: the reference for the reported latency. The bytes reach the server
    /// during the call, and a loopback write wakes the server's thread, which the kernel often runs at once
    /// in place of the writer, so a clock read after the call can come after the server already answered.
    before: Instant,
    /// Just after the `write` call returned.
    after: Instant,
    /// The frame's PTS in ms: RTMP timestamp + composition time.
    pts_ms: i64,
}

/// One run's parameters.
struct Run {
    label: &'static str,
    part_target: Duration,
    publish_s: u64,
    viewers: usize,
    /// `[transcode] enabled = true` (default ladder, software encoders), one viewer per rendition.
    ladder: bool,
}

fn main() -> anyhow::Result<()> {
    // `--quick`: 12 s per run; `--secs=N`: N s per run; `--runs=0,2`: only those runs (0-based).
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str| {
        args.iter()
            .find_map(|a| a.strip_prefix(name))
            .map(str::to_owned)
    };
    let secs_override = match arg("--secs=") {
        Some(v) => Some(v.parse::<u64>().context("--secs=N")?),
        None => args.iter().any(|a| a == "--quick").then_some(12),
    };
    let selected: Option<Vec<usize>> =
        arg("--runs=").map(|v| v.split(',').filter_map(|n| n.parse().ok()).collect());
    let runs = [
        Run {
            label: "1 viewer",
            part_target: Duration::from_millis(200),
            publish_s: 50,
            viewers: 1,
            ladder: false,
        },
        Run {
            label: "1 viewer",
            part_target: Duration::from_millis(500),
            publish_s: 60,
            viewers: 1,
            ladder: false,
        },
        Run {
            label: "200 viewers",
            part_target: Duration::from_millis(200),
            publish_s: 35,
            viewers: 200,
            ladder: false,
        },
        Run {
            label: "ladder",
            part_target: Duration::from_millis(200),
            publish_s: 45,
            viewers: 1,
            ladder: true,
        },
    ];
    let flv_path = testkit::flv::fixture_flv();
    let file = Bytes::from(
        std::fs::read(&flv_path).with_context(|| format!("read {}", flv_path.display()))?,
    );
    let tags =
        testkit::flv::read_flv_tags(&file).map_err(|e| anyhow!("{}: {e}", flv_path.display()))?;
    // The file is 30 s: loop it (timeline continued) to publish longer.
    let tags = testkit::flv::looped_tags(&tags, 3);

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!(
        "ingest_latency: last frame written to the RTMP socket -> blocked LL-HLS playlist request returns"
    );
    println!(
        "input: {} (24 fps H.264, 2 s GOP, AAC 44.1 kHz) replayed in real time; {cores} cores, tokio 2 workers, \
         server + publisher + viewers in one process on 127.0.0.1",
        flv_path.display()
    );
    let mut rows = Vec::new();
    for (i, run) in runs.iter().enumerate() {
        if selected.as_ref().is_some_and(|s| !s.contains(&i)) {
            continue;
        }
        let secs = secs_override.unwrap_or(run.publish_s);
        println!(
            "\nrunning: {}, part target {} ms, publishing {secs} s (load average {}) ...",
            run.label,
            run.part_target.as_millis(),
            loadavg()
        );
        let report = rt.block_on(measure(run, secs, &tags))?;
        report.print_details();
        rows.extend(report.rows);
    }
    print_table(&rows);
    println!("load average at the end: {}", loadavg());
    Ok(())
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// One table row: a latency distribution.
struct Row {
    label: String,
    part_target: Duration,
    measured: usize,
    mean_part: Duration,
    /// Latencies in ms, sorted.
    sorted: Vec<f64>,
    /// Compared with the origin's goal (not for transcoded renditions, whose encoding is the point).
    has_goal: bool,
}

struct Report {
    rows: Vec<Row>,
    details: Vec<String>,
}

impl Report {
    fn print_details(&self) {
        for d in &self.details {
            println!("  {d}");
        }
    }
}

fn ms(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1000.0)
}

/// `later - earlier` in ms, negative when `later` is before `earlier`.
fn signed_ms(later: Instant, earlier: Instant) -> f64 {
    match later.checked_duration_since(earlier) {
        Some(d) => d.as_secs_f64() * 1000.0,
        None => -(earlier.duration_since(later).as_secs_f64() * 1000.0),
    }
}

fn print_table(rows: &[Row]) {
    println!();
    println!(
        "| run                          | part target | parts | mean part ms | p50 ms | p90 ms | p99 ms | max ms | goal p50<=20 / p99<=50 |"
    );
    println!(
        "|------------------------------|-------------|-------|--------------|--------|--------|--------|--------|------------------------|"
    );
    for r in rows {
        if r.sorted.is_empty() {
            println!(
                "| {:<28} | {:>8} ms | {:>5} | (no samples)",
                r.label,
                r.part_target.as_millis(),
                0
            );
            continue;
        }
        let p50 = percentile(&r.sorted, 50.0);
        let p99 = percentile(&r.sorted, 99.0);
        let goal_ms = |d: Duration| d.as_secs_f64() * 1000.0;
        let verdict = match (p50 <= goal_ms(GOAL_P50), p99 <= goal_ms(GOAL_P99)) {
            _ if !r.has_goal => "- (transcoded)",
            (true, true) => "met",
            (true, false) => "p99 over",
            (false, true) => "p50 over",
            (false, false) => "both over",
        };
        println!(
            "| {:<28} | {:>8} ms | {:>5} | {:>12} | {:>6} | {:>6} | {:>6} | {:>6} | {:<22} |",
            r.label,
            r.part_target.as_millis(),
            r.measured,
            ms(r.mean_part),
            format!("{p50:.2}"),
            format!("{:.2}", percentile(&r.sorted, 90.0)),
            format!("{p99:.2}"),
            format!("{:.2}", r.sorted.last().expect("non-empty")),
            verdict
        );
    }
    println!(
        "(latency includes the server's RTMP read, FLV parse, packaging, notification and HTTP response, plus \
         the bench client's own socket reads; all on the same 2 cores)"
    );
}

async fn measure(run: &Run, publish_s: u64, tags: &[FlvTag]) -> anyhow::Result<Report> {
    let args = ServeArgs {
        http_listen: Some(SocketAddr::from(([127, 0, 0, 1], 0))),
        rtmp_listen: Some(SocketAddr::from(([127, 0, 0, 1], 0))),
        srt_listen: Some(SocketAddr::from(([127, 0, 0, 1], 0))),
        part_target: Some(run.part_target),
        ..Default::default()
    };
    // Passthrough: these runs measure the origin itself (ingest, packaging, delivery), no transcoding. The
    // ladder run: the default ladder with software encoders (libx264, no NVENC probe).
    let config = if run.ladder {
        "[transcode]\nenabled = true\nencoder = \"software\"\n[auth]\nplayback = \"open\"\npublish = \"open\"\n"
    } else {
        "[transcode]\nenabled = false\n[auth]\nplayback = \"open\"\npublish = \"open\"\n"
    };
    let file: FileConfig = toml::from_str(config)?;
    let settings = Settings::resolve(&args, file)?;
    let server = Server::start(settings).await?;
    let (http, rtmp) = (server.http_addr, server.rtmp_addr);

    let renditions: Vec<&'static str> = if run.ladder {
        ENCODED_RENDITIONS
            .iter()
            .copied()
            .chain(std::iter::once(SOURCE_RENDITION))
            .collect()
    } else {
        vec![SOURCE_RENDITION]
    };
    let mut watched = Vec::new();
    for rendition in &renditions {
        let (parts_tx, parts_rx) = mpsc::unbounded_channel::<(u64, usize)>();
        let fetcher = tokio::spawn(fetch_parts(http, rendition, parts_rx));
        let sink = Arc::new(RenditionSink {
            tally: Tally::default(),
            first_viewer: format!("{rendition}-0"),
            parts: parts_tx,
        });
        let mut viewers = Vec::new();
        for i in 0..run.viewers {
            // 404 until the publish starts; then the request waits until the playlists are ready.
            let viewer = Viewer {
                name: format!("{rendition}-{i}"),
                addr: http,
                url: playlist_path(rendition),
                mode: Mode::Waiter {
                    fetch_parts: false,
                    wait_for_stream: true,
                },
                until: Instant::now() + Duration::from_secs(24 * 3600),
            };
            let sink = sink.clone();
            viewers.push(tokio::spawn(async move { viewer.run(sink.as_ref()).await }));
        }
        watched.push((*rendition, viewers, sink, fetcher));
    }

    let log: WriteLog = Arc::default();
    let sampler = CpuSampler::start();
    let publish = publish(rtmp, tags, publish_s * 1000, log.clone()).await;
    // Let the last parts be fetched (encoded rungs trail the source by their encoding time), then stop the
    // viewers (they are blocked on a part that never comes).
    tokio::time::sleep(Duration::from_millis(if run.ladder { 600 } else { 300 })).await;
    let mut collected = Vec::new();
    for (rendition, viewers, sink, fetcher) in watched {
        for v in viewers {
            v.abort();
            let _ = v.await;
        }
        let receipts = std::mem::take(&mut *sink.tally.receipts.lock().expect("receipts"));
        // The fetcher ends when the last sender (the sink) is gone.
        drop(sink);
        collected.push((rendition, receipts, fetcher.await?));
    }
    server.shutdown().await;
    // Joining waits for the sampler's current sleep (≤ 250 ms): only after everything measured is done.
    let cpu = sampler.finish();
    let pacing = publish?;

    let log = log.lock().expect("write log lock").clone();
    let mut details = vec![format!(
        "publisher: {} video frames written, pacing late by max {} ms (at media time {} ms; writes are \
         timestamped when made, so lateness does not bias the latency)",
        log.len(),
        ms(pacing.max_late),
        pacing.max_late_at_ms
    )];
    if let (Some(a), Some(b)) = (cpu.first(), cpu.last()) {
        let (own, others, steal) = CpuSample::cores(a, b);
        details.push(format!(
            "CPU during the run (cores, of {}): this process {own:.2}, other processes {others:.2}, stolen by the \
             hypervisor {steal:.2}",
            std::thread::available_parallelism().map_or(0, |n| n.get())
        ));
    }
    let by_pts: BTreeMap<i64, Written> = log.values().map(|w| (w.pts_ms, *w)).collect();
    let offset_90khz = testkit::flv::first_keyframe_composition_ms(tags) * 90;
    if run.ladder {
        details.push(format!(
            "encoded rungs: last sample PTS = DTS + D, D = source first keyframe composition offset = {} ms",
            offset_90khz / 90
        ));
    }
    let writes = Writes {
        by_dts: &log,
        by_pts: &by_pts,
        offset_90khz,
        cpu: &cpu,
    };
    let mut rows = Vec::new();
    for (rendition, receipts, timings) in &collected {
        let (rendition_rows, rendition_details) =
            analyze(run, rendition, receipts, timings, &writes);
        rows.extend(rendition_rows);
        details.extend(rendition_details);
    }
    Ok(Report { rows, details })
}

/// What the publisher wrote, for mapping parts to source frames.
struct Writes<'a> {
    /// Video frame writes by RTMP timestamp (DTS, ms).
    by_dts: &'a BTreeMap<i64, Written>,
    /// The same by PTS (ms).
    by_pts: &'a BTreeMap<i64, Written>,
    /// D: the source's first keyframe composition offset, 90 kHz (encoded DTS = PTS − D).
    offset_90khz: i64,
    /// CPU accounting sampled during the run.
    cpu: &'a [CpuSample],
}

impl Writes<'_> {
    /// The write of the source frame a part's last sample comes from: for the source rendition by its
    /// PTS (DTS + the trun's composition offset: the packager may start DTS later than the RTMP
    /// timestamps, with negative composition offsets, ISO/IEC 14496-12 §8.8.8), by DTS when the trun
    /// has no offsets; by PTS (= DTS + D) for an encoded one.
    fn matched(&self, timing: &PartTiming, is_encoded: bool) -> Option<Written> {
        match (is_encoded, timing.last_cts_90khz) {
            (true, _) => nearest_write(self.by_pts, timing.last_dts_90khz + self.offset_90khz),
            (false, Some(cts)) => nearest_write(self.by_pts, timing.last_dts_90khz + cts),
            (false, None) => nearest_write(self.by_dts, timing.last_dts_90khz),
        }
    }
}

/// The latency distribution(s) of one rendition's viewers. For encoded renditions also a second,
/// reported-only reference: the write of the LAST source frame with a PTS at or before the part's last
/// picture (the decoder cannot output that picture earlier: the source has B-frames).
fn analyze(
    run: &Run,
    rendition: &str,
    receipts: &[Receipt],
    timings: &HashMap<(u64, usize), PartTiming>,
    writes: &Writes<'_>,
) -> (Vec<Row>, Vec<String>) {
    let is_encoded = rendition != SOURCE_RENDITION;
    let mut details = Vec::new();
    let prefix = if run.ladder {
        format!("[{rendition}] ")
    } else {
        String::new()
    };
    let mean_part = {
        let d: Vec<u64> = timings.values().map(|t| t.duration_90khz).collect();
        if d.is_empty() {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(d.iter().sum::<u64>() as f64 / d.len() as f64 / 90_000.0)
        }
    };
    // Group the observations per part: (viewer's request sent, response received).
    let mut per_part: HashMap<(u64, usize), Vec<(Instant, Instant)>> = HashMap::new();
    for obs in receipts {
        per_part
            .entry((obs.msn, obs.part))
            .or_default()
            .push((obs.sent, obs.received));
    }
    let (mut unmapped, mut not_blocked, mut incomplete) = (0usize, 0usize, 0usize);
    let mut first = Vec::new();
    let mut last = Vec::new();
    let mut blocked_for = Vec::new();
    let mut last_from_after = Vec::new();
    let mut write_call = Vec::new();
    let mut from_all_written = Vec::new();
    let (mut cts_checked, mut cts_equal) = (0usize, 0usize);
    // Encoded renditions: the latencies of the parts whose request was sent before the frame's write.
    let mut strict = Vec::new();
    let mut blocked_after_write = 0usize;
    // (latency ms, media time of the part's last frame in ms, its write), to say when the slowest parts
    // happened and what the machine was doing just before.
    let mut when: Vec<(f64, i64, Instant)> = Vec::new();
    for (key, got) in &per_part {
        let Some(timing) = timings.get(key) else {
            unmapped += 1;
            continue;
        };
        let Some(written) = writes.matched(timing, is_encoded) else {
            unmapped += 1;
            continue;
        };
        if got.len() < run.viewers {
            incomplete += 1;
            continue;
        }
        let sent_before_write = got.iter().all(|(sent, _)| *sent <= written.before);
        // An encoded part becomes available tens of ms after its source frame's write, so a request sent
        // in between still blocks: it counts when it stayed open long enough to have blocked. Dropping those
        // parts would drop exactly the ones after a late part (whose next request went out late).
        let blocked_anyway = is_encoded
            && got.iter().all(|(sent, received)| {
                received.saturating_duration_since(*sent) >= ENCODED_BLOCKED_MIN
            });
        if !sent_before_write && !blocked_anyway {
            not_blocked += 1;
            continue;
        }
        if !sent_before_write {
            blocked_after_write += 1;
        }
        let earliest = got.iter().map(|g| g.1).min().expect("non-empty");
        let latest = got.iter().map(|g| g.1).max().expect("non-empty");
        first.push(signed_ms(earliest, written.before));
        last.push(signed_ms(latest, written.before));
        last_from_after.push(signed_ms(latest, written.after));
        write_call.push(signed_ms(written.after, written.before));
        blocked_for.extend(got.iter().map(|(s, r)| r.saturating_duration_since(*s)));
        if sent_before_write {
            strict.push(signed_ms(latest, written.before));
        }
        when.push((
            signed_ms(latest, written.before),
            written.pts_ms,
            written.before,
        ));
        if is_encoded {
            let pts_ms = written.pts_ms;
            if let Some(all) = writes.by_pts.range(..=pts_ms).map(|(_, w)| w.before).max() {
                from_all_written.push(signed_ms(latest, all));
            }
            if let Some(cts) = timing.last_cts_90khz {
                cts_checked += 1;
                cts_equal += usize::from(cts == writes.offset_90khz);
            }
        }
    }
    first.sort_by(f64::total_cmp);
    last.sort_by(f64::total_cmp);
    blocked_for.sort();
    last_from_after.sort_by(f64::total_cmp);
    write_call.sort_by(f64::total_cmp);
    from_all_written.sort_by(f64::total_cmp);
    strict.sort_by(f64::total_cmp);
    if !last_from_after.is_empty() && !is_encoded {
        let negative = last_from_after.iter().filter(|v| **v < 0.0).count();
        details.push(format!(
            "{prefix}write call of the last frame: p50 {:.3} ms, max {:.3} ms; measured from AFTER the write instead: \
             p50 {:.2} ms, p99 {:.2} ms, {negative} of {} answered before that clock read (writer preempted by \
             the woken server thread)",
            percentile(&write_call, 50.0),
            write_call.last().expect("non-empty"),
            percentile(&last_from_after, 50.0),
            percentile(&last_from_after, 99.0),
            last_from_after.len()
        ));
    }
    details.push(format!(
        "{prefix}parts seen: {}, measured: {}, not mapped to a frame: {unmapped}, request not blocked in time: {not_blocked}, \
         missing at some viewer: {incomplete}",
        per_part.len(),
        last.len()
    ));
    if !blocked_for.is_empty() {
        details.push(format!(
            "{prefix}time each request stayed blocked: p50 {} ms (expected about one part duration: requests block)",
            ms(percentile(&blocked_for, 50.0))
        ));
    }
    if !when.is_empty() {
        when.sort_by(|a, b| b.0.total_cmp(&a.0));
        let first_ms = when.iter().map(|w| w.1).min().unwrap_or(0);
        details.push(format!(
            "{prefix}slowest parts (latency @ media time of the last frame, s since the first measured part; \
             [cores used by other processes + stolen by the hypervisor in the 2 s before the write]): {}",
            when.iter()
                .take(5)
                .map(|(l, at, written)| {
                    let busy = CpuSample::window(writes.cpu, *written - Duration::from_secs(2), *written)
                        .map_or("?".to_string(), |(_, others, steal)| format!("{:.2}", others + steal));
                    format!("{l:.1} ms @ {:.1} s [{busy}]", (*at - first_ms) as f64 / 1000.0)
                })
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    if is_encoded && !strict.is_empty() {
        details.push(format!(
            "{prefix}{blocked_after_write} measured parts had their request sent after the frame's write but blocked \
             >= {} ms; only the {} sent before the write: p50 {:.2} / p90 {:.2} / p99 {:.2} / max {:.2} ms",
            ENCODED_BLOCKED_MIN.as_millis(),
            strict.len(),
            percentile(&strict, 50.0),
            percentile(&strict, 90.0),
            percentile(&strict, 99.0),
            strict.last().expect("non-empty")
        ));
    }
    if is_encoded && !from_all_written.is_empty() {
        details.push(format!(
            "{prefix}trun composition offset of the last sample = D in {cts_equal} of {cts_checked} parts; measured \
             instead from the write of the last source frame with PTS <= the part's last PTS (source B-frame \
             reordering excluded): p50 {:.2} / p90 {:.2} / p99 {:.2} / max {:.2} ms",
            percentile(&from_all_written, 50.0),
            percentile(&from_all_written, 90.0),
            percentile(&from_all_written, 99.0),
            from_all_written.last().expect("non-empty")
        ));
    }
    let rows = if run.viewers == 1 {
        let label = if run.ladder {
            format!(
                "{}: {rendition} ({})",
                run.label,
                if is_encoded { "encoded" } else { "copy" }
            )
        } else {
            run.label.to_string()
        };
        vec![Row {
            label,
            part_target: run.part_target,
            measured: last.len(),
            mean_part,
            sorted: last,
            has_goal: !is_encoded,
        }]
    } else {
        vec![
            Row {
                label: format!("{}: first to get it", run.label),
                part_target: run.part_target,
                measured: first.len(),
                mean_part,
                sorted: first,
                has_goal: !is_encoded,
            },
            Row {
                label: format!("{}: LAST to get it", run.label),
                part_target: run.part_target,
                measured: last.len(),
                mean_part,
                sorted: last,
                has_goal: !is_encoded,
            },
        ]
    };
    (rows, details)
}

/// `/live/bench/{rendition}/media.m3u8`.
fn playlist_path(rendition: &str) -> String {
    format!("/live/{STREAM_KEY}/{rendition}/media.m3u8")
}

/// The write instant of the video frame whose key (RTMP timestamp, or PTS, in ms) is nearest to
/// `ts_90khz / 90` ms.
fn nearest_write(log: &BTreeMap<i64, Written>, ts_90khz: i64) -> Option<Written> {
    let target = (ts_90khz + 45).div_euclid(90);
    log.range(target - MATCH_TOLERANCE_MS..=target + MATCH_TOLERANCE_MS)
        .min_by_key(|(ts, _)| (**ts - target).abs())
        .map(|(_, at)| *at)
}

// ---------------------------------------------------------------------------------------------------------
// Publisher: RTMP client replaying FLV tags in real time.

struct Pacing {
    /// The largest delay of a write after its due time, and the media time (ms) where it happened.
    max_late: Duration,
    max_late_at_ms: i64,
}

/// Publish `tags` to `live/bench` in real time (tag timestamp = due time after the first tag), up to
/// `until_ms` of media, recording when each video frame was written. Returns the pacing quality.
async fn publish(
    addr: SocketAddr,
    tags: &[FlvTag],
    until_ms: u64,
    log: WriteLog,
) -> anyhow::Result<Pacing> {
    let (socket, mut session) = rtmp_publish(addr, "live", STREAM_KEY).await?;
    let (mut rd, mut wr) = socket.into_split();
    // The server's acknowledgements are not needed: read and discard them so its writes never stall.
    let drain = tokio::spawn(async move {
        let mut buf = vec![0u8; 16 * 1024];
        while matches!(rd.read(&mut buf).await, Ok(n) if n > 0) {}
    });
    let t0 = tags.first().map_or(0, |t| t.timestamp_ms);
    let start = tokio::time::Instant::now();
    let (mut max_late, mut max_late_at_ms) = (Duration::ZERO, 0);
    for tag in tags {
        let offset_ms = u64::try_from(tag.timestamp_ms - t0).unwrap_or(0);
        if offset_ms > until_ms {
            break;
        }
        let due = start + Duration::from_millis(offset_ms);
        tokio::time::sleep_until(due).await;
        let late = tokio::time::Instant::now().saturating_duration_since(due);
        if late > max_late {
            (max_late, max_late_at_ms) = (late, tag.timestamp_ms);
        }
        let ts = RtmpTimestamp::new(tag.timestamp_ms as u32);
        let result = match tag.kind {
            TagKind::Video => session.publish_video_data(tag.body.clone(), ts, false),
            TagKind::Audio => session.publish_audio_data(tag.body.clone(), ts, false),
            TagKind::Script => continue,
        }
        .map_err(|e| anyhow!("rtmp client: {e:?}"))?;
        let ClientSessionResult::OutboundResponse(packet) = result else {
            continue;
        };
        let before = Instant::now();
        wr.write_all(&packet.bytes).await?;
        let after = Instant::now();
        if tag.is_video_frame() {
            let pts_ms = tag.timestamp_ms + tag.composition_time_ms();
            log.lock().expect("write log lock").insert(
                tag.timestamp_ms,
                Written {
                    before,
                    after,
                    pts_ms,
                },
            );
        }
    }
    drain.abort();
    Ok(Pacing {
        max_late,
        max_late_at_ms,
    })
}

// ---------------------------------------------------------------------------------------------------------
// Viewers: raw HTTP/1.1 keep-alive clients (least machinery between the socket and the timestamp).

/// The receipts of one rendition's waiters; the first waiter's parts also go to the part fetcher.
struct RenditionSink {
    tally: Tally,
    first_viewer: String,
    parts: mpsc::UnboundedSender<(u64, usize)>,
}

impl Sink for RenditionSink {
    fn record(&self, r: &Record<'_>) {
        self.tally.record(r);
        if r.ok()
            && r.viewer == self.first_viewer
            && let Some(asked) = r.asked
        {
            let _ = self.parts.send(asked);
        }
    }
}

/// Fetch each part of `rendition` once (on its own connection) and read its timing.
async fn fetch_parts(
    addr: SocketAddr,
    rendition: &'static str,
    mut rx: mpsc::UnboundedReceiver<(u64, usize)>,
) -> HashMap<(u64, usize), PartTiming> {
    let mut conn = Conn::new(addr);
    let mut out = HashMap::new();
    while let Some((msn, part)) = rx.recv().await {
        if out.contains_key(&(msn, part)) {
            continue;
        }
        let answer = conn
            .get(&format!("/live/{STREAM_KEY}/{rendition}/{msn}.{part}.m4s"))
            .await;
        if answer.status != 200 || answer.error.is_some() {
            continue;
        }
        if let Some(t) = part_timing(conn.body(&answer)) {
            out.insert((msn, part), t);
        }
    }
    out
}
