//! The core's synchronisation primitives, in one place.
//!
//! Owns the choice between `parking_lot`/`std` (normal builds) and `loom`
//! (`RUSTFLAGS="--cfg loom"`, for model checking). Every lock, condition
//! variable, atomic and shared pointer the core uses comes from here, so a
//! model checker sees all of them, and every thread-local too
//! ([`thread_local_cell!`]): loom runs its threads as coroutines on one OS
//! thread, so a `std` thread-local would be shared by all of a model's
//! threads. This module must never grow logic of its own: it only adapts
//! APIs so both sides look like `parking_lot` and `std`.
//!
//! What does not run under loom, by design: worker threads (models use
//! `Pool::new_manual`), timed waits (a timed wait is an untimed one that may
//! return early, below), and the process-wide default pool (models give
//! every object an explicit pool).

#[cfg(not(loom))]
mod imp {
    pub use parking_lot::{Condvar, Mutex, MutexGuard};
    pub use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
    pub use std::sync::Arc;
    pub use std::thread;
}

#[cfg(loom)]
mod imp {
    pub use loom::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
    pub use loom::sync::Arc;
    pub use loom::thread;

    /// `loom`'s mutex with `parking_lot`'s signature (no poisoning).
    #[derive(Debug, Default)]
    pub struct Mutex<T>(loom::sync::Mutex<T>);

    /// Guard of [`Mutex`]; holds an `Option` so [`Condvar::wait`] can move it.
    #[derive(Debug)]
    pub struct MutexGuard<'a, T>(Option<loom::sync::MutexGuard<'a, T>>);

    impl<T> Mutex<T> {
        pub fn new(t: T) -> Self {
            Mutex(loom::sync::Mutex::new(t))
        }
        pub fn lock(&self) -> MutexGuard<'_, T> {
            MutexGuard(Some(self.0.lock().unwrap_or_else(|e| e.into_inner())))
        }
    }

    impl<T> std::ops::Deref for MutexGuard<'_, T> {
        type Target = T;
        fn deref(&self) -> &T {
            self.0.as_ref().expect("guard present")
        }
    }
    impl<T> std::ops::DerefMut for MutexGuard<'_, T> {
        fn deref_mut(&mut self) -> &mut T {
            self.0.as_mut().expect("guard present")
        }
    }

    /// `loom`'s condition variable with `parking_lot`'s signature.
    #[derive(Debug, Default)]
    pub struct Condvar(loom::sync::Condvar);

    /// What `wait_for` returns, as in `parking_lot`.
    #[derive(Debug)]
    pub struct WaitTimeoutResult(bool);
    impl WaitTimeoutResult {
        pub fn timed_out(&self) -> bool {
            self.0
        }
    }

    impl Condvar {
        pub fn new() -> Self {
            Condvar(loom::sync::Condvar::new())
        }
        pub fn wait<T>(&self, g: &mut MutexGuard<'_, T>) {
            let inner = g.0.take().expect("guard present");
            g.0 = Some(self.0.wait(inner).unwrap_or_else(|e| e.into_inner()));
        }
        /// loom has no time: a timed wait is an untimed wait that may also
        /// return spuriously, which every caller must tolerate anyway.
        pub fn wait_for<T>(
            &self,
            g: &mut MutexGuard<'_, T>,
            _d: std::time::Duration,
        ) -> WaitTimeoutResult {
            self.wait(g);
            WaitTimeoutResult(false)
        }
        pub fn notify_one(&self) -> bool {
            self.0.notify_one();
            true
        }
        pub fn notify_all(&self) -> usize {
            self.0.notify_all();
            0
        }
    }
}

pub(crate) use imp::*;

/// Declares a thread-local `Cell`-like value: `std::thread_local!` with a
/// `const` initialiser normally, `loom::thread_local!` under loom (where each
/// model thread must see its own value).
#[cfg(not(loom))]
macro_rules! thread_local_cell {
    ($(#[$m:meta])* static $name:ident: $t:ty = $init:expr;) => {
        std::thread_local! { $(#[$m])* static $name: $t = const { $init }; }
    };
}

#[cfg(loom)]
macro_rules! thread_local_cell {
    ($(#[$m:meta])* static $name:ident: $t:ty = $init:expr;) => {
        loom::thread_local! { $(#[$m])* static $name: $t = $init; }
    };
}

pub(crate) use thread_local_cell;
