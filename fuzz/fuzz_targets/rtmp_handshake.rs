#![no_main]
//! `estuary::fuzzing::rtmp_handshake` under libFuzzer.
libfuzzer_sys::fuzz_target!(|data: &[u8]| estuary::fuzzing::rtmp_handshake(data));
