//! The driver's one poller thread: waits for readiness and turns it into
//! completions.
//!
//! Owns the `mio::Poll` and its loop: for each event, the descriptor's
//! queue heads are tried again (in order, until one would block); after
//! each wake-up, the operations that `cancel` took out are delivered with
//! `ERROR_OPERATION_ABORTED`. It must never run a user callback (a
//! delivered packet only queues one in the core) and never block on
//! anything but `poll`.

use std::io;
use std::os::fd::RawFd;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use mio::{Events, Poll};

use crate::driver::Shared;
use crate::slot::WAKE;

/// Events taken per `poll` call.
const EVENTS: usize = 256;

/// The poller thread's body; returns when the driver stops.
pub(crate) fn run(shared: Arc<Shared>, mut poll: Poll) {
    let mut events = Events::with_capacity(EVENTS);
    loop {
        let timeout = shared.watching().then_some(crate::worker_poll::STUCK);
        if let Err(e) = poll.poll(&mut events, timeout) {
            if e.kind() != io::ErrorKind::Interrupted {
                tracing::error!("tpio-mio: poll failed: {e}");
                std::thread::yield_now();
            }
            continue;
        }
        if shared.stop.load(Ordering::Acquire) {
            return;
        }
        for ev in events.iter() {
            if ev.token() != WAKE {
                shared.on_ready(ev.token().0 as RawFd);
            }
        }
        shared.deliver_cancelled();
        if shared.worker_polls {
            shared.watch_workers();
        }
    }
}
