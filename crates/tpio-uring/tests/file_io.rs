//! Regular-file reads and writes at an offset, including end of file.

mod common;

use common::*;
use tpio_uring::{op, Ring};

#[test]
fn read_at_offset_and_at_eof() {
    if !uring_here() {
        return;
    }
    let data = pattern(10_000);
    let f = TempFile::with(&data);
    let ring = Ring::new(8).unwrap();
    let mut a = vec![0u8; 100];
    let mut b = vec![0u8; 100];
    let mut c = vec![0u8; 100];
    // SAFETY: the buffers outlive the completions, reaped below.
    unsafe {
        ring.push_batch(&[
            (1, op::read_at(f.fd(), a.as_mut_ptr(), 100, 5000)),
            (2, op::read_at(f.fd(), b.as_mut_ptr(), 100, 9990)),
            (3, op::read_at(f.fd(), c.as_mut_ptr(), 100, 10_000)),
        ])
        .unwrap();
    }
    let cs = collect(&mut ring.reaper(), 3);
    assert_eq!(op_result(&cs, 1), 100);
    assert_eq!(op_result(&cs, 2), 10, "short read before EOF");
    assert_eq!(op_result(&cs, 3), 0, "read at EOF");
    assert_eq!(a, data[5000..5100]);
    assert_eq!(b[..10], data[9990..]);
    assert_eq!(c, vec![0u8; 100]);
}

#[test]
fn write_at_offset_then_read_back() {
    if !uring_here() {
        return;
    }
    let f = TempFile::with(&[0u8; 64]);
    let ring = Ring::new(8).unwrap();
    let msg = *b"hello, ring";
    // SAFETY: `msg` outlives the completion.
    unsafe { ring.push(10, op::write_at(f.fd(), msg.as_ptr(), msg.len() as u32, 20)) }.unwrap();
    let cs = collect(&mut ring.reaper(), 1);
    assert_eq!(op_result(&cs, 10), msg.len() as i32);
    let back = std::fs::read(&f.path).unwrap();
    assert_eq!(&back[20..31], &msg);
    assert_eq!(back.len(), 64);
}

#[test]
fn bad_fd_reports_ebadf() {
    if !uring_here() {
        return;
    }
    let ring = Ring::new(8).unwrap();
    let mut buf = [0u8; 8];
    // SAFETY: the buffer outlives the completion.
    unsafe { ring.push(5, op::read_at(-1, buf.as_mut_ptr(), 8, 0)) }.unwrap();
    let cs = collect(&mut ring.reaper(), 1);
    assert_eq!(op_result(&cs, 5), -libc::EBADF);
}

#[test]
fn reserved_user_data_is_refused_and_queues_nothing() {
    if !uring_here() {
        return;
    }
    let ring = Ring::new(8).unwrap();
    let bad = tpio_uring::USER_DATA_MAX + 1;
    // SAFETY: NOPs touch no memory.
    let r = unsafe { ring.push_batch(&[(1, op::nop()), (bad, op::nop())]) };
    assert_eq!(r, Err(tpio_uring::SubmitError::ReservedUserData(bad)));
    assert_eq!(
        ring.cancel(u64::MAX),
        Err(tpio_uring::SubmitError::ReservedUserData(u64::MAX))
    );
    assert_eq!(ring.stats().in_flight, 0);
    assert_quiet(&mut ring.reaper(), std::time::Duration::from_millis(50));
}
