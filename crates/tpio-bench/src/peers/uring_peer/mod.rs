//! Plain io_uring (the `io-uring` crate, no tpio): the ceilings tpio is
//! measured against. One file per workload.
//!
//! Every loop here reaps all it submitted before it returns, so no buffer
//! is freed under the kernel; buffers live in a [`KernelBufs`], which leaks
//! them if a loop returns early with operations still in flight.

pub mod cancel;
pub mod echo;
pub mod reads;

/// Buffers the kernel may still write: dropped normally once the owner
/// says every operation on them was reaped ([`all_reaped`](Self::all_reaped)),
/// leaked otherwise (an error return with reads in flight).
pub(crate) struct KernelBufs<T> {
    inner: Option<T>,
    reaped: bool,
}

impl<T> KernelBufs<T> {
    pub(crate) fn new(t: T) -> Self {
        KernelBufs {
            inner: Some(t),
            reaped: false,
        }
    }

    /// Every operation on these buffers has completed: they may be freed.
    pub(crate) fn all_reaped(&mut self) {
        self.reaped = true;
    }
}

impl<T> std::ops::Deref for KernelBufs<T> {
    type Target = T;
    fn deref(&self) -> &T {
        self.inner.as_ref().expect("taken only on drop")
    }
}

impl<T> std::ops::DerefMut for KernelBufs<T> {
    fn deref_mut(&mut self) -> &mut T {
        self.inner.as_mut().expect("taken only on drop")
    }
}

impl<T> Drop for KernelBufs<T> {
    fn drop(&mut self) {
        if !self.reaped {
            std::mem::forget(self.inner.take());
        }
    }
}
