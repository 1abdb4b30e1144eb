//! Synchronous (blocking) calls that another thread can cancel: rule 7,
//! `CancelSynchronousIo`.
//!
//! Owns the registry of threads and what each is blocked in. A blocking call
//! in a driver or facade registers itself with [`BlockingCall::enter`], giving
//! a canceller that wakes it (a waker write, a ring cancel — never a signal
//! that could land in user code), checks [`BlockingCall::cancelled`] before
//! and after every wait, and returns `ERROR_OPERATION_ABORTED` when set.
//! This module never blocks and never touches the OS; overlapped operations
//! are not its business (rule 7: they are never touched).

use crate::sync::Mutex;
use std::sync::Arc;
// Id counters are not synchronisation: plain std atomics, also under loom.
use crate::Win32Error;
use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

struct Slot {
    id: u64,
    blocked: Mutex<Option<Blocked>>,
}

struct Blocked {
    call: u64,
    cancelled: Arc<std::sync::atomic::AtomicBool>,
    canceller: Arc<dyn Fn() + Send + Sync>,
    gate: Arc<Mutex<()>>,
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);
static NEXT_CALL: AtomicU64 = AtomicU64::new(1);

fn registry() -> &'static Mutex<HashMap<u64, std::sync::Weak<Slot>>> {
    static R: OnceLock<Mutex<HashMap<u64, std::sync::Weak<Slot>>>> = OnceLock::new();
    R.get_or_init(|| Mutex::new(HashMap::new()))
}

struct SlotOwner(std::sync::Arc<Slot>);

impl Drop for SlotOwner {
    fn drop(&mut self) {
        registry().lock().remove(&self.0.id);
    }
}

std::thread_local! {
    static ME: SlotOwner = {
        let slot = std::sync::Arc::new(Slot { id: NEXT_ID.fetch_add(1, Ordering::Relaxed), blocked: Mutex::new(None) });
        registry().lock().insert(slot.id, std::sync::Arc::downgrade(&slot));
        SlotOwner(slot)
    };
}

/// A handle to a thread, for [`cancel_synchronous_io`]. Cheap to clone and
/// send; it does not keep the thread alive.
#[derive(Clone)]
pub struct ThreadHandle {
    id: u64,
    slot: std::sync::Weak<Slot>,
}

impl ThreadHandle {
    /// The calling thread (`GetCurrentThread` duplicated into a real handle).
    pub fn current() -> ThreadHandle {
        ME.with(|m| ThreadHandle {
            id: m.0.id,
            slot: std::sync::Arc::downgrade(&m.0),
        })
    }

    /// The raw id, for the Win32-shaped layer.
    pub fn raw(&self) -> u64 {
        self.id
    }

    /// True while the thread has not exited.
    pub fn is_alive(&self) -> bool {
        self.slot.strong_count() > 0
    }
}

impl fmt::Debug for ThreadHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "ThreadHandle({}{})",
            self.id,
            if self.is_alive() { "" } else { ", exited" }
        )
    }
}

/// The registration of one blocking call on the current thread; dropping it
/// ends the registration.
pub struct BlockingCall {
    slot: std::sync::Arc<Slot>,
    call: u64,
    cancelled: Arc<std::sync::atomic::AtomicBool>,
    /// Held while the call is being issued ([`BlockingCall::issue`]) and
    /// while a canceller runs, so a cancel sees the call either not yet
    /// issued (it then never is) or issued and cancellable.
    gate: Arc<Mutex<()>>,
}

impl BlockingCall {
    /// Registers the current thread as blocked in a call that `canceller`
    /// interrupts. Nested blocking calls are not supported: the inner one
    /// replaces the outer registration until it ends.
    pub fn enter(canceller: impl Fn() + Send + Sync + 'static) -> BlockingCall {
        let slot = ME.with(|m| m.0.clone());
        let call = NEXT_CALL.fetch_add(1, Ordering::Relaxed);
        let cancelled = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let gate = Arc::new(Mutex::new(()));
        *slot.blocked.lock() = Some(Blocked {
            call,
            cancelled: cancelled.clone(),
            canceller: Arc::new(canceller),
            gate: gate.clone(),
        });
        BlockingCall {
            slot,
            call,
            cancelled,
            gate,
        }
    }

    /// Issues the call's operation with `issue`, unless it was cancelled
    /// first (→ `Err(OPERATION_ABORTED)`, `issue` not run). A cancel that
    /// comes while `issue` runs waits for it to return before its canceller
    /// runs, so the canceller finds the operation in flight (or already
    /// finished): a call cancelled before it was issued can never go on to
    /// take data that arrived after `cancel_synchronous_io` returned.
    /// `issue` must not block for long (it submits; it does not wait for
    /// the operation's completion).
    pub fn issue<R>(&self, issue: impl FnOnce() -> R) -> Result<R, Win32Error> {
        crate::parker::flush_current();
        let _g = self.gate.lock();
        self.check()?;
        Ok(issue())
    }

    /// True once `cancel_synchronous_io` was called for this call: the
    /// blocking call must stop and return `ERROR_OPERATION_ABORTED`.
    pub fn cancelled(&self) -> bool {
        self.cancelled.load(std::sync::atomic::Ordering::Acquire)
    }

    /// `Err(OPERATION_ABORTED)` if cancelled, else `Ok(())`.
    pub fn check(&self) -> Result<(), Win32Error> {
        if self.cancelled() {
            Err(Win32Error::OPERATION_ABORTED)
        } else {
            Ok(())
        }
    }
}

impl Drop for BlockingCall {
    fn drop(&mut self) {
        let mut b = self.slot.blocked.lock();
        if b.as_ref().is_some_and(|x| x.call == self.call) {
            *b = None;
        }
    }
}

impl fmt::Debug for BlockingCall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BlockingCall")
            .field("thread", &self.slot.id)
            .field("cancelled", &self.cancelled())
            .finish()
    }
}

/// `CancelSynchronousIo` (rule 7): cancels the blocking call `thread` is in
/// now; that call returns `ERROR_OPERATION_ABORTED`. Nothing blocked (or the
/// thread has exited) → `ERROR_NOT_FOUND`. Never waits; never touches the
/// thread's overlapped operations.
pub fn cancel_synchronous_io(thread: &ThreadHandle) -> Result<(), Win32Error> {
    let Some(slot) = thread.slot.upgrade() else {
        return Err(Win32Error::NOT_FOUND);
    };
    cancel_slot(&slot)
}

/// `CancelSynchronousIo` by raw thread id (the Win32-shaped layer): an id that
/// names no thread tpio knows is `ERROR_INVALID_HANDLE`.
pub fn cancel_synchronous_io_raw(raw: u64) -> Result<(), Win32Error> {
    let slot = registry().lock().get(&raw).and_then(|w| w.upgrade());
    match slot {
        Some(s) => cancel_slot(&s),
        None => Err(Win32Error::INVALID_HANDLE),
    }
}

fn cancel_slot(slot: &Slot) -> Result<(), Win32Error> {
    let (canceller, gate) = {
        let b = slot.blocked.lock();
        match b.as_ref() {
            Some(x) if !x.cancelled.load(std::sync::atomic::Ordering::Acquire) => {
                x.cancelled
                    .store(true, std::sync::atomic::Ordering::Release);
                (x.canceller.clone(), x.gate.clone())
            }
            _ => return Err(Win32Error::NOT_FOUND),
        }
    };
    // Waits for an issue in progress (see `BlockingCall::issue`): after it,
    // the operation is in flight where the canceller finds it.
    let _g = gate.lock();
    canceller();
    Ok(())
}
