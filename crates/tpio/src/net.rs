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

use tpio_core::driver::HandleKind;

use crate::handle::{overlapped_handle, HandleCore, Os, Owner};
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

    /// The peer's address.
    pub fn peer_addr(&self) -> std::io::Result<SocketAddr> {
        match &self.owner.0.os {
            Os::Tcp(s) => s.peer_addr(),
            _ => Err(std::io::ErrorKind::Unsupported.into()),
        }
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

    /// Accepts one connection, blocking the calling thread (first cut: no
    /// overlapped `AcceptEx` yet).
    pub fn accept_blocking(&self) -> std::io::Result<(TcpStream, SocketAddr)> {
        match &self.owner.0.os {
            Os::Listener(l) => {
                let (s, a) = l.accept()?;
                Ok((TcpStream::from_std_on(s, &self.owner.0.backend)?, a))
            }
            _ => Err(std::io::ErrorKind::Unsupported.into()),
        }
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
