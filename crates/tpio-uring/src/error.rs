//! Errors a caller of this crate can get.
//!
//! Owns the typed errors of submission. A full submission queue is never an
//! error (it is back-pressure, absorbed by the ring); this module must never
//! grow a variant for it.

use std::fmt;
use std::io;

/// Why a submission was refused. Nothing was queued when this is returned
/// (a batch is refused as a whole).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SubmitError {
    /// The user_data has one of the top two bits set; those values are
    /// reserved for the ring's own operations (see [`crate::USER_DATA_MAX`]).
    ReservedUserData(u64),
    /// Cancel-by-fd (`IORING_ASYNC_CANCEL_FD | ALL`, Linux 5.19) does not
    /// work on this kernel; cancel by user_data instead.
    CancelFdUnsupported,
    /// `IORING_REGISTER_SYNC_CANCEL` (Linux 6.0) does not work on this
    /// kernel; cancel through the SQ instead ([`crate::Ring::cancel_batch`]).
    SyncCancelUnsupported,
    /// The kernel refused the request with this errno.
    Os(i32),
}

impl fmt::Display for SubmitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SubmitError::ReservedUserData(v) => write!(
                f,
                "user_data {v:#x} uses bits reserved for internal operations (max {:#x})",
                crate::USER_DATA_MAX
            ),
            SubmitError::CancelFdUnsupported => {
                f.write_str("io_uring cancel-by-fd is not supported by this kernel")
            }
            SubmitError::SyncCancelUnsupported => {
                f.write_str("io_uring synchronous cancel is not supported by this kernel")
            }
            SubmitError::Os(errno) => write!(
                f,
                "the kernel refused the request: {}",
                io::Error::from_raw_os_error(*errno)
            ),
        }
    }
}

impl std::error::Error for SubmitError {}

impl From<SubmitError> for io::Error {
    fn from(e: SubmitError) -> io::Error {
        let kind = match e {
            SubmitError::ReservedUserData(_) => io::ErrorKind::InvalidInput,
            SubmitError::CancelFdUnsupported | SubmitError::SyncCancelUnsupported => {
                io::ErrorKind::Unsupported
            }
            SubmitError::Os(errno) => return io::Error::from_raw_os_error(errno),
        };
        io::Error::new(kind, e)
    }
}
