//! HTTP/1.1 connections on the origin's own connection loop (RFC 9112), for the requests players and
//! CDNs make: a `GET`, `HEAD`, `OPTIONS`, `DELETE` or a `POST` with a `Content-Length` body.
//!
//! Why not hyper's HTTP/1 connection: hyper keeps a 16 KiB read buffer and an 8 KiB write buffer for
//! each connection's whole life, sizes a server cannot change, so 10 000 players parked on blocking
//! playlist reloads held 21 kB each (docs/benchmarks.md, "LL-HLS load"). Here a connection holds no
//! buffer while it waits: its request head is read into a buffer that is freed once the head is
//! parsed (`httparse`), the request is answered by [`Origin::handle`] as before (the same routes,
//! checks and responses), and the response is written straight from its shared [`Bytes`] chunks with
//! `writev`, behind a head encoded per response.
//!
//! Anything else goes to hyper on the same connection, from the request that needs it on: HTTP/2 (by
//! its preface), HTTP/1.0, `Transfer-Encoding` or `Expect` on a request, `Upgrade`, a body over
//! [`MAX_BODY_BYTES`].
//!
//! Framing of responses (RFC 9112 §6): `Content-Length` when the body's length is known (the handler's
//! own value for `HEAD`), else `Transfer-Encoding: chunked` (a segment still in progress); no body for
//! 1xx, 204 and 304. A body that fails half-way (an abandoned segment) closes the connection without
//! the last chunk, so that no cache keeps it as complete. `Connection: close` is honoured, and sent
//! when the origin is shutting down.

use std::{io::IoSlice, net::SocketAddr, sync::Arc, time::Duration};

use bytes::{Bytes, BytesMut};
use hyper::{
    Request, Response, StatusCode, Version,
    body::Body,
    header::{self, HeaderName, HeaderValue},
};
use tokio::net::TcpStream;

use super::*;

/// Largest request head, bytes (431 beyond).
pub(super) const MAX_HEAD_BYTES: usize = 16 * 1024;
/// Most header fields in a request (431 beyond).
const MAX_HEADERS: usize = 64;
/// Largest request body read here, bytes; a longer one goes to hyper, which streams it to the
/// handler (whose own limit then answers).
pub(super) const MAX_BODY_BYTES: usize = 256 * 1024;
/// Bytes read from the socket at a time (each worker thread's read buffer).
const READ_CHUNK: usize = 8192;
/// Slices per `writev` call (an array of them on the stack while a write is tried).
const MAX_IOV: usize = 16;

/// How a connection loop ended.
pub(super) enum Ended {
    /// Closed (by either side, an error, a timeout or the shutdown).
    Closed,
    /// The rest of the connection is for hyper: `prefix` holds the bytes read but not consumed
    /// (from the start of the request hyper must answer).
    HandOff { stream: TcpStream, prefix: Bytes },
}

/// One parsed request head, copied out of the read buffer.
struct Head {
    request: Request<()>,
    body_len: usize,
    close: bool,
}

// Returned once per request and consumed at once: boxing the head would cost an allocation each.
#[allow(clippy::large_enum_variant)]
/// What to do with a complete request head.
enum Parsed {
    Request(Head),
    /// Only hyper answers this one.
    HandOff,
}

/// Parse the head at the start of `buf`: `Ok(None)` while incomplete, else its length and what to do;
/// `Err` with the status to answer (then close) for a malformed or oversized head.
fn parse_head(buf: &[u8]) -> Result<Option<(usize, Parsed)>, StatusCode> {
    let mut fields = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut fields);
    let n = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if buf.len() > MAX_HEAD_BYTES => {
            return Err(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
        }
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => {
            return Err(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
        }
        Err(_) => return Err(StatusCode::BAD_REQUEST),
    };
    if n > MAX_HEAD_BYTES {
        return Err(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
    }
    if req.version != Some(1) {
        return Ok(Some((n, Parsed::HandOff)));
    }
    let (Some(method), Some(path)) = (req.method, req.path) else {
        return Err(StatusCode::BAD_REQUEST);
    };
    // One copy of the head: the target and the field values are slices of it (one allocation per
    // request, not one per field).
    let shared = Bytes::copy_from_slice(&buf[..n]);
    // httparse returns slices of `buf`; anything else (never seen) is copied rather than trusted.
    let slice_of = |part: &[u8]| match (part.as_ptr() as usize).checked_sub(buf.as_ptr() as usize) {
        Some(start) if start + part.len() <= n => shared.slice(start..start + part.len()),
        _ => Bytes::copy_from_slice(part),
    };
    let mut request = Request::new(());
    *request.method_mut() = method.parse().map_err(|_| StatusCode::BAD_REQUEST)?;
    *request.uri_mut() = hyper::Uri::from_maybe_shared(slice_of(path.as_bytes()))
        .map_err(|_| StatusCode::BAD_REQUEST)?;
    *request.version_mut() = Version::HTTP_11;
    let mut body_len = 0usize;
    let mut close = false;
    let headers = request.headers_mut();
    headers.reserve(req.headers.len());
    for field in req.headers.iter() {
        let name =
            HeaderName::from_bytes(field.name.as_bytes()).map_err(|_| StatusCode::BAD_REQUEST)?;
        let value = HeaderValue::from_maybe_shared(slice_of(field.value))
            .map_err(|_| StatusCode::BAD_REQUEST)?;
        if name == header::TRANSFER_ENCODING || name == header::EXPECT || name == header::UPGRADE {
            return Ok(Some((n, Parsed::HandOff)));
        }
        if name == header::CONTENT_LENGTH {
            let len: usize = value
                .to_str()
                .ok()
                .and_then(|v| v.trim().parse().ok())
                .ok_or(StatusCode::BAD_REQUEST)?;
            // Two different lengths are a smuggling attempt (RFC 9112 §6.3).
            if headers.contains_key(header::CONTENT_LENGTH) && len != body_len {
                return Err(StatusCode::BAD_REQUEST);
            }
            if len > MAX_BODY_BYTES {
                return Ok(Some((n, Parsed::HandOff)));
            }
            body_len = len;
        }
        if name == header::CONNECTION
            && value
                .to_str()
                .is_ok_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case("close")))
        {
            close = true;
        }
        headers.append(name, value);
    }
    Ok(Some((
        n,
        Parsed::Request(Head {
            request,
            body_len,
            close,
        }),
    )))
}

/// Serve HTTP/1.1 requests on `stream` until it closes, the origin shuts down, the connection has
/// been idle for `idle` (no request started; also the time allowed for a request's head and body to
/// arrive), or a request needs hyper ([`Ended::HandOff`]).
pub(super) async fn serve_connection(
    mut stream: TcpStream,
    peer: SocketAddr,
    origin: Arc<Origin>,
    mut stopping: tokio::sync::watch::Receiver<bool>,
    idle: Duration,
) -> Ended {
    let activity = Arc::new(ConnActivity::new());
    // Bytes read and not consumed yet; empty (no allocation) while a request is answered or the
    // connection waits for the next one, unless the client pipelined.
    let mut buf = BytesMut::new();
    loop {
        // The next request, head and body.
        let deadline = tokio::time::Instant::now() + idle;
        let (head, body) = loop {
            if !buf.is_empty() {
                match take_request(&buf) {
                    Ok(Some(Taken::Request {
                        consumed,
                        head,
                        body,
                    })) => {
                        let body = Bytes::copy_from_slice(&buf[body]);
                        let _ = buf.split_to(consumed);
                        if buf.is_empty() {
                            // Free the buffer while the request is answered (a blocking reload
                            // may wait seconds).
                            buf = BytesMut::new();
                        }
                        break (head, body);
                    }
                    Ok(Some(Taken::HandOff)) => {
                        return Ended::HandOff {
                            stream,
                            prefix: buf.freeze(),
                        };
                    }
                    Ok(None) => {}
                    Err(status) => {
                        let _ = write_refusal(&mut stream, status).await;
                        return Ended::Closed;
                    }
                }
            }
            let readable = tokio::select! {
                r = tokio::time::timeout_at(deadline, stream.readable()) => r,
                // Between requests a shutdown closes the connection at once (nothing in flight).
                _ = stopping.changed(), if buf.is_empty() => return Ended::Closed,
            };
            match readable {
                Ok(Ok(())) => {}
                Ok(Err(_)) => return Ended::Closed,
                Err(_) => {
                    if !buf.is_empty() {
                        let _ = write_refusal(&mut stream, StatusCode::REQUEST_TIMEOUT).await;
                    }
                    return Ended::Closed;
                }
            }
            match read_request(&stream, &mut buf) {
                Read::Closed => return Ended::Closed,
                Read::Nothing => {}
                Read::Request(head, body) => break (head, body),
            }
        };
        let is_head = head.request.method() == hyper::Method::HEAD;
        let (parts, ()) = head.request.into_parts();
        let request = Request::from_parts(parts, http_body_util::Full::new(body));
        let in_flight = InFlight::new(activity.clone(), origin.in_flight.clone());
        // Boxed: the handler's future exists only while a request is answered. A client that
        // closes its connection while its request waits (a blocking reload) frees it at once.
        let handled = tokio::select! {
            biased;
            r = Box::pin(origin.clone().handle(request, Some(peer))) => r,
            () = client_gone(&stream) => return Ended::Closed,
        };
        let Ok(mut response) = handled;
        let close = head.close || *stopping.borrow();
        if write_response(
            &mut stream,
            &mut response,
            is_head,
            close,
            Some(&origin.mirrors),
        )
        .await
        .is_err()
            || close
        {
            return Ended::Closed;
        }
        drop(in_flight);
    }
}

// Returned once per request and consumed at once: boxing the head would cost an allocation each.
#[allow(clippy::large_enum_variant)]
/// What [`take_request`] found at the start of the bytes read.
enum Taken {
    /// A whole request: its head, and where its body is, in the first `consumed` bytes.
    Request {
        consumed: usize,
        head: Head,
        body: std::ops::Range<usize>,
    },
    /// A request only hyper answers.
    HandOff,
}

/// The request at the start of `data`, if its head and body are all there (`Ok(None)`: not yet);
/// `Err` with the status to answer for a malformed or oversized head.
fn take_request(data: &[u8]) -> Result<Option<Taken>, StatusCode> {
    match parse_head(data)? {
        None => Ok(None),
        Some((_, Parsed::HandOff)) => Ok(Some(Taken::HandOff)),
        Some((n, Parsed::Request(head))) => {
            let end = n + head.body_len;
            Ok((data.len() >= end).then_some(Taken::Request {
                consumed: end,
                head,
                body: n..end,
            }))
        }
    }
}

/// Parse `data` as the bytes a client sent (for the fuzz target): the request at its start when
/// whole, its method and target, or why not. Never panics.
pub(crate) fn parse_for_fuzzing(data: &[u8]) -> Option<(hyper::Method, hyper::Uri, usize)> {
    match take_request(data) {
        Ok(Some(Taken::Request { head, body, .. })) => Some((
            head.request.method().clone(),
            head.request.uri().clone(),
            body.len(),
        )),
        _ => None,
    }
}

// Returned once per request and consumed at once: boxing the head would cost an allocation each.
#[allow(clippy::large_enum_variant)]
/// What one read brought.
enum Read {
    /// End of stream, or a socket error.
    Closed,
    /// Nothing ready after all, or bytes kept in the connection's buffer.
    Nothing,
    /// A whole request, taken straight from the read.
    Request(Head, Bytes),
}

thread_local! {
    /// Each worker thread's read buffer: a request that arrives whole (the usual case) is parsed
    /// from here, and the connection keeps no buffer of its own.
    static SCRATCH: std::cell::RefCell<Box<[u8]>> =
        std::cell::RefCell::new(vec![0u8; READ_CHUNK].into_boxed_slice());
}

/// One non-blocking read of up to [`READ_CHUNK`] bytes. With nothing buffered before, a whole
/// request in it is returned (anything after it is kept in `buf`); otherwise the bytes are added to
/// `buf` (then parsed, or refused, from there).
fn read_request(stream: &TcpStream, buf: &mut BytesMut) -> Read {
    SCRATCH.with_borrow_mut(|scratch| {
        let n = match stream.try_read(scratch) {
            Ok(0) => return Read::Closed,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Read::Nothing,
            Err(_) => return Read::Closed,
        };
        let data = &scratch[..n];
        if buf.is_empty()
            && let Ok(Some(Taken::Request {
                consumed,
                head,
                body,
            })) = take_request(data)
        {
            let body = Bytes::copy_from_slice(&data[body]);
            buf.extend_from_slice(&data[consumed..]);
            return Read::Request(head, body);
        }
        buf.extend_from_slice(data);
        Read::Nothing
    })
}

/// Answer a request that could not be read (`status`) and close.
async fn write_refusal(stream: &mut TcpStream, status: StatusCode) -> std::io::Result<()> {
    let mut response = error_response(&match status {
        StatusCode::BAD_REQUEST => OriginError::BadRequest("malformed request"),
        StatusCode::REQUEST_TIMEOUT => OriginError::Unavailable("request not sent in time"),
        _ => OriginError::BadRequest("request head too large"),
    });
    *response.status_mut() = status;
    write_response(stream, &mut response, false, true, None).await
}

/// How a response body is delimited (RFC 9112 §6).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Framing {
    /// No body at all (HEAD, 1xx, 204, 304).
    None,
    /// `Content-Length` bytes.
    Length,
    /// `Transfer-Encoding: chunked`.
    Chunked,
}

/// The response's status line and header fields, with `Date`, the framing and `Connection: close`
/// added as needed, into `out`.
fn encode_head(
    response: &Response<ChunksBody>,
    is_head: bool,
    close: bool,
    out: &mut Vec<u8>,
) -> Framing {
    let status = response.status();
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(status.canonical_reason().unwrap_or("").as_bytes());
    out.extend_from_slice(b"\r\n");
    let headers = response.headers();
    for (name, value) in headers {
        // Framing is this layer's: a handler's Transfer-Encoding or Connection is not passed on.
        if name == header::TRANSFER_ENCODING || name == header::CONNECTION {
            continue;
        }
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    if !headers.contains_key(header::DATE) {
        out.extend_from_slice(b"date: ");
        DATE.with(|d| out.extend_from_slice(d.borrow_mut().now()));
        out.extend_from_slice(b"\r\n");
    }
    let no_body = status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED;
    let framing = if no_body {
        Framing::None
    } else if headers.contains_key(header::CONTENT_LENGTH) {
        Framing::Length
    } else if let Some(len) = response.body().size_hint().exact()
        && !(is_head && len == 0)
    {
        // Into `out` directly (`Vec<u8>` as `io::Write` cannot fail).
        let _ = std::io::Write::write_fmt(out, format_args!("content-length: {len}\r\n"));
        Framing::Length
    } else if is_head {
        // A HEAD whose body was left out and whose length is not known (a segment in progress):
        // neither a length nor chunked framing (RFC 9110 §9.3.2, §8.6).
        Framing::None
    } else {
        out.extend_from_slice(b"transfer-encoding: chunked\r\n");
        Framing::Chunked
    };
    if close {
        out.extend_from_slice(b"connection: close\r\n");
    }
    out.extend_from_slice(b"\r\n");
    if is_head { Framing::None } else { framing }
}

/// Write `response`: a complete media object from its mirror in `mirrors` with `sendfile`
/// ([`zerocopy`]); any other body as its head and the chunks ready now in one `writev`, then each
/// chunk of a body still being produced as it comes. An error from the body (or the socket) is
/// returned, and the connection must then be closed.
async fn write_response(
    stream: &mut TcpStream,
    response: &mut Response<ChunksBody>,
    is_head: bool,
    close: bool,
    mirrors: Option<&zerocopy::MirrorCache>,
) -> std::io::Result<()> {
    let mut head = Vec::with_capacity(384);
    let framing = encode_head(response, is_head, close, &mut head);
    let body = response.body_mut();
    if framing == Framing::Length
        && let Some(mirrors) = mirrors
        && let Some((chunks, lifetime)) = body.shared_chunks()
    {
        let len: u64 = chunks.iter().map(|c| c.len() as u64).sum();
        if let Some(file) = mirrors.mirror(chunks, len, lifetime) {
            zerocopy::send_head_and_file(stream, &head, &file, len).await?;
            if let Some(m) = &body.meter {
                m.inc_by(len);
            }
            return Ok(());
        }
    }
    // The head goes out from this buffer with the first write: no `Bytes` of it.
    let mut head: &[u8] = &head;
    let mut out: Vec<Bytes> = Vec::new();
    if framing == Framing::None {
        return write_all(stream, &mut head, &mut out).await;
    }
    loop {
        // Whatever the body has ready, in one write.
        let mut done = false;
        loop {
            match futures::FutureExt::now_or_never(http_body_util::BodyExt::frame(body)) {
                Some(Some(Ok(frame))) => {
                    if let Ok(data) = frame.into_data() {
                        push_data(&mut out, data, framing);
                    }
                }
                Some(Some(Err(e))) => {
                    write_all(stream, &mut head, &mut out).await?;
                    return Err(std::io::Error::other(e));
                }
                Some(None) => {
                    done = true;
                    break;
                }
                None => break,
            }
        }
        if done {
            if framing == Framing::Chunked {
                out.push(Bytes::from_static(b"0\r\n\r\n"));
            }
            return write_all(stream, &mut head, &mut out).await;
        }
        write_all(stream, &mut head, &mut out).await?;
        // Then wait for the next chunk of a body in progress, or for the client to leave.
        let next = tokio::select! {
            biased;
            next = http_body_util::BodyExt::frame(body) => next,
            () = client_gone(stream) => {
                return Err(std::io::ErrorKind::ConnectionAborted.into());
            }
        };
        match next {
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    push_data(&mut out, data, framing);
                }
            }
            Some(Err(e)) => return Err(std::io::Error::other(e)),
            None => {
                if framing == Framing::Chunked {
                    out.push(Bytes::from_static(b"0\r\n\r\n"));
                }
                return write_all(stream, &mut head, &mut out).await;
            }
        }
    }
}

/// Resolves when the client has closed its connection (end of stream, or a socket error) while
/// its request is answered. Bytes from the client (a pipelined request, read once this response is
/// written) stop the watch: it then never resolves. Hyper's HTTP/1 server frees such requests the
/// same way (no half-closed connections).
async fn client_gone(stream: &TcpStream) {
    let mut byte = [0u8; 1];
    match stream.peek(&mut byte).await {
        Ok(0) | Err(_) => {}
        Ok(_) => std::future::pending().await,
    }
}

/// Queue one data chunk, framed as a chunk when the body is chunked.
fn push_data(out: &mut Vec<Bytes>, data: Bytes, framing: Framing) {
    if data.is_empty() {
        return;
    }
    if framing == Framing::Chunked {
        out.push(Bytes::from(format!("{:x}\r\n", data.len())));
        out.push(data);
        out.push(Bytes::from_static(b"\r\n"));
    } else {
        out.push(data);
    }
}

/// Write every byte of `head`, then of `out`, with `writev` (no copy of the chunks), leaving both
/// empty. The slices are gathered anew for each try, so that the waiting future holds none.
async fn write_all(
    stream: &TcpStream,
    head: &mut &[u8],
    out: &mut Vec<Bytes>,
) -> std::io::Result<()> {
    let mut first = 0;
    loop {
        let written = {
            let mut slices = [IoSlice::new(&[]); MAX_IOV];
            let mut k = 0;
            if !head.is_empty() {
                slices[0] = IoSlice::new(head);
                k = 1;
            }
            for chunk in out[first..].iter().take(MAX_IOV - k) {
                slices[k] = IoSlice::new(chunk);
                k += 1;
            }
            if k == 0 {
                break;
            }
            stream.try_write_vectored(&slices[..k])
        };
        let mut n = match written {
            Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                stream.writable().await?;
                continue;
            }
            Err(e) => return Err(e),
        };
        let from_head = n.min(head.len());
        *head = &head[from_head..];
        n -= from_head;
        while n > 0 {
            let len = out[first].len();
            if n >= len {
                n -= len;
                first += 1;
            } else {
                let _ = out[first].split_to(n);
                n = 0;
            }
        }
    }
    out.clear();
    Ok(())
}

/// The `Date` value (RFC 9110 §6.6.1), rendered once per second per thread.
struct DateCache {
    second: u64,
    text: String,
}

impl DateCache {
    fn now(&mut self) -> &[u8] {
        let now = std::time::SystemTime::now();
        let second = now
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        if second != self.second || self.text.is_empty() {
            self.second = second;
            self.text = httpdate::fmt_http_date(now);
        }
        self.text.as_bytes()
    }
}

thread_local! {
    static DATE: std::cell::RefCell<DateCache> = const {
        std::cell::RefCell::new(DateCache { second: 0, text: String::new() })
    };
}

/// A socket whose first bytes come from `prefix` (read by [`serve_connection`] before it handed the
/// connection to hyper).
pub(super) struct Prefixed<T> {
    pub(super) prefix: Bytes,
    pub(super) inner: T,
}

impl<T: tokio::io::AsyncRead + Unpin> tokio::io::AsyncRead for Prefixed<T> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        if !self.prefix.is_empty() {
            let n = self.prefix.len().min(buf.remaining());
            let head = self.prefix.split_to(n);
            buf.put_slice(&head);
            return std::task::Poll::Ready(Ok(()));
        }
        std::pin::Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite for Prefixed<T> {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heads_are_parsed_or_handed_off() {
        let buf =
            b"GET /live/a/index.m3u8?x=1 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\nrest";
        let Ok(Some((n, Parsed::Request(head)))) = parse_head(buf) else {
            panic!("not parsed");
        };
        assert_eq!(&buf[n..], b"rest");
        assert_eq!(head.request.uri().path(), "/live/a/index.m3u8");
        assert_eq!(head.request.uri().query(), Some("x=1"));
        assert!(head.close);
        assert_eq!(head.body_len, 0);

        // The target and the values are slices of one copy of the head; an empty value and a
        // repeated field are kept as sent.
        let buf = b"GET /t/tok/live/a/v/media.m3u8?_HLS_msn=4 HTTP/1.1\r\nHost: a\r\nX-Empty:\r\n\
                    Accept: a/b\r\nAccept: c/d \r\n\r\n";
        let Ok(Some((n, Parsed::Request(head)))) = parse_head(buf) else {
            panic!("not parsed");
        };
        assert_eq!(n, buf.len());
        let request = &head.request;
        assert_eq!(request.uri().path(), "/t/tok/live/a/v/media.m3u8");
        assert_eq!(request.uri().query(), Some("_HLS_msn=4"));
        assert_eq!(request.headers()["x-empty"], "");
        let accept: Vec<_> = request.headers().get_all("accept").iter().collect();
        assert_eq!(accept, ["a/b", "c/d"]);

        assert!(matches!(
            parse_head(b"GET / HTTP/1.1\r\nHost: a\r\n"),
            Ok(None)
        ));
        for handed in [
            &b"GET / HTTP/1.0\r\n\r\n"[..],
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"POST / HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n",
            b"POST / HTTP/1.1\r\nContent-Length: 999999999\r\n\r\n",
        ] {
            assert!(matches!(parse_head(handed), Ok(Some((_, Parsed::HandOff)))));
        }
        let Ok(Some((_, Parsed::Request(post)))) =
            parse_head(b"POST /w HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello")
        else {
            panic!("not parsed");
        };
        assert_eq!(post.body_len, 5);
    }

    #[test]
    fn bad_heads_are_refused() {
        assert_eq!(
            parse_head(b"GET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n").err(),
            Some(StatusCode::BAD_REQUEST)
        );
        assert_eq!(
            parse_head(b"GET / HTTP/1.1\r\nContent-Length: x\r\n\r\n").err(),
            Some(StatusCode::BAD_REQUEST)
        );
        assert_eq!(
            parse_head(b"\x00\x01 / HTTP/1.1\r\n\r\n").err(),
            Some(StatusCode::BAD_REQUEST)
        );
        let long = [
            b"GET / HTTP/1.1\r\nX: ".as_slice(),
            &[b'a'; MAX_HEAD_BYTES + 10],
        ]
        .concat();
        assert_eq!(
            parse_head(&long).err(),
            Some(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE)
        );
    }

    #[test]
    fn heads_are_framed() {
        let mut out = Vec::new();
        let r = Response::new(ChunksBody::new([Bytes::from_static(b"abc")]));
        assert!(encode_head(&r, false, false, &mut out) == Framing::Length);
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
        assert!(text.contains("content-length: 3\r\n"), "{text}");
        assert!(text.contains("date: "), "{text}");
        assert!(text.ends_with("\r\n\r\n"));

        let mut out = Vec::new();
        let tail: LiveTail = Box::pin(futures::stream::empty());
        let r = Response::new(ChunksBody::with_tail([], tail));
        assert!(encode_head(&r, false, true, &mut out) == Framing::Chunked);
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("transfer-encoding: chunked\r\n"), "{text}");
        assert!(text.contains("connection: close\r\n"), "{text}");

        let mut out = Vec::new();
        let mut r = Response::new(ChunksBody::empty());
        r.headers_mut()
            .insert(header::CONTENT_LENGTH, HeaderValue::from(10u64));
        assert!(encode_head(&r, true, false, &mut out) == Framing::None);
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("content-length: 10\r\n"), "{text}");

        // HEAD of a segment in progress: the body was left out and has no length yet.
        let mut out = Vec::new();
        let r = Response::new(ChunksBody::empty());
        assert!(encode_head(&r, true, false, &mut out) == Framing::None);
        let text = String::from_utf8(out).unwrap();
        assert!(!text.contains("content-length"), "{text}");
        assert!(!text.contains("transfer-encoding"), "{text}");
    }
}
#[cfg(test)]
mod size_tests {
    /// A parked request holds its connection's future and its handler's (boxed) future: both stay
    /// small (docs/benchmarks.md, "LL-HLS load": bytes per held request).
    #[test]
    fn parked_requests_hold_small_futures() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let _guard = rt.enter();
        let hub = crate::hub::Hub::new(crate::hub::HubConfig::default());
        let auth = crate::auth::Auth::with_secret(&Default::default(), &[7u8; 32]);
        let origin = super::Origin::new(hub, Default::default(), std::sync::Arc::new(auth));
        let handle = origin.clone().handle(
            hyper::Request::new(http_body_util::Full::new(bytes::Bytes::new())),
            None,
        );
        let handle_bytes = std::mem::size_of_val(&handle);
        drop(handle);
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let socket = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        socket.set_nonblocking(true).unwrap();
        let (_tx, rx) = tokio::sync::watch::channel(false);
        let connection = super::serve_connection(
            tokio::net::TcpStream::from_std(socket).unwrap(),
            "127.0.0.1:1".parse().unwrap(),
            origin,
            rx,
            std::time::Duration::from_secs(1),
        );
        let connection_bytes = std::mem::size_of_val(&connection);
        assert!(
            handle_bytes <= 3 * 1024,
            "handler future: {handle_bytes} bytes"
        );
        assert!(
            connection_bytes <= 2 * 1024,
            "connection future: {connection_bytes} bytes"
        );
    }
}
