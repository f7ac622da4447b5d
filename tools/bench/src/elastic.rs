//! Elasticity: one backlog drained by 1, 2 and 4 invoice instances side by
//! side, as a fleet scaled on its queue's depth would run them.
//!
//! The invoice service's own process serves its API only
//! (`CONSUMERS_ENABLED=false`); the instances are replicas that consume, each
//! with its own relay, sharing the database and the queue as tasks of one ECS
//! service do. For each instance count: the replicas are started and frozen
//! (SIGSTOP), `plan.burst` orders are committed and the order relay publishes
//! them all into `invoice-orders`, then every replica is thawed at once and
//! timed until its last inbox row. The drain rate is the backlog over that
//! time; per instance, that over the count. Every order must be invoiced
//! exactly once (the invoice table's `order_id` is unique, and the count of
//! invoices must be the count of orders).
//!
//! On one machine the instances share the cores with the emulator and
//! Postgres: the figure shows where adding instances stops helping here, not
//! what AWS would give.

use std::path::Path;

use chrono::{DateTime, Utc};
use contracts::topology::Service;
use harness::observe::Observer;
use harness::stack::Stack;
use nix::sys::signal::Signal;
use serde::Serialize;
use testkit::emulator::EmulatorKind;
use uuid::Uuid;

use super::hops::{self, Databases, Timeline};
use super::plan::Plan;
use super::step::{self, Subject};

/// One instance count's drain.
#[derive(Debug, Clone, Serialize)]
pub struct Drain {
    pub instances: u32,
    pub orders: usize,
    /// `OrderPlaced` messages the instances took per second together, from
    /// the thaw to the last inbox row.
    pub events_per_sec: f64,
    /// The same, per instance.
    pub events_per_sec_per_instance: f64,
    /// Orders with exactly one invoice.
    pub invoiced_once: usize,
}

/// The drains of one emulator.
#[derive(Debug, Clone, Serialize)]
pub struct ElasticRun {
    pub emulator: String,
    pub drains: Vec<Drain>,
}

/// Starts a stack on `kind` and drains a burst with each instance count of
/// the plan.
pub async fn run(kind: EmulatorKind, plan: &Plan, log_dir: &Path) -> anyhow::Result<ElasticRun> {
    println!(
        "== {kind}: elasticity (invoice instances {:?})",
        plan.elastic_instances
    );
    let log_dir = log_dir.join(format!("elastic-{kind}"));
    let options = super::stack_options(kind, plan, &log_dir, super::invoice_consumers_off());
    let mut stack = Stack::start(options).await?;
    let mut drains = Vec::new();
    let mut result = Ok(());
    for &instances in &plan.elastic_instances {
        match drain(&mut stack, plan, instances).await {
            Ok(d) => {
                println!(
                    "   {instances} instance(s): {:.0} events/s ({:.0} per instance), {} of {} invoiced once",
                    d.events_per_sec, d.events_per_sec_per_instance, d.invoiced_once, d.orders
                );
                drains.push(d);
            }
            Err(e) => {
                result = Err(e);
                break;
            }
        }
    }
    if result.is_err() {
        eprintln!("{}", stack.logs(30));
    }
    stack.shutdown().await?;
    result.map(|()| ElasticRun {
        emulator: kind.to_string(),
        drains,
    })
}

/// One drain with `instances` replicas, stopped afterwards.
async fn drain(stack: &mut Stack, plan: &Plan, instances: u32) -> anyhow::Result<Drain> {
    for _ in 0..instances {
        stack
            .add_replica(Service::Invoice, &[("CONSUMERS_ENABLED", "true")])
            .await?;
    }
    let subject = Subject::of(stack)?;
    let observer = Observer::new(&subject.endpoints, &subject.topology).await?;
    for replica in &stack.replicas {
        replica.signal(Signal::SIGSTOP)?;
    }
    let published = step::publish_burst(&subject, &observer, plan).await;
    let thawed: DateTime<Utc> = Utc::now();
    for replica in &stack.replicas {
        replica.signal(Signal::SIGCONT)?;
    }
    let ids = published?;
    let drained = step::wait_until_complete(&observer, &ids, plan.drain_deadline, || {})
        .await
        .map_err(|e| {
            anyhow::anyhow!("the drain with {instances} instance(s) did not complete: {e}")
        });
    let measured = async {
        drained?;
        let orders: Vec<_> = ids.iter().map(|id| (*id, None)).collect();
        let timelines = hops::timelines(&Databases::of(&observer), &orders).await?;
        let seconds = timelines
            .iter()
            .filter_map(|t: &Timeline| t.invoice_received)
            .max()
            .map(|t| (t - thawed).num_microseconds().unwrap_or(0) as f64 / 1e6)
            .filter(|s| *s > 0.0);
        let events_per_sec = seconds.map_or(0.0, |s| ids.len() as f64 / s);
        Ok(Drain {
            instances,
            orders: ids.len(),
            events_per_sec,
            events_per_sec_per_instance: events_per_sec / f64::from(instances.max(1)),
            invoiced_once: invoiced_once(&subject, &ids).await?,
        })
    }
    .await;
    while let Some(mut replica) = stack.replicas.pop() {
        replica.stop(Signal::SIGTERM).await?;
    }
    measured
}

/// How many of `ids` have exactly one invoice.
pub(crate) async fn invoiced_once(subject: &Subject, ids: &[Uuid]) -> anyhow::Result<usize> {
    let db = sqlx::PgPool::connect(subject.endpoints.database(Service::Invoice)).await?;
    let once: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM (SELECT order_id FROM invoices WHERE order_id = ANY($1) \
         GROUP BY order_id HAVING count(*) = 1) AS once",
    )
    .bind(ids)
    .fetch_one(&db)
    .await?;
    db.close().await;
    Ok(once as usize)
}

/// The drain rates as a Markdown section.
pub fn markdown(md: &mut String, runs: &[ElasticRun]) {
    use std::fmt::Write;
    let mut table = harness::report::Table::new([
        "emulator",
        "invoice instances",
        "orders",
        "drain (events/s)",
        "per instance",
        "÷ one instance's drain",
        "invoiced once",
    ])
    .right_aligned(1..);
    for run in runs {
        let one = run
            .drains
            .iter()
            .find(|d| d.instances == 1)
            .map(|d| d.events_per_sec)
            .filter(|rate| *rate > 0.0);
        for d in &run.drains {
            table.row([
                run.emulator.clone(),
                d.instances.to_string(),
                d.orders.to_string(),
                format!("{:.0}", d.events_per_sec),
                format!("{:.0}", d.events_per_sec_per_instance),
                one.map_or("–".into(), |one| {
                    format!("{:.2}", super::report::share(d.events_per_sec, one))
                }),
                format!("{} of {}", d.invoiced_once, d.orders),
            ]);
        }
    }
    let _ = write!(
        md,
        "\n## Elasticity\n\nOne burst waiting in `invoice-orders`, drained by 1, 2 and 4 invoice instances side by side (replicas sharing the database and the queue, all thawed at once), each count on a fresh burst:\n\n{table}"
    );
}
