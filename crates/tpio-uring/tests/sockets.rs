//! Socket operations: recv/send on a socketpair, TCP accept/connect on
//! 127.0.0.1, UDP recvmsg/sendmsg with caller-owned msghdr and addresses.

mod common;

use std::mem;
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::Duration;

use common::*;
use tpio_uring::{op, Completion, Ring};

#[test]
fn socketpair_recv_then_send() {
    if !uring_here() {
        return;
    }
    let (a, b) = socketpair(libc::SOCK_STREAM);
    let ring = Ring::new(8).unwrap();
    let mut rbuf = [0u8; 32];
    let msg = *b"ping!";
    // SAFETY: `rbuf` outlives the completion.
    unsafe { ring.push(1, op::recv(a.as_raw_fd(), rbuf.as_mut_ptr(), 32, 0)) }.unwrap();
    let mut reaper = ring.reaper();
    assert_quiet(&mut reaper, Duration::from_millis(50));
    // SAFETY: `msg` outlives the completion.
    unsafe {
        ring.push(
            2,
            op::send(b.as_raw_fd(), msg.as_ptr(), 5, libc::MSG_NOSIGNAL),
        )
    }
    .unwrap();
    let cs = collect(&mut reaper, 2);
    assert_eq!(op_result(&cs, 1), 5);
    assert_eq!(op_result(&cs, 2), 5);
    assert_eq!(&rbuf[..5], b"ping!");

    // Peer closed: recv reports 0, send reports EPIPE (no SIGPIPE).
    drop(b);
    // SAFETY: as above.
    unsafe {
        ring.push_batch(&[
            (3, op::recv(a.as_raw_fd(), rbuf.as_mut_ptr(), 32, 0)),
            (
                4,
                op::send(a.as_raw_fd(), msg.as_ptr(), 5, libc::MSG_NOSIGNAL),
            ),
        ])
    }
    .unwrap();
    let cs = collect(&mut reaper, 2);
    assert_eq!(op_result(&cs, 3), 0);
    assert_eq!(op_result(&cs, 4), -libc::EPIPE);
}

fn sockaddr_of(addr: SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
    let SocketAddr::V4(v4) = addr else {
        panic!("v4 only in these tests");
    };
    // SAFETY: all-zero is a valid sockaddr_storage.
    let mut ss: libc::sockaddr_storage = unsafe { mem::zeroed() };
    // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_in.
    let sin = unsafe { &mut *(&mut ss as *mut libc::sockaddr_storage).cast::<libc::sockaddr_in>() };
    sin.sin_family = libc::AF_INET as libc::sa_family_t;
    sin.sin_port = v4.port().to_be();
    sin.sin_addr.s_addr = u32::from(*v4.ip()).to_be();
    (ss, mem::size_of::<libc::sockaddr_in>() as libc::socklen_t)
}

fn port_of(ss: &libc::sockaddr_storage) -> u16 {
    assert_eq!(ss.ss_family, libc::AF_INET as libc::sa_family_t);
    // SAFETY: the family says it is a sockaddr_in.
    let sin = unsafe { &*(ss as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>() };
    u16::from_be(sin.sin_port)
}

fn local_port(fd: i32) -> u16 {
    // SAFETY: all-zero is a valid sockaddr_storage.
    let mut ss: libc::sockaddr_storage = unsafe { mem::zeroed() };
    let mut len = mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    // SAFETY: valid out-pointers with the storage's size.
    let r = unsafe {
        libc::getsockname(
            fd,
            (&mut ss as *mut libc::sockaddr_storage).cast(),
            &mut len,
        )
    };
    assert_eq!(r, 0);
    port_of(&ss)
}

#[test]
fn tcp_accept_and_connect_on_loopback() {
    if !uring_here() {
        return;
    }
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let (dest, dest_len) = sockaddr_of(listener.local_addr().unwrap());
    // SAFETY: plain syscall.
    let raw = unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
    assert!(raw >= 0);
    // SAFETY: fresh fd owned by nobody else.
    let client = unsafe { OwnedFd::from_raw_fd(raw) };

    let ring = Ring::new(8).unwrap();
    // SAFETY: all-zero is a valid sockaddr_storage.
    let mut peer: libc::sockaddr_storage = unsafe { mem::zeroed() };
    let mut peer_len = mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    // SAFETY: `peer`, `peer_len` and `dest` outlive the completions.
    unsafe {
        ring.push(
            1,
            op::accept(
                listener.as_raw_fd(),
                (&mut peer as *mut libc::sockaddr_storage).cast(),
                &mut peer_len,
                libc::SOCK_CLOEXEC,
            ),
        )
        .unwrap();
        ring.push(
            2,
            op::connect(
                client.as_raw_fd(),
                (&dest as *const libc::sockaddr_storage).cast(),
                dest_len,
            ),
        )
        .unwrap();
    }
    let cs = collect(&mut ring.reaper(), 2);
    assert_eq!(op_result(&cs, 2), 0, "connect");
    let accepted = op_result(&cs, 1);
    assert!(accepted >= 0, "accept: {accepted}");
    // SAFETY: accept returned a new fd that we now own.
    let accepted = unsafe { OwnedFd::from_raw_fd(accepted) };
    assert_eq!(peer_len as usize, mem::size_of::<libc::sockaddr_in>());
    assert_eq!(port_of(&peer), local_port(client.as_raw_fd()));

    // The pair is connected: a byte goes through.
    write_all(client.as_raw_fd(), b"z");
    let mut b = [0u8; 1];
    // SAFETY: `b` outlives the completion.
    unsafe { ring.push(3, op::recv(accepted.as_raw_fd(), b.as_mut_ptr(), 1, 0)) }.unwrap();
    assert_eq!(
        collect(&mut ring.reaper(), 1),
        [Completion::Op {
            user_data: 3,
            result: 1
        }]
    );
    assert_eq!(&b, b"z");
}

#[test]
fn connect_to_closed_port_is_refused() {
    if !uring_here() {
        return;
    }
    // Bind then drop to get a port nobody listens on.
    let addr = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let (dest, dest_len) = sockaddr_of(addr);
    // SAFETY: plain syscall.
    let raw = unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
    // SAFETY: fresh fd owned by nobody else.
    let client = unsafe { OwnedFd::from_raw_fd(raw) };
    let ring = Ring::new(8).unwrap();
    // SAFETY: `dest` outlives the completion.
    unsafe {
        ring.push(
            1,
            op::connect(
                client.as_raw_fd(),
                (&dest as *const libc::sockaddr_storage).cast(),
                dest_len,
            ),
        )
    }
    .unwrap();
    assert_eq!(
        collect(&mut ring.reaper(), 1),
        [Completion::Op {
            user_data: 1,
            result: -libc::ECONNREFUSED
        }]
    );
}

#[test]
fn udp_recvmsg_and_sendmsg_with_addresses() {
    if !uring_here() {
        return;
    }
    let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
    let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
    let (dest, dest_len) = sockaddr_of(rx.local_addr().unwrap());
    let ring = Ring::new(8).unwrap();

    // recv_from: caller-owned buffer, iovec, source-address storage, msghdr.
    let mut rbuf = [0u8; 64];
    let mut riov = libc::iovec {
        iov_base: rbuf.as_mut_ptr().cast(),
        iov_len: rbuf.len(),
    };
    // SAFETY: all-zero is a valid sockaddr_storage / msghdr.
    let mut src: libc::sockaddr_storage = unsafe { mem::zeroed() };
    // SAFETY: as above.
    let mut rmsg: libc::msghdr = unsafe { mem::zeroed() };
    rmsg.msg_name = (&mut src as *mut libc::sockaddr_storage).cast();
    rmsg.msg_namelen = mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    rmsg.msg_iov = &mut riov;
    rmsg.msg_iovlen = 1;

    // send_to: destination in msg_name.
    let payload = *b"datagram-1";
    let mut siov = libc::iovec {
        iov_base: payload.as_ptr() as *mut _,
        iov_len: payload.len(),
    };
    // SAFETY: all-zero is a valid msghdr.
    let mut smsg: libc::msghdr = unsafe { mem::zeroed() };
    smsg.msg_name = (&dest as *const libc::sockaddr_storage) as *mut _;
    smsg.msg_namelen = dest_len;
    smsg.msg_iov = &mut siov;
    smsg.msg_iovlen = 1;

    // SAFETY: every structure above outlives the completions reaped below.
    unsafe { ring.push(1, op::recvmsg(rx.as_raw_fd(), &mut rmsg, 0)) }.unwrap();
    let mut reaper = ring.reaper();
    assert_quiet(&mut reaper, Duration::from_millis(50));
    // SAFETY: as above.
    unsafe { ring.push(2, op::sendmsg(tx.as_raw_fd(), &smsg, 0)) }.unwrap();
    let cs = collect(&mut reaper, 2);
    assert_eq!(op_result(&cs, 2), payload.len() as i32);
    assert_eq!(op_result(&cs, 1), payload.len() as i32);
    assert_eq!(&rbuf[..payload.len()], &payload);
    assert_eq!(
        rmsg.msg_namelen as usize,
        mem::size_of::<libc::sockaddr_in>()
    );
    assert_eq!(port_of(&src), tx.local_addr().unwrap().port());
    assert_eq!(rmsg.msg_flags & libc::MSG_TRUNC, 0);
}
