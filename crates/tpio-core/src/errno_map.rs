//! The errno → Win32 map the emulated drivers use for every kernel result.
//!
//! Owns one table, `ERRNO_TO_WIN32`, and the lookup over it. It names errno
//! values through `libc`'s constants (so the numbers are right on every Unix)
//! and makes no OS call. An errno the table does not know maps to
//! [`UNMAPPED_ERRNO`] (`ERROR_GEN_FAILURE`), and the driver is expected to
//! report it (a `tracing` event) so the table can grow.

use crate::Win32Error;

/// What an errno that the table does not know maps to: 31, `ERROR_GEN_FAILURE`,
/// which is also what Windows reports for a failure it cannot name.
pub const UNMAPPED_ERRNO: Win32Error = Win32Error::GEN_FAILURE;

#[cfg(unix)]
mod table {
    use super::Win32Error as W;

    /// (errno, Win32 code). Sorted by nothing in particular; looked up linearly
    /// on the error path only.
    pub const ERRNO_TO_WIN32: &[(i32, W)] = &[
        (0, W::SUCCESS),
        (libc::EPERM, W::ACCESS_DENIED),
        (libc::ENOENT, W::FILE_NOT_FOUND),
        (libc::EINTR, W::OPERATION_ABORTED),
        (libc::EIO, W::GEN_FAILURE),
        (libc::ENXIO, W::FILE_NOT_FOUND),
        (libc::E2BIG, W::INVALID_PARAMETER),
        (libc::EBADF, W::INVALID_HANDLE),
        (libc::EAGAIN, W::WSAEWOULDBLOCK),
        (libc::ENOMEM, W::NOT_ENOUGH_MEMORY),
        (libc::EACCES, W::ACCESS_DENIED),
        (libc::EFAULT, W::INVALID_PARAMETER),
        (libc::EBUSY, W::SHARING_VIOLATION),
        (libc::EEXIST, W::FILE_EXISTS),
        (libc::ENODEV, W::INVALID_FUNCTION),
        (libc::ENOTDIR, W::PATH_NOT_FOUND),
        (libc::EISDIR, W::ACCESS_DENIED),
        (libc::EINVAL, W::INVALID_PARAMETER),
        (libc::ENFILE, W::TOO_MANY_OPEN_FILES),
        (libc::EMFILE, W::TOO_MANY_OPEN_FILES),
        (libc::ENOTTY, W::INVALID_FUNCTION),
        (libc::EFBIG, W::DISK_FULL),
        (libc::ENOSPC, W::DISK_FULL),
        (libc::ESPIPE, W::INVALID_PARAMETER),
        (libc::EROFS, W::WRITE_PROTECT),
        (libc::EPIPE, W::BROKEN_PIPE),
        (libc::ENAMETOOLONG, W::INVALID_PARAMETER),
        (libc::ENOSYS, W::NOT_SUPPORTED),
        (libc::ENOTSUP, W::NOT_SUPPORTED),
        (libc::ECANCELED, W::OPERATION_ABORTED),
        (libc::ETIMEDOUT, W::WSAETIMEDOUT),
        (libc::ENOTSOCK, W::INVALID_HANDLE),
        (libc::EMSGSIZE, W::MORE_DATA),
        (libc::EADDRINUSE, W::WSAEADDRINUSE),
        (libc::EADDRNOTAVAIL, W::WSAEADDRNOTAVAIL),
        (libc::ENETUNREACH, W::NETWORK_UNREACHABLE),
        (libc::ENETDOWN, W::NETWORK_UNREACHABLE),
        (libc::EHOSTUNREACH, W::HOST_UNREACHABLE),
        (libc::ECONNABORTED, W::CONNECTION_ABORTED),
        (libc::ECONNRESET, W::WSAECONNRESET),
        (libc::ECONNREFUSED, W::CONNECTION_REFUSED),
        (libc::EISCONN, W::WSAEISCONN),
        (libc::ENOTCONN, W::WSAENOTCONN),
        (libc::ESHUTDOWN, W::WSAESHUTDOWN),
        (libc::EAFNOSUPPORT, W::INVALID_NETNAME),
        (libc::EDESTADDRREQ, W::INVALID_NETNAME),
        (libc::ENOBUFS, W::NOT_ENOUGH_MEMORY),
    ];
}

#[cfg(not(unix))]
mod table {
    use super::Win32Error as W;
    /// Off Unix no driver reports errno values; the table is empty.
    pub const ERRNO_TO_WIN32: &[(i32, W)] = &[];
}

pub use table::ERRNO_TO_WIN32;

/// Maps a (positive) errno to its Win32 code; unknown values map to
/// [`UNMAPPED_ERRNO`]. `EWOULDBLOCK` is `EAGAIN` on every platform tpio runs on.
///
/// ```
/// # #[cfg(unix)] {
/// use tpio_core::{errno_to_win32, Win32Error};
/// assert_eq!(errno_to_win32(libc::ECANCELED), Win32Error::OPERATION_ABORTED);
/// # }
/// ```
pub fn errno_to_win32(errno: i32) -> Win32Error {
    lookup(errno).unwrap_or(UNMAPPED_ERRNO)
}

/// Like [`errno_to_win32`] but says whether the table knew the value.
pub fn lookup(errno: i32) -> Option<Win32Error> {
    ERRNO_TO_WIN32
        .iter()
        .find(|(e, _)| *e == errno)
        .map(|(_, w)| *w)
}

/// Maps a `std::io::Error` to Win32: its raw errno where it has one, else its kind.
pub fn io_error_to_win32(e: &std::io::Error) -> Win32Error {
    if let Some(inner) = e.get_ref().and_then(|i| i.downcast_ref::<Win32Error>()) {
        return *inner;
    }
    if let Some(code) = e.raw_os_error() {
        return errno_to_win32(code);
    }
    use std::io::ErrorKind as K;
    match e.kind() {
        K::NotFound => Win32Error::FILE_NOT_FOUND,
        K::PermissionDenied => Win32Error::ACCESS_DENIED,
        K::ConnectionRefused => Win32Error::CONNECTION_REFUSED,
        K::ConnectionReset => Win32Error::WSAECONNRESET,
        K::ConnectionAborted => Win32Error::CONNECTION_ABORTED,
        K::NotConnected => Win32Error::WSAENOTCONN,
        K::AddrInUse => Win32Error::WSAEADDRINUSE,
        K::AddrNotAvailable => Win32Error::WSAEADDRNOTAVAIL,
        K::BrokenPipe => Win32Error::BROKEN_PIPE,
        K::AlreadyExists => Win32Error::ALREADY_EXISTS,
        K::InvalidInput => Win32Error::INVALID_PARAMETER,
        K::TimedOut => Win32Error::WSAETIMEDOUT,
        K::Interrupted => Win32Error::OPERATION_ABORTED,
        K::Unsupported => Win32Error::NOT_SUPPORTED,
        K::UnexpectedEof => Win32Error::HANDLE_EOF,
        K::OutOfMemory => Win32Error::NOT_ENOUGH_MEMORY,
        _ => UNMAPPED_ERRNO,
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    #[test]
    fn every_errno_appears_once() {
        let mut seen = std::collections::HashSet::new();
        for (e, _) in ERRNO_TO_WIN32 {
            assert!(seen.insert(*e), "errno {e} listed twice");
        }
    }

    #[test]
    fn the_codes_the_drivers_rely_on() {
        let cases = [
            (libc::ECANCELED, 995),
            (libc::EBADF, 6),
            (libc::EINVAL, 87),
            (libc::EPIPE, 109),
            (libc::ECONNRESET, 10054),
            (libc::ECONNREFUSED, 1225),
            (libc::ENOENT, 2),
            (libc::ENOMEM, 8),
            (libc::ENOSPC, 112),
            (libc::ENOSYS, 50),
        ];
        for (errno, code) in cases {
            assert_eq!(errno_to_win32(errno).code(), code, "errno {errno}");
        }
    }

    #[test]
    fn unknown_errno_is_reported_as_unmapped() {
        assert_eq!(lookup(100_000), None);
        assert_eq!(errno_to_win32(100_000), UNMAPPED_ERRNO);
    }

    #[test]
    fn io_errors_map_by_errno_then_kind() {
        let e = std::io::Error::from_raw_os_error(libc::EPIPE);
        assert_eq!(io_error_to_win32(&e), Win32Error::BROKEN_PIPE);
        let e = std::io::Error::new(std::io::ErrorKind::NotFound, "x");
        assert_eq!(io_error_to_win32(&e), Win32Error::FILE_NOT_FOUND);
        let e: std::io::Error = Win32Error::HANDLE_EOF.into();
        assert_eq!(io_error_to_win32(&e), Win32Error::HANDLE_EOF);
    }
}
