//! The outbox and its relay against real Postgres and moto.

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_sqs::types::MessageSystemAttributeName;
use contracts::events::{Envelope, Event, OrderCancelled};
use contracts::topology::{Chain, Service, Topology};
use harness::stack::emulator_config;
use platform::config::RelaySettings;
use platform::outbox::{OutboxError, Relay, SnsPublisher, enqueue, store};
use sqlx::PgPool;
use testkit::emulator::Emulator;
use testkit::postgres::Cluster;
use testkit::wait;
use uuid::Uuid;

struct Fixture {
    _logs: tempfile::TempDir,
    _emulator: Emulator,
    cluster: Cluster,
    pool: PgPool,
    sqs: aws_sdk_sqs::Client,
    sns: aws_sdk_sns::Client,
    topic_arn: String,
    fifo: bool,
    queue_url: String,
    emulator_port: u16,
}

async fn fixture() -> anyhow::Result<Fixture> {
    fixture_on(Chain::Standard).await
}

/// The fixture with the orders topic of `chain` and its invoice queue.
async fn fixture_on(chain: Chain) -> anyhow::Result<Fixture> {
    let logs = tempfile::tempdir()?;
    let (emulator, cluster) = tokio::join!(
        Emulator::start_default(logs.path()),
        Cluster::start(logs.path())
    );
    let (emulator, cluster) = (emulator?, cluster?);
    let sdk = emulator_config(&emulator.endpoint()).await;
    let topology = Topology::declare(chain);
    let provisioned = infra::apply(&infra::Clients::from_config(&sdk), &topology).await?;
    let queue = topology.queues_of(Service::Invoice)[0].name;
    let pool = PgPool::connect(&cluster.admin_url()).await?;
    platform::db::migrate(&pool, sqlx::migrate::Migrator::with_migrations(vec![])).await?;
    Ok(Fixture {
        topic_arn: provisioned.topics[topology.topics[0].name].clone(),
        fifo: topology.topics[0].fifo,
        queue_url: provisioned.queues[queue].url.clone(),
        emulator_port: emulator
            .endpoint()
            .rsplit(':')
            .next()
            .and_then(|p| p.trim_end_matches('/').parse().ok())
            .unwrap_or_default(),
        sqs: aws_sdk_sqs::Client::new(&sdk),
        sns: aws_sdk_sns::Client::new(&sdk),
        _logs: logs,
        _emulator: emulator,
        cluster,
        pool,
    })
}

fn settings() -> RelaySettings {
    RelaySettings {
        batch_size: 10,
        poll_interval: Duration::from_millis(200),
        retention: Duration::from_secs(3600),
        listen: true,
        max_in_flight: 4,
        linger: Duration::ZERO,
    }
}

/// A relay on the fixture's outbox and topic, until `shutdown`.
fn spawn_relay(
    f: &Fixture,
    settings: RelaySettings,
    shutdown: &tokio_util::sync::CancellationToken,
) -> tokio::task::JoinHandle<()> {
    let relay = Relay::new(
        f.pool.clone(),
        SnsPublisher::new(f.sns.clone(), f.topic_arn.clone(), f.fifo),
        settings,
    );
    tokio::spawn(relay.run(shutdown.clone()))
}

fn cancelled() -> Envelope {
    let event = Event::OrderCancelled(OrderCancelled {
        order_id: Uuid::now_v7(),
        customer_id: "c".into(),
    });
    Envelope::new(Service::Order, &event, "test")
}

/// Receives until `expected` messages arrived; returns how often each event id came.
async fn receive_all(f: &Fixture, expected: usize) -> anyhow::Result<HashMap<Uuid, usize>> {
    let mut seen: HashMap<Uuid, usize> = HashMap::new();
    let mut total = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while total < expected {
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "only {total} of {expected} events arrived in 60 s"
        );
        let out = f
            .sqs
            .receive_message()
            .queue_url(&f.queue_url)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .send()
            .await?;
        for m in out.messages() {
            let env: Envelope = serde_json::from_str(m.body().unwrap_or(""))?;
            *seen.entry(env.id).or_default() += 1;
            total += 1;
        }
    }
    // Anything still arriving would be a duplicate: one more short poll must find nothing.
    let extra = f
        .sqs
        .receive_message()
        .queue_url(&f.queue_url)
        .max_number_of_messages(10)
        .wait_time_seconds(1)
        .send()
        .await?;
    for m in extra.messages() {
        let env: Envelope = serde_json::from_str(m.body().unwrap_or(""))?;
        *seen.entry(env.id).or_default() += 1;
    }
    Ok(seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_relays_on_one_outbox_publish_every_committed_event_exactly_once() -> anyhow::Result<()>
{
    let f = fixture().await?;
    let mut committed = Vec::new();
    // Six batches: each relay has several in flight at once.
    for _ in 0..60 {
        let env = cancelled();
        let mut tx = f.pool.begin().await?;
        enqueue(&mut tx, &env).await?;
        tx.commit().await?;
        committed.push(env.id);
    }
    // A rolled-back transaction leaves no event behind.
    let ghost = cancelled();
    let mut tx = f.pool.begin().await?;
    enqueue(&mut tx, &ghost).await?;
    tx.rollback().await?;

    let shutdown = tokio_util::sync::CancellationToken::new();
    let mut relays = Vec::new();
    for _ in 0..2 {
        let relay = Relay::new(
            f.pool.clone(),
            SnsPublisher::new(f.sns.clone(), f.topic_arn.clone(), false),
            settings(),
        );
        relays.push(tokio::spawn(relay.run(shutdown.clone())));
    }
    let seen = receive_all(&f, committed.len()).await?;
    shutdown.cancel();
    for r in relays {
        r.await?;
    }
    for id in &committed {
        assert_eq!(
            seen.get(id),
            Some(&1),
            "event {id} must arrive exactly once"
        );
    }
    assert!(
        !seen.contains_key(&ghost.id),
        "a rolled-back event was published"
    );
    let unpublished: i64 =
        sqlx::query_scalar("SELECT count(*) FROM outbox WHERE published_at IS NULL")
            .fetch_one(&f.pool)
            .await?;
    assert_eq!(unpublished, 0);
    Ok(())
}

#[tokio::test]
async fn the_relay_wakes_on_commit_without_waiting_for_the_poll() -> anyhow::Result<()> {
    let f = fixture().await?;
    let mut slow = settings();
    slow.poll_interval = Duration::from_secs(3600);
    let shutdown = tokio_util::sync::CancellationToken::new();
    let task = spawn_relay(&f, slow, &shutdown);
    // Let the relay reach its idle wait, then commit.
    until_listening(&f.pool, "the relay to go idle", Duration::from_secs(10)).await?;
    let env = cancelled();
    let mut tx = f.pool.begin().await?;
    enqueue(&mut tx, &env).await?;
    tx.commit().await?;
    let seen = receive_all(&f, 1).await?;
    assert_eq!(seen.get(&env.id), Some(&1));
    shutdown.cancel();
    task.await?;
    Ok(())
}

/// Waits until a session LISTENs on `pool`'s database.
async fn until_listening(pool: &PgPool, what: &str, within: Duration) -> anyhow::Result<()> {
    wait::until(what, within, || async {
        let listening: i64 =
            sqlx::query_scalar("SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'LISTEN%'")
                .fetch_one(pool)
                .await
                .map_err(|e| e.to_string())?;
        if listening > 0 {
            Ok(())
        } else {
            Err("no LISTEN session".into())
        }
    })
    .await?;
    Ok(())
}

/// The wake-up survives a database outage longer than the pool waits for a
/// connection: the relay listens again by itself and a commit made afterwards
/// leaves at once, with the poll an hour away. The relay once gave up
/// listening until its next poll when a reconnection failed, and while it
/// retried it started and threw away a connection on every turn of its loop,
/// keeping the rest of its pool waiting.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_database_outage_the_relay_listens_again_and_wakes_on_commit() -> anyhow::Result<()>
{
    let mut f = fixture().await?;
    let mut slow = settings();
    slow.poll_interval = Duration::from_secs(3600);
    // As the services' pools do, and the chaos experiments' (0.5 s).
    let pool = sqlx::postgres::PgPoolOptions::new()
        .acquire_timeout(Duration::from_millis(500))
        .connect(&f.cluster.admin_url())
        .await?;
    let relay = Relay::new(
        pool,
        SnsPublisher::new(f.sns.clone(), f.topic_arn.clone(), f.fifo),
        slow,
    );
    let shutdown = tokio_util::sync::CancellationToken::new();
    let task = tokio::spawn(relay.run(shutdown.clone()));
    until_listening(&f.pool, "the relay to listen", Duration::from_secs(10)).await?;
    f.cluster.stop_server().await?;
    // The outage: several of the relay's acquire timeouts long.
    tokio::time::sleep(Duration::from_secs(6)).await;
    f.cluster.start_server().await?;
    until_listening(
        &f.pool,
        "the relay to listen again",
        Duration::from_secs(30),
    )
    .await?;
    let env = cancelled();
    let mut tx = f.pool.begin().await?;
    enqueue(&mut tx, &env).await?;
    tx.commit().await?;
    let seen = receive_all(&f, 1).await?;
    assert_eq!(seen.get(&env.id), Some(&1));
    shutdown.cancel();
    task.await?;
    Ok(())
}

/// `RELAY_LISTEN=false`, the benchmark's baseline: no LISTEN session, and a
/// committed event still leaves, on the next poll.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_listen_off_the_relay_never_listens_and_publishes_on_its_poll() -> anyhow::Result<()> {
    let f = fixture().await?;
    let mut polling = settings();
    polling.listen = false;
    polling.batch_size = 1;
    let shutdown = tokio_util::sync::CancellationToken::new();
    let task = spawn_relay(&f, polling, &shutdown);
    let envs: Vec<Envelope> = (0..3).map(|_| cancelled()).collect();
    for env in &envs {
        let mut tx = f.pool.begin().await?;
        enqueue(&mut tx, env).await?;
        tx.commit().await?;
    }
    let seen = receive_all(&f, envs.len()).await?;
    for env in &envs {
        assert_eq!(seen.get(&env.id), Some(&1));
    }
    let listening: i64 =
        sqlx::query_scalar("SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'LISTEN%'")
            .fetch_one(&f.pool)
            .await?;
    assert_eq!(
        listening, 0,
        "a relay with listen off opened a LISTEN session"
    );
    shutdown.cancel();
    task.await?;
    Ok(())
}

#[tokio::test]
async fn an_unreachable_broker_loses_nothing_and_the_backlog_drains_later() -> anyhow::Result<()> {
    let f = fixture().await?;
    let env = cancelled();
    let mut tx = f.pool.begin().await?;
    enqueue(&mut tx, &env).await?;
    tx.commit().await?;
    // A publisher pointed at a port where nothing listens.
    let dead = emulator_config(&format!("http://127.0.0.1:{}", testkit::free_port()?)).await;
    let broken = Relay::new(
        f.pool.clone(),
        SnsPublisher::new(aws_sdk_sns::Client::new(&dead), f.topic_arn.clone(), false),
        settings(),
    );
    assert!(
        broken.publish_once().await.is_err(),
        "publishing to nowhere must fail"
    );
    let unpublished: i64 =
        sqlx::query_scalar("SELECT count(*) FROM outbox WHERE published_at IS NULL")
            .fetch_one(&f.pool)
            .await?;
    assert_eq!(unpublished, 1, "a failed publish keeps the row");

    let working = Relay::new(
        f.pool.clone(),
        SnsPublisher::new(f.sns.clone(), f.topic_arn.clone(), false),
        settings(),
    );
    assert_eq!(working.publish_once().await?.published, 1);
    assert_eq!(receive_all(&f, 1).await?.get(&env.id), Some(&1));
    Ok(())
}

/// An envelope padded so that its JSON text is exactly `bytes` long.
fn envelope_of_size(bytes: usize) -> anyhow::Result<Envelope> {
    let mut envelope = cancelled();
    envelope.data = serde_json::Value::String(String::new());
    let base = serde_json::to_string(&envelope)?.len();
    anyhow::ensure!(bytes >= base, "{bytes} is smaller than an empty envelope");
    envelope.data = serde_json::Value::String("x".repeat(bytes - base));
    assert_eq!(serde_json::to_string(&envelope)?.len(), bytes);
    Ok(envelope)
}

#[tokio::test]
async fn an_event_over_256_kib_with_its_attributes_is_refused_before_the_insert()
-> anyhow::Result<()> {
    let logs = tempfile::tempdir()?;
    let cluster = Cluster::start(logs.path()).await?;
    let pool = PgPool::connect(&cluster.admin_url()).await?;
    platform::db::migrate(&pool, sqlx::migrate::Migrator::with_migrations(vec![])).await?;
    const LIMIT: usize = 256 * 1024;

    // A body of exactly 256 KiB would fit if attributes were free; its
    // `event_type` attribute pushes it over, and AWS would refuse the publish.
    let mut tx = pool.begin().await?;
    let err = enqueue(&mut tx, &envelope_of_size(LIMIT)?)
        .await
        .expect_err("over the limit once the attribute counts");
    assert!(
        matches!(err, OutboxError::TooLarge { size, .. } if size > LIMIT),
        "{err}"
    );
    assert!(err.to_string().contains("OrderCancelled"), "{err}");

    // Well under the limit with everything counted: stored with its attributes.
    let fits = envelope_of_size(LIMIT - 1024)?;
    enqueue(&mut tx, &fits).await?;
    tx.commit().await?;
    let (rows, event_type): (i64, Option<String>) =
        sqlx::query_as("SELECT count(*), max(attributes->>'event_type') FROM outbox")
            .fetch_one(&pool)
            .await?;
    assert_eq!((rows, event_type.as_deref()), (1, Some("OrderCancelled")));
    Ok(())
}

#[tokio::test]
async fn a_partial_batch_failure_retries_only_the_refused_entry() -> anyhow::Result<()> {
    let f = fixture().await?;
    let good: Vec<Envelope> = (0..4).map(|_| cancelled()).collect();
    let mut tx = f.pool.begin().await?;
    for env in &good {
        enqueue(&mut tx, env).await?;
    }
    tx.commit().await?;
    // A row the broker refuses: written around `enqueue`'s size check, as by
    // an older release without it. moto refuses a message over 256 KiB entry
    // by entry in a PublishBatch; AWS and fakecloud refuse the whole call, so
    // the relay sends such an entry in a call of its own.
    let oversized = envelope_of_size(300 * 1024)?;
    sqlx::query(
        "INSERT INTO outbox (id, event_type, payload, attributes, created_at) \
         VALUES ($1, $2, $3, '{\"event_type\": \"OrderCancelled\"}', $4)",
    )
    .bind(oversized.id)
    .bind(&oversized.event_type)
    .bind(serde_json::to_value(&oversized)?)
    .bind(good[1].time)
    .execute(&f.pool)
    .await?;

    let relay = Relay::new(
        f.pool.clone(),
        SnsPublisher::new(f.sns.clone(), f.topic_arn.clone(), false),
        settings(),
    );
    let before = chrono::Utc::now();
    let step = relay.publish_once().await?;
    assert_eq!((step.published, step.failed), (4, 1));

    // The four good ones were marked and delivered; the refused one waits for
    // a later attempt with its reason recorded.
    let seen = receive_all(&f, good.len()).await?;
    for env in &good {
        assert_eq!(seen.get(&env.id), Some(&1), "{} delivered once", env.id);
    }
    let (published, attempts, error, next_attempt): (
        Option<chrono::DateTime<chrono::Utc>>,
        i32,
        Option<String>,
        chrono::DateTime<chrono::Utc>,
    ) = sqlx::query_as(
        "SELECT published_at, attempts, last_error, next_attempt_at FROM outbox WHERE id = $1",
    )
    .bind(oversized.id)
    .fetch_one(&f.pool)
    .await?;
    assert_eq!(published, None);
    assert_eq!(attempts, 1);
    assert!(
        next_attempt >= before + chrono::Duration::milliseconds(500),
        "the retry is scheduled with a backoff, not immediate"
    );
    // moto says "too long", fakecloud "BatchRequestTooLong".
    assert!(
        error
            .as_deref()
            .unwrap_or_default()
            .to_ascii_lowercase()
            .replace(' ', "")
            .contains("toolong"),
        "{error:?}"
    );
    let unpublished_good: i64 =
        sqlx::query_scalar("SELECT count(*) FROM outbox WHERE published_at IS NULL AND id <> $1")
            .bind(oversized.id)
            .fetch_one(&f.pool)
            .await?;
    assert_eq!(unpublished_good, 0);
    Ok(())
}

#[tokio::test]
async fn large_events_that_add_up_past_256_kib_are_all_published() -> anyhow::Result<()> {
    // Each event is well within the limit, but ten of them claimed as one
    // batch add up to 600 KiB: AWS (and fakecloud) refuse such a PublishBatch
    // as a whole, every time, so one call would never get past them. moto
    // does not check the sum; the split itself is unit-tested in
    // `shared/platform/src/outbox/publisher.rs`.
    let f = fixture().await?;
    let large: Vec<Envelope> = (0..10)
        .map(|_| envelope_of_size(60 * 1024))
        .collect::<anyhow::Result<_>>()?;
    let mut tx = f.pool.begin().await?;
    for env in &large {
        enqueue(&mut tx, env).await?;
    }
    tx.commit().await?;

    let relay = Relay::new(
        f.pool.clone(),
        SnsPublisher::new(f.sns.clone(), f.topic_arn.clone(), false),
        settings(),
    );
    let step = relay.publish_once().await?;
    assert_eq!((step.published, step.failed), (10, 0));
    let seen = receive_all(&f, large.len()).await?;
    for env in &large {
        assert_eq!(seen.get(&env.id), Some(&1), "{} delivered once", env.id);
    }
    Ok(())
}

/// An event about `order_id`, written `offset_ms` after `base`: one order's
/// events get increasing times, as its use cases write them.
fn event_of(order_id: Uuid, base: chrono::DateTime<chrono::Utc>, offset_ms: i64) -> Envelope {
    let event = Event::OrderCancelled(OrderCancelled {
        order_id,
        customer_id: "c".into(),
    });
    let mut envelope = Envelope::new(Service::Order, &event, "test");
    envelope.time = base + chrono::Duration::milliseconds(offset_ms);
    envelope
}

/// Commits `(order, events)` pairs interleaved in time, one transaction per
/// event; returns each order's event ids in the order they were written.
async fn commit_orders(
    pool: &PgPool,
    orders: &[(Uuid, usize)],
) -> anyhow::Result<HashMap<Uuid, Vec<Uuid>>> {
    let base = chrono::Utc::now() - chrono::Duration::minutes(1);
    let mut written: HashMap<Uuid, Vec<Uuid>> = HashMap::new();
    let mut offset = 0;
    for step in 0..orders.iter().map(|(_, n)| *n).max().unwrap_or(0) {
        for (order, events) in orders {
            if step < *events {
                let env = event_of(*order, base, offset);
                offset += 1;
                let mut tx = pool.begin().await?;
                enqueue(&mut tx, &env).await?;
                tx.commit().await?;
                written.entry(*order).or_default().push(env.id);
            }
        }
    }
    Ok(written)
}

/// One claim on a transaction of its own, left open as a batch in flight.
async fn claim_open(
    pool: &PgPool,
    in_order: bool,
    limit: u32,
) -> anyhow::Result<(sqlx::Transaction<'static, sqlx::Postgres>, Vec<Uuid>)> {
    let mut tx = pool.begin().await?;
    let rows = store::claim(&mut tx, limit, in_order).await?;
    Ok((tx, rows.iter().map(|r| r.id).collect()))
}

async fn publish_and_commit(
    mut tx: sqlx::Transaction<'static, sqlx::Postgres>,
    ids: &[Uuid],
) -> anyhow::Result<()> {
    store::mark_published(&mut tx, ids).await?;
    tx.commit().await?;
    Ok(())
}

fn sorted(mut ids: Vec<Uuid>) -> Vec<Uuid> {
    ids.sort();
    ids
}

/// The FIFO rule against real Postgres, with two claims open at once as two
/// batches in flight: the second claim takes no order whose earlier event
/// is still in the first, and an order's next event becomes claimable once
/// the previous one is committed as published.
#[tokio::test]
async fn on_a_fifo_chain_concurrent_claims_take_only_each_orders_next_event() -> anyhow::Result<()>
{
    let logs = tempfile::tempdir()?;
    let cluster = Cluster::start(logs.path()).await?;
    let pool = PgPool::connect(&cluster.admin_url()).await?;
    platform::db::migrate(&pool, sqlx::migrate::Migrator::with_migrations(vec![])).await?;
    let (x, y, z) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
    let w = commit_orders(&pool, &[(x, 3), (y, 2), (z, 1)]).await?;

    let (first, claimed) = claim_open(&pool, true, 10).await?;
    assert_eq!(
        sorted(claimed.clone()),
        sorted(vec![w[&x][0], w[&y][0], w[&z][0]])
    );
    // While the first batch is in flight, a second claim finds every
    // order's next event behind one not yet published.
    let (second, nothing) = claim_open(&pool, true, 10).await?;
    assert_eq!(
        nothing,
        Vec::<Uuid>::new(),
        "a later event of an order in flight"
    );
    second.rollback().await?;

    publish_and_commit(first, &claimed).await?;
    let (third, next) = claim_open(&pool, true, 10).await?;
    assert_eq!(sorted(next.clone()), sorted(vec![w[&x][1], w[&y][1]]));
    publish_and_commit(third, &next).await?;
    let (fourth, last) = claim_open(&pool, true, 10).await?;
    assert_eq!(last, vec![w[&x][2]]);
    publish_and_commit(fourth, &last).await?;

    // A refused entry waiting for its retry holds back its own order only.
    let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
    let w = commit_orders(&pool, &[(a, 2), (b, 1)]).await?;
    let mut tx = pool.begin().await?;
    store::mark_failed(&mut tx, w[&a][0], "refused", Duration::from_secs(600)).await?;
    tx.commit().await?;
    let (tx, claimed) = claim_open(&pool, true, 10).await?;
    assert_eq!(
        claimed,
        vec![w[&b][0]],
        "a's second event waits for its first"
    );
    tx.rollback().await?;
    Ok(())
}

/// The standard chain promises no order, and its claims hold each other back
/// in nothing: a second batch claimed beside one in flight takes the rest,
/// an order's later events among them, and a row waiting for a retry delays
/// no other.
#[tokio::test]
async fn on_the_standard_chain_a_batch_in_flight_holds_back_no_other_row() -> anyhow::Result<()> {
    let logs = tempfile::tempdir()?;
    let cluster = Cluster::start(logs.path()).await?;
    let pool = PgPool::connect(&cluster.admin_url()).await?;
    platform::db::migrate(&pool, sqlx::migrate::Migrator::with_migrations(vec![])).await?;
    let (x, y) = (Uuid::now_v7(), Uuid::now_v7());
    let w = commit_orders(&pool, &[(x, 4), (y, 2)]).await?;
    let mut tx = pool.begin().await?;
    store::mark_failed(&mut tx, w[&y][0], "refused", Duration::from_secs(600)).await?;
    tx.commit().await?;

    let (first, a) = claim_open(&pool, false, 2).await?;
    assert_eq!(
        a,
        vec![w[&x][0], w[&x][1]],
        "oldest first, two of one order"
    );
    let (second, b) = claim_open(&pool, false, 10).await?;
    assert_eq!(
        sorted(b.clone()),
        sorted(vec![w[&x][2], w[&x][3], w[&y][1]]),
        "everything due that the first batch did not take"
    );
    publish_and_commit(first, &a).await?;
    publish_and_commit(second, &b).await?;
    Ok(())
}

/// Receives from a FIFO queue until `expected` messages arrived, deleting
/// each (a FIFO group stays blocked while one of its messages is in flight);
/// returns the event ids per order, in the order they arrived.
async fn receive_in_order(
    f: &Fixture,
    expected: usize,
) -> anyhow::Result<HashMap<Uuid, Vec<Uuid>>> {
    let mut arrived: HashMap<Uuid, Vec<Uuid>> = HashMap::new();
    let mut total = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while total < expected {
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "only {total} of {expected} events arrived in 60 s"
        );
        let out = f
            .sqs
            .receive_message()
            .queue_url(&f.queue_url)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .send()
            .await?;
        for m in out.messages() {
            let env: Envelope = serde_json::from_str(m.body().unwrap_or(""))?;
            arrived
                .entry(env.subject.parse()?)
                .or_default()
                .push(env.id);
            total += 1;
            if let Some(handle) = m.receipt_handle() {
                f.sqs
                    .delete_message()
                    .queue_url(&f.queue_url)
                    .receipt_handle(handle)
                    .send()
                    .await?;
            }
        }
    }
    Ok(arrived)
}

/// The relay with four batches in flight on the FIFO chain: every order's
/// events arrive once each and in the order they were written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_in_flight_keep_each_orders_events_in_order_on_the_fifo_chain() -> anyhow::Result<()>
{
    let f = fixture_on(Chain::Fifo).await?;
    anyhow::ensure!(f.fifo, "the FIFO chain has a FIFO topic");
    let orders: Vec<(Uuid, usize)> = (0..12).map(|i| (Uuid::now_v7(), 2 + i % 3)).collect();
    let written = commit_orders(&f.pool, &orders).await?;
    let total = written.values().map(Vec::len).sum();

    let shutdown = tokio_util::sync::CancellationToken::new();
    let mut in_flight = settings();
    in_flight.batch_size = 3;
    let task = spawn_relay(&f, in_flight, &shutdown);
    let arrived = receive_in_order(&f, total).await?;
    shutdown.cancel();
    task.await?;
    assert_eq!(arrived, written, "per order, as written, each once");
    Ok(())
}

/// Sockets between this host and `port` (either end), from /proc/net/tcp:
/// each local/remote address pair is one TCP connection, open or recently
/// closed (TIME_WAIT keeps it listed for a minute).
fn connections_to(port: u16) -> anyhow::Result<std::collections::HashSet<(String, String)>> {
    let table = std::fs::read_to_string("/proc/net/tcp")?;
    let port_of = |addr: &str| u16::from_str_radix(addr.rsplit(':').next().unwrap_or(""), 16).ok();
    Ok(table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let cols: Vec<&str> = line.split_whitespace().collect();
            let (local, remote, state) = (*cols.get(1)?, *cols.get(2)?, *cols.get(3)?);
            // 0A is LISTEN: the server's socket, not a connection.
            let involved = port_of(local) == Some(port) || port_of(remote) == Some(port);
            (involved && state != "0A").then(|| {
                // One connection shows up twice (client and server side).
                let mut pair = [local.to_string(), remote.to_string()];
                pair.sort();
                let [a, b] = pair;
                (a, b)
            })
        })
        .collect())
}

/// The launcher serves moto with keep-alive: twenty publish calls of one
/// relay go out on the connection its client opened first, where the stock
/// server's `Connection: close` made every call a new one.
#[tokio::test]
async fn the_relays_publish_calls_share_one_connection_to_the_emulator() -> anyhow::Result<()> {
    let f = fixture().await?;
    let relay = Relay::new(
        f.pool.clone(),
        SnsPublisher::new(f.sns.clone(), f.topic_arn.clone(), false),
        settings(),
    );
    let before = connections_to(f.emulator_port)?;
    for _ in 0..20 {
        let mut tx = f.pool.begin().await?;
        enqueue(&mut tx, &cancelled()).await?;
        tx.commit().await?;
        assert_eq!(relay.publish_once().await?.published, 1);
    }
    let opened = connections_to(f.emulator_port)?.difference(&before).count();
    assert!(
        opened <= 1,
        "twenty publish calls opened {opened} connections to the emulator"
    );
    Ok(())
}
