//! The DVR window: segments that leave the live window stay listed (media playlists, MPD) for the
//! DVR window, delta updates skip them, discontinuities are counted as they leave the listing.

use std::time::Duration;

use crate::common::*;
use dash_mpd_core as mpd;
use packager::{PackagerConfig, StreamPackager, hls};

fn media(p: &StreamPackager, skip: bool) -> m3u8_rs::MediaPlaylist {
    let text = hls::render_media_playlist(p, "source", skip).unwrap();
    match m3u8_rs::parse_playlist_res(text.as_bytes()).unwrap() {
        m3u8_rs::Playlist::MediaPlaylist(pl) => pl,
        m3u8_rs::Playlist::MasterPlaylist(_) => panic!("media playlist expected"),
    }
}

fn dvr(window_s: u64) -> StreamPackager {
    packager(PackagerConfig {
        dvr_window: Some(Duration::from_secs(window_s)),
        ..Default::default()
    })
}

#[test]
fn segments_leaving_the_live_window_stay_listed_for_the_dvr_window() {
    let mut p = dvr(60);
    // 100 s of 2 s segments: 12 in the live window, the rest of 60 s in the archive.
    feed(&mut p, 100.0, 60, 0);
    let v = p.rendition("source").unwrap();
    assert_eq!(v.segments().iter().filter(|s| s.is_complete).count(), 12);
    let archived = v.archive().len();
    let listed = media(&p, false);
    let total: f64 = listed.segments.iter().map(|s| f64::from(s.duration)).sum();
    assert!((58.0..=60.0).contains(&total), "{total} s listed");
    assert_eq!(listed.segments.len(), archived + 12);
    assert_eq!(listed.media_sequence, v.archive()[0].msn);
    // The oldest listed ones are whole segments (no parts).
    assert_eq!(
        listed.segments[0].uri,
        format!("{}.m4s", v.archive()[0].msn)
    );
    assert!(v.archived(v.archive()[0].msn).is_some());
    assert!(
        v.segment(v.archive()[0].msn).is_none(),
        "bytes are not in memory"
    );
    // A delta update skips everything older than CAN-SKIP-UNTIL (6 target durations).
    let delta_text = hls::render_media_playlist(&p, "source", true).unwrap();
    let full_text = hls::render_media_playlist(&p, "source", false).unwrap();
    assert!(
        delta_text.contains("#EXT-X-SKIP:SKIPPED-SEGMENTS="),
        "{delta_text}"
    );
    assert!(
        delta_text.len() < full_text.len(),
        "{} vs {}",
        delta_text.len(),
        full_text.len()
    );
    assert!(delta_text.matches("#EXTINF").count() <= 8, "{delta_text}");
    // The MPD lists the same segments, with the DVR window as its time shift buffer.
    let m = mpd::parse(
        &packager::dash::render_mpd(&p, &Default::default(), 1_700_000_100_000).unwrap(),
    )
    .unwrap();
    assert_eq!(m.timeShiftBufferDepth, Some(Duration::from_secs(60)));
    let st = m.periods[0].adaptations[0].representations[0]
        .SegmentTemplate
        .as_ref()
        .unwrap();
    assert_eq!(st.startNumber, Some(v.archive()[0].msn));
    let listed_in_mpd: u64 = st
        .SegmentTimeline
        .as_ref()
        .unwrap()
        .segments
        .iter()
        .map(|s| 1 + s.r.unwrap_or(0) as u64)
        .sum();
    // The live window's segment in progress is listed too.
    assert_eq!(listed_in_mpd, (archived + 13) as u64);
}

#[test]
fn a_discontinuity_is_counted_once_it_leaves_the_dvr_listing() {
    let mut p = dvr(40);
    feed(&mut p, 10.0, 60, 0);
    p.discontinuity();
    feed(&mut p, 30.0, 60, 20_000);
    // The discontinuity has left the live window: listed from the archive.
    let v = p.rendition("source").unwrap();
    assert!(v.archive().iter().any(|a| a.is_discontinuity));
    assert!(!v.segments().iter().any(|s| s.is_discontinuity));
    let listed = media(&p, false);
    assert_eq!(listed.discontinuity_sequence, 0);
    assert_eq!(
        listed.segments.iter().filter(|s| s.discontinuity).count(),
        1
    );
    // ... then the listing: counted in EXT-X-DISCONTINUITY-SEQUENCE.
    feed(&mut p, 20.0, 60, 50_000);
    let listed = media(&p, false);
    assert_eq!(
        listed.segments.iter().filter(|s| s.discontinuity).count(),
        0
    );
    assert_eq!(listed.discontinuity_sequence, 1);
    assert_eq!(
        p.rendition("source")
            .unwrap()
            .latest_discontinuity_sequence(),
        1
    );
    // Turning the DVR off forgets the archive; the listing is the live window again.
    p.set_dvr_window(None);
    assert!(p.rendition("source").unwrap().archive().is_empty());
    assert_eq!(media(&p, false).segments.len(), 12);
}

#[test]
fn the_mpd_lets_players_rewind_through_the_dvr_window() {
    let mut p = dvr(120);
    feed(&mut p, 30.0, 60, 0);
    let m = mpd::parse(
        &packager::dash::render_mpd(&p, &Default::default(), 1_700_000_030_000).unwrap(),
    )
    .unwrap();
    let latency = &m.ServiceDescription[0].Latency[0];
    // dash.js seeks back to live once max − target + 0.5 s behind it: not within the window.
    assert!(
        latency.max.unwrap() - latency.target.unwrap() >= 120_000.0,
        "{latency:?}"
    );
}
