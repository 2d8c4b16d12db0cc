//! HLS content protection, `METHOD=AES-128` (RFC 8216bis §4.4.4.4, §5.2): AES-128-CBC with PKCS#7
//! padding over a whole media object (a part or a segment), under the parent segment's key and IV.
//!
//! Sans-IO: keys and IVs come from a [`KeySource`] the caller provides (a CSPRNG, persistence). The
//! packager encrypts each object once, when it is produced.

use std::sync::Arc;

use aes::cipher::{BlockDecryptMut, BlockEncryptMut, KeyIvInit, block_padding::Pkcs7};

type Aes128CbcEnc = cbc::Encryptor<aes::Aes128>;
type Aes128CbcDec = cbc::Decryptor<aes::Aes128>;

/// One content key: its sequence number (named in key URIs, `keys/{id}.key`) and its 16 bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct ContentKey {
    /// Key sequence number, unique per stream name.
    pub id: u64,
    /// The AES-128 key.
    pub key: [u8; 16],
}

impl std::fmt::Debug for ContentKey {
    // Key material never reaches a log.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ContentKey")
            .field("id", &self.id)
            .field("key", &"[redacted]")
            .finish()
    }
}

/// Where segment keys come from: the key of the segment with media sequence number `msn` (rotated by
/// the source, on segment boundaries only) and a fresh random IV (one per segment and rendition).
pub trait KeySource: Send + std::fmt::Debug {
    /// The key and IV for a new segment `msn`.
    fn segment_key(&mut self, msn: u64) -> (Arc<ContentKey>, [u8; 16]);

    /// The DASH CENC key of key epoch `epoch` (one per packager: the msn of its first segment;
    /// distinct from every HLS key), and a fresh random IV base for one segment of one rendition
    /// ([`crate::cenc::CencSegmentKey`]).
    fn cenc_key(&mut self, epoch: u64) -> (Arc<crate::cenc::CencKey>, u64);
}

/// The key and IV a segment (and each of its parts) is encrypted with.
#[derive(Clone, PartialEq, Eq)]
pub struct SegmentKey {
    /// The content key.
    pub key: Arc<ContentKey>,
    /// The explicit IV, written as `IV=0x…` in EXT-X-KEY.
    pub iv: [u8; 16],
}

impl std::fmt::Debug for SegmentKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SegmentKey")
            .field("key", &self.key)
            .field("iv", &hex(&self.iv))
            .finish()
    }
}

/// Encrypt `plaintext` as one AES-128-CBC message with PKCS#7 padding (RFC 8216bis §4.4.4.4). The
/// output is 1–16 bytes longer than the input (a whole block of padding when it is block-aligned).
pub fn encrypt_aes128_cbc(key: &[u8; 16], iv: &[u8; 16], plaintext: &[u8]) -> Vec<u8> {
    Aes128CbcEnc::new(key.into(), iv.into()).encrypt_padded_vec_mut::<Pkcs7>(plaintext)
}

/// Decrypt what [`encrypt_aes128_cbc`] produced. Errors: the length is not a whole number of blocks or
/// the padding is malformed (wrong key or IV).
pub fn decrypt_aes128_cbc(
    key: &[u8; 16],
    iv: &[u8; 16],
    ciphertext: &[u8],
) -> Result<Vec<u8>, CryptoError> {
    Aes128CbcDec::new(key.into(), iv.into())
        .decrypt_padded_vec_mut::<Pkcs7>(ciphertext)
        .map_err(|_| CryptoError::BadPadding)
}

/// A ciphertext that does not decrypt.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CryptoError {
    /// Not a whole number of blocks, or invalid PKCS#7 padding.
    #[error("not an AES-128-CBC/PKCS#7 message for this key and IV")]
    BadPadding,
}

/// Lower-case hexadecimal.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_padding_lengths() {
        let key = [7u8; 16];
        let iv = [9u8; 16];
        for len in [0usize, 1, 15, 16, 17, 1000] {
            let pt: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let ct = encrypt_aes128_cbc(&key, &iv, &pt);
            assert_eq!(ct.len(), (len / 16 + 1) * 16);
            assert_eq!(decrypt_aes128_cbc(&key, &iv, &ct).unwrap(), pt);
        }
        let ct = encrypt_aes128_cbc(&key, &iv, b"hello");
        assert!(
            decrypt_aes128_cbc(&[8u8; 16], &iv, &ct).is_err() || {
                // A wrong key yields valid padding with probability ~1/256: then the bytes differ.
                decrypt_aes128_cbc(&[8u8; 16], &iv, &ct).unwrap() != b"hello"
            }
        );
    }

    #[test]
    fn debug_never_shows_key_material() {
        let k = ContentKey {
            id: 3,
            key: [0xab; 16],
        };
        assert!(!format!("{k:?}").contains("ab"));
    }
}
