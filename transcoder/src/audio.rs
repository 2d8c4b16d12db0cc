//! The audio worker: decode the source audio once (AAC or any codec FFmpeg decodes), resample (and downmix)
//! to the output format, encode AAC-LC for every variant stream.

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

use bytes::Bytes;
use crossbeam_channel::{Receiver, Sender};
use ffmpeg_next::{ChannelLayout, Packet, Rational, codec, decoder, encoder, format, frame};
use media::{Frame, TrackInfo, TrackKind, time::rescale};

use crate::resample::Resampler;
use crate::stream::{AUDIO_RENDITION, Shared};
use crate::{AudioConfig, TranscodeError, ffi};

/// A source timestamp this far (seconds) behind where the decoded samples say it should be restarts
/// the output timeline.
const RESYNC_THRESHOLD_SECS: i64 = 1;
/// A forward jump longer than this (ms) is a gap filled with silence, so the audio keeps its place
/// against the video (a lost frame or two would otherwise move the rest of the audio earlier, and
/// lip sync is lost at about 40 ms of audio early: EBU R37).
const MIN_GAP_FILL_MS: i64 = 40;
/// A forward jump up to this long (seconds) is a gap filled with silence; a longer one restarts the
/// output timeline.
const MAX_GAP_FILL_SECS: i64 = 10;
/// Audio missing from the source while the video goes on is filled with silence once the video is this
/// far (90 kHz ticks: one second) ahead of where the audio stopped arriving, and from then on kept
/// at most this far behind the video: the audio rendition's live edge does not wait for the source's
/// audio to come back (players joining at the edge would find no audio there).
const MISSING_AUDIO_WAIT_90KHZ: i64 = 90_000;

/// What the push path sends the audio worker.
pub(crate) enum AudioInput {
    /// One source audio frame (see [`media::Frame`] and [`media::decodable`] for its layout), timestamps in
    /// the source track's timescale.
    Frame(Frame),
    /// The frames held before the transcoder started, in order.
    Backlog(Vec<Frame>),
    /// The source configuration changed: reopen the decoder.
    Track(TrackInfo),
    /// The push path's latest video PTS (90 kHz ticks), for silence while the source's audio is
    /// missing ([`MISSING_AUDIO_WAIT_90KHZ`]).
    VideoAt(i64),
}

/// Whether `e` means "no more for now" (EAGAIN) or the end (EOF), not a failure.
pub(crate) fn is_again(e: &ffmpeg_next::Error) -> bool {
    matches!(e, ffmpeg_next::Error::Other { errno } if *errno == ffmpeg_next::error::EAGAIN)
        || matches!(e, ffmpeg_next::Error::Eof)
}

const PLANAR_F32: format::Sample = format::Sample::F32(format::sample::Type::Planar);

/// Open a decoder for the source audio track: AAC, or any decodable codec (MP3, AC-3, Opus, PCM …; see
/// [`crate::decode`]). Shared with the Opus encoder ([`crate::opus`]).
pub(crate) fn open_decoder(track: &TrackInfo) -> Result<decoder::Audio, TranscodeError> {
    let (found, ctx) = crate::decode::decoder_context(track, "audio")?;
    let mut dec = ctx.decoder();
    dec.set_packet_time_base(Rational(1, track.timescale.max(1) as i32));
    dec.open_as(found).and_then(|o| o.audio()).map_err(|e| {
        TranscodeError::ffmpeg(format!("opening the {} decoder", track.config.name()), e)
    })
}

fn open_encoder(cfg: &AudioConfig) -> Result<(encoder::Audio, TrackInfo), TranscodeError> {
    let found = encoder::find_by_name("aac").ok_or_else(|| TranscodeError::EncoderUnavailable {
        encoder: "aac".into(),
        reason: "not compiled into this FFmpeg".into(),
    })?;
    let context = |e| TranscodeError::ffmpeg("opening the AAC encoder", e);
    let mut enc = codec::Context::new_with_codec(found)
        .encoder()
        .audio()
        .map_err(context)?;
    let rate =
        i32::try_from(cfg.sample_rate).map_err(|_| context(ffmpeg_next::Error::InvalidData))?;
    enc.set_rate(rate);
    enc.set_format(PLANAR_F32);
    enc.set_channel_layout(ChannelLayout::default(i32::from(cfg.channels)));
    enc.set_channels(i32::from(cfg.channels));
    enc.set_bit_rate(usize::try_from(cfg.bitrate_bps).unwrap_or(usize::MAX));
    enc.set_time_base(Rational(1, rate));
    enc.set_flags(codec::Flags::GLOBAL_HEADER);
    let opened = enc.open_as(found).map_err(context)?;
    let asc = ffi::extradata(&opened);
    let track = TrackInfo::from_audio_specific_config(Bytes::from(asc)).map_err(|e| {
        TranscodeError::InvalidTrack {
            kind: "audio",
            reason: format!("AAC encoder produced an unusable AudioSpecificConfig: {e}"),
        }
    })?;
    Ok((opened, track))
}

/// The audio thread.
pub(crate) struct AudioWorker {
    shared: Arc<Shared>,
    source: TrackInfo,
    cfg: AudioConfig,
    rx: Receiver<AudioInput>,
    out_layout: ChannelLayout,
    resampler: Resampler,
    /// Resampled samples waiting for a full AAC frame, one buffer per channel.
    fifo: Vec<Vec<f32>>,
    /// Samples handed to the encoder (its own pts counter, output sample rate).
    encoder_samples: i64,
    /// PTS of the next emitted AAC frame, in output samples.
    next_out_pts: Option<i64>,
    /// Where the next source sample should fall, in output samples.
    expected_in_pts: i64,
    frame_size: usize,
    has_warned_decode: bool,
    has_warned_encode: bool,
    /// The latest [`AudioInput::VideoAt`].
    video_at_90khz: Option<i64>,
    /// When the last source audio frame was decoded: `expected_in_pts` then, and the video's PTS.
    last_arrival: Option<(i64, i64)>,
    /// Silence emitted ahead of the source's audio reaches this position (output samples): source
    /// frames that start before it arrived too late and are dropped.
    filled_until: Option<i64>,
}

impl AudioWorker {
    pub(crate) fn new(
        shared: Arc<Shared>,
        source: TrackInfo,
        cfg: AudioConfig,
        rx: Receiver<AudioInput>,
    ) -> Self {
        let channels = usize::from(cfg.channels.max(1));
        Self {
            shared,
            source,
            cfg,
            rx,
            out_layout: ChannelLayout::default(i32::from(cfg.channels)),
            resampler: Resampler::new(
                PLANAR_F32,
                ChannelLayout::default(i32::from(cfg.channels)),
                cfg.sample_rate,
            ),
            fifo: vec![Vec::new(); channels],
            encoder_samples: 0,
            next_out_pts: None,
            expected_in_pts: 0,
            frame_size: 1024,
            has_warned_decode: false,
            has_warned_encode: false,
            video_at_90khz: None,
            last_arrival: None,
            filled_until: None,
        }
    }

    pub(crate) fn run(mut self, name: String, ready: Sender<(String, Result<(), TranscodeError>)>) {
        let _span =
            tracing::info_span!("transcode", stream = %self.shared.stream, rendition = AUDIO_RENDITION)
                .entered();
        let opened =
            open_decoder(&self.source).and_then(|d| open_encoder(&self.cfg).map(|e| (d, e)));
        let (mut decoder, mut encoder) = match opened {
            Ok((d, (e, track))) => {
                self.frame_size = match e.frame_size() {
                    0 => 1024,
                    n => n as usize,
                };
                self.shared.sink.track(AUDIO_RENDITION, track);
                let _ = ready.send((name, Ok(())));
                (d, e)
            }
            Err(e) => {
                let _ = ready.send((name, Err(e)));
                return;
            }
        };
        drop(ready);
        loop {
            if self.shared.is_stopped() {
                return;
            }
            match self.rx.recv() {
                Ok(AudioInput::Frame(frame)) => self.decode(&mut decoder, &mut encoder, &frame),
                Ok(AudioInput::Backlog(frames)) => {
                    for frame in &frames {
                        self.decode(&mut decoder, &mut encoder, frame);
                    }
                }
                Ok(AudioInput::VideoAt(pts)) => self.video_at(&mut encoder, pts),
                Ok(AudioInput::Track(track)) => {
                    self.drain_decoder(&mut decoder, &mut encoder, true);
                    match open_decoder(&track) {
                        Ok(d) => {
                            decoder = d;
                            self.source = track;
                            self.resampler.reset();
                        }
                        Err(e) => tracing::error!(error = %e, "cannot reopen the audio decoder"),
                    }
                }
                Err(_) => {
                    if !self.shared.is_stopped() {
                        self.drain_decoder(&mut decoder, &mut encoder, true);
                        self.encode_fifo(&mut encoder, true);
                        if encoder.send_eof().is_ok() {
                            self.receive(&mut encoder);
                        }
                    }
                    return;
                }
            }
        }
    }

    fn count_error(&mut self, error: &dyn std::fmt::Display, is_decode: bool) {
        self.shared.counters.audio_errors.fetch_add(1, Relaxed);
        let warned = if is_decode {
            &mut self.has_warned_decode
        } else {
            &mut self.has_warned_encode
        };
        if !*warned {
            *warned = true;
            tracing::warn!(%error, is_decode, "audio frame skipped (logged once)");
        }
    }

    fn decode(
        &mut self,
        decoder: &mut decoder::Audio,
        encoder: &mut encoder::Audio,
        frame: &Frame,
    ) {
        if frame.data.is_empty() {
            self.count_error(&"empty frame", true);
            return;
        }
        let rate = self.cfg.sample_rate;
        let pos = rescale(frame.pts, self.source.timescale.max(1), rate);
        let was_filling = self.filled_until.is_some();
        if let Some(until) = self.filled_until {
            if pos < until && until - pos <= MAX_GAP_FILL_SECS * i64::from(rate) {
                // Its time went out as silence already. The audio is arriving again: no more
                // silence ahead of it unless it stops again.
                self.shared
                    .counters
                    .audio_frames_dropped
                    .fetch_add(1, Relaxed);
                if let Some(video) = self.video_at_90khz {
                    self.last_arrival = Some((self.expected_in_pts, video));
                }
                return;
            }
            self.filled_until = None;
            tracing::debug!("source audio back after silence");
        }
        match self.next_out_pts {
            None => {
                self.next_out_pts = Some(pos);
                self.expected_in_pts = pos;
            }
            Some(next) => {
                let drift = pos - self.expected_in_pts;
                if drift > MIN_GAP_FILL_MS * i64::from(rate) / 1000
                    && drift <= MAX_GAP_FILL_SECS * i64::from(rate)
                {
                    // Audio missing (a publisher's hiccup, a loss on the way): the gap is filled
                    // with silence, so the audio keeps its place against the video, its timeline
                    // stays continuous and its segments keep lining up with the video's.
                    let gap_ms = drift * 1000 / i64::from(rate);
                    if drift > RESYNC_THRESHOLD_SECS * i64::from(rate) {
                        tracing::info!(gap_ms, "audio gap filled with silence");
                    } else {
                        tracing::debug!(gap_ms, "audio gap filled with silence");
                    }
                    if !was_filling {
                        self.shared.counters.audio_gap_fills.fetch_add(1, Relaxed);
                    }
                    self.fill_silence(encoder, drift);
                } else if drift > MAX_GAP_FILL_SECS * i64::from(rate)
                    || drift < -RESYNC_THRESHOLD_SECS * i64::from(rate)
                {
                    tracing::info!(
                        drift_ms = drift * 1000 / i64::from(rate),
                        "audio timestamp jump: output timeline restarts"
                    );
                    for ch in &mut self.fifo {
                        ch.clear();
                    }
                    self.expected_in_pts = pos;
                    if pos > next {
                        self.next_out_pts = Some(pos);
                    }
                }
            }
        }
        let mut packet = Packet::copy(&frame.data);
        packet.set_pts(Some(frame.pts));
        packet.set_dts(Some(frame.dts));
        if let Err(e) = decoder.send_packet(&packet) {
            if is_again(&e) {
                self.drain_decoder(decoder, encoder, false);
                if let Err(e) = decoder.send_packet(&packet) {
                    self.count_error(&e, true);
                    return;
                }
            } else {
                self.count_error(&e, true);
                return;
            }
        }
        self.drain_decoder(decoder, encoder, false);
        if let Some(video) = self.video_at_90khz {
            self.last_arrival = Some((self.expected_in_pts, video));
        }
    }

    /// `samples` (output samples) of silence into the FIFO, encoded.
    fn fill_silence(&mut self, encoder: &mut encoder::Audio, samples: i64) {
        let n = usize::try_from(samples).unwrap_or(0);
        for ch in &mut self.fifo {
            ch.extend(std::iter::repeat_n(0.0f32, n));
        }
        self.expected_in_pts += samples;
        self.encode_fifo(encoder, false);
    }

    /// The video reached `pts_90khz`: when the source's audio has not arrived for
    /// [`MISSING_AUDIO_WAIT_90KHZ`] of video, silence brings the audio to that far behind where it
    /// would be had it kept arriving (the lag it had against the video then is kept). Frames that
    /// arrive later for that time are dropped ([`Self::filled_until`]).
    fn video_at(&mut self, encoder: &mut encoder::Audio, pts_90khz: i64) {
        self.video_at_90khz = Some(pts_90khz);
        let (Some((audio_at, video_then)), Some(_)) = (self.last_arrival, self.next_out_pts) else {
            return;
        };
        let ahead = pts_90khz - video_then - MISSING_AUDIO_WAIT_90KHZ;
        if ahead <= 0 || ahead > MAX_GAP_FILL_SECS * 90_000 {
            return;
        }
        let rate = self.cfg.sample_rate;
        let target = audio_at + rescale(ahead, 90_000, rate);
        let missing = target - self.expected_in_pts;
        // Whole AAC frames at a time.
        if missing < self.frame_size as i64 {
            return;
        }
        if self.filled_until.is_none() {
            let fills = self.shared.counters.audio_gap_fills.fetch_add(1, Relaxed);
            // Logged once at info (a source whose audio keeps dropping out would flood the log);
            // every such gap is counted in the audio stats' `gaps_filled`.
            if fills == 0 {
                tracing::info!(
                    "source audio missing while the video goes on: filling with silence \
                     (further gaps logged at debug, counted in gaps_filled)"
                );
            } else {
                tracing::debug!(
                    "source audio missing while the video goes on: filling with silence"
                );
            }
        }
        self.fill_silence(encoder, missing);
        self.filled_until = Some(self.expected_in_pts);
    }

    fn drain_decoder(
        &mut self,
        decoder: &mut decoder::Audio,
        encoder: &mut encoder::Audio,
        is_eof: bool,
    ) {
        if is_eof {
            let _ = decoder.send_eof();
        }
        loop {
            let mut decoded = frame::Audio::empty();
            match decoder.receive_frame(&mut decoded) {
                Ok(()) => {
                    self.resample(&decoded);
                    self.encode_fifo(encoder, false);
                }
                Err(e) if is_again(&e) => break,
                Err(e) => {
                    self.count_error(&e, true);
                    break;
                }
            }
        }
        if is_eof {
            decoder.flush();
        }
    }

    /// Convert a decoded frame to planar f32 at the output rate and layout, into the FIFO.
    fn resample(&mut self, decoded: &frame::Audio) {
        let out = match self.resampler.run(decoded) {
            Ok(Some(out)) => out,
            Ok(None) => return,
            Err(e) => return self.count_error(&e, true),
        };
        let n = out.samples();
        for (ch, buf) in self.fifo.iter_mut().enumerate() {
            buf.extend_from_slice(&out.plane::<f32>(ch)[..n]);
        }
        self.expected_in_pts += n as i64;
    }

    /// Encode every full frame in the FIFO (and the partial rest when `is_eof`).
    fn encode_fifo(&mut self, encoder: &mut encoder::Audio, is_eof: bool) {
        loop {
            let available = self.fifo.first().map_or(0, Vec::len);
            let n = if available >= self.frame_size {
                self.frame_size
            } else if is_eof && available > 0 {
                available
            } else {
                return;
            };
            let mut f = frame::Audio::new(PLANAR_F32, n, self.out_layout);
            if !ffi::has_data(&f) || usize::from(f.channels()) < self.fifo.len() {
                self.count_error(&"cannot allocate an encoder frame", false);
                return;
            }
            f.set_rate(self.cfg.sample_rate);
            for (ch, buf) in self.fifo.iter_mut().enumerate() {
                f.plane_mut::<f32>(ch)[..n].copy_from_slice(&buf[..n]);
                buf.drain(..n);
            }
            f.set_pts(Some(self.encoder_samples));
            self.encoder_samples += n as i64;
            if let Err(e) = encoder.send_frame(&f) {
                self.count_error(&e, false);
                continue;
            }
            self.receive(encoder);
        }
    }

    fn receive(&mut self, encoder: &mut encoder::Audio) {
        loop {
            let mut packet = Packet::empty();
            match encoder.receive_packet(&mut packet) {
                Ok(()) => self.emit(&packet),
                Err(e) if is_again(&e) => break,
                Err(e) => {
                    self.count_error(&e, false);
                    break;
                }
            }
        }
    }

    fn emit(&mut self, packet: &Packet) {
        let Some(data) = packet.data().filter(|d| !d.is_empty()) else {
            return;
        };
        let pts = self.next_out_pts.unwrap_or(0);
        self.next_out_pts = Some(pts + self.frame_size as i64);
        let frame = Frame {
            track: TrackKind::Audio,
            dts: pts,
            pts,
            is_keyframe: true,
            data: Bytes::copy_from_slice(data),
        };
        self.shared.sink.frame(AUDIO_RENDITION, frame);
        self.shared.counters.audio_frames_out.fetch_add(1, Relaxed);
    }
}
