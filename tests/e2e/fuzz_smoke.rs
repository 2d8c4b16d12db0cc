//! Fuzz smoke run, in every test run: each [`estuary::fuzzing`] target gets its seed corpus (built here
//! from the fixtures: an FLV and MPEG-TS remux by FFmpeg, the codec configuration records and
//! parameter sets they carry, an RTMP publish session encoded by our chunk encoder, stream IDs, query
//! strings, tokens, HTTP requests), the crash regressions in `fuzz/regressions/{target}/`, and a few
//! thousand random mutations of the seeds (bit flips, interesting bytes, insertions, deletions,
//! truncations, splices). Any panic fails the test and saves the input under `target/fuzz-smoke/`.
//!
//! This is not coverage-guided: `scripts/fuzz.sh` runs the same targets under libFuzzer for a time
//! budget each. It writes the seeds for that run with `ESTUARY_FUZZ_SEEDS={dir}` set.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
};

use crate::common::*;
use bytes::BytesMut;
use estuary::{
    fuzzing,
    ingest::rtmp::{
        amf::{self, Amf0Value},
        chunk::{ChunkEncoder, RtmpMessage},
    },
};

type Target = fn(&[u8]);

/// Every target, with the random mutations it gets in a test run.
const TARGETS: &[(&str, Target, usize)] = &[
    ("rtmp_handshake", fuzzing::rtmp_handshake, 1500),
    ("rtmp_chunks", fuzzing::rtmp_chunks, 3000),
    ("rtmp_session", fuzzing::rtmp_session, 3000),
    ("amf0", fuzzing::amf0, 20000),
    ("flv_tags", fuzzing::flv_tags, 20000),
    ("codec_configs", fuzzing::codec_configs, 40000),
    ("ts_demux", fuzzing::ts_demux, 1500),
    ("srt_stream_id", fuzzing::srt_stream_id, 20000),
    ("scte35", fuzzing::scte35, 20000),
    ("hls_directives", fuzzing::hls_directives, 20000),
    ("token", fuzzing::token, 20000),
    ("http_request", fuzzing::http_request, 20000),
    ("whip_frames", fuzzing::whip_frames, 20000),
];

const INTERESTING: &[u8] = &[
    0, 1, 0x7f, 0x80, 0xff, b'&', b'=', b'/', b'.', b'%', b'\n', b',',
];

/// One random mutation of `seed` (sometimes spliced with another seed).
fn mutate(rng: &mut Rng, seed: &[u8], all: &[Vec<u8>]) -> Vec<u8> {
    let mut out = seed.to_vec();
    for _ in 0..1 + rng.below(4) {
        let len = out.len();
        match rng.below(8) {
            0 if len > 0 => {
                let i = rng.below(len);
                out[i] ^= 1 << rng.below(8);
            }
            1 if len > 0 => {
                let i = rng.below(len);
                out[i] = INTERESTING[rng.below(INTERESTING.len())];
            }
            2 => {
                let i = rng.below(len + 1);
                let n = 1 + rng.below(16);
                let bytes: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
                out.splice(i..i, bytes);
            }
            3 if len > 0 => {
                let i = rng.below(len);
                let n = 1 + rng.below((len - i).min(64));
                out.drain(i..i + n);
            }
            4 => out.truncate(rng.below(len + 1)),
            5 if len > 1 => {
                // Duplicate a range (repeated headers, lengths that no longer match).
                let i = rng.below(len);
                let n = 1 + rng.below((len - i).min(256));
                let copy = out[i..i + n].to_vec();
                let at = rng.below(out.len() + 1);
                out.splice(at..at, copy);
            }
            6 if len >= 4 => {
                // A length-like field set to an extreme.
                let i = rng.below(len - 3);
                let v: u32 = [0, 1, 0xFFFF, 0xFF_FFFF, u32::MAX][rng.below(5)];
                out[i..i + 4].copy_from_slice(&v.to_be_bytes());
            }
            _ => {
                let other = &all[rng.below(all.len())];
                let cut = rng.below(out.len() + 1);
                let from = rng.below(other.len() + 1);
                out.truncate(cut);
                out.extend_from_slice(&other[from..]);
            }
        }
    }
    out
}

fn ffmpeg_remux(input: &Path, seconds: &str, format: &str) -> Vec<u8> {
    ffmpeg_stdout(input, &["-t", seconds, "-c", "copy", "-f", format])
}

/// The tags of an FLV file: (tag type, timestamp ms, body).
fn flv_file_tags(flv: &[u8]) -> Vec<(u8, u32, Vec<u8>)> {
    assert_eq!(&flv[..3], b"FLV");
    let mut at = u32::from_be_bytes(flv[5..9].try_into().unwrap()) as usize + 4;
    let mut tags = Vec::new();
    while at + 11 <= flv.len() {
        let kind = flv[at];
        let size = u32::from_be_bytes([0, flv[at + 1], flv[at + 2], flv[at + 3]]) as usize;
        let ts = u32::from_be_bytes([flv[at + 7], flv[at + 4], flv[at + 5], flv[at + 6]]);
        let Some(body) = flv.get(at + 11..at + 11 + size) else {
            break;
        };
        tags.push((kind, ts, body.to_vec()));
        at += 11 + size + 4;
    }
    tags
}

/// The payload of the first `fourcc` box found in `file` (a plain scan: enough for a fixture).
fn find_box(file: &[u8], fourcc: &[u8; 4]) -> Vec<u8> {
    let i = file
        .windows(4)
        .position(|w| w == fourcc)
        .unwrap_or_else(|| panic!("no {:?} box", std::str::from_utf8(fourcc)));
    let size = u32::from_be_bytes(file[i - 4..i].try_into().unwrap()) as usize;
    file[i + 4..i - 4 + size].to_vec()
}

/// (type, NAL units) arrays of an hvcC payload (ISO/IEC 14496-15 §8.3.3.1).
fn hvcc_nals(hvcc: &[u8]) -> Vec<(u8, Vec<u8>)> {
    let mut out = Vec::new();
    let count = hvcc[22];
    let mut at = 23;
    for _ in 0..count {
        let kind = hvcc[at] & 0x3f;
        let n = u16::from_be_bytes([hvcc[at + 1], hvcc[at + 2]]);
        at += 3;
        for _ in 0..n {
            let len = u16::from_be_bytes([hvcc[at], hvcc[at + 1]]) as usize;
            out.push((kind, hvcc[at + 2..at + 2 + len].to_vec()));
            at += 2 + len;
        }
    }
    out
}

/// `[len a][len b] a b c` (the parameter-set + slice layout of `codec_configs`).
fn layout3(which: u8, a: &[u8], b: &[u8], c: &[u8]) -> Vec<u8> {
    let mut v = vec![which, a.len().min(255) as u8, b.len().min(255) as u8];
    v.extend_from_slice(&a[..a.len().min(255)]);
    v.extend_from_slice(&b[..b.len().min(255)]);
    v.extend_from_slice(c);
    v
}

fn command(name: &str, transaction: f64, args: Vec<Amf0Value>) -> Vec<u8> {
    let mut values = vec![amf::string(name), Amf0Value::Number(transaction)];
    values.extend(args);
    amf::encode(&values).expect("encodes")
}

/// The client side of an RTMP publish after the handshake, as chunks: set chunk size, connect,
/// releaseStream, FCPublish, createStream, publish, metadata and the first media tags.
fn rtmp_publish_session(tags: &[(u8, u32, Vec<u8>)]) -> Vec<u8> {
    let mut encoder = ChunkEncoder::new();
    let mut out = BytesMut::new();
    let mut send =
        |encoder: &ChunkEncoder, csid: u32, stream: u32, type_id: u8, ts: u32, payload: Vec<u8>| {
            encoder.encode(
                &RtmpMessage {
                    chunk_stream_id: csid,
                    message_stream_id: stream,
                    type_id,
                    timestamp_ms: ts,
                    payload: payload.into(),
                },
                &mut out,
            );
        };
    send(&encoder, 2, 0, 1, 0, 4096u32.to_be_bytes().to_vec());
    encoder.set_chunk_size(4096);
    let connect = command(
        "connect",
        1.0,
        vec![amf::object([
            ("app", amf::string("live")),
            ("type", amf::string("nonprivate")),
            ("flashVer", amf::string("FMLE/3.0")),
            ("tcUrl", amf::string("rtmp://127.0.0.1/live")),
        ])],
    );
    send(&encoder, 3, 0, 20, 0, connect);
    send(
        &encoder,
        3,
        0,
        20,
        0,
        command(
            "releaseStream",
            2.0,
            vec![Amf0Value::Null, amf::string("demo")],
        ),
    );
    send(
        &encoder,
        3,
        0,
        20,
        0,
        command("FCPublish", 3.0, vec![Amf0Value::Null, amf::string("demo")]),
    );
    send(
        &encoder,
        3,
        0,
        20,
        0,
        command("createStream", 4.0, vec![Amf0Value::Null]),
    );
    send(
        &encoder,
        4,
        1,
        20,
        0,
        command(
            "publish",
            5.0,
            vec![
                Amf0Value::Null,
                amf::string("demo?key=k"),
                amf::string("live"),
            ],
        ),
    );
    let metadata = amf::encode(&[
        amf::string("@setDataFrame"),
        amf::string("onMetaData"),
        amf::object([
            ("width", Amf0Value::Number(640.0)),
            ("height", Amf0Value::Number(360.0)),
        ]),
    ])
    .unwrap();
    send(&encoder, 4, 1, 18, 0, metadata);
    for (kind, ts, body) in tags.iter().filter(|t| t.2.len() < 8192).take(12) {
        if matches!(kind, 8 | 9) {
            send(
                &encoder,
                if *kind == 8 { 6 } else { 7 },
                1,
                *kind,
                *ts,
                body.clone(),
            );
        }
    }
    send(
        &encoder,
        3,
        0,
        20,
        0,
        command(
            "FCUnpublish",
            6.0,
            vec![Amf0Value::Null, amf::string("demo")],
        ),
    );
    out.to_vec()
}

/// Seed inputs per target.
fn seeds() -> BTreeMap<&'static str, Vec<Vec<u8>>> {
    let mut s: BTreeMap<&'static str, Vec<Vec<u8>>> = BTreeMap::new();
    let avc_clip = fixture("camera-face-pexels-360p-h264-aac-20s.mp4");
    let hevc_clip = fixture("camera-face-540p-hevc-aac-6s.mov");

    // FLV (H.264 + AAC): tag records, codec configurations, an RTMP publish.
    let tags = flv_file_tags(&ffmpeg_remux(&avc_clip, "1", "flv"));
    let mut records = Vec::new();
    for (kind, _, body) in tags.iter().filter(|t| t.2.len() < 65536).take(40) {
        records.push(*kind);
        records.extend_from_slice(&(body.len() as u16).to_be_bytes());
        records.extend_from_slice(body);
    }
    s.entry("flv_tags").or_default().push(records);
    let video_config = tags
        .iter()
        .find(|t| t.0 == 9 && t.2.get(1) == Some(&0))
        .expect("AVC sequence header");
    let avcc = video_config.2[5..].to_vec();
    let audio_config = tags
        .iter()
        .find(|t| t.0 == 8 && t.2.get(1) == Some(&0))
        .expect("AAC sequence header");
    let asc = audio_config.2[2..].to_vec();
    let sps_len = u16::from_be_bytes([avcc[6], avcc[7]]) as usize;
    let sps = avcc[8..8 + sps_len].to_vec();
    let pps_at = 8 + sps_len + 1;
    let pps_len = u16::from_be_bytes([avcc[pps_at], avcc[pps_at + 1]]) as usize;
    let pps = avcc[pps_at + 2..pps_at + 2 + pps_len].to_vec();
    let keyframe = tags
        .iter()
        .find(|t| t.0 == 9 && t.2.first() == Some(&0x17) && t.2.get(1) == Some(&1))
        .expect("a keyframe");
    let mut nals = Vec::new();
    let mut at = 5;
    while at + 4 <= keyframe.2.len() {
        let len = u32::from_be_bytes(keyframe.2[at..at + 4].try_into().unwrap()) as usize;
        let Some(nal) = keyframe.2.get(at + 4..at + 4 + len) else {
            break;
        };
        nals.push(nal.to_vec());
        at += 4 + len;
    }
    let idr = nals
        .iter()
        .find(|n| n[0] & 0x1f == 5)
        .expect("an IDR slice");
    let configs = s.entry("codec_configs").or_default();
    configs.push([&[0u8][..], &avcc].concat());
    configs.push([&[2u8][..], &asc].concat());
    configs.push([&[3u8][..], &sps].concat());
    configs.push([&[3u8][..], &pps].concat());
    configs.push(layout3(5, &sps, &pps, &idr[..idr.len().min(64)]));
    let mut annex_b = Vec::new();
    for nal in [&sps, &pps] {
        annex_b.extend_from_slice(&[0, 0, 0, 1]);
        annex_b.extend_from_slice(nal);
    }
    configs.push([&[7u8][..], &annex_b].concat());
    // HEVC: the hvcC of the .mov fixture and its parameter sets.
    let hvcc = find_box(&std::fs::read(&hevc_clip).unwrap(), b"hvcC");
    let hevc = hvcc_nals(&hvcc);
    let nal = |t: u8| {
        hevc.iter()
            .find(|n| n.0 == t)
            .map(|n| n.1.clone())
            .expect("parameter set")
    };
    configs.push([&[1u8][..], &hvcc].concat());
    configs.push([&[4u8][..], &nal(33)].concat());
    configs.push([&[4u8][..], &nal(34)].concat());
    configs.push(layout3(
        6,
        &nal(33),
        &nal(34),
        &[0x26, 0x01, 0xaf, 0x1d, 0x80],
    ));

    let session = rtmp_publish_session(&tags);
    // Reads of 64 and 16 bytes (the first byte picks the read size).
    for step in [63u8, 15] {
        s.entry("rtmp_chunks")
            .or_default()
            .push([&[step][..], &session].concat());
        s.entry("rtmp_session")
            .or_default()
            .push([&[step][..], &session].concat());
    }
    s.entry("amf0").or_default().extend([
        command(
            "connect",
            1.0,
            vec![amf::object([("app", amf::string("live"))])],
        ),
        command(
            "publish",
            5.0,
            vec![Amf0Value::Null, amf::string("demo"), amf::string("live")],
        ),
    ]);
    // C0 + C1 + C2 (RTMP 1.0 §5.2), in reads of various sizes.
    let mut handshake = vec![3u8];
    handshake.extend((0..1536u32).map(|i| (i * 7) as u8));
    handshake.extend((0..1536u32).map(|i| (i * 13) as u8));
    for step in [0u8, 20, 63] {
        s.entry("rtmp_handshake")
            .or_default()
            .push([&[step][..], &handshake].concat());
    }

    // MPEG-TS, H.264 and HEVC.
    for clip in [&avc_clip, &hevc_clip] {
        let ts = ffmpeg_remux(clip, "1", "mpegts");
        s.entry("ts_demux")
            .or_default()
            .push([&[187u8][..], &ts[..ts.len().min(96 * 1024)]].concat());
    }

    // SCTE-35: the specification's samples (SCTE 35 §14: a time_signal with a placement
    // opportunity, a splice_insert out with a break) and inserts as the origin writes them.
    {
        use base64::Engine as _;
        let e = s.entry("scte35").or_default();
        for sample in [
            "/DA0AAAAAAAA///wBQb+cr0AUAAeAhxDVUVJSAAAjn/PAAGlmbAICAAAAAAsoKGKNAIAmsnRfg==",
            "/DAvAAAAAAAA///wFAVIAACPf+/+c2nALv4AUsz1AAAAAAAKAAhDVUVJAAABNWLbowo=",
        ] {
            e.push(
                base64::engine::general_purpose::STANDARD
                    .decode(sample)
                    .unwrap(),
            );
        }
        e.push(
            protocols::scte35::write_splice_insert(7, true, Some(900_000), Some(2_700_000))
                .to_vec(),
        );
        e.push(protocols::scte35::write_splice_insert(7, false, None, None).to_vec());
    }

    s.entry("srt_stream_id").or_default().extend(
        [
            "#!::r=live/demo,m=publish",
            "#!::r=live/demo,m=publish,key=abcdefghijklmnopqrstuv,u=alice,t=stream",
            "#!::u=bob,r=live/x?key=k,m=publish,h=example.com",
            "live/demo?key=abc&room=7",
            "#!::m=request,r=live/demo",
        ]
        .map(|s| s.as_bytes().to_vec()),
    );
    s.entry("hls_directives").or_default().extend(
        [
            "_HLS_msn=1795000000&_HLS_part=3",
            "_HLS_msn=12&_HLS_skip=YES",
            "_HLS_msn=12&_HLS_part=0&_HLS_skip=v2&token=x",
            "_HLS_part=1",
        ]
        .map(|s| s.as_bytes().to_vec()),
    );
    // WHIP records (see `fuzzing::whip_frames`): an H.264 IDR access unit with its SPS and PPS in
    // Annex B, a P-frame after a gap, a VP8 keyframe header, Opus packets.
    let record = |codec: u8, flags: u8, frame: &[u8]| {
        let mut r = vec![codec, flags];
        r.extend_from_slice(&(frame.len().min(65535) as u16).to_be_bytes());
        r.extend_from_slice(&frame[..frame.len().min(65535)]);
        r
    };
    let start = |nal: &[u8]| [&[0u8, 0, 0, 1][..], nal].concat();
    let idr_au = [start(&sps), start(&pps), start(&idr[..idr.len().min(2000)])].concat();
    let vp8_key = [
        0x50, 0x2a, 0x00, 0x9d, 0x01, 0x2a, 0x80, 0x02, 0xe0, 0x01, 0x11, 0x22,
    ];
    s.entry("whip_frames").or_default().extend([
        [
            record(0, 31, &idr_au),
            record(0, 31, &start(&[0x41, 0x9a, 0x02, 0x03])),
            record(0, 30, &start(&[0x41, 0x9a, 0x04])),
        ]
        .concat(),
        [record(1, 31, &vp8_key), record(1, 31, &[0x51, 0, 0, 1, 2])].concat(),
        [record(2, 1, &[0xfc, 0xff, 0xfe]), record(2, 21, &[0xfc])].concat(),
    ]);
    let token = fuzzing::token_seed();
    s.entry("token").or_default().extend([
        format!("{token}\nlive/fuzz").into_bytes(),
        format!("{token}\nlive/other").into_bytes(),
        token.clone().into_bytes(),
    ]);
    s.entry("http_request").or_default().extend(
        [
            "GET /live/demo/index.m3u8".to_owned(),
            format!("GET /t/{token}/live/fuzz/source/media.m3u8?_HLS_msn=5&_HLS_part=1&_HLS_skip=YES"),
            format!("GET /t/{token}/live/fuzz/source/1795000000.2.m4s"),
            format!("GET /t/{token}/live/fuzz/keys/17.key"),
            format!("POST /t/{token}/live/fuzz/license\ncontent-type: application/json"),
            format!("GET /t/{token}/live/fuzz/video/cenc/init-1-2.mp4"),
            format!("GET /auth/check\nx-original-uri: /t/{token}/live/fuzz/index.m3u8\nx-real-ip: 10.0.0.1"),
            "GET /api/streams/live/demo\nauthorization: Bearer 0123456789abcdef".to_owned(),
            "DELETE /api/streams/live/demo\nauthorization: Bearer x".to_owned(),
            "GET /metrics\nauthorization: Bearer x".to_owned(),
            "GET /live/demo/".to_owned(),
            "GET /live/demo".to_owned(),
            "GET /player/hls.min.js".to_owned(),
            "OPTIONS /live/demo/manifest.mpd\norigin: https://example.com".to_owned(),
            "HEAD /healthz".to_owned(),
        ]
        .map(String::into_bytes),
    );
    s
}

/// Crash regressions kept in the repository, per target.
fn regressions(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = repo().join("fuzz/regressions").join(target);
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut out: Vec<(PathBuf, Vec<u8>)> = entries
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .map(|p| {
            let bytes = std::fs::read(&p).unwrap();
            (p, bytes)
        })
        .collect();
    out.sort();
    out
}

#[test]
fn every_fuzz_target_survives_its_seeds_regressions_and_random_mutations() {
    let seeds = seeds();
    if let Ok(dir) = std::env::var("ESTUARY_FUZZ_SEEDS") {
        for (target, inputs) in &seeds {
            let d = Path::new(&dir).join(target);
            std::fs::create_dir_all(&d).unwrap();
            for (i, input) in inputs.iter().enumerate() {
                std::fs::write(d.join(format!("seed-{i}")), input).unwrap();
            }
        }
        println!("seeds written to {dir}");
    }
    let failures_dir = repo().join("target/fuzz-smoke");
    // Panics are caught and counted; keep the default hook from printing thousands of them.
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let mut failures = Vec::new();
    for &(name, target, mutations) in TARGETS {
        let inputs = seeds
            .get(name)
            .unwrap_or_else(|| panic!("no seeds for {name}"));
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ name.len() as u64);
        let started = std::time::Instant::now();
        let mut run = |label: String, input: &[u8]| {
            if std::panic::catch_unwind(|| target(input)).is_err() {
                std::fs::create_dir_all(failures_dir.join(name)).unwrap();
                let path = failures_dir.join(name).join(&label);
                std::fs::write(&path, input).unwrap();
                failures.push(format!(
                    "{name}: {label} panicked (input saved to {})",
                    path.display()
                ));
            }
        };
        for (i, input) in inputs.iter().enumerate() {
            run(format!("seed-{i}"), input);
        }
        let kept = regressions(name);
        for (path, input) in &kept {
            run(
                format!("regression-{}", path.file_name().unwrap().to_string_lossy()),
                input,
            );
        }
        for i in 0..mutations {
            let seed = &inputs[rng.below(inputs.len())];
            let input = mutate(&mut rng, seed, inputs);
            run(format!("mutation-{i}"), &input);
        }
        println!(
            "{name}: {} seeds, {} regressions, {mutations} mutations in {:?}",
            inputs.len(),
            kept.len(),
            started.elapsed()
        );
    }
    std::panic::set_hook(previous);
    assert!(failures.is_empty(), "{failures:#?}");
}
