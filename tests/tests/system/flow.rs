//! End to end: orders travel order → SNS → invoice → EventBridge → order and
//! notification, through real processes, real Postgres and the moto emulator.

use std::time::Duration;

use anyhow::Context;
use contracts::topology::{Chain, Service};
use harness::client::{Client, order_body};
use harness::probe;
use harness::stack::{Stack, StackOptions, emulator_config};
use nix::sys::signal::Signal;
use serde_json::Value;
use testkit::wait;
use uuid::Uuid;

const SETTLE: Duration = Duration::from_secs(90);

fn status(order: &Value) -> &str {
    order["status"].as_str().unwrap_or("?")
}

pub(crate) async fn wait_for_status(
    client: &Client,
    id: Uuid,
    want: &str,
) -> anyhow::Result<Value> {
    Ok(
        wait::until(&format!("order {id} to be {want}"), SETTLE, || async {
            let order = client.order(id).await.map_err(|e| e.to_string())?;
            if status(&order.body) == want {
                Ok(order.body)
            } else {
                Err(format!("{:?}", order.body))
            }
        })
        .await?,
    )
}

/// Waits until the order's invoices and notifications satisfy `check`.
pub(crate) async fn wait_for_effects<F>(
    client: &Client,
    id: Uuid,
    what: &str,
    check: F,
) -> anyhow::Result<(Vec<Value>, Vec<String>)>
where
    F: Fn(&[Value], &[String]) -> bool,
{
    Ok(wait::until(what, SETTLE, || async {
        let invoices = client.invoices_of(id).await.map_err(|e| e.to_string())?;
        let kinds = client
            .notification_kinds(id)
            .await
            .map_err(|e| e.to_string())?;
        if check(&invoices, &kinds) {
            Ok((invoices, kinds))
        } else {
            Err(format!("invoices {invoices:?}, notifications {kinds:?}"))
        }
    })
    .await?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orders_are_invoiced_and_notified_and_cancellations_void_invoices() -> anyhow::Result<()> {
    flow_on(Chain::Standard).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_flow_runs_on_the_fifo_chain_and_keeps_each_order_in_order() -> anyhow::Result<()>
{
    flow_on(Chain::Fifo).await
}

async fn flow_on(chain: Chain) -> anyhow::Result<()> {
    let name = format!("flow-{chain}");
    let mut stack = Stack::start(StackOptions::for_test(&name)?.with_orders_chain(chain)).await?;
    let mut result = run_flow(&mut stack).await;
    if result.is_ok() && chain == Chain::Fifo {
        result = run_in_order(&stack).await;
    }
    if result.is_err() {
        eprintln!("{}", stack.logs(40));
    }
    result?;
    let statuses = stack.shutdown().await?;
    for (name, status) in statuses {
        let status = status.context("service was running")?;
        assert!(
            status.success(),
            "{name} did not stop gracefully on SIGTERM: {status}"
        );
    }
    Ok(())
}

/// On the FIFO chain an order's cancellation can never overtake its
/// placement: orders cancelled the moment they are placed are each invoiced,
/// then voided, and the invoice service never needs its "cancelled before
/// placed" record. (On the standard chain that record is what saves the day.)
async fn run_in_order(stack: &Stack) -> anyhow::Result<()> {
    let client = Client::for_stack(stack);
    let mut ids = Vec::new();
    for n in 0..8 {
        let id = client
            .place(&order_body(&format!("quick-{n}"), &[("SKU-Q", 1, 100)]))
            .await?;
        let answer = client.cancel(id).await?;
        anyhow::ensure!(answer.status == 202, "cancel: {answer:?}");
        ids.push(id);
    }
    for id in &ids {
        wait_for_effects(&client, *id, "invoice issued then voided", |invoices, _| {
            invoices.len() == 1 && invoices[0]["status"] == "VOIDED"
        })
        .await?;
    }
    let invoice_db = sqlx::PgPool::connect(&stack.database_urls["invoice"]).await?;
    let overtaken: i64 = sqlx::query_scalar("SELECT count(*) FROM order_cancellations")
        .fetch_one(&invoice_db)
        .await?;
    assert_eq!(overtaken, 0, "a cancellation overtook its order on FIFO");
    Ok(())
}

async fn run_flow(stack: &mut Stack) -> anyhow::Result<()> {
    let client = Client::for_stack(stack);

    // A stays invoiced; C is cancelled after it was invoiced.
    let a = client
        .place(&order_body(
            "alice",
            &[("SKU-1", 2, 1999), ("SKU-2", 1, 500)],
        ))
        .await?;
    let c = client
        .place(&order_body("carol", &[("SKU-3", 3, 250)]))
        .await?;
    let order_a = wait_for_status(&client, a, "INVOICED").await?;
    assert_eq!(order_a["invoice"]["total_minor"], 4498);
    wait_for_status(&client, c, "INVOICED").await?;
    let cancelled = client.cancel(c).await?;
    assert_eq!(
        (cancelled.status, cancelled.body["status"].as_str()),
        (202, Some("CANCELLED"))
    );

    // B is cancelled while the invoice service is down, so before it can be invoiced.
    let exit = stack
        .service(Service::Invoice)
        .stop(Signal::SIGTERM)
        .await?
        .context("invoice was running")?;
    assert!(
        exit.success(),
        "invoice service did not stop gracefully: {exit}"
    );
    let b = client
        .place(&order_body("bob", &[("SKU-4", 1, 100)]))
        .await?;
    assert_eq!(client.cancel(b).await?.status, 202);
    assert_eq!(status(&client.order(b).await?.body), "CANCELLED");
    let http = stack.http.clone();
    stack.service(Service::Invoice).restart(&http).await?;

    // A: one issued invoice with the right total; received + invoiced notifications.
    let (invoices, kinds) =
        wait_for_effects(&client, a, "A's invoice and notifications", |inv, kinds| {
            inv.len() == 1 && kinds.len() == 2
        })
        .await?;
    assert_eq!(invoices[0]["status"], "ISSUED");
    assert_eq!(invoices[0]["total_minor"], 4498);
    assert_eq!(invoices[0]["currency"], "EUR");
    assert_eq!(kinds, ["invoice-issued", "order-received"]);

    // C: one invoice, voided; four notifications; the order knows of the void.
    let (invoices, kinds) = wait_for_effects(
        &client,
        c,
        "C's voided invoice and notifications",
        |inv, kinds| inv.len() == 1 && inv[0]["status"] == "VOIDED" && kinds.len() == 4,
    )
    .await?;
    assert_eq!(invoices[0]["total_minor"], 750);
    assert_eq!(
        kinds,
        [
            "invoice-issued",
            "invoice-voided",
            "order-cancelled",
            "order-received"
        ]
    );
    let order_c = wait::until(
        "C's order to know its invoice was voided",
        SETTLE,
        || async {
            let o = client.order(c).await.map_err(|e| e.to_string())?.body;
            if o["invoice"]["voided"] == true {
                Ok(o)
            } else {
                Err(o.to_string())
            }
        },
    )
    .await?;
    assert_eq!(status(&order_c), "CANCELLED");

    // B: whichever event the invoice service saw first, no invoice stays issued,
    // and the notifications match what happened.
    let (invoices, kinds) =
        wait_for_effects(&client, b, "B's cancellation to settle", |inv, kinds| {
            let voided_or_none = inv.iter().all(|i| i["status"] == "VOIDED");
            let expected = if inv.is_empty() { 2 } else { 4 };
            voided_or_none && kinds.len() == expected
        })
        .await?;
    assert!(invoices.len() <= 1, "{invoices:?}");
    let mut expected = vec!["order-cancelled", "order-received"];
    if !invoices.is_empty() {
        expected = vec![
            "invoice-issued",
            "invoice-voided",
            "order-cancelled",
            "order-received",
        ];
    }
    assert_eq!(kinds, expected);
    assert_eq!(status(&client.order(b).await?.body), "CANCELLED");

    // Nothing is left anywhere: every queue drained, every DLQ empty.
    let sqs = aws_sdk_sqs::Client::new(&emulator_config(&stack.emulator.endpoint()).await);
    let queues: Vec<&str> = stack.topology.queues.iter().map(|q| q.name).collect();
    probe::wait_until_drained(&sqs, &queues, SETTLE).await?;
    for q in &stack.topology.queues {
        assert_eq!(
            probe::queue_depth(&sqs, &q.dlq_name()).await?,
            (0, 0),
            "{} is not empty",
            q.dlq_name()
        );
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redelivered_event_changes_nothing() -> anyhow::Result<()> {
    let stack = Stack::start(StackOptions::for_test("redelivery")?).await?;
    let client = Client::for_stack(&stack);
    let id = client
        .place(&order_body("dave", &[("SKU-1", 1, 1000)]))
        .await?;
    wait_for_effects(&client, id, "the first delivery's effects", |inv, kinds| {
        inv.len() == 1 && kinds.len() == 2
    })
    .await?;

    // Send the very same OrderPlaced envelope again, as a redelivery would.
    let pool = sqlx::PgPool::connect(&stack.database_urls["order"]).await?;
    let envelope: String =
        sqlx::query_scalar("SELECT payload::text FROM outbox WHERE event_type = 'OrderPlaced' AND payload->>'subject' = $1")
            .bind(id.to_string())
            .fetch_one(&pool)
            .await?;
    let sqs = aws_sdk_sqs::Client::new(&emulator_config(&stack.emulator.endpoint()).await);
    for queue in ["invoice-orders", "notification-orders"] {
        let url = &stack.provisioned.queues[queue].url;
        sqs.send_message()
            .queue_url(url)
            .message_body(&envelope)
            .send()
            .await?;
    }
    let invoice_db = sqlx::PgPool::connect(&stack.database_urls["invoice"]).await?;
    let notification_db = sqlx::PgPool::connect(&stack.database_urls["notification"]).await?;
    // Both duplicates consumed.
    probe::wait_until_drained(&sqs, &["invoice-orders", "notification-orders"], SETTLE).await?;
    assert_eq!(client.invoices_of(id).await?.len(), 1);
    assert_eq!(
        client.notification_kinds(id).await?,
        ["invoice-issued", "order-received"]
    );
    // Each inbox holds the event once, and counted the second arrival: the
    // duplicate was skipped, not applied twice.
    let event_id: Uuid = serde_json::from_str::<Value>(&envelope)?["id"]
        .as_str()
        .context("id")?
        .parse()?;
    for db in [&invoice_db, &notification_db] {
        let (rows, duplicates): (i64, i64) = sqlx::query_as(
            "SELECT count(*), coalesce(sum(duplicates), 0)::bigint FROM inbox WHERE event_id = $1",
        )
        .bind(event_id)
        .fetch_one(db)
        .await?;
        assert_eq!((rows, duplicates), (1, 1));
    }
    let dlq = probe::queue_depth(&sqs, "invoice-orders-dlq").await?;
    assert_eq!(dlq, (0, 0));

    // A query that is not a UUID is a problem+json 400 in both read APIs.
    for base in [&client.invoice, &client.notification] {
        let path = if base == &client.invoice {
            "invoices"
        } else {
            "notifications"
        };
        let r = stack
            .http
            .get(format!("{base}/{path}?order_id=nope"))
            .bearer_auth(stack.issuer.operator_token()?)
            .send()
            .await?;
        assert_eq!(r.status().as_u16(), 400, "{path}");
        let content_type = r
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        assert_eq!(content_type, "application/problem+json", "{path}");
    }
    Ok(())
}
