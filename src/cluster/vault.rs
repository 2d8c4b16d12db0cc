//! Content keys in the cluster store, never in the clear: each stream's kept keys (the key file's
//! JSON, [`crate::hub::keys`]) sealed with AES-256-GCM (NIST SP 800-38D) under a key derived from the
//! server secret that every node shares, a random 96-bit nonce per write, and the stream name as
//! associated data (a sealed value moved to another stream's key does not open). Sans-IO.
//!
//! Stored form: `v1.` followed by base64url (no padding) of nonce (12 bytes) ‖ ciphertext ‖ tag
//! (16 bytes).

use aes_gcm::{
    Aes256Gcm, KeyInit, Nonce,
    aead::{Aead, Payload},
};
use base64::Engine;

const PREFIX: &str = "v1.";
const NONCE_BYTES: usize = 12;

/// Seals and opens a stream's keys under the cluster's vault key.
#[derive(Clone)]
pub struct KeyVault {
    cipher: Aes256Gcm,
}

impl std::fmt::Debug for KeyVault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeyVault(…)")
    }
}

/// Why a stored value did not open.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VaultError {
    /// Not `v1.` and base64url, or shorter than a nonce and a tag.
    #[error("malformed sealed keys")]
    Malformed,
    /// The tag does not verify: another secret, another stream, or altered bytes.
    #[error("sealed keys do not open (another server secret, another stream, or altered)")]
    Rejected,
}

impl KeyVault {
    /// A vault under `key` (32 bytes, derived from the server secret).
    pub fn new(key: &[u8; 32]) -> Self {
        Self {
            cipher: Aes256Gcm::new(key.into()),
        }
    }

    /// `plain` (a stream's keys) sealed for `stream` (`live/{name}`).
    pub fn seal(&self, stream: &str, plain: &[u8]) -> String {
        let mut nonce = [0u8; NONCE_BYTES];
        getrandom::fill(&mut nonce).expect("the OS random source works");
        let sealed = self
            .cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: plain,
                    aad: stream.as_bytes(),
                },
            )
            .expect("AES-GCM seals any message shorter than 64 GiB");
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        format!(
            "{PREFIX}{}",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(out)
        )
    }

    /// The plain bytes of `sealed`, stored for `stream`.
    ///
    /// Errors: [`VaultError::Malformed`], [`VaultError::Rejected`].
    pub fn open(&self, stream: &str, sealed: &str) -> Result<Vec<u8>, VaultError> {
        let bytes = sealed
            .strip_prefix(PREFIX)
            .and_then(|b| {
                base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .decode(b)
                    .ok()
            })
            .filter(|b| b.len() >= NONCE_BYTES + 16)
            .ok_or(VaultError::Malformed)?;
        let (nonce, body) = bytes.split_at(NONCE_BYTES);
        self.cipher
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: body,
                    aad: stream.as_bytes(),
                },
            )
            .map_err(|_| VaultError::Rejected)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_sealed_per_stream_and_never_stored_in_the_clear() {
        let vault = KeyVault::new(&[7; 32]);
        let plain = br#"{"hls":[{"id":1,"key":"00112233445566778899aabbccddeeff"}],"cenc":[]}"#;
        let sealed = vault.seal("live/a", plain);
        assert!(sealed.starts_with("v1."));
        assert!(!sealed.contains("00112233"));
        assert_ne!(
            sealed,
            vault.seal("live/a", plain),
            "a fresh nonce per write"
        );
        assert_eq!(vault.open("live/a", &sealed).unwrap(), plain);
        assert_eq!(vault.open("live/b", &sealed), Err(VaultError::Rejected));
        assert_eq!(
            KeyVault::new(&[8; 32]).open("live/a", &sealed),
            Err(VaultError::Rejected)
        );
        let mut altered = sealed.clone().into_bytes();
        let last = altered.len() - 2;
        altered[last] = if altered[last] == b'A' { b'B' } else { b'A' };
        assert_eq!(
            vault.open("live/a", std::str::from_utf8(&altered).unwrap()),
            Err(VaultError::Rejected)
        );
        assert_eq!(vault.open("live/a", "v1.!!"), Err(VaultError::Malformed));
        assert_eq!(vault.open("live/a", "plain"), Err(VaultError::Malformed));
    }
}
