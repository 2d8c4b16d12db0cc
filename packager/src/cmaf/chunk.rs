//! CMAF chunks: one `moof` (`mfhd`, `traf` { `tfhd`, `tfdt`, `trun` }) followed by its `mdat`.

use bytes::Bytes;

use super::CmafError;
use super::writer::BoxWriter;

/// One sample of a CMAF chunk.
///
/// Timing is in the track's timescale (the `mdhd` timescale written by
/// [`super::write_init_segment`]). `data` is the sample exactly as it goes into `mdat`: for H.264/HEVC,
/// length-prefixed NAL units matching the configuration record's `lengthSizeMinusOne`
/// (ISO/IEC 14496-15 §4.3.2); for AAC, one raw access unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FragmentSample<'a> {
    /// Duration in track timescale ticks: the next sample's DTS minus this one's.
    pub duration: u32,
    /// Composition offset `pts - dts` in track timescale ticks; may be negative.
    pub composition_offset: i32,
    /// True for a sync sample (IDR / IRAP picture; every AAC frame).
    pub is_sync: bool,
    /// The sample bytes.
    pub data: &'a [u8],
}

/// `trun` flags (ISO/IEC 14496-12 §8.8.8.1): data-offset-present.
const TRUN_DATA_OFFSET_PRESENT: u32 = 0x00_0001;
/// `trun` flags: sample-duration-present.
const TRUN_SAMPLE_DURATION_PRESENT: u32 = 0x00_0100;
/// `trun` flags: sample-size-present.
const TRUN_SAMPLE_SIZE_PRESENT: u32 = 0x00_0200;
/// `trun` flags: sample-flags-present.
const TRUN_SAMPLE_FLAGS_PRESENT: u32 = 0x00_0400;
/// `trun` flags: sample-composition-time-offsets-present.
const TRUN_SAMPLE_COMPOSITION_TIME_OFFSET_PRESENT: u32 = 0x00_0800;
/// The `trun` flags of every chunk: data offset plus all four per-sample fields.
const TRUN_FLAGS: u32 = TRUN_DATA_OFFSET_PRESENT
    | TRUN_SAMPLE_DURATION_PRESENT
    | TRUN_SAMPLE_SIZE_PRESENT
    | TRUN_SAMPLE_FLAGS_PRESENT
    | TRUN_SAMPLE_COMPOSITION_TIME_OFFSET_PRESENT;

/// `tfhd` flags (ISO/IEC 14496-12 §8.8.7.1): default-base-is-moof, the only flag set (CMAF §7.5.16).
const TFHD_DEFAULT_BASE_IS_MOOF: u32 = 0x02_0000;

/// Sample flags (ISO/IEC 14496-12 §8.8.3.1) of a sync sample: `is_leading` 0, `sample_depends_on` 2
/// (depends on no other sample), `sample_is_depended_on` 0 (unknown), `sample_has_redundancy` 0,
/// `sample_padding_value` 0, `sample_is_non_sync_sample` 0, `sample_degradation_priority` 0.
pub(crate) const SYNC_SAMPLE_FLAGS: u32 = 0x0200_0000;
/// Sample flags of a non-sync sample: `sample_depends_on` 1 (depends on others),
/// `sample_is_non_sync_sample` 1, everything else 0.
pub(crate) const NON_SYNC_SAMPLE_FLAGS: u32 = 0x0101_0000;

/// Bytes of the `moof` before the `trun` sample entries: moof header 8 + mfhd 16 + traf header 8 +
/// tfhd 16 + tfdt (v1) 20 + trun header 12 + sample_count 4 + data_offset 4.
const MOOF_FIXED_BYTES: usize = 8 + 16 + 8 + 16 + 20 + 12 + 4 + 4;
/// Bytes per `trun` sample entry: duration, size, flags, composition offset.
const TRUN_ENTRY_BYTES: usize = 16;
/// Header of an `mdat` with a 32-bit size.
const MDAT_HEADER_BYTES: usize = 8;
/// Header of an `mdat` with a 64-bit `largesize` (ISO/IEC 14496-12 §4.2).
const MDAT_LARGE_HEADER_BYTES: usize = 16;

/// Write one CMAF chunk: `moof` (`mfhd`, `traf` { `tfhd`, `tfdt` version 1, `trun` version 1 }) followed
/// by an `mdat` holding the samples' data concatenated in order (ISO/IEC 14496-12 §8.8.4; ISO/IEC 23000-19
/// §7.3.2). A CMAF fragment or segment is one or more chunks concatenated.
///
/// - `sequence_number` goes to `mfhd` (§8.8.5): it should increase by one per chunk of the track.
/// - `track_id` must match the init segment's.
/// - `base_media_decode_time` is the DTS of the first sample in track timescale ticks (`tfdt`, §8.8.12),
///   i.e. the sum of all earlier samples' durations.
///
/// `tfhd` uses default-base-is-moof, and `trun.data_offset` is the `moof` size plus the `mdat` header,
/// i.e. it points at the first byte of the first sample. Each sample carries its duration, size,
/// composition offset (signed) and flags ([`FragmentSample::is_sync`] maps to the §8.8.3.1 flags
/// `0x02000000` for sync and `0x01010000` for non-sync samples).
///
/// Infallible form of [`try_write_chunk`]: on an error (see there) it logs the error and returns empty
/// bytes, which callers must treat as "no chunk".
pub fn write_chunk(
    sequence_number: u32,
    track_id: u32,
    base_media_decode_time: u64,
    samples: &[FragmentSample<'_>],
) -> Bytes {
    match try_write_chunk(sequence_number, track_id, base_media_decode_time, samples) {
        Ok(bytes) => bytes,
        Err(error) => {
            tracing::error!(sequence_number, track_id, %error, "cannot write cmaf chunk");
            Bytes::new()
        }
    }
}

/// Write one CMAF chunk; see [`write_chunk`].
///
/// An `mdat` payload that would overflow a 32-bit box size gets a 64-bit `largesize`.
///
/// Errors: [`CmafError::ZeroTrackId`]; [`CmafError::SampleTooLarge`] for a sample of 4 GiB or more;
/// [`CmafError::TooManySamples`] when the sample count or the `moof` size does not fit `trun`'s 32-bit
/// `sample_count` / signed 32-bit `data_offset`.
pub fn try_write_chunk(
    sequence_number: u32,
    track_id: u32,
    base_media_decode_time: u64,
    samples: &[FragmentSample<'_>],
) -> Result<Bytes, CmafError> {
    write_chunk_with(
        sequence_number,
        track_id,
        base_media_decode_time,
        samples,
        None,
    )
}

/// Write one CMAF chunk of samples encrypted with CENC (ISO/IEC 23001-7): as [`try_write_chunk`], with
/// `samples` already encrypted ([`crate::cenc::encrypt_sample`]) and, after the `trun`, the sample
/// auxiliary information of each: `senc` (ISO/IEC 23001-7 §7.2; flag 0x2 and subsample lists when
/// `has_subsamples`), `saiz` (§8.7.8 of ISO/IEC 14496-12) and `saio` (§8.7.9; one offset, relative to
/// the `moof` like the `trun` data offset). `protection` has one entry per sample.
///
/// Errors: those of [`try_write_chunk`]; [`CmafError::TooManySamples`] when `protection` and `samples`
/// differ in length.
pub fn try_write_protected_chunk(
    sequence_number: u32,
    track_id: u32,
    base_media_decode_time: u64,
    samples: &[FragmentSample<'_>],
    protection: &[crate::cenc::SampleProtection],
    has_subsamples: bool,
) -> Result<Bytes, CmafError> {
    if protection.len() != samples.len() {
        return Err(CmafError::TooManySamples {
            count: protection.len(),
        });
    }
    write_chunk_with(
        sequence_number,
        track_id,
        base_media_decode_time,
        samples,
        Some((protection, has_subsamples)),
    )
}

/// `senc` flags (ISO/IEC 23001-7 §7.2.1): UseSubSampleEncryption.
const SENC_USE_SUBSAMPLES: u32 = 0x00_0002;

fn write_chunk_with(
    sequence_number: u32,
    track_id: u32,
    base_media_decode_time: u64,
    samples: &[FragmentSample<'_>],
    protection: Option<(&[crate::cenc::SampleProtection], bool)>,
) -> Result<Bytes, CmafError> {
    if track_id == 0 {
        return Err(CmafError::ZeroTrackId);
    }
    let too_many = CmafError::TooManySamples {
        count: samples.len(),
    };
    let sample_count = u32::try_from(samples.len()).map_err(|_| too_many.clone())?;
    let moof_len_bytes = samples
        .len()
        .checked_mul(TRUN_ENTRY_BYTES)
        .and_then(|entries| entries.checked_add(MOOF_FIXED_BYTES))
        .ok_or_else(|| too_many.clone())?;

    let mut payload_len_bytes: usize = 0;
    for (index, sample) in samples.iter().enumerate() {
        let len_bytes = sample.data.len();
        if u32::try_from(len_bytes).is_err() {
            return Err(CmafError::SampleTooLarge { index, len_bytes });
        }
        // Cannot overflow: the samples are slices that exist in memory at the same time.
        payload_len_bytes = payload_len_bytes.saturating_add(len_bytes);
    }
    let mdat_header_bytes = mdat_header_len_bytes(payload_len_bytes);
    // Checked up front so that an impossible data_offset fails before any work.
    moof_len_bytes
        .checked_add(mdat_header_bytes)
        .and_then(|offset| i32::try_from(offset).ok())
        .ok_or_else(|| too_many.clone())?;

    let capacity = moof_len_bytes
        .saturating_add(mdat_header_bytes)
        .saturating_add(payload_len_bytes);
    let mut w = BoxWriter::with_capacity(capacity);
    let mut data_offset_at = 0;
    w.boxed(b"moof", |w| {
        // mfhd (§8.8.5)
        w.full_box(b"mfhd", 0, 0, |w| w.u32(sequence_number));
        w.boxed(b"traf", |w| {
            // tfhd (§8.8.7): track_ID only; all defaults come from trex or the trun.
            w.full_box(b"tfhd", 0, TFHD_DEFAULT_BASE_IS_MOOF, |w| w.u32(track_id));
            // tfdt version 1 (§8.8.12): 64-bit baseMediaDecodeTime.
            w.full_box(b"tfdt", 1, 0, |w| w.u64(base_media_decode_time));
            // trun version 1 (§8.8.8): signed composition offsets.
            w.full_box(b"trun", 1, TRUN_FLAGS, |w| {
                w.u32(sample_count);
                data_offset_at = w.len_bytes();
                w.i32(0); // data_offset, patched below
                for sample in samples {
                    w.u32(sample.duration);
                    // Checked above: every sample length fits 32 bits.
                    w.u32(u32::try_from(sample.data.len()).unwrap_or(u32::MAX));
                    w.u32(if sample.is_sync {
                        SYNC_SAMPLE_FLAGS
                    } else {
                        NON_SYNC_SAMPLE_FLAGS
                    });
                    w.i32(sample.composition_offset);
                }
            });
            if let Some((protection, has_subsamples)) = protection {
                write_sample_encryption(w, protection, has_subsamples, sample_count);
            }
        });
    });
    // data_offset: from the first byte of the moof (default-base-is-moof) to the first sample byte.
    match i32::try_from(w.len_bytes().saturating_add(mdat_header_bytes)) {
        Ok(data_offset) => w.patch_u32(data_offset_at, data_offset.cast_unsigned()),
        Err(_) => w.fail(too_many),
    }

    write_mdat_header(&mut w, payload_len_bytes);
    for sample in samples {
        w.bytes(sample.data);
    }
    w.finish().map(Bytes::from)
}

/// `senc`, `saiz` and `saio` of a protected chunk, in that order (FFmpeg's: its 5.1 demuxer reads
/// the sample auxiliary information of the second and later `moof`s of a file wrongly through `saio`,
/// but uses a `senc` that comes first), inside its `traf`. The `saio` offset points at the first
/// sample's IV inside `senc`, from the first byte of the `moof` (the base offset that
/// default-base-is-moof establishes, ISO/IEC 14496-12 §8.7.9.3).
fn write_sample_encryption(
    w: &mut BoxWriter,
    protection: &[crate::cenc::SampleProtection],
    has_subsamples: bool,
    sample_count: u32,
) {
    let sizes: Vec<usize> = protection
        .iter()
        .map(|p| p.aux_info_bytes(has_subsamples))
        .collect();
    let uniform = sizes
        .first()
        .copied()
        .filter(|s| sizes.iter().all(|x| x == s));
    // senc (ISO/IEC 23001-7 §7.2).
    let flags = if has_subsamples {
        SENC_USE_SUBSAMPLES
    } else {
        0
    };
    let mut first_iv_at = 0;
    w.full_box(b"senc", 0, flags, |w| {
        w.u32(sample_count);
        first_iv_at = w.len_bytes();
        for p in protection {
            w.bytes(&p.iv);
            if has_subsamples {
                w.u16(u16::try_from(p.subsamples.len()).unwrap_or(u16::MAX));
                for s in &p.subsamples {
                    w.u16(s.clear_bytes);
                    w.u32(s.protected_bytes);
                }
            }
        }
    });
    // saiz (ISO/IEC 14496-12 §8.7.8): flags 0 (aux_info_type implied by the scheme).
    w.full_box(b"saiz", 0, 0, |w| match uniform {
        Some(size) => {
            w.u8(u8::try_from(size).unwrap_or(0));
            w.u32(sample_count);
        }
        None => {
            w.u8(0);
            w.u32(sample_count);
            for size in &sizes {
                // Over 255 bytes (more than 41 subsamples) cannot be described: fail the chunk.
                match u8::try_from(*size) {
                    Ok(s) => w.u8(s),
                    Err(_) => w.fail(CmafError::TooManySamples { count: *size }),
                }
            }
        }
    });
    // saio (§8.7.9): one entry, the first IV's position inside the senc above.
    w.full_box(b"saio", 0, 0, |w| {
        w.u32(1); // entry_count
        w.u32(u32::try_from(first_iv_at).unwrap_or(u32::MAX));
    });
}

/// Length of the `mdat` header for a payload of `payload_len_bytes`: 8, or 16 when the box size needs the
/// 64-bit `largesize` (ISO/IEC 14496-12 §4.2).
fn mdat_header_len_bytes(payload_len_bytes: usize) -> usize {
    let fits_32_bits = u32::try_from(payload_len_bytes.saturating_add(MDAT_HEADER_BYTES)).is_ok();
    if fits_32_bits {
        MDAT_HEADER_BYTES
    } else {
        MDAT_LARGE_HEADER_BYTES
    }
}

/// Write the header of an `mdat` (ISO/IEC 14496-12 §8.1.1) whose payload of `payload_len_bytes` follows.
/// Written by hand rather than with [`BoxWriter::boxed`] because it may need a 64-bit `largesize`.
fn write_mdat_header(w: &mut BoxWriter, payload_len_bytes: usize) {
    let header_bytes = mdat_header_len_bytes(payload_len_bytes);
    let total_bytes =
        u64::try_from(payload_len_bytes.saturating_add(header_bytes)).unwrap_or(u64::MAX);
    match u32::try_from(total_bytes) {
        Ok(size) if header_bytes == MDAT_HEADER_BYTES => {
            w.u32(size);
            w.bytes(b"mdat");
        }
        _ => {
            w.u32(1); // size 1: the 64-bit largesize follows the type
            w.bytes(b"mdat");
            w.u64(total_bytes);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cmaf_mdat_header_switches_to_largesize_beyond_32_bits() {
        let largest_small = u32::MAX as usize - MDAT_HEADER_BYTES;
        let mut w = BoxWriter::with_capacity(40);
        write_mdat_header(&mut w, largest_small);
        write_mdat_header(&mut w, largest_small + 1);
        #[rustfmt::skip]
        let expected: &[u8] = &[
            0xFF, 0xFF, 0xFF, 0xFF, b'm', b'd', b'a', b't', // size 2^32 - 1
            0, 0, 0, 1, b'm', b'd', b'a', b't',             // size 1: largesize follows
            0, 0, 0, 1, 0, 0, 0, 8,                         // largesize: payload 2^32 - 8 + header 16
        ];
        assert_eq!(w.finish().expect("no error"), expected);
    }
}
