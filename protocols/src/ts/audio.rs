//! AAC in ADTS (ISO/IEC 14496-3 §1.A.2) carried as stream_type 0x0F: raw AAC frames and their
//! AudioSpecificConfig, with sample-exact timestamps.

use bytes::Bytes;
use media::aac::AacConfig;
use media::time::rescale;
use media::{CodecConfig, Frame, MediaError, MediaTime, TrackInfo, TrackKind};

use super::frame_split::{AudioFraming, FrameSplitter};
use super::{Ctx, MAX_ADTS_FRAME_BYTES, Timing, once};
use crate::IngestEvent;

/// AAC ADTS elementary stream state.
#[derive(Debug, Default)]
pub(super) struct AudioEs {
    config: Option<AacConfig>,
    /// DTS of the next frame, in samples (sample-rate ticks).
    next_dts: Option<i64>,
    /// ADTS frames across PES boundaries.
    pub(super) frames: FrameSplitter,
}

impl AudioEs {
    /// One complete, intact PES of ADTS frames.
    pub(super) fn pes(&mut self, payload: &[u8], timing: Option<Timing>, ctx: &mut Ctx<'_>) {
        let mut frames = std::mem::take(&mut self.frames);
        let pts_90khz = timing.map(|t| t.pts_90khz);
        let errors = frames.split(
            &Adts,
            MAX_ADTS_FRAME_BYTES,
            payload,
            pts_90khz,
            |frame, anchor| {
                if let Ok((config, header_len, _)) = AacConfig::from_adts_header(frame) {
                    self.frame(config, &frame[header_len..], anchor, ctx);
                }
            },
        );
        self.frames = frames;
        ctx.stats.adts_errors += errors.count;
        if let Some(error) = errors.first
            && once(&mut ctx.logged.adts_error)
        {
            tracing::warn!(%error, "adts frame skipped (further ones counted)");
        }
    }

    /// One raw AAC frame; `anchor_90khz` is the PES PTS if this is the first frame starting in it.
    fn frame(
        &mut self,
        config: AacConfig,
        raw: &[u8],
        anchor_90khz: Option<i64>,
        ctx: &mut Ctx<'_>,
    ) {
        if self.config.as_ref().is_none_or(|c| c.asc != config.asc) {
            tracing::debug!(codec = %config.rfc6381(), sample_rate_hz = config.sample_rate, "mpeg-ts audio config");
            self.next_dts = None;
            ctx.out
                .push(IngestEvent::Track(TrackInfo::new(CodecConfig::Aac(
                    config.clone(),
                ))));
            self.config = Some(config);
        }
        let Some(config) = self.config.as_ref().filter(|c| c.sample_rate > 0) else {
            return; // ADTS sampling frequencies are never 0; defensive
        };
        let spf = i64::from(config.samples_per_frame);
        let Some(dts) = next_audio_dts(self.next_dts, anchor_90khz, (config.sample_rate, spf), ctx)
        else {
            return;
        };
        self.next_dts = Some(dts + spf);
        ctx.frame(Frame {
            track: TrackKind::Audio,
            dts,
            pts: dts,
            is_keyframe: true,
            data: Bytes::copy_from_slice(raw),
        });
    }
}

/// ADTS framing (ISO/IEC 14496-3 §1.A.2.2).
struct Adts;

impl AudioFraming for Adts {
    fn is_sync(&self, data: &[u8]) -> bool {
        is_adts_syncword(data)
    }

    fn frame_len(&self, data: &[u8]) -> Result<usize, MediaError> {
        AacConfig::from_adts_header(data).map(|(_, _, frame_len)| frame_len)
    }
}

/// ADTS syncword 0xFFF and layer 0 (ISO/IEC 14496-3 §1.A.2.2.1); a lone final 0xFF may be the start of
/// one.
fn is_adts_syncword(b: &[u8]) -> bool {
    match b {
        [0xFF] => true,
        [0xFF, b1, ..] => b1 & 0xF6 == 0xF0,
        _ => false,
    }
}

/// The decode time of the next audio frame, in samples: where the previous frame ends (`next_dts`),
/// unless the PES timestamp it was cut from (`anchor_90khz`, 90 kHz) says otherwise by more than two
/// frames (a resync, counted); `None` (counted) before either is known. `(rate, samples_per_frame)`
/// in Hz and samples.
pub(super) fn next_audio_dts(
    next_dts: Option<i64>,
    anchor_90khz: Option<i64>,
    (rate, samples_per_frame): (u32, i64),
    ctx: &mut Ctx<'_>,
) -> Option<i64> {
    let expected = anchor_90khz.map(|pts| rescale(pts, MediaTime::HZ_90K, rate));
    match (next_dts, expected) {
        (Some(next), Some(expected)) if (next - expected).abs() <= 2 * samples_per_frame => {
            Some(next)
        }
        (Some(next), Some(expected)) => {
            ctx.stats.audio_resyncs += 1;
            tracing::debug!(drift_samples = next - expected, "audio timestamp resync");
            Some(expected)
        }
        (Some(next), None) => Some(next),
        (None, Some(expected)) => Some(expected),
        (None, None) => {
            ctx.stats.frames_before_config += 1;
            None
        }
    }
}
