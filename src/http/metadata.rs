//! `POST /api/streams/live/{name}/metadata` (API token): timed metadata for a live stream
//! ([`crate::hub::events`]), as JSON:
//!
//! ```json
//! {"id": "gift-42", "data": {"gift": "rose"}, "duration": "5s", "class": "com.example.gift"}
//! ```
//!
//! `data` is text, or any JSON value (carried as its compact JSON text); `duration` is a duration
//! (`"5s"`, `"1500ms"`) or seconds as a number; `duration` and `class` are optional. Answers: 202
//! once queued (it is stamped with the next frame the publisher sends); 400 for a body that is not
//! such an object (unknown fields included) or a field a DATERANGE cannot carry; 404 for a stream
//! that is not live here (307 to its node's API when a cluster places it elsewhere); 409 for an id
//! still in the stream's window; 413 for data over 16 KiB; 429 with `Retry-After` over the stream's
//! rate (20 at once, 10 per second).

use bytes::Bytes;
use hyper::{
    Response, StatusCode,
    header::{self, HeaderValue},
};
use packager::events::{EventError, TimedMetadata};

use super::*;
use crate::hub::events::EventRefused;

/// Largest request body read, bytes (the data limit plus its JSON escaping).
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// The longest event duration taken.
const MAX_DURATION: Duration = Duration::from_secs(24 * 3600);

/// The request body.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct MetadataRequest {
    id: String,
    data: serde_json::Value,
    #[serde(default)]
    duration: Option<serde_json::Value>,
    #[serde(default)]
    class: Option<String>,
}

/// A JSON answer.
fn json(status: StatusCode, value: serde_json::Value) -> Response<ChunksBody> {
    let mut r = Response::new(ChunksBody::new([Bytes::from(value.to_string())]));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

fn bad_request(error: impl std::fmt::Display) -> Response<ChunksBody> {
    json(
        StatusCode::BAD_REQUEST,
        serde_json::json!({ "error": error.to_string() }),
    )
}

/// Parse a duration: a string humantime reads (`5s`, `1500ms`, `1m 30s`) or seconds as a number.
fn parse_duration(value: &serde_json::Value) -> Result<Duration, String> {
    let d = match value {
        serde_json::Value::String(s) => {
            humantime::parse_duration(s).map_err(|e| format!("duration {s:?}: {e}"))?
        }
        serde_json::Value::Number(n) => n
            .as_f64()
            .filter(|s| s.is_finite() && *s >= 0.0)
            .and_then(|s| Duration::try_from_secs_f64(s).ok())
            .ok_or_else(|| format!("duration {n} is not a number of seconds"))?,
        other => return Err(format!("duration {other} is neither a string nor seconds")),
    };
    if d > MAX_DURATION {
        return Err(format!("duration over {} s", MAX_DURATION.as_secs()));
    }
    Ok(d)
}

/// The event a request body describes.
///
/// Errors: why it is not one (answered with 400).
fn parse_request(body: &[u8]) -> Result<TimedMetadata, String> {
    let request: MetadataRequest = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    let duration = request
        .duration
        .as_ref()
        .filter(|d| !d.is_null())
        .map(parse_duration)
        .transpose()?;
    let data = match request.data {
        serde_json::Value::String(s) => s,
        other => other.to_string(),
    };
    Ok(TimedMetadata {
        id: request.id,
        class: request.class,
        data,
        duration_ms: duration.map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
    })
}

/// The answer to a refused event (a stream not live here may be redirected instead): 400 for a field
/// an HLS tag cannot carry, 413 for data over the limit, 409 for an id in use, 429 with
/// `Retry-After` over the rate, 404 for no such stream.
fn refusal(refused: &EventRefused) -> Response<ChunksBody> {
    let status = match refused {
        EventRefused::Invalid(EventError::TooLarge { .. }) => StatusCode::PAYLOAD_TOO_LARGE,
        EventRefused::Invalid(_) => StatusCode::BAD_REQUEST,
        EventRefused::IdInUse(_) => StatusCode::CONFLICT,
        EventRefused::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
        EventRefused::NoStream => StatusCode::NOT_FOUND,
    };
    let mut r = json(status, serde_json::json!({ "error": refused.to_string() }));
    if let EventRefused::RateLimited { retry_after_s } = refused {
        r.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(*retry_after_s));
    }
    r
}

impl Origin {
    /// `POST /api/streams/{stream}/metadata` with the request body `body` (already read; `None`
    /// when it was over [`MAX_BODY_BYTES`]), once the API token is checked.
    pub(super) async fn post_metadata(
        &self,
        stream: &str,
        body: Option<Bytes>,
    ) -> Response<ChunksBody> {
        let Some(body) = body else {
            self.hub.count_event_refusal("too_large");
            return json(
                StatusCode::PAYLOAD_TOO_LARGE,
                serde_json::json!({ "error": format!("body over {MAX_BODY_BYTES} bytes") }),
            );
        };
        let event = match parse_request(&body) {
            Ok(e) => e,
            Err(error) => {
                self.hub.count_event_refusal("invalid");
                return bad_request(error);
            }
        };
        let id = event.id.clone();
        match self.hub.post_metadata(stream, event) {
            Ok(()) => json(
                StatusCode::ACCEPTED,
                serde_json::json!({ "stream": stream, "id": id, "status": "queued" }),
            ),
            Err(EventRefused::NoStream) => self.metadata_elsewhere(stream, "metadata").await,
            Err(refused) => refusal(&refused),
        }
    }

    /// `POST /api/streams/{stream}/splice` with `{"duration": "30s"}`: an ad break (an SCTE-35
    /// splice_insert out of the network with that duration, at the next frame). 202 with its
    /// DATERANGE id and `splice_event_id`; 400 without a duration; refusals as for metadata.
    pub(super) async fn post_splice(
        &self,
        stream: &str,
        body: Option<Bytes>,
    ) -> Response<ChunksBody> {
        #[derive(serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        struct SpliceRequest {
            duration: serde_json::Value,
        }
        let Some(body) = body else {
            self.hub.count_event_refusal("too_large");
            return json(
                StatusCode::PAYLOAD_TOO_LARGE,
                serde_json::json!({ "error": format!("body over {MAX_BODY_BYTES} bytes") }),
            );
        };
        let duration = serde_json::from_slice::<SpliceRequest>(&body)
            .map_err(|e| e.to_string())
            .and_then(|r| parse_duration(&r.duration))
            .and_then(|d| match d.as_millis() {
                0 => Err("an ad break lasts more than 0 s".to_owned()),
                ms => Ok(u64::try_from(ms).unwrap_or(u64::MAX)),
            });
        let duration_ms = match duration {
            Ok(ms) => ms,
            Err(error) => {
                self.hub.count_event_refusal("invalid");
                return bad_request(error);
            }
        };
        match self.hub.post_ad_break(stream, duration_ms) {
            Ok(id) => json(
                StatusCode::ACCEPTED,
                serde_json::json!({
                    "stream": stream,
                    "id": format!("splice-{id}"),
                    "splice_event_id": id,
                    "status": "queued",
                }),
            ),
            Err(EventRefused::NoStream) => self.metadata_elsewhere(stream, "splice").await,
            Err(refused) => refusal(&refused),
        }
    }

    /// A stream not live here: in a cluster that places it on another node, a 307 to that node's
    /// `…/{what}` (the client repeats the POST there with its token); else 404.
    async fn metadata_elsewhere(&self, stream: &str, what: &str) -> Response<ChunksBody> {
        let not_found = || {
            json(
                StatusCode::NOT_FOUND,
                serde_json::json!({ "error": "no such live stream" }),
            )
        };
        let Some(cluster) = self.hub.config().cluster.as_ref() else {
            return not_found();
        };
        match cluster.locate(stream).await {
            Ok(crate::cluster::Location::Node(owner)) => {
                let location = format!(
                    "{}/api/streams/{stream}/{what}",
                    owner.http.trim_end_matches('/')
                );
                let mut r = json(
                    StatusCode::TEMPORARY_REDIRECT,
                    serde_json::json!({ "error": "the stream is live on another node", "location": location }),
                );
                if let Ok(v) = HeaderValue::from_str(&location) {
                    r.headers_mut().insert(header::LOCATION, v);
                }
                r
            }
            _ => not_found(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_parse_text_json_and_durations() {
        let e = parse_request(
            br#"{"id":"gift-42","data":{"gift":"rose"},"duration":"5s","class":"com.example.gift"}"#,
        )
        .unwrap();
        assert_eq!(e.id, "gift-42");
        assert_eq!(e.data, r#"{"gift":"rose"}"#);
        assert_eq!(e.duration_ms, Some(5000));
        assert_eq!(e.class.as_deref(), Some("com.example.gift"));
        let e = parse_request(br#"{"id":"a","data":"plain text","duration":1.5}"#).unwrap();
        assert_eq!(e.data, "plain text");
        assert_eq!(e.duration_ms, Some(1500));
        assert_eq!(e.class, None);
        for bad in [
            &br#"{"id":"a"}"#[..],
            br#"{"id":"a","data":1,"colour":"red"}"#,
            br#"{"id":"a","data":1,"duration":"soon"}"#,
            br#"{"id":"a","data":1,"duration":-1}"#,
            br#"{"id":"a","data":1,"duration":"48h"}"#,
            b"not json",
        ] {
            assert!(
                parse_request(bad).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
