#![no_main]
//! `protocols::fuzzing::rtmp_session` under libFuzzer.
libfuzzer_sys::fuzz_target!(|data: &[u8]| protocols::fuzzing::rtmp_session(data));
