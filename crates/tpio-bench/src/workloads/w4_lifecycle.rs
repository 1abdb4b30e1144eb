//! W4: the TP_IO lifecycle. Close-after-drain: create a TP_IO on a fresh
//! handle, issue a 4 KiB read, close the TP_IO at once (before the read's
//! callback) — 100,000 times, at most 64 alive — and check every object was
//! released after its callback. Memory: bytes allocated per TP_IO and per
//! outstanding operation beyond the user's buffer (the counting allocator
//! must be installed: the `tpio` command does).
//!
//! Owns the contestant list; tpio is the only contestant (no peer has
//! TP_IO objects), so the rows carry no ratios.

use super::{Context, Workload};
use crate::measure::Contestant;
use crate::peers::tpio_peer::lifecycle;
use crate::Config;

/// W4 for tpio on each backend.
pub fn workload<'a>(ctx: &'a Context, cfg: &Config) -> Workload<'a> {
    let (objects, mem_n) = (cfg.w4_objects, cfg.w4_memory_objects);
    let mut c = Vec::new();
    for (kind, key, name) in [
        (tpio::BackendKind::Uring, "uring", "io_uring"),
        (tpio::BackendKind::Mio, "mio", "mio"),
    ] {
        c.push(Contestant::new(
            &format!("tpio-{key}-churn"),
            &format!("tpio on {name}: create, read, close-after-drain"),
            "objects/s",
            true,
            move || {
                lifecycle::churn(
                    ctx.backend(kind)?,
                    ctx.env(kind),
                    &ctx.side(kind).pool,
                    ctx.data()?,
                    objects,
                )
            },
        ));
        c.push(Contestant::new(
            &format!("tpio-{key}-bytes-per-io"),
            &format!("tpio on {name}: bytes per TP_IO"),
            "bytes",
            false,
            move || {
                lifecycle::bytes_per_object(ctx.backend(kind)?, ctx.env(kind), ctx.data()?, mem_n)
            },
        ));
        c.push(Contestant::new(
            &format!("tpio-{key}-bytes-per-op"),
            &format!("tpio on {name}: bytes per outstanding operation"),
            "bytes",
            false,
            move || lifecycle::bytes_per_operation(ctx.backend(kind)?, ctx.env(kind), mem_n),
        ));
    }
    Workload {
        id: "W4",
        title: format!(
            "TP_IO lifecycle: create, use and close {objects} objects (close before the read's callback); memory per TP_IO and per outstanding operation"
        ),
        base: "tpio-uring-churn",
        contestants: c,
    }
}
