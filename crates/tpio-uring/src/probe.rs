//! Can io_uring be used here, and if not, why.
//!
//! Owns the answer to "may tpio run on io_uring in this process": a typed
//! reason when it may not, the kernel release, which of the opcodes tpio
//! needs the kernel knows, and whether cancel-by-fd (`IORING_ASYNC_CANCEL_FD
//! | ALL`, Linux 5.19) works — found by trying it, not by version number.
//! This module must never panic or leave anything behind: each probe sets up
//! a small ring of its own and tears it down before returning.
//!
//! Setting the environment variable [`DISABLE_ENV`] (`TPIO_URING_DISABLE`)
//! to anything but empty or `0` makes the probe answer
//! [`Unavailable::DisabledByEnv`], so the fallback path can be tested on a
//! machine that has io_uring.

use std::ffi::CStr;
use std::fmt;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use io_uring::{opcode, types, IoUring, Probe};

/// The environment variable that forces "unavailable" for tests of the
/// fallback path.
pub const DISABLE_ENV: &str = "TPIO_URING_DISABLE";

/// Where the kernel's io_uring switch lives (Linux 6.6+).
pub const SYSCTL_PATH: &str = "/proc/sys/kernel/io_uring_disabled";

/// Why io_uring cannot be used.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Unavailable {
    /// [`DISABLE_ENV`] is set.
    DisabledByEnv,
    /// `kernel.io_uring_disabled` is 1 (only `io_uring_group` members may
    /// create rings, and this process is not one) or 2 (nobody may).
    DisabledBySysctl {
        /// The sysctl's value.
        value: u32,
    },
    /// `io_uring_setup` failed with `EPERM` for another reason, typically a
    /// seccomp filter (container runtimes block it by default).
    Denied,
    /// `ENOSYS`: the kernel was built without io_uring, or is older than 5.1.
    NotInKernel,
    /// Out of memory or of a limit: `ENOMEM` (locked-memory limit on older
    /// kernels), `EMFILE`, `ENFILE`.
    OutOfResources {
        /// The errno.
        errno: i32,
    },
    /// Any other failure of `io_uring_setup`.
    Other {
        /// The errno.
        errno: i32,
    },
}

impl fmt::Display for Unavailable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Unavailable::DisabledByEnv => write!(f, "disabled by {DISABLE_ENV}"),
            Unavailable::DisabledBySysctl { value } => {
                write!(f, "disabled by sysctl kernel.io_uring_disabled={value}")
            }
            Unavailable::Denied => f.write_str("io_uring_setup denied (EPERM; seccomp?)"),
            Unavailable::NotInKernel => f.write_str("io_uring not in this kernel (ENOSYS)"),
            Unavailable::OutOfResources { errno } => write!(
                f,
                "out of memory or limits: {}",
                io::Error::from_raw_os_error(*errno)
            ),
            Unavailable::Other { errno } => {
                write!(
                    f,
                    "io_uring_setup failed: {}",
                    io::Error::from_raw_os_error(*errno)
                )
            }
        }
    }
}

/// Which of the opcodes tpio needs this kernel knows (io_uring `Probe`,
/// Linux 5.6+; all false where the probe itself is not supported).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OpSupport {
    /// `IORING_OP_READ`.
    pub read: bool,
    /// `IORING_OP_WRITE`.
    pub write: bool,
    /// `IORING_OP_RECV`.
    pub recv: bool,
    /// `IORING_OP_SEND`.
    pub send: bool,
    /// `IORING_OP_ACCEPT`.
    pub accept: bool,
    /// `IORING_OP_CONNECT`.
    pub connect: bool,
    /// `IORING_OP_RECVMSG`.
    pub recvmsg: bool,
    /// `IORING_OP_SENDMSG`.
    pub sendmsg: bool,
    /// `IORING_OP_ASYNC_CANCEL`.
    pub async_cancel: bool,
}

impl OpSupport {
    fn from_probe(p: &Probe) -> OpSupport {
        OpSupport {
            read: p.is_supported(opcode::Read::CODE),
            write: p.is_supported(opcode::Write::CODE),
            recv: p.is_supported(opcode::Recv::CODE),
            send: p.is_supported(opcode::Send::CODE),
            accept: p.is_supported(opcode::Accept::CODE),
            connect: p.is_supported(opcode::Connect::CODE),
            recvmsg: p.is_supported(opcode::RecvMsg::CODE),
            sendmsg: p.is_supported(opcode::SendMsg::CODE),
            async_cancel: p.is_supported(opcode::AsyncCancel::CODE),
        }
    }

    /// The names of the needed opcodes the kernel lacks (empty when all are there).
    pub fn missing(&self) -> Vec<&'static str> {
        [
            (self.read, "Read"),
            (self.write, "Write"),
            (self.recv, "Recv"),
            (self.send, "Send"),
            (self.accept, "Accept"),
            (self.connect, "Connect"),
            (self.recvmsg, "RecvMsg"),
            (self.sendmsg, "SendMsg"),
            (self.async_cancel, "AsyncCancel"),
        ]
        .into_iter()
        .filter(|(ok, _)| !ok)
        .map(|(_, name)| name)
        .collect()
    }

    /// Whether every opcode tpio needs is there.
    pub fn all(&self) -> bool {
        self.missing().is_empty()
    }
}

/// What a working io_uring here can do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Support {
    /// The opcodes tpio needs.
    pub ops: OpSupport,
    /// Cancel-by-fd with `ALL` (and `ANY`) works: tried on a pending pipe read.
    pub cancel_fd_all: bool,
    /// `IORING_FEAT_EXT_ARG` (5.11): waits with a timeout.
    pub ext_arg: bool,
    /// `IORING_FEAT_NODROP` (5.5): completions are never dropped on CQ overflow.
    pub nodrop: bool,
    /// `IORING_SETUP_SUBMIT_ALL` (5.18) was accepted.
    pub submit_all: bool,
}

/// The probe's full answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProbeReport {
    /// `uname -r`, e.g. `6.18.44`; empty if uname failed.
    pub kernel_release: String,
    /// `kernel.io_uring_disabled` if the file exists and reads as a number.
    pub sysctl_disabled: Option<u32>,
    /// Usable, with what it supports, or why not.
    pub status: Result<Support, Unavailable>,
}

impl ProbeReport {
    /// Whether io_uring can be used and has every opcode tpio needs.
    pub fn is_available(&self) -> bool {
        matches!(&self.status, Ok(s) if s.ops.all())
    }

    /// One line for logs and the `tpio probe` command.
    pub fn summary(&self) -> String {
        match &self.status {
            Ok(s) if s.ops.all() => format!(
                "io_uring available (kernel {}; cancel-by-fd {})",
                self.kernel_release,
                if s.cancel_fd_all { "yes" } else { "no" }
            ),
            Ok(s) => format!(
                "io_uring present but lacks {} (kernel {})",
                s.ops.missing().join(", "),
                self.kernel_release
            ),
            Err(why) => format!(
                "io_uring unavailable: {why} (kernel {})",
                self.kernel_release
            ),
        }
    }
}

/// Whether [`DISABLE_ENV`] asks for io_uring to be treated as unavailable.
pub fn disabled_by_env() -> bool {
    std::env::var_os(DISABLE_ENV).is_some_and(|v| !v.is_empty() && v != "0")
}

/// Probes now (sets up and tears down a small ring; a few syscalls).
pub fn probe() -> ProbeReport {
    let kernel_release = kernel_release();
    let sysctl_disabled = read_sysctl();
    let status = if disabled_by_env() {
        Err(Unavailable::DisabledByEnv)
    } else {
        probe_ring(sysctl_disabled)
    };
    ProbeReport {
        kernel_release,
        sysctl_disabled,
        status,
    }
}

/// The first probe's answer, kept for the life of the process.
pub fn cached() -> &'static ProbeReport {
    static CACHE: OnceLock<ProbeReport> = OnceLock::new();
    CACHE.get_or_init(probe)
}

/// Whether cancel-by-fd with `ALL` (and `ANY`) works here, tried once per
/// process. Ignores [`DISABLE_ENV`]: it describes the kernel, not the policy.
pub fn cancel_fd_all_supported() -> bool {
    static CACHE: OnceLock<bool> = OnceLock::new();
    *CACHE.get_or_init(|| match &cached().status {
        Ok(s) => s.cancel_fd_all,
        Err(Unavailable::DisabledByEnv) => {
            matches!(probe_ring(read_sysctl()), Ok(s) if s.cancel_fd_all)
        }
        Err(_) => false,
    })
}

/// `RWF_NOSIGNAL` (Linux 6.18, `include/uapi/linux/fs.h`; not in `libc`
/// yet): a write to a pipe whose reader is gone fails with `EPIPE` without
/// raising `SIGPIPE` on the writing thread, as `MSG_NOSIGNAL` does for a
/// socket's `send`. Older kernels fail a write that carries it with
/// `EOPNOTSUPP`.
pub const RWF_NOSIGNAL: i32 = 0x100;

/// Whether this kernel takes [`RWF_NOSIGNAL`]: a one-byte `pwritev2` with
/// it on a pipe of our own, once per process. The pipe writes of both
/// drivers carry it when it does, so a process that did not ignore
/// `SIGPIPE` (a C host, a `cdylib`) is not killed by a write to a pipe
/// whose reader left; without it they raise `SIGPIPE` as `WriteFile`
/// never would (`spec/semantics.md`, rule 3).
pub fn nosignal_writes() -> bool {
    static CACHE: OnceLock<bool> = OnceLock::new();
    *CACHE.get_or_init(|| {
        let mut fds = [0i32; 2];
        // SAFETY: `fds` has room for the two descriptors pipe2 writes.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC | libc::O_NONBLOCK) } != 0 {
            return false;
        }
        // SAFETY: two new descriptors nobody else owns, each wrapped once
        // (closed on every path below).
        let (_rd, wr) = unsafe {
            use std::os::fd::FromRawFd;
            (
                std::os::fd::OwnedFd::from_raw_fd(fds[0]),
                std::os::fd::OwnedFd::from_raw_fd(fds[1]),
            )
        };
        let byte = 0u8;
        let iov = libc::iovec {
            iov_base: (&byte as *const u8).cast_mut().cast(),
            iov_len: 1,
        };
        use std::os::fd::AsRawFd;
        // SAFETY: `iov` names one readable byte on this stack frame.
        let n = unsafe { crate::nocancel::pwritev2(wr.as_raw_fd(), &iov, -1, RWF_NOSIGNAL) };
        n == 1
    })
}

/// Classifies a failed `io_uring_setup`.
pub fn classify_setup_error(errno: i32, sysctl_disabled: Option<u32>) -> Unavailable {
    match errno {
        libc::EPERM => match sysctl_disabled {
            Some(value @ (1 | 2)) => Unavailable::DisabledBySysctl { value },
            _ => Unavailable::Denied,
        },
        libc::ENOSYS => Unavailable::NotInKernel,
        libc::ENOMEM | libc::EMFILE | libc::ENFILE => Unavailable::OutOfResources { errno },
        errno => Unavailable::Other { errno },
    }
}

fn read_sysctl() -> Option<u32> {
    std::fs::read_to_string(SYSCTL_PATH)
        .ok()
        .and_then(|s| s.trim().parse().ok())
}

/// `uname(2)`'s release field.
pub fn kernel_release() -> String {
    // SAFETY: utsname is plain old data; all-zero is a valid value.
    let mut uts: libc::utsname = unsafe { std::mem::zeroed() };
    // SAFETY: `uts` is a valid, writable utsname.
    if unsafe { libc::uname(&mut uts) } != 0 {
        return String::new();
    }
    // SAFETY: on success uname NUL-terminates each field within its array.
    let release = unsafe { CStr::from_ptr(uts.release.as_ptr()) };
    release.to_string_lossy().into_owned()
}

fn probe_ring(sysctl_disabled: Option<u32>) -> Result<Support, Unavailable> {
    let (ring, submit_all) = match IoUring::builder().setup_submit_all().build(8) {
        Ok(r) => (r, true),
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => match IoUring::new(8) {
            Ok(r) => (r, false),
            Err(e) => return Err(classify_io_error(&e, sysctl_disabled)),
        },
        Err(e) => return Err(classify_io_error(&e, sysctl_disabled)),
    };
    let mut probe = Probe::new();
    let ops = match ring.submitter().register_probe(&mut probe) {
        Ok(()) => OpSupport::from_probe(&probe),
        Err(e) => {
            tracing::debug!("io_uring register_probe failed: {e}");
            OpSupport::default()
        }
    };
    let ext_arg = ring.params().is_feature_ext_arg();
    let nodrop = ring.params().is_feature_nodrop();
    let cancel_fd_all = ext_arg && ops.read && ops.async_cancel && try_cancel_fd_all(ring);
    Ok(Support {
        ops,
        cancel_fd_all,
        ext_arg,
        nodrop,
        submit_all,
    })
}

fn classify_io_error(e: &io::Error, sysctl_disabled: Option<u32>) -> Unavailable {
    classify_setup_error(e.raw_os_error().unwrap_or(0), sysctl_disabled)
}

const PROBE_READ: u64 = 1;
const PROBE_CANCEL_FD: u64 = 2;
const PROBE_CANCEL_READ: u64 = 3;

/// Issues a read on an empty pipe, then `ASYNC_CANCEL` with `FD | ALL` on the
/// pipe: works if the read ends with `-ECANCELED` and the cancel with 1.
/// Consumes the ring: it is dropped only once the read has completed (or its
/// buffer is leaked, see below), so the kernel never writes freed memory.
fn try_cancel_fd_all(mut ring: IoUring) -> bool {
    let mut fds = [0; 2];
    // SAFETY: `fds` is a valid array of two ints.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return false;
    }
    // SAFETY: pipe2 succeeded, so both fds are open and owned by nobody else.
    let (rd, _wr) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    let buf = Box::into_raw(Box::new([0u8; 8]));

    let read = opcode::Read::new(types::Fd(rd.as_raw_fd()), buf.cast::<u8>(), 8)
        .offset(u64::MAX)
        .build()
        .user_data(PROBE_READ);
    let cancel =
        opcode::AsyncCancel2::new(types::CancelBuilder::fd(types::Fd(rd.as_raw_fd())).all())
            .build()
            .user_data(PROBE_CANCEL_FD);
    // SAFETY: the read's buffer is a live heap allocation that is freed only
    // after its completion was seen (or never); the cancel touches no memory.
    // The ring's SQ has 8 slots and is empty, so both fit.
    let pushed = unsafe { ring.submission().push_multiple(&[read, cancel]) }.is_ok();

    let mut read_res = None;
    let mut cancel_res = None;
    let deadline = Instant::now() + Duration::from_secs(2);
    let mut sent_fallback = false;
    while pushed && read_res.is_none() && Instant::now() < deadline {
        if cancel_res.is_some() && !sent_fallback {
            // The fd cancel did not take the read: cancel it by user_data.
            let c = opcode::AsyncCancel::new(PROBE_READ)
                .build()
                .user_data(PROBE_CANCEL_READ);
            // SAFETY: a cancel touches no memory.
            sent_fallback = unsafe { ring.submission().push(&c) }.is_ok();
        }
        let ts = types::Timespec::new().nsec(100_000_000);
        let args = types::SubmitArgs::new().timespec(&ts);
        match ring.submitter().submit_with_args(1, &args) {
            Ok(_) => {}
            Err(e) if matches!(e.raw_os_error(), Some(libc::ETIME | libc::EINTR)) => {}
            Err(e) => {
                tracing::debug!("io_uring probe wait failed: {e}");
                break;
            }
        }
        for cqe in ring.completion() {
            match cqe.user_data() {
                PROBE_READ => read_res = Some(cqe.result()),
                PROBE_CANCEL_FD => cancel_res = Some(cqe.result()),
                _ => {}
            }
        }
    }
    if read_res.is_some() || !pushed {
        // SAFETY: `buf` came from Box::into_raw above and the kernel is done
        // with it (its read completed, or it was never submitted).
        drop(unsafe { Box::from_raw(buf) });
    } else {
        // The read may still be live in the kernel: leak 8 bytes rather than
        // let it write freed memory.
        tracing::warn!("io_uring probe: a pipe read would not cancel; leaking its 8-byte buffer");
    }
    read_res == Some(-libc::ECANCELED) && cancel_res == Some(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classify() {
        assert_eq!(
            classify_setup_error(libc::EPERM, Some(2)),
            Unavailable::DisabledBySysctl { value: 2 }
        );
        assert_eq!(
            classify_setup_error(libc::EPERM, Some(1)),
            Unavailable::DisabledBySysctl { value: 1 }
        );
        assert_eq!(
            classify_setup_error(libc::EPERM, Some(0)),
            Unavailable::Denied
        );
        assert_eq!(classify_setup_error(libc::EPERM, None), Unavailable::Denied);
        assert_eq!(
            classify_setup_error(libc::ENOSYS, None),
            Unavailable::NotInKernel
        );
        assert_eq!(
            classify_setup_error(libc::ENOMEM, None),
            Unavailable::OutOfResources {
                errno: libc::ENOMEM
            }
        );
        assert_eq!(
            classify_setup_error(libc::EINVAL, None),
            Unavailable::Other {
                errno: libc::EINVAL
            }
        );
    }

    #[test]
    fn kernel_release_is_read() {
        assert!(kernel_release()
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_digit()));
    }
}
