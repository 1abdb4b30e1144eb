//! The `tpio` command: does tpio work here, and what does it cost.
//!
//! With no arguments, a short tour on this machine's backend ([`tour`]);
//! `probe` says which backends work and why not ([`probe`]); `copy` copies a
//! file through TP_IO callbacks ([`copy`]); `bench` runs the benchmark
//! ([`bench`], the workloads live in `tpio-bench`). This file owns only the
//! command line; it must never do I/O itself.
#![deny(unsafe_op_in_unsafe_fn)]

mod bench;
mod copy;
mod probe;
mod tour;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

/// The counting allocator, so the benchmark can report bytes per TP_IO and
/// per operation (one relaxed load per allocation when not measuring).
#[global_allocator]
static GLOBAL: tpio_bench::alloc::CountingAlloc = tpio_bench::alloc::CountingAlloc;

#[derive(Parser, Debug)]
#[command(
    name = "tpio",
    version,
    about = "Windows thread-pool I/O (TP_IO) on this machine: a tour, a probe, a copy, a benchmark"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// The tour (the default): real reads through a TP_IO, a cancel, a wait,
    /// a close, then a two-second throughput figure.
    Tour,
    /// Which backends work here, and why not.
    Probe,
    /// Copies SRC to DST through TP_IO callbacks, with a progress bar.
    Copy(copy::Args),
    /// The benchmark: tpio next to plain io_uring, tokio, compio and mio.
    Bench {
        /// About a minute: fewer rounds, shorter samples.
        #[arg(long)]
        quick: bool,
        /// Also write the whole report as JSON here.
        #[arg(long, value_name = "FILE")]
        json: Option<PathBuf>,
        /// Also write the tables as Markdown here (for the README).
        #[arg(long, value_name = "FILE")]
        markdown: Option<PathBuf>,
        /// Only these workloads (w1, w2, w3, w4; repeatable).
        #[arg(long, value_name = "W")]
        only: Vec<String>,
        /// Only the contestants with these keys (repeatable; see the JSON
        /// report's `key`: tpio-uring, uring-loop, tokio, …), for profiling.
        #[arg(long, value_name = "KEY")]
        contestant: Vec<String>,
        /// Rounds (default 3 with --quick, else 5).
        #[arg(long)]
        rounds: Option<usize>,
        /// Seconds per throughput sample (default 0.3 with --quick, else 1).
        #[arg(long)]
        secs: Option<f64>,
    },
}

/// A backend on the command line.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum BackendArg {
    /// Linux io_uring.
    Uring,
    /// mio readiness plus blocking workers for files.
    Mio,
}

impl From<BackendArg> for tpio::BackendKind {
    fn from(b: BackendArg) -> Self {
        match b {
            BackendArg::Uring => tpio::BackendKind::Uring,
            BackendArg::Mio => tpio::BackendKind::Mio,
        }
    }
}

/// A command whose output goes to a pipe that closes early (`tpio probe |
/// head`) ends quietly, as Unix tools do, instead of panicking in
/// `println!` (Rust starts programs with SIGPIPE ignored). Not for `bench`:
/// some of its peers send without `MSG_NOSIGNAL`. tpio's own pipe writes
/// raise no SIGPIPE where the kernel has RWF_NOSIGNAL (`tpio probe` says).
fn quiet_on_closed_stdout() {
    #[cfg(unix)]
    // SAFETY: setting SIGPIPE's disposition touches no memory of ours.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let r = match cli.command.unwrap_or(Command::Tour) {
        Command::Tour => {
            quiet_on_closed_stdout();
            tour::run()
        }
        Command::Probe => {
            quiet_on_closed_stdout();
            probe::run()
        }
        Command::Copy(args) => {
            quiet_on_closed_stdout();
            copy::run(&args)
        }
        Command::Bench {
            quick,
            json,
            markdown,
            only,
            contestant,
            rounds,
            secs,
        } => bench::run(&bench::Options {
            quick,
            json,
            markdown,
            only,
            contestants: contestant,
            rounds,
            secs,
        }),
    };
    match r {
        Ok(code) => code,
        Err(e) => {
            eprintln!("tpio: {e}");
            ExitCode::FAILURE
        }
    }
}
