//! Many streams: what passthrough packaging costs per stream, in CPU and memory, with N concurrent RTMP
//! publishers at 3 Mbit/s.
//!
//! Setup: `estuary serve` (this build's binary) as a child process with its defaults for packaging
//! (2 s segments, 500 ms parts, a window of 12 segments, no encryption) and transcoding off, so that every
//! stream is packaged as published. The publishers are this process: N RTMP clients (rml_rtmp's client
//! session), each replaying a 3 Mbit/s FLV (`testkit::flv::contribution_flv_3mbps`, libx264 CBR 720p24 + AAC,
//! made once by FFmpeg) in real time as `live/s{i}`, started 20 ms apart.
//!
//! Per N: the origin's resident set before any publisher (`VmRSS`), then after a warm-up of
//! `--warmup` seconds (default 30: the 24 s live window is full, so memory is at its steady state) the
//! origin's CPU time over a `--seconds` window (default 15) and its resident set at the end. Reported:
//! CPU % of one core in all and per stream, MB per stream (resident set growth / N), the publishers'
//! delivered bit rate (what was sent, against the nominal 3 Mbit/s × N), their worst lateness (if the
//! load generator itself falls behind, the figures are for less than 3 Mbit/s), the load generator's own
//! CPU %, and how many of the N media playlists list at least 10 segments at the end.
//!
//! Usage: `cargo bench --bench many_streams -- [N ...] [--warmup S] [--seconds S]` (default N = 50 200).
//! The publishers and the origin share the machine's cores.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use testkit::http::exchange;
use testkit::process::{Estuary, EstuaryCommand, cpu_seconds};
use testkit::rtmp::{PublishReport, publish_realtime, rtmp_publish};
use tokio::net::TcpStream;

const NOMINAL_BPS: f64 = 3_000_000.0;

async fn run(n: usize, tags: Arc<Vec<testkit::flv::FlvTag>>, warmup: u64, seconds: u64) {
    let origin = Estuary::spawn(EstuaryCommand::bench(
        env!("CARGO_BIN_EXE_estuary"),
        "[transcode]\nenabled = false\n\
         [auth]\nplayback = \"open\"\npublish = \"open\"\nsecret = \"many-streams bench secret of 32+ bytes\"\n\
         [streams]\nmax_streams = 1000\n[server]\nrtmp_max_connections = 1000\n",
    ));
    let pid = origin.pid();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss_idle = origin.rss_kib();
    let start = tokio::time::Instant::now();
    let stagger = Duration::from_millis(20);
    let until = start + stagger * n as u32 + Duration::from_secs(warmup + seconds + 2);
    let mut publishers = Vec::with_capacity(n);
    for i in 0..n {
        let tags = tags.clone();
        let rtmp = origin.rtmp_addr;
        publishers.push(tokio::spawn(async move {
            let (socket, session) = rtmp_publish(rtmp, "live", &format!("s{i}")).await?;
            publish_realtime(socket, session, &tags, until).await
        }));
        tokio::time::sleep(stagger).await;
    }
    tokio::time::sleep_until(start + stagger * n as u32 + Duration::from_secs(warmup)).await;
    let (cpu0, self0) = (cpu_seconds(pid), cpu_seconds(std::process::id()));
    let t0 = tokio::time::Instant::now();
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    let window = t0.elapsed().as_secs_f64();
    let cpu = (cpu_seconds(pid) - cpu0) / window * 100.0;
    let generator = (cpu_seconds(std::process::id()) - self0) / window * 100.0;
    let rss_end = origin.rss_kib();

    // Every stream live: its video media playlist lists at least 10 complete segments.
    let mut live = 0;
    let mut conn = TcpStream::connect(origin.http_addr).await.unwrap();
    let mut buf = Vec::new();
    for i in 0..n {
        if let Ok((200, body)) = exchange(
            &mut conn,
            &mut buf,
            &format!("/live/s{i}/source/media.m3u8"),
            "",
        )
        .await
        {
            let segments = String::from_utf8_lossy(&body)
                .lines()
                .filter(|l| l.starts_with("#EXTINF"))
                .count();
            if segments >= 10 {
                live += 1;
            }
        }
    }
    let mut sent = PublishReport::default();
    let mut failed = 0;
    for p in publishers {
        match p.await {
            Ok(Ok(r)) => {
                sent.payload_bytes += r.payload_bytes;
                sent.max_late = sent.max_late.max(r.max_late);
            }
            Ok(Err(e)) => {
                failed += 1;
                eprintln!("publisher failed: {e:#}");
            }
            Err(e) => {
                failed += 1;
                eprintln!("publisher panicked: {e}");
            }
        }
    }
    let elapsed = start.elapsed().as_secs_f64() - (stagger * n as u32).as_secs_f64() / 2.0;
    let delivered_bps = sent.payload_bytes as f64 * 8.0 / elapsed;
    let mb_per_stream = rss_end.saturating_sub(rss_idle) as f64 / 1024.0 / n as f64;
    println!(
        "N={n:>4} streams: origin CPU {cpu:.0}% of a core ({:.2}% per stream), RSS {:.1} -> {:.1} MB \
         ({mb_per_stream:.2} MB per stream), delivered {:.2} Gbit/s ({:.0}% of {n} x 3 Mbit/s), \
         publisher max lateness {} ms, load generator CPU {generator:.0}%, live {live}/{n}, failed publishers {failed}",
        cpu / n as f64,
        rss_idle as f64 / 1024.0,
        rss_end as f64 / 1024.0,
        delivered_bps / 1e9,
        delivered_bps / (NOMINAL_BPS * n as f64) * 100.0,
        sent.max_late.as_millis(),
    );
}

fn main() {
    let _ = rlimit::increase_nofile_limit(u64::MAX);
    let mut counts = Vec::new();
    let (mut warmup, mut seconds) = (30, 15);
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--warmup" => warmup = args.next().and_then(|s| s.parse().ok()).unwrap_or(warmup),
            "--seconds" => seconds = args.next().and_then(|s| s.parse().ok()).unwrap_or(seconds),
            "--bench" => {}
            other => {
                if let Ok(n) = other.parse() {
                    counts.push(n);
                }
            }
        }
    }
    if counts.is_empty() {
        counts = vec![50, 200];
    }
    let file =
        Bytes::from(std::fs::read(testkit::flv::contribution_flv_3mbps()).expect("read the FLV"));
    let tags = testkit::flv::read_flv_tags(&file).expect("parse the FLV");
    // Enough loops of the 30 s file for the longest run.
    let loops = ((warmup + seconds + 10) / 30 + 1) as usize;
    let tags = Arc::new(testkit::flv::looped_tags(&tags, loops));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    for n in counts {
        runtime.block_on(run(n, tags.clone(), warmup, seconds));
    }
}
