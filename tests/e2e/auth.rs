//! Access control end to end: playback tokens over HTTP (the whole refusal matrix, the trusted edge, the
//! CDN's token check), token URLs printed by `estuary token` played by hls.js and FFmpeg until they
//! expire, and publish authorisation (publish keys and the webhook) against real RTMP and SRT publishers
//! (Debian's FFmpeg with librtmp-free RTMP and libsrt).
use std::{
    collections::BTreeMap,
    path::Path,
    process::Command,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use crate::common::*;
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use bytes::Bytes;
use estuary::auth::{Denial, TokenClaims, unix_now_s};
use http_body_util::{BodyExt, Full};
use hyper::StatusCode;

const FFMPEG: &str = "ffmpeg";
const CLIP: &str = "bbb-720p-2s-gop.mp4";
const SECRET: &str = "auth test secret, at least thirty-two bytes";
const EDGE: &str = "edge-shared-secret-0123456789";

/// A request with extra headers and an optional body.
async fn fetch(method: &str, url: &str, headers: &[(&str, &str)], body: Option<&str>) -> Fetched {
    request_with(method, url, headers, body).await
}

fn claims(scope: &str) -> TokenClaims {
    TokenClaims {
        scope: scope.into(),
        expires_unix_s: unix_now_s() + 600,
        not_before_unix_s: None,
        client_ip: None,
    }
}

/// `token` with one character of its signature changed.
fn flip_signature(token: &str) -> String {
    let (text, sig) = token.split_once('.').unwrap();
    let mut s = sig.as_bytes().to_vec();
    s[5] = if s[5] == b'A' { b'B' } else { b'A' };
    format!("{text}.{}", String::from_utf8(s).unwrap())
}

/// `token` with its claims rewritten to a wider scope (`live/`) and a later expiry, signature kept.
fn tamper_claims(token: &str) -> String {
    let (text, sig) = token.split_once('.').unwrap();
    let claims = String::from_utf8(URL_SAFE_NO_PAD.decode(text).unwrap()).unwrap();
    let forged = claims.replace("s=live/locked", "s=live/");
    assert_ne!(forged, claims);
    format!("{}.{sig}", URL_SAFE_NO_PAD.encode(forged))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn playback_tokens_follow_the_auth_matrix_and_keep_objects_identical_for_every_viewer() {
    let server = start_server(&format!(
        "[auth]\nplayback = \"token\"\npublish = \"open\"\nsecret = \"{SECRET}\"\n\
         trusted_edge_secret = \"{EDGE}\"\n[encryption.streams]\n\"live/locked\" = true\n"
    ))
    .await;
    let addr = server.http_addr;
    let _publisher = publish_loop(
        Path::new(FFMPEG),
        &fixture(CLIP),
        &format!("rtmp://{}/live/locked", server.rtmp_addr),
    );
    let auth = server.auth.clone();
    let good = auth.sign(&claims("live/locked"));
    let other_viewer = auth.sign(&TokenClaims {
        expires_unix_s: unix_now_s() + 900,
        ..claims("live/locked")
    });
    assert_ne!(good, other_viewer);
    let base = |t: &str| format!("http://{addr}/t/{t}/live/locked/");
    let open = format!("http://{addr}/live/locked/");
    wait_for_200(
        &format!("{}source/media.m3u8", base(&good)),
        Duration::from_secs(20),
    )
    .await
    .expect("media playlist with a token");
    tokio::time::sleep(Duration::from_secs(5)).await;
    let text = get(&format!("{}source/media.m3u8", base(&good)))
        .await
        .text();
    let facts = parse_media(&text);
    let segment = facts
        .segments
        .first()
        .expect("a complete segment")
        .2
        .clone();
    let part = facts.parts.first().expect("a part").1.clone();
    let init = format!("source/{}", facts.map_uri);
    let key = text
        .lines()
        .find_map(|l| l.split("URI=\"../").nth(1))
        .and_then(|r| r.split('"').next())
        .expect("an EXT-X-KEY URI")
        .to_owned();
    let segment = format!("source/{segment}");
    let part = format!("source/{part}");

    // (case, URL, headers, status, refusal counted)
    type Case<'a> = (
        &'a str,
        String,
        &'a [(&'a str, &'a str)],
        StatusCode,
        Option<Denial>,
    );
    let edge_ok: &[(&str, &str)] = &[("x-estuary-edge", EDGE)];
    let edge_bad: &[(&str, &str)] = &[("x-estuary-edge", "edge-shared-secret-guessed!!")];
    let expired = auth.sign(&TokenClaims {
        expires_unix_s: unix_now_s() - 1,
        ..claims("live/locked")
    });
    let not_yet = auth.sign(&TokenClaims {
        not_before_unix_s: Some(unix_now_s() + 600),
        ..claims("live/locked")
    });
    let bound_here = auth.sign(&TokenClaims {
        client_ip: Some("127.0.0.1".parse().unwrap()),
        ..claims("live/locked")
    });
    let bound_elsewhere = auth.sign(&TokenClaims {
        client_ip: Some("192.0.2.10".parse().unwrap()),
        ..claims("live/locked")
    });
    let other_server = estuary::auth::Auth::with_secret(
        &estuary::auth::AuthConfig::default(),
        b"some other origin's secret, 32+ bytes",
    )
    .sign(&claims("live/locked"));
    let none: &[(&str, &str)] = &[];
    let cases: Vec<Case> = vec![
        (
            "valid: multivariant",
            format!("{}index.m3u8", base(&good)),
            none,
            StatusCode::OK,
            None,
        ),
        (
            "valid: media playlist",
            format!("{}source/media.m3u8", base(&good)),
            none,
            StatusCode::OK,
            None,
        ),
        (
            "valid: MPD",
            format!("{}manifest.mpd", base(&good)),
            none,
            StatusCode::OK,
            None,
        ),
        (
            "valid: init",
            format!("{}{init}", base(&good)),
            none,
            StatusCode::OK,
            None,
        ),
        (
            "valid: segment",
            format!("{}{segment}", base(&good)),
            none,
            StatusCode::OK,
            None,
        ),
        (
            "valid: part",
            format!("{}{part}", base(&good)),
            none,
            StatusCode::OK,
            None,
        ),
        (
            "valid: key",
            format!("{}{key}", base(&good)),
            none,
            StatusCode::OK,
            None,
        ),
        (
            "no token",
            format!("{open}index.m3u8"),
            none,
            StatusCode::UNAUTHORIZED,
            Some(Denial::Missing),
        ),
        (
            "no token: segment",
            format!("{open}{segment}"),
            none,
            StatusCode::UNAUTHORIZED,
            Some(Denial::Missing),
        ),
        (
            "key URI without token",
            format!("{open}{key}"),
            none,
            StatusCode::UNAUTHORIZED,
            Some(Denial::Missing),
        ),
        (
            "bad signature",
            format!("{}index.m3u8", base(&flip_signature(&good))),
            none,
            StatusCode::FORBIDDEN,
            Some(Denial::BadSignature),
        ),
        (
            "tampered claims",
            format!("{}index.m3u8", base(&tamper_claims(&good))),
            none,
            StatusCode::FORBIDDEN,
            Some(Denial::BadSignature),
        ),
        (
            "another origin's secret",
            format!("{}index.m3u8", base(&other_server)),
            none,
            StatusCode::FORBIDDEN,
            Some(Denial::BadSignature),
        ),
        (
            "garbage token",
            format!("{}index.m3u8", base("not-a-token")),
            none,
            StatusCode::FORBIDDEN,
            Some(Denial::Malformed),
        ),
        (
            "expired",
            format!("{}index.m3u8", base(&expired)),
            none,
            StatusCode::FORBIDDEN,
            Some(Denial::Expired),
        ),
        (
            "not yet valid",
            format!("{}index.m3u8", base(&not_yet)),
            none,
            StatusCode::FORBIDDEN,
            Some(Denial::NotYetValid),
        ),
        (
            "other stream",
            format!("{}index.m3u8", base(&auth.sign(&claims("live/other")))),
            none,
            StatusCode::FORBIDDEN,
            Some(Denial::OutOfScope),
        ),
        (
            "wrong prefix",
            format!("{}index.m3u8", base(&auth.sign(&claims("vod/")))),
            none,
            StatusCode::FORBIDDEN,
            Some(Denial::OutOfScope),
        ),
        (
            "prefix live/",
            format!("{}index.m3u8", base(&auth.sign(&claims("live/")))),
            none,
            StatusCode::OK,
            None,
        ),
        (
            "bound to this client",
            format!("{}index.m3u8", base(&bound_here)),
            none,
            StatusCode::OK,
            None,
        ),
        (
            "bound to another client",
            format!("{}index.m3u8", base(&bound_elsewhere)),
            none,
            StatusCode::FORBIDDEN,
            Some(Denial::WrongClient),
        ),
        (
            "trusted edge, right header, no token",
            format!("{open}index.m3u8"),
            edge_ok,
            StatusCode::OK,
            None,
        ),
        (
            "trusted edge, right header, key without token",
            format!("{open}{key}"),
            edge_ok,
            StatusCode::OK,
            None,
        ),
        (
            "trusted edge, wrong header, valid token",
            format!("{}index.m3u8", base(&good)),
            edge_bad,
            StatusCode::FORBIDDEN,
            Some(Denial::EdgeSecret),
        ),
        (
            "trusted edge, wrong header, no token",
            format!("{open}index.m3u8"),
            edge_bad,
            StatusCode::FORBIDDEN,
            Some(Denial::EdgeSecret),
        ),
        (
            "the DASH clock is public",
            format!("{open}time"),
            none,
            StatusCode::OK,
            None,
        ),
    ];
    let mut rows = Vec::new();
    for (case, url, headers, want, denial) in &cases {
        let before = denial.map(|d| auth.stats.denials(d));
        let r = fetch("GET", url, headers, None).await;
        assert_eq!(r.status, *want, "{case}: {url}");
        if let (Some(d), Some(before)) = (denial, before) {
            assert_eq!(
                auth.stats.denials(*d),
                before + 1,
                "{case}: counted as {}",
                d.reason()
            );
            assert_eq!(r.header("cache-control"), "private, no-store", "{case}");
        }
        if *want == StatusCode::UNAUTHORIZED {
            assert!(r.header("www-authenticate").contains("Token"), "{case}");
        }
        rows.push(format!("{case}: {}", r.status.as_u16()));
    }
    // The license: POST, always needs a token.
    let kid_req = r#"{"kids":["AAAAAAAAAAAAAAAAAAAAAA"],"type":"temporary"}"#;
    let r = fetch("POST", &format!("{open}license"), none, Some(kid_req)).await;
    assert_eq!(
        r.status,
        StatusCode::UNAUTHORIZED,
        "license without a token"
    );
    let r = fetch(
        "POST",
        &format!("{}license", base(&good)),
        none,
        Some(kid_req),
    )
    .await;
    assert_eq!(
        r.status,
        StatusCode::NOT_FOUND,
        "license with a token: unknown KID"
    );
    rows.push("license without token: 401; with token, unknown KID: 404".into());

    // Every viewer gets the same bytes: playlists and objects do not depend on the token.
    for object in [
        "index.m3u8",
        "manifest.mpd",
        init.as_str(),
        segment.as_str(),
        part.as_str(),
    ] {
        let mut same = false;
        for _ in 0..5 {
            let a = get(&format!("{}{object}", base(&good))).await.body;
            let b = get(&format!("{}{object}", base(&other_viewer))).await.body;
            if a == b {
                same = true;
                break;
            }
        }
        assert!(same, "{object} differs between two viewers' tokens");
    }
    let mut same_media = false;
    for _ in 0..10 {
        let a = get(&format!("{}source/media.m3u8", base(&good))).await.body;
        let b = get(&format!("{}source/media.m3u8", base(&other_viewer)))
            .await
            .body;
        if a == b {
            assert!(
                !String::from_utf8_lossy(&a).contains("/t/"),
                "no token inside a playlist"
            );
            same_media = true;
            break;
        }
    }
    assert!(same_media, "the media playlist differs between viewers");

    // Cache headers: objects leave the window, so they expire; keys are private.
    let seg = get(&format!("{}{segment}", base(&good))).await;
    let td = facts.target_duration;
    assert_eq!(
        seg.header("cache-control"),
        format!("public, max-age={}, immutable", (12 + 2) * td)
    );
    let expires = httpdate::parse_http_date(&seg.header("expires")).expect("an HTTP-date Expires");
    let left = expires
        .duration_since(std::time::SystemTime::now())
        .unwrap_or_default()
        .as_secs();
    assert!(
        left + 5 >= (12 + 2) * td && left <= (12 + 2) * td + 1,
        "Expires in {left} s"
    );
    assert_eq!(
        get(&format!("{}{init}", base(&good)))
            .await
            .header("cache-control"),
        "public, max-age=31536000, immutable"
    );
    assert_eq!(
        get(&format!("{}{key}", base(&good)))
            .await
            .header("cache-control"),
        "private, no-store"
    );
    let blocking = get(&format!(
        "{}source/media.m3u8?_HLS_msn={}",
        base(&good),
        facts.media_sequence
    ))
    .await;
    assert_eq!(blocking.header("cache-control"), "public, max-age=60");

    // The CDN's token check (nginx auth_request).
    let check = |uri: String, extra: Vec<(&'static str, String)>| async move {
        let mut headers = vec![("x-original-uri", uri)];
        headers.extend(extra);
        let h: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        fetch("GET", &format!("http://{addr}/auth/check"), &h, None).await
    };
    let path = |t: &str| format!("/t/{t}/live/locked/source/media.m3u8?_HLS_msn=5&_HLS_part=1");
    let r = check(path(&good), vec![]).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(r.header("cache-control"), "public, max-age=60");
    let soon = auth.sign(&TokenClaims {
        expires_unix_s: unix_now_s() + 20,
        ..claims("live/locked")
    });
    let r = check(path(&soon), vec![]).await;
    let max_age: u64 = r
        .header("cache-control")
        .trim_start_matches("public, max-age=")
        .parse()
        .unwrap();
    assert!(
        max_age <= 20,
        "a check is not cached past the token's expiry: {max_age}"
    );
    assert_eq!(
        check("/live/locked/index.m3u8".into(), vec![]).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        check(path(&expired), vec![]).await.status,
        StatusCode::FORBIDDEN
    );
    // The viewer's address comes from X-Real-IP only when the edge proves itself.
    let bound = auth.sign(&TokenClaims {
        client_ip: Some("198.51.100.7".parse().unwrap()),
        ..claims("live/locked")
    });
    let spoofed = check(path(&bound), vec![("x-real-ip", "198.51.100.7".into())]).await;
    assert_eq!(
        spoofed.status,
        StatusCode::FORBIDDEN,
        "X-Real-IP from an untrusted peer is ignored"
    );
    let via_edge = check(
        path(&bound),
        vec![
            ("x-real-ip", "198.51.100.7".into()),
            ("x-estuary-edge", EDGE.into()),
        ],
    )
    .await;
    assert_eq!(via_edge.status, StatusCode::NO_CONTENT);
    rows.push("auth/check: valid 204 (max-age 60, ≤ expiry), none 401, expired 403, spoofed X-Real-IP 403, via edge 204".into());
    println!("auth matrix:\n  {}", rows.join("\n  "));
    println!(
        "refusals counted: {}",
        Denial::ALL
            .iter()
            .map(|d| format!("{}={}", d.reason(), auth.stats.denials(*d)))
            .collect::<Vec<_>>()
            .join(" ")
    );
}

/// `estuary publish-key` / `estuary token` as an operator runs them, on the server's data directory.
fn cli(args: &[&str], data_dir: &Path) -> Vec<String> {
    let out = Command::new(env!("CARGO_BIN_EXE_estuary"))
        .args(args)
        .arg("--data-dir")
        .arg(data_dir)
        .env_remove("ESTUARY_AUTH_SECRET")
        .env_remove("ESTUARY_CONFIG")
        .output()
        .expect("estuary runs");
    assert!(
        out.status.success(),
        "estuary {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hls_js_and_ffmpeg_play_from_the_printed_token_url_until_it_expires() {
    // Secure defaults: token playback, publish keys, the secret generated into the data directory.
    let dir = fresh_data_dir();
    let server = start_server_in("[auth]\n", &dir).await;
    assert!(
        dir.join("secret").exists(),
        "secret generated on first start"
    );
    let key = cli(&["publish-key", "live/printed"], &dir)[0].clone();
    assert_eq!(
        key,
        server.auth.publish_key("live/printed"),
        "the CLI uses the server's secret"
    );
    // OBS style: server rtmp://host/live, stream key {name}?key=….
    let _publisher = publish_loop(
        Path::new(FFMPEG),
        &fixture(CLIP),
        &format!("rtmp://{}/live/printed?key={key}", server.rtmp_addr),
    );
    // Long enough for the plays below on a busy machine (about 20 s), short for CI time.
    let ttl = 30;
    let urls = cli(
        &[
            "token",
            "live/printed",
            "--ttl",
            &format!("{ttl}s"),
            "--base-url",
            &format!("http://{}", server.http_addr),
        ],
        &dir,
    );
    let issued = Instant::now();
    assert_eq!(urls.len(), 3, "{urls:?}");
    let (hls, mpd) = (urls[0].clone(), urls[1].clone());
    assert_eq!(
        urls[2],
        hls.trim_end_matches("index.m3u8"),
        "the player page"
    );
    assert!(
        hls.ends_with("/live/printed/index.m3u8") && hls.contains("/t/"),
        "{hls}"
    );
    assert!(mpd.ends_with("/live/printed/manifest.mpd"), "{mpd}");
    wait_for_200(&hls, Duration::from_secs(20))
        .await
        .expect("the printed URL plays");
    tokio::time::sleep(Duration::from_secs(2)).await;

    let u = hls.clone();
    let report = blocking(move || play_hls(&u, 8)).await;
    println!("hls.js from the printed URL: {report}");
    assert_played(&report, 6.0);
    let decoded = ffmpeg_decode(&hls, Some(3)).await;
    assert!(
        decoded.status.success(),
        "ffmpeg plays the printed URL: {}",
        String::from_utf8_lossy(&decoded.stderr)
    );
    let decoded = ffmpeg_decode(&mpd, Some(2)).await;
    assert!(
        decoded.status.success(),
        "ffmpeg plays the printed MPD URL: {}",
        String::from_utf8_lossy(&decoded.stderr)
    );
    println!(
        "hls.js and ffmpeg played the printed URLs within {:.1} s of issue",
        issued.elapsed().as_secs_f64()
    );

    // After its expiry the same URL is refused, and FFmpeg cannot open it.
    let expiry = issued + Duration::from_secs(ttl + 1);
    tokio::time::sleep_until(expiry.into()).await;
    let r = get(&hls).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "expired URL");
    assert_eq!(get(&mpd).await.status, StatusCode::FORBIDDEN);
    let decoded = ffmpeg_decode(&hls, Some(2)).await;
    assert!(
        !decoded.status.success(),
        "ffmpeg must fail on the expired URL"
    );
    assert!(server.auth.stats.denials(Denial::Expired) >= 2);
    // Nor does the stream play without a token.
    let bare = format!("http://{}/live/printed/index.m3u8", server.http_addr);
    assert_eq!(get(&bare).await.status, StatusCode::UNAUTHORIZED);
}

/// Wait for a publisher that should be refused to exit; its exit status.
async fn refused_exit(p: &mut Proc, what: &str) -> std::process::ExitStatus {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Some(status) = p.0.try_wait().expect("try_wait") {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: the publisher was not refused"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rtmp_and_srt_publishes_need_the_stream_publish_key() {
    let server = start_server(&format!(
        "[auth]\nplayback = \"open\"\npublish = \"key\"\nsecret = \"{SECRET}\"\n"
    ))
    .await;
    let clip = fixture(CLIP);
    let key = server.auth.publish_key("live/keyed");
    let other_key = server.auth.publish_key("live/other");
    let rtmp = |q: &str| format!("rtmp://{}/live/keyed{q}", server.rtmp_addr);
    let srt = |extra: &str| {
        srt_url(
            server.srt_addr,
            &format!("#!::r=live/keyed,m=publish{extra}"),
            "",
        )
    };
    let refused: Vec<(&str, Proc)> = vec![
        (
            "rtmp, no key",
            publish_loop(Path::new(FFMPEG), &clip, &rtmp("")),
        ),
        (
            "rtmp, wrong key",
            publish_loop(
                Path::new(FFMPEG),
                &clip,
                &rtmp("?key=AAAAAAAAAAAAAAAAAAAAAA"),
            ),
        ),
        (
            "rtmp, another stream's key",
            publish_loop(
                Path::new(FFMPEG),
                &clip,
                &rtmp(&format!("?key={other_key}")),
            ),
        ),
        ("srt, no key", publish_srt_loop(&clip, &srt(""))),
        (
            "srt, wrong key",
            publish_srt_loop(&clip, &srt(",key=AAAAAAAAAAAAAAAAAAAAAA")),
        ),
    ];
    for (what, mut p) in refused {
        let status = refused_exit(&mut p, what).await;
        assert!(
            !status.success(),
            "{what}: ffmpeg should fail, got {status}"
        );
        assert!(
            server.hub.get("live/keyed").is_none(),
            "{what}: no stream was started"
        );
        println!("{what}: refused (ffmpeg {status})");
    }
    assert_eq!(
        server
            .auth
            .stats
            .publish_refusals
            .load(std::sync::atomic::Ordering::Relaxed),
        5
    );
    // The right key: RTMP OBS style, then SRT in the stream ID.
    let mut ok = publish_loop(Path::new(FFMPEG), &clip, &rtmp(&format!("?key={key}")));
    wait_for_200(
        &format!("http://{}/live/keyed/index.m3u8", server.http_addr),
        Duration::from_secs(20),
    )
    .await
    .expect("the keyed RTMP publish plays");
    ok.kill();
    let srt_key = server.auth.publish_key("live/keyed-srt");
    let _srt_ok = publish_srt_loop(
        &clip,
        &srt_url(
            server.srt_addr,
            &format!("#!::r=live/keyed-srt,m=publish,key={srt_key}"),
            "",
        ),
    );
    wait_for_200(
        &format!("http://{}/live/keyed-srt/index.m3u8", server.http_addr),
        Duration::from_secs(20),
    )
    .await
    .expect("the keyed SRT publish plays");
    println!("rtmp ?key= and srt key= with the stream's publish key: published");
}

/// A webhook receiver: records every call's JSON; denies `live/hook-deny`, answers `live/hook-slow`
/// after 3 s, allows the rest.
async fn webhook_server() -> (std::net::SocketAddr, Arc<Mutex<Vec<serde_json::Value>>>) {
    let calls = Arc::new(Mutex::new(Vec::new()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let recorded = calls.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let recorded = recorded.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(
                    move |req: hyper::Request<hyper::body::Incoming>| {
                        let recorded = recorded.clone();
                        async move {
                            let body = req
                                .into_body()
                                .collect()
                                .await
                                .map(|b| b.to_bytes())
                                .unwrap_or_default();
                            let v: serde_json::Value =
                                serde_json::from_slice(&body).unwrap_or_default();
                            recorded.lock().unwrap().push(v.clone());
                            let status = match v["stream"].as_str() {
                                Some("live/hook-deny") => 403,
                                Some("live/hook-slow") => {
                                    tokio::time::sleep(Duration::from_secs(3)).await;
                                    200
                                }
                                _ => 200,
                            };
                            Ok::<_, std::convert::Infallible>(
                                hyper::Response::builder()
                                    .status(status)
                                    .body(Full::new(Bytes::new()))
                                    .unwrap(),
                            )
                        }
                    },
                );
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (addr, calls)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_publish_webhook_decides_fails_closed_and_hears_unpublish() {
    let (hook, calls) = webhook_server().await;
    let server = start_server(&format!(
        "[auth]\nplayback = \"open\"\npublish = \"webhook\"\nsecret = \"{SECRET}\"\n\
         webhook_url = \"http://{hook}/estuary/hook\"\nwebhook_timeout = \"500ms\"\n"
    ))
    .await;
    let clip = fixture(CLIP);
    let rtmp = |name: &str| format!("rtmp://{}/live/{name}", server.rtmp_addr);
    let srt = |id: &str| srt_url(server.srt_addr, id, "");
    let refused: Vec<(&str, &str, Proc)> = vec![
        (
            "rtmp, webhook says 403",
            "live/hook-deny",
            publish_loop(Path::new(FFMPEG), &clip, &rtmp("hook-deny?user=mallory")),
        ),
        (
            "srt, webhook says 403",
            "live/hook-deny",
            publish_srt_loop(&clip, &srt("#!::r=live/hook-deny,m=publish")),
        ),
        (
            "rtmp, webhook too slow (fail-closed)",
            "live/hook-slow",
            publish_loop(Path::new(FFMPEG), &clip, &rtmp("hook-slow")),
        ),
    ];
    for (what, stream, mut p) in refused {
        let status = refused_exit(&mut p, what).await;
        assert!(!status.success(), "{what}: {status}");
        assert!(server.hub.get(stream).is_none(), "{what}");
        println!("{what}: refused");
    }
    let mut ok = publish_loop(Path::new(FFMPEG), &clip, &rtmp("hook-ok?user=alice&room=7"));
    wait_for_200(
        &format!("http://{}/live/hook-ok/index.m3u8", server.http_addr),
        Duration::from_secs(20),
    )
    .await
    .expect("the webhook-allowed RTMP publish plays");
    let _srt_ok = publish_srt_loop(&clip, &srt("#!::r=live/hook-srt,m=publish,u=bob"));
    wait_for_200(
        &format!("http://{}/live/hook-srt/index.m3u8", server.http_addr),
        Duration::from_secs(20),
    )
    .await
    .expect("the webhook-allowed SRT publish plays");
    ok.kill();
    // The unpublish notification follows the disconnect.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let done = calls
            .lock()
            .unwrap()
            .iter()
            .any(|c| c["action"] == "unpublish" && c["stream"] == "live/hook-ok");
        if done {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no unpublish call: {:?}",
            calls.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let calls = calls.lock().unwrap().clone();
    let find = |stream: &str, protocol: &str| {
        calls
            .iter()
            .find(|c| {
                c["action"] == "publish" && c["stream"] == stream && c["protocol"] == protocol
            })
            .unwrap_or_else(|| panic!("no publish call for {stream} over {protocol}: {calls:?}"))
            .clone()
    };
    let alice = find("live/hook-ok", "rtmp");
    assert_eq!(alice["params"]["user"], "alice");
    assert_eq!(alice["params"]["room"], "7");
    assert!(
        alice["client"].as_str().unwrap().starts_with("127.0.0.1:"),
        "{alice}"
    );
    assert_eq!(find("live/hook-srt", "srt")["params"]["u"], "bob");
    assert_eq!(find("live/hook-deny", "srt")["stream"], "live/hook-deny");
    println!("webhook calls: {}", calls.len());

    // A webhook that cannot be reached refuses too.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let auth = estuary::auth::Auth::with_secret(
        &estuary::auth::AuthConfig {
            publish: estuary::auth::PublishMode::Webhook,
            webhook: Some(estuary::auth::WebhookConfig {
                url: format!("http://{closed}/hook").parse().unwrap(),
                timeout: Duration::from_millis(500),
            }),
            ..Default::default()
        },
        SECRET.as_bytes(),
    );
    let r = auth
        .authorize_publish(&estuary::auth::PublishRequest {
            stream: "live/x".into(),
            protocol: estuary::ingest::Protocol::Rtmp,
            peer: "127.0.0.1:1".parse().unwrap(),
            params: BTreeMap::new(),
        })
        .await;
    assert!(
        matches!(r, Err(estuary::ingest::PublishRefused::Forbidden(_))),
        "{r:?}"
    );
}
