#![no_main]
//! `estuary::fuzzing::hls_directives` under libFuzzer.
libfuzzer_sys::fuzz_target!(|data: &[u8]| estuary::fuzzing::hls_directives(data));
