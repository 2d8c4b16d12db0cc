//! The transcoder's integration tests, in one binary: decoders for every codec the ladder accepts,
//! the ladder on real fixtures (alignment, copy takeover, audio gaps), and the encoder probe. Select
//! one module with `cargo test -p transcoder --test integration ladder::`.

#[path = "../common/mod.rs"]
mod common;

mod decoders;
mod ladder;
mod probe;
