//! W2 on plain io_uring: `workers` threads, each with its own ring and its
//! share of the connections (both ends); `Send`/`Recv` operations driven by
//! a per-socket state machine, no callbacks.

use std::net::{Shutdown, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use io_uring::{opcode, squeue, types, IoUring};

use super::KernelBufs;
use crate::measure::RunError;
use crate::workloads::w2_echo::EchoJob;

/// W2 on plain io_uring: round trips per second.
pub fn run(job: &EchoJob, workers: usize) -> Result<f64, RunError> {
    let pairs = crate::net_pairs::tcp_pairs(job.connections)?;
    let mut shares: Vec<Vec<_>> = (0..workers).map(|_| Vec::new()).collect();
    for (i, p) in pairs.into_iter().enumerate() {
        shares[i % workers].push(p);
    }
    let trips = Arc::new(AtomicU64::new(0));
    let t0 = Instant::now();
    let deadline = t0 + job.duration;
    let msg = job.message;
    let threads: Vec<_> = shares
        .into_iter()
        .map(|share| {
            let trips = trips.clone();
            std::thread::spawn(move || {
                let n = echo_thread(share, msg, deadline)?;
                trips.fetch_add(n, Ordering::Relaxed);
                Ok::<f64, RunError>(t0.elapsed().as_secs_f64())
            })
        })
        .collect();
    let mut secs = 0.0f64;
    for t in threads {
        let s = t
            .join()
            .map_err(|_| RunError::Failed("io_uring thread panicked".into()))??;
        secs = secs.max(s);
    }
    Ok(trips.load(Ordering::Relaxed) as f64 / secs)
}

/// One socket's state: its buffer and how far the current step got.
struct Sock {
    fd: i32,
    buf: Vec<u8>,
    /// Bytes of the current send or receive done.
    pos: usize,
    /// Bytes the current send must move (a server echoes what it got).
    len: usize,
}

const SEND: u64 = 0;
const RECV: u64 = 1;

fn send(s: &mut Sock, i: usize) -> squeue::Entry {
    let part = &s.buf[s.pos..s.len];
    opcode::Send::new(types::Fd(s.fd), part.as_ptr(), part.len() as u32)
        .build()
        .user_data(((i as u64) << 1) | SEND)
}

fn recv(s: &mut Sock, i: usize, upto: usize) -> squeue::Entry {
    let part = &mut s.buf[s.pos..upto];
    opcode::Recv::new(types::Fd(s.fd), part.as_mut_ptr(), part.len() as u32)
        .build()
        .user_data(((i as u64) << 1) | RECV)
}

fn echo_thread(
    share: Vec<(TcpStream, TcpStream)>,
    msg: usize,
    deadline: Instant,
) -> Result<u64, RunError> {
    let streams: Vec<TcpStream> = share.into_iter().flat_map(|(c, s)| [c, s]).collect();
    // Even: client, odd: server. Declared before the ring: dropped after it.
    let mut socks = KernelBufs::new(
        streams
            .iter()
            .map(|s| Sock {
                fd: s.as_raw_fd(),
                buf: vec![7u8; msg],
                pos: 0,
                len: msg,
            })
            .collect::<Vec<Sock>>(),
    );
    let mut ring = IoUring::new((2 * socks.len()).next_power_of_two() as u32)?;
    let mut pending: Vec<squeue::Entry> = Vec::new();
    for (i, s) in socks.iter_mut().enumerate() {
        pending.push(if i % 2 == 0 {
            send(s, i)
        } else {
            recv(s, i, msg)
        });
    }
    let (mut inflight, mut trips, mut clients_left) = (0usize, 0u64, streams.len() / 2);
    let mut shut = false;
    let mut failure = None;
    loop {
        {
            let mut sq = ring.submission();
            for e in pending.drain(..) {
                // SAFETY: each socket has one operation at a time, on its own
                // buffer, which lives until the loop has reaped everything
                // (the loop ends only at zero in flight).
                unsafe { sq.push(&e) }.map_err(|_| RunError::Failed("SQ full".into()))?;
                inflight += 1;
            }
        }
        if inflight == 0 {
            socks.all_reaped();
            break;
        }
        if clients_left == 0 && !shut {
            // Every client stopped: close them so the servers' receives end.
            for s in streams.iter().step_by(2) {
                let _ = s.shutdown(Shutdown::Both);
            }
            shut = true;
        }
        ring.submit_and_wait(1)?;
        for cqe in ring.completion() {
            inflight -= 1;
            let i = (cqe.user_data() >> 1) as usize;
            let (op, res) = (cqe.user_data() & 1, cqe.result());
            let s = &mut socks[i];
            let client = i % 2 == 0;
            if res < 0 || (op == RECV && res == 0) {
                if client {
                    failure.get_or_insert(format!("client op {op} returned {res}"));
                    clients_left -= 1;
                }
                continue;
            }
            s.pos += res as usize;
            match (client, op) {
                (_, SEND) if s.pos < s.len => pending.push(send(s, i)),
                (_, SEND) => {
                    s.pos = 0;
                    pending.push(recv(s, i, msg));
                }
                (true, _) if s.pos < msg => pending.push(recv(s, i, msg)),
                (true, _) => {
                    trips += 1;
                    s.pos = 0;
                    if Instant::now() < deadline {
                        pending.push(send(s, i));
                    } else {
                        clients_left -= 1;
                    }
                }
                (false, _) => {
                    // Echo what arrived.
                    s.len = s.pos;
                    s.pos = 0;
                    pending.push(send(s, i));
                }
            }
        }
    }
    match failure {
        Some(f) => Err(RunError::Failed(f)),
        None => Ok(trips),
    }
}
