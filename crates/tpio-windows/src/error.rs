//! Win32 and Winsock failures as tpio's [`Win32Error`].
//!
//! Owns reading the calling thread's last error (`GetLastError`,
//! `WSAGetLastError`) right after a failed call, and nothing else: codes
//! are passed on as kernel32 gave them.

use tpio_core::Win32Error;
use windows_sys::Win32::Foundation::GetLastError;
use windows_sys::Win32::Networking::WinSock::WSAGetLastError;

/// `GetLastError()` of the calling thread.
pub fn last() -> Win32Error {
    // SAFETY: reads the calling thread's last-error value; no preconditions.
    Win32Error::from_code(unsafe { GetLastError() })
}

/// `WSAGetLastError()` of the calling thread (Winsock's codes are Win32
/// codes: `WSA_IO_PENDING` is 997, `WSAECONNRESET` 10054, …).
pub fn last_wsa() -> Win32Error {
    // SAFETY: reads the calling thread's Winsock error; no preconditions.
    Win32Error::from_code(unsafe { WSAGetLastError() } as u32)
}

/// `Ok(())` for a `TRUE`, the last error for a `FALSE`.
pub(crate) fn check(ok: i32) -> Result<(), Win32Error> {
    if ok != 0 {
        Ok(())
    } else {
        Err(last())
    }
}

/// The Win32 code an `std::io::Error` carries (its OS code on Windows).
pub fn from_io(e: &std::io::Error) -> Win32Error {
    match e.raw_os_error() {
        Some(c) => Win32Error::from_code(c as u32),
        None => tpio_core::io_error_to_win32(e),
    }
}
