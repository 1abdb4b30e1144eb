//! Backend choice at run time, in a process of its own (the choice is made
//! once per process): `TPIO_BACKEND=mio` before the first handle gives a
//! clear, Win32-coded error from every handle constructor, and the choice
//! sticks.
#![cfg(unix)]

use tpio::{BackendBuilder, BackendKind, Win32Error};

#[test]
fn tpio_backend_env_forces_the_backend_and_the_choice_sticks() {
    // The only test in this binary: nothing has chosen a backend yet.
    std::env::set_var(tpio::BACKEND_ENV, "mio");
    let e = tpio::backend_name().expect_err("mio is not built yet");
    assert_eq!(e.code, Win32Error::NOT_SUPPORTED);
    assert!(e.to_string().contains("mio"), "{e}");
    let io = tpio::pipe().expect_err("no backend, no handles");
    assert_eq!(io.kind(), std::io::ErrorKind::Unsupported);
    assert!(io.to_string().contains("mio"), "{io}");
    // Changing the variable later changes nothing: one choice per process.
    std::env::set_var(tpio::BACKEND_ENV, "uring");
    assert_eq!(
        tpio::backend_name().expect_err("sticky").code,
        Win32Error::NOT_SUPPORTED
    );
    let again = BackendBuilder::new().force(BackendKind::Uring).install();
    assert_eq!(again.expect_err("sticky").code, Win32Error::NOT_SUPPORTED);
}
