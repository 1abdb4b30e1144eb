//! What every conformance test file shares: the backend check, temporary
//! files, data patterns, a pipe writer, and waiting for an object to drain.
//!
//! A conformance test never passes silently without a backend: on a host
//! where no backend can run, [`backend_here`] fails the test with the
//! reason, unless `TPIO_ALLOW_NO_BACKEND=1` says that is expected (then it
//! returns false and the test returns early, saying so).
#![allow(dead_code)]

use std::os::fd::AsRawFd;
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

/// Writes `data` to a pipe's write end, blocking (a plain `write(2)`).
pub fn write_pipe(h: &impl AsRawFd, data: &[u8]) {
    // SAFETY: `data` is a live slice of `data.len()` bytes; the fd is open
    // (its owner is borrowed for the call).
    let n = unsafe { libc::write(h.as_raw_fd(), data.as_ptr().cast(), data.len()) };
    assert_eq!(
        n,
        data.len() as isize,
        "write: {}",
        std::io::Error::last_os_error()
    );
}

/// Waits (bounded) until the object is idle.
pub fn idle(io: &tpio::ThreadpoolIo) {
    assert_eq!(
        io.wait_for_callbacks_timeout(false, PATIENCE),
        Ok(true),
        "object did not drain"
    );
}
