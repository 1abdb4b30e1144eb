//! `tpio probe`: which backends work here, and why not — the kernel
//! release, whether io_uring is disabled by sysctl or refused (seccomp),
//! which of the opcodes tpio needs the kernel supports, whether cancel by
//! fd works; then each backend tried for real, and the one this process
//! would choose.
//!
//! Owns the probe's printing. It must never change anything: it reads
//! `/proc`, asks `tpio_uring::probe` (which sets up and tears down a small
//! ring) and builds each backend once. Exit status 0 when at least one
//! backend works, 1 when none does.

use std::process::ExitCode;

type BoxError = Box<dyn std::error::Error>;

fn yes(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "no"
    }
}

/// The `Seccomp:` line of `/proc/self/status` (0 none, 1 strict, 2 filter).
fn seccomp_mode() -> Option<String> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let v = s.lines().find(|l| l.starts_with("Seccomp:"))?;
    let mode = v.split_whitespace().nth(1)?.to_string();
    let what = match mode.as_str() {
        "0" => "none",
        "1" => "strict",
        "2" => "filter",
        _ => "?",
    };
    Some(format!("{mode} ({what})"))
}

#[cfg(target_os = "linux")]
fn uring_report() {
    use tpio_uring::probe;
    let r = probe::cached();
    println!("kernel: {} ({})", r.kernel_release, std::env::consts::OS);
    println!("io_uring: {}", r.summary());
    match r.sysctl_disabled {
        Some(v) => println!(
            "  sysctl kernel.io_uring_disabled = {v} ({})",
            match v {
                0 => "anyone may create rings",
                1 => "only members of kernel.io_uring_group",
                _ => "nobody may",
            }
        ),
        None => println!("  sysctl kernel.io_uring_disabled: absent (kernel before 6.6)"),
    }
    if let Some(m) = seccomp_mode() {
        println!("  seccomp mode of this process: {m}");
    }
    if probe::disabled_by_env() {
        println!(
            "  {} is set: io_uring treated as unavailable",
            probe::DISABLE_ENV
        );
    }
    match &r.status {
        Ok(s) => {
            let o = s.ops;
            let ops = [
                ("Read", o.read),
                ("Write", o.write),
                ("Recv", o.recv),
                ("Send", o.send),
                ("Accept", o.accept),
                ("Connect", o.connect),
                ("RecvMsg", o.recvmsg),
                ("SendMsg", o.sendmsg),
                ("AsyncCancel", o.async_cancel),
            ];
            let shown: Vec<String> = ops
                .iter()
                .map(|(n, ok)| format!("{n} {}", if *ok { "✓" } else { "✗" }))
                .collect();
            println!("  opcodes tpio needs: {}", shown.join(", "));
            println!(
                "  cancel by fd (ASYNC_CANCEL_FD|ALL): {}; EXT_ARG waits: {}; NODROP: {}; SUBMIT_ALL: {}",
                yes(s.cancel_fd_all),
                yes(s.ext_arg),
                yes(s.nodrop),
                yes(s.submit_all)
            );
        }
        Err(why) => println!("  why not: {why}"),
    }
    // A kernel property both drivers use, io_uring or not.
    println!(
        "pipe writes without SIGPIPE (RWF_NOSIGNAL, Linux 6.18+): {}",
        yes(tpio_uring::probe::nosignal_writes())
    );
}

#[cfg(not(target_os = "linux"))]
fn uring_report() {
    println!("os: {}", std::env::consts::OS);
    println!("io_uring: exists only on Linux");
}

/// Prints the probe; exit 0 when a backend works.
pub fn run() -> Result<ExitCode, BoxError> {
    uring_report();
    println!("\nbackends (each started once, then dropped):");
    let mut any = false;
    for (kind, name) in [
        (tpio::BackendKind::Uring, "io_uring"),
        (tpio::BackendKind::Mio, "mio"),
    ] {
        match tpio::Backend::new(kind) {
            Ok(b) => {
                any = true;
                println!("  {name:<9} works (driver \"{}\")", b.name());
            }
            Err(e) => println!("  {name:<9} unavailable: {} ({:?})", e.reason, e.code),
        }
    }
    let env = std::env::var(tpio::BACKEND_ENV).ok();
    match tpio::Backend::process() {
        Ok(b) => println!(
            "\nthis process would use: {} — {}{}",
            b.name(),
            b.why(),
            env.map(|v| format!(" ({}={v})", tpio::BACKEND_ENV))
                .unwrap_or_default()
        ),
        Err(e) => println!("\nthis process has no backend: {e}"),
    }
    Ok(if any {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
