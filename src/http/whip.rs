//! WHIP (RFC 9725) on the origin: `POST /live/{name}/whip` with an SDP offer and the stream's publish
//! key as `Authorization: Bearer {key}` (RFC 9725 §4.5) publishes the stream over WebRTC: `201
//! Created`, the SDP answer, and the session's `Location` (`…/whip/{id}`); `DELETE` on it, with the
//! same bearer key, ends the publish. The publish goes through the same checks as RTMP and SRT (name
//! rules, publish key or webhook, one publisher per name, drain) and feeds the same pipeline: its
//! media become the hub's events in a task of their own (see [`crate::webrtc::whip`]).
//!
//! Answers: 201; 400 for an offer str0m cannot answer or an invalid name; 401 without a key, 403 for a
//! refused one; 404 when WebRTC is not served; 409 while another publisher is live on the name; 415
//! for a body that is not `application/sdp`; 503 at the limits or while draining.

use std::net::SocketAddr;

use hyper::{Request, Response, StatusCode};

use super::{
    whep::{created, read_offer, text},
    *,
};
use crate::{
    ingest::{Protocol, PublishRefused, PublishRequest, PublishSession, Publisher},
    webrtc::WhepError,
};

/// Events queued between the engine and a WHIP publish's task: about 10 s of 30 frames/s video and
/// 50 packets/s audio.
const PUBLISH_QUEUE: usize = 1024;

fn refused(refusal: &PublishRefused) -> Response<ChunksBody> {
    let status = match refusal {
        PublishRefused::AlreadyLive(_) => StatusCode::CONFLICT,
        PublishRefused::InvalidName(_) => StatusCode::BAD_REQUEST,
        PublishRefused::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        PublishRefused::Unauthorized(_) => StatusCode::UNAUTHORIZED,
        PublishRefused::Forbidden(_) => StatusCode::FORBIDDEN,
        PublishRefused::UnsupportedCodec(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
    };
    text(status, format!("publish refused: {refusal}\n"))
}

impl Origin {
    /// The publish request of a WHIP `POST` or `DELETE`: the bearer token is the publish key.
    fn whip_request(
        stream: &str,
        headers: &hyper::HeaderMap,
        peer: Option<SocketAddr>,
    ) -> PublishRequest {
        let mut params = std::collections::BTreeMap::new();
        if let Some(key) = super::whep::bearer(headers) {
            params.insert("key".to_owned(), key.to_owned());
        }
        PublishRequest {
            stream: stream.to_owned(),
            protocol: Protocol::Whip,
            peer: peer.unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0))),
            params,
        }
    }

    /// `POST …/whip`: publish `stream` with the offer in `req`'s body.
    pub(super) async fn whip_offer<B>(
        &self,
        stream: &str,
        req: Request<B>,
        peer: Option<SocketAddr>,
    ) -> Response<ChunksBody>
    where
        B: hyper::body::Body,
        B::Error: std::error::Error + Send + Sync + 'static,
    {
        let Some(webrtc) = self.hub.config().webrtc.clone() else {
            return error_response(&OriginError::NotFound);
        };
        let request = Self::whip_request(stream, req.headers(), peer);
        if let Err(refusal) = self.hub.authorize(&request).await {
            tracing::info!(stream, protocol = "whip", peer = %request.peer, reason = %refusal, "publish refused");
            return refused(&refusal);
        }
        let (location, sdp) = match read_offer(req, "WHIP").await {
            Ok(offer) => offer,
            Err(refusal) => return refusal,
        };
        let session = match self.hub.begin_publish(stream, Protocol::Whip, request.peer) {
            Ok(session) => session,
            Err(refusal) => {
                tracing::info!(stream, protocol = "whip", peer = %request.peer, reason = %refusal, "publish refused");
                return refused(&refusal);
            }
        };
        let (events, rx) = tokio::sync::mpsc::channel(PUBLISH_QUEUE);
        match webrtc.whip(stream, &sdp, events).await {
            Ok((id, answer)) => {
                tokio::spawn(run_publish(session, rx, webrtc.clone(), id));
                created(answer, &format!("{location}{id}"))
            }
            Err(e) => {
                // The publish never started: end it at once (its session is dropped off the runtime's
                // threads: a transcoder joins its own).
                tokio::task::spawn_blocking(move || drop(session));
                match e {
                    WhepError::BadOffer(_) => text(StatusCode::BAD_REQUEST, format!("{e}\n")),
                    _ => text(StatusCode::SERVICE_UNAVAILABLE, format!("{e}\n")),
                }
            }
        }
    }

    /// `DELETE …/whip/{id}`, with the publish key: ends the publish.
    pub(super) async fn whip_delete(
        &self,
        stream: &str,
        id: u64,
        headers: &hyper::HeaderMap,
        peer: Option<SocketAddr>,
    ) -> Response<ChunksBody> {
        let Some(webrtc) = self.hub.config().webrtc.clone() else {
            return error_response(&OriginError::NotFound);
        };
        if let Some(auth) = &self.hub.config().auth
            && let Err(refusal) = auth
                .authorize_publish(&Self::whip_request(stream, headers, peer))
                .await
        {
            return refused(&refusal);
        }
        if webrtc.delete(stream, id, true).await {
            text(StatusCode::OK, "publish ended\n".into())
        } else {
            error_response(&OriginError::NotFound)
        }
    }
}

/// A WHIP publish: the engine's events into the hub's session until the engine ends the session (the
/// channel closes) or the session refuses the publish or is kicked (the engine is told to end it).
async fn run_publish(
    mut session: Box<dyn PublishSession>,
    mut events: tokio::sync::mpsc::Receiver<protocols::IngestEvent>,
    webrtc: Arc<crate::webrtc::WebRtc>,
    id: u64,
) {
    while let Some(event) = events.recv().await {
        session.event(event);
        if let Some(refusal) = session.refusal() {
            tracing::warn!(session = id, reason = %refusal, "WHIP publish refused by its media: ended");
            webrtc.end_publish(id);
            break;
        }
        if session.is_kicked() {
            tracing::info!(session = id, "WHIP publisher kicked");
            webrtc.end_publish(id);
            break;
        }
    }
    // Ending a publish joins its transcoder's threads.
    let _ = tokio::task::spawn_blocking(move || drop(session)).await;
}
