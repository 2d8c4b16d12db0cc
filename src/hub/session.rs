//! Publishing: authorisation, the start of a publish (a new stream, or a reconnect within the grace
//! period), and the session that feeds the stream's packager (directly or through the ladder's
//! transcoder) and marks the stream disconnected when it ends.

use std::{
    net::SocketAddr,
    sync::{Arc, atomic::Ordering},
    time::{Duration, Instant},
};

use super::{Hub, IngestCounters, PublisherInfo, StreamEntry, unix_ms};
use crate::hub::track_gate::{TrackGate, Verdict};
use crate::ingest::{IngestEvent, Protocol, PublishRefused, PublishSession, Publisher};

impl Publisher for Hub {
    fn authorize<'a>(
        &'a self,
        request: &'a crate::auth::PublishRequest,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), PublishRefused>> + Send + 'a>>
    {
        Box::pin(async move {
            if let Some(auth) = &self.config.auth {
                auth.authorize_publish(request).await?;
            }
            // A draining node takes no new stream (its own streams' publishers may come back).
            let live_here = self
                .get(&request.stream)
                .is_some_and(|e| e.lock().ended_at.is_none());
            if self.is_draining() && !live_here {
                return Err(PublishRefused::Unavailable("node draining"));
            }
            // In a cluster, the name must be this node's (a new claim, or its own), and its numbering
            // continues where the store has it.
            if let Some(cluster) = &self.config.cluster {
                let floor = self.first_msn(&request.stream).max(
                    self.get(&request.stream)
                        .map_or(0, |e| e.lock().packager.next_msn()),
                );
                cluster
                    .claim(&request.stream, floor)
                    .await
                    .map_err(|refused| {
                        tracing::debug!(stream = %request.stream, reason = %refused, "cluster claim refused");
                        match refused {
                            crate::cluster::ClaimRefused::OwnedElsewhere { stream, .. } => {
                                PublishRefused::AlreadyLive(stream)
                            }
                            _ => PublishRefused::Unavailable("cluster store unreachable"),
                        }
                    })?;
            }
            Ok(())
        })
    }

    fn begin_publish(
        &self,
        stream: &str,
        protocol: Protocol,
        peer: SocketAddr,
    ) -> Result<Box<dyn PublishSession>, PublishRefused> {
        let Ok(full) = stream.parse::<media::name::StreamName>() else {
            return Err(PublishRefused::InvalidName(stream.to_owned()));
        };
        let full = full.into_string();
        let info = PublisherInfo {
            protocol,
            peer,
            since: Instant::now(),
        };
        let mut streams = self.streams();
        let entry = match streams.get(&full).cloned() {
            Some(entry) => {
                let mut st = entry.lock();
                if st.publisher.is_some() {
                    return Err(PublishRefused::AlreadyLive(full));
                }
                if st.ended_at.is_none() {
                    // Reconnect within the grace period: same playlists, after a discontinuity.
                    st.packager.discontinuity();
                    st.publisher = Some(info);
                    entry.kicked.store(false, Ordering::Release);
                    st.disconnected_at = None;
                    entry.bump(&mut st);
                    tracing::info!(stream = %full, %peer, "publisher reconnected: continuing after a discontinuity");
                    drop(st);
                    entry
                } else {
                    let first = st.packager.next_msn().max(self.first_msn(&full));
                    drop(st);
                    let fresh = self.new_entry(&full, first, info);
                    streams.insert(full.clone(), fresh.clone());
                    // Wake anyone still blocked on the old entry.
                    entry.bump(&mut entry.lock());
                    fresh
                }
            }
            None => {
                if streams.len() >= self.config.max_streams {
                    return Err(PublishRefused::Unavailable("stream limit reached"));
                }
                let fresh = self.new_entry(&full, self.first_msn(&full), info);
                streams.insert(full.clone(), fresh.clone());
                fresh
            }
        };
        drop(streams);
        tracing::info!(stream = %full, %peer, protocol = protocol.as_str(), "publish started");
        let ladder = self
            .config
            .ladder
            .as_ref()
            .filter(|l| l.applies_to(&full))
            .map(|l| crate::hub::ladder::SessionLadder::new(l.clone()));
        let unpublish = self.config.auth.clone().map(|auth| {
            (
                auth,
                crate::auth::PublishRequest {
                    stream: full.clone(),
                    protocol,
                    peer,
                    params: Default::default(),
                },
            )
        });
        {
            let mut st = entry.lock();
            st.unusable_tracks.clear();
            st.webrtc_feed.clear();
        }
        if let Some(cluster) = &self.config.cluster {
            cluster.confirm(&full);
        }
        Ok(Box::new(HubSession {
            gate: TrackGate::new(ladder.is_some(), transcoder::check_decoder),
            refused: None,
            entry,
            dropped_frames_logged: false,
            ladder,
            unpublish,
            ingest: IngestCounters::default(),
            flushed_at: Instant::now(),
            webrtc: self.config.webrtc.clone(),
            opus_source: None,
            opus: None,
            timescales: [None, None],
            edge_pts_90khz: None,
            caption_syntax: None,
            captions: Default::default(),
            splice_outs: Default::default(),
        }))
    }
}

/// The most splice outs a session remembers by event id (see [`HubSession::splice_id`]).
const MAX_SPLICE_OUTS: usize = 256;

/// A publish session feeding one stream's packager.
struct HubSession {
    entry: Arc<StreamEntry>,
    /// Which source tracks are used (see [`crate::hub::track_gate`]).
    gate: TrackGate,
    /// Set when the gate refused the publish: the driver closes the connection, events are ignored.
    refused: Option<PublishRefused>,
    dropped_frames_logged: bool,
    /// The stream's ladder, when it is transcoded.
    ladder: Option<crate::hub::ladder::SessionLadder>,
    /// Who to tell when the publish ends (the webhook's `unpublish`).
    unpublish: Option<(Arc<crate::auth::Auth>, crate::auth::PublishRequest)>,
    /// Received since the last flush into the stream state.
    ingest: IngestCounters,
    /// When the counters were last flushed.
    flushed_at: Instant,
    /// The WebRTC engine, when WHEP is served.
    webrtc: Option<Arc<crate::webrtc::WebRtc>>,
    /// The source audio track, when WebRTC is served and FFmpeg decodes it (for Opus).
    opus_source: Option<media::TrackInfo>,
    /// The stream's audio as Opus for its WebRTC viewers, while it has any (`Err`: libopus failed
    /// for this track, reported once).
    opus: Option<Result<transcoder::OpusEncoder, ()>>,
    /// The timescales of the publish's used tracks: [video, audio].
    timescales: [Option<u32>; 2],
    /// The latest presentation time at the live edge of ingest, 90 kHz ticks on the publish's input
    /// timeline (video frames; audio frames on a stream without video).
    edge_pts_90khz: Option<i64>,
    /// The source video's bitstream syntax, when it may carry closed captions (H.264, HEVC, MPEG-2).
    caption_syntax: Option<media::captions::VideoSyntax>,
    /// The closed-caption services seen in the source's video so far.
    captions: media::captions::CaptionServices,
    /// The publisher's splice outs by their base id (`splice-{splice_event_id}`): the id the latest
    /// was listed under and its section, to tell a repeat from a new break reusing the event id.
    splice_outs: std::collections::HashMap<String, (String, bytes::Bytes)>,
}

impl HubSession {
    /// Add the counters gathered since the last flush (and the transcoder's snapshot) to the state.
    fn flush_counters(&mut self) {
        let mut st = self.entry.lock();
        st.ingest.video_frames += self.ingest.video_frames;
        st.ingest.audio_frames += self.ingest.audio_frames;
        st.ingest.bytes += self.ingest.bytes;
        st.transcode = self.ladder.as_ref().and_then(|l| l.stats());
        self.ingest = IngestCounters::default();
        self.flushed_at = Instant::now();
    }
}

impl HubSession {
    /// A source audio frame for the stream's WebRTC viewers: encoded to Opus once per stream while it
    /// has viewers (the encoder starts with the first, stops after the last).
    fn send_to_webrtc(&mut self, frame: &media::Frame) {
        let (Some(webrtc), Some(source)) = (&self.webrtc, &self.opus_source) else {
            return;
        };
        if frame.track != media::TrackKind::Audio {
            return;
        }
        if !webrtc.is_watched(&self.entry.name) {
            self.opus = None;
            return;
        }
        let encoder = self.opus.get_or_insert_with(|| {
            let (webrtc, stream) = (webrtc.clone(), Arc::<str>::from(self.entry.name.as_str()));
            let sink = Box::new(move |p: transcoder::OpusPacket| {
                webrtc.audio(crate::webrtc::AudioPacket {
                    stream: stream.clone(),
                    pts_48khz: p.pts_48khz,
                    data: p.data.as_ref().into(),
                })
            });
            transcoder::OpusEncoder::start(&self.entry.name, source, sink).map_err(|error| {
                tracing::warn!(stream = %self.entry.name, %error, "no Opus audio for WebRTC viewers: they get video only");
            })
        });
        if let Ok(encoder) = encoder {
            encoder.push(frame.clone());
        }
    }

    /// A frame at the live edge of ingest (video; audio on a stream without video): the timed
    /// metadata waiting is stamped with the latest presentation time so far.
    fn stamp_events(&mut self, frame: &media::Frame) {
        let is_edge = match frame.track {
            media::TrackKind::Video => true,
            media::TrackKind::Audio => self.timescales[0].is_none(),
        };
        let Some(timescale) = self.timescales[usize::from(frame.track == media::TrackKind::Audio)]
        else {
            return;
        };
        if !is_edge {
            return;
        }
        let pts = media::time::rescale(frame.pts, timescale, 90_000);
        let edge = self.edge_pts_90khz.map_or(pts, |e| e.max(pts));
        self.edge_pts_90khz = Some(edge);
        let points = self.entry.stamp_waiting_events(edge);
        self.splice_at(&points);
    }

    /// Look for closed captions in a source video frame's SEI; a service seen for the first time is
    /// announced (logged once, and listed by the playlists from then on).
    fn scan_captions(&mut self, frame: &media::Frame) {
        let Some(syntax) = self.caption_syntax else {
            return;
        };
        if frame.track != media::TrackKind::Video {
            return;
        }
        let seen = self
            .captions
            .union(media::captions::scan_frame(&frame.data, syntax));
        if seen != self.captions {
            tracing::info!(stream = %self.entry.name, services = ?seen, "closed captions in the source's video");
            self.captions = seen;
            self.entry.lock().packager.add_caption_services(seen);
        }
    }

    /// Splice points (input timeline, 90 kHz ticks) where every rendition of the ladder must start a
    /// segment with a keyframe; without a ladder the source's own keyframes cut the segments.
    fn splice_at(&mut self, points: &[i64]) {
        if let Some(ladder) = &mut self.ladder {
            for &pts in points {
                ladder.splice_at(&self.entry, pts);
            }
        }
    }

    /// An SCTE-35 section from the publisher: a splice_insert or time_signal becomes a marker at its
    /// splice time (at the live edge of ingest for "now"); heartbeats and the other commands are not
    /// carried.
    fn splice(&mut self, splice: protocols::SpliceEvent) {
        use packager::events::{SpliceDirection, SpliceMarker};
        use protocols::scte35::{self, SpliceCommand};
        let info = &splice.info;
        let id = match &info.command {
            SpliceCommand::Insert(i) if i.cancel => format!("splice-{}-cancel", i.event_id),
            SpliceCommand::Insert(i) => format!("splice-{}", i.event_id),
            SpliceCommand::TimeSignal { .. } => match info.segmentation.first() {
                Some(d) => format!("signal-{}", d.event_id),
                // No event id: named by its time, unique within the stream's timeline.
                None => format!(
                    "signal-at-{}",
                    splice.pts_90khz.or(self.edge_pts_90khz).unwrap_or_default()
                ),
            },
            _ => {
                tracing::debug!(stream = %self.entry.name, command = ?info.command, "scte-35 command not carried");
                return;
            }
        };
        let Some(pts) = splice.pts_90khz.or(self.edge_pts_90khz) else {
            tracing::warn!(stream = %self.entry.name, %id, "scte-35 splice before any frame: not carried");
            return;
        };
        let Some(id) = self.splice_id(id, info) else {
            return;
        };
        let marker = SpliceMarker {
            id,
            direction: match info.direction() {
                scte35::SpliceDirection::Out => SpliceDirection::Out,
                scte35::SpliceDirection::In => SpliceDirection::In,
                scte35::SpliceDirection::Cmd => SpliceDirection::Cmd,
            },
            section: info.section.clone(),
            planned_duration_ms: info.duration_90khz().map(|d| d / 90),
        };
        tracing::info!(stream = %self.entry.name, id = %marker.id, direction = ?marker.direction, pts_90khz = pts, "scte-35 marker");
        let points = marker.splice_points(pts);
        self.entry
            .send_to_webrtc(&packager::events::EventPayload::Splice(marker.clone()), pts);
        self.entry.lock().packager.add_splice(marker, pts);
        self.splice_at(&points);
    }

    /// The DATERANGE id of a publisher's splice whose base id is `id`: an out sent again (the same
    /// section: encoders repeat a splice_insert ahead of its time) is dropped (`None`); an out that
    /// reuses the event id of one already listed (encoders that number every break 0) gets
    /// `{id}-{n}`, since two DATERANGEs with one ID must agree (RFC 8216bis §4.4.5.1); an in or a
    /// command takes the id of the latest out with its event id.
    fn splice_id(&mut self, id: String, info: &protocols::scte35::SpliceInfo) -> Option<String> {
        if info.direction() != protocols::scte35::SpliceDirection::Out {
            return Some(
                self.splice_outs
                    .get(&id)
                    .map_or(id, |(listed, _)| listed.clone()),
            );
        }
        if let Some((listed, section)) = self.splice_outs.get(&id)
            && *section == info.section
        {
            tracing::debug!(stream = %self.entry.name, id = %listed, "scte-35 out repeated: already carried");
            return None;
        }
        let mut listed = id.clone();
        {
            let st = self.entry.lock();
            let mut n = 1;
            while st.packager.has_event_id(&listed) {
                n += 1;
                listed = format!("{id}-{n}");
            }
            // Bounded however many event ids a publisher uses: outs no longer listed are forgotten.
            if self.splice_outs.len() >= MAX_SPLICE_OUTS {
                self.splice_outs
                    .retain(|_, (l, _)| st.packager.has_event_id(l));
            }
        }
        self.splice_outs
            .insert(id, (listed.clone(), info.section.clone()));
        Some(listed)
    }

    /// Package a source frame directly (passthrough).
    fn package(&mut self, frame: media::Frame) {
        let mut st = self.entry.lock();
        if let Some(webrtc) = &self.webrtc
            && let Some(video) = st
                .webrtc_feed
                .frame(packager::stream::SOURCE_RENDITION, &frame)
        {
            webrtc.video(video);
        }
        let update = st.packager.push_frame(frame, unix_ms());
        self.entry.reserve_msns(&st);
        self.entry.observe_part_latency(&mut st);
        if update.became_ready {
            tracing::info!(stream = %self.entry.name, "playlists ready");
        }
        if update.has_new_media || update.became_ready {
            self.entry.bump(&mut st);
        }
        if !self.dropped_frames_logged
            && st
                .packager
                .renditions()
                .any(|r| r.counters().dropped_frames > 0)
        {
            self.dropped_frames_logged = true;
            tracing::warn!(stream = %self.entry.name, "frames dropped (before a keyframe or going backwards); counted");
        }
    }
}

impl HubSession {
    /// Act on a verdict that is not [`Verdict::Use`]: report an unusable track (one warning, the API and
    /// the metrics), or remember the refusal (the driver logs it once and closes the connection).
    fn judged(&mut self, verdict: Verdict) {
        match verdict {
            Verdict::Use | Verdict::Ignore => {}
            Verdict::Report(track) => {
                tracing::warn!(
                    stream = %self.entry.name,
                    kind = track.kind_name(),
                    codec = %track.codec,
                    reason = %track.reason,
                    "source track not used: the stream continues without it"
                );
                let mut st = self.entry.lock();
                st.unusable_tracks.retain(|t| t.kind != track.kind);
                st.unusable_tracks.push(track);
            }
            Verdict::Refuse(refused) => {
                tracing::debug!(stream = %self.entry.name, reason = %refused, "publish refused by its tracks");
                self.refused = Some(refused);
            }
        }
    }

    /// A source track is used (again): it is no longer reported.
    fn track_used(&self, kind: media::TrackKind) {
        let mut st = self.entry.lock();
        if st.unusable_tracks.iter().any(|t| t.kind == kind) {
            st.unusable_tracks.retain(|t| t.kind != kind);
        }
    }
}

impl PublishSession for HubSession {
    fn is_kicked(&self) -> bool {
        self.entry.is_kicked()
    }

    fn refusal(&self) -> Option<PublishRefused> {
        self.refused.clone()
    }

    fn transport_stats(&mut self, stats: crate::ingest::TransportStats) {
        self.entry.lock().transport = Some(stats);
    }

    fn event(&mut self, event: IngestEvent) {
        if self.refused.is_some() {
            return;
        }
        match event {
            IngestEvent::Track(track) => {
                tracing::info!(stream = %self.entry.name, codec = %track.config.rfc6381(), "track");
                if track.kind() == media::TrackKind::Audio && self.webrtc.is_some() {
                    self.opus = None;
                    self.opus_source = transcoder::check_decoder(&track)
                        .is_ok()
                        .then(|| track.clone());
                }
                match self.gate.track(&track) {
                    Verdict::Use => {
                        self.track_used(track.kind());
                        if track.kind() == media::TrackKind::Video {
                            self.caption_syntax = match track.config {
                                media::CodecConfig::Avc(_) => {
                                    Some(media::captions::VideoSyntax::Avc)
                                }
                                media::CodecConfig::Hevc(_) => {
                                    Some(media::captions::VideoSyntax::Hevc)
                                }
                                media::CodecConfig::Decodable(ref d)
                                    if matches!(
                                        d.codec,
                                        media::decodable::DecodableCodec::Mpeg2Video
                                    ) =>
                                {
                                    Some(media::captions::VideoSyntax::Mpeg2)
                                }
                                _ => None,
                            };
                        }
                        self.timescales[usize::from(track.kind() == media::TrackKind::Audio)] =
                            Some(track.timescale);
                    }
                    verdict => return self.judged(verdict),
                }
                let failed = match &mut self.ladder {
                    Some(ladder) => ladder.track(&self.entry, track.clone()).err(),
                    None => {
                        let mut st = self.entry.lock();
                        st.packager.set_track(track.clone());
                        st.webrtc_feed
                            .track(packager::stream::SOURCE_RENDITION, &track);
                        None
                    }
                };
                if let Some(held) = failed {
                    self.fall_back_to_source(held);
                }
            }
            IngestEvent::Unusable(track) => {
                let verdict = self.gate.unusable(track);
                self.judged(verdict);
            }
            IngestEvent::Splice(splice) => self.splice(splice),
            IngestEvent::Frame(frame) => {
                match frame.track {
                    media::TrackKind::Video => self.ingest.video_frames += 1,
                    media::TrackKind::Audio => self.ingest.audio_frames += 1,
                }
                self.ingest.bytes += frame.data.len() as u64;
                if self.flushed_at.elapsed() >= Duration::from_secs(1) {
                    self.flush_counters();
                }
                if !self.gate.admits(frame.track) {
                    return;
                }
                self.stamp_events(&frame);
                self.scan_captions(&frame);
                self.send_to_webrtc(&frame);
                let Some(ladder) = &mut self.ladder else {
                    self.package(frame);
                    return;
                };
                if let Err(frames) = ladder.frame(&self.entry, frame) {
                    self.fall_back_to_source(frames);
                }
            }
        }
    }
}

impl HubSession {
    /// The transcoder could not start: package the source as it arrives from now on, beginning with
    /// `frames` (those it held).
    fn fall_back_to_source(&mut self, frames: Vec<media::Frame>) {
        // The tracks that can be packaged as they arrive; the others are refused or reported.
        self.ladder = None;
        for (track, verdict) in self.gate.stop_transcoding() {
            match verdict {
                Verdict::Use => {
                    let mut st = self.entry.lock();
                    st.webrtc_feed
                        .track(packager::stream::SOURCE_RENDITION, &track);
                    st.packager.set_track(track);
                }
                verdict => self.judged(verdict),
            }
        }
        for frame in frames {
            if self.refused.is_none() && self.gate.admits(frame.track) {
                self.package(frame);
            }
        }
    }
}

impl Drop for HubSession {
    fn drop(&mut self) {
        self.flush_counters();
        // Stop the transcoder (joins its threads) before the stream is marked disconnected.
        self.ladder = None;
        let mut st = self.entry.lock();
        st.transcode = None;
        st.publisher = None;
        st.disconnected_at = Some(Instant::now());
        self.entry.bump(&mut st);
        tracing::info!(stream = %self.entry.name, "publisher disconnected: grace period started");
        drop(st);
        if let Some((auth, request)) = self.unpublish.take() {
            auth.notify_unpublish(request);
        }
    }
}
