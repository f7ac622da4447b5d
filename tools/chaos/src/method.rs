//! The one method every experiment follows, in the style of Chaos Toolkit
//! and AWS FIS:
//!
//! 1. **steady state before**: every service ready; under load, orders are
//!    accepted and an early one completes its journey (invoiced, notified);
//! 2. **fault** (`faults`): injected for a bounded time while the load goes
//!    on; abort conditions are watched meanwhile (a part the fault did not
//!    touch going down stops the experiment early and fails it);
//! 3. **heal**, then duplicates of handled events and one poison message are
//!    planted on purpose (`plant`), and the load runs a little longer;
//! 4. **verification**: the load stops, the system must drain within a
//!    deadline, and the checker judges the whole history against the state of
//!    all three services, beside the experiment's own criteria (`verify`).

use std::time::Duration;

use chrono::{DateTime, Utc};
use contracts::topology::Service;
use testkit::wait;
use uuid::Uuid;

use super::buffer::{Buffer, Sampler};
use super::checker::{self, Criterion, Expectations};
use super::experiment::Experiment;
use super::plan::Plan;
use super::report::{self, Figure, Report, Step, Window};
use super::target::{Part, Target};
use super::{faults, plant, verify};
use harness::load::{Attempt, Load, LoadSettings};
use harness::observe::Observer;

/// The label of the emulator in reports.
pub struct RunLabels {
    pub emulator: String,
    /// Appended to the experiment's name (`invoice-down (sync)`).
    pub variant: Option<String>,
}

/// One experiment in progress: what it did and measured so far.
pub(super) struct Run<'t, T: Target> {
    pub(super) target: &'t mut T,
    pub(super) observer: Observer,
    pub(super) plan: Plan,
    pub(super) experiment: Experiment,
    pub(super) run_id: String,
    pub(super) start: tokio::time::Instant,
    pub(super) started_at: DateTime<Utc>,
    pub(super) steps: Vec<Step>,
    pub(super) windows: Vec<Window>,
    pub(super) figures: Vec<Figure>,
    pub(super) criteria: Vec<Criterion>,
    pub(super) aborted: Option<String>,
    pub(super) expect: Expectations,
    pub(super) rng: fastrand::Rng,
    /// Attempts of loads other than the main one (the burst).
    pub(super) extra_history: Vec<Attempt>,
}

impl<T: Target> Run<'_, T> {
    pub(super) fn now(&self) -> f64 {
        self.start.elapsed().as_secs_f64()
    }

    pub(super) fn step(&mut self, what: impl Into<String>) {
        let what = what.into();
        let at = self.now();
        println!("[{at:6.1} s] {what}");
        self.steps.push(Step { at, what });
    }

    pub(super) fn figure(&mut self, name: &str, value: impl Into<String>) {
        self.figures.push(Figure {
            name: name.to_string(),
            value: value.into(),
        });
    }

    pub(super) fn criterion(
        &mut self,
        name: &str,
        requirement: &str,
        pass: bool,
        observed: impl Into<String>,
    ) {
        self.criteria
            .push(Criterion::new(name, requirement, pass, observed));
    }

    pub(super) fn abort(&mut self, reason: String) {
        if self.aborted.is_none() {
            self.step(format!("ABORT: {reason}"));
            self.aborted = Some(reason);
        }
    }

    /// Waits `d` under load, checking every quarter second that no service
    /// outside `faulted` went down. `false` when the experiment was aborted.
    pub(super) async fn hold(&mut self, d: Duration) -> bool {
        let until = tokio::time::Instant::now() + d;
        let watched: Vec<Part> = Service::ALL
            .iter()
            .map(|s| Part::Service(*s))
            .filter(|p| !self.experiment.faulted().contains(p))
            .collect();
        while tokio::time::Instant::now() < until && self.aborted.is_none() {
            for part in &watched {
                match self.target.is_running(*part).await {
                    Ok(true) => {}
                    Ok(false) => {
                        self.abort(format!("{part} went down, and the fault did not touch it"))
                    }
                    // Not knowing is not "down": look again at the next tick.
                    Err(e) => println!("cannot tell whether {part} runs: {e:#}"),
                }
            }
            let left = until.saturating_duration_since(tokio::time::Instant::now());
            tokio::time::sleep(left.min(Duration::from_millis(250))).await;
        }
        self.aborted.is_none()
    }

    /// Holds half a second at most (watching abort conditions), so that the
    /// caller samples something about twice a second until `until`. `false`
    /// once `until` has passed or the experiment was aborted.
    pub(super) async fn sample_until(&mut self, until: tokio::time::Instant) -> bool {
        let left = until.saturating_duration_since(tokio::time::Instant::now());
        if left.is_zero() {
            return false;
        }
        self.hold(left.min(Duration::from_millis(500))).await
    }

    pub(super) fn window(&mut self, from: f64, to: f64) {
        self.windows.push(Window { from, to });
    }
}

/// Runs `experiment` against `target` and writes its report under `results`.
pub async fn run<T: Target>(
    target: &mut T,
    experiment: Experiment,
    plan: &Plan,
    labels: &RunLabels,
    results: &std::path::Path,
) -> anyhow::Result<Report> {
    anyhow::ensure!(
        experiment != Experiment::SyncVsAsync,
        "sync-vs-async runs invoice-down twice: use compare_sync_and_async"
    );
    anyhow::ensure!(
        experiment.runs_on(target.kind()),
        "{experiment} needs the local stack"
    );
    let observer = Observer::new(target.endpoints(), target.topology()).await?;
    let buffer = Buffer::of(experiment, target.topology());
    // The sampler reads beside the experiment, through a connection of its own.
    let buffer_observer = match &buffer {
        Some(_) => Some(Observer::new(target.endpoints(), target.topology()).await?),
        None => None,
    };
    let mut plan = plan.clone();
    if let Some(secs) = target.visibility_timeout_secs() {
        plan.visibility_timeout_secs = secs;
    }
    let plan = &plan;
    let run_id = format!("c{}", &Uuid::now_v7().simple().to_string()[24..]);
    let mut run = Run {
        observer,
        plan: plan.clone(),
        experiment,
        run_id: run_id.clone(),
        start: tokio::time::Instant::now(),
        started_at: Utc::now(),
        steps: vec![],
        windows: vec![],
        figures: vec![],
        criteria: vec![],
        aborted: None,
        expect: Expectations::default(),
        rng: fastrand::Rng::with_seed(plan.seed),
        extra_history: vec![],
        target,
    };
    let sampler = buffer
        .clone()
        .zip(buffer_observer)
        .map(|(buffer, observer)| Sampler::start(buffer, observer, run.start));
    let experiment_name = match &labels.variant {
        Some(v) => format!("{experiment} ({v})"),
        None => experiment.to_string(),
    };
    println!("== {experiment_name}: {}", experiment.hypothesis());

    // 1. Steady state before the fault.
    wait_all_ready(&run).await?;
    run.step("steady state: every service ready");
    let load = Load::start(
        run.observer.http.clone(),
        run.target.endpoints().service(Service::Order).to_string(),
        LoadSettings {
            rate: plan.rate,
            timeout: plan.request_timeout,
            run_id: run_id.clone(),
            max_in_flight: 2000,
            minter: run.target.endpoints().minter.clone(),
        },
    );
    run.step(format!("open-loop load started: {} orders/s", plan.rate));
    run.hold(plan.warmup).await;
    let fault_from = run.now();
    steady_state(&mut run, &load).await;

    // 2. The fault, healed before this returns.
    if run.aborted.is_none() {
        faults::inject(&mut run).await?;
    }
    let heal_at = run.now();

    // 3. Duplicates and poison on purpose, then recovery under load.
    if let Err(e) = plant::duplicates_and_poison(&mut run, &load).await {
        run.abort(format!("cannot inject duplicates and poison: {e:#}"));
    }
    run.hold(plan.recovery).await;
    let (mut history, skipped) = load.stop().await?;
    let load_stopped = tokio::time::Instant::now();
    history.append(&mut run.extra_history);
    history.sort_by_key(|a| a.scheduled_at);
    run.step(format!(
        "load stopped: {} attempts{}",
        history.len(),
        if skipped > 0 {
            format!(", {skipped} not sent (client saturated)")
        } else {
            String::new()
        }
    ));

    // 4. Drain, then judge.
    let accepted: Vec<Uuid> = history.iter().filter_map(Attempt::order_id).collect();
    let drained = wait::until("the system to drain", plan.drain_deadline, || async {
        run.observer.drained().await?;
        let done = run
            .observer
            .completed(&accepted)
            .await
            .map_err(|e| e.to_string())?;
        if done == accepted.len() {
            Ok(())
        } else {
            Err(format!(
                "{done} of {} accepted orders complete",
                accepted.len()
            ))
        }
    })
    .await;
    // The wait starts when the load stops, so it measures what was left
    // then; how long the fault's backlog took is `backlog_worked_off`.
    let drain_secs = load_stopped.elapsed().as_secs_f64();
    match &drained {
        Ok(()) => {
            run.step(format!("drained {drain_secs:.1} s after the load stopped"));
            run.figure(
                "drained after the load stopped",
                format!("{drain_secs:.1} s"),
            );
        }
        Err(timeout) => {
            run.step(format!("did not drain: {timeout}"));
            run.figure("drained after the load stopped", "did not drain in time");
        }
    }
    run.criterion(
        "drains in time",
        &format!(
            "everything drains within {} s of the load stopping",
            plan.drain_deadline.as_secs()
        ),
        drained.is_ok(),
        match &drained {
            Ok(()) => format!("{drain_secs:.1} s after the load stopped"),
            Err(t) => t.last.clone(),
        },
    );
    let buffer_samples = match sampler {
        Some(sampler) => sampler.stop().await,
        None => Vec::new(),
    };
    let state = run.observer.state(&run_id, run.started_at).await?;
    run.criteria
        .extend(checker::check(&history, &state, &run.expect));
    let acceptance = verify::verify(&mut run, &history, &state, heal_at);
    let worked_off = match verify::backlog_worked_off(&history, &state, run.started_at, heal_at) {
        Some(secs) => format!(
            "{secs:.1} s after the heal (when the last order accepted before it completed its journey)"
        ),
        None => "not worked off: an order accepted before the heal never completed".into(),
    };
    println!("   {}: {worked_off}", verify::BACKLOG_WORKED_OFF);
    run.figure(verify::BACKLOG_WORKED_OFF, worked_off);
    let run_orders: std::collections::HashSet<Uuid> = state.orders.iter().map(|o| o.id).collect();
    run.figure(
        "invoices issued for this run's orders",
        state
            .invoices
            .iter()
            .filter(|i| run_orders.contains(&i.order_id))
            .count()
            .to_string(),
    );
    if let Err(e) = plant::remove_poison(&run).await {
        println!("could not remove the poison messages: {e:#}");
    }
    if let Some(reason) = run.aborted.clone() {
        run.criterion("not aborted", "the fault ran its course", false, reason);
    }
    verify::summarise_load(&mut run, &history, fault_from, heal_at);

    let passed = run.criteria.iter().all(|c| c.pass);
    let report = Report {
        experiment: experiment_name,
        hypothesis: experiment.hypothesis().to_string(),
        fault: experiment.fault(plan),
        target: run.target.kind().to_string(),
        emulator: labels.emulator.clone(),
        run_id,
        started_at: run.started_at,
        settings: settings_of(plan),
        steps: run.steps,
        fault_windows: run.windows,
        figures: run.figures,
        criteria: run.criteria,
        acceptance_during_fault: acceptance,
        aborted: run.aborted,
        passed,
        timeline: report::timeline(&history, &state, run.started_at, &buffer_samples),
        buffer: buffer.map(|b| b.label()),
    };
    let dir = report::run_dir(results, experiment.name(), report.started_at);
    let dir = match &labels.variant {
        Some(v) => dir.with_file_name(format!(
            "{}-{v}",
            dir.file_name().and_then(|n| n.to_str()).unwrap_or("run")
        )),
        None => dir,
    };
    report.write(&dir, &history)?;
    println!(
        "== {}: {} (report in {})",
        report.experiment,
        if report.passed { "PASS" } else { "FAIL" },
        dir.join("report.md").display()
    );
    for c in report.criteria.iter().filter(|c| !c.pass) {
        println!("   FAIL {}: {}", c.name, c.observed);
    }
    Ok(report)
}

fn settings_of(plan: &Plan) -> Vec<Figure> {
    let f = |name: &str, value: String| Figure {
        name: name.to_string(),
        value,
    };
    vec![
        f("load", format!("{} orders/s, open loop", plan.rate)),
        f(
            "phases",
            format!(
                "{} s warm-up, {} s fault, {} s recovery",
                plan.warmup.as_secs_f64(),
                plan.fault.as_secs_f64(),
                plan.recovery.as_secs_f64()
            ),
        ),
        f(
            "request timeout",
            format!("{} s", plan.request_timeout.as_secs_f64()),
        ),
        f(
            "visibility timeout of the local stack's consumers",
            format!("{} s", plan.visibility_timeout_secs),
        ),
        f("seed", plan.seed.to_string()),
        // A busy machine makes noisy latency figures: say what it was.
        f("machine", harness::report::Machine::read().to_string()),
        f(
            "load averages (1, 5, 15 min) at the start",
            harness::report::load_average(),
        ),
    ]
}

async fn wait_all_ready<T: Target>(run: &Run<'_, T>) -> anyhow::Result<()> {
    for service in Service::ALL {
        wait::until(
            &format!("{} to be ready", service.name()),
            Duration::from_secs(60),
            || async {
                if run.observer.ready(service).await {
                    Ok(())
                } else {
                    Err("not ready".to_string())
                }
            },
        )
        .await?;
    }
    Ok(())
}

/// The steady-state hypothesis, checked before the fault: the warm-up's
/// orders were accepted and the first of them completed its journey.
async fn steady_state<T: Target>(run: &mut Run<'_, T>, load: &Load) {
    let so_far = load.snapshot();
    let ok: Vec<Uuid> = so_far.iter().filter_map(Attempt::order_id).collect();
    let rate = ok.len() as f64 / so_far.len().max(1) as f64;
    let first = ok.first().copied();
    let journey = match first {
        None => Err("no order was accepted during the warm-up".to_string()),
        Some(id) => wait::until(
            "an order of the warm-up to complete its journey",
            Duration::from_secs(30),
            || async {
                match run.observer.completed(&[id]).await {
                    Ok(1) => Ok(()),
                    Ok(_) => Err(format!("order {id} not yet invoiced and notified")),
                    Err(e) => Err(e.to_string()),
                }
            },
        )
        .await
        .map_err(|t| t.to_string()),
    };
    let held = rate >= 0.999 && journey.is_ok();
    run.criterion(
        "steady state before",
        "during the warm-up, orders are accepted (≥ 99.9 %) and complete their journey",
        held,
        format!(
            "{} of {} accepted; {}",
            ok.len(),
            so_far.len(),
            match &journey {
                Ok(()) => "the first one completed".to_string(),
                Err(e) => e.clone(),
            }
        ),
    );
    if held {
        run.step("steady state holds: orders accepted and completing");
    } else {
        run.abort("the steady state did not hold before the fault".into());
    }
}
