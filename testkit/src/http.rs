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
/// ending in CRLF. Bodies must carry a Content-Length (playlists and complete parts and segments do).
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
    buf.clear();
    let mut chunk = [0u8; 16 * 1024];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
    let status: u16 = head.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    while buf.len() < head_end + length {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    Ok((status, head_end..head_end + length))
}
