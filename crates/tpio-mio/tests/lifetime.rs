//! The driver's own lifetime: it may be dropped on any thread, including
//! its own poller (when the last reference goes with a packet it delivers).
#![cfg(unix)]

mod common;

use std::os::fd::AsRawFd;
use std::sync::{mpsc, Arc};

use common::*;
use tpio_core::driver::{Driver, HandleKind, HandleOps, Issued, OpKind, RawHandle, Submission};
use tpio_core::{CallbackEnvironment, CallbackInstance, Completion, IoObject, Pool};
use tpio_mio::MioDriver;

/// Drops the driver it holds, then says so (an unwinding drop never says so).
struct Holder {
    driver: Option<Arc<MioDriver>>,
    done: mpsc::Sender<std::thread::ThreadId>,
}

impl Drop for Holder {
    fn drop(&mut self) {
        drop(self.driver.take());
        let _ = self.done.send(std::thread::current().id());
    }
}

#[test]
fn the_last_reference_dropped_on_the_poller_thread_neither_deadlocks_nor_panics() {
    let pool = Pool::new("tpio-mio-lifetime");
    let driver = Arc::new(MioDriver::new().expect("driver"));
    let (done_tx, done) = mpsc::channel();
    let holder = Holder {
        driver: Some(Arc::clone(&driver)),
        done: done_tx,
    };
    // The object's callback owns the only other reference to the driver.
    let io = IoObject::new(
        &CallbackEnvironment::new().pool(&pool),
        0,
        move |_i: &mut CallbackInstance<'_>, _c: Completion| {
            let _keep = &holder;
        },
    );
    let (rd, wr) = pipe();
    let mut buf = [0u8; 8];
    io.start().unwrap();
    let sub = Submission {
        handle: RawHandle(rd.as_raw_fd() as u64),
        handle_kind: HandleKind::Pipe,
        kind: OpKind::Read { offset: None },
        buf: buf.as_mut_ptr(),
        len: buf.len(),
        addr: std::ptr::null_mut(),
        overlapped: 1,
        ops: Arc::new(HandleOps::new()),
        thread: std::thread::current().id(),
        skip_on_success: false,
    };
    // SAFETY: `buf` outlives the packet (awaited below through `done`).
    assert_eq!(unsafe { driver.submit(sub, io.target()) }, Issued::Pending);
    // Stop expecting the read, close the object, let go of our reference:
    // the read's packet is now the last thing keeping the driver alive.
    assert_eq!(io.wait_for_callbacks_timeout(true, TIMEOUT), Ok(true));
    drop(io);
    drop(driver);
    write_all(wr.as_raw_fd(), b"last");
    let on = done
        .recv_timeout(TIMEOUT)
        .expect("the driver was dropped cleanly");
    assert_ne!(
        on,
        std::thread::current().id(),
        "dropped by the delivering thread"
    );
    assert_eq!(pool.stats().packets_skipped, 1);
    assert_eq!(pool.stats().live_objects(), 0);
}
