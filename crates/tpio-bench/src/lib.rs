//! tpio's benchmark: the workloads W1–W4 run with tpio and its peers side by
//! side, in one process, several rounds; medians, and each figure as a
//! multiple of tpio's from the same run.
//!
//! This crate owns the workloads ([`workloads`]: what is measured and how
//! the figure is taken), the peers (`peers`: one module per contestant —
//! tpio itself, a plain io_uring loop, tokio, compio, plain mio, `pread` on
//! threads), the rounds and medians ([`measure`]), the targets the issue set
//! ([`targets`]) and the report ([`report`]: text, Markdown, JSON). The peers
//! are this crate's dependencies only: the library crates never see them.
//!
//! It must never time anything inside a unit test, never hide a contestant
//! that could not run (a row says "unavailable: why" instead), and never
//! compare figures from different runs: every ratio is taken within one
//! [`run`].
//!
//! ```no_run
//! let cfg = tpio_bench::Config::quick();
//! let report = tpio_bench::run(&cfg, &mut |line| eprintln!("{line}"))?;
//! println!("{}", report.to_text());
//! # Ok::<(), std::io::Error>(())
//! ```
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]

pub mod alloc;
pub mod datafile;
pub mod machine;
pub mod measure;
pub mod net_pairs;
mod peers;
pub mod report;
pub mod targets;
pub mod workloads;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde::Serialize;

pub use measure::{Row, RunError};
pub use report::{Report, WorkloadReport};

/// Queue depth of W1 (reads in flight at once).
pub const W1_DEPTH: usize = 64;
/// Block size of W1 reads.
pub const W1_BLOCK: usize = 4096;
/// Connections of W2.
pub const W2_CONNECTIONS: usize = 32;
/// Message size of W2.
pub const W2_MESSAGE: usize = 64;
/// Worker threads every multi-threaded contestant gets (tpio's pool, the
/// channel hand-off, tokio's runtime, the 2-thread loops).
pub const WORKERS: usize = 2;

/// What to run and for how long.
#[derive(Clone, Debug, Serialize)]
pub struct Config {
    /// `--quick`: fewer rounds, shorter samples, a smaller W4.
    pub quick: bool,
    /// Rounds; each runs every contestant once, in turn.
    pub rounds: usize,
    /// Seconds per throughput sample (W1, W2).
    pub sample_secs: f64,
    /// Reads pending when W3 cancels them.
    pub w3_pending: usize,
    /// Also time io_uring's cancel by fd (`ASYNC_CANCEL_FD | ALL`) in W3: it
    /// grows quadratically with the number pending (~1.6 s at 10 k here).
    pub w3_cancel_by_fd: bool,
    /// TP_IO objects W4 creates, uses and closes.
    pub w4_objects: usize,
    /// Objects (and operations) W4's memory figures are averaged over.
    pub w4_memory_objects: usize,
    /// The 256 MiB data file (made if missing or of the wrong size, then kept).
    pub data_path: PathBuf,
    /// Only these workloads (`w1` … `w4`); all when empty.
    pub only: Vec<String>,
    /// Only the contestants with these keys (`tpio-uring`, `uring-loop`, …:
    /// the JSON report's `key`); all when empty. For profiling one of them.
    pub contestants: Vec<String>,
    /// The command line, for the report.
    pub command: String,
}

impl Config {
    /// `tpio bench --quick`: about a minute or less.
    pub fn quick() -> Config {
        Config {
            quick: true,
            rounds: 3,
            sample_secs: 0.3,
            w3_pending: 10_000,
            w3_cancel_by_fd: false,
            w4_objects: 20_000,
            w4_memory_objects: 10_000,
            data_path: datafile::default_path(),
            only: Vec::new(),
            contestants: Vec::new(),
            command: "tpio bench --quick".into(),
        }
    }

    /// `tpio bench`: a few minutes.
    pub fn full() -> Config {
        Config {
            quick: false,
            rounds: 5,
            sample_secs: 1.0,
            w3_pending: 10_000,
            w3_cancel_by_fd: true,
            w4_objects: 100_000,
            w4_memory_objects: 10_000,
            data_path: datafile::default_path(),
            only: Vec::new(),
            contestants: Vec::new(),
            command: "tpio bench".into(),
        }
    }

    /// The length of one throughput sample.
    pub fn sample(&self) -> Duration {
        Duration::from_secs_f64(self.sample_secs)
    }

    /// Whether workload `id` (`"w1"`) is selected.
    pub fn wants(&self, id: &str) -> bool {
        self.only.is_empty() || self.only.iter().any(|w| w.eq_ignore_ascii_case(id))
    }
}

/// Runs the benchmark: prepares what the workloads need, runs the rounds,
/// takes the medians and checks the targets. `log` gets one line per step.
pub fn run(cfg: &Config, log: &mut dyn FnMut(&str)) -> std::io::Result<Report> {
    let started = Instant::now();
    let cpu_before = machine::CpuTimes::now();
    let ctx = workloads::Context::new(cfg, log)?;
    let mut set = workloads::all(&ctx, cfg);
    for round in 0..cfg.rounds {
        log(&format!("round {}/{}", round + 1, cfg.rounds));
        for w in set.iter_mut() {
            w.run_round(log);
        }
    }
    let workloads: Vec<WorkloadReport> = set.into_iter().map(|w| w.finish()).collect();
    let mut targets = targets::check_all(&workloads);
    if !cfg.only.is_empty() || !cfg.contestants.is_empty() {
        // A partial run: only the targets it has figures for.
        targets.retain(|t| t.value.is_some());
    }
    Ok(Report {
        machine: machine::Machine::here(),
        command: cfg.command.clone(),
        config: cfg.clone(),
        backend_note: ctx.backend_note(),
        workloads,
        targets,
        elapsed_secs: started.elapsed().as_secs_f64(),
        others_cpu_pct: cpu_before
            .zip(machine::CpuTimes::now())
            .and_then(|(a, b)| a.others_pct(&b)),
    })
}

/// The tour's throughput figure: tpio on the process's backend, W1's
/// pattern (4 KiB random reads from a cached data file of `size` bytes,
/// QD 64, each callback issuing the next read) for `secs`, on a pool of its
/// own. Returns reads per second.
pub fn tour_throughput(
    data_path: &std::path::Path,
    size: u64,
    secs: Duration,
) -> Result<f64, RunError> {
    let data = datafile::DataFile::prepare_sized(data_path, size)?;
    let backend = tpio::Backend::process().map_err(|e| RunError::Unavailable(e.to_string()))?;
    let pool = tpio::Pool::new("tour-reads");
    pool.set_thread_maximum(WORKERS);
    let env = tpio::CallbackEnvironment::new().pool(&pool);
    let job = workloads::w1_reads::ReadJob {
        data: &data,
        depth: W1_DEPTH,
        block: W1_BLOCK,
        duration: secs,
    };
    peers::tpio_peer::reads::run(&backend, &env, &job)
}
