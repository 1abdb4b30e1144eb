//! tpio: the Windows thread-pool I/O model (`CreateThreadpoolIo`,
//! `StartThreadpoolIo`, `CancelThreadpoolIo`, `CloseThreadpoolIo`,
//! `WaitForThreadpoolIoCallbacks`, `CancelIo`, `CancelIoEx`) on every OS.
//!
//! This crate is the public face: it owns the handle types, the safe layer
//! ([`ThreadpoolIo`]: operations own their buffers until their final
//! completion), the Win32-shaped [`raw`] layer for ports, and the choice of
//! backend at run time ([`backend_name`], [`BackendBuilder`]). It makes no
//! decision about callbacks or counts — that is `tpio-core`'s state machine —
//! and no kernel call for I/O — that is the driver's.
//!
//! Backends: io_uring on Linux where the kernel allows it, else mio (macOS,
//! the BSDs, Linux without io_uring), chosen at run time with the reason kept
//! ([`Backend::why`]); when neither can run, handle constructors fail with a
//! [`BackendError`] saying why. On Windows there is one backend, kernel32
//! itself: the same public names forward to the real TP_IO calls
//! (`crates/tpio-windows`), and `tpio-core`'s state machine is not used.
//!
//! ```no_run
//! use std::sync::{mpsc, Mutex};
//! let (rd, wr) = tpio::pipe()?;
//! let (tx, rx) = mpsc::channel();
//! let tx = Mutex::new(tx);
//! let io = tpio::ThreadpoolIo::new(&rd, None, move |_inst, done| {
//!     let _ = tx.lock().map(|t| t.send((done.tag, done.result)));
//! })?;
//! io.read(vec![0; 64], 1)?;                 // pending: no data yet
//! let w = tpio::ThreadpoolIo::new(&wr, None, |_, _| {})?;
//! w.write(b"hello".to_vec(), 2)?;
//! assert_eq!(rx.recv()?, (1, Ok(5)));
//! io.wait_for_callbacks(false)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]

#[cfg(unix)]
mod addr;
#[cfg(unix)]
mod backend;
mod backend_kind;
#[cfg(unix)]
mod blocking;
#[cfg(unix)]
mod cancel;
mod done;
#[cfg(unix)]
mod file;
#[cfg(unix)]
mod handle;
#[cfg(unix)]
mod net;
#[cfg(unix)]
mod op;
#[cfg(unix)]
mod pipe;
#[cfg(unix)]
pub mod raw;
#[cfg(unix)]
mod threadpool_io;
#[cfg(windows)]
mod windows;

pub use backend_kind::{BackendError, BackendKind, BACKEND_ENV, DEFAULT_RING_ENTRIES};
pub use done::{Done, IoFailed, OverlappedId, Started};
pub use tpio_core::driver::HandleKind;
pub use tpio_core::{Event, IoCounts, Priority, Semaphore, StatsSnapshot, Win32Error};

#[cfg(unix)]
pub use backend::{backend_name, driver, Backend, BackendBuilder};
#[cfg(unix)]
pub use blocking::{cancel_synchronous_io, ThreadHandle};
#[cfg(unix)]
pub use cancel::{cancel_io, cancel_io_ex};
#[cfg(unix)]
pub use file::File;
#[cfg(unix)]
pub use handle::OverlappedHandle;
#[cfg(unix)]
pub use net::{TcpListener, TcpStream, UdpSocket, UnixStream};
#[cfg(unix)]
pub use pipe::{pipe, pipe_on, Pipe};
#[cfg(unix)]
pub use threadpool_io::ThreadpoolIo;
#[cfg(unix)]
pub use tpio_core::{CallbackEnvironment, CallbackInstance, CleanupGroup, Pool};

#[cfg(windows)]
pub use tpio_windows::thread::{cancel_synchronous_io, ThreadHandle};
#[cfg(windows)]
pub use tpio_windows::wine;
#[cfg(windows)]
pub use tpio_windows::{
    cleanup_group::CleanupGroup, environment::CallbackEnvironment, instance::CallbackInstance,
    pool::Pool,
};
#[cfg(windows)]
pub use windows::backend::{backend_name, Backend, BackendBuilder};
#[cfg(windows)]
pub use windows::cancel::{cancel_io, cancel_io_ex};
#[cfg(windows)]
pub use windows::file::File;
#[cfg(windows)]
pub use windows::handle::OverlappedHandle;
#[cfg(windows)]
pub use windows::net::{TcpListener, TcpStream, UdpSocket};
#[cfg(windows)]
pub use windows::pipe::{pipe, pipe_on, Pipe};
#[cfg(windows)]
pub use windows::raw;
#[cfg(windows)]
pub use windows::threadpool_io::ThreadpoolIo;
