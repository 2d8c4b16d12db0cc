//! The engine's way out: datagrams to the UDP socket (those the kernel would not take yet wait,
//! bounded) and frames to ICE-TCP connections.

use std::net::SocketAddr;

use super::Engine;

/// Datagrams the kernel would not take yet (its send buffer full), sent when the socket is writable
/// again; at most [`MAX_PENDING_BYTES`].
#[derive(Default)]
pub(super) struct Pending {
    pub(super) datagrams: std::collections::VecDeque<(SocketAddr, Vec<u8>, u64)>,
    pub(super) bytes: usize,
}

/// Most bytes waiting for the socket; beyond, datagrams are dropped (and the sessions they were for
/// are dropped to the next keyframe).
pub const MAX_PENDING_BYTES: usize = 8 * 1024 * 1024;

/// The UDP socket's kernel buffers asked for, bytes (each capped by `net.core.{w,r}mem_max`): a
/// keyframe to hundreds of viewers leaves at once.
pub const SOCKET_BUFFER_BYTES: usize = 4 * 1024 * 1024;

impl Engine {
    /// Send a datagram of session `id`, or queue it behind those the kernel has not taken yet.
    pub(super) fn send(&mut self, id: u64, destination: SocketAddr, contents: Vec<u8>) {
        if self.pending.datagrams.is_empty() {
            match self.socket.try_send_to(&contents, destination) {
                Ok(_) => return,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(error) => {
                    tracing::debug!(session = id, %error, "webrtc udp send failed");
                    return;
                }
            }
        }
        if self.pending.bytes + contents.len() > MAX_PENDING_BYTES {
            // The machine cannot send as fast as the viewers are fed: this one restarts at a keyframe.
            if let Some(s) = self.sessions.get_mut(&id) {
                Self::drop_to_keyframe(&self.stats, s);
            }
            return;
        }
        self.pending.bytes += contents.len();
        self.pending
            .datagrams
            .push_back((destination, contents, id));
    }

    /// Send a frame on the ICE-TCP connection from `destination`; a connection that cannot take it
    /// loses it, and the session restarts at a keyframe.
    pub(super) fn send_tcp(&mut self, id: u64, destination: SocketAddr, contents: Vec<u8>) {
        let Some(writer) = self.tcp.get(&destination) else {
            return;
        };
        if writer.try_send(contents).is_err()
            && let Some(s) = self.sessions.get_mut(&id)
        {
            Self::drop_to_keyframe(&self.stats, s);
        }
    }

    /// Send what waits, until the kernel's buffer is full again.
    pub(super) fn flush(&mut self) {
        while let Some((destination, contents, id)) = self.pending.datagrams.front() {
            match self.socket.try_send_to(contents, *destination) {
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
                Err(error) => tracing::debug!(session = id, %error, "webrtc udp send failed"),
                Ok(_) => {}
            }
            if let Some((_, contents, _)) = self.pending.datagrams.pop_front() {
                self.pending.bytes -= contents.len();
            }
        }
    }
}
