//! Debian's nginx as a peer on a loopback port: the CDN edge in front of the origin, or a plain file
//! server to compare the origin with. Started by the test or bench, stopped on drop.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use crate::process::cpu_seconds;

/// The nginx binary: `/usr/sbin/nginx` (Debian's `nginx-light`), else `nginx` on the `PATH`.
pub fn nginx_binary() -> PathBuf {
    let sbin = PathBuf::from("/usr/sbin/nginx");
    if sbin.exists() {
        sbin
    } else {
        PathBuf::from("nginx")
    }
}

/// An nginx master process and its workers, stopped with `SIGTERM` (its fast shutdown, which takes the
/// workers down: `SIGKILL` would leave them running).
#[derive(Debug)]
pub struct Nginx {
    child: Child,
    /// Where it listens (`127.0.0.1`, a free port).
    pub addr: SocketAddr,
    /// Its directory: `nginx.conf`, `error.log`, temporary files, whatever the configuration keeps there.
    pub dir: PathBuf,
}

impl Nginx {
    /// Start nginx in `dir` (created if missing, open to the workers' user, which is `nobody` when this
    /// runs as root) with `workers` worker processes. `http` is the inside of the `http` block; in it `@LISTEN@`
    /// becomes the chosen loopback address and `@DIR@` the directory. Panics with nginx's error log
    /// when it does not listen within 10 s.
    pub fn start(dir: &Path, workers: u32, http: &str) -> Self {
        std::fs::create_dir_all(dir).expect("nginx directory");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o777))
                .expect("nginx directory permissions");
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free loopback port")
            .port();
        let addr: SocketAddr = SocketAddr::from(([127, 0, 0, 1], port));
        let d = dir.display();
        let http = http
            .replace("@LISTEN@", &addr.to_string())
            .replace("@DIR@", &d.to_string());
        let main = format!(
            "worker_processes {workers};\ndaemon off;\npid {d}/nginx.pid;\nerror_log {d}/error.log warn;\n\
             events {{ worker_connections 4096; }}\n\
             http {{\n  client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n\
             fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n\
             {http}\n}}\n"
        );
        std::fs::write(dir.join("nginx.conf"), main).expect("nginx.conf written");
        let child = Command::new(nginx_binary())
            .arg("-p")
            .arg(dir)
            .arg("-e")
            .arg(dir.join("error.log"))
            .arg("-c")
            .arg(dir.join("nginx.conf"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("nginx runs (package nginx-light)");
        // Stopped on drop, also if it does not come up.
        let nginx = Nginx {
            child,
            addr,
            dir: dir.to_owned(),
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(addr).is_err() {
            assert!(
                Instant::now() < deadline,
                "nginx did not start: {}",
                std::fs::read_to_string(dir.join("error.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        nginx
    }

    /// Stop nginx (`SIGTERM`, then `SIGKILL` after 5 s) and wait for it. Blocking.
    pub fn stop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = Command::new("kill")
                .args(["-TERM", &self.child.id().to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(5);
            while matches!(self.child.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// CPU seconds used by the master and its worker processes.
    pub fn cpu_seconds(&self) -> f64 {
        let pid = self.child.id();
        let children =
            std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap_or_default();
        cpu_seconds(pid)
            + children
                .split_whitespace()
                .filter_map(|c| c.parse().ok())
                .map(cpu_seconds)
                .sum::<f64>()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        self.stop();
    }
}
