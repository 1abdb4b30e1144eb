#![allow(missing_debug_implementations)]
//! Shared instruments for the conformance and property tests: a recorder
//! that is an `IoCallback` and remembers everything it was told, and a
//! harness that issues operations on the simulated driver with the full
//! Win32 protocol.
//!
//! Tests wait on conditions with generous time-outs; nothing here sleeps.

pub mod parker_rig;

use parking_lot::{Condvar, Mutex};
use std::sync::Arc;
use std::thread::ThreadId;
use std::time::{Duration, Instant};
use tpio_core::driver::{
    settle, Driver, HandleKind, HandleOps, IssueOutcome, Issued, OpKind, RawHandle, Submission,
};
use tpio_core::sim::SimDriver;
use tpio_core::{
    CallbackEnvironment, CallbackInstance, Completion, Discard, IoCallback, IoObject, Pool,
    Win32Error,
};

/// A generous bound for "this must happen": far above any healthy latency.
pub const PATIENCE: Duration = Duration::from_secs(20);

/// One thing the recorder saw.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Seen {
    /// A callback ran.
    Callback {
        /// What it reported.
        c: Completion,
        /// On which thread.
        thread: ThreadId,
        /// That thread's name.
        thread_name: Option<String>,
    },
    /// A packet was discarded.
    Discarded(Completion, Discard),
    /// The object was released.
    Released,
}

/// Records callbacks, discards and releases; lets tests wait for them.
#[derive(Default)]
pub struct Recorder {
    seen: Mutex<Vec<Seen>>,
    cv: Condvar,
    /// Runs inside each callback (after recording), if set.
    #[allow(clippy::type_complexity)]
    pub hook: Mutex<Option<Arc<dyn Fn(&mut CallbackInstance<'_>, Completion) + Send + Sync>>>,
}

impl Recorder {
    /// A new, empty recorder.
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Everything seen so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().clone()
    }

    /// The completions the callbacks received, in order.
    pub fn callbacks(&self) -> Vec<Completion> {
        self.seen
            .lock()
            .iter()
            .filter_map(|s| match *s {
                Seen::Callback { c, .. } => Some(c),
                _ => None,
            })
            .collect()
    }

    /// The discards, in order.
    pub fn discards(&self) -> Vec<(Completion, Discard)> {
        self.seen
            .lock()
            .iter()
            .filter_map(|s| match *s {
                Seen::Discarded(c, d) => Some((c, d)),
                _ => None,
            })
            .collect()
    }

    /// How many times the object was released.
    pub fn releases(&self) -> usize {
        self.seen
            .lock()
            .iter()
            .filter(|s| matches!(s, Seen::Released))
            .count()
    }

    /// Waits until `cond` holds over what was seen; false after `PATIENCE`.
    pub fn wait_until(&self, cond: impl Fn(&[Seen]) -> bool) -> bool {
        let deadline = Instant::now() + PATIENCE;
        let mut g = self.seen.lock();
        while !cond(&g) {
            if self.cv.wait_until(&mut g, deadline).timed_out() {
                return cond(&g);
            }
        }
        true
    }

    /// Waits until at least `n` callbacks ran.
    pub fn wait_callbacks(&self, n: usize) -> bool {
        self.wait_until(|s| {
            s.iter()
                .filter(|x| matches!(x, Seen::Callback { .. }))
                .count()
                >= n
        })
    }

    fn push(&self, s: Seen) {
        self.seen.lock().push(s);
        self.cv.notify_all();
    }

    /// The recorder as an object's callback.
    pub fn callback(self: &Arc<Self>) -> RecorderCallback {
        RecorderCallback(self.clone())
    }
}

/// The `IoCallback` side of a [`Recorder`].
pub struct RecorderCallback(Arc<Recorder>);

impl IoCallback for RecorderCallback {
    fn complete(&self, inst: &mut CallbackInstance<'_>, c: Completion) {
        let t = std::thread::current();
        self.0.push(Seen::Callback {
            c,
            thread: t.id(),
            thread_name: t.name().map(String::from),
        });
        let hook = self.0.hook.lock().clone();
        if let Some(h) = hook {
            h(inst, c);
        }
    }
    fn discard(&self, c: Completion, reason: Discard) {
        self.0.push(Seen::Discarded(c, reason));
    }
    fn released(&self) {
        self.0.push(Seen::Released);
    }
}

/// One TP_IO object on the simulated driver, with its recorder.
pub struct Harness {
    /// The pool its callbacks run on.
    pub pool: Pool,
    /// The simulated driver.
    pub driver: Arc<SimDriver>,
    /// The simulated handle's in-flight table.
    pub ops: Arc<HandleOps>,
    /// The object (None after `close`).
    pub io: Option<IoObject>,
    /// What it saw.
    pub rec: Arc<Recorder>,
}

impl Harness {
    /// A harness on a private pool with real workers.
    pub fn new(name: &str) -> Self {
        Self::with_env(Pool::new(name), |e| e)
    }

    /// A harness on a manual (test-pumped) pool.
    pub fn manual(name: &str) -> Self {
        Self::with_env(Pool::new_manual(name), |e| e)
    }

    /// A harness on `pool`, with the environment adjusted by `f`.
    pub fn with_env(
        pool: Pool,
        f: impl FnOnce(CallbackEnvironment) -> CallbackEnvironment,
    ) -> Self {
        let rec = Recorder::new();
        let env = f(CallbackEnvironment::new().pool(&pool));
        let io = IoObject::new(&env, 0, rec.callback());
        Harness {
            pool,
            driver: Arc::new(SimDriver::new()),
            ops: Arc::new(HandleOps::new()),
            io: Some(io),
            rec,
        }
    }

    /// The object (panics after close: a test bug).
    pub fn io(&self) -> &IoObject {
        self.io.as_ref().expect("object already closed by the test")
    }

    /// `StartThreadpoolIo` + an issuing call that reports `issued` at once (the
    /// driver's answer), then rule 2. Does not cancel: the test does, as a
    /// Win32 caller would.
    pub fn issue(
        &self,
        overlapped: usize,
        issued: Issued,
        skip_on_success: bool,
    ) -> Result<IssueOutcome, Win32Error> {
        self.io().start()?;
        if issued != Issued::Pending {
            self.driver.script_next(issued);
        }
        let sub = Submission {
            handle: RawHandle(1),
            handle_kind: HandleKind::File,
            kind: OpKind::Read { offset: Some(0) },
            buf: std::ptr::null_mut(),
            len: 0,
            addr: std::ptr::null_mut(),
            overlapped,
            ops: self.ops.clone(),
            thread: std::thread::current().id(),
            skip_on_success: false,
        };
        // Through the watched path the facade uses (a lost packet would be
        // diagnosed), so every core test exercises it too.
        let got = self.io().issue_with(overlapped, |target| {
            // SAFETY: the simulated driver touches no buffer.
            unsafe { self.driver.submit(sub, target) }
        });
        settle(got, Some(self.io().target()), overlapped, skip_on_success)
    }

    /// Issues a pending operation and returns the driver's key for it.
    pub fn issue_pending(&self, overlapped: usize) -> u64 {
        assert_eq!(
            self.issue(overlapped, Issued::Pending, false),
            Ok(IssueOutcome::Pending)
        );
        self.driver.key_of(overlapped).expect("in flight")
    }

    /// Closes the object.
    pub fn close(&mut self) {
        self.io.take().expect("closed twice").close();
    }
}

/// A completion value, for brevity.
pub fn done(overlapped: usize, status: Win32Error, bytes: usize) -> Completion {
    Completion {
        overlapped,
        status,
        bytes,
    }
}
