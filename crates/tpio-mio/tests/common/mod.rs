//! Helpers shared by the driver tests: a TP_IO object on a pool with its
//! callbacks recorded, issuing through `MioDriver`, owned fds, temp files,
//! and waiting on conditions with a deadline (never sleeping to wait).
#![allow(dead_code)]

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::PathBuf;
use std::sync::{mpsc, Arc, Mutex};
use std::thread::ThreadId;
use std::time::{Duration, Instant};

use tpio_core::driver::{
    AddrBuf, Driver, HandleKind, HandleOps, Issued, OpKind, RawHandle, Submission,
};
use tpio_core::{CallbackEnvironment, CallbackInstance, Completion, IoObject, Pool, Win32Error};
use tpio_mio::MioDriver;

/// Generous: the machine is shared.
pub const TIMEOUT: Duration = Duration::from_secs(20);
/// How long "nothing happens" is watched for.
pub const QUIET: Duration = Duration::from_millis(200);

/// A TP_IO object whose callbacks send (completion, worker thread) here.
pub struct Rig {
    pub pool: Pool,
    pub io: IoObject,
    pub rx: Mutex<mpsc::Receiver<(Completion, ThreadId)>>,
    pub driver: MioDriver,
    pub ops: Arc<HandleOps>,
}

pub fn rig() -> Rig {
    rig_with(MioDriver::new().expect("driver"))
}

pub fn rig_with(driver: MioDriver) -> Rig {
    let pool = Pool::new("tpio-mio-test");
    let (tx, rx) = mpsc::channel();
    let tx = Mutex::new(tx);
    let io = IoObject::new(
        &CallbackEnvironment::new().pool(&pool),
        0,
        move |_i: &mut CallbackInstance<'_>, c: Completion| {
            let _ = tx.lock().unwrap().send((c, std::thread::current().id()));
        },
    );
    Rig {
        pool,
        io,
        rx: Mutex::new(rx),
        driver,
        ops: Arc::new(HandleOps::new()),
    }
}

impl Rig {
    /// start + submit; returns what the driver said. The buffers must
    /// outlive the callback. For anything but `Pending`, balances the
    /// start (no packet will come from the driver).
    pub fn submit(
        &self,
        fd: RawFd,
        kind: HandleKind,
        op: OpKind,
        buf: &mut [u8],
        addr: *mut AddrBuf,
        ov: usize,
    ) -> Issued {
        self.submit_with_ops(&self.ops, fd, kind, op, buf, addr, ov)
    }

    #[allow(clippy::too_many_arguments)]
    pub fn submit_with_ops(
        &self,
        ops: &Arc<HandleOps>,
        fd: RawFd,
        kind: HandleKind,
        op: OpKind,
        buf: &mut [u8],
        addr: *mut AddrBuf,
        ov: usize,
    ) -> Issued {
        self.io.start().unwrap();
        let sub = Submission {
            handle: RawHandle(fd as u64),
            handle_kind: kind,
            kind: op,
            buf: buf.as_mut_ptr(),
            len: buf.len(),
            addr,
            overlapped: ov,
            ops: Arc::clone(ops),
            thread: std::thread::current().id(),
            skip_on_success: false,
        };
        // SAFETY: every test keeps its buffers alive until the callback.
        let issued = unsafe { self.driver.submit(sub, self.io.target()) };
        if issued != Issued::Pending {
            self.io.cancel().unwrap();
        }
        issued
    }

    /// Like [`submit`](Self::submit), asserting the operation went pending.
    pub fn pending(
        &self,
        fd: RawFd,
        kind: HandleKind,
        op: OpKind,
        buf: &mut [u8],
        addr: *mut AddrBuf,
        ov: usize,
    ) {
        assert_eq!(self.submit(fd, kind, op, buf, addr, ov), Issued::Pending);
    }

    /// Asserts no callback runs within [`QUIET`].
    pub fn quiet(&self) {
        if let Ok(c) = self.rx.lock().unwrap().recv_timeout(QUIET) {
            panic!("unexpected callback {c:?}");
        }
    }

    /// The next callback's completion; asserts it ran on a pool worker.
    pub fn next(&self) -> Completion {
        let (c, thread) = self
            .rx
            .lock()
            .unwrap()
            .recv_timeout(TIMEOUT)
            .expect("no callback within the time-out");
        assert_ne!(
            thread,
            std::thread::current().id(),
            "callbacks run on pool workers"
        );
        c
    }

    /// The next callback, as (overlapped, status, bytes).
    pub fn next3(&self) -> (usize, Win32Error, usize) {
        let c = self.next();
        (c.overlapped, c.status, c.bytes)
    }

    /// The handle of `fd` closes (what the facade says as its handle
    /// goes): the driver drops the descriptor's registration.
    pub fn closing(&self, fd: RawFd) {
        tpio_core::driver::Driver::closing(&self.driver, RawHandle(fd as u64));
    }

    /// Asserts `fd`'s registration stayed after its operations (one
    /// descriptor registered), and is gone once its handle closes.
    pub fn registration_kept_until_closing(&self, fd: RawFd) {
        assert_eq!(
            self.driver.stats().registered_now,
            1,
            "the registration stays while the handle is open"
        );
        self.closing(fd);
        assert_eq!(self.driver.stats().registered_now, 0);
    }

    /// Waits until the object is idle and nothing is in flight.
    pub fn drained(&self) {
        assert_eq!(
            self.io.wait_for_callbacks_timeout(false, TIMEOUT),
            Ok(true),
            "object did not drain"
        );
        assert!(self.ops.is_empty(), "in-flight table not empty");
        assert_eq!(self.driver.stats().in_flight, 0);
    }
}

/// Waits until `f` holds; panics after [`TIMEOUT`].
pub fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + TIMEOUT;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::yield_now();
    }
}

pub fn pipe() -> (OwnedFd, OwnedFd) {
    let mut fds = [0; 2];
    // SAFETY: valid array of two ints.
    let r = unsafe { libc::pipe(fds.as_mut_ptr()) };
    assert_eq!(r, 0, "pipe: {}", io::Error::last_os_error());
    // SAFETY: fresh fds owned by nobody else.
    unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) }
}

pub fn socketpair(ty: i32) -> (OwnedFd, OwnedFd) {
    let mut fds = [0; 2];
    // SAFETY: valid array of two ints.
    let r = unsafe { libc::socketpair(libc::AF_UNIX, ty, 0, fds.as_mut_ptr()) };
    assert_eq!(r, 0, "socketpair: {}", io::Error::last_os_error());
    // SAFETY: fresh fds owned by nobody else.
    unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) }
}

/// Writes all of `data` with blocking `write(2)` calls.
pub fn write_all(fd: RawFd, data: &[u8]) {
    let mut off = 0;
    while off < data.len() {
        // SAFETY: the rest of `data` is a live slice.
        let n = unsafe { libc::write(fd, data[off..].as_ptr().cast(), data.len() - off) };
        assert!(n > 0, "write: {}", io::Error::last_os_error());
        off += n as usize;
    }
}

/// Reads exactly `n` bytes with blocking `read(2)` calls.
pub fn read_exact(fd: RawFd, n: usize) -> Vec<u8> {
    let mut out = vec![0u8; n];
    let mut off = 0;
    while off < n {
        // SAFETY: the rest of `out` is a live, writable slice.
        let r = unsafe { libc::read(fd, out[off..].as_mut_ptr().cast(), n - off) };
        assert!(r > 0, "read: {r} {}", io::Error::last_os_error());
        off += r as usize;
    }
    out
}

/// Whether `fd` is in non-blocking mode.
pub fn is_nonblocking(fd: RawFd) -> bool {
    // SAFETY: F_GETFL reads no memory of ours.
    let fl = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    assert!(fl >= 0);
    fl & libc::O_NONBLOCK != 0
}

/// A temp path, removed on drop.
pub struct TempPath(pub PathBuf);

impl TempPath {
    pub fn new(tag: &str) -> TempPath {
        use std::sync::atomic::{AtomicU32, Ordering};
        static N: AtomicU32 = AtomicU32::new(0);
        TempPath(std::env::temp_dir().join(format!(
            "tpio-mio-test-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        )))
    }
}

impl Drop for TempPath {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// A temp file with `data`, open for reading and writing.
pub struct TempFile {
    pub path: TempPath,
    pub file: std::fs::File,
}

impl TempFile {
    pub fn with(data: &[u8]) -> TempFile {
        let path = TempPath::new("file");
        std::fs::write(&path.0, data).expect("write temp file");
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path.0)
            .expect("open temp file");
        TempFile { path, file }
    }

    pub fn fd(&self) -> RawFd {
        self.file.as_raw_fd()
    }
}

/// A FIFO opened read-write (so opening does not block): a "file" whose
/// blocking read waits until the test writes, to hold a file worker busy
/// for as long as a test needs.
pub struct Fifo {
    _path: TempPath,
    pub file: std::fs::File,
}

impl Fifo {
    pub fn new() -> Fifo {
        let path = TempPath::new("fifo");
        let c = std::ffi::CString::new(path.0.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: `c` is a live NUL-terminated path.
        let r = unsafe { libc::mkfifo(c.as_ptr(), 0o600) };
        assert_eq!(r, 0, "mkfifo: {}", io::Error::last_os_error());
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path.0)
            .expect("open fifo");
        Fifo { _path: path, file }
    }

    pub fn fd(&self) -> RawFd {
        self.file.as_raw_fd()
    }
}

/// Deterministic test bytes.
pub fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 + i / 251) as u8).collect()
}

/// The port of an IPv4/IPv6 address in sockaddr layout.
pub fn port_of(a: &AddrBuf) -> u16 {
    u16::from_be_bytes([a.bytes[2], a.bytes[3]])
}

/// An `AddrBuf` holding `addr` (IPv4 only, for these tests).
pub fn addr_buf(addr: std::net::SocketAddr) -> AddrBuf {
    let std::net::SocketAddr::V4(v4) = addr else {
        panic!("IPv4 only in these tests");
    };
    // SAFETY: all-zero is a valid sockaddr_in.
    let mut sin: libc::sockaddr_in = unsafe { std::mem::zeroed() };
    sin.sin_family = libc::AF_INET as libc::sa_family_t;
    sin.sin_port = v4.port().to_be();
    sin.sin_addr = libc::in_addr {
        s_addr: u32::from_ne_bytes(v4.ip().octets()),
    };
    let mut a = AddrBuf::default();
    let n = std::mem::size_of::<libc::sockaddr_in>();
    // SAFETY: `sin` is a live struct of `n` bytes; `a.bytes` has 128.
    unsafe {
        std::ptr::copy_nonoverlapping(
            (&sin as *const libc::sockaddr_in).cast::<u8>(),
            a.bytes.as_mut_ptr(),
            n,
        )
    };
    a.len = n as u32;
    a
}

/// A fresh blocking IPv4 TCP socket (not connected).
pub fn tcp_socket() -> OwnedFd {
    // SAFETY: plain socket(2).
    let s = unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0) };
    assert!(s >= 0, "socket: {}", io::Error::last_os_error());
    // SAFETY: a fresh fd owned by nobody else.
    unsafe { OwnedFd::from_raw_fd(s) }
}

/// Makes `s`'s close send a reset (SO_LINGER on, 0 seconds).
pub fn linger_zero(fd: RawFd) {
    let l = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: `l` is a live linger struct of the size passed.
    let r = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&l as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    assert_eq!(r, 0, "setsockopt: {}", io::Error::last_os_error());
}
