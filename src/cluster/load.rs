//! The process's CPU use, for the load a node reports: CPU time from `/proc/self/stat` (Linux; `utime`
//! and `stime`, in clock ticks of 1/100 s, `proc(5)`) over wall-clock time and the machine's cores.

use std::time::Instant;

/// Clock ticks per second of `/proc/self/stat` (`USER_HZ`, 100 on every Linux ABI).
const TICKS_PER_S: f64 = 100.0;

/// Measures the process's CPU use between two samples.
#[derive(Debug)]
pub struct ProcessCpu {
    last: Option<(Instant, f64)>,
    cores: usize,
}

impl Default for ProcessCpu {
    fn default() -> Self {
        Self {
            last: None,
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        }
    }
}

impl ProcessCpu {
    /// The machine's cores.
    pub fn cores(&self) -> usize {
        self.cores
    }

    /// The process's CPU time since the previous sample as a fraction of all cores (0.0 to 1.0); 0.0
    /// at the first sample or where `/proc` is unavailable.
    pub fn sample(&mut self) -> f64 {
        let Some(cpu_s) = process_cpu_seconds() else {
            return 0.0;
        };
        let now = Instant::now();
        let busy = match self.last {
            Some((at, before)) => {
                let wall = now.duration_since(at).as_secs_f64();
                if wall > 0.0 {
                    ((cpu_s - before) / wall / self.cores as f64).clamp(0.0, 1.0)
                } else {
                    0.0
                }
            }
            None => 0.0,
        };
        self.last = Some((now, cpu_s));
        busy
    }
}

/// User plus system CPU seconds of this process so far (`None` where `/proc` is unavailable).
pub fn process_cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    parse_cpu_seconds(&stat)
}

/// `utime + stime` of a `/proc/{pid}/stat` line, seconds (fields 14 and 15, counted after the
/// command name, which may hold spaces and parentheses).
fn parse_cpu_seconds(stat: &str) -> Option<f64> {
    let after = &stat[stat.rfind(')')? + 1..];
    let mut fields = after.split_whitespace().skip(11);
    let utime: f64 = fields.next()?.parse().ok()?;
    let stime: f64 = fields.next()?.parse().ok()?;
    Some((utime + stime) / TICKS_PER_S)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_time_is_read_after_the_command_name() {
        let line = "1234 (estuary (x) y) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 8 0";
        assert_eq!(parse_cpu_seconds(line), Some(3.0));
        assert!(process_cpu_seconds().is_some_and(|s| s >= 0.0));
        let mut cpu = ProcessCpu::default();
        assert_eq!(cpu.sample(), 0.0);
        assert!((0.0..=1.0).contains(&cpu.sample()));
    }
}
