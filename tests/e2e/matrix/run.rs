//! Running the matrix: one stream per source, its players in slots (first second and later), the
//! origin's playlists probed for readiness, program-date-time lead and segment durations.

use super::*;

pub(crate) fn clip_text(s: &str, max: usize) -> String {
    let s = s.replace('|', "\\|");
    if s.chars().count() <= max {
        s
    } else {
        format!("{}…", s.chars().take(max).collect::<String>())
    }
}

/// URIs (relative to the stream's directory) of every media playlist the multivariant playlist lists.
pub(crate) fn media_playlists(multivariant: &str) -> Vec<String> {
    let Ok(m3u8_rs::Playlist::MasterPlaylist(pl)) =
        m3u8_rs::parse_playlist_res(multivariant.as_bytes())
    else {
        return Vec::new();
    };
    let mut out: Vec<String> = pl.variants.iter().map(|v| v.uri.clone()).collect();
    out.extend(pl.alternatives.iter().filter_map(|a| a.uri.clone()));
    out.dedup();
    out
}

/// `{rendition}/{segment uri}` → program date time (Unix seconds) of every segment the stream's media
/// playlists list now.
pub(crate) async fn segment_dates(base: &str) -> HashMap<String, f64> {
    let mut out = HashMap::new();
    let mv = get(&format!("{base}index.m3u8")).await;
    if mv.status != StatusCode::OK {
        return out;
    }
    for uri in media_playlists(&mv.text()) {
        let Some((rendition, _)) = uri.split_once('/') else {
            continue;
        };
        let text = get(&format!("{base}{uri}")).await.text();
        let (mut date, mut duration) = (None::<f64>, None::<f64>);
        for line in text.lines() {
            if let Some(v) = line.strip_prefix("#EXT-X-PROGRAM-DATE-TIME:") {
                date = chrono::DateTime::parse_from_rfc3339(v.trim())
                    .ok()
                    .map(|d| d.timestamp_millis() as f64 / 1000.0);
            } else if let Some(v) = line.strip_prefix("#EXTINF:") {
                duration = v.split(',').next().and_then(|d| d.parse().ok());
            } else if !line.starts_with('#') && !line.trim().is_empty() {
                if let (Some(d), Some(len)) = (date, duration) {
                    out.insert(format!("{rendition}/{}", line.trim()), d);
                    date = Some(d + len);
                }
                duration = None;
            }
        }
    }
    out
}

/// The newest part of a media playlist: (msn of the open segment, parts listed in it, program date time
/// of the newest part's end in Unix seconds).
pub(crate) fn newest_part(text: &str) -> Option<(u64, usize, f64)> {
    let mut msn: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("#EXT-X-MEDIA-SEQUENCE:"))?
        .trim()
        .parse()
        .ok()?;
    let (mut date, mut parts, mut parts_s) = (None::<f64>, 0, 0.0);
    for line in text.lines() {
        if let Some(v) = line.strip_prefix("#EXT-X-PROGRAM-DATE-TIME:") {
            date = chrono::DateTime::parse_from_rfc3339(v.trim())
                .ok()
                .map(|d| d.timestamp_millis() as f64 / 1000.0);
        } else if let Some(v) = line.strip_prefix("#EXTINF:") {
            let d: f64 = v.split(',').next()?.parse().ok()?;
            date = date.map(|x| x + d);
            msn += 1;
            (parts, parts_s) = (0, 0.0);
        } else if let Some(attrs) = line.strip_prefix("#EXT-X-PART:") {
            parts += 1;
            parts_s += attr(attrs, "DURATION")?.parse::<f64>().ok()?;
        }
    }
    Some((msn, parts, date? + parts_s))
}

/// How far the origin's program date times run ahead of the wall clock: over six parts of the first
/// video rendition, the median of (program date time of the part's end − wall clock when a blocking
/// reload announces it). A part is announced as soon as its last frame is in, so an origin that dates
/// samples by their arrival reads about 0; every latency measured against program date times reads
/// low by this much.
pub(crate) async fn pdt_lead(base: String) -> Option<f64> {
    let mv = get(&format!("{base}index.m3u8")).await.text();
    let playlist = format!("{base}{}", media_playlists(&mv).first()?);
    let (mut msn, mut part, _) = newest_part(&get(&playlist).await.text())?;
    let mut leads = Vec::new();
    for _ in 0..6 {
        let text = get(&format!("{playlist}?_HLS_msn={msn}&_HLS_part={part}"))
            .await
            .text();
        let now = unix_s(SystemTime::now());
        let (m, p, end) = newest_part(&text)?;
        leads.push(end - now);
        (msn, part) = (m, p);
    }
    leads.sort_by(f64::total_cmp);
    Some(leads[leads.len() / 2])
}

/// Poll every URL every 100 ms until all answer 200; false after `timeout`.
pub(crate) async fn wait_ready(urls: &[String], timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        let mut all = true;
        for u in urls {
            if get(u).await.status != StatusCode::OK {
                all = false;
                break;
            }
        }
        if all {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Run `players` on `live/{name}` at once (at most one browser among them) and return their cells.
pub(crate) async fn run_slot(
    ends: Ends,
    name: &str,
    source: Source,
    players: &[Player],
    is_later: bool,
    join_s: f64,
    window: u32,
) -> Vec<Cell> {
    let base = format!("http://{}/live/{name}/", ends.http);
    let hls = format!("{base}index.m3u8");
    let mpd = format!("{base}manifest.mpd");
    let mut runs = Vec::new();
    for &player in players {
        let (hls, mpd, base) = (hls.clone(), mpd.clone(), base.clone());
        runs.push(tokio::task::spawn_blocking(move || match player {
            Player::HlsJs => (
                measured_from_browser(
                    player,
                    &run_browser("play-hls.mjs", &hls, window, &["--low-latency"]),
                ),
                None,
            ),
            Player::DashJs => (
                measured_from_browser(
                    player,
                    &run_browser("play-dash-plain.mjs", &mpd, window, &["--muted"]),
                ),
                None,
            ),
            Player::DashJsDelay2 => (
                measured_from_browser(
                    player,
                    &run_browser(
                        "play-dash-plain.mjs",
                        &mpd,
                        window,
                        &["--live-delay", "2", "--catchup", "--muted"],
                    ),
                ),
                None,
            ),
            Player::Shaka => (
                measured_from_browser(
                    player,
                    &run_browser(
                        "play-dash.mjs",
                        &mpd,
                        window,
                        &["--player", "shaka", "--low-latency"],
                    ),
                ),
                None,
            ),
            Player::Ffmpeg => {
                let (m, p) = run_ffmpeg_client(&hls, &base, window);
                (m, Some(p))
            }
            Player::Gstreamer => {
                let (m, p) = run_gst_client(&hls, &base, window);
                (m, Some(p))
            }
        }));
    }
    // The clients' first segments are a few segments behind the live edge: their dates are in the
    // playlists of the first seconds.
    let mut dates = HashMap::new();
    if players
        .iter()
        .any(|p| matches!(p, Player::Ffmpeg | Player::Gstreamer))
    {
        for wait in [1500, 2500, 3000] {
            tokio::time::sleep(Duration::from_millis(wait)).await;
            dates.extend(segment_dates(&base).await);
        }
    }
    let mut cells = Vec::new();
    for (player, run) in players.iter().zip(runs) {
        let (mut measured, probe) = run.await.expect("player task");
        if let Some(probe) = probe {
            measured.latency_s = probe.latency(&dates);
            if measured.latency_s.is_none() {
                measured.notes.push(format!(
                    "latency n/a (first segment {:?} not dated)",
                    probe.first_segment
                ));
            }
        }
        cells.push(Cell {
            source,
            player: *player,
            is_later,
            join_s,
            window_s: window,
            measured,
            pdt_lead_s: None,
            failures: Vec::new(),
        });
    }
    cells
}

/// The origin's warnings and errors about `live/{name}`, each distinct message once with its count
/// (numeric `key=value` fields dropped so repeats group).
pub(crate) fn origin_notes(log: &str, name: &str) -> Vec<String> {
    let plain = format!("stream=live/{name}");
    let quoted = format!("stream=\"live/{name}\"");
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for line in log.lines() {
        if !(line.contains(" WARN ") || line.contains(" ERROR ")) {
            continue;
        }
        let names_it = line.contains(&quoted)
            || line.match_indices(&plain).any(|(i, _)| {
                line[i + plain.len()..]
                    .chars()
                    .next()
                    .is_none_or(|c| !(c.is_ascii_alphanumeric() || c == '-' || c == '_'))
            });
        if !names_it {
            continue;
        }
        // `… LEVEL span{…}: module::path: message`
        let message = line
            .split_once("}: ")
            .map_or(line, |(_, rest)| rest)
            .split_once(": ")
            .map_or(line, |(_, rest)| rest);
        let message: Vec<&str> = message
            .split(" (")
            .next()
            .unwrap_or(message)
            .split_whitespace()
            .filter(|w| {
                w.split_once('=')
                    .is_none_or(|(_, v)| v.trim_matches('"').parse::<f64>().is_err())
            })
            .collect();
        *counts.entry(message.join(" ")).or_default() += 1;
    }
    counts
        .into_iter()
        .map(|(m, n)| format!("origin: {n}× {}", clip_text(&m, 90)))
        .collect()
}

/// One rendition's row of the segment-duration table.
pub(crate) struct SegmentRow {
    pub(crate) source: &'static str,
    pub(crate) rendition: String,
    pub(crate) is_audio: bool,
    pub(crate) extinf: Vec<f64>,
    pub(crate) target_duration: u64,
    pub(crate) keyframe_starts: usize,
}

impl SegmentRow {
    pub(crate) fn stats(&self) -> (f64, f64, f64) {
        let mut v = self.extinf.clone();
        v.sort_by(f64::total_cmp);
        if v.is_empty() {
            return (0.0, 0.0, 0.0);
        }
        (v[0], v[v.len() / 2], v[v.len() - 1])
    }
}

/// For every rendition of `base`: the EXTINF of each listed segment and whether its first sample is a
/// sync sample (its first `trun` entry's flags, parsed with mp4-atom).
pub(crate) async fn segment_table(base: &str, source: &'static str) -> Vec<SegmentRow> {
    let mut rows = Vec::new();
    let mv = get(&format!("{base}index.m3u8")).await.text();
    for uri in media_playlists(&mv) {
        let rendition = uri.split('/').next().unwrap_or(&uri).to_owned();
        let facts = parse_media(&get(&format!("{base}{uri}")).await.text());
        let mut row = SegmentRow {
            source,
            is_audio: rendition == "audio",
            rendition: rendition.clone(),
            extinf: Vec::new(),
            target_duration: facts.target_duration,
            keyframe_starts: 0,
        };
        for (_, extinf, seg) in &facts.segments {
            let body = get(&format!("{base}{rendition}/{seg}")).await;
            if body.status != StatusCode::OK {
                continue;
            }
            row.extinf.push(*extinf);
            if chunks(&body.body).first().is_some_and(|c| c.2) {
                row.keyframe_starts += 1;
            }
        }
        rows.push(row);
    }
    rows
}

/// The default-mode rules of the segment table: a transcoded source's renditions all start with a
/// keyframe and none is shorter than half the 2 s target; a passthrough's video segments all start
/// with a keyframe.
pub(crate) fn segment_rule_failures(source: Source, rows: &[SegmentRow]) -> Vec<String> {
    let mut out = Vec::new();
    if rows.is_empty() {
        out.push(format!("{}: no rendition tabulated", source.key()));
    }
    for r in rows {
        let n = r.extinf.len();
        if n == 0 {
            out.push(format!("{} {}: no segment", source.key(), r.rendition));
            continue;
        }
        if (!source.is_passthrough() || !r.is_audio) && r.keyframe_starts < n {
            out.push(format!(
                "{} {}: {}/{n} segments start with a keyframe",
                source.key(),
                r.rendition,
                r.keyframe_starts
            ));
        }
        let (min, _, _) = r.stats();
        if !source.is_passthrough() && min < 1.0 {
            out.push(format!(
                "{} {}: a {min:.3} s segment (< half the 2 s target)",
                source.key(),
                r.rendition
            ));
        }
    }
    out
}

/// Every cell of `source` for `groups` of players (one browser each, maybe with a client beside it).
/// Each group gets its own stream: it joins in the first second (as soon as the playlists answer
/// 200), then later on the same stream.
pub(crate) async fn run_source(
    origin: &EstuaryProcess,
    ends: Ends,
    source: Source,
    groups: &[&[Player]],
    mode: Mode,
    logs: &Path,
    want_table: bool,
) -> (Vec<Cell>, Option<Vec<SegmentRow>>) {
    let window = mode.window_s();
    let mut cells = Vec::new();
    let mut table = None;
    for (gi, players) in groups.iter().enumerate() {
        let name = format!("{}-{}", source.key(), gi + 1);
        let base = format!("http://{}/live/{name}/", ends.http);
        let mut urls = vec![format!("{base}index.m3u8")];
        if players.iter().any(|p| p.is_dash()) {
            urls.push(format!("{base}manifest.mpd"));
        }
        let t0 = Instant::now();
        let started = source.start(&ends, &name, logs);
        let ready = match &started {
            Ok(_) => wait_ready(&urls, Duration::from_secs(40)).await,
            Err(_) => false,
        };
        let mut group_cells = Vec::new();
        let mut pdt_lead_s = None;
        if ready {
            let join = t0.elapsed().as_secs_f64();
            eprintln!("matrix: {name} ready after {join:.1} s: {players:?}");
            let lead = tokio::spawn(pdt_lead(base.clone()));
            group_cells.extend(run_slot(ends, &name, source, players, false, join, window).await);
            pdt_lead_s = lead.await.ok().flatten();
            let later = t0 + Duration::from_secs(mode.later_s());
            if Instant::now() < later {
                tokio::time::sleep_until(later.into()).await;
            }
            let join = t0.elapsed().as_secs_f64();
            group_cells.extend(run_slot(ends, &name, source, players, true, join, window).await);
            if want_table && gi == 0 {
                eprintln!(
                    "matrix: segment table of {name} at {:.0} s",
                    t0.elapsed().as_secs_f64()
                );
                table = Some(segment_table(&base, source.what()).await);
            }
        } else {
            let why = match &started {
                Err(e) => e.clone(),
                Ok(_) => format!("no playlist {urls:?} within 40 s"),
            };
            eprintln!("matrix: {name}: {why}");
            for is_later in [false, true] {
                for &player in *players {
                    group_cells.push(Cell {
                        source,
                        player,
                        is_later,
                        join_s: 0.0,
                        window_s: window,
                        measured: Measured {
                            hard_failures: vec![why.clone()],
                            ..Default::default()
                        },
                        pdt_lead_s: None,
                        failures: Vec::new(),
                    });
                }
            }
        }
        // Publisher health, then stop it; the origin's warnings about this stream go with its cells.
        let mut notes = Vec::new();
        if let Ok(procs) = started {
            for mut p in procs {
                if let Ok(Some(status)) = p.0.try_wait() {
                    let log = std::fs::read_to_string(
                        logs.join(format!("{name}.{}.log", log_suffix(p.1))),
                    )
                    .unwrap_or_default();
                    notes.push(format!(
                        "{} exited ({status}): {}",
                        p.1,
                        clip_text(log.lines().last().unwrap_or(""), 100)
                    ));
                }
                p.kill();
            }
        }
        notes.extend(origin_notes(&origin.log(), &name));
        for c in &mut group_cells {
            c.measured.notes.extend(notes.iter().cloned());
            c.pdt_lead_s = pdt_lead_s;
            c.judge(mode);
        }
        cells.extend(group_cells);
        if !ready {
            // A source that never got a playlist will not get one for the next group either.
            for players in &groups[gi + 1..] {
                for is_later in [false, true] {
                    for &player in *players {
                        let mut c = Cell {
                            source,
                            player,
                            is_later,
                            join_s: 0.0,
                            window_s: window,
                            measured: Measured {
                                hard_failures: vec![format!(
                                    "not run: {}-1 never got a playlist",
                                    source.key()
                                )],
                                ..Default::default()
                            },
                            pdt_lead_s: None,
                            failures: Vec::new(),
                        };
                        c.judge(mode);
                        cells.push(c);
                    }
                }
            }
            break;
        }
    }
    (cells, table)
}

/// The log file name part of a publisher process label (see [`Source::start`]).
pub(crate) fn log_suffix(label: &str) -> &'static str {
    match label {
        "srt-live-transmit" => "srt-live-transmit",
        "gst-launch publisher" => "gst",
        _ => "ffmpeg",
    }
}
