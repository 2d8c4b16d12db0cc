#![no_main]
//! `estuary::fuzzing::flv_tags` under libFuzzer.
libfuzzer_sys::fuzz_target!(|data: &[u8]| estuary::fuzzing::flv_tags(data));
