//! HLS AES-128 (RFC 8216bis §4.4.4.4): every part and every segment is its own AES-128-CBC message under
//! its segment's key and IV, checked by decrypting with the `openssl` command (not our code).

mod common;

use std::{io::Write, process::Command, sync::Arc};

use common::*;
use packager::{
    PackagerConfig,
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
