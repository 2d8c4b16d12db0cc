//! What the JSON API (`GET /api/streams`) and the metrics report of a stream: state, publisher,
//! renditions, requests, ingest and transcoder counters.

use super::StreamEntry;

/// One stream in the API (`GET /api/streams`).
#[derive(Debug, serde::Serialize)]
pub struct StreamReport {
    /// `live/{name}`.
    pub name: String,
    /// `live` (a publisher is connected), `reconnecting` (grace period) or `ended`.
    pub state: &'static str,
    /// `rtmp` or `srt`, while live.
    pub protocol: Option<&'static str>,
    /// The publisher's address, while live.
    pub client: Option<String>,
    /// Seconds since this publisher connected, while live.
    pub uptime_s: Option<f64>,
    /// Whether the stream is encrypted.
    pub encrypted: bool,
    /// The playlists' target duration, seconds (once fixed).
    pub target_duration_s: Option<u32>,
    /// The renditions.
    pub renditions: Vec<RenditionReport>,
    /// HTTP requests for the stream's objects since it started.
    pub requests_total: u64,
    /// HTTP requests per second over the last complete 10 s window.
    pub requests_per_s: f64,
    /// Requests blocked on the stream right now (blocking reloads, parts, segments in progress).
    pub blocked_requests: usize,
    /// What the publishers delivered since the stream started (updated about once a second).
    pub ingest: crate::hub::IngestCounters,
    /// The current (or last) SRT connection's receive counters.
    pub srt: Option<crate::ingest::TransportStats>,
    /// The ladder's state, when the stream is transcoded.
    pub transcoder: Option<TranscoderReport>,
    /// Source tracks of the current publish that are not used (e.g. MP3 audio on a stream packaged as
    /// it arrives), with why.
    pub unusable_tracks: Vec<UnusableTrackReport>,
    /// WebRTC (WHEP) counters, when WebRTC is served: sessions now, bytes and packets sent, NACKs,
    /// keyframe requests, viewers dropped to the next keyframe.
    pub webrtc: Option<crate::webrtc::WebRtcStats>,
    /// The video renditions WebRTC viewers can be sent (`?rendition=` of a WHEP request), when WebRTC
    /// is served.
    pub webrtc_renditions: Option<Vec<String>>,
    /// Timed events stamped onto the stream since it started, by kind (`metadata`).
    pub events: std::collections::BTreeMap<&'static str, u64>,
}

/// A source track that is not used, in a [`StreamReport`].
#[derive(Debug, serde::Serialize)]
pub struct UnusableTrackReport {
    /// `video` or `audio`.
    pub kind: &'static str,
    /// The codec, lower case (`mp3`, `speex`, `stream_type 0x10` …).
    pub codec: String,
    /// Why it is not used.
    pub reason: String,
}

/// The transcoder's state in a [`StreamReport`].
#[derive(Debug, serde::Serialize)]
pub struct TranscoderReport {
    /// Media seconds processed per wall-clock second (about 1.0 when keeping up).
    pub real_time_factor: f64,
    /// How far the slowest encoded rung trails the newest source frame, ms.
    pub lag_ms: i64,
    /// Rungs shed because the stream could not keep up, in shedding order.
    pub shed_rungs: Vec<String>,
    /// Source frames the decoder rejected.
    pub decode_errors: u64,
    /// Source video frames dropped before decoding (queue overflow).
    pub frames_dropped: u64,
    /// Copied renditions encoded from a grid point on, because the source's keyframes left the
    /// segment grid there.
    pub replaced_copies: Vec<String>,
}

/// One rendition in a [`StreamReport`].
#[derive(Debug, serde::Serialize)]
pub struct RenditionReport {
    /// Its name (folder in URLs).
    pub name: String,
    /// `video` or `audio`.
    pub kind: &'static str,
    /// RFC 6381 codec string.
    pub codec: String,
    /// Picture width and height, pixels (video).
    pub width: Option<u32>,
    /// See `width`.
    pub height: Option<u32>,
    /// The BANDWIDTH it is announced with, bit/s.
    pub bandwidth_bps: Option<u64>,
    /// Measured over the complete segments in the window, bit/s.
    pub measured_bitrate_bps: Option<u64>,
    /// Frames packaged, frames dropped, parts and segments produced since the stream started.
    pub frames: u64,
    /// See `frames`.
    pub dropped_frames: u64,
    /// See `frames`.
    pub parts: u64,
    /// See `frames`.
    pub segments: u64,
}

impl StreamReport {
    /// The report of `entry` now.
    pub fn of(entry: &StreamEntry) -> Self {
        let webrtc = entry
            .webrtc
            .as_ref()
            .map(|w| w.stats(&entry.name).unwrap_or_default());
        let st = entry.lock();
        let state = if st.packager.is_ended() || st.ended_at.is_some() {
            "ended"
        } else if st.publisher.is_some() {
            "live"
        } else {
            "reconnecting"
        };
        let renditions = st
            .packager
            .renditions()
            .map(|r| {
                let track = r.track();
                let params = track.config.video_params();
                let counters = r.counters();
                let (bytes, ticks) = r
                    .segments()
                    .iter()
                    .filter(|s| s.is_complete)
                    .fold((0u64, 0u64), |(b, t), s| {
                        (b + s.size_bytes() as u64, t + s.duration_ticks())
                    });
                RenditionReport {
                    name: r.name().to_owned(),
                    kind: match r.kind() {
                        media::TrackKind::Video => "video",
                        media::TrackKind::Audio => "audio",
                    },
                    codec: track.config.rfc6381(),
                    width: params.map(|p| p.width),
                    height: params.map(|p| p.height),
                    bandwidth_bps: r.declared_bandwidth(r.current_init_id()),
                    measured_bitrate_bps: (ticks > 0)
                        .then(|| bytes * 8 * u64::from(r.timescale()) / ticks),
                    frames: counters.frames,
                    dropped_frames: counters.dropped_frames,
                    parts: counters.parts,
                    segments: counters.segments,
                }
            })
            .collect();
        Self {
            name: entry.name.clone(),
            state,
            protocol: st.publisher.as_ref().map(|p| p.protocol.as_str()),
            client: st.publisher.as_ref().map(|p| p.peer.to_string()),
            uptime_s: st
                .publisher
                .as_ref()
                .map(|p| (p.since.elapsed().as_secs_f64() * 10.0).round() / 10.0),
            encrypted: st.packager.is_encrypted(),
            target_duration_s: st.packager.target_duration_s(),
            renditions,
            requests_total: entry.requests().total(),
            requests_per_s: (entry.requests().per_second() * 10.0).round() / 10.0,
            blocked_requests: entry.waiters(),
            ingest: st.ingest,
            srt: st.transport,
            transcoder: st.transcode.as_ref().map(|t| TranscoderReport {
                real_time_factor: (t.real_time_factor * 1000.0).round() / 1000.0,
                lag_ms: t.lag_ms,
                shed_rungs: t.shed_rungs.clone(),
                decode_errors: t.decode_errors,
                frames_dropped: t.video_frames_dropped,
                replaced_copies: t
                    .rungs
                    .iter()
                    .filter(|r| r.is_replaced)
                    .map(|r| r.name.clone())
                    .collect(),
            }),
            unusable_tracks: st
                .unusable_tracks
                .iter()
                .map(|t| UnusableTrackReport {
                    kind: t.kind_name(),
                    codec: t.codec.clone(),
                    reason: t.reason.clone(),
                })
                .collect(),
            webrtc_renditions: webrtc.as_ref().map(|_| {
                st.webrtc_feed
                    .renditions()
                    .filter(|(_, fit)| fit.is_ok())
                    .map(|(name, _)| name.to_owned())
                    .collect()
            }),
            webrtc,
            events: st
                .packager
                .event_counts()
                .map(|(kind, n)| (kind.as_str(), n))
                .collect(),
        }
    }
}
