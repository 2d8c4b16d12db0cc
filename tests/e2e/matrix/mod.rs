//! End to end: a matrix of real publishers and real players on one `estuary serve` process with the
//! default ladder. Publishers: FFmpeg (x264 with `-g 250` and scene cuts, with B-frames, with open GOP;
//! a clip passed through with its own irregular GOP; MP3, AC-3 and 5.1 audio; MPEG-2 and HEVC over SRT),
//! GStreamer (`x264enc` into `rtmp2sink` and into `srtsink`) and `srt-live-transmit`. Players: hls.js
//! (low latency), dash.js (library defaults, and `liveDelay` 2 s with catch-up) and Shaka in headless
//! Chromium, FFmpeg and GStreamer as clients; each joins a stream in its first second and later.
//!
//! Every cell is judged by the same rules: played at least 80 % of the window, video frames decoded,
//! sound decoded when the source has audio, no decode error, stalls counted (at most one for a
//! transcoded source in the default mode, two for FFmpeg and GStreamer joining in the first second;
//! reported otherwise), latency reported. Beside the cells:
//! segment durations and keyframe starts per rendition for the `-g 250` source and the irregular-GOP
//! source, and (full mode) a latency table.
//!
//! Modes, from the environment variable `ESTUARY_MATRIX`:
//! - unset (what CI runs): a subset — the `-g 250` source over RTMP, the irregular-GOP passthrough,
//!   GStreamer over SRT; hls.js, dash.js with defaults (on the irregular-GOP row) and FFmpeg; early
//!   and later joins, 8 s windows — in under 90 seconds. The codec rows (MP3, AC-3, 5.1, MPEG-2, HEVC) are covered in CI by `codecs`; here they
//!   and the other players run only in full mode.
//! - `full`: every publisher × every player × both joins, then the latency table: about an hour, by
//!   hand, never in CI: `ESTUARY_MATRIX=full cargo nextest run --profile matrix-full -E
//!   'test(/^matrix::/)' --no-capture` (or `cargo test --test e2e matrix:: -- --nocapture`).
//!   Failing cells are listed at the end rather than stopping at the first.
//! - `latency`: only the latency table.
//!
//! `ESTUARY_MATRIX_ONLY=g250,gst-rtmp` (source keys, see `Source::key`) restricts the full mode to
//! those rows, without the latency table.
//!
//! Each mode prints its tables and writes them as Markdown to `target/matrix-report.md`; publisher
//! logs, the origin's log and every browser report in full (`browser-reports.jsonl`) go to
//! `target/matrix-logs/`.
//!
//! Which script each player column uses: hls.js LL is `tests/browser/play-hls.mjs --low-latency`;
//! both dash.js columns are `play-dash-plain.mjs`, the page a third party would write (dash.js 5's
//! library defaults; "liveDelay 2 s" sets only `streaming.delay.liveDelay = 2` and
//! `streaming.liveCatchup.enabled`), in Chromium with the plain headless flags; its `<video>` is
//! `muted`, as on any page that starts playing without a click (Chromium refuses unmuted autoplay
//! without a user gesture; muted audio is still decoded and counted); Shaka is
//! `play-dash.mjs --player shaka --low-latency`. Browsers run one at a time, under `nice`, so the
//! origin's real-time work is not starved on a 2-core machine.
//!
//! Latency is wall clock minus the program date time of what is being shown (one clock: the origin
//! runs on the same machine): hls.js `pdt_latency_avg`; dash.js and Shaka `latency_avg`; FFmpeg and
//! GStreamer: the program date time of the first segment they fetched plus the media time they have
//! decoded (FFmpeg, paced by `-re`) or rendered (GStreamer, `sync=true`) since, against the wall clock
//! of each progress report — an estimate within a frame or two of the segment's first sample.

use std::{
    collections::{BTreeMap, HashMap},
    fmt::Write as _,
    io::{BufRead, BufReader},
    net::SocketAddr,
    path::{Path, PathBuf},
    process::{Command, ExitStatus, Stdio},
    sync::{Arc, Mutex},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use hyper::StatusCode;

use crate::common::*;

mod players;
mod report;
mod run;
mod sources;

use players::*;
use report::*;
use run::*;
use sources::*;

/// The build's target directory (where `matrix-report.md` and `matrix-logs/` go).
fn target_dir() -> PathBuf {
    Path::new(env!("CARGO_BIN_EXE_estuary"))
        .parent()
        .and_then(Path::parent)
        .map_or_else(|| repo().join("target"), PathBuf::from)
}

/// What this run covers (`ESTUARY_MATRIX`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Mode {
    Default,
    Full,
    Latency,
}

impl Mode {
    fn from_env() -> Self {
        match std::env::var("ESTUARY_MATRIX").as_deref() {
            Ok("full") => Mode::Full,
            Ok("latency") => Mode::Latency,
            Ok("") | Err(_) => Mode::Default,
            Ok(other) => {
                panic!("ESTUARY_MATRIX={other:?}: expected unset, \"full\" or \"latency\"")
            }
        }
    }

    /// Seconds each player is measured for, from its first frame.
    fn window_s(self) -> u32 {
        match self {
            Mode::Default => 8,
            Mode::Full | Mode::Latency => 20,
        }
    }

    /// The later join: this long after the publish start, or when the stream's previous player has
    /// finished, whichever comes last (browsers run one at a time).
    fn later_s(self) -> u64 {
        match self {
            Mode::Default => 12,
            Mode::Full | Mode::Latency => 30,
        }
    }
}

/// The matrix: in the default mode the CI subset, with `ESTUARY_MATRIX=full` every publisher × every
/// player × both joins plus the latency table, with `ESTUARY_MATRIX=latency` the latency table alone.
/// Every cell must play ≥ 80 % of its window with picture, sound (when the source has audio) and no
/// decode error, count its stalls (≤ 1 for a transcoded source in the default mode, ≤ 2 for FFmpeg and GStreamer joining in the first second) and report a
/// latency; the `-g 250` source's renditions must all start segments with a keyframe and none be
/// shorter than 1 s, the passthrough's video segments must all start with a keyframe. All failures
/// are listed at the end, after the report is written.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn publishers_by_players_every_cell_plays_with_picture_and_sound() {
    let mode = Mode::from_env();
    let started = Instant::now();
    let target = target_dir();
    let logs = target.join("matrix-logs");
    let _ = std::fs::remove_dir_all(&logs);
    std::fs::create_dir_all(&logs).expect("log directory");

    // `ESTUARY_MATRIX_ONLY=g250,mp3`: only these sources' rows (full mode), and no latency table.
    let only_env = std::env::var("ESTUARY_MATRIX_ONLY").ok();
    let only: Option<Vec<&str>> = only_env
        .as_deref()
        .map(|o| o.split(',').map(str::trim).collect());
    use Player::*;
    // (source, groups of players sharing a stream, tabulate its segments)
    let plan: Vec<(Source, Vec<&[Player]>, bool)> = match mode {
        Mode::Latency => Vec::new(),
        // hls.js on the irregular-GOP passthrough is left to the full mode: today it often never
        // starts (segments longer than the target duration); see the full-mode report. dash.js plays
        // the irregular-GOP row (a ladder plays in dash.js in `dash::ladder_plays…`); on the other rows
        // it is left to the full mode (CI time).
        Mode::Default => vec![
            (Source::FfmpegG250, vec![&[HlsJs, Ffmpeg]], true),
            (Source::FfmpegIrregular, vec![&[DashJs, Ffmpeg]], true),
            (Source::GstSrt, vec![&[HlsJs, Ffmpeg]], false),
        ],
        Mode::Full => Source::ALL
            .iter()
            .filter(|s| only.as_ref().is_none_or(|o| o.contains(&s.key())))
            .map(|&s| {
                let groups: Vec<&[Player]> = vec![
                    &[HlsJs, Ffmpeg],
                    &[DashJs, Gstreamer],
                    &[DashJsDelay2],
                    &[Shaka],
                ];
                (
                    s,
                    groups,
                    matches!(s, Source::FfmpegG250 | Source::FfmpegIrregular),
                )
            })
            .collect(),
    };

    let mut cells = Vec::new();
    let mut tables = Vec::new();
    let mut segment_failures = Vec::new();
    if !plan.is_empty() {
        let origin = blocking(|| start_origin(None)).await;
        let ends = Ends {
            http: origin.http_addr,
            rtmp: origin.rtmp_addr,
            srt: origin.srt_addr,
        };
        for (source, groups, want_table) in &plan {
            let (c, table) =
                run_source(&origin, ends, *source, groups, mode, &logs, *want_table).await;
            for cell in &c {
                eprintln!(
                    "matrix: {} × {} × {}: {}",
                    source.key(),
                    cell.player.label(),
                    cell.join_label(),
                    if cell.failures.is_empty() {
                        "ok".to_owned()
                    } else {
                        cell.failures.join("; ")
                    }
                );
            }
            cells.extend(c);
            if let Some(table) = table {
                if mode == Mode::Default {
                    segment_failures.extend(segment_rule_failures(*source, &table));
                }
                tables.push(table);
            }
        }
        let _ = std::fs::write(logs.join("origin.log"), origin.log());
    }
    let latency = if mode == Mode::Default || only.is_some() {
        Vec::new()
    } else {
        latency_table(&logs).await
    };

    let md = report(
        mode,
        &cells,
        &tables,
        &latency,
        &segment_failures,
        started.elapsed(),
    );
    eprintln!("\n{md}");
    let path = target.join("matrix-report.md");
    std::fs::write(&path, &md).expect("report written");
    eprintln!("matrix: report written to {}", path.display());

    let failing: Vec<String> = cells
        .iter()
        .filter(|c| !c.failures.is_empty())
        .map(|c| {
            format!(
                "{} × {} × {}: {}",
                c.source.key(),
                c.player.label(),
                c.join_label(),
                c.failures.join("; ")
            )
        })
        .chain(segment_failures.iter().cloned())
        .collect();
    assert!(
        failing.is_empty(),
        "{} failing cells or rules (report: {}):\n{}",
        failing.len(),
        path.display(),
        failing.join("\n")
    );
}
