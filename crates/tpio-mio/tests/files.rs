//! Regular files through `MioDriver`: on the blocking workers, always
//! pending, results mapped (38 at the end), at most the configured number
//! of workers however many operations are queued.
#![cfg(unix)]

mod common;

use common::*;
use tpio_core::driver::{HandleKind, Issued, OpKind};
use tpio_core::Win32Error;
use tpio_mio::MioDriver;

#[test]
fn reads_at_offsets_and_at_the_end_map_to_win32() {
    let data = pattern(1000);
    let f = TempFile::with(&data);
    let r = rig();
    let mut a = [0u8; 100];
    let mut b = [0u8; 100];
    let mut c = [0u8; 100];
    r.pending(
        f.fd(),
        HandleKind::File,
        OpKind::Read { offset: Some(0) },
        &mut a,
        std::ptr::null_mut(),
        1,
    );
    r.pending(
        f.fd(),
        HandleKind::File,
        OpKind::Read { offset: Some(950) },
        &mut b,
        std::ptr::null_mut(),
        2,
    );
    r.pending(
        f.fd(),
        HandleKind::File,
        OpKind::Read { offset: Some(1000) },
        &mut c,
        std::ptr::null_mut(),
        3,
    );
    let mut got = [r.next3(), r.next3(), r.next3()];
    got.sort();
    assert_eq!(
        got,
        [
            (1, Win32Error::SUCCESS, 100),
            (2, Win32Error::SUCCESS, 50),
            (3, Win32Error::HANDLE_EOF, 0)
        ]
    );
    assert_eq!(Win32Error::HANDLE_EOF.code(), 38);
    assert_eq!(a[..], data[..100]);
    assert_eq!(b[..50], data[950..]);
    r.drained();
    assert_eq!(r.driver.stats().file_operations, 3);
}

#[test]
fn writes_at_an_offset_then_read_back() {
    let f = TempFile::with(b"");
    let r = rig();
    let mut w = *b"0123456789";
    r.pending(
        f.fd(),
        HandleKind::File,
        OpKind::Write { offset: Some(4) },
        &mut w,
        std::ptr::null_mut(),
        1,
    );
    assert_eq!(r.next3(), (1, Win32Error::SUCCESS, 10));
    let mut back = [0u8; 6];
    r.pending(
        f.fd(),
        HandleKind::File,
        OpKind::Read { offset: Some(8) },
        &mut back,
        std::ptr::null_mut(),
        2,
    );
    assert_eq!(r.next3(), (2, Win32Error::SUCCESS, 6));
    assert_eq!(&back, b"456789");
    assert_eq!(std::fs::metadata(&f.path.0).unwrap().len(), 14);
    r.drained();
}

#[test]
fn many_reads_use_at_most_the_configured_workers() {
    let data = pattern(64 * 512);
    let f = TempFile::with(&data);
    let r = rig_with(MioDriver::with_file_workers(3).expect("driver"));
    let mut bufs = [[0u8; 512]; 64];
    for (i, b) in bufs.iter_mut().enumerate() {
        let off = Some((i * 512) as u64);
        r.pending(
            f.fd(),
            HandleKind::File,
            OpKind::Read { offset: off },
            b,
            std::ptr::null_mut(),
            i,
        );
    }
    let mut seen = [false; 64];
    for _ in 0..64 {
        let (ov, status, bytes) = r.next3();
        assert_eq!((status, bytes), (Win32Error::SUCCESS, 512));
        assert!(
            !std::mem::replace(&mut seen[ov], true),
            "one packet per operation"
        );
    }
    r.drained();
    for (i, b) in bufs.iter().enumerate() {
        assert_eq!(b[..], data[i * 512..(i + 1) * 512]);
    }
    let st = r.driver.stats();
    assert!((1..=3).contains(&st.file_workers), "{st:?}");
    assert_eq!((st.file_queued, st.file_running), (0, 0));
}

#[test]
fn a_closed_descriptor_and_an_impossible_operation_are_reported() {
    let r = rig();
    let mut buf = [0u8; 4];
    // A file read on a descriptor that is not open: the worker's pread says EBADF.
    r.pending(
        1_000_000,
        HandleKind::File,
        OpKind::Read { offset: Some(0) },
        &mut buf,
        std::ptr::null_mut(),
        1,
    );
    assert_eq!(r.next3(), (1, Win32Error::INVALID_HANDLE, 0));
    // A pipe operation on one fails at once (its mode cannot be read).
    let issued = r.submit(
        1_000_000,
        HandleKind::Pipe,
        OpKind::Read { offset: None },
        &mut buf,
        std::ptr::null_mut(),
        2,
    );
    assert_eq!(issued, Issued::FailedNow(Win32Error::INVALID_HANDLE));
    // Accept on a regular file cannot be issued.
    let f = TempFile::with(b"x");
    let issued = r.submit(
        f.fd(),
        HandleKind::File,
        OpKind::Accept,
        &mut [],
        std::ptr::null_mut(),
        3,
    );
    assert_eq!(issued, Issued::FailedNow(Win32Error::INVALID_PARAMETER));
    r.drained();
}
