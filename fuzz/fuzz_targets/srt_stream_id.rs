#![no_main]
//! `protocols::fuzzing::srt_stream_id` under libFuzzer.
libfuzzer_sys::fuzz_target!(|data: &[u8]| protocols::fuzzing::srt_stream_id(data));
