#![no_main]
//! `estuary::fuzzing::token` under libFuzzer.
libfuzzer_sys::fuzz_target!(|data: &[u8]| estuary::fuzzing::token(data));
