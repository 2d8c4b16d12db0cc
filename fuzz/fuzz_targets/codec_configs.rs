#![no_main]
//! `protocols::fuzzing::codec_configs` under libFuzzer.
libfuzzer_sys::fuzz_target!(|data: &[u8]| protocols::fuzzing::codec_configs(data));
