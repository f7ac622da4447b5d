//! One step of load, the search for the sustained rate, and the burst.
//!
//! A **step** offers a constant rate of `POST /orders` (the open-loop load of
//! `crate::load`) for a fixed time, samples the backlog (unpublished outbox
//! rows of both relays, and every queue's visible + in-flight messages) and
//! each service's resident memory twice a second, then waits until every
//! accepted order is invoiced and notified twice. CPU seconds are read from
//! each process's own counters at the start and once it has drained, so the
//! idle polling between bursts of work is counted too.
//!
//! A rate is **sustained** when every request was accepted and sent on time,
//! every order completed within the drain deadline, and the backlog did not
//! grow: its least-squares slope over the second half of the step is under
//! 5 % of the offered rate (plus two messages a second of noise), or it ends
//! below a quarter second's worth of arrivals (plus ten). A system past its
//! ceiling falls behind by the difference every second, so above that margin
//! the slope shows it within seconds; below it the backlog is the few
//! messages in transit.
//!
//! The **search** doubles the rate from `start_rate` until a step is not
//! sustained (or `max_rate` is reached), then bisects `refine` times between
//! the last sustained rate and the first that was not.
//!
//! The **burst** measures the relay alone: with the order service frozen
//! (SIGSTOP), orders are committed straight into its database through its
//! own `order::benchmark::place_order`; once it is thawed, its relay finds them all waiting,
//! and the time from the thaw to the last `published_at` gives its drain
//! rate. The rest of the system then works through the same backlog, which
//! gives the whole system's drain rate too.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::Context;
use chrono::{DateTime, Utc};
use contracts::topology::{Service, Topology};
use nix::sys::signal::Signal;
use serde::Serialize;
use testkit::wait;
use uuid::Uuid;

use super::hops::{self, Databases, HopStats, Timeline};
use super::plan::Plan;
use harness::load::{Load, LoadSettings, Outcome};
use harness::observe::Endpoints;
use harness::observe::Observer;
use harness::procfs;
use harness::stack::{Stack, StackDescription};

/// The running system as the benchmark sees it: where it answers and which
/// processes to read counters from.
#[derive(Debug, Clone)]
pub struct Subject {
    pub endpoints: Endpoints,
    pub topology: Topology,
    /// The process of each service, by name.
    pub services: BTreeMap<&'static str, u32>,
    pub emulator: Option<u32>,
    /// The Postgres servers' postmasters (their backends are their children).
    pub postgres: Vec<u32>,
}

impl Subject {
    /// The stack's current processes (they change when a service restarts).
    pub fn of(stack: &mut Stack) -> anyhow::Result<Subject> {
        let topology = stack.topology.clone();
        Subject::described(&stack.describe(), topology)
    }

    /// A stack someone else started, from what `Stack::describe` wrote.
    pub fn described(stack: &StackDescription, topology: Topology) -> anyhow::Result<Subject> {
        let mut services = BTreeMap::new();
        let mut admin = BTreeMap::new();
        let mut databases = BTreeMap::new();
        let mut pids = BTreeMap::new();
        for service in Service::ALL {
            let name = service.name();
            let described = stack
                .services
                .get(name)
                .with_context(|| format!("the stack has no {name} service"))?;
            services.insert(name, described.url.clone());
            admin.insert(name, described.admin_url.clone());
            if let Some(pid) = described.pid {
                pids.insert(name, pid);
            }
            let database = stack
                .databases
                .get(name)
                .with_context(|| format!("the stack has no {name} database"))?;
            databases.insert(name, database.clone());
        }
        Ok(Subject {
            endpoints: Endpoints {
                services,
                admin,
                minter: stack.issuer.as_ref().map(|i| i.minter()).transpose()?,
                emulator: stack.emulator_url.clone(),
                databases,
            },
            topology,
            services: pids,
            emulator: Some(stack.emulator_pid),
            postgres: stack.postgres_pids.clone(),
        })
    }

    /// Sends `signal` to a service's process.
    pub fn signal(&self, service: Service, signal: Signal) -> anyhow::Result<()> {
        let pid = self
            .services
            .get(service.name())
            .with_context(|| format!("no process id for the {} service", service.name()))?;
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(*pid as i32), signal)?;
        Ok(())
    }

    /// CPU seconds so far: each service, the emulator and Postgres.
    fn cpu(&self) -> Cpu {
        Cpu {
            services: self
                .services
                .iter()
                .map(|(name, pid)| (*name, procfs::process_cpu_seconds(*pid).unwrap_or(0.0)))
                .collect(),
            emulator: self
                .emulator
                .and_then(procfs::process_cpu_seconds)
                .unwrap_or(0.0),
            postgres: self
                .postgres
                .iter()
                .filter_map(|pid| procfs::tree_cpu_seconds(*pid))
                .sum(),
            client: procfs::process_cpu_seconds(std::process::id()).unwrap_or(0.0),
        }
    }
}

#[derive(Debug, Clone, Default)]
struct Cpu {
    services: BTreeMap<&'static str, f64>,
    emulator: f64,
    postgres: f64,
    /// This process: the load, the sampling and the bench's own queries.
    client: f64,
}

/// What one process used during a step.
#[derive(Debug, Clone, Serialize)]
pub struct Usage {
    pub process: String,
    pub cpu_seconds: f64,
    /// CPU milliseconds per order completed: CPU seconds per 1,000 orders.
    pub cpu_ms_per_order: f64,
    /// The largest resident size sampled during the step (services only).
    pub rss_max_bytes: Option<u64>,
    /// The process's high-water mark at the end of the step (services only).
    pub rss_peak_bytes: Option<u64>,
}

/// One sample of the backlog.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Backlog {
    /// Seconds since the load started.
    pub t: f64,
    /// Unpublished rows in both outboxes.
    pub outbox: i64,
    /// Visible + in-flight messages in all consumed queues.
    pub queued: u64,
    /// The deepest of those queues.
    pub deepest_queue: u64,
}

impl Backlog {
    fn total(&self) -> f64 {
        self.outbox as f64 + self.queued as f64
    }
}

/// A step's result.
#[derive(Debug, Clone, Serialize)]
pub struct Step {
    pub label: String,
    pub offered_rate: f64,
    pub seconds: f64,
    pub attempts: usize,
    pub accepted: usize,
    /// Refused, timed out or failed: not `202`.
    pub not_accepted: usize,
    /// Not sent because too many requests were waiting (client saturated).
    pub skipped: u64,
    /// Accepted orders invoiced and notified twice.
    pub completed: usize,
    /// The worst lag of the load behind its own schedule, in ms.
    pub send_lag_max_ms: f64,
    /// The backlog's growth over the step's second half, messages per second.
    pub backlog_slope: f64,
    pub backlog_max: f64,
    pub deepest_queue_max: u64,
    /// From the end of the load until every order completed.
    pub drain_seconds: f64,
    pub sustained: bool,
    /// Why the rate was not sustained.
    pub why_not: Vec<String>,
    pub hops: Vec<HopStats>,
    pub usage: Vec<Usage>,
    pub backlog: Vec<Backlog>,
}

impl Step {
    pub fn hop(&self, name: &str) -> Option<&HopStats> {
        self.hops.iter().find(|h| h.hop == name)
    }

    /// CPU milliseconds per order of the three services together.
    pub fn services_cpu_ms_per_order(&self) -> f64 {
        self.usage
            .iter()
            .filter(|u| u.rss_max_bytes.is_some())
            .map(|u| u.cpu_ms_per_order)
            .sum()
    }
}

/// Runs the load at `rate` for `duration` and measures everything a step reports.
pub async fn run_step(
    subject: &Subject,
    observer: &Observer,
    plan: &Plan,
    label: &str,
    rate: f64,
    duration: Duration,
) -> anyhow::Result<Step> {
    let run_id = format!("bench-{}", &Uuid::now_v7().simple().to_string()[20..]);
    let cpu_before = subject.cpu();
    let mut rss_max: BTreeMap<&'static str, u64> = BTreeMap::new();
    let load = Load::start(
        observer.http.clone(),
        subject.endpoints.service(Service::Order).to_string(),
        LoadSettings {
            rate,
            timeout: plan.request_timeout,
            run_id,
            max_in_flight: 4000,
            minter: subject.endpoints.minter.clone(),
        },
    );
    let started = tokio::time::Instant::now();
    let mut backlog = Vec::new();
    while started.elapsed() < duration {
        let next = tokio::time::Instant::now() + Duration::from_millis(500);
        sample_memory(subject, &mut rss_max);
        match sample_backlog(observer, started.elapsed().as_secs_f64()).await {
            Ok(sample) => backlog.push(sample),
            Err(e) => tracing::warn!(error = %e, "cannot sample the backlog"),
        }
        tokio::time::sleep_until(next.min(started + duration)).await;
    }
    let (history, skipped) = load.stop().await?;
    let stopped = tokio::time::Instant::now();
    let seconds = duration.as_secs_f64();
    let accepted: Vec<Uuid> = history.iter().filter_map(|a| a.order_id()).collect();
    let drained = wait_until_complete(observer, &accepted, plan.drain_deadline, || {
        sample_memory(subject, &mut rss_max)
    })
    .await;
    let drain_seconds = stopped.elapsed().as_secs_f64();
    let cpu_after = subject.cpu();

    let orders: Vec<_> = history
        .iter()
        .filter_map(hops::client_times)
        .map(|(id, scheduled, accepted)| (id, Some((scheduled, accepted))))
        .collect();
    let timelines = hops::timelines(&Databases::of(observer), &orders).await?;
    let completed = timelines.iter().filter(|t| t.complete()).count();
    let not_accepted = history
        .iter()
        .filter(|a| !matches!(a.outcome, Outcome::Ok { .. }))
        .count();
    let send_lag_max_ms = history.iter().map(|a| a.send_lag_ms).fold(0.0, f64::max);
    let backlog_slope = slope(
        backlog
            .iter()
            .filter(|b| b.t >= seconds / 2.0)
            .map(|b| (b.t, b.total())),
    );
    let mut why_not = Vec::new();
    if not_accepted > 0 {
        why_not.push(format!("{not_accepted} requests not accepted"));
    }
    if skipped > 0 {
        why_not.push(format!("{skipped} requests not sent (client saturated)"));
    }
    if let Err(e) = &drained {
        why_not.push(format!("did not drain in {:?}: {e}", plan.drain_deadline));
    }
    let final_backlog = backlog.last().map(Backlog::total).unwrap_or(0.0);
    if backlog_slope > 2.0 + 0.05 * rate && final_backlog > 10.0 + 0.25 * rate {
        why_not.push(format!(
            "backlog grew by {backlog_slope:.1} messages/s to {final_backlog:.0}"
        ));
    }
    let usage = usage(subject, &cpu_before, &cpu_after, completed, &rss_max);
    Ok(Step {
        label: label.to_string(),
        offered_rate: rate,
        seconds,
        attempts: history.len(),
        accepted: accepted.len(),
        not_accepted,
        skipped,
        completed,
        send_lag_max_ms,
        backlog_slope,
        backlog_max: backlog.iter().map(Backlog::total).fold(0.0, f64::max),
        deepest_queue_max: backlog.iter().map(|b| b.deepest_queue).max().unwrap_or(0),
        drain_seconds,
        sustained: why_not.is_empty(),
        why_not,
        hops: hops::hop_stats(&timelines),
        usage,
        backlog,
    })
}

fn sample_memory(subject: &Subject, rss_max: &mut BTreeMap<&'static str, u64>) {
    for (name, pid) in &subject.services {
        if let Some(m) = procfs::process_memory(*pid) {
            let max = rss_max.entry(*name).or_default();
            *max = (*max).max(m.rss);
        }
    }
}

async fn sample_backlog(observer: &Observer, t: f64) -> anyhow::Result<Backlog> {
    let outbox = observer.outbox_backlog(Service::Order).await?
        + observer.outbox_backlog(Service::Invoice).await?;
    let depths = observer.queue_depths().await?;
    Ok(Backlog {
        t,
        outbox,
        queued: depths.values().map(|(v, f)| v + f).sum(),
        deepest_queue: depths.values().map(|(v, f)| v + f).max().unwrap_or(0),
    })
}

/// Waits until nothing is queued anywhere and every one of `orders` is
/// invoiced and notified, calling `meanwhile` at each look.
pub async fn wait_until_complete(
    observer: &Observer,
    orders: &[Uuid],
    deadline: Duration,
    mut meanwhile: impl FnMut(),
) -> Result<(), wait::Timeout> {
    wait::until("the step's orders to complete", deadline, || {
        meanwhile();
        async move {
            observer.drained().await?;
            let done = observer
                .completed(orders)
                .await
                .map_err(|e| e.to_string())?;
            if done == orders.len() {
                Ok(())
            } else {
                Err(format!("{done} of {} orders complete", orders.len()))
            }
        }
    })
    .await
}

fn usage(
    subject: &Subject,
    before: &Cpu,
    after: &Cpu,
    orders: usize,
    rss_max: &BTreeMap<&'static str, u64>,
) -> Vec<Usage> {
    let per_order = |seconds: f64| seconds * 1000.0 / orders.max(1) as f64;
    let mut usage: Vec<Usage> = after
        .services
        .iter()
        .map(|(name, cpu)| {
            let seconds = cpu - before.services.get(name).copied().unwrap_or(0.0);
            Usage {
                process: format!("{name} service"),
                cpu_seconds: seconds,
                cpu_ms_per_order: per_order(seconds),
                rss_max_bytes: Some(rss_max.get(name).copied().unwrap_or(0)),
                rss_peak_bytes: subject
                    .services
                    .get(name)
                    .and_then(|pid| procfs::process_memory(*pid))
                    .map(|m| m.peak),
            }
        })
        .collect();
    for (process, seconds) in [
        ("emulator", after.emulator - before.emulator),
        ("postgres (all servers)", after.postgres - before.postgres),
        ("bench (load and sampling)", after.client - before.client),
    ] {
        usage.push(Usage {
            process: process.to_string(),
            cpu_seconds: seconds,
            cpu_ms_per_order: per_order(seconds),
            rss_max_bytes: None,
            rss_peak_bytes: None,
        });
    }
    usage
}

/// The least-squares slope of `points` (0 with fewer than two).
pub fn slope(points: impl Iterator<Item = (f64, f64)>) -> f64 {
    let points: Vec<(f64, f64)> = points.collect();
    let n = points.len() as f64;
    if points.len() < 2 {
        return 0.0;
    }
    let mean_x = points.iter().map(|p| p.0).sum::<f64>() / n;
    let mean_y = points.iter().map(|p| p.1).sum::<f64>() / n;
    let covariance: f64 = points
        .iter()
        .map(|(x, y)| (x - mean_x) * (y - mean_y))
        .sum();
    let variance: f64 = points.iter().map(|(x, _)| (x - mean_x).powi(2)).sum();
    if variance == 0.0 {
        0.0
    } else {
        covariance / variance
    }
}

/// The search's steps and the highest rate it found sustained.
pub struct Search {
    pub steps: Vec<Step>,
    pub sustained_rate: f64,
}

impl Search {
    /// The services' CPU per order at the sustained rate: the last step
    /// measured at that rate (none when nothing was sustained).
    pub fn cpu_at_sustained(&self) -> Option<f64> {
        self.steps
            .iter()
            .rev()
            .find(|s| s.sustained && s.offered_rate == self.sustained_rate)
            .map(Step::services_cpu_ms_per_order)
    }
}

/// The searches of a run: the sustained rate is their median.
pub struct Searches {
    pub steps: Vec<Step>,
    /// Each search's sustained rate, in the order they ran.
    pub sustained_rates: Vec<f64>,
    /// Each search's services' CPU per order at its sustained rate.
    pub cpu_at_sustained: Vec<f64>,
}

/// The median, the lower of the middle two for an even count (so a tie
/// never rounds a target up), 0 for none.
pub fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    match sorted.len() {
        0 => 0.0,
        n => sorted[(n - 1) / 2],
    }
}

/// Runs the search `plan.search_repeats` times, one after the other.
pub async fn searches(
    subject: &Subject,
    observer: &Observer,
    plan: &Plan,
) -> anyhow::Result<Searches> {
    let repeats = plan.search_repeats.max(1);
    let mut all = Searches {
        steps: Vec::new(),
        sustained_rates: Vec::new(),
        cpu_at_sustained: Vec::new(),
    };
    for i in 1..=repeats {
        let label = if repeats == 1 {
            "search".to_string()
        } else {
            format!("search {i}/{repeats}")
        };
        let found = search(subject, observer, plan, &label).await?;
        println!("   {label}: sustained {:.0} orders/s", found.sustained_rate);
        all.sustained_rates.push(found.sustained_rate);
        if let Some(cpu) = found.cpu_at_sustained() {
            all.cpu_at_sustained.push(cpu);
        }
        all.steps.extend(found.steps);
    }
    Ok(all)
}

/// Doubles, then bisects, the rate; see the module's documentation.
pub async fn search(
    subject: &Subject,
    observer: &Observer,
    plan: &Plan,
    label: &str,
) -> anyhow::Result<Search> {
    let mut steps = Vec::new();
    let mut sustained: Option<f64> = None;
    let mut failed: Option<f64> = None;
    let mut rate = plan.start_rate;
    loop {
        let step = measure(subject, observer, plan, label, rate).await?;
        let ok = step.sustained;
        steps.push(step);
        if ok {
            sustained = Some(rate);
            if failed.is_some() || rate >= plan.max_rate {
                break;
            }
            rate = (rate * 2.0).min(plan.max_rate);
        } else {
            failed = Some(rate);
            if sustained.is_some() || rate <= 1.0 {
                break;
            }
            rate = (rate / 2.0).floor().max(1.0);
        }
    }
    if let (Some(mut lo), Some(mut hi)) = (sustained, failed) {
        for _ in 0..plan.refine {
            let mid = ((lo + hi) / 2.0).round();
            if mid <= lo || mid >= hi {
                break;
            }
            let step = measure(subject, observer, plan, label, mid).await?;
            if step.sustained {
                lo = mid;
            } else {
                hi = mid;
            }
            steps.push(step);
        }
        sustained = Some(lo);
    }
    Ok(Search {
        steps,
        sustained_rate: sustained.unwrap_or(0.0),
    })
}

/// One search step, printed as it ends; a step that did not drain is waited
/// for longer, so the next step starts from an empty system.
async fn measure(
    subject: &Subject,
    observer: &Observer,
    plan: &Plan,
    label: &str,
    rate: f64,
) -> anyhow::Result<Step> {
    let step = run_step(subject, observer, plan, label, rate, plan.step).await?;
    print_step(&step);
    if step.completed < step.accepted {
        wait_until_complete(observer, &[], plan.drain_deadline * 3, || {})
            .await
            .map_err(|e| anyhow::anyhow!("the system did not drain after {rate}/s: {e}"))?;
    }
    Ok(step)
}

pub fn print_step(step: &Step) {
    let e2e = step
        .hop(hops::END_TO_END)
        .map(|h| h.latency)
        .unwrap_or_default();
    println!(
        "   {:>9} {:>6.0}/s: {}/{} accepted, {} complete, e2e p50 {:.0} ms p99 {:.0} ms, backlog slope {:+.1}/s, drained in {:.1} s: {}",
        step.label,
        step.offered_rate,
        step.accepted,
        step.attempts,
        step.completed,
        e2e.p50,
        e2e.p99,
        step.backlog_slope,
        step.drain_seconds,
        if step.sustained {
            "sustained".to_string()
        } else {
            format!("NOT sustained ({})", step.why_not.join("; "))
        }
    );
}

/// What the burst measured.
#[derive(Debug, Clone, Serialize)]
pub struct Burst {
    pub orders: usize,
    /// How long committing them took (the order service frozen meanwhile).
    pub commit_seconds: f64,
    /// Events the order relay published per second, from the thaw to its
    /// last `published_at`.
    pub relay_events_per_sec: f64,
    /// Orders the whole system completed per second, from the thaw to the
    /// last notification.
    pub system_orders_per_sec: f64,
    pub completed: usize,
}

/// Commits `plan.burst` orders and waits until the order relay has published
/// them all: a backlog for the consumers a step then times (frozen, or not
/// started yet, meanwhile).
pub async fn publish_burst(
    subject: &Subject,
    observer: &Observer,
    plan: &Plan,
) -> anyhow::Result<Vec<Uuid>> {
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(plan.postgres_concurrency as u32)
        .connect(subject.endpoints.database(Service::Order))
        .await?;
    let (ids, _) = commit_orders(&pool, plan).await?;
    pool.close().await;
    wait::until(
        "the order relay to publish",
        plan.drain_deadline,
        || async {
            match observer.outbox_backlog(Service::Order).await {
                Ok(0) => Ok(()),
                Ok(n) => Err(format!("{n} unpublished")),
                Err(e) => Err(e.to_string()),
            }
        },
    )
    .await
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(ids)
}

/// Commits `plan.burst` orders straight into the order service's database
/// (its own `place_order`, from `plan.postgres_concurrency` tasks); returns
/// their ids and how long the commits took.
pub async fn commit_orders(pool: &sqlx::PgPool, plan: &Plan) -> anyhow::Result<(Vec<Uuid>, f64)> {
    let order = super::ceiling::sample_order("bench-burst-0")?;
    let started = std::time::Instant::now();
    let mut ids = Vec::with_capacity(plan.burst);
    let mut tasks = tokio::task::JoinSet::new();
    for worker in 0..plan.postgres_concurrency {
        let (pool, order) = (pool.clone(), order.clone());
        let share =
            (plan.burst + plan.postgres_concurrency - 1 - worker) / plan.postgres_concurrency;
        tasks.spawn(async move {
            let mut ids = Vec::with_capacity(share);
            for _ in 0..share {
                ids.push(order::benchmark::place_order(&pool, &order.body).await?);
            }
            anyhow::Ok(ids)
        });
    }
    while let Some(done) = tasks.join_next().await {
        ids.extend(done??);
    }
    Ok((ids, started.elapsed().as_secs_f64()))
}

/// Freezes the order service, commits `plan.burst` orders into its database,
/// thaws it, and times the relay and the system working through them.
pub async fn burst(subject: &Subject, observer: &Observer, plan: &Plan) -> anyhow::Result<Burst> {
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(plan.postgres_concurrency as u32)
        .connect(subject.endpoints.database(Service::Order))
        .await?;
    subject.signal(Service::Order, Signal::SIGSTOP)?;
    let committed = commit_orders(&pool, plan).await;
    let thawed: DateTime<Utc> = Utc::now();
    subject.signal(Service::Order, Signal::SIGCONT)?;
    let (ids, commit_seconds) = committed?;
    pool.close().await;
    wait_until_complete(observer, &ids, plan.drain_deadline, || {})
        .await
        .map_err(|e| anyhow::anyhow!("the burst did not complete: {e}"))?;
    let orders: Vec<_> = ids.iter().map(|id| (*id, None)).collect();
    let timelines = hops::timelines(&Databases::of(observer), &orders).await?;
    let last = |stamp: fn(&Timeline) -> Option<DateTime<Utc>>| {
        timelines
            .iter()
            .filter_map(stamp)
            .max()
            .map(|t| (t - thawed).num_microseconds().unwrap_or(0) as f64 / 1e6)
            .filter(|s| *s > 0.0)
    };
    let rate = |seconds: Option<f64>| seconds.map(|s| ids.len() as f64 / s).unwrap_or(0.0);
    Ok(Burst {
        orders: ids.len(),
        commit_seconds,
        relay_events_per_sec: rate(last(|t| t.published)),
        system_orders_per_sec: rate(last(Timeline::notified)),
        completed: timelines.iter().filter(|t| t.complete()).count(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_median_of_the_searches_is_the_middle_one_or_the_lower_middle() {
        assert_eq!(median(&[40.0, 75.0, 44.0]), 44.0);
        assert_eq!(median(&[40.0, 75.0]), 40.0);
        assert_eq!(median(&[12.0]), 12.0);
        assert_eq!(median(&[]), 0.0);
    }

    #[test]
    fn the_slope_of_a_growing_backlog_is_its_growth_per_second() {
        let growing = (0..10).map(|i| (i as f64 * 0.5, 3.0 + 20.0 * i as f64 * 0.5));
        assert!((slope(growing) - 20.0).abs() < 1e-9);
        let flat = (0..10).map(|i| (i as f64, if i % 2 == 0 { 4.0 } else { 6.0 }));
        assert!(slope(flat).abs() < 0.5);
        assert_eq!(slope(std::iter::once((1.0, 5.0))), 0.0);
    }
}
