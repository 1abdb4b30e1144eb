//! Helpers shared by the integration tests: owned fds, temp files, and
//! waiting for completions with a deadline (never sleeping).
#![allow(dead_code)]

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use tpio_uring::{Completion, Reaper};

/// Generous: the machine is shared.
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// Skips (returns false) when io_uring is not usable here, saying why.
pub fn uring_here() -> bool {
    let report = tpio_uring::probe::probe();
    if !report.is_available() {
        eprintln!("skipping: {}", report.summary());
        return false;
    }
    true
}

/// Reaps until `n` completions were reported; panics after [`TIMEOUT`].
pub fn collect(reaper: &mut Reaper<'_>, n: usize) -> Vec<Completion> {
    let deadline = Instant::now() + TIMEOUT;
    let mut out = Vec::new();
    while out.len() < n {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(
            !left.is_zero(),
            "timed out with {} of {n} completions: {out:?}",
            out.len()
        );
        reaper.wait(Some(left), |c| out.push(c)).expect("wait");
    }
    assert_eq!(out.len(), n, "more completions than expected: {out:?}");
    out
}

/// Asserts nothing completes within `window` (for "stays pending").
pub fn assert_quiet(reaper: &mut Reaper<'_>, window: Duration) {
    let mut out = Vec::new();
    let r = reaper.wait(Some(window), |c| out.push(c)).expect("wait");
    assert!(out.is_empty(), "unexpected completions: {out:?}");
    assert!(r.timed_out);
}

/// Finds the completion of op `ud`.
pub fn op_result(cs: &[Completion], ud: u64) -> i32 {
    cs.iter()
        .find_map(|c| match *c {
            Completion::Op { user_data, result } if user_data == ud => Some(result),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no completion for {ud} in {cs:?}"))
}

pub fn pipe() -> (OwnedFd, OwnedFd) {
    let mut fds = [0; 2];
    // SAFETY: valid array of two ints.
    let r = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) };
    assert_eq!(r, 0, "pipe2: {}", io::Error::last_os_error());
    // SAFETY: fresh fds owned by nobody else.
    unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) }
}

pub fn socketpair(ty: i32) -> (OwnedFd, OwnedFd) {
    let mut fds = [0; 2];
    // SAFETY: valid array of two ints.
    let r =
        unsafe { libc::socketpair(libc::AF_UNIX, ty | libc::SOCK_CLOEXEC, 0, fds.as_mut_ptr()) };
    assert_eq!(r, 0, "socketpair: {}", io::Error::last_os_error());
    // SAFETY: fresh fds owned by nobody else.
    unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) }
}

pub fn write_all(fd: RawFd, data: &[u8]) {
    // SAFETY: data is a live slice.
    let n = unsafe { libc::write(fd, data.as_ptr().cast(), data.len()) };
    assert_eq!(
        n,
        data.len() as isize,
        "write: {}",
        io::Error::last_os_error()
    );
}

/// A temp file with `data`, removed on drop.
pub struct TempFile {
    pub path: PathBuf,
    pub file: std::fs::File,
}

impl TempFile {
    pub fn with(data: &[u8]) -> TempFile {
        use std::sync::atomic::{AtomicU32, Ordering};
        static N: AtomicU32 = AtomicU32::new(0);
        let path = std::env::temp_dir().join(format!(
            "tpio-uring-test-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::write(&path, data).expect("write temp file");
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .expect("open temp file");
        TempFile { path, file }
    }

    pub fn fd(&self) -> RawFd {
        self.file.as_raw_fd()
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Deterministic test bytes.
pub fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 + i / 251) as u8).collect()
}
