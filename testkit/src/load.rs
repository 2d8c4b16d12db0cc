//! The LL-HLS load generator: simulated low-latency players, each one keep-alive HTTP/1.1 connection
//! ([`crate::http::exchange`], no client library, so that 10 000 of them stay cheap in one process),
//! doing what hls.js does in low-latency mode on one media playlist: a blocking reload for the part the
//! last playlist's `EXT-X-PRELOAD-HINT` named (`media.m3u8?_HLS_msn=M&_HLS_part=P`, RFC 8216bis
//! §6.2.5.2), optionally a GET of that part, then the next blocking reload.
//!
//! Each player records, per part, when its request was sent and when the playlist that has the part
//! came back ([`Receipt`]); [`Counters`] are shared by all players.

use std::{
    net::SocketAddr,
    sync::atomic::{AtomicU64, Ordering},
    time::Instant,
};

use tokio::net::TcpStream;

use crate::http::exchange;

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

/// What all players count together.
#[derive(Debug, Default)]
pub struct Counters {
    /// Requests answered 200.
    pub requests: AtomicU64,
    /// Non-200 answers and broken connections (each ends its player).
    pub errors: AtomicU64,
    /// Part bytes received.
    pub part_bytes: AtomicU64,
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

/// What one player does.
#[derive(Debug, Clone)]
pub struct Player {
    /// The origin's HTTP address.
    pub addr: SocketAddr,
    /// The media playlist's path (e.g. `/live/load/source/media.m3u8`, or under `/t/{token}`).
    pub playlist_path: String,
    /// Also GET each part after its playlist (as a player does), else only reload.
    pub fetch_parts: bool,
    /// Stop at the first reload due after this instant.
    pub until: Instant,
}

impl Player {
    /// Play until [`Player::until`] or the first error: join with a plain playlist request, then
    /// blocking reloads for each preload hint. Returns the receipts of the blocking reloads.
    pub async fn run(&self, counters: &Counters) -> Vec<Receipt> {
        let mut receipts = Vec::new();
        let Ok(mut stream) = TcpStream::connect(self.addr).await else {
            counters.errors.fetch_add(1, Ordering::Relaxed);
            return receipts;
        };
        let _ = stream.set_nodelay(true);
        let mut buf = Vec::with_capacity(16 * 1024);
        let mut hint = match exchange(&mut stream, &mut buf, &self.playlist_path, "").await {
            Ok((200, body)) => preload_hint(&body),
            _ => {
                counters.errors.fetch_add(1, Ordering::Relaxed);
                None
            }
        };
        let dir = self
            .playlist_path
            .rsplit_once('/')
            .map_or("", |(dir, _)| dir);
        while let Some((msn, part)) = hint {
            if Instant::now() >= self.until {
                break;
            }
            let sent = Instant::now();
            let path = format!("{}?_HLS_msn={msn}&_HLS_part={part}", self.playlist_path);
            match exchange(&mut stream, &mut buf, &path, "").await {
                Ok((200, body)) => {
                    receipts.push(Receipt {
                        msn,
                        part,
                        sent,
                        received: Instant::now(),
                    });
                    counters.requests.fetch_add(1, Ordering::Relaxed);
                    hint = preload_hint(&body);
                }
                _ => {
                    counters.errors.fetch_add(1, Ordering::Relaxed);
                    break;
                }
            }
            if self.fetch_parts {
                let path = format!("{dir}/{msn}.{part}.m4s");
                match exchange(&mut stream, &mut buf, &path, "").await {
                    Ok((200, body)) => {
                        counters.requests.fetch_add(1, Ordering::Relaxed);
                        counters
                            .part_bytes
                            .fetch_add(body.len() as u64, Ordering::Relaxed);
                    }
                    _ => {
                        counters.errors.fetch_add(1, Ordering::Relaxed);
                        break;
                    }
                }
            }
        }
        receipts
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
