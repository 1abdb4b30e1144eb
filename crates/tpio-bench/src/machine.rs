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

/// CPU time counters (in the kernel's clock ticks) at one moment: the whole
/// machine's busy time and this process's own (all its threads).
#[derive(Clone, Copy, Debug)]
pub struct CpuTimes {
    machine_busy: u64,
    machine_total: u64,
    this_process: u64,
}

impl CpuTimes {
    /// Reads `/proc/stat` and `/proc/self/stat`; `None` where they are missing.
    pub fn now() -> Option<CpuTimes> {
        let stat = std::fs::read_to_string("/proc/stat").ok()?;
        let cpu: Vec<u64> = stat
            .lines()
            .next()?
            .split_whitespace()
            .skip(1)
            .filter_map(|v| v.parse().ok())
            .collect();
        // user nice system idle iowait irq softirq steal …
        let total: u64 = cpu.iter().take(8).sum();
        let idle = cpu.get(3)? + cpu.get(4).copied().unwrap_or(0);
        let me = std::fs::read_to_string("/proc/self/stat").ok()?;
        // Fields after the command name (which may hold spaces): utime is
        // the 12th, stime the 13th.
        let rest = me.rsplit_once(')')?.1;
        let f: Vec<&str> = rest.split_whitespace().collect();
        let this_process = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
        Some(CpuTimes {
            machine_busy: total - idle,
            machine_total: total,
            this_process,
        })
    }

    /// The share of the machine's CPU that other processes used between
    /// `self` and `later`, in percent: how much other work skewed a run.
    pub fn others_pct(&self, later: &CpuTimes) -> Option<f64> {
        let total = later.machine_total.checked_sub(self.machine_total)?;
        let busy = later.machine_busy.checked_sub(self.machine_busy)?;
        let mine = later.this_process.checked_sub(self.this_process)?;
        (total > 0).then(|| busy.saturating_sub(mine) as f64 / total as f64 * 100.0)
    }
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
