//! Video elementary streams: H.264 / HEVC (ISO/IEC 13818-1 §2.14, §2.17; Annex B access units to
//! length-prefixed samples, in-band parameter sets to the track's configuration record) and MPEG-1 /
//! MPEG-2 video (stream_type 0x01 / 0x02, ISO/IEC 13818-2: each PES is one picture, passed on with its
//! start codes; the sequence header configures the track).

use bytes::{BufMut, Bytes, BytesMut};
use media::annex_b;
use media::avc::AvcConfig;
use media::hevc::HevcConfig;
use media::mpeg_video::MpegVideoUnit;
use media::{
    CodecConfig, DecodableCodec, DecodableConfig, Frame, MediaError, TrackInfo, TrackKind,
    VideoParams,
};

use super::{Ctx, Timing, once};
use crate::IngestEvent;
use crate::flv::VideoCodec;

/// A video access unit waiting for possible continuation PES packets.
#[derive(Debug)]
pub(super) struct HeldAu {
    timing: Timing,
    /// Its first packet had the adaptation field's random_access_indicator set.
    is_random_access: bool,
    pub(super) data: Vec<u8>,
}

/// The codec of a video elementary stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum EsVideoCodec {
    /// H.264 or HEVC: NAL units, packaged as they arrive or transcoded.
    Nal(VideoCodec),
    /// MPEG-1 or MPEG-2 video, decoded downstream.
    Mpeg(DecodableCodec),
}

/// Video elementary stream state.
#[derive(Debug)]
pub(super) struct VideoEs {
    codec: EsVideoCodec,
    /// MPEG-1/2: the picture parameters of the track announced last.
    mpeg_params: Option<VideoParams>,
    /// Parameter sets in use (NAL units with header, no start code).
    vps: Vec<Bytes>,
    sps: Vec<Bytes>,
    pps: Vec<Bytes>,
    /// The parameter sets built a configuration (a Track was sent).
    has_config: bool,
    /// A keyframe was emitted since the configuration was established, and no data was lost since.
    has_keyframe: bool,
    pub(super) held: Option<HeldAu>,
}

/// What a NAL unit is to the demuxer.
enum NalClass {
    /// Access unit delimiter: dropped.
    Aud,
    Vps,
    Sps,
    Pps,
    /// Kept in the sample.
    Sample {
        is_vcl: bool,
        is_keyframe: bool,
    },
}

/// Parameter sets found in one access unit.
#[derive(Default)]
struct AuParameterSets<'a> {
    vps: Vec<&'a [u8]>,
    sps: Vec<&'a [u8]>,
    pps: Vec<&'a [u8]>,
}

impl AuParameterSets<'_> {
    fn is_empty(&self) -> bool {
        self.vps.is_empty() && self.sps.is_empty() && self.pps.is_empty()
    }
}

impl VideoEs {
    pub(super) fn new(codec: EsVideoCodec) -> Self {
        Self {
            codec,
            mpeg_params: None,
            vps: Vec::new(),
            sps: Vec::new(),
            pps: Vec::new(),
            has_config: false,
            has_keyframe: false,
            held: None,
        }
    }

    /// One complete, intact PES. `is_bounded`: it had a non-zero PES_packet_length;
    /// `is_random_access`: its first packet's adaptation field had random_access_indicator set.
    pub(super) fn pes(
        &mut self,
        pid: u16,
        payload: &[u8],
        timing: Option<Timing>,
        is_bounded: bool,
        is_random_access: bool,
        ctx: &mut Ctx<'_>,
    ) {
        let Some(timing) = timing else {
            // A continuation of the held access unit, if there is one.
            match &mut self.held {
                Some(held) if held.data.len() + payload.len() <= ctx.max_pes_bytes => {
                    held.data.extend_from_slice(payload)
                }
                Some(_) => {
                    self.held = None;
                    ctx.stats.pes_oversize += 1;
                    ctx.stats.pes_dropped += 1;
                }
                None => ctx.drop_pes(pid, "video pes without pts"),
            }
            return;
        };
        self.flush_held(ctx);
        if is_bounded {
            self.held = Some(HeldAu {
                timing,
                is_random_access,
                data: payload.to_vec(),
            });
        } else {
            self.access_unit(payload, timing, is_random_access, ctx);
        }
    }

    /// Packets of this stream were lost: drop pictures until the next keyframe, since the ones in
    /// between may reference what was lost. (A decoder fed a picture with a missing reference may fail
    /// outright — Chromium's does, fatally — where a short freeze is all a viewer should see.)
    pub(super) fn await_keyframe(&mut self, ctx: &mut Ctx<'_>) {
        if self.has_keyframe {
            self.has_keyframe = false;
            ctx.stats.keyframe_waits += 1;
        }
    }

    pub(super) fn flush_held(&mut self, ctx: &mut Ctx<'_>) {
        if let Some(held) = self.held.take() {
            self.access_unit(&held.data, held.timing, held.is_random_access, ctx);
        }
    }

    fn classify(&self, codec: VideoCodec, nal: &[u8]) -> NalClass {
        match codec {
            VideoCodec::Avc => {
                // forbidden_zero_bit u1, nal_ref_idc u2, nal_unit_type u5 (ITU-T H.264 §7.3.1).
                let nal_type = nal.first().map_or(0, |h| h & 0x1F);
                match nal_type {
                    9 => NalClass::Aud,
                    media::avc::NAL_TYPE_SPS => NalClass::Sps,
                    media::avc::NAL_TYPE_PPS => NalClass::Pps,
                    t => NalClass::Sample {
                        is_vcl: (1..=5).contains(&t),
                        is_keyframe: t == 5,
                    },
                }
            }
            VideoCodec::Hevc => match media::hevc::nal_unit_type(nal) {
                // A NAL unit shorter than its two-byte header is dropped like an AUD.
                None | Some(35) => NalClass::Aud,
                Some(media::hevc::NAL_TYPE_VPS) => NalClass::Vps,
                Some(media::hevc::NAL_TYPE_SPS) => NalClass::Sps,
                Some(media::hevc::NAL_TYPE_PPS) => NalClass::Pps,
                Some(t) => NalClass::Sample {
                    is_vcl: t <= 31,
                    is_keyframe: (16..=23).contains(&t),
                },
            },
        }
    }

    /// One access unit at `timing`.
    fn access_unit(
        &mut self,
        data: &[u8],
        timing: Timing,
        is_random_access: bool,
        ctx: &mut Ctx<'_>,
    ) {
        match self.codec {
            EsVideoCodec::Nal(codec) => self.nal_access_unit(codec, data, timing, ctx),
            EsVideoCodec::Mpeg(codec) => {
                self.mpeg_access_unit(codec, data, timing, is_random_access, ctx)
            }
        }
    }

    /// One MPEG-1/2 picture (ISO/IEC 13818-2 §6.2): a sequence header configures the track (a Track when
    /// the picture size or frame rate changes); an I picture (picture_coding_type 1) is a keyframe when
    /// a sequence header precedes it in the same PES or the PES starts a random access point. Pictures
    /// before the first sequence header and keyframe are dropped and counted.
    fn mpeg_access_unit(
        &mut self,
        codec: DecodableCodec,
        data: &[u8],
        timing: Timing,
        is_random_access: bool,
        ctx: &mut Ctx<'_>,
    ) {
        let unit = match MpegVideoUnit::parse(data) {
            Ok(unit) => unit,
            Err(error) => {
                ctx.stats.config_errors += 1;
                if once(&mut ctx.logged.config_error) {
                    tracing::warn!(%error, codec = codec.name(), "mpeg-ts video sequence header rejected; dropping pictures until a usable one arrives");
                }
                return;
            }
        };
        if let (Some(header), Some(params)) = (&unit.sequence_header, unit.params)
            && self.mpeg_params != Some(params)
        {
            let track = TrackInfo::new(CodecConfig::Decodable(DecodableConfig::video(
                codec,
                Bytes::copy_from_slice(header),
                Some(params),
            )));
            tracing::debug!(
                codec = codec.name(),
                ?params,
                "mpeg-ts video sequence header"
            );
            self.mpeg_params = Some(params);
            self.has_config = true;
            ctx.out.push(IngestEvent::Track(track));
        }
        let Some(picture_coding_type) = unit.picture_coding_type else {
            return; // headers only (e.g. a sequence end code): no picture
        };
        let is_keyframe =
            picture_coding_type == 1 && (unit.sequence_header.is_some() || is_random_access);
        if !self.has_config || !(self.has_keyframe || is_keyframe) {
            ctx.stats.frames_before_config += 1;
            return;
        }
        self.has_keyframe = true;
        ctx.frame(Frame {
            track: TrackKind::Video,
            dts: timing.dts_90khz,
            pts: timing.pts_90khz,
            is_keyframe,
            data: Bytes::copy_from_slice(data),
        });
    }

    /// One H.264 / HEVC access unit in Annex B framing at `timing`: update the parameter sets, emit the
    /// frame.
    fn nal_access_unit(
        &mut self,
        codec: VideoCodec,
        data: &[u8],
        timing: Timing,
        ctx: &mut Ctx<'_>,
    ) {
        let mut nals: Vec<&[u8]> = Vec::with_capacity(16);
        let mut sets = AuParameterSets::default();
        let (mut sample_bytes, mut has_vcl, mut is_keyframe) = (0usize, false, false);
        for nal in annex_b::nal_units(data) {
            let list = match self.classify(codec, nal) {
                NalClass::Aud => continue,
                NalClass::Vps => &mut sets.vps,
                NalClass::Sps => &mut sets.sps,
                NalClass::Pps => &mut sets.pps,
                NalClass::Sample {
                    is_vcl,
                    is_keyframe: k,
                } => {
                    if u32::try_from(nal.len()).is_err() {
                        continue; // cannot be length-prefixed (only with max_pes_bytes ≥ 4 GiB)
                    }
                    has_vcl |= is_vcl;
                    is_keyframe |= k;
                    sample_bytes += 4 + nal.len();
                    nals.push(nal);
                    continue;
                }
            };
            if !list.contains(&nal) {
                list.push(nal);
            }
        }
        if !sets.is_empty() {
            self.parameter_sets(codec, &sets, ctx);
        }
        if !has_vcl {
            return; // parameter sets or SEI only: no picture
        }
        if !self.has_config || !(self.has_keyframe || is_keyframe) {
            ctx.stats.frames_before_config += 1;
            return;
        }
        self.has_keyframe = true;
        let mut sample = BytesMut::with_capacity(sample_bytes);
        for nal in nals {
            sample.put_u32(nal.len() as u32); // checked above
            sample.put_slice(nal);
        }
        ctx.frame(Frame {
            track: TrackKind::Video,
            dts: timing.dts_90khz,
            pts: timing.pts_90khz,
            is_keyframe,
            data: sample.freeze(),
        });
    }

    /// Parameter sets seen in an access unit: each type present replaces the list in use; if anything
    /// changed, build the configuration record and send a Track.
    fn parameter_sets(&mut self, codec: VideoCodec, sets: &AuParameterSets<'_>, ctx: &mut Ctx<'_>) {
        fn replace(current: &mut Vec<Bytes>, new: &[&[u8]]) -> bool {
            let is_same = new.is_empty()
                || (current.len() == new.len()
                    && current.iter().zip(new).all(|(a, b)| a.as_ref() == *b));
            if !is_same {
                *current = new.iter().map(|n| Bytes::copy_from_slice(n)).collect();
            }
            !is_same
        }
        let changed_vps = replace(&mut self.vps, &sets.vps);
        let changed_sps = replace(&mut self.sps, &sets.sps);
        let changed_pps = replace(&mut self.pps, &sets.pps);
        if !(changed_vps || changed_sps || changed_pps) {
            return;
        }
        let config = match codec {
            VideoCodec::Avc => {
                AvcConfig::from_parameter_sets(&self.sps, &self.pps).map(CodecConfig::Avc)
            }
            VideoCodec::Hevc => HevcConfig::from_parameter_sets(&self.vps, &self.sps, &self.pps)
                .map(CodecConfig::Hevc),
        };
        match config {
            Ok(config) => {
                let track = TrackInfo::new(config);
                tracing::debug!(codec = %track.config.rfc6381(), "mpeg-ts video parameter sets");
                self.has_config = true;
                ctx.out.push(IngestEvent::Track(track));
            }
            // Not all types seen yet (joining mid-stream): wait for them.
            Err(MediaError::Missing { .. }) if !self.has_config => {}
            Err(error) => {
                ctx.stats.config_errors += 1;
                if once(&mut ctx.logged.config_error) {
                    tracing::warn!(%error, ?codec, "mpeg-ts video parameter sets rejected; dropping frames until usable ones arrive");
                }
                self.has_config = false;
                self.has_keyframe = false;
            }
        }
    }
}
