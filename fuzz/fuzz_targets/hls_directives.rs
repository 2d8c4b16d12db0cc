#![no_main]
//! `_HLS_msn`/`_HLS_part`/`_HLS_skip` query strings (`packager::hls::HlsDirectives`) under libFuzzer.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = packager::hls::HlsDirectives::parse(&String::from_utf8_lossy(data));
});
