//! The four workloads, what they share ([`Context`]: the data file, the
//! backends, tpio's pools) and how one round runs ([`Workload`]).
//!
//! Owns the list of contestants per workload and the order they run in
//! (one after another, never two at once). It must never run a peer's code
//! itself — that is the peers' modules — nor compare figures across runs.

pub mod w1_reads;
pub mod w2_echo;
pub mod w3_cancel;
pub mod w4_lifecycle;

use crate::datafile::DataFile;
use crate::measure::{finish_rows, Contestant, RunError};
use crate::report::WorkloadReport;
use crate::{Config, WORKERS};

/// What the workloads share: made once per run.
#[derive(Debug)]
pub struct Context {
    /// W1's file (opened and warm), when W1 runs.
    pub data: Option<DataFile>,
    /// tpio on io_uring: its backend (or why there is none) and pool.
    pub uring: Side,
    /// tpio on mio: its backend (or why there is none) and pool.
    pub mio: Side,
}

/// One tpio backend and the pool its contestants' callbacks run on. Each
/// backend has a pool of its own, as an application has: a worker waits in
/// one driver's wait ([`tpio_core::parker`]), so a pool shared by the two
/// would leave the second backend's operations without worker waits.
#[derive(Debug)]
pub struct Side {
    /// The backend, or why there is none.
    pub backend: Result<tpio::Backend, RunError>,
    /// tpio's callbacks run here: a pool of [`WORKERS`] threads.
    pub env: tpio::CallbackEnvironment,
    /// The pool behind `env`.
    pub pool: tpio::Pool,
}

impl Side {
    fn new(kind: tpio::BackendKind, name: &str) -> Side {
        let pool = tpio::Pool::new(name);
        // Both workers up from the start, as a server starts its pool: the
        // first work queued is spread over both, not taken by the one that
        // started first.
        pool.set_thread_maximum(WORKERS);
        let _ = pool.set_thread_minimum(WORKERS);
        Side {
            backend: tpio::Backend::new(kind).map_err(RunError::from),
            env: tpio::CallbackEnvironment::new().pool(&pool),
            pool,
        }
    }
}

impl Context {
    /// Prepares the data file (if W1 or W4 runs) and the backends.
    pub fn new(cfg: &Config, log: &mut dyn FnMut(&str)) -> std::io::Result<Context> {
        let data = if cfg.wants("w1") || cfg.wants("w4") {
            log(&format!(
                "data file {} (256 MiB; made if missing, then read once into the page cache)",
                cfg.data_path.display()
            ));
            Some(DataFile::prepare(&cfg.data_path)?)
        } else {
            None
        };
        let limit = crate::net_pairs::raise_fd_limit();
        log(&format!("open-files limit {limit}"));
        Ok(Context {
            data,
            uring: Side::new(tpio::BackendKind::Uring, "bench-uring"),
            mio: Side::new(tpio::BackendKind::Mio, "bench-mio"),
        })
    }

    /// The backend of `kind` and its pool.
    pub fn side(&self, kind: tpio::BackendKind) -> &Side {
        match kind {
            tpio::BackendKind::Uring => &self.uring,
            tpio::BackendKind::Mio => &self.mio,
        }
    }

    /// The callback environment of `kind`'s contestants.
    pub fn env(&self, kind: tpio::BackendKind) -> &tpio::CallbackEnvironment {
        &self.side(kind).env
    }

    /// The backend of `kind`, or why not.
    pub fn backend(&self, kind: tpio::BackendKind) -> Result<&tpio::Backend, RunError> {
        self.side(kind).backend.as_ref().map_err(Clone::clone)
    }

    /// One line per backend: in use, or why not.
    pub fn backend_note(&self) -> String {
        let one = |name: &str, b: &Result<tpio::Backend, RunError>| match b {
            Ok(b) => format!("tpio on {name}: {}", b.name()),
            Err(e) => format!("tpio on {name}: {e}"),
        };
        format!(
            "{}; {}; tpio's callbacks on a pool of {WORKERS} workers per backend",
            one("io_uring", &self.uring.backend),
            one("mio", &self.mio.backend)
        )
    }

    /// W1's data file, or why it is missing.
    pub fn data(&self) -> Result<&DataFile, RunError> {
        self.data
            .as_ref()
            .ok_or_else(|| RunError::Failed("the data file was not prepared".into()))
    }
}

/// One workload: its contestants and their rows.
pub struct Workload<'a> {
    /// `W1` … `W4`.
    pub id: &'static str,
    /// What is measured.
    pub title: String,
    /// The key of tpio's row, the base of the ratios.
    pub base: &'static str,
    /// Run in this order, once per round.
    pub contestants: Vec<Contestant<'a>>,
}

impl std::fmt::Debug for Workload<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Workload")
            .field("id", &self.id)
            .field("contestants", &self.contestants)
            .finish()
    }
}

impl<'a> Workload<'a> {
    /// Runs every contestant once, in order, logging each figure.
    pub fn run_round(&mut self, log: &mut dyn FnMut(&str)) {
        for c in self.contestants.iter_mut() {
            if let Some(r) = c.run_once() {
                let shown = match r {
                    Ok(v) => crate::report::format_value(v, &c.row.unit),
                    Err(e) => e.to_string(),
                };
                log(&format!("  {} {}: {shown}", self.id, c.row.name));
            }
        }
    }

    /// Medians and ratios.
    pub fn finish(self) -> WorkloadReport {
        let mut rows: Vec<_> = self.contestants.into_iter().map(|c| c.row).collect();
        finish_rows(&mut rows, self.base);
        WorkloadReport {
            id: self.id.into(),
            title: self.title,
            base: self.base.into(),
            rows,
        }
    }
}

/// The workloads `cfg` selects, in order W1 … W4.
pub fn all<'a>(ctx: &'a Context, cfg: &Config) -> Vec<Workload<'a>> {
    let mut v = Vec::new();
    if cfg.wants("w1") {
        v.push(w1_reads::workload(ctx, cfg));
    }
    if cfg.wants("w2") {
        v.push(w2_echo::workload(ctx, cfg));
    }
    if cfg.wants("w3") {
        v.push(w3_cancel::workload(ctx, cfg));
    }
    if cfg.wants("w4") {
        v.push(w4_lifecycle::workload(ctx, cfg));
    }
    if !cfg.contestants.is_empty() {
        for w in v.iter_mut() {
            w.contestants
                .retain(|c| cfg.contestants.contains(&c.row.key));
        }
    }
    v
}
