//! The Win32 call behind each [`OpKind`] (`ReadFile`, `WriteFile`,
//! `WSARecv`, `WSASend`, `WSARecvFrom`, `WSASendTo`, `AcceptEx`,
//! `ConnectEx`), what it answered at once ([`Issue`]), and what a finished
//! operation yields ([`complete`]: the accepted connection, the peer
//! address).
//!
//! Owns only the calls and the reading of their results. It never starts or
//! cancels a TP_IO count (the callers do), never frees a record, and passes
//! kernel32's codes on unchanged except one, documented in `spec/`: a stream
//! socket's `ERROR_NETNAME_DELETED` (64, the Win32 form of
//! `STATUS_CONNECTION_RESET`) is reported as `WSAECONNRESET` (10054), as
//! `WSAGetOverlappedResult` does and as tpio's other backends do.
//!
//! A call that answers with a warning (`ERROR_MORE_DATA`, `WSAEMSGSIZE`:
//! the IRP ended with `STATUS_BUFFER_OVERFLOW`) still queues a completion
//! packet, so it is treated like a pending one: its callback comes.

use std::net::SocketAddr;
use std::os::windows::io::{AsRawSocket, OwnedSocket};

use tpio_core::driver::HandleKind;
use tpio_core::Win32Error;
use windows_sys::Win32::Foundation::{ERROR_IO_PENDING, ERROR_MORE_DATA};
use windows_sys::Win32::Networking::WinSock::{
    WSARecv, WSARecvFrom, WSASend, WSASendTo, SOCKADDR, SOCKET, SOCKET_ERROR,
    SO_UPDATE_ACCEPT_CONTEXT, SO_UPDATE_CONNECT_CONTEXT, WSABUF, WSAEMSGSIZE, WSA_IO_PENDING,
};
use windows_sys::Win32::Storage::FileSystem::{ReadFile, WriteFile};

use crate::error;
use crate::kernel_handle::KernelHandle;
use crate::record::{OpKind, Record, ACCEPT_ADDR_LEN};
use crate::winsock;

/// What an issuing call answered at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Issue {
    /// A completion packet will come (pending, or done with a warning).
    Pending,
    /// Done at once with these bytes (a packet still comes, unless the
    /// handle skips completion on success).
    Done(usize),
    /// Never started: no packet.
    Failed(Win32Error),
}

fn classify_bool(ok: i32, n: u32) -> Issue {
    if ok != 0 {
        return Issue::Done(n as usize);
    }
    match error::last() {
        e if e.code() == ERROR_IO_PENDING || e.code() == ERROR_MORE_DATA => Issue::Pending,
        e => Issue::Failed(e),
    }
}

fn classify_wsa(r: i32, n: u32) -> Issue {
    if r != SOCKET_ERROR {
        return Issue::Done(n as usize);
    }
    match error::last_wsa() {
        e if e.code() == WSA_IO_PENDING as u32 || e.code() == WSAEMSGSIZE as u32 => Issue::Pending,
        e => Issue::Failed(e),
    }
}

/// Issues the operation of `rec` on `h`.
///
/// # Safety
/// `rec` is a live record, not shared, whose buffer (`ptr[..len]`) stays
/// valid until the operation's completion; the record itself stays valid
/// until then (or until this returns, when it returns `Failed`). After a
/// `Pending` or `Done` the caller must not touch the record unless it knows
/// no packet will come (skip-completion-on-success with `Done`).
pub(crate) unsafe fn issue(rec: *mut Record, h: &KernelHandle) -> Issue {
    // Only raw field pointers from here on: once the call is made, another
    // thread may own the record.
    // SAFETY: `rec` is live (contract); these reads happen before the call.
    let (kind, ptr, len) = unsafe { ((*rec).kind, (*rec).ptr, (*rec).len) };
    let len32 = u32::try_from(len).unwrap_or(u32::MAX);
    // SAFETY: as above; a field address, not a reference.
    let ov = unsafe { std::ptr::addr_of_mut!((*rec).ov) };
    let raw = h.raw();
    let mut n = 0u32;
    let wsabuf = WSABUF {
        len: len32,
        buf: ptr,
    };
    let socket = matches!(
        h.kind(),
        HandleKind::StreamSocket | HandleKind::DatagramSocket
    );
    match kind {
        OpKind::Read { .. } if !socket => {
            // SAFETY: buffer and OVERLAPPED live until completion (contract);
            // `n` is written only when the call completes at once.
            classify_bool(unsafe { ReadFile(raw as _, ptr, len32, &mut n, ov) }, n)
        }
        OpKind::Write { .. } if !socket => {
            // SAFETY: as for the read; a write only reads the buffer.
            classify_bool(unsafe { WriteFile(raw as _, ptr, len32, &mut n, ov) }, n)
        }
        OpKind::Read { .. } => {
            // SAFETY: Winsock copies the WSABUF during the call; the buffer,
            // flags and OVERLAPPED live in the record until completion.
            let flags = unsafe { std::ptr::addr_of_mut!((*rec).flags) };
            classify_wsa(
                // SAFETY: as above.
                unsafe { WSARecv(raw as SOCKET, &wsabuf, 1, &mut n, flags, ov, None) },
                n,
            )
        }
        OpKind::Write { .. } => {
            // SAFETY: as for WSARecv; a send only reads the buffer.
            classify_wsa(
                unsafe { WSASend(raw as SOCKET, &wsabuf, 1, &mut n, 0, ov, None) },
                n,
            )
        }
        OpKind::RecvFrom => {
            // SAFETY: the source address and its length live in the record
            // until completion, as Winsock requires for an overlapped call.
            let (flags, from, from_len) = unsafe {
                (
                    std::ptr::addr_of_mut!((*rec).flags),
                    std::ptr::addr_of_mut!((*rec).addr.storage).cast::<SOCKADDR>(),
                    std::ptr::addr_of_mut!((*rec).addr.len),
                )
            };
            classify_wsa(
                // SAFETY: as above.
                unsafe {
                    WSARecvFrom(
                        raw as SOCKET,
                        &wsabuf,
                        1,
                        &mut n,
                        flags,
                        from,
                        from_len,
                        ov,
                        None,
                    )
                },
                n,
            )
        }
        OpKind::SendTo(_) => {
            // SAFETY: the destination lives in the record until completion.
            let (to, to_len) = unsafe {
                (
                    std::ptr::addr_of!((*rec).addr.storage).cast::<SOCKADDR>(),
                    (*rec).addr.len,
                )
            };
            classify_wsa(
                // SAFETY: as above.
                unsafe { WSASendTo(raw as SOCKET, &wsabuf, 1, &mut n, 0, to, to_len, ov, None) },
                n,
            )
        }
        OpKind::Accept => {
            let ext = match winsock::extensions(raw as SOCKET) {
                Ok(e) => e,
                Err(e) => return Issue::Failed(e),
            };
            // SAFETY: the accept slot was filled by the caller; its output
            // buffer lives in the record until completion.
            let (accept, out) = unsafe {
                match (*rec).accept.as_mut() {
                    Some(slot) => (
                        slot.socket.as_ref().map(|s| s.as_raw_socket() as SOCKET),
                        slot.out.as_mut_ptr(),
                    ),
                    None => (None, std::ptr::null_mut()),
                }
            };
            let (Some(accept), Some(accept_ex)) = (accept, ext.accept_ex) else {
                return Issue::Failed(Win32Error::INVALID_PARAMETER);
            };
            classify_bool(
                // SAFETY: listening and accept sockets are open; the output
                // buffer holds two addresses of ACCEPT_ADDR_LEN and no data.
                unsafe {
                    accept_ex(
                        raw as SOCKET,
                        accept,
                        out.cast(),
                        0,
                        ACCEPT_ADDR_LEN,
                        ACCEPT_ADDR_LEN,
                        &mut n,
                        ov,
                    )
                },
                n,
            )
        }
        OpKind::Connect(_) => {
            let ext = match winsock::extensions(raw as SOCKET) {
                Ok(e) => e,
                Err(e) => return Issue::Failed(e),
            };
            let Some(connect_ex) = ext.connect_ex else {
                return Issue::Failed(Win32Error::NOT_SUPPORTED);
            };
            // SAFETY: the destination lives in the record until completion.
            let (to, to_len) = unsafe {
                (
                    std::ptr::addr_of!((*rec).addr.storage).cast::<SOCKADDR>(),
                    (*rec).addr.len,
                )
            };
            classify_bool(
                // SAFETY: a bound, unconnected socket; no data to send.
                unsafe { connect_ex(raw as SOCKET, to, to_len, std::ptr::null(), 0, &mut n, ov) },
                n,
            )
        }
    }
}

/// What a finished operation yields besides its buffer.
pub(crate) struct Outcome {
    pub(crate) result: Result<usize, Win32Error>,
    pub(crate) addr: Option<SocketAddr>,
    pub(crate) accepted: Option<std::net::TcpStream>,
}

/// The result of the operation of `rec` on `h`, finished with `status`
/// and `bytes`: an accept's connection is made usable
/// (`SO_UPDATE_ACCEPT_CONTEXT`) and its peer read; a connect's socket gets
/// `SO_UPDATE_CONNECT_CONTEXT`.
pub(crate) fn complete(
    rec: &mut Record,
    h: &KernelHandle,
    status: Win32Error,
    bytes: usize,
) -> Outcome {
    let status = if status == Win32Error::NETNAME_DELETED && h.kind() == HandleKind::StreamSocket {
        Win32Error::WSAECONNRESET
    } else {
        status
    };
    let mut out = Outcome {
        result: if status.is_success() {
            Ok(bytes)
        } else {
            Err(status)
        },
        addr: None,
        accepted: None,
    };
    match rec.kind {
        OpKind::SendTo(a) => out.addr = Some(a),
        OpKind::RecvFrom if status.is_success() => out.addr = winsock::from_sockaddr(&rec.addr),
        OpKind::Connect(a) => {
            out.addr = Some(a);
            if status.is_success() {
                if let Err(e) =
                    winsock::set_option::<u8>(h.raw() as SOCKET, SO_UPDATE_CONNECT_CONTEXT, None)
                {
                    out.result = Err(e);
                }
            }
        }
        OpKind::Accept => {
            let Some(slot) = rec.accept.as_mut() else {
                return out;
            };
            let socket = slot.socket.take();
            if let (true, Some(s)) = (status.is_success(), socket) {
                match accepted(h, s, &slot.out) {
                    Ok((stream, peer)) => {
                        out.result = Ok(0);
                        out.addr = peer;
                        out.accepted = Some(stream);
                    }
                    Err(e) => out.result = Err(e),
                }
            }
        }
        _ => {}
    }
    out
}

/// Finishes an accepted socket: inherits the listener's properties, reads
/// the peer from `AcceptEx`'s output buffer.
fn accepted(
    listener: &KernelHandle,
    s: OwnedSocket,
    out: &[u8; 2 * ACCEPT_ADDR_LEN as usize],
) -> Result<(std::net::TcpStream, Option<SocketAddr>), Win32Error> {
    let listen = listener.raw() as SOCKET;
    winsock::set_option(
        s.as_raw_socket() as SOCKET,
        SO_UPDATE_ACCEPT_CONTEXT,
        Some(&listen),
    )?;
    let get = winsock::extensions(listen)?
        .get_accept_ex_sockaddrs
        .ok_or(Win32Error::NOT_SUPPORTED)?;
    let (mut local, mut remote) = (
        std::ptr::null_mut::<SOCKADDR>(),
        std::ptr::null_mut::<SOCKADDR>(),
    );
    let (mut llen, mut rlen) = (0i32, 0i32);
    // SAFETY: `out` is the buffer AcceptEx filled with two addresses of
    // ACCEPT_ADDR_LEN and no data; the out-pointers are locals.
    unsafe {
        get(
            out.as_ptr().cast(),
            0,
            ACCEPT_ADDR_LEN,
            ACCEPT_ADDR_LEN,
            &mut local,
            &mut llen,
            &mut remote,
            &mut rlen,
        )
    };
    // SAFETY: GetAcceptExSockaddrs points `remote` into `out` with `rlen`
    // valid bytes (or leaves it null).
    let peer = unsafe { winsock::from_sockaddr_ptr(remote, rlen) };
    Ok((std::net::TcpStream::from(s), peer))
}
