//! The low-level io_uring layer of tpio.
//!
//! This crate owns two things: turning io_uring into a small, thread-safe
//! submit / reap / cancel / wake primitive (every module but [`driver`],
//! which knows nothing of TP_IO objects, callbacks, pools or Win32 error
//! codes), and [`UringDriver`], the adapter that implements `tpio-core`'s
//! driver contract on it. It must never run user callbacks of its own,
//! never allocate per operation in the ring layer, and never report one of
//! its internal operations (wake-ups, cancels) as a user completion.
//!
//! On every OS but Linux the crate is empty.
//!
//! # Modules
//!
//! * [`probe`]: can io_uring be used here, and if not, why (a typed reason);
//!   the kernel release, the opcodes we need, whether cancel-by-fd works.
//! * [`op`]: builders for the operations (read/write at an offset, recv,
//!   send, accept, connect, recvmsg, sendmsg, nop) as submission entries.
//! * [`ring`]: [`Ring`], one io_uring shared between threads: submission
//!   from any thread, with back-pressure instead of errors when the SQ is full.
//! * [`reap`]: [`Reaper`], the one-thread-at-a-time completion side, and
//!   [`Completion`], what it reports.
//! * [`cancel`]: cancel by user_data (one or a batch) and cancel all on an fd.
//! * [`submit`]: which thread enters the kernel to submit, and why it
//!   matters (operations die with the thread that submitted them).
//! * [`wake`]: how another thread unblocks a waiting reaper.
//! * [`tag`]: the user_data namespace: which values are the caller's.
//! * [`error`]: the errors a caller can get.
//! * `faults` (cargo feature `fault-injection`, for tests only): a plan
//!   that makes the SQ look full, submissions fail, completions carry an
//!   errno, or the non-blocking try fail; without the feature it is empty.
//! * [`driver`]: [`UringDriver`], the core's driver contract on a [`Ring`].
//!
//! # Example
//!
//! ```
//! # #[cfg(target_os = "linux")] {
//! use tpio_uring::{op, probe, Completion, Ring};
//!
//! if probe::cached().is_available() {
//!     let ring = Ring::new(8).expect("ring");
//!     // SAFETY: a NOP touches no memory.
//!     unsafe { ring.push(7, op::nop()) }.expect("push");
//!     let mut reaper = ring.reaper();
//!     let mut seen = Vec::new();
//!     while seen.is_empty() {
//!         reaper.wait(None, |c| seen.push(c)).expect("wait");
//!     }
//!     assert_eq!(seen, [Completion::Op { user_data: 7, result: 0 }]);
//! }
//! # }
//! ```

#[cfg(target_os = "linux")]
mod at_once;
#[cfg(target_os = "linux")]
pub mod cancel;
#[cfg(target_os = "linux")]
mod defer;
#[cfg(target_os = "linux")]
pub mod driver;
#[cfg(target_os = "linux")]
pub mod error;
#[cfg(all(target_os = "linux", feature = "fault-injection"))]
pub mod faults;
#[cfg(all(target_os = "linux", not(feature = "fault-injection")))]
mod faults;
#[cfg(target_os = "linux")]
mod nocancel;
#[cfg(target_os = "linux")]
pub mod op;
#[cfg(target_os = "linux")]
pub mod probe;
#[cfg(target_os = "linux")]
pub mod reap;
#[cfg(target_os = "linux")]
pub mod ring;
#[cfg(target_os = "linux")]
mod slab;
#[cfg(target_os = "linux")]
pub mod submit;
#[cfg(target_os = "linux")]
mod table;
#[cfg(target_os = "linux")]
pub mod tag;
#[cfg(target_os = "linux")]
pub mod wake;
#[cfg(target_os = "linux")]
mod worker;

#[cfg(target_os = "linux")]
pub use error::SubmitError;
#[cfg(target_os = "linux")]
pub use op::Sqe;
#[cfg(target_os = "linux")]
pub use reap::{Completion, Reaped, Reaper};
#[cfg(target_os = "linux")]
pub use ring::{Ring, RingBuilder, RingFeatures, RingStats};
#[cfg(target_os = "linux")]
pub use submit::SubmitMode;
#[cfg(target_os = "linux")]
pub use tag::USER_DATA_MAX;
#[cfg(target_os = "linux")]
pub use wake::WakeMode;

#[cfg(target_os = "linux")]
pub use driver::{UringDriver, AT_ONCE_ENV, FILE_BATCH_ENV, SEND_BATCH_ENV};
#[cfg(target_os = "linux")]
pub use worker::WORKER_RINGS_ENV;

// On other OSes the crate is empty; keep the dependency used.
#[cfg(not(target_os = "linux"))]
use tpio_core as _;
