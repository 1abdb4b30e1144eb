//! Backend choice at run time: which driver carries every emulated handle of
//! this process.
//!
//! Owns the process-wide backend (created lazily, on the first handle) and
//! the decision that made it: [`BackendBuilder`] if the program installed
//! one, else the environment variable [`BACKEND_ENV`]
//! (`TPIO_BACKEND=uring|mio`), else io_uring when `tpio_uring::probe` says
//! it works, else mio — with the probe's reason kept in [`Backend::why`] and
//! logged. When no backend can run, every handle constructor fails with a
//! [`BackendError`] that carries a [`Win32Error`] and says why. This module
//! must never pick a backend silently after the program asked for another
//! one. Separate backends ([`Backend::new`]) are for programs that want
//! them explicitly, such as a benchmark comparing two.

use std::fmt;
use std::sync::{Arc, OnceLock};

use tpio_core::driver::Driver;
use tpio_core::Win32Error;

pub use crate::backend_kind::{BackendError, BackendKind, BACKEND_ENV, DEFAULT_RING_ENTRIES};

/// A backend: a driver instance, its kind, and why it was chosen. Every
/// handle is carried by one; the constructors without `_on` use the
/// process's ([`Backend::process`]), the `_on` ones take any (a benchmark
/// compares io_uring and mio in one process this way).
#[derive(Clone)]
pub struct Backend {
    kind: BackendKind,
    driver: Arc<dyn Driver>,
    why: Arc<str>,
}

impl fmt::Debug for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Backend")
            .field("kind", &self.kind)
            .field("why", &self.why)
            .finish()
    }
}

impl Backend {
    /// The process-wide backend (chosen on first use: see the module docs).
    pub fn process() -> Result<Backend, BackendError> {
        current().cloned()
    }

    /// A new, separate instance of backend `kind` (its own ring or poller
    /// and threads), whatever the process uses.
    pub fn new(kind: BackendKind) -> Result<Backend, BackendError> {
        Self::with_builder(kind, &BackendBuilder::new())
    }

    fn with_builder(kind: BackendKind, b: &BackendBuilder) -> Result<Backend, BackendError> {
        let why = format!("{kind:?} was asked for");
        match kind {
            BackendKind::Uring => uring(b.ring_entries.unwrap_or(DEFAULT_RING_ENTRIES), why),
            BackendKind::Mio => mio_backend(why),
        }
    }

    /// Which backend this is.
    pub fn kind(&self) -> BackendKind {
        self.kind
    }

    /// The driver's name (`"io_uring"`, `"mio"`).
    pub fn name(&self) -> &'static str {
        self.driver.name()
    }

    /// Why this backend was chosen, in words (names the probe's finding when
    /// io_uring was passed over).
    pub fn why(&self) -> &str {
        &self.why
    }

    /// The driver (for the raw driver contract; handles use it for you).
    pub fn driver(&self) -> &Arc<dyn Driver> {
        &self.driver
    }
}

static CHOSEN: OnceLock<Result<Backend, BackendError>> = OnceLock::new();

/// Chooses the backend before the first handle is made (otherwise the first
/// handle chooses by [`BACKEND_ENV`] and the probe).
///
/// ```no_run
/// tpio::BackendBuilder::new()
///     .force(tpio::BackendKind::Uring)
///     .install()
///     .expect("io_uring here");
/// assert_eq!(tpio::backend_name().ok(), Some("io_uring"));
/// ```
#[derive(Clone, Debug, Default)]
pub struct BackendBuilder {
    force: Option<BackendKind>,
    ring_entries: Option<u32>,
}

impl BackendBuilder {
    /// No preference: environment variable, then the probe.
    pub fn new() -> Self {
        Self::default()
    }

    /// Use this backend or fail; overrides [`BACKEND_ENV`].
    pub fn force(mut self, kind: BackendKind) -> Self {
        self.force = Some(kind);
        self
    }

    /// Submission-queue slots for the io_uring backend (default
    /// [`DEFAULT_RING_ENTRIES`]).
    pub fn ring_entries(mut self, entries: u32) -> Self {
        self.ring_entries = Some(entries);
        self
    }

    /// Makes the choice for the process. If a backend was already chosen
    /// (by an earlier `install` or by the first handle), succeeds when it is
    /// the one forced here (or nothing was forced) and fails with
    /// `ERROR_ALREADY_EXISTS` otherwise; the earlier choice stays.
    pub fn install(self) -> Result<(), BackendError> {
        let chosen = CHOSEN.get_or_init(|| choose(&self));
        match (chosen, self.force) {
            (Ok(b), Some(k)) if b.kind != k => Err(BackendError {
                code: Win32Error::ALREADY_EXISTS,
                reason: format!(
                    "{k:?} was asked for but {:?} was already chosen for this process",
                    b.kind
                ),
            }),
            (Ok(_), _) => Ok(()),
            (Err(e), _) => Err(e.clone()),
        }
    }

    /// Builds a separate backend by these settings (forced kind, else
    /// [`BACKEND_ENV`], else the probe), without touching the process's.
    pub fn build(&self) -> Result<Backend, BackendError> {
        choose(self)
    }
}

/// The process-wide backend, chosen on first use.
pub(crate) fn current() -> Result<&'static Backend, BackendError> {
    CHOSEN
        .get_or_init(|| choose(&BackendBuilder::new()))
        .as_ref()
        .map_err(Clone::clone)
}

/// The process-wide driver (chosen on first use).
pub fn driver() -> Result<Arc<dyn Driver>, BackendError> {
    current().map(|b| Arc::clone(&b.driver))
}

/// The name of the backend this process runs on (`"io_uring"`), choosing it
/// now if nothing has; or why there is none.
pub fn backend_name() -> Result<&'static str, BackendError> {
    current().map(|b| b.driver.name())
}

fn choose(b: &BackendBuilder) -> Result<Backend, BackendError> {
    let forced = match b.force {
        Some(k) => Some(k),
        None => match std::env::var(BACKEND_ENV) {
            Ok(v) if v.trim().is_empty() => None,
            Ok(v) => Some(BackendKind::parse(&v).ok_or_else(|| BackendError {
                code: Win32Error::INVALID_PARAMETER,
                reason: format!("{BACKEND_ENV}={v:?} is not one of: uring, mio"),
            })?),
            Err(_) => None,
        },
    };
    let r = match forced {
        Some(k) => Backend::with_builder(k, b).map(|mut x| {
            x.why = if b.force.is_some() {
                format!("{k:?} was forced by the program").into()
            } else {
                format!("{k:?} was forced by {BACKEND_ENV}").into()
            };
            x
        }),
        None => {
            let entries = b.ring_entries.unwrap_or(DEFAULT_RING_ENTRIES);
            uring(entries, "io_uring works here (the probe)".into()).or_else(|ue| {
                mio_backend(format!("io_uring is unavailable: {}", ue.reason)).map_err(|me| {
                    BackendError {
                        code: me.code,
                        reason: format!("{}; and mio: {}", ue.reason, me.reason),
                    }
                })
            })
        }
    };
    match &r {
        Ok(b) => tracing::info!(backend = b.driver.name(), why = %b.why, "tpio backend chosen"),
        Err(e) => tracing::warn!(error = %e, "tpio has no backend"),
    }
    r
}

#[cfg(target_os = "linux")]
fn uring(entries: u32, why: String) -> Result<Backend, BackendError> {
    let report = tpio_uring::probe::cached();
    if !report.is_available() {
        return Err(BackendError {
            code: Win32Error::NOT_SUPPORTED,
            reason: report.summary(),
        });
    }
    let d = tpio_uring::UringDriver::new(entries).map_err(|e| BackendError {
        code: tpio_core::io_error_to_win32(&e),
        reason: format!("io_uring driver setup failed: {e}"),
    })?;
    Ok(Backend {
        kind: BackendKind::Uring,
        driver: Arc::new(d),
        why: why.into(),
    })
}

#[cfg(not(target_os = "linux"))]
fn uring(_entries: u32, _why: String) -> Result<Backend, BackendError> {
    Err(BackendError {
        code: Win32Error::NOT_SUPPORTED,
        reason: "io_uring exists only on Linux".into(),
    })
}

/// The mio backend (readiness turned into completions; files on blocking
/// workers): `tpio_mio::MioDriver`, with its own poller thread.
#[cfg(unix)]
fn mio_backend(why: String) -> Result<Backend, BackendError> {
    let d = tpio_mio::MioDriver::new().map_err(|e| BackendError {
        code: tpio_core::io_error_to_win32(&e),
        reason: format!("mio driver setup failed: {e}"),
    })?;
    Ok(Backend {
        kind: BackendKind::Mio,
        driver: Arc::new(d),
        why: why.into(),
    })
}

#[cfg(not(unix))]
fn mio_backend(_why: String) -> Result<Backend, BackendError> {
    Err(BackendError {
        code: Win32Error::NOT_SUPPORTED,
        reason: "the mio backend runs on Unix only".into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_accepts_the_documented_names_only() {
        assert_eq!(BackendKind::parse("uring"), Some(BackendKind::Uring));
        assert_eq!(BackendKind::parse(" IO_URING "), Some(BackendKind::Uring));
        assert_eq!(BackendKind::parse("mio"), Some(BackendKind::Mio));
        assert_eq!(BackendKind::parse("epoll"), None);
    }

    #[cfg(unix)]
    #[test]
    fn forcing_mio_gives_the_mio_driver_and_says_why() {
        let b = choose(&BackendBuilder::new().force(BackendKind::Mio)).expect("mio runs on Unix");
        assert_eq!(b.kind(), BackendKind::Mio);
        assert_eq!(b.name(), "mio");
        assert_eq!(b.driver().name(), "mio");
        assert_eq!(b.why(), "Mio was forced by the program");
        let separate = Backend::new(BackendKind::Mio).expect("a separate instance");
        assert_eq!(separate.name(), "mio");
        assert_eq!(separate.why(), "Mio was asked for");
        assert!(
            !Arc::ptr_eq(b.driver(), separate.driver()),
            "its own driver"
        );
    }

    #[test]
    fn a_bad_env_value_is_invalid_parameter_naming_the_variable() {
        // The only test in this binary that reads the variable.
        std::env::set_var(BACKEND_ENV, "epoll");
        let e = choose(&BackendBuilder::new());
        std::env::remove_var(BACKEND_ENV);
        let e = e.unwrap_err();
        assert_eq!(e.code, Win32Error::INVALID_PARAMETER);
        assert!(e.reason.contains(BACKEND_ENV), "{e}");
    }
}
