//! Measure the default ladder on the 720p Big Buck Bunny fixture (30 s): real-time factor at full
//! speed, CPU seconds, encoder delay; with `--paced`, push at real-time pace (like a live publish) and
//! report how far the encoded rungs trail the input.
//!
//! `cargo run -p transcoder --example ladder_speed [-- --paced] [-- --secs N]`

#[path = "../tests/common/mod.rs"]
mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use media::TrackKind;
use transcoder::{
    EncoderChoice, StreamTranscoder, TranscodeOptions, default_ladder, probe_encoders,
};

/// User + system CPU seconds of this process (Linux `/proc/self/stat`, 100 Hz ticks).
fn cpu_s() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let is_paced = args.iter().any(|a| a == "--paced");
    let secs: u32 = args
        .iter()
        .position(|a| a == "--secs")
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(30);
    let src = common::load_fixture("bbb-720p-2s-gop.mp4", secs);
    let video = src.video.clone().expect("video");
    let audio = src.audio.clone().expect("audio");
    let ladder = default_ladder(video.config.video_params().expect("params"));
    let probe = probe_encoders(EncoderChoice::Auto).expect("probe");
    let sink = Arc::new(common::RecordingSink::default());
    let cpu0 = cpu_s();
    let started = Instant::now();
    let tx = StreamTranscoder::start(
        "live/bench",
        Some(&video),
        Some(&audio),
        &ladder,
        &probe,
        &TranscodeOptions::default(),
        sink.clone(),
    )
    .expect("start");
    let mut max_lag_ms = 0;
    for f in &src.frames {
        if is_paced {
            let at_ms = if f.track == TrackKind::Video {
                f.dts / 90
            } else {
                f.dts * 1000 / i64::from(audio.timescale)
            };
            let due = started + Duration::from_millis(at_ms.max(0) as u64);
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
            tx.push(f.clone());
            max_lag_ms = max_lag_ms.max(tx.stats().lag_ms);
        } else {
            tx.push_wait(f.clone());
        }
    }
    let stats = tx.finish();
    let wall = started.elapsed().as_secs_f64();
    let cpu = cpu_s() - cpu0;
    println!(
        "{} s of 720p24 + AAC, ladder {:?}, {} mode",
        secs,
        ladder.iter().map(|r| r.name.as_str()).collect::<Vec<_>>(),
        if is_paced {
            "real-time paced"
        } else {
            "full speed"
        }
    );
    println!(
        "real-time factor {:.2} ({:.2} s media / {:.2} s wall); process CPU {:.2} s ({:.2} CPU s per media s)",
        stats.real_time_factor,
        stats.media_processed.as_secs_f64(),
        wall,
        cpu,
        cpu / stats.media_processed.as_secs_f64().max(1e-9)
    );
    for r in &stats.rungs {
        println!(
            "  {:8} {:8} in {:5} out {:5} dropped {:3} errors {} delay {:.1} ms held {}",
            r.name,
            r.encoder,
            r.frames_in,
            r.frames_out,
            r.frames_dropped,
            r.encode_errors,
            r.encoder_delay_ms,
            r.encoder_held_frames
        );
    }
    println!(
        "  audio    aac      in {:5} out {:5} dropped {:3}; shed {:?}; max lag {} ms",
        stats.audio.frames_in,
        stats.audio.frames_out,
        stats.audio.frames_dropped,
        stats.shed_rungs,
        max_lag_ms
    );
}
