//! What happens to operations around their issuer and their ring: a ring
//! dropped with operations in flight cancels them and waits; operations
//! outlive the thread that pushed them.

mod common;

use std::os::fd::AsRawFd;
use std::sync::{mpsc, Arc};
use std::time::Duration;

use common::*;
use tpio_uring::{op, Completion, Ring, RingBuilder, SubmitMode, WakeMode};

fn drop_with_pending_read_returns(mode: WakeMode) {
    let (rd, wr) = pipe();
    let ring = RingBuilder::new(8).wake_mode(mode).build().unwrap();
    let buf = Box::new([0u8; 8]);
    // SAFETY: `buf` is dropped only after the ring, whose drop waits for
    // this read to complete.
    unsafe {
        ring.push(
            1,
            op::read_at(
                rd.as_raw_fd(),
                buf.as_ptr() as *mut u8,
                8,
                op::CURRENT_POSITION,
            ),
        )
    }
    .unwrap();
    assert_quiet(&mut ring.reaper(), Duration::from_millis(30));
    if !ring.features().cancel_fd_all {
        eprintln!("skipping: drop cannot cancel user operations on this kernel");
        ring.cancel(1).unwrap();
        collect(&mut ring.reaper(), 2);
        return;
    }
    let (tx, rx) = mpsc::channel();
    let t = std::thread::spawn(move || {
        drop(ring);
        tx.send(()).unwrap();
    });
    rx.recv_timeout(TIMEOUT).expect("ring drop hung");
    t.join().unwrap();
    // The cancelled read wrote nothing, and the pipe still works.
    write_all(wr.as_raw_fd(), b"after");
    assert_eq!(*buf, [0u8; 8]);
}

#[test]
fn drop_with_pending_read_cancels_and_returns_nop_mode() {
    if uring_here() {
        drop_with_pending_read_returns(WakeMode::Nop);
    }
}

#[test]
fn drop_with_pending_read_cancels_and_returns_eventfd_mode() {
    if uring_here() {
        drop_with_pending_read_returns(WakeMode::EventFd);
    }
}

/// Pushes a pipe read from a thread that exits before the data arrives,
/// then writes the data and returns the read's result.
fn read_after_issuer_exit(ring: Ring, force_async: bool) -> i32 {
    let (rd, wr) = pipe();
    let ring = Arc::new(ring);
    let buf = Arc::new([0u8; 8]);
    {
        let ring = Arc::clone(&ring);
        let buf = Arc::clone(&buf);
        let fd = rd.as_raw_fd();
        std::thread::spawn(move || {
            let mut sqe = op::read_at(fd, buf.as_ptr() as *mut u8, 8, op::CURRENT_POSITION);
            if force_async {
                sqe = sqe.force_async();
            }
            // SAFETY: `buf` is kept alive by the test until the completion.
            unsafe { ring.push(1, sqe) }.unwrap();
        })
        .join()
        .unwrap();
    }
    let mut reaper = ring.reaper();
    // An io-wq operation is cancelled by the exit itself, at once.
    let mut early = Vec::new();
    reaper
        .wait(Some(Duration::from_millis(50)), |c| early.push(c))
        .unwrap();
    if let [c] = early[..] {
        return op_result(&[c], 1);
    }
    assert!(early.is_empty(), "{early:?}");
    write_all(wr.as_raw_fd(), b"late");
    let cs = collect(&mut reaper, 1);
    let result = op_result(&cs, 1);
    if result == 4 {
        assert_eq!(&buf[..4], b"late");
    }
    result
}

/// Pins the kernel behaviour that motivates [`SubmitMode`]: a poll-driven
/// operation submitted by a thread that has exited is completed with
/// `-ECANCELED` when its data arrives, not with the data. (Windows I/O on
/// a completion-port handle survives its thread.)
#[test]
fn direct_mode_read_dies_with_its_issuing_thread() {
    if !uring_here() {
        return;
    }
    for force_async in [false, true] {
        let r = read_after_issuer_exit(Ring::new(8).unwrap(), force_async);
        assert_eq!(r, -libc::ECANCELED, "force_async={force_async}");
    }
}

#[test]
fn owner_mode_read_survives_its_issuing_thread() {
    if !uring_here() {
        return;
    }
    for force_async in [false, true] {
        let ring = RingBuilder::new(8)
            .submit_mode(SubmitMode::Owner)
            .build()
            .unwrap();
        assert_eq!(ring.wake_mode(), WakeMode::EventFd);
        assert_eq!(
            read_after_issuer_exit(ring, force_async),
            4,
            "force_async={force_async}"
        );
    }
}

#[test]
fn sqpoll_mode_read_survives_its_issuing_thread() {
    if !uring_here() {
        return;
    }
    let mode = SubmitMode::SqPoll {
        idle: Duration::from_millis(10),
    };
    let ring = match RingBuilder::new(8).submit_mode(mode).build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("skipping: SQPOLL not allowed here: {e}");
            return;
        }
    };
    assert_eq!(read_after_issuer_exit(ring, false), 4);
}

/// Documents how io_uring treats `O_NONBLOCK` fds with nothing to read
/// (on the kernels we run): a socket recv and a pipe read still wait
/// (poll-armed) as on blocking fds; no `-EAGAIN` comes back.
#[test]
fn nonblocking_socket_and_pipe_still_wait() {
    if !uring_here() {
        return;
    }
    let (a, b) = socketpair(libc::SOCK_STREAM | libc::SOCK_NONBLOCK);
    let (rd, wr) = pipe();
    // SAFETY: plain fcntl on an fd we own.
    unsafe {
        let fl = libc::fcntl(rd.as_raw_fd(), libc::F_GETFL);
        assert_eq!(
            libc::fcntl(rd.as_raw_fd(), libc::F_SETFL, fl | libc::O_NONBLOCK),
            0
        );
    }
    let ring = Ring::new(8).unwrap();
    let mut buf = [0u8; 8];
    let mut pbuf = [0u8; 8];
    // SAFETY: the buffers outlive the completions.
    unsafe {
        ring.push(1, op::recv(a.as_raw_fd(), buf.as_mut_ptr(), 8, 0))
            .unwrap();
        ring.push(
            2,
            op::read_at(rd.as_raw_fd(), pbuf.as_mut_ptr(), 8, op::CURRENT_POSITION),
        )
        .unwrap();
    }
    let mut reaper = ring.reaper();
    assert_quiet(&mut reaper, Duration::from_millis(50));
    write_all(b.as_raw_fd(), b"nb");
    assert_eq!(
        collect(&mut reaper, 1),
        [Completion::Op {
            user_data: 1,
            result: 2
        }]
    );
    write_all(wr.as_raw_fd(), b"pipe");
    assert_eq!(
        collect(&mut reaper, 1),
        [Completion::Op {
            user_data: 2,
            result: 4
        }]
    );
}
