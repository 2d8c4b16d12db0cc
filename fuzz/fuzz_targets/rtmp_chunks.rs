#![no_main]
//! `protocols::fuzzing::rtmp_chunks` under libFuzzer.
libfuzzer_sys::fuzz_target!(|data: &[u8]| protocols::fuzzing::rtmp_chunks(data));
