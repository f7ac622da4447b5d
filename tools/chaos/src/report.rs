//! What a run leaves behind, under `results/chaos/<time>-<experiment>/`:
//!
//! - `report.md`: the hypothesis, the fault, the method step by step, the
//!   figures, and PASS/FAIL per criterion;
//! - `verdict.json`: the same, for machines;
//! - `history.json`: every attempt the load made, with its outcome;
//! - `timeline.svg`: orders accepted, refused, invoiced and notified per
//!   second, with the fault windows shaded.

use std::fmt::Write as _;
use std::path::Path;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::checker::Criterion;
use harness::load::{Attempt, Outcome};
use harness::observe::SystemState;
use harness::report::{Table, write_json};

/// A span of the run, in seconds since its start.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Window {
    pub from: f64,
    pub to: f64,
}

/// One second of the timeline.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Second {
    pub t: u32,
    pub accepted: u32,
    /// Definitely refused or unknown.
    pub refused: u32,
    pub invoiced: u32,
    pub notified: u32,
    /// The depth of the buffer in front of the fault, as last sampled in
    /// this second (see `crate::buffer`); `None` where no sample came back.
    pub buffer: Option<u64>,
}

/// One thing the experiment did, when.
#[derive(Debug, Clone, Serialize)]
pub struct Step {
    pub at: f64,
    pub what: String,
}

/// A measured figure.
#[derive(Debug, Clone, Serialize)]
pub struct Figure {
    pub name: String,
    pub value: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub experiment: String,
    pub hypothesis: String,
    pub fault: String,
    pub target: String,
    pub emulator: String,
    pub run_id: String,
    pub started_at: DateTime<Utc>,
    pub settings: Vec<Figure>,
    pub steps: Vec<Step>,
    pub fault_windows: Vec<Window>,
    pub figures: Vec<Figure>,
    pub criteria: Vec<Criterion>,
    /// The share of orders sent during the fault that were accepted.
    pub acceptance_during_fault: Option<f64>,
    /// Why the experiment stopped its fault early, if it did.
    pub aborted: Option<String>,
    pub passed: bool,
    pub timeline: Vec<Second>,
    /// What `Second::buffer` measures (its label on the chart).
    pub buffer: Option<String>,
}

impl Report {
    pub fn figure(&self, name: &str) -> Option<&str> {
        self.figures
            .iter()
            .find(|f| f.name == name)
            .map(|f| f.value.as_str())
    }

    pub fn criterion(&self, name: &str) -> Option<&Criterion> {
        self.criteria.iter().find(|c| c.name == name)
    }

    /// Markdown for humans.
    pub fn markdown(&self) -> String {
        let mut md = String::new();
        let verdict = if self.passed { "PASS" } else { "FAIL" };
        let _ = writeln!(md, "# Chaos experiment `{}`: {verdict}\n", self.experiment);
        let _ = writeln!(
            md,
            "Run `{}` on the {} stack ({}), started {}.\n",
            self.run_id,
            self.target,
            self.emulator,
            self.started_at.format("%Y-%m-%d %H:%M:%S UTC")
        );
        let _ = writeln!(md, "**Hypothesis.** {}\n", self.hypothesis);
        let _ = writeln!(md, "**Fault.** {}\n", self.fault);
        if let Some(reason) = &self.aborted {
            let _ = writeln!(md, "**Aborted.** {reason}\n");
        }
        let _ = writeln!(md, "## Settings\n");
        for s in &self.settings {
            let _ = writeln!(md, "- {}: {}", s.name, s.value);
        }
        let mut method = Table::new(["t (s)", "step"]).right_aligned(..1);
        for step in &self.steps {
            method.row([format!("{:.1}", step.at), step.what.clone()]);
        }
        let mut figures = Table::new(["figure", "value"]);
        for f in &self.figures {
            figures.row([f.name.as_str(), f.value.as_str()]);
        }
        let mut verdicts = Table::new(["criterion", "requirement", "observed", "result"]);
        for c in &self.criteria {
            verdicts.row([
                c.name.as_str(),
                c.requirement.as_str(),
                c.observed.as_str(),
                if c.pass { "PASS" } else { "**FAIL**" },
            ]);
        }
        let _ = write!(md, "\n## Method\n\n{method}");
        let _ = write!(md, "\n## Figures\n\n{figures}");
        let _ = write!(md, "\n## Verdict\n\n{verdicts}");
        let _ = writeln!(
            md,
            "\n## Timeline\n\n![orders accepted, invoiced and notified per second, and the buffer in front of the fault](timeline.svg)\n\nShaded: the fault. The dashed line (right axis) is the depth of the buffer in front of the fault, sampled once a second: where the work waited. `history.json` holds every attempt; `verdict.json` this report."
        );
        md
    }

    /// Writes the report, the verdict, the history and the chart into `dir`.
    pub fn write(&self, dir: &Path, history: &[Attempt]) -> anyhow::Result<()> {
        std::fs::create_dir_all(dir)?;
        std::fs::write(dir.join("report.md"), self.markdown())?;
        write_json(&dir.join("verdict.json"), self)?;
        write_json(&dir.join("history.json"), &history)?;
        super::chart::draw(
            &dir.join("timeline.svg"),
            &format!("{} ({})", self.experiment, self.target),
            &self.timeline,
            &self.fault_windows,
            self.buffer.as_deref(),
        )?;
        Ok(())
    }
}

/// Where a run's files go: `<results>/<UTC time>-<experiment>`.
pub use harness::report::run_dir;

/// Per-second counts from the history and the state, and the buffer's
/// depth from its samples (seconds since the start, depth).
pub fn timeline(
    history: &[Attempt],
    state: &SystemState,
    start: DateTime<Utc>,
    buffer: &[(f64, u64)],
) -> Vec<Second> {
    let second = |t: DateTime<Utc>| -> Option<usize> {
        let s = (t - start).num_milliseconds();
        (s >= 0).then_some((s / 1000) as usize)
    };
    let run_orders: std::collections::HashSet<uuid::Uuid> =
        state.orders.iter().map(|o| o.id).collect();
    let mut seconds: Vec<Second> = Vec::new();
    let mut bump = |at: Option<usize>, f: fn(&mut Second)| {
        if let Some(i) = at {
            if seconds.len() <= i {
                seconds.resize_with(i + 1, Second::default);
            }
            f(&mut seconds[i]);
        }
    };
    for a in history {
        match a.outcome {
            Outcome::Ok { .. } => bump(second(a.completed_at()), |s| s.accepted += 1),
            _ => bump(second(a.completed_at()), |s| s.refused += 1),
        }
    }
    for i in state
        .invoices
        .iter()
        .filter(|i| run_orders.contains(&i.order_id))
    {
        bump(second(i.issued_at), |s| s.invoiced += 1);
    }
    for n in state
        .notifications
        .iter()
        .filter(|n| run_orders.contains(&n.order_id))
    {
        bump(second(n.created_at), |s| s.notified += 1);
    }
    for &(at, depth) in buffer {
        let i = at.max(0.0) as usize;
        if seconds.len() <= i {
            seconds.resize_with(i + 1, Second::default);
        }
        seconds[i].buffer = Some(depth);
    }
    for (t, s) in seconds.iter_mut().enumerate() {
        s.t = t as u32;
    }
    seconds
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_second_shows_the_last_buffer_depth_sampled_in_it_and_a_gap_where_none_came() {
        let samples = [(0.4, 3), (2.7, 10), (2.9, 12)];
        let seconds = timeline(&[], &SystemState::default(), Utc::now(), &samples);
        let depths: Vec<Option<u64>> = seconds.iter().map(|s| s.buffer).collect();
        assert_eq!(depths, [Some(3), None, Some(12)]);
        assert_eq!(seconds.iter().map(|s| s.t).collect::<Vec<_>>(), [0, 1, 2]);
    }
}
