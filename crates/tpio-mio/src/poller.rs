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
use std::time::Instant;

use mio::{Events, Poll};

use crate::driver::Shared;
use crate::slot::WAKE;

/// Events taken per `poll` call.
const EVENTS: usize = 256;

/// The poller thread's body; returns when the driver stops.
pub(crate) fn run(shared: Arc<Shared>, mut poll: Poll) {
    let mut events = Events::with_capacity(EVENTS);
    // Scans for busy workers come every STUCK while watching, however often
    // readiness wakes this thread (a scan takes locks).
    let mut next_scan = Instant::now();
    loop {
        let watching = shared.worker_polls && shared.watching();
        let timeout = watching.then(|| next_scan.saturating_duration_since(Instant::now()));
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
                let (r, w) = crate::worker_poll::readiness(ev);
                shared.on_ready(ev.token().0 as RawFd, r, w);
            }
        }
        shared.deliver_cancelled();
        if shared.worker_polls && shared.watching() {
            let now = Instant::now();
            if now >= next_scan {
                shared.watch_workers();
                next_scan = now + crate::worker_poll::STUCK;
            }
        }
    }
}
