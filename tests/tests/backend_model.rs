//! Property test of the backend with REAL I/O: random sequences of reads,
//! writes, cancels (by OVERLAPPED, all, by thread) and waits (with and
//! without cancel) on a real pipe and a real Unix stream socket, each bound
//! to a safe `ThreadpoolIo`, run against `Model`, a sequential reference
//! written from `spec/semantics.md` (rules 1–6): which read gets which
//! bytes (in issue order), which gets 995, which gets no callback at all
//! (after `wait_for_callbacks(true)`), what each cancel returns, and what
//! every wait leaves behind.
//!
//! Real completions are asynchronous; the test waits at the points where
//! Windows would already be settled (after a write, the reads it fed have
//! completed; after a wait, every callback it waited for has run), never on
//! a timer. The backend is the process's (`TPIO_BACKEND` picks it).
//!
//! Cases: `TPIO_BACKEND_MODEL_CASES` (default 1,000, about 20,000 steps:
//! well under a second here).
#![cfg(unix)]

mod support;

use std::collections::{BTreeMap, VecDeque};
use std::sync::mpsc::{self, Receiver};
use std::time::Instant;

use proptest::prelude::*;
use support::*;
use tpio::{
    cancel_io, cancel_io_ex, Done, OverlappedHandle, OverlappedId, Started, ThreadpoolIo,
    Win32Error,
};

/// Every read asks for this many bytes; writes are whole multiples of it.
const R: usize = 8;

#[derive(Clone, Debug)]
enum Action {
    Read(usize),
    Write(usize, usize),
    CancelPick(usize, usize),
    CancelAll(usize),
    CancelThread(usize),
    Wait(usize, bool),
}

fn action() -> impl Strategy<Value = Action> {
    let h = 0usize..2;
    prop_oneof![
        6 => h.clone().prop_map(Action::Read),
        4 => (h.clone(), 1usize..4).prop_map(|(h, k)| Action::Write(h, k)),
        3 => (h.clone(), any::<usize>()).prop_map(|(h, p)| Action::CancelPick(h, p)),
        1 => h.clone().prop_map(Action::CancelAll),
        1 => h.clone().prop_map(Action::CancelThread),
        2 => (h, any::<bool>()).prop_map(|(h, c)| Action::Wait(h, c)),
    ]
}

/// A read the model still expects the kernel to hold.
#[derive(Debug)]
struct MRead {
    tag: u64,
    /// After `wait_for_callbacks(true)`: its packet gets no callback.
    skipped: bool,
}

/// One handle as the rules see it.
#[derive(Debug, Default)]
struct MHandle {
    pending: VecDeque<MRead>,
    buffered: usize,
    /// Every result the rules promise: tag → (status, bytes).
    expected: BTreeMap<u64, Result<usize, Win32Error>>,
    /// Reads that got data, in issue order, with the stream offset it starts at.
    fed: Vec<(u64, usize)>,
    consumed: usize,
}

impl MHandle {
    fn feed(&mut self) {
        while self.buffered > 0 {
            let Some(r) = self.pending.pop_front() else {
                break;
            };
            self.buffered -= R;
            self.fed.push((r.tag, self.consumed));
            self.consumed += R;
            if !r.skipped {
                self.expected.insert(r.tag, Ok(R));
            }
        }
    }

    fn cancel(&mut self, r: MRead) {
        if !r.skipped {
            self.expected
                .insert(r.tag, Err(Win32Error::OPERATION_ABORTED));
        }
    }
}

/// One real handle pair and its TP_IO.
struct Real {
    reader: Box<dyn OverlappedHandle>,
    writer: Box<dyn OverlappedHandle>,
    io: ThreadpoolIo,
    rx: Receiver<Done>,
    got: BTreeMap<u64, Done>,
    ids: BTreeMap<u64, OverlappedId>,
    written: usize,
}

impl Real {
    fn new(pipe: bool, skip: bool) -> Real {
        let (reader, writer): (Box<dyn OverlappedHandle>, Box<dyn OverlappedHandle>) = if pipe {
            let (r, w) = tpio::pipe().expect("pipe");
            (Box::new(r), Box::new(w))
        } else {
            let (a, b) = tpio::UnixStream::pair().expect("socketpair");
            (Box::new(a), Box::new(b))
        };
        reader.set_skip_completion_on_success(skip);
        let (tx, rx) = mpsc::channel();
        let tx = std::sync::Mutex::new(tx);
        let io = ThreadpoolIo::new(&*reader, None, move |_i, d| {
            let _ = tx.lock().map(|t| t.send(d));
        })
        .expect("create");
        Real {
            reader,
            writer,
            io,
            rx,
            got: BTreeMap::new(),
            ids: BTreeMap::new(),
            written: 0,
        }
    }

    fn record(&mut self, d: Done) {
        let prev = self.got.insert(d.tag, d);
        assert!(prev.is_none(), "rule 1: two results for one operation");
    }

    /// Takes callbacks until `n` results are in, or fails.
    fn until(&mut self, n: usize) {
        let deadline = Instant::now() + PATIENCE;
        while self.got.len() < n {
            let left = deadline.saturating_duration_since(Instant::now());
            let d = self
                .rx
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("{} of {n} results after {PATIENCE:?}", self.got.len()));
            self.record(d);
        }
    }

    fn drain_now(&mut self) {
        while let Ok(d) = self.rx.try_recv() {
            self.record(d);
        }
    }

    /// Waits until the handle holds `n` operations in flight.
    fn in_flight_until(&self, n: usize) {
        let deadline = Instant::now() + PATIENCE;
        while self.reader.in_flight() != n {
            assert!(
                Instant::now() < deadline,
                "in flight: {} (expected {n})",
                self.reader.in_flight()
            );
            std::thread::yield_now();
        }
    }
}

fn stream_byte(i: usize) -> u8 {
    (i % 251) as u8
}

fn run(actions: &[Action], skip: bool) {
    let mut real = [Real::new(true, skip), Real::new(false, skip)];
    let mut model = [MHandle::default(), MHandle::default()];
    let mut tag = 0u64;
    for a in actions {
        match *a {
            Action::Read(h) => {
                tag += 1;
                let (m, r) = (&mut model[h], &mut real[h]);
                match r.io.read(vec![0; R], tag) {
                    Ok(Started {
                        overlapped,
                        completed_now,
                    }) => {
                        r.ids.insert(tag, overlapped);
                        if let Some(d) = completed_now {
                            assert!(skip, "rule 2: only skip mode hands a result back");
                            r.record(d);
                        }
                    }
                    Err(e) => panic!("rule 2: a read failed at once: {e}"),
                }
                m.pending.push_back(MRead {
                    tag,
                    skipped: false,
                });
                m.feed();
                // With data already there Windows completes the read inside
                // ReadFile; a backend may take a moment longer (io_uring
                // with the at-once path off): settle before the next step.
                r.in_flight_until(m.pending.len());
            }
            Action::Write(h, k) => {
                let (m, r) = (&mut model[h], &mut real[h]);
                let data: Vec<u8> = (r.written..r.written + k * R).map(stream_byte).collect();
                assert_eq!(r.writer.write_blocking(&data), Ok(k * R));
                r.written += k * R;
                m.buffered += k * R;
                m.feed();
                // Windows has fed the pending reads when WriteFile returns.
                r.in_flight_until(m.pending.len());
            }
            Action::CancelPick(h, p) => {
                let (m, r) = (&mut model[h], &mut real[h]);
                if tag == 0 {
                    continue;
                }
                let pick = 1 + (p as u64 % tag);
                let Some(&id) = r.ids.get(&pick) else {
                    continue;
                };
                // The model holds the pick's operation only if still pending.
                let pos = m.pending.iter().position(|x| x.tag == pick);
                let want = if pos.is_some() {
                    Ok(())
                } else {
                    Err(Win32Error::NOT_FOUND)
                };
                // An OVERLAPPED of a finished read may name a new read now
                // (the box address is reused): then the model picks that one.
                let alias = r
                    .ids
                    .iter()
                    .filter(|(t, i)| **i == id && m.pending.iter().any(|x| x.tag == **t))
                    .map(|(t, _)| *t)
                    .collect::<Vec<_>>();
                let got = cancel_io_ex(&*r.reader, Some(id));
                if alias.is_empty() {
                    assert_eq!(got, want, "rule 6: cancel of tag {pick}");
                } else {
                    assert_eq!(got, Ok(()));
                    for t in alias {
                        let i = m.pending.iter().position(|x| x.tag == t).expect("pending");
                        let x = m.pending.remove(i).expect("pending");
                        m.cancel(x);
                    }
                }
                r.in_flight_until(m.pending.len());
            }
            Action::CancelAll(h) | Action::CancelThread(h) => {
                let (m, r) = (&mut model[h], &mut real[h]);
                let by_thread = matches!(a, Action::CancelThread(_));
                let got = if by_thread {
                    cancel_io(&*r.reader)
                } else {
                    cancel_io_ex(&*r.reader, None)
                };
                let want = if m.pending.is_empty() && !by_thread {
                    Err(Win32Error::NOT_FOUND)
                } else {
                    Ok(())
                };
                assert_eq!(got, want, "rule 6: cancel all (by thread: {by_thread})");
                while let Some(x) = m.pending.pop_front() {
                    m.cancel(x);
                }
                r.in_flight_until(0);
            }
            Action::Wait(h, cancel) => {
                let (m, r) = (&mut model[h], &mut real[h]);
                let waiting_on = m.pending.iter().any(|x| !x.skipped);
                if !cancel && waiting_on {
                    continue; // would block: a read waits for data
                }
                r.io.wait_for_callbacks(cancel).expect("wait");
                if cancel {
                    for x in m.pending.iter_mut() {
                        x.skipped = true;
                    }
                }
                // Rule 4: every callback it waited for has run, so every
                // result the model expects is in now — except, with cancel,
                // those whose callback was still queued: wait(true) drops
                // them (their buffers go back through the core's discard).
                r.drain_now();
                if cancel {
                    m.expected.retain(|t, _| r.got.contains_key(t));
                }
                assert_eq!(
                    r.got.len(),
                    m.expected.len(),
                    "rule 4: results after the wait"
                );
            }
        }
    }
    // The end: cancel what is left, drain, and compare everything.
    for (m, r) in model.iter_mut().zip(real.iter_mut()) {
        let _ = cancel_io_ex(&*r.reader, None);
        while let Some(x) = m.pending.pop_front() {
            m.cancel(x);
        }
        r.until(m.expected.len());
        r.in_flight_until(0);
        idle(&r.io);
        r.drain_now();
        let got: BTreeMap<u64, Result<usize, Win32Error>> =
            r.got.iter().map(|(t, d)| (*t, d.result)).collect();
        assert_eq!(got, m.expected, "rules 1–3, 6: every result");
        for (t, off) in &m.fed {
            if let Some(d) = r.got.get(t) {
                let want: Vec<u8> = (*off..off + R).map(stream_byte).collect();
                assert_eq!(&d.buf[..R], &want[..], "read {t}: bytes in issue order");
            }
        }
        assert_eq!(counts_settle(&r.io), tpio::IoCounts::default());
    }
}

fn cases() -> u32 {
    std::env::var("TPIO_BACKEND_MODEL_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    #[test]
    fn backend_matches_the_model(actions in prop::collection::vec(action(), 1..40), skip in any::<bool>()) {
        if backend_here() {
            run(&actions, skip);
        }
    }
}
