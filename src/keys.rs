//! Content keys of encrypted streams: random AES-128 keys from the operating system's CSPRNG.
//!
//! - HLS `METHOD=AES-128`: one key per `rotate_every` segments, and a random IV per segment.
//! - DASH CENC `cenc`: one key per key epoch (the packager's: from the stream's start or a re-publish,
//!   i.e. one per DASH Period), with a random 16-byte KID, served by KID through the ClearKey license
//!   endpoint; a random 64-bit IV base per segment and rendition. Never the same key as HLS.
//!
//! Key ids are `msn / rotate_every`: media sequence numbers never repeat for a stream name, so neither
//! do key URIs (a CDN may still hold old ones). Key material is never logged ([`ContentKey`]'s `Debug`
//! redacts it).

use std::{
    collections::VecDeque,
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
}

impl KeyStore {
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
        tracing::info!(key_id = id, kid = %key.kid_uuid(), "new cenc content key");
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
        tracing::info!(key_id = id, "new content key");
        key
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<Arc<ContentKey>>> {
        self.keys.lock().unwrap_or_else(|p| p.into_inner())
    }
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
}
