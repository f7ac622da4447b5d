//! `sync-vs-async`: the `invoice-down` experiment run twice, once with the
//! order service invoicing through events (the design) and once calling the
//! invoice service synchronously (the anti-pattern), on fresh local stacks,
//! reported side by side.
//!
//! It passes when the asynchronous run passes every criterion, and the
//! synchronous one shows the coupling the talk warns about (fewer than half
//! of the orders sent during the outage accepted) while still losing and
//! doubling nothing it accepted: the comparison is about availability, not
//! about a bug.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use chrono::Utc;
use harness::report::{Table, run_dir, write_json};
use serde::Serialize;

use super::experiment::Experiment;
use super::local::{LocalOptions, LocalTarget};
use super::method::{self, RunLabels};
use super::plan::Plan;
use super::report::Report;

#[derive(Debug, Clone, Serialize)]
pub struct Comparison {
    pub asynchronous: Report,
    pub synchronous: Report,
    pub passed: bool,
    pub dir: PathBuf,
}

/// Below this acceptance during the outage, the sync run shows the coupling.
const COUPLED_BELOW: f64 = 0.5;

pub async fn compare_sync_and_async(
    plan: &Plan,
    base: LocalOptions,
    results: &Path,
) -> anyhow::Result<Comparison> {
    let dir = run_dir(results, Experiment::SyncVsAsync.name(), Utc::now());
    let mut reports = Vec::new();
    for (variant, sync_invoicing) in [("async", false), ("sync", true)] {
        let options = Experiment::InvoiceDown.local_options(
            plan,
            LocalOptions {
                sync_invoicing,
                log_dir: base.log_dir.join(variant),
                ..base.clone()
            },
        );
        let mut target = LocalTarget::start(options).await?;
        let labels = RunLabels {
            emulator: base.emulator.to_string(),
            variant: Some(variant.to_string()),
        };
        let report = method::run(&mut target, Experiment::InvoiceDown, plan, &labels, &dir).await;
        target.shutdown().await?;
        reports.push(report?);
    }
    let synchronous = reports.pop().expect("two runs");
    let asynchronous = reports.pop().expect("two runs");
    let holds = |r: &Report, name: &str| r.criterion(name).is_some_and(|c| c.pass);
    let passed = asynchronous.passed
        && synchronous
            .acceptance_during_fault
            .is_some_and(|a| a < COUPLED_BELOW)
        && holds(&synchronous, "no loss")
        && holds(&synchronous, "no double effect");
    let comparison = Comparison {
        asynchronous,
        synchronous,
        passed,
        dir: dir.clone(),
    };
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join("comparison.md"), comparison.markdown())?;
    write_json(&dir.join("comparison.json"), &comparison)?;
    println!(
        "== sync-vs-async: {} (comparison in {})",
        if passed { "PASS" } else { "FAIL" },
        dir.join("comparison.md").display()
    );
    Ok(comparison)
}

impl Comparison {
    pub fn markdown(&self) -> String {
        let (a, s) = (&self.asynchronous, &self.synchronous);
        let mut md = String::new();
        let _ = writeln!(
            md,
            "# Chaos experiment `sync-vs-async`: {}\n",
            if self.passed { "PASS" } else { "FAIL" }
        );
        let _ = writeln!(
            md,
            "**Hypothesis.** {}\n",
            Experiment::SyncVsAsync.hypothesis()
        );
        let _ = writeln!(md, "**Fault, in both runs.** {}\n", a.fault);
        let _ = writeln!(
            md,
            "The synchronous run passes when fewer than {:.0} % of the orders sent during the outage are accepted (order-taking went down with invoicing) and nothing it accepted is lost or doubled.\n",
            COUPLED_BELOW * 100.0
        );
        let mut table = Table::new(["", "asynchronous (events)", "synchronous (HTTP call)"]);
        let pct = |r: &Report| {
            r.acceptance_during_fault
                .map(|x| format!("{:.1} %", x * 100.0))
                .unwrap_or_else(|| "-".into())
        };
        table.row([
            "orders accepted during the outage".to_string(),
            pct(a),
            pct(s),
        ]);
        for figure in [
            "POST /orders latency during the fault",
            "POST /orders latency before the fault",
            "attempts (ok / fail / unknown)",
            "errors",
            "invoices issued for this run's orders",
            super::verify::BACKLOG_WORKED_OFF,
            "drained after the load stopped",
        ] {
            table.row([
                figure,
                a.figure(figure).unwrap_or("none"),
                s.figure(figure).unwrap_or("none"),
            ]);
        }
        for criterion in [
            "no loss",
            "no double effect",
            "nothing unexpected",
            "unknown attempts",
        ] {
            let cell = |r: &Report| {
                r.criterion(criterion)
                    .map(|c| format!("{}: {}", if c.pass { "PASS" } else { "FAIL" }, c.observed))
                    .unwrap_or_default()
            };
            table.row([criterion.to_string(), cell(a), cell(s)]);
        }
        table.row([
            "verdict of the run",
            if a.passed { "PASS" } else { "FAIL" },
            if s.passed {
                "PASS"
            } else {
                "FAIL (expected: it is the anti-pattern)"
            },
        ]);
        let _ = write!(md, "{table}");
        let _ = writeln!(
            md,
            "\nEach run's own report, history and timeline are in the folders beside this file."
        );
        md
    }
}
