//! Zero-copy sending of media objects: a complete segment or part held in memory is mirrored once
//! into a sealed memory file (`memfd`), and every HTTP/1.1 response for it is sent from that file with
//! `sendfile(2)`, which hands the file's pages to the socket instead of copying the body from the
//! process into it on each request (what nginx does from the page cache).
//!
//! Where mirrors live: by default anonymous memory files (`memfd_create`), which never touch a disk
//! but are kept in 4 KiB pages unless the kernel's shmem large folios are enabled (logged at start
//! when they are not), so the kernel walks every page of every body it sends. With
//! `server.http_sendfile_dir`, mirrors are unnamed files (`O_TMPFILE`) in that directory instead:
//! page-cache files, as nginx serves, in the large folios ext4 and xfs use on Linux 6.x, which halves
//! the kernel's work per byte sent. Their dirty pages may be written back to that disk if they
//! outlive the kernel's `dirty_expire_centisecs` (30 s by default; a mirror lives as long as its
//! object stays in the live window) or when the dirty limit is reached, so the directory should be on
//! a disk that can take the streams' bit rate, or on tmpfs.
//!
//! A mirror is made on the first request of an object of at least [`MIN_BYTES`], and kept while the
//! object is in the live window (the lifetime its response announces) and within the cache's byte
//! budget (least recently used first out). Objects are named once and never change, so a mirror is
//! found by the identity of the object's shared chunks: the cache entry holds those chunks, so their
//! memory cannot be reused by another object while the entry exists. The mirrors' pages are the
//! kernel's (shared memory), not in the process's resident set: their total is the
//! `estuary_http_sendfile_cache_bytes` gauge.

use std::{
    collections::HashMap,
    os::fd::{AsFd, OwnedFd},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use bytes::Bytes;

/// Smallest body sent from a mirror, bytes: below it the copy costs less than the mirror.
pub(super) const MIN_BYTES: u64 = 32 * 1024;

/// One object's mirror.
struct Mirror {
    /// The object's chunks: their addresses identify it, and holding them keeps the addresses from
    /// being reused.
    chunks: Vec<Bytes>,
    file: Arc<OwnedFd>,
    len: u64,
    expires: Instant,
    used: u64,
}

/// The origin's mirrors, within a byte budget.
#[derive(Default)]
pub(super) struct MirrorCache {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    by_key: HashMap<u64, Mirror>,
    bytes: u64,
    budget: u64,
    clock: u64,
    /// Where mirrors are made: `None` for memory files.
    dir: Option<std::path::PathBuf>,
}

impl std::fmt::Debug for MirrorCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        f.debug_struct("MirrorCache")
            .field("objects", &inner.by_key.len())
            .field("bytes", &inner.bytes)
            .finish()
    }
}

/// The identity of an object's chunks: their addresses and lengths.
fn key_of(chunks: &[Bytes]) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    for c in chunks {
        (c.as_ptr() as usize, c.len()).hash(&mut h);
    }
    h.finish()
}

fn same(a: &[Bytes], b: &[Bytes]) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b)
            .all(|(x, y)| x.as_ptr() == y.as_ptr() && x.len() == y.len())
}

impl MirrorCache {
    /// A cache of at most `budget` bytes of mirrors (0: no mirrors, every body is copied), made as
    /// unnamed files in `dir`, or as memory files when `dir` is `None` or cannot hold unnamed files
    /// (logged).
    pub(super) fn new(budget: u64, dir: Option<&std::path::Path>) -> Self {
        let dir = dir.and_then(|d| match make_file(&[Bytes::from_static(b"probe")], Some(d)) {
            Ok(_) => Some(d.to_path_buf()),
            Err(error) => {
                tracing::warn!(dir = %d.display(), %error, "server.http_sendfile_dir cannot hold unnamed files (O_TMPFILE): mirrors are memory files");
                None
            }
        });
        if budget > 0 && dir.is_none() {
            let root = std::path::Path::new(SHMEM_THP);
            let read = |p: std::path::PathBuf| std::fs::read_to_string(p).ok();
            let sizes: Vec<String> = std::fs::read_dir(root)
                .map(|d| {
                    d.filter_map(|e| e.ok())
                        .filter_map(|e| read(e.path().join("shmem_enabled")))
                        .collect()
                })
                .unwrap_or_default();
            if let Some(top) = read(root.join("shmem_enabled"))
                && !shmem_large_folios(&top, &sizes)
            {
                tracing::info!(
                    "sendfile mirrors are memory files in 4 KiB pages (the kernel's shmem large folios are off): \
                     echo within_size > {SHMEM_THP}/shmem_enabled, and always > {SHMEM_THP}/hugepages-64kB/shmem_enabled, \
                     or server.http_sendfile_dir, serve cached objects with less CPU (docs/operations.md)"
                );
            }
        }
        Self {
            inner: Mutex::new(Inner {
                budget,
                dir,
                ..Default::default()
            }),
        }
    }

    /// Bytes of mirrors held now.
    pub(super) fn bytes(&self) -> u64 {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).bytes
    }

    /// The mirror of the object made of `chunks` (`len` bytes in all), made now if there is none:
    /// `None` when the object is too small or too large for the budget, or the mirror cannot be made
    /// (then the body is sent from memory, and the failure is logged once per process).
    pub(super) fn mirror(
        &self,
        chunks: &[Bytes],
        len: u64,
        lifetime: Duration,
    ) -> Option<Arc<OwnedFd>> {
        if len < MIN_BYTES {
            return None;
        }
        let key = key_of(chunks);
        let now = Instant::now();
        let dir = {
            let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
            if len > inner.budget / 4 {
                return None;
            }
            inner.clock += 1;
            let clock = inner.clock;
            // A hash collision or an expired mirror is replaced below.
            if let Some(m) = inner.by_key.get_mut(&key)
                && same(&m.chunks, chunks)
                && m.expires > now
            {
                m.used = clock;
                return Some(m.file.clone());
            }
            inner.dir.clone()
        };
        // Made outside the lock: one write of the object into a new file.
        let file = match make_file(chunks, dir.as_deref()) {
            Ok(f) => Arc::new(f),
            Err(error) => {
                static ONCE: std::sync::Once = std::sync::Once::new();
                ONCE.call_once(|| {
                    tracing::warn!(%error, "sendfile mirrors unavailable: media bodies are copied");
                });
                return None;
            }
        };
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let clock = inner.clock;
        if let Some(old) = inner.by_key.insert(
            key,
            Mirror {
                chunks: chunks.to_vec(),
                file: file.clone(),
                len,
                expires: now + lifetime,
                used: clock,
            },
        ) {
            inner.bytes -= old.len;
        }
        inner.bytes += len;
        inner.evict(now);
        Some(file)
    }
}

impl Inner {
    /// Drop expired mirrors, then the least recently used while over the budget.
    fn evict(&mut self, now: Instant) {
        let before = self.by_key.len();
        self.by_key.retain(|_, m| m.expires > now);
        if self.by_key.len() != before {
            self.bytes = self.by_key.values().map(|m| m.len).sum();
        }
        while self.bytes > self.budget {
            let Some((&key, _)) = self.by_key.iter().min_by_key(|(_, m)| m.used) else {
                break;
            };
            if let Some(m) = self.by_key.remove(&key) {
                self.bytes -= m.len;
            }
        }
    }
}

/// The kernel's transparent huge page settings (Documentation/admin-guide/mm/transhuge.rst).
const SHMEM_THP: &str = "/sys/kernel/mm/transparent_hugepage";

/// Whether pages written into a memory file may be large folios, from the `shmem_enabled` setting
/// (`top`) and the per-size ones (`hugepages-*kB/shmem_enabled`): the selected value is the one in
/// brackets. `advise` does not count: it applies to mappings, and mirrors are filled with `write`.
fn shmem_large_folios(top: &str, sizes: &[String]) -> bool {
    let selected = |s: &str| {
        s.split_whitespace()
            .find_map(|w| w.strip_prefix('[')?.strip_suffix(']'))
            .unwrap_or("never")
            .to_owned()
    };
    let writes = |v: &str| matches!(v, "always" | "within_size" | "force");
    let top = selected(top);
    writes(&top)
        || sizes
            .iter()
            .map(|s| selected(s))
            .any(|v| writes(&v) || (v == "inherit" && writes(&top)))
}

/// A file holding `chunks` back to back: an unnamed file (`O_TMPFILE`, mode 0600) in `dir`, or a
/// sealed memory file (no more writes, no resizing) without one.
fn make_file(chunks: &[Bytes], dir: Option<&std::path::Path>) -> std::io::Result<OwnedFd> {
    use rustix::fs::{MemfdFlags, Mode, OFlags, SealFlags};
    let fd = match dir {
        Some(dir) => rustix::fs::open(
            dir,
            OFlags::TMPFILE | OFlags::RDWR | OFlags::CLOEXEC,
            Mode::RUSR | Mode::WUSR,
        )?,
        None => rustix::fs::memfd_create(
            "estuary-object",
            MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING,
        )?,
    };
    let mut file = std::fs::File::from(fd);
    for c in chunks {
        std::io::Write::write_all(&mut file, c)?;
    }
    let fd = OwnedFd::from(file);
    if dir.is_none() {
        rustix::fs::fcntl_add_seals(
            fd.as_fd(),
            SealFlags::WRITE | SealFlags::GROW | SealFlags::SHRINK | SealFlags::SEAL,
        )?;
    }
    Ok(fd)
}

/// Send `head` (with `MSG_MORE`, so that it leaves in the body's first packet) and then `len` bytes
/// of `file` on `stream`, waiting whenever the socket is full.
pub(super) async fn send_head_and_file(
    stream: &tokio::net::TcpStream,
    head: &[u8],
    file: &OwnedFd,
    len: u64,
) -> std::io::Result<()> {
    use tokio::io::Interest;
    let mut sent = 0;
    while sent < head.len() {
        let n = stream
            .async_io(Interest::WRITABLE, || {
                rustix::net::send(stream, &head[sent..], rustix::net::SendFlags::MORE)
                    .map_err(std::io::Error::from)
            })
            .await?;
        if n == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        sent += n;
    }
    let mut offset = 0u64;
    while offset < len {
        let count = usize::try_from(len - offset)
            .unwrap_or(usize::MAX)
            .min(1 << 30);
        let n = stream
            .async_io(Interest::WRITABLE, || {
                rustix::fs::sendfile(stream, file, Some(&mut offset), count)
                    .map_err(std::io::Error::from)
            })
            .await?;
        if n == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shmem_large_folios_follow_the_selected_settings() {
        let never = "always within_size advise [never] deny force\n";
        let size_never = "always inherit within_size advise [never]\n".to_string();
        let size_inherit = "always [inherit] within_size advise never\n".to_string();
        let size_always = "[always] inherit within_size advise never\n".to_string();
        assert!(!shmem_large_folios(
            never,
            &[size_never.clone(), size_inherit.clone()]
        ));
        assert!(!shmem_large_folios(
            "always within_size [advise] never deny force",
            std::slice::from_ref(&size_inherit)
        ));
        assert!(shmem_large_folios(never, &[size_never, size_always]));
        assert!(shmem_large_folios(
            "always [within_size] advise never deny force",
            &[size_inherit]
        ));
    }

    #[test]
    fn mirrors_are_found_by_identity_and_kept_within_the_budget() {
        let dir = tempfile::tempdir().unwrap();
        for dir in [None, Some(dir.path())] {
            mirrors_behave(dir);
        }
    }

    fn mirrors_behave(dir: Option<&std::path::Path>) {
        let cache = MirrorCache::new(400 * 1024, dir);
        assert_eq!(cache.inner.lock().unwrap().dir.as_deref(), dir);
        let a = vec![
            Bytes::from(vec![1u8; 40_000]),
            Bytes::from(vec![2u8; 30_000]),
        ];
        let b = vec![Bytes::from(vec![3u8; 90_000])];
        let life = Duration::from_secs(60);
        let fa = cache.mirror(&a, 70_000, life).expect("mirror of a");
        assert!(Arc::ptr_eq(&fa, &cache.mirror(&a, 70_000, life).unwrap()));
        // Equal bytes elsewhere in memory are another object.
        let a2 = vec![Bytes::from(a[0].to_vec()), Bytes::from(a[1].to_vec())];
        assert!(!Arc::ptr_eq(&fa, &cache.mirror(&a2, 70_000, life).unwrap()));
        let fb = cache.mirror(&b, 90_000, life).unwrap();
        // The file holds the chunks back to back.
        let mut back = vec![0u8; 90_001];
        let f = std::fs::File::from(fb.as_ref().try_clone().unwrap());
        let n = std::os::unix::fs::FileExt::read_at(&f, &mut back, 0).unwrap();
        assert_eq!(&back[..n], &b[0][..]);
        assert_eq!(cache.bytes(), 230_000);
        // Small objects are not mirrored; nor is one over a quarter of the budget.
        assert!(cache.mirror(&[Bytes::from_static(b"x")], 1, life).is_none());
        let big = vec![Bytes::from(vec![0u8; 200_000])];
        assert!(cache.mirror(&big, 200_000, life).is_none());
        // Over the budget the least recently used go: `a2` then `a`'s first mirror...
        for _ in 0..3 {
            let c = vec![Bytes::from(vec![4u8; 90_000])];
            cache.mirror(&c, 90_000, life).unwrap();
        }
        assert!(cache.bytes() <= 400 * 1024);
        // ...and an expired mirror is made again.
        let d = vec![Bytes::from(vec![5u8; 50_000])];
        let fd = cache.mirror(&d, 50_000, Duration::ZERO).unwrap();
        assert!(!Arc::ptr_eq(&fd, &cache.mirror(&d, 50_000, life).unwrap()));
    }
}
