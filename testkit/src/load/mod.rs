//! The LL-HLS load generator: simulated players, each on one keep-alive HTTP/1.1 connection
//! ([`conn::Conn`]: raw tokio TCP, no client library, so that 10 000 of them stay cheap in one
//! process), in one of two modes ([`Mode`]):
//! - a **waiter** on one media playlist, as the load bench runs 10 000 of them: a blocking reload for
//!   the part the last playlist's `EXT-X-PRELOAD-HINT` named (`media.m3u8?_HLS_msn=M&_HLS_part=P`,
//!   RFC 8216bis §6.2.5.2), optionally a GET of that part, then the next reload;
//! - a **player**, as the soak runs them (hls.js in low-latency mode): the multivariant playlist, one
//!   variant stream (switched now and then) or the audio rendition, a join at the live edge, then
//!   blocking reloads for the part after the last one listed (with delta updates, `_HLS_skip=YES`, if
//!   asked), fetching every new part, segment, init segment and key, and the preload-hint part if
//!   asked; after `EXT-X-ENDLIST` or a failed playlist it starts again from the multivariant playlist.
//!   It checks what it gets: bodies ([`check_body`]), a blocking reload answered before its part was
//!   listed, object names whose media sequence number differs from the one the playlist implies.
//!
//! Every exchange is reported to a [`Sink`] as a [`Record`]; [`Tally`] is the sink of the bench, and
//! `estuary-load` (this crate's binary) prints records as JSON lines for the soak.

pub mod conn;
pub mod playlist;
mod viewer;

pub use viewer::{Mode, PlayerOptions, Role, Viewer};

use std::{
    sync::{
        Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::Instant,
};

/// What a request fetched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// The multivariant playlist.
    Multivariant,
    /// A media playlist without blocking.
    Playlist,
    /// A blocking media playlist reload (`_HLS_msn`, `_HLS_part`).
    BlockingReload,
    /// The preload-hint part, asked for before it is listed.
    HintPart,
    /// A listed part.
    Part,
    /// A listed segment.
    Segment,
    /// An init segment (`EXT-X-MAP`).
    Init,
    /// A content key (`EXT-X-KEY`).
    Key,
}

impl Kind {
    /// Its name in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Multivariant => "multivariant",
            Kind::Playlist => "playlist",
            Kind::BlockingReload => "blocking reload",
            Kind::HintPart => "hint part",
            Kind::Part => "part",
            Kind::Segment => "segment",
            Kind::Init => "init",
            Kind::Key => "key",
        }
    }
}

/// One exchange.
#[derive(Debug, Clone, Copy)]
pub struct Record<'a> {
    /// The player's name.
    pub viewer: &'a str,
    /// What was fetched.
    pub kind: Kind,
    /// The request target (path and query).
    pub path: &'a str,
    /// When the request was sent.
    pub sent: Instant,
    /// When the answer was complete (or failed).
    pub received: Instant,
    /// The status; 0 when no answer came.
    pub status: u16,
    /// Why it failed: `conn:…`, `cut-off`, or `bad-body:…` (a 200 whose body fails [`check_body`]).
    pub error: Option<&'a str>,
    /// Body bytes.
    pub bytes: usize,
    /// Whether the playlist received just before listed it (`None` for entry points).
    pub listed: Option<bool>,
    /// When that playlist was received.
    pub listing_received: Option<Instant>,
    /// That playlist's text, for a failed exchange (evidence).
    pub listing_text: Option<&'a str>,
    /// The part a blocking reload asked for: (`_HLS_msn`, `_HLS_part`).
    pub asked: Option<(u64, usize)>,
}

impl Record<'_> {
    /// A complete 2xx answer with a good body.
    pub fn ok(&self) -> bool {
        self.error.is_none() && (200..300).contains(&self.status)
    }
}

/// Where players report. Calls come from many tasks at once.
pub trait Sink: Send + Sync {
    /// One exchange.
    fn record(&self, record: &Record<'_>);
    /// An observation worth counting (`n` times): a rendition switch, a discontinuity, a stale
    /// connection reopened, an unparsable playlist.
    fn note(&self, _what: &str, _n: u64) {}
    /// A protocol check failed; `listing` is the playlist that failed it.
    fn violation(&self, _what: &str, _example: &str, _listing: Option<&str>) {}
    /// The newest text of playlist `name` (`{rendition}/media.m3u8`), received at `at`.
    fn latest(&self, _name: &str, _at: Instant, _text: &str) {}
}

/// A sink that counts: answers, failures, part bytes, and the receipts of blocking reloads.
#[derive(Debug, Default)]
pub struct Tally {
    /// 2xx answers with good bodies.
    pub requests: AtomicU64,
    /// Anything else.
    pub errors: AtomicU64,
    /// Bytes of parts (listed and hinted).
    pub part_bytes: AtomicU64,
    /// Blocking reloads answered 200.
    pub receipts: Mutex<Vec<Receipt>>,
}

impl Sink for Tally {
    fn record(&self, r: &Record<'_>) {
        if !r.ok() {
            self.errors.fetch_add(1, Ordering::Relaxed);
            return;
        }
        self.requests.fetch_add(1, Ordering::Relaxed);
        match (r.kind, r.asked) {
            (Kind::Part | Kind::HintPart, _) => {
                self.part_bytes.fetch_add(r.bytes as u64, Ordering::Relaxed);
            }
            (Kind::BlockingReload, Some((msn, part))) => {
                self.receipts.lock().expect("receipts").push(Receipt {
                    msn,
                    part,
                    sent: r.sent,
                    received: r.received,
                });
            }
            _ => {}
        }
    }
}

/// One blocking reload that came back with its part listed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Receipt {
    /// The media sequence number asked for (`_HLS_msn`).
    pub msn: u64,
    /// The part index asked for (`_HLS_part`).
    pub part: usize,
    /// When the request was sent.
    pub sent: Instant,
    /// When the whole playlist had been received.
    pub received: Instant,
}

/// Why a 200 body is wrong for its kind, or `None`: init segments start with `ftyp`; parts and segments
/// under a key are a non-empty multiple of 16 bytes (AES-128-CBC with PKCS#7), clear ones start with a
/// box such as `moof` or `styp`; keys are 16 bytes.
pub fn check_body(kind: Kind, encrypted: bool, body: &[u8]) -> Option<String> {
    let box_type = body.get(4..8).unwrap_or(&[]);
    match kind {
        Kind::Init if box_type != b"ftyp" => Some("init does not start with ftyp".into()),
        Kind::Part | Kind::HintPart | Kind::Segment if encrypted => {
            (body.is_empty() || !body.len().is_multiple_of(16)).then(|| {
                format!(
                    "encrypted object of {} bytes (not a multiple of 16)",
                    body.len()
                )
            })
        }
        Kind::Part | Kind::HintPart | Kind::Segment => {
            (![&b"moof"[..], b"styp", b"prft", b"emsg", b"sidx"].contains(&box_type))
                .then(|| format!("media starts with {:?}", String::from_utf8_lossy(box_type)))
        }
        Kind::Key if body.len() != 16 => Some(format!("key of {} bytes", body.len())),
        _ => None,
    }
}

/// The part a media playlist's `EXT-X-PRELOAD-HINT:TYPE=PART` names, read from its URI
/// `{msn}.{part}.m4s`: (media sequence number, part index). `None` without a part hint.
pub fn preload_hint(playlist: &[u8]) -> Option<(u64, usize)> {
    let text = std::str::from_utf8(playlist).ok()?;
    let line = text
        .lines()
        .find(|l| l.starts_with("#EXT-X-PRELOAD-HINT:TYPE=PART"))?;
    let uri = line.split("URI=\"").nth(1)?.split('"').next()?;
    let name = uri.rsplit('/').next()?;
    let (msn, rest) = name.split_once('.')?;
    let (part, _) = rest.split_once('.')?;
    Some((msn.parse().ok()?, part.parse().ok()?))
}

/// `path` with the token of a `/t/{token}/` prefix replaced by `…` (for reports).
pub fn strip_token(path: &str) -> String {
    match path.find("/t/") {
        Some(i) => {
            let after = &path[i + 3..];
            match after.find('/') {
                Some(j) => format!("{}/t/…{}", &path[..i], &after[j..]),
                None => path.to_owned(),
            }
        }
        None => path.to_owned(),
    }
}

/// Publication to last waiter, per part: for each part that at least `min_waiters` requests were
/// already waiting for when its first answer left (the publication, within the origin's wake-up time),
/// the time from that first answer to the last of those waiters receiving its playlist, ms, and the
/// number of waiters. Parts at the ramp or the end of a run, which not every player waited for, are
/// left out by `min_waiters`.
pub fn publication_spreads(receipts: &[Receipt], min_waiters: usize) -> Vec<(f64, usize)> {
    let mut by_part: std::collections::HashMap<(u64, usize), Vec<&Receipt>> = Default::default();
    for r in receipts {
        by_part.entry((r.msn, r.part)).or_default().push(r);
    }
    let mut out = Vec::new();
    for list in by_part.values() {
        let Some(first) = list.iter().map(|r| r.received).min() else {
            continue;
        };
        let waiting: Vec<&&Receipt> = list.iter().filter(|r| r.sent < first).collect();
        if waiting.len() < min_waiters.max(1) {
            continue;
        }
        if let Some(last) = waiting.iter().map(|r| r.received).max() {
            out.push(((last - first).as_secs_f64() * 1000.0, waiting.len()));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn bodies_are_checked_for_their_kind() {
        let moof = b"\0\0\0\x10moofxxxxxxxx";
        assert_eq!(check_body(Kind::Part, false, moof), None);
        assert!(check_body(Kind::Part, false, b"\0\0\0\x10mdat").is_some());
        assert_eq!(check_body(Kind::Segment, true, &[0; 32]), None);
        assert!(check_body(Kind::Segment, true, &[0; 33]).is_some());
        assert!(check_body(Kind::HintPart, true, &[]).is_some());
        assert_eq!(check_body(Kind::Init, false, b"\0\0\0\x10ftypiso6"), None);
        assert!(check_body(Kind::Init, false, moof).is_some());
        assert_eq!(check_body(Kind::Key, false, &[1; 16]), None);
        assert!(check_body(Kind::Key, false, &[1; 15]).is_some());
        assert_eq!(check_body(Kind::Playlist, false, b"#EXTM3U"), None);
    }

    #[test]
    fn the_preload_hint_names_its_part() {
        let playlist = b"#EXTM3U\n#EXT-X-PART:DURATION=0.5,URI=\"12.3.m4s\"\n\
            #EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"12.4.m4s\"\n";
        assert_eq!(preload_hint(playlist), Some((12, 4)));
        let under_a_path = b"#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"../source/7.0.m4s\"\n";
        assert_eq!(preload_hint(under_a_path), Some((7, 0)));
        assert_eq!(preload_hint(b"#EXTM3U\n#EXT-X-ENDLIST\n"), None);
        assert_eq!(
            preload_hint(b"#EXT-X-PRELOAD-HINT:TYPE=MAP,URI=\"init-1.mp4\"\n"),
            None
        );
    }

    #[test]
    fn spreads_count_only_the_requests_already_waiting() {
        let t0 = Instant::now();
        let ms = |n: u64| t0 + Duration::from_millis(n);
        let receipt = |sent, received| Receipt {
            msn: 1,
            part: 0,
            sent: ms(sent),
            received: ms(received),
        };
        // First answer at 100 ms; waiters answered at 100, 104 and 110 ms; one request sent after
        // the publication does not count.
        let receipts = [
            receipt(0, 100),
            receipt(10, 104),
            receipt(20, 110),
            receipt(105, 106),
        ];
        let spreads = publication_spreads(&receipts, 3);
        assert_eq!(spreads.len(), 1);
        assert!((spreads[0].0 - 10.0).abs() < 0.5, "{spreads:?}");
        assert_eq!(spreads[0].1, 3);
        assert!(publication_spreads(&receipts, 4).is_empty());
    }
}

/// One object of a [`hammer`] round: its path (and query) and its body length, bytes.
#[derive(Debug, Clone)]
pub struct Object {
    /// The request target.
    pub path: String,
    /// The body length every answer must have.
    pub len: usize,
}

/// What a [`hammer`] round did.
#[derive(Debug, Clone, Copy, Default)]
pub struct Round {
    /// 200 answers of the right length.
    pub requests: u64,
    /// Body bytes of those.
    pub bytes: u64,
    /// Anything else (the client stops at its first).
    pub errors: u64,
    /// Wall-clock length of the round.
    pub seconds: f64,
}

/// `clients` keep-alive HTTP/1.1 connections to `addr`, each GETting `objects` in turn (each starting
/// at a different one) for `seconds`, checking every body's length: cached-object throughput.
pub async fn hammer(
    addr: std::net::SocketAddr,
    objects: std::sync::Arc<Vec<Object>>,
    clients: usize,
    seconds: u64,
) -> Round {
    use std::sync::Arc;
    let requests = Arc::new(AtomicU64::new(0));
    let bytes = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let until = tokio::time::Instant::now() + std::time::Duration::from_secs(seconds);
    let start = tokio::time::Instant::now();
    let mut tasks = Vec::new();
    for c in 0..clients {
        let (objects, requests, bytes, errors) = (
            objects.clone(),
            requests.clone(),
            bytes.clone(),
            errors.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let Ok(mut conn) = tokio::net::TcpStream::connect(addr).await else {
                errors.fetch_add(1, Ordering::Relaxed);
                return;
            };
            let _ = conn.set_nodelay(true);
            let mut buf = Vec::with_capacity(1 << 20);
            let mut i = c * 7919;
            while tokio::time::Instant::now() < until {
                let o = &objects[i % objects.len()];
                i += 1;
                match crate::http::exchange_in_place(&mut conn, &mut buf, &o.path, "").await {
                    Ok((200, range)) if range.len() == o.len => {
                        requests.fetch_add(1, Ordering::Relaxed);
                        bytes.fetch_add(o.len as u64, Ordering::Relaxed);
                    }
                    _ => {
                        errors.fetch_add(1, Ordering::Relaxed);
                        return;
                    }
                }
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    Round {
        requests: requests.load(Ordering::Relaxed),
        bytes: bytes.load(Ordering::Relaxed),
        errors: errors.load(Ordering::Relaxed),
        seconds: start.elapsed().as_secs_f64(),
    }
}
