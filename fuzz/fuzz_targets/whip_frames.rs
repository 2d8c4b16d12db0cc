#![no_main]
//! `estuary::fuzzing::whip_frames` under libFuzzer.
libfuzzer_sys::fuzz_target!(|data: &[u8]| estuary::fuzzing::whip_frames(data));
