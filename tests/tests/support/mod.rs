//! What every conformance test file shares: the backend check, temporary
//! files, data patterns, a pipe writer, waiting for an object to drain, and
//! (on Windows) whether a known Wine deviation applies.
//!
//! A conformance test never passes silently without a backend: on a host
//! where no backend can run, [`backend_here`] fails the test with the
//! reason, unless `TPIO_ALLOW_NO_BACKEND=1` says that is expected (then it
//! returns false and the test returns early, saying so).
#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Far above any healthy latency on a shared machine.
pub const PATIENCE: Duration = Duration::from_secs(20);
/// How long "nothing happens" is watched for.
pub const QUIET: Duration = Duration::from_millis(300);

/// True when a backend carries tpio handles here; see the module docs.
pub fn backend_here() -> bool {
    match tpio::backend_name() {
        Ok(_) => true,
        Err(e) if std::env::var("TPIO_ALLOW_NO_BACKEND").as_deref() == Ok("1") => {
            eprintln!("skipped (TPIO_ALLOW_NO_BACKEND=1): {e}");
            false
        }
        Err(e) => panic!(
            "no tpio backend on this host, so this conformance test cannot run: {e} \
             (set TPIO_ALLOW_NO_BACKEND=1 to skip on purpose)"
        ),
    }
}

/// A temporary file with given contents, removed on drop.
pub struct TempFile(pub PathBuf);

impl TempFile {
    pub fn with(data: &[u8]) -> TempFile {
        static N: AtomicU64 = AtomicU64::new(0);
        let p = std::env::temp_dir().join(format!(
            "tpio-conformance-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::write(&p, data).expect("write temp file");
        TempFile(p)
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// `n` bytes of a recognisable pattern.
pub fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 7 % 251) as u8).collect()
}

/// Writes all of `data` to a pipe's write end (or any handle), blocking:
/// the facade's synchronous `WriteFile` on every OS.
pub fn write_pipe(h: &(impl tpio::OverlappedHandle + ?Sized), data: &[u8]) {
    assert_eq!(h.write_blocking(data), Ok(data.len()), "write_blocking");
}

/// Waits (bounded) until the object is idle.
pub fn idle(io: &tpio::ThreadpoolIo) {
    assert_eq!(
        io.wait_for_callbacks_timeout(false, PATIENCE),
        Ok(true),
        "object did not drain"
    );
}

/// Waits (bounded) until the object's counts are all zero, and returns
/// them. Idle is not enough: a driver takes an operation out of its
/// handle's in-flight table before it hands the packet over, so a packet
/// whose callback was skipped (`wait_for_callbacks(true)`) may still be on
/// its way to the object when the handle and the object both look done.
pub fn counts_settle(io: &tpio::ThreadpoolIo) -> tpio::IoCounts {
    let deadline = std::time::Instant::now() + PATIENCE;
    loop {
        let c = io.counts();
        if c == tpio::IoCounts::default() || std::time::Instant::now() > deadline {
            return c;
        }
        std::thread::yield_now();
    }
}

/// True when this process runs under Wine and Wine is known to differ from
/// documented Windows there (`spec/wine-deviations.md`): the test then
/// checks Wine's behaviour instead. When it is true and `TPIO_EXCUSED_LOG`
/// names a file, the test's name and the deviation are appended to it, so
/// `scripts/rule-table.sh` can list the excused tests.
#[cfg(windows)]
pub fn wine_deviation(d: tpio::wine::Deviation) -> bool {
    let applies = tpio::wine::wine_deviation(d);
    if applies {
        record_excuse(&format!("Deviation::{d:?}"));
    }
    applies
}

/// Records that the calling test met a behaviour of this backend that
/// Windows documents neither way, and that the test accepts on this
/// backend only; `spec/rule-table.md` lists it with `note`.
pub fn backend_behaviour(note: &str) {
    eprintln!("accepted backend behaviour: {note}");
    record_excuse(note);
}

/// Appends "<test name> <why>" to the file `TPIO_EXCUSED_LOG` names, if any.
fn record_excuse(why: &str) {
    use std::io::Write;
    let Some(path) = std::env::var_os("TPIO_EXCUSED_LOG") else {
        return;
    };
    // libtest names each test's thread after the test.
    let test = std::thread::current().name().unwrap_or("?").to_string();
    let f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path);
    if let Ok(mut f) = f {
        let _ = writeln!(f, "{test} {why}");
    }
}

/// Off Windows no Wine deviation applies.
#[cfg(not(windows))]
pub fn wine_deviation(_d: Deviation) -> bool {
    false
}

/// The known Wine deviations (`tpio::wine::Deviation` on Windows).
#[cfg(windows)]
#[allow(unused_imports)] // only some test files name a deviation
pub use tpio::wine::Deviation;

/// The names of `tpio::wine::Deviation`, so portable tests name them on
/// every OS (none applies off Windows).
#[cfg(not(windows))]
#[derive(Clone, Copy, Debug)]
pub enum Deviation {
    /// `CancelIoEx(h, NULL)` with nothing pending returns TRUE under Wine.
    CancelIoExNothingPendingSucceeds,
}

/// Keeps the panics a test provokes on purpose (their message contains
/// "expected by the test") off stderr: they come from pool threads, whose
/// output libtest does not capture and which would cut into its `test …
/// ok` lines. Every other panic is reported as usual.
pub fn quiet_expected_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let msg = info
                .payload()
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| info.payload().downcast_ref::<String>().cloned())
                .unwrap_or_default();
            if !msg.contains("expected by the test") {
                default(info);
            }
        }));
    });
}
