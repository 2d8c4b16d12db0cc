#![no_main]
//! `estuary::fuzzing::rtmp_session` under libFuzzer.
libfuzzer_sys::fuzz_target!(|data: &[u8]| estuary::fuzzing::rtmp_session(data));
