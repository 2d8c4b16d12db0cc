//! `estuary serve` (this build's binary) as a child process for the load benches, its resource use read
//! from `/proc`, and a raw HTTP/1.1 keep-alive exchange cheap enough for thousands of clients.

#![allow(dead_code)] // each bench binary uses part of it

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A running origin on loopback ports chosen by the system; killed on drop.
pub struct OriginProcess {
    pub child: Child,
    /// The HTTP listener's address.
    pub http: SocketAddr,
    /// The RTMP listener's address.
    pub rtmp: SocketAddr,
    _config: tempfile::NamedTempFile,
    _data: tempfile::TempDir,
}

impl Drop for OriginProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl OriginProcess {
    /// Start `estuary serve` with `config` (a whole TOML configuration file) and a fresh data directory;
    /// HTTP, RTMP and SRT listen on `127.0.0.1:0`. Its warnings and errors are echoed to stderr,
    /// prefixed `origin:`. Panics if it does not report its addresses within 30 s.
    pub fn start(config: &str) -> Self {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        file.write_all(config.as_bytes()).unwrap();
        let data = tempfile::tempdir().unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_estuary"))
            .arg("serve")
            .arg("--config")
            .arg(file.path())
            .args([
                "--http-listen",
                "127.0.0.1:0",
                "--rtmp-listen",
                "127.0.0.1:0",
            ])
            .args(["--srt-listen", "127.0.0.1:0", "--data-dir"])
            .arg(data.path())
            .env("RUST_LOG", "warn,estuary::server=info")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("estuary runs");
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if line.contains("estuary serving") {
                    let _ = tx.send(line);
                } else if line.contains("WARN") || line.contains("ERROR") {
                    eprintln!("origin: {line}");
                }
            }
        });
        let line = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("origin started");
        let addr = |field: &str| -> SocketAddr {
            let start = line.find(&format!("{field}=")).unwrap() + field.len() + 1;
            line[start..]
                .split_whitespace()
                .next()
                .unwrap()
                .parse()
                .unwrap()
        };
        OriginProcess {
            http: addr("http_addr"),
            rtmp: addr("rtmp_addr"),
            child,
            _config: file,
            _data: data,
        }
    }

    /// The process's resident set (`VmRSS`), KiB.
    pub fn rss_kib(&self) -> u64 {
        rss_kib(self.child.id())
    }
}

/// A process's resident set (`VmRSS` of `/proc/{pid}/status`), KiB; 0 if unreadable.
pub fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
        })
        .unwrap_or(0)
}

/// CPU time a process has used (user + system, `/proc/{pid}/stat` fields 14 and 15), seconds; 0 if
/// unreadable. Assumes the usual 100 clock ticks per second.
pub fn cpu_seconds(pid: u32) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    // Fields after the command name (which may contain spaces) start after the last ')'.
    let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
        return 0.0;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3 (state), so fields 14 and 15 are at indexes 11 and 12.
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    (ticks(11) + ticks(12)) as f64 / 100.0
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
