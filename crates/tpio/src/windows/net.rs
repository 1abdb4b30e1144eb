//! Sockets on Windows: [`TcpListener`], [`TcpStream`], [`UdpSocket`]
//! (Winsock sockets created with `WSA_FLAG_OVERLAPPED`, as std creates
//! them). `UnixStream` exists on Unix only.
//!
//! Owns creating sockets and their blocking calls (`accept_blocking`,
//! `recv_blocking`, …, which `cancel_synchronous_io` interrupts). It must
//! never do overlapped I/O itself: that goes through a
//! [`ThreadpoolIo`](crate::ThreadpoolIo) bound to the socket.

use std::net::{SocketAddr, ToSocketAddrs};
use std::os::windows::io::{AsRawSocket, RawSocket};

use tpio_core::driver::HandleKind;
use tpio_core::Win32Error;
use tpio_windows::kernel_handle::{self, KernelHandle, OsObject};
use tpio_windows::sync_call::{self, Buf};
use tpio_windows::OpKind;

use crate::windows::handle::{overlapped_handle, OverlappedHandle, Owner};
use crate::Backend;

/// A TCP connection.
pub struct TcpStream {
    pub(crate) owner: Owner,
}

impl TcpStream {
    pub(crate) fn wrap(s: std::net::TcpStream) -> TcpStream {
        TcpStream {
            owner: Owner(KernelHandle::new(
                OsObject::Tcp(s),
                HandleKind::StreamSocket,
            )),
        }
    }

    /// Connects, blocking the calling thread.
    pub fn connect(addr: impl ToSocketAddrs) -> std::io::Result<TcpStream> {
        Self::from_std(std::net::TcpStream::connect(addr)?)
    }

    /// A TCP socket of `to`'s family, bound, not connected yet, for an
    /// overlapped [`connect`](crate::ThreadpoolIo::connect) (`ConnectEx`).
    pub fn unconnected(to: &SocketAddr) -> std::io::Result<TcpStream> {
        Self::unconnected_on(to, &Backend::process()?)
    }

    /// As [`unconnected`](Self::unconnected); on Windows `backend` is kernel32.
    pub fn unconnected_on(to: &SocketAddr, _backend: &Backend) -> std::io::Result<TcpStream> {
        Ok(Self::wrap(kernel_handle::unconnected_tcp(to)?))
    }

    /// Takes over a std stream (std's sockets are overlapped).
    pub fn from_std(s: std::net::TcpStream) -> std::io::Result<TcpStream> {
        Self::from_std_on(s, &Backend::process()?)
    }

    /// As [`from_std`](Self::from_std); on Windows `backend` is kernel32.
    pub fn from_std_on(s: std::net::TcpStream, _backend: &Backend) -> std::io::Result<TcpStream> {
        Ok(Self::wrap(s))
    }

    fn std(&self) -> std::io::Result<&std::net::TcpStream> {
        match self.owner.0.os() {
            OsObject::Tcp(s) => Ok(s),
            _ => Err(std::io::ErrorKind::Unsupported.into()),
        }
    }

    /// The local address.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.std()?.local_addr()
    }

    /// The peer's address.
    pub fn peer_addr(&self) -> std::io::Result<SocketAddr> {
        self.std()?.peer_addr()
    }

    /// `shutdown`: no more sends, receives or both; Winsock fails later
    /// `WSASend`/`WSARecv` that way with `WSAESHUTDOWN` (10058).
    pub fn shutdown(&self, how: std::net::Shutdown) -> std::io::Result<()> {
        self.std()?.shutdown(how)
    }

    /// Synchronous `recv`: see
    /// [`read_blocking`](crate::OverlappedHandle::read_blocking) (`Ok(0)`
    /// when the peer closed).
    pub fn recv_blocking(&self, buf: &mut [u8]) -> Result<usize, Win32Error> {
        self.read_blocking(buf)
    }

    /// Synchronous `send`.
    pub fn send_blocking(&self, buf: &[u8]) -> Result<usize, Win32Error> {
        self.write_blocking(buf)
    }
}

/// A listening TCP socket.
pub struct TcpListener {
    pub(crate) owner: Owner,
}

impl TcpListener {
    /// Binds and listens.
    pub fn bind(addr: impl ToSocketAddrs) -> std::io::Result<TcpListener> {
        Self::from_std_on(std::net::TcpListener::bind(addr)?, &Backend::process()?)
    }

    /// Takes over a listening std socket; on Windows `backend` is kernel32.
    pub fn from_std_on(
        l: std::net::TcpListener,
        _backend: &Backend,
    ) -> std::io::Result<TcpListener> {
        Ok(TcpListener {
            owner: Owner(KernelHandle::new(
                OsObject::Listener(l),
                HandleKind::StreamSocket,
            )),
        })
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        match self.owner.0.os() {
            OsObject::Listener(l) => l.local_addr(),
            _ => Err(std::io::ErrorKind::Unsupported.into()),
        }
    }

    /// Synchronous `accept` (an `AcceptEx` waited for): blocks until a
    /// connection arrives; another thread's
    /// [`cancel_synchronous_io`](crate::cancel_synchronous_io) ends it with
    /// `ERROR_OPERATION_ABORTED` (995).
    pub fn accept_blocking(&self) -> Result<(TcpStream, SocketAddr), Win32Error> {
        let d = sync_call::call(&self.owner.0, OpKind::Accept, Buf::None)?;
        let s = d.accepted.ok_or(Win32Error::INTERNAL_ERROR)?;
        let peer = d.addr.ok_or(Win32Error::INVALID_PARAMETER)?;
        Ok((TcpStream::wrap(s), peer))
    }
}

/// A UDP socket.
pub struct UdpSocket {
    pub(crate) owner: Owner,
}

impl UdpSocket {
    /// Binds to `addr`.
    pub fn bind(addr: impl ToSocketAddrs) -> std::io::Result<UdpSocket> {
        Self::from_std_on(std::net::UdpSocket::bind(addr)?, &Backend::process()?)
    }

    /// Takes over a std UDP socket; on Windows `backend` is kernel32.
    pub fn from_std_on(s: std::net::UdpSocket, _backend: &Backend) -> std::io::Result<UdpSocket> {
        Ok(UdpSocket {
            owner: Owner(KernelHandle::new(
                OsObject::Udp(s),
                HandleKind::DatagramSocket,
            )),
        })
    }

    /// Synchronous `recvfrom`: one datagram and its sender; cancellable by
    /// [`cancel_synchronous_io`](crate::cancel_synchronous_io) (995).
    pub fn recv_from_blocking(&self, buf: &mut [u8]) -> Result<(usize, SocketAddr), Win32Error> {
        let d = sync_call::call(&self.owner.0, OpKind::RecvFrom, Buf::In(buf))?;
        Ok((d.bytes, d.addr.ok_or(Win32Error::INVALID_PARAMETER)?))
    }

    /// Synchronous `sendto`: one datagram to `to`.
    pub fn send_to_blocking(&self, buf: &[u8], to: SocketAddr) -> Result<usize, Win32Error> {
        sync_call::call(&self.owner.0, OpKind::SendTo(to), Buf::Out(buf)).map(|d| d.bytes)
    }

    /// The local address.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        match self.owner.0.os() {
            OsObject::Udp(s) => s.local_addr(),
            _ => Err(std::io::ErrorKind::Unsupported.into()),
        }
    }
}

macro_rules! as_raw_socket {
    ($($t:ident),*) => {$(
        impl AsRawSocket for $t {
            fn as_raw_socket(&self) -> RawSocket {
                self.owner.0.raw() as RawSocket
            }
        }
    )*};
}
as_raw_socket!(TcpStream, TcpListener, UdpSocket);

overlapped_handle!(TcpStream);
overlapped_handle!(TcpListener);
overlapped_handle!(UdpSocket);
