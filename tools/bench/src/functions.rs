//! The invoice consumer as a Lambda function, on this machine: what a cold
//! start and a warm invocation cost, and the drain as the event source
//! mapping's concurrency grows.
//!
//! The function binary (`invoice-function`) runs as a process behind the
//! harness's Runtime API, fed by an SQS event source mapping built like
//! Lambda's (`harness::lambda`); the invoice service's own process serves its
//! API only (`CONSUMERS_ENABLED=false`). For each concurrency `k` of the
//! plan: a burst of `plan.burst` orders is published into `invoice-orders`
//! with no consumer running, then `k` fresh function processes start (cold),
//! each with its own mapping poller, all at once, and run until every order
//! is invoiced. Reported: the init (process start to its first poll), the
//! first invocation of each process, the later ones' percentiles, and the
//! drain rate; every order must be invoiced exactly once.
//!
//! What this does not measure: Lambda's own cold start (downloading the
//! package, starting the micro-VM), the network to RDS and SQS, and the
//! mapping's own scaling; a release build of the same binary is what runs.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context;
use contracts::topology::Service;
use harness::lambda::{Answer, EventSourceMapping, FunctionProcess, RuntimeApi};
use harness::observe::Observer;
use harness::stack::{Stack, bin_dir, emulator_config};
use serde::Serialize;
use testkit::emulator::EmulatorKind;
use uuid::Uuid;

use super::elastic;
use super::hops::{Histogram, Percentiles};
use super::plan::Plan;
use super::step::{self, Subject};

const FUNCTION: &str = "invoice-function";

/// One concurrency's drain.
#[derive(Debug, Clone, Serialize)]
pub struct FunctionDrain {
    /// Function instances, each with its mapping poller.
    pub concurrency: u32,
    pub orders: usize,
    /// Each instance's init: process start to its first poll of the Runtime
    /// API (connecting, migrating, resolving the queues), ms.
    pub init_ms: Vec<f64>,
    /// Each instance's first invocation (ms): its connections' first use.
    pub first_invocation_ms: Vec<f64>,
    /// Every later invocation (warm), ms.
    pub warm: Percentiles,
    /// Messages per second, from the mappings' start to the last invoice.
    pub events_per_sec: f64,
    pub invoiced_once: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct FunctionRun {
    pub emulator: String,
    pub drains: Vec<FunctionDrain>,
}

/// Starts a stack on `kind` and drains a burst with each concurrency of the
/// plan (the elasticity step's instance counts).
pub async fn run(kind: EmulatorKind, plan: &Plan, log_dir: &Path) -> anyhow::Result<FunctionRun> {
    println!(
        "== {kind}: the invoice consumer as a Lambda function (concurrency {:?})",
        plan.elastic_instances
    );
    let log_dir = log_dir.join(format!("lambda-{kind}"));
    let options = super::stack_options(kind, plan, &log_dir, super::invoice_consumers_off());
    let mut stack = Stack::start(options).await?;
    let result = async {
        let mut drains = Vec::new();
        for &concurrency in &plan.elastic_instances {
            let d = drain(&mut stack, plan, concurrency, &log_dir).await?;
            println!(
                "   concurrency {concurrency}: {:.0} events/s, init {:?} ms, first invocation {:?} ms, warm p50 {:.1} ms p99 {:.1} ms, {} of {} invoiced once",
                d.events_per_sec,
                d.init_ms.iter().map(|ms| ms.round()).collect::<Vec<_>>(),
                d.first_invocation_ms.iter().map(|ms| ms.round()).collect::<Vec<_>>(),
                d.warm.p50,
                d.warm.p99,
                d.invoiced_once,
                d.orders
            );
            drains.push(d);
        }
        anyhow::Ok(drains)
    }
    .await;
    if result.is_err() {
        eprintln!("{}", stack.logs(30));
    }
    stack.shutdown().await?;
    Ok(FunctionRun {
        emulator: kind.to_string(),
        drains: result?,
    })
}

/// What one function instance and its poller did.
#[derive(Default)]
struct Polls {
    first: Option<Duration>,
    warm: Histogram,
}

async fn drain(
    stack: &mut Stack,
    plan: &Plan,
    concurrency: u32,
    log_dir: &Path,
) -> anyhow::Result<FunctionDrain> {
    let subject = Subject::of(stack)?;
    let observer = Observer::new(&subject.endpoints, &subject.topology).await?;
    let ids = step::publish_burst(&subject, &observer, plan).await?;
    let env = stack.service(Service::Invoice).env().to_vec();
    let binary = bin_dir()?.join(FUNCTION);
    let sqs = aws_sdk_sqs::Client::new(&emulator_config(&stack.emulator.endpoint()).await);
    let queue = stack.topology.queues_of(Service::Invoice)[0].name;
    let mut instances = Vec::new();
    for n in 0..concurrency {
        let api = RuntimeApi::start(FUNCTION).await?;
        let started = Instant::now();
        let process = FunctionProcess::start(
            FUNCTION,
            &binary,
            &api,
            &env,
            &log_dir.join(format!("{FUNCTION}-{concurrency}-{n}.log")),
        )?;
        let mapping = EventSourceMapping::new(sqs.clone(), queue).await?;
        instances.push((api, started, process, mapping));
    }
    let invoice_db = sqlx::PgPool::connect(subject.endpoints.database(Service::Invoice)).await?;
    let started = Instant::now();
    let done = tokio_util::sync::CancellationToken::new();
    let pollers = instances.iter().map(|(api, _, _, mapping)| {
        let done = done.clone();
        async move {
            let mut polls = Polls::default();
            // A poll under way is finished, never dropped: a long poll nobody
            // reads hides what the broker hands it (the next burst's first
            // messages) for the visibility timeout.
            while !done.is_cancelled() {
                let Some(polled) = mapping.poll_once(api, plan.drain_deadline).await? else {
                    continue;
                };
                anyhow::ensure!(
                    matches!(polled.answer, Answer::Response(_)),
                    "an invocation failed: {:?}",
                    polled.answer
                );
                match polls.first {
                    None => polls.first = Some(polled.took),
                    Some(_) => polls.warm.record(polled.took),
                }
            }
            anyhow::Ok(polls)
        }
    });
    let watch = async {
        let waited = testkit::wait::until(
            &format!("{} orders invoiced by {concurrency} function(s)", ids.len()),
            plan.drain_deadline,
            || async {
                match invoiced(&invoice_db, &ids).await {
                    Ok(n) if n == ids.len() => Ok(()),
                    Ok(n) => Err(format!("{n} invoiced")),
                    Err(e) => Err(e.to_string()),
                }
            },
        )
        .await;
        let seconds = started.elapsed().as_secs_f64();
        done.cancel();
        waited.map(|()| seconds)
    };
    let (polls, seconds) = tokio::join!(futures_util::future::join_all(pollers), watch);
    let seconds = seconds.map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut warm = Histogram::new();
    let mut first_invocation_ms = Vec::new();
    for polls in polls {
        let polls = polls?;
        warm.add(&polls.warm);
        if let Some(first) = polls.first {
            first_invocation_ms.push(first.as_secs_f64() * 1000.0);
        }
    }
    let mut init_ms = Vec::new();
    for (api, started, mut process, _) in instances {
        let first_poll = api.first_poll().context("a function never polled")?;
        init_ms.push(first_poll.duration_since(started).as_secs_f64() * 1000.0);
        anyhow::ensure!(
            process.exited()?.is_none(),
            "a function exited:\n{}",
            process.log_tail(20)
        );
    }
    let invoiced_once = elastic::invoiced_once(&subject, &ids).await?;
    invoice_db.close().await;
    Ok(FunctionDrain {
        concurrency,
        orders: ids.len(),
        init_ms,
        first_invocation_ms,
        warm: warm.percentiles(),
        events_per_sec: ids.len() as f64 / seconds.max(1e-6),
        invoiced_once,
    })
}

/// How many of `ids` have an invoice.
async fn invoiced(db: &sqlx::PgPool, ids: &[Uuid]) -> anyhow::Result<usize> {
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM invoices WHERE order_id = ANY($1)")
        .bind(ids)
        .fetch_one(db)
        .await?;
    Ok(n as usize)
}

/// The function's figures as a Markdown section.
pub fn markdown(md: &mut String, runs: &[FunctionRun]) {
    use std::fmt::Write;
    let ms = |v: &[f64]| {
        v.iter()
            .map(|ms| format!("{ms:.0}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut table = harness::report::Table::new([
        "emulator",
        "function instances",
        "orders",
        "init per instance (ms)",
        "first invocation (ms)",
        "warm invocations",
        "warm p50 / p99 (ms)",
        "drain (events/s)",
        "invoiced once",
    ])
    .right_aligned(1..);
    for run in runs {
        for d in &run.drains {
            table.row([
                run.emulator.clone(),
                d.concurrency.to_string(),
                d.orders.to_string(),
                ms(&d.init_ms),
                ms(&d.first_invocation_ms),
                d.warm.count.to_string(),
                format!("{:.1} / {:.1}", d.warm.p50, d.warm.p99),
                format!("{:.0}", d.events_per_sec),
                format!("{} of {}", d.invoiced_once, d.orders),
            ]);
        }
    }
    let _ = write!(
        md,
        "\n## The invoice consumer as a Lambda function\n\nThe `invoice-function` binary behind a local Lambda Runtime API, fed by an SQS event source mapping built like Lambda's (batches of up to ten, a batching window of one second, partial batch responses); one burst waiting in `invoice-orders` per row, drained by that many fresh (cold) instances, each with its own poller. Init is process start to its first poll; Lambda's own start (the package, the micro-VM) is not in it:\n\n{table}"
    );
}
