//! Starting a [`StreamTranscoder`]: checking the source tracks and the ladder, spawning the video
//! decoder, one encoder per encoded rung (and the copy fallback) and the audio worker, and waiting for
//! every one to open its codecs; an audio track announced after the start.

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;
use media::{CodecConfig, Frame, TrackInfo, TrackKind};

use super::{AUDIO_RENDITION, PushState, Shared, StreamTranscoder, TranscodeSink};
use crate::audio::{AudioInput, AudioWorker};
use crate::config::validate_ladder;
use crate::stats::{NO_PTS, RungCounters, StreamCounters};
use crate::video::{DecoderWorker, EncoderInput, EncoderWorker, RungLink, VideoInput};
use crate::{AudioMode, EncoderProbe, RungConfig, TranscodeError, TranscodeOptions};

/// How long `start` waits for every worker to open its codecs.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

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
            clock: std::sync::Mutex::new(options.clock),
            counters: StreamCounters::new(counters),
            sink,
        });

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
