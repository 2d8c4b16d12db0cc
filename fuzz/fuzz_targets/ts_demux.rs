#![no_main]
//! `protocols::fuzzing::ts_demux` under libFuzzer.
libfuzzer_sys::fuzz_target!(|data: &[u8]| protocols::fuzzing::ts_demux(data));
