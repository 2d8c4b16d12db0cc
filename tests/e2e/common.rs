//! Shared helpers for end-to-end tests: an in-process origin on loopback ports, real `ffmpeg` publishers,
//! an HTTP client, and independent checks (m3u8-rs, mp4-atom, ffprobe).
#![allow(dead_code, missing_docs)]

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use bytes::Bytes;
use estuary::{
    config::{FileConfig, ServeArgs, Settings},
    server::Server,
};
use http_body_util::BodyExt;
use hyper::{StatusCode, header::HeaderMap};

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn fixture(name: &str) -> PathBuf {
    let p = repo().join("fixtures").join(name);
    assert!(p.exists(), "missing fixture {}", p.display());
    p
}

pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
                tracing_subscriber::EnvFilter::new("warn,estuary=info,srt_protocol=error")
            }),
        )
        .with_test_writer()
        .try_init();
}

/// Start an origin on 127.0.0.1 with ephemeral ports; `file_toml` tweaks the configuration. Without a
/// `[transcode]` section the origin packages streams as they arrive (passthrough, no ladder).
pub async fn start_server(file_toml: &str) -> Server {
    start_server_in(file_toml, &fresh_data_dir()).await
}

/// A new, empty data directory under the system's temporary directory (kept: a test may restart a
/// server on it).
pub fn fresh_data_dir() -> PathBuf {
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("estuary-test-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// [`start_server`] with its data directory (content keys) at `data_dir`.
pub async fn start_server_in(file_toml: &str, data_dir: &Path) -> Server {
    let mut file_toml = if file_toml.contains("[transcode]") {
        file_toml.to_owned()
    } else {
        format!("{file_toml}\n[transcode]\nenabled = false\n")
    };
    // Tests that are not about access control play and publish openly, under a known secret (content
    // keys and the license still need a token: see `play_base`).
    if !file_toml.contains("[auth]") {
        file_toml.push_str(&format!(
            "\n[auth]\nplayback = \"open\"\npublish = \"open\"\nsecret = \"{TEST_SECRET}\"\n"
        ));
    }
    let file_toml = file_toml.as_str();
    init_tracing();
    let args = ServeArgs {
        http_listen: Some("127.0.0.1:0".parse().unwrap()),
        rtmp_listen: Some("127.0.0.1:0".parse().unwrap()),
        srt_listen: Some("127.0.0.1:0".parse().unwrap()),
        data_dir: Some(data_dir.to_owned()),
        ..Default::default()
    };
    let file: FileConfig = toml::from_str(file_toml).expect("test config parses");
    Server::start(Settings::resolve(&args, file).expect("valid settings"))
        .await
        .expect("server starts")
}

/// The server secret of test origins that do not configure `[auth]`.
pub const TEST_SECRET: &str = "estuary test secret, at least 32 bytes long";

/// `http://{origin}/t/{token}/{stream}/`: the base URL of `stream` (`live/{name}`) under a one-hour
/// playback token signed by `server`'s secret.
pub fn play_base(server: &Server, stream: &str) -> String {
    let token = server.auth.sign_for(
        stream,
        Duration::from_secs(3600),
        estuary::auth::unix_now_s(),
    );
    format!("http://{}/t/{token}/{stream}/", server.http_addr)
}

/// A child process killed on drop.
pub struct Proc(pub Child, pub &'static str);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Proc {
    pub fn kill(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Publish `clip` in a loop in real time with stream copy (`ffmpeg -re -stream_loop -1 … -c copy -f flv`).
pub fn publish_loop(ffmpeg: &Path, clip: &Path, url: &str) -> Proc {
    let child = Command::new(ffmpeg)
        .args([
            "-hide_banner",
            "-loglevel",
            "error",
            "-re",
            "-stream_loop",
            "-1",
            "-i",
        ])
        .arg(clip)
        .args(["-c", "copy", "-f", "flv", url])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("ffmpeg runs");
    Proc(child, "ffmpeg publish")
}

/// Run ffmpeg with `args` as a publisher (returns the child).
pub fn ffmpeg(ffmpeg: &Path, args: &[&str]) -> Proc {
    let child = Command::new(ffmpeg)
        .args(["-hide_banner", "-loglevel", "error"])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("ffmpeg runs");
    Proc(child, "ffmpeg")
}

/// The static FFmpeg ≥ 7 from the PyPI package imageio-ffmpeg (installed by scripts/setup.sh), which can
/// publish HEVC over Enhanced RTMP. Panics with a set-up hint when missing.
pub fn modern_ffmpeg() -> PathBuf {
    let venv = repo().join(".venv/bin/python3");
    let python = if venv.exists() {
        venv
    } else {
        PathBuf::from("python3")
    };
    let out = Command::new(&python)
        .args([
            "-c",
            "import imageio_ffmpeg; print(imageio_ffmpeg.get_ffmpeg_exe())",
        ])
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "imageio-ffmpeg missing: run scripts/setup.sh ({})",
        String::from_utf8_lossy(&out.stderr)
    );
    PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
}

pub struct Fetched {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub elapsed: Duration,
}

impl Fetched {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    pub fn header(&self, name: &str) -> String {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned()
    }
}

pub async fn get(url: &str) -> Fetched {
    request("GET", url).await
}

pub async fn request(method: &str, url: &str) -> Fetched {
    request_with(method, url, &[], None).await
}

/// A request with extra headers and an optional body.
pub async fn request_with(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> Fetched {
    use http_body_util::Full;
    use hyper_util::{client::legacy::Client, rt::TokioExecutor};
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let mut req = hyper::Request::builder().method(method).uri(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let req = req
        .body(Full::new(Bytes::from(body.unwrap_or("").to_owned())))
        .unwrap();
    let start = Instant::now();
    let resp = client.request(req).await.expect("http request");
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = resp.into_body().collect().await.expect("body").to_bytes();
    Fetched {
        status,
        headers,
        body,
        elapsed: start.elapsed(),
    }
}

/// Assert a player harness report played at least `min_seconds` with no fatal error.
pub fn assert_played(report: &serde_json::Value, min_seconds: f64) {
    assert_eq!(report["ok"], true, "{report}");
    assert!(
        report["played_seconds"].as_f64().unwrap_or(0.0) >= min_seconds,
        "{report}"
    );
    assert!(
        report["fatal_errors"]
            .as_array()
            .is_none_or(|a| a.is_empty()),
        "{report}"
    );
}

/// Poll `url` until it answers 200 or `timeout` passes.
pub async fn wait_for_200(url: &str, timeout: Duration) -> Option<Fetched> {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        let r = get(url).await;
        if r.status == StatusCode::OK {
            return Some(r);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    None
}

/// Media playlist facts from the text (LL-HLS tags that m3u8-rs keeps as unknown tags are read here).
#[derive(Debug, Default)]
pub struct MediaFacts {
    pub target_duration: u64,
    pub media_sequence: u64,
    /// (msn, duration, uri) of complete segments.
    pub segments: Vec<(u64, f64, String)>,
    /// (msn, part uri, duration, independent) of listed parts.
    pub parts: Vec<(u64, String, f64, bool)>,
    pub preload_hint: Option<String>,
    pub map_uri: String,
    pub has_endlist: bool,
}

/// Parse with m3u8-rs (an independent parser) and collect LL-HLS facts.
pub fn parse_media(text: &str) -> MediaFacts {
    let parsed =
        m3u8_rs::parse_playlist_res(text.as_bytes()).expect("media playlist parses with m3u8-rs");
    let m3u8_rs::Playlist::MediaPlaylist(pl) = parsed else {
        panic!("expected a media playlist")
    };
    let mut facts = MediaFacts {
        target_duration: pl.target_duration,
        media_sequence: pl.media_sequence,
        has_endlist: pl.end_list,
        ..Default::default()
    };
    for (i, s) in pl.segments.iter().enumerate() {
        facts.segments.push((
            pl.media_sequence + i as u64,
            f64::from(s.duration),
            s.uri.clone(),
        ));
        if let Some(m) = &s.map {
            facts.map_uri = m.uri.clone();
        }
    }
    // Parts: count which segment they belong to by walking the text.
    let mut msn = pl.media_sequence;
    for line in text.lines() {
        if let Some(attrs) = line.strip_prefix("#EXT-X-PART:") {
            let uri = attr(attrs, "URI").expect("part URI");
            let dur: f64 = attr(attrs, "DURATION")
                .expect("part DURATION")
                .parse()
                .unwrap();
            facts
                .parts
                .push((msn, uri, dur, attrs.contains("INDEPENDENT=YES")));
        } else if line.starts_with("#EXTINF:") {
            msn += 1;
        } else if let Some(attrs) = line.strip_prefix("#EXT-X-PRELOAD-HINT:") {
            facts.preload_hint = attr(attrs, "URI");
        } else if let Some(attrs) = line.strip_prefix("#EXT-X-MAP:") {
            facts.map_uri = attr(attrs, "URI").unwrap();
        }
    }
    facts
}

pub fn attr(attrs: &str, key: &str) -> Option<String> {
    for kv in attrs.split(',') {
        if let Some(v) = kv.strip_prefix(&format!("{key}=")) {
            return Some(v.trim_matches('"').to_owned());
        }
    }
    None
}

/// Parse a moof+mdat chunk sequence with mp4-atom: returns (tfdt, sum of sample durations, first
/// sample's sync flag) of each moof in `bytes`.
pub fn chunks(bytes: &[u8]) -> Vec<(u64, u64, bool)> {
    use mp4_atom::{Any, DecodeMaybe};
    let mut out = Vec::new();
    let mut buf = bytes;
    while !buf.is_empty() {
        let atom = Any::decode_maybe(&mut buf)
            .expect("box parses")
            .expect("complete box");
        if let Any::Moof(moof) = atom {
            let traf = &moof.traf[0];
            let tfdt = traf.tfdt.as_ref().expect("tfdt").base_media_decode_time;
            let mut sum = 0u64;
            let mut first_sync = None;
            for trun in &traf.trun {
                for e in trun.samples.iter() {
                    sum += u64::from(
                        e.duration
                            .or(traf.tfhd.default_sample_duration)
                            .unwrap_or(0),
                    );
                    if first_sync.is_none() {
                        let flags = e.flags.or(traf.tfhd.default_sample_flags).unwrap_or(0);
                        first_sync = Some(flags & 0x0001_0000 == 0);
                    }
                }
            }
            out.push((tfdt, sum, first_sync.unwrap_or(false)));
        }
    }
    out
}

/// Earliest presentation time of a CMAF segment from its bytes: over every sample of every chunk,
/// `tfdt` + preceding durations + composition offset, the minimum (ISO/IEC 14496-12 §8.8.12, §8.8.8).
pub fn earliest_presentation_time(bytes: &[u8]) -> i64 {
    use mp4_atom::{Any, DecodeMaybe};
    let mut best = i64::MAX;
    let mut buf = bytes;
    while !buf.is_empty() {
        let atom = Any::decode_maybe(&mut buf)
            .expect("box parses")
            .expect("complete box");
        if let Any::Moof(moof) = atom {
            let traf = &moof.traf[0];
            let mut dts = traf.tfdt.as_ref().expect("tfdt").base_media_decode_time as i64;
            for e in traf.trun.iter().flat_map(|t| t.samples.iter()) {
                best = best.min(dts + e.cts.unwrap_or(0));
                dts += i64::from(e.duration.unwrap_or(0));
            }
        }
    }
    best
}

/// ffprobe a file: returns the first decoded video frame's (pict_type, key_frame) — decoded by FFmpeg,
/// independent of our sample flags.
pub fn first_frame_type(path: &Path) -> (String, bool) {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-select_streams",
            "v:0",
            "-read_intervals",
            "%+#1",
            "-show_frames",
            "-show_entries",
            "frame=pict_type,key_frame",
            "-of",
            "csv=p=0",
        ])
        .arg(path)
        .output()
        .expect("ffprobe runs");
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().next().unwrap_or("");
    let mut f = line.split(',');
    let key = f.next().unwrap_or("0") == "1";
    let pict = f.next().unwrap_or("").to_owned();
    (pict, key)
}

/// Run ffprobe with `args` on `target` and return stdout (asserting success).
pub fn ffprobe(args: &[&str], target: &str) -> String {
    let out = Command::new("ffprobe")
        .args(["-v", "error"])
        .args(args)
        .arg(target)
        .output()
        .expect("ffprobe runs");
    assert!(
        out.status.success(),
        "ffprobe failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Run the headless-Chromium hls.js harness (tests/browser/play-hls.mjs) and return its JSON report.
pub fn play_hls(url: &str, seconds: u32) -> serde_json::Value {
    play_hls_args(url, seconds, &[])
}

/// [`play_hls`] with extra harness options (e.g. `--switch-every 4`).
pub fn play_hls_args(url: &str, seconds: u32, extra: &[&str]) -> serde_json::Value {
    play_hls_command(Command::new("node"), url, seconds, extra)
}

/// [`play_hls`] with the browser at a lower CPU priority (`nice -n 10`), for tests where the origin's
/// real-time work (e.g. SRT retransmissions within a 200 ms latency) must not starve while Chromium
/// starts up on a 2-core machine. Playback itself still gets the CPU it needs.
pub fn play_hls_nice(url: &str, seconds: u32) -> serde_json::Value {
    let mut cmd = Command::new("nice");
    cmd.args(["-n", "10", "node"]);
    play_hls_command(cmd, url, seconds, &[])
}

fn play_hls_command(cmd: Command, url: &str, seconds: u32, extra: &[&str]) -> serde_json::Value {
    let mut args = vec!["--low-latency"];
    args.extend_from_slice(extra);
    run_player(cmd, "play-hls.mjs", url, seconds, &args)
}

/// Run the headless-Chromium DASH harness (tests/browser/play-dash.mjs) with `player` (`dashjs` or
/// `shaka`) and return its JSON report.
pub fn play_dash(player: &str, url: &str, seconds: u32, extra: &[&str]) -> serde_json::Value {
    let mut args = vec!["--player", player];
    args.extend_from_slice(extra);
    run_player(Command::new("node"), "play-dash.mjs", url, seconds, &args)
}

/// Run a browser harness script from tests/browser and parse the JSON line it prints.
fn run_player(
    mut cmd: Command,
    script: &str,
    url: &str,
    seconds: u32,
    extra: &[&str],
) -> serde_json::Value {
    let dir = repo().join("tests/browser");
    assert!(
        dir.join("node_modules/hls.js").exists(),
        "tests/browser/node_modules missing: run scripts/setup.sh"
    );
    let out = cmd
        .current_dir(&dir)
        .args([script, "--url", url, "--seconds", &seconds.to_string()])
        .args(extra)
        .output()
        .expect("node runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "player harness failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = stdout
        .lines()
        .rev()
        .find(|l| l.trim_start().starts_with('{'))
        .expect("a JSON report");
    serde_json::from_str(line).expect("JSON report parses")
}

/// Open the origin's player page at `url` in headless Chromium (tests/browser/play-page.mjs) and
/// return its JSON report.
pub fn play_page(url: &str, seconds: u32) -> serde_json::Value {
    run_player(Command::new("node"), "play-page.mjs", url, seconds, &[])
}

/// Run `f` (ffprobe, FFmpeg, node) on a blocking thread so the test's runtime keeps serving the origin.
pub async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.expect("blocking task")
}

/// Decode `input` (a URL or a file) with Debian's FFmpeg to the null muxer, reading at most `seconds`.
/// Returns FFmpeg's output; `status.success()` and an empty `stderr` mean it decoded without an error.
/// The encoder time base is the stream's own (90 kHz): the default 1/frame-rate one makes the null muxer
/// warn about the whole-millisecond jitter RTMP timestamps carry.
pub async fn ffmpeg_decode(input: &str, seconds: Option<u32>) -> std::process::Output {
    let mut args: Vec<String> = ["-hide_banner", "-v", "error", "-i", input]
        .map(String::from)
        .to_vec();
    if let Some(s) = seconds {
        args.extend(["-t".to_owned(), s.to_string()]);
    }
    args.extend(["-enc_time_base", "-1", "-f", "null", "-"].map(String::from));
    blocking(move || {
        Command::new("ffmpeg")
            .args(&args)
            .output()
            .expect("ffmpeg runs")
    })
    .await
}

/// ffprobe `url` on a blocking thread for `entries` (e.g. `stream=codec_name,width,height`) as bare CSV,
/// optionally limited to `select` (e.g. `v:0`); returns the first non-empty line (HLS inputs repeat a
/// stream once per program).
pub async fn probe_first(url: &str, select: Option<&str>, entries: &str) -> String {
    let mut args: Vec<String> = Vec::new();
    if let Some(s) = select {
        args.extend(["-select_streams".to_owned(), s.to_owned()]);
    }
    args.extend([
        "-show_entries".to_owned(),
        entries.to_owned(),
        "-of".to_owned(),
        "csv=p=0".to_owned(),
    ]);
    let url = url.to_owned();
    let out = blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        ffprobe(&args, &url)
    })
    .await;
    out.lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .to_owned()
}

/// An ffmpeg/libsrt caller URL: `srt://ADDR?streamid=ID` followed by `extra` (e.g. `&passphrase=…`),
/// with a 200 ms latency (libsrt's `latency` option is in microseconds).
pub fn srt_url(addr: std::net::SocketAddr, stream_id: &str, extra: &str) -> String {
    format!("srt://{addr}?streamid={stream_id}&latency=200000{extra}")
}

/// Publish `clip` in a loop in real time over SRT with Debian's FFmpeg (`-c copy -f mpegts URL`).
pub fn publish_srt_loop(clip: &Path, url: &str) -> Proc {
    let child = Command::new("ffmpeg")
        .args([
            "-hide_banner",
            "-loglevel",
            "error",
            "-re",
            "-stream_loop",
            "-1",
            "-i",
        ])
        .arg(clip)
        .args(["-c", "copy", "-f", "mpegts", url])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("ffmpeg runs");
    Proc(child, "ffmpeg srt publish")
}

/// `estuary serve` as a child process on 127.0.0.1 ephemeral ports, its standard error (the logs)
/// collected line by line, for tests that check what the server logs. Killed on drop.
pub struct EstuaryProcess {
    child: Child,
    lines: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    pub http_addr: std::net::SocketAddr,
    pub rtmp_addr: std::net::SocketAddr,
    pub srt_addr: std::net::SocketAddr,
    _config: tempfile::NamedTempFile,
}

impl EstuaryProcess {
    /// Start with `file_toml` (transcoding disabled unless the text has a `[transcode]` section) and
    /// wait for the "estuary serving" line. Blocking: call from `blocking(…)` in async tests.
    pub fn start(file_toml: &str) -> Self {
        Self::start_in(file_toml, &fresh_data_dir())
    }

    /// [`Self::start`] with its data directory at `data_dir` (a restart keeps it).
    pub fn start_in(file_toml: &str, data_dir: &Path) -> Self {
        use std::io::{BufRead, BufReader, Write};
        let mut text = file_toml.to_owned();
        if !text.contains("[transcode]") {
            text.push_str("\n[transcode]\nenabled = false\n");
        }
        if !text.contains("[auth]") {
            text.push_str(&format!(
                "\n[auth]\nplayback = \"open\"\npublish = \"open\"\nsecret = \"{TEST_SECRET}\"\n"
            ));
        }
        let mut config = tempfile::NamedTempFile::new().expect("temp file");
        config.write_all(text.as_bytes()).expect("config written");
        let mut child = Command::new(env!("CARGO_BIN_EXE_estuary"))
            .arg("serve")
            .arg("--config")
            .arg(config.path())
            .args([
                "--http-listen",
                "127.0.0.1:0",
                "--rtmp-listen",
                "127.0.0.1:0",
                "--srt-listen",
                "127.0.0.1:0",
            ])
            .arg("--data-dir")
            .arg(data_dir)
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .env_remove("ESTUARY_SRT_PASSPHRASE")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("estuary runs");
        let stderr = child.stderr.take().expect("piped stderr");
        let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        {
            let lines = lines.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines() {
                    let Ok(line) = line else { break };
                    if line.contains("estuary serving") {
                        let _ = ready_tx.send(line.clone());
                    }
                    lines.lock().unwrap().push(line);
                }
            });
        }
        let Ok(serving) = ready_rx.recv_timeout(Duration::from_secs(30)) else {
            let _ = child.kill();
            panic!(
                "estuary did not start:\n{}",
                lines.lock().unwrap().join("\n")
            );
        };
        let addr = |field: &str| -> std::net::SocketAddr {
            let start = serving
                .find(&format!("{field}="))
                .unwrap_or_else(|| panic!("no {field} in {serving:?}"))
                + field.len()
                + 1;
            serving[start..]
                .split_whitespace()
                .next()
                .unwrap()
                .parse()
                .expect("an address")
        };
        Self {
            http_addr: addr("http_addr"),
            rtmp_addr: addr("rtmp_addr"),
            srt_addr: addr("srt_addr"),
            child,
            lines,
            _config: config,
        }
    }

    /// Everything logged so far.
    pub fn log(&self) -> String {
        self.lines.lock().unwrap().join("\n")
    }

    /// Wait until a log line contains every one of `needles`; returns that line. Blocking.
    pub fn wait_for_line(&self, needles: &[&str], timeout: Duration) -> Option<String> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(line) = self
                .lines
                .lock()
                .unwrap()
                .iter()
                .find(|l| needles.iter().all(|n| l.contains(n)))
            {
                return Some(line.clone());
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Send SIGTERM (a graceful shutdown).
    pub fn terminate(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill -TERM failed");
    }

    /// Kill the process at once (`SIGKILL`, as a crash or `kill -9` would) and wait for it. Blocking.
    pub fn kill_now(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Wait up to `timeout` for the process to exit. Blocking.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// A one-hour playback token for `stream` (`live/{name}`) under [`TEST_SECRET`], the secret of test
/// origins (in process or [`EstuaryProcess`]) that do not configure `[auth]`.
pub fn test_token(stream: &str) -> String {
    let auth = estuary::auth::Auth::load(
        &estuary::auth::AuthConfig {
            secret: Some(estuary::auth::SecretString::new(TEST_SECRET)),
            ..Default::default()
        },
        &std::env::temp_dir(),
    )
    .expect("test auth");
    auth.sign_for(
        stream,
        Duration::from_secs(3600),
        estuary::auth::unix_now_s(),
    )
}

impl Drop for EstuaryProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A tiny deterministic PRNG (xorshift64*): garbage bytes and fuzz mutations that reproduce.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// A value in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

/// FFmpeg's standard output for `-i input {args} -`: a remux or an elementary stream. Panics with
/// FFmpeg's message when it fails.
pub fn ffmpeg_stdout(input: &Path, args: &[&str]) -> Vec<u8> {
    let out = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-nostdin", "-i"])
        .arg(input)
        .args(args)
        .arg("-")
        .output()
        .expect("ffmpeg runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}
