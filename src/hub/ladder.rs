//! Per-stream transcoding: which streams get a ladder, and the sink that feeds the transcoder's renditions
//! into the stream's packager.
//!
//! The transcoder runs on its own OS threads; its output reaches the packager through [`PackagerSink`],
//! which takes the stream's lock for the microseconds a frame needs and wakes blocked requests.

use std::sync::Arc;

use media::{Frame, TrackInfo, TrackKind};
use transcoder::{
    EncoderProbe, RungConfig, SourceProbe, StreamTranscoder, TranscodeOptions, TranscodeSink,
};

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

/// Picture parameters assumed to size the default ladder when a source does not signal its own (a
/// decodable video codec whose headers did not give a size): 720p.
const ASSUMED_SOURCE: media::VideoParams = media::VideoParams {
    width: 1280,
    height: 720,
    frame_rate: None,
};

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
        if self.entry.webrtc.is_some() {
            st.webrtc_feed.track(rendition, &track);
        }
        st.packager.set_rendition_track(rendition, track);
    }

    fn replace_track(&self, rendition: &str, track: TrackInfo) {
        tracing::info!(stream = %self.entry.name, rendition, codec = %track.config.rfc6381(), "rendition encoded from here on");
        let mut st = self.entry.lock();
        if self.entry.webrtc.is_some() {
            st.webrtc_feed.track(rendition, &track);
        }
        st.packager.replace_rendition_track(rendition, track);
        self.entry.reserve_msns(&st);
        self.entry.bump(&mut st);
    }

    fn frame(&self, rendition: &str, frame: Frame) {
        let mut st = self.entry.lock();
        if let Some(webrtc) = &self.entry.webrtc
            && let Some(video) = st.webrtc_feed.frame(rendition, &frame)
        {
            webrtc.video(video);
        }
        let received = st.packager.rendition(rendition).and_then(|r| {
            self.arrivals
                .received_ms(frame.track, frame.pts, r.timescale())
        });
        let update =
            st.packager
                .push_rendition_frame_received(rendition, frame, unix_ms(), received);
        self.entry.reserve_msns(&st);
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
///
/// The first segment of source frames is held while a [`SourceProbe`] measures the source (frame
/// rate, bit rate, whether its keyframes fit the segment grid); then the ladder is fitted to it
/// ([`transcoder::fit_ladder`]), the packager is given the segment grid, and the transcoder starts with
/// the held frames ([`StreamTranscoder::start_with_backlog`]).
pub struct SessionLadder {
    settings: Arc<LadderSettings>,
    video: Option<TrackInfo>,
    audio: Option<TrackInfo>,
    transcoder: Option<StreamTranscoder>,
    /// Holding the source's first frames, until the transcoder starts.
    probe: Option<SourceProbe>,
    has_failed: bool,
    /// When the source frames were received (for the part publication latency).
    arrivals: Arc<ArrivalLog>,
    /// Splice points given while the first frames are held (input timeline, 90 kHz ticks): the grid
    /// is re-anchored at them when the transcoder starts.
    pending_splices: Vec<i64>,
    /// The latest video presentation time handed to the running transcoder (input timeline, 90 kHz
    /// ticks): a splice point at or before it starts at the next picture instead.
    pushed_video_90khz: Option<i64>,
}

/// Whether players can play `track`'s codec as it arrives (so a rendition may copy it).
///
/// Only H.264: every HLS and DASH player decodes it. An HEVC source is encoded (browsers other than
/// Safari cannot play HEVC, and a copied HEVC rendition replaced by an encoder mid-stream would change
/// codec under players that chose it).
pub fn can_copy(track: &TrackInfo) -> bool {
    matches!(track.config, media::CodecConfig::Avc(_))
}

impl SessionLadder {
    /// Ladder state for a new publish.
    pub fn new(settings: Arc<LadderSettings>) -> Self {
        Self {
            settings,
            video: None,
            audio: None,
            transcoder: None,
            probe: None,
            has_failed: false,
            arrivals: Arc::default(),
            pending_splices: Vec::new(),
            pushed_video_90khz: None,
        }
    }

    /// A splice point at `pts_90khz` (input timeline, 90 kHz ticks: an SCTE-35 out or return): every
    /// rendition starts a segment there with a keyframe — the transcoder forces an IDR in each encoded
    /// rung on the picture nearest it and the packager cuts every rendition there (both re-anchor the
    /// segment grid at it, [`media::SegmentClock::add_splice`]), so that an ad inserter can swap whole
    /// segments. Held until the transcoder starts; a point the source has already passed starts at
    /// the next picture.
    pub fn splice_at(&mut self, entry: &Arc<StreamEntry>, pts_90khz: i64) {
        let Some(t) = &self.transcoder else {
            if !self.has_failed {
                self.pending_splices.push(pts_90khz);
            }
            return;
        };
        let at = match self.pushed_video_90khz {
            Some(edge) if pts_90khz <= edge => {
                tracing::warn!(stream = %entry.name, pts_90khz, edge_90khz = edge, "splice point already passed: segments start at the next picture");
                edge + 1
            }
            _ => pts_90khz,
        };
        if t.splice_at(at) && entry.lock().packager.add_splice_point(at) {
            tracing::info!(stream = %entry.name, pts_90khz = at, "segments start at the splice point in every rendition");
        } else {
            tracing::warn!(stream = %entry.name, pts_90khz = at, "no encoded rendition: segments not cut at the splice point");
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
    /// transcoder. Returns the held frames to package directly if the transcoder could not start.
    pub fn track(&mut self, entry: &Arc<StreamEntry>, track: TrackInfo) -> Result<(), Vec<Frame>> {
        let kind = track.kind();
        let slot = match kind {
            TrackKind::Video => &self.video,
            TrackKind::Audio => &self.audio,
        };
        if slot.as_ref() == Some(&track) {
            return Ok(());
        }
        let is_new_kind = slot.is_none();
        if is_new_kind && kind == TrackKind::Audio && self.transcoder.is_some() {
            // Audio announced after the transcoder started (an MPEG-TS program whose audio configured
            // itself late): the audio rendition joins, the video goes on.
            let added = self.transcoder.as_mut().map(|t| t.add_audio(&track));
            if let Some(Err(e)) = added {
                tracing::warn!(stream = %entry.name, error = %e, "late audio track cannot be transcoded: the stream goes on without audio");
                return Ok(());
            }
            self.set_slot(track);
            return Ok(());
        }
        if is_new_kind {
            // A track the hold (or the running transcoder) was started without (e.g. video after
            // audio): start again with both on the next frame. Held frames of the other kind are
            // kept; a running transcoder's renditions continue after a discontinuity.
            if self.transcoder.take().is_some() {
                entry.lock().packager.discontinuity();
            }
            if let Some(probe) = self.probe.take() {
                let (_, held) = probe.finish();
                self.set_slot(track);
                self.probe = Some(self.new_probe());
                for f in held {
                    if let Some(p) = &mut self.probe {
                        p.push(f);
                    }
                }
                return Ok(());
            }
        } else if self.probe.is_some() {
            // A new configuration while holding: start with what is held, then switch.
            self.start(entry)?;
            if let Some(t) = &self.transcoder {
                t.set_track(&track);
            }
        } else if let Some(t) = &self.transcoder {
            t.set_track(&track);
        }
        self.set_slot(track);
        Ok(())
    }

    fn set_slot(&mut self, track: TrackInfo) {
        match track.kind() {
            TrackKind::Video => self.video = Some(track),
            TrackKind::Audio => self.audio = Some(track),
        }
    }

    fn new_probe(&self) -> SourceProbe {
        SourceProbe::new(
            self.settings.options.segment_target,
            self.video.as_ref(),
            self.audio.as_ref(),
        )
    }

    /// A source frame: held until the source is measured, then handed to the transcoder. Returns the
    /// frames to package directly when the transcoder failed to start (the held ones included).
    pub fn frame(&mut self, entry: &Arc<StreamEntry>, frame: Frame) -> Result<(), Vec<Frame>> {
        if self.has_failed {
            return Err(vec![frame]);
        }
        let source = match frame.track {
            TrackKind::Video => self.video.as_ref(),
            TrackKind::Audio => self.audio.as_ref(),
        };
        if let Some(track) = source {
            self.arrivals
                .record(frame.track, frame.pts, track.timescale, unix_ms());
        }
        if let Some(t) = &self.transcoder {
            if let (TrackKind::Video, Some(track)) = (frame.track, source) {
                let pts = media::time::rescale(frame.pts, track.timescale, 90_000);
                self.pushed_video_90khz = Some(self.pushed_video_90khz.map_or(pts, |e| e.max(pts)));
            }
            t.push(frame);
            return Ok(());
        }
        if self.probe.is_none() {
            self.probe = Some(self.new_probe());
        }
        let is_done = self.probe.as_mut().is_some_and(|p| p.push(frame));
        if is_done {
            self.start(entry)?;
        }
        Ok(())
    }

    /// Fit the ladder to what the probe measured and start the transcoder with the held frames.
    fn start(&mut self, entry: &Arc<StreamEntry>) -> Result<(), Vec<Frame>> {
        let Some(probe) = self.probe.take() else {
            return Ok(());
        };
        let (mut facts, held) = probe.finish();
        if let Some(clock) = &mut facts.clock {
            for pts in self.pending_splices.drain(..) {
                clock.add_splice(pts);
            }
        }
        // A decodable video whose headers gave no size is laddered as 720p.
        let params = self
            .video
            .as_ref()
            .map(|v| v.config.video_params().unwrap_or(ASSUMED_SOURCE));
        let base = match (&self.settings.rungs, params) {
            (Some(r), _) => r.clone(),
            (None, Some(p)) => transcoder::default_ladder(p),
            (None, None) => Vec::new(),
        };
        let fitted = match params {
            Some(params) => {
                let can = self.video.as_ref().is_some_and(can_copy);
                transcoder::fit_ladder(&base, params, &facts, can)
            }
            None => transcoder::FittedLadder {
                rungs: base,
                copy_fallback: None,
                changes: Vec::new(),
            },
        };
        for change in &fitted.changes {
            tracing::info!(stream = %entry.name, change = %change, "ladder fitted to the source");
        }
        let rungs = fitted.rungs;
        let has_encoded = rungs.iter().any(|r| !r.copy) && self.video.is_some();
        {
            let mut st = entry.lock();
            // The producer grid: every rendition is cut on it (without an encoded rung there is
            // nothing to force keyframes, and the copy is cut on its own keyframes).
            st.packager
                .set_segment_clock(if has_encoded { facts.clock } else { None });
            // A copy rung passes the source track through: declared first, it leads the parts.
            if let (Some(copy), Some(video)) = (rungs.iter().find(|r| r.copy), &self.video) {
                st.packager.set_rendition_track(&copy.name, video.clone());
            }
        }
        let is_audio_transcoded = self.settings.options.audio.mode
            == transcoder::AudioMode::Transcode
            || self
                .audio
                .as_ref()
                .is_some_and(|a| !matches!(a.config, media::CodecConfig::Aac(_)));
        declare_bandwidths(
            entry,
            &rungs,
            &self.settings.options.audio,
            is_audio_transcoded,
        );
        let options = transcoder::TranscodeOptions {
            clock: facts.clock,
            frame_rate: facts.frame_rate,
            copy_fallback: fitted.copy_fallback,
            ..self.settings.options.clone()
        };
        tracing::info!(
            stream = %entry.name,
            frame_rate = ?facts.frame_rate,
            video_bitrate_bps = facts.video_bitrate_bps,
            keyframes_fit_grid = facts.keyframes_fit_grid,
            grid_period_s = facts.clock.map(|c| c.period_s()),
            held_frames = held.len(),
            "source measured"
        );
        match StreamTranscoder::start_with_backlog(
            &entry.name,
            (self.video.as_ref(), self.audio.as_ref()),
            &rungs,
            &self.settings.probe,
            &options,
            PackagerSink::new(entry.clone(), self.arrivals.clone()),
            held.clone(),
        ) {
            Ok(t) => {
                let video_timescale = self.video.as_ref().map(|v| v.timescale);
                self.pushed_video_90khz = held
                    .iter()
                    .filter(|f| f.track == TrackKind::Video)
                    .zip(std::iter::repeat(video_timescale))
                    .filter_map(|(f, ts)| Some(media::time::rescale(f.pts, ts?, 90_000)))
                    .max();
                let names: Vec<&str> = rungs.iter().map(|r| r.name.as_str()).collect();
                tracing::info!(stream = %entry.name, rungs = ?names, "transcoder started");
                self.transcoder = Some(t);
                Ok(())
            }
            Err(e) => {
                tracing::warn!(stream = %entry.name, error = %e, "transcoder failed to start: packaging the source only");
                self.has_failed = true;
                entry.lock().packager.set_segment_clock(None);
                Err(held)
            }
        }
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

    #[test]
    fn only_h264_is_copied() {
        let mpeg2 = TrackInfo::new(CodecConfig::Decodable(DecodableConfig::video(
            DecodableCodec::Mpeg2Video,
            bytes::Bytes::new(),
            Some(VideoParams {
                width: 720,
                height: 405,
                frame_rate: Some((25, 1)),
            }),
        )));
        assert!(!can_copy(&mpeg2));
        let h264 = TrackInfo::from_avcc(bytes::Bytes::from_static(&[
            1, 0x64, 0, 0x1f, 0xff, 0xe1, 0, 0x19, 0x67, 0x64, 0x00, 0x1f, 0xac, 0xd9, 0x40, 0x50,
            0x05, 0xbb, 0x01, 0x6a, 0x02, 0x02, 0x02, 0x80, 0x00, 0x00, 0x03, 0x00, 0x80, 0x00,
            0x00, 0x1e, 0x07, 0x8c, 0x18, 0xcb, 1, 0, 4, 0x68, 0xeb, 0xe3, 0xcb,
        ]));
        if let Ok(h264) = h264 {
            assert!(can_copy(&h264));
        }
    }
}
