//! One player's keep-alive HTTP/1.1 connection: reopened when the origin closed it, a request on a
//! stale connection (closed while idle) retried once, every exchange bounded in time.

use std::{net::SocketAddr, ops::Range, time::Duration};

use tokio::{io::AsyncWriteExt, net::TcpStream};

use crate::http::read_response;

/// Longest time one exchange may take (a blocking reload waits up to three target durations).
pub const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(40);

/// What one request got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// The status; 0 when no answer came.
    pub status: u16,
    /// Why the exchange failed: `conn:…` (no answer: connect, write, read or timeout), `cut-off`
    /// (the body stopped early); `None` when it completed.
    pub error: Option<String>,
    /// The body in [`Conn::buf`].
    pub body: Range<usize>,
    /// A stale keep-alive connection was reopened and the request sent again.
    pub retried_stale: bool,
}

/// A keep-alive connection to one origin.
#[derive(Debug)]
pub struct Conn {
    addr: SocketAddr,
    stream: Option<TcpStream>,
    used: bool,
    /// The last answer's head and body.
    pub buf: Vec<u8>,
}

impl Conn {
    /// A connection to `addr`, opened at the first request.
    pub fn new(addr: SocketAddr) -> Self {
        Self {
            addr,
            stream: None,
            used: false,
            buf: Vec::new(),
        }
    }

    /// The body of the last answer.
    pub fn body(&self, answer: &Answer) -> &[u8] {
        self.buf.get(answer.body.clone()).unwrap_or(&[])
    }

    /// `GET path` (a request target: path and query).
    pub async fn get(&mut self, path: &str) -> Answer {
        let mut retried_stale = false;
        loop {
            let fail = |status: u16, error: String, retried_stale: bool| Answer {
                status,
                error: Some(error),
                body: 0..0,
                retried_stale,
            };
            if self.stream.is_none() {
                match tokio::time::timeout(EXCHANGE_TIMEOUT, TcpStream::connect(self.addr)).await {
                    Ok(Ok(s)) => {
                        let _ = s.set_nodelay(true);
                        self.stream = Some(s);
                        self.used = false;
                    }
                    Ok(Err(e)) => return fail(0, format!("conn:{:?}", e.kind()), retried_stale),
                    Err(_) => return fail(0, "conn:timeout".into(), retried_stale),
                }
            }
            let reused = self.used;
            let Some(stream) = self.stream.as_mut() else {
                continue;
            };
            let request =
                format!("GET {path} HTTP/1.1\r\nHost: origin\r\nUser-Agent: estuary-load\r\n\r\n");
            let exchange = async {
                stream.write_all(request.as_bytes()).await?;
                read_response(stream, &mut self.buf).await
            };
            match tokio::time::timeout(EXCHANGE_TIMEOUT, exchange).await {
                Ok(Ok(r)) => {
                    self.used = true;
                    if r.closes {
                        self.stream = None;
                    }
                    return Answer {
                        status: r.status,
                        error: None,
                        body: r.body,
                        retried_stale,
                    };
                }
                Ok(Err(e)) => {
                    self.stream = None;
                    if self.buf.is_empty() && reused && !retried_stale {
                        retried_stale = true;
                        continue;
                    }
                    // A head received means the body was cut off.
                    let status = head_status(&self.buf);
                    return match status {
                        Some(status) => fail(status, "cut-off".into(), retried_stale),
                        None => fail(0, format!("conn:{:?}", e.kind()), retried_stale),
                    };
                }
                Err(_) => {
                    self.stream = None;
                    return fail(0, "conn:timeout".into(), retried_stale);
                }
            }
        }
    }
}

/// The status of a complete response head at the start of `buf`.
fn head_status(buf: &[u8]) -> Option<u16> {
    buf.windows(4).position(|w| w == b"\r\n\r\n")?;
    std::str::from_utf8(buf.get(9..12)?).ok()?.parse().ok()
}
