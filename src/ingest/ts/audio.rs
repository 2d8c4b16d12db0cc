//! AAC in ADTS (ISO/IEC 14496-3 §1.A.2) carried as stream_type 0x0F: raw AAC frames and their
//! AudioSpecificConfig, with sample-exact timestamps.

use bytes::Bytes;
use media::aac::AacConfig;
use media::time::rescale;
use media::{CodecConfig, Frame, MediaError, MediaTime, TrackInfo, TrackKind};

use super::{Ctx, MAX_ADTS_FRAME_BYTES, Timing, once};
use crate::ingest::IngestEvent;

/// AAC ADTS elementary stream state.
#[derive(Debug, Default)]
pub(super) struct AudioEs {
    config: Option<AacConfig>,
    /// DTS of the next frame, in samples (sample-rate ticks).
    next_dts: Option<i64>,
    /// The start of an ADTS frame cut off at the end of the previous PES (shorter than one frame).
    pub(super) carry: Vec<u8>,
}

impl AudioEs {
    /// One complete, intact PES of ADTS frames.
    pub(super) fn pes(&mut self, payload: &[u8], timing: Option<Timing>, ctx: &mut Ctx<'_>) {
        let carry_bytes = self.carry.len();
        let mut joined = std::mem::take(&mut self.carry);
        let data: &[u8] = if carry_bytes == 0 {
            payload
        } else {
            joined.extend_from_slice(payload);
            &joined
        };
        // The PTS belongs to the first frame that starts in this PES (§2.4.3.7).
        let mut anchor_90khz = timing.map(|t| t.pts_90khz);
        let mut is_resyncing = false;
        let mut pos = 0;
        let mut tail_start = data.len();
        if carry_bytes > 0 && !is_carried_frame_whole(data) {
            // The carried bytes were no frame start (or the PES that continued it was lost).
            pos = carry_bytes;
            ctx.stats.adts_errors += 1;
        }
        while pos < data.len() {
            let rest = &data[pos..];
            let header = if is_adts_syncword(rest) {
                AacConfig::from_adts_header(rest)
            } else {
                Err(MediaError::Invalid {
                    what: "ADTS header",
                    field: "syncword",
                    value: 0,
                })
            };
            match header {
                Ok((config, header_len, frame_len)) if frame_len <= rest.len() => {
                    is_resyncing = false;
                    let anchor = if pos >= carry_bytes {
                        anchor_90khz.take()
                    } else {
                        None
                    };
                    self.frame(config, &rest[header_len..frame_len], anchor, ctx);
                    pos += frame_len;
                }
                // A frame (or header) continued in the next PES.
                Ok(_) | Err(MediaError::Truncated { .. }) => {
                    tail_start = pos;
                    break;
                }
                Err(error) => {
                    if !is_resyncing {
                        is_resyncing = true;
                        ctx.stats.adts_errors += 1;
                        if once(&mut ctx.logged.adts_error) {
                            tracing::warn!(%error, "adts frame skipped (further ones counted)");
                        }
                    }
                    pos += 1 + rest[1..]
                        .iter()
                        .position(|&b| b == 0xFF)
                        .unwrap_or(rest.len() - 1);
                }
            }
        }
        let tail_bytes = data.len() - tail_start;
        if carry_bytes == 0 {
            joined.clear();
            if tail_bytes < MAX_ADTS_FRAME_BYTES {
                joined.extend_from_slice(&payload[tail_start..]);
            }
        } else if tail_bytes < MAX_ADTS_FRAME_BYTES {
            joined.drain(..tail_start);
        } else {
            joined.clear();
        }
        self.carry = joined;
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

/// Whether the ADTS frame at the start of `data` (carried over from the previous PES) is followed by the
/// end of `data` or another syncword, or still continues past `data`.
fn is_carried_frame_whole(data: &[u8]) -> bool {
    match AacConfig::from_adts_header(data) {
        Ok((_, _, frame_len)) => data
            .get(frame_len..)
            .is_none_or(|next| next.is_empty() || is_adts_syncword(next)),
        Err(MediaError::Truncated { .. }) => true,
        Err(_) => false,
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
