//! Output: one JSON object per figure, and the summary table.

use std::fmt::Write as _;

/// One measured figure.
#[derive(Clone, Debug, PartialEq)]
pub struct Record {
    /// The benchmark (`bulk`, `handshake`, `idle`, `echo`).
    pub bench: &'static str,
    /// Which implementation: `jsp`, `quinn`, or `ceiling` for the physical limit.
    pub implementation: &'static str,
    /// What was measured.
    pub metric: &'static str,
    /// The figure.
    pub value: f64,
    /// Its unit.
    pub unit: &'static str,
}

impl Record {
    /// The record as one line of JSON.
    pub fn to_json(&self) -> String {
        let value = if self.value.is_finite() {
            format!("{}", (self.value * 1000.0).round() / 1000.0)
        } else {
            "null".to_string()
        };
        format!(
            r#"{{"bench":"{}","impl":"{}","metric":"{}","value":{},"unit":"{}"}}"#,
            self.bench, self.implementation, self.metric, value, self.unit
        )
    }
}

/// Whether a larger figure is better.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Better {
    Higher,
    Lower,
}

/// One row of the summary: a metric of both stacks, and the target for their ratio.
#[derive(Clone, Debug)]
struct Row {
    bench: &'static str,
    metric: &'static str,
    unit: &'static str,
    jsp: Option<f64>,
    quinn: Option<f64>,
    better: Better,
    target: &'static str,
}

/// The summary table.
#[derive(Clone, Debug, Default)]
pub struct Table {
    rows: Vec<Row>,
    notes: Vec<String>,
}

impl Table {
    /// Adds a row comparing both stacks.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn row(
        &mut self,
        bench: &'static str,
        metric: &'static str,
        unit: &'static str,
        jsp: Option<f64>,
        quinn: Option<f64>,
        better: Better,
        target: &'static str,
    ) {
        self.rows.push(Row {
            bench,
            metric,
            unit,
            jsp,
            quinn,
            better,
            target,
        });
    }

    /// Adds a line printed under the table.
    pub(crate) fn note(&mut self, note: String) {
        self.notes.push(note);
    }

    /// The table as Markdown.
    pub fn render(&self) -> String {
        let fmt = |v: Option<f64>| match v {
            Some(v) if v.abs() >= 100.0 => format!("{v:.0}"),
            Some(v) if v.abs() >= 1.0 => format!("{v:.2}"),
            Some(v) => format!("{v:.3}"),
            None => "–".to_string(),
        };
        let mut out = String::new();
        out.push_str(
            "| bench | metric | unit | JSP | quinn | JSP ÷ quinn | better | target |\n\
             |---|---|---|---:|---:|---:|---|---|\n",
        );
        for r in &self.rows {
            let ratio = match (r.jsp, r.quinn) {
                (Some(j), Some(q)) if q != 0.0 => format!("{:.2}", j / q),
                _ => "–".to_string(),
            };
            let better = match r.better {
                Better::Higher => "higher",
                Better::Lower => "lower",
            };
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} | {} | {} |",
                r.bench,
                r.metric,
                r.unit,
                fmt(r.jsp),
                fmt(r.quinn),
                ratio,
                better,
                r.target
            );
        }
        for n in &self.notes {
            let _ = writeln!(out, "\n{n}");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_line_has_the_five_fields() {
        let r = Record {
            bench: "bulk",
            implementation: "jsp",
            metric: "goodput",
            value: 1234.56789,
            unit: "MB/s",
        };
        assert_eq!(
            r.to_json(),
            r#"{"bench":"bulk","impl":"jsp","metric":"goodput","value":1234.568,"unit":"MB/s"}"#
        );
        let nan = Record {
            value: f64::NAN,
            ..r
        };
        assert!(nan.to_json().contains(r#""value":null"#));
    }

    #[test]
    fn table_shows_the_ratio() {
        let mut t = Table::default();
        t.row(
            "bulk",
            "goodput",
            "MB/s",
            Some(300.0),
            Some(200.0),
            Better::Higher,
            "≥ 1.3",
        );
        t.row("idle", "rss", "B", None, Some(1.0), Better::Lower, "≤ 0.5");
        let s = t.render();
        assert!(
            s.contains("| bulk | goodput | MB/s | 300 | 200 | 1.50 | higher | ≥ 1.3 |"),
            "{s}"
        );
        assert!(s.contains("| – | 1.00 | – |"), "{s}");
    }
}
