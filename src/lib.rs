//! Estuary: a live-streaming origin.
//!
//! Place in the data flow: ingest drivers ([`ingest`]) accept publishes and feed each stream's packager
//! through the [`hub`] (stream control: the ladder wiring, content keys, media sequence number
//! reservations, track checks, reports); [`http`] serves the packager's LL-HLS playlists, MPDs and
//! CMAF objects. [`auth`] decides who may play and publish; [`metrics`] exports counters; [`player`]
//! is the player page; [`config`] resolves the settings; [`server`] wires everything together for
//! `estuary serve`; [`cluster`] makes several origins one service (stream ownership in Redis). [`vocab`] is the shared vocabulary at the bottom of the import graph; the protocol
//! cores are the `protocols` crate.

pub mod auth;
pub mod cluster;
pub mod config;
#[doc(hidden)]
pub mod fuzzing;
pub mod http;
pub mod hub;
pub mod ingest;
pub mod metrics;
pub mod player;
pub mod recording;
pub mod server;
pub mod vocab;
pub mod webrtc;
