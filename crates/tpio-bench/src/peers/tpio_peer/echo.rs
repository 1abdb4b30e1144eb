//! W2 on tpio: every socket (client and server end) has its own TP_IO; the
//! callbacks run the echo as a state machine — a server's receive issues
//! the send back, its send the next receive; a client's full reply counts a
//! round trip and issues the next send. The operation's tag says which step
//! it was and how far it got.

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

fn issue(r: Result<tpio::Started, tpio::IoFailed>) -> Result<(), String> {
    r.map(|_| ()).map_err(|e| e.to_string())
}

/// A client's callback: `i` is its index in `ios` (even).
fn client(s: &Shared, i: usize, d: Done) -> Result<bool, String> {
    let mut buf = d.buf;
    let n = d.result.map_err(|e| format!("client: {e}"))?;
    match d.tag & KIND {
        SEND if n < buf.len() => {
            buf.drain(..n);
            issue(s.io(i).send(buf, SEND))?;
        }
        SEND => {
            buf.resize(s.msg, 0);
            issue(s.io(i).recv(buf, RECV))?;
        }
        RECV if n == 0 => return Err("client: the server closed".into()),
        RECV => {
            let got = (d.tag & !KIND) as usize + n;
            if got < s.msg {
                buf.truncate(s.msg - got);
                issue(s.io(i).recv(buf, RECV | got as u64))?;
            } else {
                s.trips.fetch_add(1, Ordering::Relaxed);
                if s.stop.load(Ordering::Relaxed) {
                    return Ok(true);
                }
                buf.resize(s.msg, 7);
                issue(s.io(i).send(buf, SEND))?;
            }
        }
        _ => return Err("client: unknown tag".into()),
    }
    Ok(false)
}

/// A server's callback: `i` is its index in `ios` (odd). Ends quietly when
/// its receive is cancelled at the end of the run.
fn server(s: &Shared, i: usize, d: Done) -> Result<(), String> {
    let mut buf = d.buf;
    let n = match d.result {
        Ok(n) => n,
        Err(tpio::Win32Error::OPERATION_ABORTED) => return Ok(()),
        Err(e) => return Err(format!("server: {e}")),
    };
    match d.tag & KIND {
        RECV if n == 0 => {}
        RECV => {
            buf.truncate(n);
            issue(s.io(i).send(buf, SEND))?;
        }
        SEND if n < buf.len() => {
            buf.drain(..n);
            issue(s.io(i).send(buf, SEND))?;
        }
        SEND => {
            buf.resize(s.msg, 0);
            issue(s.io(i).recv(buf, RECV))?;
        }
        _ => return Err("server: unknown tag".into()),
    }
    Ok(())
}

fn callback(
    weak: Weak<Shared>,
    i: usize,
) -> impl Fn(&mut tpio::CallbackInstance<'_>, Done) + Send + Sync {
    move |_inst, d| {
        let Some(s) = weak.upgrade() else { return };
        let r = if i % 2 == 0 {
            match client(&s, i, d) {
                Ok(true) => Err(Ok(i)),
                Ok(false) => Ok(()),
                Err(e) => Err(Err(e)),
            }
        } else {
            server(&s, i, d).map_err(Err)
        };
        if let Err(end) = r {
            let _ = s.ended.send(end);
        }
    }
}

/// Runs W2 on `backend` with callbacks on `env`; round trips per second.
pub fn run(backend: &Backend, env: &CallbackEnvironment, job: &EchoJob) -> Result<f64, RunError> {
    let pairs = crate::net_pairs::tcp_pairs(job.connections)?;
    let mut socks = Vec::with_capacity(2 * pairs.len());
    for (c, s) in pairs {
        socks.push(tpio::TcpStream::from_std_on(c, backend)?);
        socks.push(tpio::TcpStream::from_std_on(s, backend)?);
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
    for i in (1..socks.len()).step_by(2) {
        shared
            .io(i)
            .recv(vec![0; job.message], RECV)
            .map_err(|e| RunError::Failed(e.to_string()))?;
    }
    let t0 = Instant::now();
    for i in (0..socks.len()).step_by(2) {
        shared
            .io(i)
            .send(vec![7; job.message], SEND)
            .map_err(|e| RunError::Failed(e.to_string()))?;
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
