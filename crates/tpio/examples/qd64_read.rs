//! The completion path, measured: 4 KiB reads at random offsets from a
//! 256 MiB file in the page cache, 64 in flight, each callback issuing the
//! next read (the TP_IO pattern). Side by side in one process: a plain
//! io_uring loop on one thread with no callbacks (the ceiling), tpio on
//! io_uring with its at-once path, and tpio on io_uring with every read
//! forced through the ring. Prints medians of the rounds and ratios.
//!
//! ```text
//! cargo run --release -p tpio --example qd64_read [-- SECS_PER_ROUND ROUNDS]
//! ```
#![cfg_attr(not(target_os = "linux"), allow(unused))]

#[cfg(target_os = "linux")]
fn main() -> Result<(), Box<dyn std::error::Error>> {
    linux::main()
}

#[cfg(not(target_os = "linux"))]
fn main() {
    eprintln!("qd64_read: Linux only (io_uring)");
}

#[cfg(target_os = "linux")]
mod linux {
    use std::fs::File;
    use std::io::Write;
    use std::os::fd::AsRawFd;
    use std::path::PathBuf;
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use io_uring::{opcode, types, IoUring};
    use tpio::{Backend, BackendKind, ThreadpoolIo};

    const FILE_SIZE: u64 = 256 << 20;
    const BLOCK: usize = 4096;
    const DEPTH: usize = 64;
    const BLOCKS: u64 = FILE_SIZE / BLOCK as u64;

    fn next_offset(state: &mut u64) -> u64 {
        *state ^= *state << 13;
        *state ^= *state >> 7;
        *state ^= *state << 17;
        (*state % BLOCKS) * BLOCK as u64
    }

    fn prepare() -> std::io::Result<PathBuf> {
        let path = std::env::temp_dir().join("tpio-qd64-256MiB.bin");
        if std::fs::metadata(&path).map(|m| m.len()).ok() != Some(FILE_SIZE) {
            let mut f = File::create(&path)?;
            let chunk: Vec<u8> = (0..1u32 << 20).map(|i| (i % 251) as u8).collect();
            for _ in 0..FILE_SIZE >> 20 {
                f.write_all(&chunk)?;
            }
        }
        // Warm the page cache with one sequential pass.
        let mut f = File::open(&path)?;
        std::io::copy(&mut f, &mut std::io::sink())?;
        Ok(path)
    }

    /// The ceiling: one thread, one ring, no callbacks.
    fn plain_uring(path: &PathBuf, secs: Duration) -> std::io::Result<f64> {
        let f = File::open(path)?;
        let fd = types::Fd(f.as_raw_fd());
        let mut ring = IoUring::new(2 * DEPTH as u32)?;
        let mut bufs = vec![[0u8; BLOCK]; DEPTH];
        let mut rng = 0x9E37_79B9_7F4A_7C15u64;
        let push = |ring: &mut IoUring, slot: usize, buf: &mut [u8; BLOCK], rng: &mut u64| {
            let e = opcode::Read::new(fd, buf.as_mut_ptr(), BLOCK as u32)
                .offset(next_offset(rng))
                .build()
                .user_data(slot as u64);
            // SAFETY: `buf` is one of `bufs`, alive and untouched until
            // its completion is reaped below (the loop drains all).
            unsafe { ring.submission().push(&e) }.expect("sq has room");
        };
        for (slot, b) in bufs.iter_mut().enumerate() {
            push(&mut ring, slot, b, &mut rng);
        }
        let (start, mut done, mut inflight) = (Instant::now(), 0u64, DEPTH);
        while inflight > 0 {
            ring.submit_and_wait(1)?;
            let slots: Vec<usize> = ring
                .completion()
                .map(|c| {
                    assert_eq!(c.result(), BLOCK as i32);
                    c.user_data() as usize
                })
                .collect();
            for slot in slots {
                done += 1;
                inflight -= 1;
                if start.elapsed() < secs {
                    push(&mut ring, slot, &mut bufs[slot], &mut rng);
                    inflight += 1;
                }
            }
        }
        Ok(done as f64 / start.elapsed().as_secs_f64())
    }

    /// tpio: 64 reads in flight, each callback issues the next.
    fn tpio(backend: &Backend, path: &PathBuf, secs: Duration) -> std::io::Result<f64> {
        let file = tpio::File::from_std_on(File::open(path)?, backend)?;
        let done = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let me: Arc<std::sync::OnceLock<Arc<ThreadpoolIo>>> = Arc::default();
        let (d, s, m) = (done.clone(), stop.clone(), me.clone());
        let io = Arc::new(ThreadpoolIo::new(&file, None, move |_i, r| {
            assert_eq!(r.result, Ok(BLOCK));
            d.fetch_add(1, Ordering::Relaxed);
            if s.load(Ordering::Relaxed) {
                return;
            }
            let mut rng = r.tag;
            let off = next_offset(&mut rng);
            if let Some(io) = m.get() {
                issue(io, r.buf, off, rng);
            }
        })?);
        let _ = me.set(io.clone());
        let mut rng = 0x2545_F491_4F6C_DD1Du64;
        let start = Instant::now();
        for _ in 0..DEPTH {
            let off = next_offset(&mut rng);
            issue(&io, vec![0; BLOCK], off, rng);
        }
        std::thread::sleep(secs);
        stop.store(true, Ordering::Relaxed);
        let n = done.load(Ordering::Relaxed);
        let el = start.elapsed();
        io.wait_for_callbacks(false)?;
        let _ = Arc::try_unwrap(me);
        Ok(n as f64 / el.as_secs_f64())
    }

    fn issue(io: &ThreadpoolIo, buf: Vec<u8>, off: u64, tag: u64) {
        if let Err(e) = io.read_at(buf, off, tag) {
            panic!("read failed at once: {e}");
        }
    }

    fn median(mut v: Vec<f64>) -> f64 {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    }

    pub fn main() -> Result<(), Box<dyn std::error::Error>> {
        let args: Vec<String> = std::env::args().skip(1).collect();
        let secs = Duration::from_secs_f64(args.first().map_or(Ok(1.0), |s| s.parse())?);
        let rounds: usize = args.get(1).map_or(Ok(3), |s| s.parse())?;
        let path = prepare()?;
        let at_once = Backend::new(BackendKind::Uring)?;
        std::env::set_var(tpio_uring::AT_ONCE_ENV, "0");
        let ring_only = Backend::new(BackendKind::Uring)?;
        let (mut a, mut b, mut c) = (vec![], vec![], vec![]);
        for _ in 0..rounds {
            a.push(plain_uring(&path, secs)?);
            b.push(tpio(&at_once, &path, secs)?);
            c.push(tpio(&ring_only, &path, secs)?);
        }
        let (a, b, c) = (median(a), median(b), median(c));
        println!("4 KiB random reads, cached 256 MiB file, QD{DEPTH}, {rounds} rounds × {secs:?}, medians:");
        println!(
            "  plain io_uring loop, 1 thread, no callbacks : {:>10.0} reads/s",
            a
        );
        println!(
            "  tpio on io_uring (at-once path)             : {:>10.0} reads/s  ({:.2}× plain)",
            b,
            b / a
        );
        println!(
            "  tpio on io_uring (every read via the ring)   : {:>10.0} reads/s  ({:.2}× plain)",
            c,
            c / a
        );
        Ok(())
    }
}
