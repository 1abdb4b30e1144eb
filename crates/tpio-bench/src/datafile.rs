//! The data file W1 reads (256 MiB, in the system temp dir): made once,
//! reused by later runs when it already has the right size, and warmed into
//! the page cache before use. Also the random offsets every W1 contestant
//! draws from (the same generator for all).
//!
//! Owns only the file's contents and its warm-up. It must never delete a
//! file it did not make, nor write to one of the wrong size it did not make.

use std::fs::File;
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// W1's file size: 256 MiB.
pub const DATA_FILE_SIZE: u64 = 256 << 20;

/// Where W1's file lives unless told otherwise.
pub fn default_path() -> PathBuf {
    std::env::temp_dir().join("tpio-bench-256MiB.bin")
}

/// The byte at offset `i` of a data file (a pattern that is not all one value,
/// so a read that lands at the wrong place is visible).
pub fn pattern_byte(i: u64) -> u8 {
    (i % 251) as u8
}

/// An open, warm data file.
#[derive(Debug)]
pub struct DataFile {
    /// Where it is.
    pub path: PathBuf,
    /// Open for reading.
    pub file: File,
    /// Its size in bytes.
    pub size: u64,
}

impl DataFile {
    /// Opens the 256 MiB file at `path`, making it first if it is missing or
    /// of another size, and reads it once so it sits in the page cache.
    pub fn prepare(path: &Path) -> io::Result<DataFile> {
        Self::prepare_sized(path, DATA_FILE_SIZE)
    }

    /// As [`prepare`](Self::prepare), for a file of `size` bytes (a multiple
    /// of 1 MiB).
    pub fn prepare_sized(path: &Path, size: u64) -> io::Result<DataFile> {
        let ok = std::fs::metadata(path).is_ok_and(|m| m.len() == size);
        if !ok {
            write_pattern(path, size)?;
        }
        let d = DataFile {
            path: path.to_path_buf(),
            file: File::open(path)?,
            size,
        };
        d.warm()?;
        Ok(d)
    }

    /// Reads the whole file once (into the page cache).
    pub fn warm(&self) -> io::Result<()> {
        let mut buf = vec![0u8; 1 << 20];
        let mut off = 0;
        while off < self.size {
            let n = self.file.read_at(&mut buf, off)?;
            if n == 0 {
                return Err(io::Error::other("data file shorter than expected"));
            }
            off += n as u64;
        }
        Ok(())
    }

    /// How many `block`-byte blocks it holds.
    pub fn blocks(&self, block: usize) -> u64 {
        self.size / block as u64
    }
}

/// Writes the file under a name of this process's own, then renames it into
/// place: two processes making the same file at once (the CLI's tests run
/// the tour twice in parallel) each rename a whole file, and neither finds
/// its temporary gone.
fn write_pattern(path: &Path, size: u64) -> io::Result<()> {
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = path.with_extension(format!("partial-{}-{n}", std::process::id()));
    let mut f = File::create(&tmp)?;
    // The pattern repeats every 251 bytes: one buffer a period longer than
    // a chunk serves every chunk, sliced at the chunk's phase.
    const CHUNK: u64 = 1 << 20;
    let period: Vec<u8> = (0..CHUNK + 251).map(pattern_byte).collect();
    let mut off = 0u64;
    while off < size {
        let phase = (off % 251) as usize;
        let n = (size - off).min(CHUNK) as usize;
        f.write_all(&period[phase..phase + n])?;
        off += n as u64;
    }
    f.sync_all()?;
    drop(f);
    std::fs::rename(&tmp, path)
}

/// The random offsets of W1: a xorshift64 state per operation, carried in
/// the operation (tpio's tag, a slot's state), so no contestant shares one.
#[derive(Clone, Copy, Debug)]
pub struct Offsets {
    blocks: u64,
    block: u64,
}

impl Offsets {
    /// Offsets of `block`-sized blocks in a file of `blocks` blocks.
    pub fn new(blocks: u64, block: usize) -> Offsets {
        Offsets {
            blocks: blocks.max(1),
            block: block as u64,
        }
    }

    /// A non-zero starting state for operation `i`.
    pub fn seed(i: u64) -> u64 {
        (i + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1
    }

    /// The next state (xorshift64; never 0 from a non-zero state).
    pub fn next(s: u64) -> u64 {
        let mut x = s;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    }

    /// The block-aligned offset a state stands for.
    pub fn offset(&self, s: u64) -> u64 {
        (s % self.blocks) * self.block
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_prepared_file_has_the_pattern_and_is_reused() {
        let dir = std::env::temp_dir().join(format!("tpio-bench-df-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("d.bin");
        let d = DataFile::prepare_sized(&p, 3 << 20).unwrap();
        assert_eq!(d.size, 3 << 20);
        let mut b = [0u8; 16];
        let at = (1 << 20) + 5;
        d.file.read_at(&mut b, at).unwrap();
        let want: Vec<u8> = (at..at + 16).map(pattern_byte).collect();
        assert_eq!(&b[..], &want[..]);
        let mtime = std::fs::metadata(&p).unwrap().modified().unwrap();
        let again = DataFile::prepare_sized(&p, 3 << 20).unwrap();
        assert_eq!(
            std::fs::metadata(&again.path).unwrap().modified().unwrap(),
            mtime
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// Two makers of one missing file at once (as the CLI's two tour tests
    /// are) both get the whole file: neither finds its temporary renamed
    /// away by the other (they shared one name before).
    #[test]
    fn two_makers_of_one_file_at_once_both_succeed() {
        let dir = std::env::temp_dir().join(format!("tpio-bench-df2-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for round in 0..8 {
            let p = dir.join(format!("d{round}.bin"));
            let b = std::sync::Barrier::new(2);
            std::thread::scope(|s| {
                let makers: Vec<_> = (0..2)
                    .map(|_| {
                        s.spawn(|| {
                            b.wait();
                            DataFile::prepare_sized(&p, 2 << 20).map(|d| d.size)
                        })
                    })
                    .collect();
                for m in makers {
                    assert_eq!(m.join().unwrap().unwrap(), 2 << 20);
                }
            });
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn offsets_are_aligned_and_in_range() {
        let o = Offsets::new(100, 4096);
        let mut s = Offsets::seed(3);
        for _ in 0..1000 {
            s = Offsets::next(s);
            let off = o.offset(s);
            assert_eq!(off % 4096, 0);
            assert!(off < 100 * 4096);
        }
    }
}
