//! Content keys that outlive their node: every change to a stream's kept keys is sealed
//! ([`super::vault`]) and written to the store in the background, in order; a claim fetches them (a
//! stream taken over keeps serving its earlier keys), and a node asked for the keys of a stream that
//! nobody publishes reads them.

use std::sync::Arc;

use redis::AsyncCommands;

use super::{Cluster, STORE_TIMEOUT};

impl Cluster {
    /// Keep the sealed keys a claim fetched for `stream`, opened, until the stream's entry takes them
    /// ([`Cluster::take_fetched_keys`]).
    pub(super) fn keep_fetched_keys(&self, stream: &str, sealed: &str) {
        match self.vault.open(stream, sealed) {
            Ok(json) => {
                self.fetched_keys().insert(stream.to_owned(), json);
            }
            Err(error) => {
                tracing::error!(%stream, %error, "the stream's content keys in the cluster store do not open: earlier segments cannot be decrypted through this node");
            }
        }
    }

    /// The content keys (a key file's JSON) the claim of `stream` fetched from the store, once.
    pub fn take_fetched_keys(&self, stream: &str) -> Option<Vec<u8>> {
        self.fetched_keys().remove(stream)
    }

    fn fetched_keys(
        &self,
    ) -> std::sync::MutexGuard<'_, std::collections::HashMap<String, Vec<u8>>> {
        self.fetched_keys.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A [`crate::hub::keys::KeySink`] that writes `stream`'s kept keys to the store, sealed, in the
    /// order they change (the background task writes them: [`Cluster::run`]).
    pub fn key_sink(self: &Arc<Self>, stream: &str) -> crate::hub::keys::KeySink {
        let this = self.clone();
        let stream = stream.to_owned();
        crate::hub::keys::KeySink(Box::new(move |json| {
            let sealed = this.vault.seal(&stream, &json);
            if this.key_writes.send((stream.clone(), sealed)).is_err() {
                tracing::warn!(stream = %stream, "content keys not written to the cluster store: the node is stopping");
            }
        }))
    }

    /// Write one sealed key set (from [`Cluster::key_sink`]); retried once on failure.
    pub(super) async fn write_keys(&self, stream: &str, sealed: &str) {
        for attempt in 0..2 {
            let mut conn = self.conn.clone();
            let set = conn.set::<_, _, ()>(self.keys.content_keys(stream), sealed);
            match tokio::time::timeout(STORE_TIMEOUT, set).await {
                Ok(Ok(())) => return,
                Ok(Err(e)) if attempt == 1 => {
                    tracing::error!(%stream, error = %e, "content keys not written to the cluster store: another node taking the stream over could not serve them");
                }
                Err(_) if attempt == 1 => {
                    tracing::error!(%stream, "content keys not written to the cluster store in time: another node taking the stream over could not serve them");
                }
                _ => {}
            }
        }
    }

    /// The content keys of `stream` in the store (a key file's JSON), for a stream nobody publishes.
    /// `None` when there are none, they do not open, or the store is unreachable.
    pub async fn load_keys(&self, stream: &str) -> Option<Vec<u8>> {
        let mut conn = self.conn.clone();
        let get = conn.get::<_, Option<String>>(self.keys.content_keys(stream));
        let sealed = tokio::time::timeout(STORE_TIMEOUT, get)
            .await
            .ok()?
            .ok()??;
        self.vault
            .open(stream, &sealed)
            .inspect_err(|error| tracing::warn!(%stream, %error, "content keys in the cluster store do not open"))
            .ok()
    }
}
