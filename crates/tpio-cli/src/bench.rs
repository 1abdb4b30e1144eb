//! `tpio bench`: runs `tpio_bench` with the command line's options, prints
//! progress to stderr and the tables to stdout, and writes JSON / Markdown
//! when asked. It owns no measurement.

use std::path::PathBuf;
use std::process::ExitCode;

/// The command line's bench options.
#[derive(Debug)]
pub struct Options {
    pub quick: bool,
    pub json: Option<PathBuf>,
    pub markdown: Option<PathBuf>,
    pub only: Vec<String>,
    pub contestants: Vec<String>,
    pub rounds: Option<usize>,
    pub secs: Option<f64>,
}

pub fn run(o: &Options) -> Result<ExitCode, Box<dyn std::error::Error>> {
    let mut cfg = if o.quick {
        tpio_bench::Config::quick()
    } else {
        tpio_bench::Config::full()
    };
    cfg.command = std::iter::once("tpio".to_string())
        .chain(std::env::args().skip(1))
        .collect::<Vec<_>>()
        .join(" ");
    cfg.only = o.only.clone();
    cfg.contestants = o.contestants.clone();
    if let Some(r) = o.rounds {
        cfg.rounds = r.max(1);
    }
    if let Some(s) = o.secs {
        cfg.sample_secs = s.max(0.05);
    }
    let report = tpio_bench::run(&cfg, &mut |line| eprintln!("{line}"))?;
    println!("{}", report.to_text());
    if let Some(p) = &o.json {
        std::fs::write(p, report.to_json())?;
        eprintln!("JSON written to {}", p.display());
    }
    if let Some(p) = &o.markdown {
        std::fs::write(p, report.to_markdown())?;
        eprintln!("Markdown written to {}", p.display());
    }
    Ok(ExitCode::SUCCESS)
}
