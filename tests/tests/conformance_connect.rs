//! Conformance of the overlapped connection calls with real sockets:
//! `AcceptEx` ([`ThreadpoolIo::accept`]) and `ConnectEx`
//! ([`ThreadpoolIo::connect`]) complete through the TP_IO like any read,
//! can be cancelled (995), and an accepted connection nobody receives is
//! closed, not leaked.

mod support;

use std::net::SocketAddr;
use std::sync::mpsc;

use support::*;
use tpio::{cancel_io_ex, Done, OverlappedHandle, ThreadpoolIo, Win32Error};

fn channel_io<H: OverlappedHandle>(h: &H) -> (ThreadpoolIo, mpsc::Receiver<Done>) {
    let (tx, rx) = mpsc::channel();
    let tx = std::sync::Mutex::new(tx);
    let io = ThreadpoolIo::new(h, None, move |_i, d| {
        let _ = tx.lock().map(|t| t.send(d));
    })
    .expect("create");
    (io, rx)
}

#[test]
fn rule_3_overlapped_accept_and_connect_complete_with_the_peer_and_the_stream() {
    if !backend_here() {
        return;
    }
    let listener = tpio::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (lio, lrx) = channel_io(&listener);
    let a = lio.accept(1).expect("accept issued");
    let client = tpio::TcpStream::unconnected(&addr).expect("socket");
    let (cio, crx) = channel_io(&client);
    let c = cio.connect(addr, 2).expect("connect issued");
    let cd = crx.recv_timeout(PATIENCE).expect("connect completed");
    assert_eq!((cd.tag, cd.overlapped, cd.result), (2, c.overlapped, Ok(0)));
    assert_eq!(cd.addr, Some(addr));
    let ad = lrx.recv_timeout(PATIENCE).expect("accept completed");
    assert_eq!((ad.tag, ad.overlapped, ad.result), (1, a.overlapped, Ok(0)));
    let server = ad.accepted.expect("the accepted connection");
    let client_local = client.local_addr().expect("client addr");
    assert_eq!(ad.addr, Some(client_local), "accept reports the peer");
    assert_eq!(server.peer_addr().expect("peer"), client_local);
    // The two ends talk.
    assert_eq!(client.send_blocking(b"over tcp"), Ok(8));
    let mut buf = [0u8; 16];
    assert_eq!(server.recv_blocking(&mut buf), Ok(8));
    assert_eq!(&buf[..8], b"over tcp");
    idle(&lio);
    idle(&cio);
}

#[test]
fn rule_3_connect_to_a_port_nobody_listens_on_is_refused_with_1225() {
    if !backend_here() {
        return;
    }
    // A port that was just free: bind, read it, close.
    let addr: SocketAddr = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr")
    };
    let s = tpio::TcpStream::unconnected(&addr).expect("socket");
    let (io, rx) = channel_io(&s);
    match io.connect(addr, 9) {
        Ok(_) => {
            let d = rx.recv_timeout(PATIENCE).expect("completed");
            assert_eq!(d.result, Err(Win32Error::CONNECTION_REFUSED));
        }
        Err(e) => assert_eq!(e.error, Win32Error::CONNECTION_REFUSED),
    }
    idle(&io);
}

#[test]
fn rule_6_a_pending_accept_is_cancelled_with_995_and_no_connection() {
    if !backend_here() {
        return;
    }
    let listener = tpio::TcpListener::bind("127.0.0.1:0").expect("bind");
    let (io, rx) = channel_io(&listener);
    let a = io.accept(5).expect("accept issued");
    assert!(rx.recv_timeout(QUIET).is_err(), "nobody connected yet");
    cancel_io_ex(&listener, Some(a.overlapped)).expect("cancel");
    let d = rx.recv_timeout(PATIENCE).expect("cancelled accept");
    assert_eq!((d.tag, d.result), (5, Err(Win32Error::OPERATION_ABORTED)));
    assert!(d.accepted.is_none());
    idle(&io);
    assert_eq!(listener.in_flight(), 0);
}

#[test]
fn rule_4_an_accept_whose_callback_is_dropped_closes_the_connection() {
    if !backend_here() {
        return;
    }
    let listener = tpio::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (io, rx) = channel_io(&listener);
    io.accept(6).expect("accept issued");
    // wait(true): the outstanding accept will get no callback.
    io.wait_for_callbacks(true).expect("wait(true)");
    let client = std::net::TcpStream::connect(addr).expect("connect");
    // The accept completes in the kernel, its packet is dropped, and the
    // connection it made must be closed: the client sees end of stream.
    client.set_read_timeout(Some(PATIENCE)).expect("timeout");
    let mut buf = [0u8; 1];
    use std::io::Read;
    assert_eq!((&client).read(&mut buf).expect("read"), 0);
    assert!(rx.try_recv().is_err(), "no callback after wait(true)");
}

#[test]
fn bad_input_an_operation_on_the_wrong_kind_of_handle_fails_now_with_6() {
    if !backend_here() {
        return;
    }
    let (rd, _wr) = tpio::pipe().expect("pipe");
    let (io, rx) = channel_io(&rd);
    let e = io.accept(1).expect_err("accept on a pipe");
    assert_eq!(e.error, Win32Error::INVALID_HANDLE);
    let e = io
        .recv_from(vec![0; 8], 2)
        .expect_err("recv_from on a pipe");
    assert_eq!((e.error, e.buf.len()), (Win32Error::INVALID_HANDLE, 8));
    let to: SocketAddr = "127.0.0.1:9".parse().expect("addr");
    let e = io.connect(to, 3).expect_err("connect on a pipe");
    assert_eq!(e.error, Win32Error::INVALID_HANDLE);
    let udp = tpio::UdpSocket::bind("127.0.0.1:0").expect("udp");
    let (uio, urx) = channel_io(&udp);
    let e = uio.accept(4).expect_err("accept on UDP");
    assert_eq!(e.error, Win32Error::INVALID_HANDLE);
    // Nothing started stays counted, and no callback comes.
    idle(&io);
    idle(&uio);
    assert!(rx.recv_timeout(QUIET).is_err() && urx.try_recv().is_err());
}
