#![no_main]
//! `estuary::fuzzing::rtmp_chunks` under libFuzzer.
libfuzzer_sys::fuzz_target!(|data: &[u8]| estuary::fuzzing::rtmp_chunks(data));
