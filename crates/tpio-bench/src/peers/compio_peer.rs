//! compio as a contestant: W1 with `read_at` on one runtime thread (compio
//! is thread-per-core), W2 with one runtime per worker thread, each
//! carrying half the connections.

use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use compio::buf::BufResult;
use compio::io::{AsyncRead, AsyncReadAt, AsyncReadExt, AsyncWriteExt};

use crate::datafile::Offsets;
use crate::measure::RunError;
use crate::workloads::w1_reads::ReadJob;
use crate::workloads::w2_echo::EchoJob;

fn runtime() -> Result<compio::runtime::Runtime, RunError> {
    compio::runtime::Runtime::new()
        .map_err(|e| RunError::Unavailable(format!("compio runtime: {e}")))
}

fn joined<T>(r: Result<T, compio::runtime::JoinError>) -> Result<T, RunError> {
    r.map_err(|e| RunError::Failed(format!("compio task: {e:?}")))
}

/// W1: 64 tasks on one runtime, each looping `read_at` of one block.
pub fn reads(job: &ReadJob<'_>) -> Result<f64, RunError> {
    let rt = runtime()?;
    let offsets = Offsets::new(job.blocks(), job.block);
    let (path, block, depth, duration) =
        (job.data.path.clone(), job.block, job.depth, job.duration);
    rt.block_on(async move {
        let file = Rc::new(compio::fs::File::open(&path).await?);
        let t0 = Instant::now();
        let deadline = t0 + duration;
        let mut tasks = Vec::with_capacity(depth);
        for i in 0..depth as u64 {
            let file = file.clone();
            tasks.push(compio::runtime::spawn(async move {
                let (mut done, mut bad) = (0u64, 0u64);
                let mut buf = Vec::with_capacity(block);
                let mut s = Offsets::seed(i);
                while Instant::now() < deadline {
                    s = Offsets::next(s);
                    buf.clear();
                    let BufResult(r, b) = file.read_at(buf, offsets.offset(s)).await;
                    buf = b;
                    if !matches!(r, Ok(n) if n == block) {
                        bad += 1;
                    }
                    done += 1;
                }
                (done, bad)
            }));
        }
        let (mut done, mut bad) = (0, 0);
        for t in tasks {
            let (d, b) = joined(t.await)?;
            done += d;
            bad += b;
        }
        let secs = t0.elapsed().as_secs_f64();
        if bad > 0 {
            return Err(RunError::Failed(format!("{bad} short reads")));
        }
        Ok(done as f64 / secs)
    })
}

/// W2: `workers` threads, each a compio runtime with its share of the
/// connections; per connection a server task and a client task.
pub fn echo(job: &EchoJob, workers: usize) -> Result<f64, RunError> {
    let pairs = crate::net_pairs::tcp_pairs(job.connections)?;
    let trips = Arc::new(AtomicU64::new(0));
    let mut shares: Vec<Vec<_>> = (0..workers).map(|_| Vec::new()).collect();
    for (i, p) in pairs.into_iter().enumerate() {
        shares[i % workers].push(p);
    }
    let t0 = Instant::now();
    let deadline = t0 + job.duration;
    let msg = job.message;
    let threads: Vec<_> = shares
        .into_iter()
        .map(|share| {
            let trips = trips.clone();
            std::thread::spawn(move || -> Result<f64, RunError> {
                let rt = runtime()?;
                rt.block_on(echo_thread(share, msg, deadline, &trips))?;
                Ok(t0.elapsed().as_secs_f64())
            })
        })
        .collect();
    let mut secs = 0.0f64;
    for t in threads {
        let s = t
            .join()
            .map_err(|_| RunError::Failed("compio thread panicked".into()))??;
        secs = secs.max(s);
    }
    Ok(trips.load(Ordering::Relaxed) as f64 / secs)
}

async fn echo_thread(
    share: Vec<(std::net::TcpStream, std::net::TcpStream)>,
    msg: usize,
    deadline: Instant,
    trips: &AtomicU64,
) -> Result<(), RunError> {
    let mut clients = Vec::new();
    let mut servers = Vec::new();
    for (c, s) in share {
        let mut c = compio::net::TcpStream::from_std(c)?;
        let mut s = compio::net::TcpStream::from_std(s)?;
        servers.push(compio::runtime::spawn(async move {
            let mut buf = Vec::with_capacity(msg);
            loop {
                buf.clear();
                let BufResult(r, b) = s.read(buf).await;
                if r? == 0 {
                    return Ok::<(), std::io::Error>(());
                }
                let BufResult(r, b) = s.write_all(b).await;
                r?;
                buf = b;
            }
        }));
        clients.push(compio::runtime::spawn(async move {
            let mut out = vec![7u8; msg];
            let mut back = Vec::with_capacity(msg);
            let mut n = 0u64;
            while Instant::now() < deadline {
                let BufResult(r, o) = c.write_all(out).await;
                r?;
                out = o;
                back.clear();
                let BufResult(r, b) = c.read_exact(back).await;
                r?;
                back = b;
                n += 1;
            }
            Ok::<u64, std::io::Error>(n)
        }));
    }
    for t in clients {
        trips.fetch_add(joined(t.await)??, Ordering::Relaxed);
    }
    for t in servers {
        joined(t.await)??;
    }
    Ok(())
}
