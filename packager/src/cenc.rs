//! DASH content protection with Common Encryption, scheme `cenc` (ISO/IEC 23001-7 §10.1): AES-128 in
//! counter mode, 8-byte per-sample IVs, subsample encryption of NAL-structured video (§9.5).
//!
//! Sans-IO: keys and IVs come from the caller ([`crate::crypto::KeySource`]). The packager encrypts each
//! CMAF chunk once, when it is produced ([`crate::cmaf::write_chunk`] with [`SampleProtection`]s), and
//! writes a protected init segment per key (`encv`/`enca` with `sinf`, a W3C ClearKey `pssh`).
//!
//! What is encrypted, per sample:
//! - AAC: the whole sample (no subsamples).
//! - H.264 / HEVC (4-byte NAL lengths): every VCL NAL unit's slice data; its length field, NAL unit
//!   header and slice (segment) header stay clear (ISO/IEC 23001-7 §9.5.2.2: only video data in slice
//!   NALs is encrypted; the header's length comes from parsing it with the stream's SPS and PPS,
//!   [`media::avc::slice_header_bytes`], [`media::hevc_slice::slice_header_bytes`]). The protected range of each NAL unit is a whole
//!   number of 16-byte blocks and the remainder stays clear at its start (the alignment §9.5.2
//!   recommends so that 'cenc' and pattern-based decryptors agree). Non-VCL NAL units (SEI, AUD,
//!   parameter sets) stay clear. Protected ranges of one sample form one keystream: the counter
//!   continues from one range to the next (§9.5.2.5).
//!
//! A slice whose header does not parse (logged once; e.g. H.264 slice groups, HEVC screen content
//! coding) keeps only its NAL unit header clear and is encrypted from there: decryptors (EME CDMs,
//! FFmpeg) do not care; a device that parses slice headers before decryption would.

use std::sync::Arc;

use aes::cipher::{KeyIvInit, StreamCipher};

type Aes128Ctr = ctr::Ctr64BE<aes::Aes128>;

/// W3C "Common" PSSH system ID 1077efec-c0b2-4d02-ace3-3c1e52e2fb4b (W3C EME "cenc" Initialization Data
/// Format §2): its `pssh` lists the KIDs a ClearKey CDM asks a license for.
pub const W3C_COMMON_SYSTEM_ID: [u8; 16] = [
    0x10, 0x77, 0xef, 0xec, 0xc0, 0xb2, 0x4d, 0x02, 0xac, 0xe3, 0x3c, 0x1e, 0x52, 0xe2, 0xfb, 0x4b,
];
/// DASH-IF ClearKey ContentProtection scheme (DASH-IF IOP, W3C ClearKey).
pub const CLEARKEY_SCHEME_URI: &str = "urn:uuid:e2719d58-a985-b3c9-781a-b030af78d30e";
/// MPEG-DASH mp4protection scheme (ISO/IEC 23009-1 §5.8.5.2), `value="cenc"`.
pub const MP4_PROTECTION_SCHEME_URI: &str = "urn:mpeg:dash:mp4protection:2011";
/// Per-sample IV size written in `tenc` and `senc` (bytes): 8, the 64-bit IV of §9.2 (the low 64 bits
/// of the counter block are the block counter).
pub const PER_SAMPLE_IV_BYTES: u8 = 8;

/// One CENC content key: its sequence number (unique per stream name), its key ID (KID, the
/// `default_KID` of `tenc` and the MPD) and its 16 bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct CencKey {
    /// Key sequence number (names the protected init segments that carry it).
    pub id: u64,
    /// Key ID (random, 16 bytes).
    pub kid: [u8; 16],
    /// The AES-128 key.
    pub key: [u8; 16],
}

impl std::fmt::Debug for CencKey {
    // Key material never reaches a log.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CencKey")
            .field("id", &self.id)
            .field("kid", &crate::crypto::hex(&self.kid))
            .field("key", &"[redacted]")
            .finish()
    }
}

impl CencKey {
    /// The KID in the UUID form of the MPD's `cenc:default_KID` (ISO/IEC 23001-7 §11.2),
    /// e.g. `10000000-1000-1000-1000-100000000001`.
    pub fn kid_uuid(&self) -> String {
        kid_uuid(&self.kid)
    }
}

/// A KID in UUID form (8-4-4-4-12 lower-case hex digits).
pub fn kid_uuid(kid: &[u8; 16]) -> String {
    let h = crate::crypto::hex(kid);
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

/// The key and IV base a segment's samples are encrypted with: sample `i` of the segment (in decode
/// order, counting all its parts) uses IV `iv_base + i` (wrapping), so IVs never repeat within a key
/// for any practical number of samples (the base is random per segment and rendition).
#[derive(Clone, PartialEq, Eq)]
pub struct CencSegmentKey {
    /// The content key.
    pub key: Arc<CencKey>,
    /// IV of the segment's first sample.
    pub iv_base: u64,
}

impl std::fmt::Debug for CencSegmentKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CencSegmentKey")
            .field("key", &self.key)
            .field("iv_base", &format_args!("{:016x}", self.iv_base))
            .finish()
    }
}

/// One subsample (ISO/IEC 23001-7 §7.2.2): clear bytes, then protected bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Subsample {
    /// `BytesOfClearData`.
    pub clear_bytes: u16,
    /// `BytesOfProtectedData`.
    pub protected_bytes: u32,
}

/// The sample auxiliary information of one encrypted sample (what `senc` carries for it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SampleProtection {
    /// The 8-byte IV (`InitializationVector`).
    pub iv: [u8; 8],
    /// Subsamples; empty when the whole sample is protected (audio).
    pub subsamples: Vec<Subsample>,
}

impl SampleProtection {
    /// Size of this sample's auxiliary information in `senc` (bytes), as `saiz` records it.
    pub fn aux_info_bytes(&self, has_subsamples: bool) -> usize {
        usize::from(PER_SAMPLE_IV_BYTES)
            + if has_subsamples {
                2 + 6 * self.subsamples.len()
            } else {
                0
            }
    }
}

/// How samples of a track are laid out for subsample encryption.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SampleFraming {
    /// Encrypt whole samples (AAC).
    Whole,
    /// H.264: 4-byte NAL unit lengths, 1-byte NAL unit header, VCL types 1..=5, slice headers parsed
    /// with these parameter sets.
    Avc(Arc<AvcParameterSets>),
    /// HEVC: 4-byte NAL unit lengths, 2-byte NAL unit header, VCL types 0..=31, slice segment headers
    /// parsed with these parameter sets.
    Hevc(Arc<HevcParameterSets>),
}

impl SampleFraming {
    /// True when samples carry subsample information (video).
    pub fn has_subsamples(&self) -> bool {
        *self != Self::Whole
    }

    /// The framing of samples that `config` describes.
    pub fn for_config(config: &media::CodecConfig) -> Self {
        match config {
            media::CodecConfig::Avc(avc) => Self::Avc(Arc::new(AvcParameterSets::from_config(avc))),
            media::CodecConfig::Hevc(hevc) => {
                Self::Hevc(Arc::new(HevcParameterSets::from_config(hevc)))
            }
            media::CodecConfig::Aac(_) | media::CodecConfig::Decodable(_) => Self::Whole,
        }
    }
}

/// The parsed SPS and PPS of an HEVC track (those that parse), for slice segment header lengths.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HevcParameterSets {
    /// Sequence parameter sets.
    pub sps: Vec<media::hevc_slice::HevcSliceSps>,
    /// Picture parameter sets.
    pub pps: Vec<media::hevc_slice::HevcSlicePps>,
}

impl HevcParameterSets {
    /// From an hvcC record's parameter sets.
    pub fn from_config(hevc: &media::hevc::HevcConfig) -> Self {
        Self {
            sps: hevc
                .sps
                .iter()
                .filter_map(|n| media::hevc_slice::parse_sps(n).ok())
                .collect(),
            pps: hevc
                .pps
                .iter()
                .filter_map(|n| media::hevc_slice::parse_pps(n).ok())
                .collect(),
        }
    }
}

/// The parsed SPS and PPS of an H.264 track (those that parse), for slice header lengths.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AvcParameterSets {
    /// Sequence parameter sets.
    pub sps: Vec<media::avc::AvcSps>,
    /// Picture parameter sets.
    pub pps: Vec<media::avc::AvcPps>,
}

impl AvcParameterSets {
    /// From an avcC record's parameter sets.
    pub fn from_config(avc: &media::avc::AvcConfig) -> Self {
        Self {
            sps: avc
                .sps
                .iter()
                .filter_map(|n| media::avc::parse_sps(n).ok())
                .collect(),
            pps: avc
                .pps
                .iter()
                .filter_map(|n| media::avc::parse_pps(n).ok())
                .collect(),
        }
    }
}

/// Set once a slice header failed to parse (logged once per process).
static SLICE_HEADER_ERROR_LOGGED: std::sync::atomic::AtomicBool =
    std::sync::atomic::AtomicBool::new(false);

/// Bytes of the NAL unit length field of our samples (the packager's avcC/hvcC say 4).
const NAL_LENGTH_BYTES: usize = 4;
/// Largest `BytesOfClearData` of one subsample.
const MAX_CLEAR_BYTES: usize = u16::MAX as usize;

/// The subsamples of one video sample: see the module docs for what stays clear. A sample whose NAL
/// lengths do not add up keeps the rest clear from the first inconsistent length on (never an error:
/// encryption never fails on media the packager accepted).
pub fn subsamples(framing: &SampleFraming, sample: &[u8]) -> Vec<Subsample> {
    let header_bytes = match framing {
        SampleFraming::Whole => return Vec::new(),
        SampleFraming::Avc(_) => 1,
        SampleFraming::Hevc(_) => 2,
    };
    let mut out = Vec::new();
    let mut clear = 0usize;
    let mut pos = 0usize;
    while pos < sample.len() {
        let nal_len = sample
            .get(pos..pos + NAL_LENGTH_BYTES)
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize);
        let Some(nal_len) = nal_len.filter(|n| pos + NAL_LENGTH_BYTES + n <= sample.len()) else {
            clear += sample.len() - pos;
            break;
        };
        let nal = &sample[pos + NAL_LENGTH_BYTES..pos + NAL_LENGTH_BYTES + nal_len];
        let is_vcl = match framing {
            SampleFraming::Avc(_) => nal.first().is_some_and(|h| (1..=5).contains(&(h & 0x1F))),
            SampleFraming::Hevc(_) => nal.first().is_some_and(|h| (h >> 1) & 0x3F <= 31),
            SampleFraming::Whole => false,
        };
        // What stays clear at the start of a VCL NAL unit: its header and its slice header.
        let parsed = match framing {
            SampleFraming::Avc(ps) if is_vcl && matches!(nal[0] & 0x1F, 1 | 5) => {
                Some(media::avc::slice_header_bytes(nal, &ps.sps, &ps.pps))
            }
            SampleFraming::Hevc(ps)
                if is_vcl && matches!((nal[0] >> 1) & 0x3F, 0..=9 | 16..=21) =>
            {
                Some(media::hevc_slice::slice_header_bytes(nal, &ps.sps, &ps.pps))
            }
            _ => None,
        };
        let clear_head = match parsed {
            Some(Ok(n)) => n,
            Some(Err(error)) => {
                if !SLICE_HEADER_ERROR_LOGGED.swap(true, std::sync::atomic::Ordering::Relaxed) {
                    tracing::warn!(%error, "slice header not parsed: encrypted with the slice data (logged once)");
                }
                header_bytes
            }
            None => header_bytes,
        };
        let total = NAL_LENGTH_BYTES + nal_len;
        let protected = if is_vcl && nal_len > clear_head {
            (nal_len - clear_head) / 16 * 16
        } else {
            0
        };
        clear += total - protected;
        if protected > 0 {
            push_subsample(&mut out, &mut clear, protected);
        }
        pos += total;
    }
    if clear > 0 {
        push_subsample(&mut out, &mut clear, 0);
    }
    out
}

/// Emit `clear` clear bytes (split at 65535) followed by `protected` protected bytes.
fn push_subsample(out: &mut Vec<Subsample>, clear: &mut usize, protected: usize) {
    while *clear > MAX_CLEAR_BYTES {
        out.push(Subsample {
            clear_bytes: u16::MAX,
            protected_bytes: 0,
        });
        *clear -= MAX_CLEAR_BYTES;
    }
    out.push(Subsample {
        clear_bytes: u16::try_from(*clear).unwrap_or(u16::MAX),
        // A sample is at most 4 GiB (the chunk writer rejects bigger ones).
        protected_bytes: u32::try_from(protected).unwrap_or(u32::MAX),
    });
    *clear = 0;
}

/// Encrypt one sample with AES-128-CTR under `key` and the 8-byte `iv` (counter block = IV ‖ 64-bit
/// block counter from 0, ISO/IEC 23001-7 §9.2): the protected ranges of `subsamples` (all of the
/// sample when empty), as one keystream. Returns the encrypted sample, the same length as `sample`.
/// Decryption is the same operation ([`decrypt_sample`]).
pub fn encrypt_sample(
    key: &[u8; 16],
    iv: &[u8; 8],
    subsamples: &[Subsample],
    sample: &[u8],
) -> Vec<u8> {
    let mut out = sample.to_vec();
    apply_ctr(key, iv, subsamples, &mut out);
    out
}

/// Decrypt a sample encrypted by [`encrypt_sample`] (CTR is its own inverse).
pub fn decrypt_sample(
    key: &[u8; 16],
    iv: &[u8; 8],
    subsamples: &[Subsample],
    sample: &[u8],
) -> Vec<u8> {
    encrypt_sample(key, iv, subsamples, sample)
}

fn apply_ctr(key: &[u8; 16], iv: &[u8; 8], subsamples: &[Subsample], data: &mut [u8]) {
    let mut counter_block = [0u8; 16];
    counter_block[..8].copy_from_slice(iv);
    let mut cipher = Aes128Ctr::new(key.into(), (&counter_block).into());
    if subsamples.is_empty() {
        cipher.apply_keystream(data);
        return;
    }
    let mut pos = 0usize;
    for s in subsamples {
        pos = pos.saturating_add(usize::from(s.clear_bytes));
        let end = pos
            .saturating_add(s.protected_bytes as usize)
            .min(data.len());
        if pos < end {
            cipher.apply_keystream(&mut data[pos..end]);
        }
        pos = end;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nal(header: &[u8], payload_len: usize) -> Vec<u8> {
        let mut v = u32::try_from(header.len() + payload_len)
            .unwrap()
            .to_be_bytes()
            .to_vec();
        v.extend_from_slice(header);
        v.extend((0..payload_len).map(|i| i as u8));
        v
    }

    #[test]
    fn avc_vcl_nal_units_are_protected_in_whole_blocks_after_their_header() {
        // SEI (clear), IDR slice of 1 + 100 bytes, non-IDR slice of 1 + 10 bytes (too short: clear).
        let mut sample = nal(&[0x06], 20);
        sample.extend(nal(&[0x65], 100));
        sample.extend(nal(&[0x41], 10));
        let subs = subsamples(&SampleFraming::Avc(Arc::default()), &sample);
        assert_eq!(
            subs,
            vec![
                Subsample {
                    clear_bytes: (4 + 1 + 20) + (4 + 1 + 4),
                    protected_bytes: 96
                },
                Subsample {
                    clear_bytes: 4 + 1 + 10,
                    protected_bytes: 0
                },
            ]
        );
        let total: usize = subs
            .iter()
            .map(|s| usize::from(s.clear_bytes) + s.protected_bytes as usize)
            .sum();
        assert_eq!(total, sample.len());
    }

    #[test]
    fn hevc_keeps_two_header_bytes_and_parameter_sets_clear() {
        // VPS (type 32, clear) then a TRAIL_R slice (type 1) with 2 + 64 bytes.
        let mut sample = nal(&[0x40, 0x01], 30);
        sample.extend(nal(&[0x02, 0x01], 64));
        let subs = subsamples(&SampleFraming::Hevc(Arc::default()), &sample);
        assert_eq!(
            subs,
            vec![Subsample {
                clear_bytes: (4 + 2 + 30) + (4 + 2),
                protected_bytes: 64
            }]
        );
    }

    #[test]
    fn long_clear_runs_split_at_65535_and_bad_lengths_stay_clear() {
        let mut sample = nal(&[0x06], 70_000);
        sample.extend(nal(&[0x65], 32));
        sample.extend_from_slice(&[0, 0, 0, 99, 1]); // length beyond the sample
        let subs = subsamples(&SampleFraming::Avc(Arc::default()), &sample);
        assert_eq!(subs[0].clear_bytes, u16::MAX);
        assert_eq!(subs[0].protected_bytes, 0);
        assert_eq!(subs[1].protected_bytes, 32);
        assert_eq!(subs.last().unwrap().protected_bytes, 0);
        let total: usize = subs
            .iter()
            .map(|s| usize::from(s.clear_bytes) + s.protected_bytes as usize)
            .sum();
        assert_eq!(total, sample.len());
    }

    #[test]
    fn subsample_keystream_continues_across_ranges() {
        let key = [3u8; 16];
        let iv = [9u8; 8];
        let sample: Vec<u8> = (0..200u32).map(|i| i as u8).collect();
        let subs = [
            Subsample {
                clear_bytes: 10,
                protected_bytes: 48,
            },
            Subsample {
                clear_bytes: 20,
                protected_bytes: 32,
            },
        ];
        let enc = encrypt_sample(&key, &iv, &subs, &sample);
        assert_eq!(enc[..10], sample[..10]);
        assert_eq!(enc[58..78], sample[58..78]);
        assert_eq!(enc[110..], sample[110..]);
        // The protected bytes equal one CTR stream over their concatenation.
        let joined: Vec<u8> = [&sample[10..58], &sample[78..110]].concat();
        let whole = encrypt_sample(&key, &iv, &[], &joined);
        assert_eq!([&enc[10..58], &enc[78..110]].concat(), whole);
        assert_eq!(decrypt_sample(&key, &iv, &subs, &enc), sample);
    }

    #[test]
    fn kid_uuid_form_and_debug_redacts_the_key() {
        let k = CencKey {
            id: 7,
            kid: [0xab; 16],
            key: [0x42; 16],
        };
        assert_eq!(k.kid_uuid(), "abababab-abab-abab-abab-abababababab");
        let dbg = format!("{k:?}");
        assert!(!dbg.contains("4242"), "{dbg}");
    }
}
