//! `OVERLAPPED` and `GetOverlappedResult(Ex)` for the raw layer (rule 8).
//!
//! Owns the status an OVERLAPPED carries, as Windows keeps it: `Internal`
//! is `STATUS_PENDING` (0x103) from the issuing call until the operation is
//! over, then an NTSTATUS (0 for success, `0xC007_xxxx` — the
//! NTSTATUS_FROM_WIN32 form — for a Win32 error `xxxx`); `InternalHigh` is
//! the byte count. Both are atomics, so a thread may poll an OVERLAPPED
//! while a pool worker completes it. Waiters sleep on one process-wide
//! condition variable, signalled at each raw-layer completion: Windows
//! waits on the file handle when `hEvent` is null, which wakes every
//! waiter on that handle in the same way.
//!
//! It must never read a caller's OVERLAPPED outside the window in which the
//! caller keeps it valid, and never report an operation done before its
//! result is written.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};
use tpio_core::Win32Error;

use crate::handle::OverlappedHandle;

/// `STATUS_PENDING`: what `Internal` holds while the operation is in flight.
pub const STATUS_PENDING: usize = 0x103;

/// NTSTATUS_FROM_WIN32's facility and severity bits.
const NT_FROM_WIN32: usize = 0xC007_0000;

/// `OVERLAPPED`, with Win32's layout. Its address identifies an operation
/// from issue to callback. `offset` / `offset_high` give the file position
/// of a read or write on a file (ignored for pipes and sockets). `internal`
/// and `internal_high` are written by tpio as Windows writes them (see the
/// module docs); `h_event` is reserved (tpio does not signal it).
#[repr(C)]
#[derive(Debug, Default)]
pub struct Overlapped {
    /// `Internal`: `STATUS_PENDING` while in flight, then the NTSTATUS.
    pub internal: AtomicUsize,
    /// `InternalHigh`: bytes transferred.
    pub internal_high: AtomicUsize,
    /// `Offset`: low 32 bits of the file position.
    pub offset: u32,
    /// `OffsetHigh`: high 32 bits of the file position.
    pub offset_high: u32,
    /// `hEvent` (reserved).
    pub h_event: usize,
}

impl Overlapped {
    /// An OVERLAPPED for file position `offset`.
    pub fn at(offset: u64) -> Overlapped {
        Overlapped {
            offset: offset as u32,
            offset_high: (offset >> 32) as u32,
            ..Overlapped::default()
        }
    }

    /// The file position it names.
    pub fn position(&self) -> u64 {
        u64::from(self.offset) | (u64::from(self.offset_high) << 32)
    }

    /// `HasOverlappedIoCompleted`: false while its operation is in flight.
    pub fn has_completed(&self) -> bool {
        self.internal.load(Ordering::Acquire) != STATUS_PENDING
    }

    /// Marks it pending for a new operation; false if it already is (the
    /// OVERLAPPED is reused while its operation is in flight).
    pub(crate) fn begin(&self) -> bool {
        let cur = self.internal.load(Ordering::Acquire);
        cur != STATUS_PENDING
            && self
                .internal
                .compare_exchange(cur, STATUS_PENDING, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
    }

    /// The final result, or `None` while pending.
    fn result(&self) -> Option<Result<usize, Win32Error>> {
        // SeqCst: a waiter's reading pairs with `finish`'s (see WAITERS).
        let st = self.internal.load(Ordering::SeqCst);
        if st == STATUS_PENDING {
            return None;
        }
        let bytes = self.internal_high.load(Ordering::Acquire);
        Some(match st {
            0 => Ok(bytes),
            s if s & 0xFFFF_0000 == NT_FROM_WIN32 => {
                Err(Win32Error::from_code((s & 0xFFFF) as u32))
            }
            s => Err(Win32Error::from_code(s as u32)),
        })
    }
}

fn signal() -> &'static (Mutex<()>, Condvar) {
    static S: (Mutex<()>, Condvar) = (Mutex::new(()), Condvar::new());
    &S
}

/// Threads inside `get_overlapped_result_ex`'s wait. A completion takes the
/// signal's lock only when there are some: no lock per raw completion in
/// the common case (nobody waits, the callback gets the result).
static WAITERS: AtomicUsize = AtomicUsize::new(0);

/// Writes an operation's final result into its OVERLAPPED and wakes the
/// waiters of `GetOverlappedResult`.
///
/// # Safety
/// `ov` must point to a valid `Overlapped` (the caller keeps it valid
/// until the operation's callback has started).
pub(crate) unsafe fn finish(ov: *const Overlapped, status: Win32Error, bytes: usize) {
    // SAFETY: the caller's obligation; every field written is atomic.
    let ov = unsafe { &*ov };
    ov.internal_high.store(bytes, Ordering::Release);
    let st = if status.is_success() {
        0
    } else {
        NT_FROM_WIN32 | status.code() as usize
    };
    // SeqCst pairs with the waiter's SeqCst increment and reading: either
    // the waiter sees the result, or this sees the waiter and wakes it
    // (under the lock it holds until it sleeps).
    ov.internal.store(st, Ordering::SeqCst);
    if WAITERS.load(Ordering::SeqCst) > 0 {
        let (m, cv) = signal();
        let _g = m.lock();
        cv.notify_all();
    }
}

/// Counts a waiter out when its wait ends, however it ends.
struct Waiting;

impl Drop for Waiting {
    fn drop(&mut self) {
        WAITERS.fetch_sub(1, Ordering::SeqCst);
    }
}

/// `GetOverlappedResult(handle, ov, &bytes, wait)` (rule 8): `Ok(bytes)`
/// when the operation succeeded; `Err(status)` when it failed (995 when
/// cancelled, 38 at end of file, …); while it is in flight,
/// `Err(ERROR_IO_INCOMPLETE)` (996) without `wait`, or blocks until it is
/// over with `wait`. An OVERLAPPED never issued reads as a success of 0
/// bytes, as a zeroed OVERLAPPED does on Windows.
pub fn get_overlapped_result<H: OverlappedHandle + ?Sized>(
    handle: &H,
    ov: &Overlapped,
    wait: bool,
) -> Result<usize, Win32Error> {
    get_overlapped_result_ex(handle, ov, if wait { None } else { Some(Duration::ZERO) })
}

/// `GetOverlappedResultEx(handle, ov, &bytes, ms, FALSE)`: as
/// [`get_overlapped_result`], waiting at most `timeout` (`None`: forever).
/// A zero time-out on an operation in flight is `ERROR_IO_INCOMPLETE`
/// (996); a time-out that expires is `WAIT_TIMEOUT` (258), as on Windows.
pub fn get_overlapped_result_ex<H: OverlappedHandle + ?Sized>(
    _handle: &H,
    ov: &Overlapped,
    timeout: Option<Duration>,
) -> Result<usize, Win32Error> {
    if let Some(r) = ov.result() {
        return r;
    }
    if timeout == Some(Duration::ZERO) {
        return Err(Win32Error::IO_INCOMPLETE);
    }
    let deadline = timeout.map(|t| Instant::now() + t);
    let (m, cv) = signal();
    let mut g = m.lock();
    WAITERS.fetch_add(1, Ordering::SeqCst);
    let _waiting = Waiting;
    loop {
        if let Some(r) = ov.result() {
            return r;
        }
        match deadline {
            None => cv.wait(&mut g),
            Some(d) => {
                if Instant::now() >= d || cv.wait_until(&mut g, d).timed_out() {
                    if let Some(r) = ov.result() {
                        return r;
                    }
                    return Err(Win32Error::WAIT_TIMEOUT);
                }
            }
        }
    }
}
