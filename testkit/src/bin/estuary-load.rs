//! `estuary-load`: the LL-HLS load generator ([`testkit::load`]) as a command, for the soak run
//! (`scripts/soak.py`) and for load by hand. Prints one JSON object per line on stdout:
//! - `{"type":"record","t0":…,"t1":…,"viewer":…,"kind":…,"status":…,"error":…,"path":…,"listed":…,
//!   "listing_t":…,"bytes":…,"asked":[msn,part],"listing_text":…}` for every exchange (times in seconds
//!   since `--epoch-unix-ms`; `path` with the token replaced by `…`; `listing_text` for failures only);
//! - `{"type":"note","what":…,"n":…}`, `{"type":"violation","what":…,"example":…,"text":…}`;
//! - `{"type":"latest","name":…,"t":…,"text":…}`: the newest text of a media playlist, at most once a
//!   second per playlist.
//!
//! Usage:
//! ```text
//! estuary-load --addr 127.0.0.1:8080 [--epoch-unix-ms MS] [--seconds S] [--stagger-ms MS]
//!     (--viewer name=N,role=video|audio,variant=I,skip=0|1,hint=0|1,url=PATH ...)
//!     | (--waiters N --playlist PATH [--parts])
//! ```
//! A viewer is an hls.js-like player from the multivariant playlist at `url`, switching variant
//! streams every 60–120 s; waiters follow one media playlist's preload hints. Runs for `--seconds`
//! (default: a day), or until killed.

use std::{
    collections::HashMap,
    io::Write,
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use serde_json::json;
use testkit::load::{Mode, PlayerOptions, Record, Role, Sink, Viewer, strip_token};

/// Prints what it is told as JSON lines.
struct Lines {
    /// The instant that is `start_unix_s` on the wall clock.
    start: Instant,
    start_unix_s: f64,
    epoch_unix_s: f64,
    out: Mutex<std::io::Stdout>,
    latest_printed: Mutex<HashMap<String, Instant>>,
}

impl Lines {
    fn seconds(&self, at: Instant) -> f64 {
        let since = at.saturating_duration_since(self.start).as_secs_f64()
            - self.start.saturating_duration_since(at).as_secs_f64();
        self.start_unix_s + since - self.epoch_unix_s
    }

    fn print(&self, value: serde_json::Value) {
        let mut out = self.out.lock().expect("stdout");
        // A closed pipe (the soak stopped reading) ends this process.
        if writeln!(out, "{value}").and_then(|_| out.flush()).is_err() {
            std::process::exit(0);
        }
    }
}

impl Sink for Lines {
    fn record(&self, r: &Record<'_>) {
        let failed = !r.ok();
        self.print(json!({
            "type": "record",
            "t0": self.seconds(r.sent),
            "t1": self.seconds(r.received),
            "viewer": r.viewer,
            "kind": r.kind.as_str(),
            "status": r.status,
            "error": r.error.unwrap_or(""),
            "path": strip_token(r.path),
            "listed": r.listed,
            "listing_t": r.listing_received.map(|t| self.seconds(t)),
            "bytes": r.bytes,
            "asked": r.asked.map(|(m, p)| [m, p as u64]),
            "listing_text": if failed { r.listing_text } else { None },
        }));
    }

    fn note(&self, what: &str, n: u64) {
        self.print(json!({"type": "note", "what": what, "n": n}));
    }

    fn violation(&self, what: &str, example: &str, listing: Option<&str>) {
        self.print(json!({"type": "violation", "what": what, "example": example, "text": listing}));
    }

    fn latest(&self, name: &str, at: Instant, text: &str) {
        {
            let mut printed = self.latest_printed.lock().expect("latest");
            match printed.get(name) {
                Some(last) if at.saturating_duration_since(*last) < Duration::from_secs(1) => {
                    return;
                }
                _ => {
                    printed.insert(name.to_owned(), at);
                }
            }
        }
        self.print(json!({"type": "latest", "name": name, "t": self.seconds(at), "text": text}));
    }
}

fn usage(why: &str) -> ! {
    eprintln!(
        "estuary-load: {why}\nsee the documentation at the top of testkit/src/bin/estuary-load.rs"
    );
    std::process::exit(2)
}

/// A viewer from `name=…,role=…,variant=…,skip=…,hint=…,url=…` (`url` last: it may hold commas).
fn parse_viewer(spec: &str, addr: SocketAddr, until: Instant) -> Viewer {
    let (head, url) = spec
        .split_once("url=")
        .unwrap_or_else(|| usage(&format!("no url= in --viewer {spec}")));
    let mut fields = HashMap::new();
    for kv in head.split(',').filter(|kv| !kv.is_empty()) {
        let (k, v) = kv
            .split_once('=')
            .unwrap_or_else(|| usage(&format!("bad field {kv:?} in --viewer")));
        fields.insert(k, v);
    }
    let flag = |k: &str| fields.get(k).is_some_and(|v| *v == "1" || *v == "true");
    let role = match fields.get("role").copied().unwrap_or("video") {
        "video" => Role::Video,
        "audio" => Role::Audio,
        other => usage(&format!("role {other:?} is neither video nor audio")),
    };
    Viewer {
        name: fields.get("name").copied().unwrap_or("viewer").to_owned(),
        addr,
        url: path_of(url),
        mode: Mode::Player(PlayerOptions {
            role,
            variant: fields
                .get("variant")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0),
            delta_updates: flag("skip"),
            fetch_hint: flag("hint"),
            switch_every: Some((Duration::from_secs(60), Duration::from_secs(120))),
        }),
        until,
    }
}

/// The request target of a URL (or the path itself).
fn path_of(url: &str) -> String {
    testkit::load::playlist::resolve("/", url)
}

fn main() {
    let mut args = std::env::args().skip(1);
    let mut addr: Option<SocketAddr> = None;
    let mut epoch_unix_ms: Option<f64> = None;
    let mut seconds = 86_400.0;
    let mut stagger = Duration::ZERO;
    let mut specs = Vec::new();
    let mut waiters = 0usize;
    let mut playlist = None;
    let mut parts = false;
    while let Some(a) = args.next() {
        let mut value = || {
            args.next()
                .unwrap_or_else(|| usage(&format!("{a} needs a value")))
        };
        match a.as_str() {
            "--addr" => addr = Some(value().parse().unwrap_or_else(|_| usage("bad --addr"))),
            "--epoch-unix-ms" => {
                epoch_unix_ms = Some(
                    value()
                        .parse()
                        .unwrap_or_else(|_| usage("bad --epoch-unix-ms")),
                )
            }
            "--seconds" => seconds = value().parse().unwrap_or_else(|_| usage("bad --seconds")),
            "--stagger-ms" => {
                stagger = Duration::from_millis(
                    value()
                        .parse()
                        .unwrap_or_else(|_| usage("bad --stagger-ms")),
                )
            }
            "--viewer" => specs.push(value()),
            "--waiters" => waiters = value().parse().unwrap_or_else(|_| usage("bad --waiters")),
            "--playlist" => playlist = Some(value()),
            "--parts" => parts = true,
            other => usage(&format!("unknown argument {other:?}")),
        }
    }
    let addr = addr.unwrap_or_else(|| usage("--addr is required"));
    let start = Instant::now();
    let start_unix_s = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64());
    let until = start + Duration::from_secs_f64(seconds);
    let mut viewers: Vec<Viewer> = specs.iter().map(|s| parse_viewer(s, addr, until)).collect();
    if waiters > 0 {
        let playlist = playlist.unwrap_or_else(|| usage("--waiters needs --playlist"));
        viewers.extend((0..waiters).map(|i| Viewer {
            name: format!("waiter{i}"),
            addr,
            url: path_of(&playlist),
            mode: Mode::Waiter {
                fetch_parts: parts,
                wait_for_stream: true,
            },
            until,
        }));
    }
    if viewers.is_empty() {
        usage("no --viewer and no --waiters");
    }
    // Every waiter is a connection: raise the open-file limit to its hard limit.
    let _ = rlimit::increase_nofile_limit(u64::MAX);
    let sink = Arc::new(Lines {
        start,
        start_unix_s,
        epoch_unix_s: epoch_unix_ms.map_or(start_unix_s, |ms| ms / 1000.0),
        out: Mutex::new(std::io::stdout()),
        latest_printed: Mutex::default(),
    });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(if waiters > 0 { 2 } else { 1 })
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(async move {
        let mut tasks = Vec::with_capacity(viewers.len());
        for viewer in viewers {
            let sink = sink.clone();
            tasks.push(tokio::spawn(async move { viewer.run(sink.as_ref()).await }));
            if !stagger.is_zero() {
                tokio::time::sleep(stagger).await;
            }
        }
        for t in tasks {
            let _ = t.await;
        }
    });
}
