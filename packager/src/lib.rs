//! Estuary's packager: segmenter, CMAF writer, LL-HLS rendering and the live window.
//!
//! Place in the data flow: frames from ingest (or the transcoder) go into a [`StreamPackager`], which cuts
//! each rendition into segments and parts ([`rendition`]), writes them as CMAF ([`cmaf`]) and keeps the
//! live window from which [`hls`] renders playlists, [`dash`] renders the MPD, and the origin serves objects.
//!
//! Sans-IO: no sockets, files, clocks, threads or FFmpeg; the wall-clock time is passed in. The HTTP
//! layer waits for parts using [`hls::blocking_decision`] and its own notification mechanism.

pub mod cenc;
pub mod cmaf;
pub mod config;
pub mod crypto;
pub mod dash;
pub mod events;
mod grid;
pub mod hls;
pub mod rendition;
pub mod stream;
pub mod urls;
pub mod vod;

pub use config::PackagerConfig;
pub use stream::{PeriodStart, StreamPackager, Update};
