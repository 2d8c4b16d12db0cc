//! The matrix's tables: the latency table (hls.js LL at 500 and 200 ms parts, dash.js's lowest
//! stall-free `liveDelay`) and the Markdown report of cells and segment rows.

use super::*;

/// The latency table's row for one source.
pub(crate) struct LatencyRow {
    pub(crate) source: &'static str,
    pub(crate) hls_500: String,
    pub(crate) hls_200: String,
    pub(crate) dash: String,
    /// [`pdt_lead`] of the stream on the 500 ms and the 200 ms origin.
    pub(crate) leads: [Option<f64>; 2],
}

/// `{wall-clock latency} s` of an hls.js report, with its own edge latency and stalls.
pub(crate) fn hls_latency_text(r: &serde_json::Value) -> String {
    match r["pdt_latency_avg"].as_f64() {
        Some(l) if r["ok"] == true => format!(
            "{l:.2} s (hls.js {:.2} s, {} stalls)",
            r["latency_avg"].as_f64().unwrap_or(f64::NAN),
            r["stalls"]
        ),
        _ => format!(
            "no result (played {} s, {})",
            r["played_seconds"],
            clip_text(
                r["harness_error"]
                    .as_str()
                    .unwrap_or(if r["timeout"] == true {
                        "timeout"
                    } else {
                        "not ok"
                    }),
                60
            )
        ),
    }
}

/// hls.js LL latency at 500 ms and 200 ms parts and dash.js's lowest stall-free `liveDelay`, on the
/// clean 2 s-GOP fixture and on the `-g 250` source, each stream played 12 s or more after its start.
pub(crate) async fn latency_table(logs: &Path) -> Vec<LatencyRow> {
    let window = Mode::Latency.window_s();
    let origins = [
        blocking(|| start_origin(None)).await,
        blocking(|| start_origin(Some("200ms"))).await,
    ];
    let mut rows = Vec::new();
    for (key, what) in [
        ("clean", "FFmpeg RTMP, the 2 s-GOP fixture (copy)"),
        (Source::FfmpegG250.key(), Source::FfmpegG250.what()),
    ] {
        let mut row = LatencyRow {
            source: what,
            hls_500: String::new(),
            hls_200: String::new(),
            dash: String::new(),
            leads: [None, None],
        };
        for (oi, origin) in origins.iter().enumerate() {
            let ends = Ends {
                http: origin.http_addr,
                rtmp: origin.rtmp_addr,
                srt: origin.srt_addr,
            };
            let name = format!("lat-{key}-{}", if oi == 0 { 500 } else { 200 });
            let publisher = if key == "clean" {
                spawn_logged(
                    ffmpeg_publisher(
                        &fixture(BBB_2S_GOP),
                        &["-c".to_owned(), "copy".to_owned()],
                        "flv",
                        &format!("rtmp://{}/live/{name}", ends.rtmp),
                    ),
                    "ffmpeg publisher",
                    &logs.join(format!("{name}.ffmpeg.log")),
                )
                .map(|p| vec![p])
            } else {
                Source::FfmpegG250.start(&ends, &name, logs)
            };
            let base = format!("http://{}/live/{name}/", ends.http);
            let t0 = Instant::now();
            let ready = publisher.is_ok()
                && wait_ready(
                    &[format!("{base}index.m3u8"), format!("{base}manifest.mpd")],
                    Duration::from_secs(40),
                )
                .await;
            if !ready {
                let text = "no playlist within 40 s".to_owned();
                if oi == 0 {
                    row.hls_500 = text.clone();
                    row.dash = text;
                } else {
                    row.hls_200 = text;
                }
                continue;
            }
            tokio::time::sleep_until((t0 + Duration::from_secs(12)).into()).await;
            row.leads[oi] = pdt_lead(base.clone()).await;
            let url = format!("{base}index.m3u8");
            let report =
                blocking(move || run_browser("play-hls.mjs", &url, window, &["--low-latency"]))
                    .await;
            eprintln!("latency: {name} hls.js: {report}");
            let text = hls_latency_text(&report);
            if oi == 1 {
                row.hls_200 = text;
                continue;
            }
            row.hls_500 = text;
            // dash.js: the lowest liveDelay without a stall over the window, trying 1.0 s to 3.0 s.
            let mut tried = Vec::new();
            let mut found = None;
            for delay in ["1.0", "1.5", "2.0", "2.5", "3.0"] {
                let url = format!("{base}manifest.mpd");
                let r = blocking(move || {
                    run_browser(
                        "play-dash-plain.mjs",
                        &url,
                        window,
                        &["--live-delay", delay, "--catchup", "--muted"],
                    )
                })
                .await;
                eprintln!("latency: {name} dash.js liveDelay {delay}: {r}");
                let stalls = r["stalls"].as_u64();
                tried.push(format!(
                    "{delay}: {}",
                    stalls.map_or("no result".to_owned(), |s| format!("{s} stalls"))
                ));
                if r["ok"] == true && stalls == Some(0) {
                    found = Some(format!(
                        "liveDelay {delay} s: {:.2} s",
                        r["latency_avg"].as_f64().unwrap_or(f64::NAN)
                    ));
                    break;
                }
            }
            row.dash = match found {
                Some(f) if tried.len() == 1 => f,
                Some(f) => format!("{f} (tried {})", tried.join(", ")),
                None => format!("none stall-free ({})", tried.join(", ")),
            };
            drop(publisher);
        }
        rows.push(row);
    }
    rows
}

/// The Markdown report of a run.
pub(crate) fn report(
    mode: Mode,
    cells: &[Cell],
    tables: &[Vec<SegmentRow>],
    latency: &[LatencyRow],
    segment_failures: &[String],
    wall: Duration,
) -> String {
    let mut md = String::new();
    let _ = writeln!(
        md,
        "# Publisher × player matrix ({mode:?} mode, {}, {:.1} min)\n",
        chrono::Utc::now().format("%Y-%m-%d %H:%M UTC"),
        wall.as_secs_f64() / 60.0
    );
    if !cells.is_empty() {
        let _ = writeln!(
            md,
            "Window {} s per player; later join ≥ {} s after the publish start. Latency: wall clock − \
             program date time of what is shown. Rules: played ≥ 80 % of the window, picture, sound when \
             the source has it, 0 decode errors, stalls counted (≤ 1 for a transcoded source in the \
             default mode, ≤ 2 for FFmpeg and GStreamer joining in the first second), latency reported. \"Ends on\": the picture height shown at the end of the window (browsers; \
             which rendition ABR settled on). PDT lead: how far the origin's program date times run ahead \
             of the wall clock (measured per stream, see `pdt_lead`); the time from ingest to display is \
             about latency + lead.\n",
            mode.window_s(),
            mode.later_s()
        );
        md.push_str(
            "| publisher | player | join | played s | picture | ends on | sound | decode errors | stalls | latency s | PDT lead s | result | notes |\n\
             | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n",
        );
        for c in cells {
            let m = &c.measured;
            let sound = if !c.source.has_audio() {
                "n/a (none)".to_owned()
            } else {
                match m.audio {
                    Some(true) => "yes".into(),
                    Some(false) => "no".into(),
                    None => "unknown".into(),
                }
            };
            let result = if c.failures.is_empty() {
                "ok".to_owned()
            } else {
                format!("**FAIL**: {}", c.failures.join("; "))
            };
            let notes = &m.notes;
            let _ = writeln!(
                md,
                "| {} | {} | {} | {:.1} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                c.source.what(),
                c.player.label(),
                c.join_label(),
                m.played_s,
                if m.video_frames > 0 { "yes" } else { "no" },
                m.video_height.map_or("n/a".to_owned(), |h| format!("{h}p")),
                sound,
                m.decode_errors,
                m.stalls.map_or("n/a".to_owned(), |s| s.to_string()),
                m.latency_s.map_or("n/a".to_owned(), |l| format!("{l:.2}")),
                c.pdt_lead_s.map_or("n/a".to_owned(), |l| format!("{l:.2}")),
                clip_text(&result, 200),
                clip_text(&notes.join("; "), 400),
            );
        }
        md.push('\n');
    }
    if !tables.is_empty() {
        md.push_str(
            "## Segment durations per rendition (the window listed about 30 s after the publish start)\n\n\
             | source | rendition | segments | EXTINF min / median / max s | target duration s | start with a keyframe |\n\
             | --- | --- | --- | --- | --- | --- |\n",
        );
        for r in tables.iter().flatten() {
            let (min, median, max) = r.stats();
            let n = r.extinf.len();
            let _ = writeln!(
                md,
                "| {} | {} | {n} | {min:.3} / {median:.3} / {max:.3} | {} | {}/{n} ({:.0} %) |",
                r.source,
                r.rendition,
                r.target_duration,
                r.keyframe_starts,
                100.0 * r.keyframe_starts as f64 / n.max(1) as f64
            );
        }
        md.push('\n');
        if !segment_failures.is_empty() {
            let _ = writeln!(
                md,
                "Segment rule failures: {}\n",
                segment_failures.join("; ")
            );
        }
    }
    if !latency.is_empty() {
        md.push_str(
            "## Latency (wall clock − program date time; players joined ≥ 12 s after the publish start)\n\n\
             | source | hls.js LL, 500 ms parts | hls.js LL, 200 ms parts | dash.js lowest stall-free liveDelay (catch-up on), 500 ms parts | PDT lead s (500 / 200 ms origin) |\n\
             | --- | --- | --- | --- | --- |\n",
        );
        for r in latency {
            let lead = |l: Option<f64>| l.map_or("n/a".to_owned(), |l| format!("{l:.2}"));
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {} / {} |",
                r.source,
                r.hls_500,
                r.hls_200,
                r.dash,
                lead(r.leads[0]),
                lead(r.leads[1])
            );
        }
        md.push('\n');
    }
    let failing: Vec<&Cell> = cells.iter().filter(|c| !c.failures.is_empty()).collect();
    if !failing.is_empty() {
        let _ = writeln!(
            md,
            "## Failing cells ({} of {})\n",
            failing.len(),
            cells.len()
        );
        for c in failing {
            let _ = writeln!(
                md,
                "- {} × {} × {}: {}",
                c.source.what(),
                c.player.label(),
                c.join_label(),
                c.failures.join("; "),
            );
        }
    }
    md
}
