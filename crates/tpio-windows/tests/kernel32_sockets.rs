//! kernel32's TP_IO on Winsock sockets (TCP over loopback), rule by rule:
//! what a server built on tpio sees for receives, peer close, reset and
//! cancellation. Runs on Windows and under Wine (`scripts/wine-test.sh`).
#![cfg(windows)]

mod support;

use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::os::windows::io::AsRawSocket;

use support::*;
use tpio_windows::raw::{self, ThreadpoolIo, FILE_SKIP_COMPLETION_PORT_ON_SUCCESS};
use tpio_windows::wine::{wine_deviation, Deviation};
use windows_sys::Win32::Foundation::{
    ERROR_IO_INCOMPLETE, ERROR_NETNAME_DELETED, ERROR_NOT_FOUND, ERROR_OPERATION_ABORTED, HANDLE,
};
use windows_sys::Win32::Networking::WinSock::{
    setsockopt, WSAGetLastError, WSARecv, LINGER, SOCKET, SOCKET_ERROR, SOL_SOCKET, SO_LINGER,
    WSABUF, WSA_IO_PENDING,
};

/// A connected loopback pair: (ours, peer). std creates its sockets with
/// WSA_FLAG_OVERLAPPED, so ours can be bound to a TP_IO.
fn tcp_pair() -> (TcpStream, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().unwrap();
    let peer = TcpStream::connect(addr).expect("connect");
    let (ours, _) = listener.accept().expect("accept");
    (ours, peer)
}

fn sh(s: &TcpStream) -> HANDLE {
    s.as_raw_socket() as HANDLE
}

/// `WSARecv` into `op`: `Ok(())` done at once, `Err(997)` pending,
/// `Err(code)` failed at once.
fn recv(s: &TcpStream, op: &Op) -> Result<(), i32> {
    let buf = WSABUF {
        len: op.len as u32,
        buf: op.buf,
    };
    let mut flags = 0u32;
    // SAFETY: buffer and OVERLAPPED are leaked (valid until completion);
    // WSABUF and flags are only read during the call.
    let r = unsafe {
        WSARecv(
            s.as_raw_socket() as SOCKET,
            &buf,
            1,
            std::ptr::null_mut(),
            &mut flags,
            op.ov,
            None,
        )
    };
    if r != SOCKET_ERROR {
        Ok(())
    } else {
        // SAFETY: no preconditions.
        Err(unsafe { WSAGetLastError() })
    }
}

fn new_io(s: &TcpStream, rec: &std::sync::Arc<Recorder>) -> ThreadpoolIo {
    // SAFETY: the socket is overlapped, unbound, and outlives the test's
    // operations.
    unsafe { ThreadpoolIo::new(sh(s), None, rec.callback()) }.expect("CreateThreadpoolIo")
}

fn start_pending_recv(io: &ThreadpoolIo, s: &TcpStream, op: &Op) {
    // SAFETY: the receive follows; if it does not pend we cancel.
    unsafe { io.start() };
    let r = recv(s, op);
    if r != Err(WSA_IO_PENDING) {
        // SAFETY: done or failed at once: the start is unbalanced.
        unsafe { io.cancel() };
        panic!("expected a pending WSARecv, got {r:?}");
    }
}

#[test]
fn sockets_rule_3_recv_completion_exact_bytes() {
    let (ours, mut peer) = tcp_pair();
    let rec = Recorder::new();
    let io = new_io(&ours, &rec);
    let op = Op::new(64, 0);
    start_pending_recv(&io, &ours, &op);
    peer.write_all(b"hello").unwrap();
    let seen = rec.wait_op(&op);
    assert_eq!((seen.result, seen.bytes), (0, 5));
    assert_eq!(op.data(5), b"hello");
    io.wait_for_callbacks(false);
    assert_eq!(rec.snapshot().len(), 1);
}

#[test]
fn sockets_rule_3_peer_close_gives_success_with_zero_bytes() {
    let (ours, peer) = tcp_pair();
    let rec = Recorder::new();
    let io = new_io(&ours, &rec);
    let op = Op::new(64, 0);
    start_pending_recv(&io, &ours, &op);
    drop(peer); // graceful close: FIN
    let seen = rec.wait_op(&op);
    assert_eq!((seen.result, seen.bytes), (0, 0));
}

#[test]
fn sockets_rule_3_peer_reset_gives_netname_deleted_64() {
    let (ours, peer) = tcp_pair();
    let rec = Recorder::new();
    let io = new_io(&ours, &rec);
    let op = Op::new(64, 0);
    start_pending_recv(&io, &ours, &op);
    // Linger on, timeout 0: closing sends RST.
    let linger = LINGER {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: `linger` is a local of the size passed.
    let r = unsafe {
        setsockopt(
            peer.as_raw_socket() as SOCKET,
            SOL_SOCKET,
            SO_LINGER,
            (&linger as *const LINGER).cast(),
            std::mem::size_of::<LINGER>() as i32,
        )
    };
    assert_eq!(r, 0, "setsockopt(SO_LINGER)");
    drop(peer);
    let seen = rec.wait_op(&op);
    // The callback gets RtlNtStatusToDosError(STATUS_CONNECTION_RESET) =
    // ERROR_NETNAME_DELETED (64), not WSAECONNRESET (10054).
    assert_eq!((seen.result, seen.bytes), (ERROR_NETNAME_DELETED, 0));
}

#[test]
fn sockets_rule_6_cancel_io_ex_pending_recv_gives_995() {
    let (ours, _peer) = tcp_pair();
    let rec = Recorder::new();
    let io = new_io(&ours, &rec);
    let op = Op::new(64, 0);
    start_pending_recv(&io, &ours, &op);
    // SAFETY: `op.ov` is leaked and was issued on this socket.
    let now = unsafe { raw::get_overlapped_result(sh(&ours), op.ov, false) };
    assert_eq!(
        now.map_err(|e| e.raw_os_error()),
        Err(Some(ERROR_IO_INCOMPLETE as i32))
    );
    raw::cancel_io_ex(sh(&ours), Some(op.ov)).expect("CancelIoEx");
    let seen = rec.wait_op(&op);
    assert_eq!((seen.result, seen.bytes), (ERROR_OPERATION_ABORTED, 0));
    io.wait_for_callbacks(false);
    assert_eq!(rec.snapshot().len(), 1);
}

#[test]
fn sockets_rule_6_cancel_io_ex_nothing_pending() {
    let (ours, _peer) = tcp_pair();
    let rec = Recorder::new();
    let _io = new_io(&ours, &rec);
    let all = raw::cancel_io_ex(sh(&ours), None).map_err(|e| e.raw_os_error());
    if wine_deviation(Deviation::CancelIoExNothingPendingSucceeds) {
        assert_eq!(
            all,
            Ok(()),
            "Wine behaviour changed; update the deviation list"
        );
    } else {
        assert_eq!(all, Err(Some(ERROR_NOT_FOUND as i32)));
    }
}

#[test]
fn sockets_rule_2_skip_completion_on_success_gets_no_callback() {
    let (ours, mut peer) = tcp_pair();
    raw::set_file_completion_notification_modes(sh(&ours), FILE_SKIP_COMPLETION_PORT_ON_SUCCESS)
        .expect("SetFileCompletionNotificationModes");
    let rec = Recorder::new();
    let io = new_io(&ours, &rec);
    peer.write_all(b"ready").unwrap();
    // Block until the data has arrived, so the receive completes at once.
    let mut probe = [0u8; 5];
    assert_eq!(ours.peek(&mut probe).unwrap(), 5);
    let op1 = Op::new(64, 0);
    // SAFETY: the receive follows; it completes at once (asserted) and in
    // this mode that queues no completion, so we cancel.
    unsafe { io.start() };
    let now = recv(&ours, &op1);
    if now != Err(WSA_IO_PENDING) {
        // SAFETY: done at once (success in skip mode, or failure).
        unsafe { io.cancel() };
    }
    assert_eq!(now, Ok(()));
    // SAFETY: `op1.ov` is leaked and was issued on this socket.
    let n = unsafe { raw::get_overlapped_result(sh(&ours), op1.ov, false) };
    assert_eq!(n.unwrap(), 5);
    assert_eq!(op1.data(5), b"ready");
    // A receive that pends still gets its callback in this mode.
    let op2 = Op::new(64, 0);
    start_pending_recv(&io, &ours, &op2);
    peer.write_all(b"later").unwrap();
    let seen = rec.wait_op(&op2);
    assert_eq!((seen.result, seen.bytes), (0, 5));
    io.wait_for_callbacks(false);
    let all = rec.snapshot();
    assert_eq!(all.len(), 1, "the at-once success got a callback: {all:?}");
}
