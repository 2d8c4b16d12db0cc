//! Content keys of encrypted streams: random AES-128 keys from the operating system's CSPRNG.
//!
//! - HLS `METHOD=AES-128`: one key per `rotate_every` segments, and a random IV per segment.
//! - DASH CENC `cenc`: one key per key epoch (the packager's: one per stream, across re-publishes,
//!   see [`packager::dash`]), with a random 16-byte KID, served by KID through the ClearKey license
//!   endpoint; a random 64-bit IV base per segment and rendition. Never the same key as HLS.
//!
//! Key ids are `msn / rotate_every`: media sequence numbers never repeat for a stream name, so neither
//! do key URIs (a CDN may still hold old ones). Key material is never logged ([`ContentKey`]'s `Debug`
//! redacts it).
//!
//! Persistence: with a data directory, every stream's kept keys are written to
//! `{data_dir}/keys/live/{name}.json` (mode 0600, replaced atomically) whenever a key is created, and
//! read back when the stream is published again or a key is asked for after an origin restart, so
//! objects a CDN or a player still holds stay decryptable. The file holds key material: the data
//! directory must be private to the origin.

use std::{
    collections::VecDeque,
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
};

use packager::{
    cenc::CencKey,
    crypto::{ContentKey, KeySource},
};

/// Keys kept per stream: far more than a live window needs (12 segments rotate at most 12 times).
const KEYS_KEPT: usize = 64;
/// CENC keys kept per stream (one per re-publish).
const CENC_KEYS_KEPT: usize = 16;

/// One stream's keys, shared by its packager (which creates them) and the origin (which serves them).
#[derive(Debug, Default)]
pub struct KeyStore {
    keys: Mutex<VecDeque<Arc<ContentKey>>>,
    cenc: Mutex<VecDeque<Arc<CencKey>>>,
    /// Where the keys are persisted, if anywhere.
    file: Option<PathBuf>,
    /// Where else the kept keys go whenever a key is created (the cluster store).
    sink: Option<KeySink>,
}

/// Takes the kept keys (the key file's JSON) whenever a key is created; must not block.
pub struct KeySink(pub Box<dyn Fn(Vec<u8>) + Send + Sync>);

impl std::fmt::Debug for KeySink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeySink")
    }
}

/// The file of stream `name`'s keys (`live/{name}`, a validated name) under `data_dir`.
pub fn key_file(data_dir: &Path, name: &str) -> PathBuf {
    data_dir.join("keys").join(format!("{name}.json"))
}

/// What a key file holds (keys and KIDs in hex).
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct KeyFile {
    hls: Vec<HlsKeyEntry>,
    cenc: Vec<CencKeyEntry>,
}

#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct HlsKeyEntry {
    id: u64,
    key: String,
}

#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct CencKeyEntry {
    id: u64,
    kid: String,
    key: String,
}

/// 32 hex digits as 16 bytes (a key or a KID as key files write them); `None` for anything else.
pub(crate) fn unhex16(s: &str) -> Option<[u8; 16]> {
    if s.len() != 32 || !s.is_ascii() {
        return None;
    }
    let mut out = [0u8; 16];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

impl KeyStore {
    /// A store persisted in `file` (created when the first key is), with the keys the file already
    /// holds. A missing file is an empty store; an unreadable or malformed one is logged and ignored
    /// (new keys then replace it).
    pub fn open(file: Option<PathBuf>) -> Self {
        let store = Self {
            file,
            ..Self::default()
        };
        if let Some(path) = &store.file
            && let Some(saved) = Self::read(path)
        {
            store.merge(&saved);
        }
        store
    }

    /// Send the kept keys to `sink` whenever a key is created.
    pub fn with_sink(mut self, sink: KeySink) -> Self {
        self.sink = Some(sink);
        self
    }

    /// Add the keys of `json` (a key file's JSON, e.g. from the cluster store) that this store does
    /// not have, oldest first. False when `json` does not parse.
    pub fn merge_json(&self, json: &[u8]) -> bool {
        match serde_json::from_slice::<KeyFile>(json) {
            Ok(saved) => {
                self.merge(&saved);
                true
            }
            Err(_) => false,
        }
    }

    /// Keys from `saved` by id, before those this store already holds (which are newer), within the
    /// kept counts.
    fn merge(&self, saved: &KeyFile) {
        let mut keys = self.lock();
        let mut merged: VecDeque<Arc<ContentKey>> = saved
            .hls
            .iter()
            .filter(|e| !keys.iter().any(|k| k.id == e.id))
            .filter_map(|e| {
                Some(Arc::new(ContentKey {
                    id: e.id,
                    key: unhex16(&e.key)?,
                }))
            })
            .collect();
        merged.extend(keys.drain(..));
        while merged.len() > KEYS_KEPT {
            merged.pop_front();
        }
        *keys = merged;
        drop(keys);
        let mut cenc = self.lock_cenc();
        let mut merged: VecDeque<Arc<CencKey>> = saved
            .cenc
            .iter()
            .filter(|e| !cenc.iter().any(|k| k.id == e.id))
            .filter_map(|e| {
                Some(Arc::new(CencKey {
                    id: e.id,
                    kid: unhex16(&e.kid)?,
                    key: unhex16(&e.key)?,
                }))
            })
            .collect();
        merged.extend(cenc.drain(..));
        while merged.len() > CENC_KEYS_KEPT {
            merged.pop_front();
        }
        *cenc = merged;
    }

    /// The keys persisted in `file`, if it exists and parses (for a stream not being published, e.g.
    /// after a restart).
    pub fn load(file: &Path) -> Option<Self> {
        file.exists().then(|| Self::open(Some(file.to_owned())))
    }

    fn read(path: &Path) -> Option<KeyFile> {
        let text = match std::fs::read(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
            Err(error) => {
                tracing::warn!(path = %path.display(), %error, "cannot read the key file");
                return None;
            }
        };
        match serde_json::from_slice(&text) {
            Ok(f) => Some(f),
            Err(error) => {
                tracing::warn!(path = %path.display(), %error, "malformed key file ignored");
                None
            }
        }
    }

    /// The kept keys as a key file's JSON (key material: never logged).
    pub fn to_json(&self) -> Vec<u8> {
        let file = KeyFile {
            hls: self
                .lock()
                .iter()
                .map(|k| HlsKeyEntry {
                    id: k.id,
                    key: packager::crypto::hex(&k.key),
                })
                .collect(),
            cenc: self
                .lock_cenc()
                .iter()
                .map(|k| CencKeyEntry {
                    id: k.id,
                    kid: packager::crypto::hex(&k.kid),
                    key: packager::crypto::hex(&k.key),
                })
                .collect(),
        };
        serde_json::to_vec(&file).unwrap_or_default()
    }

    /// Write the kept keys to the file (0600, via a temporary file and a rename) and to the sink.
    fn persist(&self) {
        if self.file.is_none() && self.sink.is_none() {
            return;
        }
        let json = self.to_json();
        if let Some(path) = &self.file
            && let Err(error) = write_private(path, &json)
        {
            // Keys still serve from memory; only a restart would lose them.
            tracing::warn!(path = %path.display(), %error, "cannot persist content keys");
        }
        if let Some(sink) = &self.sink {
            (sink.0)(json);
        }
    }

    /// The CENC key whose KID is `kid`, while kept.
    pub fn cenc_by_kid(&self, kid: &[u8; 16]) -> Option<Arc<CencKey>> {
        self.lock_cenc().iter().find(|k| &k.kid == kid).cloned()
    }

    fn cenc_get_or_create(&self, id: u64) -> Arc<CencKey> {
        let mut keys = self.lock_cenc();
        if let Some(k) = keys.iter().find(|k| k.id == id) {
            return k.clone();
        }
        let key = Arc::new(CencKey {
            id,
            kid: random_block(),
            key: random_block(),
        });
        if keys.len() >= CENC_KEYS_KEPT {
            keys.pop_front();
        }
        keys.push_back(key.clone());
        drop(keys);
        tracing::info!(key_id = id, kid = %key.kid_uuid(), "new cenc content key");
        self.persist();
        key
    }

    fn lock_cenc(&self) -> std::sync::MutexGuard<'_, VecDeque<Arc<CencKey>>> {
        self.cenc.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The key with sequence number `id`, while kept.
    pub fn get(&self, id: u64) -> Option<Arc<ContentKey>> {
        self.lock().iter().find(|k| k.id == id).cloned()
    }

    fn get_or_create(&self, id: u64) -> Arc<ContentKey> {
        let mut keys = self.lock();
        if let Some(k) = keys.iter().find(|k| k.id == id) {
            return k.clone();
        }
        let key = Arc::new(ContentKey {
            id,
            key: random_block(),
        });
        if keys.len() >= KEYS_KEPT {
            keys.pop_front();
        }
        keys.push_back(key.clone());
        drop(keys);
        tracing::info!(key_id = id, "new content key");
        self.persist();
        key
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<Arc<ContentKey>>> {
        self.keys.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Write `bytes` to `path` readable by the owner only, replacing it atomically.
pub(crate) fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension("json.tmp");
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut f = options.open(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

/// 16 bytes from the operating system's CSPRNG.
fn random_block() -> [u8; 16] {
    let mut b = [0u8; 16];
    // getrandom(2) does not fail once the kernel's pool is initialised (long before a server starts);
    // encrypting with a predictable key instead would be worse than stopping.
    getrandom::fill(&mut b).expect("the OS random source works");
    b
}

/// The [`KeySource`] of one stream's packager.
#[derive(Debug)]
pub struct StreamKeys {
    store: Arc<KeyStore>,
    rotate_every: u64,
}

impl StreamKeys {
    /// Keys kept in `store`, a new one every `rotate_every` (≥ 1) segments.
    pub fn new(store: Arc<KeyStore>, rotate_every: u64) -> Self {
        Self {
            store,
            rotate_every: rotate_every.max(1),
        }
    }
}

impl KeySource for StreamKeys {
    fn segment_key(&mut self, msn: u64) -> (Arc<ContentKey>, [u8; 16]) {
        (
            self.store.get_or_create(msn / self.rotate_every),
            random_block(),
        )
    }

    fn cenc_key(&mut self, epoch: u64) -> (Arc<CencKey>, u64) {
        let mut iv = [0u8; 8];
        iv.copy_from_slice(&random_block()[..8]);
        (self.store.cenc_get_or_create(epoch), u64::from_be_bytes(iv))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_rotate_on_segment_boundaries_and_ivs_differ() {
        let store = Arc::new(KeyStore::default());
        let mut ks = StreamKeys::new(store.clone(), 3);
        let (a, iv_a) = ks.segment_key(30);
        let (b, iv_b) = ks.segment_key(32);
        let (c, _) = ks.segment_key(33);
        assert_eq!(a, b);
        assert_ne!(a.key, c.key);
        assert_ne!(iv_a, iv_b);
        assert_eq!(store.get(10).unwrap(), a);
        assert_eq!(store.get(11).unwrap(), c);
        assert!(store.get(9).is_none());
        // DASH: one key per epoch, found by its KID, never an HLS key.
        let (c1, iv1) = ks.cenc_key(30);
        let (c2, iv2) = ks.cenc_key(30);
        assert_eq!(c1, c2);
        assert_ne!(iv1, iv2);
        assert_ne!(c1.key, a.key);
        assert_eq!(store.cenc_by_kid(&c1.kid).unwrap(), c1);
        assert_ne!(ks.cenc_key(40).0.kid, c1.kid);
    }

    #[test]
    fn keys_go_to_the_sink_and_merge_into_another_store() {
        let sent = Arc::new(Mutex::new(Vec::<Vec<u8>>::new()));
        let sink = {
            let sent = sent.clone();
            KeySink(Box::new(move |json| sent.lock().unwrap().push(json)))
        };
        let first = Arc::new(KeyStore::default().with_sink(sink));
        let mut ks = StreamKeys::new(first.clone(), 2);
        let (old, _) = ks.segment_key(10);
        let (old_cenc, _) = ks.cenc_key(10);
        assert_eq!(sent.lock().unwrap().len(), 2, "every new key is sent");
        // Another node takes the stream over: its store adds the earlier keys to its own.
        let second = Arc::new(KeyStore::default());
        let (new, _) = StreamKeys::new(second.clone(), 2).segment_key(80);
        assert!(second.merge_json(sent.lock().unwrap().last().unwrap()));
        assert_eq!(second.get(5).unwrap(), old);
        assert_eq!(second.get(40).unwrap(), new);
        assert_eq!(second.cenc_by_kid(&old_cenc.kid).unwrap(), old_cenc);
        assert!(!second.merge_json(b"not json"));
    }

    #[test]
    fn keys_survive_a_restart_through_the_key_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = key_file(dir.path(), "live/demo");
        let store = Arc::new(KeyStore::open(Some(path.clone())));
        let mut ks = StreamKeys::new(store.clone(), 2);
        let (hls, _) = ks.segment_key(10);
        let (cenc, _) = ks.cenc_key(10);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        // "Restart": a new store from the file has both keys, and new keys add to them.
        let again = KeyStore::load(&path).expect("file exists");
        assert_eq!(again.get(5).unwrap(), hls);
        assert_eq!(again.cenc_by_kid(&cenc.kid).unwrap(), cenc);
        let again = Arc::new(again);
        let (next, _) = StreamKeys::new(again.clone(), 2).segment_key(12);
        assert_ne!(next.key, hls.key);
        let third = KeyStore::load(&path).unwrap();
        assert!(third.get(5).is_some() && third.get(6).is_some());
        // A malformed file is ignored, not fatal.
        std::fs::write(&path, b"{not json").unwrap();
        assert!(KeyStore::load(&path).unwrap().get(5).is_none());
        assert!(KeyStore::load(&dir.path().join("missing.json")).is_none());
    }
}
