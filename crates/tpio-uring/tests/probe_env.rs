//! `TPIO_URING_DISABLE=1` forces "unavailable" (a test binary of its own,
//! since it sets a process-wide variable).

use tpio_uring::probe::{self, Unavailable, DISABLE_ENV};

#[test]
fn env_var_forces_unavailable_and_zero_does_not() {
    // set_var is racy only against concurrent readers; this binary holds
    // only this test, so nothing else reads the environment meanwhile.
    std::env::set_var(DISABLE_ENV, "1");
    let r = probe::probe();
    assert_eq!(r.status, Err(Unavailable::DisabledByEnv));
    assert!(!r.is_available());
    assert_eq!(
        r.summary(),
        format!(
            "io_uring unavailable: disabled by TPIO_URING_DISABLE (kernel {})",
            r.kernel_release
        )
    );
    // The kernel facts are still reported.
    assert!(!r.kernel_release.is_empty());

    std::env::set_var(DISABLE_ENV, "0");
    assert!(!probe::disabled_by_env());
    assert_ne!(probe::probe().status, Err(Unavailable::DisabledByEnv));
    std::env::set_var(DISABLE_ENV, "");
    assert!(!probe::disabled_by_env());
    std::env::remove_var(DISABLE_ENV);
}
