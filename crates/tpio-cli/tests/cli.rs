//! The `tpio` command, run as a user would: `copy` round-trips a file (and
//! says so only when it did), `probe` exits 0 and names the backends.

use std::path::PathBuf;
use std::process::Command;

fn tpio() -> Command {
    Command::new(env!("CARGO_BIN_EXE_tpio"))
}

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("tpio-cli-test-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&d).expect("scratch dir");
    d
}

/// A file whose bytes depend on their offset, not a multiple of the block.
fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 % 253) as u8).collect()
}

fn copy_round_trips(backend: &str) {
    let dir = scratch(backend);
    let (src, dst) = (dir.join("src.bin"), dir.join("dst.bin"));
    let data = pattern(3 * 65_536 + 1_234);
    std::fs::write(&src, &data).expect("write src");
    let out = tpio()
        .args([
            "copy",
            "--verify",
            "--depth",
            "3",
            "--block-size",
            "64K",
            "--backend",
            backend,
        ])
        .arg(&src)
        .arg(&dst)
        .output()
        .expect("run tpio copy");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "tpio copy failed: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(std::fs::read(&dst).expect("read dst"), data);
    assert!(stdout.contains("verified: CRC-32"), "{stdout}");
    assert!(stdout.contains("MiB/s"), "{stdout}");
    std::fs::remove_dir_all(&dir).expect("clean up");
}

#[test]
fn copy_with_verify_round_trips_a_small_file_on_io_uring() {
    copy_round_trips("uring");
}

#[test]
fn copy_with_verify_round_trips_a_small_file_on_mio() {
    copy_round_trips("mio");
}

#[test]
fn copy_of_a_missing_source_fails_and_names_it() {
    let dir = scratch("missing");
    let out = tpio()
        .arg("copy")
        .arg(dir.join("no-such-file"))
        .arg(dir.join("dst"))
        .output()
        .expect("run tpio copy");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no-such-file"));
    std::fs::remove_dir_all(&dir).expect("clean up");
}

#[test]
fn probe_exits_0_and_names_the_backends() {
    let out = tpio().arg("probe").output().expect("run tpio probe");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.contains("kernel:"), "{stdout}");
    assert!(stdout.contains("io_uring"), "{stdout}");
    assert!(stdout.contains("mio"), "{stdout}");
    assert!(stdout.contains("this process would use:"), "{stdout}");
}

#[test]
fn probe_reports_io_uring_disabled_by_the_environment() {
    let out = tpio()
        .arg("probe")
        .env("TPIO_URING_DISABLE", "1")
        .output()
        .expect("run tpio probe");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("disabled by TPIO_URING_DISABLE"),
        "{stdout}"
    );
    assert!(stdout.contains("this process would use: mio"), "{stdout}");
}

#[test]
fn the_tour_shows_callbacks_cancel_close_and_a_throughput_figure() {
    check_tour(None);
}

#[test]
fn the_tour_runs_on_mio_too() {
    check_tour(Some("mio"));
}

fn check_tour(backend: Option<&str>) {
    let t0 = std::time::Instant::now();
    let mut cmd = tpio();
    if let Some(b) = backend {
        cmd.env("TPIO_BACKEND", b);
    }
    let out = cmd.output().expect("run tpio");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    // A read past the end: failed at once (no callback) or a callback with
    // 38 — both are Windows behaviours, and the backends differ here.
    assert!(
        stdout.contains("failed at once with ERROR_HANDLE_EOF (38): no callback")
            || stdout.contains("tag=3 result=ERROR_HANDLE_EOF (38) bytes=0"),
        "{stdout}"
    );
    for want in [
        "result=ERROR_OPERATION_ABORTED (995) bytes=0 on thread tpio-tour-",
        "again -> ERROR_NOT_FOUND (1168)",
        "idle=false",
        "\"hello from b\" on thread tpio-tour-",
        "released after their last callback: true",
        "k reads/s",
        &format!("tpio tour on {}", backend.unwrap_or("")),
    ] {
        assert!(stdout.contains(want), "missing {want:?} in:\n{stdout}");
    }
    assert!(
        t0.elapsed() < std::time::Duration::from_secs(10),
        "the tour took {:?}",
        t0.elapsed()
    );
}
