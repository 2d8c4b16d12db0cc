//! Response bodies: shared byte chunks, optionally followed by the chunks of a segment in progress.

use std::{
    collections::VecDeque,
    pin::Pin,
    task::{Context, Poll},
};

use bytes::Bytes;
use futures::Stream;
use hyper::body::{Body, Frame, SizeHint};

use super::*;

/// The rest of a segment still being produced: its next chunks as they appear, or an error when the
/// segment is abandoned (the response is then cut off, so no cache keeps it as complete).
pub type LiveTail = Pin<Box<dyn Stream<Item = Result<Bytes, OriginError>> + Send>>;

/// A response body made of shared byte chunks (a segment is sent as its parts, without copying),
/// optionally followed by a [`LiveTail`] (a segment in progress, sent with chunked transfer encoding).
#[derive(Default)]
pub struct ChunksBody {
    chunks: VecDeque<Bytes>,
    remaining: u64,
    tail: Option<LiveTail>,
    /// Counts the bytes as they are sent (`estuary_http_response_bytes_total`).
    pub(super) meter: Option<prometheus_client::metrics::counter::Counter>,
    /// Marks the connection busy until the body is dropped (sent, or abandoned).
    pub(super) in_flight: Option<InFlight>,
    /// The length of a proxied body, when the node that made it said.
    length: Option<u64>,
    /// Set for a complete media object made of the origin's own shared chunks (the same for every
    /// request): how long it stays in the live window, so it may be sent from a mirror (`zerocopy`).
    pub(super) shared_for: Option<std::time::Duration>,
}

impl std::fmt::Debug for ChunksBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChunksBody")
            .field("chunks", &self.chunks.len())
            .field("remaining", &self.remaining)
            .field("live", &self.tail.is_some())
            .finish()
    }
}

impl ChunksBody {
    /// A body of `chunks`, sent in order.
    pub fn new(chunks: impl IntoIterator<Item = Bytes>) -> Self {
        let chunks: VecDeque<Bytes> = chunks.into_iter().filter(|c| !c.is_empty()).collect();
        let remaining = chunks.iter().map(|c| c.len() as u64).sum();
        Self {
            chunks,
            remaining,
            tail: None,
            meter: None,
            in_flight: None,
            length: None,
            shared_for: None,
        }
    }

    /// This body, marked as one of the origin's shared media objects that stays in the live window
    /// for `lifetime`.
    pub(super) fn shared_for(mut self, lifetime: std::time::Duration) -> Self {
        self.shared_for = Some(lifetime);
        self
    }

    /// A shared media object's chunks (all of the body, nothing sent yet) and lifetime.
    pub(super) fn shared_chunks(&mut self) -> Option<(&[Bytes], std::time::Duration)> {
        let lifetime = self.shared_for?;
        if self.tail.is_some() {
            return None;
        }
        Some((self.chunks.make_contiguous(), lifetime))
    }

    /// A body passed on from another node, or read from a file: whatever `tail` yields, of `length`
    /// bytes when known.
    pub(super) fn proxied(tail: LiveTail, length: Option<u64>) -> Self {
        Self {
            tail: Some(tail),
            length,
            ..Self::default()
        }
    }

    /// A body of `chunks` followed by whatever `tail` yields (length unknown: chunked transfer).
    pub fn with_tail(chunks: impl IntoIterator<Item = Bytes>, tail: LiveTail) -> Self {
        Self {
            tail: Some(tail),
            ..Self::new(chunks)
        }
    }

    /// An empty body.
    pub fn empty() -> Self {
        Self::default()
    }
}

impl Body for ChunksBody {
    type Data = Bytes;
    type Error = OriginError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, OriginError>>> {
        if let Some(c) = self.chunks.pop_front() {
            self.remaining -= c.len() as u64;
            if let Some(m) = &self.meter {
                m.inc_by(c.len() as u64);
            }
            return Poll::Ready(Some(Ok(Frame::data(c))));
        }
        let Some(tail) = self.tail.as_mut() else {
            return Poll::Ready(None);
        };
        match tail.as_mut().poll_next(cx) {
            Poll::Ready(Some(Ok(c))) => {
                if let Some(m) = &self.meter {
                    m.inc_by(c.len() as u64);
                }
                Poll::Ready(Some(Ok(Frame::data(c))))
            }
            Poll::Ready(Some(Err(e))) => {
                self.tail = None;
                Poll::Ready(Some(Err(e)))
            }
            Poll::Ready(None) => {
                self.tail = None;
                Poll::Ready(None)
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.chunks.is_empty() && self.tail.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        if let (Some(length), Some(_)) = (self.length, &self.tail) {
            SizeHint::with_exact(length)
        } else if self.tail.is_some() {
            let mut h = SizeHint::new();
            h.set_lower(self.remaining);
            h
        } else {
            SizeHint::with_exact(self.remaining)
        }
    }
}
