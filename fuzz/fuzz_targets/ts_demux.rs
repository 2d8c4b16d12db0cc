#![no_main]
//! `estuary::fuzzing::ts_demux` under libFuzzer.
libfuzzer_sys::fuzz_target!(|data: &[u8]| estuary::fuzzing::ts_demux(data));
