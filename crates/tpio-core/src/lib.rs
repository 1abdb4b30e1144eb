//! tpio-core: the portable model of Windows thread-pool I/O.
//!
//! This crate owns the semantics every tpio backend shares (the rules of
//! `spec/semantics.md`): the TP_IO state machine ([`IoObject`]), the thread
//! pool ([`Pool`]) and its callback instances, callback environments,
//! cleanup groups, Win32 error codes and the errno → Win32 map, misuse
//! diagnosis, and the contract every driver implements ([`driver`]).
//! It makes no OS call and names no OS; drivers live in other crates.
//!
//! The lifecycle, on the simulated driver (a test instrument):
//!
//! ```
//! use tpio_core::{sim::SimDriver, driver::*, *};
//! use std::sync::{Arc, mpsc};
//!
//! let pool = Pool::new("example");
//! let (tx, rx) = mpsc::channel();
//! let io = IoObject::new(&CallbackEnvironment::new().pool(&pool), 0, move |_inst: &mut CallbackInstance<'_>, c: Completion| {
//!     tx.send(c).unwrap();
//! });
//! let driver = SimDriver::new();
//! let ops = Arc::new(HandleOps::new());
//! io.start().unwrap();                                         // StartThreadpoolIo
//! let sub = Submission { handle: RawHandle(3), handle_kind: HandleKind::File,
//!     kind: OpKind::Read { offset: Some(0) }, buf: std::ptr::null_mut(), len: 0,
//!     addr: std::ptr::null_mut(), overlapped: 0x1000, ops: ops.clone(),
//!     thread: std::thread::current().id(), skip_on_success: false };
//! // SAFETY: no buffer is involved.
//! let issued = unsafe { driver.submit(sub, io.target()) };
//! assert_eq!(issued, Issued::Pending);
//! driver.complete(driver.in_flight()[0], Win32Error::SUCCESS, 512); // the kernel finishes
//! let c = rx.recv().unwrap();                                  // the callback ran on a worker
//! assert_eq!((c.overlapped, c.status, c.bytes), (0x1000, Win32Error::SUCCESS, 512));
//! io.wait_for_callbacks(false).unwrap();
//! io.close();                                                  // released: nothing left
//! assert_eq!(pool.stats().live_objects(), 0);
//! ```
#![deny(unsafe_code)]
#![warn(missing_docs)]

mod cleanup_group;
pub mod driver;
mod environment;
pub mod errno_map;
mod event;
mod instance;
mod io_object;
mod local_queue;
mod overlapped_status;
pub mod parker;
mod pool;
pub mod sim;
mod stats;
mod sync;
mod sync_io;
mod target_watch;
mod win32_error;

pub use cleanup_group::CleanupGroup;
pub use environment::{CallbackEnvironment, CleanupCallback, Priority};
pub use errno_map::{errno_to_win32, io_error_to_win32};
pub use event::{Event, Semaphore};
pub use instance::CallbackInstance;
pub use io_object::{
    current_callback_object, Completion, CompletionTarget, Discard, IoCallback, IoCounts, IoObject,
};
pub use overlapped_status::OverlappedStatus;
pub use pool::{Pool, WorkerRef, DEFAULT_IDLE_TIMEOUT, DEFAULT_MAX_THREADS, MAX_POOL_THREADS};
pub use stats::{Misuse, StatsSnapshot, Striped};
pub use sync_io::{cancel_synchronous_io, cancel_synchronous_io_raw, BlockingCall, ThreadHandle};
pub use win32_error::Win32Error;
