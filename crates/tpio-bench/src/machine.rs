//! What machine a report was taken on: CPU model, cores, memory, kernel.
//!
//! Owns reading those facts from `/proc` (Linux) or `std` elsewhere. It must
//! never fail a run: a fact it cannot read is reported as unknown.

use serde::Serialize;

/// The facts a reader needs to compare two reports.
#[derive(Clone, Debug, Serialize)]
pub struct Machine {
    /// `model name` from `/proc/cpuinfo`.
    pub cpu: String,
    /// Cores this process may use.
    pub cores: usize,
    /// Total memory in GiB.
    pub memory_gib: f64,
    /// The OS (`linux`).
    pub os: String,
    /// The kernel release (`/proc/sys/kernel/osrelease`).
    pub kernel: String,
}

/// The 1-minute load average (`/proc/loadavg`), if readable: how busy the
/// machine was with other work around a run.
pub fn load_average() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

impl Machine {
    /// The machine this process runs on.
    pub fn here() -> Machine {
        let cpu = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("model name"))
                    .and_then(|l| l.split(':').nth(1))
                    .map(|v| v.trim().to_string())
            })
            .unwrap_or_else(|| "unknown".into());
        let memory_gib = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("MemTotal:"))
                    .and_then(|l| l.split_whitespace().nth(1))
                    .and_then(|kb| kb.parse::<f64>().ok())
            })
            .map_or(0.0, |kb| (kb / (1024.0 * 1024.0) * 10.0).round() / 10.0);
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|_| "unknown".into());
        Machine {
            cpu,
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            memory_gib,
            os: std::env::consts::OS.into(),
            kernel,
        }
    }

    /// One line: `2 cores (CPU), 23.4 GiB, linux 6.18.44`.
    pub fn line(&self) -> String {
        format!(
            "{} cores ({}), {} GiB, {} {}",
            self.cores, self.cpu, self.memory_gib, self.os, self.kernel
        )
    }
}
