//! Samples, rounds and medians: the one place a contestant's runs become a
//! row of figures.
//!
//! Owns [`RunError`] (why a run gave no figure), [`Row`] (a contestant's
//! samples, median and ratio to tpio) and the round runner
//! ([`Contestant`]). It must never drop a contestant silently: one that is
//! unavailable or fails keeps its row, with the reason.

use serde::Serialize;

/// Why a run produced no figure.
#[derive(Clone, Debug, PartialEq)]
pub enum RunError {
    /// The contestant cannot run here (no such backend, no io_uring, …);
    /// it is not tried again in later rounds.
    Unavailable(String),
    /// It ran and went wrong (an I/O error, lost completions, a time-out).
    Failed(String),
}

impl std::fmt::Display for RunError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RunError::Unavailable(why) => write!(f, "unavailable: {why}"),
            RunError::Failed(why) => write!(f, "failed: {why}"),
        }
    }
}

impl std::error::Error for RunError {}

impl From<std::io::Error> for RunError {
    fn from(e: std::io::Error) -> Self {
        RunError::Failed(e.to_string())
    }
}

impl From<tpio::Win32Error> for RunError {
    fn from(e: tpio::Win32Error) -> Self {
        RunError::Failed(format!("{e} ({e:?})"))
    }
}

impl From<tpio::BackendError> for RunError {
    fn from(e: tpio::BackendError) -> Self {
        RunError::Unavailable(e.reason)
    }
}

/// One contestant's figures in one workload.
#[derive(Clone, Debug, Serialize)]
pub struct Row {
    /// A stable key (`tpio-uring`, `uring-loop`, …) the targets refer to.
    pub key: String,
    /// What a reader sees.
    pub name: String,
    /// The figure's unit (`reads/s`, `ms`, `bytes`).
    pub unit: String,
    /// True for throughput, false for times and sizes.
    pub higher_is_better: bool,
    /// One figure per round that produced one.
    pub samples: Vec<f64>,
    /// Round by round (`None`: that round gave no figure), so that ratios
    /// can pair figures taken moments apart.
    pub per_round: Vec<Option<f64>>,
    /// The median of `samples`.
    pub median: Option<f64>,
    /// This row's median as a multiple of the base row's (tpio's) median,
    /// when both exist and share a unit.
    pub vs_tpio: Option<f64>,
    /// Why a round gave no figure (the last reason), e.g. `unavailable: …`.
    pub note: Option<String>,
    /// True once the contestant said it cannot run here.
    #[serde(skip)]
    pub unavailable: bool,
}

impl Row {
    /// An empty row.
    pub fn new(key: &str, name: &str, unit: &str, higher_is_better: bool) -> Row {
        Row {
            key: key.into(),
            name: name.into(),
            unit: unit.into(),
            higher_is_better,
            samples: Vec::new(),
            per_round: Vec::new(),
            median: None,
            vs_tpio: None,
            note: None,
            unavailable: false,
        }
    }

    /// Records one run's outcome.
    pub fn record(&mut self, r: Result<f64, RunError>) {
        self.per_round.push(r.as_ref().ok().copied());
        match r {
            Ok(v) => self.samples.push(v),
            Err(e) => {
                self.unavailable = matches!(e, RunError::Unavailable(_));
                self.note = Some(e.to_string());
            }
        }
    }

    /// The smallest and largest sample.
    pub fn range(&self) -> Option<(f64, f64)> {
        let lo = self.samples.iter().copied().reduce(f64::min)?;
        let hi = self.samples.iter().copied().reduce(f64::max)?;
        Some((lo, hi))
    }
}

/// The median (the mean of the middle two for an even count).
pub fn median(v: &[f64]) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let m = s.len() / 2;
    Some(if s.len() % 2 == 1 {
        s[m]
    } else {
        (s[m - 1] + s[m]) / 2.0
    })
}

/// The median over rounds of `num`'s figure divided by the best of `dens`
/// in the same round (the largest when `higher_is_better`, else the
/// smallest): ratios of figures taken moments apart, so a machine whose load
/// drifts between rounds moves both sides alike.
pub fn paired_ratio(num: &Row, dens: &[&Row], higher_is_better: bool) -> Option<f64> {
    let ratios: Vec<f64> = num
        .per_round
        .iter()
        .enumerate()
        .filter_map(|(i, n)| {
            let n = (*n)?;
            let ds = dens
                .iter()
                .filter_map(|d| d.per_round.get(i).copied().flatten());
            let best = if higher_is_better {
                ds.reduce(f64::max)
            } else {
                ds.reduce(f64::min)
            }?;
            (best > 0.0).then(|| n / best)
        })
        .collect();
    median(&ratios)
}

/// Fills in medians and ratios to the row keyed `base`.
pub fn finish_rows(rows: &mut [Row], base: &str) {
    for r in rows.iter_mut() {
        r.median = median(&r.samples);
    }
    let base_row = rows.iter().find(|r| r.key == base).cloned();
    for r in rows.iter_mut() {
        r.vs_tpio = match (&base_row, r.median) {
            (Some(b), Some(m)) if b.unit == r.unit => b.median.filter(|&b| b > 0.0).map(|b| m / b),
            _ => None,
        };
    }
}

/// A contestant: its row and the closure that produces one sample.
pub struct Contestant<'a> {
    /// The figures so far.
    pub row: Row,
    run: Box<dyn FnMut() -> Result<f64, RunError> + 'a>,
}

impl<'a> Contestant<'a> {
    /// A contestant with an empty row.
    pub fn new(
        key: &str,
        name: &str,
        unit: &str,
        higher_is_better: bool,
        run: impl FnMut() -> Result<f64, RunError> + 'a,
    ) -> Self {
        Contestant {
            row: Row::new(key, name, unit, higher_is_better),
            run: Box::new(run),
        }
    }

    /// Runs one sample unless the contestant said it cannot run here.
    /// Returns the outcome (for the caller's log line).
    pub fn run_once(&mut self) -> Option<Result<f64, RunError>> {
        if self.row.unavailable {
            return None;
        }
        let r = (self.run)();
        self.row.record(r.clone());
        Some(r)
    }
}

impl std::fmt::Debug for Contestant<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Contestant")
            .field("row", &self.row)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(&[]), None);
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), Some(2.5));
    }

    #[test]
    fn ratios_are_to_the_base_row_and_only_within_a_unit() {
        let mut rows = vec![
            Row::new("tpio", "tpio", "reads/s", true),
            Row::new("peer", "peer", "reads/s", true),
            Row::new("size", "size", "bytes", false),
        ];
        rows[0].record(Ok(100.0));
        rows[1].record(Ok(50.0));
        rows[1].record(Ok(70.0));
        rows[2].record(Ok(9.0));
        finish_rows(&mut rows, "tpio");
        assert_eq!(rows[1].median, Some(60.0));
        assert_eq!(rows[1].vs_tpio, Some(0.6));
        assert_eq!(rows[2].vs_tpio, None);
    }

    #[test]
    fn paired_ratios_pair_rounds_and_take_the_best_peer() {
        let mut t = Row::new("t", "t", "x/s", true);
        let mut a = Row::new("a", "a", "x/s", true);
        let mut b = Row::new("b", "b", "x/s", true);
        for (tv, av, bv) in [(10.0, 5.0, 4.0), (20.0, 5.0, 10.0), (30.0, 10.0, 5.0)] {
            t.record(Ok(tv));
            a.record(Ok(av));
            b.record(Ok(bv));
        }
        // Round ratios against the best peer: 2, 2, 3.
        assert_eq!(paired_ratio(&t, &[&a, &b], true), Some(2.0));
        // Against the smallest (times): 2.5, 4, 6.
        assert_eq!(paired_ratio(&t, &[&a, &b], false), Some(4.0));
        b.record(Err(RunError::Failed("x".into())));
        t.record(Ok(1.0));
        a.record(Err(RunError::Failed("x".into())));
        assert_eq!(paired_ratio(&t, &[&a, &b], true), Some(2.0));
    }

    #[test]
    fn an_unavailable_contestant_is_not_run_again_and_keeps_its_reason() {
        let mut calls = 0;
        let mut c = Contestant::new("mio", "mio", "reads/s", true, || {
            calls += 1;
            Err(RunError::Unavailable("not built".into()))
        });
        assert!(c.run_once().is_some());
        assert!(c.run_once().is_none());
        let row = c.row.clone();
        drop(c);
        assert_eq!(calls, 1);
        assert_eq!(row.note.as_deref(), Some("unavailable: not built"));
    }
}
