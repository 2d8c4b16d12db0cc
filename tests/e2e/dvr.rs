//! The DVR window end to end: a stream published in real time with FFmpeg over RTMP keeps listing
//! the segments that left its live window (served from its DVR store on disk), delta updates stay
//! small, hls.js and dash.js rewind into it and come back to live, and the store is deleted when
//! the stream ends.
use std::{path::Path, time::Duration};

use crate::common::*;
use hyper::StatusCode;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dvr_window_lists_old_segments_from_disk_and_players_rewind_into_it() {
    let config = "[packager]\nwindow_segments = 6\n[streams]\nreconnect_grace = \"2s\"\n[dvr]\nwindow = \"2m\"\n";
    let data_dir = fresh_data_dir();
    let origin = blocking({
        let d = data_dir.clone();
        move || EstuaryProcess::start_in(config, &d)
    })
    .await;
    let stream = "live/dvr";
    let mut publisher = publish_loop(
        Path::new("ffmpeg"),
        &fixture("bbb-720p-2s-gop.mp4"),
        &format!("rtmp://{}/{stream}", origin.rtmp_addr),
    );
    let base = format!("http://{}/{stream}/", origin.http_addr);
    wait_for_200(&format!("{base}source/media.m3u8"), Duration::from_secs(20))
        .await
        .expect("playlist");
    tokio::time::sleep(Duration::from_secs(20)).await;

    // Listed beyond the live window of 6 segments; the oldest served from the store on disk.
    let full = get(&format!("{base}source/media.m3u8")).await.text();
    let pl = match m3u8_rs::parse_playlist_res(full.as_bytes()).unwrap() {
        m3u8_rs::Playlist::MediaPlaylist(p) => p,
        m3u8_rs::Playlist::MasterPlaylist(_) => panic!("media playlist expected"),
    };
    let listed_s: f64 = pl.segments.iter().map(|s| f64::from(s.duration)).sum();
    // 2 s segments: more than the live window's 6 listed.
    assert!(pl.segments.len() > 6 && listed_s >= 16.0, "{full}");
    let oldest = &pl.segments[0].uri;
    let fetched = get(&format!("{base}source/{oldest}")).await;
    assert_eq!(fetched.status, StatusCode::OK);
    let store = data_dir.join("dvr/live/dvr");
    let ids: Vec<_> = std::fs::read_dir(&store)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(ids.len(), 1);
    assert_eq!(
        std::fs::read(ids[0].join("source").join(oldest)).unwrap(),
        fetched.body.to_vec()
    );
    assert!(fetched.header("cache-control").contains("immutable"));
    // A delta update skips what is older than CAN-SKIP-UNTIL.
    let delta = get(&format!("{base}source/media.m3u8?_HLS_skip=YES"))
        .await
        .text();
    assert!(delta.contains("#EXT-X-SKIP:SKIPPED-SEGMENTS="), "{delta}");
    println!(
        "dvr: {} segments ({listed_s:.1} s) listed; full playlist {} bytes, delta update {} bytes",
        pl.segments.len(),
        full.len(),
        delta.len()
    );
    assert!(delta.len() < full.len());
    let mpd = get(&format!("{base}manifest.mpd")).await.text();
    assert!(mpd.contains("timeShiftBufferDepth=\"PT2M\""), "{mpd}");

    // hls.js and dash.js rewind 12 s, play there, and come back to live.
    let report = blocking({
        let (h, d) = (format!("{base}index.m3u8"), format!("{base}manifest.mpd"));
        move || play_dvr(&h, &d, 12, 3)
    })
    .await;
    println!("dvr players: {report}");
    assert_eq!(report["ok"], true, "{report}");

    // The stream ends: its DVR store goes.
    publisher.kill();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while store.read_dir().is_ok_and(|mut d| d.next().is_some())
        && std::time::Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        store.read_dir().is_ok_and(|mut d| d.next().is_none()),
        "the DVR store is deleted when the stream ends"
    );
}
