//! MPEG-DASH rendering: a dynamic MPD (ISO/IEC 23009-1; DASH-IF IOP and its low-latency guidelines)
//! over the same CMAF init segments and segments that LL-HLS serves.
//!
//! Built as a [`dash_mpd_core::MPD`] and serialized by that library; no XML is written by hand.
//!
//! Object names, relative to `/live/{name}/` (the same objects as [`crate::hls`]):
//! - `manifest.mpd` — the MPD;
//! - `{rendition}/init-{id}.mp4` — init segment; `{rendition}/{msn}.m4s` — segment, addressed by
//!   `$Number$` = the HLS media sequence number;
//! - `time` — the clock of `UTCTiming` (`urn:mpeg:dash:utc:http-xsdate:2014`), served by the origin.
//!
//! Timing model (ISO/IEC 23009-1 §5.3.9.5, A.3): every period start is a wall-clock time measured from
//! `MPD@availabilityStartTime`, which is the wall-clock time (EXT-X-PROGRAM-DATE-TIME) of the stream's
//! first segment. A period's `presentationTimeOffset` is the presentation time of the leader's first
//! sample in it, so a sample's presentation time maps to the same wall clock as its HLS program date
//! time. `S@t` is a segment's earliest presentation time, `S@d` the distance to the next segment's.
//!
//! Low latency (DASH-IF low-latency modes, chunked segments): the segment in progress is listed as soon
//! as its first CMAF chunk exists, with the duration segments usually have (corrected in the next MPD
//! once it is cut); `availabilityTimeOffset` = target duration − part target and
//! `availabilityTimeComplete="false"` let players request it then, and the origin sends it with chunked
//! transfer, each chunk as it is produced. A `ServiceDescription` carries the target latency and the
//! playback-rate bounds.
//!
//! No `ProducerReferenceTime`: the availability timeline already *is* the wall clock at ingest (the
//! only producer clock an RTMP or SRT input gives us), so a PRT would only restate it, and Shaka 5
//! reads `PRT@presentationTime` without subtracting `presentationTimeOffset` (dash.js, following
//! ETSI TS 103 285 §10.20.4, does), which skews its latency by the offset.
//!
//! Periods: each discontinuity (re-publish, new track configuration) starts a new Period, with its own
//! init segment and timeline, so players re-initialise there.
//!
//! Encrypted streams (ISO/IEC 23001-7 `cenc`, [`crate::cenc`]): the Representations address the CENC
//! form of the same segments, `{rendition}/cenc/init-{init id}-{key id}.mp4` and
//! `{rendition}/cenc/$Number$-{key id}.m4s` (named by their key, so a URL never changes meaning);
//! each AdaptationSet carries the mp4protection ContentProtection
//! with `cenc:default_KID` and the DASH-IF ClearKey one whose `clearkey:Laurl` is [`LICENSE_PATH`],
//! relative to the MPD like every other URI here (a player page in the stream's directory, such as
//! the origin's own, resolves it there; EME players elsewhere configure the license URL). One key for
//! the stream's life, across re-publishes: a segment the previous Period announced but never produced
//! is fetched by Shaka (which keeps every timeline entry it has seen) and answered with the new
//! Period's segment of that number, which must decrypt under the key already licensed.

use std::time::Duration;

use chrono::{DateTime, Utc};
use dash_mpd_core as mpd;
use media::{CodecConfig, TrackKind, time::rescale};

use crate::{
    rendition::{Rendition, Segment},
    stream::{PeriodStart, StreamPackager},
    urls::StreamObject,
};

/// The `UTCTiming` scheme used: an HTTP GET answering an xs:dateTime (ISO/IEC 23009-1 §5.8.5.7).
pub const UTC_TIMING_SCHEME: &str = "urn:mpeg:dash:utc:http-xsdate:2014";
/// Where the `UTCTiming` clock is, relative to the MPD (the origin serves it next to every MPD, so a
/// path prefix such as a playback token carries through).
pub const UTC_TIMING_PATH: &str = "time";

/// Where the ClearKey license endpoint is, relative to the MPD (W3C ClearKey JSON request/response).
pub const LICENSE_PATH: &str = "license";
/// The namespace of the `clearkey:Laurl` element (DASH-IF IOP ClearKey), declared on the MPD root.
pub const CLEARKEY_NAMESPACE: &str = "http://dashif.org/guidelines/clearKey";

/// DASH settings that are not the packager's cutting rules.
#[derive(Debug, Clone, PartialEq)]
pub struct DashConfig {
    /// Target live latency for players (`ServiceDescription/Latency@target`, `suggestedPresentationDelay`).
    /// `None`: four part targets (2 s with 0.5 s parts): one part more than the LL-HLS PART-HOLD-BACK,
    /// because dash.js at three part targets still ran its buffer dry for 40–170 ms now and then on a
    /// loaded 2-core machine (a ladder being encoded beside the browser; measured).
    pub target_latency: Option<Duration>,
    /// Slowest playback rate a player may use to keep the target latency (`PlaybackRate@min`, default 0.96).
    pub min_playback_rate: f64,
    /// Fastest playback rate a player may use to catch up (`PlaybackRate@max`, default 1.04).
    pub max_playback_rate: f64,
}

impl Default for DashConfig {
    fn default() -> Self {
        Self {
            target_latency: None,
            min_playback_rate: 0.96,
            max_playback_rate: 1.04,
        }
    }
}

impl DashConfig {
    /// The target latency in use for a packager configured with `part_target`.
    pub fn effective_target_latency(&self, part_target: Duration) -> Duration {
        self.target_latency.unwrap_or(part_target * 4)
    }
}

/// `MPD@profiles`: ISO live profile and CMAF (ISO/IEC 23009-1 §8.4, §8.12).
pub(crate) const PROFILES: &str =
    "urn:mpeg:dash:profile:isoff-live:2011,urn:mpeg:dash:profile:cmaf:2019";
pub(crate) const MPD_NAMESPACE: &str = "urn:mpeg:dash:schema:mpd:2011";
pub(crate) const AUDIO_CHANNEL_SCHEME: &str =
    "urn:mpeg:dash:23003:3:audio_channel_configuration:2011";
const ROLE_SCHEME: &str = "urn:mpeg:dash:role:2011";

/// Render the MPD of `stream` at wall-clock time `now_ms` (Unix ms, the `publishTime`), or `None`
/// before the stream is ready: no complete segment yet, or a rendition's `@bandwidth` not yet known
/// ([`Rendition::declared_bandwidth`]; waited for until the leader has two complete segments, then
/// measured).
///
/// While live: `type="dynamic"` with `minimumUpdatePeriod` = the part target, `timeShiftBufferDepth`
/// = the live window (window segments × target duration). Once ended: still dynamic (players keep their
/// place) but with no `minimumUpdatePeriod`, a `mediaPresentationDuration` ending at the last segment,
/// and no segment in progress, so players play to the end and stop.
pub fn render_mpd(stream: &StreamPackager, cfg: &DashConfig, now_ms: i64) -> Option<String> {
    if !stream.is_ready() {
        return None;
    }
    let td = stream.target_duration_s()?;
    let ast_ms = stream.availability_start_ms()?;
    let pcfg = stream.config();
    let live = !stream.is_ended();
    let target_latency = cfg.effective_target_latency(pcfg.part_target);
    let ato = Duration::from_secs(u64::from(td)).saturating_sub(pcfg.part_target);

    let periods: Vec<PeriodStart> = stream.periods().iter().copied().collect();
    let mut out_periods = Vec::new();
    let mut is_protected = false;
    let mut presentation_end = Duration::ZERO;
    let mut longest_segment = Duration::from_secs(u64::from(td));
    let mut has_splices = false;
    for (i, p) in periods.iter().enumerate() {
        let end_msn = periods.get(i + 1).map_or(u64::MAX, |n| n.first_msn);
        let start = Duration::from_millis(u64::try_from(p.start_ms - ast_ms).unwrap_or(0));
        let mut video = Vec::new();
        let mut audio = Vec::new();
        let mut undeclared = false;
        let mut period_key = None;
        for r in stream.renditions() {
            let sig = Signalling {
                live,
                ato,
                td_s: td,
            };
            let Some(rep) = representation(stream, r, (p, end_msn), &sig, &mut undeclared) else {
                continue;
            };
            presentation_end = presentation_end.max(start + rep.1);
            longest_segment = longest_segment.max(rep.2);
            if rep.3.is_some() {
                period_key = rep.3.clone();
            }
            match r.kind() {
                TrackKind::Video => video.push(rep.0),
                TrackKind::Audio => audio.push(rep.0),
            }
        }
        if video.is_empty() && audio.is_empty() {
            continue;
        }
        // A Period is published whole: a rendition that has no chunk in it yet, or whose bit rate is
        // not known yet, is waited for (for at most two of the leader's segments) rather than added
        // to the Period later or declared with a guess. (dash.js 5.2 keeps the AdaptationSets it first
        // saw in a Period; one added later took the audio's place: a fatal MSE append error, measured.)
        let is_last = i + 1 == periods.len();
        let incomplete = video.len() + audio.len() < stream.renditions().count();
        if (undeclared || incomplete)
            && is_last
            && live
            && leader_complete_segments(stream, p.first_msn) < 2
        {
            if out_periods.is_empty() {
                return None;
            }
            break;
        }
        let mut adaptations = Vec::new();
        if !video.is_empty() {
            let mut set = video_adaptation(video);
            set.Accessibility = caption_descriptors(stream);
            adaptations.push(set);
        }
        if !audio.is_empty() {
            adaptations.push(audio_adaptation(audio));
        }
        // Timed metadata (ID3 in `emsg`, [`crate::events`]) rides in the video segments, or in the
        // audio ones on a stream without video: declared from the start, so players listen for it.
        if let Some(a) = adaptations.first_mut() {
            a.InbandEventStream = vec![mpd::InbandEventStream {
                schemeIdUri: crate::cmaf::emsg::ID3_SCHEME.into(),
                value: Some(String::new()),
                ..Default::default()
            }];
        }
        if let Some(key) = &period_key {
            for a in &mut adaptations {
                a.ContentProtection = content_protection(key);
            }
            is_protected = true;
        }
        let next_pts = periods.get(i + 1).map(|n| n.pts_90khz);
        let event_streams = splice_event_stream(stream, p.pts_90khz, next_pts);
        has_splices |= !event_streams.is_empty();
        out_periods.push(mpd::Period {
            id: Some(format!("p{}", p.first_msn)),
            start: Some(start),
            adaptations,
            event_streams,
            ..Default::default()
        });
    }
    if out_periods.is_empty() {
        return None;
    }

    let latency_ms = target_latency.as_millis() as f64;
    let doc = mpd::MPD {
        xmlns: Some(MPD_NAMESPACE.into()),
        profiles: Some(PROFILES.into()),
        mpdtype: Some("dynamic".into()),
        availabilityStartTime: Some(datetime(ast_ms)),
        publishTime: Some(datetime(now_ms)),
        minimumUpdatePeriod: live.then_some(pcfg.part_target),
        mediaPresentationDuration: (!live).then_some(presentation_end),
        minBufferTime: Some(pcfg.part_target * 2),
        // The live window, or the DVR window.
        timeShiftBufferDepth: Some(pcfg.dvr_window.filter(|_| !is_protected).unwrap_or(
            Duration::from_secs(u64::from(td) * pcfg.window_segments as u64),
        )),
        suggestedPresentationDelay: Some(target_latency),
        // The target duration, or longer when an audio segment (cut at the AAC frame nearest the
        // video's cut) runs a few ms past it.
        maxSegmentDuration: Some(longest_segment),
        ServiceDescription: vec![mpd::ServiceDescription {
            id: Some("0".into()),
            Latency: vec![mpd::Latency {
                // Latency@target/min/max are in milliseconds (ISO/IEC 23009-1 Annex K).
                target: Some(latency_ms),
                min: Some((pcfg.part_target.as_millis() as f64).min(latency_ms)),
                // With a DVR window a viewer may rewind through all of it: a player that seeks
                // back to live past Latency@max (dash.js: max − target + 0.5 s) must not undo it.
                max: Some(match pcfg.dvr_window.filter(|_| !is_protected) {
                    Some(dvr) => latency_ms + dvr.as_millis() as f64,
                    None => latency_ms.max(f64::from(td) * 1000.0 * 2.0),
                }),
                referenceId: None,
            }],
            PlaybackRate: vec![mpd::PlaybackRate {
                min: Some(cfg.min_playback_rate),
                max: Some(cfg.max_playback_rate),
            }],
            ..Default::default()
        }],
        periods: out_periods,
        scte35: has_splices.then(|| SCTE35_NAMESPACE.to_owned()),
        UTCTiming: vec![mpd::UTCTiming {
            schemeIdUri: UTC_TIMING_SCHEME.into(),
            value: Some(UTC_TIMING_PATH.into()),
            ..Default::default()
        }],
        ..Default::default()
    };
    let mut xml = doc.to_string();
    if is_protected {
        // dash-mpd-core declares the cenc namespace but not the DASH-IF ClearKey one (Shaka looks the
        // Laurl element up by namespace URI): declare it on the root element.
        if let Some(at) = xml.find("<MPD ") {
            xml.insert_str(
                at + "<MPD ".len(),
                &format!("xmlns:clearkey=\"{CLEARKEY_NAMESPACE}\" "),
            );
        }
    }
    Some(format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n{xml}\n"
    ))
}

/// The SCTE-35 event scheme of an MPD EventStream whose Events carry the splice_info_section in
/// base64 (SCTE 214-1 §6.7.4).
pub const SCTE35_SCHEME: &str = "urn:scte:scte35:2014:xml+bin";
/// The SCTE-35 XML namespace (SCTE 35 2016 schema) of the `Signal` and `Binary` elements.
pub const SCTE35_NAMESPACE: &str = "http://www.scte.org/schemas/35/2016";

/// The SCTE-35 markers of the Period starting at presentation time `start_90khz` (up to `end_90khz`,
/// the next Period's start): one `EventStream` ([`SCTE35_SCHEME`], timescale 90 kHz; ISO/IEC 23009-1
/// §5.10.2) whose Events are placed from the Period's start, last the break's announced duration (an
/// out) and carry the section; none when the Period has no marker.
fn splice_event_stream(
    stream: &StreamPackager,
    start_90khz: i64,
    end_90khz: Option<i64>,
) -> Vec<mpd::EventStream> {
    use base64::Engine as _;
    let events: Vec<mpd::Event> = stream
        .events()
        .filter(|e| e.pts_90khz >= start_90khz && end_90khz.is_none_or(|end| e.pts_90khz < end))
        .filter_map(|e| match &e.payload {
            crate::events::EventPayload::Splice(m) => Some(mpd::Event {
                id: Some(e.sequence.to_string()),
                presentationTime: Some(u64::try_from(e.pts_90khz - start_90khz).unwrap_or(0)),
                duration: m
                    .planned_duration_ms
                    .filter(|_| m.direction == crate::events::SpliceDirection::Out)
                    .map(|ms| ms.saturating_mul(90)),
                signal: vec![mpd::scte35::Signal {
                    content: Some(mpd::scte35::Binary {
                        content: base64::engine::general_purpose::STANDARD.encode(&m.section),
                        ..Default::default()
                    }),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            crate::events::EventPayload::Metadata(_) => None,
        })
        .collect();
    if events.is_empty() {
        return Vec::new();
    }
    vec![mpd::EventStream {
        schemeIdUri: SCTE35_SCHEME.into(),
        timescale: Some(90_000),
        event: events,
        ..Default::default()
    }]
}

/// What every Representation of one MPD shares.
struct Signalling {
    /// The stream is live (not ended).
    live: bool,
    /// `availabilityTimeOffset`.
    ato: Duration,
    /// Target duration, seconds.
    td_s: u32,
}

/// A Representation, how long its media lasts from the period start, its longest segment, and the CENC
/// key of its segments (encrypted streams).
type RepresentationOut = (
    mpd::Representation,
    Duration,
    Duration,
    Option<std::sync::Arc<crate::cenc::CencKey>>,
);

/// One Representation of rendition `r` in period `p` (segments with msn in `p.first_msn..end_msn`),
/// how long its media lasts from the period start, and its longest segment. `None` when it has no
/// segment there. Sets `undeclared` when its bit rate had to be measured.
fn representation(
    stream: &StreamPackager,
    r: &Rendition,
    (p, end_msn): (&PeriodStart, u64),
    sig: &Signalling,
    undeclared: &mut bool,
) -> Option<RepresentationOut> {
    let Signalling { live, ato, td_s } = *sig;
    let ts = r.timescale();
    let mut segs: Vec<&Segment> = r
        .segments()
        .iter()
        .filter(|s| s.msn >= p.first_msn && s.msn < end_msn)
        .filter(|s| s.is_complete || (live && !s.parts.is_empty()))
        .collect();
    // DVR: the period's segments that left the live window, listed first (not for a stream
    // encrypted for DASH: their CENC form is not kept).
    let mut archived: Vec<&crate::rendition::ArchivedSegment> = r
        .archive()
        .iter()
        .filter(|a| a.msn >= p.first_msn && a.msn < end_msn && !a.has_cenc)
        .collect();
    // One init segment per Representation: a change within a period (which a discontinuity prevents)
    // would keep only the latest run.
    let init_id = match segs.last() {
        Some(s) => s.init_id,
        None => archived.last()?.init_id,
    };
    if let Some(k) = segs.iter().rposition(|s| s.init_id != init_id) {
        segs.drain(..=k);
        archived.clear();
    }
    if let Some(k) = archived.iter().rposition(|a| a.init_id != init_id) {
        archived.drain(..=k);
    }
    // Timeline times are unsigned: media before presentation time 0 cannot be listed.
    segs.retain(|s| s.earliest_pts >= 0);
    archived.retain(|a| a.earliest_pts >= 0);
    // `$Number$` counts up by one per listed segment: listed from the last gap in the numbering (a
    // rendition that skipped a number) on, or every later number would name another segment.
    let msns: Vec<u64> = archived
        .iter()
        .map(|a| a.msn)
        .chain(segs.iter().map(|s| s.msn))
        .collect();
    if let Some(k) = (1..msns.len()).rev().find(|&k| msns[k] != msns[k - 1] + 1) {
        if k <= archived.len() {
            archived.drain(..k);
        } else {
            let in_segs = k - archived.len();
            archived.clear();
            segs.drain(..in_segs);
        }
    }
    let first_msn = archived
        .first()
        .map(|a| a.msn)
        .or(segs.first().map(|s| s.msn))?;
    let pto = rescale(p.pts_90khz, 90_000, ts).max(0);

    let usual = typical_duration(stream, r);
    let mut timeline: Vec<mpd::S> = Vec::new();
    let mut media_end = 0i64;
    let mut longest = 0i64;
    for (k, a) in archived.iter().enumerate() {
        let t = a.earliest_pts;
        let next_t = archived
            .get(k + 1)
            .map(|n| n.earliest_pts)
            .or(segs.first().map(|s| s.earliest_pts))
            .filter(|n| *n > t);
        let d = next_t
            .map_or(i64::try_from(a.duration_ticks).unwrap_or(i64::MAX), |n| {
                n - t
            })
            .max(1);
        media_end = t + d;
        longest = longest.max(d);
        push_s(&mut timeline, t as u64, d as u64);
    }
    for (k, s) in segs.iter().enumerate() {
        let t = s.earliest_pts;
        let next_t = segs.get(k + 1).map(|n| n.earliest_pts).filter(|n| *n > t);
        let d = match (s.is_complete, next_t) {
            (true, Some(n)) => n - t,
            (true, None) => i64::try_from(s.duration_ticks()).unwrap_or(i64::MAX),
            // In progress: the duration it will have (ISO/IEC 23009-1 §5.4: a later MPD must list it
            // the same), as far as the grid tells; else the usual duration, or longer if it already
            // lasts that long.
            (false, _) => {
                let so_far = i64::try_from(s.duration_ticks()).unwrap_or(0);
                match stream.predicted_segment_end(r, s) {
                    Some(end) if end - t >= so_far && end > t => end - t,
                    _ => {
                        let part = crate::stream::duration_ticks(stream.config().part_target, ts);
                        let longest = i64::from(td_s) * i64::from(ts);
                        if so_far + part / 2 > usual {
                            (so_far + part).min(longest.max(so_far))
                        } else {
                            usual
                        }
                    }
                }
            }
        }
        .max(1);
        media_end = t + d;
        longest = longest.max(d);
        push_s(&mut timeline, t as u64, d as u64);
    }
    let media_s = (media_end - pto).max(0) as f64 / f64::from(ts);
    // Only segments that exist are listed (the one in progress included). An announced next segment
    // let dash.js ask for it a little earlier, but a player keeps a timeline entry once seen (Shaka
    // never drops one), and when a publisher drops, that segment never exists in its Period: Shaka and
    // dash.js then retried it for up to 20 s after an encrypted re-publish (measured). With the 2 s
    // target latency dash.js plays without it (0 stalls, measured).

    // @bandwidth must not change while the Period lasts: dash.js 5.2 re-sorts Representations by
    // bandwidth on every MPD update and, when they reorder, stops loading video (measured).
    let bandwidth = match r.declared_bandwidth(init_id) {
        Some(b) => b,
        None => {
            *undeclared = true;
            crate::hls::measured_bitrates(r).map_or(1, |(peak, _)| peak)
        }
    };
    let bandwidth = bandwidth.div_ceil(1000).max(1) * 1000;
    // One key per stream (see the module docs).
    let cenc_key = segs
        .last()
        .and_then(|s| s.cenc.as_ref())
        .map(|c| c.key.clone());
    // The configuration the period's segments were made with (a later change starts a later period).
    let track = r.init_track(init_id).unwrap_or(r.track());
    let mut rep = mpd::Representation {
        // Unique across Periods: dash.js 5.2 otherwise carried the video Representation over to its
        // audio StreamProcessor at a Period switch (a fatal MSE append error; measured).
        id: Some(format!("{}-p{}", r.name(), p.first_msn)),
        bandwidth: Some(bandwidth),
        codecs: Some(track.config.rfc6381()),
        SegmentTemplate: Some(mpd::SegmentTemplate {
            media: Some(crate::urls::dash_media_template(
                r.name(),
                cenc_key.as_ref().map(|k| k.id),
            )),
            initialization: Some(match &cenc_key {
                Some(k) => StreamObject::CencInit {
                    rendition: r.name(),
                    init_id,
                    key_id: k.id,
                }
                .to_string(),
                None => StreamObject::Init {
                    rendition: r.name(),
                    id: init_id,
                }
                .to_string(),
            }),
            startNumber: Some(first_msn),
            timescale: Some(u64::from(ts)),
            presentationTimeOffset: Some(pto as u64),
            availabilityTimeOffset: (live && !ato.is_zero()).then_some(ato.as_secs_f64()),
            availabilityTimeComplete: live.then_some(false),
            SegmentTimeline: Some(mpd::SegmentTimeline { segments: timeline }),
            ..Default::default()
        }),
        ..Default::default()
    };
    match &track.config {
        CodecConfig::Aac(a) => {
            rep.audioSamplingRate = Some(a.sample_rate.to_string());
            rep.AudioChannelConfiguration = vec![mpd::AudioChannelConfiguration {
                schemeIdUri: AUDIO_CHANNEL_SCHEME.into(),
                value: Some(a.channels.max(1).to_string()),
                ..Default::default()
            }];
        }
        cfg => {
            if let Some(v) = cfg.video_params() {
                rep.width = Some(u64::from(v.width));
                rep.height = Some(u64::from(v.height));
                rep.sar = Some("1:1".into());
                rep.frameRate = Some(match r.frame_rate(init_id) {
                    Some((n, d)) => {
                        if n % d == 0 {
                            (n / d).to_string()
                        } else {
                            format!("{n}/{d}")
                        }
                    }
                    _ => {
                        let fps = f64::from(ts) / r.est_duration_ticks().max(1) as f64;
                        format!("{}", fps.round().max(1.0))
                    }
                });
            }
        }
    }
    // Whole milliseconds, rounded up.
    let longest_ms = u64::try_from(longest)
        .unwrap_or(0)
        .saturating_mul(1000)
        .div_ceil(u64::from(ts));
    Some((
        rep,
        Duration::from_secs_f64(media_s),
        Duration::from_millis(longest_ms),
        cenc_key,
    ))
}

/// The ContentProtection elements of an AdaptationSet whose segments are encrypted under `key`: the
/// mp4protection scheme with `cenc:default_KID` (ISO/IEC 23009-1 §5.8.5.2, ISO/IEC 23001-7 §11.2),
/// the DASH-IF ClearKey scheme with the license URL, and the W3C Common scheme with its `pssh`.
fn content_protection(key: &crate::cenc::CencKey) -> Vec<mpd::ContentProtection> {
    let pssh = crate::cmaf::common_pssh_box(&key.kid);
    vec![
        mpd::ContentProtection {
            schemeIdUri: crate::cenc::MP4_PROTECTION_SCHEME_URI.into(),
            value: Some("cenc".into()),
            default_KID: Some(key.kid_uuid()),
            ..Default::default()
        },
        mpd::ContentProtection {
            schemeIdUri: crate::cenc::CLEARKEY_SCHEME_URI.into(),
            value: Some("ClearKey1.0".into()),
            clearkey_laurl: Some(mpd::Laurl {
                lic_type: Some("EME-1.0".into()),
                content: Some(LICENSE_PATH.into()),
            }),
            ..Default::default()
        },
        mpd::ContentProtection {
            schemeIdUri: format!(
                "urn:uuid:{}",
                crate::cenc::kid_uuid(&crate::cenc::W3C_COMMON_SYSTEM_ID)
            ),
            value: Some("ClearKey1.0".into()),
            cenc_pssh: vec![mpd::CencPssh {
                content: Some(base64::Engine::encode(
                    &base64::engine::general_purpose::STANDARD,
                    &pssh,
                )),
            }],
            ..Default::default()
        },
    ]
}

/// Complete segments of the leader from msn `from` on.
fn leader_complete_segments(stream: &StreamPackager, from: u64) -> usize {
    stream
        .leader()
        .and_then(|l| stream.rendition(l))
        .map_or(0, |r| {
            r.segments()
                .iter()
                .filter(|s| s.msn >= from && s.is_complete)
                .count()
        })
}

/// The duration segments of `r` usually have, ticks: the producer grid's period when the stream has one
/// (every segment lasts it, within a frame), else the last complete segment's, else the segment target.
fn typical_duration(stream: &StreamPackager, r: &Rendition) -> i64 {
    if let Some(clock) = stream.segment_clock() {
        return rescale(clock.period_90khz(), 90_000, r.timescale()).max(1);
    }
    let segs = r.segments();
    let complete: Vec<&Segment> = segs.iter().filter(|s| s.is_complete).collect();
    match complete.as_slice() {
        [.., a, b] if b.earliest_pts > a.earliest_pts && !b.is_discontinuity => {
            b.earliest_pts - a.earliest_pts
        }
        [.., b] => i64::try_from(b.duration_ticks()).unwrap_or(i64::MAX),
        [] => crate::stream::duration_ticks(stream.config().segment_target, r.timescale()),
    }
    .max(1)
}

/// Append a segment to a SegmentTimeline, extending the last `S` (`@r`) when it is contiguous with
/// the same duration (ISO/IEC 23009-1 §5.3.9.6).
pub(crate) fn push_s(timeline: &mut Vec<mpd::S>, t: u64, d: u64) {
    if let Some(last) = timeline.last_mut() {
        let count = last.r.unwrap_or(0) as u64 + 1;
        let end = last.t.unwrap_or(0) + last.d * count;
        if last.d == d && end == t {
            last.r = Some(count as i64);
            return;
        }
    }
    timeline.push(mpd::S {
        t: Some(t),
        d,
        ..Default::default()
    });
}

/// The video AdaptationSet's `Accessibility` descriptors for the closed captions every video
/// rendition carries in its SEI (DASH-IF IOP §6.4.3, SCTE 214-1 §6.7.3): `urn:scte:dash:cc:cea-608:2015`
/// with `CC1=und` (and `CC3`), `urn:scte:dash:cc:cea-708:2015` with `1=lang:und`. None when some video
/// rendition lacks them (the descriptor speaks for the whole set).
fn caption_descriptors(stream: &StreamPackager) -> Vec<mpd::Accessibility> {
    let all = stream
        .renditions()
        .filter(|r| r.kind() == TrackKind::Video)
        .map(|r| stream.caption_services(r))
        .reduce(|a, b| media::captions::CaptionServices {
            cea608_field1: a.cea608_field1 && b.cea608_field1,
            cea608_field2: a.cea608_field2 && b.cea608_field2,
            cea708: a.cea708 && b.cea708,
        })
        .unwrap_or_default();
    let mut out = Vec::new();
    let channels: Vec<&str> = [
        (all.cea608_field1, "CC1=und"),
        (all.cea608_field2, "CC3=und"),
    ]
    .iter()
    .filter(|(has, _)| *has)
    .map(|(_, v)| *v)
    .collect();
    if !channels.is_empty() {
        out.push(mpd::Accessibility {
            schemeIdUri: "urn:scte:dash:cc:cea-608:2015".into(),
            value: Some(channels.join(";")),
            ..Default::default()
        });
    }
    if all.cea708 {
        out.push(mpd::Accessibility {
            schemeIdUri: "urn:scte:dash:cc:cea-708:2015".into(),
            value: Some("1=lang:und".into()),
            ..Default::default()
        });
    }
    out
}

pub(crate) fn video_adaptation(reps: Vec<mpd::Representation>) -> mpd::AdaptationSet {
    mpd::AdaptationSet {
        id: Some("0".into()),
        contentType: Some("video".into()),
        mimeType: Some("video/mp4".into()),
        segmentAlignment: Some(true),
        startWithSAP: Some(1),
        maxWidth: reps.iter().filter_map(|r| r.width).max(),
        maxHeight: reps.iter().filter_map(|r| r.height).max(),
        representations: reps,
        ..Default::default()
    }
}

pub(crate) fn audio_adaptation(reps: Vec<mpd::Representation>) -> mpd::AdaptationSet {
    mpd::AdaptationSet {
        id: Some("1".into()),
        contentType: Some("audio".into()),
        mimeType: Some("audio/mp4".into()),
        lang: Some("und".into()),
        segmentAlignment: Some(true),
        startWithSAP: Some(1),
        Role: vec![mpd::Role {
            schemeIdUri: ROLE_SCHEME.into(),
            value: Some("main".into()),
            ..Default::default()
        }],
        representations: reps,
        ..Default::default()
    }
}

/// Unix milliseconds as an xs:dateTime.
pub(crate) fn datetime(unix_ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(unix_ms).unwrap_or_default()
}

/// The `UTCTiming` clock's answer for `unix_ms`: an xs:dateTime with milliseconds, e.g.
/// `2026-11-22T05:10:11.123Z`.
pub fn format_utc_time(unix_ms: i64) -> String {
    datetime(unix_ms)
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string()
}
