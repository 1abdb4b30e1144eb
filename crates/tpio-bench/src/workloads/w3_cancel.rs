//! W3: 10,000 reads pending on 10,000 idle sockets (5,000 Unix stream
//! pairs, a read on each end), then all cancelled; the figure is the time
//! from the first cancel request to the last "cancelled" completion reaped
//! (for tpio: the last 995 callback run). Lower is better.
//!
//! Owns the contestant list. Every contestant checks that each read ended
//! as cancelled; a sample where one did not fails.

use super::{Context, Workload};
use crate::measure::Contestant;
use crate::peers::{tokio_peer, tpio_peer};
use crate::Config;

/// Unit of W3's figures.
pub const UNIT: &str = "ms";

/// W3 with every contestant.
pub fn workload<'a>(ctx: &'a Context, cfg: &Config) -> Workload<'a> {
    let n = cfg.w3_pending;
    use tpio_peer::cancel::By;
    let mut c = vec![
        Contestant::new(
            "tpio-uring-ov",
            "tpio on io_uring, cancel_io_ex(h, Some(ov)) each",
            UNIT,
            false,
            move || {
                tpio_peer::cancel::run(
                    ctx.backend(tpio::BackendKind::Uring)?,
                    ctx.env(tpio::BackendKind::Uring),
                    n,
                    By::Overlapped,
                )
            },
        ),
        Contestant::new(
            "tpio-uring-handle",
            "tpio on io_uring, cancel_io_ex(h, None) each",
            UNIT,
            false,
            move || {
                tpio_peer::cancel::run(
                    ctx.backend(tpio::BackendKind::Uring)?,
                    ctx.env(tpio::BackendKind::Uring),
                    n,
                    By::Handle,
                )
            },
        ),
        Contestant::new(
            "tpio-mio-ov",
            "tpio on mio, cancel_io_ex(h, Some(ov)) each",
            UNIT,
            false,
            move || {
                tpio_peer::cancel::run(
                    ctx.backend(tpio::BackendKind::Mio)?,
                    ctx.env(tpio::BackendKind::Mio),
                    n,
                    By::Overlapped,
                )
            },
        ),
    ];
    #[cfg(target_os = "linux")]
    {
        use crate::peers::uring_peer::cancel::{run, By as UBy};
        c.push(Contestant::new(
            "uring-user-data",
            "plain io_uring, ASYNC_CANCEL by user_data each",
            UNIT,
            false,
            move || run(n, UBy::UserData),
        ));
        if cfg.w3_cancel_by_fd {
            c.push(Contestant::new(
                "uring-fd",
                "plain io_uring, ASYNC_CANCEL_FD|ALL per fd (reference)",
                UNIT,
                false,
                move || run(n, UBy::Fd),
            ));
        }
    }
    c.push(Contestant::new(
        "tokio",
        "tokio, abort the tasks (drop the read futures)",
        UNIT,
        false,
        move || tokio_peer::cancel(n),
    ));
    Workload {
        id: "W3",
        title: format!(
            "cancel {n} pending reads on {n} idle sockets and reap every cancelled completion"
        ),
        base: "tpio-uring-ov",
        contestants: c,
    }
}
