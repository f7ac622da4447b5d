//! SIGTERM in the middle of a load: each service in turn is stopped
//! gracefully while orders keep coming, and started again. A graceful stop
//! finishes the requests in flight, the batch being handled and the relay
//! batch being published, then exits 0; every order answered `202` must end
//! invoiced and notified, once.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use contracts::topology::{Service, topology};
use harness::client::{Client, order_body};
use harness::probe;
use harness::stack::{Stack, StackOptions, emulator_config};
use nix::sys::signal::Signal;
use testkit::wait;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

const SETTLE: Duration = Duration::from_secs(120);
/// Time between two orders of the load: about 25 orders a second.
const PACE: Duration = Duration::from_millis(40);

/// What the load saw: the orders answered `202`, and how many requests failed
/// (refused while the order service was down, which is allowed: only an
/// accepted order is a promise).
#[derive(Default)]
struct Load {
    accepted: Vec<Uuid>,
    failed: usize,
}

fn start_load(
    client: Client,
    stop: CancellationToken,
) -> (Arc<Mutex<Load>>, tokio::task::JoinHandle<()>) {
    let load = Arc::new(Mutex::new(Load::default()));
    let seen = load.clone();
    let task = tokio::spawn(async move {
        let mut n = 0u64;
        while !stop.is_cancelled() {
            n += 1;
            let body = order_body(&format!("load-{n}"), &[("SKU-L", 1, 100 + n as i64)]);
            let outcome = client.place(&body).await;
            if let Ok(mut load) = seen.lock() {
                match outcome {
                    Ok(id) => load.accepted.push(id),
                    Err(_) => load.failed += 1,
                }
            }
            tokio::time::sleep(PACE).await;
        }
    });
    (load, task)
}

fn accepted(load: &Mutex<Load>) -> usize {
    load.lock().map(|l| l.accepted.len()).unwrap_or(0)
}

/// Waits until the load has had `more` further orders accepted.
async fn let_load_run(load: &Mutex<Load>, more: usize) -> anyhow::Result<()> {
    let target = accepted(load) + more;
    wait::until(&format!("{target} orders accepted"), SETTLE, || async {
        let now = accepted(load);
        if now >= target {
            Ok(())
        } else {
            Err(format!("{now} accepted"))
        }
    })
    .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_under_load_loses_no_accepted_order() -> anyhow::Result<()> {
    let mut stack = Stack::start(StackOptions::for_test("sigterm-under-load")?).await?;
    let result = run(&mut stack).await;
    if result.is_err() {
        eprintln!("{}", stack.logs(60));
    }
    result
}

async fn run(stack: &mut Stack) -> anyhow::Result<()> {
    let client = Client::for_stack(stack);
    let stop = CancellationToken::new();
    let (load, task) = start_load(client, stop.clone());
    let http = stack.http.clone();

    for service in Service::ALL {
        let_load_run(&load, 20).await?;
        let status = stack
            .service(service)
            .stop(Signal::SIGTERM)
            .await?
            .ok_or_else(|| anyhow::anyhow!("{} was not running", service.name()))?;
        anyhow::ensure!(
            status.success(),
            "{} did not stop gracefully under load: {status}",
            service.name()
        );
        stack.service(service).restart(&http).await?;
    }
    let_load_run(&load, 20).await?;
    stop.cancel();
    task.await?;

    let (ids, failed) = {
        let load = load.lock().map_err(|_| anyhow::anyhow!("load poisoned"))?;
        (load.accepted.clone(), load.failed)
    };
    eprintln!(
        "{} orders accepted, {failed} refused while the order service restarted",
        ids.len()
    );

    let order_db = sqlx::PgPool::connect(&stack.database_urls["order"]).await?;
    let invoice_db = sqlx::PgPool::connect(&stack.database_urls["invoice"]).await?;
    let notification_db = sqlx::PgPool::connect(&stack.database_urls["notification"]).await?;
    let n = ids.len() as i64;
    wait::until("every accepted order to be invoiced and notified", SETTLE, || async {
        let count = |db: &sqlx::PgPool, sql: &'static str| {
            let db = db.clone();
            let ids = ids.clone();
            async move {
                sqlx::query_scalar::<_, i64>(sql)
                    .bind(ids)
                    .fetch_one(&db)
                    .await
                    .map_err(|e| e.to_string())
            }
        };
        let invoiced = count(
            &order_db,
            "SELECT count(*) FROM orders WHERE status = 'INVOICED' AND id = ANY($1)",
        )
        .await?;
        let invoices = count(
            &invoice_db,
            "SELECT count(*) FROM invoices WHERE order_id = ANY($1)",
        )
        .await?;
        let notifications = count(
            &notification_db,
            "SELECT count(*) FROM notifications WHERE order_id = ANY($1)",
        )
        .await?;
        if (invoiced, invoices, notifications) == (n, n, 2 * n) {
            Ok(())
        } else {
            Err(format!(
                "of {n}: {invoiced} invoiced, {invoices} invoices, {notifications} notifications"
            ))
        }
    })
    .await?;

    // Nothing was parked on the way, and nothing is left behind.
    let sqs = aws_sdk_sqs::Client::new(&emulator_config(&stack.emulator.endpoint()).await);
    for queue in topology().queues {
        let dlq = probe::queue_depth(&sqs, &queue.dlq_name()).await?;
        assert_eq!(dlq, (0, 0), "{} holds messages", queue.dlq_name());
    }
    let unpublished: i64 =
        sqlx::query_scalar("SELECT count(*) FROM outbox WHERE published_at IS NULL")
            .fetch_one(&order_db)
            .await?;
    assert_eq!(unpublished, 0);
    Ok(())
}

/// A graceful restart of the consumers must not stall the journeys under way
/// for a visibility timeout: a stopping consumer lets its long poll return and
/// handles what it brought, so the broker never hands a message to a
/// connection nobody reads. Long polls of 10 s (the default) and a visibility
/// timeout of 60 s: an order whose event went to an abandoned poll would be
/// invoiced a minute later, far past this test's deadline.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_journey_right_after_a_graceful_restart_waits_for_no_visibility_timeout()
-> anyhow::Result<()> {
    let options = StackOptions::for_test("restart-stalls-nothing")?
        .with_service_env("SQS_WAIT_TIME_SECONDS", "10")
        .with_service_env("CONSUMER_VISIBILITY_TIMEOUT_SECS", "60");
    let mut stack = Stack::start(options).await?;
    let result = journey_after_restart(&mut stack).await;
    if result.is_err() {
        eprintln!("{}", stack.logs(60));
    }
    result
}

/// Well under the 60 s visibility timeout, with room for the restarts.
const UNSTALLED: Duration = Duration::from_secs(30);

async fn journey_after_restart(stack: &mut Stack) -> anyhow::Result<()> {
    let client = Client::for_stack(stack);
    let http = stack.http.clone();
    // One journey first: every consumer is then in a long poll.
    let first = client
        .place(&order_body("before-restart", &[("SKU-R", 1, 100)]))
        .await?;
    wait_journeys(&client, &[first], SETTLE).await?;

    let consumers = [Service::Invoice, Service::Notification];
    for service in consumers {
        stack.service(service).signal(Signal::SIGTERM)?;
    }
    // Placed while the stopping consumers' polls are still open.
    let mut ids = Vec::new();
    for n in 0..3 {
        let body = order_body(&format!("during-restart-{n}"), &[("SKU-R", 1, 200 + n)]);
        ids.push(client.place(&body).await?);
    }
    for service in consumers {
        let status = stack
            .service(service)
            .wait_exit(Duration::from_secs(30))
            .await?;
        anyhow::ensure!(
            status.success(),
            "{} did not stop gracefully: {status}",
            service.name()
        );
        stack.service(service).restart(&http).await?;
    }
    wait_journeys(&client, &ids, UNSTALLED).await
}

/// Waits until each order is invoiced and has its two notifications.
async fn wait_journeys(client: &Client, ids: &[Uuid], deadline: Duration) -> anyhow::Result<()> {
    wait::until("the orders invoiced and notified", deadline, || async {
        for id in ids {
            let order = client.order(*id).await.map_err(|e| e.to_string())?;
            let status = order.body["status"].as_str().unwrap_or("?").to_string();
            let notified = client
                .notifications_of(*id)
                .await
                .map_err(|e| e.to_string())?
                .len();
            if status != "INVOICED" || notified < 2 {
                return Err(format!("{id}: {status}, {notified} notifications"));
            }
        }
        Ok(())
    })
    .await?;
    Ok(())
}
