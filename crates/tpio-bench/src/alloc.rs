//! A counting global allocator, for W4's "bytes per TP_IO and per
//! outstanding operation": the net bytes allocated by every thread between
//! [`start`] and [`stop`].
//!
//! Owns only the counter. A binary opts in with
//! `#[global_allocator] static A: tpio_bench::alloc::CountingAlloc = tpio_bench::alloc::CountingAlloc;`
//! (the `tpio` command does); without it, [`installed`] is false and W4's
//! memory rows say so. Outside a measurement it costs one relaxed load per
//! allocation. It must never allocate itself, and never change what the
//! system allocator returns.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};

static COUNTING: AtomicBool = AtomicBool::new(false);
static NET: AtomicI64 = AtomicI64::new(0);

/// The system allocator, counting net bytes while a measurement is on.
#[derive(Debug, Clone, Copy, Default)]
pub struct CountingAlloc;

// SAFETY: every method forwards to `System` with the caller's arguments
// unchanged, so `System`'s guarantees are ours; the counter is a side effect
// that allocates nothing.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded unchanged (the caller's obligations are System's).
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() && COUNTING.load(Ordering::Relaxed) {
            NET.fetch_add(layout.size() as i64, Ordering::Relaxed);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded unchanged.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() && COUNTING.load(Ordering::Relaxed) {
            NET.fetch_add(layout.size() as i64, Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if COUNTING.load(Ordering::Relaxed) {
            NET.fetch_sub(layout.size() as i64, Ordering::Relaxed);
        }
        // SAFETY: forwarded unchanged.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded unchanged.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() && COUNTING.load(Ordering::Relaxed) {
            NET.fetch_add(new_size as i64 - layout.size() as i64, Ordering::Relaxed);
        }
        p
    }
}

/// Starts a measurement: the net count restarts at 0.
pub fn start() {
    NET.store(0, Ordering::SeqCst);
    COUNTING.store(true, Ordering::SeqCst);
}

/// Net bytes allocated (by all threads) since [`start`], measurement still on.
pub fn net() -> i64 {
    NET.load(Ordering::SeqCst)
}

/// Ends a measurement and returns its net bytes.
pub fn stop() -> i64 {
    COUNTING.store(false, Ordering::SeqCst);
    NET.load(Ordering::SeqCst)
}

/// Whether [`CountingAlloc`] is this process's global allocator (tried by
/// allocating 4 KiB inside a measurement).
pub fn installed() -> bool {
    start();
    let probe = std::hint::black_box(vec![0u8; 4096]);
    let seen = net();
    drop(probe);
    stop();
    seen >= 4096
}
