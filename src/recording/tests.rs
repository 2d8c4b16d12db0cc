//! The recorder's retention, listing and deletion on synthetic recordings.

use std::time::Duration;

use super::{
    index::{INDEX_FILE, IndexLine, InitLine, SegmentLine, StartLine},
    *,
};

/// A complete recording of `stream` begun at `start_ms` (and ended 10 s later, wall clock) with
/// `segments` segments of `bytes` bytes each.
fn write_recording(
    recorder: &Recorder,
    stream: &str,
    start_ms: i64,
    segments: u64,
    bytes: u64,
) -> String {
    let id = RecordingId::at(start_ms, 1).as_str().to_owned();
    let dir = recorder.dir_of(stream, &id);
    std::fs::create_dir_all(dir.join("source")).unwrap();
    let mut lines = vec![
        IndexLine::Start(StartLine {
            stream: stream.into(),
            id: id.clone(),
            at_ms: start_ms,
        }),
        IndexLine::Init(InitLine {
            rendition: "source".into(),
            kind: "video".into(),
            timescale: 90_000,
            id: 1,
            codec: "avc1.64001f".into(),
            size: Some((640, 360)),
            frame_rate: Some((30, 1)),
            audio: None,
            bytes: 10,
        }),
    ];
    std::fs::write(dir.join("source/init-1.mp4"), [0u8; 10]).unwrap();
    for msn in 1..=segments {
        std::fs::write(
            dir.join(format!("source/{msn}.m4s")),
            vec![0u8; bytes as usize],
        )
        .unwrap();
        lines.push(IndexLine::Segment(SegmentLine {
            rendition: "source".into(),
            msn,
            init_id: 1,
            earliest_pts: (msn as i64 - 1) * 180_000,
            duration_ticks: 180_000,
            pdt_ms: start_ms + (msn as i64 - 1) * 2_000,
            discontinuity: false,
            bytes,
            key: None,
        }));
    }
    lines.push(IndexLine::End {
        at_ms: start_ms + 10_000,
        interrupted: false,
    });
    let text: String = lines
        .iter()
        .map(|l| serde_json::to_string(l).unwrap() + "\n")
        .collect();
    std::fs::write(dir.join(INDEX_FILE), text).unwrap();
    id
}

fn on_disk(recorder: &Recorder, stream: &str) -> Vec<String> {
    let mut ids: Vec<String> = std::fs::read_dir(recorder.root.join(stream))
        .map(|d| {
            d.map(|e| e.unwrap().file_name().to_string_lossy().to_string())
                .collect()
        })
        .unwrap_or_default();
    ids.sort();
    ids
}

#[test]
fn retention_deletes_the_oldest_first_until_under_the_byte_limit_and_the_list_agrees() {
    let tmp = tempfile::tempdir().unwrap();
    let config = RecordingConfig {
        max_bytes: Some(2_500),
        ..Default::default()
    };
    let recorder = Recorder::new(tmp.path(), config, Duration::from_secs(10));
    let now = unix_ms();
    // Four recordings of 1 010 bytes each, begun a minute apart; the newest is being recorded.
    let ids: Vec<String> = (0..4)
        .map(|i| {
            write_recording(
                &recorder,
                if i % 2 == 0 { "live/a" } else { "live/b" },
                now - (4 - i) * 60_000,
                5,
                200,
            )
        })
        .collect();
    recorder.mark_active("live/b", &ids[3]);
    // The active one's index has no end yet.
    recorder.apply_retention();
    // 4 040 bytes over 2 500: the two oldest go (the active one counts, but is never deleted).
    let listed: Vec<String> = recorder.list().iter().map(|l| l.id.to_string()).collect();
    assert_eq!(listed, vec![ids[2].clone(), ids[3].clone()]);
    assert_eq!(on_disk(&recorder, "live/a"), vec![ids[2].clone()]);
    assert_eq!(on_disk(&recorder, "live/b"), vec![ids[3].clone()]);
    assert_eq!(recorder.expired.load(Ordering::Relaxed), 2);
    let total: u64 = recorder.list().iter().map(|l| l.bytes).sum();
    assert_eq!(total, 2 * 1_010);
    // The API's facts.
    let facts = recorder.facts(&recorder.get("live/b", &ids[3]).unwrap());
    assert_eq!(facts.status, RecordingStatus::Recording);
    assert_eq!(facts.duration_ms, 10_000);
    assert_eq!(facts.hls, format!("/vod/live/b/{}/index.m3u8", ids[3]));
    assert_eq!(
        facts.downloads,
        vec![format!("/vod/live/b/{}/source.mp4", ids[3])]
    );
    assert_eq!(
        recorder.delete("live/b", &ids[3]),
        Err(DeleteError::InProgress)
    );
    assert_eq!(
        recorder.delete("live/b", "20000101T000000Z"),
        Err(DeleteError::NotFound)
    );
    assert_eq!(recorder.delete("live/a", &ids[2]), Ok(()));
    assert!(on_disk(&recorder, "live/a").is_empty());
}

#[test]
fn retention_by_age_spares_recent_and_active_recordings() {
    let tmp = tempfile::tempdir().unwrap();
    let config = RecordingConfig {
        max_age: Some(Duration::from_secs(3_600)),
        ..Default::default()
    };
    let recorder = Recorder::new(tmp.path(), config, Duration::from_secs(10));
    let now = unix_ms();
    let old = write_recording(&recorder, "live/a", now - 2 * 3_600_000, 2, 100);
    let old_active = write_recording(&recorder, "live/b", now - 3 * 3_600_000, 2, 100);
    let recent = write_recording(&recorder, "live/a", now - 60_000, 2, 100);
    recorder.mark_active("live/b", &old_active);
    recorder.apply_retention();
    assert_eq!(on_disk(&recorder, "live/a"), vec![recent]);
    assert_eq!(on_disk(&recorder, "live/b"), vec![old_active]);
    assert!(!on_disk(&recorder, "live/a").contains(&old));
}

#[test]
fn an_unfinished_recording_is_resumed_within_the_grace_period_else_closed_as_interrupted() {
    let tmp = tempfile::tempdir().unwrap();
    let config = RecordingConfig {
        enabled: true,
        ..Default::default()
    };
    let recorder = Recorder::new(tmp.path(), config, Duration::from_secs(10));
    let first = recorder.start("live/a", false).expect("recording");
    let id = first.id().to_owned();
    // The origin dies without ending it (the tap is forgotten, its writer never told).
    recorder
        .active
        .lock()
        .unwrap()
        .remove(&("live/a".to_owned(), id.clone()));
    std::mem::forget(first);
    let again = recorder.start("live/a", false).expect("recording");
    assert_eq!(again.id(), id, "resumed");
    let text = std::fs::read_to_string(recorder.dir_of("live/a", &id).join(INDEX_FILE)).unwrap();
    assert!(text.contains("\"resume\""), "{text}");
    drop(again);
    // Its writer closes it; a later publish starts another.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while recorder.is_active("live/a", &id) && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    std::thread::sleep(Duration::from_millis(1_100));
    let third = recorder.start("live/a", false).expect("recording");
    assert_ne!(third.id(), id);

    // An unfinished one older than the grace period is closed as interrupted, not resumed.
    let stale = Recorder::new(
        tmp.path(),
        RecordingConfig {
            enabled: true,
            ..Default::default()
        },
        Duration::ZERO,
    );
    let tap = stale.start("live/c", false).expect("recording");
    let stale_id = tap.id().to_owned();
    stale.active.lock().unwrap().clear();
    std::mem::forget(tap);
    std::thread::sleep(Duration::from_millis(2_100));
    let next = stale.start("live/c", false).expect("recording");
    assert_ne!(next.id(), stale_id);
    let closed = stale.get("live/c", &stale_id).unwrap();
    assert!(closed.interrupted && closed.ended_ms.is_some());
    assert_eq!(stale.facts(&closed).status, RecordingStatus::Interrupted);
}
