//! The ceilings every figure is set against, measured in the same run.
//!
//! **The emulator's.** A bare client drives a fresh emulator of the same kind,
//! provisioned with the same topology, through the same routes the services
//! use, with no service and no database in the way:
//!
//! - `orders`: `PublishBatch` of ten `OrderPlaced` envelopes to the `orders`
//!   topic (through the relay's own `SnsPublisher`, so the entries and their
//!   attributes are the relay's), fanned out to `invoice-orders` and
//!   `notification-orders`, each drained by two receive → delete-batch loops
//!   (the consumers' `CONSUMER_CONCURRENCY`);
//! - `billing`: `PutEvents` of ten `InvoiceIssued` envelopes (the relay's
//!   `EventBridgePublisher`) to the `billing` bus, routed by the two rules to
//!   `order-invoices` and `notification-invoices`, drained the same way;
//! - `flow`: both at once, chained as the services chain them: every message
//!   deleted from `invoice-orders` is put on the bus as an `InvoiceIssued`
//!   (in batches of what has arrived, up to ten, as the invoice relay
//!   publishes), and an order counts when all four of its deliveries are
//!   deleted. This is the ceiling the system's throughput is compared with.
//!
//! The number of orders in flight is held at a fixed window. Stock moto's
//! cost per message grows with the number of messages a queue holds, so the
//! flow is also measured with a backlog parked in every queue of the route:
//! messages sent with the longest delay (15 minutes), which no receive ever
//! returns but which moto walks on every send and receive as it would a real
//! backlog. Every ceiling is reported with the depth observed while it was
//! measured (visible + in flight + delayed, sampled with `GetQueueAttributes`).
//!
//! **Postgres's.** The order service's own `order::benchmark::place_order` (the
//! order and its outbox row in one transaction, the NOTIFY trigger included,
//! as `POST /orders` runs it) called in a
//! closed loop from as many tasks as the service has connections, on a
//! scratch database in the order service's Postgres server, so no relay
//! picks the rows up.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Context;
use aws_sdk_sqs::types::{
    DeleteMessageBatchRequestEntry, MessageSystemAttributeName, QueueAttributeName,
};
use chrono::Utc;
use contracts::events::{Envelope, Event, InvoiceIssued, OrderLine, OrderPlaced, order_total};
use contracts::money::MinorUnits;
use contracts::topology::{BILLING_BUS, Delivery, ORDERS_TOPIC, Service, Topology};
use platform::outbox::store::attributes_of;
use platform::outbox::{EventBridgePublisher, OutboxMessage, Publisher, SnsPublisher};
use serde::Serialize;
use sqlx::types::Json;
use testkit::emulator::{Emulator, EmulatorKind};
use testkit::wait;
use tokio::sync::{Mutex, Semaphore, mpsc};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::hops::{Histogram, Percentiles};
use super::plan::Plan;

/// Which route of the topology a ceiling drives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Route {
    Orders,
    Billing,
    Flow,
}

impl Route {
    pub fn describe(self) -> &'static str {
        match self {
            Route::Orders => "PublishBatch → SNS orders → 2 SQS queues → receive → delete",
            Route::Billing => "PutEvents → bus billing → 2 rules → 2 SQS queues → receive → delete",
            Route::Flow => "both, chained as the services chain them (4 deliveries per order)",
        }
    }
}

/// One emulator ceiling.
#[derive(Debug, Clone, Serialize)]
pub struct EmulatorCeiling {
    pub emulator: String,
    pub route: Route,
    /// Orders kept in flight.
    pub window: usize,
    /// Delayed messages parked in each queue of the route beforehand.
    pub backlog: usize,
    /// Orders per second whose every delivery was received and deleted.
    pub orders_per_sec: f64,
    /// Deliveries received and deleted per second, all queues together.
    pub deliveries_per_sec: f64,
    /// Messages (visible + in flight) in the deepest queue of the route,
    /// sampled while measuring: the mean and the largest sample.
    pub depth_mean: f64,
    pub depth_max: u64,
    /// Calls that failed while measuring.
    pub errors: u64,
    pub seconds: f64,
    /// The open loop's rate, when the ceiling was measured at a rate rather
    /// than with a window.
    pub offered_rate: Option<f64>,
    /// Each order's time from its publish call to its last delete (ms).
    pub latency: Percentiles,
}

/// How long one publish call takes on an otherwise idle emulator: the floor
/// under a relay's commit → publish hop, since `published_at` is taken after
/// the broker answers.
#[derive(Debug, Clone, Serialize)]
pub struct CallLatency {
    pub emulator: String,
    pub call: String,
    pub entries: usize,
    pub latency: Percentiles,
}

/// The Postgres ceiling: orders placed per second by `order::benchmark::place_order`.
#[derive(Debug, Clone, Serialize)]
pub struct PostgresCeiling {
    pub orders_per_sec: f64,
    pub concurrency: usize,
    /// Duration of one `place` (the transaction and its commit).
    pub latency: Percentiles,
    pub seconds: f64,
}

/// The one line of the order every ceiling and the load use: the shape of
/// the load's orders.
const SAMPLE_LINE: (&str, i64, i64) = ("CHAOS-1", 2, 500);

/// The sample order, as `POST /orders` takes it and as `OrderPlaced`
/// announces it.
#[derive(Debug, Clone)]
pub struct SampleOrder {
    /// The `POST /orders` body.
    pub body: serde_json::Value,
    /// Its `OrderPlaced`, under a placeholder id.
    placed: OrderPlaced,
}

impl SampleOrder {
    /// The `OrderPlaced` the order service emits for this order under `order_id`.
    fn placed(&self, order_id: Uuid) -> OrderPlaced {
        OrderPlaced {
            order_id,
            ..self.placed.clone()
        }
    }
}

/// The sample order of `customer`. Its `OrderPlaced` is built here from the
/// contract's types; the smoke test checks its size against what the order
/// service publishes.
pub fn sample_order(customer: &str) -> anyhow::Result<SampleOrder> {
    let (sku, quantity, unit_price_minor) = SAMPLE_LINE;
    let lines = vec![OrderLine {
        sku: sku.to_string(),
        quantity: u32::try_from(quantity)?,
        unit_price_minor: MinorUnits::try_from(unit_price_minor)?,
    }];
    let placed = OrderPlaced {
        order_id: Uuid::nil(),
        customer_id: customer.to_string(),
        // The currency `harness::client::order_body` gives every line.
        currency: "EUR".parse()?,
        total_minor: order_total(&lines)?,
        lines,
    };
    Ok(SampleOrder {
        body: harness::client::order_body(customer, &[SAMPLE_LINE]),
        placed,
    })
}

/// A well-formed W3C trace context (the specification's example), for the
/// size it adds.
const SAMPLE_TRACEPARENT: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

/// The `OrderPlaced` envelope the order service writes for `order`, and the
/// `InvoiceIssued` the invoice service writes for it: the sizes the relays
/// publish.
fn envelopes(order: &SampleOrder) -> (Envelope, Envelope) {
    let order_id = Uuid::now_v7();
    let placed = order.placed(order_id);
    let issued = InvoiceIssued {
        invoice_id: Uuid::now_v7(),
        order_id,
        customer_id: placed.customer_id.clone(),
        total_minor: placed.total_minor,
        currency: placed.currency,
    };
    let correlation = order_id.to_string();
    let mut invoice_issued = Envelope::new(
        Service::Invoice,
        &Event::InvoiceIssued(issued),
        &correlation,
    );
    // The invoice service writes its handler span's trace context into the
    // event (EventBridge delivers no message attributes to carry it), so its
    // `InvoiceIssued` is a `traceparent` longer than a bare envelope. The
    // services' `OrderPlaced`, as the benchmark reads it from the outbox,
    // carries none; the smoke test checks both sizes against the services'.
    invoice_issued.traceparent = Some(SAMPLE_TRACEPARENT.to_string());
    (
        Envelope::new(Service::Order, &Event::OrderPlaced(placed), &correlation),
        invoice_issued,
    )
}

/// An outbox row as the relay claims it, for the relay's publishers.
fn outbox_message(envelope: &Envelope) -> anyhow::Result<OutboxMessage> {
    Ok(OutboxMessage {
        id: envelope.id,
        event_type: envelope.event_type.clone(),
        payload: serde_json::to_string(envelope)?,
        attributes: Json(attributes_of(envelope)?),
        subject: envelope.subject.clone(),
        created_at: Utc::now(),
        attempts: 0,
    })
}

/// The sizes, in bytes, of the two messages the ceilings publish.
pub fn message_sizes() -> anyhow::Result<(usize, usize)> {
    let (placed, issued) = envelopes(&sample_order("bench-ceiling-0")?);
    Ok((
        serde_json::to_string(&placed)?.len(),
        serde_json::to_string(&issued)?.len(),
    ))
}

/// Measures on a fresh emulator of `kind` the publish calls' latency, then
/// every ceiling the plan asks for: `orders` and `billing` at the shallow
/// depth, `flow` at every depth.
pub async fn emulator_ceilings(
    kind: EmulatorKind,
    plan: &Plan,
    log_dir: &std::path::Path,
) -> anyhow::Result<(Vec<CallLatency>, Vec<EmulatorCeiling>)> {
    let dir = log_dir.join(format!("ceiling-{kind}"));
    std::fs::create_dir_all(&dir)?;
    let emulator = Emulator::start(kind, None, &dir).await?;
    let routes = Routes::provision(&emulator.endpoint(), &emulator.endpoint()).await?;
    let calls = call_latencies(&routes, kind).await?;
    routes.purge().await;
    let mut measured = Vec::new();
    let mut backlogs = plan.backlogs.clone();
    if !backlogs.contains(&0) {
        backlogs.insert(0, 0);
    }
    for (route, backlog) in [(Route::Orders, 0), (Route::Billing, 0)]
        .into_iter()
        .chain(backlogs.iter().map(|b| (Route::Flow, *b)))
    {
        let ceiling = measure(
            &routes,
            kind,
            route,
            Load::Window {
                orders: plan.window,
                publishers: 1,
                receivers: RECEIVERS_PER_QUEUE,
            },
            backlog,
            plan.ceiling,
        )
        .await?;
        println!(
            "   ceiling {kind} {route:?} at depth ≈{:.0}: {:.0} orders/s",
            ceiling.depth_mean, ceiling.orders_per_sec
        );
        measured.push(ceiling);
        routes.purge().await;
    }
    Ok((calls, measured))
}

/// Calls made one after the other, per publisher and batch size.
pub const CALLS: usize = 30;

pub async fn call_latencies(
    routes: &Routes,
    kind: EmulatorKind,
) -> anyhow::Result<Vec<CallLatency>> {
    let order = sample_order("bench-ceiling-0")?;
    let mut latencies = Vec::new();
    for entries in [1, 10] {
        for call in ["PublishBatch", "PutEvents"] {
            let mut histogram = Histogram::new();
            for _ in 0..CALLS {
                let batch: Vec<OutboxMessage> = (0..entries)
                    .map(|_| {
                        let (placed, issued) = envelopes(&order);
                        outbox_message(if call == "PutEvents" {
                            &issued
                        } else {
                            &placed
                        })
                    })
                    .collect::<anyhow::Result<_>>()?;
                let started = std::time::Instant::now();
                let ok = if call == "PutEvents" {
                    published(routes.bus.publish(&batch).await)
                } else {
                    published(routes.sns.publish(&batch).await)
                };
                anyhow::ensure!(ok, "{call} failed on {kind}");
                histogram.record(started.elapsed());
            }
            latencies.push(CallLatency {
                emulator: kind.to_string(),
                call: call.to_string(),
                entries,
                latency: histogram.percentiles(),
            });
        }
    }
    Ok(latencies)
}

fn queue_urls<'a>(
    provisioned: &infra::Provisioned,
    queues: impl Iterator<Item = &'a contracts::topology::QueueSpec>,
) -> anyhow::Result<Vec<(String, Delivery)>> {
    queues
        .map(|q| {
            let url = provisioned
                .queues
                .get(q.name)
                .with_context(|| format!("queue {} was not provisioned", q.name))?
                .url
                .clone();
            Ok((url, q.delivery()))
        })
        .collect()
}

/// The clients and addresses of the two routes.
pub struct Routes {
    /// The measured calls' client (through a proxy in the round-trip mode).
    sqs: aws_sdk_sqs::Client,
    /// The emulator itself, for what is not measured: parking a backlog,
    /// sampling depths, purging.
    direct: aws_sdk_sqs::Client,
    sns: SnsPublisher,
    bus: EventBridgePublisher,
    /// The queues subscribed to `orders`, `invoice-orders` first.
    orders_queues: Vec<(String, Delivery)>,
    billing_queues: Vec<(String, Delivery)>,
}

impl Routes {
    /// Provisions the topology on the emulator at `direct_endpoint` and
    /// returns the routes' clients, which call `measured_endpoint` (the
    /// emulator, or a proxy in front of it).
    pub async fn provision(
        measured_endpoint: &str,
        direct_endpoint: &str,
    ) -> anyhow::Result<Routes> {
        let direct = harness::stack::emulator_config(direct_endpoint).await;
        let sdk = harness::stack::emulator_config(measured_endpoint).await;
        let topology = Topology::declare(contracts::topology::Chain::Standard);
        let provisioned = infra::apply(&infra::Clients::from_config(&direct), &topology).await?;
        Ok(Routes {
            sqs: aws_sdk_sqs::Client::new(&sdk),
            direct: aws_sdk_sqs::Client::new(&direct),
            sns: SnsPublisher::new(
                aws_sdk_sns::Client::new(&sdk),
                provisioned
                    .topics
                    .get(ORDERS_TOPIC)
                    .context("no orders topic")?
                    .clone(),
                false,
            ),
            bus: EventBridgePublisher::new(
                aws_sdk_eventbridge::Client::new(&sdk),
                BILLING_BUS.to_string(),
                Service::Invoice.source().to_string(),
            ),
            orders_queues: queue_urls(&provisioned, topology.subscribers_of(ORDERS_TOPIC))?,
            billing_queues: queue_urls(&provisioned, topology.rule_targets_on(BILLING_BUS))?,
        })
    }

    /// Empties every queue between two measurements, so none starts deep.
    pub async fn purge(&self) {
        for (url, _) in self.orders_queues.iter().chain(&self.billing_queues) {
            let _ = self.direct.purge_queue().queue_url(url).send().await;
        }
    }
}

/// The orders in flight, and what completes them.
struct Tracker {
    /// Deliveries seen per order, and when it was published.
    pending: Mutex<HashMap<Uuid, (u8, std::time::Instant)>>,
    /// Each completed order's time from its publish call to its last delete.
    latency: std::sync::Mutex<Histogram>,
    /// Deliveries that complete an order.
    needed: u8,
    /// Free places in the window.
    window: Semaphore,
    completed: AtomicU64,
    deliveries: AtomicU64,
    errors: AtomicU64,
}

impl Tracker {
    async fn delivered(&self, id: Uuid) {
        self.deliveries.fetch_add(1, Ordering::Relaxed);
        let mut pending = self.pending.lock().await;
        let Some((seen, published)) = pending.get_mut(&id) else {
            return;
        };
        *seen += 1;
        if *seen >= self.needed {
            let took = published.elapsed();
            pending.remove(&id);
            self.latency
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .record(took);
            self.completed.fetch_add(1, Ordering::Relaxed);
            self.window.add_permits(1);
        }
    }

    fn failed(&self) {
        self.errors.fetch_add(1, Ordering::Relaxed);
    }
}

/// Receive → delete loops per queue, as the consumers run
/// (`CONSUMER_CONCURRENCY`).
pub const RECEIVERS_PER_QUEUE: usize = 2;
/// Orders a ceiling waits to see completed before its rate counts, and how
/// long it waits for them at most.
const MIN_COMPLETED: u64 = 5;
const MAX_MEASURING: Duration = Duration::from_secs(30);

/// How a ceiling loads the emulator.
#[derive(Debug, Clone, Copy)]
pub enum Load {
    /// Closed loop: `orders` in flight, refilled ten at a time by
    /// `publishers` publish calls in flight; `receivers` receive → delete
    /// loops per queue.
    Window {
        orders: usize,
        publishers: usize,
        receivers: usize,
    },
    /// Open loop: one order published at each tick of `rate` (orders per
    /// second), whatever is still in flight, as the relay publishes at a low
    /// rate; the measure is each order's latency.
    Rate { rate: f64, receivers: usize },
}

pub async fn measure(
    routes: &Routes,
    kind: EmulatorKind,
    route: Route,
    load: Load,
    backlog: usize,
    duration: Duration,
) -> anyhow::Result<EmulatorCeiling> {
    let (window, publishers, receivers) = match load {
        Load::Window {
            orders,
            publishers,
            receivers,
        } => (orders.max(10), publishers.max(1), receivers.max(1)),
        Load::Rate { receivers, .. } => (0, 0, receivers.max(1)),
    };
    let tracker = Arc::new(Tracker {
        latency: std::sync::Mutex::new(Histogram::new()),
        pending: Mutex::new(HashMap::new()),
        needed: if route == Route::Flow { 4 } else { 2 },
        window: Semaphore::new(window),
        completed: AtomicU64::new(0),
        deliveries: AtomicU64::new(0),
        errors: AtomicU64::new(0),
    });
    let stop = CancellationToken::new();
    // The open loop's publisher stops first, so its last orders complete.
    let publishing = stop.child_token();
    let mut tasks = JoinSet::new();
    let order = sample_order("bench-ceiling-0")?;
    if backlog > 0 {
        // Parked first, so the measured pipeline never races the parking.
        let urls: Vec<&str> = match route {
            Route::Orders => routes
                .orders_queues
                .iter()
                .map(|(u, _)| u.as_str())
                .collect(),
            Route::Billing => routes
                .billing_queues
                .iter()
                .map(|(u, _)| u.as_str())
                .collect(),
            Route::Flow => routes
                .orders_queues
                .iter()
                .chain(&routes.billing_queues)
                .map(|(u, _)| u.as_str())
                .collect(),
        };
        park(&routes.direct, &urls, backlog, &order).await?;
    }
    let (forward_tx, forward_rx) = mpsc::unbounded_channel::<Uuid>();
    let mut queues: Vec<(String, Delivery, bool)> = Vec::new();
    match route {
        Route::Orders | Route::Flow => {
            for _ in 0..publishers {
                tasks.spawn(publish_orders(
                    routes.sns.clone(),
                    order.clone(),
                    tracker.clone(),
                    stop.clone(),
                ));
            }
            if let Load::Rate { rate, .. } = load {
                tasks.spawn(publish_at_rate(
                    routes.sns.clone(),
                    order.clone(),
                    rate,
                    tracker.clone(),
                    publishing.clone(),
                ));
            }
            for (i, (url, delivery)) in routes.orders_queues.iter().enumerate() {
                // The invoice service's queue feeds the bus in the flow.
                queues.push((url.clone(), *delivery, route == Route::Flow && i == 0));
            }
        }
        Route::Billing => {}
    }
    match route {
        Route::Billing => {
            anyhow::ensure!(
                matches!(load, Load::Window { .. }),
                "the billing route is measured with a window only"
            );
            let (tx, rx) = mpsc::unbounded_channel::<Uuid>();
            tasks.spawn(fill_window(tracker.clone(), tx, stop.clone()));
            tasks.spawn(publish_invoices(
                routes.bus.clone(),
                order.clone(),
                rx,
                tracker.clone(),
                stop.clone(),
            ));
        }
        Route::Flow => {
            tasks.spawn(publish_invoices(
                routes.bus.clone(),
                order.clone(),
                forward_rx,
                tracker.clone(),
                stop.clone(),
            ));
        }
        Route::Orders => {}
    }
    if route != Route::Orders {
        for (url, delivery) in &routes.billing_queues {
            queues.push((url.clone(), *delivery, false));
        }
    }
    // Joined, not aborted, at the end: an abandoned long poll would live on
    // in the emulator and take the next measurement's first messages with
    // it, hidden for the visibility timeout.
    let mut polls = JoinSet::new();
    for (url, delivery, forwards) in &queues {
        for _ in 0..receivers {
            polls.spawn(receive_and_delete(
                routes.sqs.clone(),
                url.clone(),
                *delivery,
                forwards.then(|| forward_tx.clone()),
                tracker.clone(),
                stop.clone(),
            ));
        }
    }
    drop(forward_tx);

    // Warm up: a quarter of the measuring time, and until the window is full.
    let warm_until = tokio::time::Instant::now() + duration / 4;
    let fill_deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let now = tokio::time::Instant::now();
        let in_flight = tracker.pending.lock().await.len();
        // Full: the publisher refills ten at a time, so within ten of it.
        if (now >= warm_until && in_flight + 10 >= window) || now >= fill_deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let started = tokio::time::Instant::now();
    *tracker.latency.lock().unwrap_or_else(|e| e.into_inner()) = Histogram::new();
    let (completed0, deliveries0, errors0) = (
        tracker.completed.load(Ordering::Relaxed),
        tracker.deliveries.load(Ordering::Relaxed),
        tracker.errors.load(Ordering::Relaxed),
    );
    let mut depths: Vec<u64> = Vec::new();
    // A rate from one or two completed orders is not a measurement: on a slow
    // emulator (stock moto, a deep backlog) the first orders of the window
    // may take longer than the measuring time to finish all their deliveries.
    // So measure for `duration` and until a few orders completed, within a
    // bound; the rate is divided by the time actually measured.
    let enough = || tracker.completed.load(Ordering::Relaxed) - completed0 >= MIN_COMPLETED;
    while started.elapsed() < duration || (!enough() && started.elapsed() < MAX_MEASURING) {
        let mut deepest = 0;
        for (url, _, _) in &queues {
            deepest = deepest.max(depth(&routes.direct, url).await.unwrap_or(0));
        }
        depths.push(deepest);
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let seconds = started.elapsed().as_secs_f64();
    let completed = tracker.completed.load(Ordering::Relaxed) - completed0;
    let deliveries = tracker.deliveries.load(Ordering::Relaxed) - deliveries0;
    publishing.cancel();
    if let Load::Rate { .. } = load {
        // Every order of the open loop counts in the latency: wait for the
        // last ones, within a bound (one that never completes is missing
        // from the count, which the report shows beside the rate).
        let _ = wait::until("the open loop's orders", MAX_MEASURING, || async {
            match tracker.pending.lock().await.len() {
                0 => Ok(()),
                n => Err(format!("{n} orders in flight")),
            }
        })
        .await;
    }
    let errors = tracker.errors.load(Ordering::Relaxed) - errors0;
    let latency = tracker
        .latency
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .percentiles();
    stop.cancel();
    tasks.abort_all();
    while tasks.join_next().await.is_some() {}
    // Each loop ends after its poll in flight (a wait of 1 s at most).
    while polls.join_next().await.is_some() {}
    Ok(EmulatorCeiling {
        emulator: kind.to_string(),
        route,
        window,
        backlog,
        orders_per_sec: completed as f64 / seconds,
        deliveries_per_sec: deliveries as f64 / seconds,
        depth_mean: depths.iter().sum::<u64>() as f64 / depths.len().max(1) as f64,
        depth_max: depths.iter().copied().max().unwrap_or(0),
        errors,
        seconds,
        offered_rate: match load {
            Load::Rate { rate, .. } => Some(rate),
            Load::Window { .. } => None,
        },
        latency,
    })
}

/// Sends `count` messages to each queue with the longest delay: a backlog
/// that stays put while the route is measured.
async fn park(
    sqs: &aws_sdk_sqs::Client,
    urls: &[&str],
    count: usize,
    order: &SampleOrder,
) -> anyhow::Result<()> {
    let body = serde_json::to_string(&envelopes(order).0)?;
    for url in urls {
        for first in (0..count).step_by(10) {
            let entries = (first..(first + 10).min(count))
                .map(|i| {
                    aws_sdk_sqs::types::SendMessageBatchRequestEntry::builder()
                        .id(i.to_string())
                        .message_body(&body)
                        .delay_seconds(900)
                        .build()
                })
                .collect::<Result<Vec<_>, _>>()?;
            sqs.send_message_batch()
                .queue_url(*url)
                .set_entries(Some(entries))
                .send()
                .await?;
        }
    }
    Ok(())
}

/// Messages a queue holds: visible, in flight and delayed.
async fn depth(sqs: &aws_sdk_sqs::Client, url: &str) -> anyhow::Result<u64> {
    let out = sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesDelayed)
        .send()
        .await?;
    let attributes = out.attributes();
    let read = |name: QueueAttributeName| -> u64 {
        attributes
            .and_then(|a| a.get(&name))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    Ok(read(QueueAttributeName::ApproximateNumberOfMessages)
        + read(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
        + read(QueueAttributeName::ApproximateNumberOfMessagesDelayed))
}

/// The order relay's part: batches of ten new orders while the window has room.
async fn publish_orders(
    sns: SnsPublisher,
    order: SampleOrder,
    tracker: Arc<Tracker>,
    stop: CancellationToken,
) {
    while !stop.is_cancelled() {
        let Ok(permits) = tracker.window.acquire_many(10).await else {
            return;
        };
        permits.forget();
        let batch: Vec<OutboxMessage> = (0..10)
            .filter_map(|_| outbox_message(&envelopes(&order).0).ok())
            .collect();
        {
            let now = std::time::Instant::now();
            let mut pending = tracker.pending.lock().await;
            for m in &batch {
                pending.insert(m.id, (0, now));
            }
        }
        if !published(sns.publish(&batch).await) {
            tracker.failed();
            let mut pending = tracker.pending.lock().await;
            for m in &batch {
                pending.remove(&m.id);
            }
            tracker.window.add_permits(batch.len());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// One order per tick of `rate`, each in a publish call of its own started
/// on time whatever is still in flight (an open loop), as a relay woken by
/// each commit publishes at a low rate.
async fn publish_at_rate(
    sns: SnsPublisher,
    order: SampleOrder,
    rate: f64,
    tracker: Arc<Tracker>,
    stop: CancellationToken,
) {
    let mut ticks = tokio::time::interval(Duration::from_secs_f64(1.0 / rate.max(0.001)));
    let mut calls = JoinSet::new();
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = ticks.tick() => {}
        }
        while calls.try_join_next().is_some() {}
        let Ok(message) = outbox_message(&envelopes(&order).0) else {
            continue;
        };
        tracker
            .pending
            .lock()
            .await
            .insert(message.id, (0, std::time::Instant::now()));
        let (sns, tracker) = (sns.clone(), tracker.clone());
        calls.spawn(async move {
            if !published(sns.publish(std::slice::from_ref(&message)).await) {
                tracker.failed();
                tracker.pending.lock().await.remove(&message.id);
            }
        });
    }
    while calls.join_next().await.is_some() {}
}

/// Whether the call and every entry of it succeeded.
fn published<T, E>(outcome: Result<Vec<Result<T, String>>, E>) -> bool {
    matches!(outcome, Ok(entries) if entries.iter().all(Result::is_ok))
}

/// For `billing` alone: new order ids as fast as the window frees places.
async fn fill_window(
    tracker: Arc<Tracker>,
    ids: mpsc::UnboundedSender<Uuid>,
    stop: CancellationToken,
) {
    while !stop.is_cancelled() {
        let Ok(permit) = tracker.window.acquire().await else {
            return;
        };
        permit.forget();
        let id = Uuid::now_v7();
        tracker
            .pending
            .lock()
            .await
            .insert(id, (0, std::time::Instant::now()));
        if ids.send(id).is_err() {
            return;
        }
    }
}

/// The invoice relay's part: what has arrived, up to ten per `PutEvents`,
/// each an `InvoiceIssued` under the order's tracking id.
async fn publish_invoices(
    bus: EventBridgePublisher,
    order: SampleOrder,
    mut ids: mpsc::UnboundedReceiver<Uuid>,
    tracker: Arc<Tracker>,
    stop: CancellationToken,
) {
    loop {
        let first = tokio::select! {
            _ = stop.cancelled() => return,
            id = ids.recv() => match id { Some(id) => id, None => return },
        };
        let mut batch_ids = vec![first];
        while batch_ids.len() < 10 {
            match ids.try_recv() {
                Ok(id) => batch_ids.push(id),
                Err(_) => break,
            }
        }
        let batch: Vec<OutboxMessage> = batch_ids
            .iter()
            .filter_map(|id| {
                let mut issued = envelopes(&order).1;
                issued.id = *id;
                outbox_message(&issued).ok()
            })
            .collect();
        if !published(bus.publish(&batch).await) {
            tracker.failed();
        }
    }
}

/// A consumer's part without the database: receive ten, delete them in one
/// batch, count each order's delivery (and pass it on to the bus in the flow).
async fn receive_and_delete(
    sqs: aws_sdk_sqs::Client,
    url: String,
    delivery: Delivery,
    forward: Option<mpsc::UnboundedSender<Uuid>>,
    tracker: Arc<Tracker>,
    stop: CancellationToken,
) {
    #[derive(serde::Deserialize)]
    struct EventBridgeEvent {
        detail: Envelope,
    }
    while !stop.is_cancelled() {
        // Not cut short by the stop: the poll runs out (1 s at most), so no
        // abandoned poll is left in the emulator.
        let received = sqs
            .receive_message()
            .queue_url(&url)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .visibility_timeout(30)
            .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
            .message_attribute_names("All")
            .send()
            .await;
        let Ok(received) = received else {
            tracker.failed();
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let mut ids = Vec::new();
        let mut entries = Vec::new();
        for (i, m) in received.messages().iter().enumerate() {
            let body = m.body().unwrap_or_default();
            let id = match delivery {
                Delivery::SnsRaw => serde_json::from_str::<Envelope>(body).map(|e| e.id),
                Delivery::EventBridge => {
                    serde_json::from_str::<EventBridgeEvent>(body).map(|e| e.detail.id)
                }
            };
            if let Ok(id) = id {
                ids.push(id);
            }
            if let Some(receipt) = m.receipt_handle()
                && let Ok(entry) = DeleteMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .receipt_handle(receipt)
                    .build()
            {
                entries.push(entry);
            }
        }
        if entries.is_empty() {
            continue;
        }
        match sqs
            .delete_message_batch()
            .queue_url(&url)
            .set_entries(Some(entries))
            .send()
            .await
        {
            Ok(_) => {
                for id in ids {
                    tracker.delivered(id).await;
                    if let Some(forward) = &forward {
                        let _ = forward.send(id);
                    }
                }
            }
            Err(_) => tracker.failed(),
        }
    }
}

/// The order + outbox transaction in a closed loop, on a scratch database of
/// the server at `admin_url`.
pub async fn postgres_ceiling(admin_url: &str, plan: &Plan) -> anyhow::Result<PostgresCeiling> {
    let name = "bench_postgres_ceiling";
    let url = testkit::postgres::create_database(admin_url, name, name, name).await?;
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(plan.postgres_concurrency as u32)
        .connect(&url)
        .await?;
    order::benchmark::migrate(&pool).await?;
    let order = sample_order("bench-ceiling-0")?;
    let measuring = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop = CancellationToken::new();
    let mut tasks = JoinSet::new();
    for _ in 0..plan.postgres_concurrency {
        let (pool, order, stop, measuring) =
            (pool.clone(), order.clone(), stop.clone(), measuring.clone());
        tasks.spawn(async move {
            let mut latency = Histogram::new();
            let mut placed = 0u64;
            while !stop.is_cancelled() {
                let started = std::time::Instant::now();
                order::benchmark::place_order(&pool, &order.body).await?;
                if measuring.load(Ordering::Relaxed) {
                    latency.record(started.elapsed());
                    placed += 1;
                }
            }
            anyhow::Ok((placed, latency))
        });
    }
    tokio::time::sleep(plan.ceiling / 4).await;
    measuring.store(true, Ordering::Relaxed);
    let started = std::time::Instant::now();
    tokio::time::sleep(plan.ceiling).await;
    measuring.store(false, Ordering::Relaxed);
    let seconds = started.elapsed().as_secs_f64();
    stop.cancel();
    let mut placed = 0;
    let mut latency = Histogram::new();
    while let Some(done) = tasks.join_next().await {
        let (n, h) = done??;
        placed += n;
        latency.add(&h);
    }
    pool.close().await;
    Ok(PostgresCeiling {
        orders_per_sec: placed as f64 / seconds,
        concurrency: plan.postgres_concurrency,
        latency: latency.percentiles(),
        seconds,
    })
}

/// What the emulator takes from publishers alone: the relay's side of the
/// round-trip mode's comparison.
#[derive(Debug, Clone, Serialize)]
pub struct PublishCeiling {
    pub emulator: String,
    /// `PublishBatch` calls of ten kept in flight.
    pub publishers: usize,
    pub events_per_sec: f64,
    /// One call's duration (ms).
    pub latency: Percentiles,
    pub errors: u64,
    pub seconds: f64,
}

/// `publishers` tasks each publishing batches of ten `OrderPlaced` to the
/// `orders` topic back to back (the relay's own publisher) for `duration`,
/// after a quarter of it to warm up. The queues are purged afterwards.
pub async fn publish_ceiling(
    routes: &Routes,
    kind: EmulatorKind,
    publishers: usize,
    duration: Duration,
) -> anyhow::Result<PublishCeiling> {
    let order = sample_order("bench-ceiling-0")?;
    let measuring = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop = CancellationToken::new();
    let mut tasks = JoinSet::new();
    for _ in 0..publishers.max(1) {
        let (sns, order, measuring, stop) = (
            routes.sns.clone(),
            order.clone(),
            measuring.clone(),
            stop.clone(),
        );
        tasks.spawn(async move {
            let (mut events, mut errors, mut latency) = (0u64, 0u64, Histogram::new());
            while !stop.is_cancelled() {
                let batch: Vec<OutboxMessage> = (0..10)
                    .filter_map(|_| outbox_message(&envelopes(&order).0).ok())
                    .collect();
                let started = std::time::Instant::now();
                let ok = published(sns.publish(&batch).await);
                if measuring.load(Ordering::Relaxed) {
                    latency.record(started.elapsed());
                    if ok {
                        events += batch.len() as u64;
                    } else {
                        errors += 1;
                    }
                }
                if !ok {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
            (events, errors, latency)
        });
    }
    tokio::time::sleep(duration / 4).await;
    measuring.store(true, Ordering::Relaxed);
    let started = std::time::Instant::now();
    tokio::time::sleep(duration).await;
    measuring.store(false, Ordering::Relaxed);
    let seconds = started.elapsed().as_secs_f64();
    stop.cancel();
    let (mut events, mut errors, mut latency) = (0, 0, Histogram::new());
    while let Some(done) = tasks.join_next().await {
        let (e, x, h) = done?;
        events += e;
        errors += x;
        latency.add(&h);
    }
    routes.purge().await;
    Ok(PublishCeiling {
        emulator: kind.to_string(),
        publishers,
        events_per_sec: events as f64 / seconds,
        latency: latency.percentiles(),
        errors,
        seconds,
    })
}

/// What the emulator hands to receivers alone: the consumers' side.
#[derive(Debug, Clone, Serialize)]
pub struct ReceiveCeiling {
    pub emulator: String,
    /// Receive → delete-batch loops on the one queue.
    pub receivers: usize,
    pub messages: usize,
    /// Messages deleted per second, from the first receive to the last delete.
    pub messages_per_sec: f64,
    pub errors: u64,
}

/// Fills `invoice-orders` with `messages` (straight to the emulator), then
/// drains it with `receivers` receive-ten → delete-batch loops through the
/// measured client.
pub async fn receive_ceiling(
    routes: &Routes,
    kind: EmulatorKind,
    receivers: usize,
    messages: usize,
) -> anyhow::Result<ReceiveCeiling> {
    let order = sample_order("bench-ceiling-0")?;
    let body = serde_json::to_string(&envelopes(&order).0)?;
    let (url, _) = routes
        .orders_queues
        .first()
        .context("no queue on the orders topic")?;
    for first in (0..messages).step_by(10) {
        let entries = (first..(first + 10).min(messages))
            .map(|i| {
                aws_sdk_sqs::types::SendMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .message_body(&body)
                    .build()
            })
            .collect::<Result<Vec<_>, _>>()?;
        routes
            .direct
            .send_message_batch()
            .queue_url(url)
            .set_entries(Some(entries))
            .send()
            .await?;
    }
    let deleted = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let stop = CancellationToken::new();
    let mut tasks = JoinSet::new();
    let started = std::time::Instant::now();
    for _ in 0..receivers.max(1) {
        let (sqs, url, deleted, errors, stop) = (
            routes.sqs.clone(),
            url.clone(),
            deleted.clone(),
            errors.clone(),
            stop.clone(),
        );
        tasks.spawn(async move {
            let mut last = started.elapsed();
            while !stop.is_cancelled() && deleted.load(Ordering::Relaxed) < messages as u64 {
                let received = sqs
                    .receive_message()
                    .queue_url(&url)
                    .max_number_of_messages(10)
                    .wait_time_seconds(1)
                    .visibility_timeout(30)
                    .send()
                    .await;
                let Ok(received) = received else {
                    errors.fetch_add(1, Ordering::Relaxed);
                    continue;
                };
                let entries: Vec<DeleteMessageBatchRequestEntry> = received
                    .messages()
                    .iter()
                    .enumerate()
                    .filter_map(|(i, m)| {
                        DeleteMessageBatchRequestEntry::builder()
                            .id(i.to_string())
                            .receipt_handle(m.receipt_handle()?)
                            .build()
                            .ok()
                    })
                    .collect();
                if entries.is_empty() {
                    continue;
                }
                let n = entries.len() as u64;
                match sqs
                    .delete_message_batch()
                    .queue_url(&url)
                    .set_entries(Some(entries))
                    .send()
                    .await
                {
                    Ok(_) => {
                        deleted.fetch_add(n, Ordering::Relaxed);
                        last = started.elapsed();
                    }
                    Err(_) => {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            last
        });
    }
    let drained = wait::until("the receivers to drain the queue", MAX_MEASURING, || {
        let deleted = deleted.clone();
        async move {
            match deleted.load(Ordering::Relaxed) {
                n if n >= messages as u64 => Ok(()),
                n => Err(format!("{n} of {messages} deleted")),
            }
        }
    })
    .await;
    stop.cancel();
    let mut last = Duration::ZERO;
    while let Some(done) = tasks.join_next().await {
        last = last.max(done?);
    }
    routes.purge().await;
    drained.map_err(|e| anyhow::anyhow!("the receive ceiling on {kind}: {e}"))?;
    Ok(ReceiveCeiling {
        emulator: kind.to_string(),
        receivers,
        messages,
        messages_per_sec: deleted.load(Ordering::Relaxed) as f64 / last.as_secs_f64().max(0.001),
        errors: errors.load(Ordering::Relaxed),
    })
}
