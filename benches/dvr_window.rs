//! DVR window: the origin's memory and the media playlist's size as a 2-hour window fills, with the
//! live window only (no DVR) as the peer in the same run.
//!
//! Setup: `estuary serve` (this build's binary) as a child process, transcoding off, one stream
//! `live/dvr` published by this process over RTMP (rml_rtmp's client session): the 3 Mbit/s
//! contribution FLV (`testkit::flv::contribution_flv_3mbps`: libx264 CBR 720p24 + AAC, 30 s) looped,
//! **fast-forwarded** at `--speed` × real time (default 20) for `--fill-minutes` of media (default
//! 130: the 2 h window full, then 10 more minutes of it sliding). Two origins, one after the other:
//! `[dvr] window = "2h"` (segments leaving the 24 s live window are listed from the rendition's
//! archive and served from the DVR store on disk), then no DVR for `--peer-minutes` of media
//! (default 20).
//!
//! Every `--every-minutes` of media (default 10), printed as one line: the origin's resident set
//! (`VmRSS`), the source media playlist's segments and bytes (full, and the delta update with
//! `_HLS_skip=YES`), the DVR store's bytes on disk, and the time to fetch the oldest listed segment
//! (from disk) and the newest complete one (from memory). At the end: how far the publisher fell
//! behind its schedule (the origin's ingest keeping up with the speed).
//!
//! Fast-forwarding makes the program date times run ahead of the wall clock (the anchor is the
//! first frame's arrival); nothing measured here depends on them. Players rewinding 30 minutes are
//! measured on a real-time publish (see the DVR notes in docs/benchmarks.md).
//!
//! Usage: `cargo bench --bench dvr_window -- [--speed X] [--fill-minutes M] [--peer-minutes M]
//! [--every-minutes M]`.

use std::time::{Duration, Instant};

use testkit::process::{Estuary, EstuaryCommand};
use testkit::rtmp::{publish_paced, rtmp_publish};

fn arg(name: &str, default: f64) -> f64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn dir_bytes(dir: &std::path::Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .filter_map(Result::ok)
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_bytes(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

async fn fetch(url: &str) -> (u16, usize, Duration) {
    let t = Instant::now();
    let r = testkit::http::get(url).await;
    (r.status.as_u16(), r.body.len(), t.elapsed())
}

async fn run(label: &str, dvr: Option<&str>, minutes: f64, speed: f64, every: f64) {
    let data = tempfile::tempdir().expect("temp dir");
    let mut config = String::from(
        "[transcode]\nenabled = false\n\
         [auth]\nplayback = \"open\"\npublish = \"open\"\nsecret = \"dvr bench secret of at least 32 bytes\"\n",
    );
    if let Some(w) = dvr {
        config.push_str(&format!("[dvr]\nwindow = \"{w}\"\n"));
    }
    let mut command = EstuaryCommand::bench(env!("CARGO_BIN_EXE_estuary"), &config);
    command.data_dir = Some(data.path().to_owned());
    let origin = Estuary::spawn(command);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_idle = origin.rss_kib();
    let flv =
        bytes::Bytes::from(std::fs::read(testkit::flv::contribution_flv_3mbps()).expect("flv"));
    let tags = testkit::flv::read_flv_tags(&flv).expect("flv tags");
    let clip_ms = tags.last().map_or(30_000, |t| t.timestamp_ms).max(1);
    let media_ms = (minutes * 60_000.0) as i64;
    let loops = (media_ms / clip_ms + 2) as usize;
    let (socket, session) = rtmp_publish(origin.rtmp_addr, "live", "dvr")
        .await
        .expect("rtmp publish");
    let start = tokio::time::Instant::now();
    let until = start + Duration::from_secs_f64(minutes * 60.0 / speed + 5.0);
    let publisher = tokio::spawn(async move {
        // Looped as they are sent: hours of media are never held at once.
        let tags =
            testkit::flv::looped_tags_iter(&tags, loops).take_while(|t| t.timestamp_ms <= media_ms);
        publish_paced(socket, session, tags, until, |ms| {
            Duration::from_secs_f64(ms as f64 / 1000.0 / speed)
        })
        .await
    });
    let base = format!("http://{}/live/dvr/", origin.http_addr);
    println!(
        "{label}: idle RSS {:.1} MB; publishing {minutes} min of media at {speed}x",
        rss_idle as f64 / 1024.0
    );
    println!(
        "{label}:   media_min  rss_mb  listed_segments  full_bytes  delta_bytes  store_mb  oldest_ms(disk)  newest_ms(memory)"
    );
    let mut next = every;
    while next <= minutes + 0.01 {
        let at = start + Duration::from_secs_f64(next * 60.0 / speed);
        tokio::time::sleep_until(at).await;
        let full = testkit::http::get(&format!("{base}source/media.m3u8"))
            .await
            .text();
        let delta = testkit::http::get(&format!("{base}source/media.m3u8?_HLS_skip=YES"))
            .await
            .text();
        let uris: Vec<&str> = full
            .lines()
            .filter(|l| !l.starts_with('#') && l.ends_with(".m4s"))
            .collect();
        let (oldest, newest) = match (uris.first(), uris.last()) {
            (Some(o), Some(n)) => (
                fetch(&format!("{base}source/{o}")).await,
                fetch(&format!("{base}source/{n}")).await,
            ),
            _ => ((0, 0, Duration::ZERO), (0, 0, Duration::ZERO)),
        };
        println!(
            "{label}:   {next:9.0}  {:6.1}  {:15}  {:10}  {:11}  {:8.1}  {:>10.2} ({})  {:>10.2} ({})",
            origin.rss_kib() as f64 / 1024.0,
            uris.len(),
            full.len(),
            delta.len(),
            dir_bytes(data.path()) as f64 / 1e6,
            oldest.2.as_secs_f64() * 1000.0,
            oldest.0,
            newest.2.as_secs_f64() * 1000.0,
            newest.0,
        );
        next += every;
    }
    match publisher.await {
        Ok(Ok(report)) => println!(
            "{label}: published {:.0} MB in {:.0} s ({:.1} Mbit/s, {:.1}x real time); publisher at most {:.1} s behind its schedule",
            report.payload_bytes as f64 / 1e6,
            start.elapsed().as_secs_f64(),
            report.payload_bytes as f64 * 8.0 / start.elapsed().as_secs_f64() / 1e6,
            minutes * 60.0 / start.elapsed().as_secs_f64(),
            report.max_late.as_secs_f64()
        ),
        other => println!("{label}: publisher failed: {other:?}"),
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let speed = arg("--speed", 20.0);
    let fill = arg("--fill-minutes", 130.0);
    let peer = arg("--peer-minutes", 20.0);
    let every = arg("--every-minutes", 10.0);
    run("dvr 2h", Some("2h"), fill, speed, every).await;
    run("no dvr", None, peer, speed, every).await;
}
