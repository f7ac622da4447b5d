//! The consumer against the real emulator and a real database: several
//! workers, each reading ahead and batching its deletes, apply every message
//! once and leave nothing on the queue; on a FIFO queue each group's events
//! are applied in the order they were sent.
//!
//! Each test starts its own moto and Postgres. The visibility timeout is a
//! minute and each wait's deadline half of that: a batch a worker dropped or
//! a delete it never sent would come back only after the timeout (and then as
//! a duplicate), so either shows up as a failed condition, never as a timing
//! assertion.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_sqs::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_sqs::types::{QueueAttributeName, SendMessageBatchRequestEntry};
use sqlx::PgConnection;
use testkit::emulator::Emulator;
use testkit::postgres::ScratchDatabase;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::{Consumer, Handler, HandlerError};
use crate::config::ConsumerSettings;
use contracts::events::{Envelope, Event, OrderLine, OrderPlaced, ReceivedEvent};
use contracts::money::MinorUnits;
use contracts::topology::{Chain, QueueSpec, Service, Topology};

type TestResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;

const VISIBILITY_SECS: i32 = 60;
const DEADLINE: Duration = Duration::from_secs(30);
const WORKERS: usize = 2;

/// Records each applied event: its id, its order and its sequence number
/// (carried in `customer_id`), in the order applied.
#[derive(Default)]
struct Recording(Mutex<Vec<(Uuid, Uuid, u32)>>);

impl Recording {
    fn applied(&self) -> Vec<(Uuid, Uuid, u32)> {
        self.0.lock().map(|v| v.clone()).unwrap_or_default()
    }
}

impl Handler for Recording {
    async fn handle(
        &self,
        event: &ReceivedEvent,
        _tx: &mut PgConnection,
    ) -> Result<(), HandlerError> {
        let Event::OrderPlaced(placed) = &event.event else {
            return Err(HandlerError::Reject("only OrderPlaced is sent".into()));
        };
        let seq = placed.customer_id.parse().unwrap_or(u32::MAX);
        if let Ok(mut applied) = self.0.lock() {
            applied.push((event.id, placed.order_id, seq));
        }
        Ok(())
    }
}

struct Bench {
    _emulator: Emulator,
    db: ScratchDatabase,
    sqs: aws_sdk_sqs::Client,
    queue: QueueSpec,
    url: String,
}

async fn start(chain: Chain) -> Result<Bench, Box<dyn std::error::Error + Send + Sync>> {
    let logs = tempfile_dir()?;
    let emulator = Emulator::start_default(&logs).await?;
    let db = ScratchDatabase::start().await?;
    sqlx::migrate!("./migrations").run(&db.pool).await?;
    let config = aws_sdk_sqs::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(emulator.endpoint())
        .credentials_provider(Credentials::new("test", "test", None, None, "test"))
        .build();
    let sqs = aws_sdk_sqs::Client::from_conf(config);
    let queue = Topology::declare(chain)
        .queues_of(Service::Invoice)
        .into_iter()
        .find(|q| q.name.starts_with("invoice-orders"))
        .ok_or("no invoice-orders queue in the topology")?;
    let mut url = String::new();
    for name in [queue.dlq_name(), queue.name.to_string()] {
        let mut create = sqs.create_queue().queue_name(&name).attributes(
            QueueAttributeName::VisibilityTimeout,
            VISIBILITY_SECS.to_string(),
        );
        if queue.fifo {
            create = create.attributes(QueueAttributeName::FifoQueue, "true");
        }
        url = create.send().await?.queue_url.ok_or("no queue URL")?;
    }
    Ok(Bench {
        _emulator: emulator,
        db,
        sqs,
        queue,
        url,
    })
}

/// A directory for the emulator's log that outlives the test (kept for a look
/// after a failure, like the other tests' logs).
fn tempfile_dir() -> std::io::Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!("consumer-test-{}", Uuid::now_v7()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

fn placed(order_id: Uuid, seq: u32) -> Result<String, Box<dyn std::error::Error + Send + Sync>> {
    let event = Event::OrderPlaced(OrderPlaced {
        order_id,
        customer_id: seq.to_string(),
        currency: "EUR".parse()?,
        lines: vec![OrderLine {
            sku: "SKU-1".into(),
            quantity: 1,
            unit_price_minor: MinorUnits::try_from(100)?,
        }],
        total_minor: MinorUnits::try_from(100)?,
    });
    let envelope = Envelope::new(Service::Order, &event, &order_id.to_string());
    Ok(serde_json::to_string(&envelope)?)
}

/// Sends `seqs` events for each of `orders`, interleaved (every order's first,
/// then every order's second...), in batches of ten; on a FIFO queue each
/// order is its own group.
async fn send(bench: &Bench, orders: &[Uuid], seqs: u32) -> TestResult {
    let mut entries = Vec::new();
    for seq in 0..seqs {
        for order in orders {
            let mut entry = SendMessageBatchRequestEntry::builder()
                .id(entries.len().to_string())
                .message_body(placed(*order, seq)?);
            if bench.queue.fifo {
                entry = entry
                    .message_group_id(order.to_string())
                    .message_deduplication_id(Uuid::now_v7().to_string());
            }
            entries.push(entry.build()?);
        }
    }
    for chunk in entries.chunks(10) {
        let out = bench
            .sqs
            .send_message_batch()
            .queue_url(&bench.url)
            .set_entries(Some(chunk.to_vec()))
            .send()
            .await?;
        if !out.failed().is_empty() {
            return Err(format!("sends refused: {:?}", out.failed()).into());
        }
    }
    Ok(())
}

/// Runs `WORKERS` consumers with read-ahead until `expected` events are
/// applied, stops them and waits for their ends (every delete sent).
async fn consume(bench: &Bench, recording: &Arc<Recording>, expected: usize) -> TestResult {
    let settings = ConsumerSettings {
        concurrency: WORKERS as u32,
        wait_time_secs: 1,
        visibility_timeout_secs: VISIBILITY_SECS,
        retry_max_delay: Duration::from_secs(300),
        read_ahead: true,
        enabled: true,
    };
    let shutdown = CancellationToken::new();
    let mut workers = Vec::new();
    for _ in 0..WORKERS {
        let consumer = Consumer::new(
            bench.sqs.clone(),
            bench.db.pool.clone(),
            recording.clone(),
            bench.queue.clone(),
            &settings,
        )
        .await?;
        workers.push(tokio::spawn(consumer.run(shutdown.clone())));
    }
    let applied = testkit::wait::until("every event applied", DEADLINE, || async {
        let n = recording.applied().len();
        if n >= expected {
            Ok(())
        } else {
            Err(format!("{n} of {expected} applied"))
        }
    })
    .await;
    shutdown.cancel();
    for worker in workers {
        worker.await?;
    }
    applied?;
    Ok(())
}

/// Visible, in flight (received, not deleted) and delayed messages.
async fn depth(bench: &Bench) -> Result<[i64; 3], Box<dyn std::error::Error + Send + Sync>> {
    let names = [
        QueueAttributeName::ApproximateNumberOfMessages,
        QueueAttributeName::ApproximateNumberOfMessagesNotVisible,
        QueueAttributeName::ApproximateNumberOfMessagesDelayed,
    ];
    let out = bench
        .sqs
        .get_queue_attributes()
        .queue_url(&bench.url)
        .set_attribute_names(Some(names.to_vec()))
        .send()
        .await?;
    let attrs = out.attributes.unwrap_or_default();
    let count = |name: &QueueAttributeName| {
        attrs
            .get(name)
            .and_then(|v| v.parse().ok())
            .unwrap_or(-1i64)
    };
    Ok([count(&names[0]), count(&names[1]), count(&names[2])])
}

/// Each event applied exactly once, none absorbed as a duplicate (so no
/// message came back), and nothing left on the queue once the workers ended.
async fn assert_once_and_drained(
    bench: &Bench,
    applied: &[(Uuid, Uuid, u32)],
    expected: usize,
) -> TestResult {
    let ids: HashSet<Uuid> = applied.iter().map(|(id, _, _)| *id).collect();
    assert_eq!(applied.len(), expected, "events applied");
    assert_eq!(ids.len(), expected, "distinct events applied");
    let (inbox, duplicates): (i64, i64) =
        sqlx::query_as("SELECT count(*), coalesce(sum(duplicates), 0)::bigint FROM inbox")
            .fetch_one(&bench.db.pool)
            .await?;
    assert_eq!(
        (inbox, duplicates),
        (expected as i64, 0),
        "inbox rows and duplicates"
    );
    // The workers returned only after their deletes were sent.
    assert_eq!(
        depth(bench).await?,
        [0, 0, 0],
        "visible, in flight, delayed"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_reading_ahead_and_batching_deletes_apply_every_message_once() -> TestResult {
    let bench = start(Chain::Standard).await?;
    let orders: Vec<Uuid> = (0..150).map(|_| Uuid::now_v7()).collect();
    send(&bench, &orders, 1).await?;
    let recording = Arc::new(Recording::default());
    consume(&bench, &recording, orders.len()).await?;
    assert_once_and_drained(&bench, &recording.applied(), orders.len()).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_fifo_queue_read_ahead_keeps_each_group_in_order() -> TestResult {
    let bench = start(Chain::Fifo).await?;
    let orders: Vec<Uuid> = (0..8).map(|_| Uuid::now_v7()).collect();
    const SEQS: u32 = 6;
    send(&bench, &orders, SEQS).await?;
    let recording = Arc::new(Recording::default());
    let expected = orders.len() * SEQS as usize;
    consume(&bench, &recording, expected).await?;
    let applied = recording.applied();
    let mut per_order: HashMap<Uuid, Vec<u32>> = HashMap::new();
    for (_, order, seq) in &applied {
        per_order.entry(*order).or_default().push(*seq);
    }
    let in_order: Vec<u32> = (0..SEQS).collect();
    for order in &orders {
        assert_eq!(per_order.get(order), Some(&in_order), "order {order}");
    }
    assert_once_and_drained(&bench, &applied, expected).await
}

#[test]
fn the_receive_backoff_grows_and_stays_under_its_cap_with_jitter() {
    let delays: Vec<Duration> = super::new_backoff().take(20).collect();
    assert!(
        delays.iter().all(|d| *d <= super::RECEIVE_BACKOFF_MAX * 2),
        "{delays:?}"
    );
    assert!(delays[10] > delays[0], "{delays:?}");
}
