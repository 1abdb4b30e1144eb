//! The mio driver of tpio: readiness turned into completions for pipes and
//! sockets, regular files on a bounded set of blocking workers. It carries
//! tpio where io_uring is missing (macOS, the BSDs, Linux with io_uring
//! disabled or too old).
//!
//! This crate owns [`MioDriver`], an implementation of `tpio-core`'s driver
//! contract on `mio` (epoll on Linux, kqueue on macOS and the BSDs). It must
//! never run user callbacks, count starts or decide whether a packet gets a
//! callback (the core does), never block the caller of `cancel`, and never
//! use signals to wake anything. `spec/mio.md` says how it keeps each rule
//! and which it keeps more weakly than io_uring or Windows.
//!
//! # Modules
//!
//! * [`driver`]: [`MioDriver`]: submission, cancellation, delivery.
//! * `attempt`: the system calls (one non-blocking try; a file's blocking call).
//! * `slot`: each descriptor's queues of waiting operations and its registration.
//! * `poller`: the thread that waits for readiness (for every thread but
//!   the pool's workers), and rescues busy workers.
//! * `worker_poll`: a poll of its own for each pool worker.
//! * `file_pool`: the queue of file operations and its workers.
//! * `faults` (cargo feature `fault-injection`, for tests only): a plan
//!   that makes the non-blocking try or a registration fail; without the
//!   feature it is empty.
//! * `op`: the record of one operation in the driver's hands.
//! * `stats`: [`MioStats`].
//!
//! On every OS but Unix the crate is empty.
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]

#[cfg(unix)]
mod attempt;
#[cfg(unix)]
pub mod driver;
#[cfg(all(unix, feature = "fault-injection"))]
pub mod faults;
#[cfg(all(unix, not(feature = "fault-injection")))]
mod faults;
#[cfg(unix)]
mod file_pool;
#[cfg(unix)]
mod op;
#[cfg(unix)]
mod poller;
#[cfg(unix)]
mod slot;
#[cfg(unix)]
mod slot_table;
#[cfg(unix)]
mod stats;
#[cfg(unix)]
mod worker_poll;

#[cfg(unix)]
pub use driver::{MioDriver, DEFAULT_FILE_WORKERS};
#[cfg(unix)]
pub use stats::MioStats;
#[cfg(unix)]
pub use worker_poll::WORKER_POLLS_ENV;

// Off Unix the crate is empty; keep the dependencies used.
#[cfg(not(unix))]
use tpio_core as _;
#[cfg(not(unix))]
use tracing as _;
