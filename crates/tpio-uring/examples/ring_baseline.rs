//! The "ceiling" baseline: one thread, 4 KiB random reads from a 256 MiB
//! file in the page cache, queue depth 64. Runs side by side, in one
//! process: a raw io_uring loop (the ceiling), the same loop through
//! `tpio_uring::Ring` (our layer's overhead), and plain `pread` on one
//! thread (the synchronous reference). Prints ops/s and ratios.
//!
//! ```text
//! cargo run --release -p tpio-uring --example ring_baseline [-- --secs 2 --file PATH --keep]
//! ```

use std::fs::File;
use std::io::{self, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use io_uring::{opcode, types, IoUring};
use tpio_uring::{op, Completion, Ring};

const FILE_SIZE: u64 = 256 << 20;
const BLOCK: usize = 4096;
const DEPTH: usize = 64;
const BLOCKS: u64 = FILE_SIZE / BLOCK as u64;

struct Rng(u64);

impl Rng {
    fn offset(&mut self) -> u64 {
        // xorshift64
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % BLOCKS) * BLOCK as u64
    }
}

fn prepare(path: &PathBuf) -> io::Result<File> {
    let ok = std::fs::metadata(path)
        .map(|m| m.len() == FILE_SIZE)
        .unwrap_or(false);
    if !ok {
        let mut f = File::create(path)?;
        let chunk: Vec<u8> = (0..1 << 20).map(|i: u32| (i % 251) as u8).collect();
        for _ in 0..FILE_SIZE >> 20 {
            f.write_all(&chunk)?;
        }
        f.sync_all()?;
    }
    let f = File::open(path)?;
    // Warm the page cache: one sequential pass.
    let mut buf = vec![0u8; 1 << 20];
    let mut off = 0;
    while off < FILE_SIZE {
        // SAFETY: `buf` is a live, writable buffer of its length.
        let n = unsafe {
            libc::pread(
                f.as_raw_fd(),
                buf.as_mut_ptr().cast(),
                buf.len(),
                off as i64,
            )
        };
        if n <= 0 {
            return Err(io::Error::last_os_error());
        }
        off += n as u64;
    }
    Ok(f)
}

fn raw_uring(fd: RawFd, secs: Duration) -> io::Result<f64> {
    let mut ring = IoUring::new(2 * DEPTH as u32)?;
    let mut bufs = vec![[0u8; BLOCK]; DEPTH];
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut done = 0u64;
    {
        let mut sq = ring.submission();
        for (slot, b) in bufs.iter_mut().enumerate() {
            let e = opcode::Read::new(types::Fd(fd), b.as_mut_ptr(), BLOCK as u32)
                .offset(rng.offset())
                .build()
                .user_data(slot as u64);
            // SAFETY: the buffers outlive the ring's operations (all reaped
            // before return, see the drain below).
            unsafe { sq.push(&e) }.map_err(|_| io::Error::other("sq full"))?;
        }
    }
    let start = Instant::now();
    let mut inflight = DEPTH;
    let mut stopping = false;
    while inflight > 0 {
        ring.submit_and_wait(1)?;
        let (_, mut sq, cq) = ring.split();
        for cqe in cq {
            inflight -= 1;
            if cqe.result() != BLOCK as i32 {
                return Err(io::Error::other(format!("read returned {}", cqe.result())));
            }
            done += 1;
            if stopping {
                continue;
            }
            let slot = cqe.user_data() as usize;
            let e = opcode::Read::new(types::Fd(fd), bufs[slot].as_mut_ptr(), BLOCK as u32)
                .offset(rng.offset())
                .build()
                .user_data(slot as u64);
            // SAFETY: as above; at most DEPTH entries in a 2*DEPTH SQ.
            unsafe { sq.push(&e) }.map_err(|_| io::Error::other("sq full"))?;
            inflight += 1;
        }
        if !stopping && start.elapsed() >= secs {
            stopping = true;
        }
    }
    Ok(done as f64 / start.elapsed().as_secs_f64())
}

fn tpio_ring(fd: RawFd, secs: Duration) -> io::Result<f64> {
    let ring = Ring::new(2 * DEPTH as u32)?;
    let mut bufs = vec![[0u8; BLOCK]; DEPTH];
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut batch: Vec<(u64, tpio_uring::Sqe)> = bufs
        .iter_mut()
        .enumerate()
        .map(|(slot, b)| {
            (
                slot as u64,
                op::read_at(fd, b.as_mut_ptr(), BLOCK as u32, rng.offset()),
            )
        })
        .collect();
    // SAFETY: `bufs` outlives every operation: all are reaped before return.
    unsafe { ring.push_batch(&batch) }.map_err(io::Error::from)?;
    let mut reaper = ring.reaper();
    let start = Instant::now();
    let mut done = 0u64;
    let mut inflight = DEPTH;
    let mut bad = None;
    let mut slots = Vec::with_capacity(DEPTH);
    while inflight > 0 {
        slots.clear();
        reaper.wait(None, |c| {
            if let Completion::Op { user_data, result } = c {
                if result != BLOCK as i32 {
                    bad = Some(result);
                }
                slots.push(user_data as usize);
            }
        })?;
        if let Some(r) = bad {
            return Err(io::Error::other(format!("read returned {r}")));
        }
        inflight -= slots.len();
        done += slots.len() as u64;
        if start.elapsed() >= secs {
            continue;
        }
        batch.clear();
        for &slot in &slots {
            let b = bufs[slot].as_mut_ptr();
            batch.push((slot as u64, op::read_at(fd, b, BLOCK as u32, rng.offset())));
        }
        // SAFETY: as above.
        unsafe { ring.push_batch(&batch) }.map_err(io::Error::from)?;
        inflight += batch.len();
    }
    Ok(done as f64 / start.elapsed().as_secs_f64())
}

fn pread_loop(fd: RawFd, secs: Duration) -> io::Result<f64> {
    let mut buf = [0u8; BLOCK];
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let start = Instant::now();
    let mut done = 0u64;
    while start.elapsed() < secs {
        for _ in 0..1024 {
            // SAFETY: `buf` is a live, writable buffer of BLOCK bytes.
            let n = unsafe { libc::pread(fd, buf.as_mut_ptr().cast(), BLOCK, rng.offset() as i64) };
            if n != BLOCK as isize {
                return Err(io::Error::other(format!("pread returned {n}")));
            }
        }
        done += 1024;
    }
    Ok(done as f64 / start.elapsed().as_secs_f64())
}

fn main() -> io::Result<()> {
    let mut secs = Duration::from_secs(2);
    let mut path = std::env::temp_dir().join("tpio-ring-baseline.bin");
    let mut keep = false;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--secs" => {
                let v = args.next().and_then(|v| v.parse::<f64>().ok());
                secs = Duration::from_secs_f64(v.ok_or_else(|| io::Error::other("--secs N"))?);
            }
            "--file" => {
                path = args
                    .next()
                    .ok_or_else(|| io::Error::other("--file PATH"))?
                    .into()
            }
            "--keep" => keep = true,
            other => return Err(io::Error::other(format!("unknown argument {other}"))),
        }
    }
    let report = tpio_uring::probe::cached();
    if !report.is_available() {
        println!("{}", report.summary());
        return Ok(());
    }
    println!(
        "4 KiB random reads, 256 MiB cached file, QD {DEPTH}, one thread, {:.1} s each; kernel {}",
        secs.as_secs_f64(),
        report.kernel_release
    );
    let file = prepare(&path)?;
    let fd = file.as_raw_fd();
    let raw = raw_uring(fd, secs)?;
    let ours = tpio_ring(fd, secs)?;
    let sync = pread_loop(fd, secs)?;
    println!("raw io_uring loop (ceiling) {:>12.0} ops/s  1.00", raw);
    println!(
        "tpio_uring::Ring            {:>12.0} ops/s  {:.2}",
        ours,
        ours / raw
    );
    println!(
        "pread, one thread           {:>12.0} ops/s  {:.2}",
        sync,
        sync / raw
    );
    drop(file);
    if !keep {
        std::fs::remove_file(&path)?;
    }
    Ok(())
}
