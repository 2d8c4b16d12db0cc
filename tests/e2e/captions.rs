//! Closed captions through the ladder: GStreamer publishes over SRT an H.264 stream with CEA-608
//! captions in its SEI (`tests/tools/gst-ts-publish.py --captions`: pop-on captions "CAPTION k" on
//! CC1, every 2 s, written by x264enc from cccombiner's caption meta). The multivariant playlist
//! announces them (`CLOSED-CAPTIONS` group, `INSTREAM-ID="CC1"`, parsed with `m3u8-rs`), the MPD with
//! the SCTE 214 `Accessibility` descriptor (`dash-mpd-core`); FFmpeg reads the captions back out of the
//! encoded 240p rendition's segments (its `subcc` side channel), and hls.js, held on that rendition
//! in headless Chromium, shows them.

use std::time::{Duration, Instant};

use crate::common::*;

/// Seconds between two captions.
const EVERY_S: u32 = 2;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cea608_captions_survive_transcoding_are_announced_and_shown_in_hls_js() {
    let origin = blocking(|| EstuaryProcess::start(COPY_AND_240P)).await;
    let stream = "live/cc";
    let base = format!(
        "http://{}/t/{}/{stream}/",
        origin.http_addr,
        test_token(stream)
    );
    let publisher = gst_ts_publish(
        origin.srt_addr,
        stream,
        &["--seconds", "24", "--captions", &EVERY_S.to_string()],
    );

    // Announced once the first captions have been seen (they start before the first segment ends).
    let mut index = String::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        let r = get(&format!("{base}index.m3u8")).await;
        if r.status == 200 && r.text().contains("240p/") {
            index = r.text();
            break;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let Ok(m3u8_rs::Playlist::MasterPlaylist(multivariant)) =
        m3u8_rs::parse_playlist_res(index.as_bytes())
    else {
        panic!("multivariant playlist: {index}")
    };
    let cc: Vec<&m3u8_rs::AlternativeMedia> = multivariant
        .alternatives
        .iter()
        .filter(|a| a.media_type == m3u8_rs::AlternativeMediaType::ClosedCaptions)
        .collect();
    assert_eq!(cc.len(), 1, "{index}");
    assert_eq!(
        cc[0].instream_id,
        Some(m3u8_rs::InstreamId::CC(1)),
        "{index}"
    );
    assert_eq!(cc[0].group_id, "cc");
    assert_eq!(multivariant.variants.len(), 2, "{index}");
    for v in &multivariant.variants {
        assert_eq!(
            v.closed_captions,
            Some(m3u8_rs::ClosedCaptionGroupId::GroupId("cc".into())),
            "{index}"
        );
    }
    let mpd_text = get(&format!("{base}manifest.mpd")).await.text();
    let mpd = dash_mpd_core::parse(&mpd_text).expect("MPD parses");
    let video = mpd.periods[0]
        .adaptations
        .iter()
        .find(|a| a.contentType.as_deref() == Some("video"))
        .expect("a video AdaptationSet");
    assert!(
        video
            .Accessibility
            .iter()
            .any(|a| a.schemeIdUri == "urn:scte:dash:cc:cea-608:2015"
                && a.value.as_deref() == Some("CC1=und")),
        "{mpd_text}"
    );

    // hls.js on the encoded rendition: the captions appear as cues and are shown while their frames
    // play.
    let url = format!("{base}index.m3u8");
    let report = blocking(move || testkit::players::play_captions(&url, Some(240), 14)).await;
    eprintln!("hls.js captions: {report}");
    let cues: Vec<(f64, String)> = report["cues"]
        .as_array()
        .expect("cues")
        .iter()
        .map(|c| {
            (
                c["start"].as_f64().unwrap_or(f64::NAN),
                c["text"].as_str().unwrap_or("").trim().to_owned(),
            )
        })
        .collect();
    assert!(
        report["fatal_errors"]
            .as_array()
            .is_some_and(|e| e.is_empty()),
        "{report}"
    );
    assert!(
        report["levels_played"]
            .as_array()
            .is_some_and(|l| !l.is_empty() && l.iter().all(|h| h == 240)),
        "held on 240p: {report}"
    );
    let captioned: Vec<&(f64, String)> = cues
        .iter()
        .filter(|(_, t)| t.starts_with("CAPTION "))
        .collect();
    assert!(captioned.len() >= 5, "14 s of captions every 2 s: {cues:?}");
    // Consecutive captions, 2 s apart on the media timeline.
    for w in captioned.windows(2) {
        let (a, b) = (w[0], w[1]);
        let k = |t: &str| t["CAPTION ".len()..].parse::<u32>().unwrap_or(0);
        if k(&b.1) == k(&a.1) + 1 {
            let gap = b.0 - a.0;
            assert!((gap - f64::from(EVERY_S)).abs() < 0.1, "{a:?} → {b:?}");
        }
    }
    let shown: Vec<&str> = report["shown"]
        .as_array()
        .expect("shown")
        .iter()
        .filter_map(|s| s[1].as_str())
        .filter(|t| t.contains("CAPTION "))
        .collect();
    assert!(shown.len() >= 5, "captions shown on screen: {report}");

    // FFmpeg, an independent reader, finds the same captions in the 240p rendition's segments.
    let read = captions_read_by_ffmpeg(&base, "240p").await;
    assert!(read.len() >= 5, "ffmpeg read: {read:?}");

    let published = publisher.finish().await;
    assert!(
        published.status.success(),
        "{}",
        String::from_utf8_lossy(&published.stderr)
    );
    println!(
        "captions: {} cues in hls.js on 240p ({} frames with a caption shown), {} captions read by FFmpeg \
         from the 240p segments",
        captioned.len(),
        shown.len(),
        read.len()
    );
}

/// The CEA-608 captions FFmpeg reads (its `subcc` side channel, as SubRip text lines) from the listed
/// segments of `rendition` of the stream at `base` (URL ending in `/`), init segment first.
pub(crate) async fn captions_read_by_ffmpeg(base: &str, rendition: &str) -> Vec<String> {
    let media = get(&format!("{base}{rendition}/media.m3u8")).await.text();
    let Ok(m3u8_rs::Playlist::MediaPlaylist(p)) = m3u8_rs::parse_playlist_res(media.as_bytes())
    else {
        panic!("{rendition} media playlist: {media}")
    };
    let map = p
        .segments
        .iter()
        .find_map(|s| s.map.as_ref())
        .expect("EXT-X-MAP");
    let mut bytes = get(&format!("{base}{rendition}/{}", map.uri))
        .await
        .body
        .to_vec();
    for s in &p.segments {
        bytes.extend_from_slice(&get(&format!("{base}{rendition}/{}", s.uri)).await.body);
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("rendition.mp4");
    std::fs::write(&file, &bytes).unwrap();
    let movie = format!("movie={}[out0+subcc]", file.display());
    let out = blocking(move || {
        std::process::Command::new("ffmpeg")
            .args([
                "-v", "error", "-f", "lavfi", "-i", &movie, "-map", "0:s", "-f", "srt", "-",
            ])
            .output()
            .expect("ffmpeg runs")
    })
    .await;
    assert!(
        out.status.success(),
        "ffmpeg on {rendition}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.contains("CAPTION "))
        .map(str::to_owned)
        .collect()
}
