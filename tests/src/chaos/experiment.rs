//! The named experiments and the one method they all follow, in the style of
//! Chaos Toolkit and AWS FIS:
//!
//! 1. **steady state before**: every service ready; under load, orders are
//!    accepted and an early one completes its journey (invoiced, notified);
//! 2. **fault**: injected for a bounded time while the load goes on; abort
//!    conditions are watched meanwhile (a part the fault did not touch going
//!    down stops the experiment early and fails it);
//! 3. **heal**, then duplicates of handled events and one poison message are
//!    injected on purpose, and the load runs a little longer;
//! 4. **verification**: the load stops, the system must drain within a
//!    deadline, and the checker judges the whole history against the state of
//!    all three services, beside the experiment's own criteria (acceptance and
//!    latency during the fault, readiness, crashes, spinning...).

use std::collections::BTreeMap;
use std::time::Duration;

use aws_sdk_sqs::types::MessageAttributeValue;
use chrono::{DateTime, Utc};
use shared::topology::{Service, Topology};
use testkit::proxy::NetFault;
use testkit::wait;
use uuid::Uuid;

use super::checker::{self, Criterion, Expectations, Poison};
use super::load::{Attempt, Load, LoadSettings, Outcome};
use super::local::LocalOptions;
use super::observe::Observer;
use super::plan::Plan;
use super::report::{self, Figure, Report, Step, Window};
use super::target::{Exit, Part, Target};

/// The experiments, by the name the command takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Experiment {
    InvoiceDown,
    InvoiceCrashLoop,
    OrderCrashMidPublish,
    EmulatorPause,
    InvoiceCutOff,
    InvoiceDbDown,
    NotificationHang,
    RollingRestart,
    SyncVsAsync,
}

impl Experiment {
    pub const ALL: [Experiment; 9] = [
        Experiment::InvoiceDown,
        Experiment::InvoiceCrashLoop,
        Experiment::OrderCrashMidPublish,
        Experiment::EmulatorPause,
        Experiment::InvoiceCutOff,
        Experiment::InvoiceDbDown,
        Experiment::NotificationHang,
        Experiment::RollingRestart,
        Experiment::SyncVsAsync,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Experiment::InvoiceDown => "invoice-down",
            Experiment::InvoiceCrashLoop => "invoice-crash-loop",
            Experiment::OrderCrashMidPublish => "order-crash-mid-publish",
            Experiment::EmulatorPause => "emulator-pause",
            Experiment::InvoiceCutOff => "invoice-cut-off",
            Experiment::InvoiceDbDown => "invoice-db-down",
            Experiment::NotificationHang => "notification-hang",
            Experiment::RollingRestart => "rolling-restart",
            Experiment::SyncVsAsync => "sync-vs-async",
        }
    }

    pub fn hypothesis(self) -> &'static str {
        match self {
            Experiment::InvoiceDown => {
                "With the invoice service dead, orders are still accepted (≥ 99.9 %) as fast as before (p99 within 2× the baseline); once it is back, every accepted order gets exactly one invoice and its notifications."
            }
            Experiment::InvoiceCrashLoop => {
                "Killed again and again while it works, the invoice service still issues exactly one invoice per order and no notification is sent twice."
            }
            Experiment::OrderCrashMidPublish => {
                "Killed while its relay publishes a burst, the order service loses no committed order and publishes none twice in effect: every one is invoiced exactly once downstream."
            }
            Experiment::EmulatorPause => {
                "With the broker frozen, orders are still accepted, the outbox backlog grows and drains afterwards, and no service crashes or spins."
            }
            Experiment::InvoiceCutOff => {
                "With the invoice service's network to the broker slow, resetting or black-holed, only the invoice service falls behind; orders and their order-received notifications flow as before, and the invoice backlog drains afterwards."
            }
            Experiment::InvoiceDbDown => {
                "With its database down, the invoice service says it is not ready, deletes no message it could not apply, dead-letters nothing, and invoices everything once the database is back."
            }
            Experiment::NotificationHang => {
                "A notification instance frozen longer than the visibility timeout lets its messages be redelivered to the other instance; when it wakes, the inbox absorbs what it handles again: exactly one notification per event."
            }
            Experiment::RollingRestart => {
                "Each service in turn stopped with SIGTERM under load exits cleanly, and no order answered 202 is lost."
            }
            Experiment::SyncVsAsync => {
                "The same invoice outage takes order-taking down when the order service calls the invoice service synchronously, and does not when they talk through messages."
            }
        }
    }

    fn fault(self, plan: &Plan) -> String {
        let t = plan.fault.as_secs_f64();
        match self {
            Experiment::InvoiceDown | Experiment::SyncVsAsync => {
                format!("kill -9 the invoice service, keep it down {t:.0} s, start it again")
            }
            Experiment::InvoiceCrashLoop => format!(
                "kill -9 the invoice service {} times at random moments while it works, restarting it each time",
                plan.kills
            ),
            Experiment::OrderCrashMidPublish => format!(
                "a burst of orders at {:.0}/s, and kill -9 the order service while its relay is publishing it",
                plan.burst_rate
            ),
            Experiment::EmulatorPause => {
                format!("freeze the emulator (SIGSTOP) for {t:.0} s, then SIGCONT")
            }
            Experiment::InvoiceCutOff => format!(
                "a proxy between the invoice service and the emulator adds 500 ms latency, then resets connections, then black-holes them, {:.1} s each",
                t / 3.0
            ),
            Experiment::InvoiceDbDown => format!(
                "stop the invoice service's Postgres for {:.0} s (on the local stack its retries are {DB_DOWN_RETRY_CAP_SECS} s apart and it waits 0.5 s for a connection, so {} receives would fit in the outage)",
                db_outage(plan).as_secs_f64(),
                shared::topology::MAX_RECEIVE_COUNT
            ),
            Experiment::NotificationHang => format!(
                "SIGSTOP one of two notification instances for {:.0} s, longer than its {} s visibility timeout, then SIGCONT",
                hang(plan).as_secs_f64(),
                plan.visibility_timeout_secs
            ),
            Experiment::RollingRestart => {
                "SIGTERM the order, invoice and notification services in turn, starting each again"
                    .into()
            }
        }
    }

    /// Whether the experiment can run on a target of `kind`.
    pub fn runs_on(self, kind: &str) -> bool {
        match self {
            // The proxy and the order service's mode are set when the local
            // stack starts.
            Experiment::InvoiceCutOff | Experiment::SyncVsAsync => kind == "local",
            _ => true,
        }
    }

    /// How the local stack must be started for this experiment.
    pub fn local_options(self, plan: &Plan, base: LocalOptions) -> LocalOptions {
        // A message held by a killed or frozen consumer comes back after the
        // visibility timeout: the plan sets it for every service.
        let visibility = plan.visibility_timeout_secs.to_string();
        let base = Service::ALL.iter().fold(base, |options, service| {
            options.with_env(*service, "CONSUMER_VISIBILITY_TIMEOUT_SECS", &visibility)
        });
        match self {
            Experiment::InvoiceCutOff => LocalOptions {
                invoice_proxy: true,
                ..base
            },
            // Retries 1 s apart and a short wait for a connection: a consumer
            // that kept receiving while its database is down would use up
            // maxReceiveCount within the outage and park messages in the DLQ.
            Experiment::InvoiceDbDown => base
                .with_env(
                    Service::Invoice,
                    "CONSUMER_RETRY_MAX_DELAY_SECS",
                    &DB_DOWN_RETRY_CAP_SECS.to_string(),
                )
                .with_env(Service::Invoice, "DATABASE_ACQUIRE_TIMEOUT_MS", "500"),
            Experiment::NotificationHang => {
                // The instance that will hang works slowly, so it always
                // holds messages when it is frozen.
                let mut options = base.with_env(
                    Service::Notification,
                    shared::failpoints::VARIABLE,
                    &format!("{}=return(150)", shared::failpoints::CONSUMER_HANDLE),
                );
                options.replicas.push((
                    Service::Notification,
                    vec![(shared::failpoints::VARIABLE.to_string(), String::new())],
                ));
                options
            }
            _ => base,
        }
    }

    /// The parts the fault touches on purpose; any other going down aborts.
    fn faulted(self) -> Vec<Part> {
        match self {
            Experiment::InvoiceDown | Experiment::InvoiceCrashLoop | Experiment::SyncVsAsync => {
                vec![Part::Service(Service::Invoice)]
            }
            Experiment::OrderCrashMidPublish => vec![Part::Service(Service::Order)],
            Experiment::EmulatorPause | Experiment::InvoiceCutOff => vec![],
            Experiment::InvoiceDbDown => vec![Part::Database(Service::Invoice)],
            Experiment::NotificationHang => vec![Part::Service(Service::Notification)],
            Experiment::RollingRestart => Service::ALL.iter().map(|s| Part::Service(*s)).collect(),
        }
    }
}

impl std::fmt::Display for Experiment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// How long `notification-hang` freezes the instance: the fault's length, and
/// at least twice the visibility timeout plus a second.
fn hang(plan: &Plan) -> Duration {
    plan.fault.max(Duration::from_secs(
        2 * u64::from(plan.visibility_timeout_secs) + 1,
    ))
}

/// The cap on the invoice service's retry delay in `invoice-db-down`.
const DB_DOWN_RETRY_CAP_SECS: u64 = 1;

/// How long `invoice-db-down` keeps the database down: the fault's length,
/// and at least long enough for maxReceiveCount retries at the capped delay.
fn db_outage(plan: &Plan) -> Duration {
    let receives = u64::from(shared::topology::MAX_RECEIVE_COUNT) + 1;
    plan.fault
        .max(Duration::from_secs(2 * receives * DB_DOWN_RETRY_CAP_SECS))
}

/// The label of the emulator in reports.
pub struct RunLabels {
    pub emulator: String,
    /// Appended to the experiment's name (`invoice-down (sync)`).
    pub variant: Option<String>,
}

/// One experiment in progress: what it did and measured so far.
struct Run<'t, T: Target> {
    target: &'t mut T,
    observer: Observer,
    plan: Plan,
    experiment: Experiment,
    run_id: String,
    start: tokio::time::Instant,
    started_at: DateTime<Utc>,
    steps: Vec<Step>,
    windows: Vec<Window>,
    figures: Vec<Figure>,
    criteria: Vec<Criterion>,
    aborted: Option<String>,
    expect: Expectations,
    rng: fastrand::Rng,
    /// Attempts of loads other than the main one (the burst).
    extra_history: Vec<Attempt>,
}

impl<T: Target> Run<'_, T> {
    fn now(&self) -> f64 {
        self.start.elapsed().as_secs_f64()
    }

    fn step(&mut self, what: impl Into<String>) {
        let what = what.into();
        let at = self.now();
        println!("[{at:6.1} s] {what}");
        self.steps.push(Step { at, what });
    }

    fn figure(&mut self, name: &str, value: impl Into<String>) {
        self.figures.push(Figure {
            name: name.to_string(),
            value: value.into(),
        });
    }

    fn criterion(
        &mut self,
        name: &str,
        requirement: &str,
        pass: bool,
        observed: impl Into<String>,
    ) {
        self.criteria
            .push(Criterion::new(name, requirement, pass, observed));
    }

    fn abort(&mut self, reason: String) {
        if self.aborted.is_none() {
            self.step(format!("ABORT: {reason}"));
            self.aborted = Some(reason);
        }
    }

    /// Waits `d` under load, checking every quarter second that no service
    /// outside `faulted` went down. `false` when the experiment was aborted.
    async fn hold(&mut self, d: Duration) -> bool {
        let until = tokio::time::Instant::now() + d;
        let watched: Vec<Part> = Service::ALL
            .iter()
            .map(|s| Part::Service(*s))
            .filter(|p| !self.experiment.faulted().contains(p))
            .collect();
        while tokio::time::Instant::now() < until && self.aborted.is_none() {
            for part in &watched {
                if !self.target.is_running(*part).await.unwrap_or(false) {
                    self.abort(format!("{part} went down, and the fault did not touch it"));
                }
            }
            let left = until.saturating_duration_since(tokio::time::Instant::now());
            tokio::time::sleep(left.min(Duration::from_millis(250))).await;
        }
        self.aborted.is_none()
    }

    fn window(&mut self, from: f64, to: f64) {
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
        },
    );
    run.step(format!("open-loop load started: {} orders/s", plan.rate));
    run.hold(plan.warmup).await;
    let fault_from = run.now();
    steady_state(&mut run, &load).await;

    // 2. The fault, healed before this returns.
    if run.aborted.is_none() {
        inject(&mut run, &load).await?;
    }
    let healed = tokio::time::Instant::now();
    let heal_at = run.now();

    // 3. Duplicates and poison on purpose, then recovery under load.
    if let Err(e) = inject_duplicates_and_poison(&mut run, &load).await {
        run.abort(format!("cannot inject duplicates and poison: {e:#}"));
    }
    run.hold(plan.recovery).await;
    let (mut history, skipped) = load.stop().await?;
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
    let drain_secs = healed.elapsed().as_secs_f64();
    match &drained {
        Ok(()) => {
            run.step(format!("drained {drain_secs:.1} s after the fault healed"));
            run.figure(
                "drain time after the fault healed",
                format!("{drain_secs:.1} s"),
            );
        }
        Err(timeout) => {
            run.step(format!("did not drain: {timeout}"));
            run.figure("drain time after the fault healed", "did not drain in time");
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
            Ok(()) => format!("{drain_secs:.1} s after the heal"),
            Err(t) => t.last.clone(),
        },
    );
    let state = run.observer.state(&run_id, run.started_at).await?;
    run.criteria
        .extend(checker::check(&history, &state, &run.expect));
    let acceptance = verify(&mut run, &history, &state, heal_at);
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
    if let Err(e) = remove_poison(&run).await {
        println!("could not remove the poison messages: {e:#}");
    }
    if let Some(reason) = run.aborted.clone() {
        run.criterion("not aborted", "the fault ran its course", false, reason);
    }
    summarise_load(&mut run, &history, fault_from, heal_at);

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
        timeline: report::timeline(&history, &state, run.started_at),
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

/// The fault itself, healed before it returns.
async fn inject<T: Target>(run: &mut Run<'_, T>, load: &Load) -> anyhow::Result<()> {
    let invoice = Part::Service(Service::Invoice);
    match run.experiment {
        Experiment::InvoiceDown | Experiment::SyncVsAsync => {
            run.target.kill(invoice).await?;
            let from = run.now();
            run.step("kill -9 the invoice service");
            run.hold(run.plan.fault).await;
            run.target.start(invoice).await?;
            run.step("invoice service started again and ready");
            let to = run.now();
            run.window(from, to);
        }
        Experiment::InvoiceCrashLoop => {
            let from = run.now();
            for i in 1..=run.plan.kills {
                let spread = run.plan.fault.as_millis() as u64 / u64::from(run.plan.kills.max(1));
                let wait = Duration::from_millis(run.rng.u64(spread / 4..=spread.max(1)));
                if !run.hold(wait).await {
                    break;
                }
                run.target.kill(invoice).await?;
                run.step(format!(
                    "kill -9 the invoice service ({i} of {})",
                    run.plan.kills
                ));
                run.target.start(invoice).await?;
                run.step("invoice service started again and ready");
            }
            let to = run.now();
            run.window(from, to);
        }
        Experiment::OrderCrashMidPublish => order_crash_mid_publish(run).await?,
        Experiment::EmulatorPause => emulator_pause(run, load).await?,
        Experiment::InvoiceCutOff => invoice_cut_off(run).await?,
        Experiment::InvoiceDbDown => invoice_db_down(run).await?,
        Experiment::NotificationHang => notification_hang(run).await?,
        Experiment::RollingRestart => {
            let from = run.now();
            let pause = run.plan.fault / 3;
            let mut exits = Vec::new();
            for service in Service::ALL {
                if !run.hold(pause).await {
                    break;
                }
                let exit = run.target.terminate(service).await?;
                run.step(format!("SIGTERM the {} service: {exit:?}", service.name()));
                exits.push((service, exit));
                run.target.start(Part::Service(service)).await?;
                run.step(format!(
                    "{} service started again and ready",
                    service.name()
                ));
            }
            let to = run.now();
            run.window(from, to);
            let unclean: Vec<String> = exits
                .iter()
                .filter_map(|(s, e)| match e {
                    Exit::Clean => None,
                    Exit::Unclean(how) => Some(format!("{} {how}", s.name())),
                })
                .collect();
            run.criterion(
                "graceful exits",
                "each service exits with status 0 on SIGTERM under load",
                unclean.is_empty() && exits.len() == Service::ALL.len(),
                if unclean.is_empty() {
                    format!("{} clean exits", exits.len())
                } else {
                    unclean.join(", ")
                },
            );
        }
    }
    Ok(())
}

async fn order_crash_mid_publish<T: Target>(run: &mut Run<'_, T>) -> anyhow::Result<()> {
    let order = Part::Service(Service::Order);
    let burst = Load::start(
        run.observer.http.clone(),
        run.target.endpoints().service(Service::Order).to_string(),
        LoadSettings {
            rate: run.plan.burst_rate,
            timeout: run.plan.request_timeout,
            run_id: format!("{}-burst", run.run_id),
            max_in_flight: 2000,
        },
    );
    let from = run.now();
    run.step(format!("burst of orders at {}/s", run.plan.burst_rate));
    let burst_started = Utc::now();
    let pool = run.observer.pool(Service::Order).clone();
    // Kill when the relay has published part of the burst and not the rest.
    let mid_publish = wait::until(
        "the relay to be mid-burst",
        run.plan.fault.max(Duration::from_secs(5)),
        || async {
            let (published, pending): (i64, i64) = sqlx::query_as(
                "SELECT count(*) FILTER (WHERE published_at >= $1), \
                        count(*) FILTER (WHERE published_at IS NULL) FROM outbox",
            )
            .bind(burst_started)
            .fetch_one(&pool)
            .await
            .map_err(|e| e.to_string())?;
            if published > 0 && pending > 0 {
                Ok((published, pending))
            } else {
                Err(format!("{published} published, {pending} pending"))
            }
        },
    )
    .await;
    run.target.kill(order).await?;
    match mid_publish {
        Ok((published, pending)) => {
            run.step(format!(
                "kill -9 the order service: {published} of the burst published, {pending} committed and not yet published"
            ));
            run.figure(
                "outbox rows committed, not yet published, at the kill",
                pending.to_string(),
            );
        }
        Err(t) => {
            run.step(format!(
                "kill -9 the order service (never caught mid-publish: {})",
                t.last
            ));
            run.figure(
                "outbox rows committed, not yet published, at the kill",
                "0 (not caught mid-publish)",
            );
        }
    }
    let (mut history, _) = burst.stop().await?;
    run.step(format!("burst stopped after {} attempts", history.len()));
    run.extra_history.append(&mut history);
    run.target.start(order).await?;
    run.step("order service started again and ready");
    let to = run.now();
    run.window(from, to);
    Ok(())
}

async fn emulator_pause<T: Target>(run: &mut Run<'_, T>, _load: &Load) -> anyhow::Result<()> {
    let cpu_before: BTreeMap<&str, Option<f64>> = Service::ALL
        .iter()
        .map(|s| (s.name(), run.target.cpu_seconds(Part::Service(*s))))
        .collect();
    run.target.pause(Part::Emulator).await?;
    let paused = tokio::time::Instant::now();
    let from = run.now();
    run.step("SIGSTOP the emulator");
    let mut peak = 0i64;
    let until = paused + run.plan.fault;
    while tokio::time::Instant::now() < until {
        let step = until
            .saturating_duration_since(tokio::time::Instant::now())
            .min(Duration::from_millis(500));
        if !run.hold(step).await {
            break;
        }
        if let Ok(n) = run.observer.outbox_backlog(Service::Order).await {
            peak = peak.max(n);
        }
    }
    let held_for = paused.elapsed().as_secs_f64();
    let cpu_after: BTreeMap<&str, Option<f64>> = Service::ALL
        .iter()
        .map(|s| (s.name(), run.target.cpu_seconds(Part::Service(*s))))
        .collect();
    run.target.resume(Part::Emulator).await?;
    run.step("SIGCONT the emulator");
    let to = run.now();
    run.window(from, to);
    run.figure(
        "order outbox backlog at its peak during the pause",
        peak.to_string(),
    );
    run.criterion(
        "backlog grows",
        "orders accepted during the pause wait in the outbox",
        peak > 0,
        format!("peak {peak} unpublished rows"),
    );
    let mut usage = Vec::new();
    let mut spinning = Vec::new();
    for service in Service::ALL {
        let (Some(Some(before)), Some(Some(after))) = (
            cpu_before.get(service.name()),
            cpu_after.get(service.name()),
        ) else {
            continue;
        };
        let share = (after - before) / held_for;
        usage.push(format!("{} {:.0} %", service.name(), share * 100.0));
        if share > SPIN_LIMIT {
            spinning.push(service.name());
        }
    }
    if usage.is_empty() {
        run.figure("CPU during the pause", "not measurable on this target");
    } else {
        run.figure("CPU during the pause (share of one core)", usage.join(", "));
        run.criterion(
            "no spinning",
            &format!(
                "no service uses more than {:.0} % of a core while the broker is frozen",
                SPIN_LIMIT * 100.0
            ),
            spinning.is_empty(),
            usage.join(", "),
        );
    }
    let mut down = Vec::new();
    for service in Service::ALL {
        if !run.target.is_running(Part::Service(service)).await? {
            down.push(service.name());
        }
    }
    run.criterion(
        "no crash",
        "every service is still running after the pause",
        down.is_empty(),
        if down.is_empty() {
            "all running".to_string()
        } else {
            format!("down: {}", down.join(", "))
        },
    );
    Ok(())
}

/// A service busier than this while the broker is frozen is spinning: it
/// only serves the load's HTTP requests and backs off its broker calls.
const SPIN_LIMIT: f64 = 0.5;

async fn invoice_cut_off<T: Target>(run: &mut Run<'_, T>) -> anyhow::Result<()> {
    anyhow::ensure!(
        run.target.proxy_of(Service::Invoice).is_some(),
        "invoice-cut-off needs the local stack started with the invoice proxy"
    );
    let third = run.plan.fault / 3;
    let from = run.now();
    let mut peak = 0u64;
    for fault in [
        NetFault::Latency(Duration::from_millis(500)),
        NetFault::Reset,
        NetFault::Blackhole,
    ] {
        if let Some(p) = run.target.proxy_of(Service::Invoice) {
            p.set(fault);
        }
        run.step(format!("invoice ⇄ emulator: {fault}"));
        let until = tokio::time::Instant::now() + third;
        while tokio::time::Instant::now() < until {
            let step = until
                .saturating_duration_since(tokio::time::Instant::now())
                .min(Duration::from_millis(500));
            if !run.hold(step).await {
                break;
            }
            if let Ok(d) = infra::dlq::depth_of(&run.observer.sqs, "invoice-orders").await {
                peak = peak.max(d.visible);
            }
        }
    }
    if let Some(p) = run.target.proxy_of(Service::Invoice) {
        p.set(NetFault::Pass);
    }
    run.step("invoice ⇄ emulator: no fault");
    let to = run.now();
    run.window(from, to);
    run.figure("invoice-orders backlog at its peak", peak.to_string());
    run.criterion(
        "the invoice service falls behind",
        "messages for the invoice service wait in its queue during the cut",
        peak > 0,
        format!("peak {peak} visible messages"),
    );
    Ok(())
}

async fn invoice_db_down<T: Target>(run: &mut Run<'_, T>) -> anyhow::Result<()> {
    let db = Part::Database(Service::Invoice);
    run.target.kill(db).await?;
    let stopped = tokio::time::Instant::now();
    let from = run.now();
    run.step("stop the invoice database");
    let red = wait::until(
        "the invoice service to report not ready",
        Duration::from_secs(10),
        || async {
            if run.observer.ready(Service::Invoice).await {
                Err("still ready".to_string())
            } else {
                Ok(())
            }
        },
    )
    .await;
    let red_after = stopped.elapsed().as_secs_f64();
    run.criterion(
        "readiness goes red",
        "the invoice service answers /health/ready with 503 while its database is down",
        red.is_ok(),
        match &red {
            Ok(()) => format!("not ready {red_after:.1} s after the stop"),
            Err(t) => t.to_string(),
        },
    );
    let mut others_unready = Vec::new();
    let mut dead_letters = 0u64;
    let mut held_peak = 0u64;
    let until = stopped + db_outage(&run.plan);
    while tokio::time::Instant::now() < until {
        let step = until
            .saturating_duration_since(tokio::time::Instant::now())
            .min(Duration::from_millis(500));
        if !run.hold(step).await {
            break;
        }
        for service in [Service::Order, Service::Notification] {
            if !run.observer.ready(service).await && !others_unready.contains(&service.name()) {
                others_unready.push(service.name());
            }
        }
        if let Ok(d) = infra::dlq::depth_of(&run.observer.sqs, "invoice-orders-dlq").await {
            dead_letters = dead_letters.max(d.total());
        }
        if let Ok(d) = infra::dlq::depth_of(&run.observer.sqs, "invoice-orders").await {
            held_peak = held_peak.max(d.total());
        }
    }
    run.target.start(db).await?;
    run.step("start the invoice database again");
    let green = wait::until(
        "the invoice service to be ready again",
        Duration::from_secs(30),
        || async {
            if run.observer.ready(Service::Invoice).await {
                Ok(())
            } else {
                Err("not ready".to_string())
            }
        },
    )
    .await;
    run.step("invoice service ready again");
    let to = run.now();
    run.window(from, to);
    run.criterion(
        "ready again",
        "the invoice service reports ready once its database is back",
        green.is_ok(),
        match &green {
            Ok(()) => "ready".to_string(),
            Err(t) => t.to_string(),
        },
    );
    run.criterion(
        "others unaffected",
        "the order and notification services stay ready",
        others_unready.is_empty(),
        if others_unready.is_empty() {
            "both stayed ready".to_string()
        } else {
            format!("not ready at some point: {}", others_unready.join(", "))
        },
    );
    run.criterion(
        "nothing dead-lettered",
        "no message reaches invoice-orders-dlq while the database is down",
        dead_letters == 0,
        format!("{dead_letters} in the DLQ at most"),
    );
    run.figure(
        "invoice-orders messages held (not deleted) at the peak",
        held_peak.to_string(),
    );
    Ok(())
}

async fn notification_hang<T: Target>(run: &mut Run<'_, T>) -> anyhow::Result<()> {
    let notification = Part::Service(Service::Notification);
    // Freeze it while it holds messages, so that they are redelivered.
    let holding = wait::until(
        "the notification service to hold messages",
        Duration::from_secs(10),
        || async {
            let mut in_flight = 0;
            for q in ["notification-orders", "notification-invoices"] {
                in_flight += infra::dlq::depth_of(&run.observer.sqs, q)
                    .await
                    .map_err(|e| e.to_string())?
                    .in_flight;
            }
            if in_flight > 0 {
                Ok(in_flight)
            } else {
                Err("nothing in flight".into())
            }
        },
    )
    .await;
    run.target.pause(notification).await?;
    let from = run.now();
    run.step(format!(
        "SIGSTOP a notification instance ({} messages in flight)",
        holding
            .map(|n| n.to_string())
            .unwrap_or_else(|_| "no".into())
    ));
    let hang = hang(&run.plan);
    run.hold(hang).await;
    run.target.resume(notification).await?;
    run.step("SIGCONT the notification instance");
    let to = run.now();
    run.window(from, to);
    run.criterion(
        "longer than the visibility timeout",
        "the hang outlasts the visibility timeout, so held messages are redelivered",
        to - from > f64::from(run.plan.visibility_timeout_secs),
        format!(
            "{:.1} s hang, {} s visibility timeout",
            to - from,
            run.plan.visibility_timeout_secs
        ),
    );
    Ok(())
}

/// Sends copies of handled `OrderPlaced` events to both order-event queues,
/// and one message that is not an event to `invoice-orders`.
async fn inject_duplicates_and_poison<T: Target>(
    run: &mut Run<'_, T>,
    load: &Load,
) -> anyhow::Result<()> {
    let ok: Vec<String> = load
        .snapshot()
        .iter()
        .filter_map(Attempt::order_id)
        .map(|id| id.to_string())
        .collect();
    let rows: Vec<(String, serde_json::Value)> = sqlx::query_as(
        "SELECT payload::text, attributes FROM outbox \
         WHERE event_type = 'OrderPlaced' AND published_at IS NOT NULL AND payload->>'subject' = ANY($1) \
         ORDER BY created_at LIMIT $2",
    )
    .bind(&ok)
    .bind(run.plan.duplicates as i64)
    .fetch_all(run.observer.pool(Service::Order))
    .await?;
    let topology: Topology = run.target.topology().clone();
    let order_queues: Vec<_> = topology
        .queues
        .iter()
        .filter(|q| {
            q.event_types
                .contains(&shared::events::EventType::OrderPlaced)
        })
        .collect();
    for queue in &order_queues {
        let url = shared::consumer::queue_url(&run.observer.sqs, queue.name).await?;
        for (payload, attributes) in &rows {
            let mut send = run
                .observer
                .sqs
                .send_message()
                .queue_url(&url)
                .message_body(payload);
            for (name, value) in attributes.as_object().into_iter().flatten() {
                if let Some(v) = value.as_str() {
                    send = send.message_attributes(
                        name,
                        MessageAttributeValue::builder()
                            .data_type("String")
                            .string_value(v)
                            .build()?,
                    );
                }
            }
            send.send().await?;
        }
        *run.expect
            .injected_duplicates
            .entry(queue.consumer.name().to_string())
            .or_default() += rows.len() as i64;
    }
    run.step(format!(
        "{} copies of handled OrderPlaced events sent to {}",
        rows.len(),
        order_queues
            .iter()
            .map(|q| q.name)
            .collect::<Vec<_>>()
            .join(" and ")
    ));
    let poisoned = topology.queues_of(Service::Invoice).remove(0);
    let marker = format!("chaos poison {}", run.run_id);
    let url = shared::consumer::queue_url(&run.observer.sqs, poisoned.name).await?;
    run.observer
        .sqs
        .send_message()
        .queue_url(&url)
        .message_body(format!("{marker}: this is not an event"))
        .send()
        .await?;
    run.expect.poison.push(Poison {
        dlq: poisoned.dlq_name(),
        marker,
    });
    run.step(format!("one poison message sent to {}", poisoned.name));
    Ok(())
}

/// Deletes this run's poison messages from their DLQs (after the verdict),
/// so that a long-lived stack starts the next run clean.
async fn remove_poison<T: Target>(run: &Run<'_, T>) -> anyhow::Result<()> {
    let sqs = &run.observer.sqs;
    for poison in &run.expect.poison {
        let url = shared::consumer::queue_url(sqs, &poison.dlq).await?;
        let got = sqs
            .receive_message()
            .queue_url(&url)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .send()
            .await?;
        for message in got.messages() {
            let Some(receipt) = message.receipt_handle() else {
                continue;
            };
            if message.body().unwrap_or_default().contains(&poison.marker) {
                sqs.delete_message()
                    .queue_url(&url)
                    .receipt_handle(receipt)
                    .send()
                    .await?;
            } else {
                sqs.change_message_visibility()
                    .queue_url(&url)
                    .receipt_handle(receipt)
                    .visibility_timeout(0)
                    .send()
                    .await?;
            }
        }
    }
    Ok(())
}

/// The nearest-rank percentile `q` (0..=1) of `values`, which it sorts.
pub fn percentile(values: &mut [f64], q: f64) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let rank = ((q * values.len() as f64).ceil() as usize).clamp(1, values.len());
    Some(values[rank - 1])
}

/// Attempts scheduled inside `from..to` seconds of the run.
fn scheduled_within(
    history: &[Attempt],
    started: DateTime<Utc>,
    from: f64,
    to: f64,
) -> Vec<&Attempt> {
    history
        .iter()
        .filter(|a| {
            let t = (a.scheduled_at - started).num_milliseconds() as f64 / 1000.0;
            t >= from && t < to
        })
        .collect()
}

/// What the experiment must show beyond the checker's rules. Returns the
/// share of orders accepted during the fault.
fn verify<T: Target>(
    run: &mut Run<'_, T>,
    history: &[Attempt],
    state: &super::observe::SystemState,
    heal_at: f64,
) -> Option<f64> {
    let during: Vec<&Attempt> = run
        .windows
        .clone()
        .iter()
        .flat_map(|w| scheduled_within(history, run.started_at, w.from, w.to))
        .collect();
    let accepted = during
        .iter()
        .filter(|a| matches!(a.outcome, Outcome::Ok { .. }))
        .count();
    let acceptance = accepted as f64 / during.len().max(1) as f64;
    let needs_acceptance = !matches!(
        run.experiment,
        Experiment::OrderCrashMidPublish | Experiment::RollingRestart
    );
    if needs_acceptance {
        run.criterion(
            "orders accepted during the fault",
            "≥ 99.9 % of the orders sent during the fault are accepted",
            !during.is_empty() && acceptance >= 0.999,
            format!(
                "{accepted} of {} ({:.1} %)",
                during.len(),
                acceptance * 100.0
            ),
        );
    }
    if matches!(
        run.experiment,
        Experiment::InvoiceDown | Experiment::SyncVsAsync
    ) {
        let first_fault = run.windows.first().map(|w| w.from).unwrap_or(heal_at);
        let mut baseline: Vec<f64> = scheduled_within(history, run.started_at, 0.5, first_fault)
            .iter()
            .map(|a| a.latency_ms)
            .collect();
        let mut faulted: Vec<f64> = during.iter().map(|a| a.latency_ms).collect();
        let (b, f) = (
            percentile(&mut baseline, 0.99),
            percentile(&mut faulted, 0.99),
        );
        run.criterion(
            "latency during the fault",
            "POST /orders p99 during the fault within 2× the baseline p99",
            matches!((b, f), (Some(b), Some(f)) if f <= 2.0 * b),
            match (b, f) {
                (Some(b), Some(f)) => {
                    format!("{f:.1} ms during, {b:.1} ms baseline ({:.2}×)", f / b)
                }
                _ => "not enough samples".to_string(),
            },
        );
    }
    if run.experiment == Experiment::InvoiceCutOff {
        // The others are unaffected: an order accepted during the cut gets
        // its order-received notification as fast as ever.
        let received: BTreeMap<Uuid, DateTime<Utc>> = state
            .notifications
            .iter()
            .filter(|n| n.event_type == "OrderPlaced")
            .map(|n| (n.order_id, n.created_at))
            .collect();
        let mut slow = 0;
        let mut total = 0;
        for a in &during {
            let Some(id) = a.order_id() else { continue };
            total += 1;
            match received.get(&id) {
                Some(at) if (*at - a.completed_at()).num_milliseconds() <= 3000 => {}
                _ => slow += 1,
            }
        }
        run.criterion(
            "others unaffected",
            "orders accepted during the cut get their order-received notification within 3 s",
            total > 0 && slow == 0,
            format!("{} of {total} within 3 s", total - slow),
        );
    }
    if run.experiment == Experiment::NotificationHang
        && run.target.instances(Service::Notification) > 1
    {
        let injected = run
            .expect
            .injected_duplicates
            .get("notification")
            .copied()
            .unwrap_or(0);
        let absorbed = state.duplicates.get("notification").copied().unwrap_or(0);
        run.criterion(
            "redelivery absorbed",
            "the frozen instance's messages were redelivered and handled again, and the inbox absorbed them",
            absorbed > injected,
            format!("{absorbed} duplicates absorbed, {injected} of them injected"),
        );
    }
    (!during.is_empty()).then_some(acceptance)
}

/// Figures about the load itself.
fn summarise_load<T: Target>(
    run: &mut Run<'_, T>,
    history: &[Attempt],
    fault_from: f64,
    heal_at: f64,
) {
    let count = |f: fn(&Outcome) -> bool| history.iter().filter(|a| f(&a.outcome)).count();
    run.figure(
        "attempts (ok / fail / unknown)",
        format!(
            "{} / {} / {}",
            count(|o| matches!(o, Outcome::Ok { .. })),
            count(|o| matches!(o, Outcome::Fail { .. })),
            count(|o| matches!(o, Outcome::Unknown { .. }))
        ),
    );
    let windows = run.windows.clone();
    let mut during: Vec<f64> = windows
        .iter()
        .flat_map(|w| scheduled_within(history, run.started_at, w.from, w.to))
        .map(|a| a.latency_ms)
        .collect();
    let mut before: Vec<f64> = scheduled_within(history, run.started_at, 0.5, fault_from)
        .iter()
        .map(|a| a.latency_ms)
        .collect();
    let mut after: Vec<f64> = scheduled_within(history, run.started_at, heal_at, f64::MAX)
        .iter()
        .map(|a| a.latency_ms)
        .collect();
    for (name, values) in [
        ("POST /orders latency before the fault", &mut before),
        ("POST /orders latency during the fault", &mut during),
        ("POST /orders latency after the fault", &mut after),
    ] {
        let p50 = percentile(values, 0.5);
        let p99 = percentile(values, 0.99);
        let max = percentile(values, 1.0);
        if let (Some(p50), Some(p99), Some(max)) = (p50, p99, max) {
            run.figure(
                name,
                format!(
                    "p50 {p50:.1} ms, p99 {p99:.1} ms, max {max:.1} ms ({} requests)",
                    values.len()
                ),
            );
        }
    }
    let mut errors: BTreeMap<String, usize> = BTreeMap::new();
    for a in history {
        match &a.outcome {
            Outcome::Ok { .. } => {}
            Outcome::Fail { reason, .. } | Outcome::Unknown { reason, .. } => {
                *errors.entry(reason.clone()).or_default() += 1
            }
        }
    }
    if !errors.is_empty() {
        run.figure(
            "errors",
            errors
                .iter()
                .map(|(r, n)| format!("{n}× {r}"))
                .collect::<Vec<_>>()
                .join(", "),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let mut v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&mut v, 0.5), Some(50.0));
        assert_eq!(percentile(&mut v, 0.99), Some(99.0));
        assert_eq!(percentile(&mut v, 1.0), Some(100.0));
        assert_eq!(percentile(&mut [], 0.5), None);
        assert_eq!(percentile(&mut [3.0], 0.99), Some(3.0));
    }

    #[test]
    fn every_experiment_has_a_distinct_kebab_case_name() {
        let mut names: Vec<&str> = Experiment::ALL.iter().map(|e| e.name()).collect();
        for e in Experiment::ALL {
            use clap::ValueEnum;
            let value = e.to_possible_value().expect("named");
            assert_eq!(value.get_name(), e.name());
        }
        names.sort();
        names.dedup();
        assert_eq!(names.len(), Experiment::ALL.len());
    }
}
