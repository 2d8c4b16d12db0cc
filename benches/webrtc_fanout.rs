//! WebRTC fan-out: how many WHEP viewers of one 1.5 Mbit/s stream one origin serves on this machine,
//! and what each costs.
//!
//! Real processes on loopback: `estuary serve` (release build, WebRTC on, passthrough packaging), FFmpeg
//! publishing a 720p30 x264 `zerolatency` clip with AAC audio (encoded once before the run at
//! 1.5 Mbit/s, published with `-c copy`, looped), and the viewers in this process: str0m peers (ICE,
//! DTLS, SRTP; RTP mode, so nothing is depacketised or decoded), each on its own UDP socket, driven
//! by one tokio thread.
//!
//! For each N (default 10, 50, 100, 200, 300, 400): N viewers connect (5 ms apart), 3 s + 10 ms per
//! viewer to settle, then a 10 s window. Reported per N: the origin's CPU (% of one core, from /proc), its CPU per viewer, the
//! bit rate it sent (its `webrtc.bytes_sent`), the viewers' packet delivery in the window (unique
//! RTP sequence numbers received ÷ the span of sequence numbers, per SSRC, after NACK repair): the
//! worst viewer's and how many viewers got ≥ 99 %, and this process's CPU. The largest N with every
//! viewer at ≥ 99 % is the fan-out.
//!
//! Usage: `cargo bench --bench webrtc_fanout -- [N …]`. No peer in the same run: no other WebRTC
//! origin is packaged for this machine.

use std::{
    collections::{HashMap, HashSet},
    net::SocketAddr,
    path::Path,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use str0m::{
    Candidate, Event, Input, Output, RtcConfig,
    change::SdpAnswer,
    media::{Direction, MediaKind},
    net::{Protocol, Receive},
};
use testkit::{
    ffmpeg::publish_loop,
    http::{request_with, wait_for_200},
    process::{Estuary, EstuaryCommand, cpu_seconds},
};
use tokio::net::UdpSocket;

const API_TOKEN: &str = "webrtc-fanout-bench-token";

/// Packets seen in the window, per SSRC.
#[derive(Default)]
struct Received {
    counting: bool,
    seqs: HashMap<u32, HashSet<u64>>,
}

impl Received {
    /// Unique packets ÷ the sequence-number span, over every SSRC.
    fn delivery(&self) -> Option<f64> {
        let (mut got, mut span) = (0u64, 0u64);
        for seqs in self.seqs.values() {
            let (Some(lo), Some(hi)) = (seqs.iter().min(), seqs.iter().max()) else {
                continue;
            };
            got += seqs.len() as u64;
            span += hi - lo + 1;
        }
        (span > 0).then(|| got as f64 / span as f64)
    }
}

/// One viewer: POST an offer to `url`, then run until `stop`.
async fn viewer(
    url: String,
    received: Arc<Mutex<Received>>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> Result<(), String> {
    let socket = UdpSocket::bind("127.0.0.1:0")
        .await
        .map_err(|e| e.to_string())?;
    let local = socket.local_addr().map_err(|e| e.to_string())?;
    let mut rtc = RtcConfig::new().set_rtp_mode(true).build(Instant::now());
    rtc.add_local_candidate(Candidate::host(local, "udp").map_err(|e| e.to_string())?);
    let mut api = rtc.sdp_api();
    api.add_media(MediaKind::Video, Direction::RecvOnly, None, None, None);
    api.add_media(MediaKind::Audio, Direction::RecvOnly, None, None, None);
    let (offer, pending) = api.apply().ok_or("no offer")?;
    let r = request_with(
        "POST",
        &url,
        &[("content-type", "application/sdp")],
        Some(&offer.to_sdp_string()),
    )
    .await;
    if r.status != 201 {
        return Err(format!("{} {}", r.status, r.text()));
    }
    let answer = SdpAnswer::from_sdp_string(&r.text()).map_err(|e| e.to_string())?;
    rtc.sdp_api()
        .accept_answer(pending, answer)
        .map_err(|e| e.to_string())?;
    let mut buf = vec![0u8; 2048];
    loop {
        let timeout = loop {
            match rtc.poll_output().map_err(|e| e.to_string())? {
                Output::Timeout(t) => break t,
                Output::Transmit(t) => {
                    let _ = socket.try_send_to(&t.contents, t.destination);
                }
                Output::Event(Event::RtpPacket(p)) => {
                    let mut r = received.lock().unwrap();
                    if r.counting {
                        r.seqs.entry(*p.header.ssrc).or_default().insert(*p.seq_no);
                    }
                }
                Output::Event(_) => {}
            }
        };
        tokio::select! {
            _ = stop.changed() => return Ok(()),
            got = socket.recv_from(&mut buf) => {
                let (n, source) = got.map_err(|e| e.to_string())?;
                let Ok(contents) = buf[..n].try_into() else { continue };
                let _ = rtc.handle_input(Input::Receive(Instant::now(), Receive {
                    proto: Protocol::Udp, source, destination: local, contents,
                }));
            }
            _ = tokio::time::sleep_until(timeout.into()) => {
                let _ = rtc.handle_input(Input::Timeout(Instant::now()));
            }
        }
    }
}

async fn api_stream(http: SocketAddr) -> serde_json::Value {
    let r = request_with(
        "GET",
        &format!("http://{http}/api/streams/live/fanout"),
        &[("authorization", &format!("Bearer {API_TOKEN}"))],
        None,
    )
    .await;
    serde_json::from_slice(&r.body).unwrap_or_default()
}

fn own_cpu_seconds() -> f64 {
    cpu_seconds(std::process::id())
}

fn main() {
    let steps: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let steps = if steps.is_empty() {
        vec![10, 50, 100, 200, 300, 400]
    } else {
        steps
    };
    let clip = std::env::temp_dir().join(format!("webrtc-fanout-{}.flv", std::process::id()));
    let status = std::process::Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-f", "lavfi", "-i"])
        .arg("testsrc2=size=1280x720:rate=30:duration=20")
        .args([
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=440:sample_rate=48000:duration=20",
        ])
        .args([
            "-c:v",
            "libx264",
            "-preset",
            "veryfast",
            "-tune",
            "zerolatency",
        ])
        .args([
            "-b:v", "1400k", "-maxrate", "1500k", "-bufsize", "1500k", "-g", "60",
        ])
        .args([
            "-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "96k", "-f", "flv",
        ])
        .arg(&clip)
        .status()
        .expect("ffmpeg runs");
    assert!(status.success(), "the clip is encoded");
    let origin = Estuary::spawn(EstuaryCommand::bench(
        env!("CARGO_BIN_EXE_estuary"),
        &format!(
            "[webrtc]\nenabled = true\nudp_listen = \"127.0.0.1:0\"\nmax_sessions = 2000\n\
             max_sessions_per_stream = 2000\n[transcode]\nenabled = false\n[api]\ntoken = \"{API_TOKEN}\"\n\
             [auth]\nplayback = \"open\"\npublish = \"open\"\nsecret = \"webrtc fanout bench secret, 32 bytes or more\"\n"
        ),
    ));
    let _publisher = publish_loop(
        Path::new("ffmpeg"),
        &clip,
        &format!("rtmp://{}/live/fanout", origin.rtmp_addr),
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let http = origin.http_addr;
    let pid = origin.pid();
    rt.block_on(async move {
        assert!(
            wait_for_200(
                &format!("http://{http}/live/fanout/source/media.m3u8"),
                Duration::from_secs(30)
            )
            .await
            .is_some(),
            "the stream is served"
        );
        let url = format!("http://{http}/live/fanout/whep");
        println!(
            "| viewers | origin CPU (% of a core) | CPU per viewer (% of a core) | sent (Mbit/s) | worst viewer's delivery | viewers ≥ 99 % | bench CPU (%) |"
        );
        println!("|---:|---:|---:|---:|---:|---:|---:|");
        let mut fan_out = 0;
        for n in steps {
            let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
            let mut counters = Vec::new();
            let mut tasks = Vec::new();
            for _ in 0..n {
                let received = Arc::new(Mutex::new(Received::default()));
                counters.push(received.clone());
                tasks.push(tokio::spawn(viewer(url.clone(), received, stop_rx.clone())));
                // Offers spread a little, as viewers arrive.
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            tokio::time::sleep(Duration::from_secs(3) + Duration::from_millis(10 * n as u64)).await;
            let before = api_stream(http).await;
            let (cpu0, own0, t0) = (cpu_seconds(pid), own_cpu_seconds(), Instant::now());
            for c in &counters {
                c.lock().unwrap().counting = true;
            }
            tokio::time::sleep(Duration::from_secs(10)).await;
            for c in &counters {
                c.lock().unwrap().counting = false;
            }
            let (cpu1, own1, secs) = (cpu_seconds(pid), own_cpu_seconds(), t0.elapsed().as_secs_f64());
            let after = api_stream(http).await;
            let sessions = after["webrtc"]["sessions"].as_u64().unwrap_or(0);
            let bytes = after["webrtc"]["bytes_sent"].as_u64().unwrap_or(0)
                - before["webrtc"]["bytes_sent"].as_u64().unwrap_or(0);
            let deliveries: Vec<f64> = counters
                .iter()
                .map(|c| c.lock().unwrap().delivery().unwrap_or(0.0))
                .collect();
            let worst = deliveries.iter().copied().fold(1.0f64, f64::min);
            let good = deliveries.iter().filter(|d| **d >= 0.99).count();
            let silent = deliveries.iter().filter(|d| **d == 0.0).count();
            let cpu = (cpu1 - cpu0) / secs * 100.0;
            println!(
                "| {n} ({sessions} sessions, {silent} got nothing) | {cpu:.1} | {:.3} | {:.1} | {:.2} % | {good} | {:.1} |",
                cpu / n as f64,
                bytes as f64 * 8.0 / secs / 1e6,
                worst * 100.0,
                (own1 - own0) / secs * 100.0
            );
            if good == n {
                fan_out = n;
            }
            let _ = stop_tx.send(true);
            for t in tasks {
                match t.await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => eprintln!("viewer failed: {e}"),
                    Err(e) => eprintln!("viewer panicked: {e}"),
                }
            }
            // The origin ends the sessions when their peers go quiet (ICE timeout).
            let deadline = Instant::now() + Duration::from_secs(30);
            while Instant::now() < deadline
                && api_stream(http).await["webrtc"]["sessions"].as_u64().unwrap_or(0) > 0
            {
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
        println!("largest N with every viewer ≥ 99 %: {fan_out}");
    });
    let _ = std::fs::remove_file(&clip);
}
