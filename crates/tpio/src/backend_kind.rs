//! The names of backends and why one cannot run, on every OS:
//! [`BackendKind`], [`BackendError`], [`BACKEND_ENV`].
//!
//! Owns only these values; choosing and building a backend is `backend.rs`
//! (Unix) or `windows/backend.rs` (Windows). It never makes an OS call.

use std::fmt;

use tpio_core::Win32Error;

/// The environment variable that forces a backend: `uring` or `mio`.
pub const BACKEND_ENV: &str = "TPIO_BACKEND";

/// Submission-queue slots of the process-wide io_uring (the CQ is 4×).
pub const DEFAULT_RING_ENTRIES: u32 = 256;

/// The backends a program may ask for (the emulated ones; on Windows the
/// native one).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BackendKind {
    /// Linux io_uring (`tpio-uring`).
    Uring,
    /// `mio` readiness plus blocking workers for files (`tpio-mio`).
    Mio,
    /// kernel32's own thread-pool I/O (`tpio-windows`): the only backend on
    /// Windows.
    #[cfg(windows)]
    Kernel32,
}

impl BackendKind {
    /// Parses the value of [`BACKEND_ENV`] (`uring`, `io_uring`, `mio`;
    /// on Windows also `kernel32`).
    pub fn parse(s: &str) -> Option<BackendKind> {
        match s.trim().to_ascii_lowercase().as_str() {
            "uring" | "io_uring" | "io-uring" => Some(BackendKind::Uring),
            "mio" => Some(BackendKind::Mio),
            #[cfg(windows)]
            "kernel32" => Some(BackendKind::Kernel32),
            _ => None,
        }
    }
}

/// Why no backend can carry tpio handles in this process.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BackendError {
    /// The Win32 code a caller sees (`ERROR_NOT_SUPPORTED` for a missing
    /// backend, `ERROR_INVALID_PARAMETER` for a bad [`BACKEND_ENV`] value,
    /// `ERROR_ALREADY_EXISTS` when a different backend was already chosen).
    pub code: Win32Error,
    /// Why, in words (includes the io_uring probe's summary when it is the cause).
    pub reason: String,
}

impl fmt::Display for BackendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "no tpio backend: {} ({:?})", self.reason, self.code)
    }
}

impl std::error::Error for BackendError {}

impl From<BackendError> for std::io::Error {
    fn from(e: BackendError) -> Self {
        std::io::Error::new(e.code.kind(), e)
    }
}

impl From<BackendError> for Win32Error {
    fn from(e: BackendError) -> Self {
        e.code
    }
}
