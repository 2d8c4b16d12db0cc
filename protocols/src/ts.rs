//! MPEG-TS demultiplexer (ISO/IEC 13818-1), sans-IO: bytes in any alignment in, [`IngestEvent`]s out.
//!
//! Place in the data flow: the SRT driver (`super::srt`) feeds every SRT payload to [`TsDemuxer::push`]
//! and hands the events to its publish session, exactly as the RTMP driver does with
//! [`super::flv::FlvParser`]'s: a stream published over SRT is indistinguishable downstream from one
//! published over RTMP (same [`IngestEvent`]s, video at 90 kHz, AAC at its sample rate, 4-byte
//! length-prefixed NAL units without parameter sets, raw AAC access units).
//!
//! What it does, in order:
//! - **Packet sync** (§2.4.3.2). SRT payloads are not 188-byte aligned (`srt-live-transmit` sends 1456
//!   bytes, FFmpeg 1316), so the input is a byte stream: the demuxer locks onto `sync_byte` 0x47 only
//!   where it recurs at 188-byte spacing [`SYNC_CONFIRM_PACKETS`] times, and takes a packet only when the
//!   next packet's sync byte is where it should be (a packet cut short by lost bytes is dropped rather
//!   than parsed). After a loss it searches again; [`TsError::NoSync`] after [`MAX_SYNC_SEARCH_BYTES`]
//!   bytes without sync (not MPEG-TS: the driver should drop the connection).
//! - **PSI** (§2.4.4): the PAT's first program (program_number ≠ 0) and its PMT; version changes of
//!   either are followed. Sections may span packets; CRC_32 is checked. Elementary streams are chosen
//!   by stream_type (Table 2-34) and, for private data (0x06), by their descriptors: the first H.264
//!   (0x1B), HEVC (0x24), MPEG-2 (0x02) or MPEG-1 (0x01) video stream becomes the video track; the first
//!   AAC ADTS (0x0F), AAC LATM (0x11), MPEG audio (0x03, 0x04), AC-3 (0x81, or 0x06 with an AC-3
//!   descriptor 0x6A or an
//!   `AC-3` registration), E-AC-3 (0x87, or 0x06 with an E-AC-3 descriptor 0x7A or an `EAC3`
//!   registration) or Opus (0x06 with an `Opus` registration and its extension descriptor's
//!   channel_config_code) stream the audio track. A video or audio codec we do not handle (MPEG-4
//!   Visual, VC-1, DTS …) is reported once as an [`IngestEvent::Unusable`] when no usable
//!   stream of its kind is chosen; every other elementary stream (data, subtitles, a second stream of a
//!   kind) is ignored, logged once per PID with its stream_type.
//! - **SCTE-35** (SCTE 35 §8): the first elementary stream of stream_type 0x86 carries
//!   splice_info_sections; each is reassembled like PSI, read with its CRC checked
//!   ([`crate::scte35`]) and reported as an [`IngestEvent::Splice`] with its splice time unwrapped on
//!   the frames' clock (without moving it: a splice is announced seconds ahead). Bad sections are
//!   counted in [`TsStats::splice_errors`].
//! - **PES** (§2.4.3.6): reassembled per PID up to `max_pes_bytes` (bigger ones are dropped and counted;
//!   memory stays bounded). A PES is complete at the next `payload_unit_start_indicator` on its PID, or as
//!   soon as a non-zero `PES_packet_length` is reached. A continuity-counter gap (§2.4.3.3) drops the PES
//!   in progress (counted); duplicate packets are skipped.
//! - **Video** (§2.14 H.264, §2.17 HEVC): each PES is one access unit in Annex B framing, re-framed with
//!   4-byte lengths. Access unit delimiters and parameter sets (SPS/PPS, and VPS for HEVC) are removed
//!   from the samples — the packager declares `avc1`/`hvc1`, parameter sets out of band — and the
//!   parameter sets build the decoder configuration record ([`media::avc::AvcConfig::from_parameter_sets`],
//!   [`media::hevc::HevcConfig::from_parameter_sets`]). An [`IngestEvent::Track`] precedes the first frame
//!   and is sent again whenever the parameter sets change (byte comparison). Frames before the first
//!   parameter sets and keyframe (IDR, nal_unit_type 5; HEVC IRAP, 16..=23) are dropped and counted. A
//!   video PES with a non-zero `PES_packet_length` may be followed by PES packets without PTS that
//!   continue the same access unit (some encoders split large pictures that way): such an access unit is
//!   held until the next PES with a PTS, costing one frame of latency for those streams only.
//! - **MPEG-1/2 video** (ISO/IEC 13818-2): each PES is one picture, passed on with its start codes
//!   (decoded downstream); the sequence header gives the track's picture size and frame rate
//!   ([`media::mpeg_video`]). A keyframe is an I picture preceded by a sequence header in the same PES,
//!   or in a PES whose first packet has the adaptation field's random_access_indicator set.
//! - **AAC** (stream_type 0x0F; ADTS, ISO/IEC 14496-3 §1.A.2): every ADTS frame of a PES becomes
//!   one raw AAC frame (header and CRC stripped); an ADTS frame split across PES packets is carried over.
//!   The AudioSpecificConfig comes from the ADTS header ([`media::aac::AacConfig::from_adts_header`]);
//!   a changed one sends a new [`IngestEvent::Track`].
//! - **MPEG audio, AAC LATM, AC-3, E-AC-3, Opus** (`framed`): split at their frame headers (an Opus access unit
//!   at its control header, which is stripped), one frame each (an E-AC-3 frame with its dependent
//!   substreams), configured from the first frame header, timed in samples like AAC.
//!
//! Timing: PTS/DTS are 33-bit 90 kHz values, unwrapped here by one [`Unwrapper`] shared by all streams
//! (they share the program clock); DTS defaults to PTS, and PTS is taken as DTS plus the signed 33-bit
//! difference, so B-frame offsets survive a wrap. Source values are kept (not shifted to zero), as the
//! FLV path keeps RTMP timestamps; the packager maps the input timeline. Audio timestamps are in samples:
//! the first ADTS frame starting in a PES gets the PES PTS rescaled to the sample rate, the following ones
//! `+ samples_per_frame`; as in the FLV path, consecutive frames are exactly `samples_per_frame` apart
//! unless the PES PTS drifts from that count by more than two frames (then it resynchronises, counted).
//! PTS jumps in either direction are passed on as they are (never a panic); PCR is not used for timing.
//!
//! What it does not do: no I/O, no clock; one program only; no descrambling (scrambled packets are
//! dropped and counted); no reordering; keyframes signalled only by recovery-point SEI (intra refresh)
//! are not recognised; an access unit split across several PES packets *with* PTS each, or several
//! access units in one video PES, are taken one PES = one frame; within one access unit, a parameter set
//! type present replaces the whole list of that type (streams alternating several SPS ids across access
//! units would see a new track each time). After any loss on the video PID, video pictures are dropped
//! until the next keyframe (counted in [`TsStats::keyframe_waits`]): the pictures in between may
//! reference what was lost, and a decoder fed them may fail outright (Chromium's does, fatally) where a
//! short freeze is what a viewer should see. A PES whose first packet was lost never starts, so it is
//! not in [`TsStats::pes_dropped`].
//!
//! Layout: this file (the demuxer's state, input and end of input, the start-up hold, counters), `sync`
//! (packet sync), `program` (routing by PID, PAT/PMT handling), `packet` (packet header, continuity
//! counter), `psi` (section reassembly, CRC), `pes` (PES header and reassembly), `video` (Annex B,
//! parameter sets; MPEG-1/2 pictures), `audio` (ADTS), `framed` (MPEG audio, AAC LATM, AC-3, E-AC-3,
//! Opus), `pmt` (which elementary streams are used).

mod audio;
mod frame_split;
mod framed;
mod packet;
mod pes;
mod pmt;
mod program;
mod psi;
pub(crate) use psi::crc32_mpeg2;
mod sync;
mod video;

use media::time::Unwrapper;
use media::{Frame, TrackKind};

use self::pes::{EsCodec, EsStream};
use self::program::Program;
use self::psi::SectionAssembler;
use crate::IngestEvent;

/// Size of a transport stream packet (ISO/IEC 13818-1 §2.4.3.2).
pub const TS_PACKET_BYTES: usize = 188;
/// `sync_byte` of every transport stream packet.
pub const SYNC_BYTE: u8 = 0x47;
/// How many sync bytes at 188-byte spacing are required before the demuxer (re)locks onto a position.
pub const SYNC_CONFIRM_PACKETS: usize = 4;
/// Bytes searched without finding sync before [`TsError::NoSync`] (64 KiB).
pub const MAX_SYNC_SEARCH_BYTES: usize = 64 * 1024;
/// A `max_pes_bytes` for callers without a configured one: 8 MiB, more than any sane live picture.
pub const DEFAULT_MAX_PES_BYTES: usize = 8 << 20;
/// stream_type of AAC audio with the ADTS transport syntax (ISO/IEC 13818-1 Table 2-34).
pub const STREAM_TYPE_AAC_ADTS: u8 = 0x0F;
/// stream_type of H.264 / AVC video (ISO/IEC 13818-1 Table 2-34).
pub const STREAM_TYPE_H264: u8 = 0x1B;
/// stream_type of H.265 / HEVC video (ISO/IEC 13818-1 Table 2-34).
pub const STREAM_TYPE_HEVC: u8 = 0x24;
/// stream_type of MPEG-1 video (ISO/IEC 11172-2; ISO/IEC 13818-1 Table 2-34).
pub const STREAM_TYPE_MPEG1_VIDEO: u8 = 0x01;
/// stream_type of MPEG-2 video (ISO/IEC 13818-2; ISO/IEC 13818-1 Table 2-34).
pub const STREAM_TYPE_MPEG2_VIDEO: u8 = 0x02;
/// stream_type of MPEG-1 audio (ISO/IEC 11172-3).
pub const STREAM_TYPE_MPEG1_AUDIO: u8 = 0x03;
/// stream_type of MPEG-2 audio (ISO/IEC 13818-3).
pub const STREAM_TYPE_MPEG2_AUDIO: u8 = 0x04;
/// stream_type of MPEG-4 AAC in LATM with the LOAS sync layer (ISO/IEC 14496-3 §1.7).
pub const STREAM_TYPE_AAC_LATM: u8 = 0x11;
/// stream_type of PES packets with private data: the codec is in the descriptors.
pub const STREAM_TYPE_PRIVATE_DATA: u8 = 0x06;
/// stream_type of AC-3 audio in ATSC (A/52 Annex A; user private in Table 2-34).
pub const STREAM_TYPE_AC3: u8 = 0x81;
/// stream_type of E-AC-3 audio in ATSC (A/52 Annex G; user private in Table 2-34).
pub const STREAM_TYPE_EAC3: u8 = 0x87;

const PID_PAT: u16 = 0x0000;
const PID_NULL: u16 = 0x1FFF;
const TABLE_ID_PAT: u8 = 0x00;
const TABLE_ID_PMT: u8 = 0x02;
/// PAT and PMT sections are at most 1024 bytes: `section_length` ≤ 1021 plus 3 header bytes (§2.4.4.3,
/// §2.4.4.8).
const MAX_SECTION_BYTES: usize = 1024;
/// `aac_frame_length` is 13 bits (ISO/IEC 14496-3 §1.A.2.2.2).
const MAX_ADTS_FRAME_BYTES: usize = (1 << 13) - 1;
/// Input is processed in slices of this size, which bounds the internal buffer.
const INPUT_SLICE_BYTES: usize = 64 * 1024;
/// At most this many ignored PIDs are remembered for log-once purposes.
const MAX_LOGGED_PIDS: usize = 64;
/// The PTS/DTS clock: 33 bits at 90 kHz (§2.4.3.7).
const PTS_BITS: u32 = 33;

/// Counters of one demuxer, for logs and metrics. All monotonic.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct TsStats {
    /// Bytes fed in.
    pub bytes: u64,
    /// 188-byte packets parsed (sync byte verified, including null and ignored PIDs).
    pub packets: u64,
    /// Times the demuxer locked onto the sync byte after having lost it or after skipping bytes.
    pub resyncs: u64,
    /// Bytes skipped while searching for the sync byte (including packets dropped on a sync loss).
    pub skipped_bytes: u64,
    /// Continuity-counter discontinuities seen on the PIDs in use (packets lost or out of order).
    pub cc_errors: u64,
    /// Times video waited for a keyframe after a loss (pictures in between are dropped and counted in
    /// `frames_before_config`).
    pub keyframe_waits: u64,
    /// Packets discarded: `transport_error_indicator` set, reserved `adaptation_field_control`, an
    /// adaptation field longer than the packet, or scrambled.
    pub transport_errors: u64,
    /// PAT/PMT sections discarded (CRC mismatch, malformed, or cut by a lost packet).
    pub psi_errors: u64,
    /// PES packets dropped (oversize, truncated by a lost packet, unparsable header, video without PTS).
    pub pes_dropped: u64,
    /// Of `pes_dropped`: PES packets over `max_pes_bytes`.
    pub pes_oversize: u64,
    /// Frames emitted (video + audio).
    pub frames: u64,
    /// Video frames emitted.
    pub video_frames: u64,
    /// Audio frames emitted.
    pub audio_frames: u64,
    /// Video frames dropped before the track's first parameter sets and keyframe, and audio frames with
    /// no timestamp to start from.
    pub frames_before_config: u64,
    /// Parameter sets the `media` crate rejected (frames wait for usable ones).
    pub config_errors: u64,
    /// ADTS sync losses and invalid ADTS headers inside audio PES packets (bytes skipped to the next
    /// syncword).
    pub adts_errors: u64,
    /// The same for MPEG audio, AC-3, E-AC-3 and Opus streams (and E-AC-3 dependent substreams with no
    /// independent frame before them).
    pub audio_sync_errors: u64,
    /// Audio DTS resynchronisations to the PES PTS (drift beyond two frames).
    pub audio_resyncs: u64,
    /// SCTE-35 splice_info_sections read (heartbeats included).
    pub splice_sections: u64,
    /// SCTE-35 sections discarded (CRC mismatch, malformed, encrypted, cut by a lost packet).
    pub splice_errors: u64,
}

/// A condition that ends the input: the bytes are not an MPEG-TS stream at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TsError {
    /// No sync byte pattern found in the last `bytes` bytes.
    #[error("not an MPEG-TS stream: no sync byte in {bytes} bytes")]
    NoSync {
        /// How many bytes were searched.
        bytes: usize,
    },
}

/// Demuxes one program of an MPEG-TS byte stream into tracks and frames. See the module docs.
#[derive(Debug)]
pub struct TsDemuxer {
    max_pes_bytes: usize,
    /// Input not yet parsed: always less than [`SYNC_CONFIRM_PACKETS`] packets between calls.
    buf: Vec<u8>,
    is_locked: bool,
    has_locked: bool,
    /// Bytes skipped since the last lock (or since the last [`TsError::NoSync`]).
    unsynced_bytes: usize,
    pat: SectionAssembler,
    pat_version: Option<u8>,
    program: Option<Program>,
    video: Option<EsStream>,
    audio: Option<EsStream>,
    logged_pids: Vec<u16>,
    timestamps: Unwrapper,
    stats: TsStats,
    logged: Logged,
    /// Events held at the start of the stream until every elementary stream of the program has its
    /// track (see [`START_HOLD_90KHZ`]); `None` once released.
    held: Option<Vec<IngestEvent>>,
}

/// How long (90 kHz ticks of video DTS, 1 s) the demuxer holds the first events of a stream while it
/// waits for the configuration of every elementary stream the PMT declares. An RTMP publisher sends its
/// sequence headers before any frame; in MPEG-TS the first audio PES usually completes some frames after
/// the first video PES. Holding them makes the two indistinguishable downstream (the transcoder starts
/// once with both tracks instead of restarting when the audio appears). A stream whose PMT announces a
/// track that never comes is released after this long, with the tracks it has.
pub const START_HOLD_90KHZ: i64 = 90_000;

/// The most events held at the start (a bound on memory whatever the timestamps say).
const START_HOLD_MAX_EVENTS: usize = 2_000;

impl Default for TsDemuxer {
    /// A demuxer with [`DEFAULT_MAX_PES_BYTES`].
    fn default() -> Self {
        Self::new(DEFAULT_MAX_PES_BYTES)
    }
}

impl TsDemuxer {
    /// A demuxer that accepts PES packets up to `max_pes_bytes` bytes (header included); bigger ones are
    /// dropped and counted in [`TsStats::pes_oversize`]. Memory use is bounded by about three times
    /// `max_pes_bytes` (one PES in assembly per track plus one held video access unit).
    pub fn new(max_pes_bytes: usize) -> Self {
        Self {
            max_pes_bytes,
            buf: Vec::new(),
            is_locked: false,
            has_locked: false,
            unsynced_bytes: 0,
            pat: SectionAssembler::default(),
            pat_version: None,
            program: None,
            video: None,
            audio: None,
            logged_pids: Vec::new(),
            timestamps: Unwrapper::new(PTS_BITS),
            stats: TsStats::default(),
            logged: Logged::default(),
            held: Some(Vec::new()),
        }
    }

    /// Feed the next bytes of the stream (any alignment, any length); events found are appended to `out`
    /// in stream order. A PES is emitted once complete, i.e. usually when the next PES of the same PID
    /// starts (call [`Self::finish`] at the end of input).
    ///
    /// Errors: [`TsError::NoSync`] when [`MAX_SYNC_SEARCH_BYTES`] bytes went by without the sync pattern
    /// (the input is not MPEG-TS). All of `data` is still consumed and the demuxer stays usable; the
    /// error repeats after every further such stretch.
    pub fn push(&mut self, data: &[u8], out: &mut Vec<IngestEvent>) -> Result<(), TsError> {
        self.stats.bytes += data.len() as u64;
        let start = out.len();
        let mut result = Ok(());
        for slice in data.chunks(INPUT_SLICE_BYTES) {
            self.buf.extend_from_slice(slice);
            if let Some(e) = self.process_buffer(out, false)
                && result.is_ok()
            {
                result = Err(e);
            }
        }
        self.hold_at_start(out, start, false);
        result
    }

    /// While the start-up hold is on, move the events appended to `out` since `start` into it; release
    /// everything (tracks first, then frames in stream order) once every declared elementary stream has
    /// its track, after [`START_HOLD_90KHZ`] of video, or at the end of input (`force`).
    fn hold_at_start(&mut self, out: &mut Vec<IngestEvent>, start: usize, force: bool) {
        let Some(held) = self.held.as_mut() else {
            return;
        };
        held.extend(out.drain(start..));
        let has = |kind: TrackKind| has_track(held, kind);
        let has_unusable = held.iter().any(|e| matches!(e, IngestEvent::Unusable(_)));
        let complete = self.program.is_some()
            && (self.video.is_none() || has(TrackKind::Video))
            && (self.audio.is_none() || has(TrackKind::Audio))
            && (self.video.is_some() || self.audio.is_some() || has_unusable);
        let video_dts = held.iter().filter_map(|e| match e {
            IngestEvent::Frame(f) if f.track == TrackKind::Video => Some(f.dts),
            _ => None,
        });
        let (first, last) = video_dts.fold((None, None), |(a, _), d| (a.or(Some(d)), Some(d)));
        let waited_too_long = matches!((first, last), (Some(a), Some(b)) if b - a >= START_HOLD_90KHZ)
            || held.len() >= START_HOLD_MAX_EVENTS;
        if !(complete || waited_too_long || force) {
            return;
        }
        let held = self.held.take().unwrap_or_default();
        if !complete && !held.is_empty() {
            tracing::warn!(
                has_video_track = has_track(&held, TrackKind::Video),
                has_audio_track = has_track(&held, TrackKind::Audio),
                "mpeg-ts: not every elementary stream of the program configured itself in time; \
                 starting with the tracks seen so far"
            );
        }
        // The first track of each kind goes first; a later change stays where it happened.
        let mut first_tracks = Vec::new();
        let mut rest = Vec::with_capacity(held.len());
        for e in held {
            match &e {
                IngestEvent::Track(t) if !has_track(&first_tracks, t.kind()) => {
                    first_tracks.push(e)
                }
                _ => rest.push(e),
            }
        }
        out.extend(first_tracks);
        out.extend(rest);
    }

    /// End of input: parse the last packet (which has no following sync byte to confirm it), emit what is
    /// still buffered (the last PES of each stream, a held video access unit) and discard partial data.
    /// Configurations are kept: pushing more afterwards continues the same publish.
    pub fn finish(&mut self, out: &mut Vec<IngestEvent>) {
        let start = out.len();
        let _ = self.process_buffer(out, true);
        self.buf.clear();
        let Self {
            video,
            audio,
            timestamps,
            stats,
            logged,
            max_pes_bytes,
            ..
        } = self;
        let mut ctx = Ctx {
            timestamps,
            stats,
            logged,
            out,
            max_pes_bytes: *max_pes_bytes,
        };
        for es in [video.as_mut(), audio.as_mut()].into_iter().flatten() {
            es.finish(&mut ctx);
        }
        self.hold_at_start(out, start, true);
    }

    /// Counters so far.
    pub fn stats(&self) -> TsStats {
        self.stats
    }

    /// Checks the demuxer's internal invariants (for tests and fuzzing); panics with the broken one.
    pub fn check_invariants(&self) {
        assert!(
            self.buf.len() < SYNC_CONFIRM_PACKETS * TS_PACKET_BYTES,
            "input buffer holds less than the sync confirmation window"
        );
        assert!(
            self.pat.buf.len() <= MAX_SECTION_BYTES + TS_PACKET_BYTES,
            "PAT section buffer bounded"
        );
        if let Some(p) = &self.program {
            assert!(
                p.pmt.buf.len() <= MAX_SECTION_BYTES + TS_PACKET_BYTES,
                "PMT section buffer bounded"
            );
        }
        for es in [&self.video, &self.audio].into_iter().flatten() {
            assert!(
                es.pes.data.len() <= self.max_pes_bytes,
                "PES buffer within max_pes_bytes"
            );
            match &es.codec {
                EsCodec::Video(v) => assert!(
                    v.held
                        .as_ref()
                        .is_none_or(|h| h.data.len() <= self.max_pes_bytes),
                    "held access unit within max_pes_bytes"
                ),
                EsCodec::Audio(a) => assert!(
                    a.frames.carried_bytes() < MAX_ADTS_FRAME_BYTES,
                    "ADTS carry-over shorter than one frame"
                ),
                EsCodec::Framed(a) => assert!(
                    a.frames.carried_bytes() < framed::MAX_FRAME_BYTES,
                    "audio carry-over shorter than one frame"
                ),
            }
        }
        assert!(
            self.logged_pids.len() <= MAX_LOGGED_PIDS,
            "logged PIDs bounded"
        );
        let s = &self.stats;
        assert_eq!(
            s.frames,
            s.video_frames + s.audio_frames,
            "frame counts add up"
        );
        assert!(
            s.pes_oversize <= s.pes_dropped,
            "oversize PES are dropped PES"
        );
    }
}

fn once(flag: &mut bool) -> bool {
    !std::mem::replace(flag, true)
}

/// Which first-occurrence logs have been written.
#[derive(Debug, Default)]
struct Logged {
    sync_loss: bool,
    transport_error: bool,
    scrambled: bool,
    psi_error: bool,
    splice_error: bool,
    cc_error: bool,
    oversize: bool,
    pes_error: bool,
    config_error: bool,
    adts_error: bool,
    audio_sync_error: bool,
}

/// Everything a stream needs from the demuxer while it handles a packet.
struct Ctx<'a> {
    timestamps: &'a mut Unwrapper,
    stats: &'a mut TsStats,
    logged: &'a mut Logged,
    out: &'a mut Vec<IngestEvent>,
    max_pes_bytes: usize,
}

impl Ctx<'_> {
    /// Unwrap a PES's PTS and optional DTS (raw 33-bit 90 kHz values).
    fn timing(&mut self, pts_90khz: u64, dts_90khz: Option<u64>) -> Timing {
        let dts_raw = dts_90khz.unwrap_or(pts_90khz);
        let dts = self.timestamps.unwrap(dts_raw);
        // pts − dts modulo 2^33, as a signed 33-bit value.
        let modulus = 1i64 << PTS_BITS;
        let diff = (pts_90khz.wrapping_sub(dts_raw) as i64).rem_euclid(modulus);
        let diff = if diff >= modulus / 2 {
            diff - modulus
        } else {
            diff
        };
        Timing {
            dts_90khz: dts,
            pts_90khz: dts + diff,
        }
    }

    fn frame(&mut self, frame: Frame) {
        self.stats.frames += 1;
        match frame.track {
            TrackKind::Video => self.stats.video_frames += 1,
            TrackKind::Audio => self.stats.audio_frames += 1,
        }
        self.out.push(IngestEvent::Frame(frame));
    }

    fn drop_pes(&mut self, pid: u16, why: &'static str) {
        self.stats.pes_dropped += 1;
        if once(&mut self.logged.pes_error) {
            tracing::warn!(pid, why, "mpeg-ts pes dropped (further ones counted)");
        }
    }
}

/// True when `events` hold a track of `kind`.
fn has_track(events: &[IngestEvent], kind: TrackKind) -> bool {
    events
        .iter()
        .any(|e| matches!(e, IngestEvent::Track(t) if t.kind() == kind))
}

/// Unwrapped timestamps of one PES, 90 kHz.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Timing {
    dts_90khz: i64,
    pts_90khz: i64,
}

#[cfg(test)]
mod tests;
