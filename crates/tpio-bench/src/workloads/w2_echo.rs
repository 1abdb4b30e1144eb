//! W2: TCP echo over loopback, 32 connections, 64-byte messages: each
//! client sends a message and waits for it to come back, then sends the
//! next; both ends are the contestant's. Figure: round trips per second.
//!
//! Owns the job ([`EchoJob`]) and the contestant list. Every contestant
//! starts from the same connected std sockets (`net_pairs::tcp_pairs`).

use std::time::Duration;

use super::{Context, Workload};
use crate::measure::Contestant;
use crate::peers::{compio_peer, mio_peer, tokio_peer, tpio_peer};
use crate::{Config, W2_CONNECTIONS, W2_MESSAGE, WORKERS};

/// Unit of W2's figures.
pub const UNIT: &str = "round trips/s";

/// One W2 sample's parameters.
#[derive(Debug, Clone, Copy)]
pub struct EchoJob {
    /// Connections, each with its own client and server end.
    pub connections: usize,
    /// Bytes per message.
    pub message: usize,
    /// How long the clients keep sending.
    pub duration: Duration,
}

/// W2 with every contestant.
pub fn workload<'a>(ctx: &'a Context, cfg: &Config) -> Workload<'a> {
    let job = EchoJob {
        connections: W2_CONNECTIONS,
        message: W2_MESSAGE,
        duration: cfg.sample(),
    };
    use tpio::BackendKind::{Mio, Uring};
    use tpio_peer::echo::{Mode, Start};
    let tpio = move |kind, skip, start| {
        move || {
            let mode = Mode { skip, start };
            tpio_peer::echo::run(ctx.backend(kind)?, ctx.env(kind), &job, mode)
        }
    };
    let mut c = vec![
        Contestant::new(
            "tpio-uring",
            "tpio on io_uring (2 workers)",
            UNIT,
            true,
            tpio(Uring, false, Start::Pair),
        ),
        Contestant::new(
            "tpio-uring-skip",
            "tpio on io_uring, skip completion on success (2 workers)",
            UNIT,
            true,
            tpio(Uring, true, Start::Pair),
        ),
        Contestant::new(
            "tpio-uring-caller",
            "tpio on io_uring, connections started by the caller (2 workers)",
            UNIT,
            true,
            tpio(Uring, false, Start::Caller),
        ),
        Contestant::new(
            "tpio-mio",
            "tpio on mio (2 workers)",
            UNIT,
            true,
            tpio(Mio, false, Start::Pair),
        ),
        Contestant::new("mio-2t", "plain mio, 2 threads", UNIT, true, move || {
            mio_peer::echo(&job, WORKERS)
        }),
    ];
    #[cfg(target_os = "linux")]
    c.push(Contestant::new(
        "uring-2t",
        "plain io_uring, 2 threads",
        UNIT,
        true,
        move || crate::peers::uring_peer::echo::run(&job, WORKERS),
    ));
    c.push(Contestant::new(
        "tokio",
        "tokio (2 workers)",
        UNIT,
        true,
        move || tokio_peer::echo(&job, WORKERS),
    ));
    c.push(Contestant::new(
        "compio",
        "compio, 2 runtime threads",
        UNIT,
        true,
        move || compio_peer::echo(&job, WORKERS),
    ));
    Workload {
        id: "W2",
        title: format!(
            "TCP echo over loopback, {W2_CONNECTIONS} connections × {W2_MESSAGE}-byte messages, one message in flight per connection"
        ),
        base: "tpio-uring",
        contestants: c,
    }
}
