//! The `tpio` command. With no arguments: a tour of the TP_IO lifecycle on
//! tpio's portable core — start, complete, cancel, wait with and without
//! cancel, close-after-drain — printing each event with its result code and
//! the thread it ran on, then a short throughput figure for the core's
//! completion path. (The tour on real I/O comes with the facade.)

use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};
use tpio_core::driver::{
    cancel_io, settle, CancelScope, Driver, HandleKind, HandleOps, OpKind, RawHandle, Submission,
};
use tpio_core::sim::SimDriver;
use tpio_core::{
    CallbackEnvironment, CallbackInstance, Completion, Discard, IoCallback, IoObject, Pool,
    Win32Error,
};

enum Event {
    Callback(Completion, String),
    Discard(Completion, Discard),
    Released,
}

struct Printer(mpsc::Sender<Event>);

impl IoCallback for Printer {
    fn complete(&self, _inst: &mut CallbackInstance<'_>, c: Completion) {
        let name = std::thread::current().name().unwrap_or("?").to_string();
        let _ = self.0.send(Event::Callback(c, name));
    }
    fn discard(&self, c: Completion, reason: Discard) {
        let _ = self.0.send(Event::Discard(c, reason));
    }
    fn released(&self) {
        let _ = self.0.send(Event::Released);
    }
}

fn submission(ops: &Arc<HandleOps>, overlapped: usize) -> Submission {
    Submission {
        handle: RawHandle(3),
        handle_kind: HandleKind::File,
        kind: OpKind::Read { offset: Some(0) },
        buf: std::ptr::null_mut(),
        len: 0,
        addr: std::ptr::null_mut(),
        overlapped,
        ops: ops.clone(),
        thread: std::thread::current().id(),
    }
}

fn issue(io: &IoObject, driver: &SimDriver, ops: &Arc<HandleOps>, ov: usize) -> u64 {
    io.start().expect("start");
    // SAFETY: the simulated driver touches no buffer.
    let got = unsafe { driver.submit(submission(ops, ov), io.target()) };
    let out = settle(got, Some(io.target()), ov, false);
    println!("  issue   ov={ov:#06x} -> {out:?}");
    driver.key_of(ov).expect("pending")
}

fn show(rx: &mpsc::Receiver<Event>, n: usize) {
    for _ in 0..n {
        match rx.recv_timeout(Duration::from_secs(10)) {
            Ok(Event::Callback(c, t)) => println!(
                "  callback ov={:#06x} status={} ({:?}) bytes={} on thread {t}",
                c.overlapped,
                c.status.code(),
                c.status,
                c.bytes
            ),
            Ok(Event::Discard(c, why)) => {
                println!("  no callback for ov={:#06x}: {why:?}", c.overlapped)
            }
            Ok(Event::Released) => println!("  object released"),
            Err(_) => println!("  (expected event did not arrive)"),
        }
    }
}

fn main() {
    println!("tpio tour: the TP_IO lifecycle on tpio's portable core (simulated kernel)\n");
    let pool = Pool::new("tour");
    let (tx, rx) = mpsc::channel();
    let io = IoObject::new(&CallbackEnvironment::new().pool(&pool), 0, Printer(tx));
    let driver = SimDriver::new();
    let ops = Arc::new(HandleOps::new());

    println!("1. two reads; the kernel completes them; two callbacks on pool workers");
    let a = issue(&io, &driver, &ops, 0x10);
    let b = issue(&io, &driver, &ops, 0x20);
    driver.complete(a, Win32Error::SUCCESS, 4096);
    driver.complete(b, Win32Error::HANDLE_EOF, 0);
    show(&rx, 2);

    println!("\n2. CancelIoEx(h, ov) on a pending read: it completes with 995 and 0 bytes");
    let c = issue(&io, &driver, &ops, 0x30);
    println!(
        "  cancel_io_ex(ov=0x30) -> {:?}",
        cancel_io(&driver, &ops, CancelScope::Overlapped(0x30))
    );
    driver.complete(c, Win32Error::SUCCESS, 0);
    show(&rx, 1);
    println!(
        "  cancel_io_ex(ov=0x30) again -> {:?}",
        cancel_io(&driver, &ops, CancelScope::Overlapped(0x30))
    );

    println!("\n3. wait_for_callbacks(false) blocks while a start is outstanding");
    let d = issue(&io, &driver, &ops, 0x40);
    println!(
        "  wait(false, 50 ms) -> idle={:?}",
        io.wait_for_callbacks_timeout(false, Duration::from_millis(50))
    );
    driver.complete(d, Win32Error::SUCCESS, 512);
    println!(
        "  after completion: wait(false) -> {:?}",
        io.wait_for_callbacks(false)
    );
    show(&rx, 1);

    println!("\n4. wait_for_callbacks(true) stops expecting the outstanding start");
    let e = issue(&io, &driver, &ops, 0x50);
    println!(
        "  wait(true) -> {:?} (returns at once; nothing cancelled in the kernel)",
        io.wait_for_callbacks(true)
    );
    driver.complete(e, Win32Error::SUCCESS, 100);
    show(&rx, 1);

    println!("\n5. close with a read in flight: neither cancels nor waits; released after the last callback");
    let f = issue(&io, &driver, &ops, 0x60);
    io.close();
    println!("  closed");
    driver.complete(f, Win32Error::SUCCESS, 7);
    show(&rx, 2);

    println!("\n6. throughput of the core's completion path (start, deliver, callback on a worker) for 2 s");
    let pool = Pool::new("bench");
    let counter = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let c2 = counter.clone();
    let io = IoObject::new(
        &CallbackEnvironment::new().pool(&pool),
        0,
        move |_: &mut CallbackInstance<'_>, _: Completion| {
            c2.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        },
    );
    let t0 = Instant::now();
    let mut issued = 0u64;
    while t0.elapsed() < Duration::from_secs(2) {
        for _ in 0..1024 {
            io.start().expect("start");
            io.target().complete(Completion {
                overlapped: 1,
                status: Win32Error::SUCCESS,
                bytes: 4096,
            });
        }
        issued += 1024;
        io.wait_for_callbacks(false).expect("wait");
    }
    let secs = t0.elapsed().as_secs_f64();
    println!(
        "  {issued} completions, {} callbacks, {:.0} k callbacks/s on {} worker threads",
        counter.load(std::sync::atomic::Ordering::Relaxed),
        issued as f64 / secs / 1e3,
        pool.thread_count()
    );
    println!("\nstats: {:?}", pool.stats());
}
