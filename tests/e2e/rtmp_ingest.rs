//! End to end RTMP ingest: real FFmpeg publishers against `estuary::ingest::rtmp::serve` on 127.0.0.1:0,
//! with a recording `Publisher`.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use estuary::ingest::rtmp::{RtmpConfig, serve};
use estuary::ingest::{IngestEvent, Protocol, PublishRefused, PublishSession, Publisher};
use media::{CodecConfig, Frame, TrackKind};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

const FFMPEG: &str = "/usr/bin/ffmpeg";

/// Everything the test publisher saw.
#[derive(Default)]
struct Recorded {
    live: HashSet<String>,
    events: HashMap<String, Vec<IngestEvent>>,
    refused: Vec<String>,
}

#[derive(Default, Clone)]
struct Recorder(Arc<Mutex<Recorded>>);

impl Recorder {
    fn events(&self, stream: &str) -> Vec<IngestEvent> {
        self.0
            .lock()
            .unwrap()
            .events
            .get(stream)
            .cloned()
            .unwrap_or_default()
    }

    fn frame_count(&self, stream: &str, kind: TrackKind) -> usize {
        frames(&self.events(stream), kind).len()
    }

    fn refused(&self) -> Vec<String> {
        self.0.lock().unwrap().refused.clone()
    }
}

impl Publisher for Recorder {
    fn begin_publish(
        &self,
        stream: &str,
        protocol: Protocol,
        _peer: SocketAddr,
    ) -> Result<Box<dyn PublishSession>, PublishRefused> {
        assert_eq!(protocol, Protocol::Rtmp);
        let mut recorded = self.0.lock().unwrap();
        if !recorded.live.insert(stream.to_owned()) {
            recorded.refused.push(stream.to_owned());
            return Err(PublishRefused::AlreadyLive(stream.to_owned()));
        }
        recorded.events.entry(stream.to_owned()).or_default();
        Ok(Box::new(RecordingSession {
            recorder: self.clone(),
            stream: stream.to_owned(),
        }))
    }
}

struct RecordingSession {
    recorder: Recorder,
    stream: String,
}

impl PublishSession for RecordingSession {
    fn event(&mut self, event: IngestEvent) {
        self.recorder
            .0
            .lock()
            .unwrap()
            .events
            .entry(self.stream.clone())
            .or_default()
            .push(event);
    }
}

impl Drop for RecordingSession {
    fn drop(&mut self) {
        if let Ok(mut recorded) = self.recorder.0.lock() {
            recorded.live.remove(&self.stream);
        }
    }
}

struct Harness {
    addr: SocketAddr,
    recorder: Recorder,
    shutdown: watch::Sender<bool>,
    server: tokio::task::JoinHandle<()>,
}

impl Harness {
    async fn start() -> Self {
        Self::start_with(RtmpConfig {
            handshake_timeout: Duration::from_secs(3),
            idle_timeout: Duration::from_secs(3),
            ..RtmpConfig::default()
        })
        .await
    }

    async fn start_with(config: RtmpConfig) -> Self {
        // Logs show with `RUST_LOG=estuary=debug cargo test --test e2e rtmp_ingest:: -- --nocapture`.
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let recorder = Recorder::default();
        let (shutdown, shutdown_rx) = watch::channel(false);
        let server = tokio::spawn(serve(
            listener,
            Arc::new(recorder.clone()),
            config,
            shutdown_rx,
        ));
        Self {
            addr,
            recorder,
            shutdown,
            server,
        }
    }

    fn url(&self, name: &str) -> String {
        format!("rtmp://{}/live/{name}", self.addr)
    }

    async fn stop(self) {
        self.shutdown.send(true).unwrap();
        tokio::time::timeout(Duration::from_secs(10), self.server)
            .await
            .expect("serve returns after shutdown")
            .expect("serve does not panic");
    }
}

fn fixture() -> PathBuf {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let local = root.join("fixtures/bbb-720p-2s-gop.mp4");
    if local.exists() {
        local
    } else {
        root.join("../shared/media/bbb-720p-h264-aac-90s-excerpt.mp4")
    }
}

fn spawn_ffmpeg(program: &str, args: &[&str]) -> Child {
    Command::new(program)
        .args(["-hide_banner", "-loglevel", "error", "-nostdin"])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("ffmpeg runs")
}

/// Wait for an FFmpeg process; returns (success, stderr).
async fn wait_ffmpeg(child: Child) -> (bool, String) {
    let output = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// Publish the fixture (stream copy, real time) for `seconds`.
fn publish_fixture(url: &str, seconds: u32) -> Child {
    let input = fixture();
    let t = seconds.to_string();
    spawn_ffmpeg(
        FFMPEG,
        &[
            "-re",
            "-i",
            input.to_str().unwrap(),
            "-t",
            &t,
            "-c",
            "copy",
            "-f",
            "flv",
            url,
        ],
    )
}

async fn wait_until(what: &str, timeout: Duration, mut condition: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + timeout;
    while !condition() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn frames(events: &[IngestEvent], kind: TrackKind) -> Vec<Frame> {
    events
        .iter()
        .filter_map(|e| match e {
            IngestEvent::Frame(f) if f.track == kind => Some(f.clone()),
            _ => None,
        })
        .collect()
}

/// Index of the first Track event of `kind` and of the first Frame of `kind`.
fn first_track_and_frame(
    events: &[IngestEvent],
    kind: TrackKind,
) -> (Option<usize>, Option<usize>) {
    let track = events
        .iter()
        .position(|e| matches!(e, IngestEvent::Track(t) if t.kind() == kind));
    let frame = events
        .iter()
        .position(|e| matches!(e, IngestEvent::Frame(f) if f.track == kind));
    (track, frame)
}

fn video_track(events: &[IngestEvent]) -> media::TrackInfo {
    events
        .iter()
        .find_map(|e| match e {
            IngestEvent::Track(t) if t.kind() == TrackKind::Video => Some(t.clone()),
            _ => None,
        })
        .expect("a video track")
}

fn assert_dts_strictly_increasing(frames: &[Frame]) {
    for w in frames.windows(2) {
        assert!(
            w[1].dts > w[0].dts,
            "dts not increasing: {:?} then {:?}",
            w[0],
            w[1]
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rtmp_ffmpeg_publish_delivers_tracks_and_frames_and_refuses_second_publisher() {
    let h = Harness::start().await;
    let first = publish_fixture(&h.url("test"), 4);
    let recorder = h.recorder.clone();
    wait_until("first video frames", Duration::from_secs(15), || {
        recorder.frame_count("live/test", TrackKind::Video) >= 5
    })
    .await;

    // A second publisher on the same name is refused while the first keeps going.
    let second = publish_fixture(&h.url("test"), 2);
    let (second_ok, second_log) = wait_ffmpeg(second).await;
    assert!(
        !second_ok,
        "second publisher must fail; ffmpeg said: {second_log}"
    );
    assert_eq!(h.recorder.refused(), ["live/test"]);
    let after_refusal = h.recorder.frame_count("live/test", TrackKind::Video);

    let (first_ok, first_log) = wait_ffmpeg(first).await;
    assert!(first_ok, "first publisher failed: {first_log}");
    let recorder = h.recorder.clone();
    wait_until("publish end", Duration::from_secs(5), || {
        !recorder.0.lock().unwrap().live.contains("live/test")
    })
    .await;
    let events = h.recorder.events("live/test");
    h.stop().await;

    // Tracks arrive before their frames.
    for kind in [TrackKind::Video, TrackKind::Audio] {
        let (track, frame) = first_track_and_frame(&events, kind);
        assert!(
            track.is_some() && frame.is_some() && track < frame,
            "{kind:?}: track {track:?} frame {frame:?}"
        );
    }
    let video = video_track(&events);
    assert!(matches!(video.config, CodecConfig::Avc(_)));
    assert!(
        video.config.rfc6381().starts_with("avc1."),
        "{}",
        video.config.rfc6381()
    );
    assert_eq!(video.config.video_params().map(|p| p.width), Some(1280));
    assert_eq!(video.timescale, 90_000);

    let video_frames = frames(&events, TrackKind::Video);
    assert!(
        video_frames.len() >= 80,
        "only {} video frames",
        video_frames.len()
    );
    assert!(
        video_frames.len() > after_refusal,
        "first publisher kept receiving after the refusal"
    );
    assert_dts_strictly_increasing(&video_frames);
    assert!(video_frames[0].is_keyframe, "first frame is a keyframe");
    let with_pts_at_or_after_dts = video_frames.iter().filter(|f| f.pts >= f.dts).count();
    assert!(
        with_pts_at_or_after_dts * 10 >= video_frames.len() * 9,
        "pts < dts too often"
    );
    assert!(
        video_frames
            .iter()
            .all(|f| f.data.len() >= 5 && u32::from_be_bytes(f.data[..4].try_into().unwrap()) > 0)
    );

    let audio_frames = frames(&events, TrackKind::Audio);
    assert!(
        audio_frames.len() >= 100,
        "only {} audio frames",
        audio_frames.len()
    );
    for w in audio_frames.windows(2) {
        assert_eq!(
            w[1].dts - w[0].dts,
            1024,
            "audio duration at dts {}",
            w[0].dts
        );
    }
}

/// A deterministic pseudo-random byte generator (xorshift), so failures reproduce.
fn garbage(len: usize, mut seed: u64) -> Vec<u8> {
    (0..len)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed >> 24) as u8
        })
        .collect()
}

/// Read until the server closes the connection; panics if it stays open for 8 s.
async fn assert_closed_by_server(mut socket: TcpStream) {
    let mut buf = [0u8; 8192];
    let closed = tokio::time::timeout(Duration::from_secs(8), async {
        loop {
            match socket.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "server kept the connection open");
}

/// The client side of a plain RTMP handshake (§5.2): C0+C1, read S0+S1+S2, send C2 = S1.
async fn client_handshake(socket: &mut TcpStream) {
    let mut c0c1 = vec![3u8];
    c0c1.extend(garbage(1536, 7));
    c0c1[1..9].fill(0); // time and zero fields
    socket.write_all(&c0c1).await.unwrap();
    let mut s0s1s2 = vec![0u8; 1 + 2 * 1536];
    socket.read_exact(&mut s0s1s2).await.unwrap();
    assert_eq!(s0s1s2[0], 3);
    socket.write_all(&s0s1s2[1..1 + 1536]).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rtmp_garbage_connections_are_closed_while_a_real_publish_continues() {
    let h = Harness::start().await;
    let publisher = publish_fixture(&h.url("robust"), 4);
    let recorder = h.recorder.clone();
    wait_until("first video frames", Duration::from_secs(15), || {
        recorder.frame_count("live/robust", TrackKind::Video) >= 5
    })
    .await;
    let before = h.recorder.frame_count("live/robust", TrackKind::Video);

    // Garbage instead of a handshake (an HTTP request, then noise).
    let mut socket = TcpStream::connect(h.addr).await.unwrap();
    let mut bytes = b"GET /live/robust HTTP/1.1\r\nHost: x\r\n\r\n".to_vec();
    bytes.extend(garbage(4096, 1));
    let _ = socket.write_all(&bytes).await;
    assert_closed_by_server(socket).await;

    // A valid handshake, then noise. The first byte is a type 3 chunk header on a chunk stream never
    // opened (fmt 3, csid 7), so the decoder must refuse at once rather than wait for the idle timeout.
    for seed in [2u64, 3, 4] {
        let mut socket = TcpStream::connect(h.addr).await.unwrap();
        client_handshake(&mut socket).await;
        let mut noise = garbage(16 * 1024, seed);
        noise[0] = 0xC7;
        let _ = socket.write_all(&noise).await;
        assert_closed_by_server(socket).await;
    }

    // Random noise straight after a valid handshake, without a crafted first byte: closed at the latest by
    // the idle timeout (3 s in this harness).
    let mut socket = TcpStream::connect(h.addr).await.unwrap();
    client_handshake(&mut socket).await;
    let _ = socket.write_all(&garbage(2048, 99)).await;
    assert_closed_by_server(socket).await;

    // A connection that never sends anything is closed by the handshake timeout.
    let silent = TcpStream::connect(h.addr).await.unwrap();
    assert_closed_by_server(silent).await;

    let recorder = h.recorder.clone();
    wait_until("frames after the garbage", Duration::from_secs(10), || {
        recorder.frame_count("live/robust", TrackKind::Video) > before + 10
    })
    .await;
    let (ok, log) = wait_ffmpeg(publisher).await;
    assert!(ok, "publisher failed: {log}");
    let video_frames = frames(&h.recorder.events("live/robust"), TrackKind::Video);
    assert_dts_strictly_increasing(&video_frames);
    assert!(
        video_frames.len() >= 80,
        "only {} video frames",
        video_frames.len()
    );
    h.stop().await;
}

/// A client that asks for replies (PingRequest user control messages, each answered by a PingResponse,
/// RTMP §7.1.7) and never reads them: once the socket buffers are full the server's write blocks, and the
/// connection is closed at the write timeout. A real publish on the same server carries on meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rtmp_client_that_stops_reading_is_closed_at_the_write_timeout() {
    let write_timeout = Duration::from_secs(2);
    let h = Harness::start_with(RtmpConfig {
        handshake_timeout: Duration::from_secs(3),
        idle_timeout: Duration::from_secs(3),
        write_timeout,
        ..RtmpConfig::default()
    })
    .await;
    let publisher = publish_fixture(&h.url("steady"), 8);
    let recorder = h.recorder.clone();
    wait_until("first video frames", Duration::from_secs(15), || {
        recorder.frame_count("live/steady", TrackKind::Video) >= 5
    })
    .await;

    // A small receive buffer so that the server's replies fill it quickly.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut socket = socket.connect(h.addr).await.unwrap();
    client_handshake(&mut socket).await;
    // PingRequest: chunk basic header fmt 0 on chunk stream 2, timestamp 0, length 6, type 4 (user
    // control), message stream 0; event 6 and a 4-byte timestamp.
    let mut ping = vec![0x02, 0, 0, 0, 0, 0, 6, 4, 0, 0, 0, 0];
    ping.extend_from_slice(&[0, 6, 0, 0, 0, 1]);
    let batch = ping.repeat(64 * 1024 / ping.len());
    let before = h.recorder.frame_count("live/steady", TrackKind::Video);
    let started = Instant::now();
    let (mut last_progress, mut sent) = (Instant::now(), 0usize);
    let closed = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            match socket.write(&batch).await {
                Ok(n) if n > 0 => {
                    sent += n;
                    last_progress = Instant::now();
                }
                _ => return,
            }
        }
    })
    .await;
    assert!(
        closed.is_ok(),
        "the server kept a client that does not read for 20 s"
    );
    // From the last bytes the server took (then it was blocked writing its replies) to the close.
    let stalled_for = last_progress.elapsed();
    println!(
        "sent {sent} bytes of PingRequests in {:?}; closed {stalled_for:?} after the server stopped taking them (write timeout {write_timeout:?})",
        started.elapsed()
    );
    assert!(sent > 64 * 1024, "the server took only {sent} bytes");
    assert!(
        stalled_for <= write_timeout + Duration::from_secs(3),
        "closed {stalled_for:?} after the stall, write timeout {write_timeout:?}"
    );

    let recorder = h.recorder.clone();
    wait_until(
        "frames during and after the stall",
        Duration::from_secs(10),
        || recorder.frame_count("live/steady", TrackKind::Video) > before + 24,
    )
    .await;
    let (ok, log) = wait_ffmpeg(publisher).await;
    assert!(ok, "publisher failed: {log}");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rtmp_x264_b_frames_have_pts_after_dts() {
    let h = Harness::start().await;
    let url = h.url("bframes");
    let child = spawn_ffmpeg(
        FFMPEG,
        &[
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=640x360:rate=30",
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=440:sample_rate=48000",
            "-c:v",
            "libx264",
            "-profile:v",
            "high",
            "-bf",
            "2",
            "-g",
            "60",
            "-threads",
            "1",
            "-c:a",
            "aac",
            "-t",
            "3",
            "-f",
            "flv",
            &url,
        ],
    );
    let (ok, log) = wait_ffmpeg(child).await;
    assert!(ok, "ffmpeg failed: {log}");
    let recorder = h.recorder.clone();
    wait_until("publish end", Duration::from_secs(5), || {
        !recorder.0.lock().unwrap().live.contains("live/bframes")
    })
    .await;
    let events = h.recorder.events("live/bframes");
    h.stop().await;

    let video = video_track(&events);
    assert_eq!(
        video.config.video_params().map(|p| (p.width, p.height)),
        Some((640, 360))
    );
    let video_frames = frames(&events, TrackKind::Video);
    assert!(
        video_frames.len() >= 85,
        "only {} video frames",
        video_frames.len()
    );
    assert_dts_strictly_increasing(&video_frames);
    assert!(
        video_frames.iter().filter(|f| f.pts > f.dts).count() >= 10,
        "no composition offsets"
    );
    assert!(
        video_frames.iter().all(|f| f.pts >= f.dts),
        "x264 output never has pts < dts"
    );
    let audio_frames = frames(&events, TrackKind::Audio);
    assert!(
        audio_frames.len() >= 130,
        "only {} audio frames",
        audio_frames.len()
    );
    assert!(audio_frames.windows(2).all(|w| w[1].dts - w[0].dts == 1024));
}

/// FFmpeg ≥ 7 publishes HEVC as Enhanced RTMP (`hvc1` FourCC). `ESTUARY_FFMPEG7` names it
/// (scripts/setup.sh writes it to target/tools.env); without it the test fails with a set-up hint.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rtmp_enhanced_hevc_publish_with_ffmpeg7() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let ffmpeg7 = std::env::var("ESTUARY_FFMPEG7").ok().or_else(|| {
        let env = std::fs::read_to_string(root.join("target/tools.env")).ok()?;
        env.lines()
            .find_map(|l| l.strip_prefix("ESTUARY_FFMPEG7="))
            .map(str::to_owned)
    });
    let input = root.join("fixtures/camera-face-540p-hevc-aac-6s.mov");
    let ffmpeg7 = ffmpeg7
        .filter(|p| std::path::Path::new(p).exists())
        .expect("no FFmpeg >= 7 (ESTUARY_FFMPEG7): run scripts/setup.sh");
    assert!(input.exists(), "missing fixture {}", input.display());
    let h = Harness::start().await;
    let url = h.url("hevc");
    let child = spawn_ffmpeg(
        &ffmpeg7,
        &[
            "-i",
            input.to_str().unwrap(),
            "-t",
            "3",
            "-c",
            "copy",
            "-f",
            "flv",
            &url,
        ],
    );
    let (ok, log) = wait_ffmpeg(child).await;
    assert!(ok, "ffmpeg 7 failed: {log}");
    let recorder = h.recorder.clone();
    wait_until("publish end", Duration::from_secs(5), || {
        !recorder.0.lock().unwrap().live.contains("live/hevc")
    })
    .await;
    let events = h.recorder.events("live/hevc");
    h.stop().await;

    let video = video_track(&events);
    assert!(matches!(video.config, CodecConfig::Hevc(_)));
    assert_eq!(video.config.video_params().map(|p| p.width), Some(960));
    let video_frames = frames(&events, TrackKind::Video);
    assert!(
        video_frames.len() >= 60,
        "only {} video frames",
        video_frames.len()
    );
    assert!(video_frames[0].is_keyframe);
    assert_dts_strictly_increasing(&video_frames);
    assert!(!frames(&events, TrackKind::Audio).is_empty());
}
