//! Many origins as one service: `redis-server` and `estuary serve` nodes as real processes on loopback.
//! A publish claims its name in the store; any node answers for the stream (a node that does not own
//! it proxies to the owner: the owner's bytes, blocking reloads and preload hints included, the viewer's
//! token checked on the first node); a second publisher for that name on another node is refused as on
//! one origin while the first keeps going; the nodes list themselves, placement never picks a draining
//! node, and a drained node says so; the claim is released when the stream ends, and runs out when its
//! node is killed, the next node continuing the stream's media sequence numbers from the store, after a
//! discontinuity; without the store live streams go on and new publishes are refused until it returns.

use std::{path::Path, time::Duration};

use crate::common::*;
use testkit::redis::Redis;

/// The clip every publisher of the test loops.
const CLIP: &str = "camera-bikes-272p-h264-10s.mp4";

/// A node of a cluster on `redis` with a 3 s lease, 1 s heartbeats, a 2 s reconnect grace and
/// playback tokens.
fn node(redis: &Redis, id: &str) -> EstuaryProcess {
    EstuaryProcess::start(&format!(
        "[cluster]\nenabled = true\nredis_url = \"{}\"\nnode_id = \"{id}\"\nlease = \"3s\"\nheartbeat = \"1s\"\n\
         [streams]\nreconnect_grace = \"2s\"\n\
         [auth]\nplayback = \"token\"\npublish = \"open\"\nsecret = \"{TEST_SECRET}\"\n\
         [encryption.streams]\n\"live/two\" = true\n",
        redis.url()
    ))
}

/// `http://{node}/t/{token}/{stream}/`.
fn base(node: &EstuaryProcess, stream: &str) -> String {
    format!(
        "http://{}/t/{}/{stream}/",
        node.http_addr,
        test_token(stream)
    )
}

/// An API call with the test API token.
async fn api(method: &str, node: &EstuaryProcess, path: &str) -> (u16, serde_json::Value) {
    let auth = format!("Bearer {}", test_api_token());
    let r = request_with(
        method,
        &format!("http://{}{path}", node.http_addr),
        &[("authorization", &auth)],
        None,
    )
    .await;
    let value = serde_json::from_slice(&r.body).unwrap_or(serde_json::Value::Null);
    (r.status.as_u16(), value)
}

/// The playlist's EXT-X-DISCONTINUITY-SEQUENCE (0 when absent).
fn discontinuity_sequence(text: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix("#EXT-X-DISCONTINUITY-SEQUENCE:"))
        .map_or(0, |v| v.trim().parse().unwrap())
}

fn owner_key(stream: &str) -> String {
    format!("estuary:stream:{stream}:owner")
}

/// Whether the publisher `start` makes is refused: its FFmpeg exits within `within` (it is killed
/// either way).
async fn refused(start: impl FnOnce() -> Proc + Send + 'static, within: Duration) -> bool {
    blocking(move || {
        let mut p = start();
        let exited = eventually(within, || matches!(p.0.try_wait(), Ok(Some(_))));
        p.kill();
        exited
    })
    .await
}

/// Poll async `f` every 100 ms until it is true or `timeout` passes.
async fn eventually_async<F: std::future::Future<Output = bool>>(
    timeout: Duration,
    mut f: impl FnMut() -> F,
) -> bool {
    let deadline = std::time::Instant::now() + timeout;
    while std::time::Instant::now() < deadline {
        if f().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
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
async fn any_node_answers_for_a_stream_owned_by_one_node_until_it_ends_or_its_node_dies_and_the_next_owner_continues_its_numbering()
 {
    let clip = fixture(CLIP);
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
    let (a_one, b_one) = (base(&a, "live/one"), base(&b, "live/one"));
    let a_playlist = format!("{a_one}source/media.m3u8");
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

    // Node B answers for it with node A's bytes: the multivariant playlist, a segment (same body, same
    // cache headers), a blocking reload and a preload-hint part that B waits for on A.
    let from_a = get(&format!("{a_one}index.m3u8")).await;
    let from_b = get(&format!("{b_one}index.m3u8")).await;
    assert_eq!(from_b.status, 200, "{}", from_b.text());
    assert_eq!(
        from_b.body, from_a.body,
        "the proxied multivariant playlist"
    );
    let media = parse_media(&get(&format!("{b_one}source/media.m3u8")).await.text());
    let (msn, _, uri) = media.segments.last().cloned().expect("a complete segment");
    let (seg_a, seg_b) = (
        get(&format!("{a_one}source/{uri}")).await,
        get(&format!("{b_one}source/{uri}")).await,
    );
    assert_eq!(seg_b.status, 200);
    assert!(
        !seg_b.body.is_empty() && seg_b.body == seg_a.body,
        "segment {msn}: the owner's bytes"
    );
    for h in ["content-type", "content-length"] {
        assert_eq!(seg_b.header(h), seg_a.header(h), "{h}");
    }
    assert!(
        seg_b.header("cache-control").contains("immutable"),
        "{}",
        seg_b.header("cache-control")
    );
    let next = media.segments.last().unwrap().0 + 2;
    let blocked = get(&format!("{b_one}source/media.m3u8?_HLS_msn={next}")).await;
    assert_eq!(blocked.status, 200);
    assert!(
        parse_media(&blocked.text())
            .segments
            .iter()
            .any(|s| s.0 >= next)
            || blocked.text().contains(&format!("{next}.")),
        "the blocking reload through B waited for msn {next}:\n{}",
        blocked.text()
    );
    let hint = parse_media(&blocked.text())
        .preload_hint
        .expect("a preload hint");
    let part = get(&format!("{b_one}source/{hint}")).await;
    assert_eq!(part.status, 200);
    assert_eq!(
        part.body,
        get(&format!("{a_one}source/{hint}")).await.body,
        "the hinted part {hint}"
    );
    // The viewer's token is checked on the first node; unknown streams are 404 anywhere.
    let no_token = get(&format!("http://{}/live/one/index.m3u8", b.http_addr)).await;
    assert_eq!(no_token.status, 401);
    assert_eq!(
        get(&format!("{}index.m3u8", base(&b, "live/nothing")))
            .await
            .status,
        404
    );

    // The nodes list themselves and their streams.
    let b_ref = &b;
    let listed = eventually_async(Duration::from_secs(5), || async {
        let (status, v) = api("GET", b_ref, "/api/cluster").await;
        status == 200
            && v["nodes"].as_array().is_some_and(|n| n.len() == 2)
            && v["nodes"][0]["node_id"] == "node-a"
            && v["nodes"][0]["streams"][0] == "live/one"
            && v["nodes"][0]["load"]["publishing"] == 1
    })
    .await;
    assert!(
        listed,
        "GET /api/cluster: {:?}",
        api("GET", &b, "/api/cluster").await
    );

    // The same name on node B is refused, with the reason in B's log, while A's stream goes on.
    let before = parse_media(&get(&a_playlist).await.text()).preload_hint;
    let url = format!("rtmp://{}/live/one", b.rtmp_addr);
    let second = refused(
        move || publish_loop(Path::new("ffmpeg"), &fixture(CLIP), &url),
        Duration::from_secs(10),
    )
    .await;
    assert!(second, "the second publisher was disconnected");
    let refusal = b
        .wait_for_line(
            &["live/one", "already being published"],
            Duration::from_secs(5),
        )
        .unwrap_or_else(|| panic!("node B logs the refusal:\n{}", b.log()));
    assert!(refusal.contains("live/one"), "{refusal}");
    // Over SRT too (rejection 2409, as on one origin).
    let url = srt_url(b.srt_addr, "#!::r=live/one,m=publish", "");
    let srt_refused = refused(
        move || publish_srt_loop(&fixture(CLIP), &url),
        Duration::from_secs(10),
    )
    .await;
    assert!(srt_refused, "a second SRT publisher on node B is refused");
    assert!(
        b.wait_for_line(
            &["srt", "live/one", "already being published"],
            Duration::from_secs(5)
        )
        .is_some(),
        "node B logs the SRT refusal:\n{}",
        b.log()
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

    // Placement: a live stream's publisher is sent back to its owner; a new one to a node that takes
    // publishes. Node A drains: it refuses new streams, leaves placement and /readyz, keeps live/one.
    let (status, placed) = api("GET", &b, "/api/ingest/live/one").await;
    assert_eq!(status, 200, "{placed}");
    assert_eq!(placed["node"], "node-a");
    assert_eq!(placed["live"], true);
    let rtmp_url = placed["rtmp"].as_str().unwrap();
    assert!(
        rtmp_url.starts_with(&format!("rtmp://{}/live/one?key=", a.rtmp_addr)),
        "{rtmp_url}"
    );
    assert_eq!(api("POST", &a, "/api/node/drain").await.0, 202);
    let ready = get(&format!("http://{}/readyz", a.http_addr)).await;
    assert_eq!(
        (ready.status.as_u16(), ready.text().trim()),
        (503, "draining")
    );
    let drained_out = eventually_async(Duration::from_secs(5), || async {
        api("GET", b_ref, "/api/cluster").await.1["nodes"][0]["state"] == "draining"
    })
    .await;
    assert!(drained_out, "the registry shows node A draining");
    for _ in 0..4 {
        let (status, placed) = api("GET", &a, "/api/ingest/live/fresh").await;
        assert_eq!(
            (status, placed["node"].as_str()),
            (200, Some("node-b")),
            "{placed}"
        );
    }
    let url = format!("rtmp://{}/live/fresh", a.rtmp_addr);
    let refused_on_a = refused(
        move || publish_loop(Path::new("ffmpeg"), &fixture(CLIP), &url),
        Duration::from_secs(10),
    )
    .await;
    assert!(refused_on_a, "a draining node refuses a new stream");
    assert!(
        a.wait_for_line(&["live/fresh", "node draining"], Duration::from_secs(5))
            .is_some(),
        "{}",
        a.log()
    );

    // The publisher leaves; after the grace period the stream ends and node A releases the name (and
    // reports drained), so node B may take it.
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
    let ready = get(&format!("http://{}/readyz", a.http_addr)).await;
    assert_eq!(
        (ready.status.as_u16(), ready.text().trim()),
        (503, "drained")
    );
    assert_eq!(api("DELETE", &a, "/api/node/drain").await.0, 202);
    assert_eq!(
        get(&format!("http://{}/readyz", a.http_addr)).await.status,
        200
    );
    let mut third = publish_loop(ffmpeg, &clip, &format!("rtmp://{}/live/one", b.rtmp_addr));
    assert!(
        wait_for_200(
            &format!("{b_one}source/media.m3u8"),
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

    // A node killed with SIGKILL stops renewing: its names free up when their leases run out (3 s);
    // meanwhile the other node answers 503 (cached for a second). The next node to publish the stream
    // continues its media sequence numbers from the store (above the clock's), after a discontinuity.
    let mut on_a = publish_loop(ffmpeg, &clip, &format!("rtmp://{}/live/two", a.rtmp_addr));
    let (a_two, b_two_base) = (base(&a, "live/two"), base(&b, "live/two"));
    assert!(
        wait_for_200(
            &format!("{a_two}source/media.m3u8"),
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
    let on_a_text = get(&format!("{b_two_base}source/media.m3u8")).await.text();
    let last_on_a = parse_media(&on_a_text).segments.last().expect("segments").0;
    assert_eq!(discontinuity_sequence(&on_a_text), 0);
    // live/two is encrypted: its content keys are in the store, sealed, never in the clear.
    let key_url = {
        let uri = on_a_text
            .lines()
            .find_map(|l| l.strip_prefix("#EXT-X-KEY:").and_then(|a| attr(a, "URI")))
            .expect("an EXT-X-KEY");
        let playlist_path = format!("/t/{}/live/two/source/media.m3u8", test_token("live/two"));
        format!(
            "http://{}{}",
            b.http_addr,
            testkit::load::playlist::resolve(&playlist_path, &uri)
        )
    };
    let key_from_a = get(&key_url).await;
    assert_eq!(
        (key_from_a.status.as_u16(), key_from_a.body.len()),
        (200, 16),
        "{key_url}"
    );
    let sealed = redis
        .command(&["GET", "estuary:stream:live/two:keys"])
        .expect("live/two's keys are in the store");
    let key_hex: String = key_from_a.body.iter().map(|b| format!("{b:02x}")).collect();
    assert!(
        sealed.starts_with("v1.") && !sealed.contains(&key_hex),
        "sealed, not plain"
    );
    let (mut a, redis) = blocking(move || {
        let mut a = a;
        a.kill_now();
        (a, redis)
    })
    .await;
    on_a.kill();
    assert!(!a.is_running());
    let gone = get(&format!("{b_two_base}source/media.m3u8")).await;
    assert_eq!(gone.status, 503, "the owner is dead, its lease not yet out");
    assert_eq!(gone.header("cache-control"), "public, max-age=1");
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
    // Nobody owns it now, but its node did not end it: players are told to retry (503), not that it
    // is gone, while its publisher may come back on another node.
    assert_eq!(
        get(&format!("{b_two_base}source/media.m3u8")).await.status,
        503
    );
    let reserved: u64 = expired
        .0
        .command(&["HGET", "estuary:stream:live/two:sequence", "msn"])
        .and_then(|v| v.parse().ok())
        .expect("the store holds live/two's msn reservation");
    assert!(
        reserved > last_on_a,
        "reserved {reserved} > used {last_on_a}"
    );
    let mut on_b = publish_loop(ffmpeg, &clip, &format!("rtmp://{}/live/two", b.rtmp_addr));
    let b_two = format!("{b_two_base}source/media.m3u8");
    let taken = wait_for_200(&b_two, Duration::from_secs(20))
        .await
        .expect("node B takes live/two over")
        .text();
    assert_eq!(
        parse_media(&taken).media_sequence,
        reserved,
        "node B continues at the store's reservation (the clock is lower):\n{taken}"
    );
    assert_eq!(discontinuity_sequence(&taken), 1, "after a discontinuity");
    let key_after = get(&key_url).await;
    assert_eq!(key_after.status, 200, "node B serves node A's content key");
    assert_eq!(key_after.body, key_from_a.body, "the same key");

    // The store goes away: the live stream goes on, a new publish is refused with the reason; when the
    // store returns (empty, as after a restart without persistence) the live stream's claim is taken
    // back and new publishes are accepted again, without restarting the node.
    let mut redis = expired.0;
    let port = redis.addr.port();
    redis.kill();
    let before = parse_media(&get(&b_two).await.text()).preload_hint;
    let url = format!("rtmp://{}/live/three", b.rtmp_addr);
    let refused_during_outage = refused(
        move || publish_loop(Path::new("ffmpeg"), &fixture(CLIP), &url),
        Duration::from_secs(15),
    )
    .await;
    assert!(
        refused_during_outage,
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
            &format!("{}source/media.m3u8", base(&b, "live/three")),
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
