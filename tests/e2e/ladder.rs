//! End to end: an RTMP publish becomes an ABR ladder (one decode, several encodes, aligned keyframes),
//! checked with ffprobe, FFmpeg and hls.js with forced rendition switches.

use std::{collections::BTreeMap, path::Path, time::Duration};

use crate::common::*;
use hyper::StatusCode;

const FFMPEG: &str = "ffmpeg";

/// For each video rendition: msn → (tfdt, EXTINF) of its complete segments.
async fn segment_times(base: &str, rendition: &str) -> BTreeMap<u64, (u64, f64)> {
    let facts = parse_media(&get(&format!("{base}{rendition}/media.m3u8")).await.text());
    let mut out = BTreeMap::new();
    for (msn, extinf, uri) in &facts.segments {
        let seg = get(&format!("{base}{rendition}/{uri}")).await;
        assert_eq!(seg.status, StatusCode::OK);
        let tfdt = chunks(&seg.body)[0].0;
        out.insert(*msn, (tfdt, *extinf));
    }
    out
}

fn video_variants(mv: &str) -> Vec<(String, u64, u64)> {
    let m3u8_rs::Playlist::MasterPlaylist(master) =
        m3u8_rs::parse_playlist_res(mv.as_bytes()).unwrap()
    else {
        panic!("not a multivariant playlist")
    };
    master
        .variants
        .iter()
        .map(|v| {
            let r = v.resolution.expect("RESOLUTION");
            (
                v.uri.trim_end_matches("/media.m3u8").to_owned(),
                r.width,
                r.height,
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn default_ladder_is_aligned_and_plays_with_forced_switches_in_hls_js() {
    let server = start_server("[transcode]\nenabled = true\nencoder = \"auto\"\n").await;
    let clip = fixture("bbb-720p-2s-gop.mp4");
    let _publisher = publish_loop(
        Path::new(FFMPEG),
        &clip,
        &format!("rtmp://{}/live/ladder", server.rtmp_addr),
    );
    let base = format!("http://{}/live/ladder/", server.http_addr);
    wait_for_200(&format!("{base}index.m3u8"), Duration::from_secs(15))
        .await
        .expect("multivariant");
    tokio::time::sleep(Duration::from_secs(9)).await;
    let mv = get(&format!("{base}index.m3u8")).await.text();
    let variants = video_variants(&mv);
    eprintln!("variants: {variants:?}\n{mv}");
    assert_eq!(
        variants.iter().map(|v| (v.1, v.2)).collect::<Vec<_>>(),
        [(1280, 720), (854, 480), (640, 360)],
        "{mv}"
    );
    assert!(mv.contains("TYPE=AUDIO"), "{mv}");
    for line in mv.lines().filter(|l| l.starts_with("#EXT-X-STREAM-INF")) {
        for attr in [
            "BANDWIDTH=",
            "AVERAGE-BANDWIDTH=",
            "CODECS=\"avc1.",
            "RESOLUTION=",
            "FRAME-RATE=",
            "AUDIO=",
        ] {
            assert!(line.contains(attr), "{line} lacks {attr}");
        }
    }
    // Every rung keeps the source's frames, so every variant announces the source's measured rate
    // (24 fps here), whatever rate an encoder wrote into its SPS.
    let rates: Vec<&str> = mv
        .lines()
        .filter_map(|l| l.split("FRAME-RATE=").nth(1))
        .map(|r| r.split(',').next().unwrap_or(r))
        .collect();
    assert_eq!(rates, ["24.000"; 3], "{mv}");

    // ffprobe sees each rendition at its configured size.
    for (name, w, h) in &variants {
        let out = probe_first(
            &format!("{base}{name}/media.m3u8"),
            Some("v:0"),
            "stream=codec_name,width,height",
        )
        .await;
        assert_eq!(out, format!("h264,{w},{h}"), "{name}");
    }
    // Audio: AAC-LC 48 kHz stereo, encoded once and shared.
    let out = probe_first(
        &format!("{base}audio/media.m3u8"),
        None,
        "stream=codec_name,sample_rate,channels",
    )
    .await;
    assert_eq!(out, "aac,48000,2");

    // Segment boundaries align: the same msn has the same tfdt and EXTINF in every video rendition.
    let mut times = Vec::new();
    for (name, _, _) in &variants {
        times.push((name.clone(), segment_times(&base, name).await));
    }
    let (ref_name, reference) = &times[0];
    let mut compared = 0;
    for (name, t) in &times[1..] {
        for (msn, (tfdt, extinf)) in t {
            if let Some((rt, re)) = reference.get(msn) {
                assert_eq!(tfdt, rt, "{name} vs {ref_name} msn {msn}: tfdt");
                assert!(
                    (extinf - re).abs() < 1e-6,
                    "{name} vs {ref_name} msn {msn}: EXTINF {extinf} vs {re}"
                );
                compared += 1;
            }
        }
    }
    assert!(compared >= 10, "only {compared} segments compared");
    // Media playlists report every sibling.
    let text = get(&format!("{base}480p/media.m3u8")).await.text();
    for other in ["source", "360p", "audio"] {
        assert!(
            text.contains(&format!(
                "#EXT-X-RENDITION-REPORT:URI=\"../{other}/media.m3u8\""
            )),
            "{other}"
        );
    }

    // FFmpeg decodes every rendition without errors.
    for (name, _, _) in &variants {
        let out = ffmpeg_decode(&format!("{base}{name}/media.m3u8"), Some(4)).await;
        assert!(
            out.status.success() && out.stderr.is_empty(),
            "{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    // hls.js plays the ladder and switches when forced, without a stall.
    let url = format!("{base}index.m3u8");
    let report = blocking(move || play_hls_args(&url, 24, &["--switch-every", "4"])).await;
    eprintln!("hls.js report: {report}");
    assert_eq!(report["ok"], true, "{report}");
    assert_eq!(report["stalls"], 0, "{report}");
    assert!(
        report["played_seconds"].as_f64().unwrap() >= 22.0,
        "{report}"
    );
    assert!(
        report["fatal_errors"].as_array().unwrap().is_empty(),
        "{report}"
    );
    let heights: std::collections::BTreeSet<u64> = report["levels_played"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| l["seconds"].as_f64().unwrap_or(0.0) > 0.5)
        .filter_map(|l| l["height"].as_u64())
        .collect();
    assert!(heights.len() >= 3, "played heights {heights:?}: {report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hevc_rung_decodes_and_carries_hvc1() {
    let server = start_server(
        "[transcode]\nenabled = true\n\
         [[transcode.rungs]]\nname = \"source\"\ncopy = true\n\
         [[transcode.rungs]]\nname = \"360p\"\nheight = 360\nbitrate_bps = 700000\n\
         [[transcode.rungs]]\nname = \"360p-hevc\"\nheight = 360\ncodec = \"hevc\"\nbitrate_bps = 500000\npreset = \"ultrafast\"\n",
    )
    .await;
    let clip = fixture("bbb-720p-2s-gop.mp4");
    let _publisher = publish_loop(
        Path::new(FFMPEG),
        &clip,
        &format!("rtmp://{}/live/hevcrung", server.rtmp_addr),
    );
    let base = format!("http://{}/live/hevcrung/", server.http_addr);
    wait_for_200(&format!("{base}index.m3u8"), Duration::from_secs(15))
        .await
        .expect("multivariant");
    tokio::time::sleep(Duration::from_secs(7)).await;
    let mv = get(&format!("{base}index.m3u8")).await.text();
    assert!(mv.contains("CODECS=\"hvc1."), "{mv}");
    let init_uri = parse_media(&get(&format!("{base}360p-hevc/media.m3u8")).await.text()).map_uri;
    let init = get(&format!("{base}360p-hevc/{init_uri}")).await.body;
    assert!(
        init.windows(4).any(|w| w == b"hvc1") && init.windows(4).any(|w| w == b"hvcC"),
        "hvc1 sample entry"
    );
    let out = probe_first(
        &format!("{base}360p-hevc/media.m3u8"),
        Some("v:0"),
        "stream=codec_name,width,height",
    )
    .await;
    assert_eq!(out, "hevc,640,360");
    let out = ffmpeg_decode(&format!("{base}360p-hevc/media.m3u8"), Some(4)).await;
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn serve_probes_nvenc_and_falls_back_to_libx264_with_a_log_line() {
    use std::io::{BufRead, BufReader};
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_estuary"))
        .args([
            "serve",
            "--http-listen",
            "127.0.0.1:0",
            "--rtmp-listen",
            "127.0.0.1:0",
            "--srt-listen",
            "127.0.0.1:0",
        ])
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut lines = Vec::new();
    for line in BufReader::new(stderr).lines() {
        let line = line.unwrap();
        let done = line.contains("estuary serving");
        lines.push(line);
        if done {
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    let log = lines.join("\n");
    assert!(log.contains("nvenc"), "no NVENC probe logged:\n{log}");
    assert!(log.contains("libx264"), "libx264 not chosen:\n{log}");
}
