//! [`TpIo`]: the safe layer's TP_IO on kernel32. Each operation's buffer
//! and OVERLAPPED live in one heap record (`record.rs`) from its issue to its last
//! word; kernel32 counts the starts, queues and runs the callbacks, and
//! decides what a close or a wait does.
//!
//! Owns the record protocol, which is what makes the safe API safe:
//! - issue: `StartThreadpoolIo`, then the Win32 call with the record's
//!   OVERLAPPED. Failed at once: `CancelThreadpoolIo` balances the start and
//!   the record is freed (no packet will come). Done at once on a handle in
//!   skip-completion-on-success mode: the same, and the result goes back to
//!   the caller. Otherwise the callback frees it.
//! - the callback (`io_trampoline`) takes the record out of the object's
//!   table of expected records before touching it; a packet whose
//!   OVERLAPPED is not in the table is never dereferenced.
//! - a record whose start kernel32 stopped counting
//!   (`WaitForThreadpoolIoCallbacks(TRUE)`, a cleanup group closed with
//!   cancel) can never be freed safely: its I/O is still in the kernel and
//!   its packet may still arrive (and, since kernel32 pairs packets with
//!   starts by count, even get a callback). It is *abandoned*: leaked,
//!   counted in `packets_skipped`, watched until the kernel is done with it
//!   (`in_flight`, `IoCounts::skipped`), and an abandoned accept closes its
//!   connection once the kernel finishes it.
//!
//! Which starts kernel32 stopped counting is decided by epoch: the
//! object's epoch is read under its lock after `StartThreadpoolIo` and bumped
//! before the kernel32 call that cancels; records of older epochs are
//! abandoned after it. A record issued concurrently with the cancel may
//! stay expected though kernel32 dropped its start: it is then leaked, never
//! freed early.
//!
//! It must never free a record the kernel or a callback may still use, and
//! never call kernel32 on a TP_IO that is closed or released.

use std::ffi::c_void;
use std::net::SocketAddr;
use std::sync::{Arc, Weak};
use std::time::Duration;

use tpio_core::{IoCounts, Misuse, Win32Error};
use windows_sys::Win32::System::Threading::{
    CancelThreadpoolIo, CloseThreadpoolIo, CreateThreadpoolIo, StartThreadpoolIo,
    WaitForSingleObject, WaitForThreadpoolIoCallbacks, INFINITE, PTP_CALLBACK_INSTANCE, PTP_IO,
};

use crate::callback::{Life, ObjState, ObjectCore};
use crate::cleanup_group::GroupMember;
use crate::environment::CallbackEnvironment;
use crate::instance::CallbackInstance;
use crate::issue::{self, Issue};
use crate::kernel_handle::{KernelHandle, Layer, OsObject};
use crate::pool::PoolStats;
use crate::record::{
    kernel_pending, mark_pending, AcceptSlot, OpKind, OwnedEvent, Record, ACCEPT_ADDR_LEN,
};
use crate::winsock;

/// A finished operation, as its callback (or its issuer) sees it.
#[derive(Debug)]
pub struct Finished {
    /// The tag given at issue.
    pub tag: u64,
    /// The operation's OVERLAPPED address.
    pub overlapped: usize,
    /// Bytes transferred, or kernel32's code.
    pub result: Result<usize, Win32Error>,
    /// The buffer, back, at the length it was issued with.
    pub buf: Vec<u8>,
    /// `recv_from`: the sender; `send_to`, `connect`: the destination;
    /// `accept`: the peer.
    pub addr: Option<SocketAddr>,
    /// `accept`: the new connection (overlapped, not bound yet).
    pub accepted: Option<std::net::TcpStream>,
}

/// What an accepted issue turned into.
#[derive(Debug)]
pub enum Issued {
    /// Exactly one callback will come for this OVERLAPPED.
    Pending(usize),
    /// Done at once in skip-completion-on-success mode: no callback.
    CompletedNow(Finished),
}

type UserCallback = Box<dyn Fn(&mut CallbackInstance<'_>, Finished) + Send + Sync>;

/// The object kernel32's callbacks reach (through the context pointer).
#[repr(C)]
pub(crate) struct IoCore {
    /// First: see `callback::group_cancel_trampoline`.
    obj: ObjectCore,
    callback: UserCallback,
}

impl Drop for IoCore {
    fn drop(&mut self) {
        // The last reference: closed and no record expects a callback.
        self.obj.mark_released();
    }
}

/// A kernel32 TP_IO bound to one handle, safe layer.
pub struct TpIo {
    core: Arc<IoCore>,
    handle: Arc<KernelHandle>,
}

/// The `PTP_WIN32_IO_CALLBACK` of safe-layer objects.
///
/// # Safety
/// Called by kernel32 only, with the context given in [`TpIo::new`] (an
/// `IoCore` kept alive by the expected record whose start this callback
/// balances, or by the `TpIo`).
unsafe extern "system" fn io_trampoline(
    instance: PTP_CALLBACK_INSTANCE,
    context: *mut c_void,
    overlapped: *mut c_void,
    result: u32,
    bytes: usize,
    _io: PTP_IO,
) {
    let ptr = context.cast_const().cast::<IoCore>();
    // SAFETY: per this function's contract the object is alive now (the
    // pointer came from `Arc::as_ptr`); this reference keeps it so for the
    // whole callback, even if the records below that hold it are let go.
    let guard = unsafe {
        Arc::increment_strong_count(ptr);
        Arc::from_raw(ptr)
    };
    let core: &IoCore = &guard;
    let p = overlapped as usize;
    enum Claim {
        Live,
        Abandoned,
        Unknown,
    }
    let (claim, lost) = {
        let mut st = core.obj.state.lock();
        let claim = if st.live.remove(&p).is_some() {
            ObjectCore::begin_locked(&mut st);
            Claim::Live
        } else if st.abandoned.remove(&p) {
            st.debt += 1;
            Claim::Abandoned
        } else {
            Claim::Unknown
        };
        (claim, settle_debt(&mut st))
    };
    for q in lost {
        abandon_record(q as *mut Record);
        PoolStats::bump(&core.obj.stats.packets_skipped);
    }
    match claim {
        Claim::Unknown => {
            core.obj
                .stats
                .misuse(Misuse::CompletionWithoutStart, core.obj.id);
            tracing::error!(
                overlapped = p,
                "tpio: a packet for an OVERLAPPED this object never issued"
            );
        }
        Claim::Abandoned => {
            // kernel32 paired this late packet with a newer start (it counts
            // starts, not operations); rule 4 gives it no callback, and one
            // expected record will now get none either (`settle_debt`). Its
            // record stays leaked: the handle still watches it.
            tracing::warn!(
                object = core.obj.id,
                overlapped = p,
                "tpio: kernel32 delivered a packet of an operation wait_for_callbacks(true) stopped expecting; no callback"
            );
        }
        Claim::Live => {
            let rp = p as *mut Record;
            // First out of the handle's table, whose readers poll the
            // OVERLAPPED: only this field is touched, through a raw pointer.
            // SAFETY: `p` was in the table of expected records, from which
            // we just took it: this packet is its last word, and nobody else
            // takes the record any more.
            let handle = unsafe { (*std::ptr::addr_of_mut!((*rp).handle)).take() };
            if let Some(h) = &handle {
                h.untrack(p);
            }
            // SAFETY: as above; no other thread reaches the record now.
            let mut rec = unsafe { Record::reclaim(rp) };
            let keep = rec.io.take();
            let fin = handle.as_deref().map(|h| {
                let out = issue::complete(&mut rec, h, Win32Error::from_code(result), bytes);
                Finished {
                    tag: rec.tag,
                    overlapped: p,
                    result: out.result,
                    buf: std::mem::take(&mut rec.buf),
                    addr: out.addr,
                    accepted: out.accepted,
                }
            });
            drop(rec);
            let associated = core.obj.run_body(instance, |inst| {
                if let Some(f) = fin {
                    (core.callback)(inst, f)
                }
            });
            core.obj.end(associated);
            drop(handle);
            drop(keep);
        }
    }
    // Last: may release the object (`core` is not used after).
    drop(guard);
}

impl TpIo {
    /// `CreateThreadpoolIo(handle, …, env)`: binds `handle` (once per handle,
    /// for life: `ERROR_INVALID_PARAMETER` the second time, also across
    /// layers); `callback` runs on a worker of `env`'s pool for each
    /// operation's completion.
    pub fn new(
        handle: &Arc<KernelHandle>,
        env: Option<&CallbackEnvironment>,
        callback: impl Fn(&mut CallbackInstance<'_>, Finished) + Send + Sync + 'static,
    ) -> Result<TpIo, Win32Error> {
        handle.check_unbound()?;
        let env = env.cloned().unwrap_or_default();
        let core = Arc::new(IoCore {
            obj: ObjectCore::new(
                env.get_pool(),
                env.group.clone(),
                env.cleanup_callback.clone(),
                0,
            ),
            callback: Box::new(callback),
        });
        let native = env.native();
        // SAFETY: the trampoline matches PTP_WIN32_IO_CALLBACK and reads the
        // context as the `IoCore`, which outlives every callback (see
        // `io_trampoline`); the handle is open and overlapped; the
        // environment names a live pool and group.
        let ptp = unsafe {
            CreateThreadpoolIo(
                handle.raw() as _,
                Some(io_trampoline),
                Arc::as_ptr(&core).cast_mut().cast(),
                &native.ce,
            )
        };
        if ptp == 0 {
            return Err(crate::error::last());
        }
        core.obj.set_ptp(ptp);
        let weak: Weak<dyn GroupMember> = Arc::downgrade(&core) as Weak<dyn GroupMember>;
        if let Err(e) = handle.bind(Layer::Safe, weak.clone()) {
            *core.obj.life.write() = Life::Closed;
            // SAFETY: the TP_IO we just created; nothing was started on it.
            unsafe { CloseThreadpoolIo(ptp) };
            return Err(e);
        }
        if let Some(g) = &env.group {
            g.add(weak);
        }
        Ok(TpIo {
            core,
            handle: Arc::clone(handle),
        })
    }

    /// The handle it is bound to.
    pub fn handle(&self) -> &Arc<KernelHandle> {
        &self.handle
    }

    /// Issues `kind` with `buf`: start, Win32 call, rule 2. `Err` = failed
    /// at once (no callback), with the buffer back.
    pub fn issue(
        &self,
        kind: OpKind,
        buf: Vec<u8>,
        tag: u64,
    ) -> Result<Issued, (Win32Error, Vec<u8>)> {
        let life = match self.core.obj.open() {
            Ok(g) => g,
            Err(e) => return Err((e, buf)),
        };
        let h = &self.handle;
        let closed = h.issuing();
        if let Err(e) = h.check_op(kind, *closed) {
            return Err((e, buf));
        }
        let len = buf.len();
        let mut rec = Record::new(kind, buf, tag);
        if let Some(pos) = h.position_for(kind, len) {
            rec.set_offset(pos);
        }
        if kind == OpKind::Accept {
            match accept_slot(h, true) {
                Ok(slot) => {
                    rec.ov.hEvent = slot.done.as_ref().map_or(std::ptr::null_mut(), |e| e.0);
                    rec.accept = Some(slot);
                }
                Err(e) => return Err((e, rec.buf)),
            }
        }
        rec.io = Some(Arc::clone(&self.core));
        rec.handle = Some(Arc::clone(h));
        let p = rec.leak();
        // SAFETY: our record, not yet handed to the kernel.
        unsafe { mark_pending(p) };
        h.track(p as usize);
        let ptp = self.core.obj.ptp();
        // SAFETY: the TP_IO is open (`life` holds it so); the operation is
        // issued right below and every outcome is balanced.
        unsafe { StartThreadpoolIo(ptp) };
        {
            let mut st = self.core.obj.state.lock();
            let epoch = st.epoch;
            st.live.insert(p as usize, epoch);
        }
        // Read before the call: the mode can be set but never cleared, so
        // if it is set now the kernel skips the packet of a success at once.
        // (Set concurrently, it is seen as unset: the record then waits for
        // a packet that never comes — leaked, never freed early.)
        let skip = h.skip_completion_on_success();
        // SAFETY: the record and its buffer stay put until its last word
        // (the callback, or below when the operation ended at once).
        let r = unsafe { issue::issue(p, h) };
        drop(closed);
        match r {
            Issue::Pending => Ok(Issued::Pending(p as usize)),
            Issue::Done(_) if !skip => Ok(Issued::Pending(p as usize)),
            Issue::Done(n) => {
                let Some(mut rec) = self.take_back(p, ptp) else {
                    return Ok(Issued::Pending(p as usize));
                };
                let out = issue::complete(&mut rec, h, Win32Error::SUCCESS, n);
                Ok(Issued::CompletedNow(Finished {
                    tag,
                    overlapped: p as usize,
                    result: out.result,
                    buf: std::mem::take(&mut rec.buf),
                    addr: out.addr,
                    accepted: out.accepted,
                }))
            }
            Issue::Failed(e) => {
                let Some(mut rec) = self.take_back(p, ptp) else {
                    return Ok(Issued::Pending(p as usize));
                };
                drop(life);
                Err((e, std::mem::take(&mut rec.buf)))
            }
        }
    }

    /// An operation that ended at once with no packet: balance its start
    /// and take its record back. `None` if a packet came after all (its
    /// callback took the record first): the callback is then its last word
    /// and the start was balanced by it — a kernel that breaks its own
    /// rule costs a callback, never a double free.
    fn take_back(&self, p: *mut Record, ptp: PTP_IO) -> Option<Box<Record>> {
        if self
            .core
            .obj
            .state
            .lock()
            .live
            .remove(&(p as usize))
            .is_none()
        {
            tracing::error!(
                overlapped = p as usize,
                "tpio: an operation that ended at once got a packet"
            );
            return None;
        }
        // SAFETY: the TP_IO is open (the caller holds `life`); this start
        // gets no packet, so exactly this cancel balances it.
        unsafe { CancelThreadpoolIo(ptp) };
        self.handle.untrack(p as usize);
        // SAFETY: no packet will come for it (failed at once, or done at
        // once in skip mode), and we took it out of the table of expected
        // records, so no callback can take it.
        Some(unsafe { Record::reclaim(p) })
    }

    /// Records issued before epoch `upto` are abandoned (their start is no
    /// longer counted by kernel32).
    fn abandon_before(core: &IoCore, upto: u64) {
        let old: Vec<usize> = {
            let mut st = core.obj.state.lock();
            // kernel32 zeroed its count: no debt is left to pay.
            st.debt = 0;
            let old: Vec<usize> = st
                .live
                .iter()
                .filter(|(_, &e)| e < upto)
                .map(|(&p, _)| p)
                .collect();
            for p in &old {
                st.live.remove(p);
                st.abandoned.insert(*p);
            }
            old
        };
        for p in old {
            abandon_record(p as *mut Record);
            PoolStats::bump(&core.obj.stats.packets_skipped);
        }
    }

    /// `WaitForThreadpoolIoCallbacks(io, cancel_pending)` (rule 4), after
    /// tpio's check: `ERROR_POSSIBLE_DEADLOCK` from inside this object's
    /// own callback.
    pub fn wait_for_callbacks(&self, cancel_pending: bool) -> Result<(), Win32Error> {
        self.core.obj.check_wait()?;
        let _life = self.core.obj.open()?;
        let upto = cancel_pending.then(|| {
            let mut st = self.core.obj.state.lock();
            st.epoch += 1;
            st.epoch
        });
        // SAFETY: the TP_IO is open while `_life` is held.
        unsafe { WaitForThreadpoolIoCallbacks(self.core.obj.ptp(), cancel_pending.into()) };
        if let Some(upto) = upto {
            Self::abandon_before(&self.core, upto);
        }
        Ok(())
    }

    /// As [`wait_for_callbacks`](Self::wait_for_callbacks), giving up after
    /// `timeout` (`Ok(false)`). kernel32 has no timed wait: without cancel
    /// tpio waits for its own table of expected records and running
    /// callbacks; with cancel it is kernel32's wait, which then only waits
    /// for callbacks already running.
    pub fn wait_for_callbacks_timeout(
        &self,
        cancel_pending: bool,
        timeout: Duration,
    ) -> Result<bool, Win32Error> {
        if cancel_pending {
            return self.wait_for_callbacks(true).map(|()| true);
        }
        self.core.obj.check_wait()?;
        drop(self.core.obj.open()?);
        Ok(self
            .core
            .obj
            .wait_until(Some(timeout), |st| st.live.is_empty() && st.associated == 0))
    }

    /// The object's counts now: `pending` = expected operations the kernel
    /// has not finished, `queued` = finished ones whose callback has not
    /// started, `skipped` = abandoned ones the kernel has not finished.
    pub fn counts(&self) -> IoCounts {
        // Lock order: the object's life before its state (as `issue`).
        let life = *self.core.obj.life.read();
        let st = self.core.obj.state.lock();
        // SAFETY: expected records are live while in the table (we hold its
        // lock); abandoned ones are leaked.
        let pending = st
            .live
            .keys()
            .filter(|&&p| unsafe { kernel_pending(p as *const Record) })
            .count() as u32;
        let queued = st.live.len() as u32 - pending;
        // Abandoned records stay in the set after the kernel is done with
        // them: their late packet may still come, and must be recognised.
        // SAFETY: as above.
        let skipped = st
            .abandoned
            .iter()
            .filter(|&&p| unsafe { kernel_pending(p as *const Record) })
            .count() as u32;
        IoCounts {
            pending,
            skipped,
            queued,
            running: st.running,
            associated: st.associated,
            closed: life == Life::Closed,
            released: life == Life::GroupReleased,
        }
    }

    /// A process-unique id of the object.
    pub fn id(&self) -> u64 {
        self.core.obj.id
    }

    /// `CloseThreadpoolIo` (rule 5): neither cancels nor waits; kernel32
    /// frees the TP_IO once its callbacks are done.
    pub fn close(self) {}
}

impl Drop for TpIo {
    fn drop(&mut self) {
        let mut life = self.core.obj.life.write();
        if *life == Life::Open {
            *life = Life::Closed;
            // SAFETY: open until now, closed exactly once, here.
            unsafe { CloseThreadpoolIo(self.core.obj.ptp()) };
        }
    }
}

impl std::fmt::Debug for TpIo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TpIo")
            .field("id", &self.core.obj.id)
            .field("counts", &self.counts())
            .field("handle", &self.handle)
            .finish()
    }
}

impl GroupMember for IoCore {
    fn core(&self) -> &ObjectCore {
        &self.obj
    }

    fn before_release(&self, cancel_pending: bool) {
        let mut life = self.obj.life.write();
        if *life == Life::Open {
            *life = Life::GroupReleased;
        }
        drop(life);
        if cancel_pending {
            self.obj.state.lock().epoch += 1;
        }
    }

    fn after_release(&self, cancel_pending: bool) {
        if cancel_pending {
            let upto = self.obj.state.lock().epoch;
            TpIo::abandon_before(self, upto);
        }
        self.obj.mark_released();
    }
}

/// Under the object's lock: once kernel32 can have no start left for the
/// expected records, they are all abandoned (returned, for
/// [`abandon_record`]). kernel32 counts starts, not operations: each start
/// it used up for a late packet of an abandoned record (`debt`) is one
/// expected record whose own packet it will drop — whichever completes
/// last. Its count of starts is at most `live - debt` (less by the packets
/// it has paired whose callback has not run yet), so when `live <= debt`
/// it is 0 and no expected record can get a callback any more.
fn settle_debt(st: &mut ObjState) -> Vec<usize> {
    if st.debt == 0 || st.live.len() > st.debt {
        return Vec::new();
    }
    st.debt = 0;
    let lost: Vec<usize> = st.live.drain().map(|(p, _)| p).collect();
    st.abandoned.extend(lost.iter().copied());
    lost
}

/// The new socket (and the event that tells when the accept is over) for
/// an `AcceptEx` on listener `h`.
pub(crate) fn accept_slot(h: &KernelHandle, with_event: bool) -> Result<AcceptSlot, Win32Error> {
    let OsObject::Listener(l) = h.os() else {
        return Err(Win32Error::INVALID_HANDLE);
    };
    let v6 = l.local_addr().map(|a| a.is_ipv6()).unwrap_or(false);
    Ok(AcceptSlot {
        socket: Some(winsock::tcp_socket(v6)?),
        out: [0; 2 * ACCEPT_ADDR_LEN as usize],
        done: if with_event {
            Some(OwnedEvent::new()?)
        } else {
            None
        },
    })
}

/// Gives up an abandoned record: it is leaked; the object and handle it
/// kept alive are let go (the handle watches it until the kernel is done);
/// an accept closes its connection once the kernel finishes the accept.
fn abandon_record(p: *mut Record) {
    // SAFETY: the record is out of the table of expected records, so no
    // callback takes it (a late packet finds it abandoned and leaves it);
    // only these fields are touched (the kernel writes the OVERLAPPED and the
    // buffers, never them), through raw field pointers.
    let (io, handle, accept) = unsafe {
        (
            (*std::ptr::addr_of_mut!((*p).io)).take(),
            (*std::ptr::addr_of_mut!((*p).handle)).take(),
            (*std::ptr::addr_of_mut!((*p).accept))
                .as_mut()
                .map(|s| (s.socket.take(), s.done.take())),
        )
    };
    if let Some(h) = &handle {
        h.abandon(p as usize);
    }
    if let Some((Some(socket), Some(done))) = accept {
        // The kernel still uses the socket until the accept is over; then
        // the connection nobody will receive is closed.
        let spawned = std::thread::Builder::new()
            .name("tpio-abandoned-accept".into())
            .spawn(move || {
                // SAFETY: our event, signalled by the kernel when the accept
                // is over; it stays open until this wait returns.
                unsafe { WaitForSingleObject(done.0, INFINITE) };
                drop(socket);
                drop(done);
            });
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "tpio: cannot watch an abandoned accept; its socket is closed now");
        }
    }
    drop(handle);
    drop(io);
}
