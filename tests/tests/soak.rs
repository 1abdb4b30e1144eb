//! Soak: several threads issue random operations on real pipes, Unix and
//! TCP stream pairs and UDP sockets through the safe facade, with random
//! cancels (by OVERLAPPED, by handle, by thread), waits (with and without
//! cancel), skip-completion-on-success handles and closes (a channel is
//! dropped with its operations in flight and replaced), on the backend the
//! process chose (`TPIO_BACKEND`).
//!
//! Every operation is booked before it is issued and checked as it ends:
//! - rule 1: exactly one callback for each operation the issuing call
//!   reported pending and no `wait_for_callbacks(true)` stopped expecting;
//! - rule 2 and 4: no callback for an operation that failed at once, that
//!   completed at once on a skip-mode handle, or that `wait_for_callbacks(true)`
//!   stopped expecting; `wait_for_callbacks(false)` returns only once every
//!   operation issued before it has had its callback;
//! - rule 3/10: every buffer comes back exactly once, at the length it was
//!   issued with — through `Done`, `IoFailed` or `Started::completed_now` —
//!   except those of skipped operations, which the core frees (a counting
//!   allocator checks that no buffer is left alive at the end);
//! - at the end: each object's counts and each handle's in-flight table are
//!   zero, every object was released (its callback dropped), and the pool's
//!   stats show no live object, no misuse and no panicked callback.
//!
//! Nothing sleeps to synchronise; every wait is bounded. The run lasts
//! `TPIO_SOAK_SECS` seconds (default 20: the CI mode); `scripts/soak.sh
//! [seconds]` runs a long one. Totals are printed with `eprintln!` (shown
//! with `--nocapture`). `TPIO_SOAK_SEED` replays a seed.
#![cfg(unix)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, OnceLock, RwLock, Weak};
use std::time::{Duration, Instant};

use tpio::{
    cancel_io, cancel_io_ex, Done, IoFailed, OverlappedHandle, OverlappedId, Pool, Started,
    ThreadpoolIo, Win32Error,
};

const PATIENCE: Duration = Duration::from_secs(30);
const THREADS: usize = 4;
const SLOTS: usize = 12;
/// Operations an end may have outstanding before a thread cancels instead.
const MAX_OUTSTANDING: usize = 16;

// ---- buffers: sizes only the soak uses, counted by the allocator ----

/// Soak buffers have an odd length in this range; the allocator counts
/// live allocations of exactly these sizes.
const BUF_MIN: usize = 3001;
const BUF_MAX: usize = 3999;
static LIVE_BUFFERS: AtomicI64 = AtomicI64::new(0);

fn is_buffer_size(n: usize) -> bool {
    (BUF_MIN..=BUF_MAX).contains(&n) && n % 2 == 1
}

struct CountingAlloc;

// SAFETY: every method forwards to `System` with the caller's arguments
// unchanged; the counting touches only an atomic.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        // SAFETY: forwarded as is (the caller's contract is System's).
        let p = unsafe { System.alloc(l) };
        if !p.is_null() && is_buffer_size(l.size()) {
            LIVE_BUFFERS.fetch_add(1, Relaxed);
        }
        p
    }
    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        // SAFETY: forwarded as is.
        let p = unsafe { System.alloc_zeroed(l) };
        if !p.is_null() && is_buffer_size(l.size()) {
            LIVE_BUFFERS.fetch_add(1, Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        if is_buffer_size(l.size()) {
            LIVE_BUFFERS.fetch_sub(1, Relaxed);
        }
        // SAFETY: forwarded as is.
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        // SAFETY: forwarded as is.
        let q = unsafe { System.realloc(p, l, new) };
        if !q.is_null() {
            if is_buffer_size(l.size()) {
                LIVE_BUFFERS.fetch_sub(1, Relaxed);
            }
            if is_buffer_size(new) {
                LIVE_BUFFERS.fetch_add(1, Relaxed);
            }
        }
        q
    }
}

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

// ---- totals and violations ----

macro_rules! totals {
    ($($name:ident),* $(,)?) => {
        #[derive(Default)]
        struct Totals { $($name: AtomicU64,)* }
        impl Totals {
            fn print(&self) -> String {
                let mut s = String::new();
                $( s += &format!(" {}={}", stringify!($name), self.$name.load(Relaxed)); )*
                s
            }
        }
    };
}

totals!(
    issued,
    issued_by_callbacks,
    awaiting_callback,
    failed_now,
    completed_now_no_callback,
    callbacks,
    cb_ok,
    cb_aborted,
    cb_other,
    handed_back,
    skipped,
    bytes,
    cancel_ov_ok,
    cancel_ov_not_found,
    cancel_all_ok,
    cancel_all_not_found,
    cancel_thread,
    wait_false,
    wait_false_idle,
    wait_true,
    closes,
    channels,
);

static TOTALS: std::sync::LazyLock<Totals> = std::sync::LazyLock::new(Totals::default);
static VIOLATIONS: Mutex<Vec<String>> = Mutex::new(Vec::new());
static STATUSES: Mutex<Vec<(u32, u64)>> = Mutex::new(Vec::new());
/// Books alive: one per end, kept by the end and by its object's callback.
static LIVE_BOOKS: AtomicI64 = AtomicI64::new(0);
/// Callbacks issue follow-up operations while this is set (cleared before
/// the final drain).
static CALLBACKS_ISSUE: AtomicBool = AtomicBool::new(true);

fn bump(c: &AtomicU64) {
    c.fetch_add(1, Relaxed);
}

fn violation(s: String) {
    let mut v = VIOLATIONS.lock().unwrap();
    if v.len() < 50 {
        v.push(s);
    }
}

fn tally(code: u32) {
    let mut st = STATUSES.lock().unwrap();
    match st.iter_mut().find(|(c, _)| *c == code) {
        Some((_, n)) => *n += 1,
        None => st.push((code, 1)),
    }
}

// ---- the book of one end ----

struct OpRec {
    len: usize,
    /// The issuing call has returned and said "a callback will come".
    awaiting: bool,
    callbacks: u32,
}

/// Operations of one end: booked before issue, struck off when they end.
#[derive(Default)]
struct Book {
    open: Mutex<HashMap<u64, OpRec>>,
    /// Operations `wait_for_callbacks(true)` stopped expecting.
    skipped: Mutex<HashSet<u64>>,
}

impl Book {
    fn new() -> Arc<Book> {
        LIVE_BOOKS.fetch_add(1, Relaxed);
        Arc::new(Book::default())
    }

    fn on_callback(&self, d: Done) {
        bump(&TOTALS.callbacks);
        let mut open = self.open.lock().unwrap();
        let Some(rec) = open.get_mut(&d.tag) else {
            drop(open);
            if self.skipped.lock().unwrap().contains(&d.tag) {
                violation(format!(
                    "rule 4: callback for op {} skipped by wait(true)",
                    d.tag
                ));
            } else {
                violation(format!("rule 1: second callback (or unknown op) {}", d.tag));
            }
            return;
        };
        rec.callbacks += 1;
        if rec.callbacks > 1 {
            violation(format!(
                "rule 1: op {} got {} callbacks",
                d.tag, rec.callbacks
            ));
        }
        if d.buf.len() != rec.len {
            violation(format!(
                "rule 10: op {} buffer back at {} not {}",
                d.tag,
                d.buf.len(),
                rec.len
            ));
        }
        match d.result {
            Ok(n) if n <= rec.len => {
                bump(&TOTALS.cb_ok);
                TOTALS.bytes.fetch_add(n as u64, Relaxed);
            }
            Ok(n) => violation(format!(
                "rule 3: op {} moved {n} bytes of {}",
                d.tag, rec.len
            )),
            Err(Win32Error::OPERATION_ABORTED) => bump(&TOTALS.cb_aborted),
            Err(Win32Error::INTERNAL_ERROR) => {
                violation(format!("driver lost the packet of op {}", d.tag))
            }
            Err(e) => {
                bump(&TOTALS.cb_other);
                tally(e.code());
            }
        }
        bump(&TOTALS.handed_back);
        if rec.awaiting {
            open.remove(&d.tag);
        }
    }

    /// Records what the issuing call returned for `tag`.
    fn issued(&self, tag: u64, r: Result<Started, IoFailed>) -> Option<OverlappedId> {
        let mut open = self.open.lock().unwrap();
        let rec = open.get_mut(&tag).expect("booked");
        let (ov, gets_callback, buf_back) = match r {
            Err(f) => {
                bump(&TOTALS.failed_now);
                tally(f.error.code());
                (None, false, Some(f.buf.len()))
            }
            Ok(Started {
                completed_now: Some(d),
                overlapped,
            }) => {
                bump(&TOTALS.completed_now_no_callback);
                (Some(overlapped), false, Some(d.buf.len()))
            }
            Ok(Started {
                overlapped,
                completed_now: None,
            }) => {
                bump(&TOTALS.awaiting_callback);
                (Some(overlapped), true, None)
            }
        };
        if let Some(n) = buf_back {
            bump(&TOTALS.handed_back);
            if n != rec.len {
                violation(format!(
                    "rule 10: op {tag} buffer back at {n} not {}",
                    rec.len
                ));
            }
        }
        if !gets_callback && rec.callbacks > 0 {
            violation(format!(
                "rule 2: op {tag} ended at once and still got a callback"
            ));
        }
        if !gets_callback || rec.callbacks > 0 {
            open.remove(&tag);
        } else {
            rec.awaiting = true;
        }
        ov
    }
}

impl Drop for Book {
    /// The object's callback is gone (the object was released): nothing
    /// can end any more, so whatever is still open lost its callback.
    fn drop(&mut self) {
        let open = self.open.get_mut().unwrap();
        if !open.is_empty() {
            violation(format!(
                "rule 1: {} op(s) never got their callback",
                open.len()
            ));
        }
        LIVE_BOOKS.fetch_sub(1, Relaxed);
    }
}

// ---- ends and channels ----

#[derive(Clone, Copy, Debug)]
enum Kind {
    Pipe,
    Unix,
    Tcp,
    Udp,
}

struct End {
    handle: Box<dyn OverlappedHandle + Send + Sync>,
    io: ThreadpoolIo,
    book: Arc<Book>,
    /// Issuers hold it shared; waits hold it alone, so the operations a
    /// wait is about are exactly those booked when it starts.
    gate: RwLock<()>,
    can_read: bool,
    can_write: bool,
    /// UDP: where `send_to` goes.
    peer: Option<SocketAddr>,
}

/// Which channel and end a callback belongs to, set once the channel is
/// built (the callback must not keep its channel alive).
type Link = Arc<OnceLock<(Weak<Channel>, usize)>>;

impl End {
    fn new(
        h: impl OverlappedHandle + Send + Sync + 'static,
        r: bool,
        w: bool,
        skip: bool,
        link: Link,
    ) -> End {
        h.set_skip_completion_on_success(skip);
        let book = Book::new();
        let b = book.clone();
        let io = ThreadpoolIo::new(&h, None, move |_inst, d| {
            let tag = d.tag;
            b.on_callback(d);
            follow_up(&link, tag);
        })
        .expect("bind");
        End {
            handle: Box::new(h),
            io,
            book,
            gate: RwLock::new(()),
            can_read: r,
            can_write: w,
            peer: None,
        }
    }
}

struct Channel {
    kind: Kind,
    ends: [End; 2],
}

/// From a callback of `link`'s end: now and then (decided by the tag, about
/// one in three) issue another operation on the same end, from the worker.
/// Never while a wait holds the end's gate (that wait may be waiting for
/// this very callback).
fn follow_up(link: &Link, tag: u64) {
    if !CALLBACKS_ISSUE.load(Relaxed) || tag.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 62 != 0 {
        return;
    }
    let Some((ch, i)) = link.get() else { return };
    let Some(ch) = ch.upgrade() else { return };
    let end = &ch.ends[*i];
    let Ok(_g) = end.gate.try_read() else { return };
    bump(&TOTALS.issued_by_callbacks);
    let mut rng = Rng(tag | 1);
    issue_locked(end, &mut rng, &mut Vec::new());
}

fn channel(kind: Kind, rng: &mut Rng) -> Arc<Channel> {
    bump(&TOTALS.channels);
    let links: [Link; 2] = Default::default();
    let link = |i: usize| links[i].clone();
    let mut skip = || rng.below(4) == 0;
    let ends = match kind {
        Kind::Pipe => {
            let (r, w) = tpio::pipe().expect("pipe");
            [
                End::new(r, true, false, skip(), link(0)),
                End::new(w, false, true, skip(), link(1)),
            ]
        }
        Kind::Unix => {
            let (a, b) = tpio::UnixStream::pair().expect("socketpair");
            [
                End::new(a, true, true, skip(), link(0)),
                End::new(b, true, true, skip(), link(1)),
            ]
        }
        Kind::Tcp => {
            let l = tpio::TcpListener::bind("127.0.0.1:0").expect("listen");
            let a = tpio::TcpStream::connect(l.local_addr().unwrap()).expect("connect");
            let (b, _) = l.accept_blocking().expect("accept");
            [
                End::new(a, true, true, skip(), link(0)),
                End::new(b, true, true, skip(), link(1)),
            ]
        }
        Kind::Udp => {
            let a = tpio::UdpSocket::bind("127.0.0.1:0").expect("udp");
            let b = tpio::UdpSocket::bind("127.0.0.1:0").expect("udp");
            let (aa, ba) = (a.local_addr().unwrap(), b.local_addr().unwrap());
            let mut ea = End::new(a, true, true, skip(), link(0));
            let mut eb = End::new(b, true, true, skip(), link(1));
            ea.peer = Some(ba);
            eb.peer = Some(aa);
            [ea, eb]
        }
    };
    let ch = Arc::new(Channel { kind, ends });
    for (i, link) in links.iter().enumerate() {
        let _ = link.set((Arc::downgrade(&ch), i));
    }
    ch
}

// ---- the workers ----

/// xorshift64*: small, deterministic per seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

static NEXT_TAG: AtomicU64 = AtomicU64::new(1);

fn issue(end: &End, rng: &mut Rng, recent: &mut Vec<OverlappedId>) {
    let _g = end.gate.read().unwrap();
    issue_locked(end, rng, recent);
}

/// [`issue`] with the end's gate held shared by the caller.
fn issue_locked(end: &End, rng: &mut Rng, recent: &mut Vec<OverlappedId>) {
    if end.book.open.lock().unwrap().len() >= MAX_OUTSTANDING {
        return cancel_all(end);
    }
    let tag = NEXT_TAG.fetch_add(1, Relaxed);
    let len = BUF_MIN + 2 * rng.below(((BUF_MAX - BUF_MIN) / 2 + 1) as u64) as usize;
    end.book.open.lock().unwrap().insert(
        tag,
        OpRec {
            len,
            awaiting: false,
            callbacks: 0,
        },
    );
    bump(&TOTALS.issued);
    // Now and then the direction the handle lacks (a pipe end): rule 2's
    // failed-at-once path (ACCESS_DENIED, no callback, the buffer back).
    let wrong_way = rng.below(50) == 0;
    let read = if end.can_read && end.can_write {
        rng.below(2) == 0
    } else {
        end.can_read != wrong_way
    };
    let r = match (read, end.peer) {
        (true, None) => end.io.read(vec![0; len], tag),
        (true, Some(_)) => end.io.recv_from(vec![0; len], tag),
        (false, None) => end.io.write(vec![tag as u8; len], tag),
        (false, Some(to)) => end.io.send_to(vec![tag as u8; len], to, tag),
    };
    if let Some(ov) = end.book.issued(tag, r) {
        if recent.len() >= 8 {
            recent.remove(0);
        }
        recent.push(ov);
    }
}

fn cancel_all(end: &End) {
    match cancel_io_ex(&*end.handle, None) {
        Ok(()) => bump(&TOTALS.cancel_all_ok),
        Err(Win32Error::NOT_FOUND) => bump(&TOTALS.cancel_all_not_found),
        Err(e) => violation(format!("rule 6: cancel_io_ex(h, None) gave {e:?}")),
    }
}

/// `wait_for_callbacks(false)`; with `drain` after cancelling everything
/// (so it must go idle), else with a short time-out.
fn wait_false(end: &End, drain: bool) {
    let _g = end.gate.write().unwrap();
    bump(&TOTALS.wait_false);
    if drain {
        cancel_all(end);
    }
    let limit = if drain {
        PATIENCE
    } else {
        Duration::from_millis(2)
    };
    match end.io.wait_for_callbacks_timeout(false, limit) {
        Ok(true) => {
            bump(&TOTALS.wait_false_idle);
            let open = end.book.open.lock().unwrap().len();
            if open != 0 {
                violation(format!(
                    "rule 4: wait(false) returned with {open} op(s) not called back"
                ));
            }
            let c = end.io.counts();
            if c.pending != 0 || c.queued != 0 {
                violation(format!("rule 4: wait(false) returned with counts {c:?}"));
            }
        }
        Ok(false) if drain => violation("rule 4/6: wait(false) after cancel-all hung".into()),
        Ok(false) => {}
        Err(e) => violation(format!("wait(false) gave {e:?}")),
    }
}

fn wait_true(end: &End) {
    let _g = end.gate.write().unwrap();
    bump(&TOTALS.wait_true);
    if let Err(e) = end.io.wait_for_callbacks(true) {
        violation(format!("wait(true) gave {e:?}"));
    }
    let mut open = end.book.open.lock().unwrap();
    let mut skipped = end.book.skipped.lock().unwrap();
    for (tag, rec) in open.drain() {
        if !rec.awaiting || rec.callbacks != 0 {
            violation(format!("soak bookkeeping: op {tag} open during wait(true)"));
        }
        skipped.insert(tag);
        bump(&TOTALS.skipped);
    }
    let c = end.io.counts();
    if c.pending != 0 || c.queued != 0 || c.associated != 0 {
        violation(format!("rule 4: wait(true) returned with counts {c:?}"));
    }
}

fn worker(slots: &[Mutex<Arc<Channel>>], stop: &AtomicBool, seed: u64) {
    let mut rng = Rng(seed | 1);
    let mut recent: Vec<OverlappedId> = Vec::new();
    while !stop.load(Relaxed) {
        let slot = &slots[rng.below(SLOTS as u64) as usize];
        let ch = slot.lock().unwrap().clone();
        let end = &ch.ends[rng.below(2) as usize];
        match rng.below(1000) {
            0..=599 => issue(end, &mut rng, &mut recent),
            600..=699 => match recent.pop() {
                Some(ov) => match cancel_io_ex(&*end.handle, Some(ov)) {
                    Ok(()) => bump(&TOTALS.cancel_ov_ok),
                    Err(Win32Error::NOT_FOUND) => bump(&TOTALS.cancel_ov_not_found),
                    Err(e) => violation(format!("rule 6: cancel_io_ex(h, ov) gave {e:?}")),
                },
                None => issue(end, &mut rng, &mut recent),
            },
            700..=759 => cancel_all(end),
            760..=819 => {
                bump(&TOTALS.cancel_thread);
                if let Err(e) = cancel_io(&*end.handle) {
                    violation(format!("rule 6: cancel_io gave {e:?}"));
                }
            }
            820..=849 => wait_false(end, true),
            850..=869 => wait_false(end, false),
            870..=884 => wait_true(end),
            885..=889 => {
                let kind = [Kind::Pipe, Kind::Unix, Kind::Tcp, Kind::Udp][rng.below(4) as usize];
                *slot.lock().unwrap() = channel(kind, &mut rng);
                bump(&TOTALS.closes);
                recent.clear();
            }
            _ => std::thread::yield_now(),
        }
    }
}

/// Waits until `cond` holds; false after `PATIENCE`.
fn eventually(mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + PATIENCE;
    while !cond() {
        if Instant::now() > deadline {
            return false;
        }
        std::thread::yield_now();
    }
    true
}

/// The end of a run: nothing may be left in flight, counted or alive.
fn drain(ch: Channel) {
    for end in &ch.ends {
        // A callback that saw `CALLBACKS_ISSUE` still set finishes its issue first.
        let _g = end.gate.write().unwrap();
        cancel_all(end);
        if end.io.wait_for_callbacks_timeout(false, PATIENCE) != Ok(true) {
            violation(format!("{:?}: final wait(false) hung", ch.kind));
        }
        // Skipped operations are still in the kernel until cancelled:
        // their packets must arrive too (and be dropped by the core).
        let settled = eventually(|| {
            let c = end.io.counts();
            end.handle.in_flight() == 0 && c.skipped == 0
        });
        let c = end.io.counts();
        if !settled || (c.pending, c.queued, c.running) != (0, 0, 0) {
            violation(format!(
                "{:?}: left in flight {} with counts {c:?}",
                ch.kind,
                end.handle.in_flight()
            ));
        }
    }
}

#[test]
fn soak_random_operations_cancels_waits_and_closes() {
    let backend = match tpio::backend_name() {
        Ok(b) => b,
        Err(e) if std::env::var_os(tpio::BACKEND_ENV).is_none() => {
            eprintln!("soak: no backend on this host ({e}); nothing to soak");
            return;
        }
        Err(e) => panic!("soak: the backend asked for is not available: {e}"),
    };
    let secs: u64 = std::env::var("TPIO_SOAK_SECS")
        .ok()
        .map(|s| s.parse().expect("TPIO_SOAK_SECS: seconds"))
        .unwrap_or(20);
    let seed: u64 = std::env::var("TPIO_SOAK_SEED")
        .ok()
        .map(|s| s.parse().expect("TPIO_SOAK_SEED: a number"))
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
        });
    eprintln!(
        "soak: backend {backend}, {secs} s, {THREADS} threads, {SLOTS} channels, seed {seed}"
    );
    let pool = Pool::default_pool();
    let before = pool.stats();
    let mut rng = Rng(seed | 1);
    let kinds = [Kind::Pipe, Kind::Unix, Kind::Tcp, Kind::Udp];
    let slots: Vec<Mutex<Arc<Channel>>> = (0..SLOTS)
        .map(|i| Mutex::new(channel(kinds[i % 4], &mut rng)))
        .collect();
    let stop = AtomicBool::new(false);
    let t0 = Instant::now();
    std::thread::scope(|s| {
        for t in 0..THREADS {
            let (slots, stop) = (&slots, &stop);
            let seed = seed.wrapping_add((t as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
            s.spawn(move || worker(slots, stop, seed));
        }
        while t0.elapsed() < Duration::from_secs(secs) {
            std::thread::park_timeout(Duration::from_millis(200));
        }
        stop.store(true, Relaxed);
    });
    let ran = t0.elapsed();
    CALLBACKS_ISSUE.store(false, Relaxed);
    for slot in slots {
        let ch = slot.into_inner().unwrap();
        // A callback may hold its channel for a moment (a follow-up).
        if !eventually(|| Arc::strong_count(&ch) == 1) {
            violation("a callback kept its channel".into());
            continue;
        }
        drain(Arc::into_inner(ch).expect("only owner"));
    }
    // Every object is released once its last packet is in: its callback,
    // and with it the book, is dropped.
    if !eventually(|| LIVE_BOOKS.load(Relaxed) == 0) {
        violation(format!(
            "{} object(s) never released",
            LIVE_BOOKS.load(Relaxed)
        ));
    }
    let after = pool.stats();
    let live = after.live_objects() as i64 - before.live_objects() as i64;
    let misuse = after.misuse_total() - before.misuse_total();
    let panicked = after.callbacks_panicked - before.callbacks_panicked;
    let buffers = LIVE_BUFFERS.load(Relaxed);
    eprintln!(
        "soak totals ({backend}, {:.1} s):{}",
        ran.as_secs_f64(),
        TOTALS.print()
    );
    eprintln!(
        "soak: codes other than 0 and 995 (callbacks and failed-now) {:?}; pool: {} objects created, {} callbacks run, {} dropped, {} packets skipped",
        STATUSES.lock().unwrap(),
        after.objects_created - before.objects_created,
        after.callbacks_run - before.callbacks_run,
        after.callbacks_dropped - before.callbacks_dropped,
        after.packets_skipped - before.packets_skipped,
    );
    let v = VIOLATIONS.lock().unwrap().clone();
    assert!(v.is_empty(), "soak: {} violation(s): {v:#?}", v.len());
    assert_eq!(live, 0, "objects left alive: {after:?}");
    assert_eq!(misuse, 0, "misuse diagnosed: {after:?}");
    assert_eq!(panicked, 0, "callbacks panicked: {after:?}");
    assert_eq!(
        buffers, 0,
        "rule 10: {buffers} buffer(s) never freed or freed twice"
    );
    assert!(
        TOTALS.callbacks.load(Relaxed) > 0,
        "the soak exercised nothing"
    );
}
