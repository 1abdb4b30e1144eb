//! The backend on Windows: kernel32, always. [`Backend`] and
//! [`BackendBuilder`] keep the Unix shapes so portable code compiles
//! unchanged; asking for an emulated backend (`TPIO_BACKEND=uring|mio`,
//! [`BackendBuilder::force`]) is `ERROR_NOT_SUPPORTED` with the reason.
//!
//! Owns only that answer; it never creates a driver.

use std::fmt;
use std::sync::{Arc, OnceLock};

use tpio_core::Win32Error;

use crate::backend_kind::{BackendError, BackendKind, BACKEND_ENV};

/// The backend carrying every handle: kernel32 on Windows.
#[derive(Clone)]
pub struct Backend {
    why: Arc<str>,
}

impl fmt::Debug for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Backend")
            .field("kind", &BackendKind::Kernel32)
            .field("why", &self.why)
            .finish()
    }
}

fn unsupported(kind: BackendKind, by: &str) -> BackendError {
    BackendError {
        code: Win32Error::NOT_SUPPORTED,
        reason: format!("{kind:?} was asked for {by}, but on Windows tpio runs on kernel32 only"),
    }
}

fn choose(force: Option<BackendKind>) -> Result<Backend, BackendError> {
    let (kind, by) = match force {
        Some(k) => (Some(k), "by the program"),
        None => match std::env::var(BACKEND_ENV) {
            Ok(v) if v.trim().is_empty() => (None, ""),
            Ok(v) => (
                Some(BackendKind::parse(&v).ok_or_else(|| BackendError {
                    code: Win32Error::INVALID_PARAMETER,
                    reason: format!("{BACKEND_ENV}={v:?} is not one of: kernel32, uring, mio"),
                })?),
                "by TPIO_BACKEND",
            ),
            Err(_) => (None, ""),
        },
    };
    match kind {
        None => Ok(Backend {
            why: "kernel32 is the backend on Windows".into(),
        }),
        Some(BackendKind::Kernel32) => Ok(Backend {
            why: format!("Kernel32 was asked for {by}").into(),
        }),
        Some(k) => Err(unsupported(k, by)),
    }
}

static CHOSEN: OnceLock<Result<Backend, BackendError>> = OnceLock::new();

fn current() -> Result<&'static Backend, BackendError> {
    CHOSEN
        .get_or_init(|| choose(None))
        .as_ref()
        .map_err(Clone::clone)
}

impl Backend {
    /// The process's backend (kernel32).
    pub fn process() -> Result<Backend, BackendError> {
        current().cloned()
    }

    /// A backend of `kind`: kernel32 only.
    pub fn new(kind: BackendKind) -> Result<Backend, BackendError> {
        match kind {
            BackendKind::Kernel32 => Ok(Backend {
                why: "Kernel32 was asked for".into(),
            }),
            k => Err(unsupported(k, "by the program")),
        }
    }

    /// [`BackendKind::Kernel32`].
    pub fn kind(&self) -> BackendKind {
        BackendKind::Kernel32
    }

    /// `"kernel32"`.
    pub fn name(&self) -> &'static str {
        "kernel32"
    }

    /// Why this backend, in words.
    pub fn why(&self) -> &str {
        &self.why
    }
}

/// Chooses the backend before the first handle is made; on Windows only
/// kernel32 can be chosen.
#[derive(Clone, Debug, Default)]
pub struct BackendBuilder {
    force: Option<BackendKind>,
}

impl BackendBuilder {
    /// No preference.
    pub fn new() -> Self {
        Self::default()
    }

    /// Use this backend or fail.
    pub fn force(mut self, kind: BackendKind) -> Self {
        self.force = Some(kind);
        self
    }

    /// Ignored on Windows (no io_uring).
    pub fn ring_entries(self, _entries: u32) -> Self {
        self
    }

    /// Makes the choice for the process: `ERROR_NOT_SUPPORTED` for an
    /// emulated backend.
    pub fn install(self) -> Result<(), BackendError> {
        if let Some(k) = self.force {
            if k != BackendKind::Kernel32 {
                return Err(unsupported(k, "by the program"));
            }
        }
        CHOSEN
            .get_or_init(|| choose(self.force))
            .as_ref()
            .map(|_| ())
            .map_err(Clone::clone)
    }

    /// A backend by these settings.
    pub fn build(&self) -> Result<Backend, BackendError> {
        choose(self.force)
    }
}

/// `"kernel32"`, or why the program's choice cannot run here.
pub fn backend_name() -> Result<&'static str, BackendError> {
    current().map(|b| b.name())
}
