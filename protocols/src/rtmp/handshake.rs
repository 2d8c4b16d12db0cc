//! Server side of the RTMP handshake (RTMP specification 1.0 §5.2: C0+C1 → S0+S1+S2 → C2), sans-IO,
//! using `rml_rtmp`'s [`Handshake`] (which also answers the Flash Player 9 digest variant).
//!
//! Robustness around the library: it is fed at most the 3073 bytes of C0+C1+C2 (anything after them is
//! returned to the caller as the first chunk stream bytes), its errors become [`HandshakeError`], and a
//! panic inside it is caught and reported instead of unwinding through the driver. The timeout is the
//! driver's job.

use rml_rtmp::handshake::{Handshake, HandshakeProcessResult, PeerType};

/// Size of C1 and C2 (§5.2.3, §5.2.4), bytes.
const PACKET_BYTES: usize = 1536;
/// C0 (1 byte) + C1 + C2, bytes: all the handshake a client sends.
pub const CLIENT_HANDSHAKE_BYTES: usize = 1 + 2 * PACKET_BYTES;
/// The only RTMP version accepted in C0 (§5.2.2; 6 would be RTMPE, which is not supported).
const RTMP_VERSION: u8 = 3;

/// Why a handshake failed. Fatal for the connection.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HandshakeError {
    /// C0 carries another version than 3 (e.g. garbage, TLS, HTTP, or encrypted RTMPE).
    #[error("unsupported rtmp version {0} in c0 (expected 3)")]
    BadVersion(u8),
    /// The handshake library rejected the input.
    #[error("handshake rejected: {0}")]
    Rejected(String),
    /// The handshake library panicked on the input.
    #[error("handshake library panicked")]
    Panicked,
    /// Input after the handshake completed (a driver bug).
    #[error("handshake already complete")]
    AlreadyComplete,
}

/// What one [`ServerHandshake::process`] call produced.
#[derive(Debug, PartialEq, Eq)]
pub enum HandshakeProgress {
    /// More client bytes are needed; send `response` (possibly empty) to the client.
    InProgress {
        /// Bytes to send (S0+S1+S2 once C0+C1 arrived).
        response: Vec<u8>,
    },
    /// The handshake is complete; send `response`, then feed `remaining` to the chunk decoder.
    Complete {
        /// Bytes to send.
        response: Vec<u8>,
        /// Client bytes that followed C2 (the start of the chunk stream).
        remaining: Vec<u8>,
    },
}

/// The server side of one connection's handshake.
pub struct ServerHandshake {
    inner: Handshake,
    /// Client bytes handed to `inner` so far (at most [`CLIENT_HANDSHAKE_BYTES`]).
    fed_bytes: usize,
    is_complete: bool,
    is_failed: bool,
}

impl std::fmt::Debug for ServerHandshake {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerHandshake")
            .field("fed_bytes", &self.fed_bytes)
            .finish()
    }
}

impl Default for ServerHandshake {
    fn default() -> Self {
        Self::new()
    }
}

impl ServerHandshake {
    /// A handshake waiting for C0+C1.
    pub fn new() -> Self {
        Self {
            inner: Handshake::new(PeerType::Server),
            fed_bytes: 0,
            is_complete: false,
            is_failed: false,
        }
    }

    /// Client bytes consumed so far, for acknowledgement accounting.
    pub fn consumed_bytes(&self) -> usize {
        self.fed_bytes
    }

    /// Process received client bytes. After an error, or after [`HandshakeProgress::Complete`], further
    /// calls return an error.
    pub fn process(&mut self, bytes: &[u8]) -> Result<HandshakeProgress, HandshakeError> {
        if self.is_complete || self.is_failed {
            return Err(HandshakeError::AlreadyComplete);
        }
        if self.fed_bytes == 0
            && let Some(&version) = bytes.first()
            && version != RTMP_VERSION
        {
            self.is_failed = true;
            return Err(HandshakeError::BadVersion(version));
        }
        let take = bytes.len().min(CLIENT_HANDSHAKE_BYTES - self.fed_bytes);
        let (ours, rest) = bytes.split_at(take);
        let inner = &mut self.inner;
        let result =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| inner.process_bytes(ours)));
        self.fed_bytes += take;
        let outcome = match result {
            Err(_) => Err(HandshakeError::Panicked),
            Ok(Err(rml_rtmp::handshake::HandshakeError::BadVersionId)) => Err(
                HandshakeError::BadVersion(ours.first().copied().unwrap_or(0)),
            ),
            Ok(Err(e)) => Err(HandshakeError::Rejected(e.to_string())),
            Ok(Ok(HandshakeProcessResult::InProgress { response_bytes })) => {
                Ok(HandshakeProgress::InProgress {
                    response: response_bytes,
                })
            }
            Ok(Ok(HandshakeProcessResult::Completed {
                response_bytes,
                mut remaining_bytes,
            })) => {
                self.is_complete = true;
                remaining_bytes.extend_from_slice(rest);
                Ok(HandshakeProgress::Complete {
                    response: response_bytes,
                    remaining: remaining_bytes,
                })
            }
        };
        if outcome.is_err() {
            self.is_failed = true;
        }
        outcome
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handshake_plain_client_completes_and_returns_trailing_bytes() {
        let mut hs = ServerHandshake::new();
        // C0 = 3, C1 = time(4) + zero(4) + 1528 bytes of pattern (no FP9 digest: the plain handshake).
        let mut c0c1 = vec![3u8];
        c0c1.extend((0..PACKET_BYTES).map(|i| if i < 8 { 0 } else { (i % 251) as u8 }));
        let response = match hs.process(&c0c1).unwrap() {
            HandshakeProgress::InProgress { response } => response,
            other => panic!("unexpected {other:?}"),
        };
        // S0 + S1 + S2; S2 echoes C1 for the plain handshake.
        assert_eq!(response.len(), CLIENT_HANDSHAKE_BYTES);
        assert_eq!(response[0], 3);
        assert_eq!(&response[1 + PACKET_BYTES..], &c0c1[1..]);
        // C2 echoes S1, followed by the first chunk bytes.
        let mut c2 = response[1..1 + PACKET_BYTES].to_vec();
        c2.extend_from_slice(&[0x02, 0xAA]);
        match hs.process(&c2).unwrap() {
            HandshakeProgress::Complete { remaining, .. } => assert_eq!(remaining, [0x02, 0xAA]),
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(hs.consumed_bytes(), CLIENT_HANDSHAKE_BYTES);
        assert_eq!(hs.process(&[1]), Err(HandshakeError::AlreadyComplete));
    }

    #[test]
    fn handshake_garbage_version_is_rejected() {
        let mut hs = ServerHandshake::new();
        assert_eq!(
            hs.process(b"GET / HTTP/1.1\r\n"),
            Err(HandshakeError::BadVersion(b'G'))
        );
        assert!(hs.process(&[3]).is_err());
    }

    #[test]
    fn handshake_byte_by_byte_feeding_completes() {
        let mut hs = ServerHandshake::new();
        let mut sent = Vec::new();
        let c0c1: Vec<u8> = std::iter::once(3)
            .chain((0..PACKET_BYTES).map(|i| (i * 7) as u8))
            .collect();
        for b in &c0c1 {
            if let HandshakeProgress::InProgress { response } = hs.process(&[*b]).unwrap() {
                sent.extend(response);
            }
        }
        assert_eq!(sent.len(), CLIENT_HANDSHAKE_BYTES);
        let c2 = sent[1..1 + PACKET_BYTES].to_vec();
        let mut done = false;
        for b in &c2 {
            done = matches!(
                hs.process(&[*b]).unwrap(),
                HandshakeProgress::Complete { .. }
            );
        }
        assert!(done);
    }
}
