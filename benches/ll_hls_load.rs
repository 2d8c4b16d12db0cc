//! LL-HLS load: N simulated low-latency players against one origin, measuring how many blocked playlist
//! requests it holds, what they cost in memory, and how long after a part's publication the last of the
//! N waiters gets its playlist.
//!
//! Setup: `estuary serve` (this build's binary) as a child process on 127.0.0.1 with passthrough
//! packaging, open playback, 500 ms parts, and `ffmpeg -re -stream_loop -1 -i
//! fixtures/camera-bikes-272p-h264-10s.mp4 -c copy -f flv` publishing `live/load` in real time.
//!
//! Each player is a waiter of the load generator (`testkit::load`, which the soak's players also run
//! on): one keep-alive HTTP/1.1 connection (raw tokio TCP, no client library, so that 10 000 of them
//! stay cheap in this process) doing what hls.js does in low-latency mode on the video media playlist: a blocking reload for the part its last playlist's `EXT-X-PRELOAD-HINT` named
//! (`media.m3u8?_HLS_msn=M&_HLS_part=P`, RFC 8216bis §6.2.5.2), then (with `--parts`) a GET of that
//! part, then the next blocking reload. Players connect in batches of 500 every 50 ms, then the
//! measurement runs for `--seconds` (default 20).
//!
//! Reported per run:
//! - **held**: the most blocked playlist requests the origin held at once (its API's `blocked_requests`,
//!   sampled every 25 ms);
//! - **memory**: the origin's resident set (`VmRSS`) before the players connected and at its peak, and
//!   the difference per held request;
//! - **publication to last waiter**: for each part, over the players whose request was already waiting
//!   when the first answer for that part left, the time from that first answer (the publication, within
//!   the origin's wake-up time) to the last of them receiving its playlist: p50, p99 and max over the
//!   parts of the window, and how many waiters a part had;
//! - errors (non-200 answers, broken connections) and requests/s;
//! - **CPU per request** over the measurement: the origin's and the players' (this process), user
//!   space and kernel apart (`/proc/{pid}/stat`), and what that adds up to for the held requests on
//!   this machine's cores. With both on the same cores, a spread bound by CPU is about that sum; the
//!   kernel's part (TCP over loopback, charged to both sides) is a floor no user-space change lowers.
//!
//! Usage: `cargo bench --bench ll_hls_load -- [N ...] [--parts] [--seconds S]` (default N = 1000 10000).
//! The players and the origin share the machine's cores: the figures are what the origin does while
//! the load generator also runs.

use std::{
    net::SocketAddr,
    path::Path,
    sync::{Arc, atomic::Ordering},
    time::{Duration, Instant},
};

use testkit::{
    ffmpeg::publish_loop,
    http::exchange,
    load::{Mode, Tally, Viewer, publication_spreads},
    process::{Estuary, EstuaryCommand, cpu_split_seconds},
};
use tokio::net::TcpStream;

const STREAM: &str = "live/load";
const API_TOKEN: &str = "ll-hls-load-bench-api-token";

fn start_origin() -> Estuary {
    Estuary::spawn(EstuaryCommand::bench(
        env!("CARGO_BIN_EXE_estuary"),
        &format!(
            "[transcode]\nenabled = false\n[packager]\npart_target = \"500ms\"\n\
         [auth]\nplayback = \"open\"\npublish = \"open\"\nsecret = \"ll-hls load bench secret of 32+ bytes\"\n\
         [api]\ntoken = \"{API_TOKEN}\"\n[streams]\nmax_waiters_per_stream = 100000\n\
         [server]\nhttp_max_connections = 30000\n"
        ),
    ))
}

/// The origin's API view of the stream's blocked requests.
async fn blocked_requests(addr: SocketAddr, conn: &mut Option<TcpStream>) -> Option<u64> {
    if conn.is_none() {
        *conn = TcpStream::connect(addr).await.ok();
    }
    let stream = conn.as_mut()?;
    let mut buf = Vec::new();
    let auth = format!("Authorization: Bearer {API_TOKEN}\r\n");
    match exchange(stream, &mut buf, &format!("/api/streams/{STREAM}"), &auth).await {
        Ok((200, body)) => {
            let v: serde_json::Value = serde_json::from_slice(&body).ok()?;
            v["blocked_requests"].as_u64()
        }
        _ => {
            *conn = None;
            None
        }
    }
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

async fn run(n: usize, fetch_parts: bool, seconds: u64) {
    let origin = start_origin();
    let mut publisher = publish_loop(
        Path::new("ffmpeg"),
        &testkit::fixture("camera-bikes-272p-h264-10s.mp4"),
        &format!("rtmp://{}/{STREAM}", origin.rtmp_addr),
    );
    // Wait for the playlist, then a few segments.
    let mut probe = None;
    let ready = Instant::now();
    loop {
        let mut conn = TcpStream::connect(origin.http_addr).await.unwrap();
        let mut buf = Vec::new();
        if let Ok((200, _)) = exchange(
            &mut conn,
            &mut buf,
            &format!("/{STREAM}/source/media.m3u8"),
            "",
        )
        .await
        {
            break;
        }
        assert!(
            ready.elapsed() < Duration::from_secs(30),
            "stream not ready"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let rss_before = origin.rss_kib();

    let counters = Arc::new(Tally::default());
    let ramp = Duration::from_millis(50) * (n as u32).div_ceil(500);
    let until = Instant::now() + ramp + Duration::from_secs(seconds) + Duration::from_secs(1);
    let mut tasks = Vec::with_capacity(n);
    for i in 0..n {
        if i > 0 && i % 500 == 0 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let player = Viewer {
            name: format!("waiter{i}"),
            addr: origin.http_addr,
            url: format!("/{STREAM}/source/media.m3u8"),
            mode: Mode::Waiter {
                fetch_parts,
                wait_for_stream: false,
            },
            until,
        };
        let counters = counters.clone();
        tasks.push(tokio::spawn(
            async move { player.run(counters.as_ref()).await },
        ));
    }
    let measure_from = Instant::now();
    let requests_from = counters.requests.load(Ordering::Relaxed);
    let origin_cpu_from = cpu_split_seconds(origin.pid());
    let players_cpu_from = cpu_split_seconds(std::process::id());
    let mut held_max = 0;
    let mut rss_max = rss_before;
    while Instant::now() < until {
        if let Some(b) = blocked_requests(origin.http_addr, &mut probe).await {
            held_max = held_max.max(b);
        }
        rss_max = rss_max.max(origin.rss_kib());
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let requests_at_end = counters.requests.load(Ordering::Relaxed);
    let elapsed = measure_from.elapsed();
    let origin_cpu = delta(origin_cpu_from, cpu_split_seconds(origin.pid()));
    let players_cpu = delta(players_cpu_from, cpu_split_seconds(std::process::id()));
    let requests = requests_at_end.saturating_sub(requests_from).max(1) as f64;
    let per_request_us =
        |(user, system): (f64, f64)| (user / requests * 1e6, system / requests * 1e6);
    let (origin_user_us, origin_system_us) = per_request_us(origin_cpu);
    let (players_user_us, players_system_us) = per_request_us(players_cpu);
    for t in tasks {
        let _ = t.await;
    }
    let receipts = std::mem::take(&mut *counters.receipts.lock().unwrap());
    publisher.kill();

    // Publication to last waiter, per part: over the requests sent before the part's first answer,
    // for the parts at least 90 % of the players waited for (not those at the ramp or the end).
    let (mut spreads, waiters): (Vec<f64>, Vec<usize>) =
        publication_spreads(&receipts, (n * 9).div_ceil(10))
            .into_iter()
            .unzip();
    spreads.sort_by(f64::total_cmp);
    let waiters_min = waiters.iter().min().copied().unwrap_or(0);
    println!(
        "N={n:>6} parts={:<5} held max {held_max:>6}  origin RSS {:.1} MB -> {:.1} MB ({:+.1} kB per held request)  \
         publication->last waiter over {} parts (>= {waiters_min} waiters each): p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms  \
         {:.0} req/s, {:.1} MB/s parts, errors {}",
        if fetch_parts { "yes" } else { "no" },
        rss_before as f64 / 1024.0,
        rss_max as f64 / 1024.0,
        if held_max > 0 {
            (rss_max.saturating_sub(rss_before)) as f64 / held_max as f64
        } else {
            f64::NAN
        },
        spreads.len(),
        percentile(&spreads, 0.5),
        percentile(&spreads, 0.99),
        spreads.last().copied().unwrap_or(f64::NAN),
        requests / elapsed.as_secs_f64(),
        counters.part_bytes.load(Ordering::Relaxed) as f64 / elapsed.as_secs_f64() / 1e6,
        counters.errors.load(Ordering::Relaxed),
    );
    // Every answer costs CPU on both sides of the loopback on the same cores: if the spread is bound by
    // CPU, it is about (origin + players) per request × waiters ÷ cores, and no less than the kernel's
    // share of that.
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    let spread_ms = |us: f64| us * held_max as f64 / cores / 1e3;
    println!(
        "         CPU per request: origin {origin_user_us:.1} us user + {origin_system_us:.1} us kernel, \
         players {players_user_us:.1} us user + {players_system_us:.1} us kernel; \
         for {held_max} held requests on {cores} cores that is {:.0} ms of CPU per core ({:.0} ms of it the \
         kernel's, {:.0} ms the origin's alone)",
        spread_ms(origin_user_us + origin_system_us + players_user_us + players_system_us),
        spread_ms(origin_system_us + players_system_us),
        spread_ms(origin_user_us + origin_system_us),
    );
}

/// CPU seconds (user, kernel) used between two readings.
fn delta(from: (f64, f64), to: (f64, f64)) -> (f64, f64) {
    (to.0 - from.0, to.1 - from.1)
}

fn main() {
    let _ = rlimit::increase_nofile_limit(u64::MAX);
    let mut counts = Vec::new();
    let mut fetch_parts = false;
    let mut seconds = 20;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--parts" => fetch_parts = true,
            "--seconds" => seconds = args.next().and_then(|s| s.parse().ok()).unwrap_or(20),
            "--bench" => {}
            other => {
                if let Ok(n) = other.parse() {
                    counts.push(n);
                }
            }
        }
    }
    if counts.is_empty() {
        counts = vec![1000, 10_000];
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    for n in counts {
        runtime.block_on(run(n, fetch_parts, seconds));
    }
}
