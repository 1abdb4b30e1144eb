//! The targets, checked against one run: each is a ratio of two
//! rows of the same workload — the median of the per-round ratios, so each
//! ratio pairs figures taken moments apart — or a size, with its goal, its
//! verdict and by how much it was missed.
//!
//! Owns the list of targets. It must never take a figure from another run.

use serde::Serialize;

use crate::measure::{paired_ratio, Row};
use crate::report::WorkloadReport;

/// One target's verdict.
#[derive(Clone, Debug, Serialize)]
pub struct TargetCheck {
    /// `W1` …
    pub workload: String,
    /// What is compared, in words.
    pub what: String,
    /// The measured ratio (or size), when both figures exist.
    pub value: Option<f64>,
    /// `>=` or `<=`.
    pub cmp: &'static str,
    /// The goal.
    pub goal: f64,
    /// `x` for ratios, `bytes` for sizes.
    pub unit: &'static str,
    /// Met, missed, or unknown (a figure is missing: `why`).
    pub met: Option<bool>,
    /// Why there is no verdict.
    pub why: Option<String>,
}

impl TargetCheck {
    /// How far from the goal, as a percentage of it (positive = missed).
    pub fn shortfall_pct(&self) -> Option<f64> {
        let v = self.value?;
        Some(match self.cmp {
            ">=" => (self.goal - v) / self.goal * 100.0,
            _ => (v - self.goal) / self.goal * 100.0,
        })
    }

    fn shown(&self, v: f64) -> String {
        if self.unit == "x" {
            format!("{v:.2}×")
        } else {
            format!("{v:.0} {}", self.unit)
        }
    }

    fn verdict(&self) -> String {
        match (self.met, self.shortfall_pct()) {
            (Some(true), _) => "met".into(),
            (Some(false), Some(p)) => format!("MISSED by {p:.0}%"),
            _ => format!("unknown: {}", self.why.as_deref().unwrap_or("no figure")),
        }
    }

    /// One line for the terminal.
    pub fn line(&self) -> String {
        format!(
            "{} {:<58} {:>9}  goal {} {:<9} {}",
            self.workload,
            self.what,
            self.value
                .map(|v| self.shown(v))
                .unwrap_or_else(|| "—".into()),
            self.cmp,
            self.shown(self.goal),
            self.verdict()
        )
    }

    /// One Markdown table row.
    pub fn markdown_row(&self) -> String {
        format!(
            "| {} {} | {} | {} {} | {} |\n",
            self.workload,
            self.what,
            self.value
                .map(|v| self.shown(v))
                .unwrap_or_else(|| "—".into()),
            self.cmp.replace(">=", "≥").replace("<=", "≤"),
            self.shown(self.goal),
            self.verdict()
        )
    }
}

fn row<'a>(ws: &'a [WorkloadReport], w: &str, key: &str) -> Result<&'a Row, String> {
    let wr = ws
        .iter()
        .find(|x| x.id == w)
        .ok_or_else(|| format!("{w} did not run"))?;
    wr.row(key).ok_or_else(|| format!("no {key} row"))
}

fn median(ws: &[WorkloadReport], w: &str, key: &str) -> Result<f64, String> {
    let r = row(ws, w, key)?;
    r.median
        .ok_or_else(|| format!("{}: {}", r.name, r.note.as_deref().unwrap_or("no figure")))
}

/// tpio's figure over the best peer's in `dens`, paired round by round
/// (see [`paired_ratio`]).
fn ratio(
    ws: &[WorkloadReport],
    w: &str,
    what: &str,
    num: &str,
    dens: &[&str],
    cmp: &'static str,
    goal: f64,
) -> TargetCheck {
    let value = (|| {
        let n = row(ws, w, num)?;
        median(ws, w, num)?;
        let ds: Vec<&Row> = dens.iter().filter_map(|d| row(ws, w, d).ok()).collect();
        if ds.iter().all(|d| d.median.is_none()) {
            return Err(match ds.first() {
                Some(d) => format!("{}: {}", d.name, d.note.as_deref().unwrap_or("no figure")),
                None => format!("no {} row", dens.join(" or ")),
            });
        }
        paired_ratio(n, &ds, cmp == ">=").ok_or_else(|| "no round with both figures".to_string())
    })();
    check(w, what, value, cmp, goal, "x")
}

fn check(
    w: &str,
    what: &str,
    value: Result<f64, String>,
    cmp: &'static str,
    goal: f64,
    unit: &'static str,
) -> TargetCheck {
    let (value, why) = match value {
        Ok(v) => (Some(v), None),
        Err(e) => (None, Some(e)),
    };
    TargetCheck {
        workload: w.into(),
        what: what.into(),
        value,
        cmp,
        goal,
        unit,
        met: value.map(|v| if cmp == ">=" { v >= goal } else { v <= goal }),
        why,
    }
}

/// Every target of the issue, against `ws`.
pub fn check_all(ws: &[WorkloadReport]) -> Vec<TargetCheck> {
    vec![
        ratio(
            ws,
            "W1",
            "tpio/io_uring ÷ plain 1-thread io_uring loop",
            "tpio-uring",
            &["uring-loop"],
            ">=",
            1.0,
        ),
        ratio(
            ws,
            "W1",
            "tpio/io_uring ÷ plain loop with channel hand-off",
            "tpio-uring",
            &["uring-handoff"],
            ">=",
            2.0,
        ),
        ratio(
            ws,
            "W1",
            "tpio/io_uring ÷ tokio spawn_blocking pread",
            "tpio-uring",
            &["tokio-blocking"],
            ">=",
            5.0,
        ),
        ratio(
            ws,
            "W1",
            "tpio/io_uring ÷ compio read_at",
            "tpio-uring",
            &["compio"],
            ">=",
            1.0,
        ),
        ratio(
            ws,
            "W2",
            "tpio/io_uring ÷ best plain 2-thread loop",
            "tpio-uring",
            &["mio-2t", "uring-2t"],
            ">=",
            0.9,
        ),
        ratio(
            ws,
            "W2",
            "tpio/io_uring ÷ tokio",
            "tpio-uring",
            &["tokio"],
            ">=",
            1.1,
        ),
        ratio(
            ws,
            "W2",
            "tpio/mio ÷ tokio",
            "tpio-mio",
            &["tokio"],
            ">=",
            1.0,
        ),
        ratio(
            ws,
            "W3",
            "tpio cancel by OVERLAPPED time ÷ plain by user_data",
            "tpio-uring-ov",
            &["uring-user-data"],
            "<=",
            2.0,
        ),
        ratio(
            ws,
            "W3",
            "tpio cancel by handle time ÷ plain by user_data",
            "tpio-uring-handle",
            &["uring-user-data"],
            "<=",
            2.0,
        ),
        w4_bytes(ws, "uring", "io_uring", "io"),
        w4_bytes(ws, "uring", "io_uring", "op"),
        w4_bytes(ws, "mio", "mio", "io"),
        w4_bytes(ws, "mio", "mio", "op"),
    ]
}

/// W4's memory target (≤ 256 bytes) for one backend: per TP_IO (`per`
/// "io") or per outstanding operation ("op").
fn w4_bytes(ws: &[WorkloadReport], key: &str, name: &str, per: &str) -> TargetCheck {
    let what = if per == "io" {
        "bytes per TP_IO"
    } else {
        "bytes per outstanding operation"
    };
    check(
        "W4",
        &format!("{what} ({name})"),
        median(ws, "W4", &format!("tpio-{key}-bytes-per-{per}")),
        "<=",
        256.0,
        "bytes",
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::measure::finish_rows;

    fn workload(id: &str, rows: &[(&str, &str, bool, &[f64])]) -> WorkloadReport {
        let mut rs: Vec<Row> = rows
            .iter()
            .map(|(key, unit, hib, samples)| {
                let mut r = Row::new(key, key, unit, *hib);
                for &s in samples.iter() {
                    r.record(Ok(s));
                }
                r
            })
            .collect();
        finish_rows(&mut rs, rows[0].0);
        WorkloadReport {
            id: id.into(),
            title: String::new(),
            base: rows[0].0.into(),
            rows: rs,
        }
    }

    fn find<'a>(ts: &'a [TargetCheck], what: &str) -> &'a TargetCheck {
        ts.iter()
            .find(|t| t.what.contains(what))
            .expect("target listed")
    }

    #[test]
    fn throughput_and_time_targets_get_verdicts_and_shortfalls() {
        let ws = vec![
            workload(
                "W1",
                &[
                    ("tpio-uring", "reads/s", true, &[90.0, 100.0, 110.0]),
                    ("uring-loop", "reads/s", true, &[100.0, 100.0, 100.0]),
                    ("compio", "reads/s", true, &[50.0, 50.0, 50.0]),
                ],
            ),
            workload(
                "W3",
                &[
                    ("tpio-uring-ov", "ms", false, &[30.0, 30.0, 30.0]),
                    ("uring-user-data", "ms", false, &[10.0, 10.0, 10.0]),
                ],
            ),
        ];
        let ts = check_all(&ws);
        let loop_ = find(&ts, "1-thread io_uring loop");
        assert_eq!(loop_.value, Some(1.0));
        assert_eq!(loop_.met, Some(true));
        let compio = find(&ts, "compio");
        assert_eq!(compio.value, Some(2.0));
        let ov = find(&ts, "by OVERLAPPED");
        assert_eq!(ov.value, Some(3.0));
        assert_eq!(ov.met, Some(false));
        assert_eq!(ov.shortfall_pct(), Some(50.0));
        // A workload that did not run gives no verdict, and says why.
        let w2 = find(&ts, "tpio/mio ÷ tokio");
        assert_eq!(w2.met, None);
        assert_eq!(w2.why.as_deref(), Some("W2 did not run"));
    }
}
