//! Estuary's integration tests, in one binary (one link of the origin and FFmpeg, one process per test
//! under nextest): real publishers (FFmpeg, GStreamer, `srt-live-transmit`) into a real origin, played
//! by real clients (hls.js, dash.js and Shaka in headless Chromium, FFmpeg, GStreamer, nginx as a CDN),
//! plus the ingest, demuxer and fuzz-corpus checks that need the fixtures.
//!
//! One module per concern; select one with a filter, e.g. `cargo nextest run -E 'test(/^dash::/)'` or
//! `cargo test --test e2e dash::`. `.config/nextest.toml` runs the real-time ones one at a time.
#![allow(missing_docs)]

mod common;

mod auth;
mod captions;
mod cdn;
mod cluster;
mod codecs;
mod cue_points;
mod dash;
mod dvr;
mod encryption;
mod events;
mod fuzz_smoke;
mod hls;
mod hostile;
mod ladder;
mod lifecycle;
mod matrix;
mod ops;
mod recording;
mod rtmp_ingest;
mod slice_headers;
mod srt;
mod srt_ingest;
mod ts_demux;
mod webrtc;
