//! Sockets through `MioDriver`: accept (the new descriptor as the byte
//! count, the peer's address), connect (done, refused), datagrams with
//! addresses, and a TCP peer's reset.
#![cfg(unix)]

mod common;

use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use common::*;
use tpio_core::driver::{AddrBuf, HandleKind, Issued, OpKind};
use tpio_core::Win32Error;

/// The result of an operation that may finish at once or later (both are
/// right for a socket): (status, bytes).
fn outcome(r: &Rig, issued: Issued, ov: usize) -> (Win32Error, usize) {
    match issued {
        Issued::CompletedNow { status, bytes } => (status, bytes),
        Issued::Pending => {
            let (o, s, b) = r.next3();
            assert_eq!(o, ov);
            (s, b)
        }
        Issued::FailedNow(e) => panic!("failed at once: {e:?}"),
    }
}

#[test]
fn accept_waits_for_a_connection_and_reports_the_new_descriptor_and_peer() {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let r = rig();
    let mut addr = AddrBuf::default();
    r.pending(
        l.as_raw_fd(),
        HandleKind::StreamSocket,
        OpKind::Accept,
        &mut [],
        &mut addr,
        1,
    );
    r.quiet();
    let mut client = TcpStream::connect(l.local_addr().unwrap()).expect("connect");
    let (ov, status, fd) = r.next3();
    assert_eq!((ov, status), (1, Win32Error::SUCCESS));
    // SAFETY: the accepted descriptor is new and ours.
    let server = TcpStream::from(unsafe { OwnedFd::from_raw_fd(fd as i32) });
    assert!(
        !is_nonblocking(server.as_raw_fd()),
        "accepted descriptors are blocking"
    );
    assert_eq!(port_of(&addr), client.local_addr().unwrap().port());
    assert_eq!(addr.len as usize, std::mem::size_of::<libc::sockaddr_in>());
    std::io::Write::write_all(&mut client, b"hello").unwrap();
    assert_eq!(read_exact(server.as_raw_fd(), 5), b"hello");
    r.drained();
}

#[test]
fn connect_completes_and_the_listener_sees_it() {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let r = rig();
    let s = tcp_socket();
    let mut addr = addr_buf(l.local_addr().unwrap());
    let issued = r.submit(
        s.as_raw_fd(),
        HandleKind::StreamSocket,
        OpKind::Connect,
        &mut [],
        &mut addr,
        1,
    );
    assert_eq!(outcome(&r, issued, 1), (Win32Error::SUCCESS, 0));
    let (peer, from) = l.accept().expect("accept");
    let std_s = TcpStream::from(s);
    assert_eq!(from, std_s.local_addr().unwrap());
    assert_eq!(peer.peer_addr().unwrap(), std_s.local_addr().unwrap());
    r.drained();
}

#[test]
fn connect_to_a_closed_port_is_refused() {
    // A port nobody listens on: bind, note it, close.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let r = rig();
    let s = tcp_socket();
    let mut addr = addr_buf(SocketAddr::from(([127, 0, 0, 1], port)));
    let issued = r.submit(
        s.as_raw_fd(),
        HandleKind::StreamSocket,
        OpKind::Connect,
        &mut [],
        &mut addr,
        1,
    );
    let (status, bytes) = match issued {
        Issued::CompletedNow { status, bytes } => (status, bytes),
        Issued::Pending => {
            let (_, s, b) = r.next3();
            (s, b)
        }
        Issued::FailedNow(e) => (e, 0),
    };
    assert_eq!((status, bytes), (Win32Error::CONNECTION_REFUSED, 0));
    assert_eq!(status.code(), 1225);
    r.drained();
}

#[test]
fn recv_from_and_send_to_carry_addresses() {
    let a = UdpSocket::bind("127.0.0.1:0").expect("a");
    let b = UdpSocket::bind("127.0.0.1:0").expect("b");
    let r = rig();
    let mut rbuf = [0u8; 32];
    let mut from = AddrBuf::default();
    r.pending(
        b.as_raw_fd(),
        HandleKind::DatagramSocket,
        OpKind::RecvFrom,
        &mut rbuf,
        &mut from,
        1,
    );
    let mut data = *b"datagram";
    let mut to = addr_buf(b.local_addr().unwrap());
    let issued = r.submit(
        a.as_raw_fd(),
        HandleKind::DatagramSocket,
        OpKind::SendTo,
        &mut data,
        &mut to,
        2,
    );
    assert_eq!(outcome(&r, issued, 2), (Win32Error::SUCCESS, 8));
    assert_eq!(r.next3(), (1, Win32Error::SUCCESS, 8));
    assert_eq!(&rbuf[..8], b"datagram");
    assert_eq!(port_of(&from), a.local_addr().unwrap().port());
    assert_eq!(from.len as usize, std::mem::size_of::<libc::sockaddr_in>());
    // At once when a datagram is already there; an empty one is success, 0.
    a.send_to(b"", b.local_addr().unwrap()).unwrap();
    a.send_to(b"xy", b.local_addr().unwrap()).unwrap();
    let mut from2 = AddrBuf::default();
    let issued = r.submit(
        b.as_raw_fd(),
        HandleKind::DatagramSocket,
        OpKind::RecvFrom,
        &mut rbuf,
        &mut from2,
        3,
    );
    assert_eq!(outcome(&r, issued, 3), (Win32Error::SUCCESS, 0));
    let issued = r.submit(
        b.as_raw_fd(),
        HandleKind::DatagramSocket,
        OpKind::RecvFrom,
        &mut rbuf,
        &mut from2,
        4,
    );
    assert_eq!(outcome(&r, issued, 4), (Win32Error::SUCCESS, 2));
    r.drained();
}

#[test]
fn a_tcp_peer_reset_fails_the_waiting_recv_with_10054() {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let peer = TcpStream::connect(l.local_addr().unwrap()).expect("connect");
    let (server, _) = l.accept().expect("accept");
    let r = rig();
    let mut buf = [0u8; 64];
    r.pending(
        server.as_raw_fd(),
        HandleKind::StreamSocket,
        OpKind::Read { offset: None },
        &mut buf,
        std::ptr::null_mut(),
        1,
    );
    linger_zero(peer.as_raw_fd());
    drop(peer);
    assert_eq!(r.next3(), (1, Win32Error::WSAECONNRESET, 0));
    assert_eq!(Win32Error::WSAECONNRESET.code(), 10054);
    r.drained();
}

#[test]
fn a_recv_issued_after_the_reset_fails_with_10054() {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let peer = TcpStream::connect(l.local_addr().unwrap()).expect("connect");
    let (server, _) = l.accept().expect("accept");
    linger_zero(peer.as_raw_fd());
    drop(peer);
    let r = rig();
    let mut buf = [0u8; 64];
    // The reset may take a moment to arrive: until then the recv waits.
    let issued = r.submit(
        server.as_raw_fd(),
        HandleKind::StreamSocket,
        OpKind::Read { offset: None },
        &mut buf,
        std::ptr::null_mut(),
        1,
    );
    assert_eq!(outcome(&r, issued, 1), (Win32Error::WSAECONNRESET, 0));
    r.drained();
}

#[test]
fn a_send_waiting_for_room_completes_when_the_peer_reads() {
    let (a, b) = socketpair(libc::SOCK_STREAM);
    let r = rig();
    let mut big = pattern(8 << 20);
    r.pending(
        a.as_raw_fd(),
        HandleKind::StreamSocket,
        OpKind::Write { offset: None },
        &mut big,
        std::ptr::null_mut(),
        1,
    );
    r.quiet();
    assert_eq!(read_exact(b.as_raw_fd(), 8 << 20), pattern(8 << 20));
    assert_eq!(r.next3(), (1, Win32Error::SUCCESS, 8 << 20));
    r.drained();
}
