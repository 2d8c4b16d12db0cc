//! FFmpeg as a real peer: publishers over RTMP (FLV) and SRT (MPEG-TS), decoders that count errors, and
//! `ffprobe` readings independent of Estuary's own parsers.

use std::{
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use crate::{blocking, process::Proc, repo};

/// Publish `clip` in a loop in real time with stream copy (`ffmpeg -re -stream_loop -1 … -c copy -f flv`).
pub fn publish_loop(ffmpeg: &Path, clip: &Path, url: &str) -> Proc {
    let child = Command::new(ffmpeg)
        .args([
            "-hide_banner",
            "-loglevel",
            "error",
            "-re",
            "-stream_loop",
            "-1",
            "-i",
        ])
        .arg(clip)
        .args(["-c", "copy", "-f", "flv", url])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("ffmpeg runs");
    Proc(child, "ffmpeg publish")
}

/// Run `ffmpeg` (a path: Debian's, or [`modern_ffmpeg`]) with `args` as a publisher (killed on drop).
pub fn ffmpeg(ffmpeg: &Path, args: &[&str]) -> Proc {
    let child = Command::new(ffmpeg)
        .args(["-hide_banner", "-loglevel", "error"])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("ffmpeg runs");
    Proc(child, "ffmpeg")
}

/// An FFmpeg video filter chain that draws the wall clock into each frame as it is made, for
/// glass-to-glass latency: the frame's timestamp is set to the real-time clock (`RTCTIME`, ms), then
/// Unix ms mod 2^24 is drawn in the top left as 24 blocks of 24×24 px on black (bit k = block k,
/// white = 1; for a 640 px wide picture, scaled with it), then timestamps are made regular again
/// (`frame_rate` per second). tests/browser/play-whep.mjs `--latency` reads it back.
pub fn clock_code_filter(frame_rate: u32) -> String {
    let mut f = String::from(
        "settb=1/1000,setpts=RTCTIME/1000,drawbox=x=0:y=0:w=576:h=24:color=black:t=fill",
    );
    for k in 0..24 {
        f.push_str(&format!(
            ",drawbox=x={}:y=0:w=24:h=24:color=white:t=fill:enable='eq(mod(floor(t*1000/{}),2),1)'",
            24 * k,
            1u64 << k
        ));
    }
    f.push_str(&format!(",settb=1/{frame_rate},setpts=N"));
    f
}

/// Publish a live test picture (640×360, 30 frames/s, [`clock_code_filter`]) and a 440 Hz tone (AAC)
/// to `url` over RTMP, x264 `zerolatency` (no B-frames) with a keyframe every `gop_frames`.
pub fn publish_clock(url: &str, gop_frames: u32) -> Proc {
    let filter = clock_code_filter(30);
    let gop = gop_frames.to_string();
    ffmpeg(
        Path::new("ffmpeg"),
        &[
            "-re",
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=640x360:rate=30",
            "-re",
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=440:sample_rate=48000",
            "-vf",
            &filter,
            "-c:v",
            "libx264",
            "-preset",
            "veryfast",
            "-tune",
            "zerolatency",
            "-g",
            &gop,
            "-b:v",
            "1500k",
            "-pix_fmt",
            "yuv420p",
            "-c:a",
            "aac",
            "-b:a",
            "96k",
            "-f",
            "flv",
            url,
        ],
    )
}

/// The static FFmpeg ≥ 7 from the PyPI package imageio-ffmpeg (installed by scripts/setup.sh), which can
/// publish HEVC over Enhanced RTMP. Panics with a set-up hint when missing.
pub fn modern_ffmpeg() -> PathBuf {
    let venv = repo().join(".venv/bin/python3");
    let python = if venv.exists() {
        venv
    } else {
        PathBuf::from("python3")
    };
    let out = Command::new(&python)
        .args([
            "-c",
            "import imageio_ffmpeg; print(imageio_ffmpeg.get_ffmpeg_exe())",
        ])
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "imageio-ffmpeg missing: run scripts/setup.sh ({})",
        String::from_utf8_lossy(&out.stderr)
    );
    PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
}

/// ffprobe a file: returns the first decoded video frame's (pict_type, key_frame) — decoded by FFmpeg,
/// independent of our sample flags.
pub fn first_frame_type(path: &Path) -> (String, bool) {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-select_streams",
            "v:0",
            "-read_intervals",
            "%+#1",
            "-show_frames",
            "-show_entries",
            "frame=pict_type,key_frame",
            "-of",
            "csv=p=0",
        ])
        .arg(path)
        .output()
        .expect("ffprobe runs");
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().next().unwrap_or("");
    let mut f = line.split(',');
    let key = f.next().unwrap_or("0") == "1";
    let pict = f.next().unwrap_or("").to_owned();
    (pict, key)
}

/// Run ffprobe with `args` on `target` and return stdout (asserting success).
pub fn ffprobe(args: &[&str], target: &str) -> String {
    let out = Command::new("ffprobe")
        .args(["-v", "error"])
        .args(args)
        .arg(target)
        .output()
        .expect("ffprobe runs");
    assert!(
        out.status.success(),
        "ffprobe failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Decode `input` (a URL or a file) with Debian's FFmpeg to the null muxer, reading at most `seconds`.
/// Returns FFmpeg's output; `status.success()` and an empty `stderr` mean it decoded without an error.
/// The encoder time base is the stream's own (90 kHz): the default 1/frame-rate one makes the null muxer
/// warn about the whole-millisecond jitter RTMP timestamps carry.
pub async fn ffmpeg_decode(input: &str, seconds: Option<u32>) -> std::process::Output {
    let mut args: Vec<String> = ["-hide_banner", "-v", "error", "-i", input]
        .map(String::from)
        .to_vec();
    if let Some(s) = seconds {
        args.extend(["-t".to_owned(), s.to_string()]);
    }
    args.extend(["-enc_time_base", "-1", "-f", "null", "-"].map(String::from));
    blocking(move || {
        Command::new("ffmpeg")
            .args(&args)
            .output()
            .expect("ffmpeg runs")
    })
    .await
}

/// ffprobe `url` on a blocking thread for `entries` (e.g. `stream=codec_name,width,height`) as bare CSV,
/// optionally limited to `select` (e.g. `v:0`); returns the first non-empty line (HLS inputs repeat a
/// stream once per program).
pub async fn probe_first(url: &str, select: Option<&str>, entries: &str) -> String {
    let mut args: Vec<String> = Vec::new();
    if let Some(s) = select {
        args.extend(["-select_streams".to_owned(), s.to_owned()]);
    }
    args.extend([
        "-show_entries".to_owned(),
        entries.to_owned(),
        "-of".to_owned(),
        "csv=p=0".to_owned(),
    ]);
    let url = url.to_owned();
    let out = blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        ffprobe(&args, &url)
    })
    .await;
    out.lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .to_owned()
}

/// An ffmpeg/libsrt caller URL: `srt://ADDR?streamid=ID` followed by `extra` (e.g. `&passphrase=…`),
/// with a 200 ms latency (libsrt's `latency` option is in microseconds).
pub fn srt_url(addr: std::net::SocketAddr, stream_id: &str, extra: &str) -> String {
    format!("srt://{addr}?streamid={stream_id}&latency=200000{extra}")
}

/// Publish `clip` in a loop in real time over SRT with Debian's FFmpeg (`-c copy -f mpegts URL`).
pub fn publish_srt_loop(clip: &Path, url: &str) -> Proc {
    let child = Command::new("ffmpeg")
        .args([
            "-hide_banner",
            "-loglevel",
            "error",
            "-re",
            "-stream_loop",
            "-1",
            "-i",
        ])
        .arg(clip)
        .args(["-c", "copy", "-f", "mpegts", url])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("ffmpeg runs");
    Proc(child, "ffmpeg srt publish")
}

/// FFmpeg's standard output for `-i input {args} -`: a remux or an elementary stream. Panics with
/// FFmpeg's message when it fails.
pub fn ffmpeg_stdout(input: &Path, args: &[&str]) -> Vec<u8> {
    let out = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-nostdin", "-i"])
        .arg(input)
        .args(args)
        .arg("-")
        .output()
        .expect("ffmpeg runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}
