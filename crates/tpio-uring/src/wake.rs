//! Unblocking a waiting reaper from another thread.
//!
//! Owns the wake-up mechanism: [`crate::Ring::wake`] makes the reaper's
//! current wait return, or its next one if it is not waiting. Wake-ups are
//! coalesced: while one is in flight (posted but not yet reaped), further
//! calls are free. This module must never report a wake-up as a user
//! completion, and must never lose one (a wake before the wait still ends
//! the wait).
//!
//! Two mechanisms, chosen with [`crate::RingBuilder::wake_mode`]
//! ([`crate::SubmitMode::Owner`] always uses the eventfd, since a NOP would
//! make the waker submit everyone's queued operations):
//!
//! * [`WakeMode::Nop`] (the default): the waker pushes an internal NOP and
//!   submits it. The NOP completes inline in the waker's `io_uring_enter`,
//!   which posts the CQE and wakes the CQ waiter directly. Cost: the SQ lock
//!   and one syscall on the waker; no fd, nothing to re-arm.
//! * [`WakeMode::EventFd`]: the ring keeps a read armed on an eventfd; the
//!   waker `write(2)`s to it, never touching the SQ lock. The read completes
//!   through the poll machinery and task work of the reaper thread, then the
//!   reaper re-arms it. One syscall on the waker, a re-arm SQE per wake on
//!   the reaper, and a longer path in the kernel. The read is armed by the
//!   reaper (when the role is first taken, and after each completion), so
//!   it belongs to the reaper thread and does not die with the builder's.
//!
//! Measured on the project's 2-core (shared, noisy) machine with `cargo run
//! --release -p tpio-uring --example wake_latency` (best of 3 interleaved
//! passes, reaper blocked on its own thread): the wake round trip was
//! 4.8–7.3 µs with NOP and 4.8–10.6 µs with the eventfd over four runs, i.e.
//! the same within the noise; a `wake()` while one is already in flight
//! costs ~0.01 µs either way (coalesced). NOP is the default because it
//! needs no fd and no re-arm SQE per wake, and its completion does not
//! depend on task work of the thread that armed a read (an eventfd read
//! armed by a reaper thread that has since exited is cancelled, and must be
//! re-armed). The eventfd is the mechanism when the waker must not enter
//! the kernel with submissions ([`crate::SubmitMode::Owner`]).

use std::cell::UnsafeCell;
use std::os::fd::{FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};

/// How [`crate::Ring::wake`] reaches a blocked reaper.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum WakeMode {
    /// Submit an internal `IORING_OP_NOP`.
    #[default]
    Nop,
    /// Write to an eventfd that the ring keeps a read armed on.
    EventFd,
}

/// The 8 bytes the armed eventfd read writes into. Only the kernel writes
/// it and nobody reads it; it lives in a Box so its address is stable, and
/// the ring outlives every read into it (the ring's drop drains in-flight
/// operations before freeing it).
pub(crate) struct KernelBuf(Box<UnsafeCell<u64>>);

// SAFETY: userspace never reads or writes the cell after creation; only the
// kernel writes it, through a pointer taken once. Sharing the handle between
// threads shares nothing that Rust code accesses.
unsafe impl Sync for KernelBuf {}
// SAFETY: as above; moving the Box does not move the heap cell.
unsafe impl Send for KernelBuf {}

impl KernelBuf {
    pub(crate) fn as_mut_ptr(&self) -> *mut u8 {
        self.0.get().cast::<u8>()
    }
}

/// The wake state of one ring.
pub(crate) struct Wake {
    pub(crate) mode: WakeMode,
    /// A wake-up has been posted and not yet reaped.
    pub(crate) pending: AtomicBool,
    /// The eventfd, in [`WakeMode::EventFd`].
    pub(crate) eventfd: Option<OwnedFd>,
    pub(crate) buf: KernelBuf,
    /// The eventfd read is in flight.
    pub(crate) armed: AtomicBool,
}

impl Wake {
    pub(crate) fn new(mode: WakeMode) -> std::io::Result<Wake> {
        let eventfd = match mode {
            WakeMode::Nop => None,
            WakeMode::EventFd => {
                // Blocking mode, so the armed read waits whatever the
                // kernel's policy on O_NONBLOCK files (current kernels
                // poll-arm either way; see tests/lifetime.rs).
                // SAFETY: plain syscall with no pointers.
                let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC) };
                if fd < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                // SAFETY: eventfd returned a fresh fd that nothing else owns.
                Some(unsafe { OwnedFd::from_raw_fd(fd) })
            }
        };
        Ok(Wake {
            mode,
            pending: AtomicBool::new(false),
            eventfd,
            buf: KernelBuf(Box::new(UnsafeCell::new(0))),
            armed: AtomicBool::new(false),
        })
    }

    /// Claims the right to post a wake-up; false if one is already in flight.
    pub(crate) fn claim(&self) -> bool {
        !self.pending.swap(true, Ordering::AcqRel)
    }

    /// Called by the reaper when it reaps a wake-up, before it returns.
    /// True if a [`crate::Ring::wake`] was pending (the eventfd also carries
    /// submit requests in [`crate::SubmitMode::Owner`], which are not wake-ups).
    pub(crate) fn consumed(&self) -> bool {
        self.pending.swap(false, Ordering::AcqRel)
    }
}
