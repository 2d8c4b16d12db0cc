//! Stream objects: playlists (with blocking reload), the MPD, keys, init segments, segments and parts
//! (a segment in progress streamed chunk by chunk).

use std::{sync::Arc, time::Duration};

use bytes::Bytes;
use hyper::{Request, StatusCode};
use packager::hls::{BlockingDecision, HlsDirectives, blocking_decision, is_upcoming};
use packager::urls::StreamObject as Object;

use crate::hub::{StreamEntry, StreamState};

use super::*;

/// Which bytes of a segment are served: the LL-HLS ones (clear, or AES-128 once complete) or the DASH
/// CENC ones under the key with this id (streamed chunk by chunk like clear ones).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum SegmentForm {
    Hls,
    Cenc { key_id: u64 },
}

impl Origin {
    /// The content keys of `stream`: the live stream's, those persisted in the data directory, or
    /// (in a cluster, for a stream nobody publishes now) those sealed in the cluster store.
    pub(super) async fn stream_keys(
        &self,
        stream: &str,
    ) -> Option<Arc<crate::hub::keys::KeyStore>> {
        if let Some(keys) = self.hub.keys(stream) {
            return Some(keys);
        }
        let json = self
            .hub
            .config()
            .cluster
            .as_ref()?
            .load_keys(stream)
            .await?;
        let store = crate::hub::keys::KeyStore::default();
        store.merge_json(&json).then(|| Arc::new(store))
    }

    pub(super) async fn object<B>(
        &self,
        stream: String,
        object: Object,
        req: &Request<B>,
    ) -> Result<Reply, OriginError> {
        if object == Object::Time {
            // The DASH UTCTiming clock: answered for any stream name, never cached.
            return Ok(Reply {
                status: StatusCode::OK,
                content_type: "text/plain; charset=utf-8",
                cache_control: Caching::Fixed(cache::NO_STORE),
                body: ChunksBody::new([Bytes::from(packager::dash::format_utc_time(
                    crate::hub::unix_ms(),
                ))]),
            });
        }
        if let Object::Key { id } = object {
            // Served while kept, also for a stream not being published (after a restart, a CDN or
            // a player may still hold its segments).
            let mut key = self
                .stream_keys(&stream)
                .await
                .and_then(|k| k.get(id))
                .map(|k| k.key);
            if key.is_none() {
                // A key older than those kept in memory, of a segment in the DVR window: from the
                // stream's store.
                let dir = self
                    .hub
                    .get(&stream)
                    .and_then(|e| e.lock().store_dir.clone());
                if let Some(dir) = dir {
                    key = super::vod::recording_key(&dir, id).await;
                }
            }
            let key = key.ok_or(OriginError::NotFound)?;
            return Ok(Reply {
                status: StatusCode::OK,
                content_type: "application/octet-stream",
                cache_control: Caching::Fixed(cache::PRIVATE),
                body: ChunksBody::new([Bytes::copy_from_slice(&key)]),
            });
        }
        let entry = self.hub.get(&stream).ok_or(OriginError::NotFound)?;
        entry.requests().count();
        let directives = match &object {
            Object::MediaPlaylist { .. } => HlsDirectives::parse(req.uri().query().unwrap_or(""))
                .map_err(|_| OriginError::BadRequest("directive"))?,
            _ => HlsDirectives::default(),
        };
        match object {
            Object::Multivariant => {
                let body = self
                    .wait_for(&entry, self.ready_timeout(), |st| {
                        Ok(if st.packager.is_ready() || st.packager.is_ended() {
                            Some(())
                        } else {
                            None
                        })
                    })
                    .await
                    .and_then(|()| {
                        entry
                            .lock()
                            .playlist(None, false)
                            .ok_or(OriginError::NotFound)
                    })?;
                let ended = entry.lock().packager.is_ended();
                Ok(playlist_reply(
                    body,
                    if ended {
                        cache::ENDED_PLAYLIST
                    } else {
                        cache::LIVE_PLAYLIST
                    },
                ))
            }
            Object::Time
            | Object::License
            | Object::Whep
            | Object::WhepSession { .. }
            | Object::Whip
            | Object::WhipSession { .. }
            | Object::Key { .. } => Err(OriginError::NotFound),
            Object::Mpd => {
                let dash = &self.hub.config().dash;
                let body = self
                    .wait_for(&entry, self.ready_timeout(), |st| match st.mpd(dash) {
                        Some(b) => Ok(Some(b)),
                        None if st.packager.is_ended() => Err(OriginError::NotFound),
                        None => Ok(None),
                    })
                    .await?;
                let ended = entry.lock().packager.is_ended();
                Ok(Reply {
                    status: StatusCode::OK,
                    content_type: "application/dash+xml",
                    cache_control: Caching::Fixed(if ended {
                        cache::ENDED_PLAYLIST
                    } else {
                        cache::LIVE_PLAYLIST
                    }),
                    body: ChunksBody::new([body]),
                })
            }
            Object::MediaPlaylist { rendition } => {
                let blocking = directives.msn.is_some();
                let timeout = self.blocking_timeout(&entry);
                let rendition_ref = rendition.as_str();
                self.wait_for(&entry, timeout, |st| {
                    if !st.packager.is_ready() && !st.packager.is_ended() {
                        return Ok(None);
                    }
                    let r = st
                        .packager
                        .rendition(rendition_ref)
                        .ok_or(OriginError::NotFound)?;
                    let Some(msn) = directives.msn else {
                        return Ok(Some(()));
                    };
                    match blocking_decision(r, msn, directives.part) {
                        BlockingDecision::Ready => Ok(Some(())),
                        BlockingDecision::Wait => Ok(None),
                        BlockingDecision::TooFarAhead => {
                            Err(OriginError::BadRequest("more than two segments ahead"))
                        }
                    }
                })
                .await?;
                let mut st = entry.lock();
                let body = st
                    .playlist(Some(&rendition), directives.skip)
                    .ok_or(OriginError::NotFound)?;
                let cc = if st.packager.is_ended() {
                    cache::ENDED_PLAYLIST
                } else if blocking {
                    cache::BLOCKING_PLAYLIST
                } else {
                    cache::LIVE_PLAYLIST
                };
                Ok(playlist_reply(body, cc))
            }
            Object::Init { rendition, id } => {
                let st = entry.lock();
                let r = st
                    .packager
                    .rendition(&rendition)
                    .ok_or(OriginError::NotFound)?;
                let bytes = r.init(id).ok_or(OriginError::NotFound)?.clone();
                Ok(media_reply(r.kind(), ChunksBody::new([bytes]), None))
            }
            Object::CencInit {
                rendition,
                init_id,
                key_id,
            } => {
                let st = entry.lock();
                let r = st
                    .packager
                    .rendition(&rendition)
                    .ok_or(OriginError::NotFound)?;
                let bytes = r
                    .cenc_init(init_id, key_id)
                    .ok_or(OriginError::NotFound)?
                    .clone();
                Ok(media_reply(r.kind(), ChunksBody::new([bytes]), None))
            }
            Object::CencSegment {
                rendition,
                msn,
                key_id,
            } => {
                self.segment(&entry, rendition, msn, SegmentForm::Cenc { key_id })
                    .await
            }
            Object::Segment { rendition, msn } => {
                self.segment(&entry, rendition, msn, SegmentForm::Hls).await
            }
            Object::Part {
                rendition,
                msn,
                part,
            } => {
                let timeout = self.blocking_timeout(&entry);
                let body = self
                    .wait_for(&entry, timeout, |st| {
                        let r = st
                            .packager
                            .rendition(&rendition)
                            .ok_or(OriginError::NotFound)?;
                        match r.part(msn, part) {
                            Some(p) => Ok(Some((
                                r.kind(),
                                ChunksBody::new([p.encrypted.clone().unwrap_or(p.bytes.clone())]),
                            ))),
                            None if is_upcoming(r, msn, Some(part)) => Ok(None),
                            None => Err(OriginError::NotFound),
                        }
                    })
                    .await?;
                let lifetime = self.window_lifetime(&entry);
                Ok(media_reply(
                    body.0,
                    body.1.shared_for(lifetime),
                    Some(lifetime),
                ))
            }
        }
    }

    /// A segment (complete: at once; in progress: its chunks so far, then each new one as it is cut;
    /// the next one: held until its first chunk) in the LL-HLS or the DASH CENC form.
    pub(super) async fn segment(
        &self,
        entry: &Arc<StreamEntry>,
        rendition: String,
        msn: u64,
        form: SegmentForm,
    ) -> Result<Reply, OriginError> {
        let entry = entry.clone();
        // DVR: a segment that left the live window is read from the stream's recording.
        if form == SegmentForm::Hls {
            let archived = {
                let st = entry.lock();
                st.packager.rendition(&rendition).and_then(|r| {
                    let a = r.archived(msn).filter(|_| r.segment(msn).is_none())?;
                    let dir = st.store_dir.clone()?;
                    let window = st.packager.config().dvr_window?;
                    Some((r.kind(), a.key.clone(), dir, window))
                })
            };
            if let Some((kind, key, dir, window)) = archived {
                let path = dir.join(&rendition).join(format!("{msn}.m4s"));
                let bytes = tokio::fs::read(&path).await.map_err(|error| {
                    tracing::warn!(stream = %entry.name, path = %path.display(), %error, "DVR segment unreadable");
                    OriginError::NotFound
                })?;
                let bytes = match key {
                    None => Bytes::from(bytes),
                    Some(k) => Bytes::from(packager::crypto::encrypt_aes128_cbc(
                        &k.key.key, &k.iv, &bytes,
                    )),
                };
                return Ok(media_reply(kind, ChunksBody::new([bytes]), Some(window)));
            }
        }
        // A complete segment is sent at once. The segment in progress (a low-latency DASH
        // player asks for it once its first chunk exists) is sent as it is produced: the
        // chunks so far, then each new one the moment it is cut. The next segment waits
        // for its first chunk.
        let timeout = self.blocking_timeout(&entry);
        // A segment asked for before it existed was announced by an MPD (the one after the
        // segment in progress). If a discontinuity makes it the first of a new Period instead,
        // it is not what was announced: 404, and the player's next MPD shows the new Period.
        let announced_only = entry
            .lock()
            .packager
            .rendition(&rendition)
            .is_some_and(|r| r.segment(msn).is_none());
        let (kind, parts, complete) = self
            .wait_for(&entry, timeout, |st| {
                let r = st
                    .packager
                    .rendition(&rendition)
                    .ok_or(OriginError::NotFound)?;
                if announced_only && r.segment(msn).is_some_and(|s| s.is_discontinuity) {
                    return Err(OriginError::NotFound);
                }
                match r.segment(msn) {
                    // An encrypted HLS segment is one message: served once complete.
                    Some(s) if form == SegmentForm::Hls && s.is_complete && s.key.is_some() => {
                        Ok(Some((
                            r.kind(),
                            s.encrypted.iter().cloned().collect::<Vec<_>>(),
                            true,
                        )))
                    }
                    Some(s) if form == SegmentForm::Hls && s.key.is_some() => Ok(None),
                    // Named by its key: under another key's name the segment does not exist.
                    Some(s)
                        if matches!(form, SegmentForm::Cenc { key_id }
                            if s.cenc.as_ref().is_none_or(|c| c.key.id != key_id)) =>
                    {
                        Err(OriginError::NotFound)
                    }
                    Some(s) if s.is_complete || !s.parts.is_empty() => Ok(Some((
                        r.kind(),
                        s.parts
                            .iter()
                            .map(|p| part_bytes(p, form))
                            .collect::<Vec<_>>(),
                        s.is_complete,
                    ))),
                    _ if is_upcoming(r, msn, None) => Ok(None),
                    _ => Err(OriginError::NotFound),
                }
            })
            .await?;
        if complete {
            let lifetime = self.window_lifetime(&entry);
            return Ok(media_reply(
                kind,
                ChunksBody::new(parts).shared_for(lifetime),
                Some(lifetime),
            ));
        }
        let guard = entry
            .try_wait(self.hub.config().max_waiters_per_stream)
            .ok_or(OriginError::Unavailable("too many blocked requests"))?;
        let tail = live_segment_tail(LiveSegment {
            entry: entry.clone(),
            rx: entry.subscribe(),
            rendition,
            msn,
            next_part: parts.len(),
            form,
            timeout,
            _guard: guard,
        });
        Ok(media_reply(
            kind,
            ChunksBody::with_tail(parts, tail),
            Some(self.window_lifetime(&entry)),
        ))
    }

    /// How long a segment or part produced now may be cached: no earlier than it leaves the live window
    /// (the window's segments plus two, times the target duration; an older object leaves sooner).
    pub(super) fn window_lifetime(&self, entry: &StreamEntry) -> Duration {
        let config = self.hub.config();
        let td = entry
            .lock()
            .packager
            .target_duration_s()
            .map(|td| Duration::from_secs(u64::from(td)))
            .unwrap_or(config.packager.segment_target);
        td * u32::try_from(config.packager.window_segments + 2).unwrap_or(u32::MAX)
    }

    /// 3× the target duration (RFC 8216bis §6.2.5.2), or 3× the segment target before it is fixed.
    pub(super) fn blocking_timeout(&self, entry: &StreamEntry) -> Duration {
        let td = entry.lock().packager.target_duration_s();
        match td {
            Some(td) => Duration::from_secs(3 * u64::from(td)),
            None => self.hub.config().packager.segment_target * 3,
        }
    }

    /// How long a playlist request waits for a stream that is publishing but not yet ready.
    pub(super) fn ready_timeout(&self) -> Duration {
        self.hub.config().packager.max_target_duration + Duration::from_secs(2)
    }

    /// Evaluate `check` on the stream state now and after each update until it yields a value, fails, or
    /// `timeout` passes (503). Counts as one waiter while blocked.
    pub(super) async fn wait_for<T>(
        &self,
        entry: &Arc<StreamEntry>,
        timeout: Duration,
        mut check: impl FnMut(&mut StreamState) -> Result<Option<T>, OriginError>,
    ) -> Result<T, OriginError> {
        let mut rx = entry.subscribe();
        if let Some(v) = check(&mut entry.lock())? {
            return Ok(v);
        }
        let _guard = entry
            .try_wait(self.hub.config().max_waiters_per_stream)
            .ok_or(OriginError::Unavailable("too many blocked requests"))?;
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            match tokio::time::timeout_at(deadline, rx.changed()).await {
                Ok(Ok(())) => {}
                // The entry was dropped (stream removed): nothing more will come.
                Ok(Err(_)) => return Err(OriginError::NotFound),
                Err(_) => return Err(OriginError::Unavailable("not available in time")),
            }
            {
                let mut st = entry.lock();
                if let Some(v) = check(&mut st)? {
                    return Ok(v);
                }
                if st.packager.is_ended() {
                    return Err(OriginError::NotFound);
                }
            }
            // If this entry was replaced by a new publish of the same name, stop waiting on it.
            if !self
                .hub
                .get(&entry.name)
                .is_some_and(|e| Arc::ptr_eq(&e, entry))
            {
                return Err(OriginError::NotFound);
            }
        }
    }
}

/// A segment in progress being streamed to one client.
pub(super) struct LiveSegment {
    pub(super) entry: Arc<StreamEntry>,
    pub(super) rx: tokio::sync::watch::Receiver<u64>,
    pub(super) rendition: String,
    pub(super) msn: u64,
    /// Index of the next part to send.
    pub(super) next_part: usize,
    /// Which bytes of each part.
    pub(super) form: SegmentForm,
    /// Longest wait for one chunk (3× the target duration).
    pub(super) timeout: Duration,
    /// Counts the response as a blocked request while it streams.
    pub(super) _guard: crate::hub::WaiterGuard,
}

/// What a streamed segment does next.
pub(super) enum TailStep {
    Chunk(Bytes),
    Done,
    Wait,
}

/// The chunks of segment `msn` from `next_part` on, each as soon as it exists; ends when the segment is
/// complete. Fails (cutting the response off) when the segment disappears, the stream goes away, or no
/// chunk comes within the timeout.
pub(super) fn live_segment_tail(state: LiveSegment) -> LiveTail {
    Box::pin(futures::stream::unfold(Some(state), |state| async move {
        let mut st = state?;
        loop {
            let step = {
                let guard = st.entry.lock();
                match guard.packager.rendition(&st.rendition) {
                    None => Err(OriginError::NotFound),
                    Some(r) => match r.segment(st.msn) {
                        Some(seg) => match seg.parts.get(st.next_part) {
                            Some(p) => Ok(TailStep::Chunk(part_bytes(p, st.form))),
                            None if seg.is_complete => Ok(TailStep::Done),
                            None => Ok(TailStep::Wait),
                        },
                        None => Err(OriginError::NotFound),
                    },
                }
            };
            match step {
                Ok(TailStep::Chunk(b)) => {
                    st.next_part += 1;
                    return Some((Ok(b), Some(st)));
                }
                Ok(TailStep::Done) => return None,
                Ok(TailStep::Wait) => {
                    match tokio::time::timeout(st.timeout, st.rx.changed()).await {
                        Ok(Ok(())) => {}
                        Ok(Err(_)) => return Some((Err(OriginError::NotFound), None)),
                        Err(_) => {
                            tracing::warn!(
                                stream = %st.entry.name,
                                rendition = %st.rendition,
                                msn = st.msn,
                                "segment in progress got no chunk in time: response cut off"
                            );
                            return Some((Err(OriginError::Unavailable("segment stalled")), None));
                        }
                    }
                }
                Err(e) => return Some((Err(e), None)),
            }
        }
    }))
}

/// The bytes of part `p` in a segment of form `form` (clear for LL-HLS: an encrypted HLS segment is
/// served whole, never through here).
pub(super) fn part_bytes(p: &packager::rendition::Part, form: SegmentForm) -> Bytes {
    match form {
        SegmentForm::Hls => p.bytes.clone(),
        SegmentForm::Cenc { .. } => p.cenc.clone().unwrap_or_default(),
    }
}
