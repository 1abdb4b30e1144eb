//! [`File`]: a regular file opened for overlapped I/O.
//!
//! Owns opening files for tpio (one call, as `CreateFile` with
//! `FILE_FLAG_OVERLAPPED`). It must never do I/O itself: reads and writes go
//! through a [`ThreadpoolIo`](crate::ThreadpoolIo) bound to the file.

use std::fmt;
use std::path::Path;

use tpio_core::driver::HandleKind;

use crate::handle::{overlapped_handle, HandleCore, Os, Owner};
use crate::Backend;

/// A regular file for overlapped I/O. Dropping it is `CloseHandle`:
/// operations still in flight are cancelled and the descriptor closes after
/// their completions.
///
/// ```no_run
/// let file = tpio::File::open_overlapped("data.bin")?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct File {
    pub(crate) owner: Owner,
}

impl File {
    /// Opens an existing file for reading (`CreateFile(GENERIC_READ,
    /// OPEN_EXISTING, FILE_FLAG_OVERLAPPED)`).
    pub fn open_overlapped(path: impl AsRef<Path>) -> std::io::Result<File> {
        Self::from_std(std::fs::File::open(path)?)
    }

    /// Creates (or truncates) a file for reading and writing
    /// (`CreateFile(GENERIC_READ | GENERIC_WRITE, CREATE_ALWAYS, FILE_FLAG_OVERLAPPED)`).
    pub fn create_overlapped(path: impl AsRef<Path>) -> std::io::Result<File> {
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)?;
        Self::from_std(f)
    }

    /// Opens with the given options (access as the options say).
    pub fn open_with(
        path: impl AsRef<Path>,
        options: &std::fs::OpenOptions,
    ) -> std::io::Result<File> {
        Self::from_std(options.open(path)?)
    }

    /// Takes over an open std file (carried by the process's backend).
    pub fn from_std(f: std::fs::File) -> std::io::Result<File> {
        Self::from_std_on(f, &Backend::process()?)
    }

    /// Takes over an open std file, carried by `backend`.
    pub fn from_std_on(f: std::fs::File, backend: &Backend) -> std::io::Result<File> {
        Ok(File {
            owner: Owner(HandleCore::new(Os::File(f), HandleKind::File, backend)?),
        })
    }

    /// The file's length in bytes now.
    pub fn len(&self) -> std::io::Result<u64> {
        match &self.owner.0.os {
            Os::File(f) => Ok(f.metadata()?.len()),
            _ => Err(std::io::ErrorKind::Unsupported.into()),
        }
    }

    /// True when the file is empty now.
    pub fn is_empty(&self) -> std::io::Result<bool> {
        self.len().map(|n| n == 0)
    }
}

overlapped_handle!(File);

impl fmt::Debug for File {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("File").field(&self.owner).finish()
    }
}
