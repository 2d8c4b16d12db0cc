//! CMAF writer: the init segment (CMAF header) and CMAF chunks (`moof` + `mdat`) of one track.
//!
//! Place in the data flow: the segmenter hands this module a track description ([`media::TrackInfo`]) once
//! and then runs of samples with their timing; it returns the bytes that are published unchanged as HLS
//! parts/segments and DASH segments (the same objects serve both, ISO/IEC 23000-19 (CMAF) §7).
//!
//! Layout written (ISO/IEC 14496-12 box syntax; CMAF structural brand `cmfc`, ISO/IEC 23000-19 §7):
//!
//! ```text
//! init segment:  ftyp  moov { mvhd  mvex { trex }  trak { tkhd  mdia { mdhd  hdlr
//!                      minf { vmhd|smhd  dinf { dref { url } }
//!                             stbl { stsd { avc1{avcC} | hvc1{hvcC} | mp4a{esds} }  stts stsc stsz stco } } } } }
//! chunk:         moof { mfhd  traf { tfhd  tfdt(v1)  trun(v1) } }  mdat
//! ```
//!
//! Decisions (written down because players disagree about less common choices):
//! - `ftyp`: major brand `iso6`, minor version 0, compatible `iso6 cmfc mp41 dash`. No CMAF media profile
//!   brand (`cfhd`, `chh1`, `caac` …) is claimed: a passed-through source cannot promise their level and
//!   resolution limits.
//! - One track per file (CMAF header, ISO/IEC 23000-19 §7.3.2.1); the movie timescale is 1000 and every duration is 0 (live).
//! - HEVC uses `hvc1` (parameter sets only in `hvcC`, ISO/IEC 14496-15 §8.4.1), never `hev1`.
//! - Every sample carries its own duration, size, flags and composition offset in a version 1 `trun`
//!   (signed offsets, so `pts < dts` survives), and `tfhd` sets `default-base-is-moof` without a
//!   `base_data_offset` (CMAF §7.5.16), so a chunk is position independent: a segment is the concatenation
//!   of its chunks.
//!
//! What it deliberately does not do: no I/O, no timestamp bookkeeping (the caller supplies sequence numbers
//! and the base media decode time), no encryption boxes (CENC adds `tenc`/`senc` elsewhere), no edit lists.

mod chunk;
pub mod emsg;
mod init;
pub(crate) mod writer;

#[cfg(test)]
mod tests;

pub use chunk::{FragmentSample, try_write_chunk, try_write_protected_chunk, write_chunk};
pub use init::{
    common_pssh_box, try_write_init_segment, try_write_protected_init_segment, write_init_segment,
};

/// An error from writing a CMAF object: a value that the box syntax cannot represent.
///
/// None of these happen with well-formed input at live-streaming sizes; they exist so that malformed
/// input never panics or silently produces a corrupt file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CmafError {
    /// `track_ID` 0 is reserved (ISO/IEC 14496-12 §8.3.2.3).
    #[error("track id 0 is reserved")]
    ZeroTrackId,
    /// A media timescale of 0 ticks per second (ISO/IEC 14496-12 §8.4.2.3).
    #[error("timescale is 0")]
    ZeroTimescale,
    /// A video configuration without picture parameters.
    #[error("video configuration has no picture size")]
    MissingVideoParams,
    /// A codec the CMAF writer does not package (only H.264, HEVC and AAC; the others are transcoded).
    #[error("codec {0} cannot be packaged")]
    UnpackageableCodec(&'static str),
    /// A picture dimension beyond the 16-bit fields of `VisualSampleEntry` (ISO/IEC 14496-12 §12.1.3).
    #[error("picture size {width}x{height} exceeds 65535")]
    PictureTooLarge {
        /// Width in pixels.
        width: u32,
        /// Height in pixels.
        height: u32,
    },
    /// A decoder specific info too long for an MPEG-4 descriptor size (ISO/IEC 14496-1 §8.3.3).
    #[error("decoder specific info of {len_bytes} bytes is too long for a descriptor")]
    DescriptorTooLarge {
        /// Length of the descriptor body.
        len_bytes: usize,
    },
    /// A sample larger than the 32-bit `sample_size` of `trun` (ISO/IEC 14496-12 §8.8.8.2).
    #[error("sample {index} of {len_bytes} bytes exceeds the 32-bit sample size")]
    SampleTooLarge {
        /// Index of the sample in the chunk.
        index: usize,
        /// Its length.
        len_bytes: usize,
    },
    /// More samples than a 32-bit `sample_count`, or a `moof` too large for the 32-bit `data_offset`.
    #[error("{count} samples do not fit one trun")]
    TooManySamples {
        /// Number of samples given.
        count: usize,
    },
    /// A box whose size exceeds 32 bits where no 64-bit size is written.
    #[error("{fourcc} box exceeds 4 GiB")]
    BoxTooLarge {
        /// The box type.
        fourcc: FourCc,
    },
}

/// A box type (four-character code) for error messages.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct FourCc(pub [u8; 4]);

impl std::fmt::Display for FourCc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for &b in &self.0 {
            let c = if b.is_ascii_graphic() || b == b' ' {
                char::from(b)
            } else {
                '?'
            };
            write!(f, "{c}")?;
        }
        Ok(())
    }
}

impl std::fmt::Debug for FourCc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "FourCc({self})")
    }
}
