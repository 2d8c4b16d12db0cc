//! Debian's `redis-server` as a peer on a loopback port, started by the test and stopped on drop (never
//! the system service), with a minimal RESP client (RESP2, for inspecting what the origins store).

use std::{
    io::{BufRead, BufReader, Read, Write},
    net::{SocketAddr, TcpStream},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

/// A `redis-server` without persistence (`--save '' --appendonly no`) on `127.0.0.1`, a free port.
#[derive(Debug)]
pub struct Redis {
    child: Child,
    /// Where it listens.
    pub addr: SocketAddr,
}

impl Redis {
    /// Start it and wait (up to 10 s) until it answers `PING`. Panics with a set-up hint when
    /// `redis-server` is missing.
    pub fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free loopback port")
            .port();
        Self::start_on(port)
    }

    /// Start it on `port` (a restart on the same address).
    pub fn start_on(port: u16) -> Self {
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("redis-server runs (package redis-server: scripts/setup.sh installs it)");
        let redis = Redis {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while redis.command(&["PING"]).as_deref() != Some("PONG") {
            assert!(
                Instant::now() < deadline,
                "redis-server did not answer PING"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        redis
    }

    /// `redis://127.0.0.1:{port}`.
    pub fn url(&self) -> String {
        format!("redis://{}", self.addr)
    }

    /// Run one command; its reply as text: a simple string, an integer, a bulk string (`None` for a
    /// nil reply or a connection failure), or `ERR …` for an error.
    pub fn command(&self, args: &[&str]) -> Option<String> {
        let mut stream = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1)).ok()?;
        stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
        let mut request = format!("*{}\r\n", args.len());
        for a in args {
            request.push_str(&format!("${}\r\n{a}\r\n", a.len()));
        }
        stream.write_all(request.as_bytes()).ok()?;
        let mut reader = BufReader::new(stream);
        let mut line = String::new();
        reader.read_line(&mut line).ok()?;
        let line = line.trim_end();
        match line.split_at_checked(1)? {
            ("+", s) | (":", s) => Some(s.to_owned()),
            ("-", s) => Some(format!("ERR {s}")),
            ("$", "-1") => None,
            ("$", n) => {
                let n: usize = n.parse().ok()?;
                let mut body = vec![0u8; n + 2];
                reader.read_exact(&mut body).ok()?;
                body.truncate(n);
                String::from_utf8(body).ok()
            }
            _ => None,
        }
    }

    /// Kill it at once (`SIGKILL`) and wait.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill();
    }
}
