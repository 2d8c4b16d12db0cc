//! WebRTC viewers over WHEP (draft-ietf-wish-whep), first step: headless Chromium plays a stream
//! published without B-frames (FFmpeg, x264 `zerolatency`, over RTMP) from a token URL while hls.js
//! plays it too; a request without a token is 401, a stream with B-frames is refused with the reason,
//! and `DELETE` on the session's `Location` ends it.

use std::{path::Path, time::Duration};

use crate::common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_plays_a_stream_over_whep_beside_hls_js_and_bad_requests_get_clear_answers() {
    let origin = blocking(|| {
        EstuaryProcess::start(&format!(
            "[webrtc]\nenabled = true\nudp_listen = \"127.0.0.1:0\"\n\
             [auth]\nplayback = \"token\"\npublish = \"open\"\nsecret = \"{TEST_SECRET}\"\n"
        ))
    })
    .await;
    let clip = fixture("camera-bikes-272p-h264-10s.mp4");
    let rtmp = |name: &str| format!("rtmp://{}/live/{name}", origin.rtmp_addr);
    let clip_arg = clip.display().to_string();
    let _no_bframes = ffmpeg(
        Path::new("ffmpeg"),
        &[
            "-re",
            "-stream_loop",
            "-1",
            "-i",
            &clip_arg,
            "-c:v",
            "libx264",
            "-preset",
            "veryfast",
            "-tune",
            "zerolatency",
            "-g",
            "50",
            "-an",
            "-f",
            "flv",
            &rtmp("rtc"),
        ],
    );
    let _bframes = publish_loop(Path::new("ffmpeg"), &clip, &rtmp("bframes"));
    let base = |name: &str| {
        let stream = format!("live/{name}");
        format!(
            "http://{}/t/{}/{stream}/",
            origin.http_addr,
            test_token(&stream)
        )
    };
    for name in ["rtc", "bframes"] {
        assert!(
            wait_for_200(
                &format!("{}source/media.m3u8", base(name)),
                Duration::from_secs(20)
            )
            .await
            .is_some(),
            "live/{name} is served"
        );
    }

    // WebRTC and LL-HLS viewers of the same stream at the same time.
    let whep_url = format!("{}whep", base("rtc"));
    let hls_url = format!("{}index.m3u8", base("rtc"));
    let whep = tokio::spawn(blocking(move || play_whep(&whep_url, 10)));
    let hls = blocking(move || play_hls(&hls_url, 10));
    // The API counts the session while it plays.
    let api = format!("http://{}/api/streams/live/rtc", origin.http_addr);
    let auth = format!("Bearer {}", test_api_token());
    let mut sessions_seen = 0;
    while !whep.is_finished() {
        let r = request_with("GET", &api, &[("authorization", &auth)], None).await;
        let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap_or_default();
        sessions_seen = sessions_seen.max(v["webrtc_sessions"].as_u64().unwrap_or(0));
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let (whep, hls) = (whep.await.unwrap(), hls.await);
    assert_eq!(
        sessions_seen, 1,
        "GET /api/streams counts the WebRTC session"
    );
    println!("whep: {whep}\nhls.js: {hls}");
    assert_eq!(whep["ok"], true, "{whep}");
    assert_eq!(whep["status"], 201, "{whep}");
    assert_eq!(whep["connection_state"], "connected", "{whep}");
    assert!(
        whep["decoded_in_window"].as_u64().unwrap_or(0) >= 150,
        "about 25 frames/s decoded over 10 s: {whep}"
    );
    assert_eq!(whep["freezes"], 0, "{whep}");
    assert_eq!(
        (whep["width"].as_u64(), whep["height"].as_u64()),
        (Some(640), Some(272))
    );
    let location = whep["location"].as_str().expect("a Location");
    assert!(location.contains("/live/rtc/whep/"), "{location}");
    assert_played(&hls, 8.0);

    // The session's Location ends it (it is gone already: the browser closed); an unknown one is 404.
    let ended = request("DELETE", &format!("http://{}{location}", origin.http_addr)).await;
    assert!(
        matches!(ended.status.as_u16(), 200 | 404),
        "{}",
        ended.status
    );
    assert_eq!(
        request("DELETE", &format!("{}whep/999999", base("rtc")))
            .await
            .status,
        404
    );

    // Without a token: 401; with a bearer token instead of the path token: accepted as far as the SDP.
    let offer = "v=0\r\n";
    let bare = request_with(
        "POST",
        &format!("http://{}/live/rtc/whep", origin.http_addr),
        &[("content-type", "application/sdp")],
        Some(offer),
    )
    .await;
    assert_eq!(bare.status, 401);
    let bearer = format!("Bearer {}", test_token("live/rtc"));
    let malformed = request_with(
        "POST",
        &format!("http://{}/live/rtc/whep", origin.http_addr),
        &[
            ("content-type", "application/sdp"),
            ("authorization", &bearer),
        ],
        Some(offer),
    )
    .await;
    assert_eq!(malformed.status, 400, "{}", malformed.text());
    // A stream with B-frames has no WebRTC rendition: refused with the reason, never a black video.
    let refused = request_with(
        "POST",
        &format!("{}whep", base("bframes")),
        &[("content-type", "application/sdp")],
        Some(offer),
    )
    .await;
    assert_eq!(refused.status, 409, "{}", refused.text());
    assert!(refused.text().contains("B-frames"), "{}", refused.text());
}
