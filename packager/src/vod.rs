//! Replay (VOD) of a recorded stream: the recording's data model and its playlists and MPD.
//!
//! A recording holds, per rendition, the init segments and complete segments the live packager
//! produced — the same CMAF bytes, under the same names ([`crate::urls::StreamObject`]'s
//! `{rendition}/init-{id}.mp4` and `{rendition}/{msn}.m4s`) — and the facts listed here. From them:
//!
//! - [`render_multivariant`]: the multivariant playlist (RFC 8216bis §4.4.6), bit rates measured over
//!   the whole recording;
//! - [`render_media_playlist`]: a media playlist with `EXT-X-PLAYLIST-TYPE:VOD` and `EXT-X-ENDLIST`
//!   (RFC 8216bis §4.4.3.5, §4.4.3.4), `EXT-X-DISCONTINUITY` where the publisher reconnected (or a
//!   segment is missing), `EXT-X-PROGRAM-DATE-TIME` after each, `EXT-X-KEY` for an encrypted
//!   recording (AES-128, the live stream's keys and IVs);
//! - [`render_mpd`]: a static MPD (ISO/IEC 23009-1 §5.3.1.2 `type="static"`), one Period per run of
//!   segments without a discontinuity, `SegmentTemplate` with a `SegmentTimeline` (§5.3.9.6).
//!
//! Sans-IO: the caller reads the recording from wherever it is kept and passes it in.

use std::{fmt::Write as _, time::Duration};

use dash_mpd_core as mpd;
use media::TrackKind;

use crate::{
    dash::{
        AUDIO_CHANNEL_SCHEME, MPD_NAMESPACE, PROFILES, audio_adaptation, push_s, video_adaptation,
    },
    hls::{PROTOCOL_VERSION, format_program_date_time, key_uri, secs},
    urls::StreamObject,
};

/// A recording: its renditions, video first (highest first), then audio.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Recording {
    /// The renditions recorded.
    pub renditions: Vec<RecordedRendition>,
}

/// One recorded rendition.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedRendition {
    /// The rendition's name (its folder).
    pub name: String,
    /// Video or audio.
    pub kind: TrackKind,
    /// Ticks per second of its timestamps.
    pub timescale: u32,
    /// Its init segments, oldest first.
    pub inits: Vec<RecordedInit>,
    /// Its complete segments, in media sequence order.
    pub segments: Vec<RecordedSegment>,
}

/// One recorded init segment and the track it describes.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedInit {
    /// `init-{id}.mp4`.
    pub id: u64,
    /// RFC 6381 codec string.
    pub codec: String,
    /// Picture size in pixels (video).
    pub size: Option<(u32, u32)>,
    /// Frame rate as (numerator, denominator) frames per second (video), when known.
    pub frame_rate: Option<(u32, u32)>,
    /// Audio channels and sample rate in Hz (audio).
    pub audio: Option<(u8, u32)>,
}

/// One recorded segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedSegment {
    /// Media sequence number (its file `{msn}.m4s`).
    pub msn: u64,
    /// The init segment it needs.
    pub init_id: u64,
    /// Earliest presentation time, in the rendition's timescale ticks (ISO/IEC 14496-12 §8.16.3).
    pub earliest_pts: i64,
    /// Duration, ticks.
    pub duration_ticks: u64,
    /// Wall-clock time of its first sample, Unix ms.
    pub program_date_time_ms: i64,
    /// True when a discontinuity precedes it (a reconnect, a restart of the origin).
    pub is_discontinuity: bool,
    /// Size of the file, bytes.
    pub size_bytes: u64,
    /// The AES-128 content key id and IV it is served encrypted with (RFC 8216bis §4.4.4.4), when
    /// the stream was encrypted.
    pub key: Option<(u64, [u8; 16])>,
}

impl RecordedRendition {
    /// The init segment `id`, if recorded.
    pub fn init(&self, id: u64) -> Option<&RecordedInit> {
        self.inits.iter().find(|i| i.id == id)
    }

    /// The segment `msn`, if recorded.
    pub fn segment(&self, msn: u64) -> Option<&RecordedSegment> {
        self.segments
            .binary_search_by_key(&msn, |s| s.msn)
            .ok()
            .map(|i| &self.segments[i])
    }

    /// Total duration of its segments, ticks.
    pub fn duration_ticks(&self) -> u64 {
        self.segments.iter().map(|s| s.duration_ticks).sum()
    }

    /// Total size of its segments, bytes.
    pub fn size_bytes(&self) -> u64 {
        self.segments.iter().map(|s| s.size_bytes).sum()
    }

    /// Peak segment bit rate and average bit rate over the recording, bit/s (RFC 8216bis §4.4.6.2
    /// `BANDWIDTH`, `AVERAGE-BANDWIDTH`); (1, 1) without a segment.
    pub fn bitrates(&self) -> (u64, u64) {
        let bps = |bytes: u64, ticks: u64| {
            (bytes as f64 * 8.0 * f64::from(self.timescale) / ticks.max(1) as f64).ceil() as u64
        };
        let peak = self
            .segments
            .iter()
            .filter(|s| s.duration_ticks > 0)
            .map(|s| bps(s.size_bytes, s.duration_ticks))
            .max()
            .unwrap_or(1);
        let avg = bps(self.size_bytes(), self.duration_ticks());
        (peak.max(1), avg.max(1))
    }

    /// True when segment `i` starts after a discontinuity: flagged so, or a media sequence number
    /// before it is missing (a segment that was not recorded).
    fn follows_discontinuity(&self, i: usize) -> bool {
        i > 0 && {
            let s = &self.segments[i];
            s.is_discontinuity || s.msn != self.segments[i - 1].msn + 1
        }
    }

    fn latest_init(&self) -> Option<&RecordedInit> {
        let id = self.segments.last()?.init_id;
        self.init(id)
    }
}

impl Recording {
    /// The rendition called `name`.
    pub fn rendition(&self, name: &str) -> Option<&RecordedRendition> {
        self.renditions.iter().find(|r| r.name == name)
    }

    /// The duration of the longest rendition, ms.
    pub fn duration_ms(&self) -> u64 {
        self.renditions
            .iter()
            .map(|r| r.duration_ticks().saturating_mul(1000) / u64::from(r.timescale.max(1)))
            .max()
            .unwrap_or(0)
    }

    /// Total size of every rendition's segments, bytes.
    pub fn size_bytes(&self) -> u64 {
        self.renditions
            .iter()
            .map(RecordedRendition::size_bytes)
            .sum()
    }

    /// True when its segments are served encrypted (HLS AES-128): the recording has no DASH form
    /// (its CENC form is not recorded).
    pub fn is_encrypted(&self) -> bool {
        self.renditions
            .iter()
            .any(|r| r.segments.iter().any(|s| s.key.is_some()))
    }

    fn playable(&self, kind: TrackKind) -> impl Iterator<Item = &RecordedRendition> {
        self.renditions
            .iter()
            .filter(move |r| r.kind == kind && r.latest_init().is_some())
    }
}

/// The multivariant playlist of `rec` (RFC 8216bis §4.4.6), or `None` when no rendition has a
/// segment. One variant stream per video rendition (with the audio rendition as its `AUDIO` group),
/// or one audio-only variant stream.
pub fn render_multivariant(rec: &Recording) -> Option<String> {
    let mut out = String::with_capacity(512);
    out.push_str("#EXTM3U\n");
    let _ = writeln!(out, "#EXT-X-VERSION:{PROTOCOL_VERSION}");
    out.push_str("#EXT-X-INDEPENDENT-SEGMENTS\n");
    let audio = rec.playable(TrackKind::Audio).next();
    let (audio_peak, audio_avg) = audio.map_or((0, 0), RecordedRendition::bitrates);
    if let Some(a) = audio {
        let channels = a
            .latest_init()
            .and_then(|i| i.audio)
            .map_or(2, |(c, _)| c.max(1));
        let _ = writeln!(
            out,
            "#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"audio\",NAME=\"{name}\",LANGUAGE=\"und\",DEFAULT=YES,AUTOSELECT=YES,CHANNELS=\"{channels}\",URI=\"{uri}\"",
            name = a.name,
            uri = StreamObject::MediaPlaylist {
                rendition: a.name.as_str()
            }
        );
    }
    let mut any = false;
    for v in rec.playable(TrackKind::Video) {
        let Some(init) = v.latest_init() else {
            continue;
        };
        let (peak, avg) = v.bitrates();
        let mut codecs = init.codec.clone();
        if let Some(a) = audio.and_then(RecordedRendition::latest_init) {
            codecs.push(',');
            codecs.push_str(&a.codec);
        }
        let _ = write!(
            out,
            "#EXT-X-STREAM-INF:BANDWIDTH={},AVERAGE-BANDWIDTH={},CODECS=\"{codecs}\"",
            peak + audio_peak,
            avg + audio_avg
        );
        if let Some((w, h)) = init.size {
            let _ = write!(out, ",RESOLUTION={w}x{h}");
        }
        if let Some((n, d)) = init.frame_rate.filter(|(n, d)| *n > 0 && *d > 0) {
            let _ = write!(out, ",FRAME-RATE={:.3}", f64::from(n) / f64::from(d));
        }
        if audio.is_some() {
            out.push_str(",AUDIO=\"audio\"");
        }
        let _ = writeln!(
            out,
            "\n{}",
            StreamObject::MediaPlaylist {
                rendition: v.name.as_str()
            }
        );
        any = true;
    }
    if !any {
        let a = audio?;
        let _ = writeln!(
            out,
            "#EXT-X-STREAM-INF:BANDWIDTH={audio_peak},AVERAGE-BANDWIDTH={audio_avg},CODECS=\"{}\"\n{}",
            a.latest_init()?.codec,
            StreamObject::MediaPlaylist {
                rendition: a.name.as_str()
            }
        );
    }
    Some(out)
}

/// The media playlist of rendition `name` of `rec` (RFC 8216bis §4.4.3), `EXT-X-PLAYLIST-TYPE:VOD`
/// and `EXT-X-ENDLIST`; `None` for an unknown rendition or one without a segment. The target
/// duration is the longest segment's duration rounded to the nearest second (§4.4.3.1).
pub fn render_media_playlist(rec: &Recording, name: &str) -> Option<String> {
    let r = rec.rendition(name)?;
    if r.segments.is_empty() {
        return None;
    }
    let ts = r.timescale.max(1);
    let td = r
        .segments
        .iter()
        .map(|s| secs(s.duration_ticks, ts).round() as u64)
        .max()
        .unwrap_or(1)
        .max(1);
    let mut out = String::with_capacity(64 * r.segments.len() + 256);
    out.push_str("#EXTM3U\n");
    let _ = writeln!(out, "#EXT-X-VERSION:{PROTOCOL_VERSION}");
    let _ = writeln!(out, "#EXT-X-TARGETDURATION:{td}");
    out.push_str("#EXT-X-PLAYLIST-TYPE:VOD\n");
    let _ = writeln!(out, "#EXT-X-MEDIA-SEQUENCE:{}", r.segments[0].msn);
    out.push_str("#EXT-X-INDEPENDENT-SEGMENTS\n");
    let mut current_init = None;
    for (i, s) in r.segments.iter().enumerate() {
        let discontinuity = r.follows_discontinuity(i);
        if discontinuity {
            out.push_str("#EXT-X-DISCONTINUITY\n");
        }
        if current_init != Some(s.init_id) {
            let init = StreamObject::Init {
                rendition: r.name.as_str(),
                id: s.init_id,
            };
            let _ = writeln!(out, "#EXT-X-MAP:URI=\"{}\"", init.from_rendition());
            current_init = Some(s.init_id);
        }
        if let Some((id, iv)) = &s.key {
            let _ = writeln!(
                out,
                "#EXT-X-KEY:METHOD=AES-128,URI=\"{}\",IV=0x{}",
                key_uri(*id),
                crate::crypto::hex(iv)
            );
        }
        if i == 0 || discontinuity {
            let _ = writeln!(
                out,
                "#EXT-X-PROGRAM-DATE-TIME:{}",
                format_program_date_time(s.program_date_time_ms)
            );
        }
        let segment = StreamObject::Segment {
            rendition: r.name.as_str(),
            msn: s.msn,
        };
        let _ = writeln!(
            out,
            "#EXTINF:{:.5},\n{}",
            secs(s.duration_ticks, ts),
            segment.from_rendition()
        );
    }
    out.push_str("#EXT-X-ENDLIST\n");
    Some(out)
}

/// A run of segments without a discontinuity in any rendition: one Period of the MPD.
struct Run {
    /// Its wall-clock start (Unix ms): the earliest first segment's program date time.
    start_ms: i64,
    /// Per rendition (same order as the recording's), the range of its segments in the run.
    ranges: Vec<std::ops::Range<usize>>,
}

/// Split the recording into runs: a run ends where any rendition has a discontinuity (or a missing
/// segment); the renditions' segments are assigned by their program date time, so a rendition
/// whose discontinuity came a segment late still lands in the right run.
fn runs(rec: &Recording) -> Vec<Run> {
    // The wall-clock starts of the runs: each rendition's discontinuities, merged when within one
    // segment of each other.
    let mut starts: Vec<i64> = Vec::new();
    for r in &rec.renditions {
        for (i, s) in r.segments.iter().enumerate() {
            if i == 0 || r.follows_discontinuity(i) {
                starts.push(s.program_date_time_ms);
            }
        }
    }
    starts.sort_unstable();
    let longest_ms = rec
        .renditions
        .iter()
        .flat_map(|r| {
            r.segments
                .iter()
                .map(|s| s.duration_ticks * 1000 / u64::from(r.timescale.max(1)))
        })
        .max()
        .unwrap_or(0) as i64;
    let mut merged: Vec<i64> = Vec::new();
    for s in starts {
        match merged.last() {
            Some(&last) if s - last <= longest_ms => {}
            _ => merged.push(s),
        }
    }
    let mut runs: Vec<Run> = merged
        .iter()
        .map(|&start_ms| Run {
            start_ms,
            ranges: Vec::new(),
        })
        .collect();
    for r in &rec.renditions {
        // Each discontinuity of the rendition starts its segments of the run whose start is nearest.
        let mut cuts: Vec<(usize, usize)> = Vec::new(); // (run index, first segment index)
        for (i, s) in r.segments.iter().enumerate() {
            if i == 0 || r.follows_discontinuity(i) {
                let run = merged
                    .iter()
                    .enumerate()
                    .min_by_key(|(_, m)| (s.program_date_time_ms - **m).abs())
                    .map_or(0, |(k, _)| k);
                match cuts.last() {
                    Some((k, _)) if *k >= run => {}
                    _ => cuts.push((run, i)),
                }
            }
        }
        for run in &mut runs {
            run.ranges.push(0..0);
        }
        for (j, (k, first)) in cuts.iter().enumerate() {
            let end = cuts.get(j + 1).map_or(r.segments.len(), |(_, f)| *f);
            if let Some(range) = runs[*k].ranges.last_mut() {
                *range = *first..end;
            }
        }
    }
    runs
}

/// The static MPD of `rec` (ISO/IEC 23009-1 §5.3.1.2), or `None` when no rendition has a segment or
/// the recording is encrypted ([`Recording::is_encrypted`]).
/// One Period per run without a discontinuity (§5.3.2), placed at its wall-clock offset from the
/// recording's start less the gaps before it (a reconnect's pause is not played as a wait); each
/// Representation a `SegmentTemplate` numbered by media sequence number with a `SegmentTimeline` of
/// earliest presentation times and a `presentationTimeOffset` at the run's first segment.
pub fn render_mpd(rec: &Recording) -> Option<String> {
    if rec.is_encrypted() {
        return None;
    }
    let runs = runs(rec);
    let mut periods = Vec::new();
    let mut position = Duration::ZERO;
    let mut longest = Duration::ZERO;
    for run in &runs {
        let mut video = Vec::new();
        let mut audio = Vec::new();
        let mut run_duration = Duration::ZERO;
        for (r, range) in rec.renditions.iter().zip(&run.ranges) {
            let segs = &r.segments[range.clone()];
            // One init segment per Representation: the run's last one (a track change is a
            // discontinuity, so a run has one).
            let Some(last) = segs.last() else { continue };
            let Some(init) = r.init(last.init_id) else {
                continue;
            };
            let segs: Vec<&RecordedSegment> =
                segs.iter().filter(|s| s.init_id == init.id).collect();
            let Some(first) = segs.first() else { continue };
            let ts = r.timescale.max(1);
            let mut timeline = Vec::new();
            let mut t = first.earliest_pts.max(0) as u64;
            for s in &segs {
                // Contiguous: each segment starts where the one before ended (the run has no gap).
                push_s(&mut timeline, t, s.duration_ticks.max(1));
                t = t.saturating_add(s.duration_ticks.max(1));
                longest = longest.max(seconds(secs(s.duration_ticks, ts)));
            }
            let ticks: u64 = segs.iter().map(|s| s.duration_ticks).sum();
            run_duration = run_duration.max(seconds(secs(ticks, ts)));
            let peak = segs
                .iter()
                .map(|s| {
                    (s.size_bytes.saturating_mul(8 * u64::from(ts)))
                        .div_ceil(s.duration_ticks.max(1))
                })
                .max()
                .unwrap_or(1);
            let mut rep = mpd::Representation {
                id: Some(format!("{}-p{}", r.name, first.msn)),
                bandwidth: Some(peak.div_ceil(1000).max(1) * 1000),
                codecs: Some(init.codec.clone()),
                SegmentTemplate: Some(mpd::SegmentTemplate {
                    media: Some(crate::urls::dash_media_template(&r.name, None)),
                    initialization: Some(
                        StreamObject::Init {
                            rendition: r.name.as_str(),
                            id: init.id,
                        }
                        .to_string(),
                    ),
                    startNumber: Some(first.msn),
                    timescale: Some(u64::from(ts)),
                    presentationTimeOffset: Some(first.earliest_pts.max(0) as u64),
                    SegmentTimeline: Some(mpd::SegmentTimeline { segments: timeline }),
                    ..Default::default()
                }),
                ..Default::default()
            };
            if let Some((w, h)) = init.size {
                rep.width = Some(u64::from(w));
                rep.height = Some(u64::from(h));
                rep.sar = Some("1:1".into());
            }
            if let Some((n, d)) = init.frame_rate.filter(|(n, d)| *n > 0 && *d > 0) {
                rep.frameRate = Some(if n % d == 0 {
                    (n / d).to_string()
                } else {
                    format!("{n}/{d}")
                });
            }
            if let Some((channels, rate)) = init.audio {
                rep.audioSamplingRate = Some(rate.to_string());
                rep.AudioChannelConfiguration = vec![mpd::AudioChannelConfiguration {
                    schemeIdUri: AUDIO_CHANNEL_SCHEME.into(),
                    value: Some(channels.max(1).to_string()),
                    ..Default::default()
                }];
            }
            match r.kind {
                TrackKind::Video => video.push(rep),
                TrackKind::Audio => audio.push(rep),
            }
        }
        if video.is_empty() && audio.is_empty() {
            continue;
        }
        let mut adaptations = Vec::new();
        if !video.is_empty() {
            adaptations.push(video_adaptation(video));
        }
        if !audio.is_empty() {
            adaptations.push(audio_adaptation(audio));
        }
        periods.push(mpd::Period {
            id: Some(format!("p{}", run.start_ms)),
            start: Some(position),
            duration: Some(run_duration),
            adaptations,
            ..Default::default()
        });
        position = position.saturating_add(run_duration);
    }
    if periods.is_empty() {
        return None;
    }
    let doc = mpd::MPD {
        xmlns: Some(MPD_NAMESPACE.into()),
        profiles: Some(PROFILES.into()),
        mpdtype: Some("static".into()),
        mediaPresentationDuration: Some(position),
        minBufferTime: Some(Duration::from_secs(2)),
        maxSegmentDuration: Some(Duration::from_millis(longest.as_millis() as u64 + 1)),
        periods,
        ..Default::default()
    };
    Some(format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n{doc}\n"
    ))
}

/// `s` seconds as a `Duration` (0 for a value no `Duration` holds: damaged input never panics).
fn seconds(s: f64) -> Duration {
    Duration::try_from_secs_f64(s).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(msn: u64, pts: i64, dur: u64, pdt: i64, disc: bool) -> RecordedSegment {
        RecordedSegment {
            msn,
            init_id: 1,
            earliest_pts: pts,
            duration_ticks: dur,
            program_date_time_ms: pdt,
            is_discontinuity: disc,
            size_bytes: 250_000,
            key: None,
        }
    }

    fn recording() -> Recording {
        let video = RecordedRendition {
            name: "720p".into(),
            kind: TrackKind::Video,
            timescale: 90_000,
            inits: vec![RecordedInit {
                id: 1,
                codec: "avc1.64001f".into(),
                size: Some((1280, 720)),
                frame_rate: Some((30, 1)),
                audio: None,
            }],
            // Two segments, a reconnect 10 s later, two more.
            segments: vec![
                seg(1, 0, 180_000, 1_000_000, false),
                seg(2, 180_000, 180_000, 1_002_000, false),
                seg(3, 360_000, 180_000, 1_014_000, true),
                seg(4, 540_000, 180_000, 1_016_000, false),
            ],
        };
        let audio = RecordedRendition {
            name: "audio".into(),
            kind: TrackKind::Audio,
            timescale: 48_000,
            inits: vec![RecordedInit {
                id: 1,
                codec: "mp4a.40.2".into(),
                size: None,
                frame_rate: None,
                audio: Some((2, 48_000)),
            }],
            // The audio's first segment after the reconnect starts 20 ms after the video's, and its
            // segment 4 is missing.
            segments: vec![
                seg(1, 0, 96_000, 1_000_000, false),
                seg(2, 96_000, 96_000, 1_002_000, false),
                seg(3, 192_000, 96_000, 1_014_020, true),
                seg(5, 384_000, 96_000, 1_018_000, false),
            ],
        };
        Recording {
            renditions: vec![video, audio],
        }
    }

    #[test]
    fn media_playlist_is_vod_with_discontinuities_at_reconnects_and_gaps() {
        let rec = recording();
        let text = render_media_playlist(&rec, "720p").unwrap();
        let pl = match m3u8_rs::parse_playlist_res(text.as_bytes()).unwrap() {
            m3u8_rs::Playlist::MediaPlaylist(p) => p,
            m3u8_rs::Playlist::MasterPlaylist(_) => panic!("media playlist expected"),
        };
        assert!(pl.end_list);
        assert_eq!(pl.playlist_type, Some(m3u8_rs::MediaPlaylistType::Vod));
        assert_eq!(pl.media_sequence, 1);
        assert_eq!(pl.target_duration, 2);
        assert_eq!(pl.segments.len(), 4);
        assert!(pl.segments[2].discontinuity);
        assert!(pl.segments[2].program_date_time.is_some());
        assert_eq!(pl.segments[3].uri, "4.m4s");
        let audio = render_media_playlist(&rec, "audio").unwrap();
        // The reconnect, and the missing segment 4.
        assert_eq!(audio.matches("#EXT-X-DISCONTINUITY\n").count(), 2);
        assert!(audio.contains("#EXT-X-DISCONTINUITY\n#EXT-X-PROGRAM-DATE-TIME"));
        assert!(render_media_playlist(&rec, "nope").is_none());
    }

    #[test]
    fn multivariant_lists_video_with_audio_group_and_measured_bandwidth() {
        let text = render_multivariant(&recording()).unwrap();
        let pl = match m3u8_rs::parse_playlist_res(text.as_bytes()).unwrap() {
            m3u8_rs::Playlist::MasterPlaylist(p) => p,
            m3u8_rs::Playlist::MediaPlaylist(_) => panic!("multivariant expected"),
        };
        assert_eq!(pl.variants.len(), 1);
        let v = &pl.variants[0];
        // 250 kB per 2 s segment: 1 Mbit/s each for video and audio.
        assert_eq!(v.bandwidth, 2_000_000);
        assert_eq!(v.codecs.as_deref(), Some("avc1.64001f,mp4a.40.2"));
        assert_eq!(v.audio.as_deref(), Some("audio"));
        assert_eq!(pl.alternatives.len(), 1);
    }

    #[test]
    fn mpd_is_static_with_one_period_per_run() {
        let text = render_mpd(&recording()).unwrap();
        let doc = dash_mpd_core::parse(&text).unwrap();
        assert_eq!(doc.mpdtype.as_deref(), Some("static"));
        // Runs: the start, the reconnect (the audio's start 20 ms later merged into it), and the
        // audio after its missing segment.
        assert_eq!(doc.periods.len(), 3, "{text}");
        assert_eq!(doc.periods[0].start, Some(Duration::ZERO));
        assert_eq!(doc.periods[1].start, Some(Duration::from_secs(4)));
        let total = doc.mediaPresentationDuration.unwrap();
        assert_eq!(total, Duration::from_secs(10));
        // Period 2 has both renditions, numbered from their first segment in it.
        let p = &doc.periods[1];
        let starts: Vec<Option<u64>> = p
            .adaptations
            .iter()
            .map(|a| {
                a.representations[0]
                    .SegmentTemplate
                    .as_ref()
                    .unwrap()
                    .startNumber
            })
            .collect();
        assert_eq!(starts, vec![Some(3), Some(3)]);
    }
}
