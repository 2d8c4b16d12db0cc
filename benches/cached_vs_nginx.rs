//! Cached parts and segments: requests/s from the origin against nginx serving the same files from
//! disk, in the same run, with the same clients.
//!
//! Setup: three `estuary serve` processes (this build's binary; transcoding off, open playback, the
//! default 2 s segments and 500 ms parts, a window of 1000 segments so nothing leaves it during the run),
//! each with one stream published in real time by this process's RTMP client from a 3 Mbit/s FLV
//! (`testkit::flv::contribution_flv_3mbps`):
//! - `origin (memfd)`: the defaults, complete objects sent with `sendfile` from memory files;
//! - `origin (file)`: `server.http_sendfile_dir` in the temporary directory, so on the same file system
//!   as nginx's files;
//! - `origin (copy)`: `server.http_sendfile_cache_mb = 0`, bodies copied into the socket (`writev`).
//!
//! After `--warmup` seconds (default 20) each origin's video media playlist's complete segments and listed
//! parts are downloaded once; the first origin's are written under a temporary directory with the same
//! paths, and `nginx` (Debian's) serves that directory on a loopback port: 2 worker processes
//! (one per core here; the origin has 2 worker threads), `sendfile on`, `tcp_nopush on`, access log off,
//! unlimited keep-alive requests — the usual static-file set-up. Every file is read once through nginx
//! before measuring, so it serves them from the page cache. Each origin serves its own objects (the
//! same clip, published at the same time: the same sizes to within a few bytes).
//!
//! Measured per server and object kind: `--clients` keep-alive HTTP/1.1 connections (default 64, raw
//! tokio TCP in this process) each GET the objects in turn (each client starting at a different one) for
//! `--seconds` (default 8); every body's length is checked against the object's. Rounds go through the
//! three origins and nginx, twice, so that drift in the machine's load hits all. Reported: requests/s,
//! MB/s and the server processes' CPU seconds per 1000 requests, each the mean of two rounds, and each
//! origin's ratios to nginx (requests/s, CPU per request). The publishers run throughout (each origin
//! packages while it serves); their CPU is in this process, in no server's figure.
//!
//! Usage: `cargo bench --bench cached_vs_nginx -- [--clients C] [--seconds S] [--warmup S]`.
//! The clients and the servers share the machine's cores.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use testkit::http::exchange;
use testkit::load::{Object, Round, hammer};
use testkit::nginx::Nginx;
use testkit::process::{Estuary, EstuaryCommand};
use testkit::rtmp::{publish_realtime, rtmp_publish};
use tokio::net::TcpStream;

const STREAM: &str = "live/cached";

/// nginx on a loopback port serving `root` (two workers, as the machine has two cores).
fn start_nginx(root: &Path, dir: &Path) -> Nginx {
    Nginx::start(
        dir,
        2,
        &format!(
            "access_log off;\n  sendfile on;\n  tcp_nopush on;\n  tcp_nodelay on;\n\
             keepalive_requests 100000000;\n  keepalive_timeout 60s;\n\
             types {{ video/mp4 m4s; }}\n\
             server {{\n    listen @LISTEN@;\n    root {};\n  }}",
            root.display()
        ),
    )
}

/// One origin under test: its name in the report and its extra `[server]` settings.
struct Variant {
    name: &'static str,
    server: String,
}

/// The objects one origin lists: complete segments and listed parts of the video rendition, each read
/// once (and written under `save_to` when given, for nginx).
async fn objects_of(origin: &Estuary, save_to: Option<&Path>) -> (Vec<Object>, Vec<Object>) {
    let mut conn = TcpStream::connect(origin.http_addr).await.unwrap();
    let mut buf = Vec::new();
    let base = format!("/{STREAM}/source");
    let (status, playlist) = exchange(&mut conn, &mut buf, &format!("{base}/media.m3u8"), "")
        .await
        .unwrap();
    assert_eq!(status, 200, "media playlist");
    let playlist = String::from_utf8(playlist).unwrap();
    let mut segments = Vec::new();
    let mut parts = Vec::new();
    for line in playlist.lines() {
        if let Some(uri) = line
            .strip_prefix("#EXT-X-PART:")
            .and_then(|a| a.split("URI=\"").nth(1))
            .and_then(|u| u.split('"').next())
        {
            parts.push(uri.to_owned());
        } else if !line.starts_with('#') && line.ends_with(".m4s") {
            segments.push(line.to_owned());
        }
    }
    let mut out = (Vec::new(), Vec::new());
    for (uris, out) in [(&segments, &mut out.0), (&parts, &mut out.1)] {
        for uri in uris {
            let path = format!("{base}/{uri}");
            let (status, body) = exchange(&mut conn, &mut buf, &path, "").await.unwrap();
            assert_eq!(status, 200, "{path}");
            if let Some(root) = save_to {
                let file: PathBuf = root.join(path.trim_start_matches('/'));
                std::fs::create_dir_all(file.parent().unwrap()).unwrap();
                std::fs::write(&file, &body).unwrap();
            }
            out.push(Object {
                path,
                len: body.len(),
            });
        }
    }
    out
}

async fn run(clients: usize, seconds: u64, warmup: u64) {
    // Mirrors as unnamed files go in the same file system as nginx's root (the temporary directory).
    let mirror_dir = tempfile::tempdir().expect("temp dir");
    let variants = [
        Variant {
            name: "origin (memfd)",
            server: String::new(),
        },
        Variant {
            name: "origin (file)",
            server: format!("http_sendfile_dir = \"{}\"\n", mirror_dir.path().display()),
        },
        Variant {
            name: "origin (copy)",
            server: "http_sendfile_cache_mb = 0\n".into(),
        },
    ];
    let file =
        Bytes::from(std::fs::read(testkit::flv::contribution_flv_3mbps()).expect("read the FLV"));
    let tags = Arc::new(testkit::flv::looped_tags(
        &testkit::flv::read_flv_tags(&file).expect("parse the FLV"),
        20,
    ));
    let mut origins = Vec::new();
    let mut publishers = Vec::new();
    for v in &variants {
        let origin = Estuary::spawn(EstuaryCommand::bench(
            env!("CARGO_BIN_EXE_estuary"),
            &format!(
                "[transcode]\nenabled = false\n[packager]\nwindow_segments = 1000\n\
                 [auth]\nplayback = \"open\"\npublish = \"open\"\nsecret = \"cached-vs-nginx bench secret of 32+ bytes\"\n\
                 [server]\n{}",
                v.server
            ),
        ));
        let (socket, session) = rtmp_publish(origin.rtmp_addr, "live", "cached")
            .await
            .expect("publish");
        let tags = tags.clone();
        publishers.push(tokio::spawn(async move {
            publish_realtime(
                socket,
                session,
                &tags,
                tokio::time::Instant::now() + Duration::from_secs(3600),
            )
            .await
        }));
        origins.push(origin);
    }
    tokio::time::sleep(Duration::from_secs(warmup)).await;

    let root = tempfile::tempdir().unwrap();
    let mut listed = Vec::new();
    for (i, origin) in origins.iter().enumerate() {
        listed.push(objects_of(origin, (i == 0).then_some(root.path())).await);
    }
    let mean = |o: &[Object]| {
        o.iter().map(|o| o.len).sum::<usize>() as f64 / o.len().max(1) as f64 / 1024.0
    };
    let (segments, parts) = &listed[0];
    println!(
        "objects: {} segments (mean {:.0} KiB), {} parts (mean {:.0} KiB); {clients} clients, {seconds} s rounds",
        segments.len(),
        mean(segments),
        parts.len(),
        mean(parts),
    );
    let nginx_dir = tempfile::tempdir().expect("temp dir");
    let nginx = start_nginx(root.path(), nginx_dir.path());
    // Warm nginx's page cache and check it serves every object whole.
    let mut buf = Vec::new();
    for o in parts.iter().chain(segments.iter()) {
        let mut c = TcpStream::connect(nginx.addr).await.unwrap();
        let (status, body) = exchange(&mut c, &mut buf, &o.path, "").await.unwrap();
        assert!(
            status == 200 && body.len() == o.len,
            "nginx serves {}",
            o.path
        );
    }

    for kind in ["parts", "segments"] {
        let objects_for = |s: usize| {
            let (segments, parts) = &listed[s.min(listed.len() - 1)];
            Arc::new(if kind == "parts" {
                parts.clone()
            } else {
                segments.clone()
            })
        };
        // Each server's rounds, with the server's CPU seconds over each: the origins, then nginx
        // (serving the first origin's objects).
        let servers = origins.len() + 1;
        let mut results: Vec<Vec<(Round, f64)>> = vec![Vec::new(); servers];
        for _ in 0..2 {
            for (s, rounds) in results.iter_mut().enumerate() {
                let cpu = || {
                    origins
                        .get(s)
                        .map(|o| o.cpu_seconds())
                        .unwrap_or_else(|| nginx.cpu_seconds())
                };
                let addr = origins.get(s).map(|o| o.http_addr).unwrap_or(nginx.addr);
                let objects = if s < origins.len() {
                    objects_for(s)
                } else {
                    objects_for(0)
                };
                let cpu0 = cpu();
                let r = hammer(addr, objects, clients, seconds).await;
                rounds.push((r, cpu() - cpu0));
            }
        }
        let summary = |rounds: &[(Round, f64)]| {
            let cpu: f64 = rounds.iter().map(|r| r.1).sum();
            let rounds: Vec<Round> = rounds.iter().map(|r| r.0).collect();
            let rps = rounds
                .iter()
                .map(|r| r.requests as f64 / r.seconds)
                .sum::<f64>()
                / rounds.len() as f64;
            let mbps = rounds
                .iter()
                .map(|r| r.bytes as f64 / r.seconds / 1e6)
                .sum::<f64>()
                / rounds.len() as f64;
            let requests = rounds.iter().map(|r| r.requests).sum::<u64>() as f64;
            let cpu_per_k = cpu / requests * 1000.0;
            let errors: u64 = rounds.iter().map(|r| r.errors).sum();
            (rps, mbps, cpu_per_k, errors)
        };
        let n = summary(&results[origins.len()]);
        println!(
            "{kind:<8} {:<15} {:>8.0} req/s {:>7.0} MB/s {:.3} CPU s/1000 req (errors {})",
            "nginx", n.0, n.1, n.2, n.3
        );
        for (v, rounds) in variants.iter().zip(&results) {
            let o = summary(rounds);
            println!(
                "{kind:<8} {:<15} {:>8.0} req/s {:>7.0} MB/s {:.3} CPU s/1000 req (errors {}) | /nginx: req/s {:.2}, CPU per request {:.2}",
                v.name,
                o.0,
                o.1,
                o.2,
                o.3,
                o.0 / n.0,
                o.2 / n.2
            );
        }
    }
    for p in publishers {
        p.abort();
    }
}

fn main() {
    let (mut clients, mut seconds, mut warmup) = (64, 8, 20);
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = |d| args.next().and_then(|s| s.parse().ok()).unwrap_or(d);
        match a.as_str() {
            "--clients" => clients = value(clients as u64) as usize,
            "--seconds" => seconds = value(seconds),
            "--warmup" => warmup = value(warmup),
            _ => {}
        }
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(run(clients, seconds, warmup));
}
