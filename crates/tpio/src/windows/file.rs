//! [`File`] on Windows: a file opened with `FILE_FLAG_OVERLAPPED`.
//!
//! Owns opening files for tpio. It must never do I/O itself.

use std::os::windows::io::{AsRawHandle, RawHandle};
use std::path::Path;

use tpio_core::driver::HandleKind;
use tpio_windows::kernel_handle::{self, KernelHandle, OsObject};

use crate::windows::handle::{overlapped_handle, Owner};
use crate::Backend;

/// A regular file for overlapped I/O. Dropping it is `CloseHandle`:
/// operations still in flight are cancelled and the handle closes after
/// their completions.
pub struct File {
    pub(crate) owner: Owner,
}

impl File {
    /// `CreateFile(GENERIC_READ, OPEN_EXISTING, FILE_FLAG_OVERLAPPED)`.
    pub fn open_overlapped(path: impl AsRef<Path>) -> std::io::Result<File> {
        Self::open_with(path, std::fs::OpenOptions::new().read(true))
    }

    /// `CreateFile(GENERIC_READ | GENERIC_WRITE, CREATE_ALWAYS, FILE_FLAG_OVERLAPPED)`.
    pub fn create_overlapped(path: impl AsRef<Path>) -> std::io::Result<File> {
        Self::open_with(
            path,
            std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(true),
        )
    }

    /// Opens with the given options (access as they say), adding
    /// `FILE_FLAG_OVERLAPPED`.
    pub fn open_with(
        path: impl AsRef<Path>,
        options: &std::fs::OpenOptions,
    ) -> std::io::Result<File> {
        Self::from_std(kernel_handle::open_overlapped(path.as_ref(), options)?)
    }

    /// Takes over an open std file. It must have been opened with
    /// `FILE_FLAG_OVERLAPPED` (`OpenOptionsExt::custom_flags`), or binding
    /// it to a TP_IO fails with `ERROR_INVALID_PARAMETER`.
    pub fn from_std(f: std::fs::File) -> std::io::Result<File> {
        Self::from_std_on(f, &Backend::process()?)
    }

    /// As [`from_std`](Self::from_std); on Windows `backend` is kernel32.
    pub fn from_std_on(f: std::fs::File, _backend: &Backend) -> std::io::Result<File> {
        Ok(File {
            owner: Owner(KernelHandle::new(OsObject::File(f), HandleKind::File)),
        })
    }

    fn std(&self) -> std::io::Result<&std::fs::File> {
        match self.owner.0.os() {
            OsObject::File(f) => Ok(f),
            _ => Err(std::io::ErrorKind::Unsupported.into()),
        }
    }

    /// The file's length in bytes now.
    pub fn len(&self) -> std::io::Result<u64> {
        Ok(self.std()?.metadata()?.len())
    }

    /// True when the file is empty now.
    pub fn is_empty(&self) -> std::io::Result<bool> {
        self.len().map(|n| n == 0)
    }
}

impl AsRawHandle for File {
    fn as_raw_handle(&self) -> RawHandle {
        self.owner.0.raw() as RawHandle
    }
}

overlapped_handle!(File);
