//! The few FFmpeg fields `ffmpeg-next` has no safe accessor for: codec extradata, a decoder's input audio
//! format.
//!
//! The only module with `unsafe` code; each block says why it is sound.
#![allow(unsafe_code)]

use ffmpeg_next::{Error, codec, ffi};

/// Give a (not yet opened) codec context a copy of `data` as its extradata (decoder configuration:
/// avcC, hvcC or AudioSpecificConfig), replacing any previous one.
pub(crate) fn set_extradata(ctx: &mut codec::Context, data: &[u8]) -> Result<(), Error> {
    let size = i32::try_from(data.len()).map_err(|_| Error::InvalidData)?;
    let padding = ffi::AV_INPUT_BUFFER_PADDING_SIZE as usize;
    // SAFETY: `av_mallocz` returns either null (checked) or a zeroed buffer of `data.len() + padding`
    // bytes, so copying `data.len()` bytes into it stays in bounds and the padding FFmpeg's bitstream
    // readers may over-read is zeroed, as `AVCodecContext.extradata` requires. The context pointer is
    // valid for the lifetime of `ctx`; a previous extradata buffer was allocated by FFmpeg (or by this
    // function) with `av_malloc` and is released with `av_freep` before being replaced. The context owns
    // the new buffer and frees it in `avcodec_free_context`.
    unsafe {
        let buf = ffi::av_mallocz(data.len() + padding).cast::<u8>();
        if buf.is_null() {
            return Err(Error::Other {
                errno: ffmpeg_next::error::ENOMEM,
            });
        }
        std::ptr::copy_nonoverlapping(data.as_ptr(), buf, data.len());
        let raw = ctx.as_mut_ptr();
        if !(*raw).extradata.is_null() {
            ffi::av_freep(std::ptr::addr_of_mut!((*raw).extradata).cast());
        }
        (*raw).extradata = buf;
        (*raw).extradata_size = size;
    }
    Ok(())
}

/// Give a (not yet opened) audio decoder context its input format: `sample_rate_hz` and FFmpeg's default
/// channel layout for `channels` (decoders of PCM, G.711, Flash ADPCM, Nellymoser and Speex need it; the
/// others read it from their bitstream and ignore it).
pub(crate) fn set_audio_format(
    ctx: &mut codec::Context,
    sample_rate_hz: u32,
    channels: u8,
) -> Result<(), Error> {
    let rate = i32::try_from(sample_rate_hz).map_err(|_| Error::InvalidData)?;
    if channels == 0 {
        return Err(Error::InvalidData);
    }
    // SAFETY: the context pointer is valid for the lifetime of `ctx`, which is not opened yet, so FFmpeg
    // reads these fields only later, in `avcodec_open2`. `ch_layout` is released with
    // `av_channel_layout_uninit` (a no-op on the zeroed layout of a new context) before
    // `av_channel_layout_default` fills it; neither allocates for a native-order default layout.
    unsafe {
        let raw = ctx.as_mut_ptr();
        (*raw).sample_rate = rate;
        ffi::av_channel_layout_uninit(std::ptr::addr_of_mut!((*raw).ch_layout));
        ffi::av_channel_layout_default(
            std::ptr::addr_of_mut!((*raw).ch_layout),
            i32::from(channels),
        );
    }
    Ok(())
}

/// A copy of a codec context's extradata (an opened encoder's global headers), empty if it has none.
pub(crate) fn extradata(ctx: &codec::Context) -> Vec<u8> {
    // SAFETY: the context pointer is valid for the lifetime of `ctx`. FFmpeg keeps `extradata` either
    // null or pointing to at least `extradata_size` bytes; both are checked before the slice is made,
    // and the bytes are copied out before `ctx` can be used mutably again.
    unsafe {
        let raw = ctx.as_ptr();
        let ptr = (*raw).extradata;
        let size = (*raw).extradata_size;
        if ptr.is_null() || size <= 0 {
            return Vec::new();
        }
        std::slice::from_raw_parts(ptr, size as usize).to_vec()
    }
}

/// True if the frame has its first data plane allocated (`av_frame_get_buffer` succeeded).
pub(crate) fn has_data(frame: &ffmpeg_next::Frame) -> bool {
    // SAFETY: the frame pointer is valid for the lifetime of `frame`; only the pointer value of
    // `data[0]` is read, never the memory behind it.
    unsafe {
        let raw = frame.as_ptr();
        !raw.is_null() && !(*raw).data[0].is_null()
    }
}

/// Whether nothing but `frame` references its picture buffers (`av_frame_is_writable`): an encoder
/// still holding a picture sent to it earlier makes that picture's frame not writable.
pub(crate) fn is_writable(frame: &ffmpeg_next::Frame) -> bool {
    // SAFETY: the frame pointer is valid for the lifetime of `frame`; `av_frame_is_writable` only
    // reads the frame's buffer references (its parameter is not `const` in FFmpeg 5.1).
    unsafe { ffmpeg_next::ffi::av_frame_is_writable(frame.as_ptr().cast_mut()) > 0 }
}

/// Give `dst` a copy of `src`'s closed captions (`AV_FRAME_DATA_A53_CC`: ATSC A/53 `cc_data` triples,
/// which the H.264, HEVC and MPEG-2 decoders export from the source's SEI or user data, and which
/// libx264 and NVENC write back as SEI), if `src` has any. A scaled picture is a new frame: without
/// this its captions would be lost. False if the side data could not be allocated.
pub(crate) fn copy_captions(src: &ffmpeg_next::Frame, dst: &mut ffmpeg_next::Frame) -> bool {
    use ffmpeg_next::frame::side_data::Type;
    let Some(cc) = src.side_data(Type::A53CC) else {
        return true;
    };
    let data = cc.data();
    let Some(mut new) = dst.new_side_data(Type::A53CC, data.len()) else {
        return false;
    };
    // SAFETY: `av_frame_new_side_data` allocated `data.len()` bytes at `new.data` (checked non-null
    // by `new_side_data`); the source slice belongs to another frame, so they do not overlap.
    unsafe {
        let raw = new.as_mut_ptr();
        if (*raw).data.is_null() || (*raw).size != data.len() as _ {
            return false;
        }
        std::ptr::copy_nonoverlapping(data.as_ptr(), (*raw).data, data.len());
    }
    true
}
