//! Many origins as one service, measured: `redis-server`, three `estuary serve` nodes (A, B, C) and,
//! for the topology, Debian's nginx as the CDN edge with `docs/nginx-cdn.conf` and all three nodes as
//! upstreams — real processes on loopback. Nodes: playback tokens, the edge trusted
//! (`trusted_edge_secret`), passthrough packaging (C transcodes in `placement`), 500 ms parts, a
//! 5 s lease and 1 s heartbeats. Sections (all by default, or those named on the command line):
//!
//! - `topology`: FFmpeg publishes `live/rtmp` to A over RTMP and `live/srt` to C over SRT (the
//!   camera clip, looped, `-c copy`); hls.js and dash.js (headless Chromium) play both from B (which
//!   owns neither: every request proxied) and through the edge; FFmpeg decodes both from B; a second
//!   publisher for `live/rtmp` on B is refused while A's stream goes on.
//! - `proxy`: the same blocking-reload follower (every part fetched) on the owner A and on B, in the
//!   same run for 30 s: per part, when B's follower got the playlist listing it minus when A's did
//!   (p50, p99); then cached parts (every complete part listed) by 32 keep-alive clients for 5 s,
//!   direct on A vs proxied through B, alternating twice: requests/s and the ratio.
//! - `failover`: 20 hls.js-like players (10 on B, 10 on C, fetching every part, segment and init
//!   segment) follow `live/rtmp` on A; A is killed with SIGKILL; the publisher retries on B every
//!   second until accepted (as OBS reconnects). Reported: seconds from the kill to the first new part
//!   served to a player, the media sequence numbers before and after and the discontinuity sequence,
//!   and the answers by status for objects a player had been shown (404s must be 0).
//! - `placement`: C transcodes one 720p stream with the default ladder (the loaded node); 12
//!   publishes are placed one after another through `GET /api/ingest/live/{name}` on B and published
//!   (FFmpeg, `-c copy`) where placement said: where each went, and each node's load.
//!   Then A drains: placement avoids it, a direct publish to it is refused, its streams end when their
//!   publishers leave, then it reports drained (and after how long).
//! - `redis`: 4 waiters on the owner A and 4 on B (proxied) follow `live/rtmp`; Redis is killed for
//!   10 s and restarted empty: parts delivered during the outage on each side, a new publish during
//!   the outage (refused) and after it (accepted after how long).
//!
//! Usage: `cargo bench --bench cluster -- [topology] [proxy] [failover] [placement] [redis]`.

use std::{
    collections::HashMap,
    net::SocketAddr,
    path::Path,
    sync::{Arc, Mutex, atomic::Ordering},
    time::{Duration, Instant},
};

use testkit::{
    ffmpeg::{ffmpeg_decode, publish_loop, publish_srt_loop, srt_url},
    http::{Fetched, get, request_with, wait_for_200},
    load::{Kind, Mode, Object, PlayerOptions, Record, Role, Sink, Tally, Viewer, hammer},
    nginx::Nginx,
    players::{play_dash, play_hls},
    process::{Estuary, EstuaryCommand, Proc},
    redis::Redis,
};

const SECRET: &str = "cluster bench secret, at least 32 bytes long";
const EDGE: &str = "cluster bench edge secret";
const API_TOKEN: &str = "cluster-bench-api-token";
const CLIP: &str = "camera-bikes-272p-h264-10s.mp4";

fn auth() -> estuary::auth::Auth {
    estuary::auth::Auth::with_secret(&Default::default(), SECRET.as_bytes())
}

/// `/t/{token}/{stream}/` (a one-hour token).
fn prefix(stream: &str) -> String {
    let token = auth().sign_for(
        stream,
        Duration::from_secs(3600),
        estuary::auth::unix_now_s(),
    );
    format!("/t/{token}/{stream}/")
}

fn node(redis: &Redis, id: &str, extra: &str) -> Estuary {
    let transcode = if extra.contains("[transcode]") {
        ""
    } else {
        "[transcode]\nenabled = false\n"
    };
    Estuary::spawn(EstuaryCommand::bench(
        env!("CARGO_BIN_EXE_estuary"),
        &format!(
            "[cluster]\nenabled = true\nredis_url = \"{}\"\nnode_id = \"{id}\"\nlease = \"5s\"\nheartbeat = \"1s\"\n\
             [auth]\nplayback = \"token\"\npublish = \"open\"\nsecret = \"{SECRET}\"\ntrusted_edge_secret = \"{EDGE}\"\n\
             [api]\ntoken = \"{API_TOKEN}\"\n[packager]\npart_target = \"500ms\"\n\
             [streams]\nmax_waiters_per_stream = 100000\n{transcode}{extra}",
            redis.url()
        ),
    ))
}

/// Redis and nodes A, B, C (`c_extra` added to C's configuration).
fn cluster(c_extra: &str) -> (Redis, Vec<Estuary>) {
    let redis = Redis::start();
    let nodes = vec![
        node(&redis, "node-a", ""),
        node(&redis, "node-b", ""),
        node(&redis, "node-c", c_extra),
    ];
    (redis, nodes)
}

async fn api(addr: SocketAddr, method: &str, path: &str) -> (u16, serde_json::Value) {
    let r = request_with(
        method,
        &format!("http://{addr}{path}"),
        &[("authorization", &format!("Bearer {API_TOKEN}"))],
        None,
    )
    .await;
    (
        r.status.as_u16(),
        serde_json::from_slice(&r.body).unwrap_or(serde_json::Value::Null),
    )
}

fn clip() -> std::path::PathBuf {
    testkit::fixture(CLIP)
}

fn publish_rtmp(addr: SocketAddr, stream: &str) -> Proc {
    publish_loop(
        Path::new("ffmpeg"),
        &clip(),
        &format!("rtmp://{addr}/{stream}"),
    )
}

/// Wait until `node` serves `stream`'s video media playlist.
async fn wait_live(node: SocketAddr, stream: &str) -> Fetched {
    let url = format!("http://{node}{}source/media.m3u8", prefix(stream));
    wait_for_200(&url, Duration::from_secs(30))
        .await
        .unwrap_or_else(|| panic!("{stream} is not served on {node}"))
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

/// The newest part listed in a media playlist: (msn, part index).
fn newest_part(text: &str) -> Option<(u64, usize)> {
    let mut msn: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("#EXT-X-MEDIA-SEQUENCE:"))?
        .trim()
        .parse()
        .ok()?;
    let mut newest = None;
    let mut part = 0;
    for line in text.lines() {
        if line.starts_with("#EXT-X-PART:") {
            newest = Some((msn, part));
            part += 1;
        } else if line.starts_with("#EXTINF:") {
            msn += 1;
            part = 0;
        }
    }
    newest
}

fn discontinuity_sequence(text: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix("#EXT-X-DISCONTINUITY-SEQUENCE:"))
        .map_or(0, |v| v.trim().parse().unwrap_or(0))
}

async fn topology() {
    println!("== topology: redis, nodes A B C, nginx edge with A, B, C as upstreams");
    let (_redis, nodes) = testkit::blocking(|| cluster("")).await;
    let (a, b, c) = (&nodes[0], &nodes[1], &nodes[2]);
    let dir = std::env::temp_dir().join(format!("estuary-cluster-edge-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("cache")).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir.join("cache"), std::fs::Permissions::from_mode(0o777))
            .unwrap();
    }
    let example = std::fs::read_to_string(testkit::repo().join("docs/nginx-cdn.conf")).unwrap();
    let upstreams = format!(
        "server {};\n    server {};\n    server {};",
        a.http_addr, b.http_addr, c.http_addr
    );
    let edge_conf = example
        .replace("server @ORIGIN@;", &upstreams)
        .replace("@EDGE_SECRET@", EDGE)
        .replace("@CACHE_DIR@", &dir.join("cache").display().to_string());
    let edge = testkit::blocking({
        let dir = dir.clone();
        move || Nginx::start(&dir, 1, &edge_conf)
    })
    .await;
    let _rtmp = publish_rtmp(a.rtmp_addr, "live/rtmp");
    let _srt = publish_srt_loop(
        &clip(),
        &srt_url(c.srt_addr, "#!::r=live/srt,m=publish", ""),
    );
    wait_live(a.http_addr, "live/rtmp").await;
    wait_live(c.http_addr, "live/srt").await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    let mut rows = Vec::new();
    for stream in ["live/rtmp", "live/srt"] {
        for (place, addr) in [("node B", b.http_addr), ("edge", edge.addr)] {
            let base = format!("http://{addr}{}", prefix(stream));
            let hls = testkit::blocking({
                let url = format!("{base}index.m3u8");
                move || play_hls(&url, 8)
            })
            .await;
            let dash = testkit::blocking({
                let url = format!("{base}manifest.mpd");
                move || play_dash("dashjs", &url, 8, &[])
            })
            .await;
            rows.push(format!(
                "{stream:<10} {place:<7} hls.js ok={} played {:.1} s stalls {} | dash.js ok={} played {:.1} s stalls {}",
                hls["ok"],
                hls["played_seconds"].as_f64().unwrap_or(0.0),
                hls["stalls"],
                dash["ok"],
                dash["played_seconds"].as_f64().unwrap_or(0.0),
                dash["stalls"],
            ));
        }
        let out = ffmpeg_decode(
            &format!("http://{}{}index.m3u8", b.http_addr, prefix(stream)),
            Some(5),
        )
        .await;
        rows.push(format!(
            "{stream:<10} node B  ffmpeg decode 5 s: {} {}",
            if out.status.success() { "ok" } else { "FAILED" },
            String::from_utf8_lossy(&out.stderr)
                .lines()
                .next()
                .unwrap_or("")
        ));
    }
    for r in rows {
        println!("  {r}");
    }
    // A second publisher for A's stream, on B: refused; A's stream goes on.
    let before = newest_part(&wait_live(a.http_addr, "live/rtmp").await.text());
    let mut second = publish_rtmp(b.rtmp_addr, "live/rtmp");
    let t = Instant::now();
    let refused = loop {
        if let Ok(Some(_)) = second.0.try_wait() {
            break true;
        }
        if t.elapsed() > Duration::from_secs(10) {
            break false;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    second.kill();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after = newest_part(&wait_live(a.http_addr, "live/rtmp").await.text());
    println!(
        "  second publisher of live/rtmp on node B: {} after {:.1} s; A's stream went on: {} ({before:?} -> {after:?})",
        if refused { "refused" } else { "NOT refused" },
        t.elapsed().as_secs_f64(),
        after > before
    );
    let _ = std::fs::remove_dir_all(&dir);
}

async fn proxy_cost() {
    println!("== proxy cost: the same follower on the owner (A) and through node B");
    let (_redis, nodes) = testkit::blocking(|| cluster("")).await;
    let (a, b) = (&nodes[0], &nodes[1]);
    let _publisher = publish_rtmp(a.rtmp_addr, "live/rtmp");
    wait_live(a.http_addr, "live/rtmp").await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let playlist = format!("{}source/media.m3u8", prefix("live/rtmp"));
    let until = Instant::now() + Duration::from_secs(30);
    let tallies = [Arc::new(Tally::default()), Arc::new(Tally::default())];
    let mut tasks = Vec::new();
    for (i, addr) in [a.http_addr, b.http_addr].into_iter().enumerate() {
        let viewer = Viewer {
            name: format!("follower{i}"),
            addr,
            url: playlist.clone(),
            mode: Mode::Waiter {
                fetch_parts: true,
                wait_for_stream: false,
            },
            until,
        };
        let tally = tallies[i].clone();
        tasks.push(tokio::spawn(
            async move { viewer.run(tally.as_ref()).await },
        ));
    }
    for t in tasks {
        let _ = t.await;
    }
    let received = |t: &Tally| -> HashMap<(u64, usize), Instant> {
        t.receipts
            .lock()
            .unwrap()
            .iter()
            .map(|r| ((r.msn, r.part), r.received))
            .collect()
    };
    let (direct, proxied) = (received(&tallies[0]), received(&tallies[1]));
    let mut added: Vec<f64> = direct
        .iter()
        .filter_map(|(k, at)| {
            let p = proxied.get(k)?;
            Some(if p >= at {
                p.duration_since(*at).as_secs_f64() * 1000.0
            } else {
                -(at.duration_since(*p).as_secs_f64() * 1000.0)
            })
        })
        .collect();
    added.sort_by(f64::total_cmp);
    println!(
        "  blocking reload per part, proxied minus direct over {} parts: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms (errors direct {}, proxied {})",
        added.len(),
        percentile(&added, 0.5),
        percentile(&added, 0.99),
        added.last().copied().unwrap_or(f64::NAN),
        tallies[0].errors.load(Ordering::Relaxed),
        tallies[1].errors.load(Ordering::Relaxed),
    );
    // Cached parts: every complete part listed, direct vs proxied.
    let text = get(&format!("http://{}{playlist}", a.http_addr))
        .await
        .text();
    let dir = format!("{}source/", prefix("live/rtmp"));
    let mut objects = Vec::new();
    for line in text.lines() {
        if let Some(attrs) = line.strip_prefix("#EXT-X-PART:")
            && let Some(uri) = testkit::checks::attr(attrs, "URI")
        {
            let path = format!("{dir}{uri}");
            let body = get(&format!("http://{}{path}", a.http_addr)).await;
            objects.push(Object {
                path,
                len: body.body.len(),
            });
        }
    }
    let objects = Arc::new(objects);
    let mut rounds: [Vec<f64>; 2] = [Vec::new(), Vec::new()];
    let mut errors = [0u64; 2];
    for _ in 0..2 {
        for (i, addr) in [a.http_addr, b.http_addr].into_iter().enumerate() {
            let r = hammer(addr, objects.clone(), 32, 5).await;
            rounds[i].push(r.requests as f64 / r.seconds);
            errors[i] += r.errors;
        }
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    println!(
        "  cached parts ({} objects), 32 clients x 5 s, 2 rounds each: direct {:.0} req/s, proxied {:.0} req/s, proxied/direct {:.2} (errors {} / {})",
        objects.len(),
        mean(&rounds[0]),
        mean(&rounds[1]),
        mean(&rounds[1]) / mean(&rounds[0]),
        errors[0],
        errors[1],
    );
}

/// A playlist a player received: when, its newest part (msn, part index), its discontinuity sequence.
type Seen = (Instant, (u64, usize), u64);

/// Counts what players got, and when each newest part first reached one of them.
#[derive(Default)]
struct FailoverSink {
    /// (kind, status) → answers.
    answers: Mutex<HashMap<(&'static str, u16), u64>>,
    /// (when, newest part, discontinuity sequence) of every playlist received.
    playlists: Mutex<Vec<Seen>>,
}

impl Sink for FailoverSink {
    fn record(&self, r: &Record<'_>) {
        let shown = matches!(r.kind, Kind::Part | Kind::Segment | Kind::Init | Kind::Key);
        let kind = if shown {
            "listed object"
        } else {
            r.kind.as_str()
        };
        *self
            .answers
            .lock()
            .unwrap()
            .entry((kind, r.status))
            .or_default() += 1;
    }

    fn latest(&self, _name: &str, at: Instant, text: &str) {
        if let Some(newest) = newest_part(text) {
            self.playlists
                .lock()
                .unwrap()
                .push((at, newest, discontinuity_sequence(text)));
        }
    }
}

async fn failover() {
    println!("== failover: SIGKILL of the owner with 20 players on the other nodes");
    let (_redis, mut nodes) = testkit::blocking(|| cluster("")).await;
    let mut publisher = publish_rtmp(nodes[0].rtmp_addr, "live/rtmp");
    wait_live(nodes[0].http_addr, "live/rtmp").await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let sink = Arc::new(FailoverSink::default());
    let until = Instant::now() + Duration::from_secs(45);
    let mut tasks = Vec::new();
    for i in 0..20 {
        let addr = nodes[1 + i % 2].http_addr;
        let viewer = Viewer {
            name: format!("player{i}"),
            addr,
            url: format!("{}index.m3u8", prefix("live/rtmp")),
            mode: Mode::Player(PlayerOptions {
                role: Role::Video,
                variant: 0,
                delta_updates: false,
                fetch_hint: false,
                switch_every: None,
            }),
            until,
        };
        let sink = sink.clone();
        tasks.push(tokio::spawn(async move { viewer.run(sink.as_ref()).await }));
    }
    tokio::time::sleep(Duration::from_secs(10)).await;
    let killed_at = Instant::now();
    nodes[0].kill_now();
    publisher.kill();
    let last_before = sink
        .playlists
        .lock()
        .unwrap()
        .iter()
        .map(|p| p.1)
        .max()
        .unwrap();
    let disc_before = sink
        .playlists
        .lock()
        .unwrap()
        .iter()
        .map(|p| p.2)
        .max()
        .unwrap();
    // The publisher reconnects to B every second until accepted.
    let b_rtmp = nodes[1].rtmp_addr;
    let mut accepted_at = None;
    let mut republisher = publish_rtmp(b_rtmp, "live/rtmp");
    while killed_at.elapsed() < Duration::from_secs(30) {
        tokio::time::sleep(Duration::from_millis(1000)).await;
        if let Ok(Some(_)) = republisher.0.try_wait() {
            republisher = publish_rtmp(b_rtmp, "live/rtmp");
        } else {
            accepted_at.get_or_insert(Instant::now());
            break;
        }
    }
    for t in tasks {
        let _ = t.await;
    }
    republisher.kill();
    let playlists = sink.playlists.lock().unwrap().clone();
    let first_new = playlists
        .iter()
        .filter(|p| p.0 > killed_at && p.1 > last_before)
        .min_by_key(|p| p.0);
    match first_new {
        Some((at, newest, disc)) => println!(
            "  kill -> first new part served to a player: {:.1} s (publish accepted on B after {:.1} s); newest part before {:?}, first after {:?} (msn up: {}); discontinuity sequence {} -> {}",
            at.duration_since(killed_at).as_secs_f64(),
            accepted_at.map_or(f64::NAN, |t| t.duration_since(killed_at).as_secs_f64()),
            last_before,
            newest,
            newest.0 > last_before.0,
            disc_before,
            disc,
        ),
        None => println!("  NO new part reached a player after the kill"),
    }
    let answers = sink.answers.lock().unwrap();
    let mut keys: Vec<_> = answers.keys().collect();
    keys.sort();
    let listed_404 = answers.get(&("listed object", 404)).copied().unwrap_or(0);
    println!("  404s for objects a player had been shown: {listed_404}");
    for k in keys {
        println!("    {:<16} {} x{}", k.0, k.1, answers[k]);
    }
}

async fn placement() {
    println!(
        "== placement: 12 publishes through GET /api/ingest on node B; node C transcodes a 720p stream"
    );
    let (_redis, nodes) = testkit::blocking(|| cluster("[transcode]\nenabled = true\n")).await;
    let (a, b, c) = (&nodes[0], &nodes[1], &nodes[2]);
    let _load = publish_loop(
        Path::new("ffmpeg"),
        &testkit::fixture("bbb-720p-2s-gop.mp4"),
        &format!("rtmp://{}/live/loaded", c.rtmp_addr),
    );
    wait_live(c.http_addr, "live/loaded").await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    let show_load = |v: &serde_json::Value| -> String {
        v["nodes"]
            .as_array()
            .map(|nodes| {
                nodes
                    .iter()
                    .map(|n| {
                        format!(
                            "{} {} cpu {:.2} streams {}",
                            n["node_id"].as_str().unwrap_or("?"),
                            n["state"].as_str().unwrap_or("?"),
                            n["load"]["cpu_busy"].as_f64().unwrap_or(f64::NAN),
                            n["load"]["publishing"]
                        )
                    })
                    .collect::<Vec<_>>()
                    .join(" | ")
            })
            .unwrap_or_default()
    };
    println!(
        "  before: {}",
        show_load(&api(b.http_addr, "GET", "/api/cluster").await.1)
    );
    let mut publishers = Vec::new();
    let mut placed: HashMap<String, Vec<String>> = HashMap::new();
    let rtmp_of = |id: &str| match id {
        "node-a" => a.rtmp_addr,
        "node-b" => b.rtmp_addr,
        _ => c.rtmp_addr,
    };
    for i in 0..12 {
        let stream = format!("live/p{i:02}");
        let (status, answer) = api(b.http_addr, "GET", &format!("/api/ingest/{stream}")).await;
        assert_eq!(status, 200, "{answer}");
        let id = answer["node"].as_str().unwrap().to_owned();
        assert!(answer["rtmp"].as_str().unwrap().contains("?key="));
        publishers.push(publish_rtmp(rtmp_of(&id), &stream));
        placed.entry(id).or_default().push(stream);
        tokio::time::sleep(Duration::from_millis(700)).await;
    }
    let mut ids: Vec<_> = placed.keys().cloned().collect();
    ids.sort();
    for id in ids {
        println!(
            "  {id}: {} publishes ({})",
            placed[&id].len(),
            placed[&id].join(" ")
        );
    }
    tokio::time::sleep(Duration::from_secs(4)).await;
    let view = api(b.http_addr, "GET", "/api/cluster").await.1;
    println!("  after: {}", show_load(&view));
    // Drain A: placement avoids it, a direct publish is refused, its streams end, then it is drained.
    let (_, drain) = api(a.http_addr, "POST", "/api/node/drain").await;
    println!("  POST /api/node/drain on A: {drain}");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut avoided = true;
    for i in 0..6 {
        let (_, answer) = api(b.http_addr, "GET", &format!("/api/ingest/live/d{i}")).await;
        avoided &= answer["node"] != "node-a";
    }
    let mut direct = publish_rtmp(a.rtmp_addr, "live/direct");
    tokio::time::sleep(Duration::from_secs(3)).await;
    let direct_refused = matches!(direct.0.try_wait(), Ok(Some(_)));
    direct.kill();
    let ready = get(&format!("http://{}/readyz", a.http_addr)).await;
    println!(
        "  draining: placement avoided A in 6 of 6: {avoided}; direct publish to A refused: {direct_refused}; /readyz {} {}",
        ready.status,
        ready.text().trim()
    );
    let on_a = placed.get("node-a").cloned().unwrap_or_default();
    let left = Instant::now();
    for (i, p) in publishers.iter_mut().enumerate() {
        if on_a.contains(&format!("live/p{i:02}")) {
            p.kill();
        }
    }
    let drained = loop {
        let r = get(&format!("http://{}/readyz", a.http_addr)).await;
        if r.text().trim() == "drained" {
            break Some(left.elapsed());
        }
        if left.elapsed() > Duration::from_secs(60) {
            break None;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    println!(
        "  A's {} publishers left; A reported drained after {:?} (reconnect grace 10 s); registry: {}",
        on_a.len(),
        drained,
        show_load(&api(b.http_addr, "GET", "/api/cluster").await.1)
    );
    for mut p in publishers {
        p.kill();
    }
}

async fn redis_restart() {
    println!("== redis killed for 10 s and restarted empty");
    let (mut redis, nodes) = testkit::blocking(|| cluster("")).await;
    let (a, b) = (&nodes[0], &nodes[1]);
    let _publisher = publish_rtmp(a.rtmp_addr, "live/rtmp");
    wait_live(a.http_addr, "live/rtmp").await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let until = Instant::now() + Duration::from_secs(28);
    let tallies = [Arc::new(Tally::default()), Arc::new(Tally::default())];
    let mut tasks = Vec::new();
    for i in 0..8 {
        let side = i % 2;
        let viewer = Viewer {
            name: format!("waiter{i}"),
            addr: [a.http_addr, b.http_addr][side],
            url: format!("{}source/media.m3u8", prefix("live/rtmp")),
            mode: Mode::Waiter {
                fetch_parts: true,
                wait_for_stream: false,
            },
            until,
        };
        let tally = tallies[side].clone();
        tasks.push(tokio::spawn(
            async move { viewer.run(tally.as_ref()).await },
        ));
    }
    tokio::time::sleep(Duration::from_secs(6)).await;
    let port = redis.addr.port();
    let parts_before = [0, 1].map(|i| tallies[i].receipts.lock().unwrap().len());
    redis.kill();
    let killed = Instant::now();
    let mut during = publish_rtmp(b.rtmp_addr, "live/during");
    tokio::time::sleep(Duration::from_secs(5)).await;
    let refused = matches!(during.0.try_wait(), Ok(Some(_)));
    during.kill();
    tokio::time::sleep(Duration::from_secs(10) - killed.elapsed().min(Duration::from_secs(10)))
        .await;
    let parts_during = [0, 1].map(|i| tallies[i].receipts.lock().unwrap().len() - parts_before[i]);
    let _redis = testkit::blocking(move || Redis::start_on(port)).await;
    let back = Instant::now();
    let accepted_after = loop {
        let mut p = publish_rtmp(b.rtmp_addr, "live/after");
        tokio::time::sleep(Duration::from_millis(1500)).await;
        if !matches!(p.0.try_wait(), Ok(Some(_))) {
            let url = format!(
                "http://{}{}source/media.m3u8",
                b.http_addr,
                prefix("live/after")
            );
            let ok = wait_for_200(&url, Duration::from_secs(20)).await.is_some();
            p.kill();
            break ok.then(|| back.elapsed());
        }
        if back.elapsed() > Duration::from_secs(30) {
            break None;
        }
    };
    for t in tasks {
        let _ = t.await;
    }
    println!(
        "  blocking reloads answered during the 10 s outage: on the owner A {} (4 waiters), through B {} (4 waiters); errors A {}, B {}",
        parts_during[0],
        parts_during[1],
        tallies[0].errors.load(Ordering::Relaxed),
        tallies[1].errors.load(Ordering::Relaxed),
    );
    println!(
        "  new publish during the outage refused: {refused}; after Redis returned: accepted and served after {accepted_after:?}"
    );
}

fn main() {
    let _ = rlimit::increase_nofile_limit(u64::MAX);
    let mut sections: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    if sections.is_empty() {
        sections = ["topology", "proxy", "failover", "placement", "redis"]
            .map(String::from)
            .to_vec();
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    for s in sections {
        runtime.block_on(async {
            match s.as_str() {
                "topology" => topology().await,
                "proxy" => proxy_cost().await,
                "failover" => failover().await,
                "placement" => placement().await,
                "redis" => redis_restart().await,
                other => println!("unknown section {other}"),
            }
        });
    }
}
