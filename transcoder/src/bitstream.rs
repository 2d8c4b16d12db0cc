//! NAL unit framing: encoder output (Annex B or length-prefixed) to [`media::Frame`] data, parameter sets
//! to [`media::TrackInfo`]s, and source configuration records to decoder extradata.
//!
//! Sans-IO: bytes in, bytes or values out.

use bytes::{BufMut, Bytes, BytesMut};
use media::{CodecConfig, MediaError, TrackInfo, avc::AvcConfig, hevc::HevcConfig};

use crate::VideoCodec;

/// The NAL units of an Annex B byte stream (ITU-T H.264 Annex B / H.265 Annex B), without start codes
/// and without the trailing zero bytes that belong to the next start code. Empty NAL units are skipped.
pub(crate) fn annex_b_nal_units(data: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut start: Option<usize> = None;
    let mut i = 0;
    while i + 2 < data.len() {
        if data[i] == 0 && data[i + 1] == 0 && data[i + 2] == 1 {
            if let Some(s) = start {
                push_trimmed(&mut out, &data[s..i]);
            }
            i += 3;
            start = Some(i);
        } else {
            i += 1;
        }
    }
    if let Some(s) = start {
        push_trimmed(&mut out, &data[s.min(data.len())..]);
    }
    out
}

fn push_trimmed<'a>(out: &mut Vec<&'a [u8]>, nal: &'a [u8]) {
    let end = nal.iter().rposition(|b| *b != 0).map_or(0, |p| p + 1);
    if end > 0 {
        out.push(&nal[..end]);
    }
}

/// The NAL units of a sample whose NAL units are each prefixed by a 4-byte big-endian length
/// (ISO/IEC 14496-15 §5.3.2). Errors on a length running past the end.
pub(crate) fn length_prefixed_nal_units(data: &[u8]) -> Result<Vec<&[u8]>, MediaError> {
    let mut out = Vec::new();
    let mut rest = data;
    while !rest.is_empty() {
        if rest.len() < 4 {
            return Err(MediaError::Truncated {
                what: "length-prefixed sample",
                need: 4,
                have: rest.len(),
            });
        }
        let len = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        let body = &rest[4..];
        if len > body.len() {
            return Err(MediaError::Truncated {
                what: "length-prefixed sample",
                need: len,
                have: body.len(),
            });
        }
        if len > 0 {
            out.push(&body[..len]);
        }
        rest = &body[len..];
    }
    Ok(out)
}

/// The NAL units of an encoder's packet, Annex B or 4-byte length-prefixed.
///
/// `00 00 00 01` at the start means Annex B (a one-byte first NAL unit is implausible). `00 00 01` is
/// ambiguous (a 4-byte length of 256..=511 starts the same way): the data is read as length-prefixed
/// if that accounts for every byte, else as Annex B.
pub(crate) fn nal_units(data: &[u8]) -> Result<Vec<&[u8]>, MediaError> {
    if data.starts_with(&[0, 0, 0, 1]) {
        return Ok(annex_b_nal_units(data));
    }
    if data.starts_with(&[0, 0, 1]) {
        return Ok(length_prefixed_nal_units(data).unwrap_or_else(|_| annex_b_nal_units(data)));
    }
    length_prefixed_nal_units(data)
}

/// Re-frame NAL units with 4-byte big-endian length prefixes, the layout of [`media::Frame::data`].
pub(crate) fn to_length_prefixed(nals: &[&[u8]]) -> Bytes {
    let mut out = BytesMut::with_capacity(nals.iter().map(|n| n.len() + 4).sum());
    for nal in nals {
        out.put_u32(nal.len() as u32);
        out.put_slice(nal);
    }
    out.freeze()
}

#[cfg(test)]
/// An encoder packet as [`media::Frame::data`]: Annex B is converted, 4-byte length-prefixed data is
/// validated and kept. `None` if the packet holds no NAL unit or is malformed.
pub(crate) fn packet_to_sample(data: &[u8]) -> Option<Bytes> {
    let nals = nal_units(data).ok()?;
    if nals.is_empty() {
        return None;
    }
    Some(to_length_prefixed(&nals))
}

/// The nal_unit_type of an H.264 NAL unit (ITU-T H.264 §7.3.1), or of an HEVC one (ITU-T H.265 §7.3.1.2).
fn nal_type(codec: VideoCodec, nal: &[u8]) -> Option<u8> {
    match codec {
        VideoCodec::H264 => nal.first().map(|b| b & 0x1f),
        VideoCodec::Hevc => media::hevc::nal_unit_type(nal),
    }
}

/// Collect parameter sets (in order of appearance, duplicates dropped) from NAL units.
#[derive(Debug, Default)]
pub(crate) struct ParameterSets {
    /// HEVC video parameter sets.
    pub vps: Vec<Bytes>,
    /// Sequence parameter sets.
    pub sps: Vec<Bytes>,
    /// Picture parameter sets.
    pub pps: Vec<Bytes>,
}

impl ParameterSets {
    /// Add the parameter sets among `nals`.
    pub(crate) fn collect(&mut self, codec: VideoCodec, nals: &[&[u8]]) {
        for nal in nals {
            let list = match (codec, nal_type(codec, nal)) {
                (VideoCodec::H264, Some(media::avc::NAL_TYPE_SPS)) => &mut self.sps,
                (VideoCodec::H264, Some(media::avc::NAL_TYPE_PPS)) => &mut self.pps,
                (VideoCodec::Hevc, Some(media::hevc::NAL_TYPE_VPS)) => &mut self.vps,
                (VideoCodec::Hevc, Some(media::hevc::NAL_TYPE_SPS)) => &mut self.sps,
                (VideoCodec::Hevc, Some(media::hevc::NAL_TYPE_PPS)) => &mut self.pps,
                _ => continue,
            };
            if !list.iter().any(|p| p.as_ref() == *nal) {
                list.push(Bytes::copy_from_slice(nal));
            }
        }
    }

    /// Build the track: an avcC (ISO/IEC 14496-15 §5.3.3.1) or hvcC (§8.3.3.1, `hvc1`) with 4-byte
    /// NAL lengths.
    pub(crate) fn to_track(&self, codec: VideoCodec) -> Result<TrackInfo, MediaError> {
        let config = match codec {
            VideoCodec::H264 => {
                CodecConfig::Avc(AvcConfig::from_parameter_sets(&self.sps, &self.pps)?)
            }
            VideoCodec::Hevc => CodecConfig::Hevc(HevcConfig::from_parameter_sets(
                &self.vps, &self.sps, &self.pps,
            )?),
        };
        Ok(TrackInfo::new(config))
    }
}

/// The track of an encoder from its extradata: Annex B parameter sets (libx264 / libx265 / NVENC with
/// `AV_CODEC_FLAG_GLOBAL_HEADER`) or a configuration record (avcC / hvcC, first byte
/// `configurationVersion` = 1). A record is rebuilt when its NAL length size is not 4.
pub(crate) fn track_from_extradata(
    codec: VideoCodec,
    extradata: &[u8],
) -> Result<TrackInfo, MediaError> {
    if extradata.first() == Some(&1) {
        let record = Bytes::copy_from_slice(extradata);
        let config = match codec {
            VideoCodec::H264 => {
                let c = AvcConfig::parse(record)?;
                if c.nal_length_size == 4 {
                    CodecConfig::Avc(c)
                } else {
                    CodecConfig::Avc(AvcConfig::from_parameter_sets(&c.sps, &c.pps)?)
                }
            }
            VideoCodec::Hevc => {
                let c = HevcConfig::parse(record)?;
                if c.nal_length_size == 4 {
                    CodecConfig::Hevc(c)
                } else {
                    CodecConfig::Hevc(HevcConfig::from_parameter_sets(&c.vps, &c.sps, &c.pps)?)
                }
            }
        };
        return Ok(TrackInfo::new(config));
    }
    let mut sets = ParameterSets::default();
    sets.collect(codec, &annex_b_nal_units(extradata));
    sets.to_track(codec)
}

/// The parameter set NAL units of a video track's configuration record, in decoding order (VPS, SPS,
/// PPS); empty for an audio track.
pub(crate) fn parameter_set_nals(track: &TrackInfo) -> Vec<Bytes> {
    match &track.config {
        CodecConfig::Avc(c) => c.sps.iter().chain(&c.pps).cloned().collect(),
        CodecConfig::Hevc(c) => c.vps.iter().chain(&c.sps).chain(&c.pps).cloned().collect(),
        CodecConfig::Aac(_) | CodecConfig::Decodable(_) => Vec::new(),
    }
}

/// A keyframe sample (4-byte NAL lengths) with `parameter_sets` in front, unless the access unit
/// already carries an SPS. They follow an access unit delimiter when there is one (ITU-T H.264
/// §7.4.1.2.3 / H.265 §7.4.2.4.4: AUD first, then parameter sets, then slices).
pub(crate) fn with_parameter_sets(
    codec: VideoCodec,
    parameter_sets: &[Bytes],
    nals: &[&[u8]],
) -> Bytes {
    let (sps, aud) = match codec {
        VideoCodec::H264 => (media::avc::NAL_TYPE_SPS, media::avc::NAL_TYPE_AUD),
        VideoCodec::Hevc => (media::hevc::NAL_TYPE_SPS, media::hevc::NAL_TYPE_AUD),
    };
    if nals.iter().any(|n| nal_type(codec, n) == Some(sps)) {
        return to_length_prefixed(nals);
    }
    let lead = usize::from(
        nals.first()
            .is_some_and(|n| nal_type(codec, n) == Some(aud)),
    );
    let mut all: Vec<&[u8]> = Vec::with_capacity(nals.len() + parameter_sets.len());
    all.extend_from_slice(&nals[..lead]);
    all.extend(parameter_sets.iter().map(|p| p.as_ref()));
    all.extend_from_slice(&nals[lead..]);
    to_length_prefixed(&all)
}

/// Decoder extradata for a source video track: its configuration record, rebuilt with 4-byte NAL
/// lengths if it declares another size (frames always carry 4-byte lengths, see [`media::Frame`]).
/// Errors for an audio configuration.
pub(crate) fn decoder_extradata(track: &TrackInfo) -> Result<(VideoCodec, Bytes), MediaError> {
    match &track.config {
        CodecConfig::Avc(c) if c.nal_length_size == 4 => Ok((VideoCodec::H264, c.record.clone())),
        CodecConfig::Avc(c) => Ok((
            VideoCodec::H264,
            AvcConfig::from_parameter_sets(&c.sps, &c.pps)?.record,
        )),
        CodecConfig::Hevc(c) if c.nal_length_size == 4 => Ok((VideoCodec::Hevc, c.record.clone())),
        CodecConfig::Hevc(c) => Ok((
            VideoCodec::Hevc,
            HevcConfig::from_parameter_sets(&c.vps, &c.sps, &c.pps)?.record,
        )),
        CodecConfig::Aac(_) | CodecConfig::Decodable(_) => Err(MediaError::Invalid {
            what: "video track",
            field: "codec",
            value: 0,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn annex_b_split_handles_3_and_4_byte_start_codes_and_trailing_zeros() {
        let data = [
            0, 0, 0, 1, 0x67, 0xAA, // SPS after a 4-byte start code
            0, 0, 1, 0x68, 0xBB, 0, // PPS after a 3-byte start code, then a trailing zero
            0, 0, 0, 1, 0x65, 0x01, 0x02, // IDR slice
        ];
        let nals = annex_b_nal_units(&data);
        assert_eq!(
            nals,
            vec![&[0x67, 0xAA][..], &[0x68, 0xBB][..], &[0x65, 1, 2][..]]
        );
    }

    #[test]
    fn annex_b_to_length_prefixed_round_trip() {
        let data = [0, 0, 0, 1, 0x65, 0x88, 0, 0, 1, 0x06, 0x05];
        let sample = packet_to_sample(&data).unwrap();
        assert_eq!(
            sample.as_ref(),
            &[0, 0, 0, 2, 0x65, 0x88, 0, 0, 0, 2, 0x06, 0x05]
        );
        // Already length-prefixed data is kept as is.
        assert_eq!(packet_to_sample(&sample).unwrap(), sample);
    }

    #[test]
    fn length_prefixed_overrun_is_an_error_not_a_panic() {
        assert!(length_prefixed_nal_units(&[0, 0, 0, 9, 1, 2]).is_err());
        assert!(length_prefixed_nal_units(&[0, 0]).is_err());
        assert!(packet_to_sample(&[0xFF, 0xFF, 0xFF, 0xFF, 0]).is_none());
        assert!(packet_to_sample(&[]).is_none());
    }

    #[test]
    fn parameter_sets_go_after_the_delimiter_and_are_not_doubled() {
        let sets = [
            Bytes::from_static(&[0x67, 1]),
            Bytes::from_static(&[0x68, 2]),
        ];
        // AUD, IDR slice: AUD stays first, then SPS, PPS, then the slice.
        let sample = with_parameter_sets(VideoCodec::H264, &sets, &[&[0x09, 0xF0], &[0x65, 3]]);
        let nals = length_prefixed_nal_units(&sample).unwrap();
        assert_eq!(
            nals,
            vec![&[0x09, 0xF0][..], &[0x67, 1], &[0x68, 2], &[0x65, 3]]
        );
        // No AUD: parameter sets first.
        let sample = with_parameter_sets(VideoCodec::H264, &sets, &[&[0x06, 5], &[0x65, 3]]);
        let nals = length_prefixed_nal_units(&sample).unwrap();
        assert_eq!(
            nals,
            vec![&[0x67, 1][..], &[0x68, 2], &[0x06, 5], &[0x65, 3]]
        );
        // An access unit that has its own SPS is kept as is.
        let own: [&[u8]; 3] = [&[0x67, 9], &[0x68, 9], &[0x65, 3]];
        let sample = with_parameter_sets(VideoCodec::H264, &sets, &own);
        assert_eq!(length_prefixed_nal_units(&sample).unwrap(), own.to_vec());
        // HEVC: AUD type 35, SPS type 33.
        let hevc_sets = [
            Bytes::from_static(&[32 << 1, 1]),
            Bytes::from_static(&[33 << 1, 1]),
        ];
        let sample = with_parameter_sets(
            VideoCodec::Hevc,
            &hevc_sets,
            &[&[35 << 1, 1, 0x50], &[19 << 1, 1]],
        );
        let nals = length_prefixed_nal_units(&sample).unwrap();
        assert_eq!(
            nals,
            vec![
                &[35 << 1, 1, 0x50][..],
                &[32 << 1, 1],
                &[33 << 1, 1],
                &[19 << 1, 1]
            ]
        );
    }

    #[test]
    fn parameter_sets_are_collected_once_by_type() {
        let mut sets = ParameterSets::default();
        sets.collect(
            VideoCodec::H264,
            &[&[0x67, 1], &[0x68, 2], &[0x67, 1], &[0x65, 3]],
        );
        assert_eq!(sets.sps.len(), 1);
        assert_eq!(sets.pps.len(), 1);
        let mut sets = ParameterSets::default();
        // HEVC NAL header: type in bits 1..7 of the first byte.
        sets.collect(
            VideoCodec::Hevc,
            &[&[32 << 1, 1], &[33 << 1, 1], &[34 << 1, 1], &[19 << 1, 1]],
        );
        assert_eq!((sets.vps.len(), sets.sps.len(), sets.pps.len()), (1, 1, 1));
    }

    #[test]
    fn track_from_empty_extradata_is_missing_sps() {
        assert!(track_from_extradata(VideoCodec::H264, &[]).is_err());
        assert!(track_from_extradata(VideoCodec::Hevc, &[1, 2, 3]).is_err());
    }
}
