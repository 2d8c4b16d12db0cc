//! Test helper: read one track's samples out of a real progressive MP4 through its sample tables
//! (ISO/IEC 14496-12 §8.6–8.7), using mp4-atom to parse the boxes.

use std::ops::Range;

use mp4_atom::{Any, Decode, FourCC, Trak};

/// One sample of the source file, in its track timescale.
pub(super) struct SourceSample {
    /// Decode timestamp (sum of earlier `stts` deltas).
    pub(super) dts: u64,
    /// `stts` delta.
    pub(super) duration: u32,
    /// `ctts` offset, read as signed 32-bit (0 without `ctts`).
    pub(super) composition_offset: i64,
    /// Listed in `stss` (or every sample without `stss`).
    pub(super) is_sync: bool,
    /// Byte range of the sample in the file.
    pub(super) range: Range<usize>,
}

/// The samples and timescale of a source track.
pub(super) struct SourceTrack {
    pub(super) timescale: u32,
    pub(super) samples: Vec<SourceSample>,
}

/// Read the first track with handler `handler` (`vide`, `soun`) from a whole MP4 file.
pub(super) fn read_track(file: &[u8], handler: &[u8; 4]) -> SourceTrack {
    let mut buf = file;
    let moov = loop {
        assert!(!buf.is_empty(), "source file has no moov");
        if let Any::Moov(moov) = Any::decode(&mut buf).expect("source file parses") {
            break moov;
        }
    };
    let trak = moov
        .trak
        .iter()
        .find(|trak| trak.mdia.hdlr.handler == FourCC::new(handler))
        .expect("source file has a track of that kind");
    SourceTrack {
        timescale: trak.mdia.mdhd.timescale,
        samples: expand_sample_tables(trak),
    }
}

fn expand_sample_tables(trak: &Trak) -> Vec<SourceSample> {
    let stbl = &trak.mdia.minf.stbl;
    let sizes: Vec<u32> = match &stbl.stsz.samples {
        mp4_atom::StszSamples::Identical { count, size } => vec![*size; *count as usize],
        mp4_atom::StszSamples::Different { sizes } => sizes.clone(),
    };
    let chunk_offsets: Vec<u64> = match (&stbl.stco, &stbl.co64) {
        (Some(stco), _) => stco
            .entries
            .iter()
            .map(|&offset| u64::from(offset))
            .collect(),
        (None, Some(co64)) => co64.entries.clone(),
        (None, None) => panic!("no chunk offsets"),
    };

    // Sample byte ranges: walk chunks, taking samples_per_chunk from the stsc run covering each chunk.
    let mut ranges = Vec::with_capacity(sizes.len());
    let mut next_sample = 0;
    for (chunk_index, &chunk_offset) in chunk_offsets.iter().enumerate() {
        let chunk_number = chunk_index as u32 + 1;
        let run = stbl
            .stsc
            .entries
            .iter()
            .rev()
            .find(|entry| entry.first_chunk <= chunk_number)
            .expect("stsc covers every chunk");
        let mut offset = chunk_offset as usize;
        for _ in 0..run.samples_per_chunk {
            let size = sizes[next_sample] as usize;
            ranges.push(offset..offset + size);
            offset += size;
            next_sample += 1;
        }
    }
    assert_eq!(ranges.len(), sizes.len(), "stsc and stsz agree");

    let durations: Vec<u32> = stbl
        .stts
        .entries
        .iter()
        .flat_map(|entry| std::iter::repeat_n(entry.sample_delta, entry.sample_count as usize))
        .collect();
    let offsets: Vec<i64> = match &stbl.ctts {
        Some(ctts) => ctts
            .entries
            .iter()
            .flat_map(|entry| {
                // Phone recordings store negative offsets in a version 0 ctts (read as u32); FFmpeg reads
                // them as signed, and so do we.
                let offset = i64::from(entry.sample_offset as u32 as i32);
                std::iter::repeat_n(offset, entry.sample_count as usize)
            })
            .collect(),
        None => vec![0; sizes.len()],
    };
    assert_eq!(durations.len(), sizes.len());
    assert_eq!(offsets.len(), sizes.len());

    let mut dts = 0;
    let mut samples = Vec::with_capacity(sizes.len());
    for (index, range) in ranges.into_iter().enumerate() {
        let is_sync = match &stbl.stss {
            Some(stss) => stss.entries.contains(&(index as u32 + 1)),
            None => true,
        };
        samples.push(SourceSample {
            dts,
            duration: durations[index],
            composition_offset: offsets[index],
            is_sync,
            range,
        });
        dts += u64::from(durations[index]);
    }
    samples
}
