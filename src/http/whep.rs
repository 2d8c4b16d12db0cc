//! WHEP (draft-ietf-wish-whep) on the origin: `POST /live/{name}/whep` with an SDP offer answers
//! `201 Created`, the SDP answer and the session's `Location`; `DELETE` on that location ends the
//! session. Playback auth as for HLS: the path token, or `Authorization: Bearer {token}`.
//! `?rendition={name}` picks the video rendition (default: `source` when it fits, else the first that fits, see
//! [`crate::webrtc::feed`]). A stream without video (its playlists out, no video rendition) is
//! served its audio alone.
//!
//! Answers: 201 with the SDP answer; 400 for an offer str0m cannot answer; 401/403 as for HLS; 404 for
//! a stream not live or an unknown rendition; 409 when the stream (or the rendition asked for) has no
//! video a browser's WebRTC decoder takes, with why (B-frames, a codec other than H.264); 415 for a
//! body that is not `application/sdp`; 503 before the stream's video is known or at the session
//! limits. See [`crate::webrtc`].

use bytes::Bytes;
use hyper::{
    Request, Response, StatusCode,
    header::{self, HeaderValue},
};

use super::*;
use crate::webrtc::{WhepError, feed::NoRendition};

/// Largest SDP offer accepted, bytes.
pub const MAX_OFFER_BYTES: usize = 64 * 1024;

/// A plain-text answer (a refusal's reason), never cached.
pub(super) fn text(status: StatusCode, body: String) -> Response<ChunksBody> {
    let mut r = Response::new(ChunksBody::new([Bytes::from(body)]));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// The offer of a WHEP or WHIP `POST` (`what` names it in refusals): the session URLs' prefix (the
/// request's path and `/`) and the SDP.
///
/// Errors: the answer to send instead: 415 for a body that is not `application/sdp`, 413 over
/// [`MAX_OFFER_BYTES`], 400 for one that is not UTF-8.
pub(super) async fn read_offer<B>(
    req: Request<B>,
    what: &str,
) -> Result<(String, String), Response<ChunksBody>>
where
    B: hyper::body::Body,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    let is_sdp = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/sdp"));
    if !is_sdp {
        return Err(text(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("a {what} offer is application/sdp\n"),
        ));
    }
    let location = format!("{}/", req.uri().path().trim_end_matches('/'));
    let body = match http_body_util::BodyExt::collect(http_body_util::Limited::new(
        req.into_body(),
        MAX_OFFER_BYTES,
    ))
    .await
    {
        Ok(b) => b.to_bytes(),
        Err(_) => {
            return Err(text(
                StatusCode::PAYLOAD_TOO_LARGE,
                "offer too large\n".into(),
            ));
        }
    };
    match String::from_utf8(body.to_vec()) {
        Ok(sdp) => Ok((location, sdp)),
        Err(_) => Err(text(
            StatusCode::BAD_REQUEST,
            "the offer is not UTF-8\n".into(),
        )),
    }
}

/// `201 Created` with the SDP `answer` and the session's `location` (exposed to pages on other
/// origins).
pub(super) fn created(answer: String, location: &str) -> Response<ChunksBody> {
    let mut r = Response::new(ChunksBody::new([Bytes::from(answer)]));
    *r.status_mut() = StatusCode::CREATED;
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/sdp"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Ok(v) = HeaderValue::from_str(location) {
        h.insert(header::LOCATION, v);
    }
    h.insert(
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static("Location"),
    );
    r
}

/// The token of `Authorization: Bearer {token}`, for a WHEP request without one in its path.
pub(super) fn bearer(headers: &hyper::HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
}

impl Origin {
    /// `POST …/whep`: answer the offer in `req`'s body.
    pub(super) async fn whep_offer<B>(&self, stream: &str, req: Request<B>) -> Response<ChunksBody>
    where
        B: hyper::body::Body,
        B::Error: std::error::Error + Send + Sync + 'static,
    {
        let Some(webrtc) = self.hub.config().webrtc.clone() else {
            return error_response(&OriginError::NotFound);
        };
        let Some(entry) = self.hub.get(stream) else {
            return error_response(&OriginError::NotFound);
        };
        let requested = req
            .uri()
            .query()
            .and_then(|q| protocols::query::query_params(q).remove("rendition"));
        let (chosen, audio_only) = {
            let st = entry.lock();
            if st.packager.is_ended() {
                return error_response(&OriginError::NotFound);
            }
            // Playlists out and no video rendition at all: a stream without video (radio).
            let audio_only = st.packager.is_ready()
                && st
                    .packager
                    .renditions()
                    .all(|r| r.kind() != media::TrackKind::Video);
            (st.webrtc_feed.choose(requested.as_deref()), audio_only)
        };
        let rendition = match chosen {
            Ok(r) => r,
            Err(NoRendition::Unfit(why)) => {
                return text(
                    StatusCode::CONFLICT,
                    format!("{}\n", WhepError::NoRendition(why)),
                );
            }
            Err(NoRendition::Unknown(name)) => {
                return text(
                    StatusCode::NOT_FOUND,
                    format!("the stream has no rendition {name:?}\n"),
                );
            }
            // Served its Opus audio only (no rendition's frames match the empty name).
            Err(NoRendition::NotYet) if audio_only && requested.is_none() => "".into(),
            Err(NoRendition::NotYet) => {
                return text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the stream has no video yet: try again\n".into(),
                );
            }
        };
        let (location, sdp) = match read_offer(req, "WHEP").await {
            Ok(offer) => offer,
            Err(refusal) => return refusal,
        };
        match webrtc.offer(stream, rendition, &sdp).await {
            Ok((id, answer)) => created(answer, &format!("{location}{id}")),
            Err(e @ WhepError::BadOffer(_)) => text(StatusCode::BAD_REQUEST, format!("{e}\n")),
            Err(e @ WhepError::NoRendition(_)) => text(StatusCode::CONFLICT, format!("{e}\n")),
            Err(e @ WhepError::Busy(_)) => text(StatusCode::SERVICE_UNAVAILABLE, format!("{e}\n")),
            Err(e) => text(StatusCode::SERVICE_UNAVAILABLE, format!("{e}\n")),
        }
    }

    /// `DELETE …/whep/{id}`.
    pub(super) async fn whep_delete(&self, stream: &str, id: u64) -> Response<ChunksBody> {
        match &self.hub.config().webrtc {
            Some(webrtc) if webrtc.delete(stream, id, false).await => {
                text(StatusCode::OK, "session ended\n".into())
            }
            _ => error_response(&OriginError::NotFound),
        }
    }
}
