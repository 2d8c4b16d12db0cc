//! RTMP 1.0 (and Enhanced RTMP) as sans-IO state machines: the handshake (§5.2), the chunk stream
//! (§5.3), AMF0 values, and a server session that turns a connection's bytes into publish events.

pub mod amf;
pub mod chunk;
pub mod cue_point;
pub mod handshake;
pub mod session;
