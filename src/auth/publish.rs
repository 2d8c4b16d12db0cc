//! Publish authorisation: per-stream publish keys (HMAC-SHA256 over the stream name) and the publish
//! webhook (fail-closed).

use std::sync::{Arc, atomic::Ordering};

use base64::Engine;
use hmac::Mac;

use super::{Auth, B64, PublishMode, PublishRequest, WebhookConfig};
use crate::vocab::PublishRefused;

/// The publish webhook: `POST {url}` with a JSON body
/// `{"action": "publish"|"unpublish", "stream", "protocol", "client", "params": {…}}`.
/// For `publish`, a 2xx answer within the timeout allows it; anything else refuses it (fail-closed).
/// `unpublish` is a notification: its answer is ignored.
#[derive(Debug)]
pub struct Webhook {
    pub(super) config: WebhookConfig,
    client: hyper_util::client::legacy::Client<
        hyper_util::client::legacy::connect::HttpConnector,
        http_body_util::Full<bytes::Bytes>,
    >,
}

impl Webhook {
    pub(super) fn new(config: WebhookConfig) -> Self {
        let client =
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .build_http();
        Self { config, client }
    }

    /// POST `action` for `request`; `Ok(status)` when an answer came in time.
    async fn call(&self, action: &str, request: &PublishRequest) -> Result<u16, String> {
        let body = serde_json::json!({
            "action": action,
            "stream": request.stream,
            "protocol": request.protocol.as_str(),
            "client": request.peer.to_string(),
            "params": request.params,
        })
        .to_string();
        let req = hyper::Request::post(self.config.url.clone())
            .header(hyper::header::CONTENT_TYPE, "application/json")
            .header(hyper::header::USER_AGENT, "estuary")
            .body(http_body_util::Full::new(bytes::Bytes::from(body)))
            .map_err(|e| e.to_string())?;
        match tokio::time::timeout(self.config.timeout, self.client.request(req)).await {
            Err(_) => Err(format!("no answer within {:?}", self.config.timeout)),
            Ok(Err(e)) => Err(e.to_string()),
            Ok(Ok(resp)) => Ok(resp.status().as_u16()),
        }
    }
}

impl Auth {
    /// The publish key of `stream` (`live/{name}`): the first 16 bytes of HMAC-SHA256 of the stream name
    /// under a key derived from the secret, as 22 base64url characters.
    pub fn publish_key(&self, stream: &str) -> String {
        let mut mac = self.publish_mac.clone();
        mac.update(stream.as_bytes());
        B64.encode(&mac.finalize().into_bytes()[..16])
    }

    /// True when `presented` is `stream`'s publish key (constant time).
    pub fn check_publish_key(&self, stream: &str, presented: &str) -> bool {
        let mut raw = [0u8; 16];
        if !matches!(
            B64.decode_slice(presented.trim_end_matches('='), &mut raw),
            Ok(16)
        ) {
            return false;
        }
        let mut mac = self.publish_mac.clone();
        mac.update(stream.as_bytes());
        mac.verify_truncated_left(&raw).is_ok()
    }

    /// Decide on a publish: by key, by webhook, or open. A refusal is counted; the driver logs it with its
    /// reason (never the key).
    ///
    /// Errors: [`PublishRefused::Unauthorized`] (no key), [`PublishRefused::Forbidden`] (wrong key,
    /// webhook refusal or failure).
    pub async fn authorize_publish(&self, request: &PublishRequest) -> Result<(), PublishRefused> {
        let verdict = match self.publish {
            PublishMode::Open => Ok(()),
            PublishMode::Key => match request.params.get("key") {
                None => Err(PublishRefused::Unauthorized(
                    "no publish key (add ?key=… to the stream key, or key=… to the SRT stream id)",
                )),
                Some(k) if self.check_publish_key(&request.stream, k) => Ok(()),
                Some(_) => Err(PublishRefused::Forbidden("wrong publish key")),
            },
            PublishMode::Webhook => match &self.webhook {
                None => Err(PublishRefused::Forbidden("no webhook configured")),
                Some(hook) => match hook.call("publish", request).await {
                    Ok(status) if (200..300).contains(&status) => Ok(()),
                    Ok(status) => {
                        tracing::warn!(stream = %request.stream, status, "publish webhook denied");
                        Err(PublishRefused::Forbidden("denied by the webhook"))
                    }
                    Err(e) => {
                        tracing::warn!(stream = %request.stream, error = %e, "publish webhook failed: refusing (fail-closed)");
                        Err(PublishRefused::Forbidden("webhook unavailable"))
                    }
                },
            },
        };
        verdict.inspect_err(|why| {
            self.stats.publish_refusals.fetch_add(1, Ordering::Relaxed);
            // The ingest driver logs the refusal (once, with its connection's context).
            tracing::debug!(
                stream = %request.stream,
                protocol = request.protocol.as_str(),
                peer = %request.peer,
                reason = %why,
                "publish refused"
            );
        })
    }

    /// Tell the webhook (if any) that a publish ended; fire and forget, failures logged.
    pub fn notify_unpublish(self: &Arc<Self>, request: PublishRequest) {
        if self.webhook.is_none() {
            return;
        }
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let auth = self.clone();
        handle.spawn(async move {
            if let Some(hook) = &auth.webhook
                && let Err(e) = hook.call("unpublish", &request).await
            {
                tracing::warn!(stream = %request.stream, error = %e, "unpublish webhook failed");
            }
        });
    }
}
