//! The headless-Chromium player harness (`tests/browser`, with Debian's `chromium` through
//! `playwright-core`): hls.js, dash.js and Shaka playing a URL for a number of seconds and reporting
//! what they played as one JSON line.

use std::process::Command;

use crate::repo;

/// Assert a player harness report played at least `min_seconds` with no fatal error.
pub fn assert_played(report: &serde_json::Value, min_seconds: f64) {
    assert_eq!(report["ok"], true, "{report}");
    assert!(
        report["played_seconds"].as_f64().unwrap_or(0.0) >= min_seconds,
        "{report}"
    );
    assert!(
        report["fatal_errors"]
            .as_array()
            .is_none_or(|a| a.is_empty()),
        "{report}"
    );
}

/// Run the headless-Chromium hls.js harness (tests/browser/play-hls.mjs) and return its JSON report.
pub fn play_hls(url: &str, seconds: u32) -> serde_json::Value {
    play_hls_args(url, seconds, &[])
}

/// [`play_hls`] with extra harness options (e.g. `--switch-every 4`).
pub fn play_hls_args(url: &str, seconds: u32, extra: &[&str]) -> serde_json::Value {
    play_hls_command(Command::new("node"), url, seconds, extra)
}

/// [`play_hls`] with the browser at a lower CPU priority (`nice -n 10`), for tests where the origin's
/// real-time work (e.g. SRT retransmissions within a 200 ms latency) must not starve while Chromium
/// starts up on a 2-core machine. Playback itself still gets the CPU it needs.
pub fn play_hls_nice(url: &str, seconds: u32) -> serde_json::Value {
    let mut cmd = Command::new("nice");
    cmd.args(["-n", "10", "node"]);
    play_hls_command(cmd, url, seconds, &[])
}

fn play_hls_command(cmd: Command, url: &str, seconds: u32, extra: &[&str]) -> serde_json::Value {
    let mut args = vec!["--low-latency"];
    args.extend_from_slice(extra);
    run_player(cmd, "play-hls.mjs", url, seconds, &args)
}

/// Run the headless-Chromium DASH harness (tests/browser/play-dash.mjs) with `player` (`dashjs` or
/// `shaka`) and return its JSON report.
pub fn play_dash(player: &str, url: &str, seconds: u32, extra: &[&str]) -> serde_json::Value {
    let mut args = vec!["--player", player];
    args.extend_from_slice(extra);
    run_player(Command::new("node"), "play-dash.mjs", url, seconds, &args)
}

/// Run a browser harness script from tests/browser and parse the JSON line it prints.
fn run_player(
    mut cmd: Command,
    script: &str,
    url: &str,
    seconds: u32,
    extra: &[&str],
) -> serde_json::Value {
    let dir = repo().join("tests/browser");
    assert!(
        dir.join("node_modules/hls.js").exists(),
        "tests/browser/node_modules missing: run scripts/setup.sh"
    );
    let out = cmd
        .current_dir(&dir)
        .args([script, "--url", url, "--seconds", &seconds.to_string()])
        .args(extra)
        .output()
        .expect("node runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "player harness failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = stdout
        .lines()
        .rev()
        .find(|l| l.trim_start().starts_with('{'))
        .expect("a JSON report");
    serde_json::from_str(line).expect("JSON report parses")
}

/// Play `url` (a WHEP endpoint) over WebRTC in headless Chromium (tests/browser/play-whep.mjs) for
/// `seconds` and return its JSON report (`getStats()` figures).
pub fn play_whep(url: &str, seconds: u32) -> serde_json::Value {
    play_whep_with(url, seconds, &[])
}

/// [`play_whep`] with the harness's options: `--hls URL` (hls.js on the same page at the same time),
/// `--latency` (glass-to-glass latency read from the frame code [`clock_code_filter`] draws),
/// `--loss P` (a UDP relay dropping a fraction P of the datagrams to the browser).
///
/// [`clock_code_filter`]: crate::ffmpeg::clock_code_filter
pub fn play_whep_with(url: &str, seconds: u32, options: &[&str]) -> serde_json::Value {
    run_player(Command::new("node"), "play-whep.mjs", url, seconds, options)
}

/// Publish Chromium's fake camera and microphone over WHIP to `url` for `seconds`
/// (tests/browser/publish-whip.mjs) with the publish key `key` (bearer), preferring `codec` (`h264` or
/// `vp8`), and return its JSON report.
pub fn publish_whip(url: &str, key: Option<&str>, seconds: u32, codec: &str) -> serde_json::Value {
    let mut options = vec!["--codec", codec];
    if let Some(key) = key {
        options.extend(["--key", key]);
    }
    run_player(
        Command::new("node"),
        "publish-whip.mjs",
        url,
        seconds,
        &options,
    )
}

/// Play a stream in hls.js (LL-HLS, `hls_url`), dash.js and Shaka (`dash_url`) at once in headless
/// Chromium (tests/browser/play-events.mjs) until each raised the timed metadata event `end_id` (at
/// most `seconds`), and return every ID3 event each player raised with its timing against the frames
/// shown (whose clock codes [`clock_code_filter`] draws).
///
/// [`clock_code_filter`]: crate::ffmpeg::clock_code_filter
pub fn play_events(hls_url: &str, dash_url: &str, end_id: &str, seconds: u32) -> serde_json::Value {
    run_player(
        Command::new("node"),
        "play-events.mjs",
        hls_url,
        seconds,
        &["--dash", dash_url, "--end", end_id],
    )
}

/// Play `url` (an LL-HLS stream, by segments: see the script on hls.js's `lowLatencyMode` and
/// captions) in hls.js in headless Chromium (tests/browser/play-captions.mjs) for `seconds` from the
/// first frame, with the level of `height` forced when given, and return the CEA-608 closed
/// captions hls.js turned into text track cues (`cues`: track label and kind, start, end, text), what
/// the showing captions track had on screen with each frame presented (`shown`: media time and
/// text, on each change), the playlist's CLOSED-CAPTIONS declarations, the level heights played,
/// stalls and fatal errors. `ok`: a cue, some text shown, no fatal error.
pub fn play_captions(url: &str, height: Option<u32>, seconds: u32) -> serde_json::Value {
    let height = height.map(|h| h.to_string());
    let mut options: Vec<&str> = Vec::new();
    if let Some(height) = &height {
        options.extend(["--height", height.as_str()]);
    }
    run_player(
        Command::new("node"),
        "play-captions.mjs",
        url,
        seconds,
        &options,
    )
}

/// Play a recording (VOD) to its end in hls.js (`hls_url`) then dash.js (`dash_url`) in headless
/// Chromium at playback rate `rate` (tests/browser/play-vod.mjs), each for at most `seconds`, and
/// return what each played (duration, media time played, jumps, stalls, errors). `ok`: both ended
/// with no fatal error and no jump, having played at least 97 % of the duration.
pub fn play_vod(hls_url: &str, dash_url: &str, rate: f64, seconds: u32) -> serde_json::Value {
    run_player(
        Command::new("node"),
        "play-vod.mjs",
        hls_url,
        seconds,
        &["--dash", dash_url, "--rate", &rate.to_string()],
    )
}

/// Rewind a live stream with a DVR window in hls.js (`hls_url`) then dash.js (`dash_url`) in headless
/// Chromium (tests/browser/play-dvr.mjs): join at the live edge, seek `back` seconds back, play
/// `hold` seconds there, return to the live edge; how far behind live each player was at each step
/// (by the wall clock of the frame shown). `ok`: both played the hold `back` ± 10 s behind live,
/// then within 10 s of live, with no fatal error.
pub fn play_dvr(hls_url: &str, dash_url: &str, back: u32, hold: u32) -> serde_json::Value {
    run_player(
        Command::new("node"),
        "play-dvr.mjs",
        hls_url,
        0,
        &[
            "--dash",
            dash_url,
            "--back",
            &back.to_string(),
            "--hold",
            &hold.to_string(),
        ],
    )
}

/// Open the origin's player page at `url` in headless Chromium (tests/browser/play-page.mjs) and
/// return its JSON report.
pub fn play_page(url: &str, seconds: u32) -> serde_json::Value {
    run_player(Command::new("node"), "play-page.mjs", url, seconds, &[])
}
