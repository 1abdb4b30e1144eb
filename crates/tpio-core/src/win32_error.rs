//! `Win32Error`: the result code every tpio call and callback speaks.
//!
//! Owns the numeric codes the rules of `spec/semantics.md` use, their
//! messages (in our own words) and the conversion to `std::io::Error`.
//! It must never depend on the host OS: the numbers are Win32's everywhere.

use std::fmt;

/// A Win32 error code (`GetLastError()` values), the same number on every OS.
///
/// `Win32Error::SUCCESS` (0) is what a callback receives for an operation that
/// completed normally; every other value names why it did not.
///
/// ```
/// use tpio_core::Win32Error;
/// let e = Win32Error::OPERATION_ABORTED;
/// assert_eq!(e.code(), 995);
/// assert_eq!(e.name(), Some("ERROR_OPERATION_ABORTED"));
/// let io: std::io::Error = e.into();
/// assert_eq!(io.raw_os_error(), None);
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Win32Error(u32);

macro_rules! codes {
    ($( $(#[$doc:meta])* $name:ident = $code:expr, $win:literal, $msg:literal; )*) => {
        impl Win32Error {
            $( $(#[$doc])* pub const $name: Win32Error = Win32Error($code); )*

            /// Every named code, in numeric order: (code, Win32 name, message).
            pub const TABLE: &'static [(Win32Error, &'static str, &'static str)] = &[
                $( (Win32Error($code), $win, $msg), )*
            ];
        }
    };
}

codes! {
    /// 0: the operation completed.
    SUCCESS = 0, "ERROR_SUCCESS", "the operation completed successfully";
    /// 1: the function is not supported for this handle or by this backend.
    INVALID_FUNCTION = 1, "ERROR_INVALID_FUNCTION", "the operation is not supported for this handle";
    /// 2: the file does not exist.
    FILE_NOT_FOUND = 2, "ERROR_FILE_NOT_FOUND", "the file was not found";
    /// 3: a directory in the path does not exist.
    PATH_NOT_FOUND = 3, "ERROR_PATH_NOT_FOUND", "a directory in the path was not found";
    /// 4: the process has too many open handles.
    TOO_MANY_OPEN_FILES = 4, "ERROR_TOO_MANY_OPEN_FILES", "too many handles are open";
    /// 5: permission denied.
    ACCESS_DENIED = 5, "ERROR_ACCESS_DENIED", "access was denied";
    /// 6: the handle is not open, or not of a kind this call accepts.
    INVALID_HANDLE = 6, "ERROR_INVALID_HANDLE", "the handle is not valid";
    /// 8: memory or another system resource ran out.
    NOT_ENOUGH_MEMORY = 8, "ERROR_NOT_ENOUGH_MEMORY", "not enough memory to complete the operation";
    /// 19: the medium is write-protected / read-only file system.
    WRITE_PROTECT = 19, "ERROR_WRITE_PROTECT", "the file system is read-only";
    /// 31: the device or kernel reported a failure tpio cannot name more exactly.
    GEN_FAILURE = 31, "ERROR_GEN_FAILURE", "the system reported a failure it did not name";
    /// 32: the file is in use.
    SHARING_VIOLATION = 32, "ERROR_SHARING_VIOLATION", "the file is in use";
    /// 38: end of file.
    HANDLE_EOF = 38, "ERROR_HANDLE_EOF", "the end of the file was reached";
    /// 50: the request is not supported.
    NOT_SUPPORTED = 50, "ERROR_NOT_SUPPORTED", "the request is not supported";
    /// 64: the network name is no longer available (peer went away).
    NETNAME_DELETED = 64, "ERROR_NETNAME_DELETED", "the peer is no longer available";
    /// 80: the file already exists.
    FILE_EXISTS = 80, "ERROR_FILE_EXISTS", "the file already exists";
    /// 87: a parameter is out of range or inconsistent.
    INVALID_PARAMETER = 87, "ERROR_INVALID_PARAMETER", "a parameter is not valid";
    /// 109: the other end of the pipe was closed.
    BROKEN_PIPE = 109, "ERROR_BROKEN_PIPE", "the pipe has been ended";
    /// 112: the disk is full.
    DISK_FULL = 112, "ERROR_DISK_FULL", "there is not enough space on the disk";
    /// 121: the operation timed out.
    SEM_TIMEOUT = 121, "ERROR_SEM_TIMEOUT", "the operation timed out";
    /// 122: the buffer is too small for the data.
    INSUFFICIENT_BUFFER = 122, "ERROR_INSUFFICIENT_BUFFER", "the buffer is too small";
    /// 183: the object already exists.
    ALREADY_EXISTS = 183, "ERROR_ALREADY_EXISTS", "the object already exists";
    /// 232: the pipe is being closed.
    NO_DATA = 232, "ERROR_NO_DATA", "the pipe is being closed";
    /// 234: more data is available than the buffer holds.
    MORE_DATA = 234, "ERROR_MORE_DATA", "more data is available";
    /// 258: a wait timed out.
    WAIT_TIMEOUT = 258, "WAIT_TIMEOUT", "the wait timed out";
    /// 995: the operation was cancelled (thread exit or a cancel request).
    OPERATION_ABORTED = 995, "ERROR_OPERATION_ABORTED", "the operation was cancelled";
    /// 996: the overlapped operation has not completed yet.
    IO_INCOMPLETE = 996, "ERROR_IO_INCOMPLETE", "the overlapped operation is still in progress";
    /// 997: the overlapped operation was started and will complete later.
    IO_PENDING = 997, "ERROR_IO_PENDING", "the overlapped operation is in progress";
    /// 1131: the call would wait on itself (tpio's diagnosis of a self-deadlock).
    POSSIBLE_DEADLOCK = 1131, "ERROR_POSSIBLE_DEADLOCK", "the call would wait for itself and deadlock";
    /// 1168: nothing matched (no operation to cancel, nothing blocked).
    NOT_FOUND = 1168, "ERROR_NOT_FOUND", "no matching operation was found";
    /// 1214: a network address is malformed.
    INVALID_NETNAME = 1214, "ERROR_INVALID_NETNAME", "the network address is not valid";
    /// 1225: the peer refused the connection.
    CONNECTION_REFUSED = 1225, "ERROR_CONNECTION_REFUSED", "the remote system refused the connection";
    /// 1229: the connection is not established.
    CONNECTION_INVALID = 1229, "ERROR_CONNECTION_INVALID", "the connection is not established";
    /// 1231: the network cannot be reached.
    NETWORK_UNREACHABLE = 1231, "ERROR_NETWORK_UNREACHABLE", "the network cannot be reached";
    /// 1232: the host cannot be reached.
    HOST_UNREACHABLE = 1232, "ERROR_HOST_UNREACHABLE", "the host cannot be reached";
    /// 1236: the connection was aborted locally.
    CONNECTION_ABORTED = 1236, "ERROR_CONNECTION_ABORTED", "the connection was aborted by the local system";
    /// 1359: tpio's own failure: a driver lost an operation's packet (see
    /// `Misuse::DriverLostPacket`); the operation's outcome is unknown.
    INTERNAL_ERROR = 1359, "ERROR_INTERNAL_ERROR", "an internal error occurred: the backend lost the operation's completion";
    /// 10035: the operation would block (never seen by a tpio user; listed for the map).
    WSAEWOULDBLOCK = 10035, "WSAEWOULDBLOCK", "the operation would block";
    /// 10048: the address is in use.
    WSAEADDRINUSE = 10048, "WSAEADDRINUSE", "the address is already in use";
    /// 10049: the address is not available on this machine.
    WSAEADDRNOTAVAIL = 10049, "WSAEADDRNOTAVAIL", "the address is not available";
    /// 10054: the peer reset the connection.
    WSAECONNRESET = 10054, "WSAECONNRESET", "the peer reset the connection";
    /// 10056: the socket is already connected.
    WSAEISCONN = 10056, "WSAEISCONN", "the socket is already connected";
    /// 10057: the socket is not connected.
    WSAENOTCONN = 10057, "WSAENOTCONN", "the socket is not connected";
    /// 10058: the socket was shut down that way (`shutdown`) before the call.
    WSAESHUTDOWN = 10058, "WSAESHUTDOWN", "the socket was shut down in that direction";
    /// 10060: the connection attempt timed out.
    WSAETIMEDOUT = 10060, "WSAETIMEDOUT", "the connection attempt timed out";
}

impl Win32Error {
    /// Wraps a raw Win32 code (any value; unnamed codes display by number).
    pub const fn from_code(code: u32) -> Self {
        Win32Error(code)
    }

    /// The raw code.
    pub const fn code(self) -> u32 {
        self.0
    }

    /// True for `SUCCESS` (0).
    pub const fn is_success(self) -> bool {
        self.0 == 0
    }

    /// The Win32 constant name (`"ERROR_HANDLE_EOF"`), if the code is one tpio names.
    pub fn name(self) -> Option<&'static str> {
        Self::entry(self).map(|(_, n, _)| *n)
    }

    /// Our description of the code, if it is one tpio names.
    pub fn message(self) -> Option<&'static str> {
        Self::entry(self).map(|(_, _, m)| *m)
    }

    fn entry(self) -> Option<&'static (Win32Error, &'static str, &'static str)> {
        Self::TABLE
            .binary_search_by_key(&self.0, |(c, _, _)| c.0)
            .ok()
            .map(|i| &Self::TABLE[i])
    }

    /// The closest portable `std::io::ErrorKind` for this code.
    pub fn kind(self) -> std::io::ErrorKind {
        use std::io::ErrorKind as K;
        match self {
            Self::FILE_NOT_FOUND | Self::PATH_NOT_FOUND => K::NotFound,
            Self::ACCESS_DENIED | Self::WRITE_PROTECT => K::PermissionDenied,
            Self::INVALID_HANDLE | Self::INVALID_PARAMETER | Self::INVALID_NETNAME => {
                K::InvalidInput
            }
            Self::NOT_ENOUGH_MEMORY => K::OutOfMemory,
            Self::HANDLE_EOF => K::UnexpectedEof,
            Self::NOT_SUPPORTED | Self::INVALID_FUNCTION => K::Unsupported,
            Self::BROKEN_PIPE | Self::NO_DATA | Self::WSAESHUTDOWN => K::BrokenPipe,
            Self::SEM_TIMEOUT | Self::WAIT_TIMEOUT | Self::WSAETIMEDOUT => K::TimedOut,
            Self::FILE_EXISTS | Self::ALREADY_EXISTS => K::AlreadyExists,
            Self::IO_PENDING | Self::IO_INCOMPLETE => K::WouldBlock,
            Self::OPERATION_ABORTED => K::Interrupted,
            Self::CONNECTION_REFUSED => K::ConnectionRefused,
            Self::WSAECONNRESET | Self::NETNAME_DELETED => K::ConnectionReset,
            Self::CONNECTION_ABORTED => K::ConnectionAborted,
            Self::WSAENOTCONN | Self::CONNECTION_INVALID => K::NotConnected,
            Self::WSAEADDRINUSE => K::AddrInUse,
            Self::WSAEADDRNOTAVAIL => K::AddrNotAvailable,
            _ => K::Other,
        }
    }
}

impl fmt::Debug for Win32Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(n) => write!(f, "{n} ({})", self.0),
            None => write!(f, "Win32Error({})", self.0),
        }
    }
}

impl fmt::Display for Win32Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.message() {
            Some(m) => write!(f, "{m} (Win32 error {})", self.0),
            None => write!(f, "Win32 error {}", self.0),
        }
    }
}

impl std::error::Error for Win32Error {}

impl From<Win32Error> for std::io::Error {
    /// Keeps the `Win32Error` inside (`get_ref().downcast_ref::<Win32Error>()`),
    /// with the nearest `ErrorKind`.
    fn from(e: Win32Error) -> Self {
        std::io::Error::new(e.kind(), e)
    }
}

impl From<Win32Error> for u32 {
    fn from(e: Win32Error) -> u32 {
        e.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_sorted_and_unique_so_lookup_works() {
        for w in Win32Error::TABLE.windows(2) {
            assert!(w[0].0 .0 < w[1].0 .0, "{:?} before {:?}", w[0].1, w[1].1);
        }
        for (code, name, _) in Win32Error::TABLE {
            assert_eq!(code.name(), Some(*name));
        }
    }

    #[test]
    fn codes_the_rules_use_have_their_win32_numbers() {
        assert_eq!(Win32Error::SUCCESS.code(), 0);
        assert_eq!(Win32Error::INVALID_HANDLE.code(), 6);
        assert_eq!(Win32Error::HANDLE_EOF.code(), 38);
        assert_eq!(Win32Error::INVALID_PARAMETER.code(), 87);
        assert_eq!(Win32Error::BROKEN_PIPE.code(), 109);
        assert_eq!(Win32Error::OPERATION_ABORTED.code(), 995);
        assert_eq!(Win32Error::IO_INCOMPLETE.code(), 996);
        assert_eq!(Win32Error::IO_PENDING.code(), 997);
        assert_eq!(Win32Error::NOT_FOUND.code(), 1168);
    }

    #[test]
    fn display_and_debug_name_the_code() {
        assert_eq!(
            Win32Error::NOT_FOUND.to_string(),
            "no matching operation was found (Win32 error 1168)"
        );
        assert_eq!(
            format!("{:?}", Win32Error::HANDLE_EOF),
            "ERROR_HANDLE_EOF (38)"
        );
        assert_eq!(
            format!("{:?}", Win32Error::from_code(4242)),
            "Win32Error(4242)"
        );
        assert_eq!(Win32Error::from_code(4242).to_string(), "Win32 error 4242");
    }

    #[test]
    fn io_error_keeps_the_code_and_kind() {
        let io: std::io::Error = Win32Error::WSAECONNRESET.into();
        assert_eq!(io.kind(), std::io::ErrorKind::ConnectionReset);
        let inner = io.get_ref().and_then(|e| e.downcast_ref::<Win32Error>());
        assert_eq!(inner, Some(&Win32Error::WSAECONNRESET));
    }
}
