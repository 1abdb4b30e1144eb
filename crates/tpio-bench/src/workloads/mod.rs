//! The four workloads, what they share ([`Context`]: the data file, the
//! backends, tpio's pool) and how one round runs ([`Workload`]).
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
    /// tpio's io_uring backend for this run, or why there is none.
    pub uring: Result<tpio::Backend, RunError>,
    /// tpio's mio backend for this run, or why there is none.
    pub mio: Result<tpio::Backend, RunError>,
    /// tpio's callbacks run here: a pool of [`WORKERS`] threads.
    pub env: tpio::CallbackEnvironment,
    /// The pool behind `env`.
    pub pool: tpio::Pool,
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
        let backend = |k| tpio::Backend::new(k).map_err(RunError::from);
        let pool = tpio::Pool::new("bench");
        pool.set_thread_maximum(WORKERS);
        let env = tpio::CallbackEnvironment::new().pool(&pool);
        Ok(Context {
            data,
            uring: backend(tpio::BackendKind::Uring),
            mio: backend(tpio::BackendKind::Mio),
            env,
            pool,
        })
    }

    /// The backend of `kind`, or why not.
    pub fn backend(&self, kind: tpio::BackendKind) -> Result<&tpio::Backend, RunError> {
        match kind {
            tpio::BackendKind::Uring => self.uring.as_ref().map_err(Clone::clone),
            tpio::BackendKind::Mio => self.mio.as_ref().map_err(Clone::clone),
        }
    }

    /// One line per backend: in use, or why not.
    pub fn backend_note(&self) -> String {
        let one = |name: &str, b: &Result<tpio::Backend, RunError>| match b {
            Ok(b) => format!("tpio on {name}: {}", b.name()),
            Err(e) => format!("tpio on {name}: {e}"),
        };
        format!(
            "{}; {}; tpio's callbacks on a pool of {WORKERS} workers",
            one("io_uring", &self.uring),
            one("mio", &self.mio)
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
