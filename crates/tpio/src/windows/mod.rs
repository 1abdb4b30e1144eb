//! The facade on Windows: the same public names as on Unix, forwarded to
//! kernel32 through `tpio-windows` (`CreateThreadpoolIo`, `ReadFile`,
//! `CancelIoEx`, …). kernel32 is the state machine here; `tpio-core`'s
//! `IoObject` is not used.
//!
//! This folder owns only the public shapes (handle types, `ThreadpoolIo`,
//! the raw layer's ids) and the mapping to `tpio-windows`' safe types. It
//! must never call Win32 itself: every FFI call and its `unsafe` live in
//! `crates/tpio-windows` (the raw layer's `read_file`/`write_file` are
//! `unsafe` only because the caller owns the buffers).

pub(crate) mod backend;
pub(crate) mod cancel;
pub(crate) mod file;
pub(crate) mod handle;
pub(crate) mod net;
pub(crate) mod pipe;
pub mod raw;
pub(crate) mod threadpool_io;
