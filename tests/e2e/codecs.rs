//! End to end: publishes in codecs Estuary decodes but does not package — MP3 over RTMP, AC-3 5.1 over
//! Enhanced RTMP, MPEG-2 video over SRT — come out of the ladder as H.264 and AAC that FFmpeg decodes
//! without an error; a track Estuary cannot use is reported (log, JSON API, metrics) or, for video,
//! the publish is refused with the reason (RTMP `onStatus` error, SRT close), each in one log line.
//!
//! `estuary serve` runs as a child process so that its log can be checked.
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::common::*;
use hyper::StatusCode;

const API_TOKEN: &str = "codecs test api token, 16+ bytes";

/// A transcoding origin (software encoders, the default ladder) where `passthrough` streams are
/// packaged as they arrive.
fn start(passthrough: &[&str]) -> EstuaryProcess {
    let list: Vec<String> = passthrough.iter().map(|s| format!("\"{s}\"")).collect();
    EstuaryProcess::start(&format!(
        "[transcode]\nenabled = true\nencoder = \"software\"\npassthrough_streams = [{}]\n\
         [api]\ntoken = \"{API_TOKEN}\"\n",
        list.join(", ")
    ))
}

/// Wait (up to `timeout`) for the multivariant playlist of `stream` and for its first `min_segments`
/// video segments; returns the playlist URL.
async fn wait_for_stream(server: &EstuaryProcess, stream: &str, timeout: Duration) -> String {
    let base = format!("http://{}/{stream}/", server.http_addr);
    let multivariant = format!("{base}index.m3u8");
    let deadline = Instant::now() + timeout;
    assert!(
        wait_for_200(&multivariant, timeout).await.is_some(),
        "no playlist for {stream}:\n{}",
        server.log()
    );
    // ffprobe starts a live playlist a few segments from its end: let two segments complete.
    let media = format!("{base}source/media.m3u8");
    while parse_media(&get(&media).await.text()).segments.len() < 2 {
        assert!(Instant::now() < deadline, "no second segment for {stream}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    multivariant
}

/// The CODECS of every variant stream and the audio media group's presence.
async fn variants(multivariant: &str) -> (Vec<String>, bool) {
    let text = get(multivariant).await.text();
    let codecs = text
        .lines()
        .filter(|l| l.starts_with("#EXT-X-STREAM-INF"))
        .filter_map(|l| {
            l.split("CODECS=\"")
                .nth(1)?
                .split('"')
                .next()
                .map(str::to_owned)
        })
        .collect();
    (codecs, text.contains("#EXT-X-MEDIA:TYPE=AUDIO"))
}

/// FFmpeg decodes `seconds` of the stream (every rendition it picks) without an error.
async fn assert_decodes(url: &str, seconds: u32) {
    let out = ffmpeg_decode(url, Some(seconds)).await;
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "ffmpeg decoding {url}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `GET /api/streams/{stream}` with the API token.
async fn api_report(server: &EstuaryProcess, stream: &str) -> serde_json::Value {
    let auth = format!("Bearer {API_TOKEN}");
    let r = request_with(
        "GET",
        &format!("http://{}/api/streams/{stream}", server.http_addr),
        &[("authorization", &auth)],
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    serde_json::from_slice(&r.body).expect("JSON")
}

async fn metrics(server: &EstuaryProcess) -> String {
    let auth = format!("Bearer {API_TOKEN}");
    let r = request_with(
        "GET",
        &format!("http://{}/metrics", server.http_addr),
        &[("authorization", &auth)],
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    r.text()
}

/// The log lines at WARN level or above about `stream` (a `stream=` field, in the event or its span).
fn warnings(server: &EstuaryProcess, stream: &str) -> Vec<String> {
    let fields = [format!("stream={stream}"), format!("stream=\"{stream}\"")];
    server
        .log()
        .lines()
        .filter(|l| l.contains(" WARN ") || l.contains(" ERROR "))
        .filter(|l| {
            l.split(|c: char| c.is_whitespace() || c == '{' || c == '}')
                .any(|token| fields.iter().any(|f| f == token))
        })
        .map(str::to_owned)
        .collect()
}

/// Wait up to `timeout` for a publisher process to exit; its status.
fn wait_exit(publisher: &mut Proc, timeout: Duration) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(Some(status)) = publisher.0.try_wait() {
            return Some(status);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn ffmpeg7() -> PathBuf {
    std::env::var_os("ESTUARY_FFMPEG7")
        .map(PathBuf::from)
        .unwrap_or_else(modern_ffmpeg)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rtmp_mp3_audio_becomes_aac_and_a_passthrough_stream_reports_it() {
    let server = blocking(|| start(&["live/mp3pass"])).await;
    let clip = fixture("bbb-trailer-360p-h264-mp3-12s.mp4");
    let rtmp = |name: &str| format!("rtmp://{}/live/{name}", server.rtmp_addr);
    let _transcoded = publish_loop(Path::new("ffmpeg"), &clip, &rtmp("mp3"));
    let _passthrough = publish_loop(Path::new("ffmpeg"), &clip, &rtmp("mp3pass"));

    // Transcoded: the MP3 is the ladder's AAC-LC audio rendition, shared by the H.264 variants.
    let multivariant = wait_for_stream(&server, "live/mp3", Duration::from_secs(20)).await;
    let (codecs, has_audio_group) = variants(&multivariant).await;
    assert!(has_audio_group, "no audio rendition: {codecs:?}");
    assert!(
        !codecs.is_empty()
            && codecs
                .iter()
                .all(|c| c.starts_with("avc1.") && c.contains("mp4a.40.2")),
        "{codecs:?}"
    );
    let audio = format!("http://{}/live/mp3/audio/media.m3u8", server.http_addr);
    assert_eq!(
        probe_first(&audio, None, "stream=codec_name,sample_rate,channels").await,
        "aac,48000,2"
    );
    assert_decodes(&multivariant, 4).await;
    let report = api_report(&server, "live/mp3").await;
    assert_eq!(report["transcoder"]["decode_errors"], 0, "{report}");
    assert_eq!(report["unusable_tracks"], serde_json::json!([]), "{report}");

    // Passthrough: video only, and the MP3 track is reported — one warning, the API, the metrics.
    let multivariant = wait_for_stream(&server, "live/mp3pass", Duration::from_secs(10)).await;
    let (codecs, has_audio_group) = variants(&multivariant).await;
    assert!(
        !has_audio_group && codecs.iter().all(|c| !c.contains("mp4a")),
        "{codecs:?}"
    );
    let report = api_report(&server, "live/mp3pass").await;
    let unusable = &report["unusable_tracks"];
    assert_eq!(unusable.as_array().map(Vec::len), Some(1), "{report}");
    assert_eq!(
        (&unusable[0]["kind"], &unusable[0]["codec"]),
        (&"audio".into(), &"mp3".into())
    );
    assert!(
        unusable[0]["reason"]
            .as_str()
            .unwrap()
            .contains("not transcoded"),
        "{report}"
    );
    let text = metrics(&server).await;
    assert!(
        text.contains(
            "estuary_ingest_unusable_tracks{stream=\"live/mp3pass\",kind=\"audio\",codec=\"mp3\"} 1"
        ),
        "{text}"
    );
    let warned = warnings(&server, "live/mp3pass");
    assert_eq!(warned.len(), 1, "{warned:#?}");
    assert!(warned[0].contains("codec=mp3"), "{}", warned[0]);
    assert!(
        warnings(&server, "live/mp3").is_empty(),
        "{:#?}",
        warnings(&server, "live/mp3")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn enhanced_rtmp_ac3_5_1_becomes_stereo_aac() {
    let server = blocking(|| start(&[])).await;
    // FFmpeg ≥ 7 sends AC-3 in Enhanced RTMP (FourCC `ac-3`): the 5.1 clip's audio, looped and encoded
    // to AC-3 5.1, with a small generated picture (2 s GOP; a looped clip's video would have a gap at
    // every seam) to keep the publisher cheap.
    let clip = fixture("bbb-720p-h264-aac51-5s.mp4");
    let url = format!("rtmp://{}/live/ac3", server.rtmp_addr);
    let _publisher = ffmpeg(
        &ffmpeg7(),
        &[
            "-re",
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=426x240:rate=25",
            "-re",
            "-stream_loop",
            "-1",
            "-i",
            clip.to_str().unwrap(),
            "-map",
            "0:v",
            "-map",
            "1:a",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-g",
            "50",
            "-keyint_min",
            "50",
            "-sc_threshold",
            "0",
            "-c:a",
            "ac3",
            "-ac",
            "6",
            "-f",
            "flv",
            &url,
        ],
    );
    let multivariant = wait_for_stream(&server, "live/ac3", Duration::from_secs(20)).await;
    let (codecs, has_audio_group) = variants(&multivariant).await;
    assert!(has_audio_group, "{codecs:?}");
    let audio = format!("http://{}/live/ac3/audio/media.m3u8", server.http_addr);
    assert_eq!(
        probe_first(&audio, None, "stream=codec_name,sample_rate,channels").await,
        "aac,48000,2"
    );
    assert_decodes(&multivariant, 4).await;
    assert!(
        server.log().contains("codec=ec-3") || server.log().contains("codec=ac-3"),
        "the source track was AC-3:\n{}",
        server.log()
    );
    assert!(
        warnings(&server, "live/ac3").is_empty(),
        "{:#?}",
        warnings(&server, "live/ac3")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn srt_mpeg2_video_is_decoded_into_an_h264_ladder() {
    let server = blocking(|| start(&[])).await;
    let url = srt_url(server.srt_addr, "#!::r=live/mpeg2,m=publish", "");
    let _publisher = publish_srt_loop(&fixture("camera-city-cc0-405p-mpeg2-8s.mpg"), &url);
    // At the same time, an MPEG-2 stream with CEA-608 captions in its pictures' user data.
    let cc_url = srt_url(server.srt_addr, "#!::r=live/mpeg2cc,m=publish", "");
    let _cc_publisher = publish_srt_loop(&fixture("testsrc-180p-mpeg2-cea608-7s.ts"), &cc_url);
    let multivariant = wait_for_stream(&server, "live/mpeg2", Duration::from_secs(20)).await;
    let (codecs, has_audio_group) = variants(&multivariant).await;
    assert!(!has_audio_group, "the clip has no audio");
    assert!(
        codecs.len() >= 2 && codecs.iter().all(|c| c.starts_with("avc1.")),
        "{codecs:?}"
    );
    // The copy rung became an H.264 rung at the source's size (405 lines, rounded down to even; the
    // width follows the display aspect ratio).
    let source = format!("http://{}/live/mpeg2/source/media.m3u8", server.http_addr);
    let probed = probe_first(&source, Some("v:0"), "stream=codec_name,height").await;
    assert_eq!(probed, "h264,404");
    assert_decodes(&multivariant, 4).await;
    let report = api_report(&server, "live/mpeg2").await;
    assert_eq!(report["transcoder"]["decode_errors"], 0, "{report}");
    // No warning about the stream from ingest, the hub, the transcoder or the packager (every segment
    // of the encoded ladder starts on the transcoder's grid with a keyframe).
    let warned = warnings(&server, "live/mpeg2");
    assert!(warned.is_empty(), "{warned:#?}");

    // The captions are found in the MPEG-2 user data, announced, and carried into the H.264 rung.
    let cc_multivariant = wait_for_stream(&server, "live/mpeg2cc", Duration::from_secs(20)).await;
    let text = get(&cc_multivariant).await.text();
    assert!(
        text.contains("TYPE=CLOSED-CAPTIONS,GROUP-ID=\"cc\"")
            && text.contains("INSTREAM-ID=\"CC1\""),
        "{text}"
    );
    let base = cc_multivariant.trim_end_matches("index.m3u8");
    let read = crate::captions::captions_read_by_ffmpeg(base, "source").await;
    assert!(!read.is_empty(), "no caption read from the encoded rung");
    println!(
        "mpeg-2 captions: CC1 announced, {} read by FFmpeg from the H.264 rung",
        read.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn passthrough_streams_with_video_players_cannot_play_are_refused_with_the_reason() {
    let server = blocking(|| start(&["live/pass-mpeg2", "live/pass-h263"])).await;
    // SRT: MPEG-2 video on a passthrough stream: the connection is closed once the track is known.
    let url = srt_url(server.srt_addr, "#!::r=live/pass-mpeg2,m=publish", "");
    let mut srt = publish_srt_loop(&fixture("camera-city-cc0-405p-mpeg2-8s.mpg"), &url);
    // RTMP: Sorenson H.263 (FLV codec 2) on a passthrough stream: NetStream.Publish.Rejected, closed.
    let child = std::process::Command::new("ffmpeg")
        .args([
            "-hide_banner",
            "-loglevel",
            "error",
            "-re",
            "-f",
            "lavfi",
            "-i",
        ])
        .arg("testsrc2=size=320x240:rate=25")
        .args(["-c:v", "flv", "-f", "flv"])
        .arg(format!("rtmp://{}/live/pass-h263", server.rtmp_addr))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("ffmpeg runs");
    let mut rtmp = Proc(child, "ffmpeg h263 publish");

    let rtmp_status = blocking(move || {
        let status = wait_exit(&mut rtmp, Duration::from_secs(15));
        let mut stderr = String::new();
        if let Some(mut e) = rtmp.0.stderr.take() {
            use std::io::Read;
            let _ = e.read_to_string(&mut stderr);
        }
        (status, stderr)
    })
    .await;
    let (status, stderr) = rtmp_status;
    assert!(
        status.is_some_and(|s| !s.success()),
        "the RTMP publisher kept going"
    );
    assert!(
        stderr.contains("unsupported codec"),
        "FFmpeg was told why: {stderr}"
    );
    let srt_status = blocking(move || wait_exit(&mut srt, Duration::from_secs(15))).await;
    assert!(srt_status.is_some(), "the SRT publisher kept going");

    for (stream, protocol) in [("live/pass-mpeg2", "srt"), ("live/pass-h263", "rtmp")] {
        // The driver logs the refusal as it closes the connection.
        assert!(
            server
                .wait_for_line(&["unsupported codec", stream], Duration::from_secs(5))
                .is_some(),
            "{}",
            server.log()
        );
        let warned = warnings(&server, stream);
        assert_eq!(warned.len(), 1, "{stream}: {warned:#?}");
        let line = &warned[0];
        assert!(
            line.contains("unsupported codec")
                && line.contains("not transcoded")
                && line.contains("peer="),
            "{protocol}: {line}"
        );
    }
    // Nothing was published.
    let r = get(&format!(
        "http://{}/live/pass-mpeg2/index.m3u8",
        server.http_addr
    ))
    .await;
    assert_ne!(r.status, StatusCode::OK);
}
