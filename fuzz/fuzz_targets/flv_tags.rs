#![no_main]
//! `protocols::fuzzing::flv_tags` under libFuzzer.
libfuzzer_sys::fuzz_target!(|data: &[u8]| protocols::fuzzing::flv_tags(data));
