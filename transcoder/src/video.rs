//! The video workers: one decoder per stream, one scaler + encoder per encoded rung.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, TrySendError};
use ffmpeg_next::{
    Dictionary, Packet, Rational, codec, decoder, encoder, format, frame, picture,
    software::scaling,
};
use media::{Frame, TrackInfo, TrackKind};

use crate::bitstream::{self, ParameterSets};
use crate::keyframes::{Congestion, FrameRateCap, ShedCandidate, pick_rung_to_shed};
use crate::settings;
use crate::stream::{Shared, send_blocking};
use crate::{RungConfig, TranscodeError, TranscodeOptions, ffi};

/// The 90 kHz time base of every video timestamp here.
const TB_90KHZ: Rational = Rational(1, 90_000);
/// Frame rate assumed when neither the source SPS nor the decoder signals one.
const FALLBACK_FPS: Rational = Rational(30, 1);

/// What the push path sends the decoder.
pub(crate) enum VideoInput {
    /// One source frame (timestamps in 90 kHz) and, at the source's first frame past a grid point where
    /// its keyframes left the grid, that grid point: the copy fallback encodes from the picture at it.
    Frame {
        frame: Frame,
        takeover_at: Option<i64>,
    },
    /// The frames held before the transcoder started, in order: decoded as fast as possible, every
    /// picture queued for every encoder (blocking instead of dropping).
    Backlog(Vec<VideoInput>),
    /// The source configuration changed: reopen the decoder.
    Track(TrackInfo),
}

/// One decoded source picture, shared by every rung.
pub(crate) struct Picture {
    frame: frame::Video,
    pts_90khz: i64,
    /// The source frame rate, for encoders (re)opened on this picture.
    frame_rate: Rational,
}

/// What the decoder sends an encoder.
pub(crate) struct EncoderInput {
    picture: Arc<Picture>,
    is_forced: bool,
}

/// The decoder's handle on one encoder thread.
pub(crate) struct RungLink {
    idx: usize,
    tx: Option<Sender<EncoderInput>>,
    /// A forced picture could not be queued: force the next one.
    is_force_pending: bool,
    priority: u32,
    height: u32,
    /// The copy rung's fallback: gets no picture until it takes over, and is never shed.
    is_fallback: bool,
    /// A fallback that has not taken over yet.
    is_standby: bool,
}

impl RungLink {
    pub(crate) fn new(
        idx: usize,
        tx: Sender<EncoderInput>,
        rung: &RungConfig,
        is_fallback: bool,
    ) -> Self {
        Self {
            idx,
            tx: Some(tx),
            is_force_pending: false,
            priority: rung.priority,
            height: rung.height.unwrap_or(0),
            is_fallback,
            is_standby: is_fallback,
        }
    }
}

fn is_again(e: &ffmpeg_next::Error) -> bool {
    matches!(e, ffmpeg_next::Error::Other { errno } if *errno == ffmpeg_next::error::EAGAIN)
        || matches!(e, ffmpeg_next::Error::Eof)
}

/// The frame rate signalled by a source track (SPS VUI), if any.
fn track_frame_rate(track: &TrackInfo) -> Option<Rational> {
    let (n, d) = track.config.video_params()?.frame_rate?;
    let (n, d) = (i32::try_from(n).ok()?, i32::try_from(d).ok()?);
    (n > 0 && d > 0).then(|| Rational(n, d).reduce())
}

/// The measured source frame rate given in the options, if any.
fn options_frame_rate(options: &TranscodeOptions) -> Option<Rational> {
    let (n, d) = options.frame_rate?;
    let (n, d) = (i32::try_from(n).ok()?, i32::try_from(d).ok()?);
    (n > 0 && d > 0).then(|| Rational(n, d).reduce())
}

/// Open a decoder for a source video track: H.264 or HEVC (extradata = its configuration record), or
/// any decodable codec (MPEG-2, VP9, AV1 …; see [`crate::decode`]).
fn open_decoder(track: &TrackInfo) -> Result<decoder::Video, TranscodeError> {
    let (found, mut ctx) = crate::decode::decoder_context(track, "video")?;
    let pixels = track
        .config
        .video_params()
        .map_or(0, |p| u64::from(p.width) * u64::from(p.height));
    // One thread up to 1080p (no frame-threading delay); two frame threads above.
    let threads = if pixels > 1920 * 1088 { 2 } else { 1 };
    ctx.set_threading(codec::threading::Config {
        kind: codec::threading::Type::Frame,
        count: threads,
        ..Default::default()
    });
    let mut dec = ctx.decoder();
    dec.set_packet_time_base(TB_90KHZ);
    dec.open_as(found).and_then(|o| o.video()).map_err(|e| {
        TranscodeError::ffmpeg(format!("opening the {} decoder", track.config.name()), e)
    })
}

/// The decoder thread: decodes the source once, decides forced keyframes, fans pictures out.
pub(crate) struct DecoderWorker {
    shared: Arc<Shared>,
    source: TrackInfo,
    links: Vec<RungLink>,
    has_copy: bool,
    /// The next grid point a decoded picture forces a keyframe at (`None` before the first picture).
    next_point: Option<i64>,
    /// The grid point from which the copy fallback encodes, once the push path said so.
    pending_takeover: Option<i64>,
    /// Processing held frames: every picture is queued for every encoder, blocking.
    is_backlog: bool,
    has_output: bool,
    is_skipping_to_keyframe: bool,
    has_warned_decode: bool,
    congestion: Congestion,
    queue_frames: usize,
    rx: Receiver<VideoInput>,
    frame_rate: Rational,
}

impl DecoderWorker {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        shared: Arc<Shared>,
        source: TrackInfo,
        links: Vec<RungLink>,
        has_copy: bool,
        options: &TranscodeOptions,
        queue_frames: usize,
        rx: Receiver<VideoInput>,
    ) -> Self {
        let frame_rate = options_frame_rate(options)
            .or_else(|| track_frame_rate(&source))
            .unwrap_or(FALLBACK_FPS);
        let segment_target = options.segment_target;
        Self {
            shared,
            source,
            links,
            has_copy,
            next_point: None,
            pending_takeover: None,
            is_backlog: false,
            has_output: false,
            is_skipping_to_keyframe: false,
            has_warned_decode: false,
            congestion: Congestion::new(segment_target * 2),
            queue_frames,
            rx,
            frame_rate,
        }
    }

    pub(crate) fn run(mut self, name: String, ready: Sender<(String, Result<(), TranscodeError>)>) {
        let _span =
            tracing::info_span!("transcode", stream = %self.shared.stream, rendition = "decoder")
                .entered();
        let mut decoder = match open_decoder(&self.source) {
            Ok(d) => {
                let _ = ready.send((name, Ok(())));
                d
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
                Ok(VideoInput::Frame { frame, takeover_at }) => {
                    self.frame(&mut decoder, frame, takeover_at);
                }
                Ok(VideoInput::Backlog(inputs)) => {
                    self.is_backlog = true;
                    for input in inputs {
                        if self.shared.is_stopped() {
                            return;
                        }
                        if let VideoInput::Frame { frame, takeover_at } = input {
                            self.frame(&mut decoder, frame, takeover_at);
                        }
                    }
                    self.is_backlog = false;
                }
                Ok(VideoInput::Track(track)) => {
                    self.drain(&mut decoder, true);
                    match open_decoder(&track) {
                        Ok(d) => {
                            decoder = d;
                            if let Some(fr) = track_frame_rate(&track) {
                                self.frame_rate = fr;
                            }
                            self.source = track;
                            self.is_skipping_to_keyframe = true;
                        }
                        Err(e) => {
                            tracing::error!(error = %e, "cannot reopen the decoder for the new track");
                            self.is_skipping_to_keyframe = true;
                        }
                    }
                }
                Err(_) => {
                    // End of stream (finish) or stop: flush unless stopping.
                    if !self.shared.is_stopped() {
                        self.drain(&mut decoder, true);
                    }
                    return;
                }
            }
        }
    }

    fn frame(&mut self, decoder: &mut decoder::Video, frame: Frame, takeover_at: Option<i64>) {
        if let Some(k) = takeover_at {
            self.pending_takeover = Some(k);
        }
        self.decode(decoder, frame);
    }

    fn count_decode_error(&mut self, error: &dyn std::fmt::Display) {
        self.shared.counters.decode_errors.fetch_add(1, Relaxed);
        self.is_skipping_to_keyframe = true;
        if !self.has_warned_decode {
            self.has_warned_decode = true;
            tracing::warn!(%error, "decoder rejected a source frame: skipping to the next keyframe (logged once)");
        }
    }

    fn decode(&mut self, decoder: &mut decoder::Video, frame: Frame) {
        if self.is_skipping_to_keyframe && !frame.is_keyframe {
            self.shared.counters.decode_errors.fetch_add(1, Relaxed);
            return;
        }
        if frame.data.is_empty() {
            self.count_decode_error(&"empty frame");
            return;
        }
        self.is_skipping_to_keyframe = false;
        let mut packet = Packet::copy(&frame.data);
        packet.set_pts(Some(frame.pts));
        packet.set_dts(Some(frame.dts));
        if frame.is_keyframe {
            packet.set_flags(codec::packet::Flags::KEY);
        }
        if let Err(e) = decoder.send_packet(&packet) {
            if is_again(&e) {
                // The decoder wants its output read first; read it, then retry once.
                self.drain(decoder, false);
                if let Err(e) = decoder.send_packet(&packet) {
                    self.count_decode_error(&e);
                    return;
                }
            } else {
                self.count_decode_error(&e);
                return;
            }
        }
        self.drain(decoder, false);
    }

    /// Read every available picture (all of them, after end of stream, when `is_eof`).
    fn drain(&mut self, decoder: &mut decoder::Video, is_eof: bool) {
        if is_eof {
            let _ = decoder.send_eof();
        }
        loop {
            let mut decoded = frame::Video::empty();
            match decoder.receive_frame(&mut decoded) {
                Ok(()) => self.deliver(decoded, is_eof),
                Err(e) if is_again(&e) => break,
                Err(e) => {
                    self.count_decode_error(&e);
                    break;
                }
            }
        }
        if is_eof {
            decoder.flush();
        }
    }

    fn deliver(&mut self, decoded: frame::Video, is_draining: bool) {
        let Some(pts) = decoded.pts().or_else(|| decoded.timestamp()) else {
            self.shared.counters.decode_errors.fetch_add(1, Relaxed);
            return;
        };
        if decoded.width() == 0 || decoded.height() == 0 {
            return;
        }
        self.shared.counters.frames_decoded.fetch_add(1, Relaxed);
        let mut is_forced = !self.has_output;
        self.has_output = true;
        // The picture nearest each grid point gets a keyframe, and no other.
        let point = self.shared.clock.get().map_or(0, |c| c.index(pts));
        match self.next_point {
            Some(next) if point < next => {}
            _ => {
                is_forced = true;
                self.next_point = Some(point + 1);
            }
        }
        if let Some(k) = self.pending_takeover
            && point >= k
        {
            self.pending_takeover = None;
            for link in self.links.iter_mut().filter(|l| l.is_standby) {
                link.is_standby = false;
                link.is_force_pending = true;
            }
        }
        let picture = Arc::new(Picture {
            frame: decoded,
            pts_90khz: pts,
            frame_rate: self.frame_rate,
        });
        let is_blocking = is_draining || self.is_backlog || self.shared.is_offline.load(Relaxed);
        for link in &mut self.links {
            if link.is_standby {
                continue;
            }
            let Some(tx) = &link.tx else { continue };
            let msg = EncoderInput {
                picture: picture.clone(),
                is_forced: is_forced || link.is_force_pending,
            };
            let rung = &self.shared.counters.rungs[link.idx];
            if is_blocking {
                if send_blocking(tx, msg, &self.shared) {
                    link.is_force_pending = false;
                } else {
                    link.tx = None;
                }
                continue;
            }
            match tx.try_send(msg) {
                Ok(()) => link.is_force_pending = false,
                Err(TrySendError::Full(msg)) => {
                    rung.frames_dropped.fetch_add(1, Relaxed);
                    link.is_force_pending |= msg.is_forced;
                }
                Err(TrySendError::Disconnected(_)) => link.tx = None,
            }
        }
        if !is_blocking {
            self.check_congestion();
        }
    }

    /// Shed the lowest-priority encoded rung when some queue stays nearly full.
    fn check_congestion(&mut self) {
        let cap = self.queue_frames.max(1) as f64;
        let occupancy = self
            .links
            .iter()
            .filter_map(|l| l.tx.as_ref())
            .map(|tx| tx.len() as f64 / cap)
            .chain(std::iter::once(self.rx.len() as f64 / cap))
            .fold(0.0, f64::max);
        if !self.congestion.observe(Instant::now(), occupancy) {
            return;
        }
        let candidates: Vec<ShedCandidate> = self
            .links
            .iter()
            .map(|l| ShedCandidate {
                priority: l.priority,
                height: l.height,
                // The copy fallback stands for the top of the ladder: never shed.
                is_active: !l.is_fallback
                    && l.tx.is_some()
                    && self.shared.counters.rungs[l.idx].is_active(),
            })
            .collect();
        let Some(i) = pick_rung_to_shed(&candidates, self.has_copy) else {
            return;
        };
        let link = &mut self.links[i];
        link.tx = None;
        let rung = &self.shared.counters.rungs[link.idx];
        rung.is_shed.store(true, Relaxed);
        if let Ok(mut shed) = self.shared.counters.shed.lock() {
            shed.push(rung.name.clone());
        }
        tracing::warn!(
            rendition = %rung.name,
            occupancy,
            "transcoder cannot keep up: shedding rung"
        );
    }
}

/// A swscale context and the (source format, source width, source height, width, height) it converts.
struct Scaler {
    key: (format::Pixel, u32, u32, u32, u32),
    context: scaling::Context,
}

/// One picture inside the encoder.
struct InFlight {
    index: i64,
    pts_90khz: i64,
    /// When the encoder thread took the picture from its queue (before scaling).
    received_at: Instant,
}

/// An open encoder at one output size.
struct OpenEncoder {
    encoder: encoder::video::Encoder,
    width: u32,
    height: u32,
    next_index: i64,
    in_flight: VecDeque<InFlight>,
    /// The track was delivered to the sink.
    has_track: bool,
    /// Parameter sets seen in-band (when the encoder has no global header).
    in_band: ParameterSets,
    /// The parameter sets of this encoder's global header (VPS, SPS, PPS), repeated in-band before
    /// every IDR when its track follows another track of the rendition (a copy fallback taking over,
    /// or a reopen at a new size): a client that keeps the first init segment across the
    /// discontinuity — FFmpeg's HLS demuxer skips a second `moov` — still decodes with the right
    /// ones (ISO/IEC 14496-15 §5.3.2 lets parameter sets also travel in samples). Empty otherwise.
    repeat_parameter_sets: Vec<bytes::Bytes>,
}

/// Output size for a source picture: the rung's height (even), width from the display aspect ratio
/// (sample aspect ratio applied), rounded to the nearest even number.
pub(crate) fn output_size(
    src_width: u32,
    src_height: u32,
    sar: Rational,
    height: u32,
) -> (u32, u32) {
    let height = (height & !1).max(2);
    let (sar_num, sar_den) = if sar.numerator() > 0 && sar.denominator() > 0 {
        (sar.numerator() as u128, sar.denominator() as u128)
    } else {
        (1, 1)
    };
    let num = u128::from(src_width) * sar_num * u128::from(height);
    let den = sar_den * u128::from(src_height.max(1));
    let half_width = (num + den) / (2 * den);
    let width = (half_width * 2).clamp(2, 16_384) as u32;
    (width, height)
}

/// One encoded rung's thread: scale, encode, convert, emit.
pub(crate) struct EncoderWorker {
    shared: Arc<Shared>,
    idx: usize,
    rung: RungConfig,
    encoder_name: String,
    /// Source display size expected before the first picture.
    expected_source: (u32, u32),
    segment_target: Duration,
    rx: Receiver<EncoderInput>,
    cap: FrameRateCap,
    frame_rate: Rational,
    last_in_pts_90khz: Option<i64>,
    is_force_pending: bool,
    has_warned_encode: bool,
    /// The copy rung's fallback: opened on its first picture, its first track delivered with
    /// [`crate::TranscodeSink::replace_track`].
    is_fallback: bool,
    /// A track was delivered to the sink (a later one is a track change).
    has_delivered_track: bool,
}

impl EncoderWorker {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        shared: Arc<Shared>,
        idx: usize,
        rung: RungConfig,
        encoder_name: String,
        source: &TrackInfo,
        options: &TranscodeOptions,
        is_fallback: bool,
        rx: Receiver<EncoderInput>,
    ) -> Self {
        let expected_source = source
            .config
            .video_params()
            .map_or((0, 0), |p| (p.width, p.height));
        let cap = FrameRateCap::new(rung.max_frame_rate);
        Self {
            shared,
            idx,
            rung,
            encoder_name,
            expected_source,
            segment_target: options.segment_target,
            rx,
            cap,
            frame_rate: options_frame_rate(options)
                .or_else(|| track_frame_rate(source))
                .unwrap_or(FALLBACK_FPS),
            last_in_pts_90khz: None,
            is_force_pending: false,
            has_warned_encode: false,
            is_fallback,
            has_delivered_track: false,
        }
    }

    fn counters(&self) -> &crate::stats::RungCounters {
        &self.shared.counters.rungs[self.idx]
    }

    pub(crate) fn run(mut self, name: String, ready: Sender<(String, Result<(), TranscodeError>)>) {
        let _span =
            tracing::info_span!("transcode", stream = %self.shared.stream, rendition = %self.rung.name)
                .entered();
        let height = self.rung.height.unwrap_or(0);
        let (sw, sh) = self.expected_source;
        // A fallback opens when it takes over (most never do).
        let mut current = if sw > 0 && sh > 0 && !self.is_fallback {
            let (w, h) = output_size(sw, sh, Rational(1, 1), height);
            match self.open(w, h) {
                Ok(enc) => Some(enc),
                Err(e) => {
                    let _ = ready.send((name, Err(e)));
                    return;
                }
            }
        } else {
            None
        };
        let _ = ready.send((name, Ok(())));
        drop(ready);
        // Created on this thread: swscale contexts are not `Send`.
        let mut scaler: Option<Scaler> = None;
        loop {
            if self.shared.is_stopped() || self.counters().is_shed.load(Relaxed) {
                return;
            }
            match self.rx.recv() {
                Ok(input) => {
                    if !self.handle(&mut current, &mut scaler, input) {
                        self.counters().is_failed.store(true, Relaxed);
                        return;
                    }
                }
                Err(_) => {
                    if !self.shared.is_stopped()
                        && let Some(enc) = &mut current
                    {
                        self.flush(enc);
                    }
                    return;
                }
            }
        }
    }

    /// Open the encoder at `width`×`height` and deliver its track (from the global header) to the sink.
    fn open(&mut self, width: u32, height: u32) -> Result<OpenEncoder, TranscodeError> {
        let found = encoder::find_by_name(&self.encoder_name).ok_or_else(|| {
            TranscodeError::EncoderUnavailable {
                encoder: self.encoder_name.clone(),
                reason: "not compiled into this FFmpeg".into(),
            }
        })?;
        let context = |e| {
            TranscodeError::ffmpeg(
                format!(
                    "opening the {} encoder ({})",
                    self.rung.name, self.encoder_name
                ),
                e,
            )
        };
        let mut enc = codec::Context::new_with_codec(found)
            .encoder()
            .video()
            .map_err(context)?;
        let mut fps = self.frame_rate;
        if let Some(cap) = self.rung.max_frame_rate
            && f64::from(fps) > cap
        {
            fps = Rational::from(cap);
        }
        enc.set_width(width);
        enc.set_height(height);
        enc.set_format(format::Pixel::YUV420P);
        enc.set_time_base(fps.invert());
        enc.set_frame_rate(Some(fps));
        enc.set_flags(codec::Flags::GLOBAL_HEADER);
        let keyint = settings::keyint_frames(self.segment_target, f64::from(fps));
        let mut options = Dictionary::new();
        for (k, v) in
            settings::video_encoder_options(&self.encoder_name, &self.rung, height, keyint)
        {
            options.set(k, &v);
        }
        let opened = enc.open_as_with(found, options).map_err(context)?;
        let mut open = OpenEncoder {
            encoder: opened,
            width,
            height,
            next_index: 0,
            in_flight: VecDeque::new(),
            has_track: false,
            in_band: ParameterSets::default(),
            repeat_parameter_sets: Vec::new(),
        };
        let follows_other_track = self.is_fallback || self.has_delivered_track;
        let extradata = ffi::extradata(&open.encoder);
        if !extradata.is_empty() {
            match bitstream::track_from_extradata(self.rung.codec, &extradata) {
                Ok(track) => {
                    if follows_other_track {
                        open.repeat_parameter_sets = bitstream::parameter_set_nals(&track);
                    }
                    self.deliver_track(track);
                    open.has_track = true;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "encoder global header unusable; waiting for in-band parameter sets")
                }
            }
        }
        tracing::debug!(width, height, encoder = %self.encoder_name, "encoder opened");
        Ok(open)
    }

    /// Deliver the rung's track to the sink: a fallback's first one replaces the copy rung's.
    fn deliver_track(&mut self, track: TrackInfo) {
        if self.is_fallback && !self.has_delivered_track {
            self.shared.sink.replace_track(&self.rung.name, track);
        } else {
            self.shared.sink.track(&self.rung.name, track);
        }
        self.has_delivered_track = true;
    }

    /// Handle one picture; false if the rung cannot continue (its encoder failed to reopen).
    fn handle(
        &mut self,
        current: &mut Option<OpenEncoder>,
        scaler: &mut Option<Scaler>,
        input: EncoderInput,
    ) -> bool {
        let received_at = Instant::now();
        let shared = self.shared.clone();
        let c = &shared.counters.rungs[self.idx];
        c.frames_in.fetch_add(1, Relaxed);
        let picture = &input.picture;
        let pts = picture.pts_90khz;
        let mut is_forced = input.is_forced || self.is_force_pending;
        if self.last_in_pts_90khz.is_some_and(|last| pts <= last) {
            // Repeated or backwards timestamps would break DTS order: drop the picture.
            c.frames_dropped.fetch_add(1, Relaxed);
            self.is_force_pending |= is_forced;
            return true;
        }
        if !self.cap.admit(pts, is_forced) {
            c.frames_dropped.fetch_add(1, Relaxed);
            return true;
        }
        let src = &picture.frame;
        let (width, height) = output_size(
            src.width(),
            src.height(),
            src.aspect_ratio(),
            self.rung.height.unwrap_or(0),
        );
        if current
            .as_ref()
            .is_none_or(|e| (e.width, e.height) != (width, height))
        {
            if let Some(mut old) = current.take() {
                self.flush(&mut old);
            }
            self.frame_rate = picture.frame_rate;
            match self.open(width, height) {
                Ok(enc) => *current = Some(enc),
                Err(e) => {
                    tracing::error!(error = %e, "cannot reopen the encoder: rung stops");
                    return false;
                }
            }
            is_forced = true;
        }
        let Some(enc) = current.as_mut() else {
            return false;
        };
        let key = (src.format(), src.width(), src.height(), width, height);
        if scaler.as_ref().is_none_or(|s| s.key != key) {
            match scaling::Context::get(
                key.0,
                key.1,
                key.2,
                format::Pixel::YUV420P,
                width,
                height,
                scaling::Flags::BICUBIC,
            ) {
                Ok(context) => *scaler = Some(Scaler { key, context }),
                Err(e) => {
                    self.count_encode_error(&e);
                    self.is_force_pending |= is_forced;
                    return true;
                }
            }
        }
        let Some(scaler) = scaler.as_mut() else {
            return true;
        };
        let mut scaled = frame::Video::new(format::Pixel::YUV420P, width, height);
        if !ffi::has_data(&scaled) {
            self.count_encode_error(&"cannot allocate a picture");
            self.is_force_pending |= is_forced;
            return true;
        }
        if let Err(e) = scaler.context.run(src, &mut scaled) {
            self.count_encode_error(&e);
            self.is_force_pending |= is_forced;
            return true;
        }
        let index = enc.next_index;
        scaled.set_pts(Some(index));
        scaled.set_kind(if is_forced {
            picture::Type::I
        } else {
            picture::Type::None
        });
        if let Err(e) = enc.encoder.send_frame(&scaled) {
            self.count_encode_error(&e);
            self.is_force_pending |= is_forced;
            return true;
        }
        enc.next_index += 1;
        enc.in_flight.push_back(InFlight {
            index,
            pts_90khz: pts,
            received_at,
        });
        self.last_in_pts_90khz = Some(pts);
        self.is_force_pending = false;
        self.receive(enc);
        true
    }

    fn count_encode_error(&mut self, error: &dyn std::fmt::Display) {
        self.counters().encode_errors.fetch_add(1, Relaxed);
        if !self.has_warned_encode {
            self.has_warned_encode = true;
            tracing::warn!(%error, "encode failed: picture skipped (logged once per rung)");
        }
    }

    /// Emit every packet the encoder has ready.
    fn receive(&mut self, enc: &mut OpenEncoder) {
        loop {
            let mut packet = Packet::empty();
            match enc.encoder.receive_packet(&mut packet) {
                Ok(()) => self.emit(enc, &packet),
                Err(e) if is_again(&e) => break,
                Err(e) => {
                    self.count_encode_error(&e);
                    break;
                }
            }
        }
    }

    /// End of stream for this encoder: drain it.
    fn flush(&mut self, enc: &mut OpenEncoder) {
        if enc.encoder.send_eof().is_ok() {
            self.receive(enc);
        }
    }

    fn emit(&mut self, enc: &mut OpenEncoder, packet: &Packet) {
        let Some(index) = packet.pts() else {
            self.count_encode_error(&"packet without a timestamp");
            return;
        };
        while enc.in_flight.front().is_some_and(|f| f.index < index) {
            enc.in_flight.pop_front();
        }
        let Some(entry) = enc.in_flight.pop_front().filter(|f| f.index == index) else {
            self.count_encode_error(&"packet for an unknown picture");
            return;
        };
        let Some(nals) = packet.data().and_then(|d| bitstream::nal_units(d).ok()) else {
            self.count_encode_error(&"malformed encoder packet");
            return;
        };
        if nals.is_empty() {
            self.count_encode_error(&"empty encoder packet");
            return;
        }
        if !enc.has_track {
            enc.in_band.collect(self.rung.codec, &nals);
            match enc.in_band.to_track(self.rung.codec) {
                Ok(track) => {
                    self.deliver_track(track);
                    enc.has_track = true;
                }
                Err(e) => {
                    self.count_encode_error(&e);
                    return;
                }
            }
        }
        let data = if packet.is_key() && !enc.repeat_parameter_sets.is_empty() {
            bitstream::with_parameter_sets(self.rung.codec, &enc.repeat_parameter_sets, &nals)
        } else {
            bitstream::to_length_prefixed(&nals)
        };
        let shared = self.shared.clone();
        let c = &shared.counters.rungs[self.idx];
        if c.is_shed.load(Relaxed) {
            return;
        }
        let frame = Frame {
            track: TrackKind::Video,
            dts: self.shared.dts_for(entry.pts_90khz),
            pts: entry.pts_90khz,
            is_keyframe: packet.is_key(),
            data,
        };
        self.shared.sink.frame(&self.rung.name, frame);
        c.record_delay(entry.received_at.elapsed(), enc.in_flight.len() as u64);
        c.frames_out.fetch_add(1, Relaxed);
        c.last_out_pts_90khz.store(entry.pts_90khz, Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_size_keeps_aspect_and_even_width() {
        assert_eq!(output_size(1280, 720, Rational(1, 1), 480), (854, 480));
        assert_eq!(output_size(1280, 720, Rational(1, 1), 360), (640, 360));
        assert_eq!(output_size(1920, 1080, Rational(0, 1), 720), (1280, 720));
        assert_eq!(output_size(640, 360, Rational(1, 1), 240), (426, 240));
        // Anamorphic 1440x1080 with 4:3 pixels displays as 1920x1080.
        assert_eq!(output_size(1440, 1080, Rational(4, 3), 720), (1280, 720));
        // Odd heights round down to even.
        assert_eq!(output_size(1280, 720, Rational(1, 1), 361), (640, 360));
        // Degenerate source sizes do not panic.
        assert_eq!(output_size(0, 0, Rational(1, 1), 240).1, 240);
    }
}
