//! Streams per machine: N copies of the default ladder at once, each fed in real time, ours against N
//! FFmpeg CLI processes doing the same ladder (`-re`), in one run.
//!
//! - **Ours**: N `StreamTranscoder`s in this process, each fed by its own thread with `push` (the live
//!   path: frames are dropped and rungs shed when a stream falls behind), each frame when its decode
//!   time comes, from the moment the stream's `start` is called.
//! - **Peer**: N `ffmpeg` processes with the timed runs' command and `-re` (input read at its native
//!   rate), launched together.
//!
//! A stream **keeps up** when it ends within [`MAX_END_LAG_S`] of the media's duration, counted from
//! its launch, and (ours) nothing was dropped or shed. The CPU is the user + system time of all of
//! them together (this process's for ours, the waited-for children's for the CLI), per stream and per
//! media second.

use std::time::{Duration, Instant};

use super::{CountingSink, Source, cpu_times, loadavg};
use media::TrackKind;
use std::process::{Command, Stdio};
use std::sync::Arc;
use transcoder::{EncoderProbe, RungConfig, StreamTranscoder, TranscodeOptions};

/// How late a stream may end, seconds after its media's duration from its launch: the time to open
/// the codecs and flush them, well under one segment target (2 s).
pub(crate) const MAX_END_LAG_S: f64 = 1.0;

/// N streams run at once.
pub(crate) struct Capacity {
    /// Streams that kept up.
    pub kept_up: usize,
    /// Each stream's end, seconds after its media's duration from its launch.
    pub end_lag_s: Vec<f64>,
    /// Why streams did not keep up (ours: frames dropped, rungs shed), or empty.
    pub trouble: String,
    /// CPU seconds (user + system) of all the streams together.
    pub cpu_s: f64,
    /// Wall seconds from the launch of the first to the end of the last.
    pub wall_s: f64,
}

impl Capacity {
    fn new(end_lag_s: Vec<f64>, ok: &[bool], trouble: String, cpu_s: f64, wall_s: f64) -> Self {
        Self {
            kept_up: ok.iter().filter(|k| **k).count(),
            end_lag_s,
            trouble,
            cpu_s,
            wall_s,
        }
    }

    /// One table row: `| who | N | kept up | end lag max | CPU per stream per media s | cores busy |`.
    pub(crate) fn row(&self, who: &str, n: usize, media_s: f64) -> String {
        let max = self.end_lag_s.iter().copied().fold(f64::MIN, f64::max);
        format!(
            "| {who} | {n} | {}/{n} | {max:+.2} s | {:.3} | {:.2} |{}",
            self.kept_up,
            self.cpu_s / n as f64 / media_s,
            self.cpu_s / self.wall_s,
            if self.trouble.is_empty() {
                String::new()
            } else {
                format!(" {}", self.trouble)
            }
        )
    }
}

/// N of our transcoders at once, each paced in real time on its own feeding thread.
pub(crate) fn ours(
    src: &Source,
    ladder: &[RungConfig],
    probe: &EncoderProbe,
    options: &TranscodeOptions,
    n: usize,
) -> Capacity {
    let (cpu0, _) = cpu_times();
    let started = Instant::now();
    let results: Vec<(f64, bool, String)> = std::thread::scope(|s| {
        let feeders: Vec<_> = (0..n)
            .map(|i| s.spawn(move || paced_stream(src, ladder, probe, options, i)))
            .collect();
        feeders
            .into_iter()
            .map(|h| h.join().expect("a feeding thread"))
            .collect()
    });
    let wall_s = started.elapsed().as_secs_f64();
    let (cpu1, _) = cpu_times();
    let ok: Vec<bool> = results.iter().map(|r| r.1).collect();
    let trouble: Vec<String> = results
        .iter()
        .filter(|r| !r.2.is_empty())
        .map(|r| r.2.clone())
        .collect();
    Capacity::new(
        results.iter().map(|r| r.0).collect(),
        &ok,
        trouble.join("; "),
        cpu1 - cpu0,
        wall_s,
    )
}

/// One stream fed in real time: (end lag s, kept up, what went wrong).
fn paced_stream(
    src: &Source,
    ladder: &[RungConfig],
    probe: &EncoderProbe,
    options: &TranscodeOptions,
    i: usize,
) -> (f64, bool, String) {
    let launched = Instant::now();
    let tx = StreamTranscoder::start(
        &format!("live/capacity-{i}"),
        Some(&src.video),
        Some(&src.audio),
        ladder,
        probe,
        options,
        Arc::new(CountingSink::default()),
    )
    .expect("start the transcoder");
    let seconds = |f: &media::Frame| match f.track {
        TrackKind::Video => f.dts as f64 / 90_000.0,
        _ => f.dts as f64 / f64::from(src.audio.timescale.max(1)),
    };
    let first = src.frames.iter().map(seconds).fold(f64::MAX, f64::min);
    for f in &src.frames {
        let due = Duration::from_secs_f64((seconds(f) - first).max(0.0));
        if let Some(wait) = due.checked_sub(launched.elapsed()) {
            std::thread::sleep(wait);
        }
        tx.push(f.clone());
    }
    let stats = tx.finish();
    let end_lag = launched.elapsed().as_secs_f64() - src.media_s;
    let mut trouble = Vec::new();
    if stats.video_frames_dropped > 0 {
        trouble.push(format!(
            "{} video frames dropped",
            stats.video_frames_dropped
        ));
    }
    if stats.audio.frames_dropped > 0 {
        trouble.push(format!(
            "{} audio frames dropped",
            stats.audio.frames_dropped
        ));
    }
    if !stats.shed_rungs.is_empty() {
        trouble.push(format!("shed {}", stats.shed_rungs.join(", ")));
    }
    for r in &stats.rungs {
        if r.frames_dropped > 0 || r.is_failed {
            trouble.push(format!("{}: {} frames dropped", r.name, r.frames_dropped));
        }
    }
    let ok = trouble.is_empty() && end_lag <= MAX_END_LAG_S;
    let trouble = if trouble.is_empty() {
        String::new()
    } else {
        format!("stream {i}: {}", trouble.join(", "))
    };
    (end_lag, ok, trouble)
}

/// N FFmpeg CLI processes at once, each reading its input at the native rate (`-re`).
pub(crate) fn cli(timed_args: &[String], media_s: f64, n: usize) -> Capacity {
    let mut args = timed_args.to_vec();
    let input = args.iter().position(|a| a == "-i").expect("an -i");
    args.insert(input, "-re".into());
    let (_, cpu0) = cpu_times();
    let started = Instant::now();
    let ends: Vec<f64> = std::thread::scope(|s| {
        let waiters: Vec<_> = (0..n)
            .map(|_| {
                let args = &args;
                s.spawn(move || {
                    let launched = Instant::now();
                    let status = Command::new("ffmpeg")
                        .args(args)
                        .stdin(Stdio::null())
                        .status()
                        .expect("ffmpeg is installed");
                    assert!(status.success(), "ffmpeg failed: {status}");
                    launched.elapsed().as_secs_f64() - media_s
                })
            })
            .collect();
        waiters
            .into_iter()
            .map(|h| h.join().expect("a waiting thread"))
            .collect()
    });
    let wall_s = started.elapsed().as_secs_f64();
    let (_, cpu1) = cpu_times();
    let ok: Vec<bool> = ends.iter().map(|l| *l <= MAX_END_LAG_S).collect();
    Capacity::new(ends, &ok, String::new(), cpu1 - cpu0, wall_s)
}

/// Run ours then the CLI at each N of `counts` and print the table and the largest N at which
/// every stream kept up, for each.
pub(crate) fn report(
    src: &Source,
    ladder: &[RungConfig],
    probe: &EncoderProbe,
    options: &TranscodeOptions,
    timed_args: &[String],
    counts: &[usize],
) {
    println!(
        "\nstreams per machine: N streams at once, each fed in real time (ours: `push`, sheds when \
         behind; CLI: `-re`); kept up = ended within {MAX_END_LAG_S} s of its {:.1} s of media from its \
         launch, nothing dropped or shed",
        src.media_s
    );
    println!(
        "| who | N | kept up | latest end (after the media's duration) | CPU s per stream per media s | cores busy |"
    );
    println!("|---|---:|---:|---:|---:|---:|");
    let (mut best_ours, mut best_cli) = (0, 0);
    for &n in counts {
        let o = ours(src, ladder, probe, options, n);
        println!("{}", o.row("ours", n, src.media_s));
        if o.kept_up == n {
            best_ours = best_ours.max(n);
        }
        let c = cli(timed_args, src.media_s, n);
        println!("{}", c.row("ffmpeg CLI", n, src.media_s));
        if c.kept_up == n {
            best_cli = best_cli.max(n);
        }
    }
    println!(
        "streams per machine (largest N tried at which every stream kept up): ours {best_ours}, ffmpeg CLI \
         {best_cli} (load {})",
        loadavg()
    );
}
