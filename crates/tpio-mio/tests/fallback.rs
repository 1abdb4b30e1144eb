//! The facade falls back to this driver by itself where io_uring cannot be
//! used, and says why. A test binary of its own: it sets process-wide
//! variables before anything chose a backend.
#![cfg(unix)]

#[test]
fn with_io_uring_unavailable_the_process_backend_is_mio_and_says_why() {
    // Nothing forces a backend; io_uring is made unavailable where it
    // exists (the probe's test switch), and is absent elsewhere anyway.
    std::env::remove_var(tpio::BACKEND_ENV);
    std::env::set_var("TPIO_URING_DISABLE", "1");
    let b = tpio::Backend::process().expect("a backend");
    assert_eq!(b.kind(), tpio::BackendKind::Mio);
    assert_eq!(tpio::backend_name(), Ok("mio"));
    assert!(
        b.why().starts_with("io_uring is unavailable: "),
        "{}",
        b.why()
    );
    #[cfg(target_os = "linux")]
    assert!(b.why().contains("TPIO_URING_DISABLE"), "{}", b.why());
    // And it carries real I/O.
    let (rd, wr) = tpio::pipe().expect("pipe");
    let (tx, rx) = std::sync::mpsc::channel();
    let tx = std::sync::Mutex::new(tx);
    let io = tpio::ThreadpoolIo::new(&rd, None, move |_i, d| {
        let _ = tx.lock().map(|t| t.send((d.tag, d.result)));
    })
    .expect("create");
    io.read(vec![0; 8], 1).expect("issued");
    assert_eq!(
        tpio::OverlappedHandle::write_blocking(&wr, b"fallback"),
        Ok(8)
    );
    assert_eq!(
        rx.recv_timeout(std::time::Duration::from_secs(20)),
        Ok((1, Ok(8)))
    );
    io.wait_for_callbacks(false).expect("idle");
}
