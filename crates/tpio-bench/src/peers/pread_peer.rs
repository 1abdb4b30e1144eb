//! `pread` on plain threads: no queue, no callbacks — what the machine can
//! do for W1 with every core reading.

use std::os::unix::fs::FileExt;
use std::time::Instant;

use crate::datafile::Offsets;
use crate::measure::RunError;
use crate::workloads::w1_reads::ReadJob;

/// W1 as `threads` threads each looping `pread` of one block.
pub fn reads(job: &ReadJob<'_>, threads: usize) -> Result<f64, RunError> {
    let offsets = Offsets::new(job.blocks(), job.block);
    let t0 = Instant::now();
    let deadline = t0 + job.duration;
    let results: Vec<Result<u64, RunError>> = std::thread::scope(|sc| {
        let hs: Vec<_> = (0..threads as u64)
            .map(|t| {
                let file = &job.data.file;
                let block = job.block;
                sc.spawn(move || {
                    let mut buf = vec![0u8; block];
                    let mut s = Offsets::seed(1000 + t);
                    let mut done = 0u64;
                    while Instant::now() < deadline {
                        for _ in 0..64 {
                            s = Offsets::next(s);
                            if file.read_at(&mut buf, offsets.offset(s))? != block {
                                return Err(RunError::Failed("short pread".into()));
                            }
                        }
                        done += 64;
                    }
                    Ok(done)
                })
            })
            .collect();
        hs.into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(RunError::Failed("thread panicked".into())))
            })
            .collect()
    });
    let secs = t0.elapsed().as_secs_f64();
    let mut done = 0;
    for r in results {
        done += r?;
    }
    Ok(done as f64 / secs)
}
