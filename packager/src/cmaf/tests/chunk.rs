//! Chunk tests: golden bytes, field values read back with mp4-atom, boundaries, and a property test.

use mp4_atom::{Any, Mdat, Moof, TrunEntry};
use proptest::prelude::*;

use super::decode_top_level;
use crate::cmaf::chunk::{NON_SYNC_SAMPLE_FLAGS, SYNC_SAMPLE_FLAGS};
use crate::cmaf::{CmafError, FragmentSample, try_write_chunk, write_chunk};

/// Decode a chunk into its `moof` and `mdat`, checking that nothing else is there.
fn decode_chunk(bytes: &[u8]) -> (Moof, Mdat) {
    let mut atoms = decode_top_level(bytes).into_iter();
    let (Some(Any::Moof(moof)), Some(Any::Mdat(mdat)), None) =
        (atoms.next(), atoms.next(), atoms.next())
    else {
        panic!("chunk is not exactly moof + mdat");
    };
    (moof, mdat)
}

/// The 32-bit size of the first box (the moof).
fn first_box_len(bytes: &[u8]) -> usize {
    u32::from_be_bytes(bytes[..4].try_into().expect("4 bytes")) as usize
}

/// Assert that `bytes` is a chunk holding exactly `samples` with the given header fields.
fn assert_chunk(
    bytes: &[u8],
    sequence_number: u32,
    track_id: u32,
    base_media_decode_time: u64,
    samples: &[FragmentSample<'_>],
) {
    let (moof, mdat) = decode_chunk(bytes);
    assert_eq!(moof.mfhd.sequence_number, sequence_number);
    assert_eq!(moof.traf.len(), 1);
    let traf = &moof.traf[0];
    assert_eq!(traf.tfhd.track_id, track_id);
    assert!(traf.tfhd.default_base_is_moof);
    assert_eq!(traf.tfhd.base_data_offset, None);
    assert_eq!(traf.tfhd.sample_description_index, None);
    assert_eq!(traf.tfhd.default_sample_duration, None);
    assert_eq!(traf.tfhd.default_sample_size, None);
    assert_eq!(traf.tfhd.default_sample_flags, None);
    assert_eq!(
        traf.tfdt.as_ref().map(|tfdt| tfdt.base_media_decode_time),
        Some(base_media_decode_time)
    );
    assert_eq!(traf.trun.len(), 1);
    let trun = &traf.trun[0];

    // data_offset is relative to the moof start and lands on the first byte of the mdat payload.
    let moof_len = first_box_len(bytes);
    let data_offset =
        usize::try_from(trun.data_offset.expect("data_offset present")).expect("positive");
    assert_eq!(data_offset, moof_len + 8);
    assert_eq!(&bytes[moof_len + 4..moof_len + 8], b"mdat");

    let entries: Vec<TrunEntry> = trun.samples.iter().collect();
    assert_eq!(entries.len(), samples.len());
    let mut offset = data_offset;
    for (entry, sample) in entries.iter().zip(samples) {
        let flags = if sample.is_sync {
            SYNC_SAMPLE_FLAGS
        } else {
            NON_SYNC_SAMPLE_FLAGS
        };
        let expected = TrunEntry {
            duration: Some(sample.duration),
            size: Some(sample.data.len() as u32),
            flags: Some(flags),
            cts: Some(i64::from(sample.composition_offset)),
        };
        assert_eq!(*entry, expected);
        assert_eq!(&bytes[offset..offset + sample.data.len()], sample.data);
        offset += sample.data.len();
    }
    assert_eq!(offset, bytes.len(), "samples end where the chunk ends");
    let payload: Vec<u8> = samples
        .iter()
        .flat_map(|sample| sample.data.iter().copied())
        .collect();
    assert_eq!(mdat.data, payload);
}

#[test]
fn cmaf_chunk_two_samples_golden_bytes() {
    let samples = [
        FragmentSample {
            duration: 3000,
            composition_offset: 3000,
            is_sync: true,
            data: &[0xAA, 0xBB, 0xCC],
        },
        FragmentSample {
            duration: 3000,
            composition_offset: -3000,
            is_sync: false,
            data: &[0xDD, 0xEE],
        },
    ];
    let bytes = write_chunk(7, 1, 0x1_0000_0002, &samples);
    #[rustfmt::skip]
    let expected: &[u8] = &[
        0, 0, 0, 120, b'm', b'o', b'o', b'f',      // moof, 120 bytes
        0, 0, 0, 16, b'm', b'f', b'h', b'd',       //   mfhd, 16 bytes
        0, 0, 0, 0,                                //     version 0, flags 0
        0, 0, 0, 7,                                //     sequence_number 7
        0, 0, 0, 96, b't', b'r', b'a', b'f',       //   traf, 96 bytes
        0, 0, 0, 16, b't', b'f', b'h', b'd',       //     tfhd, 16 bytes
        0, 0x02, 0x00, 0x00,                       //       version 0, flags default-base-is-moof
        0, 0, 0, 1,                                //       track_ID 1
        0, 0, 0, 20, b't', b'f', b'd', b't',       //     tfdt, 20 bytes
        1, 0, 0, 0,                                //       version 1, flags 0
        0, 0, 0, 1, 0, 0, 0, 2,                    //       baseMediaDecodeTime 2^32 + 2
        0, 0, 0, 52, b't', b'r', b'u', b'n',       //     trun, 52 bytes
        1, 0x00, 0x0F, 0x01,                       //       version 1, flags data-offset | duration | size | flags | cto
        0, 0, 0, 2,                                //       sample_count 2
        0, 0, 0, 128,                              //       data_offset: moof 120 + mdat header 8
        0, 0, 0x0B, 0xB8,                          //       [0] duration 3000
        0, 0, 0, 3,                                //           size 3
        0x02, 0x00, 0x00, 0x00,                    //           flags: depends_on 2 (sync)
        0, 0, 0x0B, 0xB8,                          //           composition offset +3000
        0, 0, 0x0B, 0xB8,                          //       [1] duration 3000
        0, 0, 0, 2,                                //           size 2
        0x01, 0x01, 0x00, 0x00,                    //           flags: depends_on 1, non-sync
        0xFF, 0xFF, 0xF4, 0x48,                    //           composition offset -3000
        0, 0, 0, 13, b'm', b'd', b'a', b't',       // mdat, 13 bytes
        0xAA, 0xBB, 0xCC, 0xDD, 0xEE,              //   sample data
    ];
    assert_eq!(&bytes[..], expected);
}

#[test]
fn cmaf_chunk_fields_parse_with_mp4_atom() {
    let idr = [0, 0, 0, 3, 0x65, 0x88, 0x84];
    let p = [0, 0, 0, 2, 0x41, 0x9A];
    let samples = [
        FragmentSample {
            duration: 3600,
            composition_offset: 7200,
            is_sync: true,
            data: &idr,
        },
        FragmentSample {
            duration: 3600,
            composition_offset: 3600,
            is_sync: false,
            data: &p,
        },
        FragmentSample {
            duration: 3600,
            composition_offset: 0,
            is_sync: false,
            data: &p,
        },
    ];
    let bytes = write_chunk(1, 1, 0, &samples);
    assert_chunk(&bytes, 1, 1, 0, &samples);
}

#[test]
fn cmaf_chunk_negative_composition_offsets_and_tfdt_beyond_32_bits_round_trip() {
    let data = [1, 2, 3, 4];
    let samples = [
        FragmentSample {
            duration: 1024,
            composition_offset: -1024,
            is_sync: true,
            data: &data,
        },
        FragmentSample {
            duration: 1,
            composition_offset: i32::MIN,
            is_sync: false,
            data: &data[..1],
        },
        FragmentSample {
            duration: u32::MAX,
            composition_offset: i32::MAX,
            is_sync: false,
            data: &[],
        },
    ];
    let tfdt = (1_u64 << 33) + 12_345;
    let bytes = write_chunk(u32::MAX, 9, tfdt, &samples);
    assert_chunk(&bytes, u32::MAX, 9, tfdt, &samples);

    let bytes = write_chunk(2, 9, u64::MAX, &samples[..1]);
    assert_chunk(&bytes, 2, 9, u64::MAX, &samples[..1]);
}

#[test]
fn cmaf_chunk_audio_every_sample_sync() {
    let frame = [0x21, 0x10, 0x04];
    let samples: Vec<_> = (0..4)
        .map(|_| FragmentSample {
            duration: 1024,
            composition_offset: 0,
            is_sync: true,
            data: &frame,
        })
        .collect();
    let bytes = write_chunk(5, 2, 48_000, &samples);
    assert_chunk(&bytes, 5, 2, 48_000, &samples);
}

#[test]
fn cmaf_chunk_without_samples_is_valid() {
    let bytes = write_chunk(1, 1, 0, &[]);
    assert_chunk(&bytes, 1, 1, 0, &[]);
}

#[test]
fn cmaf_chunk_zero_track_id_is_an_error() {
    assert_eq!(try_write_chunk(1, 0, 0, &[]), Err(CmafError::ZeroTrackId));
    assert!(write_chunk(1, 0, 0, &[]).is_empty());
}

/// Samples with arbitrary timing, flags and payloads (owned, borrowed into `FragmentSample`s).
fn arb_samples() -> impl Strategy<Value = Vec<(u32, i32, bool, Vec<u8>)>> {
    prop::collection::vec(
        (
            any::<u32>(),
            any::<i32>(),
            any::<bool>(),
            prop::collection::vec(any::<u8>(), 0..96),
        ),
        0..48,
    )
}

proptest! {
    #[test]
    fn cmaf_chunk_always_parses_and_mdat_holds_every_sample(
        sequence_number in any::<u32>(),
        track_id in 1..=u32::MAX,
        base_media_decode_time in any::<u64>(),
        owned in arb_samples(),
    ) {
        let samples: Vec<FragmentSample<'_>> = owned
            .iter()
            .map(|(duration, composition_offset, is_sync, data)| FragmentSample {
                duration: *duration,
                composition_offset: *composition_offset,
                is_sync: *is_sync,
                data,
            })
            .collect();
        let bytes = write_chunk(sequence_number, track_id, base_media_decode_time, &samples);

        let (moof, mdat) = decode_chunk(&bytes);
        let trun = &moof.traf[0].trun[0];
        let size_sum: u64 = trun.samples.iter().map(|entry| u64::from(entry.size.unwrap_or(0))).sum();
        prop_assert_eq!(size_sum, mdat.data.len() as u64);
        prop_assert_eq!(trun.data_offset, Some(first_box_len(&bytes) as i32 + 8));
        assert_chunk(&bytes, sequence_number, track_id, base_media_decode_time, &samples);
    }
}
