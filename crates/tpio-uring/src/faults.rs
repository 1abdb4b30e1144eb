//! Fault injection at the driver's system-call boundaries, for tests only.
//!
//! Owns four hooks, each at the one place where the kernel's answer enters
//! this crate, and the plan that arms them:
//!
//! | hook | where | what the plan makes it report |
//! | --- | --- | --- |
//! | SQ full | every push of an entry into a submission queue ([`crate::Ring`]) | "no room", as if the kernel had not taken what is queued yet |
//! | submit | every `io_uring_enter` that submits (also the reaper's waits, which submit) | `-errno` without entering the kernel |
//! | completion | every CQE of a caller's operation, as the reaper takes it | `-errno` in place of the kernel's result |
//! | try | the non-blocking call of the "at once" path (`preadv2`/`recv`/…) | `-errno` without making the call (so no data is consumed) |
//!
//! Without the cargo feature `fault-injection` the hooks are empty inline
//! functions and this module has no public items: a normal build carries
//! none of it. With the feature, [`Faults`] is the plan. It applies to the
//! rings made while it is armed (a driver made after [`Faults::arm`]: its
//! shared ring and the worker rings it makes), so rings left over from
//! earlier work are untouched; one plan is armed at a time in a process
//! (arming waits for the previous one to be dropped), so tests that
//! inject run one at a time. The feature is enabled only by the
//! `tpio-tests` package (`tests/Cargo.toml`); the library's users never
//! see it.
//!
//! This module must never change what a hook reports when no plan is
//! armed, and never inject into a ring's own operations (wake-ups,
//! cancels): the completion hook sees only [`crate::Completion::Op`]s.

#[cfg(feature = "fault-injection")]
pub use plan::*;

#[cfg(feature = "fault-injection")]
mod plan {
    use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU32, AtomicU64, Ordering};
    use std::sync::{Condvar, Mutex};

    /// A count of [`Faults`]'s that never runs out (until the plan is
    /// cleared or dropped): a persistent fault.
    pub const FOREVER: u32 = u32::MAX;

    /// How many submitting `io_uring_enter` calls in a row must fail before
    /// the ring treats the kernel as refusing submissions: from then on a
    /// push that cannot get one more enter through is refused with the
    /// errno ([`crate::SubmitError::Os`]) instead of queueing an entry that
    /// might never go in.
    pub const PERSISTENT_AFTER: u32 = crate::ring::TRANSIENT_RETRIES;

    /// One hook's part of the plan.
    struct Point {
        left: AtomicU32,
        errno: AtomicI32,
        hits: AtomicU64,
    }

    impl Point {
        const fn new() -> Point {
            Point {
                left: AtomicU32::new(0),
                errno: AtomicI32::new(0),
                hits: AtomicU64::new(0),
            }
        }

        fn set(&self, errno: i32, times: u32) {
            self.errno.store(errno, Ordering::SeqCst);
            self.left.store(times, Ordering::SeqCst);
        }

        /// Uses up one fault if any is left; returns its errno.
        fn take(&self) -> Option<i32> {
            let taken = self
                .left
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| match n {
                    0 => None,
                    FOREVER => Some(FOREVER),
                    n => Some(n - 1),
                })
                .is_ok();
            if !taken {
                return None;
            }
            self.hits.fetch_add(1, Ordering::SeqCst);
            Some(self.errno.load(Ordering::SeqCst))
        }

        fn reset(&self) {
            self.left.store(0, Ordering::SeqCst);
            self.hits.store(0, Ordering::SeqCst);
        }
    }

    static ARMED: AtomicBool = AtomicBool::new(false);
    /// Which plan is armed (bumped by each [`Faults::arm`]); a ring made
    /// while one is armed carries its number ([`super::Scope`]).
    static GENERATION: AtomicU64 = AtomicU64::new(0);
    static SQ_FULL: Point = Point::new();
    static SUBMIT: Point = Point::new();
    static COMPLETION: Point = Point::new();
    static TRY: Point = Point::new();
    static TAKEN: Mutex<bool> = Mutex::new(false);
    static FREED: Condvar = Condvar::new();

    /// How many times each hook has injected since the plan was armed.
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub struct Hits {
        /// Pushes that found the SQ "full".
        pub sq_full: u64,
        /// Submitting enters that failed.
        pub submit: u64,
        /// Completions whose result was replaced.
        pub completion: u64,
        /// Non-blocking tries that failed.
        pub try_now: u64,
    }

    /// The armed fault plan of this process. See the [module docs](self).
    ///
    /// ```
    /// # #[cfg(target_os = "linux")] {
    /// use tpio_uring::faults::Faults;
    /// let f = Faults::arm();
    /// f.submit_errno(libc::EAGAIN, 3); // the next three submitting enters fail
    /// assert_eq!(f.hits().submit, 0);
    /// drop(f); // every hook reports the kernel's answer again
    /// # }
    /// ```
    #[derive(Debug)]
    pub struct Faults {
        _token: (),
    }

    impl Faults {
        /// Arms an empty plan, waiting while another is armed (in this
        /// process); it applies to the rings made from now on. Dropping the
        /// result disarms every hook.
        pub fn arm() -> Faults {
            let mut taken = TAKEN.lock().unwrap_or_else(|e| e.into_inner());
            while *taken {
                taken = FREED.wait(taken).unwrap_or_else(|e| e.into_inner());
            }
            *taken = true;
            for p in [&SQ_FULL, &SUBMIT, &COMPLETION, &TRY] {
                p.reset();
            }
            GENERATION.fetch_add(1, Ordering::SeqCst);
            ARMED.store(true, Ordering::SeqCst);
            Faults { _token: () }
        }

        /// The next `times` pushes into the SQ of a ring of this plan find
        /// it full (a finite count: a queue that stays full while the
        /// kernel takes entries does not exist).
        pub fn sq_full(&self, times: u32) -> &Self {
            SQ_FULL.set(0, times.min(FOREVER - 1));
            self
        }

        /// The next `times` submitting `io_uring_enter` calls on rings of
        /// this plan fail with `errno` ([`FOREVER`]: until cleared).
        pub fn submit_errno(&self, errno: i32, times: u32) -> &Self {
            SUBMIT.set(errno, times);
            self
        }

        /// The next `times` completions of callers' operations, on rings of
        /// this plan, report `-errno` instead of the kernel's result.
        pub fn completion_errno(&self, errno: i32, times: u32) -> &Self {
            COMPLETION.set(errno, times);
            self
        }

        /// The next `times` non-blocking tries of the "at once" path, by
        /// drivers of this plan, fail with `errno` without calling the
        /// kernel.
        pub fn try_errno(&self, errno: i32, times: u32) -> &Self {
            TRY.set(errno, times);
            self
        }

        /// Stops every fault that is left (the hit counts stay).
        pub fn clear(&self) {
            for p in [&SQ_FULL, &SUBMIT, &COMPLETION, &TRY] {
                p.left.store(0, Ordering::SeqCst);
            }
        }

        /// How many faults each hook has injected since [`Faults::arm`].
        pub fn hits(&self) -> Hits {
            Hits {
                sq_full: SQ_FULL.hits.load(Ordering::SeqCst),
                submit: SUBMIT.hits.load(Ordering::SeqCst),
                completion: COMPLETION.hits.load(Ordering::SeqCst),
                try_now: TRY.hits.load(Ordering::SeqCst),
            }
        }
    }

    impl Drop for Faults {
        fn drop(&mut self) {
            self.clear();
            ARMED.store(false, Ordering::SeqCst);
            let mut taken = TAKEN.lock().unwrap_or_else(|e| e.into_inner());
            *taken = false;
            FREED.notify_one();
        }
    }

    /// The plan a ring made now belongs to (0: none).
    pub(crate) fn generation() -> u64 {
        if ARMED.load(Ordering::SeqCst) {
            GENERATION.load(Ordering::SeqCst)
        } else {
            0
        }
    }

    /// True when `scope`'s plan is the armed one.
    fn applies(scope: u64) -> bool {
        scope != 0 && ARMED.load(Ordering::Relaxed) && GENERATION.load(Ordering::Relaxed) == scope
    }

    pub(crate) fn sq_full_hook(scope: u64) -> bool {
        applies(scope) && SQ_FULL.take().is_some()
    }

    pub(crate) fn submit_hook(scope: u64) -> Option<i32> {
        applies(scope).then(|| SUBMIT.take()).flatten()
    }

    pub(crate) fn completion_hook(scope: u64) -> Option<i32> {
        applies(scope).then(|| COMPLETION.take()).flatten()
    }

    pub(crate) fn try_hook(scope: u64) -> Option<i32> {
        applies(scope).then(|| TRY.take()).flatten()
    }
}

/// Which plan a ring belongs to: the one armed when it was made (nothing,
/// and no size, without the feature).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Scope {
    #[cfg(feature = "fault-injection")]
    generation: u64,
}

impl Scope {
    /// The scope of a ring made now.
    #[inline(always)]
    pub(crate) fn now() -> Scope {
        Scope {
            #[cfg(feature = "fault-injection")]
            generation: plan::generation(),
        }
    }
}

/// The SQ-full hook: true when the plan says this push finds no room.
#[inline(always)]
pub(crate) fn sq_full(scope: Scope) -> bool {
    #[cfg(feature = "fault-injection")]
    {
        plan::sq_full_hook(scope.generation)
    }
    #[cfg(not(feature = "fault-injection"))]
    {
        let _ = scope;
        false
    }
}

/// The submit hook: runs `enter` (one submitting `io_uring_enter`), unless
/// the plan says it fails with an errno.
#[inline(always)]
pub(crate) fn enter(
    scope: Scope,
    enter: impl FnOnce() -> std::io::Result<usize>,
) -> std::io::Result<usize> {
    #[cfg(feature = "fault-injection")]
    if let Some(errno) = plan::submit_hook(scope.generation) {
        return Err(std::io::Error::from_raw_os_error(errno));
    }
    let _ = scope;
    enter()
}

/// The completion hook: the result a caller's CQE reports.
#[inline(always)]
pub(crate) fn completion(scope: Scope, result: i32) -> i32 {
    #[cfg(feature = "fault-injection")]
    if let Some(errno) = plan::completion_hook(scope.generation) {
        return -errno;
    }
    let _ = scope;
    result
}

/// The try hook: `Some(errno)` when the plan says the non-blocking call
/// fails (the caller then does not make it).
#[inline(always)]
pub(crate) fn try_now(scope: Scope) -> Option<i32> {
    #[cfg(feature = "fault-injection")]
    {
        plan::try_hook(scope.generation)
    }
    #[cfg(not(feature = "fault-injection"))]
    {
        let _ = scope;
        None
    }
}
