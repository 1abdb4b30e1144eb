//! Sockets for overlapped I/O: [`UnixStream`] pairs, [`TcpListener`],
//! [`TcpStream`], [`UdpSocket`].
//!
//! Owns creating sockets and the blocking helpers of this first cut
//! (`bind`, `connect`, `accept` run on the calling thread through std; the
//! overlapped `AcceptEx` / `ConnectEx` shapes come later). It must never do
//! overlapped I/O itself: that goes through a
//! [`ThreadpoolIo`](crate::ThreadpoolIo) bound to the socket.

use std::fmt;
use std::net::{SocketAddr, ToSocketAddrs};

use std::os::fd::{FromRawFd, RawFd};

#[cfg(any(target_os = "linux", target_os = "android", target_os = "freebsd"))]
const SOCK_CLOEXEC: i32 = libc::SOCK_CLOEXEC;
/// Where `SOCK_CLOEXEC` does not exist (macOS), the descriptor is marked
/// close-on-exec right after.
#[cfg(not(any(target_os = "linux", target_os = "android", target_os = "freebsd")))]
const SOCK_CLOEXEC: i32 = 0;

use tpio_core::driver::{AddrBuf, HandleKind, OpKind};
use tpio_core::Win32Error;

use crate::addr::{from_addr_buf, to_addr_buf};
use crate::handle::{overlapped_handle, HandleCore, Os, OverlappedHandle, Owner};
use crate::Backend;

/// One end of a connected Unix-domain stream socket pair.
pub struct UnixStream {
    pub(crate) owner: Owner,
}

impl UnixStream {
    /// A connected pair (`socketpair(AF_UNIX, SOCK_STREAM)`), carried by
    /// the process's backend.
    pub fn pair() -> std::io::Result<(UnixStream, UnixStream)> {
        Self::pair_on(&Backend::process()?)
    }

    /// A connected pair carried by `backend`.
    pub fn pair_on(backend: &Backend) -> std::io::Result<(UnixStream, UnixStream)> {
        let (a, b) = std::os::unix::net::UnixStream::pair()?;
        Ok((
            UnixStream {
                owner: Owner(HandleCore::new(
                    Os::Unix(a),
                    HandleKind::StreamSocket,
                    backend,
                )?),
            },
            UnixStream {
                owner: Owner(HandleCore::new(
                    Os::Unix(b),
                    HandleKind::StreamSocket,
                    backend,
                )?),
            },
        ))
    }
}

/// A TCP connection.
pub struct TcpStream {
    pub(crate) owner: Owner,
}

impl TcpStream {
    /// Connects, blocking the calling thread (first cut: no overlapped
    /// `ConnectEx` yet).
    pub fn connect(addr: impl ToSocketAddrs) -> std::io::Result<TcpStream> {
        Self::from_std(std::net::TcpStream::connect(addr)?)
    }

    /// A TCP socket not connected yet, of `to`'s address family, for an
    /// overlapped [`connect`](crate::ThreadpoolIo::connect) (`ConnectEx`),
    /// carried by the process's backend.
    pub fn unconnected(to: &SocketAddr) -> std::io::Result<TcpStream> {
        Self::unconnected_on(to, &Backend::process()?)
    }

    /// As [`unconnected`](Self::unconnected), carried by `backend`.
    pub fn unconnected_on(to: &SocketAddr, backend: &Backend) -> std::io::Result<TcpStream> {
        let domain = if to.is_ipv4() {
            libc::AF_INET
        } else {
            libc::AF_INET6
        };
        // SAFETY: socket(2) with constant arguments reads no memory of ours.
        let fd = unsafe { libc::socket(domain, libc::SOCK_STREAM | SOCK_CLOEXEC, 0) };
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: a new descriptor nobody else owns, wrapped exactly once.
        let s = unsafe { std::net::TcpStream::from_raw_fd(fd) };
        if SOCK_CLOEXEC == 0 {
            // SAFETY: F_SETFD on a descriptor we own; no memory is read.
            if unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) } < 0 {
                return Err(std::io::Error::last_os_error());
            }
        }
        Self::from_std_on(s, backend)
    }

    /// Takes over a connected std stream (carried by the process's backend).
    pub fn from_std(s: std::net::TcpStream) -> std::io::Result<TcpStream> {
        Self::from_std_on(s, &Backend::process()?)
    }

    /// Takes over a connected std stream, carried by `backend`.
    pub fn from_std_on(s: std::net::TcpStream, backend: &Backend) -> std::io::Result<TcpStream> {
        Ok(TcpStream {
            owner: Owner(HandleCore::new(
                Os::Tcp(s),
                HandleKind::StreamSocket,
                backend,
            )?),
        })
    }

    /// The local address.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        match &self.owner.0.os {
            Os::Tcp(s) => s.local_addr(),
            _ => Err(std::io::ErrorKind::Unsupported.into()),
        }
    }

    /// Synchronous `recv`: see
    /// [`read_blocking`](crate::OverlappedHandle::read_blocking) (`Ok(0)`
    /// when the peer closed; `WSAECONNRESET` when it reset).
    pub fn recv_blocking(&self, buf: &mut [u8]) -> Result<usize, Win32Error> {
        self.read_blocking(buf)
    }

    /// Synchronous `send`: see
    /// [`write_blocking`](crate::OverlappedHandle::write_blocking).
    pub fn send_blocking(&self, buf: &[u8]) -> Result<usize, Win32Error> {
        self.write_blocking(buf)
    }

    /// The peer's address.
    pub fn peer_addr(&self) -> std::io::Result<SocketAddr> {
        match &self.owner.0.os {
            Os::Tcp(s) => s.peer_addr(),
            _ => Err(std::io::ErrorKind::Unsupported.into()),
        }
    }

    /// `shutdown`: no more sends (`Write`: the peer reads the end of the
    /// stream), receives (`Read`) or both. From then on an operation issued
    /// that way fails at issue with `WSAESHUTDOWN` (10058), as `WSASend`
    /// and `WSARecv` do on Windows (rule 3, `spec/semantics.md`); ones in
    /// flight go on as the OS decides.
    pub fn shutdown(&self, how: std::net::Shutdown) -> std::io::Result<()> {
        let Os::Tcp(s) = &self.owner.0.os else {
            return Err(std::io::ErrorKind::Unsupported.into());
        };
        s.shutdown(how)?;
        let (read, write) = match how {
            std::net::Shutdown::Read => (true, false),
            std::net::Shutdown::Write => (false, true),
            std::net::Shutdown::Both => (true, true),
        };
        self.owner.0.ops.shut_down(read, write);
        Ok(())
    }
}

/// A listening TCP socket.
pub struct TcpListener {
    pub(crate) owner: Owner,
}

impl TcpListener {
    /// Binds and listens (carried by the process's backend).
    pub fn bind(addr: impl ToSocketAddrs) -> std::io::Result<TcpListener> {
        Self::from_std_on(std::net::TcpListener::bind(addr)?, &Backend::process()?)
    }

    /// Takes over a listening std socket, carried by `backend`; the
    /// connections it accepts share that backend.
    pub fn from_std_on(
        l: std::net::TcpListener,
        backend: &Backend,
    ) -> std::io::Result<TcpListener> {
        Ok(TcpListener {
            owner: Owner(HandleCore::new(
                Os::Listener(l),
                HandleKind::StreamSocket,
                backend,
            )?),
        })
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        match &self.owner.0.os {
            Os::Listener(l) => l.local_addr(),
            _ => Err(std::io::ErrorKind::Unsupported.into()),
        }
    }

    /// Synchronous `accept`: blocks the calling thread until a connection
    /// arrives. Another thread's
    /// [`cancel_synchronous_io`](crate::cancel_synchronous_io) ends it with
    /// `ERROR_OPERATION_ABORTED` (995). The connection is carried by this
    /// listener's backend.
    pub fn accept_blocking(&self) -> Result<(TcpStream, SocketAddr), Win32Error> {
        let mut addr = AddrBuf::default();
        // SAFETY: `addr` lives on this frame for the whole call, which
        // returns only after the driver is done with it; no data buffer.
        let fd = unsafe {
            self.owner
                .0
                .blocking(OpKind::Accept, std::ptr::null_mut(), 0, &mut addr)
        }?;
        // SAFETY: a successful accept's result is a new descriptor that
        // nobody else owns; it is wrapped exactly once.
        let s = unsafe { std::net::TcpStream::from_raw_fd(fd as RawFd) };
        let peer = from_addr_buf(&addr).ok_or(Win32Error::INVALID_PARAMETER)?;
        let stream = TcpStream::from_std_on(s, &self.owner.0.backend)
            .map_err(|e| tpio_core::io_error_to_win32(&e))?;
        Ok((stream, peer))
    }
}

/// A UDP socket.
pub struct UdpSocket {
    pub(crate) owner: Owner,
}

impl UdpSocket {
    /// Binds to `addr` (carried by the process's backend).
    pub fn bind(addr: impl ToSocketAddrs) -> std::io::Result<UdpSocket> {
        Self::from_std_on(std::net::UdpSocket::bind(addr)?, &Backend::process()?)
    }

    /// Takes over a std UDP socket, carried by `backend`.
    pub fn from_std_on(s: std::net::UdpSocket, backend: &Backend) -> std::io::Result<UdpSocket> {
        Ok(UdpSocket {
            owner: Owner(HandleCore::new(
                Os::Udp(s),
                HandleKind::DatagramSocket,
                backend,
            )?),
        })
    }

    /// Synchronous `recvfrom`: one datagram and its sender; cancellable
    /// by [`cancel_synchronous_io`](crate::cancel_synchronous_io) (995).
    pub fn recv_from_blocking(&self, buf: &mut [u8]) -> Result<(usize, SocketAddr), Win32Error> {
        let mut addr = AddrBuf::default();
        // SAFETY: `buf` and `addr` outlive the call, which returns only
        // after the driver is done with them.
        let n = unsafe {
            self.owner
                .0
                .blocking(OpKind::RecvFrom, buf.as_mut_ptr(), buf.len(), &mut addr)
        }?;
        let from = from_addr_buf(&addr).ok_or(Win32Error::INVALID_PARAMETER)?;
        Ok((n, from))
    }

    /// Synchronous `sendto`: one datagram to `to`.
    pub fn send_to_blocking(&self, buf: &[u8], to: SocketAddr) -> Result<usize, Win32Error> {
        let mut addr = to_addr_buf(to);
        // SAFETY: as in `recv_from_blocking`; a send only reads `buf`.
        unsafe {
            self.owner.0.blocking(
                OpKind::SendTo,
                buf.as_ptr().cast_mut(),
                buf.len(),
                &mut addr,
            )
        }
    }

    /// The local address.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        match &self.owner.0.os {
            Os::Udp(s) => s.local_addr(),
            _ => Err(std::io::ErrorKind::Unsupported.into()),
        }
    }
}

overlapped_handle!(UnixStream);
overlapped_handle!(TcpStream);
overlapped_handle!(TcpListener);
overlapped_handle!(UdpSocket);

macro_rules! debug_as {
    ($($t:ident),*) => {$(
        impl fmt::Debug for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_tuple(stringify!($t)).field(&self.owner).finish()
            }
        }
    )*};
}
debug_as!(UnixStream, TcpStream, TcpListener, UdpSocket);
