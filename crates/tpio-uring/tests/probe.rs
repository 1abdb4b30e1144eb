//! The probe on this machine: io_uring is there, with everything tpio needs.

use tpio_uring::probe::{self, Unavailable};

#[test]
fn probe_reports_kernel_and_sysctl() {
    let r = probe::probe();
    assert!(
        r.kernel_release.starts_with(|c: char| c.is_ascii_digit()),
        "{r:?}"
    );
    if std::path::Path::new(probe::SYSCTL_PATH).exists() {
        assert!(r.sysctl_disabled.is_some(), "{r:?}");
    }
}

#[test]
fn probe_agrees_with_the_sysctl() {
    let r = probe::probe();
    if probe::disabled_by_env() {
        assert_eq!(r.status, Err(Unavailable::DisabledByEnv));
        return;
    }
    match r.sysctl_disabled {
        Some(2) => assert_eq!(r.status, Err(Unavailable::DisabledBySysctl { value: 2 })),
        Some(0) => {
            // Enabled for everyone: only a seccomp filter or a missing
            // kernel feature can stop us, and then the reason says so.
            if let Err(why) = &r.status {
                assert!(
                    matches!(
                        why,
                        Unavailable::Denied
                            | Unavailable::NotInKernel
                            | Unavailable::OutOfResources { .. }
                    ),
                    "{why:?}"
                );
            }
        }
        _ => {}
    }
}

/// On the project's machines (Linux 6.x, io_uring enabled) everything the
/// driver needs is there, cancel-by-fd included.
#[test]
fn on_a_modern_kernel_everything_is_supported() {
    let r = probe::probe();
    let Ok(s) = &r.status else {
        eprintln!("skipping: {}", r.summary());
        return;
    };
    let major: u32 = r
        .kernel_release
        .split('.')
        .next()
        .and_then(|m| m.parse().ok())
        .unwrap_or(0);
    if major < 6 {
        eprintln!("skipping: kernel {}", r.kernel_release);
        return;
    }
    assert!(s.ops.all(), "missing {:?}", s.ops.missing());
    assert!(
        s.cancel_fd_all && s.ext_arg && s.nodrop && s.submit_all,
        "{s:?}"
    );
    assert!(r.is_available());
    assert!(
        r.summary().starts_with("io_uring available"),
        "{}",
        r.summary()
    );
    assert_eq!(probe::cached(), &r);
}
