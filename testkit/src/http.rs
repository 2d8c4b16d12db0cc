//! HTTP clients: [`request_with`] and friends for tests (hyper's client, a fresh connection per
//! request), and [`exchange`], a raw HTTP/1.1 keep-alive exchange cheap enough for thousands of load
//! clients in one process.

use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::{StatusCode, header::HeaderMap};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

/// A complete answer.
#[derive(Debug)]
pub struct Fetched {
    /// The status.
    pub status: StatusCode,
    /// The headers.
    pub headers: HeaderMap,
    /// The whole body.
    pub body: Bytes,
    /// From sending the request to the end of the body.
    pub elapsed: Duration,
}

impl Fetched {
    /// The body as text (lossy UTF-8).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    /// A header's value (empty when absent or not text).
    pub fn header(&self, name: &str) -> String {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned()
    }
}

/// `GET url`; panics on a transport error.
pub async fn get(url: &str) -> Fetched {
    request("GET", url).await
}

/// `method url` without a body; panics on a transport error.
pub async fn request(method: &str, url: &str) -> Fetched {
    request_with(method, url, &[], None).await
}

/// A request with extra headers and an optional body.
pub async fn request_with(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> Fetched {
    use http_body_util::Full;
    use hyper_util::{client::legacy::Client, rt::TokioExecutor};
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let mut req = hyper::Request::builder().method(method).uri(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let req = req
        .body(Full::new(Bytes::from(body.unwrap_or("").to_owned())))
        .unwrap();
    let start = Instant::now();
    let resp = client.request(req).await.expect("http request");
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = resp.into_body().collect().await.expect("body").to_bytes();
    Fetched {
        status,
        headers,
        body,
        elapsed: start.elapsed(),
    }
}

/// Poll `url` until it answers 200 or `timeout` passes.
pub async fn wait_for_200(url: &str, timeout: Duration) -> Option<Fetched> {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        let r = get(url).await;
        if r.status == StatusCode::OK {
            return Some(r);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    None
}

/// One HTTP/1.1 GET on a keep-alive connection: (status, body). `extra` is more header lines, each
/// ending in CRLF. Errors: the connection's, or [`std::io::ErrorKind::UnexpectedEof`] when it closes
/// before the whole answer (a body cut off).
pub async fn exchange(
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
    path: &str,
    extra: &str,
) -> std::io::Result<(u16, Vec<u8>)> {
    let (status, range) = exchange_in_place(stream, buf, path, extra).await?;
    Ok((status, buf[range].to_vec()))
}

/// [`exchange`] leaving the body in `buf`: (status, the body's range in `buf`).
pub async fn exchange_in_place(
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
    path: &str,
    extra: &str,
) -> std::io::Result<(u16, std::ops::Range<usize>)> {
    stream
        .write_all(format!("GET {path} HTTP/1.1\r\nHost: origin\r\n{extra}\r\n").as_bytes())
        .await?;
    let answer = read_response(stream, buf).await?;
    Ok((answer.status, answer.body))
}

/// A response read by [`read_response`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawResponse {
    /// The status code.
    pub status: u16,
    /// Where the (de-chunked) body is in the buffer.
    pub body: std::ops::Range<usize>,
    /// The server closes the connection after this response (`Connection: close`, or a body
    /// delimited by the end of the connection).
    pub closes: bool,
}

/// Read one HTTP/1.1 response (RFC 9112 §6: `Content-Length`, `Transfer-Encoding: chunked`, or until
/// the connection closes) into `buf` (cleared first; after an error it holds what arrived, empty when
/// the connection gave nothing, as a stale keep-alive connection does); a chunked body is de-chunked
/// in place.
/// Errors: the connection's; [`std::io::ErrorKind::UnexpectedEof`] when it closes before the end of the
/// head or of a delimited body; [`std::io::ErrorKind::InvalidData`] for a malformed head or chunk.
pub async fn read_response(
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
) -> std::io::Result<RawResponse> {
    use std::io::{Error, ErrorKind};
    buf.clear();
    let mut chunk = [0u8; 16 * 1024];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
    let status: u16 = head
        .get(9..12)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| Error::new(ErrorKind::InvalidData, "no status line"))?;
    let header = |name: &str| {
        head.lines()
            .find_map(|l| l.strip_prefix(name))
            .map(|v| v.trim().to_owned())
    };
    let length: Option<usize> = header("content-length:").and_then(|v| v.parse().ok());
    let chunked = header("transfer-encoding:").is_some_and(|v| v.contains("chunked"));
    let mut closes = header("connection:").is_some_and(|v| v.contains("close"));
    let no_body = status == 204 || status == 304 || (100..200).contains(&status);
    if chunked && !no_body {
        // De-chunk in place: `out` is where the body's bytes go, `at` where the next chunk size starts.
        let mut out = head_end;
        let mut at = head_end;
        loop {
            let line_end = loop {
                if let Some(i) = buf[at..].windows(2).position(|w| w == b"\r\n") {
                    break at + i;
                }
                let n = stream.read(&mut chunk).await?;
                if n == 0 {
                    return Err(ErrorKind::UnexpectedEof.into());
                }
                buf.extend_from_slice(&chunk[..n]);
            };
            let size_text = String::from_utf8_lossy(&buf[at..line_end]);
            let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
                .map_err(|_| Error::new(ErrorKind::InvalidData, "bad chunk size"))?;
            let data = line_end + 2;
            // The chunk, its CRLF (or, after the last chunk, the empty trailer line).
            while buf.len() < data + size + 2 {
                let n = stream.read(&mut chunk).await?;
                if n == 0 {
                    return Err(ErrorKind::UnexpectedEof.into());
                }
                buf.extend_from_slice(&chunk[..n]);
            }
            buf.copy_within(data..data + size, out);
            out += size;
            at = data + size + 2;
            if size == 0 {
                break;
            }
        }
        buf.truncate(out);
        return Ok(RawResponse {
            status,
            body: head_end..out,
            closes,
        });
    }
    let length = match length {
        _ if no_body => 0,
        Some(n) => n,
        None => {
            // Delimited by the end of the connection.
            closes = true;
            loop {
                let n = stream.read(&mut chunk).await?;
                if n == 0 {
                    break buf.len() - head_end;
                }
                buf.extend_from_slice(&chunk[..n]);
            }
        }
    };
    while buf.len() < head_end + length {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    Ok(RawResponse {
        status,
        body: head_end..head_end + length,
        closes,
    })
}

#[cfg(test)]
mod tests {
    use tokio::net::TcpListener;

    use super::*;

    /// Serve `answers` (raw bytes, one per request) on a loopback port, reading one request head each.
    async fn serve(answers: Vec<&'static [u8]>) -> std::net::SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            for answer in answers {
                let mut head = Vec::new();
                let mut b = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    let n = s.read(&mut b).await.unwrap();
                    if n == 0 {
                        return;
                    }
                    head.extend_from_slice(&b[..n]);
                }
                s.write_all(answer).await.unwrap();
            }
        });
        addr
    }

    #[tokio::test]
    async fn lengths_chunks_and_closes_are_read() {
        let addr = serve(vec![
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n4;x=y\r\ndefg\r\n0\r\n\r\n",
            b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        ])
        .await;
        let mut s = TcpStream::connect(addr).await.unwrap();
        let mut buf = Vec::new();
        assert_eq!(
            exchange(&mut s, &mut buf, "/a", "").await.unwrap(),
            (200, b"hello".to_vec())
        );
        assert_eq!(
            exchange(&mut s, &mut buf, "/b", "").await.unwrap(),
            (200, b"abcdefg".to_vec())
        );
        s.write_all(b"GET /c HTTP/1.1\r\n\r\n").await.unwrap();
        let last = read_response(&mut s, &mut buf).await.unwrap();
        assert_eq!((last.status, last.body.len(), last.closes), (404, 0, true));
    }

    #[tokio::test]
    async fn a_body_cut_off_is_an_error() {
        let addr = serve(vec![b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort"]).await;
        let mut s = TcpStream::connect(addr).await.unwrap();
        let mut buf = Vec::new();
        let e = exchange(&mut s, &mut buf, "/a", "").await.unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::UnexpectedEof);
    }
}
