//! The safe layer's per-operation memory: [`Op`], one box per operation
//! holding the buffer, the caller's tag, the socket address (only for the
//! operations that have one) and a reference to the handle (so the fd
//! outlives the operation). The box's address is the operation's
//! OVERLAPPED identity.
//!
//! Owns the life of those boxes: [`Op::leak`] hands one to the kernel's
//! side, [`Op::reclaim`] takes it back exactly once. Boxes (and the
//! socket-address boxes of datagram and connection operations) are recycled
//! through small per-thread free lists, so an operation issued from a
//! callback (the TP_IO pattern) allocates nothing: the box freed by the
//! completion that ran the callback is the one the next issue takes. It
//! must never hand one box to two owners, and never recycle a box whose
//! operation the kernel may still touch.

use std::cell::RefCell;
use std::mem::MaybeUninit;
use std::net::SocketAddr;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::sync::Arc;

use tpio_core::driver::AddrBuf;
use tpio_core::Win32Error;

use crate::addr::from_addr_buf;
use crate::handle::HandleCore;
use crate::threadpool_io::{Done, OverlappedId};

/// Boxes kept per thread for reuse.
const CACHE: usize = 64;

type Slot = Box<MaybeUninit<Op>>;

thread_local! {
    static FREE: RefCell<Vec<Slot>> = const { RefCell::new(Vec::new()) };
    // Boxes on purpose: the allocations themselves are what is recycled.
    #[allow(clippy::vec_box)]
    static FREE_ADDRS: RefCell<Vec<Box<AddrBuf>>> = const { RefCell::new(Vec::new()) };
}

/// A boxed socket address for an operation, from the per-thread free list
/// when it has one.
pub(crate) fn addr_box(a: AddrBuf) -> Box<AddrBuf> {
    match FREE_ADDRS.try_with(|f| f.borrow_mut().pop()).ok().flatten() {
        Some(mut b) => {
            *b = a;
            b
        }
        None => Box::new(a),
    }
}

fn recycle_addr(b: Box<AddrBuf>) {
    let _ = FREE_ADDRS.try_with(|f| {
        let mut f = f.borrow_mut();
        if f.len() < CACHE {
            f.push(b);
            None
        } else {
            Some(b)
        }
    });
}

/// One operation's memory, owned by the kernel's side from issue to final
/// completion.
pub(crate) struct Op {
    pub(crate) tag: u64,
    pub(crate) buf: Vec<u8>,
    /// For `recv_from`, `send_to`, `accept`, `connect` only.
    pub(crate) addr: Option<Box<AddrBuf>>,
    /// An accept: a success's byte count is the new descriptor.
    pub(crate) accept: bool,
    /// Keeps the fd open until this operation is over.
    pub(crate) handle: Arc<HandleCore>,
}

impl Op {
    /// Moves `self` into a (recycled) box and leaks it: returns its address
    /// (the OVERLAPPED identity) and the address of its socket address
    /// (null when it has none).
    pub(crate) fn leak(mut self) -> (usize, *mut AddrBuf) {
        let ap = self
            .addr
            .as_deref_mut()
            .map_or(std::ptr::null_mut(), |a| a as *mut AddrBuf);
        let slot = FREE
            .try_with(|f| f.borrow_mut().pop())
            .ok()
            .flatten()
            .unwrap_or_else(|| Box::new(MaybeUninit::uninit()));
        let p = Box::into_raw(slot);
        // SAFETY: `p` is a live, unshared allocation for one `Op`; writing
        // initialises it (the slot held no value: it was uninit or read out).
        unsafe { (*p).write(self) };
        // The AddrBuf is its own box: moving `self` did not move it.
        (p as usize, ap)
    }

    /// Takes back the `Op` of a finished operation and recycles its box.
    ///
    /// # Safety
    /// `id` must come from [`Op::leak`], for an operation that is over (its
    /// packet delivered, or it ended at once), and be reclaimed only once.
    pub(crate) unsafe fn reclaim(id: usize) -> Op {
        // SAFETY: the caller's obligations: `id` is a leaked box holding an
        // initialised `Op`, reclaimed this once.
        let slot = unsafe { Box::from_raw(id as *mut MaybeUninit<Op>) };
        // SAFETY: initialised by `leak`; read out exactly once, after which
        // the slot is treated as uninit again.
        let op = unsafe { slot.assume_init_read() };
        let _ = FREE.try_with(|f| {
            let mut f = f.borrow_mut();
            if f.len() < CACHE {
                f.push(slot);
                None
            } else {
                Some(slot)
            }
        });
        op
    }

    /// The socket address, read out; its box goes back to the free list.
    fn take_peer(&mut self) -> Option<SocketAddr> {
        let b = self.addr.take()?;
        let a = from_addr_buf(&b);
        recycle_addr(b);
        a
    }

    /// The callback's view of the finished operation.
    pub(crate) fn into_done(mut self, id: usize, result: Result<usize, Win32Error>) -> Done {
        let addr = self.take_peer();
        let (result, accepted) = match (self.accept, result) {
            (true, Ok(fd)) => {
                // SAFETY: a successful accept's result is a new descriptor
                // that nobody else owns; it is wrapped exactly once.
                let s = unsafe { std::net::TcpStream::from_raw_fd(fd as RawFd) };
                match crate::TcpStream::from_std_on(s, &self.handle.backend) {
                    Ok(t) => (Ok(0), Some(t)),
                    Err(e) => (Err(tpio_core::io_error_to_win32(&e)), None),
                }
            }
            (_, r) => (r, None),
        };
        Done {
            tag: self.tag,
            overlapped: OverlappedId(id),
            result,
            buf: self.buf,
            addr,
            accepted,
        }
    }

    /// The operation is over without a callback: release what it made
    /// (an accepted connection nobody will see is closed).
    pub(crate) fn drop_result(mut self, status: Win32Error, bytes: usize) {
        let _ = self.take_peer();
        if self.accept && status.is_success() {
            // SAFETY: as in `into_done`: the descriptor is new and ours.
            drop(unsafe { OwnedFd::from_raw_fd(bytes as RawFd) });
        }
    }
}
