//! [`StreamTranscoder`]: one publish's threads, its push path and its counters.

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, TrySendError};
use media::{CodecConfig, Frame, SegmentClock, TrackInfo, TrackKind, time::rescale};

use crate::audio::{AudioInput, AudioWorker};
use crate::config::validate_ladder;
use crate::stats::{NO_PTS, RungCounters, StreamCounters, TranscodeStats};
use crate::video::{DecoderWorker, EncoderInput, EncoderWorker, RungLink, VideoInput};
use crate::{AudioMode, EncoderProbe, RungConfig, TranscodeError, TranscodeOptions};

pub use media::name::AUDIO_RENDITION;

/// How long `start` waits for every worker to open its codecs.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// How often a blocked worker re-checks the stop flag.
pub(crate) const STOP_POLL: Duration = Duration::from_millis(50);

/// Where a [`StreamTranscoder`] delivers its renditions (the packager side).
///
/// Calls come from the transcoder's worker threads (encoded rungs, transcoded audio) and from the
/// caller of [`StreamTranscoder::push`] (copy rung, passthrough audio), concurrently for different
/// renditions but in order within one rendition. They should be quick (no blocking I/O) and must not
/// call back into the same `StreamTranscoder`.
pub trait TranscodeSink: Send + Sync + 'static {
    /// The track of `rendition`: called before the rendition's first frame, and again when it changes
    /// (new resolution, new source configuration). Video tracks use a 90 kHz timescale; the audio
    /// track's timescale is its sample rate.
    fn track(&self, rendition: &str, track: TrackInfo);
    /// `rendition` is produced by another encoder from its next segment on, with `track` (a copy rung
    /// whose source keyframes left the segment grid, replaced by its fallback encoder at a grid point;
    /// the next frame is that encoder's first IDR). The default treats it as a track change.
    fn replace_track(&self, rendition: &str, track: TrackInfo) {
        self.track(rendition, track);
    }
    /// One frame of `rendition`, in decode order, timestamps on the source timeline in the track's
    /// timescale; video data is 4-byte length-prefixed NAL units.
    fn frame(&self, rendition: &str, frame: Frame);
}

/// State shared by a stream's push path and worker threads.
pub(crate) struct Shared {
    /// Stream name, for logs and thread names.
    pub stream: String,
    /// Set by `Drop`: workers stop at the next message without flushing.
    pub stop: AtomicBool,
    /// Set by [`StreamTranscoder::push_wait`]: queues block instead of dropping, nothing is shed.
    pub is_offline: AtomicBool,
    /// Composition offset (pts − dts) of the source's first keyframe, 90 kHz; [`NO_PTS`] before it.
    pub composition_offset_90khz: AtomicI64,
    /// The segment grid (source timeline, 90 kHz): given in the options or anchored at the source's
    /// first keyframe by the push path, read by the decoder.
    pub clock: std::sync::OnceLock<SegmentClock>,
    pub counters: StreamCounters,
    pub sink: Arc<dyn TranscodeSink>,
}

impl Shared {
    pub(crate) fn is_stopped(&self) -> bool {
        self.stop.load(Relaxed)
    }

    /// The output DTS for a picture at `pts_90khz`: PTS − the source's first keyframe composition
    /// offset.
    pub(crate) fn dts_for(&self, pts_90khz: i64) -> i64 {
        let d = self.composition_offset_90khz.load(Relaxed);
        if d == NO_PTS {
            pts_90khz
        } else {
            pts_90khz - d
        }
    }
}

/// Send `msg` on a bounded channel, waiting for room but giving up when the stream stops or the
/// receiver is gone. Returns false if the message was not delivered.
pub(crate) fn send_blocking<T>(tx: &Sender<T>, mut msg: T, shared: &Shared) -> bool {
    loop {
        match tx.send_timeout(msg, STOP_POLL) {
            Ok(()) => return true,
            Err(crossbeam_channel::SendTimeoutError::Timeout(m)) => {
                if shared.is_stopped() {
                    return false;
                }
                msg = m;
            }
            Err(crossbeam_channel::SendTimeoutError::Disconnected(_)) => return false,
        }
    }
}

/// What became of a message for the decoder.
enum Delivery {
    Delivered,
    /// The queue was full: dropped.
    Full,
    /// The decoder is gone (stopping).
    Gone,
}

/// The push path's per-stream state.
struct PushState {
    has_seen_keyframe: bool,
    /// Overflow: dropping source frames until the next keyframe.
    is_dropping: bool,
    /// The grid point at which the copy rungs must next start a segment with a source keyframe.
    copy_next_point: i64,
    /// The copy rungs are forwarded (their keyframes have fit the grid so far, or fit again).
    is_copy_forwarded: bool,
    /// The copy rungs were replaced by their fallback encoder.
    is_copy_replaced: bool,
    /// The grid point where the fallback takes over, until a frame carries it to the decoder.
    pending_takeover: Option<i64>,
    has_warned_overflow: bool,
    has_warned_audio_overflow: bool,
    /// The last video PTS (90 kHz) told to the audio worker ([`AudioInput::VideoAt`]).
    video_told_to_audio_90khz: Option<i64>,
}

/// The push path tells the audio worker where the video is at most this often (90 kHz ticks of
/// video time): 100 ms.
const VIDEO_AT_STEP_90KHZ: i64 = 9_000;

/// Transcodes one published stream into a ladder of renditions on dedicated threads.
///
/// Threads: one video decoder (`tx-{stream}-dec`) when the ladder has an encoded rung, one encoder per
/// encoded rung (`tx-{stream}-{rung}`), one audio thread (`tx-{stream}-aud`) when audio is transcoded.
/// Copy rungs and passthrough audio are emitted on the caller's thread from `push`.
///
/// Forced keyframes: the segment grid ([`SegmentClock`], [`TranscodeOptions::clock`]) decides. Every
/// encoded rung gets an IDR on the decoded picture nearest each grid point (the first picture, in
/// presentation order, at or after the point minus half a frame) and no other keyframe (no scene-cut
/// or natural keyframes), so every encoded rendition starts each segment with a keyframe and its
/// segments last the grid period. A copy rung is forwarded only while the source's own keyframe is the
/// first frame (in decode order) at each grid point and is an IDR; at the first grid point where it is
/// not, the copy rung stops and, when [`TranscodeOptions::copy_fallback`] is set, that encoded rung
/// takes its name from that point on ([`TranscodeSink::replace_track`], logged once, counted in
/// [`crate::RungStats::is_replaced`]); without a fallback the copy rung stops there.
///
/// Timestamps: video in 90 kHz (sources at another timescale are rescaled for decoding); encoded
/// frames keep the source picture's PTS and get DTS = PTS − D, D being the composition offset of the
/// source's first keyframe. Transcoded audio starts at the first source audio PTS rescaled to the
/// output sample rate and advances 1024 ticks per AAC frame.
pub struct StreamTranscoder {
    shared: Arc<Shared>,
    push_state: Mutex<PushState>,
    video_source: Option<TrackInfo>,
    video_tx: Option<Sender<VideoInput>>,
    audio_tx: Option<Sender<AudioInput>>,
    audio_mode: AudioMode,
    /// The audio rendition's settings, for an audio track announced after the start.
    audio_config: crate::AudioConfig,
    queue_frames: usize,
    has_audio_source: bool,
    copy_rungs: Vec<(usize, String)>,
    /// Index of the copy fallback's counters, when there is a fallback.
    fallback_idx: Option<usize>,
    /// [`TranscodeOptions::segment_target`], for a grid anchored at the first keyframe.
    segment_target: Duration,
    /// [`TranscodeOptions::frame_rate`].
    frame_rate: Option<(u32, u32)>,
    threads: Vec<JoinHandle<()>>,
}

impl StreamTranscoder {
    /// Start threads for one publish. `video`/`audio`: the source tracks (either may be `None`; frames
    /// of a missing track are ignored).
    ///
    /// Opens the source decoders and every rung's encoder (at the source's display size) on their
    /// threads and waits for them (up to tens of milliseconds for x264, more for x265): call it off
    /// async runtime workers. Each encoded rung's and the transcoded audio's track is delivered to
    /// `sink` before this returns; so are the copy rung's and passthrough audio's.
    ///
    /// Audio: AAC or any codec FFmpeg decodes; with [`AudioMode::Passthrough`] a source other than AAC is
    /// transcoded anyway (logged). Video: H.264, HEVC or a decodable codec (MPEG-2, VP9, AV1 …), which
    /// cannot have a copy rung.
    ///
    /// Errors: [`TranscodeError::InvalidLadder`] (also a copy rung over a source that cannot be copied),
    /// [`TranscodeError::InvalidTrack`] (a video track with an audio configuration or the reverse, or a
    /// codec no decoder of this FFmpeg handles), [`TranscodeError::Ffmpeg`] /
    /// [`TranscodeError::EncoderUnavailable`] when a codec does not open, [`TranscodeError::Thread`].
    pub fn start(
        stream: &str,
        video: Option<&TrackInfo>,
        audio: Option<&TrackInfo>,
        ladder: &[RungConfig],
        probe: &EncoderProbe,
        options: &TranscodeOptions,
        sink: Arc<dyn TranscodeSink>,
    ) -> Result<Self, TranscodeError> {
        Self::start_with_backlog(
            stream,
            (video, audio),
            ladder,
            probe,
            options,
            sink,
            Vec::new(),
        )
    }

    /// [`Self::start`], then the frames a [`crate::SourceProbe`] held (in arrival order) go in first:
    /// the copy rungs' and passthrough audio's to the sink before this returns, the rest to the decoder
    /// and the audio thread as one batch each, which they process as fast as they can without dropping
    /// (the encoders' queues block instead of overflowing) while later live frames queue behind it.
    pub fn start_with_backlog(
        stream: &str,
        (video, audio): (Option<&TrackInfo>, Option<&TrackInfo>),
        ladder: &[RungConfig],
        probe: &EncoderProbe,
        options: &TranscodeOptions,
        sink: Arc<dyn TranscodeSink>,
        backlog: Vec<Frame>,
    ) -> Result<Self, TranscodeError> {
        crate::init_ffmpeg();
        validate_ladder(ladder)?;
        if let Some(v) = video
            && v.kind() != TrackKind::Video
        {
            return Err(TranscodeError::InvalidTrack {
                kind: "video",
                reason: "not a video configuration".into(),
            });
        }
        if let Some(a) = audio
            && a.kind() != TrackKind::Audio
        {
            return Err(TranscodeError::InvalidTrack {
                kind: "audio",
                reason: "not an audio configuration".into(),
            });
        }
        let has_copy = ladder.iter().any(|r| r.copy);
        let fallback = options.copy_fallback.as_ref().filter(|_| has_copy);
        if let Some(f) = fallback {
            let mut with = ladder.to_vec();
            with.retain(|r| !r.copy);
            with.push(RungConfig {
                name: format!("{}-fallback", f.name),
                ..f.clone()
            });
            validate_ladder(&with)?;
        }
        if let Some(v) = video
            && !v.config.is_packageable()
            && let Some(copy) = ladder.iter().find(|r| r.copy)
        {
            return Err(TranscodeError::InvalidLadder(format!(
                "{}: a {} source cannot be copied (only H.264 and HEVC can)",
                copy.name,
                v.config.name()
            )));
        }
        // Only AAC passes through: any other source audio is transcoded whatever the mode says.
        let mut options = options.clone();
        if let Some(a) = audio
            && options.audio.mode == AudioMode::Passthrough
            && !matches!(a.config, CodecConfig::Aac(_))
        {
            tracing::info!(
                stream,
                codec = a.config.name(),
                "audio passthrough configured, but only AAC passes through: transcoding the audio to AAC"
            );
            options.audio.mode = AudioMode::Transcode;
        }
        let options = &options;
        let queue = options.queue_frames.max(2);
        let backlog_video = backlog
            .iter()
            .filter(|f| f.track == TrackKind::Video)
            .count();
        let backlog_audio = backlog.len() - backlog_video;
        let mut counters: Vec<RungCounters> = ladder
            .iter()
            .map(|r| {
                let encoder = if r.copy {
                    "copy"
                } else {
                    probe.encoder_for(r.codec)
                };
                RungCounters::new(&r.name, encoder, r.copy)
            })
            .collect();
        let fallback_idx = fallback.map(|f| {
            let c = RungCounters::new(&f.name, probe.encoder_for(f.codec), false);
            c.is_standby.store(true, Relaxed);
            counters.push(c);
            counters.len() - 1
        });
        if video.is_none() {
            // Nothing to encode: the encoded rungs never start.
            for c in counters.iter().filter(|c| !c.is_copy) {
                c.is_failed.store(true, Relaxed);
            }
        }
        let shared = Arc::new(Shared {
            stream: stream.to_string(),
            stop: AtomicBool::new(false),
            is_offline: AtomicBool::new(false),
            composition_offset_90khz: AtomicI64::new(NO_PTS),
            clock: std::sync::OnceLock::new(),
            counters: StreamCounters::new(counters),
            sink,
        });
        if let Some(clock) = options.clock {
            let _ = shared.clock.set(clock);
        }

        let mut threads = Vec::new();
        let (ready_tx, ready_rx) =
            crossbeam_channel::unbounded::<(String, Result<(), TranscodeError>)>();
        let mut expected_ready = 0usize;
        let mut video_tx = None;
        let spawn =
            |name: String, threads: &mut Vec<JoinHandle<()>>, f: Box<dyn FnOnce() + Send>| {
                std::thread::Builder::new()
                    .name(name.clone())
                    .spawn(f)
                    .map(|h| threads.push(h))
                    .map_err(|e| TranscodeError::Thread {
                        name,
                        reason: e.to_string(),
                    })
            };

        let result = (|| -> Result<(), TranscodeError> {
            // Video: one decoder feeding one encoder per encoded rung (and the copy fallback).
            let mut encoded: Vec<(usize, RungConfig, bool)> = ladder
                .iter()
                .enumerate()
                .filter(|(_, r)| !r.copy)
                .map(|(i, r)| (i, r.clone(), false))
                .collect();
            if let (Some(idx), Some(f)) = (fallback_idx, fallback) {
                encoded.push((idx, f.clone(), true));
            }
            if let (Some(source), false) = (video, encoded.is_empty()) {
                let mut links = Vec::new();
                for (idx, rung, is_fallback) in &encoded {
                    let (tx, rx) = crossbeam_channel::bounded::<EncoderInput>(queue);
                    let worker = EncoderWorker::new(
                        shared.clone(),
                        *idx,
                        rung.clone(),
                        probe.encoder_for(rung.codec).to_string(),
                        source,
                        options,
                        *is_fallback,
                        rx,
                    );
                    let ready = ready_tx.clone();
                    let name = format!(
                        "tx-{stream}-{}{}",
                        rung.name,
                        if *is_fallback { "-fb" } else { "" }
                    );
                    spawn(
                        name.clone(),
                        &mut threads,
                        Box::new(move || worker.run(name, ready)),
                    )?;
                    expected_ready += 1;
                    links.push(RungLink::new(*idx, tx, rung, *is_fallback));
                }
                let (tx, rx) = crossbeam_channel::bounded::<VideoInput>(queue + backlog_video + 1);
                let worker = DecoderWorker::new(
                    shared.clone(),
                    source.clone(),
                    links,
                    has_copy,
                    options,
                    queue,
                    rx,
                );
                let ready = ready_tx.clone();
                let name = format!("tx-{stream}-dec");
                spawn(
                    name.clone(),
                    &mut threads,
                    Box::new(move || worker.run(name, ready)),
                )?;
                expected_ready += 1;
                video_tx = Some(tx);
            }
            Ok(())
        })();

        let mut audio_tx = None;
        let result = result.and_then(|()| {
            if let (Some(source), AudioMode::Transcode) = (audio, options.audio.mode) {
                let (tx, rx) = crossbeam_channel::bounded::<AudioInput>(queue + backlog_audio + 1);
                let worker = AudioWorker::new(shared.clone(), source.clone(), options.audio, rx);
                let ready = ready_tx.clone();
                let name = format!("tx-{stream}-aud");
                spawn(
                    name.clone(),
                    &mut threads,
                    Box::new(move || worker.run(name, ready)),
                )?;
                expected_ready += 1;
                audio_tx = Some(tx);
            }
            Ok(())
        });
        drop(ready_tx);
        let result = result.and_then(|()| wait_ready(&ready_rx, expected_ready));

        let copy_rungs: Vec<(usize, String)> = ladder
            .iter()
            .enumerate()
            .filter(|(_, r)| r.copy)
            .map(|(i, r)| (i, r.name.clone()))
            .collect();
        let this = Self {
            shared,
            push_state: Mutex::new(PushState {
                has_seen_keyframe: false,
                is_dropping: false,
                copy_next_point: 1,
                is_copy_forwarded: true,
                is_copy_replaced: false,
                pending_takeover: None,
                has_warned_overflow: false,
                has_warned_audio_overflow: false,
                video_told_to_audio_90khz: None,
            }),
            video_source: video.cloned(),
            video_tx,
            audio_tx,
            audio_mode: options.audio.mode,
            audio_config: options.audio,
            queue_frames: queue,
            has_audio_source: audio.is_some(),
            copy_rungs,
            fallback_idx,
            segment_target: options.segment_target,
            frame_rate: options.frame_rate,
            threads,
        };
        // On error, dropping `this` stops and joins whatever started.
        result?;
        if let Some(v) = video {
            for (_, name) in &this.copy_rungs {
                this.shared.sink.track(name, v.clone());
            }
        }
        if let (Some(a), AudioMode::Passthrough) = (audio, this.audio_mode) {
            this.shared.sink.track(AUDIO_RENDITION, a.clone());
        }
        let encoders = ladder
            .iter()
            .map(|r| {
                let encoder = if r.copy {
                    "copy"
                } else {
                    probe.encoder_for(r.codec)
                };
                format!("{}={encoder}", r.name)
            })
            .collect::<Vec<_>>()
            .join(" ");
        tracing::info!(stream, %encoders, audio = ?options.audio.mode, backlog_video, backlog_audio, "transcoder started");
        this.push_backlog(backlog);
        Ok(this)
    }

    /// The held frames: see [`Self::start_with_backlog`].
    fn push_backlog(&self, backlog: Vec<Frame>) {
        if backlog.is_empty() {
            return;
        }
        self.shared.counters.first_push.get_or_init(Instant::now);
        let mut video = Vec::new();
        let mut audio = Vec::new();
        for frame in backlog {
            match frame.track {
                TrackKind::Video => {
                    self.push_video_into(frame, &mut |input| {
                        video.push(input);
                        Delivery::Delivered
                    });
                }
                TrackKind::Audio => {
                    if let Some(frame) = self.pass_audio_through(frame) {
                        audio.push(frame);
                    }
                }
            }
        }
        if let Some(tx) = &self.video_tx
            && !video.is_empty()
            && !send_blocking(tx, VideoInput::Backlog(video), &self.shared)
        {
            tracing::error!(stream = %self.shared.stream, "held video frames not delivered to the decoder");
        }
        if let Some(tx) = &self.audio_tx
            && !audio.is_empty()
            && !send_blocking(tx, AudioInput::Backlog(audio), &self.shared)
        {
            tracing::error!(stream = %self.shared.stream, "held audio frames not delivered");
        }
    }

    /// Hand over one source frame (video: 4-byte length-prefixed NAL units; audio: one raw AAC access
    /// unit), timestamps in its track's timescale. Never blocks on the workers: when the decoder's
    /// bounded queue is full the frame is dropped and so is every following video frame up to the next
    /// keyframe (counted in [`TranscodeStats::video_frames_dropped`]); audio frames are dropped singly.
    /// Video frames before the first keyframe are dropped (they cannot be decoded).
    pub fn push(&self, frame: Frame) {
        self.push_inner(frame, false);
    }

    /// Like [`StreamTranscoder::push`] but waits for room in the queues instead of dropping, and turns
    /// load shedding off for the rest of the stream: for inputs read faster than real time (files,
    /// tests, benchmarks). Do not mix with `push` on a live stream.
    pub fn push_wait(&self, frame: Frame) {
        self.shared.is_offline.store(true, Relaxed);
        self.push_inner(frame, true);
    }

    /// The source changed a track's configuration: copy rungs (or passthrough audio) get the new track,
    /// the decoder is reopened with it (encoded rungs get a new track if their size changes). Video
    /// frames are dropped up to the next keyframe. Waits up to a second for queue room.
    pub fn set_track(&self, track: &TrackInfo) {
        match track.kind() {
            TrackKind::Video => {
                for (_, name) in &self.copy_rungs {
                    self.shared.sink.track(name, track.clone());
                }
                if let Some(tx) = &self.video_tx {
                    if let Ok(mut st) = self.push_state.lock() {
                        st.is_dropping = true;
                    }
                    if tx
                        .send_timeout(VideoInput::Track(track.clone()), Duration::from_secs(1))
                        .is_err()
                    {
                        tracing::error!(stream = %self.shared.stream, "video track change not delivered to the decoder");
                    }
                }
            }
            TrackKind::Audio => match (&self.audio_tx, self.audio_mode) {
                (_, AudioMode::Passthrough) => {
                    self.shared.sink.track(AUDIO_RENDITION, track.clone())
                }
                (Some(tx), AudioMode::Transcode) => {
                    if tx
                        .send_timeout(AudioInput::Track(track.clone()), Duration::from_secs(1))
                        .is_err()
                    {
                        tracing::error!(stream = %self.shared.stream, "audio track change not delivered");
                    }
                }
                (None, AudioMode::Transcode) => {}
            },
        }
    }

    /// An audio track announced after the start (an MPEG-TS program whose audio configured itself
    /// late): the audio rendition starts now, the video goes on untouched. A second call, or a call
    /// when the stream started with audio, is a track change ([`Self::set_track`]).
    ///
    /// Errors: the audio decoder or encoder does not open, or its thread cannot start.
    pub fn add_audio(&mut self, track: &TrackInfo) -> Result<(), TranscodeError> {
        if self.has_audio_source {
            self.set_track(track);
            return Ok(());
        }
        if !matches!(track.config, CodecConfig::Aac(_)) {
            return Err(TranscodeError::InvalidTrack {
                kind: "audio",
                reason: "not an AAC configuration".into(),
            });
        }
        match self.audio_mode {
            AudioMode::Passthrough => self.shared.sink.track(AUDIO_RENDITION, track.clone()),
            AudioMode::Transcode => {
                let (tx, rx) = crossbeam_channel::bounded::<AudioInput>(self.queue_frames + 1);
                let worker =
                    AudioWorker::new(self.shared.clone(), track.clone(), self.audio_config, rx);
                let (ready_tx, ready_rx) =
                    crossbeam_channel::unbounded::<(String, Result<(), TranscodeError>)>();
                let name = format!("tx-{}-aud", self.shared.stream);
                let handle = std::thread::Builder::new()
                    .name(name.clone())
                    .spawn(move || worker.run(name, ready_tx))
                    .map_err(|e| TranscodeError::Thread {
                        name: "audio".into(),
                        reason: e.to_string(),
                    })?;
                self.threads.push(handle);
                wait_ready(&ready_rx, 1)?;
                self.audio_tx = Some(tx);
            }
        }
        self.has_audio_source = true;
        tracing::info!(stream = %self.shared.stream, "audio added to a running transcoder");
        Ok(())
    }

    /// A snapshot of the counters: real-time factor, frames in/out/dropped per rung, shed rungs,
    /// encoder delay.
    pub fn stats(&self) -> TranscodeStats {
        self.shared.counters.snapshot()
    }

    /// End of stream: let every worker drain its queue and flush its codecs (all buffered frames are
    /// emitted), join the threads and return the final counters.
    pub fn finish(mut self) -> TranscodeStats {
        self.video_tx = None;
        self.audio_tx = None;
        for handle in self.threads.drain(..) {
            let _ = handle.join();
        }
        let _ = self.shared.counters.finished_at.set(Instant::now());
        self.shared.counters.snapshot()
    }

    fn push_inner(&self, frame: Frame, wait: bool) {
        self.shared.counters.first_push.get_or_init(Instant::now);
        match frame.track {
            TrackKind::Video => {
                self.tell_audio_video_at(&frame);
                let Some(tx) = self.video_tx.clone() else {
                    self.push_video_into(frame, &mut |_| Delivery::Delivered);
                    return;
                };
                self.push_video_into(frame, &mut |msg| {
                    if wait {
                        if send_blocking(&tx, msg, &self.shared) {
                            Delivery::Delivered
                        } else {
                            Delivery::Gone
                        }
                    } else {
                        match tx.try_send(msg) {
                            Ok(()) => Delivery::Delivered,
                            Err(TrySendError::Full(_)) => Delivery::Full,
                            Err(TrySendError::Disconnected(_)) => Delivery::Gone,
                        }
                    }
                });
            }
            TrackKind::Audio => self.push_audio(frame, wait),
        }
    }

    /// The push path of one source video frame: the grid at the first keyframe, the copy rungs (while
    /// the source's keyframes fit the grid), then the decoder's input through `deliver`.
    fn push_video_into(&self, frame: Frame, deliver: &mut dyn FnMut(VideoInput) -> Delivery) {
        let Some(source) = &self.video_source else {
            return;
        };
        let c = &self.shared.counters;
        c.video_frames_in.fetch_add(1, Relaxed);
        let Ok(mut st) = self.push_state.lock() else {
            return;
        };
        let to_90khz = |t| rescale(t, source.timescale, media::MediaTime::HZ_90K);
        let (pts, dts) = (to_90khz(frame.pts), to_90khz(frame.dts));
        if !st.has_seen_keyframe {
            if !frame.is_keyframe {
                c.video_frames_dropped.fetch_add(1, Relaxed);
                return;
            }
            st.has_seen_keyframe = true;
            self.shared
                .composition_offset_90khz
                .store(pts - dts, Relaxed);
            c.first_pts_90khz.store(pts, Relaxed);
            let rate = self.frame_rate.or_else(|| {
                source
                    .config
                    .video_params()
                    .and_then(|p| p.frame_rate)
                    .filter(|(n, d)| *n > 0 && *d > 0)
            });
            let clock = *self
                .shared
                .clock
                .get_or_init(|| SegmentClock::new(pts, self.segment_target, rate));
            tracing::debug!(stream = %self.shared.stream, anchor = clock.anchor_90khz(), period_s = clock.period_s(), "segment grid");
        }
        c.last_push_pts_90khz.store(pts, Relaxed);

        if !self.copy_rungs.is_empty() && !st.is_copy_replaced {
            let point = self.shared.clock.get().map_or(0, |clock| clock.index(pts));
            if st.is_copy_forwarded && point >= st.copy_next_point {
                let fits = frame.is_keyframe && source.config.is_clean_random_access(&frame.data);
                if fits {
                    st.copy_next_point = point + 1;
                } else {
                    st.is_copy_forwarded = false;
                    for (idx, _) in &self.copy_rungs {
                        c.rungs[*idx]
                            .is_replaced
                            .store(self.fallback_idx.is_some(), Relaxed);
                    }
                    let names: Vec<&str> =
                        self.copy_rungs.iter().map(|(_, n)| n.as_str()).collect();
                    let why = if frame.is_keyframe {
                        "an open-GOP keyframe (not IDR)"
                    } else {
                        "no keyframe"
                    };
                    match self.fallback_idx {
                        Some(idx) => {
                            st.is_copy_replaced = true;
                            st.pending_takeover = Some(point);
                            c.rungs[idx].is_standby.store(false, Relaxed);
                            tracing::warn!(
                                stream = %self.shared.stream,
                                renditions = ?names,
                                grid_point = point,
                                pts_90khz = pts,
                                reason = why,
                                "the source's keyframes left the segment grid: the copied rendition is encoded from this segment on"
                            );
                        }
                        None => tracing::warn!(
                            stream = %self.shared.stream,
                            renditions = ?names,
                            grid_point = point,
                            reason = why,
                            "the source's keyframes left the segment grid: the copied rendition stops"
                        ),
                    }
                }
            }
            for (idx, name) in &self.copy_rungs {
                let rc = &c.rungs[*idx];
                rc.frames_in.fetch_add(1, Relaxed);
                if st.is_copy_forwarded {
                    self.shared.sink.frame(name, frame.clone());
                    rc.frames_out.fetch_add(1, Relaxed);
                    rc.last_out_pts_90khz.store(pts, Relaxed);
                } else {
                    rc.frames_dropped.fetch_add(1, Relaxed);
                }
            }
        }
        if self.video_tx.is_none() {
            return;
        }
        let frame = Frame { pts, dts, ..frame };
        if st.is_dropping && !frame.is_keyframe {
            c.video_frames_dropped.fetch_add(1, Relaxed);
            return;
        }
        let takeover_at = st.pending_takeover;
        match deliver(VideoInput::Frame { frame, takeover_at }) {
            Delivery::Delivered => {
                st.is_dropping = false;
                st.pending_takeover = None;
            }
            Delivery::Full => {
                if !st.has_warned_overflow {
                    st.has_warned_overflow = true;
                    tracing::warn!(
                        stream = %self.shared.stream,
                        "decoder queue full: dropping video to the next keyframe"
                    );
                }
                c.video_frames_dropped.fetch_add(1, Relaxed);
                st.is_dropping = true;
            }
            Delivery::Gone => {
                c.video_frames_dropped.fetch_add(1, Relaxed);
                st.is_dropping = true;
            }
        }
    }

    /// Count a source audio frame and forward it when audio passes through; the frame back when it
    /// is to be transcoded (`None`: passed through, or no audio source).
    fn pass_audio_through(&self, frame: Frame) -> Option<Frame> {
        if !self.has_audio_source {
            return None;
        }
        let c = &self.shared.counters;
        c.audio_frames_in.fetch_add(1, Relaxed);
        match self.audio_mode {
            AudioMode::Passthrough => {
                self.shared.sink.frame(AUDIO_RENDITION, frame);
                c.audio_frames_out.fetch_add(1, Relaxed);
                None
            }
            AudioMode::Transcode => Some(frame),
        }
    }

    /// Tell the transcoded audio where the video is (every [`VIDEO_AT_STEP_90KHZ`] of video time, B-frames'
    /// reordering and jumps back under 10 s ignored), so
    /// that audio missing from the source is filled with silence while the video goes on. Advisory:
    /// never waits, nothing is counted when the queue is full.
    fn tell_audio_video_at(&self, frame: &Frame) {
        let (Some(tx), Some(source)) = (&self.audio_tx, &self.video_source) else {
            return;
        };
        let pts = rescale(frame.pts, source.timescale, media::MediaTime::HZ_90K);
        let Ok(mut st) = self.push_state.lock() else {
            return;
        };
        if st
            .video_told_to_audio_90khz
            .is_some_and(|told| (-10 * 90_000..VIDEO_AT_STEP_90KHZ).contains(&(pts - told)))
        {
            return;
        }
        if tx.try_send(AudioInput::VideoAt(pts)).is_ok() {
            st.video_told_to_audio_90khz = Some(pts);
        }
    }

    fn push_audio(&self, frame: Frame, wait: bool) {
        let Some(frame) = self.pass_audio_through(frame) else {
            return;
        };
        let Some(tx) = &self.audio_tx else {
            return;
        };
        let msg = AudioInput::Frame(frame);
        let delivered = if wait {
            send_blocking(tx, msg, &self.shared)
        } else {
            match tx.try_send(msg) {
                Ok(()) => true,
                Err(TrySendError::Full(_)) => {
                    if let Ok(mut st) = self.push_state.lock()
                        && !st.has_warned_audio_overflow
                    {
                        st.has_warned_audio_overflow = true;
                        tracing::warn!(stream = %self.shared.stream, "audio queue full: dropping audio frames");
                    }
                    false
                }
                Err(TrySendError::Disconnected(_)) => false,
            }
        };
        if !delivered {
            self.shared
                .counters
                .audio_frames_dropped
                .fetch_add(1, Relaxed);
        }
    }
}

impl Drop for StreamTranscoder {
    /// Stops the workers (without flushing the encoders) and joins them.
    fn drop(&mut self) {
        self.shared.stop.store(true, Relaxed);
        self.video_tx = None;
        self.audio_tx = None;
        for handle in self.threads.drain(..) {
            let _ = handle.join();
        }
    }
}

impl std::fmt::Debug for StreamTranscoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamTranscoder")
            .field("stream", &self.shared.stream)
            .field("threads", &self.threads.len())
            .finish()
    }
}

/// Wait until `expected` workers reported; the first error wins.
fn wait_ready(
    ready_rx: &Receiver<(String, Result<(), TranscodeError>)>,
    expected: usize,
) -> Result<(), TranscodeError> {
    let deadline = Instant::now() + READY_TIMEOUT;
    let mut first_error = None;
    for _ in 0..expected {
        match ready_rx.recv_deadline(deadline) {
            Ok((_, Ok(()))) => {}
            Ok((_, Err(e))) => {
                first_error.get_or_insert(e);
            }
            Err(_) => {
                first_error.get_or_insert(TranscodeError::Thread {
                    name: "worker".into(),
                    reason: "did not report ready (panicked or timed out)".into(),
                });
                break;
            }
        }
    }
    first_error.map_or(Ok(()), Err)
}
