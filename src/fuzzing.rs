//! Entry points for fuzzing the origin's own parsers (not part of the crate's API): the protocol
//! parsers' entry points are [`protocols::fuzzing`], re-exported here so the e2e `fuzz_smoke` test
//! replays every corpus through one module.
//!
//! | target | what it parses |
//! | --- | --- |
//! | [`hls_directives`] | `_HLS_msn`/`_HLS_part`/`_HLS_skip` query strings ([`packager::hls::HlsDirectives`]) |
//! | [`token`] | playback tokens ([`crate::auth::Auth::verify`]) |
//! | [`http_request`] | request targets and headers through the whole origin ([`crate::http::Origin::handle`]) |
//!
//! The `fuzz/` crate runs them under libFuzzer (`cargo fuzz`, feature `origin`).

use std::sync::{Arc, OnceLock};

use bytes::Bytes;

pub use protocols::fuzzing::*;

/// A blocking-reload query string.
pub fn hls_directives(data: &[u8]) {
    let _ = packager::hls::HlsDirectives::parse(&String::from_utf8_lossy(data));
}

/// A WebRTC publisher's frames (WHIP) through [`crate::webrtc::whip::WhipIngest`]: records of
/// `[codec (0 H.264 Annex B, 1 VP8, 2 Opus, modulo 3)][flags (bit 0: contiguous; the byte also steps
/// the RTP time)][length: u16 BE][frame]`, the last record cut to what is left.
pub fn whip_frames(data: &[u8]) {
    use crate::webrtc::whip::{Received, WhipCodec, WhipIngest};
    let mut ingest = WhipIngest::new();
    let (mut rest, mut rtp_time) = (data, 0u64);
    while rest.len() >= 4 {
        let codec = match rest[0] % 3 {
            0 => WhipCodec::H264,
            1 => WhipCodec::Vp8,
            _ => WhipCodec::Opus,
        };
        let contiguous = rest[1] & 1 == 1;
        rtp_time += u64::from(rest[1]) * 100;
        let len = usize::from(u16::from_be_bytes([rest[2], rest[3]]));
        let body = &rest[4..];
        let (frame, after) = body.split_at(len.min(body.len()));
        let _ = ingest.frame(Received {
            codec,
            rtp_time,
            arrival_ms: (rtp_time / 90) as i64,
            contiguous,
            data: frame,
        });
        let _ = ingest.wants_keyframe();
        rest = after;
    }
}

/// A playback token for an arbitrary stream name: `token` and `stream` split at the first newline.
pub fn token(data: &[u8]) {
    static AUTH: OnceLock<Arc<crate::auth::Auth>> = OnceLock::new();
    let auth = AUTH.get_or_init(fuzz_auth);
    let text = String::from_utf8_lossy(data);
    let (token, stream) = text.split_once('\n').unwrap_or((&text, "live/fuzz"));
    let _ = auth.verify(token, stream, None, 1_800_000_000);
}

/// A valid token for `live/fuzz` under the secret [`token`] and [`http_request`] use (a seed).
pub fn token_seed() -> String {
    let auth = fuzz_auth();
    auth.sign(&crate::auth::TokenClaims {
        scope: "live/fuzz".into(),
        expires_unix_s: 1_900_000_000,
        not_before_unix_s: None,
        client_ip: None,
    })
}

fn fuzz_auth() -> Arc<crate::auth::Auth> {
    crate::auth::Auth::load(
        &crate::auth::AuthConfig {
            secret: Some(crate::auth::SecretString::new(
                "a fuzzing secret that is at least 32 bytes",
            )),
            ..Default::default()
        },
        &std::env::temp_dir(),
    )
    .expect("a valid secret")
}

/// One HTTP request through the whole origin: the first line of `data` is the method and request
/// target, each following line a `name: value` header. The same bytes also go through the HTTP/1.1
/// connection loop's request parser as raw client bytes. The origin has no stream (answers come from
/// path and query parsing, token checks, `/auth/check`, the API, metrics and the player routes);
/// it runs on a paused clock, so a request that would wait returns at once.
pub fn http_request(data: &[u8]) {
    // The same bytes as a raw HTTP/1.1 request, through the connection loop's parser.
    let _ = crate::http::parse_request_for_fuzzing(data);
    static ORIGIN: OnceLock<(tokio::runtime::Runtime, Arc<crate::http::Origin>)> = OnceLock::new();
    let (runtime, origin) = ORIGIN.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(true)
            .build()
            .expect("a runtime");
        let hub = crate::hub::Hub::new(crate::hub::HubConfig::default());
        let origin =
            crate::http::Origin::new(hub, crate::http::OriginConfig::default(), fuzz_auth());
        (runtime, origin)
    });
    let text = String::from_utf8_lossy(data);
    let mut lines = text.lines();
    let Some(first) = lines.next() else { return };
    let (method, target) = first.split_once(' ').unwrap_or(("GET", first));
    let mut request = hyper::Request::builder()
        .method(hyper::Method::from_bytes(method.as_bytes()).unwrap_or(hyper::Method::GET));
    // Only what hyper itself would accept as a request target reaches the origin.
    let Ok(uri) = target.parse::<hyper::Uri>() else {
        return;
    };
    request = request.uri(uri);
    for line in lines {
        if let Some((name, value)) = line.split_once(':')
            && let (Ok(name), Ok(value)) = (
                hyper::header::HeaderName::from_bytes(name.trim().as_bytes()),
                hyper::header::HeaderValue::from_str(value.trim()),
            )
        {
            request = request.header(name, value);
        }
    }
    let Ok(request) = request.body(http_body_util::Full::new(Bytes::new())) else {
        return;
    };
    runtime.block_on(async {
        let Ok(response) = origin.clone().handle(request, None).await;
        let _ = http_body_util::BodyExt::collect(response.into_body()).await;
    });
}
