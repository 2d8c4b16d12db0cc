//! The W3C ClearKey license endpoint (W3C EME §9.1.3) for CENC-protected DASH.

use bytes::Bytes;
use hyper::{Request, StatusCode};

use super::*;

/// Largest ClearKey license request body accepted (bytes).
pub(super) const MAX_LICENSE_REQUEST_BYTES: usize = 16 * 1024;
/// Most KIDs one license request may ask for.
pub(super) const MAX_LICENSE_KIDS: usize = 64;

/// A W3C ClearKey license request (W3C EME §9.1.3).
#[derive(Debug, serde::Deserialize)]
pub(super) struct LicenseRequest {
    pub(super) kids: Vec<String>,
}

impl Origin {
    /// The W3C ClearKey license endpoint (W3C EME §9.1.3 ClearKey license request and response): a JSON
    /// `{"kids": [base64url KID, …], "type": …}` in, the stream's CENC keys for the KIDs it knows out,
    /// as a JWK set `{"keys": [{"kty": "oct", "kid": …, "k": …}], "type": "temporary"}`. 404 when it
    /// knows none of them (or the stream is not encrypted), 400 for a malformed request. Never cached.
    pub(super) async fn license<B>(
        &self,
        stream: &str,
        req: Request<B>,
    ) -> Result<Reply, OriginError>
    where
        B: hyper::body::Body,
        B::Error: std::error::Error + Send + Sync + 'static,
    {
        use base64::Engine;
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let store = self
            .stream_keys(stream)
            .await
            .ok_or(OriginError::NotFound)?;
        let body = http_body_util::BodyExt::collect(http_body_util::Limited::new(
            req.into_body(),
            MAX_LICENSE_REQUEST_BYTES,
        ))
        .await
        .map_err(|_| OriginError::BadRequest("license request body"))?
        .to_bytes();
        let request: LicenseRequest = serde_json::from_slice(&body)
            .map_err(|_| OriginError::BadRequest("license request"))?;
        if request.kids.len() > MAX_LICENSE_KIDS {
            return Err(OriginError::BadRequest("too many kids"));
        }
        let keys: Vec<serde_json::Value> = request
            .kids
            .iter()
            .filter_map(|kid| {
                // Padding is not part of base64url in JWK, but some CDMs send it.
                let raw = b64.decode(kid.trim_end_matches('=')).ok()?;
                let kid: [u8; 16] = raw.try_into().ok()?;
                store.cenc_by_kid(&kid)
            })
            .map(|k| {
                serde_json::json!({ "kty": "oct", "kid": b64.encode(k.kid), "k": b64.encode(k.key) })
            })
            .collect();
        if keys.is_empty() {
            tracing::info!(stream = %stream, "license request for unknown kids");
            return Err(OriginError::NotFound);
        }
        let body = serde_json::json!({ "keys": keys, "type": "temporary" }).to_string();
        Ok(Reply {
            status: StatusCode::OK,
            content_type: "application/json",
            cache_control: Caching::Fixed(cache::PRIVATE),
            body: ChunksBody::new([Bytes::from(body)]),
        })
    }
}
