//! LL-HLS rendering (RFC 8216bis, protocol version 9): multivariant and media playlists, delta updates,
//! and the blocking-reload decision for `_HLS_msn` / `_HLS_part`.
//!
//! Renderers are pure functions of the packager state; the HTTP layer never builds playlist text.
//!
//! Every URI they write is a [`StreamObject`] (the URL grammar the origin parses, [`crate::urls`]),
//! relative to the multivariant playlist or to the media playlist's rendition folder.

use std::fmt::Write as _;

use media::{CodecConfig, TrackKind, time::rescale};

use crate::{
    rendition::{Rendition, Segment},
    stream::StreamPackager,
    urls::StreamObject,
};

/// EXT-X-VERSION of our media playlists: 9 is needed for EXT-X-SKIP (RFC 8216bis §7).
pub const PROTOCOL_VERSION: u32 = 9;

/// `_HLS_*` delivery directives of a playlist request (RFC 8216bis §6.2.5).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct HlsDirectives {
    /// `_HLS_msn`: block until this media sequence number is available.
    pub msn: Option<u64>,
    /// `_HLS_part`: block until this part (index from 0) of `msn` is available (requires `msn`).
    pub part: Option<usize>,
    /// `_HLS_skip=YES` (or `v2`): answer with a delta update.
    pub skip: bool,
}

/// A malformed `_HLS_*` query (answered with 400).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DirectiveError {
    /// A directive's value is not a decimal integer / YES / v2.
    #[error("invalid value for {0}")]
    InvalidValue(&'static str),
    /// `_HLS_part` without `_HLS_msn` (RFC 8216bis §6.2.5.2).
    #[error("_HLS_part without _HLS_msn")]
    PartWithoutMsn,
}

impl HlsDirectives {
    /// Parse the query string of a playlist request (without the `?`). Unknown parameters are ignored;
    /// repeated directives take the last value.
    pub fn parse(query: &str) -> Result<Self, DirectiveError> {
        let mut d = Self::default();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            match key {
                "_HLS_msn" => {
                    d.msn =
                        Some(parse_decimal(value).ok_or(DirectiveError::InvalidValue("_HLS_msn"))?)
                }
                "_HLS_part" => {
                    d.part = Some(
                        parse_decimal(value)
                            .and_then(|p| usize::try_from(p).ok())
                            .ok_or(DirectiveError::InvalidValue("_HLS_part"))?,
                    )
                }
                "_HLS_skip" => match value {
                    "YES" | "v2" => d.skip = true,
                    _ => return Err(DirectiveError::InvalidValue("_HLS_skip")),
                },
                _ => {}
            }
        }
        if d.part.is_some() && d.msn.is_none() {
            return Err(DirectiveError::PartWithoutMsn);
        }
        Ok(d)
    }
}

fn parse_decimal(s: &str) -> Option<u64> {
    if s.is_empty() || s.len() > 19 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// What to do with a blocking playlist request (RFC 8216bis §6.2.5.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockingDecision {
    /// The requested segment or part exists: answer now.
    Ready,
    /// Not yet: hold the request until the next update (up to the caller's timeout, 3× target duration).
    Wait,
    /// More than two segments ahead of the live edge: 400.
    TooFarAhead,
}

/// Decide a blocking reload for `(msn, part)` on a rendition. `part = None` waits for the whole segment.
pub fn blocking_decision(r: &Rendition, msn: u64, part: Option<usize>) -> BlockingDecision {
    let Some(last) = r.segments().back() else {
        return BlockingDecision::Wait;
    };
    // An ended rendition has everything it will ever have.
    if r.is_ended() {
        return BlockingDecision::Ready;
    }
    if msn > last.msn + 2 {
        return BlockingDecision::TooFarAhead;
    }
    let done = match part {
        None => r.last_complete_msn().is_some_and(|m| m >= msn),
        Some(p) => {
            // A part index past the last part of a complete segment is part 0 of the next segment
            // (RFC 8216bis §6.2.5.2).
            let (msn, p) = match r.segment(msn) {
                Some(s) if s.is_complete && p >= s.parts.len() => (msn + 1, 0),
                _ => (msn, p),
            };
            match r.last_part() {
                Some((lm, lp)) => lm > msn || (lm == msn && lp >= p),
                None => false,
            }
        }
    };
    if done {
        BlockingDecision::Ready
    } else {
        BlockingDecision::Wait
    }
}

/// Whether a part or segment request may block until the object exists: true for the next part to be
/// produced (the preload hint) and, leniently, for any part of the next segment; for whole segments,
/// the segment in progress and the next one.
pub fn is_upcoming(r: &Rendition, msn: u64, part: Option<usize>) -> bool {
    if r.is_ended() {
        return false;
    }
    let Some((next_msn, next_part)) = r.next_part() else {
        return false;
    };
    match part {
        Some(p) => {
            (msn == next_msn && p >= next_part && p <= next_part + 8)
                || (msn == next_msn + 1 && p == 0)
        }
        // The segment in progress, or the next one (a DASH player may ask for it a moment before its
        // first chunk exists).
        None => r
            .segments()
            .back()
            .is_some_and(|s| (!s.is_complete && s.msn == msn) || s.msn + 1 == msn),
    }
}

/// The part to hint (EXT-X-PRELOAD-HINT, RFC 8216bis §4.4.5.3): the next part to be produced. That is
/// the next part of the open segment, or the first part of the next segment once the open segment has
/// reached where it will end: with a producer grid ([`StreamPackager::segment_clock`]) the grid period
/// (within half a frame); without one, the segment target and the longest keyframe interval seen (the
/// next keyframe is due). Either part, when requested, blocks until it exists ([`is_upcoming`]); a
/// hinted part that an unexpected keyframe makes impossible answers 404.
pub fn preload_hint(stream: &StreamPackager, r: &Rendition) -> Option<(u64, usize)> {
    let (msn, part) = r.next_part()?;
    let open = r
        .segments()
        .back()
        .filter(|s| !s.is_complete && s.msn == msn)?;
    // An encrypted segment's IV is only known once it is listed: never hint into the next segment.
    if open.key.is_some() || part == 0 {
        return Some((msn, part));
    }
    let ts = r.timescale();
    let elapsed = i64::try_from(open.duration_ticks()).unwrap_or(i64::MAX);
    let cfg = stream.config();
    let ends_here = match stream.segment_clock() {
        Some(clock) => {
            // The open segment's own length: a period, or shorter before a splice point.
            let length_90khz = open.grid_point.map_or(clock.period_90khz(), |k| {
                clock.point_90khz(k + 1) - clock.point_90khz(k)
            });
            let length = rescale(length_90khz, 90_000, ts);
            let tolerance = rescale(clock.tolerance_90khz(), 90_000, ts);
            elapsed + tolerance >= length
        }
        None => {
            let target = crate::stream::duration_ticks(cfg.segment_target, ts);
            let jitter = crate::stream::duration_ticks(crate::config::JITTER_TOLERANCE, ts);
            let half_part = crate::stream::duration_ticks(cfg.part_target, ts) / 2;
            let interval = rescale(stream.longest_keyframe_interval_90khz(), 90_000, ts);
            elapsed + jitter >= target && interval > 0 && elapsed + half_part >= interval
        }
    };
    Some(if ends_here { (msn + 1, 0) } else { (msn, part) })
}

pub(crate) fn secs(ticks: u64, timescale: u32) -> f64 {
    ticks as f64 / f64::from(timescale)
}

/// Peak and average bit rate (bit/s) over the complete segments of a rendition, if any.
pub fn measured_bitrates(r: &Rendition) -> Option<(u64, u64)> {
    let mut peak = 0f64;
    let (mut bits, mut dur) = (0f64, 0f64);
    for s in r.segments().iter().filter(|s| s.is_complete) {
        let d = secs(s.duration_ticks(), r.timescale());
        if d <= 0.0 {
            continue;
        }
        let b = s.size_bytes() as f64 * 8.0;
        peak = peak.max(b / d);
        bits += b;
        dur += d;
    }
    (dur > 0.0).then(|| (peak.ceil() as u64, (bits / dur).ceil() as u64))
}

/// The `BANDWIDTH` of a rendition (bit/s): the highest of its declared bit rate and the peak segment bit
/// rate it has reached since it began (RFC 8216bis §4.4.6.2: at least the peak segment bit rate), or
/// `None` before its first complete segment.
pub fn peak_bandwidth(r: &Rendition) -> Option<u64> {
    if !r.has_complete_segment() {
        return None;
    }
    Some(
        r.peak_segment_bps()
            .max(r.declared_bandwidth(r.current_init_id()).unwrap_or(0))
            .max(1),
    )
}

/// Render the multivariant playlist (RFC 8216bis §4.4.6), or `None` before the stream is ready
/// ([`StreamPackager::is_ready`]). Lists the renditions that have a complete segment. `BANDWIDTH` is the
/// sum of the video's and the audio's [`peak_bandwidth`]; `AVERAGE-BANDWIDTH` their average over the
/// live window; `FRAME-RATE` measured over the first segment.
pub fn render_multivariant(stream: &StreamPackager) -> Option<String> {
    if !stream.is_ready() {
        return None;
    }
    let mut out = String::with_capacity(512);
    out.push_str("#EXTM3U\n");
    let _ = writeln!(out, "#EXT-X-VERSION:{PROTOCOL_VERSION}");
    let audio = stream
        .renditions()
        .find(|r| r.kind() == TrackKind::Audio && r.has_complete_segment());
    let audio_peak = audio.and_then(peak_bandwidth).unwrap_or(0);
    let audio_avg = audio.and_then(measured_bitrates).map_or(0, |(_, avg)| avg);
    if let Some(a) = audio {
        let channels = match &a.track().config {
            CodecConfig::Aac(c) => c.channels.max(1),
            _ => 2,
        };
        let _ = writeln!(
            out,
            "#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"audio\",NAME=\"{name}\",LANGUAGE=\"und\",DEFAULT=YES,AUTOSELECT=YES,CHANNELS=\"{channels}\",URI=\"{uri}\"",
            name = a.name(),
            uri = StreamObject::MediaPlaylist {
                rendition: a.name()
            }
        );
    }
    let videos: Vec<&Rendition> = stream
        .renditions()
        .filter(|r| r.kind() == TrackKind::Video && r.has_complete_segment())
        .collect();
    // Closed captions in the video's SEI (RFC 8216bis §4.4.6.1: TYPE=CLOSED-CAPTIONS, INSTREAM-ID):
    // one group, one entry per service seen, named by its channel. The CEA-708 service comes first:
    // hls.js (which decodes CEA-608 only) labels its one captions track after the last entry.
    let captions = videos
        .iter()
        .map(|v| stream.caption_services(v))
        .fold(media::captions::CaptionServices::default(), |a, b| {
            a.union(b)
        });
    for (has, id) in [
        (captions.cea708, "SERVICE1"),
        (captions.cea608_field2, "CC3"),
        (captions.cea608_field1, "CC1"),
    ] {
        if has {
            let _ = writeln!(
                out,
                "#EXT-X-MEDIA:TYPE=CLOSED-CAPTIONS,GROUP-ID=\"cc\",NAME=\"{id}\",AUTOSELECT=YES,INSTREAM-ID=\"{id}\""
            );
        }
    }
    // A taller variant never announces less than a shorter one: players with bandwidth to spare pick
    // the highest BANDWIDTH, which must be the best picture (raising a value keeps it at least the
    // peak, as §4.4.6.2 requires).
    let height = |r: &Rendition| r.track().config.video_params().map_or(0, |p| p.height);
    let mut peaks: Vec<u64> = videos
        .iter()
        .map(|v| peak_bandwidth(v).unwrap_or(1))
        .collect();
    for i in (0..videos.len()).rev() {
        let floor = (i + 1..videos.len())
            .filter(|&j| height(videos[j]) < height(videos[i]))
            .map(|j| peaks[j] + 1)
            .max()
            .unwrap_or(0);
        peaks[i] = peaks[i].max(floor);
    }
    let any_video = !videos.is_empty();
    for (v, peak) in videos.iter().zip(peaks) {
        let avg = measured_bitrates(v).map_or(0, |(_, avg)| avg);
        let mut codecs = v.window_codecs().join(",");
        if let Some(a) = audio {
            codecs.push(',');
            codecs.push_str(&a.window_codecs().join(","));
        }
        let _ = write!(
            out,
            "#EXT-X-STREAM-INF:BANDWIDTH={},AVERAGE-BANDWIDTH={},CODECS=\"{codecs}\"",
            peak + audio_peak,
            (avg + audio_avg).max(1)
        );
        if let Some(p) = v.track().config.video_params() {
            let _ = write!(out, ",RESOLUTION={}x{}", p.width, p.height);
        }
        let fps = match v.frame_rate(v.current_init_id()) {
            Some((n, d)) => f64::from(n) / f64::from(d),
            None => f64::from(v.timescale()) / v.est_duration_ticks().max(1) as f64,
        };
        let _ = write!(out, ",FRAME-RATE={fps:.3}");
        if audio.is_some() {
            out.push_str(",AUDIO=\"audio\"");
        }
        if stream.caption_services(v).any() {
            out.push_str(",CLOSED-CAPTIONS=\"cc\"");
        }
        let _ = writeln!(
            out,
            "\n{}",
            StreamObject::MediaPlaylist {
                rendition: v.name()
            }
        );
    }
    if !any_video && let Some(a) = audio {
        let _ = writeln!(
            out,
            "#EXT-X-STREAM-INF:BANDWIDTH={},AVERAGE-BANDWIDTH={},CODECS=\"{}\"\n{}",
            audio_peak.max(1),
            audio_avg.max(1),
            a.track().config.rfc6381(),
            StreamObject::MediaPlaylist {
                rendition: a.name()
            }
        );
    }
    Some(out)
}

/// The URI of content key `id`, relative to a media playlist: `../keys/{id}.key` (served at
/// `/live/{name}/keys/{id}.key`).
pub fn key_uri(id: u64) -> String {
    StreamObject::<&str>::Key { id }
        .from_rendition()
        .to_string()
}

/// Format Unix milliseconds as an ISO 8601 UTC date-time with milliseconds (RFC 3339).
pub fn format_program_date_time(unix_ms: i64) -> String {
    let secs = unix_ms.div_euclid(1000);
    let ms = unix_ms.rem_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Civil-from-days (proleptic Gregorian), days since 1970-01-01.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{ms:03}Z",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60
    )
}

/// One segment of a media playlist: from the DVR archive, or in the live window.
#[derive(Clone, Copy)]
enum Listed<'a> {
    Archived(&'a crate::rendition::ArchivedSegment),
    Live(&'a Segment),
}

impl Listed<'_> {
    fn msn(&self) -> u64 {
        match self {
            Listed::Archived(a) => a.msn,
            Listed::Live(s) => s.msn,
        }
    }
    fn init_id(&self) -> u64 {
        match self {
            Listed::Archived(a) => a.init_id,
            Listed::Live(s) => s.init_id,
        }
    }
    fn is_discontinuity(&self) -> bool {
        match self {
            Listed::Archived(a) => a.is_discontinuity,
            Listed::Live(s) => s.is_discontinuity,
        }
    }
    fn is_complete(&self) -> bool {
        match self {
            Listed::Archived(_) => true,
            Listed::Live(s) => s.is_complete,
        }
    }
    fn duration_ticks(&self) -> u64 {
        match self {
            Listed::Archived(a) => a.duration_ticks,
            Listed::Live(s) => s.duration_ticks(),
        }
    }
    fn earliest_pts(&self) -> i64 {
        match self {
            Listed::Archived(a) => a.earliest_pts,
            Listed::Live(s) => s.earliest_pts,
        }
    }
    fn start_dts(&self) -> i64 {
        match self {
            Listed::Archived(a) => a.start_dts,
            Listed::Live(s) => s.start_dts,
        }
    }
    fn program_date_time_ms(&self) -> i64 {
        match self {
            Listed::Archived(a) => a.program_date_time_ms,
            Listed::Live(s) => s.program_date_time_ms,
        }
    }
    fn key(&self) -> Option<&crate::crypto::SegmentKey> {
        match self {
            Listed::Archived(a) => a.key.as_ref(),
            Listed::Live(s) => s.key.as_ref(),
        }
    }
    fn parts(&self) -> &[crate::rendition::Part] {
        match self {
            Listed::Archived(_) => &[],
            Listed::Live(s) => &s.parts,
        }
    }
}

/// Render a rendition's media playlist (RFC 8216bis §4.4.3–§4.4.5), or `None` before the stream is
/// ready or for an unknown rendition. With `skip`, older segments are replaced by EXT-X-SKIP (a delta
/// update, §4.4.5.2) when there are any to skip.
pub fn render_media_playlist(
    stream: &StreamPackager,
    rendition: &str,
    skip: bool,
) -> Option<String> {
    if !stream.is_ready() {
        return None;
    }
    let td = stream.target_duration_s()?;
    let r = stream.rendition(rendition)?;
    let cfg = stream.config();
    let ts = r.timescale();
    let part_target = stream.advertised_part_target(r).as_secs_f64();
    let can_skip_until = f64::from(td) * 6.0;
    let mut out = String::with_capacity(4096);
    out.push_str("#EXTM3U\n");
    let _ = writeln!(out, "#EXT-X-VERSION:{PROTOCOL_VERSION}");
    let _ = writeln!(out, "#EXT-X-TARGETDURATION:{td}");
    let _ = writeln!(
        out,
        "#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,CAN-SKIP-UNTIL={can_skip_until:.1},PART-HOLD-BACK={:.3},HOLD-BACK={:.1}",
        part_target * 3.0,
        f64::from(td) * 3.0
    );
    let _ = writeln!(out, "#EXT-X-PART-INF:PART-TARGET={part_target:.3}");
    // The DVR archive (segments that left the live window), then the live window.
    let segments: Vec<Listed> = r
        .archive()
        .iter()
        .map(Listed::Archived)
        .chain(r.segments().iter().map(Listed::Live))
        .collect();
    let first_msn = segments.first().map_or(1, Listed::msn);
    let _ = writeln!(out, "#EXT-X-MEDIA-SEQUENCE:{first_msn}");
    let _ = writeln!(
        out,
        "#EXT-X-DISCONTINUITY-SEQUENCE:{}",
        r.discontinuity_sequence()
    );

    // Parts are listed for segments that end within `part_listing_target_durations` target durations of
    // the live edge.
    let edge: u64 = segments.iter().map(Listed::duration_ticks).sum();
    let part_window = u64::from(cfg.part_listing_target_durations) * u64::from(td) * u64::from(ts);
    let skip_window = (can_skip_until * f64::from(ts)) as u64;
    let mut from_start = 0u64;
    let mut skipped = 0usize;
    if skip {
        // Skip segments that start more than CAN-SKIP-UNTIL before the end of the playlist, but never
        // one after an EXT-X-DISCONTINUITY: the tag would go with it, and a client numbers the
        // discontinuity sequence of every later segment by the tags it sees (hls.js then finds its
        // segments' numbering changed and gives up on the playlist).
        for (i, s) in segments.iter().enumerate() {
            let starts_before_edge = edge - from_start;
            if starts_before_edge <= skip_window
                || !s.is_complete()
                || (s.is_discontinuity() && i > 0)
            {
                break;
            }
            from_start += s.duration_ticks();
            skipped += 1;
        }
        if skipped > 0 {
            let _ = writeln!(out, "#EXT-X-SKIP:SKIPPED-SEGMENTS={skipped}");
        }
    }
    // Every event the window spans, in every media playlist alike (RFC 8216bis §4.4.5.1), each before
    // the segment it starts in (those of skipped segments before the first one listed: delta updates
    // keep them all, since CAN-SKIP-DATERANGES is not offered).
    let mut events = stream.events().peekable();
    let mut current_init: Option<u64> = None;
    let mut position = from_start;
    for (i, s) in segments.iter().enumerate().skip(skipped) {
        if s.is_discontinuity() && i > 0 {
            out.push_str("#EXT-X-DISCONTINUITY\n");
        }
        if current_init != Some(s.init_id()) {
            let init = StreamObject::Init {
                rendition: r.name(),
                id: s.init_id(),
            };
            let _ = writeln!(out, "#EXT-X-MAP:URI=\"{}\"", init.from_rendition());
            current_init = Some(s.init_id());
        }
        // The init segment stays clear: EXT-X-KEY comes after EXT-X-MAP, once per segment since
        // every segment has its own IV (RFC 8216bis §4.4.4.4).
        if let Some(k) = s.key() {
            let _ = writeln!(
                out,
                "#EXT-X-KEY:METHOD=AES-128,URI=\"{}\",IV=0x{}",
                key_uri(k.key.id),
                crate::crypto::hex(&k.iv)
            );
        }
        if i == skipped || s.is_discontinuity() {
            let _ = writeln!(
                out,
                "#EXT-X-PROGRAM-DATE-TIME:{}",
                format_program_date_time(s.program_date_time_ms())
            );
        }
        // Up to the next segment's start; after the last one, up to its end when it is complete: an
        // event past it waits for the segment holding it (a player dates a DATERANGE by the
        // segments listed, and across a reconnect's gap in the wall clock it would date it by the
        // segment before).
        let next_start_90khz = match segments.get(i + 1) {
            Some(n) => Some(rescale(n.earliest_pts(), ts, 90_000)),
            None if s.is_complete() => Some(rescale(
                s.start_dts()
                    .saturating_add(i64::try_from(s.duration_ticks()).unwrap_or(0)),
                ts,
                90_000,
            )),
            None => None,
        };
        while let Some(e) = events.next_if(|e| next_start_90khz.is_none_or(|n| e.pts_90khz < n)) {
            if let Some(line) = e.daterange() {
                out.push_str(&line);
            }
        }
        let dur = s.duration_ticks();
        let ends_before_edge = edge - (position + dur);
        if ends_before_edge < part_window || !s.is_complete() {
            for (pi, p) in s.parts().iter().enumerate() {
                let part = StreamObject::Part {
                    rendition: r.name(),
                    msn: s.msn(),
                    part: pi,
                };
                let _ = write!(
                    out,
                    "#EXT-X-PART:DURATION={:.5},URI=\"{}\"",
                    secs(p.duration_ticks, ts),
                    part.from_rendition()
                );
                if p.is_independent {
                    out.push_str(",INDEPENDENT=YES");
                }
                out.push('\n');
            }
        }
        if s.is_complete() {
            let segment = StreamObject::Segment {
                rendition: r.name(),
                msn: s.msn(),
            };
            let _ = writeln!(
                out,
                "#EXTINF:{:.5},\n{}",
                secs(dur, ts),
                segment.from_rendition()
            );
        }
        position += dur;
    }
    if r.is_ended() {
        out.push_str("#EXT-X-ENDLIST\n");
    } else {
        if let Some((msn, part)) = preload_hint(stream, r) {
            let hint = StreamObject::Part {
                rendition: r.name(),
                msn,
                part,
            };
            let _ = writeln!(
                out,
                "#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"{}\"",
                hint.from_rendition()
            );
        }
        for other in stream.renditions().filter(|o| o.name() != r.name()) {
            if let Some((lm, lp)) = other.last_part() {
                let report = StreamObject::MediaPlaylist {
                    rendition: other.name(),
                };
                let _ = writeln!(
                    out,
                    "#EXT-X-RENDITION-REPORT:URI=\"{}\",LAST-MSN={lm},LAST-PART={lp}",
                    report.from_rendition()
                );
            }
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directives_parse_and_reject() {
        let d = HlsDirectives::parse("_HLS_msn=12&_HLS_part=3&_HLS_skip=YES").unwrap();
        assert_eq!(
            d,
            HlsDirectives {
                msn: Some(12),
                part: Some(3),
                skip: true
            }
        );
        assert_eq!(
            HlsDirectives::parse("_HLS_part=1"),
            Err(DirectiveError::PartWithoutMsn)
        );
        assert_eq!(
            HlsDirectives::parse("_HLS_msn=-1"),
            Err(DirectiveError::InvalidValue("_HLS_msn"))
        );
        assert_eq!(
            HlsDirectives::parse("_HLS_msn=99999999999999999999"),
            Err(DirectiveError::InvalidValue("_HLS_msn"))
        );
        assert_eq!(
            HlsDirectives::parse("_HLS_skip=NO"),
            Err(DirectiveError::InvalidValue("_HLS_skip"))
        );
        assert_eq!(
            HlsDirectives::parse("token=x&_HLS_msn=5").unwrap().msn,
            Some(5)
        );
    }

    #[test]
    fn program_date_time_formats_utc() {
        assert_eq!(format_program_date_time(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            format_program_date_time(1_763_765_471_123),
            "2025-11-21T22:51:11.123Z"
        );
        assert_eq!(
            format_program_date_time(951_782_400_000),
            "2000-02-29T00:00:00.000Z"
        );
    }
}
