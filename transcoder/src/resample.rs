//! Decoded audio to one output format (sample format, channel layout, rate) with FFmpeg's
//! swresample, the context rebuilt when the decoded frames' format, layout or rate change (a new
//! source track, a codec that switches mid-stream). Shared by the AAC worker and the Opus encoder.

use ffmpeg_next::{ChannelLayout, format, frame, software::resampling};

use crate::ffi;

/// A resampler to one output format.
pub(crate) struct Resampler {
    format: format::Sample,
    layout: ChannelLayout,
    rate: u32,
    /// The context, and the input (format, layout bits, rate) it was built for.
    context: Option<((format::Sample, u64, u32), resampling::Context)>,
}

impl Resampler {
    /// A resampler to `format`, `layout` and `rate` (Hz).
    pub(crate) fn new(format: format::Sample, layout: ChannelLayout, rate: u32) -> Self {
        Self {
            format,
            layout,
            rate,
            context: None,
        }
    }

    /// Forget the context (the source track changed).
    pub(crate) fn reset(&mut self) {
        self.context = None;
    }

    /// `decoded` in the output format; `None` for an empty frame.
    ///
    /// Errors: the context cannot be built for the input, the output frame cannot be allocated, or
    /// swresample fails (FFmpeg's message).
    pub(crate) fn run(&mut self, decoded: &frame::Audio) -> Result<Option<frame::Audio>, String> {
        if decoded.samples() == 0 || decoded.rate() == 0 {
            return Ok(None);
        }
        let mut in_layout = decoded.channel_layout();
        if in_layout.is_empty() {
            in_layout = ChannelLayout::default(i32::from(decoded.channels()));
        }
        let key = (decoded.format(), in_layout.bits(), decoded.rate());
        if self.context.as_ref().is_none_or(|(k, _)| *k != key) {
            let context = resampling::Context::get(
                key.0,
                in_layout,
                key.2,
                self.format,
                self.layout,
                self.rate,
            )
            .map_err(|e| e.to_string())?;
            self.context = Some((key, context));
        }
        let capacity =
            decoded.samples() as u64 * u64::from(self.rate) / u64::from(decoded.rate()) + 256;
        let mut out = frame::Audio::new(self.format, capacity as usize, self.layout);
        if !ffi::has_data(&out) || out.channels() < self.layout.channels() as u16 {
            return Err("cannot allocate a resampler frame".into());
        }
        let Some((_, context)) = self.context.as_mut() else {
            return Ok(None);
        };
        context.run(decoded, &mut out).map_err(|e| e.to_string())?;
        Ok(Some(out))
    }
}
