//! Winsock pieces the overlapped socket calls need: `WSAStartup`, the
//! extension functions (`AcceptEx`, `ConnectEx`, `GetAcceptExSockaddrs`,
//! looked up with `WSAIoctl(SIO_GET_EXTENSION_FUNCTION_POINTER)`), new
//! overlapped sockets, and socket addresses between [`SocketAddr`] and
//! `SOCKADDR_STORAGE`.
//!
//! Owns only these conversions and look-ups; it never issues I/O (that is
//! `issue.rs`) and never keeps a socket it creates (the caller owns it).

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::windows::io::{FromRawSocket, OwnedSocket, RawSocket};
use std::sync::OnceLock;

use tpio_core::Win32Error;
use windows_sys::core::GUID;
use windows_sys::Win32::Networking::WinSock::{
    bind, setsockopt, WSAIoctl, WSASocketW, WSAStartup, AF_INET, AF_INET6, IN6_ADDR, IN6_ADDR_0,
    INVALID_SOCKET, IN_ADDR, IN_ADDR_0, IPPROTO_TCP, LPFN_ACCEPTEX, LPFN_CONNECTEX,
    LPFN_GETACCEPTEXSOCKADDRS, SIO_GET_EXTENSION_FUNCTION_POINTER, SOCKADDR, SOCKADDR_IN,
    SOCKADDR_IN6, SOCKADDR_IN6_0, SOCKADDR_STORAGE, SOCKET, SOCKET_ERROR, SOCK_STREAM, SOL_SOCKET,
    WSADATA, WSAID_ACCEPTEX, WSAID_CONNECTEX, WSAID_GETACCEPTEXSOCKADDRS,
    WSA_FLAG_NO_HANDLE_INHERIT, WSA_FLAG_OVERLAPPED,
};

use crate::error;

/// A socket address in Winsock's layout, with its length.
#[derive(Clone, Copy)]
pub(crate) struct SockAddr {
    pub(crate) storage: SOCKADDR_STORAGE,
    pub(crate) len: i32,
}

impl Default for SockAddr {
    fn default() -> Self {
        SockAddr {
            storage: SOCKADDR_STORAGE::default(),
            len: std::mem::size_of::<SOCKADDR_STORAGE>() as i32,
        }
    }
}

impl SockAddr {
    pub(crate) fn as_ptr(&self) -> *const SOCKADDR {
        (&self.storage as *const SOCKADDR_STORAGE).cast()
    }
}

fn put<T: Copy>(v: T) -> SockAddr {
    let mut out = SockAddr::default();
    let n = std::mem::size_of::<T>();
    // SAFETY: `T` is a sockaddr struct no larger than SOCKADDR_STORAGE
    // (sockaddr_in or sockaddr_in6), written at the start of the storage.
    unsafe {
        std::ptr::write_unaligned((&mut out.storage as *mut SOCKADDR_STORAGE).cast::<T>(), v)
    };
    out.len = n as i32;
    out
}

/// `addr` as a `SOCKADDR_IN` / `SOCKADDR_IN6`.
pub(crate) fn to_sockaddr(addr: SocketAddr) -> SockAddr {
    match addr {
        SocketAddr::V4(a) => put(SOCKADDR_IN {
            sin_family: AF_INET,
            sin_port: a.port().to_be(),
            sin_addr: IN_ADDR {
                S_un: IN_ADDR_0 {
                    S_addr: u32::from_ne_bytes(a.ip().octets()),
                },
            },
            sin_zero: [0; 8],
        }),
        SocketAddr::V6(a) => put(SOCKADDR_IN6 {
            sin6_family: AF_INET6,
            sin6_port: a.port().to_be(),
            sin6_flowinfo: a.flowinfo().to_be(),
            sin6_addr: IN6_ADDR {
                u: IN6_ADDR_0 {
                    Byte: a.ip().octets(),
                },
            },
            Anonymous: SOCKADDR_IN6_0 {
                sin6_scope_id: a.scope_id(),
            },
        }),
    }
}

/// The address at `p` (`len` bytes), if it is IPv4 or IPv6.
///
/// # Safety
/// `p` points to `len` readable bytes.
pub(crate) unsafe fn from_sockaddr_ptr(p: *const SOCKADDR, len: i32) -> Option<SocketAddr> {
    if p.is_null() || (len as usize) < std::mem::size_of::<u16>() {
        return None;
    }
    // SAFETY: at least the family is readable (checked above).
    let family = unsafe { std::ptr::read_unaligned(p.cast::<u16>()) };
    match family {
        AF_INET if len as usize >= std::mem::size_of::<SOCKADDR_IN>() => {
            // SAFETY: `len` covers a SOCKADDR_IN (checked), any bits valid.
            let s: SOCKADDR_IN = unsafe { std::ptr::read_unaligned(p.cast()) };
            // SAFETY: every member of the IN_ADDR union is plain bytes.
            let ip = Ipv4Addr::from(unsafe { s.sin_addr.S_un.S_addr }.to_ne_bytes());
            Some(SocketAddr::V4(SocketAddrV4::new(
                ip,
                u16::from_be(s.sin_port),
            )))
        }
        AF_INET6 if len as usize >= std::mem::size_of::<SOCKADDR_IN6>() => {
            // SAFETY: `len` covers a SOCKADDR_IN6 (checked), any bits valid.
            let s: SOCKADDR_IN6 = unsafe { std::ptr::read_unaligned(p.cast()) };
            // SAFETY: the unions hold plain bytes / a plain u32.
            let (ip, scope) = unsafe { (s.sin6_addr.u.Byte, s.Anonymous.sin6_scope_id) };
            Some(SocketAddr::V6(SocketAddrV6::new(
                Ipv6Addr::from(ip),
                u16::from_be(s.sin6_port),
                u32::from_be(s.sin6_flowinfo),
                scope,
            )))
        }
        _ => None,
    }
}

/// The address a [`SockAddr`] holds.
pub(crate) fn from_sockaddr(a: &SockAddr) -> Option<SocketAddr> {
    // SAFETY: the storage is `size_of::<SOCKADDR_STORAGE>()` bytes and `len`
    // is clamped to it.
    unsafe {
        from_sockaddr_ptr(
            a.as_ptr(),
            a.len
                .clamp(0, std::mem::size_of::<SOCKADDR_STORAGE>() as i32),
        )
    }
}

/// `WSAStartup(2.2)` once per process (std does it too when it makes a
/// socket; Winsock counts the calls).
pub(crate) fn startup() -> Result<(), Win32Error> {
    static DONE: OnceLock<Result<(), Win32Error>> = OnceLock::new();
    *DONE.get_or_init(|| {
        let mut data = WSADATA::default();
        // SAFETY: `data` is a writable WSADATA.
        match unsafe { WSAStartup(0x0202, &mut data) } {
            0 => Ok(()),
            e => Err(Win32Error::from_code(e as u32)),
        }
    })
}

/// The three extension functions of the TCP provider.
#[derive(Clone, Copy)]
pub(crate) struct Extensions {
    pub(crate) accept_ex: LPFN_ACCEPTEX,
    pub(crate) connect_ex: LPFN_CONNECTEX,
    pub(crate) get_accept_ex_sockaddrs: LPFN_GETACCEPTEXSOCKADDRS,
}

/// One extension function; `T` is its `LPFN_…` type (a nullable pointer).
fn lookup<T: Copy + Default>(s: SOCKET, guid: GUID) -> Result<T, Win32Error> {
    let mut f = T::default();
    let mut n = 0u32;
    // SAFETY: the input is a GUID of its size, the output a function-pointer
    // slot of its size (an `LPFN_…` is a nullable pointer); no overlap.
    let r = unsafe {
        WSAIoctl(
            s,
            SIO_GET_EXTENSION_FUNCTION_POINTER,
            (&guid as *const GUID).cast(),
            std::mem::size_of::<GUID>() as u32,
            (&mut f as *mut T).cast(),
            std::mem::size_of::<T>() as u32,
            &mut n,
            std::ptr::null_mut(),
            None,
        )
    };
    if r == SOCKET_ERROR {
        return Err(error::last_wsa());
    }
    Ok(f)
}

/// The extension functions, looked up once on a TCP socket `s`.
pub(crate) fn extensions(s: SOCKET) -> Result<Extensions, Win32Error> {
    static EXT: OnceLock<Extensions> = OnceLock::new();
    if let Some(e) = EXT.get() {
        return Ok(*e);
    }
    let e = Extensions {
        accept_ex: lookup(s, WSAID_ACCEPTEX)?,
        connect_ex: lookup(s, WSAID_CONNECTEX)?,
        get_accept_ex_sockaddrs: lookup(s, WSAID_GETACCEPTEXSOCKADDRS)?,
    };
    if e.accept_ex.is_none() || e.connect_ex.is_none() || e.get_accept_ex_sockaddrs.is_none() {
        return Err(Win32Error::NOT_SUPPORTED);
    }
    Ok(*EXT.get_or_init(|| e))
}

/// A new overlapped TCP socket of `addr`'s family, not inheritable.
pub(crate) fn tcp_socket(v6: bool) -> Result<OwnedSocket, Win32Error> {
    startup()?;
    let af = if v6 { AF_INET6 } else { AF_INET };
    // SAFETY: constant arguments; no protocol info.
    let s = unsafe {
        WSASocketW(
            i32::from(af),
            SOCK_STREAM,
            IPPROTO_TCP,
            std::ptr::null(),
            0,
            WSA_FLAG_OVERLAPPED | WSA_FLAG_NO_HANDLE_INHERIT,
        )
    };
    if s == INVALID_SOCKET {
        return Err(error::last_wsa());
    }
    // SAFETY: a new socket nobody else owns, wrapped exactly once.
    Ok(unsafe { OwnedSocket::from_raw_socket(s as RawSocket) })
}

/// `bind(s, addr)`.
pub(crate) fn bind_to(s: SOCKET, addr: SocketAddr) -> Result<(), Win32Error> {
    let a = to_sockaddr(addr);
    // SAFETY: `a` holds `a.len` bytes of a valid sockaddr.
    if unsafe { bind(s, a.as_ptr(), a.len) } == SOCKET_ERROR {
        return Err(error::last_wsa());
    }
    Ok(())
}

/// `setsockopt(s, SOL_SOCKET, opt, value)`.
pub(crate) fn set_option<T>(s: SOCKET, opt: i32, value: Option<&T>) -> Result<(), Win32Error> {
    let (p, n) = match value {
        Some(v) => (
            (v as *const T).cast::<u8>(),
            std::mem::size_of::<T>() as i32,
        ),
        None => (std::ptr::null(), 0),
    };
    // SAFETY: `p` is null with length 0, or points to a live `T` of `n` bytes.
    if unsafe { setsockopt(s, SOL_SOCKET, opt, p, n) } == SOCKET_ERROR {
        return Err(error::last_wsa());
    }
    Ok(())
}
