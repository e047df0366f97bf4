//! A benchmark's result: named measurements, printed as a table and written as JSON.

use std::path::Path;

use anyhow::Context as _;
use serde::Serialize;
use serde_json::Value;

/// One measured number with its unit, the target it is held against, and how it was taken.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub metric: String,
    pub value: f64,
    pub unit: String,
    /// Human-readable target, for example `< 20000 ns` (empty when the issue sets none).
    pub target: String,
    /// Whether the target is met; `None` when there is no target.
    pub met: Option<bool>,
    pub note: String,
}

/// The results of one `sluice bench <kind>` run.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub bench: String,
    /// Where it ran: `nproc`, load average at start, CPU model.
    pub machine: Value,
    /// The parameters the run used (counts, durations).
    pub params: Value,
    pub rows: Vec<Row>,
}

/// How a target compares the measured value.
#[derive(Debug, Clone, Copy)]
pub enum Target {
    None,
    AtMost(f64),
    AtLeast(f64),
}

impl Report {
    pub fn new(bench: &str, params: Value) -> Self {
        Self {
            bench: bench.to_string(),
            machine: super::procfs::machine(),
            params,
            rows: Vec::new(),
        }
    }

    /// Record a measurement (and echo it to stderr so long runs show progress).
    pub fn add(&mut self, metric: &str, value: f64, unit: &str, target: Target, note: &str) {
        let (target_text, met) = match target {
            Target::None => (String::new(), None),
            Target::AtMost(t) => (format!("<= {} {unit}", fmt_num(t)), Some(value <= t)),
            Target::AtLeast(t) => (format!(">= {} {unit}", fmt_num(t)), Some(value >= t)),
        };
        eprintln!("  {metric}: {} {unit}", fmt_num(value));
        self.rows.push(Row {
            metric: metric.to_string(),
            value,
            unit: unit.to_string(),
            target: target_text,
            met,
            note: note.to_string(),
        });
    }

    /// A fixed-width table for the terminal (also pasted into docs/performance.md).
    pub fn table(&self) -> String {
        let header = ["metric", "value", "unit", "target", "met", "note"];
        let cells: Vec<[String; 6]> = self
            .rows
            .iter()
            .map(|r| {
                [
                    r.metric.clone(),
                    fmt_num(r.value),
                    r.unit.clone(),
                    r.target.clone(),
                    match r.met {
                        Some(true) => "yes".into(),
                        Some(false) => "NO".into(),
                        None => String::new(),
                    },
                    r.note.clone(),
                ]
            })
            .collect();
        let mut widths = header.map(str::len);
        for row in &cells {
            for (w, c) in widths.iter_mut().zip(row) {
                *w = (*w).max(c.chars().count());
            }
        }
        let line = |row: &[String]| {
            let parts: Vec<String> = row
                .iter()
                .zip(widths)
                .map(|(c, w)| format!("{c:<w$}"))
                .collect();
            format!("| {} |", parts.join(" | "))
        };
        let mut out = format!("## sluice bench {}\n\n", self.bench);
        out += &line(&header.map(String::from));
        out.push('\n');
        let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
        out += &format!("|-{}-|\n", rule.join("-|-"));
        for row in &cells {
            out += &line(row);
            out.push('\n');
        }
        out
    }

    /// Write the report as pretty JSON.
    pub fn write_json(&self, path: &Path) -> anyhow::Result<()> {
        let text = serde_json::to_string_pretty(self)?;
        std::fs::write(path, text + "\n").with_context(|| format!("writing {}", path.display()))
    }
}

/// Numbers as people read them: integers without decimals, small values with three digits.
pub fn fmt_num(v: f64) -> String {
    if !v.is_finite() {
        return v.to_string();
    }
    if v.fract() == 0.0 || v.abs() >= 1000.0 {
        format!("{v:.0}")
    } else if v.abs() >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.3}")
    }
}

/// Mean, p50 and p99 of a sample (sorted in place). `None` for an empty sample.
pub fn summary(sample: &mut [f64]) -> Option<(f64, f64, f64)> {
    if sample.is_empty() {
        return None;
    }
    sample.sort_by(f64::total_cmp);
    let mean = sample.iter().sum::<f64>() / sample.len() as f64;
    Some((mean, percentile(sample, 50.0), percentile(sample, 99.0)))
}

/// Nearest-rank percentile of a sorted sample.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles_of_one_to_hundred() {
        let mut v: Vec<f64> = (1..=100).map(f64::from).collect();
        let (mean, p50, p99) = summary(&mut v).unwrap();
        assert_eq!((mean, p50, p99), (50.5, 50.0, 99.0));
        assert_eq!(percentile(&[7.0], 99.0), 7.0);
    }

    #[test]
    fn targets_are_judged_in_the_right_direction() {
        let mut r = Report {
            bench: "t".into(),
            machine: Value::Null,
            params: Value::Null,
            rows: vec![],
        };
        r.add("a", 5.0, "ms", Target::AtMost(4.0), "");
        r.add("b", 5.0, "ops/s", Target::AtLeast(4.0), "");
        r.add("c", 5.0, "x", Target::None, "");
        let met: Vec<_> = r.rows.iter().map(|r| r.met).collect();
        assert_eq!(met, [Some(false), Some(true), None]);
        assert!(r.table().contains("| a      | 5     | ms    | <= 4 ms"));
    }
}
