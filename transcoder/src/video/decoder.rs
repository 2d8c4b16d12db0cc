//! The decoder thread: decodes the source once, decides which pictures are forced keyframes (the
//! picture nearest each point of the segment grid), fans pictures out to the rungs' encoders and sheds
//! the lowest-priority rung when they cannot keep up.

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, TrySendError};
use ffmpeg_next::{Packet, Rational, codec, decoder, frame};
use media::{Frame, TrackInfo};

use super::{
    EncoderInput, FALLBACK_FPS, Picture, TB_90KHZ, VideoInput, is_again, options_frame_rate,
    track_frame_rate,
};
use crate::keyframes::{Congestion, ShedCandidate, ShedGate, pick_rung_to_shed};
use crate::stream::{Shared, send_blocking};
use crate::{RungConfig, TranscodeError, TranscodeOptions};

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
    /// Shared with the process's other streams: one shed per `shed_settle` among them.
    shed_gate: ShedGate,
    shed_settle: Duration,
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
            shed_gate: options.shed_gate.clone(),
            shed_settle: segment_target * 2,
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
        let point = self.shared.clock().map_or(0, |c| c.index(pts));
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
        let now = Instant::now();
        if !self.congestion.observe(now, occupancy) {
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
        if !self.shed_gate.admit(now, self.shed_settle) {
            // Another stream of the process shed a rung a moment ago: this stream's congestion
            // clock restarted, to see whether that was enough.
            return;
        }
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
