//! Plain mio as a contestant in W2: `workers` threads, each with its own
//! `Poll` and its share of the connections (both ends), edge-triggered,
//! non-blocking reads and writes.

use std::io::{ErrorKind, Read, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};

use crate::measure::RunError;
use crate::workloads::w2_echo::EchoJob;

/// W2 on plain mio: round trips per second.
pub fn echo(job: &EchoJob, workers: usize) -> Result<f64, RunError> {
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
            .map_err(|_| RunError::Failed("mio thread panicked".into()))??;
        secs = secs.max(s);
    }
    Ok(trips.load(Ordering::Relaxed) as f64 / secs)
}

struct Conn {
    client: TcpStream,
    server: TcpStream,
    /// Bytes of the current reply the client has read.
    got: usize,
}

/// Reads what is there (edge-triggered: until it would block). `Ok(None)`:
/// the peer closed.
fn drain(s: &mut TcpStream, buf: &mut [u8]) -> std::io::Result<Option<usize>> {
    let mut total = 0;
    loop {
        match s.read(&mut buf[total..]) {
            Ok(0) if buf.len() > total => return Ok(None),
            Ok(n) => {
                total += n;
                if total == buf.len() {
                    return Ok(Some(total));
                }
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(Some(total)),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

fn send_all(s: &mut TcpStream, data: &[u8]) -> Result<(), RunError> {
    // A 64-byte message into an empty loopback socket buffer always fits.
    match s.write(data) {
        Ok(n) if n == data.len() => Ok(()),
        Ok(n) => Err(RunError::Failed(format!(
            "short write: {n} of {}",
            data.len()
        ))),
        Err(e) => Err(e.into()),
    }
}

fn echo_thread(
    share: Vec<(std::net::TcpStream, std::net::TcpStream)>,
    msg: usize,
    deadline: Instant,
) -> Result<u64, RunError> {
    let mut poll = Poll::new()?;
    let mut conns = Vec::with_capacity(share.len());
    for (i, (c, s)) in share.into_iter().enumerate() {
        c.set_nonblocking(true)?;
        s.set_nonblocking(true)?;
        let mut client = TcpStream::from_std(c);
        let mut server = TcpStream::from_std(s);
        poll.registry()
            .register(&mut client, Token(2 * i), Interest::READABLE)?;
        poll.registry()
            .register(&mut server, Token(2 * i + 1), Interest::READABLE)?;
        conns.push(Conn {
            client,
            server,
            got: 0,
        });
    }
    let out = vec![7u8; msg];
    let mut buf = vec![0u8; msg];
    for c in conns.iter_mut() {
        send_all(&mut c.client, &out)?;
    }
    let mut events = Events::with_capacity(256);
    let mut trips = 0u64;
    while Instant::now() < deadline {
        poll.poll(&mut events, Some(Duration::from_millis(100)))?;
        for ev in events.iter() {
            let (i, is_server) = (ev.token().0 / 2, ev.token().0 % 2 == 1);
            let c = &mut conns[i];
            if is_server {
                // Echo whatever arrived, as it arrives.
                loop {
                    match drain(&mut c.server, &mut buf)? {
                        None | Some(0) => break,
                        Some(n) => send_all(&mut c.server, &buf[..n])?,
                    }
                }
            } else {
                loop {
                    let want = msg - c.got;
                    match drain(&mut c.client, &mut buf[..want])? {
                        None | Some(0) => break,
                        Some(n) => {
                            c.got += n;
                            if c.got == msg {
                                c.got = 0;
                                trips += 1;
                                send_all(&mut c.client, &out)?;
                            }
                        }
                    }
                }
            }
        }
    }
    Ok(trips)
}
