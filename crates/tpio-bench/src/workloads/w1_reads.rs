//! W1: 4 KiB reads at random offsets from the 256 MiB file in the page
//! cache, queue depth 64, with a callback per completion that issues the
//! next read (the TP_IO pattern). Figure: reads per second.
//!
//! Owns the job description ([`ReadJob`]) and the contestant list; each
//! contestant's code is in its peer's module. A read that returns anything
//! but a full block fails the sample.

use std::time::Duration;

use super::{Context, Workload};
use crate::datafile::DataFile;
use crate::measure::Contestant;
use crate::peers::{compio_peer, pread_peer, tokio_peer, tpio_peer};
use crate::{Config, W1_BLOCK, W1_DEPTH, WORKERS};

/// Unit of W1's figures.
pub const UNIT: &str = "reads/s";

/// One W1 sample's parameters.
#[derive(Debug, Clone, Copy)]
pub struct ReadJob<'a> {
    /// The warm file.
    pub data: &'a DataFile,
    /// Reads in flight at once.
    pub depth: usize,
    /// Bytes per read.
    pub block: usize,
    /// How long to keep issuing.
    pub duration: Duration,
}

impl ReadJob<'_> {
    /// Blocks in the file.
    pub fn blocks(&self) -> u64 {
        self.data.blocks(self.block)
    }
}

/// W1 with every contestant.
pub fn workload<'a>(ctx: &'a Context, cfg: &Config) -> Workload<'a> {
    let duration = cfg.sample();
    let job = move || -> Result<ReadJob<'a>, crate::RunError> {
        Ok(ReadJob {
            data: ctx.data()?,
            depth: W1_DEPTH,
            block: W1_BLOCK,
            duration,
        })
    };
    let mut c = vec![
        Contestant::new(
            "tpio-uring",
            "tpio on io_uring (2 workers)",
            UNIT,
            true,
            move || {
                tpio_peer::reads::run(
                    ctx.backend(tpio::BackendKind::Uring)?,
                    ctx.env(tpio::BackendKind::Uring),
                    &job()?,
                )
            },
        ),
        Contestant::new(
            "tpio-mio",
            "tpio on mio (2 workers)",
            UNIT,
            true,
            move || {
                tpio_peer::reads::run(
                    ctx.backend(tpio::BackendKind::Mio)?,
                    ctx.env(tpio::BackendKind::Mio),
                    &job()?,
                )
            },
        ),
    ];
    #[cfg(target_os = "linux")]
    {
        use crate::peers::uring_peer;
        c.push(Contestant::new(
            "uring-loop",
            "plain io_uring loop, 1 thread, no callbacks (ceiling)",
            UNIT,
            true,
            move || uring_peer::reads::ceiling(&job()?),
        ));
        c.push(Contestant::new(
            "uring-handoff",
            "plain io_uring loop → channel → 2 workers issue the next read",
            UNIT,
            true,
            move || uring_peer::reads::handoff(&job()?, WORKERS),
        ));
    }
    c.push(Contestant::new(
        "tokio-fs",
        "tokio::fs (seek + read, 2 workers)",
        UNIT,
        true,
        move || tokio_peer::reads_fs(&job()?, WORKERS),
    ));
    c.push(Contestant::new(
        "tokio-blocking",
        "tokio spawn_blocking(pread) (2 workers)",
        UNIT,
        true,
        move || tokio_peer::reads_spawn_blocking(&job()?, WORKERS),
    ));
    c.push(Contestant::new(
        "compio",
        "compio read_at (1 thread)",
        UNIT,
        true,
        move || compio_peer::reads(&job()?),
    ));
    c.push(Contestant::new(
        "pread-2t",
        "pread on 2 threads, no queue (machine limit)",
        UNIT,
        true,
        move || pread_peer::reads(&job()?, WORKERS),
    ));
    Workload {
        id: "W1",
        title: format!(
            "{} KiB random reads, 256 MiB file in the page cache, QD {}, a callback per completion issues the next read",
            W1_BLOCK / 1024,
            W1_DEPTH
        ),
        base: "tpio-uring",
        contestants: c,
    }
}
