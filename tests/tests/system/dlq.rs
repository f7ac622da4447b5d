//! The DLQ tooling end to end, on real processes, real Postgres and moto.
//!
//! - A webhook that fails sends the notification service's events to its
//!   DLQs, one by each path: a refusal (422) at once with a `dlq_reason`, an
//!   outage (503) through the redrive policy after `maxReceiveCount`
//!   receives. `ops dlq list` shows both with their reason; once the webhook
//!   is fixed, `ops dlq redrive` brings them back and each event is notified
//!   exactly once.
//! - Replaying the billing archive delivers every invoice event again; the
//!   inboxes count the duplicates and nothing else changes.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use contracts::topology::{BILLING_BUS, MAX_RECEIVE_COUNT, Service, topology};
use harness::client::{Client, order_body};
use harness::probe;
use harness::stack::{Stack, StackOptions, bin_dir, emulator_config};
use infra::dlq::{DeadLetteredBy, RedriveMethod, RedriveOptions};
use infra::replay::ReplayRequest;
use serde_json::Value;
use sqlx::PgPool;
use testkit::wait;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

const SETTLE: Duration = Duration::from_secs(90);

/// A webhook receiver that fails until it is fixed: it refuses order events
/// (422, a permanent refusal) and is unavailable for the rest (503).
#[derive(Default)]
struct Receiver {
    fixed: AtomicBool,
    /// Requests per idempotency key, whatever the answer.
    attempts: Mutex<BTreeMap<String, u32>>,
    /// Accepted notifications per idempotency key.
    accepted: Mutex<BTreeMap<String, Vec<Value>>>,
}

async fn receive(
    State(receiver): State<Arc<Receiver>>,
    headers: HeaderMap,
    Json(notification): Json<Value>,
) -> StatusCode {
    let key = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("(none)")
        .to_string();
    if let Ok(mut attempts) = receiver.attempts.lock() {
        *attempts.entry(key.clone()).or_default() += 1;
    }
    if receiver.fixed.load(Ordering::SeqCst) {
        if let Ok(mut accepted) = receiver.accepted.lock() {
            accepted.entry(key).or_default().push(notification);
        }
        StatusCode::OK
    } else if notification["event_type"] == "OrderPlaced" {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    }
}

/// Serves `receiver` on a free port until `stop`; returns the webhook URL.
async fn serve(receiver: Arc<Receiver>, stop: CancellationToken) -> anyhow::Result<String> {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
    let url = format!("http://{}/notify", listener.local_addr()?);
    let app = axum::Router::new()
        .route("/notify", axum::routing::post(receive))
        .with_state(receiver);
    tokio::spawn(async move {
        let served = axum::serve(listener, app)
            .with_graceful_shutdown(async move { stop.cancelled().await })
            .await;
        if let Err(e) = served {
            eprintln!("webhook receiver stopped: {e}");
        }
    });
    Ok(url)
}

/// The id of the event of `event_type` about `order` in a service's outbox.
async fn event_id(db: &PgPool, event_type: &str, order: Uuid) -> anyhow::Result<Uuid> {
    Ok(sqlx::query_scalar(
        "SELECT id FROM outbox WHERE event_type = $1 AND payload->>'subject' = $2",
    )
    .bind(event_type)
    .bind(order.to_string())
    .fetch_one(db)
    .await?)
}

async fn dlq_depths(
    sqs: &aws_sdk_sqs::Client,
    queues: &[&str],
) -> Result<BTreeMap<String, u64>, String> {
    let mut depths = BTreeMap::new();
    for q in queues {
        let dlq = format!("{q}-dlq");
        let depth = infra::dlq::depth_of(sqs, &dlq)
            .await
            .map_err(|e| e.to_string())?;
        depths.insert(dlq, depth.total());
    }
    Ok(depths)
}

/// Waits until every queue of the topology is drained.
async fn wait_for_drained_queues(sqs: &aws_sdk_sqs::Client) -> anyhow::Result<()> {
    let queues: Vec<&str> = topology().queues.iter().map(|q| q.name).collect();
    probe::wait_until_drained(sqs, &queues, SETTLE).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poisoned_notification_is_redriven_after_the_fix_and_processed_exactly_once()
-> anyhow::Result<()> {
    let receiver = Arc::new(Receiver::default());
    let stop = CancellationToken::new();
    let webhook = serve(receiver.clone(), stop.clone()).await?;
    let options = StackOptions::for_test("dlq-redrive")?
        .with_env(Service::Notification, "NOTIFICATION_SENDER", "webhook")
        .with_env(Service::Notification, "NOTIFICATION_WEBHOOK_URL", &webhook)
        .with_env(Service::Notification, "CONSUMER_RETRY_MAX_DELAY_SECS", "1");
    let stack = Stack::start(options).await?;
    let result = poison_fix_redrive(&stack, &receiver).await;
    if result.is_err() {
        eprintln!("{}", stack.logs(40));
    }
    stop.cancel();
    result
}

async fn poison_fix_redrive(stack: &Stack, receiver: &Receiver) -> anyhow::Result<()> {
    let client = Client::for_stack(stack);
    let sqs = aws_sdk_sqs::Client::new(&emulator_config(&stack.emulator.endpoint()).await);
    let notification_queues: Vec<_> = topology().queues_of(Service::Notification);
    let names: Vec<&str> = notification_queues.iter().map(|q| q.name).collect();

    let order = client
        .place(&order_body("erin", &[("SKU-9", 1, 1200)]))
        .await?;

    // The refused OrderPlaced goes to its DLQ at once; the InvoiceIssued is
    // retried and moved by the redrive policy.
    wait::until(
        "each notification DLQ to hold one message",
        SETTLE,
        || async {
            let depths = dlq_depths(&sqs, &names).await?;
            if depths.values().all(|d| *d == 1) {
                Ok(())
            } else {
                Err(format!("{depths:?}"))
            }
        },
    )
    .await?;
    let placed = event_id(
        &PgPool::connect(&stack.database_urls["order"]).await?,
        "OrderPlaced",
        order,
    )
    .await?;
    let issued = event_id(
        &PgPool::connect(&stack.database_urls["invoice"]).await?,
        "InvoiceIssued",
        order,
    )
    .await?;
    let notification_db = PgPool::connect(&stack.database_urls["notification"]).await?;
    let recorded: i64 = sqlx::query_scalar("SELECT count(*) FROM notifications")
        .fetch_one(&notification_db)
        .await?;
    assert_eq!(recorded, 0, "nothing is recorded while the webhook fails");
    {
        let attempts = receiver
            .attempts
            .lock()
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        assert_eq!(
            attempts.get(&placed.to_string()),
            Some(&1),
            "a refusal is not retried: {attempts:?}"
        );
        let retried = attempts.get(&issued.to_string()).copied().unwrap_or(0);
        assert!(
            retried >= MAX_RECEIVE_COUNT,
            "an outage is retried until the redrive policy moves it: {attempts:?}"
        );
    }

    // The listing shows each message with its event and reason, and leaves it there.
    let mut listed = BTreeMap::new();
    for queue in &notification_queues {
        let listing = infra::dlq::list(&sqs, queue, 10).await?;
        assert_eq!(listing.messages.len(), 1, "{listing:?}");
        listed.insert(queue.name, listing.messages[0].clone());
    }
    let refused = &listed["notification-orders"];
    assert_eq!(refused.event_id, Some(placed.to_string()));
    assert_eq!(refused.event_type.as_deref(), Some("OrderPlaced"));
    assert_eq!(refused.order_id, Some(order.to_string()));
    assert_eq!(refused.dead_lettered_by, DeadLetteredBy::Consumer);
    assert!(
        refused.reason.contains("webhook answered 422"),
        "{}",
        refused.reason
    );
    let exhausted = &listed["notification-invoices"];
    assert_eq!(exhausted.event_id, Some(issued.to_string()));
    assert_eq!(exhausted.event_type.as_deref(), Some("InvoiceIssued"));
    assert_eq!(exhausted.order_id, Some(order.to_string()));
    assert_eq!(exhausted.dead_lettered_by, DeadLetteredBy::RedrivePolicy);
    assert!(
        exhausted.reason.starts_with("exceeded maxReceiveCount"),
        "{}",
        exhausted.reason
    );
    for queue in &notification_queues {
        // Released, not merely still there: visible again at once.
        let depth = infra::dlq::depth_of(&sqs, &queue.dlq_name()).await?;
        assert_eq!(
            (depth.visible, depth.in_flight),
            (1, 0),
            "{}",
            queue.dlq_name()
        );
    }

    // The same through the built command, as an operator runs it.
    let cli = ops_dlq_list_json(stack).await?;
    let orders_dlq = cli
        .as_array()
        .and_then(|all| all.iter().find(|l| l["dlq"] == "notification-orders-dlq"))
        .context("the CLI lists notification-orders-dlq")?;
    assert_eq!(orders_dlq["messages"][0]["event_id"], placed.to_string());
    assert_eq!(orders_dlq["messages"][0]["dead_lettered_by"], "consumer");
    assert_eq!(cli.as_array().map(Vec::len), Some(topology().queues.len()));

    // Fix the cause, then redrive both DLQs.
    receiver.fixed.store(true, Ordering::SeqCst);
    for queue in &notification_queues {
        let report = infra::dlq::redrive(&sqs, queue, &RedriveOptions::default()).await?;
        // SQS moves them where the endpoint has StartMessageMoveTask (AWS,
        // LocalStack); where it has not (moto 5.2.5, MiniStack) the command
        // moves them itself and says why. Either way: moved once, none left.
        assert!(
            report.method == RedriveMethod::MessageMoveTask || report.note.is_some(),
            "a message-by-message redrive says why: {report:?}"
        );
        assert_eq!(
            (report.moved, report.also_left_in_dlq),
            (1, 0),
            "{report:?}"
        );
    }

    wait::until("both notifications to be recorded", SETTLE, || async {
        let kinds = client
            .notification_kinds(order)
            .await
            .map_err(|e| e.to_string())?;
        if kinds == ["invoice-issued", "order-received"] {
            Ok(())
        } else {
            Err(format!("{kinds:?}"))
        }
    })
    .await?;
    wait_for_drained_queues(&sqs).await?;

    // Exactly once: one notification per event, one inbox row per event and
    // no duplicate absorbed, one accepted delivery per idempotency key.
    let per_event: Vec<(Uuid, i64, String)> = sqlx::query_as(
        "SELECT event_id, count(*), min(channel) FROM notifications WHERE order_id = $1 GROUP BY event_id ORDER BY event_id",
    )
    .bind(order)
    .fetch_all(&notification_db)
    .await?;
    let expected_events: BTreeSet<Uuid> = [placed, issued].into();
    assert_eq!(
        per_event
            .iter()
            .map(|(e, _, _)| *e)
            .collect::<BTreeSet<_>>(),
        expected_events
    );
    for (event, count, channel) in &per_event {
        assert_eq!((*count, channel.as_str()), (1, "webhook"), "{event}");
    }
    for event in &expected_events {
        let (rows, duplicates): (i64, i64) = sqlx::query_as(
            "SELECT count(*), coalesce(sum(duplicates), 0)::bigint FROM inbox WHERE event_id = $1",
        )
        .bind(event)
        .fetch_one(&notification_db)
        .await?;
        assert_eq!((rows, duplicates), (1, 0), "inbox row of {event}");
    }
    {
        let accepted = receiver
            .accepted
            .lock()
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let keys: BTreeSet<String> = accepted.keys().cloned().collect();
        assert_eq!(
            keys,
            expected_events
                .iter()
                .map(Uuid::to_string)
                .collect::<BTreeSet<_>>()
        );
        for (key, deliveries) in accepted.iter() {
            assert_eq!(deliveries.len(), 1, "{key} was delivered {deliveries:?}");
            assert_eq!(deliveries[0]["event_id"], key.as_str());
        }
    }
    assert_eq!(
        dlq_depths(&sqs, &names)
            .await
            .map_err(anyhow::Error::msg)?
            .values()
            .sum::<u64>(),
        0,
        "the DLQs are empty"
    );
    Ok(())
}

/// Runs the built `ops dlq list --json` against the stack's emulator.
async fn ops_dlq_list_json(stack: &Stack) -> anyhow::Result<Value> {
    let binary = bin_dir()?.join("ops");
    anyhow::ensure!(
        binary.exists(),
        "{} is missing: build it first (cargo build --workspace --bins)",
        binary.display()
    );
    let mut command = tokio::process::Command::new(&binary);
    command.env_clear();
    for key in ["PATH", "HOME"] {
        if let Some(v) = std::env::var_os(key) {
            command.env(key, v);
        }
    }
    command
        .envs([
            ("AWS_ENDPOINT_URL", stack.emulator.endpoint()),
            ("AWS_REGION", "us-east-1".to_string()),
            ("AWS_ACCESS_KEY_ID", "test".to_string()),
            ("AWS_SECRET_ACCESS_KEY", "test".to_string()),
        ])
        .args(["dlq", "list", "--json"])
        .kill_on_drop(true);
    let output = tokio::time::timeout(Duration::from_secs(60), command.output())
        .await
        .context("ops dlq list did not finish within 60 s")??;
    anyhow::ensure!(
        output.status.success(),
        "ops dlq list failed ({}): {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(serde_json::from_slice(&output.stdout)?)
}

/// Everything a replay must not change: each table as JSON text (the outboxes
/// by event, since their delivery columns may move on).
const STATE: &[(&str, &str, &str)] = &[
    (
        "order",
        "orders",
        "SELECT coalesce(json_agg(t ORDER BY t.id)::text, '[]') FROM orders t",
    ),
    (
        "order",
        "outbox",
        "SELECT coalesce(json_agg(t ORDER BY t.id)::text, '[]') FROM (SELECT id, event_type, payload FROM outbox) t",
    ),
    (
        "invoice",
        "invoices",
        "SELECT coalesce(json_agg(t ORDER BY t.id)::text, '[]') FROM invoices t",
    ),
    (
        "invoice",
        "order_cancellations",
        "SELECT coalesce(json_agg(t ORDER BY t.order_id)::text, '[]') FROM order_cancellations t",
    ),
    (
        "invoice",
        "outbox",
        "SELECT coalesce(json_agg(t ORDER BY t.id)::text, '[]') FROM (SELECT id, event_type, payload FROM outbox) t",
    ),
    (
        "notification",
        "notifications",
        "SELECT coalesce(json_agg(t ORDER BY t.id)::text, '[]') FROM notifications t",
    ),
];

async fn state(stack: &Stack) -> anyhow::Result<BTreeMap<String, String>> {
    let mut state = BTreeMap::new();
    for (service, table, query) in STATE {
        let db = PgPool::connect(&stack.database_urls[service]).await?;
        let json: String = sqlx::query_scalar(*query).fetch_one(&db).await?;
        state.insert(format!("{service}.{table}"), json);
        db.close().await;
    }
    Ok(state)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_archive_replay_is_absorbed_by_the_inboxes_and_changes_nothing() -> anyhow::Result<()> {
    let stack = Stack::start(StackOptions::for_test("replay")?).await?;
    let result = replay_window(&stack).await;
    if result.is_err() {
        eprintln!("{}", stack.logs(40));
    }
    result
}

async fn replay_window(stack: &Stack) -> anyhow::Result<()> {
    let client = Client::for_stack(stack);
    let sdk = emulator_config(&stack.emulator.endpoint()).await;
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let events = aws_sdk_eventbridge::Client::new(&sdk);
    // Whole seconds, so the window read back compares exactly.
    let from = chrono::DateTime::from_timestamp(chrono::Utc::now().timestamp() - 2, 0)
        .context("a valid time")?;

    // One order invoiced, one invoiced and then cancelled: three invoice events.
    let kept = client
        .place(&order_body("frank", &[("SKU-1", 2, 700)]))
        .await?;
    let cancelled = client
        .place(&order_body("grace", &[("SKU-2", 1, 300)]))
        .await?;
    for id in [kept, cancelled] {
        wait::until(&format!("order {id} to be invoiced"), SETTLE, || async {
            let o = client.order(id).await.map_err(|e| e.to_string())?.body;
            if o["status"] == "INVOICED" {
                Ok(())
            } else {
                Err(o.to_string())
            }
        })
        .await?;
    }
    assert_eq!(client.cancel(cancelled).await?.status, 202);
    wait::until("every notification of both orders", SETTLE, || async {
        let a = client
            .notification_kinds(kept)
            .await
            .map_err(|e| e.to_string())?;
        let c = client
            .notification_kinds(cancelled)
            .await
            .map_err(|e| e.to_string())?;
        let o = client
            .order(cancelled)
            .await
            .map_err(|e| e.to_string())?
            .body;
        if a.len() == 2 && c.len() == 4 && o["invoice"]["voided"] == true {
            Ok(())
        } else {
            Err(format!("{a:?} {c:?} {o}"))
        }
    })
    .await?;
    wait_for_drained_queues(&sqs).await?;

    let invoice_db = PgPool::connect(&stack.database_urls["invoice"]).await?;
    let billing_events: Vec<Uuid> =
        sqlx::query_scalar("SELECT id FROM outbox WHERE published_at IS NOT NULL ORDER BY id")
            .fetch_all(&invoice_db)
            .await?;
    assert_eq!(billing_events.len(), 3, "two issued, one voided");
    let before = state(stack).await?;
    let order_db = PgPool::connect(&stack.database_urls["order"]).await?;
    let notification_db = PgPool::connect(&stack.database_urls["notification"]).await?;
    for db in [&order_db, &notification_db] {
        let (rows, duplicates): (i64, i64) = sqlx::query_as(
            "SELECT count(*), coalesce(sum(duplicates), 0)::bigint FROM inbox WHERE event_id = ANY($1)",
        )
        .bind(&billing_events)
        .fetch_one(db)
        .await?;
        assert_eq!(
            (rows, duplicates),
            (3, 0),
            "each invoice event applied once before the replay"
        );
    }

    let to = chrono::Utc::now();
    let bus = topology().bus(BILLING_BUS).clone();
    let started = infra::replay::start(
        &events,
        &bus,
        &ReplayRequest {
            from,
            to,
            name: None,
        },
    )
    .await?;
    let status = infra::replay::wait(&events, &bus, &started.name, Duration::from_secs(60)).await?;
    assert_eq!(status.state, "COMPLETED", "{status:?}");
    assert_eq!(status.from.map(|t| t.timestamp()), Some(from.timestamp()));

    // Both consumers of the bus saw every invoice event again and skipped it.
    wait::until(
        "the replayed events to reach both inboxes",
        SETTLE,
        || async {
            let mut missing = Vec::new();
            for (name, db) in [("order", &order_db), ("notification", &notification_db)] {
                let seen_again: Vec<Uuid> = sqlx::query_scalar(
                    "SELECT event_id FROM inbox WHERE event_id = ANY($1) AND duplicates > 0",
                )
                .bind(&billing_events)
                .fetch_all(db)
                .await
                .map_err(|e| e.to_string())?;
                if seen_again.len() != billing_events.len() {
                    missing.push(format!(
                        "{name}: {} of {}",
                        seen_again.len(),
                        billing_events.len()
                    ));
                }
            }
            if missing.is_empty() {
                Ok(())
            } else {
                Err(missing.join(", "))
            }
        },
    )
    .await?;
    wait_for_drained_queues(&sqs).await?;

    let after = state(stack).await?;
    for (table, rows) in &before {
        assert_eq!(&after[table], rows, "{table} changed under the replay");
    }
    // The invoice service does not consume the bus: the replay never reached it.
    let invoice_duplicates: i64 =
        sqlx::query_scalar("SELECT coalesce(sum(duplicates), 0)::bigint FROM inbox")
            .fetch_one(&invoice_db)
            .await?;
    assert_eq!(invoice_duplicates, 0);
    for q in topology().queues {
        let depth = infra::dlq::depth_of(&sqs, &q.dlq_name()).await?;
        assert_eq!(depth.total(), 0, "{} is not empty", q.dlq_name());
    }
    Ok(())
}
