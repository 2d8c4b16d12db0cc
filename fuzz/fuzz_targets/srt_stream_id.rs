#![no_main]
//! `estuary::fuzzing::srt_stream_id` under libFuzzer.
libfuzzer_sys::fuzz_target!(|data: &[u8]| estuary::fuzzing::srt_stream_id(data));
