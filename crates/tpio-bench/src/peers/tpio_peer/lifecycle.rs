//! W4 on tpio: close-after-drain churn, and the memory one TP_IO and one
//! outstanding operation cost (net bytes from the counting allocator).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crossbeam_channel::unbounded;
use tpio::{Backend, CallbackEnvironment, Pool, ThreadpoolIo};

use crate::datafile::{DataFile, Offsets};
use crate::measure::RunError;
use crate::{alloc, W1_BLOCK};

/// Objects alive at once in the churn.
const WINDOW: usize = 64;

/// Creates, uses (one 4 KiB read) and closes `objects` TP_IOs, each on a
/// fresh handle (a handle binds to one TP_IO for life), closing each right
/// after its read is issued; objects per second, counted until every
/// object was released.
pub fn churn(
    backend: &Backend,
    env: &CallbackEnvironment,
    pool: &Pool,
    data: &DataFile,
    objects: usize,
) -> Result<f64, RunError> {
    let live_before = pool.stats().live_objects();
    let offsets = Offsets::new(data.blocks(W1_BLOCK), W1_BLOCK);
    let (tx, rx) = unbounded::<(u64, bool)>();
    let mut files: HashMap<u64, tpio::File> = HashMap::with_capacity(WINDOW * 2);
    let mut bad = 0usize;
    let settle = |files: &mut HashMap<u64, tpio::File>, bad: &mut usize| -> Result<(), RunError> {
        let (i, ok) = rx
            .recv_timeout(Duration::from_secs(30))
            .map_err(|_| RunError::Failed("a read's callback never came".into()))?;
        *bad += usize::from(!ok);
        // The read is over: the handle may go (CloseHandle).
        files.remove(&i);
        Ok(())
    };
    let t0 = Instant::now();
    for i in 0..objects as u64 {
        while files.len() >= WINDOW {
            settle(&mut files, &mut bad)?;
        }
        let f = tpio::File::from_std_on(data.file.try_clone()?, backend)?;
        let tx = tx.clone();
        let io = ThreadpoolIo::new(&f, Some(env), move |_inst, done| {
            let _ = tx.send((done.tag, done.result == Ok(W1_BLOCK)));
        })?;
        let off = offsets.offset(Offsets::seed(i));
        io.read_at(vec![0; W1_BLOCK], off, i)
            .map_err(|e| RunError::Failed(e.to_string()))?;
        io.close();
        files.insert(i, f);
    }
    while !files.is_empty() {
        settle(&mut files, &mut bad)?;
    }
    crate::peers::wait_until(crate::peers::DRAIN_LIMIT, "every object's release", || {
        pool.stats().live_objects() <= live_before
    })?;
    let secs = t0.elapsed().as_secs_f64();
    if bad > 0 {
        return Err(RunError::Failed(format!("{bad} reads failed")));
    }
    Ok(objects as f64 / secs)
}

fn counting() -> Result<(), RunError> {
    if alloc::installed() {
        Ok(())
    } else {
        Err(RunError::Unavailable(
            "the counting allocator is not this binary's global allocator".into(),
        ))
    }
}

/// Net bytes one TP_IO costs: `n` handles are made first, then `n`
/// TP_IOs bound to them inside the measurement.
pub fn bytes_per_object(
    backend: &Backend,
    env: &CallbackEnvironment,
    data: &DataFile,
    n: usize,
) -> Result<f64, RunError> {
    counting()?;
    let files = (0..n)
        .map(|_| Ok(tpio::File::from_std_on(data.file.try_clone()?, backend)?))
        .collect::<Result<Vec<_>, RunError>>()?;
    let mut ios = Vec::with_capacity(n);
    alloc::start();
    let r = files
        .iter()
        .map(|f| ThreadpoolIo::new(f, Some(env), |_, _| {}))
        .try_for_each(|io| io.map(|io| ios.push(io)));
    let bytes = alloc::stop();
    r?;
    drop(ios);
    Ok(bytes as f64 / n as f64)
}

/// Net bytes one outstanding operation costs beyond its buffer: one read
/// pending on each of `n` idle sockets (sockets, TP_IOs and buffers are
/// made before the measurement, so only the operations count). Each call
/// makes a new backend of `backend`'s kind, so the driver's tables grow
/// from empty in every round: a table keeps its capacity once it has held
/// `n` operations, and a warm one (as W3 leaves it) would hide that memory,
/// which a process holds from its first peak on.
pub fn bytes_per_operation(
    backend: &Backend,
    env: &CallbackEnvironment,
    n: usize,
) -> Result<f64, RunError> {
    counting()?;
    let fresh = Backend::new(backend.kind())?;
    let backend = &fresh;
    let mut socks = Vec::with_capacity(n);
    for _ in 0..n / 2 {
        let (a, b) = tpio::UnixStream::pair_on(backend)?;
        socks.push(a);
        socks.push(b);
    }
    let ios = socks
        .iter()
        .map(|s| ThreadpoolIo::new(s, Some(env), |_, _| {}))
        .collect::<Result<Vec<_>, _>>()?;
    let n = socks.len();
    let mut bufs: Vec<Vec<u8>> = (0..n).map(|_| vec![0u8; 64]).collect();
    alloc::start();
    let mut failed = None;
    // `drain` keeps the outer Vec's block: only the operations' costs count.
    for (io, b) in ios.iter().zip(bufs.drain(..)) {
        if let Err(e) = io.read(b, 1) {
            failed = Some(e.to_string());
            break;
        }
    }
    // The driver thread takes its share as it submits.
    let all_in_flight =
        crate::peers::wait_until(Duration::from_secs(10), "reads in flight", || {
            socks
                .iter()
                .all(|s| tpio::OverlappedHandle::in_flight(s) == 1)
        });
    std::thread::sleep(Duration::from_millis(20));
    let bytes = alloc::stop();
    drop(bufs);
    for s in &socks {
        let _ = tpio::cancel_io_ex(s, None);
    }
    for io in &ios {
        io.wait_for_callbacks(false)?;
    }
    all_in_flight?;
    if let Some(e) = failed {
        return Err(RunError::Failed(e));
    }
    Ok(bytes as f64 / n as f64)
}
