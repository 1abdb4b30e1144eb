//! Conformance of the Win32-shaped raw layer (`tpio::raw`) with real I/O:
//! the caller balances starts, the OVERLAPPED's address comes back in the
//! callback, and misuse that corrupts on Windows is diagnosed.

mod support;

use std::collections::HashMap;
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Mutex, OnceLock};

use std::time::Duration;

use support::{backend_here, wine_deviation, Deviation, PATIENCE};
use tpio::raw::*;
use tpio::OverlappedHandle;
use tpio::{CallbackInstance, Win32Error};

/// (overlapped address, io_result, bytes, io)
type Seen = (usize, u32, usize, TpIo);

/// Callbacks are plain `fn`s: each test's context picks its channel here.
fn senders() -> &'static Mutex<HashMap<usize, Sender<Seen>>> {
    static S: OnceLock<Mutex<HashMap<usize, Sender<Seen>>>> = OnceLock::new();
    S.get_or_init(Default::default)
}

fn channel(context: usize) -> Receiver<Seen> {
    let (tx, rx) = mpsc::channel();
    senders().lock().expect("senders").insert(context, tx);
    rx
}

fn on_io(
    _i: &mut CallbackInstance<'_>,
    context: usize,
    ov: *mut Overlapped,
    result: u32,
    bytes: usize,
    io: TpIo,
) {
    if let Some(tx) = senders().lock().expect("senders").get(&context) {
        let _ = tx.send((ov as usize, result, bytes, io));
    }
}

fn write_pipe(h: &tpio::Pipe, data: &[u8]) {
    assert_eq!(h.write_blocking(data), Ok(data.len()));
}

#[test]
fn rule_3_raw_read_file_pending_then_callback_with_the_same_overlapped() {
    if !backend_here() {
        return;
    }
    let (rd, wr) = tpio::pipe().expect("pipe");
    let rx = channel(1);
    let io = create_threadpool_io(&rd, on_io, 1, None).expect("create");
    let mut ov = Box::new(Overlapped::default());
    let mut buf = vec![0u8; 16];
    start_threadpool_io(io).expect("start");
    // SAFETY: `buf` and `ov` live until after the callback (received below).
    let r = unsafe { read_file(&rd, buf.as_mut_ptr(), buf.len() as u32, &mut *ov) };
    assert_eq!(r, Err(Win32Error::IO_PENDING));
    write_pipe(&wr, b"raw!");
    let (ovp, result, bytes, from) = rx.recv_timeout(PATIENCE).expect("callback");
    assert_eq!(ovp, &*ov as *const Overlapped as usize);
    assert_eq!((result, bytes, from), (0, 4, io));
    assert_eq!(&buf[..4], b"raw!");
    wait_for_threadpool_io_callbacks(io, false).expect("wait");
    close_threadpool_io(io).expect("close");
}

#[test]
fn rule_3_raw_file_read_uses_the_overlapped_offset() {
    if !backend_here() {
        return;
    }
    let p = std::env::temp_dir().join(format!("tpio-raw-{}", std::process::id()));
    std::fs::write(&p, b"0123456789abcdef").expect("write");
    let f = tpio::File::open_overlapped(&p).expect("open");
    let rx = channel(2);
    let io = create_threadpool_io(&f, on_io, 2, None).expect("create");
    let mut ov = Box::new(Overlapped::at(10));
    assert_eq!(ov.position(), 10);
    let mut buf = vec![0u8; 6];
    start_threadpool_io(io).expect("start");
    // SAFETY: `buf` and `ov` live until after the callback.
    let r = unsafe { read_file(&f, buf.as_mut_ptr(), 6, &mut *ov) };
    assert!(matches!(r, Ok(6) | Err(Win32Error::IO_PENDING)), "{r:?}");
    let (_, result, bytes, _) = rx.recv_timeout(PATIENCE).expect("callback");
    assert_eq!((result, bytes), (0, 6));
    assert_eq!(&buf, b"abcdef");
    close_threadpool_io(io).expect("close");
    let _ = std::fs::remove_file(&p);
}

#[test]
fn rule_2_raw_failed_now_needs_the_callers_cancel_and_gets_no_callback() {
    if !backend_here() {
        return;
    }
    let (_rd, wr) = tpio::pipe().expect("pipe");
    let rx = channel(3);
    let io = create_threadpool_io(&wr, on_io, 3, None).expect("create");
    let mut ov = Overlapped::default();
    let mut buf = [0u8; 4];
    start_threadpool_io(io).expect("start");
    // SAFETY: the call fails at once, so nothing outlives it.
    let r = unsafe { read_file(&wr, buf.as_mut_ptr(), 4, &mut ov) };
    assert_eq!(r, Err(Win32Error::ACCESS_DENIED));
    cancel_threadpool_io(io).expect("balance");
    // A second cancel has no start to balance: diagnosed, not corrupted.
    assert_eq!(cancel_threadpool_io(io), Err(Win32Error::NOT_FOUND));
    wait_for_threadpool_io_callbacks(io, false).expect("idle at once");
    assert!(rx.try_recv().is_err(), "no callback for a failed-now issue");
    close_threadpool_io(io).expect("close");
}

#[test]
fn rule_6_raw_cancel_io_ex_by_overlapped_gives_995() {
    if !backend_here() {
        return;
    }
    let (rd, _wr) = tpio::pipe().expect("pipe");
    let rx = channel(4);
    let io = create_threadpool_io(&rd, on_io, 4, None).expect("create");
    let mut ov = Box::new(Overlapped::default());
    let mut buf = vec![0u8; 8];
    start_threadpool_io(io).expect("start");
    // SAFETY: `buf` and `ov` live until after the callback.
    let r = unsafe { read_file(&rd, buf.as_mut_ptr(), 8, &mut *ov) };
    assert_eq!(r, Err(Win32Error::IO_PENDING));
    let ovp: *const Overlapped = &*ov;
    cancel_io_ex(&rd, Some(ovp)).expect("cancel");
    let (got, result, bytes, _) = rx.recv_timeout(PATIENCE).expect("callback");
    assert_eq!((got, result, bytes), (ovp as usize, 995, 0));
    assert_eq!(cancel_io_ex(&rd, Some(ovp)), Err(Win32Error::NOT_FOUND));
    close_threadpool_io(io).expect("close");
}

#[test]
fn rule_6_raw_cancel_io_ex_all_with_nothing_pending_is_not_found() {
    if !backend_here() {
        return;
    }
    let (rd, _wr) = tpio::pipe().expect("pipe");
    let io = create_threadpool_io(&rd, on_io, 7, None).expect("create");
    // The raw layer forwards CancelIoEx(h, NULL) to kernel32 as it is.
    let r = cancel_io_ex(&rd, None);
    if wine_deviation(Deviation::CancelIoExNothingPendingSucceeds) {
        assert_eq!(
            r,
            Ok(()),
            "Wine 8.0 returns TRUE here (spec/wine-deviations.md)"
        );
    } else {
        assert_eq!(r, Err(Win32Error::NOT_FOUND));
    }
    close_threadpool_io(io).expect("close");
}

#[test]
fn raw_use_after_close_is_invalid_handle_not_corruption() {
    if !backend_here() {
        return;
    }
    let (rd, _wr) = tpio::pipe().expect("pipe");
    let io = create_threadpool_io(&rd, on_io, 5, None).expect("create");
    close_threadpool_io(io).expect("close");
    assert_eq!(start_threadpool_io(io), Err(Win32Error::INVALID_HANDLE));
    assert_eq!(cancel_threadpool_io(io), Err(Win32Error::INVALID_HANDLE));
    assert_eq!(
        wait_for_threadpool_io_callbacks(io, false),
        Err(Win32Error::INVALID_HANDLE)
    );
    assert_eq!(close_threadpool_io(io), Err(Win32Error::INVALID_HANDLE));
    // ReadFile on the handle whose TP_IO is closed: diagnosed at once.
    let mut ov = Overlapped::default();
    let mut buf = [0u8; 4];
    // SAFETY: the call fails at once (no open TP_IO), so nothing outlives it.
    let r = unsafe { read_file(&rd, buf.as_mut_ptr(), 4, &mut ov) };
    assert_eq!(r, Err(Win32Error::INVALID_HANDLE));
}

#[test]
fn raw_read_file_refuses_a_handle_bound_to_a_safe_threadpool_io() {
    if !backend_here() {
        return;
    }
    let (rd, _wr) = tpio::pipe().expect("pipe");
    let safe = tpio::ThreadpoolIo::new(&rd, None, |_, _| {}).expect("safe");
    assert_eq!(
        create_threadpool_io(&rd, on_io, 6, None),
        Err(Win32Error::INVALID_PARAMETER),
        "one TP_IO per handle, across layers"
    );
    let mut ov = Overlapped::default();
    let mut buf = [0u8; 4];
    // SAFETY: the call fails at once, so nothing outlives it.
    let r = unsafe { read_file(&rd, buf.as_mut_ptr(), 4, &mut ov) };
    assert_eq!(r, Err(Win32Error::INVALID_PARAMETER));
    assert_eq!(safe.counts(), tpio::IoCounts::default());
}

#[test]
fn rule_8_get_overlapped_result_in_flight_is_996_times_out_with_258_then_waits_for_the_bytes() {
    if !backend_here() {
        return;
    }
    let (rd, wr) = tpio::pipe().expect("pipe");
    let rx = channel(80);
    let io = create_threadpool_io(&rd, on_io, 80, None).expect("create");
    let ov = Box::new(Overlapped::default());
    let ovp = &*ov as *const Overlapped as *mut Overlapped;
    let mut buf = vec![0u8; 16];
    start_threadpool_io(io).expect("start");
    // SAFETY: `buf` and `ov` live until after the callback (received below).
    let r = unsafe { read_file(&rd, buf.as_mut_ptr(), 16, ovp) };
    assert_eq!(r, Err(Win32Error::IO_PENDING));
    assert!(!ov.has_completed());
    assert_eq!(
        ov.internal.load(std::sync::atomic::Ordering::Acquire),
        STATUS_PENDING
    );
    assert_eq!(
        get_overlapped_result(&rd, &ov, false),
        Err(Win32Error::IO_INCOMPLETE)
    );
    assert_eq!(
        get_overlapped_result_ex(&rd, &ov, Some(Duration::from_millis(30))),
        Err(Win32Error::WAIT_TIMEOUT)
    );
    std::thread::scope(|s| {
        s.spawn(|| {
            std::thread::sleep(Duration::from_millis(20));
            write_pipe(&wr, b"later");
        });
        assert_eq!(get_overlapped_result(&rd, &ov, true), Ok(5));
        assert!(ov.has_completed());
    });
    let (seen, result, bytes, _) = rx.recv_timeout(PATIENCE).expect("callback");
    assert_eq!((seen, result, bytes), (ovp as usize, 0, 5));
    assert_eq!(&buf[..5], b"later");
    wait_for_threadpool_io_callbacks(io, false).expect("wait");
    close_threadpool_io(io).expect("close");
}

#[test]
fn rule_8_a_cancelled_read_reports_995_and_a_failed_now_read_its_error() {
    if !backend_here() {
        return;
    }
    let (rd, wr) = tpio::pipe().expect("pipe");
    let rx = channel(81);
    let io = create_threadpool_io(&rd, on_io, 81, None).expect("create");
    let ov = Box::new(Overlapped::default());
    let ovp = &*ov as *const Overlapped as *mut Overlapped;
    let mut buf = vec![0u8; 8];
    start_threadpool_io(io).expect("start");
    // SAFETY: `buf` and `ov` live until after the callback.
    let r = unsafe { read_file(&rd, buf.as_mut_ptr(), 8, ovp) };
    assert_eq!(r, Err(Win32Error::IO_PENDING));
    cancel_io_ex(&rd, Some(ovp)).expect("cancel");
    assert_eq!(
        get_overlapped_result(&rd, &ov, true),
        Err(Win32Error::OPERATION_ABORTED)
    );
    let (_, result, bytes, _) = rx.recv_timeout(PATIENCE).expect("callback");
    assert_eq!((result, bytes), (995, 0));
    wait_for_threadpool_io_callbacks(io, false).expect("wait");
    close_threadpool_io(io).expect("close");
    // A read that fails at once leaves its error in the OVERLAPPED too.
    let io = create_threadpool_io(&wr, on_io, 82, None).expect("create");
    let ov2 = Overlapped::default();
    start_threadpool_io(io).expect("start");
    // SAFETY: the call fails at once; nothing outlives it.
    let r = unsafe { read_file(&wr, buf.as_mut_ptr(), 8, &ov2 as *const _ as *mut _) };
    assert_eq!(r, Err(Win32Error::ACCESS_DENIED));
    cancel_threadpool_io(io).expect("balance");
    assert_eq!(
        get_overlapped_result(&wr, &ov2, false),
        Err(Win32Error::ACCESS_DENIED)
    );
    close_threadpool_io(io).expect("close");
}

#[test]
fn rule_8_a_read_done_at_once_is_complete_as_the_call_returns() {
    if !backend_here() {
        return;
    }
    let p = std::env::temp_dir().join(format!("tpio-raw-at-once-{}", std::process::id()));
    std::fs::write(&p, b"0123456789").expect("write");
    let f = tpio::File::open_overlapped(&p).expect("open");
    let rx = channel(83);
    let io = create_threadpool_io(&f, on_io, 83, None).expect("create");
    let ov = Box::new(Overlapped::at(4));
    let ovp = &*ov as *const Overlapped as *mut Overlapped;
    let mut buf = vec![0u8; 4];
    start_threadpool_io(io).expect("start");
    // SAFETY: `buf` and `ov` live until after the callback.
    let r = unsafe { read_file(&f, buf.as_mut_ptr(), 4, ovp) };
    if r == Ok(4) {
        // TRUE from ReadFile: the OVERLAPPED says done at once.
        assert_eq!(get_overlapped_result(&f, &ov, false), Ok(4));
    } else {
        assert_eq!(r, Err(Win32Error::IO_PENDING));
        assert_eq!(get_overlapped_result(&f, &ov, true), Ok(4));
    }
    let (_, result, bytes, _) = rx.recv_timeout(PATIENCE).expect("callback");
    assert_eq!((result, bytes), (0, 4));
    assert_eq!(&buf, b"4567");
    wait_for_threadpool_io_callbacks(io, false).expect("wait");
    close_threadpool_io(io).expect("close");
    let _ = std::fs::remove_file(&p);
}

#[test]
fn rule_10_raw_reusing_an_overlapped_while_its_read_is_pending_is_refused() {
    if !backend_here() {
        return;
    }
    let (rd, _wr) = tpio::pipe().expect("pipe");
    let rx = channel(84);
    let io = create_threadpool_io(&rd, on_io, 84, None).expect("create");
    let ov = Box::new(Overlapped::default());
    let ovp = &*ov as *const Overlapped as *mut Overlapped;
    let mut a = vec![0u8; 8];
    let mut b = vec![0u8; 8];
    start_threadpool_io(io).expect("start");
    // SAFETY: `a` and `ov` live until after the callback.
    let r = unsafe { read_file(&rd, a.as_mut_ptr(), 8, ovp) };
    assert_eq!(r, Err(Win32Error::IO_PENDING));
    start_threadpool_io(io).expect("start");
    // SAFETY: refused at once; `b` is not used by anyone afterwards.
    let r = unsafe { read_file(&rd, b.as_mut_ptr(), 8, ovp) };
    assert_eq!(r, Err(Win32Error::INVALID_PARAMETER));
    cancel_threadpool_io(io).expect("balance the refused issue");
    assert_eq!(rd.in_flight(), 1, "the first read is untouched");
    cancel_io_ex(&rd, Some(ovp)).expect("cancel the first");
    let (_, result, _, _) = rx.recv_timeout(PATIENCE).expect("callback");
    assert_eq!(result, 995);
    wait_for_threadpool_io_callbacks(io, false).expect("wait");
    close_threadpool_io(io).expect("close");
}

/// The `tracing` messages emitted on this thread while `f` runs.
fn messages_of(f: impl FnOnce()) -> Vec<String> {
    use std::fmt::Write;
    use std::sync::Arc;
    use tracing::field::{Field, Visit};
    use tracing::span;

    #[derive(Default)]
    struct Capture(Arc<Mutex<Vec<String>>>);
    struct Message(String);
    impl Visit for Message {
        fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
            if field.name() == "message" {
                let _ = write!(self.0, "{value:?}");
            }
        }
    }
    impl tracing::Subscriber for Capture {
        fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
            true
        }
        fn new_span(&self, _: &span::Attributes<'_>) -> span::Id {
            span::Id::from_u64(1)
        }
        fn record(&self, _: &span::Id, _: &span::Record<'_>) {}
        fn record_follows_from(&self, _: &span::Id, _: &span::Id) {}
        fn event(&self, e: &tracing::Event<'_>) {
            let mut m = Message(String::new());
            e.record(&mut m);
            self.0.lock().expect("messages").push(m.0);
        }
        fn enter(&self, _: &span::Id) {}
        fn exit(&self, _: &span::Id) {}
    }
    let c = Capture::default();
    let seen = c.0.clone();
    tracing::subscriber::with_default(c, f);
    let v = seen.lock().expect("messages").clone();
    v
}

/// Bad input the raw layer rejects with a message naming the rule (as
/// well as the error each call returns): a call on a closed TP_IO and a
/// second close (rule 5), an OVERLAPPED reused while its read is pending
/// (rule 10).
#[test]
fn bad_input_raw_misuse_is_rejected_with_a_message_naming_the_rule() {
    if !backend_here() {
        return;
    }
    let (rd, _wr) = tpio::pipe().expect("pipe");
    let io = create_threadpool_io(&rd, on_io, 90, None).expect("create");
    close_threadpool_io(io).expect("close");
    let m = messages_of(|| assert_eq!(start_threadpool_io(io), Err(Win32Error::INVALID_HANDLE)));
    assert!(m.iter().any(|m| m.contains("rule 5")), "{m:?}");
    let m = messages_of(|| assert_eq!(close_threadpool_io(io), Err(Win32Error::INVALID_HANDLE)));
    assert!(m.iter().any(|m| m.contains("rule 5")), "{m:?}");

    let (rd, _wr) = tpio::pipe().expect("pipe");
    let rx = channel(91);
    let io = create_threadpool_io(&rd, on_io, 91, None).expect("create");
    let ov = Box::new(Overlapped::default());
    let ovp = &*ov as *const Overlapped as *mut Overlapped;
    let (mut a, mut b) = (vec![0u8; 8], vec![0u8; 8]);
    start_threadpool_io(io).expect("start");
    // SAFETY: `a` and `ov` live until after the callback (received below).
    let r = unsafe { read_file(&rd, a.as_mut_ptr(), 8, ovp) };
    assert_eq!(r, Err(Win32Error::IO_PENDING));
    start_threadpool_io(io).expect("start");
    let m = messages_of(|| {
        // SAFETY: refused at once; `b` is not used by anyone afterwards.
        let r = unsafe { read_file(&rd, b.as_mut_ptr(), 8, ovp) };
        assert_eq!(r, Err(Win32Error::INVALID_PARAMETER));
    });
    assert!(m.iter().any(|m| m.contains("rule 10")), "{m:?}");
    cancel_threadpool_io(io).expect("balance the refused issue");
    cancel_io_ex(&rd, Some(ovp)).expect("cancel the first");
    let (_, result, _, _) = rx.recv_timeout(PATIENCE).expect("callback");
    assert_eq!(result, 995);
    wait_for_threadpool_io_callbacks(io, false).expect("wait");
    close_threadpool_io(io).expect("close");
}

/// `ReadFile` on a handle no TP_IO was ever created for: `ERROR_INVALID_HANDLE`
/// at once (a port that forgot `CreateThreadpoolIo` learns it here instead
/// of never seeing a callback); the handle is untouched and can be bound
/// afterwards.
#[test]
fn bad_input_raw_read_file_on_a_handle_with_no_tp_io_is_invalid_handle() {
    if !backend_here() {
        return;
    }
    let (rd, wr) = tpio::pipe().expect("pipe");
    let mut ov = Overlapped::default();
    let mut buf = [0u8; 4];
    // SAFETY: the call fails at once, so nothing outlives it.
    let r = unsafe { read_file(&rd, buf.as_mut_ptr(), 4, &mut ov) };
    assert_eq!(r, Err(Win32Error::INVALID_HANDLE));
    assert_eq!(rd.in_flight(), 0);
    // SAFETY: as above.
    let r = unsafe { write_file(&wr, buf.as_ptr(), 4, &mut ov) };
    assert_eq!(r, Err(Win32Error::INVALID_HANDLE));
    let rx = channel(92);
    let io = create_threadpool_io(&rd, on_io, 92, None).expect("bound afterwards");
    let mut ov = Box::new(Overlapped::default());
    start_threadpool_io(io).expect("start");
    // SAFETY: `buf` and `ov` live until after the callback (received below).
    let r = unsafe { read_file(&rd, buf.as_mut_ptr(), 4, &mut *ov) };
    assert_eq!(r, Err(Win32Error::IO_PENDING));
    write_pipe(&wr, b"late");
    let (_, result, bytes, _) = rx.recv_timeout(PATIENCE).expect("callback");
    assert_eq!((result, bytes), (0, 4));
    wait_for_threadpool_io_callbacks(io, false).expect("wait");
    close_threadpool_io(io).expect("close");
}

/// A null OVERLAPPED on an overlapped handle: `ERROR_INVALID_PARAMETER` at
/// once, nothing issued (the caller balances its start).
#[test]
fn bad_input_raw_read_file_with_a_null_overlapped_is_invalid_parameter() {
    if !backend_here() {
        return;
    }
    let (rd, _wr) = tpio::pipe().expect("pipe");
    let rx = channel(93);
    let io = create_threadpool_io(&rd, on_io, 93, None).expect("create");
    let mut buf = [0u8; 4];
    start_threadpool_io(io).expect("start");
    // SAFETY: refused before anything is issued.
    let r = unsafe { read_file(&rd, buf.as_mut_ptr(), 4, std::ptr::null_mut()) };
    assert_eq!(r, Err(Win32Error::INVALID_PARAMETER));
    assert_eq!(rd.in_flight(), 0);
    cancel_threadpool_io(io).expect("balance");
    wait_for_threadpool_io_callbacks(io, false).expect("idle");
    assert!(rx.try_recv().is_err(), "no callback");
    close_threadpool_io(io).expect("close");
}

/// A handle of the wrong kind for `ReadFile`: a listening socket. The read
/// fails at once (Linux: `WSAENOTCONN`, 10057), no callback comes, the
/// caller's cancel balances the start and the OVERLAPPED carries the
/// error. Unix only: kernel32's answer for a listening socket is not
/// pinned here.
#[cfg(unix)]
#[test]
fn bad_input_raw_read_file_on_a_listening_socket_fails_now_and_needs_the_callers_cancel() {
    if !backend_here() {
        return;
    }
    let l = tpio::TcpListener::bind("127.0.0.1:0").expect("bind");
    let rx = channel(94);
    let io = create_threadpool_io(&l, on_io, 94, None).expect("create");
    let ov = Overlapped::default();
    let mut buf = [0u8; 4];
    start_threadpool_io(io).expect("start");
    // SAFETY: the call fails at once; nothing outlives it.
    let r = unsafe { read_file(&l, buf.as_mut_ptr(), 4, &ov as *const _ as *mut _) };
    assert_eq!(r, Err(Win32Error::WSAENOTCONN));
    cancel_threadpool_io(io).expect("balance");
    assert_eq!(
        get_overlapped_result(&l, &ov, false),
        Err(Win32Error::WSAENOTCONN)
    );
    wait_for_threadpool_io_callbacks(io, false).expect("idle");
    assert!(rx.try_recv().is_err(), "no callback for a failed-now issue");
    close_threadpool_io(io).expect("close");
}

/// A pipe write larger than the pipe is pending after part of it went
/// (the reader took 256 KiB); cancelling it gives 995 with 0 bytes, as
/// kernel32 under Wine reports (the part already in the pipe stays there).
/// Both Linux drivers carry the write's progress and drop it on cancel.
#[test]
fn rule_6_raw_pipe_write_cancelled_after_part_went_reports_995_and_0_bytes() {
    if !backend_here() {
        return;
    }
    let (rd, wr) = tpio::pipe().expect("pipe");
    let rx = channel(77);
    let io = create_threadpool_io(&wr, on_io, 77, None).expect("create");
    let mut ov = Box::new(Overlapped::default());
    let buf = vec![7u8; 4 << 20];
    start_threadpool_io(io).expect("start");
    // SAFETY: `buf` and `ov` live until after the callback (received below).
    let r = unsafe { write_file(&wr, buf.as_ptr(), buf.len() as u32, &mut *ov) };
    assert_eq!(r, Err(Win32Error::IO_PENDING));
    let mut b = vec![0u8; 64 << 10];
    let mut took = 0;
    while took < 256 << 10 {
        took += rd.read_blocking(&mut b).expect("read");
    }
    assert!(
        rx.recv_timeout(Duration::from_millis(50)).is_err(),
        "4 MiB cannot have gone yet"
    );
    cancel_io_ex(&wr, None).expect("cancel");
    let (ovp, result, bytes, _) = rx.recv_timeout(PATIENCE).expect("callback");
    assert_eq!(ovp, &*ov as *const Overlapped as usize);
    assert_eq!((result, bytes), (995, 0), "after {took} bytes were read");
    wait_for_threadpool_io_callbacks(io, false).expect("wait");
    close_threadpool_io(io).expect("close");
}
