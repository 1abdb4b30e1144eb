//! Test support for the kernel32 characterisation tests: overlapped files in
//! a temp dir, overlapped named pipes (whose reads stay pending until the
//! other end writes), leaked operation slots, and a recorder of callbacks
//! that tests wait on with a generous timeout.
#![allow(dead_code)]

use std::fs::{File, OpenOptions};
use std::os::windows::fs::OpenOptionsExt;
use std::os::windows::io::{AsRawHandle, FromRawHandle};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::ThreadId;
use std::time::{Duration, Instant};

use tpio_windows::raw::{self, Completion};
use windows_sys::Win32::Foundation::{
    CloseHandle, ERROR_IO_PENDING, ERROR_PIPE_CONNECTED, HANDLE, INVALID_HANDLE_VALUE,
};
use windows_sys::Win32::Storage::FileSystem::{
    ReadFile, WriteFile, FILE_FLAG_OVERLAPPED, PIPE_ACCESS_DUPLEX,
};
use windows_sys::Win32::System::Pipes::{
    ConnectNamedPipe, CreateNamedPipeW, PIPE_READMODE_BYTE, PIPE_TYPE_BYTE, PIPE_WAIT,
};
use windows_sys::Win32::System::Threading::{CreateEventW, PTP_IO};
use windows_sys::Win32::System::IO::OVERLAPPED;

/// How long a test waits for something that should happen. Generous: the
/// machine may be busy; a pass never waits this long.
pub const TIMEOUT: Duration = Duration::from_secs(30);

/// How long a test watches for something that must NOT happen (a wait that
/// must still be blocked). Only ever used for negative checks.
pub const STILL_BLOCKED: Duration = Duration::from_millis(300);

static UNIQUE: AtomicUsize = AtomicUsize::new(0);

fn unique() -> String {
    format!(
        "tpio-{}-{}",
        std::process::id(),
        UNIQUE.fetch_add(1, Ordering::Relaxed)
    )
}

pub fn h(f: &File) -> HANDLE {
    f.as_raw_handle() as HANDLE
}

/// A temp file's path; the file is deleted on drop (std opens files with
/// FILE_SHARE_DELETE, so this works while a handle is still open).
#[derive(Debug)]
pub struct TempPath(pub PathBuf);

impl Drop for TempPath {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// A fresh file in the temp dir holding `contents`, opened for overlapped
/// I/O with `read`/`write` access.
pub fn overlapped_file(contents: &[u8], read: bool, write: bool) -> (File, TempPath) {
    let path = std::env::temp_dir().join(format!("{}.bin", unique()));
    std::fs::write(&path, contents).expect("write temp file");
    let file = OpenOptions::new()
        .read(read)
        .write(write)
        .custom_flags(FILE_FLAG_OVERLAPPED)
        .open(&path)
        .expect("open temp file overlapped");
    (file, TempPath(path))
}

/// A connected named pipe: (server, client). The server is always
/// overlapped; the client is overlapped when `client_overlapped`.
pub fn pipe_pair(client_overlapped: bool) -> (File, File) {
    let name = format!(r"\\.\pipe\{}", unique());
    let wide: Vec<u16> = name.encode_utf16().chain(Some(0)).collect();
    // SAFETY: NUL-terminated name; no security attributes.
    let server = unsafe {
        CreateNamedPipeW(
            wide.as_ptr(),
            PIPE_ACCESS_DUPLEX | FILE_FLAG_OVERLAPPED,
            PIPE_TYPE_BYTE | PIPE_READMODE_BYTE | PIPE_WAIT,
            1,
            4096,
            4096,
            0,
            std::ptr::null(),
        )
    };
    assert_ne!(
        server,
        INVALID_HANDLE_VALUE,
        "CreateNamedPipeW: {}",
        raw::last_error()
    );
    // SAFETY: a fresh handle that we own from here on.
    let server = unsafe { File::from_raw_handle(server as _) };
    let mut opts = OpenOptions::new();
    opts.read(true).write(true);
    if client_overlapped {
        opts.custom_flags(FILE_FLAG_OVERLAPPED);
    }
    let client = opts.open(&name).expect("open pipe client");
    // The client has connected; ConnectNamedPipe confirms it at once.
    let mut ov = OVERLAPPED::default();
    // SAFETY: `ov` outlives the call, which does not stay pending because a
    // client is already connected (checked below).
    let ok = unsafe { ConnectNamedPipe(h(&server), &mut ov) };
    let err = raw::last_error();
    assert!(
        ok != 0 || err == ERROR_PIPE_CONNECTED,
        "ConnectNamedPipe: {ok} {err}"
    );
    (server, client)
}

/// An OVERLAPPED and a buffer that are never freed, so that a failing test
/// can never leave the kernel writing into freed memory.
pub struct Op {
    pub ov: *mut OVERLAPPED,
    pub buf: *mut u8,
    pub len: usize,
}

// SAFETY: the pointers are to leaked, never-freed memory; tests only hand
// them to kernel32 or read the buffer after the operation completed.
unsafe impl Send for Op {}
// SAFETY: as above.
unsafe impl Sync for Op {}

impl Op {
    pub fn new(len: usize, offset: u64) -> Op {
        let mut ov = Box::new(OVERLAPPED::default());
        ov.Anonymous.Anonymous.Offset = offset as u32;
        ov.Anonymous.Anonymous.OffsetHigh = (offset >> 32) as u32;
        let buf: &'static mut [u8] = Box::leak(vec![0u8; len].into_boxed_slice());
        Op {
            ov: Box::leak(ov),
            buf: buf.as_mut_ptr(),
            len,
        }
    }

    pub fn with_data(data: &[u8], offset: u64) -> Op {
        let op = Op::new(data.len(), offset);
        // SAFETY: `buf` is a leaked allocation of `data.len()` bytes that no
        // operation uses yet.
        unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), op.buf, data.len()) };
        op
    }

    /// The first `n` bytes of the buffer; call only after the operation
    /// that wrote them completed.
    pub fn data(&self, n: usize) -> Vec<u8> {
        assert!(n <= self.len);
        // SAFETY: the buffer is leaked (alive forever) and `n <= len`.
        unsafe { std::slice::from_raw_parts(self.buf, n) }.to_vec()
    }

    pub fn ov_addr(&self) -> usize {
        self.ov as usize
    }
}

/// `ReadFile(h, op.buf, op.len, NULL, op.ov)`: `Ok(())` when it succeeded at
/// once, `Err(997)` when pending, `Err(code)` when it failed at once.
pub fn read(handle: HANDLE, op: &Op) -> Result<(), u32> {
    // SAFETY: buffer and OVERLAPPED are leaked, so valid until completion.
    let ok = unsafe { ReadFile(handle, op.buf, op.len as u32, std::ptr::null_mut(), op.ov) };
    if ok != 0 {
        Ok(())
    } else {
        Err(raw::last_error())
    }
}

/// `WriteFile(h, op.buf, op.len, NULL, op.ov)`, same results as [`read`].
pub fn write(handle: HANDLE, op: &Op) -> Result<(), u32> {
    // SAFETY: buffer and OVERLAPPED are leaked, so valid until completion.
    let ok = unsafe { WriteFile(handle, op.buf, op.len as u32, std::ptr::null_mut(), op.ov) };
    if ok != 0 {
        Ok(())
    } else {
        Err(raw::last_error())
    }
}

/// Write all of `data` to an overlapped handle that is NOT bound to a
/// thread pool (the client end of a pipe), waiting for it on an event.
pub fn write_blocking(handle: HANDLE, data: &[u8]) {
    let op = Op::with_data(data, 0);
    // SAFETY: manual-reset, unnamed event; no attributes.
    let event = unsafe { CreateEventW(std::ptr::null(), 1, 0, std::ptr::null()) };
    assert!(!event.is_null());
    // SAFETY: `op.ov` is leaked and not in use.
    unsafe { (*op.ov).hEvent = event };
    match write(handle, &op) {
        Ok(()) => {}
        Err(ERROR_IO_PENDING) => {}
        Err(e) => panic!("WriteFile failed at once: {e}"),
    }
    // SAFETY: `op.ov` belongs to the write just issued on `handle`.
    let n = unsafe { raw::get_overlapped_result(handle, op.ov, true) }.expect("write result");
    assert_eq!(n as usize, data.len());
    // SAFETY: our event, not used any more.
    unsafe { CloseHandle(event) };
}

/// One callback, as seen by the closure.
#[derive(Debug, Clone)]
pub struct Seen {
    pub ov: usize,
    pub result: u32,
    pub bytes: usize,
    pub io: PTP_IO,
    pub instance: isize,
    pub thread: ThreadId,
}

/// Records every callback of a TP_IO and lets a test wait for them.
#[derive(Debug, Default)]
pub struct Recorder {
    seen: Mutex<Vec<Seen>>,
    cv: Condvar,
}

impl Recorder {
    pub fn new() -> Arc<Recorder> {
        Arc::new(Recorder::default())
    }

    /// The closure to give to `ThreadpoolIo::new`.
    pub fn callback(self: &Arc<Self>) -> impl Fn(&Completion) + Send + Sync + 'static {
        let me = Arc::clone(self);
        move |c: &Completion| me.record(c)
    }

    pub fn record(&self, c: &Completion) {
        let mut seen = self.seen.lock().unwrap();
        seen.push(Seen {
            ov: c.overlapped as usize,
            result: c.result,
            bytes: c.bytes,
            io: c.io,
            instance: c.instance,
            thread: std::thread::current().id(),
        });
        self.cv.notify_all();
    }

    pub fn snapshot(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    /// Wait until `pred` holds for the callbacks seen so far; panics after
    /// [`TIMEOUT`] with what was seen.
    pub fn wait_until(&self, what: &str, pred: impl Fn(&[Seen]) -> bool) -> Vec<Seen> {
        let deadline = Instant::now() + TIMEOUT;
        let mut seen = self.seen.lock().unwrap();
        while !pred(&seen) {
            let now = Instant::now();
            assert!(
                now < deadline,
                "timed out waiting for {what}; seen: {seen:?}"
            );
            seen = self.cv.wait_timeout(seen, deadline - now).unwrap().0;
        }
        seen.clone()
    }

    /// Negative checks only: the callbacks seen once `n` arrived, or the
    /// (shorter) list seen when `limit` passed first.
    pub fn wait_count_within(&self, n: usize, limit: Duration) -> Vec<Seen> {
        let deadline = Instant::now() + limit;
        let mut seen = self.seen.lock().unwrap();
        while seen.len() < n {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            seen = self.cv.wait_timeout(seen, deadline - now).unwrap().0;
        }
        seen.clone()
    }

    /// Wait until at least `n` callbacks have been seen.
    pub fn wait_count(&self, n: usize) -> Vec<Seen> {
        self.wait_until(&format!("{n} callback(s)"), |s| s.len() >= n)
    }

    /// Wait until a callback for `op` has been seen; returns it.
    pub fn wait_op(&self, op: &Op) -> Seen {
        let addr = op.ov_addr();
        let seen = self.wait_until(&format!("the callback of {addr:#x}"), |s| {
            s.iter().any(|x| x.ov == addr)
        });
        seen.into_iter().find(|x| x.ov == addr).unwrap()
    }
}

/// Run `f` on another thread; `Some(result)` if it returns within `limit`,
/// `None` if it is still running then (the thread is left behind).
pub fn within<T: Send + 'static>(
    limit: Duration,
    f: impl FnOnce() -> T + Send + 'static,
) -> Option<T> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(limit).ok()
}

/// Sets a flag when dropped: shows when a callback closure is released.
#[derive(Debug)]
pub struct DropFlag(pub Arc<(Mutex<bool>, Condvar)>);

impl Drop for DropFlag {
    fn drop(&mut self) {
        *self.0 .0.lock().unwrap() = true;
        self.0 .1.notify_all();
    }
}

/// Wait (up to [`TIMEOUT`]) for a [`DropFlag`] to be dropped.
pub fn wait_dropped(flag: &Arc<(Mutex<bool>, Condvar)>) -> bool {
    let deadline = Instant::now() + TIMEOUT;
    let mut dropped = flag.0.lock().unwrap();
    while !*dropped {
        let now = Instant::now();
        if now >= deadline {
            return false;
        }
        dropped = flag.1.wait_timeout(dropped, deadline - now).unwrap().0;
    }
    true
}
