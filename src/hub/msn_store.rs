//! Media sequence numbers that never repeat, restarts and crashes included.
//!
//! CDNs cache segments, parts and init segments as immutable by URL, and those URLs carry the media
//! sequence number: a number served once must never name other bytes. Within a process the hub
//! continues each stream's numbering; across restarts (a `SIGTERM`, a `kill -9`, a crash) the
//! high-water mark is kept in the data directory, **reserved ahead of use**: before a stream uses a
//! number at or past its reservation, the reservation is moved [`RESERVE_BLOCK`] numbers further and
//! written (fsync, atomic rename), so a number in use — the segment in progress included — is always
//! below what is on disk. A restarted origin starts past the reservation (and past the Unix time in
//! seconds, for a data directory that was lost).
//!
//! File: `{data_dir}/msn/live/{name}` holding the reserved number in decimal.

use std::path::{Path, PathBuf};

/// How many numbers one write reserves: one write per 64 segments (about two minutes at 2 s).
pub const RESERVE_BLOCK: u64 = 64;

/// The reservation file of stream `name` (`live/{name}`, a validated name) under `data_dir`.
pub fn msn_file(data_dir: &Path, name: &str) -> PathBuf {
    data_dir.join("msn").join(name)
}

/// The number reserved for stream `name` in `data_dir`: every number below it may have been used.
/// `None` when there is no (readable) reservation.
pub fn load(data_dir: &Path, name: &str) -> Option<u64> {
    let text = std::fs::read_to_string(msn_file(data_dir, name)).ok()?;
    text.trim().parse().ok()
}

/// Reserve every number below `reserved` for stream `name`: written before any of them is used.
///
/// Errors: the file cannot be written (the caller logs it; numbering then relies on the clock).
pub fn store(data_dir: &Path, name: &str, reserved: u64) -> std::io::Result<()> {
    crate::hub::keys::write_private(&msn_file(data_dir, name), reserved.to_string().as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservation_round_trips_and_a_missing_or_bad_file_is_none() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(load(dir.path(), "live/a"), None);
        store(dir.path(), "live/a", 1_800_000_064).unwrap();
        assert_eq!(load(dir.path(), "live/a"), Some(1_800_000_064));
        store(dir.path(), "live/a", 1_800_000_128).unwrap();
        assert_eq!(load(dir.path(), "live/a"), Some(1_800_000_128));
        std::fs::write(msn_file(dir.path(), "live/b"), "junk").unwrap_or_else(|_| {
            std::fs::create_dir_all(dir.path().join("msn/live")).unwrap();
            std::fs::write(msn_file(dir.path(), "live/b"), "junk").unwrap();
        });
        assert_eq!(load(dir.path(), "live/b"), None);
    }
}
