//! Native driver of tpio: kernel32's thread-pool I/O (TP_IO) through
//! `windows-sys`.
//!
//! On Windows tpio does not emulate anything: every call forwards to the real
//! kernel32 function of the same name, and kernel32 is the state machine.
//! This crate owns that forwarding and all of its `unsafe`: the facade
//! (`crates/tpio`) builds its Windows API on the safe types here and makes
//! no Win32 call itself. It never reaches into another driver and never
//! re-decides what kernel32 decided (callbacks, counts, error codes); it
//! only adds the diagnoses tpio promises where kernel32 would corrupt or
//! hang, and keeps every buffer alive until kernel32 is done with it.
//!
//! Thin wrappers (what the kernel32 characterisation tests use):
//! - [`raw`]: `CreateThreadpoolIo` … `SetFileCompletionNotificationModes`,
//!   with a Rust closure as the I/O callback.
//! - [`env`](mod@env): the callback-environment helpers that the Windows SDK defines
//!   as inline functions and that `windows-sys` therefore lacks.
//! - [`wine`]: detection of Wine and the one list of the places where Wine's
//!   kernel32 is known to differ from documented Windows behaviour.
//!
//! What the facade is built on (safe APIs):
//! - [`pool`], [`cleanup_group`], [`environment`], [`instance`]: `PTP_POOL`,
//!   `PTP_CLEANUP_GROUP`, `TP_CALLBACK_ENVIRON`, `PTP_CALLBACK_INSTANCE`,
//!   each with every method of its `tpio-core` namesake, same signatures
//!   (what kernel32 lacks is documented on the method); `worker`: which
//!   pool a thread serves, as tpio's trampolines saw it;
//! - [`kernel_handle`]: an overlapped file, named pipe or socket, its
//!   binding and its operations in flight; [`tp_io`]: the safe layer's TP_IO
//!   (each operation's memory in a heap `record` until kernel32 is done);
//!   [`raw_io`]: the Win32-shaped layer's TP_IO; [`sync_call`]: blocking
//!   calls that [`thread::cancel_synchronous_io`] interrupts.
//!
//! Only Windows targets get any of this; on every other target the crate is
//! empty, so the workspace builds everywhere. Every item `windows-sys` has
//! is used from `windows-sys`; this crate writes by hand only what the SDK
//! provides as inline code.
#![deny(unsafe_op_in_unsafe_fn)]

#[cfg(windows)]
mod callback;
#[cfg(windows)]
pub mod cleanup_group;
#[cfg(windows)]
pub mod env;
#[cfg(windows)]
pub mod environment;
#[cfg(windows)]
pub mod error;
#[cfg(windows)]
pub mod instance;
#[cfg(windows)]
mod issue;
#[cfg(windows)]
pub mod kernel_handle;
#[cfg(windows)]
pub mod pool;
#[cfg(windows)]
pub mod raw;
#[cfg(windows)]
pub mod raw_io;
#[cfg(windows)]
mod record;
#[cfg(windows)]
pub mod sync_call;
#[cfg(windows)]
pub mod thread;
#[cfg(windows)]
pub mod tp_io;
#[cfg(windows)]
pub mod wine;
#[cfg(windows)]
mod winsock;
#[cfg(windows)]
mod worker;

#[cfg(windows)]
pub use record::OpKind;
