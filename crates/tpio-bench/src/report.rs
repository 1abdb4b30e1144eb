//! The benchmark's report: what ran where ([`Report`]), shown as text for
//! the terminal, Markdown for the README, and JSON for `--json FILE`.
//!
//! Owns presentation only: it never computes a figure (that is
//! `measure`) nor decides whether a target is met (that is `targets`).

use serde::Serialize;

use crate::machine::Machine;
use crate::measure::Row;
use crate::targets::TargetCheck;
use crate::Config;

/// One workload's rows.
#[derive(Clone, Debug, Serialize)]
pub struct WorkloadReport {
    /// `W1` … `W4`.
    pub id: String,
    /// What was measured.
    pub title: String,
    /// The key of the row the ratios are taken against.
    pub base: String,
    /// One per contestant, in the order they ran.
    pub rows: Vec<Row>,
}

impl WorkloadReport {
    /// The row with `key`.
    pub fn row(&self, key: &str) -> Option<&Row> {
        self.rows.iter().find(|r| r.key == key)
    }
}

/// Everything one `tpio bench` run found.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// Where it ran.
    pub machine: Machine,
    /// The command that ran it.
    pub command: String,
    /// Rounds, sample lengths, sizes.
    pub config: Config,
    /// Which tpio backends ran, or why not.
    pub backend_note: String,
    /// The workloads, in order.
    pub workloads: Vec<WorkloadReport>,
    /// The targets, met or missed.
    pub targets: Vec<TargetCheck>,
    /// How long the whole run took.
    pub elapsed_secs: f64,
    /// The share of the machine's CPU other processes used during the run,
    /// in percent (other work on a shared machine skews every figure).
    pub others_cpu_pct: Option<f64>,
}

/// A figure with its unit, scaled for reading (`812 k reads/s`, `14.2 ms`).
pub fn format_value(v: f64, unit: &str) -> String {
    if unit.ends_with("/s") {
        if v >= 1e6 {
            format!("{:.3} M {unit}", v / 1e6)
        } else if v >= 1e3 {
            format!("{:.1} k {unit}", v / 1e3)
        } else {
            format!("{v:.1} {unit}")
        }
    } else if v >= 100.0 {
        format!("{v:.0} {unit}")
    } else {
        format!("{v:.1} {unit}")
    }
}

fn ratio(r: &Row) -> String {
    r.vs_tpio.map_or_else(|| "—".into(), |x| format!("{x:.2}×"))
}

/// The spread of the samples: (max − min) / median, as a percentage.
fn spread(r: &Row) -> String {
    match (r.range(), r.median) {
        (Some((lo, hi)), Some(m)) if m > 0.0 && r.samples.len() > 1 => {
            format!("±{:.0}% ({} rounds)", (hi - lo) / m * 50.0, r.samples.len())
        }
        (Some(_), _) => format!("({} round)", r.samples.len()),
        _ => String::new(),
    }
}

fn median(r: &Row) -> String {
    match (r.median, &r.note) {
        (Some(m), _) => format_value(m, &r.unit),
        (None, Some(n)) => n.clone(),
        (None, None) => "—".into(),
    }
}

impl Report {
    /// `other processes used 3% of the CPU during the run`.
    pub fn load_line(&self) -> String {
        match self.others_cpu_pct {
            Some(p) => format!("other processes used {p:.0}% of the CPU during the run"),
            None => "other processes' CPU use unknown".into(),
        }
    }

    /// The terminal table.
    pub fn to_text(&self) -> String {
        let mut s = String::new();
        s += &format!("machine: {}; {}\n", self.machine.line(), self.load_line());
        s += &format!(
            "command: {}  ({} rounds, {:.1} s per throughput sample, {:.0} s in all)\n",
            self.command, self.config.rounds, self.config.sample_secs, self.elapsed_secs
        );
        s += &format!("{}\n", self.backend_note);
        for w in &self.workloads {
            s += &format!("\n{}  {}\n", w.id, w.title);
            s += &format!(
                "  {:<62} {:>22} {:>8}   {}\n",
                "contestant", "median", "× tpio", "spread"
            );
            for r in &w.rows {
                s += &format!(
                    "  {:<62} {:>22} {:>8}   {}\n",
                    r.name,
                    median(r),
                    ratio(r),
                    spread(r)
                );
                if let (Some(_), Some(n)) = (r.median, &r.note) {
                    s += &format!("  {:<62} (a round {n})\n", "");
                }
            }
        }
        s +=
            "\ntargets (× = tpio's figure over the best peer's, median of the per-round ratios):\n";
        for t in &self.targets {
            s += &format!("  {}\n", t.line());
        }
        s
    }

    /// The README's tables (Markdown).
    pub fn to_markdown(&self) -> String {
        let mut s = String::new();
        s += &format!(
            "Machine: {}; {}. Command: `{}` ({} rounds, {:.1} s per throughput sample; {:.0} s in all). {}.\n",
            self.machine.line(),
            self.load_line(),
            self.command,
            self.config.rounds,
            self.config.sample_secs,
            self.elapsed_secs,
            self.backend_note
        );
        for w in &self.workloads {
            s += &format!("\n**{}** — {}\n\n", w.id, w.title);
            s += "| contestant | median | × tpio | spread |\n| --- | ---: | ---: | --- |\n";
            for r in &w.rows {
                s += &format!(
                    "| {} | {} | {} | {} |\n",
                    r.name,
                    median(r),
                    ratio(r),
                    spread(r)
                );
            }
        }
        s += "\n| target | measured | goal | verdict |\n| --- | ---: | ---: | --- |\n";
        for t in &self.targets {
            s += &t.markdown_row();
        }
        s
    }

    /// The whole report as pretty JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_scaled_by_unit() {
        assert_eq!(format_value(812_345.0, "reads/s"), "812.3 k reads/s");
        assert_eq!(format_value(1_234_567.0, "reads/s"), "1.235 M reads/s");
        assert_eq!(format_value(14.23, "ms"), "14.2 ms");
        assert_eq!(format_value(312.0, "bytes"), "312 bytes");
    }
}
