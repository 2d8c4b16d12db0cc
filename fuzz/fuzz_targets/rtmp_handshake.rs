#![no_main]
//! `protocols::fuzzing::rtmp_handshake` under libFuzzer.
libfuzzer_sys::fuzz_target!(|data: &[u8]| protocols::fuzzing::rtmp_handshake(data));
