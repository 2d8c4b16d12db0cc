#![no_main]
//! `estuary::fuzzing::http_request` under libFuzzer.
libfuzzer_sys::fuzz_target!(|data: &[u8]| estuary::fuzzing::http_request(data));
