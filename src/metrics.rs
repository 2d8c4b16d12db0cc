//! Prometheus metrics at `GET /metrics`, in the OpenMetrics text format (`prometheus-client`).
//!
//! Two kinds of series:
//! - counted as they happen ([`Metrics`]): HTTP requests by route and status, and bytes sent by route
//!   (counted as each body chunk is sent, so a streamed segment counts what actually went out);
//! - read from the live state at each scrape ([`Metrics::encode`]): per stream and rendition, frames
//!   packaged and dropped, parts and segments produced, the measured bit rate, the stream's state,
//!   blocked requests and requests served, frames and bytes received from the publisher, SRT receive
//!   counters, the transcoder's real-time factor, lag and shed rungs, source tracks not used; playback
//!   refusals by reason and publish refusals;
//! - observed as parts are published: the part publication latency histogram ([`PartLatencyFamily`]).
//!
//! Every series is prefixed `estuary_`. Counters end in `_total` (OpenMetrics).

use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family, gauge::Gauge},
    registry::Registry,
};

pub use crate::hub::part_latency::{
    PART_LATENCY_BUCKETS_S, PartLatencyFamily, RenditionLabels, part_latency_family,
};
use crate::{auth::Auth, hub::Hub};

/// Labels of the HTTP series.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HttpLabels {
    /// The route (`segment`, `part`, `blocking_playlist`, …; see [`crate::http`]).
    pub route: &'static str,
    /// The HTTP status code.
    pub status: u16,
}

/// Labels of the HTTP bytes series.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    /// The route.
    pub route: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StreamLabels {
    stream: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabels {
    stream: String,
    state: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    stream: String,
    kind: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TrackLabels {
    stream: String,
    kind: &'static str,
    codec: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: &'static str,
}

/// Series counted as requests are served (shared by every connection).
#[derive(Debug, Default)]
pub struct Metrics {
    http_requests: Family<HttpLabels, Counter>,
    http_bytes: Family<RouteLabels, Counter>,
}

impl Metrics {
    /// Count one response.
    pub fn count_request(&self, route: &'static str, status: u16) {
        self.http_requests
            .get_or_create(&HttpLabels { route, status })
            .inc();
    }

    /// The counter of body bytes sent for `route` (incremented as chunks go out).
    pub fn bytes_counter(&self, route: &'static str) -> Counter {
        self.http_bytes
            .get_or_create(&RouteLabels { route })
            .clone()
    }

    /// The exposition: the counted series plus the state of `hub` and `auth` now.
    ///
    /// Errors: only if formatting into a `String` fails (it does not).
    /// `in_flight`: HTTP requests in flight now; `sendfile_cache_bytes`: bytes of the memory files
    /// media objects are sent from.
    pub fn encode(
        &self,
        hub: &Hub,
        auth: &Auth,
        in_flight: usize,
        sendfile_cache_bytes: u64,
    ) -> Result<String, std::fmt::Error> {
        let mut registry = Registry::with_prefix("estuary");
        let node = |value: i64| {
            let g = Gauge::<i64, std::sync::atomic::AtomicI64>::default();
            g.set(value);
            g
        };
        registry.register(
            "http_requests_in_flight",
            "HTTP requests in flight (held blocking reloads and responses being sent included)",
            node(i64::try_from(in_flight).unwrap_or(i64::MAX)),
        );
        registry.register(
            "http_sendfile_cache_bytes",
            "Bytes of the memory files complete segments and parts are sent from with sendfile (shared memory, outside the resident set)",
            node(i64::try_from(sendfile_cache_bytes).unwrap_or(i64::MAX)),
        );
        if let Some(cpu_s) = crate::cluster::load::process_cpu_seconds() {
            let cpu = Counter::<f64, std::sync::atomic::AtomicU64>::default();
            cpu.inc_by(cpu_s);
            registry.register(
                "process_cpu_seconds",
                "User and system CPU time of the origin process (its rate over all cores is the node's CPU load)",
                cpu,
            );
        }
        registry.register(
            "node_draining",
            "1 while the node drains (refuses new publishes, /readyz 503)",
            node(i64::from(hub.is_draining())),
        );
        registry.register(
            "node_live_streams",
            "Streams with a publisher or waiting for one within the grace period",
            node(i64::try_from(hub.live_streams()).unwrap_or(i64::MAX)),
        );
        registry.register(
            "http_requests",
            "HTTP responses by route and status",
            self.http_requests.clone(),
        );
        registry.register(
            "http_response_bytes",
            "HTTP body bytes sent by route",
            self.http_bytes.clone(),
        );

        if let Some(rec) = &hub.config().recorder {
            let counter = |v: u64| {
                let c = Counter::<u64>::default();
                c.inc_by(v);
                c
            };
            use std::sync::atomic::Ordering::Relaxed;
            registry.register(
                "recording_segments",
                "Segments written to recordings",
                counter(rec.segments.load(Relaxed)),
            );
            registry.register(
                "recording_segment_bytes",
                "Bytes of segments written to recordings",
                counter(rec.bytes.load(Relaxed)),
            );
            registry.register(
                "recording_failures",
                "Recordings stopped by a write error (disk full, unwritable) or a disk that could not keep up; the live stream went on",
                counter(rec.failures.load(Relaxed)),
            );
            registry.register(
                "recording_expired",
                "Recordings deleted by retention (max_age, max_bytes)",
                counter(rec.expired.load(Relaxed)),
            );
        }
        let denials = Family::<ReasonLabels, Counter>::default();
        for d in crate::auth::Denial::ALL {
            denials
                .get_or_create(&ReasonLabels { reason: d.reason() })
                .inc_by(auth.stats.denials(d));
        }
        registry.register(
            "auth_denials",
            "Playback requests refused, by reason",
            denials,
        );
        let refusals = Counter::<u64>::default();
        refusals.inc_by(
            auth.stats
                .publish_refusals
                .load(std::sync::atomic::Ordering::Relaxed),
        );
        registry.register(
            "publish_refusals",
            "Publishes refused (publish key or webhook)",
            refusals,
        );

        let state = Family::<StateLabels, Gauge>::default();
        let blocked = Family::<StreamLabels, Gauge>::default();
        let webrtc_sessions = Family::<StreamLabels, Gauge>::default();
        let webrtc_bytes = Family::<StreamLabels, Counter>::default();
        let webrtc_nacks = Family::<StreamLabels, Counter>::default();
        let webrtc_keyframe_requests = Family::<StreamLabels, Counter>::default();
        let webrtc_dropped = Family::<StreamLabels, Counter>::default();
        let requests = Family::<StreamLabels, Counter>::default();
        let frames = Family::<RenditionLabels, Counter>::default();
        let dropped = Family::<RenditionLabels, Counter>::default();
        let parts = Family::<RenditionLabels, Counter>::default();
        let segments = Family::<RenditionLabels, Counter>::default();
        let forced_cuts = Family::<RenditionLabels, Counter>::default();
        let overruns = Family::<RenditionLabels, Counter>::default();
        let replaced = Family::<RenditionLabels, Gauge>::default();
        let bitrate = Family::<RenditionLabels, Gauge>::default();
        let ingest_frames = Family::<KindLabels, Counter>::default();
        let ingest_bytes = Family::<StreamLabels, Counter>::default();
        let srt_received = Family::<StreamLabels, Counter>::default();
        let srt_lost = Family::<StreamLabels, Counter>::default();
        let srt_retransmitted = Family::<StreamLabels, Counter>::default();
        let srt_dropped = Family::<StreamLabels, Counter>::default();
        let srt_naks = Family::<StreamLabels, Counter>::default();
        let rtf = Family::<StreamLabels, Gauge<f64, std::sync::atomic::AtomicU64>>::default();
        let lag = Family::<StreamLabels, Gauge>::default();
        let shed = Family::<RenditionLabels, Gauge>::default();
        let decode_errors = Family::<StreamLabels, Counter>::default();
        let unusable = Family::<TrackLabels, Gauge>::default();
        let events = Family::<KindLabels, Counter>::default();
        let mut names = hub.names();
        names.sort();
        for entry in names.iter().filter_map(|n| hub.get(n)) {
            let report = crate::hub::report::StreamReport::of(&entry);
            let stream = entry.name.clone();
            state
                .get_or_create(&StateLabels {
                    stream: stream.clone(),
                    state: report.state,
                })
                .set(1);
            blocked
                .get_or_create(&StreamLabels {
                    stream: stream.clone(),
                })
                .set(i64::try_from(report.blocked_requests).unwrap_or(i64::MAX));
            if let Some(w) = &report.webrtc {
                let labels = StreamLabels {
                    stream: stream.clone(),
                };
                webrtc_sessions
                    .get_or_create(&labels)
                    .set(i64::try_from(w.sessions).unwrap_or(i64::MAX));
                webrtc_bytes.get_or_create(&labels).inc_by(w.bytes_sent);
                webrtc_nacks.get_or_create(&labels).inc_by(w.nacks);
                webrtc_keyframe_requests
                    .get_or_create(&labels)
                    .inc_by(w.keyframe_requests);
                webrtc_dropped
                    .get_or_create(&labels)
                    .inc_by(w.dropped_to_keyframe);
            }
            requests
                .get_or_create(&StreamLabels {
                    stream: stream.clone(),
                })
                .inc_by(report.requests_total);
            for (kind, n) in &report.events {
                events
                    .get_or_create(&KindLabels {
                        stream: stream.clone(),
                        kind,
                    })
                    .inc_by(*n);
            }
            let st = entry.lock();
            for r in st.packager.renditions() {
                let labels = RenditionLabels {
                    stream: stream.clone(),
                    rendition: r.name().to_owned(),
                };
                let c = r.counters();
                frames.get_or_create(&labels).inc_by(c.frames);
                dropped.get_or_create(&labels).inc_by(c.dropped_frames);
                parts.get_or_create(&labels).inc_by(c.parts);
                segments.get_or_create(&labels).inc_by(c.segments);
                forced_cuts.get_or_create(&labels).inc_by(c.forced_cuts);
                overruns
                    .get_or_create(&labels)
                    .inc_by(c.target_duration_overruns);
            }
            drop(st);
            let stream_labels = StreamLabels {
                stream: stream.clone(),
            };
            for (kind, n) in [
                ("video", report.ingest.video_frames),
                ("audio", report.ingest.audio_frames),
            ] {
                ingest_frames
                    .get_or_create(&KindLabels {
                        stream: stream.clone(),
                        kind,
                    })
                    .inc_by(n);
            }
            ingest_bytes
                .get_or_create(&stream_labels)
                .inc_by(report.ingest.bytes);
            if let Some(t) = &report.srt {
                srt_received
                    .get_or_create(&stream_labels)
                    .inc_by(t.packets_received);
                srt_lost
                    .get_or_create(&stream_labels)
                    .inc_by(t.packets_lost);
                srt_retransmitted
                    .get_or_create(&stream_labels)
                    .inc_by(t.packets_retransmitted);
                srt_dropped
                    .get_or_create(&stream_labels)
                    .inc_by(t.packets_dropped);
                srt_naks.get_or_create(&stream_labels).inc_by(t.naks_sent);
            }
            if let Some(t) = &report.transcoder {
                for name in &t.replaced_copies {
                    replaced
                        .get_or_create(&RenditionLabels {
                            stream: stream.clone(),
                            rendition: name.clone(),
                        })
                        .set(1);
                }
                rtf.get_or_create(&stream_labels).set(t.real_time_factor);
                lag.get_or_create(&stream_labels).set(t.lag_ms);
                decode_errors
                    .get_or_create(&stream_labels)
                    .inc_by(t.decode_errors);
                for r in &report.renditions {
                    shed.get_or_create(&RenditionLabels {
                        stream: stream.clone(),
                        rendition: r.name.clone(),
                    })
                    .set(i64::from(t.shed_rungs.contains(&r.name)));
                }
            }
            for t in &report.unusable_tracks {
                unusable
                    .get_or_create(&TrackLabels {
                        stream: stream.clone(),
                        kind: t.kind,
                        codec: t.codec.clone(),
                    })
                    .set(1);
            }
            for r in &report.renditions {
                if let Some(bps) = r.measured_bitrate_bps {
                    bitrate
                        .get_or_create(&RenditionLabels {
                            stream: stream.clone(),
                            rendition: r.name.clone(),
                        })
                        .set(i64::try_from(bps).unwrap_or(i64::MAX));
                }
            }
        }
        registry.register(
            "ingest_unusable_tracks",
            "1 for each source track of the current publish that is not used (codec not supported, or not \
             packageable on a stream that is not transcoded)",
            unusable,
        );
        registry.register(
            "stream_state",
            "1 for each stream in its state (live, reconnecting, ended)",
            state,
        );
        registry.register(
            "stream_blocked_requests",
            "Requests blocked on the stream now (blocking reloads, parts, segments in progress)",
            blocked,
        );
        registry.register(
            "stream_webrtc_sessions",
            "WebRTC (WHEP) sessions of the stream now, when WebRTC is served",
            webrtc_sessions,
        );
        registry.register(
            "stream_webrtc_sent_bytes",
            "Bytes sent to the stream's WebRTC viewers (RTP, RTCP, retransmissions, DTLS, STUN)",
            webrtc_bytes,
        );
        registry.register(
            "stream_webrtc_nacks",
            "NACK messages received from the stream's WebRTC viewers",
            webrtc_nacks,
        );
        registry.register(
            "stream_webrtc_keyframe_requests",
            "Keyframe requests (PLI, FIR) received from the stream's WebRTC viewers",
            webrtc_keyframe_requests,
        );
        registry.register(
            "stream_webrtc_dropped_to_keyframe",
            "Times a WebRTC viewer of the stream was dropped to the next keyframe",
            webrtc_dropped,
        );
        registry.register(
            "stream_events",
            "Timed events stamped onto the stream since it started, by kind (metadata)",
            events,
        );
        let refused = Family::<ReasonLabels, Counter>::default();
        for (reason, n) in hub.event_refusals() {
            refused.get_or_create(&ReasonLabels { reason }).inc_by(n);
        }
        registry.register(
            "event_refusals",
            "Timed metadata posts refused, by reason (no_stream, invalid, too_large, id_in_use, rate_limited)",
            refused,
        );
        registry.register(
            "stream_requests",
            "HTTP requests for the stream's objects since it started",
            requests,
        );
        registry.register(
            "rendition_frames",
            "Frames packaged since the stream started",
            frames,
        );
        registry.register(
            "rendition_dropped_frames",
            "Frames dropped (before a keyframe or configuration, or going backwards)",
            dropped,
        );
        registry.register("rendition_parts", "Parts produced", parts);
        registry.register("rendition_segments", "Segments completed", segments);
        registry.register(
            "rendition_forced_cuts",
            "Segments cut without a keyframe (the keyframe came too late for the target duration)",
            forced_cuts,
        );
        registry.register(
            "rendition_target_duration_overruns",
            "Segments whose duration rounds to more than the target duration (a stream packaged as it arrives, never cut without a keyframe, whose keyframe interval grew)",
            overruns,
        );
        registry.register(
            "transcoder_copy_replaced",
            "1 when a copied rendition is encoded from a grid point on (the source's keyframes left the segment grid)",
            replaced,
        );
        registry.register(
            "rendition_bitrate_bps",
            "Bit rate measured over the complete segments in the live window, bit/s",
            bitrate,
        );
        registry.register(
            "ingest_frames",
            "Frames received from publishers, by kind (before transcoding)",
            ingest_frames,
        );
        registry.register(
            "ingest_bytes",
            "Media bytes received from publishers (rate() gives the ingest bit rate / 8)",
            ingest_bytes,
        );
        registry.register(
            "srt_packets_received",
            "SRT data packets received by the current connection, retransmissions included",
            srt_received,
        );
        registry.register(
            "srt_packets_lost",
            "SRT data packets detected lost by the current connection",
            srt_lost,
        );
        registry.register(
            "srt_packets_retransmitted",
            "SRT retransmitted data packets received by the current connection",
            srt_retransmitted,
        );
        registry.register(
            "srt_packets_dropped",
            "SRT packets dropped too late to play by the current connection",
            srt_dropped,
        );
        registry.register(
            "srt_naks_sent",
            "SRT loss reports sent by the current connection",
            srt_naks,
        );
        registry.register(
            "transcoder_real_time_factor",
            "Media seconds transcoded per wall-clock second (about 1 when keeping up)",
            rtf,
        );
        registry.register(
            "transcoder_lag_ms",
            "How far the slowest encoded rung trails the newest source frame, ms",
            lag,
        );
        registry.register(
            "transcoder_rung_shed",
            "1 when the rendition's rung was shed because the stream could not keep up",
            shed,
        );
        registry.register(
            "transcoder_decode_errors",
            "Source frames the decoder rejected",
            decode_errors,
        );
        // The unit is in the name only: a `# UNIT` line on a histogram trips some parsers.
        registry.register(
            "part_publication_latency_seconds",
            "From the reception of a part's last (source) frame to the part's publication, seconds",
            hub.part_latency().clone(),
        );
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &registry)?;
        Ok(out)
    }
}
