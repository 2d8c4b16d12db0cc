//! The origin behind a CDN: Debian's nginx, configured with `docs/nginx-cdn.conf` (the example in docs/access-control-and-cdns.md),
//! in front of an origin with token playback and a trusted edge. 50 LL-HLS clients, each with its own
//! token, follow blocking playlist reloads and fetch every new part through nginx; a few more do the
//! same directly against the origin for comparison. Reported: origin requests per distinct object
//! (from nginx's upstream log), and the clients' part latency: from the part's publication (the first
//! moment a direct client's blocking reload listed it; the origin answers those the moment the part
//! exists) to the client holding the part.
use std::{
    collections::{BTreeMap, HashMap, HashSet},
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use crate::common::*;
use bytes::Bytes;
use estuary::auth::{TokenClaims, unix_now_s};
use http_body_util::{BodyExt, Empty};
use hyper::StatusCode;
use testkit::nginx::Nginx;

const EDGE: &str = "cdn-edge-secret-for-the-test-0123";
const CDN_CLIENTS: usize = 50;
const DIRECT_CLIENTS: usize = 5;
const RUN: Duration = Duration::from_secs(24);

fn now_ms() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
        * 1000.0
}

/// What an LL-HLS client reads from a media playlist: each listed part's end on the
/// EXT-X-PROGRAM-DATE-TIME clock (Unix ms), and the preload hint.
struct LivePlaylist {
    part_ends: Vec<((u64, u64), f64)>,
    hint: Option<(u64, u64)>,
}

fn part_id(uri: &str) -> Option<(u64, u64)> {
    let stem = uri.strip_suffix(".m4s")?;
    let (m, p) = stem.split_once('.')?;
    Some((m.parse().ok()?, p.parse().ok()?))
}

fn quoted(line: &str, key: &str) -> Option<String> {
    let start = line.find(&format!("{key}=\""))? + key.len() + 2;
    Some(line[start..].split('"').next()?.to_owned())
}

fn parse_live(text: &str) -> LivePlaylist {
    let mut clock: Option<f64> = None;
    let mut in_segment = 0.0;
    let mut part_ends = Vec::new();
    let mut hint = None;
    for line in text.lines() {
        if let Some(v) = line.strip_prefix("#EXT-X-PROGRAM-DATE-TIME:") {
            let t = chrono::DateTime::parse_from_rfc3339(v).expect("PDT parses");
            clock = Some(t.timestamp_millis() as f64);
            in_segment = 0.0;
        } else if let Some(attrs) = line.strip_prefix("#EXT-X-PART:") {
            let d: f64 = attrs
                .split(',')
                .find_map(|a| a.strip_prefix("DURATION="))
                .and_then(|d| d.parse().ok())
                .expect("part duration");
            in_segment += d * 1000.0;
            if let (Some(c), Some(id)) = (clock, quoted(attrs, "URI").as_deref().and_then(part_id))
            {
                part_ends.push((id, c + in_segment));
            }
        } else if let Some(v) = line.strip_prefix("#EXTINF:") {
            let d: f64 = v.trim_end_matches(',').parse().expect("EXTINF");
            clock = clock.map(|c| c + d * 1000.0);
            in_segment = 0.0;
        } else if let Some(attrs) = line.strip_prefix("#EXT-X-PRELOAD-HINT:") {
            hint = quoted(attrs, "URI").as_deref().and_then(part_id);
        }
    }
    LivePlaylist { part_ends, hint }
}

#[derive(Default)]
struct ClientStats {
    /// Per part fetched: (part, when the playlist listing it arrived, when the part arrived), Unix ms.
    samples: Vec<((u64, u64), f64, f64)>,
    /// Time to the first (non-blocking) playlist, ms.
    startup_ms: f64,
    errors: Vec<String>,
}

type HttpClient = hyper_util::client::legacy::Client<
    hyper_util::client::legacy::connect::HttpConnector,
    Empty<Bytes>,
>;

async fn get_with(client: &HttpClient, url: &str) -> Result<(StatusCode, Bytes), String> {
    let req = hyper::Request::get(url).body(Empty::new()).unwrap();
    let resp = tokio::time::timeout(Duration::from_secs(20), client.request(req))
        .await
        .map_err(|_| format!("timeout: {url}"))?
        .map_err(|e| format!("{e}: {url}"))?;
    let status = resp.status();
    let body = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    Ok((status, body))
}

/// One LL-HLS client: blocking reload for the hinted part, then every part it has not fetched yet.
async fn ll_hls_client(base: String, until: Instant, stats: Arc<Mutex<ClientStats>>) {
    use hyper_util::{client::legacy::Client, rt::TokioExecutor};
    let client: HttpClient = Client::builder(TokioExecutor::new()).build_http();
    let playlist = format!("{base}source/media.m3u8");
    let started = Instant::now();
    let first = get_with(&client, &playlist).await;
    stats.lock().unwrap().startup_ms = started.elapsed().as_secs_f64() * 1000.0;
    let mut next = match first {
        Ok((StatusCode::OK, body)) => parse_live(&String::from_utf8_lossy(&body)).hint,
        other => {
            stats
                .lock()
                .unwrap()
                .errors
                .push(format!("first playlist: {other:?}"));
            return;
        }
    };
    let mut fetched: HashSet<(u64, u64)> = HashSet::new();
    while Instant::now() < until {
        let Some((m, p)) = next else {
            stats.lock().unwrap().errors.push("no preload hint".into());
            return;
        };
        let url = format!("{playlist}?_HLS_msn={m}&_HLS_part={p}");
        let pl = match get_with(&client, &url).await {
            Ok((StatusCode::OK, body)) => parse_live(&String::from_utf8_lossy(&body)),
            other => {
                stats
                    .lock()
                    .unwrap()
                    .errors
                    .push(format!("{url}: {other:?}"));
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        let listed_at = now_ms();
        for (id, _) in pl.part_ends.iter().filter(|(id, _)| *id >= (m, p)) {
            if !fetched.insert(*id) {
                continue;
            }
            let part_url = format!("{base}source/{}.{}.m4s", id.0, id.1);
            match get_with(&client, &part_url).await {
                Ok((StatusCode::OK, body)) if !body.is_empty() => {
                    let received = now_ms();
                    stats
                        .lock()
                        .unwrap()
                        .samples
                        .push((*id, listed_at, received));
                }
                other => stats
                    .lock()
                    .unwrap()
                    .errors
                    .push(format!("{part_url}: {other:?}")),
            }
        }
        next = pl.hint;
    }
}

fn percentile(v: &mut [f64], q: f64) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    if v.is_empty() {
        return f64::NAN;
    }
    v[((v.len() - 1) as f64 * q).round() as usize]
}

/// When each part was published: the earliest moment a client in `reference` had a playlist listing it.
fn publication_times(reference: &[Arc<Mutex<ClientStats>>]) -> HashMap<(u64, u64), f64> {
    let mut published: HashMap<(u64, u64), f64> = HashMap::new();
    for s in reference {
        for (id, listed, _) in &s.lock().unwrap().samples {
            let e = published.entry(*id).or_insert(*listed);
            *e = e.min(*listed);
        }
    }
    published
}

/// Print a group's latencies after publication; returns (part latency p50 ms, parts, errors).
fn summary(
    name: &str,
    stats: &[Arc<Mutex<ClientStats>>],
    published: &HashMap<(u64, u64), f64>,
) -> (f64, usize, usize) {
    let (mut part, mut listing, mut startup) = (Vec::new(), Vec::new(), Vec::new());
    let (mut parts, mut errors) = (0, 0);
    for s in stats {
        let s = s.lock().unwrap();
        startup.push(s.startup_ms);
        for (id, listed, received) in &s.samples {
            parts += 1;
            if let Some(p) = published.get(id) {
                part.push(received - p);
                listing.push(listed - p);
            }
        }
        errors += s.errors.len();
        for e in s.errors.iter().take(3) {
            println!("  {name} error: {e}");
        }
    }
    println!(
        "{name}: {} clients, {parts} parts, {errors} errors; after publication, ms: part held p50 {:.0} p95 {:.0} \
         p99 {:.0} max {:.0}; playlist listing it p50 {:.0} p99 {:.0}; first playlist p50 {:.0} max {:.0}",
        stats.len(),
        percentile(&mut part, 0.5),
        percentile(&mut part, 0.95),
        percentile(&mut part, 0.99),
        percentile(&mut part, 1.0),
        percentile(&mut listing, 0.5),
        percentile(&mut listing, 0.99),
        percentile(&mut startup, 0.5),
        percentile(&mut startup, 1.0),
    );
    (percentile(&mut part, 0.5), parts, errors)
}

/// Start nginx with the documented edge configuration in front of `origin`; returns the process, its
/// address and its directory (logs, cache).
fn start_nginx(origin: std::net::SocketAddr, name: &str) -> (Nginx, std::net::SocketAddr, PathBuf) {
    testkit::remove_dirs_of_ended_processes("estuary-cdn-", |rest| rest.rsplit('-').next());
    let dir = std::env::temp_dir().join(format!("estuary-cdn-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    // The workers may run as another user (nobody) when the test runs as root.
    std::fs::create_dir_all(dir.join("cache")).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir.join("cache"), std::fs::Permissions::from_mode(0o777))
            .unwrap();
    }
    let example =
        std::fs::read_to_string(repo().join("docs/nginx-cdn.conf")).expect("docs/nginx-cdn.conf");
    let edge = example
        .replace("@ORIGIN@", &origin.to_string())
        .replace("@EDGE_SECRET@", EDGE)
        .replace("@CACHE_DIR@", &dir.join("cache").display().to_string());
    let http = format!(
        "log_format upstream '$upstream_addr|$upstream_cache_status|$status|$uri|$args';\n\
         access_log @DIR@/access.log upstream;\n  log_subrequest on;\n{edge}"
    );
    let nginx = Nginx::start(&dir, 1, &http);
    let addr = nginx.addr;
    (nginx, addr, dir)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_ll_hls_clients_with_their_own_tokens_share_one_origin_request_per_object_through_nginx()
 {
    let server = start_server(&format!(
        "[auth]\nplayback = \"token\"\npublish = \"open\"\nsecret = \"{TEST_SECRET}\"\n\
         trusted_edge_secret = \"{EDGE}\"\n"
    ))
    .await;
    let _publisher = publish_loop(
        Path::new("ffmpeg"),
        &fixture("bbb-720p-2s-gop.mp4"),
        &format!("rtmp://{}/live/cdn", server.rtmp_addr),
    );
    let (mut nginx, cdn, dir) = blocking(move || start_nginx(server.http_addr, "ll")).await;
    let token = |i: usize| {
        server.auth.sign(&TokenClaims {
            scope: "live/cdn".into(),
            // A different expiry per viewer: 50 different tokens.
            expires_unix_s: unix_now_s() + 3600 + i as u64,
            not_before_unix_s: None,
            client_ip: None,
        })
    };
    let probe = format!("http://{cdn}/t/{}/live/cdn/source/media.m3u8", token(999));
    wait_for_200(&probe, Duration::from_secs(20))
        .await
        .expect("the playlist through nginx");
    // Without a token, nginx refuses (its auth_request gets the origin's 401).
    let bare = get(&format!("http://{cdn}/t/not-a-token/live/cdn/index.m3u8")).await;
    assert_eq!(bare.status, StatusCode::FORBIDDEN);
    tokio::time::sleep(Duration::from_secs(3)).await;
    // Start counting origin requests from here.
    let log = dir.join("access.log");
    let skip = std::fs::read_to_string(&log)
        .unwrap_or_default()
        .lines()
        .count();

    let until = Instant::now() + RUN;
    let mut tasks = Vec::new();
    let cdn_stats: Vec<_> = (0..CDN_CLIENTS)
        .map(|_| Arc::new(Mutex::new(ClientStats::default())))
        .collect();
    let direct_stats: Vec<_> = (0..DIRECT_CLIENTS)
        .map(|_| Arc::new(Mutex::new(ClientStats::default())))
        .collect();
    for (i, s) in cdn_stats.iter().enumerate() {
        let base = format!("http://{cdn}/t/{}/live/cdn/", token(i));
        tasks.push(tokio::spawn(ll_hls_client(base, until, s.clone())));
    }
    for (i, s) in direct_stats.iter().enumerate() {
        let base = format!("http://{}/t/{}/live/cdn/", server.http_addr, token(100 + i));
        tasks.push(tokio::spawn(ll_hls_client(base, until, s.clone())));
    }
    for t in tasks {
        t.await.expect("client task");
    }
    // nginx writes each access log line as the request ends (no buffer): the clients' share is final.
    let text = std::fs::read_to_string(&log).expect("nginx access log");
    // A real player through the edge, from a token URL alone.
    let url = format!("http://{cdn}/t/{}/live/cdn/index.m3u8", token(500));
    let report = blocking(move || play_hls(&url, 10)).await;
    println!(
        "hls.js through nginx: played {} s, {} stalls, latency avg {} s",
        report["played_seconds"], report["stalls"], report["latency_avg"]
    );
    assert_played(&report, 8.0);
    nginx.stop();

    // Origin requests per distinct object, from nginx's upstream log.
    let mut per_object: HashMap<String, usize> = HashMap::new();
    let mut live_playlist_asked = 0;
    let mut auth_checks = 0;
    let mut client_requests = 0;
    for line in text.lines().skip(skip) {
        let f: Vec<&str> = line.split('|').collect();
        if f.len() < 5 {
            continue;
        }
        let (upstream, uri, args) = (f[0], f[3], f[4]);
        if uri == "/_estuary_auth" {
            if upstream != "-" {
                auth_checks += 1;
            }
            continue;
        }
        client_requests += 1;
        let object = match uri.find("/live/") {
            Some(i) => format!("{}?{args}", &uri[i..]),
            None => continue,
        };
        if object.ends_with(".m3u8?-") || object.ends_with(".m3u8?") {
            live_playlist_asked += 1;
        }
        let n = per_object.entry(object).or_default();
        if upstream != "-" {
            *n += upstream.split(", ").count();
        }
    }
    let mut by_kind: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    for (object, n) in &per_object {
        let kind = if object.contains("_HLS_msn") {
            "blocking playlist"
        } else if object.contains(".m3u8") {
            "live playlist"
        } else {
            "part"
        };
        let e = by_kind.entry(kind).or_default();
        e.0 += 1;
        e.1 += n;
    }
    // Immutable objects and blocking responses: each is one response, whoever asks.
    let (objects, origin_requests) = by_kind
        .iter()
        .filter(|(k, _)| !k.starts_with("live playlist"))
        .fold((0, 0), |a, (_, (n, o))| (a.0 + n, a.1 + o));
    let ratio = origin_requests as f64 / objects.max(1) as f64;
    println!(
        "through nginx: {client_requests} client requests; parts and blocking playlist responses: {objects} distinct \
         objects -> {origin_requests} origin requests = {ratio:.3} per object; token checks sent to the origin: \
         {auth_checks} (for {CDN_CLIENTS} tokens)"
    );
    println!("  live playlist (max-age=1): asked {live_playlist_asked} times by clients");
    for (kind, (n, o)) in &by_kind {
        println!(
            "  {kind}: {n} objects, {o} origin requests ({:.3} per object)",
            *o as f64 / (*n).max(1) as f64
        );
    }
    let published = publication_times(&direct_stats);
    let (cdn_p50, cdn_parts, cdn_errors) = summary("via nginx", &cdn_stats, &published);
    let (_, direct_parts, direct_errors) =
        summary("direct to the origin", &direct_stats, &published);
    assert_eq!(cdn_errors + direct_errors, 0, "client errors");
    let expected_parts = (RUN.as_secs_f64() / 0.5 * 0.7) as usize;
    assert!(
        cdn_parts >= CDN_CLIENTS * expected_parts,
        "{cdn_parts} parts via nginx"
    );
    assert!(
        direct_parts >= DIRECT_CLIENTS * expected_parts,
        "{direct_parts} parts direct"
    );
    assert!(objects > 40, "{objects} objects");
    assert!(ratio <= 1.1, "origin requests per object {ratio:.3}");
    assert!(auth_checks <= CDN_CLIENTS * 2, "{auth_checks} token checks");
    assert!(cdn_p50 < 1000.0, "part latency p50 {cdn_p50:.0} ms");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn encrypted_streams_play_through_the_edge_with_keys_and_the_license_behind_it() {
    let server = start_server(&format!(
        "[auth]\nplayback = \"token\"\npublish = \"open\"\nsecret = \"{TEST_SECRET}\"\n\
         trusted_edge_secret = \"{EDGE}\"\n[encryption]\nenabled = true\n"
    ))
    .await;
    let _publisher = publish_loop(
        Path::new("ffmpeg"),
        &fixture("bbb-720p-2s-gop.mp4"),
        &format!("rtmp://{}/live/cdnenc", server.rtmp_addr),
    );
    let (mut nginx, cdn, dir) = blocking(move || start_nginx(server.http_addr, "enc")).await;
    let token = server
        .auth
        .sign_for("live/cdnenc", Duration::from_secs(600), unix_now_s());
    let base = format!("http://{cdn}/t/{token}/live/cdnenc/");
    wait_for_200(&format!("{base}manifest.mpd"), Duration::from_secs(20))
        .await
        .expect("the MPD through nginx");
    tokio::time::sleep(Duration::from_secs(3)).await;
    // HLS AES-128: the key URI is relative, so it carries the token through the edge.
    let url = format!("{base}index.m3u8");
    let hls = blocking(move || play_hls(&url, 10)).await;
    println!(
        "hls.js, AES-128, through nginx: played {} s, {} stalls, latency avg {} s",
        hls["played_seconds"], hls["stalls"], hls["latency_avg"]
    );
    // DASH CENC with ClearKey: the page sits in the stream's directory (through the harness's proxy),
    // so the MPD's relative license URL resolves under the token, through the edge (POST, not cached).
    // Shaka here; dash.js through the edge is the origin's player page below (and dash.js plays CENC
    // directly in `encryption::dash_cenc_clearkey…`).
    let mut reports = Vec::new();
    for player in ["shaka"] {
        let url = format!("{base}manifest.mpd");
        let r = blocking(move || play_dash(player, &url, 12, &["--low-latency", "--proxy"])).await;
        println!(
            "{player}, CENC ClearKey, through nginx: played {} s, {} stalls, latency avg {} s, http errors {}",
            r["played_seconds"], r["stalls"], r["latency_avg"], r["http_errors"]
        );
        reports.push((player, r));
    }
    // The origin's player page through the edge: the page is token-checked like the playlist, its
    // libraries come through `/player/`, and dash.js decrypts with the license next to the page.
    let page = {
        let url = format!("{base}?engine=dash");
        blocking(move || play_page(&url, 8)).await
    };
    println!("player page (dash.js, CENC) through nginx: {page}");
    nginx.stop();
    let log = std::fs::read_to_string(dir.join("access.log")).unwrap_or_default();
    let license_posts = log.lines().filter(|l| l.contains("/license|")).count();
    let key_fetches = log.lines().filter(|l| l.contains("/keys/")).count();
    println!(
        "through nginx: {license_posts} license requests, {key_fetches} key requests (never cached)"
    );
    assert_played(&hls, 8.0);
    for (player, r) in &reports {
        println!("checking {player}");
        assert_played(r, 9.0);
    }
    // dash.js reads the segment in progress chunk by chunk through nginx, whose proxy buffers can hold
    // a chunk's tail until the next one arrives: it has stalled briefly (≤ 3 short stalls, latency up
    // to 4.5 s) in about one run in four on this 2-core machine, where Shaka did not. Required here:
    // it decrypts (the license through the edge) and keeps playing, with at most 3 short stalls. (A CI
    // run saw 3 stalls, 5.9 s played of 8 s, latency 4.4 s, no error; another ended its window in
    // the third stall, 7.5 s played: the state at that instant says less than the time played.)
    assert_eq!(page["engine"], "dash", "{page}");
    assert!(
        page["state"] == "playing" || page["stalls"].as_u64().is_some_and(|s| s <= 3),
        "{page}"
    );
    assert!(
        page["fatal_errors"].as_array().is_none_or(|a| a.is_empty()),
        "{page}"
    );
    assert!(
        page["http_errors"].as_array().is_none_or(|a| a.is_empty()),
        "{page}"
    );
    if page["ok"] != true {
        assert!(page["stalls"].as_u64().unwrap_or(99) <= 3, "{page}");
    }
    assert!(page["played_seconds"].as_f64().unwrap() >= 5.5, "{page}");
    assert!(
        log.lines().any(|l| l.contains("/player/dash.all.min.js")),
        "the library came through the edge"
    );
    assert!(
        license_posts >= 2,
        "the license went through the edge (Shaka and the page)"
    );
    assert!(key_fetches >= 1, "the HLS key went through the edge");
}
