//! Connected socket pairs every W2 and W3 contestant starts from, made the
//! same way for all (std, blocking, then handed over).
//!
//! Owns only making them. It must never do a workload's I/O.

use std::io;
use std::net::{TcpListener, TcpStream};
use std::os::unix::net::UnixStream;

/// `n` loopback TCP connections as `(client, server)` std streams, with
/// `TCP_NODELAY` on both ends.
pub fn tcp_pairs(n: usize) -> io::Result<Vec<(TcpStream, TcpStream)>> {
    let l = TcpListener::bind("127.0.0.1:0")?;
    let addr = l.local_addr()?;
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let c = TcpStream::connect(addr)?;
        let (s, _) = l.accept()?;
        c.set_nodelay(true)?;
        s.set_nodelay(true)?;
        out.push((c, s));
    }
    Ok(out)
}

/// `n` connected Unix stream socket pairs.
pub fn unix_pairs(n: usize) -> io::Result<Vec<(UnixStream, UnixStream)>> {
    (0..n).map(|_| UnixStream::pair()).collect()
}

/// Raises the soft open-files limit to the hard one (W3 holds 10,000
/// sockets at once). Returns the limit now in force.
// `rlim_t` is u64 on Linux and i64 on macOS and FreeBSD.
#[allow(clippy::unnecessary_cast)]
pub fn raise_fd_limit() -> u64 {
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `r` is a valid, writable rlimit.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) } != 0 {
        return 0;
    }
    if r.rlim_cur < r.rlim_max {
        let want = libc::rlimit {
            rlim_cur: r.rlim_max,
            rlim_max: r.rlim_max,
        };
        // SAFETY: `want` is a valid rlimit; raising the soft limit up to the
        // hard one needs no privilege.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &want) } == 0 {
            return want.rlim_cur as u64;
        }
    }
    r.rlim_cur as u64
}
