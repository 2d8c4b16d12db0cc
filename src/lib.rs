//! Estuary: a live-streaming origin.
//!
//! Place in the data flow: ingest drivers ([`ingest`]) accept publishes and feed each stream's packager
//! through the [`hub`]; the [`origin`] serves the packager's LL-HLS playlists and CMAF objects over HTTP.
//! [`auth`] decides who may play and publish; [`config`] resolves the settings; [`server`] wires everything together for `estuary serve`.

pub mod auth;
pub mod config;
pub mod fuzzing;
pub mod hub;
pub mod ingest;
pub mod keys;
pub mod ladder;
pub mod metrics;
pub mod msn_store;
pub mod origin;
pub mod player;
pub mod server;
pub mod track_gate;
