//! Many origins as one service: `redis-server` and `estuary serve` nodes as real processes on loopback.
//! A publish claims its name in the store; a second publisher for that name on another node is refused
//! as on one origin while the first keeps going; the claim is released when the stream ends, and runs
//! out when its node is killed; without the store live streams go on and new publishes are refused until
//! it returns.

use std::{path::Path, time::Duration};

use crate::common::*;
use testkit::redis::Redis;

/// A node of a cluster on `redis` with a 3 s lease and a 2 s reconnect grace.
fn node(redis: &Redis, id: &str) -> EstuaryProcess {
    EstuaryProcess::start(&format!(
        "[cluster]\nenabled = true\nredis_url = \"{}\"\nnode_id = \"{id}\"\nlease = \"3s\"\nheartbeat = \"1s\"\n\
         [streams]\nreconnect_grace = \"2s\"\n",
        redis.url()
    ))
}

fn owner_key(stream: &str) -> String {
    format!("estuary:stream:{stream}:owner")
}

/// Poll `f` every 100 ms until it is true or `timeout` passes.
fn eventually(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + timeout;
    while std::time::Instant::now() < deadline {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_name_is_owned_by_one_node_until_its_stream_ends_or_its_lease_runs_out_and_survives_a_store_outage()
 {
    let clip = fixture("camera-bikes-272p-h264-10s.mp4");
    let (redis, a, b) = blocking(|| {
        let redis = Redis::start();
        let a = node(&redis, "node-a");
        let b = node(&redis, "node-b");
        (redis, a, b)
    })
    .await;
    let ffmpeg = Path::new("ffmpeg");

    // A publish on node A claims the name.
    let mut first = publish_loop(ffmpeg, &clip, &format!("rtmp://{}/live/one", a.rtmp_addr));
    let a_playlist = format!("http://{}/live/one/source/media.m3u8", a.http_addr);
    assert!(
        wait_for_200(&a_playlist, Duration::from_secs(20))
            .await
            .is_some(),
        "node A serves its stream"
    );
    assert_eq!(
        redis.command(&["GET", &owner_key("live/one")]).as_deref(),
        Some("node-a")
    );

    // The same name on node B is refused, with the reason in B's log, while A's stream goes on.
    let before = parse_media(&get(&a_playlist).await.text()).preload_hint;
    let mut second = blocking({
        let url = format!("rtmp://{}/live/one", b.rtmp_addr);
        move || {
            let mut p = publish_loop(
                Path::new("ffmpeg"),
                &fixture("camera-bikes-272p-h264-10s.mp4"),
                &url,
            );
            let exited = eventually(Duration::from_secs(10), || {
                matches!(p.0.try_wait(), Ok(Some(_)))
            });
            (p, exited)
        }
    })
    .await;
    assert!(second.1, "the second publisher was disconnected");
    second.0.kill();
    let refusal = b
        .wait_for_line(
            &["live/one", "already being published"],
            Duration::from_secs(5),
        )
        .unwrap_or_else(|| panic!("node B logs the refusal:\n{}", b.log()));
    assert!(refusal.contains("live/one"), "{refusal}");
    assert_eq!(
        get(&format!(
            "http://{}/live/one/source/media.m3u8",
            b.http_addr
        ))
        .await
        .status,
        404,
        "node B does not serve the refused stream"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = parse_media(&get(&a_playlist).await.text());
    assert!(
        !after.has_endlist && after.preload_hint != before,
        "node A's stream keeps going (preload hint {before:?} -> {:?})",
        after.preload_hint
    );
    assert_eq!(
        redis.command(&["GET", &owner_key("live/one")]).as_deref(),
        Some("node-a"),
        "the claim stays with node A"
    );

    // The publisher leaves; after the grace period the stream ends and node A releases the name, so
    // node B may take it.
    first.kill();
    let released = blocking({
        let key = owner_key("live/one");
        move || {
            let ok = eventually(Duration::from_secs(10), || {
                redis.command(&["GET", &key]).is_none()
            });
            (redis, ok)
        }
    })
    .await;
    let redis = released.0;
    assert!(released.1, "node A released live/one when its stream ended");
    let mut third = publish_loop(ffmpeg, &clip, &format!("rtmp://{}/live/one", b.rtmp_addr));
    assert!(
        wait_for_200(
            &format!("http://{}/live/one/source/media.m3u8", b.http_addr),
            Duration::from_secs(20)
        )
        .await
        .is_some(),
        "node B serves live/one once node A released it"
    );
    assert_eq!(
        redis.command(&["GET", &owner_key("live/one")]).as_deref(),
        Some("node-b")
    );
    third.kill();

    // A node killed with SIGKILL stops renewing: its names free up when their leases run out (3 s).
    let mut on_a = publish_loop(ffmpeg, &clip, &format!("rtmp://{}/live/two", a.rtmp_addr));
    assert!(
        wait_for_200(
            &format!("http://{}/live/two/source/media.m3u8", a.http_addr),
            Duration::from_secs(20)
        )
        .await
        .is_some()
    );
    let ttl: i64 = redis
        .command(&["PTTL", &owner_key("live/two")])
        .and_then(|t| t.parse().ok())
        .unwrap_or(-1);
    assert!(
        (1..=3000).contains(&ttl),
        "the claim carries the lease as its expiry: {ttl} ms"
    );
    let (mut a, redis) = blocking(move || {
        let mut a = a;
        a.kill_now();
        (a, redis)
    })
    .await;
    on_a.kill();
    assert!(!a.is_running());
    let expired = blocking({
        let key = owner_key("live/two");
        move || {
            let ok = eventually(Duration::from_secs(6), || {
                redis.command(&["GET", &key]).is_none()
            });
            (redis, ok)
        }
    })
    .await;
    assert!(expired.1, "the dead node's claim ran out with its lease");
    let mut on_b = publish_loop(ffmpeg, &clip, &format!("rtmp://{}/live/two", b.rtmp_addr));
    assert!(
        wait_for_200(
            &format!("http://{}/live/two/source/media.m3u8", b.http_addr),
            Duration::from_secs(20)
        )
        .await
        .is_some(),
        "node B takes live/two over"
    );

    // The store goes away: the live stream goes on, a new publish is refused with the reason; when the
    // store returns (empty, as after a restart without persistence) the live stream's claim is taken
    // back and new publishes are accepted again, without restarting the node.
    let mut redis = expired.0;
    let port = redis.addr.port();
    redis.kill();
    let b_two = format!("http://{}/live/two/source/media.m3u8", b.http_addr);
    let before = parse_media(&get(&b_two).await.text()).preload_hint;
    let refused = blocking({
        let url = format!("rtmp://{}/live/three", b.rtmp_addr);
        move || {
            let mut p = publish_loop(
                Path::new("ffmpeg"),
                &fixture("camera-bikes-272p-h264-10s.mp4"),
                &url,
            );
            let exited = eventually(Duration::from_secs(15), || {
                matches!(p.0.try_wait(), Ok(Some(_)))
            });
            p.kill();
            exited
        }
    })
    .await;
    assert!(
        refused,
        "a new publish is refused while the store is unreachable"
    );
    assert!(
        b.wait_for_line(
            &["live/three", "cluster store unreachable"],
            Duration::from_secs(5)
        )
        .is_some(),
        "node B logs why:\n{}",
        b.log()
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = parse_media(&get(&b_two).await.text());
    assert!(
        !after.has_endlist && after.preload_hint != before,
        "live/two keeps going without the store ({before:?} -> {:?})",
        after.preload_hint
    );
    let redis = blocking(move || Redis::start_on(port)).await;
    let reclaimed = blocking({
        let key = owner_key("live/two");
        move || {
            let ok = eventually(Duration::from_secs(10), || {
                redis.command(&["GET", &key]).as_deref() == Some("node-b")
            });
            (redis, ok)
        }
    })
    .await;
    assert!(
        reclaimed.1,
        "node B took its claim back when the store returned"
    );
    let mut three = publish_loop(ffmpeg, &clip, &format!("rtmp://{}/live/three", b.rtmp_addr));
    assert!(
        wait_for_200(
            &format!("http://{}/live/three/source/media.m3u8", b.http_addr),
            Duration::from_secs(20)
        )
        .await
        .is_some(),
        "new publishes are accepted again"
    );
    three.kill();
    on_b.kill();
    drop(reclaimed.0);
}
