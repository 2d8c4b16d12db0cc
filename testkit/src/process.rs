//! Child processes: [`Proc`] (killed on drop) and [`Estuary`], `estuary serve` on loopback ports with
//! its log collected line by line and its resource use read from `/proc`.

use std::{
    io::{BufRead, BufReader, Write},
    net::SocketAddr,
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Stdio},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

/// A child process (with a name for messages) killed on drop.
#[derive(Debug)]
pub struct Proc(pub Child, pub &'static str);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Proc {
    /// Kill the process (`SIGKILL`) and wait for it.
    pub fn kill(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// How to start [`Estuary`].
#[derive(Debug, Clone)]
pub struct EstuaryCommand {
    /// The `estuary` binary of this build (`env!("CARGO_BIN_EXE_estuary")` in tests and benches).
    pub binary: PathBuf,
    /// The whole configuration file (TOML).
    pub config: String,
    /// `--data-dir`; `None` makes a temporary one, removed with the process.
    pub data_dir: Option<PathBuf>,
    /// `RUST_LOG` (e.g. `info`, or `warn,estuary::server=info` for a quiet bench).
    pub log_filter: String,
    /// Echo the origin's `WARN` and `ERROR` lines to this process's stderr, prefixed `origin:`.
    pub echo_warnings: bool,
}

impl EstuaryCommand {
    /// `binary` with `config`, a temporary data directory, `RUST_LOG=info`, nothing echoed.
    pub fn new(binary: impl AsRef<Path>, config: &str) -> Self {
        Self {
            binary: binary.as_ref().to_owned(),
            config: config.to_owned(),
            data_dir: None,
            log_filter: "info".into(),
            echo_warnings: false,
        }
    }

    /// [`Self::new`] for a bench: a quiet log (`warn,estuary::server=info`, which keeps the
    /// `estuary serving` line), warnings and errors echoed.
    pub fn bench(binary: impl AsRef<Path>, config: &str) -> Self {
        Self {
            log_filter: "warn,estuary::server=info".into(),
            echo_warnings: true,
            ..Self::new(binary, config)
        }
    }
}

/// `estuary serve` as a child process, HTTP, RTMP and SRT on `127.0.0.1:0` (the addresses it chose are
/// read from its `estuary serving` line). Its standard error (the log) is collected line by line.
/// Killed on drop.
#[derive(Debug)]
pub struct Estuary {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
    /// The HTTP listener's address.
    pub http_addr: SocketAddr,
    /// The RTMP listener's address.
    pub rtmp_addr: SocketAddr,
    /// The SRT listener's address.
    pub srt_addr: SocketAddr,
    _config: tempfile::NamedTempFile,
    _data: Option<tempfile::TempDir>,
}

impl Estuary {
    /// Start the origin and wait (blocking, up to 30 s) for its `estuary serving` line. Panics with its
    /// log when it does not start.
    pub fn spawn(command: EstuaryCommand) -> Self {
        let mut config = tempfile::NamedTempFile::new().expect("temp file");
        config
            .write_all(command.config.as_bytes())
            .expect("config written");
        let (data, data_dir) = match command.data_dir {
            Some(dir) => (None, dir),
            None => {
                let dir = tempfile::tempdir().expect("temp dir");
                let path = dir.path().to_owned();
                (Some(dir), path)
            }
        };
        let mut child = Command::new(&command.binary)
            .arg("serve")
            .arg("--config")
            .arg(config.path())
            .args(["--http-listen", "127.0.0.1:0"])
            .args(["--rtmp-listen", "127.0.0.1:0"])
            .args(["--srt-listen", "127.0.0.1:0"])
            .arg("--data-dir")
            .arg(&data_dir)
            .env("RUST_LOG", &command.log_filter)
            .env("NO_COLOR", "1")
            .env_remove("ESTUARY_SRT_PASSPHRASE")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("{} runs: {e}", command.binary.display()));
        let stderr = child.stderr.take().expect("piped stderr");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        {
            let lines = lines.clone();
            let echo = command.echo_warnings;
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    if line.contains("estuary serving") {
                        let _ = ready_tx.send(line.clone());
                    } else if echo && (line.contains("WARN") || line.contains("ERROR")) {
                        eprintln!("origin: {line}");
                    }
                    lines.lock().expect("log lines").push(line);
                }
            });
        }
        let Ok(serving) = ready_rx.recv_timeout(Duration::from_secs(30)) else {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "estuary did not start:\n{}",
                lines.lock().expect("log lines").join("\n")
            );
        };
        let addr = |field: &str| -> SocketAddr {
            let start = serving
                .find(&format!("{field}="))
                .unwrap_or_else(|| panic!("no {field} in {serving:?}"))
                + field.len()
                + 1;
            serving[start..]
                .split_whitespace()
                .next()
                .and_then(|a| a.parse().ok())
                .unwrap_or_else(|| panic!("no address after {field}= in {serving:?}"))
        };
        Self {
            http_addr: addr("http_addr"),
            rtmp_addr: addr("rtmp_addr"),
            srt_addr: addr("srt_addr"),
            child,
            lines,
            _config: config,
            _data: data,
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything logged so far.
    pub fn log(&self) -> String {
        self.lines.lock().expect("log lines").join("\n")
    }

    /// Wait until a log line contains every one of `needles`; returns that line. Blocking.
    pub fn wait_for_line(&self, needles: &[&str], timeout: Duration) -> Option<String> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(line) = self
                .lines
                .lock()
                .expect("log lines")
                .iter()
                .find(|l| needles.iter().all(|n| l.contains(n)))
            {
                return Some(line.clone());
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Send `SIGTERM` (a graceful shutdown).
    pub fn terminate(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill -TERM failed");
    }

    /// Kill the process at once (`SIGKILL`, as a crash or `kill -9` would) and wait for it. Blocking.
    pub fn kill_now(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Wait up to `timeout` for the process to exit. Blocking.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// The process's resident set, KiB ([`rss_kib`]).
    pub fn rss_kib(&self) -> u64 {
        rss_kib(self.child.id())
    }

    /// The CPU time the process has used, seconds ([`cpu_seconds`]).
    pub fn cpu_seconds(&self) -> f64 {
        cpu_seconds(self.child.id())
    }
}

impl Drop for Estuary {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
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

/// CPU time a process has used (user + system, [`cpu_split_seconds`]), seconds; 0 if unreadable.
pub fn cpu_seconds(pid: u32) -> f64 {
    let (user, system) = cpu_split_seconds(pid);
    user + system
}

/// CPU time a process has used in user space and in the kernel (`/proc/{pid}/stat` fields 14 and 15),
/// seconds each; 0 if unreadable. Assumes the usual 100 clock ticks per second.
pub fn cpu_split_seconds(pid: u32) -> (f64, f64) {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return (0.0, 0.0);
    };
    // Fields after the command name (which may contain spaces) start after the last ')'.
    let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
        return (0.0, 0.0);
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3 (state), so fields 14 and 15 are at indexes 11 and 12.
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    (ticks(11) as f64 / 100.0, ticks(12) as f64 / 100.0)
}

/// One reading of the machine's CPU accounting (Linux `/proc/stat` first line, `/proc/self/stat`), in
/// clock ticks (100 per second).
#[derive(Debug, Clone, Copy)]
pub struct CpuSample {
    /// When it was read.
    pub at: Instant,
    /// All CPUs: user + nice + system + irq + softirq (guest time is inside user).
    pub busy: u64,
    /// All CPUs: time the hypervisor ran something else while this VM wanted to run.
    pub steal: u64,
    /// This process, every thread: user + system.
    pub own: u64,
}

/// Ticks per second of `/proc` times.
const CLOCK_TICKS: f64 = 100.0;

impl CpuSample {
    /// Read now; `None` where `/proc` is missing.
    pub fn read() -> Option<Self> {
        let stat = std::fs::read_to_string("/proc/stat").ok()?;
        let cpu: Vec<u64> = stat
            .lines()
            .next()?
            .split_whitespace()
            .skip(1)
            .filter_map(|v| v.parse().ok())
            .collect();
        let field = |i: usize| cpu.get(i).copied().unwrap_or(0);
        let own_stat = std::fs::read_to_string("/proc/self/stat").ok()?;
        let own: Vec<u64> = own_stat
            .rsplit_once(')')?
            .1
            .split_whitespace()
            .map(|v| v.parse().unwrap_or(0))
            .collect();
        Some(Self {
            at: Instant::now(),
            busy: field(0) + field(1) + field(2) + field(5) + field(6),
            steal: field(7),
            own: own.get(11).copied().unwrap_or(0) + own.get(12).copied().unwrap_or(0),
        })
    }

    /// Cores used between `a` and `b`: (this process, other processes, stolen).
    pub fn cores(a: &Self, b: &Self) -> (f64, f64, f64) {
        let secs = b.at.duration_since(a.at).as_secs_f64().max(1e-3) * CLOCK_TICKS;
        let own = b.own.saturating_sub(a.own) as f64;
        let busy = b.busy.saturating_sub(a.busy) as f64;
        let steal = b.steal.saturating_sub(a.steal) as f64;
        (own / secs, (busy - own).max(0.0) / secs, steal / secs)
    }

    /// [`CpuSample::cores`] over the samples closest to `from`..`to`.
    pub fn window(samples: &[Self], from: Instant, to: Instant) -> Option<(f64, f64, f64)> {
        let a = samples
            .iter()
            .rev()
            .find(|s| s.at <= from)
            .or(samples.first())?;
        let b = samples.iter().find(|s| s.at >= to).or(samples.last())?;
        (b.at > a.at).then(|| Self::cores(a, b))
    }
}

/// Samples [`CpuSample`]s every 250 ms on its own thread.
#[derive(Debug)]
pub struct CpuSampler {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: std::thread::JoinHandle<Vec<CpuSample>>,
}

impl CpuSampler {
    /// Start sampling.
    pub fn start() -> Self {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut out = Vec::new();
            while !flag.load(std::sync::atomic::Ordering::Relaxed) {
                out.extend(CpuSample::read());
                std::thread::sleep(Duration::from_millis(250));
            }
            out.extend(CpuSample::read());
            out
        });
        Self { stop, thread }
    }

    /// Stop (after the current 250 ms sleep) and return the samples.
    pub fn finish(self) -> Vec<CpuSample> {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.thread.join().unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_has_a_resident_set_and_cpu_time() {
        let pid = std::process::id();
        assert!(rss_kib(pid) > 0);
        let mut x = 0u64;
        for i in 0..20_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        std::hint::black_box(x);
        assert!(cpu_seconds(pid) >= 0.0);
        assert_eq!(rss_kib(u32::MAX), 0);
        assert_eq!(cpu_seconds(u32::MAX), 0.0);
    }
}
