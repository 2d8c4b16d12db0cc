//! The test kit: what Estuary's end-to-end tests (`tests/e2e`), benches (`benches/`) and the soak run
//! share, so that each real peer is driven one way.
//!
//! - [`process`]: `estuary serve` as a child process ([`process::Estuary`]: its addresses, its log, its
//!   resident set and CPU time), and a child killed on drop ([`process::Proc`]);
//! - [`ffmpeg`]: FFmpeg publishers (RTMP and SRT), decoders and `ffprobe`;
//! - [`rtmp`]: an RTMP publisher on rml_rtmp's client session (an independent implementation), sending
//!   FLV tags in real time;
//! - [`flv`]: FLV files read into tags, looped, and the bench inputs made once with FFmpeg;
//! - [`http`]: an HTTP client for tests and a raw HTTP/1.1 keep-alive exchange cheap enough for
//!   thousands of load clients;
//! - [`checks`]: independent readings of what the origin serves (m3u8-rs playlists, mp4-atom fragments);
//! - [`players`]: the headless-Chromium harness (hls.js, dash.js, Shaka, the player page);
//! - [`load`]: the LL-HLS load generator (simulated low-latency players);
//! - [`nginx`]: Debian's nginx as the CDN edge or as the file server the origin is compared with;
//! - [`redis`]: `redis-server` on a loopback port for the cluster tests.
//!
//! Everything here panics with context on a broken set-up (a missing FFmpeg, a harness that fails):
//! it runs inside tests and benches.

pub mod checks;
pub mod ffmpeg;
pub mod flv;
pub mod http;
pub mod load;
pub mod nginx;
pub mod players;
pub mod process;
pub mod redis;
pub mod rtmp;

use std::path::{Path, PathBuf};

/// The repository's root directory.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("testkit/ sits in the repository")
        .to_owned()
}

/// A file of `fixtures/`; panics when it is missing.
pub fn fixture(name: &str) -> PathBuf {
    let p = repo().join("fixtures").join(name);
    assert!(p.exists(), "missing fixture {}", p.display());
    p
}

/// A new, empty data directory under the system's temporary directory (kept while the test process
/// runs: a test may restart an origin on it; those of test processes that have ended are removed by
/// the next one, [`remove_dirs_of_ended_processes`]).
pub fn fresh_data_dir() -> PathBuf {
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    static SWEEP: std::sync::Once = std::sync::Once::new();
    SWEEP.call_once(|| {
        remove_dirs_of_ended_processes("estuary-test-", |rest| rest.split('-').next());
    });
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("estuary-test-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// Remove the directories `{temp}/{prefix}…` whose process id (`pid_of` the rest of the name) names
/// no running process: what tests that have ended left (a test process keeps its directories until
/// it ends, and nextest runs one process per test). Errors are ignored: another process may sweep at
/// the same time.
pub fn remove_dirs_of_ended_processes(prefix: &str, pid_of: impl Fn(&str) -> Option<&str>) {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(rest) = name.to_str().and_then(|n| n.strip_prefix(prefix)) else {
            continue;
        };
        let Some(pid) = pid_of(rest).and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        if pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// Run `f` (ffprobe, FFmpeg, node, a blocking wait) on a blocking thread, so that the caller's runtime
/// keeps serving an in-process origin.
pub async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.expect("blocking task")
}

/// Percentile (nearest rank) of sorted values; panics on an empty slice.
pub fn percentile<T: Copy>(sorted: &[T], p: f64) -> T {
    assert!(!sorted.is_empty(), "percentile of no values");
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// A tiny deterministic PRNG (xorshift64*): garbage bytes and fuzz mutations that reproduce.
#[derive(Debug, Clone)]
pub struct Rng(pub u64);

impl Rng {
    /// The next 64 random bits.
    #[allow(clippy::should_implement_trait)]
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

    /// `n` random bytes.
    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_take_the_nearest_rank() {
        let v: Vec<u32> = (1..=100).collect();
        assert_eq!(percentile(&v, 50.0), 50);
        assert_eq!(percentile(&v, 99.0), 99);
        assert_eq!(percentile(&v, 100.0), 100);
        assert_eq!(percentile(&v, 0.0), 1);
        assert_eq!(percentile(&[7], 99.0), 7);
    }

    #[test]
    fn the_repository_holds_the_fixtures() {
        assert!(repo().join("fixtures").is_dir());
    }
}

#[cfg(test)]
mod sweep_tests {
    #[test]
    fn directories_of_ended_processes_are_removed_and_live_ones_kept() {
        let temp = std::env::temp_dir();
        // Above Linux's largest pid_max (2^22): never a running process.
        let ended = temp.join("estuary-sweep-test-4999999-0");
        let live = temp.join(format!("estuary-sweep-test-{}-0", std::process::id()));
        let unparsed = temp.join("estuary-sweep-test-notapid");
        for dir in [&ended, &live, &unparsed] {
            std::fs::create_dir_all(dir.join("inner")).unwrap();
        }
        super::remove_dirs_of_ended_processes("estuary-sweep-test-", |rest| rest.split('-').next());
        assert!(!ended.exists());
        assert!(live.exists());
        assert!(unparsed.exists());
        for dir in [&live, &unparsed] {
            std::fs::remove_dir_all(dir).unwrap();
        }
    }
}
