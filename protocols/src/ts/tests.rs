//! Unit tests of the demuxer on synthetic streams built by a small muxer.

use std::collections::HashMap;

use bytes::Bytes;
use media::avc::AvcConfig;
use media::hevc::HevcConfig;
use media::time::rescale;
use media::{CodecConfig, TrackInfo};
use proptest::prelude::*;

use super::psi::crc32_mpeg2;
use super::*;

const PMT_PID: u16 = 0x1000;
const VIDEO_PID: u16 = 0x0100;
const AUDIO_PID: u16 = 0x0101;
const PTS_MASK: u64 = (1 << 33) - 1;
/// 24 fps at 90 kHz.
const FRAME_TICKS: u64 = 3750;
/// 1024 samples at 48 kHz, at 90 kHz.
const AAC_FRAME_TICKS: u64 = 1920;
/// FFmpeg's mpegts muxer starts at 1.4 s.
const FIRST_DTS: u64 = 126_000;

/// H.264 SPS of a 64x48 constrained-baseline libx264 stream (NAL header 0x67, emulation prevention
/// bytes included), and its PPS (0x68).
const AVC_SPS: [u8; 23] = [
    0x67, 0x42, 0xc0, 0x0a, 0xd9, 0x04, 0x7b, 0x01, 0x10, 0x00, 0x00, 0x03, 0x00, 0x10, 0x00, 0x00,
    0x03, 0x03, 0x20, 0xf1, 0x22, 0x64, 0x80,
];
const AVC_PPS: [u8; 5] = [0x68, 0xcb, 0x83, 0xcb, 0x20];
/// Another PPS (same id, other content) for the "parameter sets changed" case.
const AVC_PPS_2: [u8; 4] = [0x68, 0xce, 0x38, 0x80];
/// SEI (nal_unit_type 6): one user-data-unregistered-sized payload, kept in samples.
const AVC_SEI: [u8; 5] = [0x06, 0x05, 0x01, 0xAA, 0x80];

/// HEVC VPS/SPS/PPS of a 64x48 Main-profile libx265 stream (two-byte NAL headers 0x40 01, 0x42 01,
/// 0x44 01).
const HEVC_VPS: [u8; 24] = [
    0x40, 0x01, 0x0c, 0x01, 0xff, 0xff, 0x01, 0x60, 0x00, 0x00, 0x03, 0x00, 0x90, 0x00, 0x00, 0x03,
    0x00, 0x00, 0x03, 0x00, 0x1e, 0x95, 0x98, 0x09,
];
const HEVC_SPS: [u8; 41] = [
    0x42, 0x01, 0x01, 0x01, 0x60, 0x00, 0x00, 0x03, 0x00, 0x90, 0x00, 0x00, 0x03, 0x00, 0x00, 0x03,
    0x00, 0x1e, 0xa0, 0x20, 0x83, 0x16, 0x59, 0x59, 0xae, 0x4c, 0xaf, 0x01, 0x68, 0x08, 0x00, 0x00,
    0x03, 0x00, 0x08, 0x00, 0x00, 0x03, 0x00, 0xc8, 0x40,
];
const HEVC_PPS: [u8; 6] = [0x44, 0x01, 0xc1, 0x73, 0xd0, 0x89];

/// AudioSpecificConfig of AAC-LC 48 kHz stereo: 00010 0011 0010 000.
const ASC_48K_STEREO: [u8; 2] = [0x11, 0x90];

/// A minimal MPEG-TS muxer for building test streams: packets with adaptation-field stuffing, PSI
/// sections with CRC, PES packets; can leave out or repeat the n-th packet of a PID.
#[derive(Default)]
struct Mux {
    ts: Vec<u8>,
    cc: HashMap<u16, u8>,
    written: HashMap<u16, usize>,
    /// (PID, n): the n-th packet of PID is not written (its counter is used: a gap).
    drop: Option<(u16, usize)>,
    /// (PID, n): the n-th packet of PID is written twice.
    duplicate: Option<(u16, usize)>,
    /// (PID, payload_unit_start_indicator) of every packet written.
    log: Vec<(u16, bool)>,
    /// The next packet that starts a PES gets random_access_indicator set.
    random_access_next: bool,
}

impl Mux {
    /// One packet carrying up to 184 bytes of `payload`; returns how many it took.
    fn packet(&mut self, pid: u16, is_unit_start: bool, payload: &[u8]) -> usize {
        let is_random_access = is_unit_start && std::mem::take(&mut self.random_access_next);
        // With random_access_indicator, an adaptation field of at least its flags byte.
        let n = payload.len().min(if is_random_access { 182 } else { 184 });
        let cc = self.cc.entry(pid).or_insert(0);
        let this_cc = *cc;
        *cc = (*cc + 1) & 0x0F;
        let mut p = vec![
            0x47,                                            // sync_byte
            u8::from(is_unit_start) << 6 | (pid >> 8) as u8, // TEI 0, PUSI, priority 0, PID high
            pid as u8,                                       // PID low
        ];
        if n == 184 {
            p.push(0x10 | this_cc); // not scrambled, payload only, continuity_counter
        } else {
            p.push(0x30 | this_cc); // adaptation field + payload
            let af_len = 183 - n;
            p.push(af_len as u8); // adaptation_field_length
            if af_len > 0 {
                p.push(if is_random_access { 0x40 } else { 0x00 }); // random_access_indicator
                p.extend(std::iter::repeat_n(0xFF, af_len - 1)); // stuffing_byte
            }
        }
        p.extend_from_slice(&payload[..n]);
        assert_eq!(p.len(), TS_PACKET_BYTES);
        let count = self.written.entry(pid).or_insert(0);
        let index = *count;
        *count += 1;
        let copies = usize::from(self.drop != Some((pid, index)))
            + usize::from(self.duplicate == Some((pid, index)));
        for _ in 0..copies {
            self.ts.extend_from_slice(&p);
            self.log.push((pid, is_unit_start));
        }
        n
    }

    fn write(&mut self, pid: u16, data: &[u8]) {
        let mut rest = data;
        let mut is_first = true;
        while is_first || !rest.is_empty() {
            let n = self.packet(pid, is_first, rest);
            rest = &rest[n..];
            is_first = false;
        }
    }

    fn section(&mut self, pid: u16, section: &[u8]) {
        let mut data = vec![0x00]; // pointer_field
        data.extend_from_slice(section);
        self.write(pid, &data);
    }

    fn pat(&mut self, version: u8) {
        let body = [
            0x00,
            0x01, // program_number 1
            0xE0 | (PMT_PID >> 8) as u8,
            PMT_PID as u8, // reserved '111', program_map_PID
        ];
        self.section(PID_PAT, &psi_section(TABLE_ID_PAT, 1, version, &body));
    }

    fn pmt(&mut self, version: u8, streams: &[(u8, u16)]) {
        let mut body = vec![
            0xE0 | (VIDEO_PID >> 8) as u8,
            VIDEO_PID as u8, // reserved, PCR_PID
            0xF0,
            0x00, // reserved, program_info_length 0
        ];
        for &(stream_type, pid) in streams {
            // stream_type, reserved + elementary_PID, reserved + ES_info_length 3, a descriptor.
            body.extend([stream_type, 0xE0 | (pid >> 8) as u8, pid as u8, 0xF0, 0x03]);
            body.extend([0x52, 0x01, 0x00]); // stream_identifier_descriptor (skipped)
        }
        self.section(PMT_PID, &psi_section(TABLE_ID_PMT, 1, version, &body));
    }

    /// A PMT whose streams carry the given descriptors (tag, length, body each).
    fn pmt_with(&mut self, version: u8, streams: &[(u8, u16, &[u8])]) {
        let mut body = vec![
            0xE0 | (VIDEO_PID >> 8) as u8,
            VIDEO_PID as u8, // reserved, PCR_PID
            0xF0,
            0x00, // reserved, program_info_length 0
        ];
        for &(stream_type, pid, descriptors) in streams {
            body.extend([
                stream_type,
                0xE0 | (pid >> 8) as u8,
                pid as u8,
                0xF0 | (descriptors.len() >> 8) as u8,
                descriptors.len() as u8,
            ]);
            body.extend_from_slice(descriptors);
        }
        self.section(PMT_PID, &psi_section(TABLE_ID_PMT, 1, version, &body));
    }

    fn pes(&mut self, pid: u16, pts: Option<u64>, dts: Option<u64>, es: &[u8], is_bounded: bool) {
        let stream_id = if pid == AUDIO_PID { 0xC0 } else { 0xE0 };
        let data = pes_bytes(stream_id, pts, dts, es, is_bounded);
        self.write(pid, &data);
    }
}

fn psi_section(table_id: u8, extension: u16, version: u8, body: &[u8]) -> Vec<u8> {
    let section_length = 5 + body.len() + 4;
    let mut s = vec![
        table_id,
        0xB0 | (section_length >> 8) as u8, // section_syntax_indicator 1, '0', reserved '11'
        section_length as u8,
        (extension >> 8) as u8,
        extension as u8,       // transport_stream_id / program_number
        0xC1 | (version << 1), // reserved '11', version_number, current_next_indicator 1
        0x00,                  // section_number
        0x00,                  // last_section_number
    ];
    s.extend_from_slice(body);
    let crc = crc32_mpeg2(&s);
    s.extend(crc.to_be_bytes());
    s
}

/// A PTS/DTS field: '0010'/'0011'/'0001' prefix, 33 bits with marker bits.
fn ts_field(prefix: u8, ts: u64) -> [u8; 5] {
    [
        prefix << 4 | ((ts >> 29) & 0x0E) as u8 | 1,
        (ts >> 22) as u8,
        ((ts >> 14) & 0xFE) as u8 | 1,
        (ts >> 7) as u8,
        ((ts << 1) & 0xFE) as u8 | 1,
    ]
}

fn pes_bytes(
    stream_id: u8,
    pts: Option<u64>,
    dts: Option<u64>,
    es: &[u8],
    is_bounded: bool,
) -> Vec<u8> {
    let mut fields = Vec::new();
    let flags = match (pts, dts) {
        (Some(p), Some(d)) => {
            fields.extend(ts_field(0b0011, p));
            fields.extend(ts_field(0b0001, d));
            0xC0
        }
        (Some(p), None) => {
            fields.extend(ts_field(0b0010, p));
            0x80
        }
        _ => 0x00,
    };
    let len = if is_bounded {
        3 + fields.len() + es.len()
    } else {
        0
    };
    let mut out = vec![
        0x00,
        0x00,
        0x01,
        stream_id,
        (len >> 8) as u8,
        len as u8,
        0x80,
        flags,
        fields.len() as u8,
    ];
    out.extend(fields);
    out.extend_from_slice(es);
    out
}

/// Slice data that contains no zero byte (so no start code emulation).
fn slice_body(len: usize, seed: usize) -> Vec<u8> {
    (0..len)
        .map(|j| ((j * 31 + seed) % 255 + 1) as u8)
        .collect()
}

/// An H.264 access unit: AUD, [SPS, PPS,] SEI, one slice (IDR or not) of `len` bytes.
fn avc_au(is_idr: bool, has_parameter_sets: bool, len: usize, seed: usize) -> Vec<u8> {
    let mut au = vec![0, 0, 0, 1, 0x09, 0xF0]; // AUD, primary_pic_type 7
    if has_parameter_sets {
        au.extend([0, 0, 0, 1]);
        au.extend(AVC_SPS);
        au.extend([0, 0, 0, 1]);
        au.extend(AVC_PPS);
    }
    au.extend([0, 0, 1]);
    au.extend(AVC_SEI);
    au.extend([0, 0, 1, if is_idr { 0x65 } else { 0x41 }]);
    au.extend(slice_body(len, seed));
    au
}

/// The sample the demuxer should make of [`avc_au`]: SEI and slice, 4-byte lengths.
fn avc_sample(is_idr: bool, len: usize, seed: usize) -> Vec<u8> {
    let mut slice = vec![if is_idr { 0x65 } else { 0x41 }];
    slice.extend(slice_body(len, seed));
    let mut s = Vec::new();
    for nal in [&AVC_SEI[..], &slice] {
        s.extend((nal.len() as u32).to_be_bytes());
        s.extend_from_slice(nal);
    }
    s
}

/// An ADTS frame, AAC-LC 48 kHz stereo, with `payload` as its raw data block.
fn adts(payload: &[u8], has_crc: bool) -> Vec<u8> {
    let header_len = if has_crc { 9 } else { 7 };
    let frame_len = header_len + payload.len();
    let mut f = vec![
        0xFF,                                // syncword (high 8 bits)
        0xF0 | u8::from(!has_crc),           // syncword, ID 0, layer 00, protection_absent
        0x40 | 3 << 2, // profile 1 (LC), sampling_frequency_index 3, private 0, channel_configuration bit 2 = 0
        0x80 | (frame_len >> 11) as u8, // channel_configuration 2 (low bits), flags 0, frame length (2 bits)
        (frame_len >> 3) as u8,         // frame length (8 bits)
        ((frame_len & 7) << 5) as u8 | 0x1F, // frame length (3 bits), buffer fullness 0x7FF (5 bits)
        0xFC, // buffer fullness (6 bits), number_of_raw_data_blocks_in_frame 0
    ];
    if has_crc {
        f.extend([0x12, 0x34]); // crc_check (not verified)
    }
    f.extend_from_slice(payload);
    f
}

fn aac_payload(k: usize) -> Vec<u8> {
    (0..(200 + k * 13 % 150))
        .map(|j| (j * 7 + k) as u8)
        .collect()
}

/// A comparable copy of an event.
#[derive(Debug, PartialEq)]
enum Ev {
    Track(TrackInfo),
    Frame(Frame),
    Unusable(crate::UnusableTrack),
    Splice(crate::SpliceEvent),
}

fn comparable(events: Vec<IngestEvent>) -> Vec<Ev> {
    events
        .into_iter()
        .map(|e| match e {
            IngestEvent::Track(t) => Ev::Track(t),
            IngestEvent::Frame(f) => Ev::Frame(f),
            IngestEvent::Unusable(u) => Ev::Unusable(u),
            IngestEvent::Splice(s) => Ev::Splice(s),
        })
        .collect()
}

/// `out` is `reference` with runs of video frames missing, each run followed by a keyframe (after a
/// loss, video resumes only at a keyframe).
fn assert_video_resumes_at_keyframes(out: &[&Frame], reference: &[&Frame]) {
    let mut j = 0;
    let mut skipped = false;
    for f in out {
        let at = reference[j..]
            .iter()
            .position(|r| r == f)
            .unwrap_or_else(|| panic!("frame not in the reference (or out of order): {f:?}"));
        if at > 0 {
            skipped = true;
            assert!(
                f.is_keyframe,
                "after missing frames, video resumed without a keyframe: {f:?}"
            );
        }
        j += at + 1;
    }
    let _ = skipped;
}

fn frames(events: &[Ev], track: TrackKind) -> Vec<&Frame> {
    events
        .iter()
        .filter_map(|e| match e {
            Ev::Frame(f) if f.track == track => Some(f),
            _ => None,
        })
        .collect()
}

fn tracks(events: &[Ev]) -> Vec<&TrackInfo> {
    events
        .iter()
        .filter_map(|e| match e {
            Ev::Track(t) => Some(t),
            Ev::Frame(_) | Ev::Unusable(_) | Ev::Splice(_) => None,
        })
        .collect()
}

/// Demux `ts` pushed in chunks of `next_len()` bytes, checking invariants after each push.
fn demux_with(
    ts: &[u8],
    max_pes_bytes: usize,
    mut next_len: impl FnMut() -> usize,
) -> (Vec<Ev>, TsStats) {
    let mut demuxer = TsDemuxer::new(max_pes_bytes);
    let mut out = Vec::new();
    let mut rest = ts;
    while !rest.is_empty() {
        let n = next_len().clamp(1, rest.len());
        demuxer
            .push(&rest[..n], &mut out)
            .expect("an MPEG-TS stream");
        demuxer.check_invariants();
        rest = &rest[n..];
    }
    demuxer.finish(&mut out);
    demuxer.check_invariants();
    (comparable(out), demuxer.stats())
}

fn demux(ts: &[u8]) -> (Vec<Ev>, TsStats) {
    demux_with(ts, 1 << 20, || 1316)
}

/// xorshift64: a small deterministic generator for chunk sizes.
fn rng(mut state: u64) -> impl FnMut() -> u64 {
    move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    }
}

/// Layout of [`sample_stream`]: H.264 at 24 fps with PTS = DTS + 2 frames, an IDR with SPS/PPS every
/// 12 frames (PAT/PMT repeated before it), AAC-LC 48 kHz stereo in PES packets of up to 3 ADTS
/// frames (every 5th one CRC-protected) interleaved by time.
struct Sample {
    mux: Mux,
    video_frames: usize,
    first_dts: u64,
    audio_frames: usize,
}

impl Sample {
    fn new(video_frames: usize) -> Self {
        Self {
            mux: Mux::default(),
            video_frames,
            first_dts: FIRST_DTS,
            audio_frames: 0,
        }
    }

    fn video_len(i: usize) -> usize {
        700 + (i * 397) % 3000
    }

    fn build(self) -> (Vec<u8>, usize) {
        let (mux, audio_frames) = self.build_mux();
        (mux.ts, audio_frames)
    }

    fn build_mux(mut self) -> (Mux, usize) {
        let streams = [
            (STREAM_TYPE_H264, VIDEO_PID),
            (STREAM_TYPE_AAC_ADTS, AUDIO_PID),
        ];
        let mut next_audio = 0usize;
        for i in 0..self.video_frames {
            let is_idr = i % 12 == 0;
            if is_idr {
                self.mux.pat(0);
                self.mux.pmt(0, &streams);
            }
            let dts = self.first_dts + i as u64 * FRAME_TICKS;
            let pts = dts + 2 * FRAME_TICKS;
            let au = avc_au(is_idr, is_idr, Self::video_len(i), i);
            self.mux.pes(
                VIDEO_PID,
                Some(pts & PTS_MASK),
                Some(dts & PTS_MASK),
                &au,
                false,
            );
            let audio_time = |k: usize| self.first_dts + k as u64 * AAC_FRAME_TICKS;
            while audio_time(next_audio) < dts + FRAME_TICKS {
                let mut es = Vec::new();
                let first = next_audio;
                while next_audio < first + 3 && audio_time(next_audio) < dts + FRAME_TICKS {
                    es.extend(adts(&aac_payload(next_audio), next_audio % 5 == 4));
                    next_audio += 1;
                }
                let pts = audio_time(first) & PTS_MASK;
                self.mux.pes(AUDIO_PID, Some(pts), None, &es, true);
            }
        }
        self.audio_frames = next_audio;
        (self.mux, self.audio_frames)
    }
}

#[test]
fn ts_sample_stream_demuxes_completely() {
    let (ts, audio_frames) = Sample::new(40).build();
    let (events, stats) = demux(&ts);
    let video = frames(&events, TrackKind::Video);
    let audio = frames(&events, TrackKind::Audio);
    assert_eq!(video.len(), 40);
    assert_eq!(audio.len(), audio_frames);
    // Each track's Track event comes before its first frame.
    for kind in [TrackKind::Video, TrackKind::Audio] {
        let track_at = events
            .iter()
            .position(|e| matches!(e, Ev::Track(t) if t.kind() == kind));
        let frame_at = events
            .iter()
            .position(|e| matches!(e, Ev::Frame(f) if f.track == kind));
        assert!(
            track_at.unwrap() < frame_at.unwrap(),
            "{kind:?} track first"
        );
    }
    let video_track = tracks(&events)
        .into_iter()
        .find(|t| t.kind() == TrackKind::Video)
        .expect("a video track");
    let expected = AvcConfig::from_parameter_sets(
        &[Bytes::from_static(&AVC_SPS)],
        &[Bytes::from_static(&AVC_PPS)],
    )
    .unwrap();
    assert_eq!(video_track.config, CodecConfig::Avc(expected));
    assert_eq!(video_track.timescale, 90_000);
    let audio_track = tracks(&events)
        .into_iter()
        .find(|t| t.kind() == TrackKind::Audio)
        .expect("an audio track");
    assert_eq!(&audio_track.config.record()[..], &ASC_48K_STEREO);
    assert_eq!(audio_track.timescale, 48_000);
    assert_eq!(
        tracks(&events).len(),
        2,
        "repeated parameter sets: no new track"
    );
    for (i, f) in video.iter().enumerate() {
        let dts = (FIRST_DTS + i as u64 * FRAME_TICKS) as i64;
        assert_eq!((f.dts, f.pts), (dts, dts + 2 * FRAME_TICKS as i64));
        assert_eq!(f.is_keyframe, i % 12 == 0);
        assert_eq!(
            f.data[..],
            avc_sample(i % 12 == 0, Sample::video_len(i), i)[..]
        );
    }
    for (k, f) in audio.iter().enumerate() {
        // 1.4 s at 48 kHz, then exactly 1024 samples per frame.
        assert_eq!(f.dts, 67_200 + 1024 * k as i64);
        assert_eq!(
            f.data[..],
            aac_payload(k)[..],
            "ADTS header (and CRC) stripped"
        );
        assert!(f.is_keyframe);
    }
    assert_eq!(
        (
            stats.cc_errors,
            stats.pes_dropped,
            stats.resyncs,
            stats.adts_errors
        ),
        (0, 0, 0, 0)
    );
    assert_eq!(stats.packets as usize * TS_PACKET_BYTES, ts.len());
}

#[test]
fn ts_any_split_points_give_identical_events() {
    let (ts, _) = Sample::new(30).build();
    let reference = demux_with(&ts, 1 << 20, || ts.len());
    for size in [1, 2, 187, 188, 189, 1316, 1456] {
        assert_eq!(
            demux_with(&ts, 1 << 20, || size),
            reference,
            "chunks of {size} bytes"
        );
    }
    for seed in [1, 7, 42, 1234] {
        let mut next = rng(seed);
        let got = demux_with(&ts, 1 << 20, || (next() % 3000) as usize + 1);
        assert_eq!(got, reference, "random chunks, seed {seed}");
    }
}

#[test]
fn ts_resync_after_leading_garbage_keeps_every_event() {
    let (ts, _) = Sample::new(24).build();
    let (reference, _) = demux(&ts);
    // Garbage with sync bytes that do not recur at 188-byte spacing.
    let mut garbage: Vec<u8> = (0..5000u32).map(|i| (i * 13 % 251) as u8).collect();
    garbage[10] = SYNC_BYTE;
    garbage[198] = SYNC_BYTE;
    let input = [garbage.clone(), ts].concat();
    for size in [1, 1316, 1456] {
        let (events, stats) = demux_with(&input, 1 << 20, || size);
        assert_eq!(events, reference);
        assert_eq!(stats.resyncs, 1);
        assert_eq!(stats.skipped_bytes, garbage.len() as u64);
    }
}

#[test]
fn ts_resync_after_garbage_mid_stream_loses_only_the_cut_pes() {
    let (mux, _) = Sample::new(24).build_mux();
    let ts = mux.ts;
    let (reference, _) = demux(&ts);
    // 1000 bytes of garbage after packet k (a damaged stretch, as after an SRT loss), where packets
    // k - 1 and k are both in the middle of a video PES.
    let is_video_middle = |i: usize| mux.log[i] == (VIDEO_PID, false);
    let k = (100..mux.log.len())
        .find(|&k| is_video_middle(k - 1) && is_video_middle(k))
        .unwrap();
    let cut = k * TS_PACKET_BYTES;
    let garbage = vec![0x5A; 1000];
    let input = [&ts[..cut], &garbage[..], &ts[cut..]].concat();
    let (events, stats) = demux_with(&input, 1 << 20, || 1456);
    assert_eq!(stats.resyncs, 1);
    // The packet before the garbage has no sync byte after it, so it is dropped too: at most the PES
    // it belonged to is lost.
    assert_eq!(
        stats.skipped_bytes,
        (TS_PACKET_BYTES + garbage.len()) as u64
    );
    assert!(stats.cc_errors >= 1);
    assert_eq!(stats.pes_dropped, 1);
    assert_eq!(stats.keyframe_waits, 1);
    // Audio is untouched; video loses the cut picture and what follows it up to the next keyframe.
    assert_eq!(
        frames(&events, TrackKind::Audio),
        frames(&reference, TrackKind::Audio)
    );
    let (video, ref_video) = (
        frames(&events, TrackKind::Video),
        frames(&reference, TrackKind::Video),
    );
    assert!(video.len() < ref_video.len());
    assert_video_resumes_at_keyframes(&video, &ref_video);
    assert!(
        events.iter().all(|e| reference.contains(e)),
        "nothing invented"
    );
}

#[test]
fn ts_lost_packet_drops_its_pes_and_is_counted() {
    // Video PES 3 (frame index 2) spans its PID's packets 6..; drop the 2nd packet of that PES.
    let (clean, _) = Sample::new(24).build();
    let (reference, _) = demux(&clean);
    let mut sample = Sample::new(24);
    let frame_2_start = (0..2)
        .map(|i| {
            pes_bytes(
                0xE0,
                Some(0),
                Some(0),
                &avc_au(i == 0, i == 0, Sample::video_len(i), i),
                false,
            )
            .len()
            .div_ceil(184)
        })
        .sum::<usize>();
    sample.mux.drop = Some((VIDEO_PID, frame_2_start + 1));
    let (ts, _) = sample.build();
    let (events, stats) = demux(&ts);
    assert_eq!((stats.cc_errors, stats.pes_dropped), (1, 1));
    assert_eq!(stats.keyframe_waits, 1);
    // Frame 2 is lost; the pictures after it wait for the next keyframe.
    let video = frames(&events, TrackKind::Video);
    let ref_video = frames(&reference, TrackKind::Video);
    assert_eq!(video[..2], ref_video[..2]);
    assert!(!video.contains(&ref_video[2]));
    assert_video_resumes_at_keyframes(&video, &ref_video);
    assert_eq!(
        frames(&events, TrackKind::Audio),
        frames(&reference, TrackKind::Audio)
    );
}

#[test]
fn ts_duplicate_packet_is_skipped_without_error() {
    let (clean, _) = Sample::new(12).build();
    let (reference, _) = demux(&clean);
    let mut sample = Sample::new(12);
    sample.mux.duplicate = Some((VIDEO_PID, 3));
    let (ts, _) = sample.build();
    let (events, stats) = demux(&ts);
    assert_eq!(events, reference);
    assert_eq!((stats.cc_errors, stats.pes_dropped), (0, 0));
}

#[test]
fn ts_oversize_pes_is_dropped_and_counted() {
    let mut mux = Mux::default();
    mux.pat(0);
    mux.pmt(0, &[(STREAM_TYPE_H264, VIDEO_PID)]);
    let sizes = [1000, 9000, 1200, 1300]; // the second one is over the 4000-byte limit
    for (i, &len) in sizes.iter().enumerate() {
        let dts = FIRST_DTS + i as u64 * FRAME_TICKS;
        mux.pes(
            VIDEO_PID,
            Some(dts),
            None,
            &avc_au(i == 0, i == 0, len, i),
            false,
        );
    }
    let (events, stats) = demux_with(&mux.ts, 4000, || 1316);
    assert_eq!((stats.pes_dropped, stats.pes_oversize), (1, 1));
    // The pictures after the dropped one may reference it: none until the next keyframe (none here).
    assert_eq!(stats.keyframe_waits, 1);
    let dts: Vec<i64> = frames(&events, TrackKind::Video)
        .iter()
        .map(|f| f.dts)
        .collect();
    assert_eq!(dts, vec![126_000]);
}

#[test]
fn ts_pts_wrap_at_33_bits_is_unwrapped() {
    let mut sample = Sample::new(12);
    sample.first_dts = (1 << 33) - 5 * FRAME_TICKS;
    let (ts, _) = sample.build();
    let (events, stats) = demux(&ts);
    assert_eq!(stats.pes_dropped, 0);
    let video = frames(&events, TrackKind::Video);
    assert_eq!(video.len(), 12);
    for (i, f) in video.iter().enumerate() {
        let dts = (1i64 << 33) - 5 * 3750 + i as i64 * 3750;
        // PTS wraps two frames before DTS does: the offset survives.
        assert_eq!((f.dts, f.pts), (dts, dts + 7500));
    }
    assert!(video.last().unwrap().dts > 1 << 33);
    let audio = frames(&events, TrackKind::Audio);
    assert!(audio.windows(2).all(|w| w[1].dts - w[0].dts == 1024));
    assert!(audio.last().unwrap().dts > rescale(1 << 33, 90_000, 48_000));
    assert_eq!(stats.audio_resyncs, 0);
}

#[test]
fn ts_pts_jumps_pass_through_without_panic() {
    let mut mux = Mux::default();
    mux.pat(0);
    mux.pmt(
        0,
        &[
            (STREAM_TYPE_H264, VIDEO_PID),
            (STREAM_TYPE_AAC_ADTS, AUDIO_PID),
        ],
    );
    // Forward by an hour, back by ten seconds, and across the wrap backwards.
    let times = [
        900_000u64,
        900_000 + 324_000_000,
        900_000 + 323_100_000,
        3000,
        PTS_MASK - 1000,
    ];
    for (i, &t) in times.iter().enumerate() {
        mux.pes(
            VIDEO_PID,
            Some(t),
            None,
            &avc_au(i == 0, i == 0, 500, i),
            false,
        );
        mux.pes(
            AUDIO_PID,
            Some(t),
            None,
            &adts(&aac_payload(i), false),
            true,
        );
    }
    let (events, stats) = demux(&mux.ts);
    let video: Vec<i64> = frames(&events, TrackKind::Video)
        .iter()
        .map(|f| f.dts)
        .collect();
    assert_eq!(video, vec![900_000, 324_900_000, 324_000_000, 3000, -1001]);
    assert_eq!(frames(&events, TrackKind::Audio).len(), 5);
    assert_eq!(stats.audio_resyncs, 4);
}

#[test]
fn ts_unsupported_streams_ignored_and_pmt_changes_followed() {
    let mut mux = Mux::default();
    mux.pat(0);
    // SCTE-35 (0x86) and private data without a known descriptor: ignored; H.264 used.
    mux.pmt(
        0,
        &[
            (0x86, 0x0102),
            (STREAM_TYPE_H264, VIDEO_PID),
            (0x06, 0x0103),
        ],
    );
    for i in 0..3u64 {
        mux.pes(
            VIDEO_PID,
            Some(FIRST_DTS + i * 3750),
            None,
            &avc_au(i == 0, i == 0, 300, 0),
            false,
        );
        mux.pes(
            0x0102,
            Some(FIRST_DTS + i * 3750),
            None,
            &[0xFF, 0xFB, 0x90, 0x00],
            true,
        );
        mux.pes(
            AUDIO_PID,
            Some(FIRST_DTS),
            None,
            &adts(&[1, 2, 3], false),
            true,
        ); // not in the PMT yet
    }
    // Version 1 adds AAC on AUDIO_PID.
    mux.pmt(
        1,
        &[
            (STREAM_TYPE_H264, VIDEO_PID),
            (STREAM_TYPE_AAC_ADTS, AUDIO_PID),
        ],
    );
    mux.pes(
        AUDIO_PID,
        Some(FIRST_DTS + 20_000),
        None,
        &adts(&[1, 2, 3], false),
        true,
    );
    // Version 2 moves video to HEVC on another PID.
    mux.pmt(
        2,
        &[
            (STREAM_TYPE_HEVC, 0x0104),
            (STREAM_TYPE_AAC_ADTS, AUDIO_PID),
        ],
    );
    let mut hevc_au = Vec::new();
    for nal in [
        &[0x46, 0x01, 0x50][..],
        &HEVC_VPS,
        &HEVC_SPS,
        &HEVC_PPS,
        &[0x26, 0x01, 0xAF, 0x10],
    ] {
        hevc_au.extend([0, 0, 0, 1]);
        hevc_au.extend_from_slice(nal);
    }
    mux.pes(0x0104, Some(FIRST_DTS + 30_000), None, &hevc_au, false);
    let (events, stats) = demux(&mux.ts);
    let codecs: Vec<String> = tracks(&events).iter().map(|t| t.config.rfc6381()).collect();
    assert_eq!(codecs, vec!["avc1.42c00a", "mp4a.40.2", "hvc1.1.6.L30.90"]);
    assert_eq!(frames(&events, TrackKind::Video).len(), 4);
    assert_eq!(frames(&events, TrackKind::Audio).len(), 1);
    assert_eq!(stats.pes_dropped, 0);
}

#[test]
fn ts_avc_parameter_sets_stripped_and_changes_send_a_track() {
    let mut mux = Mux::default();
    mux.pat(0);
    mux.pmt(0, &[(STREAM_TYPE_H264, VIDEO_PID)]);
    let au = |params: &[&[u8]], nal_type: u8| {
        let mut au = vec![0, 0, 0, 1, 0x09, 0xF0];
        for p in params {
            au.extend([0, 0, 0, 1]);
            au.extend_from_slice(p);
        }
        au.extend([0, 0, 1, nal_type, 0x88, 0x84, 0x00, 0x00]); // slice + trailing zero bytes
        au
    };
    let t = |i: u64| Some(FIRST_DTS + i * 3750);
    mux.pes(VIDEO_PID, t(0), None, &au(&[], 0x41), false); // before any SPS/PPS: dropped
    mux.pes(
        VIDEO_PID,
        t(1),
        None,
        &au(&[&AVC_SPS, &AVC_PPS], 0x41),
        false,
    ); // not a keyframe: dropped
    mux.pes(
        VIDEO_PID,
        t(2),
        None,
        &au(&[&AVC_SPS, &AVC_PPS], 0x65),
        false,
    );
    mux.pes(VIDEO_PID, t(3), None, &au(&[], 0x41), false);
    mux.pes(
        VIDEO_PID,
        t(4),
        None,
        &au(&[&AVC_SPS, &AVC_PPS_2], 0x65),
        false,
    ); // new PPS
    mux.pes(
        VIDEO_PID,
        t(5),
        None,
        &au(&[&AVC_SPS, &AVC_PPS_2], 0x65),
        false,
    ); // same again
    let (events, stats) = demux(&mux.ts);
    assert_eq!(stats.frames_before_config, 2);
    let expected_tracks: Vec<TrackInfo> = [&AVC_PPS[..], &AVC_PPS_2]
        .iter()
        .map(|pps| {
            TrackInfo::new(CodecConfig::Avc(
                AvcConfig::from_parameter_sets(
                    &[Bytes::from_static(&AVC_SPS)],
                    &[Bytes::copy_from_slice(pps)],
                )
                .unwrap(),
            ))
        })
        .collect();
    let key = |nal_type| Bytes::from(vec![0, 0, 0, 3, nal_type, 0x88, 0x84]);
    let frame = |i: i64, nal_type: u8| {
        Ev::Frame(Frame {
            track: TrackKind::Video,
            dts: 126_000 + i * 3750,
            pts: 126_000 + i * 3750,
            is_keyframe: nal_type == 0x65,
            data: key(nal_type),
        })
    };
    assert_eq!(
        events,
        vec![
            Ev::Track(expected_tracks[0].clone()),
            frame(2, 0x65),
            frame(3, 0x41),
            Ev::Track(expected_tracks[1].clone()),
            frame(4, 0x65),
            frame(5, 0x65),
        ]
    );
}

#[test]
fn ts_hevc_irap_keyframes_and_vps_sps_pps_stripped() {
    let mut mux = Mux::default();
    mux.pat(0);
    mux.pmt(0, &[(STREAM_TYPE_HEVC, VIDEO_PID)]);
    let au = |nals: &[&[u8]]| {
        let mut au = Vec::new();
        for nal in nals {
            au.extend([0, 0, 0, 1]);
            au.extend_from_slice(nal);
        }
        au
    };
    let aud: &[u8] = &[0x46, 0x01, 0x50]; // nal_unit_type 35
    let sei: &[u8] = &[0x4E, 0x01, 0x05, 0x01, 0xAA, 0x80]; // prefix SEI, 39
    let idr: &[u8] = &[0x26, 0x01, 0xAF, 0x10]; // IDR_W_RADL, 19
    let trail: &[u8] = &[0x02, 0x01, 0xD0, 0x20]; // TRAIL_R, 1
    let cra: &[u8] = &[0x2A, 0x01, 0xAD, 0x30]; // CRA_NUT, 21
    mux.pes(
        VIDEO_PID,
        Some(FIRST_DTS),
        None,
        &au(&[aud, &HEVC_VPS, &HEVC_SPS, &HEVC_PPS, sei, idr]),
        false,
    );
    mux.pes(
        VIDEO_PID,
        Some(FIRST_DTS + 3000),
        None,
        &au(&[aud, trail]),
        false,
    );
    mux.pes(
        VIDEO_PID,
        Some(FIRST_DTS + 6000),
        None,
        &au(&[aud, &HEVC_VPS, &HEVC_SPS, &HEVC_PPS, cra]),
        false,
    );
    let (events, _) = demux(&mux.ts);
    let expected = HevcConfig::from_parameter_sets(
        &[Bytes::from_static(&HEVC_VPS)],
        &[Bytes::from_static(&HEVC_SPS)],
        &[Bytes::from_static(&HEVC_PPS)],
    )
    .unwrap();
    assert_eq!(
        tracks(&events),
        vec![&TrackInfo::new(CodecConfig::Hevc(expected))]
    );
    let video = frames(&events, TrackKind::Video);
    let keys: Vec<bool> = video.iter().map(|f| f.is_keyframe).collect();
    assert_eq!(keys, vec![true, false, true]);
    let prefixed = |nals: &[&[u8]]| {
        nals.iter()
            .flat_map(|n| [&(n.len() as u32).to_be_bytes()[..], n].concat())
            .collect::<Vec<u8>>()
    };
    assert_eq!(video[0].data[..], prefixed(&[sei, idr])[..]);
    assert_eq!(video[1].data[..], prefixed(&[trail])[..]);
    assert_eq!(video[2].data[..], prefixed(&[cra])[..]);
}

#[test]
fn ts_aac_adts_frames_split_across_pes_are_carried_over() {
    let mut mux = Mux::default();
    mux.pat(0);
    mux.pmt(0, &[(STREAM_TYPE_AAC_ADTS, AUDIO_PID)]);
    let f: Vec<Vec<u8>> = (0..6).map(|k| adts(&aac_payload(k), k == 1)).collect();
    // PES 1: frames 0, 1 (CRC) and the first 100 bytes of 2; PES 2 (PTS of frame 3): the rest of 2,
    // frames 3 and 4; PES 3: frame 5 with a PTS 1 ms late (jitter: regularised).
    let pes1 = [&f[0][..], &f[1], &f[2][..100]].concat();
    let pes2 = [&f[2][100..], &f[3], &f[4]].concat();
    mux.pes(AUDIO_PID, Some(90_000), None, &pes1, true);
    mux.pes(AUDIO_PID, Some(90_000 + 3 * 1920), None, &pes2, true);
    mux.pes(AUDIO_PID, Some(90_000 + 5 * 1920 + 90), None, &f[5], true);
    // PES 4: a jump of 2 s: resynchronised.
    mux.pes(AUDIO_PID, Some(90_000 + 180_000), None, &f[0], true);
    let (events, stats) = demux(&mux.ts);
    let audio = frames(&events, TrackKind::Audio);
    let dts: Vec<i64> = audio.iter().map(|f| f.dts).collect();
    assert_eq!(
        dts,
        vec![48_000, 49_024, 50_048, 51_072, 52_096, 53_120, 144_000]
    );
    for (k, frame) in audio.iter().take(6).enumerate() {
        assert_eq!(frame.data[..], aac_payload(k)[..]);
    }
    assert_eq!((stats.audio_resyncs, stats.adts_errors), (1, 0));
}

#[test]
fn ts_adts_garbage_is_skipped_to_the_next_syncword() {
    let mut mux = Mux::default();
    mux.pat(0);
    mux.pmt(0, &[(STREAM_TYPE_AAC_ADTS, AUDIO_PID)]);
    let es = [
        &[0x00, 0x11, 0xFF, 0x00][..],
        &adts(&aac_payload(0), false),
        &adts(&aac_payload(1), false),
    ]
    .concat();
    mux.pes(AUDIO_PID, Some(90_000), None, &es, true);
    let (events, stats) = demux(&mux.ts);
    let audio = frames(&events, TrackKind::Audio);
    assert_eq!(audio.len(), 2);
    assert_eq!(audio[0].dts, 48_000);
    assert_eq!(stats.adts_errors, 1);
}

#[test]
fn ts_bounded_video_pes_without_pts_continues_the_access_unit() {
    let mut mux = Mux::default();
    mux.pat(0);
    mux.pmt(0, &[(STREAM_TYPE_H264, VIDEO_PID)]);
    let au = avc_au(true, true, 5000, 0);
    mux.pes(VIDEO_PID, Some(FIRST_DTS), None, &au[..2000], true);
    mux.pes(VIDEO_PID, None, None, &au[2000..], true);
    mux.pes(
        VIDEO_PID,
        Some(FIRST_DTS + 3750),
        None,
        &avc_au(false, false, 300, 1),
        true,
    );
    let (events, stats) = demux(&mux.ts);
    let video = frames(&events, TrackKind::Video);
    assert_eq!(video.len(), 2);
    assert_eq!(video[0].data[..], avc_sample(true, 5000, 0)[..]);
    assert_eq!(video[1].dts, 126_000 + 3750);
    assert_eq!(stats.pes_dropped, 0);
}

#[test]
fn ts_bad_pat_crc_is_ignored_until_a_good_one() {
    let mut mux = Mux::default();
    mux.pat(0);
    // The 16-byte PAT section ends the packet (stuffing is in the adaptation field before it): flip
    // a bit of its CRC_32.
    let crc_last = mux.ts.len() - 1;
    mux.ts[crc_last] ^= 0x01;
    mux.pmt(0, &[(STREAM_TYPE_H264, VIDEO_PID)]);
    mux.pes(
        VIDEO_PID,
        Some(FIRST_DTS),
        None,
        &avc_au(true, true, 300, 0),
        false,
    );
    mux.pat(0);
    mux.pmt(0, &[(STREAM_TYPE_H264, VIDEO_PID)]);
    mux.pes(
        VIDEO_PID,
        Some(FIRST_DTS + 3750),
        None,
        &avc_au(true, true, 300, 1),
        false,
    );
    let (events, stats) = demux(&mux.ts);
    assert_eq!(stats.psi_errors, 1);
    let video = frames(&events, TrackKind::Video);
    assert_eq!(video.len(), 1);
    assert_eq!(video[0].dts, 126_000 + 3750);
}

#[test]
fn ts_non_ts_input_reports_no_sync() {
    let mut demuxer = TsDemuxer::new(1 << 20);
    let mut out = Vec::new();
    // An HTTP request ("G" is 0x47) repeated: sync bytes, but never at 188-byte spacing.
    let text = b"GET /live/x HTTP/1.1\r\nHost: a.example\r\n\r\n";
    let input: Vec<u8> = text.iter().copied().cycle().take(70_000).collect();
    let mut pushed = 0;
    let mut error = None;
    for chunk in input.chunks(1316) {
        pushed += chunk.len();
        if let Err(e) = demuxer.push(chunk, &mut out) {
            error = Some(e);
            break;
        }
        demuxer.check_invariants();
    }
    assert!(matches!(error, Some(TsError::NoSync { bytes }) if bytes > MAX_SYNC_SEARCH_BYTES));
    assert!(pushed <= MAX_SYNC_SEARCH_BYTES + 1316 + 4 * TS_PACKET_BYTES);
    assert!(out.is_empty());
    assert_eq!(demuxer.stats().packets, 0);
}

fn small_sample() -> Vec<u8> {
    Sample::new(14).build().0
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn ts_demuxer_never_panics_on_arbitrary_bytes(
        data in proptest::collection::vec(any::<u8>(), 0..8192),
        chunk in 1usize..2000,
        max_pes_bytes in 0usize..4096,
    ) {
        let mut demuxer = TsDemuxer::new(max_pes_bytes);
        let mut out = Vec::new();
        for c in data.chunks(chunk) {
            let _ = demuxer.push(c, &mut out);
            demuxer.check_invariants();
        }
        demuxer.finish(&mut out);
        demuxer.check_invariants();
    }

    #[test]
    fn ts_demuxer_never_panics_on_corrupted_ts(
        edits in proptest::collection::vec((any::<prop::sample::Index>(), 0u8..4, any::<u8>(), 1usize..400), 1..12),
        chunk in 1usize..3000,
        max_pes_bytes in 100usize..8192,
    ) {
        let mut ts = small_sample();
        for (at, kind, byte, len) in edits {
            let i = at.index(ts.len());
            match kind {
                0 => ts[i] ^= byte | 1,                                  // flip bits
                1 => { ts.drain(i..(i + len).min(ts.len())); }            // lose bytes
                2 => { ts.splice(i..i, std::iter::repeat_n(byte, len)); }  // insert junk
                _ => {                                                    // repeat a stretch
                    let copy = ts[i..(i + len).min(ts.len())].to_vec();
                    ts.splice(i..i, copy);
                }
            }
            if ts.is_empty() {
                break;
            }
        }
        let mut demuxer = TsDemuxer::new(max_pes_bytes);
        let mut out = Vec::new();
        for c in ts.chunks(chunk) {
            let _ = demuxer.push(c, &mut out);
            demuxer.check_invariants();
        }
        demuxer.finish(&mut out);
        demuxer.check_invariants();
        for e in &out {
            if let IngestEvent::Frame(f) = e {
                prop_assert!(f.data.len() <= max_pes_bytes);
            }
        }
    }
}

/// The sequence header and sequence extension of `camera-city-cc0-405p-mpeg2-8s.mpg`: 720x405, 16:9,
/// 25 Hz, Main@Main, progressive, 4:2:0 (see `media::mpeg_video`'s tests for the fields).
#[rustfmt::skip]
const MPEG2_SEQUENCE: [u8; 22] = [
    0x00, 0x00, 0x01, 0xB3, 0x2D, 0x01, 0x95, 0x33, 0xFF, 0xFF, 0xE0, 0x18,
    0x00, 0x00, 0x01, 0xB5, 0x14, 0x8A, 0x00, 0x01, 0x00, 0x00,
];

/// An MPEG-2 picture: [sequence header, GOP header,] picture header with `picture_coding_type`
/// (1 = I, 2 = P, 3 = B), one slice of `len` bytes without zero bytes.
fn mpeg2_picture(coding_type: u8, has_sequence_header: bool, len: usize, seed: usize) -> Vec<u8> {
    let mut au = Vec::new();
    if has_sequence_header {
        au.extend(MPEG2_SEQUENCE);
        au.extend([0x00, 0x00, 0x01, 0xB8, 0x00, 0x08, 0x00, 0x40]); // group_start_code, time code
    }
    // picture_start_code, temporal_reference 0 (10 bits), picture_coding_type (3 bits), vbv_delay.
    au.extend([
        0x00,
        0x00,
        0x01,
        0x00,
        0x00,
        coding_type << 3 | 0x07,
        0xFF,
        0xF8,
    ]);
    au.extend([0x00, 0x00, 0x01, 0x01]); // slice_start_code
    au.extend(slice_body(len, seed));
    au
}

/// An MPEG-1 Layer III frame: 128 kbit/s, 44.1 kHz, no padding, joint stereo (FF FB 90 64): 417 bytes.
fn mp3_frame(seed: u8) -> Vec<u8> {
    let mut f = vec![0xFF, 0xFB, 0x90, 0x64];
    f.extend((0..413).map(|i| ((i + usize::from(seed)) % 200) as u8 + 1));
    f
}

#[test]
fn ts_mpeg2_video_and_mp3_audio_configure_from_their_headers() {
    let mut mux = Mux::default();
    mux.pat(0);
    mux.pmt(
        0,
        &[
            (STREAM_TYPE_MPEG2_VIDEO, VIDEO_PID),
            (STREAM_TYPE_MPEG1_AUDIO, AUDIO_PID),
        ],
    );
    // A P picture before the first sequence header: dropped. Then I B B P … at 25 fps (3600 ticks),
    // PTS = DTS + 3600 for I/P, = DTS for B; an I picture without a sequence header but with
    // random_access_indicator at frame 6; two MP3 frames per audio PES (1152 samples = 2351 ticks).
    mux.pes(
        VIDEO_PID,
        Some(FIRST_DTS),
        None,
        &mpeg2_picture(2, false, 50, 0),
        false,
    );
    let types = [1, 3, 3, 2, 3, 3, 1, 3, 2];
    let mut pictures = Vec::new();
    for (i, &t) in types.iter().enumerate() {
        let dts = FIRST_DTS + 3600 * (i as u64 + 1);
        let pts = if t == 3 { dts } else { dts + 3600 };
        let au = mpeg2_picture(t, i == 0, 300 + i * 17, i);
        mux.random_access_next = i == 6;
        mux.pes(VIDEO_PID, Some(pts), Some(dts), &au, false);
        pictures.push(au);
        if i % 2 == 0 {
            let frames = [mp3_frame(i as u8), mp3_frame(i as u8 + 1)].concat();
            let k = i as u64 / 2;
            mux.pes(
                AUDIO_PID,
                Some(FIRST_DTS + 3600 + k * 2 * 2351),
                None,
                &frames,
                true,
            );
        }
    }
    let (events, stats) = demux(&mux.ts);
    let t = tracks(&events);
    assert_eq!(t.len(), 2, "{t:?}");
    let (tv, ta) = match t[0].kind() {
        TrackKind::Video => (t[0], t[1]),
        TrackKind::Audio => (t[1], t[0]),
    };
    let CodecConfig::Decodable(video) = &tv.config else {
        panic!("{tv:?}");
    };
    assert_eq!(video.codec, media::DecodableCodec::Mpeg2Video);
    assert_eq!(
        video.video,
        Some(media::VideoParams {
            width: 720,
            height: 405,
            frame_rate: Some((25, 1)),
        })
    );
    assert_eq!(&video.extradata[..], &MPEG2_SEQUENCE[..]);
    let CodecConfig::Decodable(audio) = &ta.config else {
        panic!("{ta:?}");
    };
    assert_eq!(
        (audio.codec, audio.audio, ta.timescale),
        (
            media::DecodableCodec::Mp3,
            Some(media::AudioFormat {
                sample_rate_hz: 44_100,
                channels: 2
            }),
            44_100
        )
    );
    // Both tracks come before any frame (the start-up hold), video frames are the pictures as sent.
    assert!(matches!(events[2], Ev::Frame(_)));
    let v = frames(&events, TrackKind::Video);
    assert_eq!(v.len(), 9);
    assert_eq!(
        v.iter().map(|f| f.is_keyframe).collect::<Vec<_>>(),
        [true, false, false, false, false, false, true, false, false]
    );
    assert_eq!(v[1].data[..], pictures[1][..]);
    assert_eq!(
        (v[0].dts, v[0].pts),
        (FIRST_DTS as i64 + 3600, FIRST_DTS as i64 + 7200)
    );
    let a = frames(&events, TrackKind::Audio);
    assert_eq!(a.len(), 10);
    assert_eq!(a[0].dts, rescale(FIRST_DTS as i64 + 3600, 90_000, 44_100));
    assert!(a.windows(2).all(|w| w[1].dts - w[0].dts == 1152));
    assert_eq!(a[0].data[..], mp3_frame(0)[..]);
    assert_eq!(
        (
            stats.frames_before_config,
            stats.audio_sync_errors,
            stats.audio_resyncs
        ),
        (1, 0, 0)
    );
}

#[test]
fn ts_ac3_by_descriptor_and_eac3_with_dependent_substreams() {
    // AC-3 in DVB: stream_type 0x06 with an AC-3 descriptor (0x6A, length 1, no optional fields).
    let mut syncframe = vec![0x0B, 0x77, 0x46, 0xDF, 0x1E, 0x40, 0xEB, 0xF8];
    syncframe.resize(1792, 0x00);
    let mut mux = Mux::default();
    mux.pat(0);
    mux.pmt_with(
        0,
        &[(STREAM_TYPE_PRIVATE_DATA, AUDIO_PID, &[0x6A, 0x01, 0x00])],
    );
    for k in 0..2u64 {
        // Three syncframes per PES; the second PES cuts the third frame in two (carried over).
        let es = [&syncframe[..], &syncframe, &syncframe].concat();
        let (a, b) = es.split_at(3000);
        mux.pes(AUDIO_PID, Some(90_000 + k * 3 * 2880), None, a, true);
        mux.pes(AUDIO_PID, None, None, b, true);
    }
    let (events, stats) = demux(&mux.ts);
    let t = tracks(&events);
    assert_eq!(
        (t.len(), t[0].config.name(), t[0].timescale),
        (1, "ac-3", 48_000)
    );
    let a = frames(&events, TrackKind::Audio);
    assert_eq!(a.len(), 6);
    assert!(a.windows(2).all(|w| w[1].dts - w[0].dts == 1536));
    assert!(a.iter().all(|f| f.data.len() == 1792));
    assert_eq!((stats.audio_sync_errors, stats.pes_dropped), (0, 0));

    // E-AC-3 in ATSC (0x87): an independent substream frame followed by a dependent one (strmtyp 1)
    // makes one access unit.
    let mut independent = vec![0x0B, 0x77, 0x03, 0x7F, 0x3F, 0x87, 0xC0];
    independent.resize(1792, 0x00);
    let mut dependent = vec![0x0B, 0x77, 0x40, 0x3F, 0xC4, 0x80, 0x00];
    dependent.resize(128, 0x00);
    let unit = [&independent[..], &dependent].concat();
    let mut mux = Mux::default();
    mux.pat(0);
    mux.pmt(0, &[(STREAM_TYPE_EAC3, AUDIO_PID)]);
    for k in 0..3u64 {
        mux.pes(
            AUDIO_PID,
            Some(90_000 + k * 2 * 2880),
            None,
            &[&unit[..], &unit].concat(),
            true,
        );
    }
    let (events, stats) = demux(&mux.ts);
    let t = tracks(&events);
    assert_eq!((t[0].config.name(), t[0].timescale), ("e-ac-3", 48_000));
    let a = frames(&events, TrackKind::Audio);
    assert_eq!(a.len(), 6);
    assert!(a.iter().all(|f| f.data[..] == unit[..]));
    assert!(a.windows(2).all(|w| w[1].dts - w[0].dts == 1536));
    assert_eq!(stats.audio_sync_errors, 0);
}

#[test]
fn ts_opus_access_units_lose_their_control_headers() {
    // stream_type 0x06, registration_descriptor "Opus", DVB extension descriptor 0x7F with
    // descriptor_tag_extension 0x80 and channel_config_code 2.
    let descriptors = [0x05, 0x04, b'O', b'p', b'u', b's', 0x7F, 0x02, 0x80, 0x02];
    let packet = |k: u8| -> Vec<u8> { [&[0xFC][..], &[k + 1; 99]].concat() }; // one 20 ms CELT frame
    let unit = |k: u8| -> Vec<u8> { [&[0x7F, 0xE0, 100][..], &packet(k)].concat() };
    let mut mux = Mux::default();
    mux.pat(0);
    mux.pmt_with(0, &[(STREAM_TYPE_PRIVATE_DATA, AUDIO_PID, &descriptors)]);
    for k in 0..3u8 {
        let es = [unit(2 * k), unit(2 * k + 1)].concat();
        mux.pes(
            AUDIO_PID,
            Some(90_000 + u64::from(k) * 3600),
            None,
            &es,
            true,
        );
    }
    let (events, _) = demux(&mux.ts);
    let t = tracks(&events);
    let CodecConfig::Decodable(opus) = &t[0].config else {
        panic!("{:?}", t[0]);
    };
    assert_eq!(
        (opus.codec, t[0].timescale),
        (media::DecodableCodec::Opus, 48_000)
    );
    assert_eq!(opus.extradata, media::decodable::opus_head(2).unwrap());
    let a = frames(&events, TrackKind::Audio);
    assert_eq!(a.len(), 6);
    assert_eq!(a[3].data[..], packet(3)[..]);
    assert!(a.windows(2).all(|w| w[1].dts - w[0].dts == 960));
}

#[test]
fn ts_unusable_video_and_audio_codecs_are_reported_once() {
    // MPEG-4 Visual video (0x10) with AAC audio: the video is reported, the AAC track used; the start-up
    // hold ends once the audio configures (the video never will).
    let mut mux = Mux::default();
    mux.pat(0);
    mux.pmt(0, &[(0x10, VIDEO_PID), (STREAM_TYPE_AAC_ADTS, AUDIO_PID)]);
    mux.pmt(0, &[(0x10, VIDEO_PID), (STREAM_TYPE_AAC_ADTS, AUDIO_PID)]);
    mux.pes(
        VIDEO_PID,
        Some(FIRST_DTS),
        None,
        &[0, 0, 1, 0xB6, 0x10],
        false,
    );
    mux.pes(
        AUDIO_PID,
        Some(FIRST_DTS),
        None,
        &adts(&[1, 2, 3], false),
        true,
    );
    let (events, _) = demux(&mux.ts);
    let unusable: Vec<&crate::UnusableTrack> = events
        .iter()
        .filter_map(|e| match e {
            Ev::Unusable(u) => Some(u),
            _ => None,
        })
        .collect();
    assert_eq!(unusable.len(), 1);
    assert_eq!(
        (unusable[0].kind, unusable[0].codec.as_str()),
        (TrackKind::Video, "mpeg-4 visual (stream_type 0x10)")
    );
    assert_eq!(tracks(&events)[0].config.name(), "aac");

    // DTS alone (0x06 with a DTS descriptor): reported even though nothing else configures.
    let mut mux = Mux::default();
    mux.pat(0);
    mux.pmt_with(0, &[(STREAM_TYPE_PRIVATE_DATA, AUDIO_PID, &[0x7B, 0x00])]);
    let mut demuxer = TsDemuxer::default();
    let mut out = Vec::new();
    demuxer.push(&mux.ts, &mut out).unwrap();
    demuxer.finish(&mut out);
    assert!(matches!(&out[..], [IngestEvent::Unusable(u)] if u.codec == "dts (stream_type 0x06)"));
}

#[test]
fn ts_scte35_sections_are_read_and_timed_on_the_frames_clock() {
    const SCTE35_PID: u16 = 0x1F4;
    let mut mux = Mux::default();
    mux.pat(0);
    mux.pmt(
        0,
        &[
            (STREAM_TYPE_AAC_ADTS, AUDIO_PID),
            (crate::scte35::STREAM_TYPE, SCTE35_PID),
        ],
    );
    for k in 0..3u64 {
        mux.pes(
            AUDIO_PID,
            Some(FIRST_DTS + k * AAC_FRAME_TICKS),
            None,
            &adts(&aac_payload(k as usize), false),
            true,
        );
    }
    // An out 2 s ahead, with a pts_adjustment: its time lands on the frames' clock.
    let out =
        crate::scte35::write_splice_insert(42, true, Some(FIRST_DTS + 180_000), Some(2_700_000));
    mux.section(SCTE35_PID, &out);
    // A damaged one is counted, not passed on.
    let mut bad = crate::scte35::write_splice_insert(43, false, Some(FIRST_DTS), None).to_vec();
    bad[12] ^= 0x10;
    mux.section(SCTE35_PID, &bad);
    mux.pes(
        AUDIO_PID,
        Some(FIRST_DTS + 3 * AAC_FRAME_TICKS),
        None,
        &adts(&aac_payload(3), false),
        true,
    );
    let (events, stats) = demux(&mux.ts);
    let splices: Vec<&crate::SpliceEvent> = events
        .iter()
        .filter_map(|e| match e {
            Ev::Splice(s) => Some(s),
            _ => None,
        })
        .collect();
    assert_eq!(splices.len(), 1, "{events:?}");
    assert_eq!(splices[0].pts_90khz, Some((FIRST_DTS + 180_000) as i64));
    assert_eq!(splices[0].info.section, out);
    assert_eq!(
        splices[0].info.direction(),
        crate::scte35::SpliceDirection::Out
    );
    assert_eq!((stats.splice_sections, stats.splice_errors), (1, 1));
    assert_eq!(frames(&events, TrackKind::Audio).len(), 4);
}
