//! The safe layer: [`ThreadpoolIo`], whose operations own their buffers
//! until their final completion and hand them back in [`Done`].
//!
//! Owns the protocol of the safe layer's operations: each one's memory is
//! an [`Op`](crate::op::Op) (see `op.rs`) whose address is the operation's
//! OVERLAPPED identity ([`OverlappedId`]); it is reclaimed exactly once — by
//! the callback, by `discard` when the core drops the packet, or by the
//! issuing call when the operation ended at once.
//! It balances every `start` itself (rule 1 and 2), so the count cannot drift.
//!
//! It must never let a buffer go while the kernel may still use it, never
//! hand a box to two owners, and never run a callback inline on the issuing
//! thread (that is the core's pool).

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tpio_core::driver::{AddrBuf, IssueOutcome, OpKind};
use tpio_core::{
    CallbackEnvironment, CallbackInstance, Completion, Discard, IoCallback, IoCounts, IoObject,
    Win32Error,
};

use crate::addr::to_addr_buf;
use crate::handle::{HandleCore, Layer, OverlappedHandle};
use crate::op::Op;

pub use crate::done::{Done, IoFailed, OverlappedId, Started};

/// The core's callback for a safe object: turns packets into [`Done`]s.
struct SafeCallback<F> {
    user: F,
}

impl<F> IoCallback for SafeCallback<F>
where
    F: Fn(&mut CallbackInstance<'_>, Done) + Send + Sync + 'static,
{
    fn complete(&self, instance: &mut CallbackInstance<'_>, c: Completion) {
        // SAFETY: every packet of a safe object carries the address of an
        // `Op` box issued by `ThreadpoolIo::issue` (no one else can reach the
        // object's targets), and the core delivers each packet exactly once,
        // to `complete` or `discard`: this is the box's final owner.
        let op = unsafe { Op::reclaim(c.overlapped) };
        let result = if c.status.is_success() {
            Ok(c.bytes)
        } else {
            Err(c.status)
        };
        (self.user)(instance, op.into_done(c.overlapped, result));
    }

    fn discard(&self, c: Completion, reason: Discard) {
        tracing::trace!(
            overlapped = c.overlapped,
            ?reason,
            "tpio: packet without callback; its buffer is freed"
        );
        // SAFETY: as in `complete`: this packet is the operation's last
        // word and goes nowhere else.
        unsafe { Op::reclaim(c.overlapped) }.drop_result(c.status, c.bytes);
    }
}

/// A thread-pool I/O object bound to one handle (`PTP_IO`), safe layer.
///
/// ```no_run
/// use std::sync::mpsc;
/// let file = tpio::File::open_overlapped("data.bin")?;
/// let (tx, rx) = mpsc::channel();
/// let tx = std::sync::Mutex::new(tx);
/// let io = tpio::ThreadpoolIo::new(&file, None, move |_inst, done| {
///     let _ = tx.lock().map(|t| t.send(done));
/// })?;
/// io.read_at(vec![0; 4096], 0, 7)?;          // Err = failed now, no callback
/// let done = rx.recv().expect("callback");
/// assert_eq!(done.tag, 7);
/// io.wait_for_callbacks(false)?;
/// io.close();                                  // released after drain
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct ThreadpoolIo {
    obj: Arc<IoObject>,
    handle: Arc<HandleCore>,
}

impl ThreadpoolIo {
    /// `CreateThreadpoolIo`: binds `handle` (at most once per handle, as on
    /// Windows: `ERROR_INVALID_PARAMETER` the second time) and runs
    /// `callback` on a pool worker of `env` (default pool when `None`) for
    /// each operation's completion.
    pub fn new<H, F>(
        handle: &H,
        env: Option<&CallbackEnvironment>,
        callback: F,
    ) -> Result<ThreadpoolIo, Win32Error>
    where
        H: OverlappedHandle + ?Sized,
        F: Fn(&mut CallbackInstance<'_>, Done) + Send + Sync + 'static,
    {
        let env = env.cloned().unwrap_or_default();
        let obj = Arc::new(IoObject::new(&env, 0, SafeCallback { user: callback }));
        handle.core().bind(&obj, Layer::Safe)?;
        Ok(ThreadpoolIo {
            obj,
            handle: Arc::clone(handle.core()),
        })
    }

    /// Reads into `buf` at `offset` (files; other handles ignore it).
    pub fn read_at(&self, buf: Vec<u8>, offset: u64, tag: u64) -> Result<Started, IoFailed> {
        self.issue(
            OpKind::Read {
                offset: Some(offset),
            },
            buf,
            None,
            tag,
        )
    }

    /// Writes `buf` at `offset` (files; other handles ignore it).
    pub fn write_at(&self, buf: Vec<u8>, offset: u64, tag: u64) -> Result<Started, IoFailed> {
        self.issue(
            OpKind::Write {
                offset: Some(offset),
            },
            buf,
            None,
            tag,
        )
    }

    /// Reads at the current position (streams: pipes, sockets).
    pub fn read(&self, buf: Vec<u8>, tag: u64) -> Result<Started, IoFailed> {
        self.issue(OpKind::Read { offset: None }, buf, None, tag)
    }

    /// Writes at the current position (streams: pipes, sockets).
    pub fn write(&self, buf: Vec<u8>, tag: u64) -> Result<Started, IoFailed> {
        self.issue(OpKind::Write { offset: None }, buf, None, tag)
    }

    /// `WSARecv`: receives on a stream socket (0 bytes = the peer closed).
    pub fn recv(&self, buf: Vec<u8>, tag: u64) -> Result<Started, IoFailed> {
        self.read(buf, tag)
    }

    /// `WSASend`: sends on a stream socket.
    pub fn send(&self, buf: Vec<u8>, tag: u64) -> Result<Started, IoFailed> {
        self.write(buf, tag)
    }

    /// `WSARecvFrom`: one datagram; the sender is in [`Done::addr`].
    pub fn recv_from(&self, buf: Vec<u8>, tag: u64) -> Result<Started, IoFailed> {
        self.issue(OpKind::RecvFrom, buf, Some(AddrBuf::default()), tag)
    }

    /// `WSASendTo`: one datagram to `to`.
    pub fn send_to(&self, buf: Vec<u8>, to: SocketAddr, tag: u64) -> Result<Started, IoFailed> {
        self.issue(OpKind::SendTo, buf, Some(to_addr_buf(to)), tag)
    }

    /// `AcceptEx` on a [`TcpListener`](crate::TcpListener): the callback's
    /// [`Done::accepted`] is the new connection and [`Done::addr`] its peer
    /// (`result` is `Ok(0)`: no data is received with it).
    pub fn accept(&self, tag: u64) -> Result<Started, IoFailed> {
        self.issue(OpKind::Accept, Vec::new(), Some(AddrBuf::default()), tag)
    }

    /// `ConnectEx` on an unconnected [`TcpStream`](crate::TcpStream)
    /// (see [`TcpStream::unconnected`](crate::TcpStream::unconnected)):
    /// `Ok(0)` once connected; `ERROR_CONNECTION_REFUSED` (1225) when nobody
    /// listens (the callback sees the IRP status as a Win32 code).
    pub fn connect(&self, to: SocketAddr, tag: u64) -> Result<Started, IoFailed> {
        self.issue(OpKind::Connect, Vec::new(), Some(to_addr_buf(to)), tag)
    }

    /// start → submit → rule 2 → balancing cancel.
    fn issue(
        &self,
        kind: OpKind,
        mut buf: Vec<u8>,
        addr: Option<AddrBuf>,
        tag: u64,
    ) -> Result<Started, IoFailed> {
        if let Err(error) = self.obj.start() {
            return Err(IoFailed { error, buf });
        }
        let (bp, len) = (buf.as_mut_ptr(), buf.len());
        let (id, ap) = Op {
            tag,
            buf,
            addr: addr.map(crate::op::addr_box),
            accept: kind == OpKind::Accept,
            handle: Arc::clone(&self.handle),
        }
        .leak();
        // SAFETY: `bp[..len]` is the Vec's heap block and `ap` the leaked
        // op's own address box; both stay put and untouched by us until the box is
        // reclaimed — by the callback or `discard` (after the final packet),
        // or below when the operation ended at once. The box keeps an
        // `Arc<HandleCore>`, so the fd outlives the operation.
        let r = unsafe { self.handle.issue(kind, bp, len, ap, id, &self.obj) };
        match r {
            // A callback will come (and may already have freed the box).
            Ok(IssueOutcome::Pending) | Ok(IssueOutcome::Done { callback: true, .. }) => {
                Ok(Started {
                    overlapped: OverlappedId(id),
                    completed_now: None,
                })
            }
            Ok(IssueOutcome::Done {
                bytes,
                callback: false,
            }) => {
                self.balance();
                // SAFETY: done at once with no packet: the driver is finished
                // with the box and nothing else will reclaim it.
                let op = unsafe { Op::reclaim(id) };
                Ok(Started {
                    overlapped: OverlappedId(id),
                    completed_now: Some(op.into_done(id, Ok(bytes))),
                })
            }
            Err(error) => {
                self.balance();
                // SAFETY: failed at once: no packet will come; the box is ours.
                let op = unsafe { Op::reclaim(id) };
                Err(IoFailed { error, buf: op.buf })
            }
        }
    }

    /// `CancelThreadpoolIo` for a start whose operation got no packet.
    fn balance(&self) {
        if let Err(e) = self.obj.cancel() {
            tracing::error!(error = ?e, "tpio: balancing cancel refused (count drift)");
        }
    }

    /// `WaitForThreadpoolIoCallbacks` (rule 4). `ERROR_POSSIBLE_DEADLOCK`
    /// from inside this object's own callback.
    pub fn wait_for_callbacks(&self, cancel_pending: bool) -> Result<(), Win32Error> {
        self.obj.wait_for_callbacks(cancel_pending)
    }

    /// Like [`wait_for_callbacks`](Self::wait_for_callbacks), giving up after
    /// `timeout`: `Ok(true)` when idle, `Ok(false)` on time-out.
    pub fn wait_for_callbacks_timeout(
        &self,
        cancel_pending: bool,
        timeout: Duration,
    ) -> Result<bool, Win32Error> {
        self.obj.wait_for_callbacks_timeout(cancel_pending, timeout)
    }

    /// The object's counts now (outstanding, queued, running).
    pub fn counts(&self) -> IoCounts {
        self.obj.counts()
    }

    /// A process-unique id of the object.
    pub fn id(&self) -> u64 {
        self.obj.id()
    }

    /// `CloseThreadpoolIo` (rule 5): neither cancels nor waits; released
    /// once nothing is queued, running or outstanding. Same as dropping it.
    pub fn close(self) {}
}

impl fmt::Debug for ThreadpoolIo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ThreadpoolIo")
            .field("object", &self.obj)
            .field("handle", &self.handle)
            .finish()
    }
}
