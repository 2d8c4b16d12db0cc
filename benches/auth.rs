//! Cost of playback-token checks: per call, and in HTTP throughput with the check on vs off.
//!
//! 1. **Per call** (one thread, no server running): `estuary::auth::Auth::with_secret` under a 40-byte
//!    secret, a token from `Auth::sign_for("live/demo", 1 h, now)`, then 5 rounds of 200 000 calls each of
//!    - `Auth::verify(token, "live/demo", Some(ip), now)` (valid token: must return `Ok`),
//!    - `Auth::verify` of the same token with one signature character changed (must return
//!      `Err(Denial::BadSignature)`: the signature is checked first, so this is the cost of a forged token),
//!    - `Auth::sign_for` (what a token service calling into the origin's code would pay),
//!    - `Auth::check_publish_key(stream, &Auth::publish_key(stream))` (must return `true`).
//!
//!    Inputs and outputs go through `std::hint::black_box`; the bench prints the median and the minimum
//!    of the 5 rounds in ns per call.
//! 2. **HTTP throughput, token checked vs not**, in one process and one tokio runtime (2 workers) on
//!    127.0.0.1: `estuary::server::Server::start` (fresh temporary data directory, `[transcode] enabled =
//!    false`, `[auth] playback = "open"`, `publish = "open"`, a fixed secret), fed by an `ffmpeg -re
//!    -stream_loop -1 -i fixtures/bbb-720p-2s-gop.mp4 -c copy -f flv rtmp://…/live/bench` child process
//!    (killed at the end). With `playback = "open"` a request without a token is not checked, and a
//!    request under `/t/{token}/` always is, so "off" requests `/live/bench/source/X` and "on" requests
//!    `/t/{token}/live/bench/source/X` (token from `server.auth.sign_for("live/bench", 1 h, now)`): the same
//!    object from the same server, the only difference being the token check (and the longer path).
//!    X is the init segment (`init-{id}.mp4`, from `EXT-X-MAP`: a small object, so per-request costs
//!    dominate) and a complete segment (`{msn}.m4s`, a few hundred kB: the newest complete one when each
//!    round starts, so it stays inside the 24 s live window). Load: 32 concurrent keep-alive HTTP/1.1
//!    connections (`hyper_util::client::legacy::Client`, bodies read to the end with `http_body_util`),
//!    each sending its next request as soon as the previous one is read; a request counts when its 200
//!    response was read before the 3 s window ended (anything else is counted and printed as an error).
//!    3 rounds, on and off interleaved (the order alternates per round); the bench prints requests/s and
//!    MB/s per round, the median, and the on/off ratio. The client shares the 2 cores with the server
//!    (and with FFmpeg and the packager), so these are lower bounds of what the server alone could do.
//!
//! Nothing here asserts on time. `cargo bench --bench auth` (about 50 s after the build; needs `ffmpeg`
//! on `PATH`).

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bytes::Bytes;
use estuary::auth::{Auth, AuthConfig, Denial, unix_now_s};
use estuary::config::{FileConfig, ServeArgs, Settings};
use estuary::server::Server;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::{Client, connect::HttpConnector};
use hyper_util::rt::TokioExecutor;

/// The secret of the micro-benchmark and of the server (40 bytes; at least 32 are required).
const SECRET: &str = "bench secret, at least 32 bytes long....";
/// Calls per round, and rounds, of each per-call measurement.
const CALLS: u32 = 200_000;
const CALL_ROUNDS: usize = 5;
/// HTTP load: concurrent keep-alive connections, rounds of on/off, length of each timed window.
const CONNECTIONS: usize = 32;
const HTTP_ROUNDS: usize = 3;
const WINDOW: Duration = Duration::from_secs(3);
/// Untimed load before each object's first round (connections opened, caches warm).
const WARM_UP: Duration = Duration::from_millis(500);
const STREAM: &str = "live/bench";
const FIXTURE: &str = "fixtures/bbb-720p-2s-gop.mp4";

fn main() -> anyhow::Result<()> {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!(
        "auth: playback token verification cost, and HTTP throughput with the token check on vs off"
    );
    println!(
        "{cores} cores (shared, noisy); load average at the start: {}",
        loadavg()
    );
    let verify_ns = per_call();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(http_throughput(verify_ns))?;
    println!("\nload average at the end: {}", loadavg());
    Ok(())
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

// ---------------------------------------------------------------------------------------------------------
// 1. Per call.

/// ns per call of `f` in each of [`CALL_ROUNDS`] rounds of [`CALLS`] calls (after an untimed round).
fn time_calls(mut f: impl FnMut()) -> Vec<f64> {
    for _ in 0..CALLS / 10 {
        f();
    }
    (0..CALL_ROUNDS)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..CALLS {
                f();
            }
            start.elapsed().as_secs_f64() * 1e9 / f64::from(CALLS)
        })
        .collect()
}

/// Prints the per-call table; returns the median ns of a successful `verify`.
fn per_call() -> f64 {
    let auth = Auth::with_secret(&AuthConfig::default(), SECRET.as_bytes());
    let now = unix_now_s();
    let stream = "live/demo";
    let ip = IpAddr::V4(Ipv4Addr::new(203, 0, 113, 7));
    let token = auth.sign_for(stream, Duration::from_secs(3600), now);
    // Change the signature's first character (the last one also carries padding bits, and a non-canonical
    // value there is rejected by the base64 decoder as malformed before any HMAC is computed).
    let dot = token.find('.').expect("a token is claims.signature");
    let mut forged = token.clone().into_bytes();
    forged[dot + 1] = if forged[dot + 1] == b'A' { b'B' } else { b'A' };
    let forged = String::from_utf8(forged).expect("base64url is ASCII");
    let key = auth.publish_key(stream);

    // Functional checks (not timing): each measured call does what it claims.
    assert!(
        auth.verify(&token, stream, Some(ip), now).is_ok(),
        "valid token refused"
    );
    assert_eq!(
        auth.verify(&forged, stream, Some(ip), now).err(),
        Some(Denial::BadSignature),
        "forged token"
    );
    assert!(auth.check_publish_key(stream, &key), "publish key refused");

    println!(
        "\n## 1. per call (one thread; {CALL_ROUNDS} rounds of {CALLS} calls; token {} bytes: {} claims + 43 signature)",
        token.len(),
        dot
    );
    let rows: [(&str, Vec<f64>); 4] = [
        (
            "verify, valid token (Ok)",
            time_calls(|| {
                let r = auth.verify(
                    black_box(&token),
                    black_box(stream),
                    black_box(Some(ip)),
                    black_box(now),
                );
                assert!(black_box(r).is_ok());
            }),
        ),
        (
            "verify, bad signature (Err)",
            time_calls(|| {
                let r = auth.verify(
                    black_box(&forged),
                    black_box(stream),
                    black_box(Some(ip)),
                    black_box(now),
                );
                assert!(black_box(r).is_err());
            }),
        ),
        (
            "sign_for (1 h token)",
            time_calls(|| {
                black_box(auth.sign_for(
                    black_box(stream),
                    black_box(Duration::from_secs(3600)),
                    black_box(now),
                ));
            }),
        ),
        (
            "check_publish_key (right key)",
            time_calls(|| {
                assert!(black_box(
                    auth.check_publish_key(black_box(stream), black_box(&key))
                ));
            }),
        ),
    ];
    println!(
        "| what                           | median ns/call | min ns/call | calls/s per core (median) |"
    );
    println!(
        "|--------------------------------|---------------:|------------:|--------------------------:|"
    );
    for (label, ns) in &rows {
        let m = median(ns);
        let min = ns.iter().copied().fold(f64::INFINITY, f64::min);
        println!(
            "| {label:<30} | {m:>14.1} | {min:>11.1} | {:>25.0} |",
            1e9 / m
        );
    }
    println!(
        "rounds (ns/call): {}",
        rows.iter()
            .map(|(l, ns)| format!(
                "{l}: {}",
                ns.iter()
                    .map(|n| format!("{n:.1}"))
                    .collect::<Vec<_>>()
                    .join(" ")
            ))
            .collect::<Vec<_>>()
            .join("; ")
    );
    median(&rows[0].1)
}

// ---------------------------------------------------------------------------------------------------------
// 2. HTTP throughput.

type HttpClient = Client<HttpConnector, Empty<Bytes>>;

/// What the load generator saw in one window.
#[derive(Debug, Default, Clone)]
struct Load {
    /// 200 responses read completely within the window.
    ok: u64,
    /// Body bytes of those.
    bytes: u64,
    /// Responses with another status, within the window.
    bad_status: u64,
    /// Requests that failed (connection or body errors), within the window.
    failed: u64,
    /// The first error seen, for the printout.
    first_error: Option<String>,
    /// Length of the window.
    secs: f64,
}

impl Load {
    fn rps(&self) -> f64 {
        self.ok as f64 / self.secs
    }

    fn mbps(&self) -> f64 {
        self.bytes as f64 / self.secs / 1e6
    }

    fn merge(&mut self, other: Load) {
        self.ok += other.ok;
        self.bytes += other.bytes;
        self.bad_status += other.bad_status;
        self.failed += other.failed;
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
    }

    fn errors(&self) -> u64 {
        self.bad_status + self.failed
    }
}

/// One connection's loop: GET `url` until `deadline`; only responses read before it count.
async fn hammer(client: HttpClient, url: hyper::Uri, deadline: Instant) -> Load {
    let mut load = Load::default();
    while Instant::now() < deadline {
        let req = hyper::Request::get(url.clone())
            .body(Empty::<Bytes>::new())
            .expect("valid request");
        let result = match client.request(req).await {
            Ok(resp) => {
                let status = resp.status();
                match resp.into_body().collect().await {
                    Ok(body) => Ok((status, body.to_bytes().len())),
                    Err(e) => Err(format!("body: {e}")),
                }
            }
            Err(e) => Err(format!("request: {e}")),
        };
        if Instant::now() >= deadline {
            break;
        }
        match result {
            Ok((status, len)) if status == hyper::StatusCode::OK => {
                load.ok += 1;
                load.bytes += len as u64;
            }
            Ok((status, _)) => {
                load.bad_status += 1;
                load.first_error
                    .get_or_insert_with(|| format!("status {status}"));
            }
            Err(e) => {
                load.failed += 1;
                load.first_error.get_or_insert(e);
            }
        }
    }
    load
}

/// [`CONNECTIONS`] concurrent loops on `url` for `window`.
async fn run_load(client: &HttpClient, url: &str, window: Duration) -> anyhow::Result<Load> {
    let uri: hyper::Uri = url.parse().with_context(|| format!("url {url}"))?;
    let start = Instant::now();
    let deadline = start + window;
    let tasks: Vec<_> = (0..CONNECTIONS)
        .map(|_| tokio::spawn(hammer(client.clone(), uri.clone(), deadline)))
        .collect();
    let mut total = Load {
        secs: window.as_secs_f64(),
        ..Default::default()
    };
    for t in tasks {
        total.merge(t.await?);
    }
    Ok(total)
}

/// GET `url` once: status and body.
async fn get(client: &HttpClient, url: &str) -> anyhow::Result<(u16, Bytes)> {
    let req = hyper::Request::get(url).body(Empty::<Bytes>::new())?;
    let resp = client.request(req).await?;
    let status = resp.status().as_u16();
    Ok((status, resp.into_body().collect().await?.to_bytes()))
}

/// The media playlist's init segment URI (`EXT-X-MAP`) and its complete segments' URIs (`{msn}.m4s`:
/// parts are `{msn}.{part}.m4s`), oldest first.
fn playlist_objects(text: &str) -> (Option<String>, Vec<String>) {
    let init = text
        .lines()
        .find_map(|l| l.strip_prefix("#EXT-X-MAP:URI=\""))
        .and_then(|rest| rest.split('"').next())
        .map(str::to_owned);
    let segments = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#'))
        .filter(|l| {
            l.strip_suffix(".m4s")
                .is_some_and(|stem| !stem.is_empty() && stem.bytes().all(|b| b.is_ascii_digit()))
        })
        .map(str::to_owned)
        .collect();
    (init, segments)
}

/// Poll the playlist until it lists an init segment and at least `min_segments` complete segments.
async fn wait_for_segments(
    client: &HttpClient,
    playlist: &str,
    min_segments: usize,
    timeout: Duration,
) -> anyhow::Result<(String, Vec<String>)> {
    let start = Instant::now();
    loop {
        if let Ok((200, body)) = get(client, playlist).await {
            let (init, segments) = playlist_objects(&String::from_utf8_lossy(&body));
            if let Some(init) = init.filter(|_| segments.len() >= min_segments) {
                return Ok((init, segments));
            }
        }
        if start.elapsed() > timeout {
            bail!("{playlist}: fewer than {min_segments} complete segments after {timeout:?}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// One measured object: its file name, its URL without and with the token.
struct Target {
    label: String,
    off: String,
    on: String,
}

async fn http_throughput(verify_ns: f64) -> anyhow::Result<()> {
    let data_dir = tempfile::tempdir()?;
    let localhost = SocketAddr::from(([127, 0, 0, 1], 0));
    let args = ServeArgs {
        http_listen: Some(localhost),
        rtmp_listen: Some(localhost),
        srt_listen: Some(localhost),
        data_dir: Some(data_dir.path().to_owned()),
        ..Default::default()
    };
    let config = format!(
        "[transcode]\nenabled = false\n[auth]\nplayback = \"open\"\npublish = \"open\"\nsecret = \"{SECRET}\"\n"
    );
    let file: FileConfig = toml::from_str(&config)?;
    let server = Server::start(Settings::resolve(&args, file)?).await?;
    let result = measure_http(&server, verify_ns).await;
    server.shutdown().await;
    result
}

async fn measure_http(server: &Server, verify_ns: f64) -> anyhow::Result<()> {
    let http = server.http_addr;
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    let client: HttpClient = Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(CONNECTIONS * 2)
        .build(connector);

    println!(
        "\n## 2. HTTP throughput, token checked (on) vs not (off): {CONNECTIONS} keep-alive HTTP/1.1 connections, \
         {HTTP_ROUNDS} rounds x {} s per side, interleaved",
        WINDOW.as_secs()
    );
    let _publisher = testkit::ffmpeg::publish_loop(
        Path::new("ffmpeg"),
        &testkit::repo().join(FIXTURE),
        &format!("rtmp://{}/{STREAM}", server.rtmp_addr),
    );
    let started = Instant::now();
    let base = format!("http://{http}/{STREAM}/source");
    let playlist = format!("{base}/media.m3u8");
    let (init, segments) =
        wait_for_segments(&client, &playlist, 2, Duration::from_secs(30)).await?;
    println!(
        "publishing {FIXTURE} with ffmpeg -re -stream_loop -1 -c copy to rtmp://{}/{STREAM}; playlist had {} \
         complete segments after {:.1} s",
        server.rtmp_addr,
        segments.len(),
        started.elapsed().as_secs_f64()
    );
    let token = server
        .auth
        .sign_for(STREAM, Duration::from_secs(3600), unix_now_s());
    let token_base = format!("http://{http}/t/{token}/{STREAM}/source");
    // Both forms must answer 200 with the same bytes before anything is timed.
    let (s_off, b_off) = get(&client, &format!("{base}/{init}")).await?;
    let (s_on, b_on) = get(&client, &format!("{token_base}/{init}")).await?;
    if s_off != 200 || s_on != 200 || b_off != b_on {
        bail!(
            "init segment: off {s_off} ({} B), on {s_on} ({} B)",
            b_off.len(),
            b_on.len()
        );
    }
    println!(
        "objects: init segment `source/{init}` ({} B); segment: the newest complete `source/{{msn}}.m4s` at each \
         round's start; token {} B",
        b_off.len(),
        token.len()
    );
    println!(
        "caveat: the client (32 connections), the server, the packager and ffmpeg all share the same {} cores: \
         absolute numbers are lower bounds; compare on with off",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );

    // Results per object: (label, off loads, on loads), one load per round.
    let mut results: Vec<(String, Vec<Load>, Vec<Load>)> = Vec::new();
    for object in ["init", "segment"] {
        let mut offs = Vec::new();
        let mut ons = Vec::new();
        for round in 0..HTTP_ROUNDS {
            let target = if object == "init" {
                Target {
                    label: init.clone(),
                    off: format!("{base}/{init}"),
                    on: format!("{token_base}/{init}"),
                }
            } else {
                let (_, segments) =
                    wait_for_segments(&client, &playlist, 2, Duration::from_secs(10)).await?;
                let seg = segments.last().expect("at least 2").clone();
                Target {
                    label: seg.clone(),
                    off: format!("{base}/{seg}"),
                    on: format!("{token_base}/{seg}"),
                }
            };
            let (status, body) = get(&client, &target.off).await?;
            if status != 200 {
                bail!("{}: status {status}", target.off);
            }
            if round == 0 {
                run_load(&client, &target.off, WARM_UP).await?;
                run_load(&client, &target.on, WARM_UP).await?;
            }
            // Alternate which side goes first, so a drift in machine load hits both alike.
            let on_first = round % 2 == 1;
            let run_side = async |on: bool| {
                run_load(&client, if on { &target.on } else { &target.off }, WINDOW).await
            };
            let (off, on) = if on_first {
                let on = run_side(true).await?;
                (run_side(false).await?, on)
            } else {
                let off = run_side(false).await?;
                (off, run_side(true).await?)
            };
            println!(
                "  {} round {}: {} ({} B), {}: off {:>8.0} req/s {:>8.1} MB/s ({} errors) | on {:>8.0} req/s {:>8.1} MB/s \
                 ({} errors) | on/off {:.3}",
                object,
                round + 1,
                target.label,
                body.len(),
                if on_first { "on first" } else { "off first" },
                off.rps(),
                off.mbps(),
                off.errors(),
                on.rps(),
                on.mbps(),
                on.errors(),
                on.rps() / off.rps()
            );
            for (side, l) in [("off", &off), ("on", &on)] {
                if l.errors() > 0 {
                    println!(
                        "    ERRORS ({side}): {} non-200, {} failed requests; first: {}",
                        l.bad_status,
                        l.failed,
                        l.first_error.as_deref().unwrap_or("?")
                    );
                }
            }
            offs.push(off);
            ons.push(on);
        }
        results.push((object.to_owned(), offs, ons));
    }

    println!();
    println!(
        "| object  | off req/s (median) | on req/s (median) | off MB/s | on MB/s | on/off req/s (median of rounds) | errors off/on |"
    );
    println!(
        "|---------|-------------------:|------------------:|---------:|--------:|--------------------------------:|--------------:|"
    );
    for (label, offs, ons) in &results {
        let med =
            |loads: &[Load], f: fn(&Load) -> f64| median(&loads.iter().map(f).collect::<Vec<_>>());
        let ratios: Vec<f64> = offs
            .iter()
            .zip(ons)
            .map(|(a, b)| b.rps() / a.rps())
            .collect();
        println!(
            "| {label:<7} | {:>18.0} | {:>17.0} | {:>8.1} | {:>7.1} | {:>31.3} | {:>6}/{:<6} |",
            med(offs, Load::rps),
            med(ons, Load::rps),
            med(offs, Load::mbps),
            med(ons, Load::mbps),
            median(&ratios),
            offs.iter().map(Load::errors).sum::<u64>(),
            ons.iter().map(Load::errors).sum::<u64>()
        );
    }
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    for (label, offs, _) in &results {
        let us_per_request = cores * 1e6 / median(&offs.iter().map(Load::rps).collect::<Vec<_>>());
        println!(
            "for scale, {label}: {cores} cores / median off req/s = {us_per_request:.1} us of machine time per request \
             (client + server + ffmpeg); one verify (part 1, median) = {:.2} us = {:.1} % of that",
            verify_ns / 1e3,
            verify_ns / 1e3 / us_per_request * 100.0
        );
    }
    Ok(())
}
