//! What the end-to-end tests share beyond the test kit ([`testkit`], re-exported here): an in-process
//! origin on loopback ports, `estuary serve` as a child process with the test defaults, and tokens under
//! the test secret.
#![allow(dead_code, missing_docs)]

use std::{path::Path, time::Duration};

use estuary::{
    config::{FileConfig, ServeArgs, Settings},
    server::Server,
};
pub use testkit::{
    Rng, blocking,
    checks::*,
    ffmpeg::*,
    fixture, fresh_data_dir,
    http::{Fetched, get, request, request_with, wait_for_200},
    players::*,
    process::{EstuaryCommand, Proc},
    repo,
};

pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
                tracing_subscriber::EnvFilter::new("warn,estuary=info,srt_protocol=error")
            }),
        )
        .with_test_writer()
        .try_init();
}

/// Start an origin on 127.0.0.1 with ephemeral ports; `file_toml` tweaks the configuration. Without a
/// `[transcode]` section the origin packages streams as they arrive (passthrough, no ladder).
pub async fn start_server(file_toml: &str) -> Server {
    start_server_in(file_toml, &fresh_data_dir()).await
}

/// [`start_server`] with its data directory (content keys) at `data_dir`.
pub async fn start_server_in(file_toml: &str, data_dir: &Path) -> Server {
    let file_toml = with_test_defaults(file_toml);
    init_tracing();
    let args = ServeArgs {
        http_listen: Some("127.0.0.1:0".parse().unwrap()),
        rtmp_listen: Some("127.0.0.1:0".parse().unwrap()),
        srt_listen: Some("127.0.0.1:0".parse().unwrap()),
        data_dir: Some(data_dir.to_owned()),
        ..Default::default()
    };
    let file: FileConfig = toml::from_str(&file_toml).expect("test config parses");
    Server::start(Settings::resolve(&args, file).expect("valid settings"))
        .await
        .expect("server starts")
}

/// The server secret of test origins that do not configure `[auth]`.
pub const TEST_SECRET: &str = "estuary test secret, at least 32 bytes long";

/// `http://{origin}/t/{token}/{stream}/`: the base URL of `stream` (`live/{name}`) under a one-hour
/// playback token signed by `server`'s secret.
pub fn play_base(server: &Server, stream: &str) -> String {
    let token = server.auth.sign_for(
        stream,
        Duration::from_secs(3600),
        estuary::auth::unix_now_s(),
    );
    format!("http://{}/t/{token}/{stream}/", server.http_addr)
}

/// `estuary serve` (this build's binary) as a child process, with the defaults of test origins:
/// [`EstuaryProcess::start`].
pub type EstuaryProcess = testkit::process::Estuary;

/// How tests start [`EstuaryProcess`]: transcoding disabled unless the configuration has a
/// `[transcode]` section, open playback and publishing under [`TEST_SECRET`] unless it has `[auth]`.
pub trait StartEstuary: Sized {
    /// Start with `file_toml` and a fresh data directory, and wait for the "estuary serving" line.
    /// Blocking: call from `blocking(…)` in async tests.
    fn start(file_toml: &str) -> Self {
        Self::start_in(file_toml, &fresh_data_dir())
    }

    /// [`Self::start`] with its data directory at `data_dir` (a restart keeps it).
    fn start_in(file_toml: &str, data_dir: &Path) -> Self;
}

impl StartEstuary for EstuaryProcess {
    fn start_in(file_toml: &str, data_dir: &Path) -> Self {
        let mut command = EstuaryCommand::new(
            env!("CARGO_BIN_EXE_estuary"),
            &with_test_defaults(file_toml),
        );
        command.data_dir = Some(data_dir.to_owned());
        Self::spawn(command)
    }
}

/// `file_toml` with the test defaults: no transcoding without a `[transcode]` section; open playback
/// and publishing under [`TEST_SECRET`] without an `[auth]` section.
pub fn with_test_defaults(file_toml: &str) -> String {
    let mut text = file_toml.to_owned();
    if !text.contains("[transcode]") {
        text.push_str("\n[transcode]\nenabled = false\n");
    }
    if !text.contains("[auth]") {
        text.push_str(&format!(
            "\n[auth]\nplayback = \"open\"\npublish = \"open\"\nsecret = \"{TEST_SECRET}\"\n"
        ));
    }
    text
}

/// A one-hour playback token for `stream` (`live/{name}`) under [`TEST_SECRET`], the secret of test
/// origins (in process or [`EstuaryProcess`]) that do not configure `[auth]`.
pub fn test_token(stream: &str) -> String {
    let auth = estuary::auth::Auth::load(
        &estuary::auth::AuthConfig {
            secret: Some(estuary::auth::SecretString::new(TEST_SECRET)),
            ..Default::default()
        },
        &std::env::temp_dir(),
    )
    .expect("test auth");
    auth.sign_for(
        stream,
        Duration::from_secs(3600),
        estuary::auth::unix_now_s(),
    )
}

/// The API bearer token of origins under [`TEST_SECRET`] (derived from it).
pub fn test_api_token() -> String {
    estuary::auth::Auth::with_secret(&Default::default(), TEST_SECRET.as_bytes())
        .api_token()
        .to_owned()
}

/// A ladder for a 360p source: the source copied (its encoded fallback takes over where its keyframes
/// leave the grid) and one encoded rung, `240p`.
pub const COPY_AND_240P: &str = "[transcode]\n[[transcode.rungs]]\nname = \"source\"\ncopy = true\n\
     [[transcode.rungs]]\nname = \"240p\"\nheight = 240\nbitrate_bps = 400000\n";

/// The wall clock, Unix ms.
pub fn unix_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// GStreamer publishing an MPEG-TS over SRT to `srt_addr` as `stream` (`tests/tools/gst-ts-publish.py`
/// with `args`, e.g. `--seconds 20 --captions 2`), killed when dropped: a test that fails before
/// [`GstPublisher::finish`] does not wait for it (a pipeline whose origin went away can hang in its
/// SRT sink).
pub fn gst_ts_publish(srt_addr: std::net::SocketAddr, stream: &str, args: &[&str]) -> GstPublisher {
    let child = std::process::Command::new("/usr/bin/python3")
        .arg(repo().join("tests/tools/gst-ts-publish.py"))
        .args(["--srt", &srt_addr.to_string(), "--stream", stream])
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("python3 runs the GStreamer publisher");
    GstPublisher(testkit::process::Proc(child, "gst-ts-publish"))
}

/// A running [`gst_ts_publish`].
pub struct GstPublisher(testkit::process::Proc);

impl GstPublisher {
    /// Wait (polling, without holding a thread) until the publisher exits; its status, stdout (one
    /// JSON line per caption or splice it sent) and stderr.
    pub async fn finish(mut self) -> std::process::Output {
        use std::io::Read as _;
        let child = &mut self.0.0;
        let status = loop {
            if let Some(status) = child.try_wait().expect("the publisher's status") {
                break status;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
        if let Some(mut out) = child.stdout.take() {
            let _ = out.read_to_end(&mut stdout);
        }
        if let Some(mut err) = child.stderr.take() {
            let _ = err.read_to_end(&mut stderr);
        }
        std::process::Output {
            status,
            stdout,
            stderr,
        }
    }
}
