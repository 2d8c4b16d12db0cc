//! The matrix's players: hls.js, dash.js and Shaka in headless Chromium, FFmpeg and GStreamer as clients,
//! and what each measured (frames, sound, decode errors, stalls, latency).

use super::*;

/// A player column.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Player {
    HlsJs,
    DashJs,
    DashJsDelay2,
    Shaka,
    Ffmpeg,
    Gstreamer,
}

impl Player {
    pub(crate) fn label(self) -> &'static str {
        match self {
            Player::HlsJs => "hls.js LL",
            Player::DashJs => "dash.js default",
            Player::DashJsDelay2 => "dash.js liveDelay 2 s",
            Player::Shaka => "Shaka LL",
            Player::Ffmpeg => "FFmpeg",
            Player::Gstreamer => "GStreamer",
        }
    }

    pub(crate) fn is_dash(self) -> bool {
        matches!(self, Player::DashJs | Player::DashJsDelay2 | Player::Shaka)
    }
}

/// What one player run showed.
#[derive(Debug, Default, Clone)]
pub(crate) struct Measured {
    /// Media seconds played (browsers), decoded in real time (FFmpeg) or rendered (GStreamer).
    pub(crate) played_s: f64,
    pub(crate) video_frames: u64,
    /// Sound decoded; `None` when the player cannot tell.
    pub(crate) audio: Option<bool>,
    /// Error lines (FFmpeg, GStreamer) or fatal player errors (browsers).
    pub(crate) decode_errors: usize,
    pub(crate) stalls: Option<u64>,
    pub(crate) latency_s: Option<f64>,
    /// The picture height shown at the end of the window (browsers), pixels.
    pub(crate) video_height: Option<u64>,
    /// Failures that are not one of the measured rules (the client exited with an error status).
    pub(crate) hard_failures: Vec<String>,
    pub(crate) notes: Vec<String>,
}

/// One cell: a publisher, a player, a join.
pub(crate) struct Cell {
    pub(crate) source: Source,
    pub(crate) player: Player,
    pub(crate) is_later: bool,
    /// Seconds from the publish start to the player's start.
    pub(crate) join_s: f64,
    pub(crate) window_s: u32,
    pub(crate) measured: Measured,
    /// The stream's program-date-time lead ([`pdt_lead`]), seconds.
    pub(crate) pdt_lead_s: Option<f64>,
    pub(crate) failures: Vec<String>,
}

impl Cell {
    /// Apply the cell rules.
    pub(crate) fn judge(&mut self, mode: Mode) {
        let m = &self.measured;
        let mut f = m.hard_failures.clone();
        let need = 0.8 * f64::from(self.window_s);
        if m.played_s < need {
            f.push(format!(
                "played {:.1} s < 80 % of {} s",
                m.played_s, self.window_s
            ));
        }
        if m.video_frames == 0 {
            f.push("no video frame decoded".into());
        }
        if self.source.has_audio() && m.audio != Some(true) {
            f.push("no sound decoded".into());
        }
        if m.decode_errors > 0 {
            f.push(format!("{} decode errors", m.decode_errors));
        }
        // A client without LL-HLS (FFmpeg, GStreamer) that joins while the stream has one segment
        // waits for each of the next ones as they complete until it holds one in hand: one more wait
        // is allowed for it in the first second than for the LL players.
        let max_stalls =
            if !self.is_later && matches!(self.player, Player::Ffmpeg | Player::Gstreamer) {
                2
            } else {
                1
            };
        match m.stalls {
            None => f.push("stalls not counted".into()),
            Some(n) if n > max_stalls && mode == Mode::Default && !self.source.is_passthrough() => {
                f.push(format!("{n} stalls > {max_stalls}"))
            }
            Some(_) => {}
        }
        if m.latency_s.is_none() {
            f.push("no latency".into());
        }
        self.failures = f;
    }

    pub(crate) fn join_label(&self) -> String {
        format!(
            "{} ({:.1} s)",
            if self.is_later { "later" } else { "first s" },
            self.join_s
        )
    }
}

/// Lines a child process printed, each with the wall-clock time it was read.
#[derive(Default)]
pub(crate) struct Collected {
    pub(crate) stdout: Vec<(SystemTime, String)>,
    pub(crate) stderr: Vec<(SystemTime, String)>,
    /// `None` when the process was stopped by us (deadline or `stop`).
    pub(crate) status: Option<ExitStatus>,
}

/// Run `cmd` collecting its output lines until it exits, `stop(stdout so far)` says so, or `max`
/// passes (then it is killed).
pub(crate) fn collect_lines(
    mut cmd: Command,
    max: Duration,
    stop: impl Fn(&[(SystemTime, String)]) -> bool,
) -> Result<Collected, String> {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("{:?} does not start: {e}", cmd.get_program()))?;
    type Lines = Arc<Mutex<Vec<(SystemTime, String)>>>;
    fn reader(
        pipe: impl std::io::Read + Send + 'static,
        into: Lines,
    ) -> std::thread::JoinHandle<()> {
        std::thread::spawn(move || {
            let mut r = BufReader::new(pipe);
            let mut buf = Vec::new();
            while r.read_until(b'\n', &mut buf).is_ok_and(|n| n > 0) {
                let line = String::from_utf8_lossy(&buf).trim_end().to_owned();
                into.lock().unwrap().push((SystemTime::now(), line));
                buf.clear();
            }
        })
    }
    let out: Lines = Arc::default();
    let err: Lines = Arc::default();
    let t_out = reader(child.stdout.take().expect("piped"), out.clone());
    let t_err = reader(child.stderr.take().expect("piped"), err.clone());
    let deadline = Instant::now() + max;
    let status = loop {
        if let Ok(Some(status)) = child.try_wait() {
            break Some(status);
        }
        if Instant::now() >= deadline || stop(&out.lock().unwrap()) {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let _ = t_out.join();
    let _ = t_err.join();
    let take = |l: Lines| std::mem::take(&mut *l.lock().unwrap());
    Ok(Collected {
        stdout: take(out),
        stderr: take(err),
        status,
    })
}

pub(crate) fn unix_s(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64()
}

/// What a client needs to turn its progress into a latency: the first media segment it fetched
/// (`{rendition}/{msn}.m4s`) and (wall clock, media seconds since that segment's start) samples.
#[derive(Debug, Default)]
pub(crate) struct LatencyProbe {
    pub(crate) first_segment: Option<String>,
    pub(crate) samples: Vec<(SystemTime, f64)>,
}

impl LatencyProbe {
    /// Mean of wall clock − (program date time of the first segment + media time) over the samples.
    pub(crate) fn latency(&self, dates: &HashMap<String, f64>) -> Option<f64> {
        let start = *dates.get(self.first_segment.as_ref()?)?;
        let v: Vec<f64> = self
            .samples
            .iter()
            .map(|(wall, pos)| unix_s(*wall) - (start + pos))
            .collect();
        (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
    }
}

/// `{rendition}/{file}` of a media segment URL under `base`, unless it is audio, an init segment or a
/// part.
pub(crate) fn video_segment_key(url: &str, base: &str) -> Option<String> {
    let rel = url.strip_prefix(base)?;
    let (rendition, file) = rel.split_once('/')?;
    let stem = file.strip_suffix(".m4s")?;
    (rendition != "audio" && stem.bytes().all(|b| b.is_ascii_digit())).then(|| rel.to_owned())
}

/// Count stall episodes in (wall, media position) samples: a run of intervals in which the media
/// position advanced less than a quarter of the wall time (once playback had started).
pub(crate) fn stall_episodes(samples: &[(SystemTime, f64)]) -> u64 {
    let mut episodes = 0;
    let mut in_stall = false;
    for w in samples.windows(2) {
        let (t0, p0) = w[0];
        let (t1, p1) = w[1];
        let dt = t1.duration_since(t0).unwrap_or_default().as_secs_f64();
        if p0 <= 0.0 || dt < 0.3 {
            continue;
        }
        let stalled = p1 - p0 < 0.25 * dt;
        if stalled && !in_stall {
            episodes += 1;
        }
        in_stall = stalled;
    }
    episodes
}

/// FFmpeg as a client: `ffmpeg -re -i {url} -map 0:v:0? -map 0:a:0? -t S -f null -` on the multivariant
/// playlist, read in real time. Error lines (log level prefix `[error]`/`[fatal]`) are decode errors;
/// the per-stream "frames decoded" of the final statistics say whether picture and sound were decoded;
/// `-progress` gives the media time decoded against the wall clock (stalls, latency).
pub(crate) fn run_ffmpeg_client(url: &str, base: &str, seconds: u32) -> (Measured, LatencyProbe) {
    let mut cmd = Command::new("nice");
    cmd.args([
        "-n",
        "10",
        "ffmpeg",
        "-hide_banner",
        "-nostdin",
        "-loglevel",
        "repeat+level+verbose",
        "-re",
        "-i",
        url,
        "-map",
        "0:v:0?",
        "-map",
        "0:a:0?",
        "-t",
        &seconds.to_string(),
        "-enc_time_base",
        "-1",
        "-progress",
        "pipe:1",
        "-stats_period",
        "0.5",
        "-f",
        "null",
        "-",
    ]);
    let mut m = Measured::default();
    let mut probe = LatencyProbe::default();
    let run = match collect_lines(cmd, Duration::from_secs(u64::from(seconds) + 40), |_| false) {
        Ok(run) => run,
        Err(e) => {
            m.hard_failures.push(e);
            return (m, probe);
        }
    };
    for (wall, line) in &run.stdout {
        if let Some(us) = line
            .strip_prefix("out_time_us=")
            .and_then(|v| v.parse::<i64>().ok())
        {
            probe.samples.push((*wall, us.max(0) as f64 / 1e6));
        }
    }
    m.played_s = probe.samples.last().map_or(0.0, |s| s.1);
    let mut errors = Vec::new();
    for (_, line) in &run.stderr {
        if line.contains("[error]") || line.contains("[fatal]") {
            errors.push(line.clone());
        }
        if let Some(rest) = line.split("HLS request for url '").nth(1) {
            let url = rest.split('\'').next().unwrap_or("");
            if probe.first_segment.is_none() {
                probe.first_segment = video_segment_key(url, base);
            }
        }
        if line.contains("Input stream #") {
            let frames = line
                .split(" frames decoded")
                .next()
                .and_then(|s| s.split_whitespace().last())
                .and_then(|n| n.parse::<u64>().ok());
            if line.contains("(video):") {
                m.video_frames += frames.unwrap_or(0);
            } else if line.contains("(audio):") {
                m.audio = Some(m.audio.unwrap_or(false) || frames.unwrap_or(0) > 0);
            }
        }
    }
    if m.audio.is_none() {
        m.audio = Some(false);
    }
    m.decode_errors = errors.len();
    if let Some(first) = errors.first() {
        m.notes
            .push(format!("first error: {}", clip_text(first, 120)));
    }
    match run.status {
        Some(s) if s.success() => {}
        Some(s) => m.hard_failures.push(format!("ffmpeg exited with {s}")),
        None => m
            .hard_failures
            .push(format!("ffmpeg still running after {} s", seconds + 40)),
    }
    m.stalls = Some(stall_episodes(&probe.samples));
    (m, probe)
}

/// `H:MM:SS.nnnnnnnnn` in seconds.
pub(crate) fn gst_time(s: &str) -> Option<f64> {
    let mut parts = s.split(':');
    let h: f64 = parts.next()?.parse().ok()?;
    let m: f64 = parts.next()?.parse().ok()?;
    let sec: f64 = parts.next()?.parse().ok()?;
    Some(h * 3600.0 + m * 60.0 + sec)
}

/// The buffer PTS in a fakesink `last-message` line (`… pts: 0:01:12.270000000, …`).
pub(crate) fn gst_buffer_pts(line: &str) -> Option<f64> {
    gst_time(line.split("pts: ").nth(1)?.split(',').next()?)
}

/// GStreamer as a client: `gst-launch-1.0 -m -v playbin3 uri={url}` with both sinks `fakesink
/// sync=true silent=false`, run until `seconds` after the first video buffer was rendered. Every
/// buffer reaching a sink is printed (`last-message`), with its PTS; error messages on the bus are
/// decode errors; the first fragment adaptivedemux2 downloads (its debug log) anchors the latency. A
/// stall is a gap of more than 0.5 s between rendered video frames.
pub(crate) fn run_gst_client(url: &str, base: &str, seconds: u32) -> (Measured, LatencyProbe) {
    let mut cmd = Command::new("nice");
    cmd.args([
        "-n",
        "10",
        "stdbuf",
        "-oL",
        "gst-launch-1.0",
        "-m",
        "-v",
        "playbin3",
        &format!("uri={url}"),
        "video-sink=fakesink name=vsink sync=true silent=false",
        "audio-sink=fakesink name=asink sync=true silent=false",
    ])
    .env("GST_DEBUG", "adaptivedemux2:5")
    .env("GST_DEBUG_NO_COLOR", "1");
    let is_video = |l: &str| l.starts_with('/') && l.contains("(vsink:sink) (");
    let is_audio = |l: &str| l.starts_with('/') && l.contains("(asink:sink) (");
    let window = Duration::from_secs(u64::from(seconds));
    let mut m = Measured::default();
    let mut probe = LatencyProbe::default();
    let run = match collect_lines(cmd, Duration::from_secs(u64::from(seconds) + 40), |out| {
        out.iter()
            .find(|(_, l)| is_video(l))
            .is_some_and(|(t, _)| t.elapsed().unwrap_or_default() >= window)
    }) {
        Ok(run) => run,
        Err(e) => {
            m.hard_failures.push(e);
            return (m, probe);
        }
    };
    let video: Vec<(SystemTime, f64)> = run
        .stdout
        .iter()
        .filter(|(_, l)| is_video(l))
        .filter_map(|(t, l)| Some((*t, gst_buffer_pts(l)?)))
        .collect();
    let audio_buffers = run.stdout.iter().filter(|(_, l)| is_audio(l)).count();
    let bus = |kind: &str| {
        run.stdout
            .iter()
            .filter(|(_, l)| l.starts_with("Got message #") && l.contains(&format!(" ({kind}): ")))
            .map(|(_, l)| l.clone())
            .collect::<Vec<_>>()
    };
    let errors = bus("error");
    let warnings = bus("warning");
    m.video_frames = video.len() as u64;
    m.audio = Some(audio_buffers > 0);
    m.decode_errors = errors.len();
    if let Some(first) = errors.first() {
        m.notes
            .push(format!("first error: {}", clip_text(first, 120)));
    }
    if !warnings.is_empty() {
        m.notes.push(format!(
            "{} warnings, first: {}",
            warnings.len(),
            clip_text(&warnings[0], 100)
        ));
    }
    if let (Some(first), Some(last)) = (video.first(), video.last()) {
        m.played_s = last.1 - first.1;
        // Latency samples: one rendered frame every half second or so.
        let mut next = first.0;
        for (t, pts) in &video {
            if *t >= next {
                probe.samples.push((*t, pts - first.1));
                next = *t + Duration::from_millis(500);
            }
        }
        let mut stalls = 0;
        for w in video.windows(2) {
            if w[1].0.duration_since(w[0].0).unwrap_or_default() > Duration::from_millis(500) {
                stalls += 1;
            }
        }
        m.stalls = Some(stalls);
    } else {
        m.stalls = Some(0);
        if run.status.is_some() {
            m.hard_failures.push(format!(
                "gst-launch exited ({}) without a frame",
                run.status.map(|s| s.to_string()).unwrap_or_default()
            ));
        }
    }
    for (_, line) in &run.stderr {
        if let Some(rest) = line.split("Downloading fragment uri: ").nth(1) {
            let url = rest.split(',').next().unwrap_or("");
            if let Some(key) = video_segment_key(url, base) {
                probe.first_segment = Some(key);
                break;
            }
        }
    }
    (m, probe)
}

/// A browser harness report, or `{"ok": false, "harness_error": …}` when it printed none. Unlike
/// common's `run_player` a failed run is a result, not a panic: the matrix reports every cell.
pub(crate) fn run_browser(
    script: &str,
    url: &str,
    seconds: u32,
    extra: &[&str],
) -> serde_json::Value {
    let dir = repo().join("tests/browser");
    let out = Command::new("nice")
        .args(["-n", "10", "node", script, "--url", url, "--seconds"])
        .arg(seconds.to_string())
        .args(extra)
        .current_dir(&dir)
        .stdin(Stdio::null())
        .output();
    let out = match out {
        Ok(out) => out,
        Err(e) => return serde_json::json!({"ok": false, "harness_error": format!("node: {e}")}),
    };
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .rev()
        .find(|l| l.trim_start().starts_with('{'));
    // Every report in full, one JSON line each, for reading a failed cell afterwards.
    if let Some(line) = line {
        let path = target_dir().join("matrix-logs/browser-reports.jsonl");
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
        {
            use std::io::Write as _;
            let _ = writeln!(f, "{{\"script\":{script:?},\"report\":{line}}}");
        }
    }
    line.and_then(|l| serde_json::from_str(l).ok())
        .unwrap_or_else(|| {
            let stderr = String::from_utf8_lossy(&out.stderr);
            serde_json::json!({
                "ok": false,
                "harness_error": clip_text(stderr.lines().last().unwrap_or("no output"), 160),
            })
        })
}

/// A cell's measurements from a browser harness report.
pub(crate) fn measured_from_browser(player: Player, r: &serde_json::Value) -> Measured {
    let mut m = Measured {
        played_s: r["played_seconds"].as_f64().unwrap_or(0.0),
        video_frames: r["frames_decoded"].as_u64().unwrap_or(0),
        audio: r["audio_decoded_bytes"].as_u64().map(|b| b > 0),
        decode_errors: r["fatal_errors"].as_array().map_or(0, Vec::len),
        stalls: r["stalls"].as_u64(),
        video_height: r["video_height"].as_u64().filter(|h| *h > 0),
        ..Default::default()
    };
    m.latency_s = match player {
        Player::HlsJs => r["pdt_latency_avg"]
            .as_f64()
            .or_else(|| r["latency_avg"].as_f64()),
        _ => r["latency_avg"].as_f64(),
    };
    if r["timeout"] == true {
        m.notes
            .push("no playback before the harness's limit".into());
    }
    if let Some(e) = r["harness_error"].as_str() {
        m.notes.push(format!("harness: {}", clip_text(e, 100)));
    }
    if let Some(e) = r["fatal_errors"].as_array().and_then(|a| a.first()) {
        m.notes
            .push(format!("fatal: {}", clip_text(&e.to_string(), 120)));
    }
    let errors = r["error_count"]
        .as_u64()
        .unwrap_or(0)
        .saturating_sub(m.decode_errors as u64);
    if errors > 0 {
        let first = r["errors"]
            .as_array()
            .and_then(|a| a.first())
            .map(|e| e["details"].as_str().unwrap_or("").to_owned())
            .unwrap_or_default();
        m.notes.push(format!("{errors} non-fatal errors ({first})"));
    }
    if let Some(n) = r["http_errors"].as_u64().filter(|n| *n > 0) {
        m.notes.push(format!("{n} HTTP errors"));
    }
    m
}
