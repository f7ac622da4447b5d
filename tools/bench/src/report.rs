//! What a run leaves behind, under `results/bench/<time>/`:
//!
//! - `report.md`: the machine, the command, the ceilings, every step, the
//!   hops at the reference rate, CPU and memory, the baseline, and each
//!   target with its ratio (also printed on the terminal);
//! - `report.json`: all of it, for machines (every step's hops and backlog
//!   samples too);
//! - `latency-<emulator>.svg`: latency percentiles against offered load.
//!
//! Every figure stands beside the ceiling it is compared with: a ratio is
//! the figure divided by its limit, so "0.85 of the ceiling" and "1.3× the
//! latency target" read the same way whatever the machine.

use std::fmt::Write as _;
use std::path::Path;

use chrono::{DateTime, Utc};
use harness::report::{Machine, Table, key_values, write_json};
use serde::Serialize;

use super::auth_cost::AuthCost;
use super::ceiling::{CallLatency, EmulatorCeiling, PostgresCeiling, Route};
use super::hops::{self, HopStats, Percentiles};
use super::plan::Plan;
use super::step::{Burst, Step};

/// The baseline relay, run at the same reference rate.
#[derive(Debug, Clone, Serialize)]
pub struct Baseline {
    pub settings: Vec<(String, String)>,
    pub reference: Step,
    pub burst: Burst,
}

/// The published size of each event type in the flow, in bytes.
#[derive(Debug, Clone, Default, Serialize)]
pub struct MessageBytes {
    pub order_placed: usize,
    pub invoice_issued: usize,
}

/// The whole benchmark on one emulator.
#[derive(Debug, Clone, Serialize)]
pub struct Run {
    pub emulator: String,
    pub postgres: PostgresCeiling,
    /// The search's steps, then the reference step and any extra rates.
    pub steps: Vec<Step>,
    /// The median of the searches' sustained rates: what the targets are
    /// judged on.
    pub sustained_rate: f64,
    /// Each search's sustained rate, in the order they ran.
    pub sustained_rates: Vec<f64>,
    /// Each search's services' CPU per order at its sustained rate.
    pub cpu_at_sustained: Vec<f64>,
    pub reference: Step,
    pub burst: Burst,
    /// Not measured on a stack the benchmark did not start.
    pub baseline: Option<Baseline>,
    pub message_bytes: MessageBytes,
    /// Each service's resident high-water mark at the end of the run with
    /// our relay (before the baseline restarts two of them), in bytes.
    pub rss_peak: Vec<(String, u64)>,
    /// What the verifier spends on one request's token.
    pub auth: AuthCost,
    pub verdicts: Vec<Verdict>,
    pub ratios: Vec<Ratio>,
}

/// One target of the issue, judged.
#[derive(Debug, Clone, Serialize)]
pub struct Verdict {
    pub target: String,
    pub observed: String,
    /// The figure divided by its limit.
    pub ratio: f64,
    pub met: bool,
}

/// A figure set against another measured in the same run.
#[derive(Debug, Clone, Serialize)]
pub struct Ratio {
    pub what: String,
    pub ratio: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub started_at: DateTime<Utc>,
    pub seconds: f64,
    pub command: String,
    pub machine: Machine,
    /// Load averages when the run started and ended: a busy machine makes
    /// noisy figures.
    pub load_average_before: String,
    pub load_average_after: String,
    pub plan: Plan,
    /// The sizes the ceilings published (the flow's are in each run).
    pub ceiling_message_bytes: MessageBytes,
    pub ceilings: Vec<EmulatorCeiling>,
    /// One publish call on an idle emulator: the floor of the relay hops.
    pub calls: Vec<CallLatency>,
    pub runs: Vec<Run>,
    /// The round-trip mode, per emulator (empty when not asked for).
    pub round_trips: Vec<super::roundtrip::RoundTripRun>,
    /// The elasticity step, per emulator (empty when not asked for).
    pub elasticity: Vec<super::elastic::ElasticRun>,
    /// The invoice consumer as a Lambda function, per emulator (with the
    /// elasticity step).
    pub functions: Vec<super::functions::FunctionRun>,
}

const RELAY_P99_MS: f64 = 20.0;
const END_TO_END_P99_MS: f64 = 150.0;
const CPU_MS_PER_ORDER: f64 = 1.0;
const RSS_BYTES: f64 = 50e6;
const THROUGHPUT_SHARE: f64 = 0.8;

/// The flow ceiling of `emulator` without a parked backlog: the queues as
/// the services keep them.
pub fn flow_ceiling<'a>(
    ceilings: &'a [EmulatorCeiling],
    emulator: &str,
) -> Option<&'a EmulatorCeiling> {
    ceilings
        .iter()
        .find(|c| c.emulator == emulator && c.route == Route::Flow && c.backlog == 0)
}

/// Judges a run against the targets and computes its ratios.
pub fn judge(run: &mut Run, ceilings: &[EmulatorCeiling]) {
    let mut verdicts = Vec::new();
    let mut ratios = Vec::new();
    let rate = run.sustained_rate;
    if let Some(ceiling) = flow_ceiling(ceilings, &run.emulator) {
        let ratio = rate / ceiling.orders_per_sec.max(f64::MIN_POSITIVE);
        verdicts.push(Verdict {
            target: format!(
                "sustained throughput ≥ {:.0} % of the {} flow ceiling",
                THROUGHPUT_SHARE * 100.0,
                run.emulator
            ),
            observed: format!(
                "median {rate:.0} orders/s ({}) of {:.0} (depth ≈{:.0})",
                spread(&run.sustained_rates),
                ceiling.orders_per_sec,
                ceiling.depth_mean
            ),
            ratio,
            met: ratio >= THROUGHPUT_SHARE,
        });
    }
    // A ceiling that completed nothing in its time has no ratio to give.
    for c in ceilings
        .iter()
        .filter(|c| c.route == Route::Flow && c.orders_per_sec > 0.0)
    {
        ratios.push(Ratio {
            what: format!(
                "sustained rate ÷ {} flow ceiling at depth ≈{:.0}",
                c.emulator, c.depth_mean
            ),
            ratio: rate / c.orders_per_sec,
        });
    }
    ratios.push(Ratio {
        what: "sustained rate ÷ Postgres ceiling (order + outbox transaction)".into(),
        ratio: rate / run.postgres.orders_per_sec.max(f64::MIN_POSITIVE),
    });
    let reference = &run.reference;
    for hop in [hops::ORDER_RELAY, hops::INVOICE_RELAY] {
        let p99 = latency(reference, hop).p99;
        verdicts.push(Verdict {
            target: format!("{hop}: p99 ≤ {RELAY_P99_MS:.0} ms at half the sustained rate"),
            observed: format!("p99 {p99:.1} ms at {:.0}/s", reference.offered_rate),
            ratio: p99 / RELAY_P99_MS,
            met: p99 <= RELAY_P99_MS && latency(reference, hop).count > 0,
        });
    }
    let api = latency(reference, hops::ORDER_API);
    ratios.push(Ratio {
        what: format!(
            "verifying a bearer token (mean {:.0} µs) ÷ the order API's p50 ({:.2} ms) at {:.0}/s",
            run.auth.mean_us, api.p50, reference.offered_rate
        ),
        ratio: run.auth.mean_us / 1e3 / api.p50.max(0.001),
    });
    let e2e = latency(reference, hops::END_TO_END);
    verdicts.push(Verdict {
        target: format!(
            "accepted → notification recorded: p99 ≤ {END_TO_END_P99_MS:.0} ms at half the sustained rate"
        ),
        observed: format!("p99 {:.1} ms at {:.0}/s", e2e.p99, reference.offered_rate),
        ratio: e2e.p99 / END_TO_END_P99_MS,
        met: e2e.p99 <= END_TO_END_P99_MS && e2e.count > 0,
    });
    let at_sustained = super::step::median(&run.cpu_at_sustained);
    verdicts.push(Verdict {
        target: format!(
            "three services together ≤ {CPU_MS_PER_ORDER} ms CPU per order at the sustained rate"
        ),
        observed: format!(
            "median {at_sustained:.2} ms per order ({}) at each search's sustained rate",
            spread(&run.cpu_at_sustained)
        ),
        ratio: at_sustained / CPU_MS_PER_ORDER,
        met: !run.cpu_at_sustained.is_empty() && at_sustained <= CPU_MS_PER_ORDER,
    });
    let cpu = reference.services_cpu_ms_per_order();
    verdicts.push(Verdict {
        target: format!("three services together ≤ {CPU_MS_PER_ORDER} ms CPU per order"),
        observed: format!("{cpu:.2} ms per order at {:.0}/s", reference.offered_rate),
        ratio: cpu / CPU_MS_PER_ORDER,
        met: cpu <= CPU_MS_PER_ORDER,
    });
    for (service, peak) in &run.rss_peak {
        let sampled = run
            .steps
            .iter()
            .flat_map(|s| &s.usage)
            .filter(|u| u.process.starts_with(service.as_str()))
            .filter_map(|u| u.rss_max_bytes)
            .max()
            .unwrap_or(0);
        let worst = (*peak).max(sampled) as f64;
        verdicts.push(Verdict {
            target: format!("{service} service ≤ 50 MB resident under load"),
            observed: format!("peak {:.1} MB", worst / 1e6),
            ratio: worst / RSS_BYTES,
            met: worst <= RSS_BYTES,
        });
    }
    if let Some(baseline) = &run.baseline {
        let base = &baseline.reference;
        for (what, hop) in [
            ("order relay", hops::ORDER_RELAY),
            ("invoice relay", hops::INVOICE_RELAY),
            ("end to end", hops::END_TO_END),
        ] {
            let (ours, theirs) = (latency(reference, hop), latency(base, hop));
            ratios.push(Ratio {
                what: format!("baseline ÷ ours, {what} p50 at {:.0}/s", base.offered_rate),
                ratio: theirs.p50 / ours.p50.max(0.001),
            });
            ratios.push(Ratio {
                what: format!("baseline ÷ ours, {what} p99 at {:.0}/s", base.offered_rate),
                ratio: theirs.p99 / ours.p99.max(0.001),
            });
        }
        ratios.push(Ratio {
            what: "ours ÷ baseline, relay drain rate (events/s)".into(),
            ratio: run.burst.relay_events_per_sec / baseline.burst.relay_events_per_sec.max(0.001),
        });
        ratios.push(Ratio {
            what: "ours ÷ baseline, services' CPU per order at the reference rate".into(),
            ratio: cpu / base.services_cpu_ms_per_order().max(0.000_001),
        });
    }
    run.verdicts = verdicts;
    run.ratios = ratios;
}

/// `min–max of n`, for a figure measured more than once.
pub fn spread(values: &[f64]) -> String {
    let min = values.iter().copied().fold(f64::INFINITY, f64::min);
    let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    match values.len() {
        0 => "none".into(),
        1 => "one search".into(),
        n => format!("{} to {} over {n} searches", sig(min), sig(max)),
    }
}

/// A whole number, or two decimals below 10.
fn sig(v: f64) -> String {
    if v.abs() < 10.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.0}")
    }
}

fn latency(step: &Step, hop: &str) -> Percentiles {
    step.hop(hop).map(|h| h.latency).unwrap_or_default()
}

impl Report {
    pub fn write(&self, dir: &Path) -> anyhow::Result<()> {
        std::fs::create_dir_all(dir)?;
        write_json(&dir.join("report.json"), self)?;
        std::fs::write(dir.join("report.md"), self.markdown())?;
        for run in &self.runs {
            super::chart::draw(
                &dir.join(format!("latency-{}.svg", run.emulator)),
                run,
                flow_ceiling(&self.ceilings, &run.emulator),
            )?;
        }
        Ok(())
    }

    /// The report for humans: what the terminal shows and `report.md` holds.
    pub fn markdown(&self) -> String {
        let mut md = String::new();
        let _ = writeln!(
            md,
            "# Benchmark run of {}\n",
            self.started_at.format("%Y-%m-%d %H:%M UTC")
        );
        let _ = writeln!(
            md,
            "Machine: {}. Load average before {}, after {}. Took {:.0} s.\n",
            self.machine, self.load_average_before, self.load_average_after, self.seconds
        );
        let _ = writeln!(md, "Command: `{}`\n", self.command);
        let mut ceilings = Table::new([
            "emulator",
            "route",
            "orders in flight",
            "parked per queue",
            "depth seen (mean / max)",
            "orders/s",
            "deliveries/s",
            "errors",
        ])
        .right_aligned(2..);
        for c in &self.ceilings {
            ceilings.row([
                c.emulator.clone(),
                format!("{:?}: {}", c.route, c.route.describe()),
                c.window.to_string(),
                c.backlog.to_string(),
                format!("{:.0} / {}", c.depth_mean, c.depth_max),
                format!("{:.0}", c.orders_per_sec),
                format!("{:.0}", c.deliveries_per_sec),
                c.errors.to_string(),
            ]);
        }
        let _ = write!(
            md,
            "## Ceilings\n\nThe emulators driven by a bare client (messages of {} and {} bytes, batches of 10):\n\n{ceilings}",
            self.ceiling_message_bytes.order_placed, self.ceiling_message_bytes.invoice_issued
        );
        let mut calls = Table::new(["emulator", "call", "entries", "p50", "p90", "p99", "max"])
            .right_aligned(2..);
        for c in &self.calls {
            let l = c.latency;
            calls.row(
                [c.emulator.clone(), c.call.clone(), c.entries.to_string()]
                    .into_iter()
                    .chain([l.p50, l.p90, l.p99, l.max].map(tenths)),
            );
        }
        let _ = write!(
            md,
            "\nOne publish call on an idle emulator, {} calls in a row (ms): the floor under the relay hops, whose `published_at` is taken after the broker answered.\n\n{calls}",
            super::ceiling::CALLS
        );
        if !self.runs.is_empty() {
            per_emulator(&mut md, self);
        }
        for run in &self.runs {
            run_markdown(&mut md, run);
        }
        if !self.round_trips.is_empty() {
            super::roundtrip::markdown(&mut md, &self.round_trips);
        }
        if !self.elasticity.is_empty() {
            super::elastic::markdown(&mut md, &self.elasticity);
        }
        if !self.functions.is_empty() {
            super::functions::markdown(&mut md, &self.functions);
        }
        md
    }
}

/// Each emulator's ceilings beside what our services sustained on it.
fn per_emulator(md: &mut String, report: &Report) {
    let mut table = Table::new([
        "emulator",
        "flow ceiling (orders/s)",
        "orders route",
        "billing route",
        "PublishBatch of 10 p50 (ms)",
        "our sustained rate: median (spread)",
        "median ÷ flow ceiling",
    ])
    .right_aligned(1..);
    let mut emulators: Vec<&str> = report
        .ceilings
        .iter()
        .map(|c| c.emulator.as_str())
        .collect();
    emulators.dedup();
    for emulator in emulators {
        let route = |r: Route| {
            report
                .ceilings
                .iter()
                .find(|c| c.emulator == emulator && c.route == r && c.backlog == 0)
                .map_or("–".into(), |c| format!("{:.0}", c.orders_per_sec))
        };
        let publish = report
            .calls
            .iter()
            .find(|c| c.emulator == emulator && c.call == "PublishBatch" && c.entries == 10)
            .map_or("–".into(), |c| tenths(c.latency.p50));
        let run = report.runs.iter().find(|r| r.emulator == emulator);
        let flow = flow_ceiling(&report.ceilings, emulator).map(|c| c.orders_per_sec);
        table.row([
            emulator.to_string(),
            route(Route::Flow),
            route(Route::Orders),
            route(Route::Billing),
            publish,
            run.map_or("not run".into(), |r| {
                format!("{:.0} ({})", r.sustained_rate, spread(&r.sustained_rates))
            }),
            match (run, flow) {
                (Some(r), Some(f)) if f > 0.0 => ratio(r.sustained_rate / f),
                _ => "–".into(),
            },
        ]);
    }
    let _ = write!(md, "\n## Per emulator\n\n{table}");
}

/// `num ÷ denom`, or NaN (printed `–`, written `null`) when there is no
/// denominator: a ceiling that completed nothing in its bound gives no
/// ratio, not a huge one.
pub fn share(num: f64, denom: f64) -> f64 {
    if denom > 0.0 { num / denom } else { f64::NAN }
}

/// Two decimals, or three significant digits for a small ratio; `–` when
/// there is none (see [`share`]).
pub fn ratio(r: f64) -> String {
    if !r.is_finite() {
        "–".into()
    } else if r != 0.0 && r.abs() < 0.1 {
        format!("{r:.3}")
    } else {
        format!("{r:.2}")
    }
}

/// Milliseconds to a tenth.
pub fn tenths(ms: f64) -> String {
    format!("{ms:.1}")
}

fn mb(bytes: u64) -> String {
    format!("{:.1}", bytes as f64 / 1e6)
}

/// Each target with what was observed, its ratio and whether it was met.
pub fn targets_table(verdicts: &[Verdict]) -> Table {
    let mut targets = Table::new(["target", "observed", "ratio", "met"]).right_aligned(2..3);
    for v in verdicts {
        targets.row([
            v.target.clone(),
            v.observed.clone(),
            ratio(v.ratio),
            (if v.met { "yes" } else { "**no**" }).to_string(),
        ]);
    }
    targets
}

pub fn ratios_table(ratios: &[Ratio]) -> Table {
    let mut table = Table::new(["figure", "ratio"]).right_aligned(1..);
    for r in ratios {
        table.row([r.what.clone(), ratio(r.ratio)]);
    }
    table
}

fn run_markdown(md: &mut String, run: &Run) {
    let _ = writeln!(md, "\n## On {}\n", run.emulator);
    let pg = &run.postgres;
    let _ = writeln!(
        md,
        "Postgres ceiling (order + outbox transaction, {} connections): **{:.0} orders/s** (one transaction p50 {:.2} ms, p99 {:.2} ms).\n",
        pg.concurrency, pg.orders_per_sec, pg.latency.p50, pg.latency.p99
    );
    let _ = writeln!(
        md,
        "Published sizes: OrderPlaced {} bytes, InvoiceIssued {} bytes. **Sustained rate: {:.0} orders/s**, the median of {} searches ({}); reference rate (half): {:.0}/s.\n",
        run.message_bytes.order_placed,
        run.message_bytes.invoice_issued,
        run.sustained_rate,
        run.sustained_rates.len(),
        spread(&run.sustained_rates),
        run.reference.offered_rate
    );
    let auth = &run.auth;
    let _ = writeln!(
        md,
        "Verifying a bearer token (ES256, key set cached, the platform's verifier in the benchmark's process): mean {:.0} µs, p50 {:.0} µs, p99 {:.0} µs over {} verifications.\n",
        auth.mean_us, auth.p50_us, auth.p99_us, auth.verifications
    );
    let _ = write!(md, "### Targets\n\n{}", targets_table(&run.verdicts));
    let _ = write!(md, "\n### Ratios\n\n{}", ratios_table(&run.ratios));
    let mut steps = Table::new([
        "step",
        "offered/s",
        "accepted",
        "completed",
        "e2e p50",
        "p90",
        "p99",
        "p99.9",
        "max (ms)",
        "order relay p99",
        "backlog slope/s",
        "deepest queue",
        "drain s",
        "services CPU ms/order",
        "sustained",
    ])
    .right_aligned(1..14);
    let baseline = run.baseline.as_ref().map(|b| &b.reference);
    for step in run.steps.iter().chain(baseline) {
        let e2e = latency(step, hops::END_TO_END);
        let whole = |v: f64| format!("{v:.0}");
        steps.row([
            step.label.clone(),
            whole(step.offered_rate),
            format!("{}/{}", step.accepted, step.attempts),
            step.completed.to_string(),
            whole(e2e.p50),
            whole(e2e.p90),
            whole(e2e.p99),
            whole(e2e.p999),
            whole(e2e.max),
            tenths(latency(step, hops::ORDER_RELAY).p99),
            format!("{:+.1}", step.backlog_slope),
            step.deepest_queue_max.to_string(),
            tenths(step.drain_seconds),
            format!("{:.2}", step.services_cpu_ms_per_order()),
            if step.sustained {
                "yes".to_string()
            } else {
                format!("no: {}", step.why_not.join("; "))
            },
        ]);
    }
    let _ = write!(md, "\n### Steps\n\n{steps}");
    let mut at_reference = vec![("our relay", &run.reference)];
    if let Some(b) = &run.baseline {
        at_reference.push(("the baseline relay", &b.reference));
    }
    for (title, step) in at_reference {
        let mut usage = Table::new([
            "process",
            "CPU s",
            "CPU ms per order",
            "RSS max sampled (MB)",
            "RSS high-water (MB)",
        ])
        .right_aligned(1..);
        for u in &step.usage {
            usage.row([
                u.process.clone(),
                format!("{:.2}", u.cpu_seconds),
                format!("{:.3}", u.cpu_ms_per_order),
                u.rss_max_bytes.map(mb).unwrap_or_else(|| "–".into()),
                u.rss_peak_bytes.map(mb).unwrap_or_else(|| "–".into()),
            ]);
        }
        let _ = write!(
            md,
            "\n### Hops at {:.0} orders/s, {title} (ms)\n\n{}\n{usage}",
            step.offered_rate,
            hops_table(&step.hops)
        );
    }
    let mut drains = Table::new([
        "relay",
        "settings",
        "relay events/s",
        "system orders/s",
        "completed",
    ])
    .right_aligned(2..);
    let mut bursts = vec![("ours", "defaults".to_string(), &run.burst)];
    if let Some(b) = &run.baseline {
        bursts.push(("baseline", key_values(&b.settings), &b.burst));
    }
    for (name, how, b) in bursts {
        drains.row([
            name.to_string(),
            how,
            format!("{:.0}", b.relay_events_per_sec),
            format!("{:.0}", b.system_orders_per_sec),
            format!("{}/{}", b.completed, b.orders),
        ]);
    }
    let _ = write!(
        md,
        "\n### Relay drain (burst of {} orders committed while the order service was frozen)\n\n{drains}",
        run.burst.orders
    );
}

fn hops_table(hops: &[HopStats]) -> Table {
    let mut table =
        Table::new(["hop", "count", "p50", "p90", "p99", "p99.9", "max"]).right_aligned(1..);
    for h in hops {
        let l = h.latency;
        let hop = if h.negative > 0 {
            format!("{} ({} negative)", h.hop, h.negative)
        } else {
            h.hop.clone()
        };
        table.row(
            [hop, l.count.to_string()]
                .into_iter()
                .chain([l.p50, l.p90, l.p99, l.p999, l.max].map(tenths)),
        );
    }
    table
}

#[cfg(test)]
mod tests {
    use super::{ratio, share};

    #[test]
    fn a_ratio_without_a_denominator_is_a_dash_not_a_huge_number() {
        assert_eq!(ratio(share(188.0, 0.0)), "–");
        assert_eq!(ratio(share(1.0, 4.0)), "0.25");
        assert_eq!(ratio(share(1.0, 40.0)), "0.025");
        assert_eq!(ratio(share(0.0, 4.0)), "0.00");
    }
}
