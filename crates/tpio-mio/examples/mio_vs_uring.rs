//! The mio driver beside io_uring, in one process, through the safe facade:
//!
//! * **reads**: 4 KiB reads at random block offsets of a 64 MiB file in the
//!   page cache, 64 in flight on one handle; each callback checks its read
//!   and issues the next;
//! * **echo**: TCP echo over loopback, a few connections; the server side is
//!   tpio (each callback issues the next receive or send), the clients are
//!   plain blocking threads sending 64-byte messages and reading them back.
//!
//! Rounds alternate the backends (mio, io_uring, mio, …) so that a noisy
//! neighbour hurts both alike; the summary gives each backend's median and
//! the ratio mio / io_uring.
//!
//! ```sh
//! cargo run --release -p tpio-mio --example mio_vs_uring -- [SECONDS_PER_ROUND] [ROUNDS]
//! ```
#![cfg_attr(not(unix), allow(unused))]

#[cfg(unix)]
fn main() -> Result<(), Box<dyn std::error::Error>> {
    unix::main()
}

#[cfg(not(unix))]
fn main() {
    eprintln!("the mio driver runs on Unix only");
}

#[cfg(unix)]
mod unix {
    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream};
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::sync::{Arc, OnceLock};
    use std::time::{Duration, Instant};

    use tpio::{Backend, BackendKind, ThreadpoolIo};

    const FILE_LEN: u64 = 64 << 20;
    const BLOCK: usize = 4096;
    const DEPTH: u64 = 64;
    const CONNECTIONS: usize = 4;
    const MESSAGE: usize = 64;

    type Error = Box<dyn std::error::Error>;

    pub fn main() -> Result<(), Error> {
        let mut args = std::env::args().skip(1);
        let secs: f64 = args.next().map(|s| s.parse()).transpose()?.unwrap_or(2.0);
        let rounds: usize = args.next().map(|s| s.parse()).transpose()?.unwrap_or(3);
        let round = Duration::from_secs_f64(secs);

        let mut backends = vec![("mio", Backend::new(BackendKind::Mio)?)];
        match Backend::new(BackendKind::Uring) {
            Ok(b) => backends.push(("io_uring", b)),
            Err(e) => println!("io_uring unavailable, measuring mio alone: {e}"),
        }
        let data = DataFile::new()?;
        println!(
            "{rounds} rounds of {secs} s each, backends alternating; {} cores",
            std::thread::available_parallelism().map_or(0, |n| n.get())
        );

        let mut reads: Vec<Vec<f64>> = vec![Vec::new(); backends.len()];
        let mut echo: Vec<Vec<f64>> = vec![Vec::new(); backends.len()];
        for r in 0..rounds {
            for (i, (name, b)) in backends.iter().enumerate() {
                let x = file_reads(b, &data, round)?;
                println!("round {r}: {name:>8} reads  {:>10.0} /s", x);
                reads[i].push(x);
            }
            for (i, (name, b)) in backends.iter().enumerate() {
                let x = tcp_echo(b, round)?;
                println!("round {r}: {name:>8} echo   {:>10.0} round trips/s", x);
                echo[i].push(x);
            }
        }
        println!();
        summary("4 KiB cached reads, depth 64 (reads/s)", &backends, &reads);
        summary(
            "TCP echo, 4 connections, 64 B (round trips/s)",
            &backends,
            &echo,
        );
        Ok(())
    }

    fn median(v: &[f64]) -> f64 {
        let mut v = v.to_vec();
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    }

    fn summary(what: &str, backends: &[(&str, Backend)], xs: &[Vec<f64>]) {
        println!("{what}");
        for ((name, _), x) in backends.iter().zip(xs) {
            println!("  {name:>8}: median {:>10.0}", median(x));
        }
        if xs.len() == 2 {
            println!("  mio / io_uring = {:.2}", median(&xs[0]) / median(&xs[1]));
        }
    }

    /// A 64 MiB file of known bytes, read once so it is in the page cache.
    struct DataFile {
        path: std::path::PathBuf,
        file: std::fs::File,
    }

    impl DataFile {
        fn new() -> Result<DataFile, Error> {
            let path =
                std::env::temp_dir().join(format!("tpio-mio-vs-uring-{}", std::process::id()));
            let mut w = std::io::BufWriter::new(std::fs::File::create(&path)?);
            for block in 0..FILE_LEN / BLOCK as u64 {
                w.write_all(&[(block % 251) as u8; BLOCK])?;
            }
            w.flush()?;
            drop(w);
            let mut file = std::fs::File::open(&path)?;
            std::io::copy(&mut file, &mut std::io::sink())?;
            Ok(DataFile { path, file })
        }
    }

    impl Drop for DataFile {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.path);
        }
    }

    fn next_block(state: u64) -> u64 {
        // xorshift64: the tag carries the state from read to read.
        let mut x = state;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    }

    struct Reads {
        io: OnceLock<ThreadpoolIo>,
        stop: AtomicBool,
        done: AtomicU64,
        bad: AtomicU64,
    }

    fn file_reads(backend: &Backend, data: &DataFile, round: Duration) -> Result<f64, Error> {
        let file = tpio::File::from_std_on(data.file.try_clone()?, backend)?;
        let s = Arc::new(Reads {
            io: OnceLock::new(),
            stop: AtomicBool::new(false),
            done: AtomicU64::new(0),
            bad: AtomicU64::new(0),
        });
        let blocks = FILE_LEN / BLOCK as u64;
        let weak = Arc::downgrade(&s);
        let io = ThreadpoolIo::new(&file, None, move |_i, d| {
            let Some(s) = weak.upgrade() else { return };
            let block = d.tag % blocks;
            if d.result != Ok(BLOCK) || d.buf[0] != (block % 251) as u8 {
                s.bad.fetch_add(1, Ordering::Relaxed);
            }
            s.done.fetch_add(1, Ordering::Relaxed);
            if s.stop.load(Ordering::Relaxed) {
                return;
            }
            let next = next_block(d.tag);
            if let Some(io) = s.io.get() {
                if io
                    .read_at(d.buf, (next % blocks) * BLOCK as u64, next)
                    .is_err()
                {
                    s.bad.fetch_add(1, Ordering::Relaxed);
                }
            }
        })?;
        let io = s.io.get_or_init(|| io);
        let t0 = Instant::now();
        for i in 0..DEPTH {
            let tag = next_block(0x9E37_79B9_7F4A_7C15 ^ (i + 1));
            io.read_at(vec![0; BLOCK], (tag % blocks) * BLOCK as u64, tag)?;
        }
        std::thread::sleep(round);
        s.stop.store(true, Ordering::Relaxed);
        io.wait_for_callbacks(false)?;
        let secs = t0.elapsed().as_secs_f64();
        let bad = s.bad.load(Ordering::Relaxed);
        if bad > 0 {
            return Err(format!("{bad} reads came back wrong").into());
        }
        Ok(s.done.load(Ordering::Relaxed) as f64 / secs)
    }

    /// One server connection: receive, send back what came, receive again.
    struct Conn {
        io: OnceLock<ThreadpoolIo>,
    }

    const RECV: u64 = 0;
    const SEND: u64 = 1;

    fn tcp_echo(backend: &Backend, round: Duration) -> Result<f64, Error> {
        let l = TcpListener::bind("127.0.0.1:0")?;
        let addr = l.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let trips = Arc::new(AtomicU64::new(0));
        let mut clients = Vec::new();
        let mut conns = Vec::new();
        for _ in 0..CONNECTIONS {
            let c = TcpStream::connect(addr)?;
            c.set_nodelay(true)?;
            let (s, _) = l.accept()?;
            s.set_nodelay(true)?;
            let s = tpio::TcpStream::from_std_on(s, backend)?;
            let conn = Arc::new(Conn {
                io: OnceLock::new(),
            });
            let weak = Arc::downgrade(&conn);
            let io = ThreadpoolIo::new(&s, None, move |_i, mut d| {
                let Some(conn) = weak.upgrade() else { return };
                let Some(io) = conn.io.get() else { return };
                match (d.tag, d.result) {
                    (RECV, Ok(n)) if n > 0 => {
                        d.buf.truncate(n);
                        let _ = io.send(d.buf, SEND);
                    }
                    (SEND, Ok(_)) => {
                        d.buf.resize(MESSAGE, 0);
                        let _ = io.recv(d.buf, RECV);
                    }
                    _ => {} // the client went away, or the test is over
                }
            })?;
            let io = conn.io.get_or_init(|| io);
            io.recv(vec![0; MESSAGE], RECV)?;
            conns.push((s, conn));
            let (stop, trips) = (Arc::clone(&stop), Arc::clone(&trips));
            clients.push(std::thread::spawn(move || -> std::io::Result<()> {
                let mut c = c;
                let msg = [7u8; MESSAGE];
                let mut back = [0u8; MESSAGE];
                while !stop.load(Ordering::Relaxed) {
                    c.write_all(&msg)?;
                    c.read_exact(&mut back)?;
                    if back != msg {
                        return Err(std::io::Error::other("echo came back wrong"));
                    }
                    trips.fetch_add(1, Ordering::Relaxed);
                }
                Ok(())
            }));
        }
        let t0 = Instant::now();
        std::thread::sleep(round);
        stop.store(true, Ordering::Relaxed);
        for c in clients {
            c.join().map_err(|_| "client panicked")??;
        }
        let secs = t0.elapsed().as_secs_f64();
        // Closing each client (done: the threads ended) completes the
        // server's last receive with 0 bytes; then the objects drain.
        for (s, conn) in conns {
            if let Some(io) = conn.io.get() {
                io.wait_for_callbacks_timeout(true, Duration::from_secs(5))?;
            }
            drop(s);
        }
        Ok(trips.load(Ordering::Relaxed) as f64 / secs)
    }
}
