//! Per-stream transcoding: which streams get a ladder, and the sink that feeds the transcoder's renditions
//! into the stream's packager.
//!
//! The transcoder runs on its own OS threads; its output reaches the packager through [`PackagerSink`],
//! which takes the stream's lock for the microseconds a frame needs and wakes blocked requests.

use std::sync::Arc;

use media::{Frame, TrackInfo, TrackKind};
use transcoder::{EncoderProbe, RungConfig, StreamTranscoder, TranscodeOptions, TranscodeSink};

use crate::hub::{StreamEntry, unix_ms};

/// Ladder settings shared by every stream of a server.
#[derive(Debug, Clone)]
pub struct LadderSettings {
    /// The rungs; `None` derives the default ladder from each source's resolution.
    pub rungs: Option<Vec<RungConfig>>,
    /// The encoders chosen by the start-up probe.
    pub probe: EncoderProbe,
    /// Queue bounds, audio settings and the segment target (keyframe grid).
    pub options: TranscodeOptions,
    /// Streams (`live/{name}`) packaged as they arrive, without a ladder.
    pub passthrough_streams: Vec<String>,
}

/// Whether a ladder's copy rung may pass `track` through as it arrives: only codecs the packager and
/// players handle (H.264, HEVC). Any other source (MPEG-2, VP9, AV1 …) is decoded, and its copy rung
/// becomes an encoded rung at the source's size ([`ladder_for`]).
pub fn can_copy(track: &TrackInfo) -> bool {
    track.config.is_packageable()
}

/// Picture parameters assumed to size the default ladder when a source does not signal its own (a
/// decodable video codec whose headers did not give a size): 720p.
const ASSUMED_SOURCE: media::VideoParams = media::VideoParams {
    width: 1280,
    height: 720,
    frame_rate: None,
};

/// The rungs for `video`: the configured ones, or the default ladder derived from the source; in either,
/// a copy rung over a source that cannot be copied ([`can_copy`]) is replaced by an encoded rung at the
/// source's height ([`transcoder::encoded_source_rung`]). Empty without video.
pub fn ladder_for(
    configured: Option<&[transcoder::RungConfig]>,
    video: Option<&TrackInfo>,
) -> Vec<transcoder::RungConfig> {
    let Some(video) = video else {
        return configured.map(<[_]>::to_vec).unwrap_or_default();
    };
    let params = video.config.video_params().unwrap_or(ASSUMED_SOURCE);
    let rungs = match configured {
        Some(r) => r.to_vec(),
        None => transcoder::default_ladder(params),
    };
    if can_copy(video) {
        return rungs;
    }
    rungs
        .into_iter()
        .map(|r| {
            if r.copy {
                transcoder::encoded_source_rung(&r, params)
            } else {
                r
            }
        })
        .collect()
}

impl LadderSettings {
    /// Whether `stream` gets a ladder.
    pub fn applies_to(&self, stream: &str) -> bool {
        !self.passthrough_streams.iter().any(|s| s == stream)
    }
}

/// When recent source frames were received, so that a transcoded part's publication latency counts
/// from its source frame's reception (decoding, scaling and encoding included).
///
/// Keyed by presentation time in µs on the source timeline, which every rendition keeps.
#[derive(Debug, Default)]
pub struct ArrivalLog {
    /// (track, PTS in µs, reception in Unix ms), in reception order; at most [`Self::CAPACITY`].
    frames: std::sync::Mutex<std::collections::VecDeque<(TrackKind, i64, i64)>>,
}

impl ArrivalLog {
    /// Frames remembered: about 30 s of 60 fps video with its audio, beyond any encoder delay.
    pub const CAPACITY: usize = 4096;

    fn lock(&self) -> std::sync::MutexGuard<'_, std::collections::VecDeque<(TrackKind, i64, i64)>> {
        self.frames.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Note a source frame (`pts` in `timescale` ticks) received at `received_ms` (Unix ms).
    pub fn record(&self, kind: TrackKind, pts: i64, timescale: u32, received_ms: i64) {
        let mut frames = self.lock();
        if frames.len() >= Self::CAPACITY {
            frames.pop_front();
        }
        frames.push_back((
            kind,
            media::time::rescale(pts, timescale, 1_000_000),
            received_ms,
        ));
    }

    /// When the source frame of an output frame (`pts` in `timescale` ticks) was received: the frame
    /// with the same presentation time (within 1 ms: video keeps its timestamps), else the latest
    /// received frame presented at or before it (resampled audio). `None` once forgotten.
    pub fn received_ms(&self, kind: TrackKind, pts: i64, timescale: u32) -> Option<i64> {
        let us = media::time::rescale(pts, timescale, 1_000_000);
        let frames = self.lock();
        let same_kind = || frames.iter().rev().filter(|(k, ..)| *k == kind);
        same_kind()
            .find(|(_, p, _)| (p - us).abs() <= 1_000)
            .or_else(|| same_kind().find(|(_, p, _)| *p <= us))
            .map(|(.., r)| *r)
    }
}

/// Feeds transcoder output into one stream's packager.
pub struct PackagerSink {
    entry: Arc<StreamEntry>,
    arrivals: Arc<ArrivalLog>,
}

impl PackagerSink {
    /// A sink into `entry`'s packager; part latencies count from the source frames in `arrivals`.
    pub fn new(entry: Arc<StreamEntry>, arrivals: Arc<ArrivalLog>) -> Arc<Self> {
        Arc::new(Self { entry, arrivals })
    }
}

impl TranscodeSink for PackagerSink {
    fn track(&self, rendition: &str, track: TrackInfo) {
        tracing::info!(stream = %self.entry.name, rendition, codec = %track.config.rfc6381(), "rendition track");
        let mut st = self.entry.lock();
        st.packager.set_rendition_track(rendition, track);
    }

    fn frame(&self, rendition: &str, frame: Frame) {
        let mut st = self.entry.lock();
        let received = st.packager.rendition(rendition).and_then(|r| {
            self.arrivals
                .received_ms(frame.track, frame.pts, r.timescale())
        });
        let update =
            st.packager
                .push_rendition_frame_received(rendition, frame, unix_ms(), received);
        self.entry.observe_part_latency(&mut st);
        if update.became_ready {
            tracing::info!(stream = %self.entry.name, "playlists ready");
        }
        if update.has_new_media || update.became_ready {
            self.entry.bump(&mut st);
        }
    }
}

/// The ladder state of one publish session.
pub struct SessionLadder {
    settings: Arc<LadderSettings>,
    video: Option<TrackInfo>,
    audio: Option<TrackInfo>,
    transcoder: Option<StreamTranscoder>,
    has_failed: bool,
    /// When the source frames were received (for the part publication latency).
    arrivals: Arc<ArrivalLog>,
}

impl SessionLadder {
    /// Ladder state for a new publish.
    pub fn new(settings: Arc<LadderSettings>) -> Self {
        Self {
            settings,
            video: None,
            audio: None,
            transcoder: None,
            has_failed: false,
            arrivals: Arc::default(),
        }
    }

    /// The name of the ladder's copy rung, if any (with the default ladder: `source`); none when the
    /// source cannot be copied ([`can_copy`]).
    fn copy_rung_name(&self) -> Option<String> {
        if !self.video.as_ref().is_some_and(can_copy) {
            return None;
        }
        match &self.settings.rungs {
            Some(rungs) => rungs.iter().find(|r| r.copy).map(|r| r.name.clone()),
            None => {
                let params = self.video.as_ref()?.config.video_params()?;
                transcoder::default_ladder(params)
                    .into_iter()
                    .find(|r| r.copy)
                    .map(|r| r.name)
            }
        }
    }

    /// The running transcoder's counters, if it runs.
    pub fn stats(&self) -> Option<transcoder::TranscodeStats> {
        self.transcoder.as_ref().map(|t| t.stats())
    }

    /// The source tracks announced so far (video, audio).
    pub fn source_tracks(&self) -> impl Iterator<Item = &TrackInfo> {
        self.video.iter().chain(self.audio.iter())
    }

    /// A source track was announced: remember it; a changed configuration is handed to the running
    /// transcoder.
    pub fn track(&mut self, track: TrackInfo) {
        let slot = match track.kind() {
            TrackKind::Video => &mut self.video,
            TrackKind::Audio => &mut self.audio,
        };
        if slot.as_ref() != Some(&track) {
            // A running transcoder takes the new configuration in place (reopening its decoder); the
            // packager marks the discontinuity when the renditions' tracks change.
            // A source that becomes (or stops being) copyable changes the ladder's shape (copy rung,
            // audio passthrough): start again too.
            let is_new_kind = slot
                .as_ref()
                .is_none_or(|old| can_copy(old) != can_copy(&track));
            if is_new_kind {
                // A track the running transcoder was started without (e.g. audio announced after the
                // first video frame): start again with both on the next frame.
                self.transcoder = None;
            } else if let Some(t) = &self.transcoder {
                t.set_track(&track);
            }
            *slot = Some(track);
        }
    }

    /// A source frame: start the transcoder if needed and hand the frame over. Returns the frame back when
    /// it must be packaged directly (the transcoder failed to start).
    pub fn frame(&mut self, entry: &Arc<StreamEntry>, frame: Frame) -> Option<Frame> {
        if self.has_failed {
            return Some(frame);
        }
        if self.transcoder.is_none() {
            // A copy rung passes the source track through: declare it before any encoder output so it
            // leads the segment grid (the packager's leader is the first video rendition declared).
            if let Some(copy) = self.copy_rung_name()
                && let Some(video) = &self.video
            {
                entry
                    .lock()
                    .packager
                    .set_rendition_track(&copy, video.clone());
            }
            let rungs = ladder_for(self.settings.rungs.as_deref(), self.video.as_ref());
            if let Some(v) = self.video.as_ref().filter(|v| !can_copy(v)) {
                tracing::info!(stream = %entry.name, codec = v.config.name(), "source video cannot be copied: every rung is encoded");
            }
            let audio_transcoded = self.settings.options.audio.mode
                == transcoder::AudioMode::Transcode
                || self
                    .audio
                    .as_ref()
                    .is_some_and(|a| !a.config.is_packageable());
            declare_bandwidths(
                entry,
                &rungs,
                &self.settings.options.audio,
                audio_transcoded,
            );
            match StreamTranscoder::start(
                &entry.name,
                self.video.as_ref(),
                self.audio.as_ref(),
                &rungs,
                &self.settings.probe,
                &self.settings.options,
                PackagerSink::new(entry.clone(), self.arrivals.clone()),
            ) {
                Ok(t) => {
                    let names: Vec<&str> = rungs.iter().map(|r| r.name.as_str()).collect();
                    tracing::info!(stream = %entry.name, rungs = ?names, "transcoder started");
                    self.transcoder = Some(t);
                }
                Err(e) => {
                    tracing::warn!(stream = %entry.name, error = %e, "transcoder failed to start: packaging the source only");
                    self.has_failed = true;
                    return Some(frame);
                }
            }
        }
        if let Some(t) = &self.transcoder {
            let source = match frame.track {
                TrackKind::Video => self.video.as_ref(),
                TrackKind::Audio => self.audio.as_ref(),
            };
            if let Some(track) = source {
                self.arrivals
                    .record(frame.track, frame.pts, track.timescale, unix_ms());
            }
            t.push(frame);
        }
        None
    }
}

/// Declare each rendition's bit rate to the packager (DASH `@bandwidth` must be fixed while a Period
/// lasts): an encoded rung its max rate, the transcoded audio its bit rate, each plus the CMAF
/// overhead (about 5 % for video, 10 % for AAC, measured on the fixtures); a copied source is measured
/// (its first segment) but declared at least 1.25× the highest encoded rung, so it stays the top of
/// the ladder for players that rank Representations by bandwidth.
fn declare_bandwidths(
    entry: &Arc<StreamEntry>,
    rungs: &[transcoder::RungConfig],
    audio: &transcoder::AudioConfig,
    is_audio_transcoded: bool,
) {
    let top = rungs
        .iter()
        .filter(|r| !r.copy)
        .map(|r| r.maxrate_bps)
        .max()
        .unwrap_or(0);
    let mut st = entry.lock();
    for r in rungs {
        if r.copy {
            st.packager
                .set_rendition_bandwidth(&r.name, None, top.saturating_mul(5) / 4);
        } else {
            st.packager.set_rendition_bandwidth(
                &r.name,
                Some(r.maxrate_bps.saturating_mul(105) / 100),
                0,
            );
        }
    }
    if is_audio_transcoded {
        st.packager.set_rendition_bandwidth(
            packager::stream::AUDIO_RENDITION,
            Some(audio.bitrate_bps.saturating_mul(110) / 100),
            0,
        );
    }
}

impl Drop for SessionLadder {
    fn drop(&mut self) {
        let Some(t) = self.transcoder.take() else {
            return;
        };
        let stats = t.stats();
        let delays: Vec<String> = stats
            .rungs
            .iter()
            .map(|r| format!("{}={}:{:.1}ms", r.name, r.encoder, r.encoder_delay_ms))
            .collect();
        tracing::info!(
            real_time_factor = format!("{:.3}", stats.real_time_factor),
            lag_ms = stats.lag_ms,
            decode_errors = stats.decode_errors,
            frames_dropped = stats.video_frames_dropped,
            shed_rungs = ?stats.shed_rungs,
            encoder_delay = ?delays,
            "transcoder stopped"
        );
        // Dropping `t` stops and joins its threads.
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use media::{CodecConfig, DecodableCodec, DecodableConfig, VideoParams};

    fn mpeg2(params: Option<VideoParams>) -> TrackInfo {
        TrackInfo::new(CodecConfig::Decodable(DecodableConfig::video(
            DecodableCodec::Mpeg2Video,
            bytes::Bytes::new(),
            params,
        )))
    }

    #[test]
    fn ladder_for_a_source_that_cannot_be_copied_encodes_its_copy_rung() {
        let source = mpeg2(Some(VideoParams {
            width: 720,
            height: 405,
            frame_rate: Some((25, 1)),
        }));
        assert!(!can_copy(&source));
        let rungs = ladder_for(None, Some(&source));
        let names: Vec<&str> = rungs.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["source", "360p", "240p"]);
        assert!(rungs.iter().all(|r| !r.copy));
        assert_eq!(rungs[0].height, Some(405));
        // Configured rungs: the copy rung is replaced the same way; without a picture size, 720p is
        // assumed.
        let configured = transcoder::default_ladder(ASSUMED_SOURCE);
        let rungs = ladder_for(Some(&configured), Some(&mpeg2(None)));
        assert_eq!(
            (rungs[0].name.as_str(), rungs[0].copy, rungs[0].height),
            ("source", false, Some(720))
        );
        assert_eq!(rungs[1..], configured[1..]);
        assert!(ladder_for(None, None).is_empty());
    }
}
