//! Crash windows, hit deterministically.
//!
//! A fail point (see `platform::failpoints`) kills a service with SIGKILL at the
//! exact gap between two steps that must both happen; the test restarts it
//! without the fail point and checks that nothing was lost and nothing was
//! applied twice. A slow handler is a fail point that waits instead.

use std::os::unix::process::ExitStatusExt;
use std::time::Duration;

use contracts::topology::Service;
use harness::client::{Client, order_body};
use harness::probe::{self, InboxEntry};
use harness::stack::{Stack, StackOptions, emulator_config};
use platform::failpoints;
use testkit::wait;
use uuid::Uuid;

const SETTLE: Duration = Duration::from_secs(60);

/// A stack whose `service` starts with `FAILPOINTS` set (plus `extra` variables).
async fn stack_with(
    name: &str,
    service: Service,
    failpoints: &str,
    extra: &[(&str, &str)],
) -> anyhow::Result<Stack> {
    let mut options =
        StackOptions::for_test(name)?.with_env(service, failpoints::VARIABLE, failpoints);
    for (key, value) in extra {
        options = options.with_env(service, key, value);
    }
    Stack::start(options).await
}

/// Waits for the fail point to kill `service` and checks it was SIGKILL.
async fn wait_for_crash(stack: &mut Stack, service: Service) -> anyhow::Result<()> {
    let status = stack
        .service(service)
        .wait_exit(Duration::from_secs(30))
        .await?;
    anyhow::ensure!(
        status.signal() == Some(9),
        "{} should have been killed by its fail point, but ended with {status}",
        service.name()
    );
    Ok(())
}

/// Starts `service` again, without the fail point.
async fn restart_disarmed(stack: &mut Stack, service: Service) -> anyhow::Result<()> {
    let http = stack.http.clone();
    let process = stack.service(service);
    process.remove_env(failpoints::VARIABLE);
    process.restart(&http).await
}

async fn crash_and_restart(stack: &mut Stack, service: Service) -> anyhow::Result<()> {
    wait_for_crash(stack, service).await?;
    restart_disarmed(stack, service).await
}

/// Places an order whose relay may kill the service before the `202` is
/// written (the relay wakes on the commit): the order then is found by its
/// customer in the database, where it committed, and `client` learns whose
/// token reads it.
async fn place_as(stack: &Stack, client: &Client, customer: &str) -> anyhow::Result<Uuid> {
    if let Ok(id) = client
        .place(&order_body(customer, &[("SKU-1", 1, 500)]))
        .await
    {
        return Ok(id);
    }
    let order_db = db(stack, Service::Order).await?;
    let id = sqlx::query_scalar("SELECT id FROM orders WHERE customer_id = $1")
        .bind(customer)
        .fetch_optional(&order_db)
        .await?
        .ok_or_else(|| {
            anyhow::anyhow!("the order of {customer} was neither answered nor committed")
        })?;
    client.placed_by(id, customer);
    Ok(id)
}

async fn db(stack: &Stack, service: Service) -> anyhow::Result<sqlx::PgPool> {
    Ok(sqlx::PgPool::connect(&stack.database_urls[service.name()]).await?)
}

/// The id of `order_id`'s event of `event_type` in `service`'s outbox, once written.
async fn event_id(
    db: &sqlx::PgPool,
    event_type: &str,
    order_id: Uuid,
) -> anyhow::Result<(Uuid, bool)> {
    Ok(
        wait::until(&format!("{event_type} in the outbox"), SETTLE, || async {
            probe::outbox_event(db, event_type, order_id)
                .await
                .map_err(|e| e.to_string())?
                .ok_or_else(|| "not yet".to_string())
        })
        .await?,
    )
}

/// Waits until the order is invoiced once and both notifications are recorded.
async fn wait_until_complete(client: &Client, id: Uuid) -> anyhow::Result<()> {
    wait::until(&format!("order {id} to complete"), SETTLE, || async {
        let order = client.order(id).await.map_err(|e| e.to_string())?;
        let invoices = client.invoices_of(id).await.map_err(|e| e.to_string())?;
        let kinds = client
            .notification_kinds(id)
            .await
            .map_err(|e| e.to_string())?;
        if order.body["status"] == "INVOICED" && kinds == ["invoice-issued", "order-received"] {
            Ok(())
        } else {
            Err(format!(
                "status {}, {} invoice(s), notifications {kinds:?}",
                order.body["status"],
                invoices.len()
            ))
        }
    })
    .await?;
    // Exactly one invoice, not just at least one.
    anyhow::ensure!(client.invoices_of(id).await?.len() == 1, "one invoice");
    Ok(())
}

/// Waits until `db`'s inbox shows `event_id` as `want`.
async fn wait_for_inbox(db: &sqlx::PgPool, event_id: Uuid, want: InboxEntry) -> anyhow::Result<()> {
    wait::until(&format!("inbox entry {want:?}"), SETTLE, || async {
        let entry = probe::inbox_entry(db, event_id)
            .await
            .map_err(|e| e.to_string())?;
        if entry == want {
            Ok(())
        } else {
            Err(format!("{entry:?}"))
        }
    })
    .await?;
    Ok(())
}

async fn on_failure<T>(stack: &Stack, result: anyhow::Result<T>) -> anyhow::Result<T> {
    if result.is_err() {
        eprintln!("{}", stack.logs(40));
    }
    result
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_between_commit_and_publish_loses_nothing() -> anyhow::Result<()> {
    let mut stack = stack_with(
        "crash-before-publish",
        Service::Order,
        &format!("{}=return", failpoints::RELAY_BEFORE_PUBLISH),
        &[],
    )
    .await?;
    let result = async {
        let client = Client::for_stack(&stack);
        let id = place_as(&stack, &client, "ann").await?;
        let order_db = db(&stack, Service::Order).await?;
        // The order committed with its event; the relay claimed it and died.
        wait_for_crash(&mut stack, Service::Order).await?;
        let (event, published) = event_id(&order_db, "OrderPlaced", id).await?;
        assert!(!published, "the crash came before the publish");
        let sqs = aws_sdk_sqs::Client::new(&emulator_config(&stack.emulator.endpoint()).await);
        assert_eq!(
            probe::queue_depth(&sqs, "invoice-orders").await?,
            (0, 0),
            "nothing was published"
        );

        restart_disarmed(&mut stack, Service::Order).await?;
        wait_until_complete(&client, id).await?;
        assert!(event_id(&order_db, "OrderPlaced", id).await?.1, "published");
        // Published once: the invoice service never saw it twice.
        let invoice_db = db(&stack, Service::Invoice).await?;
        assert_eq!(
            probe::inbox_entry(&invoice_db, event).await?,
            InboxEntry {
                rows: 1,
                duplicates: 0
            }
        );
        Ok(())
    }
    .await;
    on_failure(&stack, result).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_between_publish_and_marking_publishes_again_and_the_inbox_absorbs_it()
-> anyhow::Result<()> {
    let mut stack = stack_with(
        "crash-after-publish",
        Service::Order,
        &format!("{}=return", failpoints::RELAY_AFTER_PUBLISH),
        &[],
    )
    .await?;
    let result = async {
        let client = Client::for_stack(&stack);
        let id = place_as(&stack, &client, "ben").await?;
        let order_db = db(&stack, Service::Order).await?;
        crash_and_restart(&mut stack, Service::Order).await?;
        wait_until_complete(&client, id).await?;
        // Published before the crash and again after it, never marked in
        // between: the invoice service received it twice and applied it once.
        let (event, published) = event_id(&order_db, "OrderPlaced", id).await?;
        assert!(published);
        let invoice_db = db(&stack, Service::Invoice).await?;
        wait_for_inbox(
            &invoice_db,
            event,
            InboxEntry {
                rows: 1,
                duplicates: 1,
            },
        )
        .await?;
        Ok(())
    }
    .await;
    on_failure(&stack, result).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_between_commit_and_delete_applies_the_event_once() -> anyhow::Result<()> {
    let mut stack = stack_with(
        "crash-after-commit",
        Service::Invoice,
        &format!("{}=return", failpoints::CONSUMER_AFTER_COMMIT),
        &[("CONSUMER_VISIBILITY_TIMEOUT_SECS", "2")],
    )
    .await?;
    let result = async {
        let client = Client::for_stack(&stack);
        let id = client
            .place(&order_body("cy", &[("SKU-3", 3, 300)]))
            .await?;
        crash_and_restart(&mut stack, Service::Invoice).await?;
        wait_until_complete(&client, id).await?;
        // The invoice committed before the crash; the undeleted message came
        // back after its visibility timeout and was recognised.
        let order_db = db(&stack, Service::Order).await?;
        let (event, _) = event_id(&order_db, "OrderPlaced", id).await?;
        let invoice_db = db(&stack, Service::Invoice).await?;
        wait_for_inbox(
            &invoice_db,
            event,
            InboxEntry {
                rows: 1,
                duplicates: 1,
            },
        )
        .await?;
        let sqs = aws_sdk_sqs::Client::new(&emulator_config(&stack.emulator.endpoint()).await);
        probe::wait_until_drained(&sqs, &["invoice-orders"], SETTLE).await?;
        assert_eq!(
            probe::queue_depth(&sqs, "invoice-orders-dlq").await?,
            (0, 0)
        );
        Ok(())
    }
    .await;
    on_failure(&stack, result).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handler_slower_than_the_visibility_timeout_runs_once() -> anyhow::Result<()> {
    // Every invoice takes 5 s to handle; messages are invisible for only 2 s
    // unless the heartbeat extends them, and a second poll task is waiting.
    let stack = stack_with(
        "slow-handler",
        Service::Invoice,
        &format!("{}=return(5000)", failpoints::CONSUMER_HANDLE),
        &[
            ("CONSUMER_VISIBILITY_TIMEOUT_SECS", "2"),
            ("CONSUMER_CONCURRENCY", "2"),
            ("SQS_WAIT_TIME_SECONDS", "1"),
        ],
    )
    .await?;
    let result = async {
        let client = Client::for_stack(&stack);
        let id = client
            .place(&order_body("dee", &[("SKU-4", 1, 900)]))
            .await?;
        wait_until_complete(&client, id).await?;
        let order_db = db(&stack, Service::Order).await?;
        let (event, _) = event_id(&order_db, "OrderPlaced", id).await?;
        // Once the queue is empty every delivery is done with: a second one,
        // had the message reappeared, would have been counted by now.
        let sqs = aws_sdk_sqs::Client::new(&emulator_config(&stack.emulator.endpoint()).await);
        probe::wait_until_drained(&sqs, &["invoice-orders"], SETTLE).await?;
        let invoice_db = db(&stack, Service::Invoice).await?;
        // Not received a second time while the first handler was still at work.
        assert_eq!(
            probe::inbox_entry(&invoice_db, event).await?,
            InboxEntry {
                rows: 1,
                duplicates: 0
            }
        );
        Ok(())
    }
    .await;
    on_failure(&stack, result).await
}

/// Places `count` orders at once; returns the ids of those that committed,
/// whether or not the crash let the service answer, and `client` learns
/// whose token reads each.
async fn place_at_once(stack: &Stack, client: &Client, count: usize) -> anyhow::Result<Vec<Uuid>> {
    let mut placing = tokio::task::JoinSet::new();
    for i in 0..count {
        let client = client.clone();
        placing.spawn(async move {
            client
                .place(&order_body(&format!("many-{i}"), &[("SKU-5", 1, 250)]))
                .await
        });
    }
    while placing.join_next().await.is_some() {}
    // An order cut off by the crash before its commit was never promised
    // (its client got an error), so the database says which were placed.
    let order_db = db(stack, Service::Order).await?;
    let placed: Vec<(Uuid, String)> =
        sqlx::query_as("SELECT id, customer_id FROM orders WHERE customer_id LIKE 'many-%'")
            .fetch_all(&order_db)
            .await?;
    for (id, customer) in &placed {
        client.placed_by(*id, customer);
    }
    Ok(placed.into_iter().map(|(id, _)| id).collect())
}

/// Several batches in flight when the relay dies at `point`: the first three
/// batches pass the point (and may be published and marked, published and
/// not marked, or still in the broker call when the process dies), the
/// fourth kills it. After a restart every committed order completes once:
/// what was only claimed is claimed again, what was published and not
/// marked is published again and absorbed by the inbox.
async fn crash_with_batches_in_flight(name: &str, point: &str) -> anyhow::Result<()> {
    let mut stack = stack_with(
        name,
        Service::Order,
        &format!("{point}=3*off->return"),
        &[("RELAY_MAX_IN_FLIGHT", "4"), ("RELAY_BATCH_SIZE", "1")],
    )
    .await?;
    let result = async {
        let client = Client::for_stack(&stack);
        let placed = place_at_once(&stack, &client, 8).await?;
        anyhow::ensure!(placed.len() >= 4, "only {} orders committed", placed.len());
        crash_and_restart(&mut stack, Service::Order).await?;
        let order_db = db(&stack, Service::Order).await?;
        let invoice_db = db(&stack, Service::Invoice).await?;
        for id in &placed {
            wait_until_complete(&client, *id).await?;
            let (event, published) = event_id(&order_db, "OrderPlaced", *id).await?;
            assert!(published, "{id}'s event is marked published");
            let entry = probe::inbox_entry(&invoice_db, event).await?;
            assert!(
                entry.rows == 1 && entry.duplicates <= 1,
                "{id}: applied once, received at most twice: {entry:?}"
            );
        }
        Ok(())
    }
    .await;
    on_failure(&stack, result).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_before_publish_with_batches_in_flight_loses_nothing() -> anyhow::Result<()> {
    crash_with_batches_in_flight(
        "crash-before-publish-in-flight",
        failpoints::RELAY_BEFORE_PUBLISH,
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_after_publish_with_batches_in_flight_loses_nothing_and_the_inbox_absorbs_it()
-> anyhow::Result<()> {
    crash_with_batches_in_flight(
        "crash-after-publish-in-flight",
        failpoints::RELAY_AFTER_PUBLISH,
    )
    .await
}
