//! Blocking calls on tpio's overlapped handles (`read_blocking`,
//! `accept_blocking`, …) that [`crate::thread::cancel_synchronous_io`]
//! interrupts (rule 7).
//!
//! A handle opened for overlapped I/O cannot do synchronous I/O in the
//! kernel's sense, so a blocking call is an overlapped operation whose
//! `hEvent` has its low bit set (kernel32 then queues no completion packet
//! to the handle's port, so the TP_IO bound to the handle never sees it),
//! waited for on that event. The thread registers the call with tpio-core's
//! [`BlockingCall`]; its canceller is `CancelIoEx(h, that OVERLAPPED)`, so a
//! cancel reaches exactly this call, and the issue runs inside
//! [`BlockingCall::issue`], so a cancel either comes first (nothing is
//! issued: 995) or finds the operation in the kernel. The operation is not
//! in the handle's in-flight table: `cancel_io_ex(h, None)` (per operation)
//! never touches it.
//!
//! It never returns before the kernel is done with the caller's buffer.

use std::net::SocketAddr;
use std::sync::Arc;

use parking_lot::Mutex;
use tpio_core::driver::HandleKind;
use tpio_core::{BlockingCall, Win32Error};
use windows_sys::Win32::Foundation::HANDLE;
use windows_sys::Win32::System::Threading::{WaitForSingleObject, INFINITE};
use windows_sys::Win32::System::IO::{CancelIoEx, GetOverlappedResult, OVERLAPPED};

use crate::issue::{self, Issue};
use crate::kernel_handle::KernelHandle;
use crate::record::{mark_pending, OpKind, OwnedEvent, Record};

/// The buffer of a blocking call.
#[derive(Debug)]
pub enum Buf<'a> {
    /// Filled by a read.
    In(&'a mut [u8]),
    /// Read by a write.
    Out(&'a [u8]),
    /// No data (accept, connect).
    None,
}

/// What a blocking call returned.
#[derive(Debug)]
pub struct SyncDone {
    /// Bytes transferred.
    pub bytes: usize,
    /// `recv_from`: the sender; `accept`: the peer.
    pub addr: Option<SocketAddr>,
    /// `accept`: the new connection.
    pub accepted: Option<std::net::TcpStream>,
}

/// Runs `kind` on `h` and blocks until it is done or cancelled by
/// `cancel_synchronous_io` (`ERROR_OPERATION_ABORTED`). A read at the end
/// of a file is `Ok(0)`, as a synchronous `ReadFile` is.
pub fn call(h: &Arc<KernelHandle>, kind: OpKind, buf: Buf<'_>) -> Result<SyncDone, Win32Error> {
    h.check_op(kind, h.is_closed())?;
    let (ptr, len) = match buf {
        Buf::In(b) => (b.as_mut_ptr(), b.len()),
        Buf::Out(b) => (b.as_ptr().cast_mut(), b.len()),
        Buf::None => (std::ptr::NonNull::<u8>::dangling().as_ptr(), 0),
    };
    let event = OwnedEvent::new()?;
    let mut rec = Record::new(kind, Vec::new(), 0);
    rec.ptr = ptr;
    rec.len = len;
    if let Some(pos) = h.position_for(kind, len) {
        rec.set_offset(pos);
    }
    if kind == OpKind::Accept {
        rec.accept = Some(crate::tp_io::accept_slot(h, false)?);
    }
    // The low bit: no completion packet to the port.
    rec.ov.hEvent = (event.0 as usize | 1) as HANDLE;
    let p = rec.leak();
    // SAFETY: our record, not yet handed to the kernel.
    unsafe { mark_pending(p) };
    // Set once the kernel is done, so a late canceller never cancels an
    // operation that reuses the record's address.
    let done = Arc::new(Mutex::new(false));
    let call = {
        let (done, raw, ov) = (Arc::clone(&done), h.raw(), p as usize);
        BlockingCall::enter(move || {
            let d = done.lock();
            if !*d {
                // SAFETY: CancelIoEx only compares the pointer with those of
                // pending operations on the handle.
                unsafe { CancelIoEx(raw as HANDLE, ov as *const OVERLAPPED) };
            }
        })
    };
    // SAFETY: the record and the caller's buffer stay valid until the
    // kernel is done: this function waits for that below.
    let issued = call.issue(|| unsafe { issue::issue(p, h) });
    let (status, bytes) = match issued {
        Err(e) => (e, 0),
        Ok(Issue::Failed(e)) => (e, 0),
        Ok(Issue::Done(n)) => (Win32Error::SUCCESS, n),
        Ok(Issue::Pending) => {
            // SAFETY: our event; the kernel signals it when the operation
            // is over (its packet does not go to the port).
            unsafe { WaitForSingleObject(event.0, INFINITE) };
            let mut n = 0u32;
            // SAFETY: the operation is over; the OVERLAPPED is ours.
            let ok = unsafe {
                GetOverlappedResult(h.raw() as HANDLE, std::ptr::addr_of!((*p).ov), &mut n, 0)
            };
            if ok != 0 {
                (Win32Error::SUCCESS, n as usize)
            } else {
                (crate::error::last(), n as usize)
            }
        }
    };
    *done.lock() = true;
    drop(call);
    // SAFETY: the operation never started, failed, or is over (waited for);
    // no packet goes to a port; this is its only owner.
    let mut rec = unsafe { Record::reclaim(p) };
    let out = issue::complete(&mut rec, h, status, bytes);
    drop(event);
    match out.result {
        Ok(bytes) => Ok(SyncDone {
            bytes,
            addr: out.addr,
            accepted: out.accepted,
        }),
        Err(Win32Error::HANDLE_EOF) if h.kind() == HandleKind::File => Ok(SyncDone {
            bytes: 0,
            addr: None,
            accepted: None,
        }),
        Err(e) => Err(e),
    }
}
