//! W2 on tpio: every socket (client and server end) has its own TP_IO; the
//! callbacks run the echo as a state machine — a server's receive issues
//! the send back, its send the next receive; a client's full reply counts a
//! round trip and issues the next send. The operation's tag says which step
//! it was and how far it got. In skip-completion-on-success mode an
//! operation that completes at once is carried on by the code that issued
//! it (no callback), as Windows servers do.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, Weak};
use std::time::{Duration, Instant};

use crossbeam_channel::{unbounded, Sender};
use tpio::{Backend, CallbackEnvironment, Done, ThreadpoolIo};

use crate::measure::RunError;
use crate::workloads::w2_echo::EchoJob;

const SEND: u64 = 1 << 32;
const RECV: u64 = 2 << 32;
const KIND: u64 = 0xffff_ffff << 32;

struct Shared {
    ios: Vec<OnceLock<ThreadpoolIo>>,
    stop: AtomicBool,
    trips: AtomicU64,
    msg: usize,
    /// A client (index) that stopped, or an error.
    ended: Sender<Result<usize, String>>,
}

impl Shared {
    fn io(&self, i: usize) -> &ThreadpoolIo {
        self.ios[i].get().expect("set before the first issue")
    }
}

/// What a step of the state machine left behind.
enum Step {
    /// An operation is pending: its callback continues.
    Wait,
    /// The operation completed at once with no callback (skip mode): go on
    /// with its result here.
    Now(Done),
    /// This socket is done.
    Ended,
}

fn issue(r: Result<tpio::Started, tpio::IoFailed>) -> Result<Step, String> {
    match r {
        Ok(started) => Ok(started.completed_now.map_or(Step::Wait, Step::Now)),
        Err(e) => Err(e.to_string()),
    }
}

/// A client's step: `i` is its index in `ios` (even).
fn client(s: &Shared, i: usize, d: Done) -> Result<Step, String> {
    let mut buf = d.buf;
    let n = d.result.map_err(|e| format!("client: {e}"))?;
    match d.tag & KIND {
        SEND if n < buf.len() => {
            buf.drain(..n);
            issue(s.io(i).send(buf, SEND))
        }
        SEND => {
            buf.resize(s.msg, 0);
            issue(s.io(i).recv(buf, RECV))
        }
        RECV if n == 0 => Err("client: the server closed".into()),
        RECV => {
            let got = (d.tag & !KIND) as usize + n;
            if got < s.msg {
                buf.truncate(s.msg - got);
                issue(s.io(i).recv(buf, RECV | got as u64))
            } else {
                s.trips.fetch_add(1, Ordering::Relaxed);
                if s.stop.load(Ordering::Relaxed) {
                    return Ok(Step::Ended);
                }
                buf.resize(s.msg, 7);
                issue(s.io(i).send(buf, SEND))
            }
        }
        _ => Err("client: unknown tag".into()),
    }
}

/// A server's step: `i` is its index in `ios` (odd). Ends quietly when
/// its receive is cancelled at the end of the run.
fn server(s: &Shared, i: usize, d: Done) -> Result<Step, String> {
    let mut buf = d.buf;
    let n = match d.result {
        Ok(n) => n,
        Err(tpio::Win32Error::OPERATION_ABORTED) => return Ok(Step::Ended),
        Err(e) => return Err(format!("server: {e}")),
    };
    match d.tag & KIND {
        RECV if n == 0 => Ok(Step::Ended),
        RECV => {
            buf.truncate(n);
            issue(s.io(i).send(buf, SEND))
        }
        SEND if n < buf.len() => {
            buf.drain(..n);
            issue(s.io(i).send(buf, SEND))
        }
        SEND => {
            buf.resize(s.msg, 0);
            issue(s.io(i).recv(buf, RECV))
        }
        _ => Err("server: unknown tag".into()),
    }
}

/// Runs socket `i`'s state machine from `d` until an operation is pending
/// (in skip mode, operations that complete at once continue here).
fn drive(s: &Shared, i: usize, mut d: Done) {
    loop {
        let r = if i % 2 == 0 {
            client(s, i, d)
        } else {
            server(s, i, d)
        };
        match r {
            Ok(Step::Now(next)) => d = next,
            Ok(Step::Wait) => return,
            Ok(Step::Ended) => {
                if i % 2 == 0 {
                    let _ = s.ended.send(Ok(i));
                }
                return;
            }
            Err(e) => {
                let _ = s.ended.send(Err(e));
                return;
            }
        }
    }
}

fn socks_len(s: &Shared) -> usize {
    s.ios.len()
}

/// Lets `n` callbacks go on once all have arrived (or after a second: a
/// pool with fewer free workers still starts, with worse placement).
struct Gate {
    n: usize,
    arrived: std::sync::Mutex<usize>,
    cv: std::sync::Condvar,
}

impl Gate {
    fn new(n: usize) -> Gate {
        Gate {
            n,
            arrived: std::sync::Mutex::new(0),
            cv: std::sync::Condvar::new(),
        }
    }

    fn arrive(&self) {
        let Ok(mut a) = self.arrived.lock() else {
            return;
        };
        *a += 1;
        self.cv.notify_all();
        let end = Instant::now() + Duration::from_secs(1);
        while *a < self.n {
            let left = end.saturating_duration_since(Instant::now());
            match self.cv.wait_timeout(a, left) {
                Ok((g, t)) if !t.timed_out() => a = g,
                _ => return,
            }
        }
    }
}

/// Carries on from socket `i`'s first operation; a failure ends the run.
fn begin(s: &Shared, i: usize, r: Result<tpio::Started, tpio::IoFailed>) {
    match issue(r) {
        Ok(Step::Now(d)) => drive(s, i, d),
        Ok(_) => {}
        Err(e) => {
            let _ = s.ended.send(Err(e));
        }
    }
}

fn callback(
    weak: Weak<Shared>,
    i: usize,
) -> impl Fn(&mut tpio::CallbackInstance<'_>, Done) + Send + Sync {
    move |_inst, d| {
        if let Some(s) = weak.upgrade() {
            drive(&s, i, d);
        }
    }
}

/// How a W2 run on tpio is set up.
#[derive(Debug, Clone, Copy)]
pub struct Mode {
    /// Every socket in skip-completion-on-success mode
    /// (`SetFileCompletionNotificationModes`): an operation that completes
    /// at once has no callback and its result is handled by the issuing
    /// code.
    pub skip: bool,
    /// Where each connection's first operations are issued.
    pub start: Start,
}

/// Where each connection's first receive (server end) and send (client
/// end) are issued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// Both from a pool callback: one starter callback per worker, which
    /// wait for each other (so each is a different worker) and each start
    /// their share of the connections, both ends. An operation a callback
    /// issues completes on that callback's worker and its callback runs
    /// there (`spec/uring.md`, `spec/mio.md`), so each connection's two
    /// ends keep to one worker, as the plain loops and compio give each
    /// thread its share of the connections, both ends.
    Pair,
    /// From the thread that runs the workload: each end's chain lands on
    /// whichever worker took its first callback.
    Caller,
}

/// Runs W2 on `backend` with callbacks on `env`; round trips per second.
pub fn run(
    backend: &Backend,
    env: &CallbackEnvironment,
    job: &EchoJob,
    mode: Mode,
) -> Result<f64, RunError> {
    let pairs = crate::net_pairs::tcp_pairs(job.connections)?;
    let mut socks = Vec::with_capacity(2 * pairs.len());
    for (c, s) in pairs {
        socks.push(tpio::TcpStream::from_std_on(c, backend)?);
        socks.push(tpio::TcpStream::from_std_on(s, backend)?);
    }
    for s in &socks {
        tpio::OverlappedHandle::set_skip_completion_on_success(s, mode.skip);
    }
    let (ended, ended_rx) = unbounded();
    let shared = Arc::new(Shared {
        ios: (0..socks.len()).map(|_| OnceLock::new()).collect(),
        stop: AtomicBool::new(false),
        trips: AtomicU64::new(0),
        msg: job.message,
        ended,
    });
    for (i, sock) in socks.iter().enumerate() {
        let io = ThreadpoolIo::new(sock, Some(env), callback(Arc::downgrade(&shared), i))?;
        let _ = shared.ios[i].set(io);
    }
    let t0 = Instant::now();
    match mode.start {
        Start::Pair => {
            let pool = env.get_pool();
            let starters = Arc::new(Gate::new(crate::WORKERS));
            for k in 0..crate::WORKERS {
                let (s, starters) = (shared.clone(), starters.clone());
                pool.submit_callback(move |_| {
                    starters.arrive();
                    let pairs = socks_len(&s) / 2;
                    for pair in (k..pairs).step_by(crate::WORKERS) {
                        let (client, server) = (2 * pair, 2 * pair + 1);
                        let recv = s.io(server).recv(vec![0; s.msg], RECV);
                        begin(&s, server, recv);
                        let send = s.io(client).send(vec![7; s.msg], SEND);
                        begin(&s, client, send);
                    }
                });
            }
        }
        Start::Caller => {
            for server in (1..socks.len()).step_by(2) {
                begin(
                    &shared,
                    server,
                    shared.io(server).recv(vec![0; job.message], RECV),
                );
            }
            for client in (0..socks.len()).step_by(2) {
                begin(
                    &shared,
                    client,
                    shared.io(client).send(vec![7; job.message], SEND),
                );
            }
        }
    }
    std::thread::sleep(job.duration);
    shared.stop.store(true, Ordering::Relaxed);
    let rate = shared.trips.load(Ordering::Relaxed) as f64 / t0.elapsed().as_secs_f64();
    // Every client ends after its current round trip; then the servers'
    // pending receives are cancelled.
    let mut failure = None;
    for _ in 0..job.connections {
        match ended_rx.recv_timeout(Duration::from_secs(10)) {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => failure = Some(e),
            Err(_) => return Err(RunError::Failed("clients did not stop".into())),
        }
    }
    // A server whose last send was still calling back may issue one more
    // receive after a cancel: cancel and wait again until all are idle.
    let end = Instant::now() + Duration::from_secs(10);
    'drain: loop {
        for sock in socks.iter().skip(1).step_by(2) {
            let _ = tpio::cancel_io_ex(sock, None);
        }
        for io in shared.ios.iter().filter_map(OnceLock::get) {
            if !io.wait_for_callbacks_timeout(false, Duration::from_millis(100))? {
                if Instant::now() > end {
                    return Err(RunError::Failed("callbacks did not drain".into()));
                }
                continue 'drain;
            }
        }
        break;
    }
    if let Ok(Err(e)) = ended_rx.try_recv() {
        failure = Some(e);
    }
    match failure {
        Some(e) => Err(RunError::Failed(e)),
        None => Ok(rate),
    }
}
