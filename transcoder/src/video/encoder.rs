//! One encoded rung's thread: scales each picture to the rung's size (swscale, bicubic), encodes it
//! (keyframes where the decoder forced them), turns the packets into frames with the source's
//! timestamps and delivers the rung's track and frames to the sink.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use ffmpeg_next::{
    Dictionary, Packet, Rational, codec, encoder, format, frame, picture, software::scaling,
};
use media::{Frame, TrackInfo, TrackKind};

use super::{EncoderInput, FALLBACK_FPS, is_again, options_frame_rate, track_frame_rate};
use crate::bitstream::{self, ParameterSets};
use crate::keyframes::FrameRateCap;
use crate::settings;
use crate::stream::Shared;
use crate::{RungConfig, TranscodeError, TranscodeOptions, ffi};

/// A swscale context and the (source format, source width, source height, width, height) it converts.
struct Scaler {
    key: (format::Pixel, u32, u32, u32, u32),
    context: scaling::Context,
    /// The picture scaled last, filled again for the next one once the encoder no longer holds it
    /// (encoders copy a picture in when they take it): no new picture buffer, and no page faults on
    /// fresh memory, for every frame.
    spare: Option<frame::Video>,
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
                Ok(context) => {
                    *scaler = Some(Scaler {
                        key,
                        context,
                        spare: None,
                    })
                }
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
        let mut scaled = match scaler.spare.take() {
            Some(mut spare) if ffi::is_writable(&spare) => {
                spare.remove_side_data(ffmpeg_next::frame::side_data::Type::A53CC);
                spare
            }
            _ => frame::Video::new(format::Pixel::YUV420P, width, height),
        };
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
        if !ffi::copy_captions(src, &mut scaled) {
            self.count_encode_error(&"cannot copy the picture's captions");
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
        scaler.spare = Some(scaled);
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
