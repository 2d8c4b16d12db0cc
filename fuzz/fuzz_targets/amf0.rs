#![no_main]
//! `estuary::fuzzing::amf0` under libFuzzer.
libfuzzer_sys::fuzz_target!(|data: &[u8]| estuary::fuzzing::amf0(data));
