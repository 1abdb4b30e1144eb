//! Backend choice at run time, in a process of its own (the choice is made
//! once per process): `TPIO_BACKEND=mio` before the first handle makes mio
//! carry every handle, the choice sticks, and asking for another backend
//! afterwards is a clear, Win32-coded error.
// Gated: choosing between io_uring and mio exists on Unix only (on Windows
// the backend is kernel32; `conformance_io::the_backend_is_kernel32_on_windows`).
#![cfg(unix)]

use tpio::{Backend, BackendBuilder, BackendKind, OverlappedHandle, Win32Error};

#[test]
fn tpio_backend_env_forces_the_backend_and_the_choice_sticks() {
    // The only test in this binary: nothing has chosen a backend yet.
    std::env::set_var(tpio::BACKEND_ENV, "mio");
    assert_eq!(tpio::backend_name().expect("mio builds here"), "mio");
    let b = Backend::process().expect("process backend");
    assert_eq!(b.kind(), BackendKind::Mio);
    assert!(b.why().contains(tpio::BACKEND_ENV), "{}", b.why());
    let (rd, wr) = tpio::pipe().expect("handles on mio");
    assert_eq!(wr.write_blocking(b"x"), Ok(1));
    let mut buf = [0u8; 4];
    assert_eq!(rd.read_blocking(&mut buf), Ok(1));
    // Changing the variable later changes nothing: one choice per process.
    std::env::set_var(tpio::BACKEND_ENV, "uring");
    assert_eq!(tpio::backend_name().expect("sticky"), "mio");
    let again = BackendBuilder::new().force(BackendKind::Uring).install();
    let e = again.expect_err("another backend was asked for");
    assert_eq!(e.code, Win32Error::ALREADY_EXISTS);
    assert!(e.reason.contains("Mio"), "{e}");
}
