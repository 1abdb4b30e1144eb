//! Native driver of tpio: kernel32's thread-pool I/O (TP_IO) through
//! `windows-sys`.
//!
//! On Windows tpio does not emulate anything: every call forwards to the real
//! kernel32 function of the same name. This crate owns that forwarding and
//! nothing else; it has no state machine of its own and never reaches into
//! another driver.
//!
//! - `raw`: thin wrappers around `CreateThreadpoolIo`, `StartThreadpoolIo`,
//!   `CancelThreadpoolIo`, `WaitForThreadpoolIoCallbacks`,
//!   `CloseThreadpoolIo`, `CancelIo`, `CancelIoEx`, `CancelSynchronousIo`,
//!   `GetOverlappedResult` and `SetFileCompletionNotificationModes`, with a
//!   Rust closure as the I/O callback.
//! - `env`: the callback-environment helpers that the Windows SDK defines
//!   as inline functions (`InitializeThreadpoolEnvironment`,
//!   `SetThreadpoolCallbackPool`, …) and that `windows-sys` therefore lacks.
//! - `wine`: detection of Wine and the one list of the places where Wine's
//!   kernel32 is known to differ from documented Windows behaviour, so tests
//!   that run under Wine can say which behaviour they check.
//!
//! Only Windows targets get any of this; on every other target the crate is
//! empty, so the workspace builds everywhere.
//!
//! Every item `windows-sys` has is used from `windows-sys`; this crate writes
//! by hand only what the SDK provides as inline code.

#[cfg(windows)]
pub mod env;
#[cfg(windows)]
pub mod raw;
#[cfg(windows)]
pub mod wine;
