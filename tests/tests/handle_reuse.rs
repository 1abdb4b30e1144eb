//! A handle's descriptor number, reused by the next handle, starts clean on
//! every emulated backend: the mio driver keeps a descriptor's registration
//! for its handle's life and drops it when the facade says the handle
//! closes (`Driver::closing`); io_uring keeps nothing. Each round makes a
//! pipe, waits in a read (so the driver registers the descriptor), closes
//! both, and the next round's pipe most likely gets the same numbers; its
//! pending read must still complete when data comes.
#![cfg(unix)]

mod support;

use std::os::fd::AsRawFd;
use std::sync::mpsc;
use std::sync::Mutex;

use support::*;
use tpio::{Backend, BackendKind, CallbackEnvironment, Done, OverlappedHandle, Pool, ThreadpoolIo};

#[test]
fn a_descriptor_number_reused_by_the_next_handle_starts_clean() {
    let mut kinds = vec![BackendKind::Mio];
    #[cfg(target_os = "linux")]
    kinds.push(BackendKind::Uring);
    for kind in kinds {
        let backend = match Backend::new(kind) {
            Ok(b) => b,
            Err(e) => {
                eprintln!("skipped on {kind:?}: {e}");
                continue;
            }
        };
        let pool = Pool::new("reuse");
        let env = CallbackEnvironment::new().pool(&pool);
        let mut numbers = Vec::new();
        for round in 0..8u64 {
            let (rd, wr) = tpio::pipe_on(&backend).expect("pipe");
            numbers.push(rd.as_raw_fd());
            let (tx, rx) = mpsc::channel();
            let tx = Mutex::new(tx);
            let io = ThreadpoolIo::new(&rd, Some(&env), move |_i, d: Done| {
                let _ = tx.lock().expect("tx").send((d.tag, d.result));
            })
            .expect("create");
            io.read(vec![0; 8], round).expect("read");
            // Not yet answered: the read waits (registered, on mio).
            assert!(
                rx.recv_timeout(QUIET / 3).is_err(),
                "{kind:?}: nothing written yet"
            );
            assert_eq!(wr.write_blocking(b"x"), Ok(1));
            assert_eq!(
                rx.recv_timeout(PATIENCE).expect("the read's callback"),
                (round, Ok(1)),
                "{kind:?} round {round}: the read on fd {} did not complete",
                rd.as_raw_fd()
            );
            idle(&io);
            io.close();
            drop((rd, wr));
        }
        numbers.dedup();
        eprintln!("{kind:?}: read ends used fd numbers {numbers:?}");
    }
}
