//! Opus for WebRTC viewers: a stream's source audio (AAC, MP3, AC-3 … any codec [`crate::decode`]
//! opens) decoded once, resampled (and downmixed) to 48 kHz stereo and encoded by libopus into 20 ms
//! packets (RFC 7587 payloads), on one thread per stream. Every WebRTC viewer of the stream is sent the
//! same packets.
//!
//! Timeline: a packet's PTS is in 48 kHz ticks on the source's timeline (the source PTS rescaled), so
//! the viewer's audio and video share one clock. A source timestamp more than [`MAX_DRIFT_48KHZ`] away
//! from where the decoded samples say it should be (a gap, a restart) restarts the output there: a
//! WebRTC receiver conceals the gap itself (Opus PLC), no silence is sent.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering::Relaxed},
    },
    thread::JoinHandle,
};

use bytes::Bytes;
use crossbeam_channel::{Receiver, Sender, TrySendError};
use ffmpeg_next::{
    ChannelLayout, Dictionary, Packet, Rational, codec, decoder, encoder, format, frame,
};
use media::{Frame, TrackInfo, time::rescale};

use crate::{
    TranscodeError,
    audio::{is_again, open_decoder},
    ffi,
    resample::Resampler,
};

/// The Opus clock and sampling rate, Hz (RFC 7587 §4.1: always 48 kHz).
pub const OPUS_RATE: u32 = 48_000;
/// Output channels.
const CHANNELS: u16 = 2;
/// Opus bit rate, bit/s (stereo music and speech at full band).
const BITRATE_BPS: usize = 96_000;
/// Source frames queued for the thread; a frame that finds the queue full is dropped and counted.
const QUEUE_FRAMES: usize = 256;
/// A source timestamp further than this (48 kHz ticks: 40 ms) from the samples' position restarts
/// the output timeline there.
pub const MAX_DRIFT_48KHZ: i64 = 1920;

const PACKED_F32: format::Sample = format::Sample::F32(format::sample::Type::Packed);

/// One Opus packet: 20 ms of 48 kHz stereo.
#[derive(Debug, Clone)]
pub struct OpusPacket {
    /// Presentation time of its first sample, 48 kHz ticks on the source's timeline.
    pub pts_48khz: i64,
    /// The Opus packet (RFC 6716 §3).
    pub data: Bytes,
}

/// The encoder thread's handle: dropping it stops the thread once it has encoded what is queued.
pub struct OpusEncoder {
    tx: Option<Sender<Frame>>,
    thread: Option<JoinHandle<()>>,
    dropped: Arc<AtomicU64>,
    errors: Arc<AtomicU64>,
}

impl std::fmt::Debug for OpusEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpusEncoder")
            .field("dropped", &self.dropped.load(Relaxed))
            .field("errors", &self.errors.load(Relaxed))
            .finish()
    }
}

impl OpusEncoder {
    /// Start encoding `source`'s frames (timestamps in `source.timescale` ticks) for `stream` (used in
    /// log lines); every packet goes to `sink`, on the encoder's thread.
    ///
    /// Errors: [`TranscodeError`] when the source's decoder or libopus cannot be opened (reported
    /// before this returns).
    pub fn start(
        stream: &str,
        source: &TrackInfo,
        sink: Box<dyn FnMut(OpusPacket) + Send>,
    ) -> Result<Self, TranscodeError> {
        crate::init_ffmpeg();
        let (tx, rx) = crossbeam_channel::bounded(QUEUE_FRAMES);
        let (ready_tx, ready) = std::sync::mpsc::channel();
        let errors = Arc::new(AtomicU64::new(0));
        let worker = Worker {
            source: source.clone(),
            sink,
            rx,
            errors: errors.clone(),
            resampler: Resampler::new(PACKED_F32, ChannelLayout::STEREO, OPUS_RATE),
            fifo: Vec::new(),
            fifo_pts: None,
            has_warned: false,
        };
        let span = tracing::info_span!("opus", stream = %stream);
        let thread = std::thread::Builder::new()
            .name("opus".into())
            .spawn(move || {
                let _span = span.entered();
                worker.run(ready_tx)
            })
            .map_err(|e| TranscodeError::EncoderUnavailable {
                encoder: "libopus".into(),
                reason: format!("cannot start its thread: {e}"),
            })?;
        match ready.recv() {
            Ok(Ok(())) => Ok(Self {
                tx: Some(tx),
                thread: Some(thread),
                dropped: Arc::new(AtomicU64::new(0)),
                errors,
            }),
            Ok(Err(e)) => {
                let _ = thread.join();
                Err(e)
            }
            Err(_) => {
                let _ = thread.join();
                Err(TranscodeError::EncoderUnavailable {
                    encoder: "libopus".into(),
                    reason: "its thread ended while opening".into(),
                })
            }
        }
    }

    /// Queue a source audio frame. Returns false (and counts it) when the queue is full.
    pub fn push(&self, frame: Frame) -> bool {
        let Some(tx) = &self.tx else { return false };
        match tx.try_send(frame) {
            Ok(()) => true,
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.dropped.fetch_add(1, Relaxed);
                false
            }
        }
    }

    /// Source frames dropped because the thread was behind.
    pub fn dropped_frames(&self) -> u64 {
        self.dropped.load(Relaxed)
    }

    /// Frames that could not be decoded or encoded.
    pub fn errors(&self) -> u64 {
        self.errors.load(Relaxed)
    }
}

impl Drop for OpusEncoder {
    fn drop(&mut self) {
        self.tx = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn open_encoder() -> Result<encoder::Audio, TranscodeError> {
    let found =
        encoder::find_by_name("libopus").ok_or_else(|| TranscodeError::EncoderUnavailable {
            encoder: "libopus".into(),
            reason: "not compiled into this FFmpeg".into(),
        })?;
    let context = |e| TranscodeError::ffmpeg("opening the Opus encoder", e);
    let mut enc = codec::Context::new_with_codec(found)
        .encoder()
        .audio()
        .map_err(context)?;
    enc.set_rate(OPUS_RATE as i32);
    enc.set_format(PACKED_F32);
    enc.set_channel_layout(ChannelLayout::STEREO);
    enc.set_channels(i32::from(CHANNELS));
    enc.set_bit_rate(BITRATE_BPS);
    enc.set_time_base(Rational(1, OPUS_RATE as i32));
    let mut options = Dictionary::new();
    // 20 ms packets, the WebRTC norm; no extra algorithmic delay beyond libopus's 2.5 ms look-ahead.
    options.set("frame_duration", "20");
    options.set("application", "lowdelay");
    enc.open_as_with(found, options).map_err(context)
}

struct Worker {
    source: TrackInfo,
    sink: Box<dyn FnMut(OpusPacket) + Send>,
    rx: Receiver<Frame>,
    errors: Arc<AtomicU64>,
    resampler: Resampler,
    /// Resampled interleaved stereo samples waiting for a full Opus frame.
    fifo: Vec<f32>,
    /// Position of the FIFO's first sample, 48 kHz ticks.
    fifo_pts: Option<i64>,
    has_warned: bool,
}

impl Worker {
    fn run(mut self, ready: std::sync::mpsc::Sender<Result<(), TranscodeError>>) {
        let (mut decoder, mut encoder) =
            match open_decoder(&self.source).and_then(|d| open_encoder().map(|e| (d, e))) {
                Ok(opened) => opened,
                Err(e) => {
                    let _ = ready.send(Err(e));
                    return;
                }
            };
        let _ = ready.send(Ok(()));
        drop(ready);
        let frame_size = match encoder.frame_size() {
            0 => 960,
            n => n as usize,
        };
        while let Ok(frame) = self.rx.recv() {
            self.decode(&mut decoder, &frame);
            self.encode(&mut encoder, frame_size);
        }
        tracing::debug!("opus encoder stopped");
    }

    fn error(&mut self, what: &str, error: &dyn std::fmt::Display) {
        self.errors.fetch_add(1, Relaxed);
        if !self.has_warned {
            self.has_warned = true;
            tracing::warn!(%error, "{what} for WebRTC viewers failed; frame skipped (logged once, counted)");
        }
    }

    fn decode(&mut self, decoder: &mut decoder::Audio, frame: &Frame) {
        if frame.data.is_empty() {
            return;
        }
        let pos = rescale(frame.pts, self.source.timescale.max(1), OPUS_RATE);
        let queued = (self.fifo.len() / usize::from(CHANNELS)) as i64;
        match self.fifo_pts {
            Some(start) if (pos - (start + queued)).abs() <= MAX_DRIFT_48KHZ => {}
            Some(start) => {
                tracing::debug!(
                    jump_ms = (pos - start - queued) / 48,
                    "source audio timestamp jump: Opus timeline restarts"
                );
                self.fifo.clear();
                self.fifo_pts = Some(pos);
            }
            None => self.fifo_pts = Some(pos),
        }
        let mut packet = Packet::copy(&frame.data);
        packet.set_pts(Some(frame.pts));
        packet.set_dts(Some(frame.dts));
        if let Err(e) = decoder.send_packet(&packet) {
            self.error("decoding the source audio", &e);
            return;
        }
        loop {
            let mut decoded = frame::Audio::empty();
            match decoder.receive_frame(&mut decoded) {
                Ok(()) => self.resample(&decoded),
                Err(e) if is_again(&e) => break,
                Err(e) => {
                    self.error("decoding the source audio", &e);
                    break;
                }
            }
        }
    }

    fn resample(&mut self, decoded: &frame::Audio) {
        let out = match self.resampler.run(decoded) {
            Ok(Some(out)) => out,
            Ok(None) => return,
            Err(e) => return self.error("resampling the source audio", &e),
        };
        let n = out.samples() * usize::from(CHANNELS);
        let bytes = &out.data(0)[..n * 4];
        self.fifo.extend(
            bytes
                .chunks_exact(4)
                .map(|b| f32::from_ne_bytes([b[0], b[1], b[2], b[3]])),
        );
    }

    fn encode(&mut self, encoder: &mut encoder::Audio, frame_size: usize) {
        let per_frame = frame_size * usize::from(CHANNELS);
        while self.fifo.len() >= per_frame {
            let Some(pts) = self.fifo_pts else { return };
            let mut f = frame::Audio::new(PACKED_F32, frame_size, ChannelLayout::STEREO);
            if !ffi::has_data(&f) {
                return self.error("encoding Opus", &"no frame allocated");
            }
            f.set_rate(OPUS_RATE);
            let dst = &mut f.data_mut(0)[..per_frame * 4];
            for (d, s) in dst.chunks_exact_mut(4).zip(self.fifo.drain(..per_frame)) {
                d.copy_from_slice(&s.to_ne_bytes());
            }
            f.set_pts(Some(pts));
            self.fifo_pts = Some(pts + frame_size as i64);
            if let Err(e) = encoder.send_frame(&f) {
                self.error("encoding Opus", &e);
                continue;
            }
            loop {
                let mut packet = Packet::empty();
                match encoder.receive_packet(&mut packet) {
                    Ok(()) => {
                        if let (Some(data), Some(pts)) =
                            (packet.data().filter(|d| !d.is_empty()), packet.pts())
                        {
                            (self.sink)(OpusPacket {
                                pts_48khz: pts,
                                data: Bytes::copy_from_slice(data),
                            });
                        }
                    }
                    Err(e) if is_again(&e) => break,
                    Err(e) => {
                        self.error("encoding Opus", &e);
                        break;
                    }
                }
            }
        }
    }
}
