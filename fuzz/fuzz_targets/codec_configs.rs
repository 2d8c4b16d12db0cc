#![no_main]
//! `estuary::fuzzing::codec_configs` under libFuzzer.
libfuzzer_sys::fuzz_target!(|data: &[u8]| estuary::fuzzing::codec_configs(data));
