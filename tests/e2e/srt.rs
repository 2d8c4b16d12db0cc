//! End to end over SRT: FFmpeg publishes MPEG-TS over SRT (libsrt 1.5 against our srt-tokio listener),
//! and the result is checked against an RTMP publish of the same clip, with several publishers at once,
//! through a lossy, delayed link, and played in hls.js.

use std::{
    net::SocketAddr,
    path::Path,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering::Relaxed},
    },
    time::Duration,
};

use crate::common::*;
use tokio::net::UdpSocket;

const FFMPEG: &str = "ffmpeg";

/// The FFmpeg caller URL that publishes `live/{name}` (SRT access-control stream ID, 200 ms latency).
fn publish_url(addr: SocketAddr, name: &str) -> String {
    srt_url(addr, &format!("#!::r=live/{name},m=publish"), "")
}

/// (CODECS, RESOLUTION, AUDIO group) of every variant stream of a multivariant playlist, parsed with
/// m3u8-rs.
fn variants(mv: &str) -> Vec<(String, String, String)> {
    let m3u8_rs::Playlist::MasterPlaylist(master) =
        m3u8_rs::parse_playlist_res(mv.as_bytes()).expect("multivariant parses")
    else {
        panic!("not a multivariant playlist: {mv}")
    };
    master
        .variants
        .iter()
        .map(|v| {
            (
                v.codecs.clone().unwrap_or_default(),
                v.resolution
                    .map(|r| format!("{}x{}", r.width, r.height))
                    .unwrap_or_default(),
                v.audio.clone().unwrap_or_default(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn srt_publish_matches_rtmp_and_plays_in_hls_js() {
    // A small ladder on both streams: the SRT path must reach the transcoder exactly like RTMP.
    let server = start_server(
        "[transcode]\nenabled = true\n\
         [[transcode.rungs]]\nname = \"source\"\ncopy = true\n\
         [[transcode.rungs]]\nname = \"360p\"\nheight = 360\nbitrate_bps = 700000\npreset = \"ultrafast\"\n",
    )
    .await;
    let clip = fixture("bbb-720p-2s-gop.mp4");
    let _srt = publish_srt_loop(&clip, &publish_url(server.srt_addr, "viasrt"));
    let _rtmp = publish_loop(
        Path::new(FFMPEG),
        &clip,
        &format!("rtmp://{}/live/viartmp", server.rtmp_addr),
    );
    let srt_base = format!("http://{}/live/viasrt/", server.http_addr);
    let rtmp_base = format!("http://{}/live/viartmp/", server.http_addr);
    let srt_mv = wait_for_200(&format!("{srt_base}index.m3u8"), Duration::from_secs(20))
        .await
        .expect("SRT stream's multivariant playlist")
        .text();
    let rtmp_mv = wait_for_200(&format!("{rtmp_base}index.m3u8"), Duration::from_secs(20))
        .await
        .expect("RTMP stream's multivariant playlist")
        .text();

    // Same renditions, codecs and resolutions whichever protocol carried the clip.
    let (sv, rv) = (variants(&srt_mv), variants(&rtmp_mv));
    assert_eq!(sv.len(), 2, "{srt_mv}");
    assert_eq!(sv, rv, "SRT:\n{srt_mv}\nRTMP:\n{rtmp_mv}");
    for rendition in ["source", "360p", "audio"] {
        let probe = |base: &str| {
            let url = format!("{base}{rendition}/media.m3u8");
            async move {
                probe_first(
                    &url,
                    None,
                    "stream=codec_name,profile,width,height,sample_rate,channels",
                )
                .await
            }
        };
        let (s, r) = (probe(&srt_base).await, probe(&rtmp_base).await);
        assert!(!s.is_empty(), "{rendition}: nothing probed");
        assert_eq!(s, r, "{rendition}: SRT {s} vs RTMP {r}");
    }

    // FFmpeg decodes it without errors.
    let out = ffmpeg_decode(&format!("{srt_base}index.m3u8"), Some(6)).await;
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // hls.js in low-latency mode plays the SRT stream without a stall.
    let url = format!("{srt_base}index.m3u8");
    let report = blocking(move || play_hls(&url, 15)).await;
    eprintln!("hls.js report (SRT publish): {report}");
    assert_eq!(report["ok"], true, "{report}");
    assert_eq!(report["stalls"], 0, "{report}");
    assert!(
        report["played_seconds"].as_f64().unwrap() >= 13.5,
        "{report}"
    );
    assert!(
        report["fatal_errors"].as_array().unwrap().is_empty(),
        "{report}"
    );
    eprintln!(
        "hls.js live latency over SRT: avg {} s",
        report["latency_avg"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_srt_publishers_and_one_rtmp_publisher_play_at_once() {
    let server = start_server("").await;
    let clip = fixture("bbb-720p-2s-gop.mp4");
    let small = fixture("camera-bikes-272p-h264-10s.mp4");
    let _a = publish_srt_loop(&clip, &publish_url(server.srt_addr, "srt-a"));
    let _b = publish_srt_loop(&small, &publish_url(server.srt_addr, "srt-b"));
    let _c = publish_loop(
        Path::new(FFMPEG),
        &clip,
        &format!("rtmp://{}/live/rtmp-c", server.rtmp_addr),
    );
    for (name, height) in [("srt-a", 720), ("srt-b", 272), ("rtmp-c", 720)] {
        let url = format!("http://{}/live/{name}/index.m3u8", server.http_addr);
        let mv = wait_for_200(&url, Duration::from_secs(20))
            .await
            .unwrap_or_else(|| panic!("{name}: no multivariant playlist"))
            .text();
        assert!(mv.contains(&format!("x{height}")), "{name}: {mv}");
    }
    // Let every stream build a few segments, then decode each (all three keep publishing meanwhile).
    tokio::time::sleep(Duration::from_secs(4)).await;
    for name in ["srt-a", "srt-b", "rtmp-c"] {
        let url = format!("http://{}/live/{name}/index.m3u8", server.http_addr);
        let out = ffmpeg_decode(&url, Some(4)).await;
        assert!(
            out.status.success() && out.stderr.is_empty(),
            "{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let facts = parse_media(
            &get(&format!(
                "http://{}/live/{name}/source/media.m3u8",
                server.http_addr
            ))
            .await
            .text(),
        );
        assert!(facts.segments.len() >= 2, "{name}: {:?}", facts.segments);
    }
}

/// A UDP relay standing in for a lossy WAN link: every datagram, in each direction, is dropped with
/// probability `loss` (deterministic pseudo-random sequence) and otherwise delivered after `delay`.
/// (This kernel has no `sch_netem`, so `tc netem` cannot be used; the relay does the same to the SRT
/// packets, in user space.)
struct LossyLink {
    addr: SocketAddr,
    dropped: Arc<AtomicU64>,
    forwarded: Arc<AtomicU64>,
}

impl LossyLink {
    async fn start(upstream: SocketAddr, loss: f64, delay: Duration) -> Self {
        let front = Arc::new(UdpSocket::bind("127.0.0.1:0").await.unwrap());
        let back = Arc::new(UdpSocket::bind("127.0.0.1:0").await.unwrap());
        back.connect(upstream).await.unwrap();
        let addr = front.local_addr().unwrap();
        let dropped = Arc::new(AtomicU64::new(0));
        let forwarded = Arc::new(AtomicU64::new(0));
        let client: Arc<std::sync::Mutex<Option<SocketAddr>>> = Arc::default();
        // xorshift64*, one generator per direction, fixed seeds.
        fn lose(state: &mut u64, loss: f64) -> bool {
            *state ^= *state >> 12;
            *state ^= *state << 25;
            *state ^= *state >> 27;
            let x = state.wrapping_mul(0x2545_f491_4f6c_dd1d);
            ((x >> 11) as f64 / (1u64 << 53) as f64) < loss
        }
        {
            let (front, back, client) = (front.clone(), back.clone(), client.clone());
            let (dropped, forwarded) = (dropped.clone(), forwarded.clone());
            tokio::spawn(async move {
                let mut rng = 0x9e37_79b9_7f4a_7c15u64;
                let mut buf = vec![0u8; 65_536];
                while let Ok((n, from)) = front.recv_from(&mut buf).await {
                    *client.lock().unwrap() = Some(from);
                    if lose(&mut rng, loss) {
                        dropped.fetch_add(1, Relaxed);
                        continue;
                    }
                    forwarded.fetch_add(1, Relaxed);
                    let (back, pkt) = (back.clone(), buf[..n].to_vec());
                    tokio::spawn(async move {
                        tokio::time::sleep(delay).await;
                        let _ = back.send(&pkt).await;
                    });
                }
            });
        }
        {
            let (dropped, forwarded) = (dropped.clone(), forwarded.clone());
            tokio::spawn(async move {
                let mut rng = 0xd1b5_4a32_d192_ed03u64;
                let mut buf = vec![0u8; 65_536];
                while let Ok(n) = back.recv(&mut buf).await {
                    let Some(to) = *client.lock().unwrap() else {
                        continue;
                    };
                    if lose(&mut rng, loss) {
                        dropped.fetch_add(1, Relaxed);
                        continue;
                    }
                    forwarded.fetch_add(1, Relaxed);
                    let (front, pkt) = (front.clone(), buf[..n].to_vec());
                    tokio::spawn(async move {
                        tokio::time::sleep(delay).await;
                        let _ = front.send_to(&pkt, to).await;
                    });
                }
            });
        }
        Self {
            addr,
            dropped,
            forwarded,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn srt_over_a_lossy_link_plays_without_a_stall() {
    let server = start_server("").await;
    // 2 % loss each way and 20 ms one-way delay (40 ms RTT); SRT latency 200 ms.
    let link = LossyLink::start(server.srt_addr, 0.02, Duration::from_millis(20)).await;
    let clip = fixture("bbb-720p-2s-gop.mp4");
    let _publisher = publish_srt_loop(&clip, &publish_url(link.addr, "lossy"));
    let base = format!("http://{}/live/lossy/", server.http_addr);
    wait_for_200(&format!("{base}index.m3u8"), Duration::from_secs(20))
        .await
        .expect("multivariant playlist over the lossy link");

    let url = format!("{base}index.m3u8");
    let report = blocking(move || play_hls_nice(&url, 22)).await;
    let (dropped, forwarded) = (link.dropped.load(Relaxed), link.forwarded.load(Relaxed));
    eprintln!(
        "lossy link: {dropped} of {} datagrams dropped ({:.2} %); hls.js report: {report}",
        dropped + forwarded,
        100.0 * dropped as f64 / (dropped + forwarded).max(1) as f64
    );
    assert!(dropped > 50, "the link dropped only {dropped} datagrams");
    assert_eq!(report["ok"], true, "{report}");
    assert_eq!(report["stalls"], 0, "{report}");
    assert!(
        report["played_seconds"].as_f64().unwrap() >= 20.0,
        "{report}"
    );
    // SRT's retransmissions repaired the loss: FFmpeg decodes the stream without an error.
    let out = ffmpeg_decode(&format!("{base}index.m3u8"), Some(6)).await;
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The RTMP lifecycle holds over SRT: a publisher that drops and comes back within the grace period
/// continues the same playlists after an EXT-X-DISCONTINUITY (msns continue), and one that stays away
/// ends them with EXT-X-ENDLIST.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn srt_reconnect_continues_after_a_discontinuity_and_the_stream_ends_after_the_grace_period()
{
    let server = start_server("[streams]\nreconnect_grace = \"15s\"\n").await;
    let clip = fixture("bbb-720p-2s-gop.mp4");
    let url = publish_url(server.srt_addr, "srtlife");
    let base = format!("http://{}/live/srtlife/", server.http_addr);
    let mut first = publish_srt_loop(&clip, &url);
    wait_for_200(&format!("{base}index.m3u8"), Duration::from_secs(20))
        .await
        .expect("ready");
    tokio::time::sleep(Duration::from_secs(3)).await;
    first.kill();
    let before = parse_media(&get(&format!("{base}source/media.m3u8")).await.text());
    let last = before.segments.last().expect("segments").0;
    assert!(!before.has_endlist);

    // Back within the grace period, retrying like an encoder's auto-reconnect: a killed caller sends no
    // shutdown, so the origin holds the name until SRT's peer idle timeout notices it is gone, and
    // refuses the newcomer until then.
    let started = std::time::Instant::now();
    let mut again = loop {
        let mut p = publish_srt_loop(&clip, &url);
        tokio::time::sleep(Duration::from_secs(1)).await;
        if p.0.try_wait().unwrap().is_none() {
            break p;
        }
        p.kill();
        assert!(
            started.elapsed() < Duration::from_secs(12),
            "the reconnecting publisher was refused for 12 s"
        );
    };
    eprintln!(
        "SRT reconnect accepted {:.1} s after the first publisher was killed",
        started.elapsed().as_secs_f64()
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    let text = loop {
        let text = get(&format!("{base}source/media.m3u8")).await.text();
        if text.contains("#EXT-X-DISCONTINUITY\n")
            && parse_media(&text).segments.iter().any(|s| s.0 > last + 1)
        {
            break text;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no discontinuity after the SRT reconnect:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let msns: Vec<u64> = parse_media(&text).segments.iter().map(|s| s.0).collect();
    assert!(msns.windows(2).all(|w| w[1] == w[0] + 1), "msns {msns:?}");
    let out = ffmpeg_decode(&format!("{base}index.m3u8"), Some(4)).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Gone for longer than the grace period: the playlists end.
    again.kill();
    let deadline = std::time::Instant::now() + Duration::from_secs(40);
    loop {
        let text = get(&format!("{base}source/media.m3u8")).await.text();
        if text.contains("#EXT-X-ENDLIST") {
            assert!(!text.contains("PRELOAD-HINT"), "{text}");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the stream did not end:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
