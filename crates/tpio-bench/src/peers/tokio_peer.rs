//! tokio as a contestant: W1 through `tokio::fs` and through
//! `spawn_blocking(pread)`, W2 as tasks on a 2-worker runtime, W3 by
//! dropping (aborting) the tasks whose reads are pending.

use std::io::SeekFrom;
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};

use crate::datafile::Offsets;
use crate::measure::RunError;
use crate::workloads::w1_reads::ReadJob;
use crate::workloads::w2_echo::EchoJob;

fn runtime(workers: usize) -> Result<tokio::runtime::Runtime, RunError> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
        .map_err(RunError::from)
}

fn check(bad: &AtomicU64) -> Result<(), RunError> {
    match bad.load(Ordering::Relaxed) {
        0 => Ok(()),
        n => Err(RunError::Failed(format!("{n} reads failed or were short"))),
    }
}

/// W1 with `tokio::fs::File` (seek, then read): one file per task, as
/// tokio's file has a cursor.
pub fn reads_fs(job: &ReadJob<'_>, workers: usize) -> Result<f64, RunError> {
    let rt = runtime(workers)?;
    let offsets = Offsets::new(job.blocks(), job.block);
    let (done, bad) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let (path, block, depth, duration) =
        (job.data.path.clone(), job.block, job.depth, job.duration);
    let secs = rt.block_on(async {
        let t0 = Instant::now();
        let deadline = t0 + duration;
        let mut tasks = Vec::with_capacity(depth);
        for i in 0..depth as u64 {
            let (path, done, bad) = (path.clone(), done.clone(), bad.clone());
            tasks.push(tokio::spawn(async move {
                let mut f = tokio::fs::File::open(&path).await?;
                let mut buf = vec![0u8; block];
                let mut s = Offsets::seed(i);
                while Instant::now() < deadline {
                    s = Offsets::next(s);
                    f.seek(SeekFrom::Start(offsets.offset(s))).await?;
                    if f.read_exact(&mut buf).await.is_err() {
                        bad.fetch_add(1, Ordering::Relaxed);
                    }
                    done.fetch_add(1, Ordering::Relaxed);
                }
                Ok::<(), std::io::Error>(())
            }));
        }
        for t in tasks {
            t.await.map_err(|e| RunError::Failed(e.to_string()))??;
        }
        Ok::<f64, RunError>(t0.elapsed().as_secs_f64())
    })?;
    check(&bad)?;
    Ok(done.load(Ordering::Relaxed) as f64 / secs)
}

/// W1 with `spawn_blocking(move || file.read_at(..))` (pread on tokio's
/// blocking pool), 64 tasks each with one read outstanding.
pub fn reads_spawn_blocking(job: &ReadJob<'_>, workers: usize) -> Result<f64, RunError> {
    let rt = runtime(workers)?;
    let offsets = Offsets::new(job.blocks(), job.block);
    let file = Arc::new(job.data.file.try_clone()?);
    let (done, bad) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let (block, depth, duration) = (job.block, job.depth, job.duration);
    let secs = rt.block_on(async {
        let t0 = Instant::now();
        let deadline = t0 + duration;
        let mut tasks = Vec::with_capacity(depth);
        for i in 0..depth as u64 {
            let (file, done, bad) = (file.clone(), done.clone(), bad.clone());
            tasks.push(tokio::spawn(async move {
                let mut buf = vec![0u8; block];
                let mut s = Offsets::seed(i);
                while Instant::now() < deadline {
                    s = Offsets::next(s);
                    let (off, f) = (offsets.offset(s), file.clone());
                    let (r, b) = tokio::task::spawn_blocking(move || {
                        let r = f.read_at(&mut buf, off);
                        (r, buf)
                    })
                    .await
                    .map_err(|e| std::io::Error::other(e.to_string()))?;
                    buf = b;
                    if !matches!(r, Ok(n) if n == block) {
                        bad.fetch_add(1, Ordering::Relaxed);
                    }
                    done.fetch_add(1, Ordering::Relaxed);
                }
                Ok::<(), std::io::Error>(())
            }));
        }
        for t in tasks {
            t.await.map_err(|e| RunError::Failed(e.to_string()))??;
        }
        Ok::<f64, RunError>(t0.elapsed().as_secs_f64())
    })?;
    check(&bad)?;
    Ok(done.load(Ordering::Relaxed) as f64 / secs)
}

/// W2 on tokio: per connection a server task (read, write back) and a
/// client task (write a message, read it back, count); round trips/s.
pub fn echo(job: &EchoJob, workers: usize) -> Result<f64, RunError> {
    let pairs = crate::net_pairs::tcp_pairs(job.connections)?;
    let rt = runtime(workers)?;
    let trips = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let (msg, duration) = (job.message, job.duration);
    rt.block_on(async {
        let mut clients = Vec::new();
        let mut servers = Vec::new();
        for (c, s) in pairs {
            c.set_nonblocking(true)?;
            s.set_nonblocking(true)?;
            let mut c = tokio::net::TcpStream::from_std(c)?;
            let mut s = tokio::net::TcpStream::from_std(s)?;
            servers.push(tokio::spawn(async move {
                let mut buf = vec![0u8; msg];
                loop {
                    let n = s.read(&mut buf).await?;
                    if n == 0 {
                        return Ok::<(), std::io::Error>(());
                    }
                    s.write_all(&buf[..n]).await?;
                }
            }));
            let (trips, stop) = (trips.clone(), stop.clone());
            clients.push(tokio::spawn(async move {
                let out = vec![7u8; msg];
                let mut back = vec![0u8; msg];
                while !stop.load(Ordering::Relaxed) {
                    c.write_all(&out).await?;
                    c.read_exact(&mut back).await?;
                    trips.fetch_add(1, Ordering::Relaxed);
                }
                Ok::<(), std::io::Error>(())
            }));
        }
        let t0 = Instant::now();
        tokio::time::sleep(duration).await;
        stop.store(true, Ordering::Relaxed);
        let rate = trips.load(Ordering::Relaxed) as f64 / t0.elapsed().as_secs_f64();
        for t in clients.into_iter().chain(servers) {
            t.await.map_err(|e| RunError::Failed(e.to_string()))??;
        }
        Ok::<f64, RunError>(rate)
    })
}

/// W3 on tokio: one task per socket waiting in `readable().await` +
/// `try_read` (the socket shared, so it outlives the task); then every task
/// is aborted (its future dropped, which deregisters the read) and joined.
/// Milliseconds from the first abort to the last join.
pub fn cancel(pending: usize) -> Result<f64, RunError> {
    let pairs = crate::net_pairs::unix_pairs(pending / 2)?;
    let rt = runtime(crate::WORKERS)?;
    rt.block_on(async {
        let ready = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::with_capacity(pending);
        let mut socks = Vec::with_capacity(pending);
        for (a, b) in pairs {
            for s in [a, b] {
                s.set_nonblocking(true)?;
                // Shared, so that dropping a task's future cancels its read
                // without closing the socket (which would end its peer's
                // read with EOF instead).
                let s = Arc::new(tokio::net::UnixStream::from_std(s)?);
                socks.push(s.clone());
                let ready = ready.clone();
                tasks.push(tokio::spawn(async move {
                    let mut buf = [0u8; 64];
                    ready.fetch_add(1, Ordering::Relaxed);
                    loop {
                        s.readable().await?;
                        match s.try_read(&mut buf) {
                            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                            r => return r,
                        }
                    }
                }));
            }
        }
        let n = tasks.len();
        let end = Instant::now() + Duration::from_secs(30);
        while ready.load(Ordering::Relaxed) < n {
            if Instant::now() > end {
                return Err(RunError::Failed("reads never became pending".into()));
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        // Let the last tasks' first polls finish registering their reads.
        tokio::time::sleep(Duration::from_millis(20)).await;
        let t0 = Instant::now();
        for t in &tasks {
            t.abort();
        }
        let (mut cancelled, mut other) = (0, None);
        for t in tasks {
            match t.await {
                Err(e) if e.is_cancelled() => cancelled += 1,
                r => other = Some(format!("{r:?}")),
            }
        }
        let ms = t0.elapsed().as_secs_f64() * 1e3;
        drop(socks);
        if cancelled != n {
            return Err(RunError::Failed(format!(
                "{cancelled} of {n} reads were cancelled; another ended {}",
                other.unwrap_or_default()
            )));
        }
        Ok(ms)
    })
}
