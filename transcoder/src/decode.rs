//! Which FFmpeg decoder a source track needs, and its codec context before opening: the codec id by
//! configuration, the extradata, and the audio format for codecs whose frames do not carry one (PCM,
//! G.711, Flash ADPCM, Nellymoser, Speex).
//!
//! Shared by the audio and video workers' `open_decoder`, and by [`check_decoder`], which the ingest side
//! calls before it accepts a track that must be transcoded.

use bytes::Bytes;
use ffmpeg_next::{Codec, codec, decoder};
use media::{CodecConfig, DecodableCodec, PcmFormat, TrackInfo};

use crate::{TranscodeError, bitstream, ffi};

/// The FFmpeg codec id of a decodable codec.
fn decodable_id(codec: DecodableCodec) -> Option<codec::Id> {
    Some(match codec {
        DecodableCodec::AacLatm => codec::Id::AAC_LATM,
        DecodableCodec::Mp1 => codec::Id::MP1,
        DecodableCodec::Mp2 => codec::Id::MP2,
        DecodableCodec::Mp3 => codec::Id::MP3,
        DecodableCodec::Ac3 => codec::Id::AC3,
        DecodableCodec::Eac3 => codec::Id::EAC3,
        DecodableCodec::Opus => codec::Id::OPUS,
        DecodableCodec::Flac => codec::Id::FLAC,
        DecodableCodec::Pcm(PcmFormat::U8) => codec::Id::PCM_U8,
        DecodableCodec::Pcm(PcmFormat::S16Le) => codec::Id::PCM_S16LE,
        DecodableCodec::Pcm(PcmFormat::S16Be) => codec::Id::PCM_S16BE,
        DecodableCodec::G711Alaw => codec::Id::PCM_ALAW,
        DecodableCodec::G711Mulaw => codec::Id::PCM_MULAW,
        DecodableCodec::AdpcmSwf => codec::Id::ADPCM_SWF,
        DecodableCodec::Nellymoser => codec::Id::NELLYMOSER,
        DecodableCodec::Speex => codec::Id::SPEEX,
        DecodableCodec::Mpeg1Video => codec::Id::MPEG1VIDEO,
        DecodableCodec::Mpeg2Video => codec::Id::MPEG2VIDEO,
        DecodableCodec::SorensonH263 => codec::Id::FLV1,
        DecodableCodec::Vp6 => codec::Id::VP6F,
        DecodableCodec::Vp6Alpha => codec::Id::VP6A,
        DecodableCodec::Vp8 => codec::Id::VP8,
        DecodableCodec::Vp9 => codec::Id::VP9,
        DecodableCodec::Av1 => codec::Id::AV1,
        _ => return None,
    })
}

/// The decoder for `track` and the extradata to give it.
fn decoder_for(track: &TrackInfo) -> Result<(Codec, Bytes), String> {
    let (id, extradata) = match &track.config {
        CodecConfig::Aac(c) => (codec::Id::AAC, c.asc.clone()),
        CodecConfig::Avc(_) | CodecConfig::Hevc(_) => {
            let (codec, extradata) =
                bitstream::decoder_extradata(track).map_err(|e| e.to_string())?;
            let id = match codec {
                crate::VideoCodec::H264 => codec::Id::H264,
                crate::VideoCodec::Hevc => codec::Id::HEVC,
            };
            (id, extradata)
        }
        CodecConfig::Decodable(c) => {
            let id = decodable_id(c.codec)
                .ok_or_else(|| format!("no FFmpeg decoder known for {}", c.codec.name()))?;
            (id, c.extradata.clone())
        }
    };
    // dav1d is FFmpeg's software AV1 decoder of choice; the native `av1` decoder needs a hardware
    // accelerator.
    let found = match id {
        codec::Id::AV1 => decoder::find_by_name("libdav1d").or_else(|| decoder::find(id)),
        _ => decoder::find(id),
    };
    let found =
        found.ok_or_else(|| format!("this FFmpeg has no {} decoder", track.config.name()))?;
    Ok((found, extradata))
}

/// Whether this FFmpeg can decode `track`; the error says why not (for logs and the API). Cheap: a
/// lookup in FFmpeg's codec registry, nothing is opened.
pub fn check_decoder(track: &TrackInfo) -> Result<(), String> {
    crate::init_ffmpeg();
    decoder_for(track).map(|_| ())
}

/// A codec context for `track`'s decoder, not yet opened: extradata set and, for audio with a signalled
/// format, the sample rate and channel layout (FFmpeg's default layout for the channel count). Returns the
/// decoder to open it with.
///
/// Errors: [`TranscodeError::InvalidTrack`] when no decoder exists; [`TranscodeError::Ffmpeg`] when a
/// field cannot be set.
pub(crate) fn decoder_context(
    track: &TrackInfo,
    kind: &'static str,
) -> Result<(Codec, codec::Context), TranscodeError> {
    let (found, extradata) =
        decoder_for(track).map_err(|reason| TranscodeError::InvalidTrack { kind, reason })?;
    let mut ctx = codec::Context::new_with_codec(found);
    let name = track.config.name();
    if !extradata.is_empty() {
        ffi::set_extradata(&mut ctx, &extradata).map_err(|e| {
            TranscodeError::ffmpeg(format!("setting the {name} decoder configuration"), e)
        })?;
    }
    if let CodecConfig::Decodable(c) = &track.config
        && let Some(format) = c.audio
    {
        ffi::set_audio_format(&mut ctx, format.sample_rate_hz, format.channels)
            .map_err(|e| TranscodeError::ffmpeg(format!("setting the {name} audio format"), e))?;
    }
    Ok((found, ctx))
}

#[cfg(test)]
mod tests {
    use super::*;
    use media::{AudioFormat, DecodableConfig};

    #[test]
    fn every_decodable_codec_has_a_decoder_in_this_ffmpeg() {
        let audio = AudioFormat {
            sample_rate_hz: 44_100,
            channels: 2,
        };
        for codec in [
            DecodableCodec::AacLatm,
            DecodableCodec::Mp1,
            DecodableCodec::Mp2,
            DecodableCodec::Mp3,
            DecodableCodec::Ac3,
            DecodableCodec::Eac3,
            DecodableCodec::Opus,
            DecodableCodec::Flac,
            DecodableCodec::Pcm(PcmFormat::U8),
            DecodableCodec::Pcm(PcmFormat::S16Le),
            DecodableCodec::Pcm(PcmFormat::S16Be),
            DecodableCodec::G711Alaw,
            DecodableCodec::G711Mulaw,
            DecodableCodec::AdpcmSwf,
            DecodableCodec::Nellymoser,
            DecodableCodec::Speex,
        ] {
            let track = TrackInfo::new(CodecConfig::Decodable(DecodableConfig::audio(
                codec,
                Bytes::new(),
                audio,
            )));
            check_decoder(&track).unwrap_or_else(|e| panic!("{}: {e}", codec.name()));
            decoder_context(&track, "audio").unwrap();
        }
        for codec in [
            DecodableCodec::Mpeg1Video,
            DecodableCodec::Mpeg2Video,
            DecodableCodec::SorensonH263,
            DecodableCodec::Vp6,
            DecodableCodec::Vp6Alpha,
            DecodableCodec::Vp8,
            DecodableCodec::Vp9,
            DecodableCodec::Av1,
        ] {
            let track = TrackInfo::new(CodecConfig::Decodable(DecodableConfig::video(
                codec,
                Bytes::new(),
                None,
            )));
            check_decoder(&track).unwrap_or_else(|e| panic!("{}: {e}", codec.name()));
        }
    }
}
