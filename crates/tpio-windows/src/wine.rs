//! Running under Wine, and where Wine's kernel32 differs from Windows.
//!
//! The native driver's tests also run on Linux, under Wine (see
//! `scripts/wine-test.sh`). Wine is an independent implementation of TP_IO,
//! which makes it a useful reference, but in a few places it does not do
//! what Windows documents. Those places are listed here, once: a test that
//! meets one asks [`wine_deviation`] and asserts the documented Windows
//! behaviour unless it returns true, and the Wine behaviour if it does.
//! Each variant is also described, with the test that shows it, in
//! `spec/wine-deviations.md`. tpio's emulated backends follow the documented
//! Windows behaviour, never these.
//!
//! Wine is detected by ntdll's `wine_get_version` export, which Windows'
//! ntdll does not have.

use std::ffi::CStr;
use std::os::raw::c_char;
use std::sync::OnceLock;

use windows_sys::Win32::System::LibraryLoader::{GetModuleHandleW, GetProcAddress};

/// A known difference between Wine's kernel32 and documented Windows
/// behaviour, observed with Wine 8.0 (Debian bookworm).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Deviation {
    /// `CancelIoEx(h, NULL)` with no operation pending on `h` returns TRUE;
    /// Windows returns FALSE with `ERROR_NOT_FOUND` (1168).
    CancelIoExNothingPendingSucceeds,
}

impl Deviation {
    /// Every known deviation.
    pub const ALL: &'static [Deviation] = &[Deviation::CancelIoExNothingPendingSucceeds];

    /// One line saying what Wine does instead.
    pub fn describe(self) -> &'static str {
        match self {
            Deviation::CancelIoExNothingPendingSucceeds => {
                "CancelIoEx(h, NULL) with nothing pending returns TRUE (Windows: FALSE, ERROR_NOT_FOUND)"
            }
        }
    }
}

/// Wine's version string (e.g. `"8.0"`), or `None` when not running under
/// Wine.
pub fn wine_version() -> Option<&'static str> {
    static VERSION: OnceLock<Option<String>> = OnceLock::new();
    VERSION.get_or_init(detect).as_deref()
}

/// True when this process runs under Wine.
pub fn running_under_wine() -> bool {
    wine_version().is_some()
}

/// True when deviation `d` applies to this process, i.e. it runs under Wine:
/// the test should then expect Wine's behaviour instead of Windows'.
pub fn wine_deviation(d: Deviation) -> bool {
    let _ = d;
    running_under_wine()
}

fn detect() -> Option<String> {
    let ntdll: Vec<u16> = "ntdll.dll\0".encode_utf16().collect();
    // SAFETY: a NUL-terminated UTF-16 name; ntdll is loaded in every process.
    let module = unsafe { GetModuleHandleW(ntdll.as_ptr()) };
    if module.is_null() {
        return None;
    }
    // SAFETY: `module` is ntdll's handle, the name is NUL-terminated ASCII.
    let proc = unsafe { GetProcAddress(module, c"wine_get_version".as_ptr().cast()) }?;
    // SAFETY: Wine exports `const char *CDECL wine_get_version(void)`; on
    // x86_64 "C" and "system" are the same calling convention.
    let get: unsafe extern "C" fn() -> *const c_char = unsafe { core::mem::transmute(proc) };
    // SAFETY: calling it has no preconditions.
    let ptr = unsafe { get() };
    if ptr.is_null() {
        return Some(String::new());
    }
    // SAFETY: Wine returns a static NUL-terminated string.
    Some(
        unsafe { CStr::from_ptr(ptr) }
            .to_string_lossy()
            .into_owned(),
    )
}
