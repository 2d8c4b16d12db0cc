#![no_main]
//! `protocols::fuzzing::amf0` under libFuzzer.
libfuzzer_sys::fuzz_target!(|data: &[u8]| protocols::fuzzing::amf0(data));
