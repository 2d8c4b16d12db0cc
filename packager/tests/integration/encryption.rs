//! HLS AES-128 (RFC 8216bis §4.4.4.4): every part and every segment is its own AES-128-CBC message under
//! its segment's key and IV, checked by decrypting with the `openssl` command (not our code).

use std::{io::Write, process::Command, sync::Arc};

use crate::common::*;
use packager::{
    PackagerConfig,
    cenc::{CencKey, Subsample, decrypt_sample},
    crypto::{ContentKey, KeySource, hex},
    hls,
};

/// Keys rotated every `every` segments (id = msn / every), IVs from a counter: deterministic for tests.
#[derive(Debug)]
struct TestKeys {
    every: u64,
    ivs: u64,
}

impl KeySource for TestKeys {
    fn segment_key(&mut self, msn: u64) -> (Arc<ContentKey>, [u8; 16]) {
        let id = msn / self.every;
        let mut key = [0u8; 16];
        key[..8].copy_from_slice(&id.to_be_bytes());
        key[8..].copy_from_slice(&0x5eed_u64.to_be_bytes());
        self.ivs += 1;
        let mut iv = [0u8; 16];
        iv[8..].copy_from_slice(&self.ivs.to_be_bytes());
        (Arc::new(ContentKey { id, key }), iv)
    }

    fn cenc_key(&mut self, epoch: u64) -> (Arc<CencKey>, u64) {
        self.ivs += 1;
        let key = CencKey {
            id: epoch,
            kid: [0x1d; 16],
            key: [0xce; 16],
        };
        (Arc::new(key), self.ivs << 32)
    }
}

fn openssl_decrypt(key: &[u8; 16], iv: &[u8; 16], ciphertext: &[u8]) -> Vec<u8> {
    let mut child = Command::new("openssl")
        .args([
            "enc",
            "-d",
            "-aes-128-cbc",
            "-K",
            &hex(key),
            "-iv",
            &hex(iv),
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("openssl runs");
    // Write from another thread: openssl writes its output while it reads, and a full stdout pipe
    // would otherwise block both sides.
    let mut stdin = child.stdin.take().unwrap();
    let input = ciphertext.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let out = child.wait_with_output().unwrap();
    let _ = writer.join();
    assert!(out.status.success(), "openssl failed");
    out.stdout
}

#[test]
fn parts_and_segments_decrypt_with_openssl_to_the_clear_objects() {
    let mut p = packager(PackagerConfig::default());
    p.set_key_source(Box::new(TestKeys { every: 2, ivs: 0 }));
    feed(&mut p, 9.1, 60, 0);
    for name in ["source", "audio"] {
        let r = p.rendition(name).unwrap();
        let mut checked = 0;
        for s in r.segments() {
            let k = s.key.as_ref().expect("every segment has a key");
            assert_eq!(k.key.id, s.msn / 2, "rotation every 2 segments");
            for part in &s.parts {
                let enc = part.encrypted.as_ref().expect("encrypted part");
                assert_eq!(enc.len() % 16, 0);
                assert_eq!(openssl_decrypt(&k.key.key, &k.iv, enc), part.bytes.as_ref());
                checked += 1;
            }
            if s.is_complete {
                let enc = s.encrypted.as_ref().expect("encrypted segment");
                let clear: Vec<u8> = s.parts.iter().flat_map(|p| p.bytes.to_vec()).collect();
                assert_eq!(openssl_decrypt(&k.key.key, &k.iv, enc), clear);
                let concatenated: Vec<u8> = s
                    .parts
                    .iter()
                    .flat_map(|p| p.encrypted.as_ref().unwrap().to_vec())
                    .collect();
                assert_ne!(enc.as_ref(), concatenated.as_slice());
            } else {
                assert!(s.encrypted.is_none());
            }
        }
        assert!(checked >= 12, "{name}: {checked} parts");
    }
}

#[test]
fn playlist_carries_a_key_tag_per_segment_after_the_map_and_rotates() {
    let mut p = packager(PackagerConfig::default());
    p.set_key_source(Box::new(TestKeys { every: 2, ivs: 0 }));
    feed(&mut p, 9.1, 60, 0);
    let text = hls::render_media_playlist(&p, "source", false).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let map = lines
        .iter()
        .position(|l| l.starts_with("#EXT-X-MAP"))
        .unwrap();
    let first_key = lines
        .iter()
        .position(|l| l.starts_with("#EXT-X-KEY"))
        .unwrap();
    assert!(map < first_key, "EXT-X-MAP before EXT-X-KEY:\n{text}");
    let keys: Vec<&&str> = lines
        .iter()
        .filter(|l| l.starts_with("#EXT-X-KEY"))
        .collect();
    let segments = p.rendition("source").unwrap().segments().len();
    assert_eq!(keys.len(), segments, "{text}");
    let uris: std::collections::BTreeSet<&str> = keys
        .iter()
        .map(|l| l.split("URI=\"").nth(1).unwrap().split('"').next().unwrap())
        .collect();
    assert!(uris.len() >= 2, "the key rotates: {uris:?}");
    for l in &keys {
        assert!(
            l.starts_with("#EXT-X-KEY:METHOD=AES-128,URI=\"../keys/"),
            "{l}"
        );
        let iv = l.split("IV=0x").nth(1).unwrap();
        assert_eq!(iv.len(), 32, "{l}");
    }
    // The preload hint never points into the next segment, whose IV is not listed yet.
    let hint = lines
        .iter()
        .find(|l| l.starts_with("#EXT-X-PRELOAD-HINT"))
        .unwrap();
    let open = p
        .rendition("source")
        .unwrap()
        .segments()
        .back()
        .unwrap()
        .msn;
    assert!(hint.contains(&format!("URI=\"{open}.")), "{hint}");
    // An independent parser reads the keys.
    let m3u8_rs::Playlist::MediaPlaylist(pl) =
        m3u8_rs::parse_playlist_res(text.as_bytes()).unwrap()
    else {
        panic!("media playlist")
    };
    let with_key = pl.segments.iter().filter(|s| s.key.is_some()).count();
    assert!(with_key >= 4, "{with_key}");
    for s in pl.segments.iter().filter_map(|s| s.key.as_ref()) {
        assert_eq!(s.method, m3u8_rs::KeyMethod::AES128);
        assert!(s.iv.as_deref().is_some_and(|iv| iv.starts_with("0x")));
    }
}

/// The (IV, subsamples) of one sample in a `senc` box.
type SampleIvs = ([u8; 8], Vec<Subsample>);

/// (IV, subsamples) of each sample in a CENC chunk's `senc`, and the chunk's `mdat` payload.
fn senc_and_mdat(chunk: &[u8]) -> (Vec<SampleIvs>, Vec<u8>) {
    let find = |fourcc: &[u8; 4]| chunk.windows(4).position(|w| w == fourcc).unwrap() - 4;
    let senc = find(b"senc");
    let flags = u32::from_be_bytes(chunk[senc + 8..senc + 12].try_into().unwrap()) & 0xFF_FFFF;
    let count = u32::from_be_bytes(chunk[senc + 12..senc + 16].try_into().unwrap());
    let mut pos = senc + 16;
    let mut out = Vec::new();
    for _ in 0..count {
        let iv: [u8; 8] = chunk[pos..pos + 8].try_into().unwrap();
        pos += 8;
        let mut subs = Vec::new();
        if flags & 2 != 0 {
            let n = u16::from_be_bytes([chunk[pos], chunk[pos + 1]]);
            pos += 2;
            for _ in 0..n {
                subs.push(Subsample {
                    clear_bytes: u16::from_be_bytes([chunk[pos], chunk[pos + 1]]),
                    protected_bytes: u32::from_be_bytes(
                        chunk[pos + 2..pos + 6].try_into().unwrap(),
                    ),
                });
                pos += 6;
            }
        }
        out.push((iv, subs));
    }
    let mdat = find(b"mdat");
    (out, chunk[mdat + 8..].to_vec())
}

#[test]
fn cenc_chunks_protect_every_sample_and_keep_nal_headers_clear() {
    let mut p = packager(PackagerConfig::default());
    p.set_key_source(Box::new(TestKeys { every: 2, ivs: 0 }));
    // 30 fps video whose pictures are an SEI (clear) and a slice of 1 + 100 bytes; 48 kHz AAC.
    let mut a = 0i64;
    for i in 0..(5 * 30) {
        let ms = i * 1000 / 30;
        while a * 1024 * 1000 / 48_000 < ms {
            p.push_frame(aframe(a * 1024), 1_700_000_000_000 + ms);
            a += 1;
        }
        let mut data = vec![0, 0, 0, 3, 0x06, 0x05, 0x80];
        data.extend_from_slice(&101u32.to_be_bytes());
        data.push(if i % 60 == 0 { 0x65 } else { 0x41 });
        data.extend((0..100u8).map(|b| b.wrapping_mul(7)));
        let mut f = vframe(ms * 90, 3000, i % 60 == 0);
        f.data = bytes::Bytes::from(data);
        p.push_frame(f, 1_700_000_000_000 + ms);
    }
    for name in ["source", "audio"] {
        let r = p.rendition(name).unwrap();
        let is_video = name == "source";
        let mut ivs = std::collections::BTreeSet::new();
        for s in r.segments() {
            let c = s.cenc.as_ref().expect("every segment has a CENC key");
            assert!(r.cenc_init(s.init_id, c.key.id).is_some());
            for part in &s.parts {
                let enc = part.cenc.as_ref().expect("CENC chunk");
                let (aux, enc_mdat) = senc_and_mdat(enc);
                let (_, clear_mdat) = senc_and_mdat_clear(&part.bytes);
                assert_eq!(enc_mdat.len(), clear_mdat.len());
                assert_ne!(enc_mdat, clear_mdat, "{name} msn {}: not encrypted", s.msn);
                // Decrypting sample by sample (sizes from the clear mdat's order) gives the clear data.
                let mut at = 0;
                let mut decrypted = Vec::new();
                for (iv, subs) in &aux {
                    assert!(ivs.insert(*iv), "IV reused");
                    let len = if subs.is_empty() {
                        // Audio: whole samples; the test frames are all the same size.
                        clear_mdat.len() / aux.len()
                    } else {
                        subs.iter()
                            .map(|x| usize::from(x.clear_bytes) + x.protected_bytes as usize)
                            .sum()
                    };
                    assert_eq!(subs.is_empty(), !is_video);
                    let sample = &enc_mdat[at..at + len];
                    if is_video {
                        // The SEI, the slice's length field and NAL header stay clear; the slice's
                        // 100 bytes are 6 protected blocks after 4 clear ones.
                        assert_eq!(
                            subs,
                            &[Subsample {
                                clear_bytes: 7 + 5 + 4,
                                protected_bytes: 96
                            }]
                        );
                        assert_eq!(sample[..16], clear_mdat[at..at + 16]);
                        assert_ne!(sample[16..], clear_mdat[at + 16..at + len]);
                    }
                    decrypted.extend(decrypt_sample(&[0xce; 16], iv, subs, sample));
                    at += len;
                }
                assert_eq!(decrypted, clear_mdat);
            }
        }
        let init = r.cenc_init(r.segments()[0].init_id, 0).or_else(|| {
            let s = &r.segments()[0];
            r.cenc_init(s.init_id, s.cenc.as_ref().unwrap().key.id)
        });
        let init = init.expect("protected init");
        for fourcc in [&b"encv"[..], b"enca", b"sinf", b"tenc", b"pssh"] {
            if (fourcc == b"encv" && !is_video) || (fourcc == b"enca" && is_video) {
                continue;
            }
            assert!(init.windows(4).any(|w| w == fourcc), "{name}: {fourcc:?}");
        }
        assert!(init.windows(16).any(|w| w == [0x1d; 16]), "{name}: KID");
    }
}

/// The `mdat` payload of a clear chunk.
fn senc_and_mdat_clear(chunk: &[u8]) -> ((), Vec<u8>) {
    let mdat = chunk.windows(4).position(|w| w == b"mdat").unwrap() - 4;
    ((), chunk[mdat + 8..].to_vec())
}
