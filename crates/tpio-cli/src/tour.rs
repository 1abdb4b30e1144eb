//! `tpio` with no arguments: a short tour of the TP_IO model on this
//! machine's backend, with real I/O — a file and a socket pair, reads
//! through a TP_IO, a cancel, waits, a close with a read in flight — each
//! callback printed with its result code and the thread it ran on; then a
//! two-second throughput figure.
//!
//! Owns the tour's script and its printing. Callbacks only send what they
//! saw to the main thread, which prints in order; every wait has a time
//! limit, so the tour always ends (well under 10 s).

use std::io::Write;
use std::process::ExitCode;
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::Mutex;
use std::time::Duration;

use tpio::{Backend, CallbackEnvironment, Done, OverlappedHandle, ThreadpoolIo, Win32Error};

type BoxError = Box<dyn std::error::Error>;

/// What a callback saw.
struct Seen {
    who: &'static str,
    tag: u64,
    status: Win32Error,
    bytes: usize,
    data: Vec<u8>,
    thread: String,
}

fn recorder(
    who: &'static str,
    tx: &Sender<Seen>,
) -> impl Fn(&mut tpio::CallbackInstance<'_>, Done) + Send + Sync {
    let tx = Mutex::new(tx.clone());
    move |_inst, d| {
        let seen = Seen {
            who,
            tag: d.tag,
            status: d.status(),
            bytes: d.bytes(),
            data: d.buf[..d.bytes()].to_vec(),
            thread: std::thread::current().name().unwrap_or("?").to_string(),
        };
        if let Ok(tx) = tx.lock() {
            let _ = tx.send(seen);
        }
    }
}

fn show(rx: &Receiver<Seen>, n: usize) -> Result<(), BoxError> {
    for _ in 0..n {
        let s = rx
            .recv_timeout(Duration::from_secs(5))
            .map_err(|_| "an expected callback did not come within 5 s")?;
        let text = if s.data.is_empty() {
            String::new()
        } else {
            format!(
                " {:?}",
                String::from_utf8_lossy(&s.data[..s.data.len().min(24)])
            )
        };
        println!(
            "    callback  {:<7} tag={} result={:?} bytes={}{} on thread {}",
            s.who, s.tag, s.status, s.bytes, text, s.thread
        );
    }
    Ok(())
}

/// What an issue returned: accepted (a callback will come) or failed at
/// once (rule 2: no callback).
fn issued(r: &Result<tpio::Started, tpio::IoFailed>) -> String {
    match r {
        Ok(s) if s.completed_now.is_some() => "done at once, no callback (skip mode)".into(),
        Ok(_) => "accepted: one callback will come".into(),
        Err(e) => format!("failed at once with {:?}: no callback", e.error),
    }
}

fn outcome(r: Result<(), Win32Error>) -> String {
    match r {
        Ok(()) => "ok".into(),
        Err(e) => format!("{e:?}"),
    }
}

/// Runs the tour.
pub fn run() -> Result<ExitCode, BoxError> {
    let backend = Backend::process()?;
    let pool = tpio::Pool::new("tour");
    pool.set_thread_maximum(2);
    let env = CallbackEnvironment::new().pool(&pool);
    println!(
        "tpio tour on {} ({}); callbacks run on pool \"tour\" (threads tpio-tour-N)\n",
        backend.name(),
        backend.why()
    );
    let (tx, rx) = channel();

    println!("1. A file (12,000 bytes) and a TP_IO on it; three reads: two in the file, one past its end");
    let path = std::env::temp_dir().join(format!("tpio-tour-{}.txt", std::process::id()));
    let text: Vec<u8> = b"thread-pool I/O on every OS. "
        .iter()
        .copied()
        .cycle()
        .take(12_000)
        .collect();
    std::fs::write(&path, &text)?;
    let file = tpio::File::open_overlapped(&path)?;
    let fio = ThreadpoolIo::new(&file, Some(&env), recorder("file", &tx))?;
    // Past the end the read is accepted and calls back with 38 (ERROR_HANDLE_EOF)
    // on every backend (Windows may also fail it at once; tpio does not).
    let mut callbacks = 0;
    for (tag, off) in [(1, 0), (2, 8192), (3, 16_384)] {
        let r = fio.read_at(vec![0; 4096], off, tag);
        println!(
            "    read_at(4096 bytes, offset {off}, tag {tag}) -> {}",
            issued(&r)
        );
        callbacks += usize::from(r.is_ok());
    }
    show(&rx, callbacks)?;
    fio.wait_for_callbacks(false)?;
    println!("    wait_for_callbacks(false) -> ok; close");
    fio.close();
    drop(file);
    let _ = std::fs::remove_file(&path);

    println!("\n2. A socket pair; a read on one end that nothing answers, then CancelIoEx by its OVERLAPPED");
    let (a, b) = tpio::UnixStream::pair_on(&backend)?;
    let aio = ThreadpoolIo::new(&a, Some(&env), recorder("sock a", &tx))?;
    let bio = ThreadpoolIo::new(&b, Some(&env), recorder("sock b", &tx))?;
    let op = aio.read(vec![0; 64], 10)?;
    println!(
        "    read(64 bytes, tag 10) -> accepted ({} in flight on a)",
        a.in_flight()
    );
    println!(
        "    cancel_io_ex(a, OVERLAPPED {:#x}) -> {}",
        op.overlapped.0,
        outcome(tpio::cancel_io_ex(&a, Some(op.overlapped)))
    );
    show(&rx, 1)?;
    println!(
        "    cancel_io_ex(a, same OVERLAPPED) again -> {}",
        outcome(tpio::cancel_io_ex(&a, Some(op.overlapped)))
    );

    println!("\n3. wait_for_callbacks waits for an outstanding read; a write from the other end completes it");
    aio.read(vec![0; 64], 11)?;
    let idle = aio.wait_for_callbacks_timeout(false, Duration::from_millis(100))?;
    println!(
        "    wait_for_callbacks(false), 100 ms limit -> idle={idle} (the read is outstanding)"
    );
    bio.write(b"hello from b".to_vec(), 20)?;
    println!("    b.write(\"hello from b\", tag 20)");
    show(&rx, 2)?;
    aio.wait_for_callbacks(false)?;
    bio.wait_for_callbacks(false)?;
    println!("    wait_for_callbacks(false) -> ok");

    println!("\n4. Close with a read in flight: close neither cancels nor waits; the read still calls back");
    let before = pool.stats();
    aio.read(vec![0; 64], 12)?;
    aio.close();
    println!("    read(tag 12); close(a's TP_IO) -> returns at once");
    bio.write(b"after close".to_vec(), 21)?;
    show(&rx, 2)?;
    bio.wait_for_callbacks(false)?;
    bio.close();
    let released = wait_released(&pool, before.objects_released + 2);
    println!("    both TP_IOs released after their last callback: {released}");
    drop((a, b));

    println!("\n5. Throughput: 4 KiB random reads from a 64 MiB cached file, 64 in flight, each callback issuing the next, for 2 s");
    std::io::stdout().flush()?;
    let data = std::env::temp_dir().join("tpio-tour-64MiB.bin");
    match tpio_bench::tour_throughput(&data, 64 << 20, Duration::from_secs(2)) {
        Ok(rate) => println!(
            "    {:.0} k reads/s on {} ({} pool workers)",
            rate / 1e3,
            backend.name(),
            2
        ),
        Err(e) => println!("    {e}"),
    }
    let s = pool.stats();
    println!(
        "\npool \"tour\": {} callbacks run, {} objects created, {} released, misuse diagnosed: {}",
        s.callbacks_run,
        s.objects_created,
        s.objects_released,
        s.misuse_total()
    );
    Ok(ExitCode::SUCCESS)
}

fn wait_released(pool: &tpio::Pool, want: u64) -> bool {
    let end = std::time::Instant::now() + Duration::from_secs(5);
    while pool.stats().objects_released < want {
        if std::time::Instant::now() > end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    true
}
