//! The benchmark: latency per hop and throughput, each set against the
//! limits measured in the same run.
//!
//! On one machine the ceiling is the emulator and Postgres, not the
//! services, so a bare figure says little: every throughput is reported as a
//! share of the emulator's own ceiling (and of Postgres's), measured minutes
//! earlier on the same machine with the same message sizes and batches.
//!
//! A run, in order:
//!
//! 1. **Ceilings** (`ceiling`): each emulator of the plan, and stock moto,
//!    started fresh and driven by a bare client through the topology's two
//!    routes and the chained flow, at a shallow and a deep queue.
//! 2. For each emulator of the plan, a **stack** of processes (three
//!    services, one Postgres server each), or the running stack the demo
//!    described (`--running .stack/logs/stack.json`), and:
//!    - the **Postgres ceiling** on the order service's server;
//!    - the **search** for the highest sustained rate (`step`), run
//!      `search_repeats` times: the sustained rate is the median, reported
//!      with the spread, so one lucky step cannot mark a target met;
//!    - the **reference step** at half that rate, where the latency
//!      targets are judged, with every hop of every order (`hops`);
//!    - a **burst** for the relay's drain rate;
//!    - the **baseline**: both relays restarted as peers run theirs by
//!      default (no LISTEN/NOTIFY, one event per call, a fixed poll), then
//!      the same reference step and burst (only on a stack of its own).
//! 3. The **round-trip mode** (`roundtrip`, when `round_trips` is not
//!    empty): on each emulator, every AWS call through a proxy that adds a
//!    round-trip time, the bare client's ceilings and both relays (the
//!    configured one and the single-flight one) at each.
//! 4. **Elasticity** (`elastic`, unless `elastic_instances` is empty): on
//!    each emulator, one burst drained by 1, 2 and 4 invoice instances side
//!    by side; then the invoice consumer as a **Lambda function**
//!    (`functions`): cold and warm invocations, and the drain with 1, 2 and
//!    4 function instances.
//! 5. The **report** (`report`, `chart`): a table on the terminal, JSON,
//!    Markdown and an SVG chart under the results folder, with each
//!    emulator's ceilings beside what the services sustained on it.
//!
//! The smoke test runs `Plan::smoke` (seconds) and checks only that every
//! figure is there and every order completed; the figures are read from the
//! `bench` command's run (see BENCHMARKS.md).

pub mod auth_cost;
pub mod ceiling;
pub mod chart;
pub mod elastic;
pub mod functions;
pub mod hops;
pub mod plan;
pub mod report;
pub mod roundtrip;
pub mod step;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context;
use chrono::Utc;
use contracts::topology::{Chain, Service, Topology};
use testkit::emulator::EmulatorKind;

pub use plan::Plan;
use report::{Baseline, MessageBytes, Report, Run};
use step::Subject;

use harness::observe::Observer;
use harness::report::{Machine, load_average, timestamp};
use harness::stack::{PostgresSource, Stack, StackDescription, StackOptions};

/// The baseline relay: what peers run by default.
pub fn baseline_settings(plan: &Plan) -> Vec<(String, String)> {
    vec![
        ("RELAY_LISTEN".into(), "false".into()),
        ("RELAY_BATCH_SIZE".into(), "1".into()),
        (
            "RELAY_POLL_INTERVAL_MS".into(),
            plan.baseline_poll.as_millis().to_string(),
        ),
    ]
}

/// Runs the whole benchmark and writes its report into a new folder under
/// `results`; returns the report and that folder.
pub async fn run(plan: &Plan, results: &Path, command: &str) -> anyhow::Result<(Report, PathBuf)> {
    let started_at = Utc::now();
    let clock = std::time::Instant::now();
    let dir = results.join(timestamp(started_at));
    let log_dir = dir.join("logs");
    std::fs::create_dir_all(&log_dir)?;
    let load_average_before = load_average();
    println!("== bench: results in {}", dir.display());
    let running = match &plan.running {
        Some(path) => Some(read_description(path)?),
        None => None,
    };

    let mut kinds: Vec<EmulatorKind> = match &running {
        Some(stack) => vec![stack.emulator.parse().map_err(anyhow::Error::msg)?],
        None => plan.emulators.clone(),
    };
    if plan.stock_ceilings && !kinds.contains(&EmulatorKind::MotoStock) {
        kinds.push(EmulatorKind::MotoStock);
    }
    if plan.round_trips_only {
        kinds.clear();
    }
    println!(
        "== ceilings of the emulators ({} s each)",
        plan.ceiling.as_secs_f64()
    );
    let mut ceilings = Vec::new();
    let mut calls = Vec::new();
    for kind in kinds {
        let (latencies, measured) = ceiling::emulator_ceilings(kind, plan, &log_dir).await?;
        calls.extend(latencies);
        ceilings.extend(measured);
    }
    let (order_placed, invoice_issued) = ceiling::message_sizes()?;

    let mut runs = Vec::new();
    match &running {
        _ if plan.round_trips_only => {}
        Some(stack) => {
            println!("== {}: the running stack", stack.emulator);
            let subject = Subject::described(stack, Topology::declare(Chain::Standard))?;
            let admin_url = stack
                .postgres_admin_urls
                .get(Service::Order.name())
                .or_else(|| stack.postgres_admin_urls.get("shared"))
                .context("the stack names no Postgres superuser URL")?;
            runs.push(measure(&subject, admin_url, &stack.emulator, plan, None).await?);
        }
        None => {
            for kind in &plan.emulators {
                runs.push(run_on(*kind, plan, &log_dir.join(kind.as_str())).await?);
            }
        }
    }
    for run in &mut runs {
        report::judge(run, &ceilings);
    }
    let mut round_trips = Vec::new();
    if !plan.round_trips.is_empty() {
        anyhow::ensure!(
            running.is_none(),
            "the round-trip mode starts stacks of its own: leave out --running"
        );
        for kind in &plan.emulators {
            let rate = plan
                .round_trip_rate
                .or_else(|| {
                    runs.iter()
                        .find(|r| r.emulator == kind.as_str())
                        .map(|r| r.reference.offered_rate)
                })
                .unwrap_or(10.0);
            round_trips.push(roundtrip::run(*kind, plan, &log_dir, rate).await?);
        }
        roundtrip::judge(&mut round_trips);
    }
    let (mut elasticity, mut functions) = (Vec::new(), Vec::new());
    if running.is_none() && !plan.round_trips_only && !plan.elastic_instances.is_empty() {
        for kind in &plan.emulators {
            elasticity.push(elastic::run(*kind, plan, &log_dir).await?);
            functions.push(functions::run(*kind, plan, &log_dir).await?);
        }
    }
    let report = Report {
        started_at,
        seconds: clock.elapsed().as_secs_f64(),
        command: command.to_string(),
        machine: Machine::read(),
        load_average_before,
        load_average_after: load_average(),
        plan: plan.clone(),
        ceiling_message_bytes: MessageBytes {
            order_placed,
            invoice_issued,
        },
        ceilings,
        calls,
        runs,
        round_trips,
        elasticity,
        functions,
    };
    report.write(&dir)?;
    Ok((report, dir))
}

fn read_description(path: &Path) -> anyhow::Result<StackDescription> {
    let text = std::fs::read(path)
        .with_context(|| format!("cannot read {} (does the demo run?)", path.display()))?;
    let stack: StackDescription = serde_json::from_slice(&text)?;
    anyhow::ensure!(
        stack.orders_chain == Chain::Standard.as_str(),
        "the benchmark measures the standard order chain; this stack runs {}",
        stack.orders_chain
    );
    Ok(stack)
}

/// A stack of the benchmark's on `kind`: one Postgres server per service,
/// the plan's log level and settings for every service, `env_for` for some.
pub(crate) fn stack_options(
    kind: EmulatorKind,
    plan: &Plan,
    log_dir: &Path,
    env_for: BTreeMap<&'static str, Vec<(String, String)>>,
) -> StackOptions {
    StackOptions {
        postgres: PostgresSource::EphemeralPerService,
        emulator: kind,
        emulator_port: None,
        service_ports: None,
        database_prefix: String::new(),
        service_env: std::iter::once(("RUST_LOG".to_string(), plan.service_log.clone()))
            .chain(plan.service_env.iter().cloned())
            .collect(),
        orders_chain: Chain::Standard,
        env_for,
        log_dir: log_dir.to_path_buf(),
    }
}

/// The invoice service serving its API only: its queue is left to the
/// instances or functions a step starts.
pub(crate) fn invoice_consumers_off() -> BTreeMap<&'static str, Vec<(String, String)>> {
    BTreeMap::from([(
        Service::Invoice.name(),
        vec![("CONSUMERS_ENABLED".to_string(), "false".to_string())],
    )])
}

/// A stack of its own on `kind`: started, measured, stopped.
async fn run_on(kind: EmulatorKind, plan: &Plan, log_dir: &Path) -> anyhow::Result<Run> {
    println!("== {kind}: starting the stack");
    let mut stack = Stack::start(stack_options(kind, plan, log_dir, BTreeMap::new())).await?;
    let result = async {
        let subject = Subject::of(&mut stack)?;
        let admin_url = stack
            .clusters
            .get(Service::Order.name())
            .map(|c| c.admin_url())
            .context("the order service has no Postgres server of its own")?;
        measure(&subject, &admin_url, kind.as_str(), plan, Some(&mut stack)).await
    }
    .await;
    stack.shutdown().await?;
    result
}

/// Everything but the emulator ceilings, on a running stack. The baseline
/// restarts two services with other settings, so it needs the stack itself.
async fn measure(
    subject: &Subject,
    admin_url: &str,
    emulator: &str,
    plan: &Plan,
    own_stack: Option<&mut Stack>,
) -> anyhow::Result<Run> {
    let observer = Observer::new(&subject.endpoints, &subject.topology).await?;
    // Connections opened, code paths warmed: not reported.
    step::run_step(
        subject,
        &observer,
        plan,
        "warm-up",
        10.0,
        plan.step.min(std::time::Duration::from_secs(2)),
    )
    .await?;
    let postgres = ceiling::postgres_ceiling(admin_url, plan).await?;
    println!(
        "   Postgres ceiling: {:.0} orders/s",
        postgres.orders_per_sec
    );

    println!(
        "== {emulator}: searching for the sustained rate ({} times)",
        plan.search_repeats.max(1)
    );
    let searches = step::searches(subject, &observer, plan).await?;
    let mut steps = searches.steps;
    let sustained_rate = step::median(&searches.sustained_rates);
    let reference_rate = (sustained_rate / 2.0).round().max(1.0);
    let reference = step::run_step(
        subject,
        &observer,
        plan,
        "reference",
        reference_rate,
        plan.reference,
    )
    .await?;
    step::print_step(&reference);
    steps.push(reference.clone());
    for rate in &plan.extra_rates {
        let extra = step::run_step(subject, &observer, plan, "extra", *rate, plan.step).await?;
        step::print_step(&extra);
        steps.push(extra);
    }
    let burst = step::burst(subject, &observer, plan).await?;
    println!(
        "   burst: relay {:.0} events/s, system {:.0} orders/s",
        burst.relay_events_per_sec, burst.system_orders_per_sec
    );
    let rss_peak = subject
        .services
        .iter()
        .filter_map(|(name, pid)| {
            Some((
                name.to_string(),
                harness::procfs::process_memory(*pid)?.peak,
            ))
        })
        .collect();
    let message_bytes = published_sizes(&observer).await?;
    let auth = auth_cost::measure(auth_cost::VERIFICATIONS).await?;
    println!(
        "   verifying a bearer token: mean {:.0} µs, p99 {:.0} µs",
        auth.mean_us, auth.p99_us
    );
    let baseline = match own_stack {
        Some(stack) => Some(baseline(stack, &observer, plan, reference_rate).await?),
        None => {
            println!("   no baseline: it restarts services, and this stack is not ours");
            None
        }
    };
    Ok(Run {
        emulator: emulator.to_string(),
        postgres,
        steps,
        sustained_rate,
        sustained_rates: searches.sustained_rates,
        cpu_at_sustained: searches.cpu_at_sustained,
        reference,
        burst,
        baseline,
        message_bytes,
        rss_peak,
        auth,
        verdicts: vec![],
        ratios: vec![],
    })
}

/// Restarts both relays' services as the baseline and measures them at
/// `rate` (they keep the baseline settings: this is a run's last part).
async fn baseline(
    stack: &mut Stack,
    observer: &Observer,
    plan: &Plan,
    rate: f64,
) -> anyhow::Result<Baseline> {
    println!("== the baseline relay");
    let settings = baseline_settings(plan);
    let http = stack.http.clone();
    for service in [Service::Order, Service::Invoice] {
        let process = stack.service(service);
        for (key, value) in &settings {
            process.set_env(key, value);
        }
        process.restart(&http).await?;
    }
    // The killed processes' long polls live on in the emulator until their
    // wait time ends, and would take the next messages with them (hidden for
    // a visibility timeout): let them run out first.
    tokio::time::sleep(plan.long_poll() + std::time::Duration::from_secs(1)).await;
    let subject = Subject::of(stack)?;
    let reference =
        step::run_step(&subject, observer, plan, "baseline", rate, plan.reference).await?;
    step::print_step(&reference);
    let burst = step::burst(&subject, observer, plan).await?;
    println!(
        "   baseline burst: relay {:.0} events/s, system {:.0} orders/s",
        burst.relay_events_per_sec, burst.system_orders_per_sec
    );
    Ok(Baseline {
        settings,
        reference,
        burst,
    })
}

/// The size of each event type as the relays publish it (compact JSON).
async fn published_sizes(observer: &Observer) -> anyhow::Result<MessageBytes> {
    let size = |service: Service, event_type: &'static str| async move {
        let payload: Option<String> = sqlx::query_scalar(
            "SELECT payload::text FROM outbox WHERE event_type = $1 ORDER BY created_at DESC LIMIT 1",
        )
        .bind(event_type)
        .fetch_optional(observer.pool(service))
        .await?;
        anyhow::Ok(
            payload
                .and_then(|p| serde_json::from_str::<serde_json::Value>(&p).ok())
                .map(|v| v.to_string().len())
                .unwrap_or(0),
        )
    };
    Ok(MessageBytes {
        order_placed: size(Service::Order, "OrderPlaced").await?,
        invoice_issued: size(Service::Invoice, "InvoiceIssued").await?,
    })
}
