//! Socket addresses between Rust's [`SocketAddr`] and the OS layout the
//! drivers use ([`AddrBuf`], a `sockaddr_storage`).
//!
//! Owns the two conversions and nothing else; it never makes a system call.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

use tpio_core::driver::AddrBuf;

/// `addr` in the OS's `sockaddr_in` / `sockaddr_in6` layout.
pub(crate) fn to_addr_buf(addr: SocketAddr) -> AddrBuf {
    let mut out = AddrBuf::default();
    match addr {
        SocketAddr::V4(a) => {
            // SAFETY: all-zero is a valid sockaddr_in.
            let mut sin: libc::sockaddr_in = unsafe { std::mem::zeroed() };
            sin.sin_family = libc::AF_INET as libc::sa_family_t;
            sin.sin_port = a.port().to_be();
            sin.sin_addr.s_addr = u32::from_ne_bytes(a.ip().octets());
            write(&mut out, &sin);
        }
        SocketAddr::V6(a) => {
            // SAFETY: all-zero is a valid sockaddr_in6.
            let mut sin6: libc::sockaddr_in6 = unsafe { std::mem::zeroed() };
            sin6.sin6_family = libc::AF_INET6 as libc::sa_family_t;
            sin6.sin6_port = a.port().to_be();
            sin6.sin6_flowinfo = a.flowinfo().to_be();
            sin6.sin6_addr.s6_addr = a.ip().octets();
            sin6.sin6_scope_id = a.scope_id();
            write(&mut out, &sin6);
        }
    }
    out
}

fn write<T: Copy>(out: &mut AddrBuf, v: &T) {
    let n = std::mem::size_of::<T>();
    assert!(
        n <= out.bytes.len(),
        "sockaddr larger than sockaddr_storage"
    );
    // SAFETY: `v` is a plain C struct of `n` bytes (no padding is read as
    // anything but bytes), and `out.bytes` has room for `n` (checked above).
    unsafe {
        std::ptr::copy_nonoverlapping((v as *const T).cast::<u8>(), out.bytes.as_mut_ptr(), n)
    };
    out.len = n as u32;
}

fn read<T: Copy>(buf: &AddrBuf) -> Option<T> {
    let n = std::mem::size_of::<T>();
    if (buf.len as usize) < n || n > buf.bytes.len() {
        return None;
    }
    // SAFETY: `buf.bytes` holds at least `n` initialised bytes (checked
    // above); `T` is a C sockaddr struct, valid for any bit pattern; the
    // read is unaligned-safe.
    Some(unsafe { std::ptr::read_unaligned(buf.bytes.as_ptr().cast::<T>()) })
}

/// The address an `AddrBuf` holds, if it is IPv4 or IPv6.
pub(crate) fn from_addr_buf(buf: &AddrBuf) -> Option<SocketAddr> {
    // BSD-derived systems lead with a length byte, then an 8-bit family.
    #[cfg(any(target_os = "macos", target_os = "ios", target_os = "freebsd"))]
    let family = u16::from(buf.bytes[1]);
    #[cfg(not(any(target_os = "macos", target_os = "ios", target_os = "freebsd")))]
    let family = u16::from_ne_bytes([buf.bytes[0], buf.bytes[1]]);
    match i32::from(family) {
        libc::AF_INET => {
            let sin: libc::sockaddr_in = read(buf)?;
            let ip = Ipv4Addr::from(sin.sin_addr.s_addr.to_ne_bytes());
            Some(SocketAddr::V4(SocketAddrV4::new(
                ip,
                u16::from_be(sin.sin_port),
            )))
        }
        libc::AF_INET6 => {
            let s: libc::sockaddr_in6 = read(buf)?;
            Some(SocketAddr::V6(SocketAddrV6::new(
                Ipv6Addr::from(s.sin6_addr.s6_addr),
                u16::from_be(s.sin6_port),
                u32::from_be(s.sin6_flowinfo),
                s.sin6_scope_id,
            )))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v4_and_v6_round_trip() {
        for a in [
            "127.0.0.1:8080".parse::<SocketAddr>(),
            "[::1]:443".parse::<SocketAddr>(),
            "10.1.2.3:0".parse::<SocketAddr>(),
        ] {
            let a = a.expect("literal");
            assert_eq!(from_addr_buf(&to_addr_buf(a)), Some(a));
        }
    }

    #[test]
    fn empty_buffer_is_no_address() {
        let b = AddrBuf {
            len: 0,
            ..AddrBuf::default()
        };
        assert_eq!(from_addr_buf(&b), None);
    }
}
