//! Fault injection at the driver's system-call boundaries, for tests only.
//!
//! Owns two hooks, each where the kernel's answer enters this crate, and
//! the plan that arms them:
//!
//! | hook | where | what the plan makes it report |
//! | --- | --- | --- |
//! | try | every non-blocking try of a pipe or socket operation (`read`/`recv`/`send`/`accept`/…): at issue, and again on readiness | `errno` without making the call (so no data moves); `EAGAIN` is "would block" |
//! | register | registering a descriptor with a `mio` poll (`epoll_ctl`/`kevent`), or widening its interest | `errno` without the call |
//!
//! Without the cargo feature `fault-injection` the hooks are empty inline
//! functions and this module has no public items: a normal build carries
//! none of it. With the feature, [`Faults`] is the plan. It applies to the
//! drivers (and their workers' polls) made while it is armed; one plan is
//! armed at a time in a process (arming waits for the previous one to be
//! dropped), so tests that inject run one at a time. The feature is enabled
//! only by the `tpio-tests` package (`tests/Cargo.toml`).
//!
//! An injected "would block" makes an operation wait for readiness. At
//! issue that is always safe (a descriptor that is ready when registered is
//! reported at once); on a retry after readiness it is not a fault the
//! kernel makes (edge-triggered readiness would not come again for data
//! already there), so tests inject `EAGAIN` only into the try at issue.
//!
//! This module must never change what a hook reports when no plan is
//! armed.

#[cfg(feature = "fault-injection")]
pub use plan::*;

#[cfg(feature = "fault-injection")]
mod plan {
    use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU32, AtomicU64, Ordering};
    use std::sync::{Condvar, Mutex};

    /// A count that never runs out (until the plan is cleared or
    /// dropped): a persistent fault.
    pub const FOREVER: u32 = u32::MAX;

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
            self.left
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| match n {
                    0 => None,
                    FOREVER => Some(FOREVER),
                    n => Some(n - 1),
                })
                .ok()?;
            self.hits.fetch_add(1, Ordering::SeqCst);
            Some(self.errno.load(Ordering::SeqCst))
        }

        fn reset(&self) {
            self.left.store(0, Ordering::SeqCst);
            self.hits.store(0, Ordering::SeqCst);
        }
    }

    static ARMED: AtomicBool = AtomicBool::new(false);
    /// Which plan is armed (bumped by each [`Faults::arm`]).
    static GENERATION: AtomicU64 = AtomicU64::new(0);
    static TRY: Point = Point::new();
    static REGISTER: Point = Point::new();
    static TAKEN: Mutex<bool> = Mutex::new(false);
    static FREED: Condvar = Condvar::new();

    /// How many times each hook has injected since the plan was armed.
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub struct Hits {
        /// Non-blocking tries that failed.
        pub try_now: u64,
        /// Registrations that failed.
        pub register: u64,
    }

    /// The armed fault plan of this process. See the [module docs](self).
    ///
    /// ```
    /// # #[cfg(unix)] {
    /// use tpio_mio::faults::Faults;
    /// let f = Faults::arm();
    /// f.register_errno(libc::ENOSPC, 1); // the next registration fails
    /// assert_eq!(f.hits().register, 0);
    /// drop(f);
    /// # }
    /// ```
    #[derive(Debug)]
    pub struct Faults {
        _token: (),
    }

    impl Faults {
        /// Arms an empty plan, waiting while another is armed (in this
        /// process); it applies to the drivers made from now on. Dropping
        /// the result disarms every hook.
        pub fn arm() -> Faults {
            let mut taken = TAKEN.lock().unwrap_or_else(|e| e.into_inner());
            while *taken {
                taken = FREED.wait(taken).unwrap_or_else(|e| e.into_inner());
            }
            *taken = true;
            TRY.reset();
            REGISTER.reset();
            GENERATION.fetch_add(1, Ordering::SeqCst);
            ARMED.store(true, Ordering::SeqCst);
            Faults { _token: () }
        }

        /// The next `times` non-blocking tries fail with `errno`
        /// (`EAGAIN`: would block) without calling the kernel.
        pub fn try_errno(&self, errno: i32, times: u32) -> &Self {
            TRY.set(errno, times);
            self
        }

        /// The next `times` registrations of a descriptor with a poll fail
        /// with `errno` ([`FOREVER`]: until cleared).
        pub fn register_errno(&self, errno: i32, times: u32) -> &Self {
            REGISTER.set(errno, times);
            self
        }

        /// Stops every fault that is left (the hit counts stay).
        pub fn clear(&self) {
            TRY.left.store(0, Ordering::SeqCst);
            REGISTER.left.store(0, Ordering::SeqCst);
        }

        /// How many faults each hook has injected since [`Faults::arm`].
        pub fn hits(&self) -> Hits {
            Hits {
                try_now: TRY.hits.load(Ordering::SeqCst),
                register: REGISTER.hits.load(Ordering::SeqCst),
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

    /// The plan a driver made now belongs to (0: none).
    pub(crate) fn generation() -> u64 {
        if ARMED.load(Ordering::SeqCst) {
            GENERATION.load(Ordering::SeqCst)
        } else {
            0
        }
    }

    fn applies(scope: u64) -> bool {
        scope != 0 && ARMED.load(Ordering::Relaxed) && GENERATION.load(Ordering::Relaxed) == scope
    }

    pub(crate) fn try_hook(scope: u64) -> Option<i32> {
        applies(scope).then(|| TRY.take()).flatten()
    }

    pub(crate) fn register_hook(scope: u64) -> Option<i32> {
        applies(scope).then(|| REGISTER.take()).flatten()
    }
}

/// Which plan a driver (and what it makes) belongs to: the one armed when
/// it was made (nothing, and no size, without the feature).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Scope {
    #[cfg(feature = "fault-injection")]
    generation: u64,
}

impl Scope {
    /// The scope of something made now.
    #[inline(always)]
    pub(crate) fn now() -> Scope {
        Scope {
            #[cfg(feature = "fault-injection")]
            generation: plan::generation(),
        }
    }
}

/// The try hook: `Some(errno)` when the plan says this non-blocking call
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

/// The register hook: runs `register` unless the plan says it fails.
#[inline(always)]
pub(crate) fn register(
    scope: Scope,
    register: impl FnOnce() -> std::io::Result<()>,
) -> std::io::Result<()> {
    #[cfg(feature = "fault-injection")]
    if let Some(errno) = plan::register_hook(scope.generation) {
        return Err(std::io::Error::from_raw_os_error(errno));
    }
    let _ = scope;
    register()
}
