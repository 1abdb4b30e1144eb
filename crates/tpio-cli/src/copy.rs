//! `tpio copy SRC DST`: an overlapped copy through TP_IO callbacks. Up to
//! `--depth` blocks are in flight; each block's read callback issues its
//! write at the same offset, and the write callback claims the next block
//! and issues its read. A progress bar follows the bytes written; at the end
//! the sizes are compared and, with `--verify`, CRC-32s of both files.
//!
//! Owns the copy's state machine and its checks. It must never report
//! success for a copy whose size (or checksum, when asked) differs, and
//! never leave an operation in flight when it returns.

use std::fs::OpenOptions;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::{Duration, Instant};

use crossbeam_channel::{unbounded, Sender};
use tpio::{Backend, Done, ThreadpoolIo};

use crate::BackendArg;

type BoxError = Box<dyn std::error::Error>;

/// `tpio copy`'s arguments.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The file to copy.
    pub src: PathBuf,
    /// Where to copy it (created or truncated).
    pub dst: PathBuf,
    /// Blocks in flight at once.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub depth: u32,
    /// Bytes per read and write (`64K`, `1M`, or a number).
    #[arg(long, default_value = "256K", value_parser = parse_size)]
    pub block_size: usize,
    /// The backend (default: the process's choice, see `tpio probe`).
    #[arg(long, value_enum)]
    pub backend: Option<BackendArg>,
    /// Also compare CRC-32 checksums of both files.
    #[arg(long)]
    pub verify: bool,
}

fn parse_size(s: &str) -> Result<usize, String> {
    let s = s.trim();
    let (num, mult) = match s.char_indices().last() {
        Some((i, 'K' | 'k')) => (&s[..i], 1 << 10),
        Some((i, 'M' | 'm')) => (&s[..i], 1 << 20),
        _ => (s, 1),
    };
    let n: usize = num.parse().map_err(|_| format!("not a size: {s}"))?;
    match n.checked_mul(mult) {
        Some(v) if (1..=(64 << 20)).contains(&v) => Ok(v),
        _ => Err(format!("block size must be 1 byte to 64 MiB: {s}")),
    }
}

/// One in-flight block: the bytes `[off, end)` still to copy.
#[derive(Clone, Copy, Default)]
struct Slot {
    off: u64,
    end: u64,
}

struct Copier {
    reader: OnceLock<ThreadpoolIo>,
    writer: OnceLock<ThreadpoolIo>,
    slots: Vec<Mutex<Slot>>,
    next: AtomicU64,
    size: u64,
    block: u64,
    written: AtomicU64,
    /// One message per slot when it has nothing left (or failed).
    finished: Sender<Result<(), String>>,
}

impl Copier {
    fn slot(&self, i: u64) -> std::sync::MutexGuard<'_, Slot> {
        self.slots[i as usize]
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// Claims the next block for slot `i` and reads it; or reports the slot done.
    fn next_block(&self, i: u64, mut buf: Vec<u8>) -> Result<(), String> {
        let off = self.next.fetch_add(self.block, Ordering::Relaxed);
        if off >= self.size {
            let _ = self.finished.send(Ok(()));
            return Ok(());
        }
        let end = (off + self.block).min(self.size);
        *self.slot(i) = Slot { off, end };
        buf.resize((end - off) as usize, 0);
        self.read(i, buf, off)
    }

    fn read(&self, i: u64, buf: Vec<u8>, off: u64) -> Result<(), String> {
        let io = self.reader.get().ok_or("reader not set")?;
        io.read_at(buf, off, i)
            .map(|_| ())
            .map_err(|e| format!("read at {off}: {e}"))
    }

    fn write(&self, i: u64, buf: Vec<u8>, off: u64) -> Result<(), String> {
        let io = self.writer.get().ok_or("writer not set")?;
        io.write_at(buf, off, i)
            .map(|_| ())
            .map_err(|e| format!("write at {off}: {e}"))
    }

    /// A block's read finished: write what came, at the same offset.
    fn on_read(&self, d: Done) -> Result<(), String> {
        let off = self.slot(d.tag).off;
        match d.result {
            Ok(n) if n > 0 => {
                let mut buf = d.buf;
                buf.truncate(n);
                self.write(d.tag, buf, off)
            }
            Ok(_) | Err(tpio::Win32Error::HANDLE_EOF) => {
                Err(format!("the source ended early, at byte {off}"))
            }
            Err(e) => Err(format!("read at {off}: {e}")),
        }
    }

    /// A block's write finished: finish the write, read the rest of a short
    /// read, or go on to the next block.
    fn on_write(&self, d: Done) -> Result<(), String> {
        let n = d.result.map_err(|e| format!("write: {e}"))?;
        self.written.fetch_add(n as u64, Ordering::Relaxed);
        let (off, end) = {
            let mut s = self.slot(d.tag);
            s.off += n as u64;
            (s.off, s.end)
        };
        let mut buf = d.buf;
        if n == 0 {
            return Err(format!("a write at {off} moved no bytes"));
        }
        if n < buf.len() {
            buf.drain(..n);
            return self.write(d.tag, buf, off);
        }
        if off < end {
            buf.resize((end - off) as usize, 0);
            return self.read(d.tag, buf, off);
        }
        self.next_block(d.tag, buf)
    }
}

fn callback(
    weak: Weak<Copier>,
    reading: bool,
) -> impl Fn(&mut tpio::CallbackInstance<'_>, Done) + Send + Sync {
    move |_inst, d| {
        let Some(c) = weak.upgrade() else { return };
        let r = if reading { c.on_read(d) } else { c.on_write(d) };
        if let Err(e) = r {
            let _ = c.finished.send(Err(e));
        }
    }
}

/// Copies; exit 0 when the copy is whole (and verified, when asked).
pub fn run(a: &Args) -> Result<ExitCode, BoxError> {
    let backend = match a.backend {
        Some(k) => Backend::new(k.into())?,
        None => Backend::process()?,
    };
    let src_std = std::fs::File::open(&a.src).map_err(|e| format!("{}: {e}", a.src.display()))?;
    let size = src_std.metadata()?.len();
    let dst_std = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&a.dst)
        .map_err(|e| format!("{}: {e}", a.dst.display()))?;
    let dst_sync = dst_std.try_clone()?;
    let src = tpio::File::from_std_on(src_std, &backend)?;
    let dst = tpio::File::from_std_on(dst_std, &backend)?;
    let depth = a.depth as usize;
    let (finished, done_rx) = unbounded();
    let copier = Arc::new(Copier {
        reader: OnceLock::new(),
        writer: OnceLock::new(),
        slots: (0..depth).map(|_| Mutex::new(Slot::default())).collect(),
        next: AtomicU64::new(0),
        size,
        block: a.block_size as u64,
        written: AtomicU64::new(0),
        finished,
    });
    let _ = copier.reader.set(ThreadpoolIo::new(
        &src,
        None,
        callback(Arc::downgrade(&copier), true),
    )?);
    let _ = copier.writer.set(ThreadpoolIo::new(
        &dst,
        None,
        callback(Arc::downgrade(&copier), false),
    )?);

    let bar = progress_bar(size);
    let t0 = Instant::now();
    let mut failure = None;
    for i in 0..depth as u64 {
        if let Err(e) = copier.next_block(i, Vec::with_capacity(a.block_size)) {
            failure.get_or_insert(e);
            let _ = copier.finished.send(Ok(()));
        }
    }
    let mut slots_done = 0;
    while slots_done < depth {
        match done_rx.recv_timeout(Duration::from_millis(100)) {
            Ok(r) => {
                slots_done += 1;
                if let Err(e) = r {
                    failure.get_or_insert(e);
                }
            }
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => {}
            Err(e) => return Err(e.into()),
        }
        bar.set_position(copier.written.load(Ordering::Relaxed));
    }
    for io in [&copier.reader, &copier.writer]
        .into_iter()
        .filter_map(OnceLock::get)
    {
        io.wait_for_callbacks(false)?;
    }
    dst_sync.sync_all()?;
    let secs = t0.elapsed().as_secs_f64();
    bar.set_position(copier.written.load(Ordering::Relaxed));
    bar.finish_and_clear();
    drop(copier);
    drop((src, dst));
    if let Some(e) = failure {
        eprintln!("tpio copy: {e}");
        return Ok(ExitCode::FAILURE);
    }
    report(a, &backend, size, secs, &dst_sync)
}

fn report(
    a: &Args,
    backend: &Backend,
    size: u64,
    secs: f64,
    dst: &std::fs::File,
) -> Result<ExitCode, BoxError> {
    let got = dst.metadata()?.len();
    println!(
        "copied {size} bytes in {secs:.3} s: {:.1} MiB/s (depth {}, blocks of {} bytes, {})",
        size as f64 / (1 << 20) as f64 / secs.max(1e-9),
        a.depth,
        a.block_size,
        backend.name()
    );
    if got != size {
        eprintln!("tpio copy: size differs: source {size} bytes, destination {got} bytes");
        return Ok(ExitCode::FAILURE);
    }
    println!("size: {got} bytes, same as the source");
    if a.verify {
        let (s, d) = (crc32(&a.src)?, crc32(&a.dst)?);
        if s != d {
            eprintln!("tpio copy: checksum differs: source CRC-32 {s:08x}, destination {d:08x}");
            return Ok(ExitCode::FAILURE);
        }
        println!("verified: CRC-32 {s:08x} on both");
    }
    Ok(ExitCode::SUCCESS)
}

fn progress_bar(size: u64) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(size);
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "{bar:40} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
    ) {
        bar.set_style(style);
    }
    bar
}

fn crc32(p: &Path) -> std::io::Result<u32> {
    let mut f = std::fs::File::open(p)?;
    let mut h = crc32fast::Hasher::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            return Ok(h.finalize());
        }
        h.update(&buf[..n]);
    }
}

#[cfg(test)]
mod tests {
    use super::parse_size;

    #[test]
    fn sizes_take_k_and_m_suffixes_and_refuse_zero() {
        assert_eq!(parse_size("64K"), Ok(64 << 10));
        assert_eq!(parse_size("1m"), Ok(1 << 20));
        assert_eq!(parse_size("4096"), Ok(4096));
        assert!(parse_size("0").is_err());
        assert!(parse_size("1G").is_err());
        assert!(parse_size("abc").is_err());
    }
}
