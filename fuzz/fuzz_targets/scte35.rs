#![no_main]
//! `protocols::fuzzing::scte35` under libFuzzer.
libfuzzer_sys::fuzz_target!(|data: &[u8]| protocols::fuzzing::scte35(data));
