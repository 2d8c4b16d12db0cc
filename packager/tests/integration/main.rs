//! The packager's integration tests, in one binary, on synthetic streams checked with independent
//! parsers (`m3u8-rs`, `dash-mpd-core`, `mp4-atom`, the `openssl` command): the segmenter, live window
//! and LL-HLS rendering, the DASH MPD, HLS AES-128, timed events and the captions announcement.
//! Select one module with `cargo test -p packager --test integration dash::`.

#[path = "../common/mod.rs"]
mod common;

mod captions;
mod dash;
mod dvr;
mod encryption;
mod events;
mod segmenter;
