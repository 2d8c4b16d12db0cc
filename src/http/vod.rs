//! Recordings replayed as VOD: `[/t/{token}]/vod/live/{name}/{recording id}/…`
//! ([`packager::urls::VodPath`]), under the live stream's token scope (a token for `live/{name}`
//! plays its recordings too).
//!
//! - `index.m3u8`, `{rendition}/media.m3u8`, `manifest.mpd`: rendered from the recording's index
//!   ([`packager::vod`]);
//! - `{rendition}/init-{id}.mp4`, `{rendition}/{msn}.m4s`: the recorded files (a segment of an
//!   encrypted recording encrypted with AES-128 under its content key and IV, as it was served
//!   live);
//! - `keys/{id}.key`: an encrypted recording's content key (`private, no-store`);
//! - `{rendition}.mp4`: the rendition (with the audio) as one MP4 file ([`crate::recording::download`]).
//!
//! Caching: media objects never change (`immutable`); playlists and the MPD are immutable once the
//! recording is complete, cached 2 s while it is recorded.

use std::sync::Arc;

use bytes::Bytes;
use hyper::StatusCode;
use packager::urls::{StreamObject as Object, VodObject, VodPath};

use crate::recording::{Loaded, Recorder, RecordingStatus};

use super::*;

/// A playlist or MPD of a recording still being written.
const GROWING_PLAYLIST: &str = "public, max-age=2";

/// Bytes read from disk per chunk of a download's body.
const DOWNLOAD_CHUNK_BYTES: usize = 256 * 1024;

impl Origin {
    fn recorder(&self) -> Result<&Arc<Recorder>, OriginError> {
        self.hub
            .config()
            .recorder
            .as_ref()
            .ok_or(OriginError::NotFound)
    }

    /// Answer a GET or HEAD of a recording's object (access already checked).
    pub(super) async fn vod_object(&self, path: VodPath) -> Result<Reply, OriginError> {
        let recorder = self.recorder()?.clone();
        let (stream, id) = (path.stream.clone(), path.recording.to_string());
        let loaded = {
            let r = recorder.clone();
            tokio::task::spawn_blocking(move || r.get(&stream, &id))
                .await
                .ok()
                .flatten()
                .ok_or(OriginError::NotFound)?
        };
        // Immutable once complete; an interrupted recording may still be resumed (and grow).
        let complete = loaded.ended_ms.is_some()
            && recorder.facts(&loaded).status != RecordingStatus::Recording;
        let listing = if complete {
            cache::IMMUTABLE
        } else {
            GROWING_PLAYLIST
        };
        let rec = &loaded.recording;
        let dir = recorder.dir_of(&path.stream, path.recording.as_str());
        match path.object {
            VodObject::Object(Object::Multivariant) => {
                let text = packager::vod::render_multivariant(rec).ok_or(OriginError::NotFound)?;
                Ok(playlist_reply(Bytes::from(text), listing))
            }
            VodObject::Object(Object::MediaPlaylist { rendition }) => {
                let text = packager::vod::render_media_playlist(rec, &rendition)
                    .ok_or(OriginError::NotFound)?;
                Ok(playlist_reply(Bytes::from(text), listing))
            }
            VodObject::Object(Object::Mpd) => {
                let text = packager::vod::render_mpd(rec).ok_or(OriginError::NotFound)?;
                Ok(Reply {
                    status: StatusCode::OK,
                    content_type: "application/dash+xml",
                    cache_control: Caching::Fixed(listing),
                    body: ChunksBody::new([Bytes::from(text)]),
                })
            }
            VodObject::Object(Object::Init { rendition, id }) => {
                let r = rec.rendition(&rendition).ok_or(OriginError::NotFound)?;
                r.init(id).ok_or(OriginError::NotFound)?;
                let bytes = read(dir.join(&rendition).join(format!("init-{id}.mp4"))).await?;
                Ok(media_reply(r.kind, ChunksBody::new([bytes]), None))
            }
            VodObject::Object(Object::Segment { rendition, msn }) => {
                let r = rec.rendition(&rendition).ok_or(OriginError::NotFound)?;
                let seg = r.segment(msn).ok_or(OriginError::NotFound)?;
                let bytes = read(dir.join(&rendition).join(format!("{msn}.m4s"))).await?;
                let bytes = match seg.key {
                    None => bytes,
                    Some((key_id, iv)) => {
                        let key = recording_key(&dir, key_id)
                            .await
                            .ok_or(OriginError::NotFound)?;
                        Bytes::from(packager::crypto::encrypt_aes128_cbc(&key, &iv, &bytes))
                    }
                };
                Ok(media_reply(r.kind, ChunksBody::new([bytes]), None))
            }
            VodObject::Object(Object::Key { id }) => {
                let key = recording_key(&dir, id).await.ok_or(OriginError::NotFound)?;
                Ok(Reply {
                    status: StatusCode::OK,
                    content_type: "application/octet-stream",
                    cache_control: Caching::Fixed(cache::PRIVATE),
                    body: ChunksBody::new([Bytes::copy_from_slice(&key)]),
                })
            }
            VodObject::Object(_) => Err(OriginError::NotFound),
            VodObject::Download { rendition } => self.download(recorder, loaded, rendition).await,
        }
    }

    /// The recordings API (bearer token already checked): `GET /api/recordings` (every recording,
    /// oldest first: `{"recordings": [RecordingFacts…]}`), `GET /api/recordings/live/{name}/{id}`
    /// (one), `DELETE /api/recordings/live/{name}/{id}` (204; 409 while it is being recorded).
    pub(super) async fn recordings_api(
        &self,
        method: &hyper::Method,
        path: &str,
    ) -> hyper::Response<ChunksBody> {
        let json = super::api::json_response;
        let not_found = || {
            json(
                StatusCode::NOT_FOUND,
                serde_json::json!({"error": "no such recording"}),
            )
        };
        let Ok(recorder) = self.recorder().cloned() else {
            return json(
                StatusCode::NOT_FOUND,
                serde_json::json!({"error": "recording needs a data directory"}),
            );
        };
        if path == "/api/recordings" {
            if !matches!(*method, hyper::Method::GET | hyper::Method::HEAD) {
                return error_response(&OriginError::MethodNotAllowed);
            }
            let list = tokio::task::spawn_blocking(move || {
                recorder
                    .list()
                    .iter()
                    .map(|l| recorder.facts(l))
                    .collect::<Vec<_>>()
            })
            .await
            .unwrap_or_default();
            return json(StatusCode::OK, serde_json::json!({ "recordings": list }));
        }
        // `live/{name}/{id}`.
        let Some((stream, id)) = path
            .strip_prefix("/api/recordings/")
            .and_then(|p| p.rsplit_once('/'))
            .filter(|(s, id)| {
                s.parse::<media::name::StreamName>().is_ok()
                    && packager::urls::RecordingId::parse(id).is_some()
            })
            .map(|(s, id)| (s.to_owned(), id.to_owned()))
        else {
            return not_found();
        };
        match *method {
            hyper::Method::GET | hyper::Method::HEAD => {
                let found = tokio::task::spawn_blocking(move || {
                    recorder.get(&stream, &id).map(|l| recorder.facts(&l))
                })
                .await
                .ok()
                .flatten();
                match found {
                    Some(facts) => json(
                        StatusCode::OK,
                        serde_json::to_value(facts).unwrap_or_default(),
                    ),
                    None => not_found(),
                }
            }
            hyper::Method::DELETE => {
                let (s, i) = (stream.clone(), id.clone());
                let result = tokio::task::spawn_blocking(move || recorder.delete(&s, &i))
                    .await
                    .unwrap_or(Err(crate::recording::DeleteError::Io("task".into())));
                match result {
                    Ok(()) => {
                        tracing::info!(%stream, recording = %id, "recording deleted by the API");
                        let mut resp = hyper::Response::new(ChunksBody::empty());
                        *resp.status_mut() = StatusCode::NO_CONTENT;
                        resp
                    }
                    Err(crate::recording::DeleteError::NotFound) => not_found(),
                    Err(e @ crate::recording::DeleteError::InProgress) => json(
                        StatusCode::CONFLICT,
                        serde_json::json!({"error": e.to_string()}),
                    ),
                    Err(e) => json(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        serde_json::json!({"error": e.to_string()}),
                    ),
                }
            }
            _ => error_response(&OriginError::MethodNotAllowed),
        }
    }

    async fn download(
        &self,
        recorder: Arc<Recorder>,
        loaded: Arc<Loaded>,
        rendition: String,
    ) -> Result<Reply, OriginError> {
        let file = tokio::task::spawn_blocking(move || {
            crate::recording::download::prepare(&recorder, &loaded, &rendition).map_err(|e| {
                match e {
                    crate::recording::download::DownloadError::NotFound => {}
                    error => {
                        tracing::warn!(stream = %loaded.stream, recording = %loaded.id, %rendition, %error, "cannot make the download");
                    }
                }
                OriginError::NotFound
            })
        })
        .await
        .map_err(|_| OriginError::Unavailable("download"))??;
        let f = tokio::fs::File::open(&file)
            .await
            .map_err(|_| OriginError::NotFound)?;
        let len = f.metadata().await.map_err(|_| OriginError::NotFound)?.len();
        let tail: LiveTail = Box::pin(futures::stream::unfold(f, |mut f| async move {
            use tokio::io::AsyncReadExt;
            let mut buf = vec![0u8; DOWNLOAD_CHUNK_BYTES];
            match f.read(&mut buf).await {
                Ok(0) => None,
                Ok(n) => {
                    buf.truncate(n);
                    Some((Ok(Bytes::from(buf)), f))
                }
                Err(_) => Some((Err(OriginError::Unavailable("read")), f)),
            }
        }));
        Ok(Reply {
            status: StatusCode::OK,
            content_type: "video/mp4",
            cache_control: Caching::Fixed(cache::PRIVATE),
            body: ChunksBody::proxied(tail, Some(len)),
        })
    }
}

/// A recorded file's bytes; 404 when missing.
async fn read(path: std::path::PathBuf) -> Result<Bytes, OriginError> {
    tokio::fs::read(&path)
        .await
        .map(Bytes::from)
        .map_err(|error| {
            tracing::warn!(path = %path.display(), %error, "recorded file unreadable");
            OriginError::NotFound
        })
}

/// Content key `id` of the recording (or DVR store) in `dir` (its `keys.json`).
pub(super) async fn recording_key(dir: &std::path::Path, id: u64) -> Option<[u8; 16]> {
    let bytes = tokio::fs::read(dir.join(crate::recording::writer::KEYS_FILE))
        .await
        .ok()?;
    let keys: std::collections::BTreeMap<u64, String> = serde_json::from_slice(&bytes).ok()?;
    crate::hub::keys::unhex16(keys.get(&id)?)
}
