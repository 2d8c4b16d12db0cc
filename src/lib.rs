//! Estuary: a live-streaming origin.

pub mod ingest;
