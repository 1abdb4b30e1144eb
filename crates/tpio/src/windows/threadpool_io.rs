//! The safe layer on Windows: [`ThreadpoolIo`] over kernel32's TP_IO
//! (`tpio_windows::tp_io::TpIo`), whose operations own their buffers until
//! their final completion and hand them back in [`Done`].
//!
//! Owns only the public shape: each method names the Win32 call it issues,
//! and a finished operation becomes a [`Done`] (an accepted socket becomes a
//! [`TcpStream`](crate::TcpStream)). Record lifetimes, start balancing and
//! the misuse diagnoses are `tpio-windows`'; what a close or a wait does is
//! kernel32's.

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use tpio_core::{IoCounts, Win32Error};
use tpio_windows::tp_io::{Finished, Issued, TpIo};
use tpio_windows::OpKind;

use crate::windows::handle::OverlappedHandle;
use crate::{CallbackEnvironment, CallbackInstance, Done, IoFailed, OverlappedId, Started};

fn done(f: Finished) -> Done {
    Done {
        tag: f.tag,
        overlapped: OverlappedId(f.overlapped),
        result: f.result,
        buf: f.buf,
        addr: f.addr,
        accepted: f.accepted.map(crate::TcpStream::wrap),
    }
}

/// A thread-pool I/O object bound to one handle (`PTP_IO`), safe layer.
pub struct ThreadpoolIo {
    io: TpIo,
}

impl ThreadpoolIo {
    /// `CreateThreadpoolIo`: binds `handle` (at most once per handle, as on
    /// Windows: `ERROR_INVALID_PARAMETER` the second time) and runs
    /// `callback` on a worker of `env`'s pool (the default pool when
    /// `None`) for each operation's completion.
    pub fn new<H, F>(
        handle: &H,
        env: Option<&CallbackEnvironment>,
        callback: F,
    ) -> Result<ThreadpoolIo, Win32Error>
    where
        H: OverlappedHandle + ?Sized,
        F: Fn(&mut CallbackInstance<'_>, Done) + Send + Sync + 'static,
    {
        let io = TpIo::new(handle.core(), env, move |inst, f| callback(inst, done(f)))?;
        Ok(ThreadpoolIo { io })
    }

    fn issue(&self, kind: OpKind, buf: Vec<u8>, tag: u64) -> Result<Started, IoFailed> {
        match self.io.issue(kind, buf, tag) {
            Ok(Issued::Pending(p)) => Ok(Started {
                overlapped: OverlappedId(p),
                completed_now: None,
            }),
            Ok(Issued::CompletedNow(f)) => Ok(Started {
                overlapped: OverlappedId(f.overlapped),
                completed_now: Some(done(f)),
            }),
            Err((error, buf)) => Err(IoFailed { error, buf }),
        }
    }

    /// `ReadFile` at `offset` (files; other handles ignore it).
    pub fn read_at(&self, buf: Vec<u8>, offset: u64, tag: u64) -> Result<Started, IoFailed> {
        self.issue(
            OpKind::Read {
                offset: Some(offset),
            },
            buf,
            tag,
        )
    }

    /// `WriteFile` at `offset` (files; other handles ignore it).
    pub fn write_at(&self, buf: Vec<u8>, offset: u64, tag: u64) -> Result<Started, IoFailed> {
        self.issue(
            OpKind::Write {
                offset: Some(offset),
            },
            buf,
            tag,
        )
    }

    /// `ReadFile` / `WSARecv` at the current position.
    pub fn read(&self, buf: Vec<u8>, tag: u64) -> Result<Started, IoFailed> {
        self.issue(OpKind::Read { offset: None }, buf, tag)
    }

    /// `WriteFile` / `WSASend` at the current position.
    pub fn write(&self, buf: Vec<u8>, tag: u64) -> Result<Started, IoFailed> {
        self.issue(OpKind::Write { offset: None }, buf, tag)
    }

    /// `WSARecv` on a stream socket (0 bytes = the peer closed).
    pub fn recv(&self, buf: Vec<u8>, tag: u64) -> Result<Started, IoFailed> {
        self.read(buf, tag)
    }

    /// `WSASend` on a stream socket.
    pub fn send(&self, buf: Vec<u8>, tag: u64) -> Result<Started, IoFailed> {
        self.write(buf, tag)
    }

    /// `WSARecvFrom`: one datagram; the sender is in [`Done::addr`].
    pub fn recv_from(&self, buf: Vec<u8>, tag: u64) -> Result<Started, IoFailed> {
        self.issue(OpKind::RecvFrom, buf, tag)
    }

    /// `WSASendTo`: one datagram to `to`.
    pub fn send_to(&self, buf: Vec<u8>, to: SocketAddr, tag: u64) -> Result<Started, IoFailed> {
        self.issue(OpKind::SendTo(to), buf, tag)
    }

    /// `AcceptEx` on a [`TcpListener`](crate::TcpListener): the callback's
    /// [`Done::accepted`] is the new connection and [`Done::addr`] its peer.
    pub fn accept(&self, tag: u64) -> Result<Started, IoFailed> {
        self.issue(OpKind::Accept, Vec::new(), tag)
    }

    /// `ConnectEx` on an unconnected [`TcpStream`](crate::TcpStream):
    /// `Ok(0)` once connected; `ERROR_CONNECTION_REFUSED` (1225) when
    /// nobody listens.
    pub fn connect(&self, to: SocketAddr, tag: u64) -> Result<Started, IoFailed> {
        self.issue(OpKind::Connect(to), Vec::new(), tag)
    }

    /// `WaitForThreadpoolIoCallbacks` (rule 4). `ERROR_POSSIBLE_DEADLOCK`
    /// from inside this object's own callback.
    pub fn wait_for_callbacks(&self, cancel_pending: bool) -> Result<(), Win32Error> {
        self.io.wait_for_callbacks(cancel_pending)
    }

    /// Like [`wait_for_callbacks`](Self::wait_for_callbacks), giving up after
    /// `timeout`: `Ok(true)` when idle, `Ok(false)` on time-out.
    pub fn wait_for_callbacks_timeout(
        &self,
        cancel_pending: bool,
        timeout: Duration,
    ) -> Result<bool, Win32Error> {
        self.io.wait_for_callbacks_timeout(cancel_pending, timeout)
    }

    /// The object's counts now (outstanding, queued, running).
    pub fn counts(&self) -> IoCounts {
        self.io.counts()
    }

    /// A process-unique id of the object.
    pub fn id(&self) -> u64 {
        self.io.id()
    }

    /// `CloseThreadpoolIo` (rule 5): neither cancels nor waits; released
    /// once nothing is queued, running or outstanding. Same as dropping it.
    pub fn close(self) {}
}

impl fmt::Debug for ThreadpoolIo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("ThreadpoolIo").field(&self.io).finish()
    }
}
