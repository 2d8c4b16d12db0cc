//! Encoder selection: NVENC when it actually opens, libx264 / libx265 otherwise.

use std::sync::OnceLock;
use std::time::Instant;

use ffmpeg_next::{Rational, codec, format};

use crate::{EncoderChoice, TranscodeError, VideoCodec};

/// FFmpeg encoder names chosen for each codec, shared by every stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncoderProbe {
    /// Encoder for H.264 rungs: `h264_nvenc` or `libx264`.
    pub h264: String,
    /// Encoder for HEVC rungs: `hevc_nvenc` or `libx265`.
    pub hevc: String,
}

impl EncoderProbe {
    /// The software encoders, libx264 and libx265, without checking that they exist.
    pub fn software() -> Self {
        Self {
            h264: SOFTWARE_H264.to_string(),
            hevc: SOFTWARE_HEVC.to_string(),
        }
    }

    /// The encoder name for `codec`.
    pub fn encoder_for(&self, codec: VideoCodec) -> &str {
        match codec {
            VideoCodec::H264 => &self.h264,
            VideoCodec::Hevc => &self.hevc,
        }
    }
}

const SOFTWARE_H264: &str = "libx264";
const SOFTWARE_HEVC: &str = "libx265";
const NVENC_H264: &str = "h264_nvenc";
const NVENC_HEVC: &str = "hevc_nvenc";

/// Width and height of the probe's encoder context in pixels: small, but above NVENC's minimum frame
/// size for both H.264 and HEVC.
const PROBE_SIZE_PX: u32 = 256;

/// Choose the encoders.
///
/// - `Software`: libx264 / libx265 (errors only if this FFmpeg lacks them).
/// - `Nvenc`: opens `h264_nvenc` and `hevc_nvenc` once (a 256×256 context); errors with
///   [`TranscodeError::EncoderUnavailable`] and FFmpeg's reason if either fails.
/// - `Auto`: opens each NVENC encoder once; a codec whose NVENC encoder fails falls back to its software
///   encoder. The result and the reason NVENC failed are logged once per process (the answer is
///   cached: later `Auto` calls return it without probing again). On a machine without libcuda
///   (FFmpeg finds `h264_nvenc` but opening fails with "Operation not permitted" in about 1 ms) this
///   returns libx264 / libx265.
pub fn probe_encoders(choice: EncoderChoice) -> Result<EncoderProbe, TranscodeError> {
    crate::init_ffmpeg();
    match choice {
        EncoderChoice::Software => {
            for name in [SOFTWARE_H264, SOFTWARE_HEVC] {
                if codec::encoder::find_by_name(name).is_none() {
                    return Err(unavailable(name, "not compiled into this FFmpeg"));
                }
            }
            Ok(EncoderProbe::software())
        }
        EncoderChoice::Nvenc => {
            try_open(NVENC_H264).map_err(|reason| unavailable(NVENC_H264, &reason))?;
            try_open(NVENC_HEVC).map_err(|reason| unavailable(NVENC_HEVC, &reason))?;
            tracing::info!(
                h264 = NVENC_H264,
                hevc = NVENC_HEVC,
                "video encoders: NVENC"
            );
            Ok(EncoderProbe {
                h264: NVENC_H264.to_string(),
                hevc: NVENC_HEVC.to_string(),
            })
        }
        EncoderChoice::Auto => {
            static AUTO: OnceLock<EncoderProbe> = OnceLock::new();
            Ok(AUTO.get_or_init(probe_auto).clone())
        }
    }
}

fn probe_auto() -> EncoderProbe {
    let started = Instant::now();
    let pick = |nvenc: &str, software: &str| match try_open(nvenc) {
        Ok(()) => (nvenc.to_string(), None),
        Err(reason) => (software.to_string(), Some(reason)),
    };
    let (h264, h264_failure) = pick(NVENC_H264, SOFTWARE_H264);
    let (hevc, hevc_failure) = pick(NVENC_HEVC, SOFTWARE_HEVC);
    let probe_ms = started.elapsed().as_secs_f64() * 1000.0;
    match (&h264_failure, &hevc_failure) {
        (None, None) => tracing::info!(h264, hevc, probe_ms, "video encoders: NVENC"),
        _ => tracing::warn!(
            h264,
            hevc,
            probe_ms,
            h264_nvenc_failure = h264_failure.as_deref().unwrap_or("-"),
            hevc_nvenc_failure = hevc_failure.as_deref().unwrap_or("-"),
            "NVENC unavailable, using software encoders where it failed"
        ),
    }
    EncoderProbe { h264, hevc }
}

fn unavailable(encoder: &str, reason: &str) -> TranscodeError {
    TranscodeError::EncoderUnavailable {
        encoder: encoder.to_string(),
        reason: reason.to_string(),
    }
}

/// Open `name` once on a tiny context; the error is FFmpeg's reason.
fn try_open(name: &str) -> Result<(), String> {
    let Some(found) = codec::encoder::find_by_name(name) else {
        return Err("not compiled into this FFmpeg".to_string());
    };
    let mut encoder = codec::Context::new_with_codec(found)
        .encoder()
        .video()
        .map_err(|e| format!("cannot create a context: {e}"))?;
    encoder.set_width(PROBE_SIZE_PX);
    encoder.set_height(PROBE_SIZE_PX);
    encoder.set_format(format::Pixel::YUV420P);
    encoder.set_time_base(Rational::new(1, 30));
    encoder.set_frame_rate(Some(Rational::new(30, 1)));
    encoder.set_bit_rate(500_000);
    match encoder.open_as(found) {
        Ok(_opened) => Ok(()),
        Err(e) => Err(format!("cannot open: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn software_probe_names_libx264_and_libx265() {
        let p = probe_encoders(EncoderChoice::Software).unwrap();
        assert_eq!(p, EncoderProbe::software());
        assert_eq!(p.encoder_for(VideoCodec::Hevc), "libx265");
    }
}
