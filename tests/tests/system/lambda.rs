//! The consumers as AWS Lambda functions, on this machine: the invoice
//! service's function binary as a real process behind the harness's Lambda
//! Runtime API, fed the emulator's real messages by an event source mapping
//! that does what Lambda's does (`harness::lambda`), and the invoice service
//! itself running its API and relay only (`CONSUMERS_ENABLED=false`).

use std::time::{Duration, Instant};

use anyhow::Context;
use contracts::topology::Service;
use harness::client::{Client, order_body};
use harness::lambda::{Answer, EventSourceMapping, FunctionProcess, RuntimeApi, queue_url_and_arn};
use harness::probe;
use harness::stack::{FAILPOINTS_DIR, Stack, StackOptions, bin_dir, emulator_config};
use platform::consumer::DLQ_REASON_ATTRIBUTE;
use platform::failpoints;
use serde_json::{Value, json};
use sqlx::PgPool;
use testkit::otlp::OtlpReceiver;
use testkit::wait;
use uuid::Uuid;

use crate::flow::{wait_for_effects, wait_for_status};

const FUNCTION: &str = "invoice-function";
const SETTLE: Duration = Duration::from_secs(60);
/// How long the database-down test's function holds a failed batch back
/// (`CONSUMER_RETRY_MAX_DELAY_SECS`): well past the first retry delay (2 s)
/// and the receive that checks it, well within `SETTLE`.
const HELD_BACK_SECS: u64 = 15;

/// The stack, with the invoice service's queue left to its function, and
/// `env` for every service (and so for the function).
async fn start_stack(
    name: &str,
    env: &[(&str, &str)],
) -> anyhow::Result<(Stack, aws_sdk_sqs::Client, String)> {
    let mut options =
        StackOptions::for_test(name)?.with_env(Service::Invoice, "CONSUMERS_ENABLED", "false");
    for (key, value) in env {
        options = options.with_service_env(key, value);
    }
    let stack = Stack::start(options).await?;
    let sqs = aws_sdk_sqs::Client::new(&emulator_config(&stack.emulator.endpoint()).await);
    let queue = stack.topology.queues_of(Service::Invoice)[0]
        .name
        .to_string();
    Ok((stack, sqs, queue))
}

/// Starts the invoice function with the invoice service's environment, plus
/// `extra`; the fail-point build when `extra` arms fail points.
fn start_function(
    stack: &mut Stack,
    api: &RuntimeApi,
    extra: &[(&str, &str)],
    log: &str,
) -> anyhow::Result<FunctionProcess> {
    let mut env = stack.service(Service::Invoice).env().to_vec();
    env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    let bins = bin_dir()?;
    let binary = if extra.iter().any(|(k, _)| *k == failpoints::VARIABLE) {
        bins.join(FAILPOINTS_DIR).join(FUNCTION)
    } else {
        bins.join(FUNCTION)
    };
    FunctionProcess::start(FUNCTION, &binary, api, &env, &stack.log_dir.join(log))
}

/// The stack's logs and the function's, for a failed test.
fn print_logs(stack: &Stack, function: &FunctionProcess) {
    eprintln!(
        "{}\n--- {} ---\n{}",
        stack.logs(40),
        function.name,
        function.log_tail(60)
    );
}

/// Waits until `queue` has `n` messages visible.
async fn wait_for_visible(sqs: &aws_sdk_sqs::Client, queue: &str, n: u64) -> anyhow::Result<()> {
    wait::until(
        &format!("{n} messages visible on {queue}"),
        SETTLE,
        || async {
            match probe::queue_depth(sqs, queue).await {
                Ok((visible, _)) if visible == n => Ok(()),
                Ok(depth) => Err(format!("(visible, in flight) = {depth:?}")),
                Err(e) => Err(e.to_string()),
            }
        },
    )
    .await?;
    Ok(())
}

/// What waits in `queue`'s DLQ (one receive), and the reason each carries.
async fn dead_letters(
    sqs: &aws_sdk_sqs::Client,
    queue: &str,
) -> anyhow::Result<Vec<(Option<String>, Option<String>)>> {
    let (dlq_url, _) = queue_url_and_arn(sqs, &format!("{queue}-dlq")).await?;
    let received = sqs
        .receive_message()
        .queue_url(&dlq_url)
        .max_number_of_messages(10)
        .wait_time_seconds(2)
        .message_attribute_names("All")
        .send()
        .await?
        .messages
        .unwrap_or_default();
    Ok(received
        .iter()
        .map(|m| {
            let reason = m
                .message_attributes()
                .and_then(|a| a.get(DLQ_REASON_ATTRIBUTE))
                .and_then(|v| v.string_value())
                .map(str::to_string);
            (m.body().map(str::to_string), reason)
        })
        .collect())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_order_flow_completes_with_the_invoice_consumer_as_a_lambda_function()
-> anyhow::Result<()> {
    let receiver = OtlpReceiver::start().await?;
    let (mut stack, sqs, queue) = start_stack(
        "lambda-flow",
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &receiver.endpoint()),
            ("OTEL_BSP_SCHEDULE_DELAY", "100"),
        ],
    )
    .await?;
    let api = RuntimeApi::start(FUNCTION).await?;
    let spawned = Instant::now();
    let mut function = start_function(&mut stack, &api, &[], "invoice-function.log")?;
    let mapping = EventSourceMapping::new(sqs, &queue).await?;
    let client = Client::for_stack(&stack);
    let result = async {
        let mut ids = Vec::new();
        for n in 0..3 {
            let body = order_body(&format!("lambda-{n}"), &[("SKU-L", 2, 1250)]);
            ids.push(client.place(&body).await?);
        }
        // The mapping polls while the journeys run, and records each answer.
        let took = std::sync::Mutex::new(Vec::new());
        wait::until("every order to be invoiced", SETTLE, || {
            let polled = mapping.poll_once(&api, SETTLE);
            let (ids, client, took) = (&ids, &client, &took);
            async move {
                if let Some(polled) = polled.await.map_err(|e| format!("{e:#}"))? {
                    if let Answer::Error(e) = &polled.answer {
                        return Err(format!("the invocation failed: {e}"));
                    }
                    if let Ok(mut took) = took.lock() {
                        took.push(polled.took);
                    }
                }
                for id in ids {
                    let order = client.order(*id).await.map_err(|e| e.to_string())?;
                    if order.body["status"] != "INVOICED" {
                        return Err(format!("order {id}: {}", order.body));
                    }
                }
                Ok(())
            }
        })
        .await?;
        for id in &ids {
            let order = wait_for_status(&client, *id, "INVOICED").await?;
            assert_eq!(order["invoice"]["total_minor"], 2500);
            wait_for_effects(&client, *id, "one invoice and its notification", |invoices, kinds| {
                invoices.len() == 1 && kinds.iter().any(|k| k == "invoice-issued")
            })
            .await?;
        }
        // The trace goes on through the function: its span of the message
        // is a child of the order relay's publish.
        let order = ids[0].to_string();
        wait::until("the function's span in the order's trace", SETTLE, || {
            let spans = receiver.spans();
            let order = order.clone();
            async move {
                let process = spans
                    .iter()
                    .find(|s| {
                        s.service == "invoice-service"
                            && s.name == "process invoice-orders"
                            && s.attribute("order_id") == Some(&order)
                    })
                    .ok_or("no span of the function for the order yet")?;
                let parent = spans
                    .iter()
                    .find(|s| Some(s.span_id.as_str()) == process.parent_span_id.as_deref())
                    .ok_or(format!("the function's span has no parent here: {process:?}"))?;
                if parent.service == "order-service"
                    && parent.name == "publish orders"
                    && parent.trace_id == process.trace_id
                {
                    Ok(())
                } else {
                    Err(format!("its parent is not the order relay's publish: {parent:?}"))
                }
            }
        })
        .await?;
        let init = api
            .first_poll()
            .context("the function never polled")?
            .duration_since(spawned);
        let took = took.lock().map(|t| t.clone()).unwrap_or_default();
        eprintln!(
            "invoice function: init (process start to its first poll) {init:?}; invocations {took:?}"
        );
        anyhow::Ok(())
    }
    .await;
    if result.is_err() {
        print_logs(&stack, &function);
    }
    anyhow::ensure!(function.exited()?.is_none(), "the function exited");
    result
}

/// Ten messages in one invocation: eight orders, a poison message, and an
/// order whose event another transaction holds in the invoice inbox (its
/// insert waits past the role's `lock_timeout`: a database error the consumer
/// retries). The partial batch response names only that one; the poison is
/// in the DLQ with its reason; eight invoices exist; the held one is applied
/// once the hold is gone; the eight delivered again change nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_with_a_poison_and_a_failing_message_fails_only_the_failing_one()
-> anyhow::Result<()> {
    let (mut stack, sqs, queue) = start_stack("lambda-batch", &[]).await?;
    let api = RuntimeApi::start(FUNCTION).await?;
    let invoice_db = PgPool::connect(&stack.database_urls["invoice"]).await?;
    // Before the function connects: its sessions take the role's settings.
    sqlx::query("ALTER ROLE CURRENT_USER SET lock_timeout = '1s'")
        .execute(&invoice_db)
        .await?;
    let function = start_function(&mut stack, &api, &[], "invoice-function.log")?;
    let result = partial_batch(&stack, &sqs, &queue, &api, &invoice_db).await;
    if result.is_err() {
        print_logs(&stack, &function);
    }
    result
}

async fn partial_batch(
    stack: &Stack,
    sqs: &aws_sdk_sqs::Client,
    queue: &str,
    api: &RuntimeApi,
    invoice_db: &PgPool,
) -> anyhow::Result<()> {
    let client = Client::for_stack(stack);
    let order_db = PgPool::connect(&stack.database_urls["order"]).await?;
    let mut orders = Vec::new();
    for n in 0..9 {
        let body = order_body(&format!("batch-{n}"), &[("SKU-B", 1, 700 + n)]);
        orders.push(client.place(&body).await?);
    }
    wait_for_visible(sqs, queue, 9).await?;
    let (queue_url, _) = queue_url_and_arn(sqs, queue).await?;
    sqs.send_message()
        .queue_url(&queue_url)
        .message_body("this is not an event")
        .send()
        .await?;
    wait_for_visible(sqs, queue, 10).await?;

    // The last order's event is held: its inbox insert waits, then fails.
    let held = orders[8];
    let (held_event, _) = probe::outbox_event(&order_db, "OrderPlaced", held)
        .await?
        .context("the held order's event")?;
    let mut hold = invoice_db.begin().await?;
    sqlx::query(
        "INSERT INTO inbox (event_id, event_type, source, queue) VALUES ($1, 'OrderPlaced', 'test-hold', $2)",
    )
    .bind(held_event)
    .bind(queue)
    .execute(&mut *hold)
    .await?;

    let mut mapping = EventSourceMapping::new(sqs.clone(), queue).await?;
    mapping.batching_window = Duration::from_secs(5);
    let polled = mapping
        .poll_once(api, SETTLE)
        .await?
        .context("a batch was received")?;
    let records = polled.event["Records"]
        .as_array()
        .context("records")?
        .clone();
    assert_eq!(records.len(), 10, "one batch of ten");
    let Answer::Response(response) = &polled.answer else {
        anyhow::bail!("the invocation failed: {:?}", polled.answer);
    };
    eprintln!("partial batch response: {response}");
    assert_eq!(polled.failed.len(), 1, "one failure reported: {response}");
    let failed = records
        .iter()
        .find(|r| r["messageId"] == polled.failed[0].as_str())
        .context("the failure names a message of the batch")?;
    assert!(
        failed["body"]
            .as_str()
            .is_some_and(|b| b.contains(&held.to_string())),
        "the failure is the held order's message: {failed}"
    );
    assert_eq!(polled.deleted, 9, "the nine others were deleted");

    for id in &orders[..8] {
        assert_eq!(client.invoices_of(*id).await?.len(), 1, "order {id}");
    }
    assert!(client.invoices_of(held).await?.is_empty());
    let dead = dead_letters(sqs, queue).await?;
    assert_eq!(dead.len(), 1, "the poison alone is in the DLQ: {dead:?}");
    assert_eq!(dead[0].0.as_deref(), Some("this is not an event"));
    assert!(
        dead[0].1.as_ref().is_some_and(|r| !r.is_empty()),
        "the DLQ copy says why: {dead:?}"
    );

    // The hold is released; the retried message comes back after its delay
    // and is applied.
    hold.rollback().await?;
    mapping.batching_window = Duration::from_secs(1);
    wait::until("the held order's message to be applied", SETTLE, || async {
        mapping
            .poll_once(api, SETTLE)
            .await
            .map_err(|e| format!("{e:#}"))?;
        match client.invoices_of(held).await {
            Ok(invoices) if invoices.len() == 1 => Ok(()),
            Ok(invoices) => Err(format!("invoices {invoices:?}")),
            Err(e) => Err(e.to_string()),
        }
    })
    .await?;

    // The eight applied messages delivered again: each a duplicate.
    let outbox_rows = || async {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM outbox")
            .fetch_one(invoice_db)
            .await
    };
    let before = outbox_rows().await?;
    let again: Vec<Value> = records
        .iter()
        .filter(|r| r["messageId"] != polled.failed[0].as_str())
        .filter(|r| r["body"] != "this is not an event")
        .cloned()
        .collect();
    assert_eq!(again.len(), 8);
    let answer = api.invoke(json!({ "Records": again }), SETTLE).await?;
    assert_eq!(
        answer,
        Answer::Response(json!({ "batchItemFailures": [] })),
        "a redelivered batch succeeds whole"
    );
    assert_eq!(outbox_rows().await?, before, "no event written again");
    for id in &orders[..8] {
        assert_eq!(client.invoices_of(*id).await?.len(), 1, "order {id}");
        let (event, _) = probe::outbox_event(&order_db, "OrderPlaced", *id)
            .await?
            .context("event")?;
        assert_eq!(
            probe::inbox_entry(invoice_db, event).await?.duplicates,
            1,
            "order {id}'s event counted once as a duplicate"
        );
    }
    Ok(())
}

/// An invocation killed after its commit, before it relayed: the invoice is
/// there, its event is not published. The schedule's sweep, in a fresh
/// function, publishes it, and the order is invoiced.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sweep_publishes_what_a_killed_invocation_left() -> anyhow::Result<()> {
    let (mut stack, sqs, queue) = start_stack("lambda-sweep", &[]).await?;
    let api = RuntimeApi::start(FUNCTION).await?;
    let crash = format!("{}=return", failpoints::CONSUMER_AFTER_COMMIT);
    let mut killed = start_function(
        &mut stack,
        &api,
        &[(failpoints::VARIABLE, &crash)],
        "invoice-function-killed.log",
    )?;
    // The function alone relays the invoice outbox here: the service's
    // process, whose relay would publish the event first, is stopped.
    stack
        .service(Service::Invoice)
        .stop(nix::sys::signal::Signal::SIGTERM)
        .await?;
    let client = Client::for_stack(&stack);
    let invoice_db = PgPool::connect(&stack.database_urls["invoice"]).await?;
    let invoices_of = |id: Uuid| {
        let db = invoice_db.clone();
        async move {
            sqlx::query_scalar::<_, i64>("SELECT count(*) FROM invoices WHERE order_id = $1")
                .bind(id)
                .fetch_one(&db)
                .await
        }
    };
    let result = async {
        let id = client
            .place(&order_body("swept", &[("SKU-S", 1, 4200)]))
            .await?;
        wait_for_visible(&sqs, &queue, 1).await?;
        let mapping = EventSourceMapping::new(sqs.clone(), &queue).await?;
        let died = wait::until(
            "the function to be killed at its fail point",
            SETTLE,
            || {
                let exited = killed.exited().map_err(|e| e.to_string());
                async move {
                    match exited? {
                        Some(status) => Ok(status),
                        None => Err("running".to_string()),
                    }
                }
            },
        );
        tokio::select! {
            polled = mapping.poll_once(&api, SETTLE) => {
                anyhow::bail!("the invocation was answered: {polled:?}")
            }
            status = died => eprintln!("function killed: {}", status?),
        }
        assert_eq!(invoices_of(id).await?, 1, "the commit stands");
        let issued = probe::outbox_event(&invoice_db, "InvoiceIssued", id).await?;
        assert!(
            matches!(issued, Some((_, false))),
            "the event waits in the outbox: {issued:?}"
        );
        assert_eq!(client.order(id).await?.body["status"], "PLACED");

        let mut fresh = start_function(&mut stack, &api, &[], "invoice-function.log")?;
        let schedule = json!({
            "version": "0",
            "id": Uuid::now_v7().to_string(),
            "detail-type": "Scheduled Event",
            "source": "aws.events",
            "account": "000000000000",
            "time": "2026-12-08T00:00:00Z",
            "region": "us-east-1",
            "resources": ["arn:aws:events:us-east-1:000000000000:rule/invoice-outbox-sweep"],
            "detail": {}
        });
        let answer = api.invoke(schedule, SETTLE).await;
        if answer.is_err() {
            eprintln!("--- fresh {FUNCTION} ---\n{}", fresh.log_tail(40));
        }
        assert_eq!(answer?, Answer::Response(json!({ "published": 1 })));
        let issued = probe::outbox_event(&invoice_db, "InvoiceIssued", id).await?;
        assert!(matches!(issued, Some((_, true))), "published: {issued:?}");
        wait_for_status(&client, id, "INVOICED").await?;
        anyhow::ensure!(fresh.exited()?.is_none(), "the fresh function exited");
        anyhow::Ok(())
    }
    .await;
    if result.is_err() {
        print_logs(&stack, &killed);
    }
    result
}

/// The function packaged as Lambda wants it (a zip whose `bootstrap` is the
/// binary) and deployed to MiniStack's own Lambda, which runs `provided.*`
/// functions as local processes behind its Runtime API, with its own SQS
/// event source mapping honouring partial batch responses: our function
/// under a Lambda emulator that is not ours. Always on MiniStack (the other
/// emulators have no Lambda that runs a binary).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_invoice_function_runs_on_ministacks_lambda_behind_its_event_source_mapping()
-> anyhow::Result<()> {
    use aws_sdk_lambda::primitives::Blob;
    use aws_sdk_lambda::types::{Environment, FunctionCode, FunctionResponseType, Runtime};

    let mut options = StackOptions::for_test("lambda-ministack")?.with_env(
        Service::Invoice,
        "CONSUMERS_ENABLED",
        "false",
    );
    options.emulator = testkit::emulator::EmulatorKind::Ministack;
    let mut stack = Stack::start(options).await?;
    let sdk = emulator_config(&stack.emulator.endpoint()).await;
    let (sqs, lambda) = (
        aws_sdk_sqs::Client::new(&sdk),
        aws_sdk_lambda::Client::new(&sdk),
    );
    let queue = stack.topology.queues_of(Service::Invoice)[0]
        .name
        .to_string();
    let result = async {
        let binary = std::fs::read(bin_dir()?.join(FUNCTION))?;
        let mut package = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        package.start_file(
            "bootstrap",
            zip::write::SimpleFileOptions::default().unix_permissions(0o755),
        )?;
        std::io::Write::write_all(&mut package, &binary)?;
        let package = package.finish()?.into_inner();
        let variables = stack
            .service(Service::Invoice)
            .env()
            .iter()
            .cloned()
            .collect();
        lambda
            .create_function()
            .function_name(FUNCTION)
            .runtime(Runtime::Providedal2023)
            .handler("bootstrap")
            .role("arn:aws:iam::000000000000:role/invoice-function")
            .timeout(30)
            .memory_size(256)
            .code(FunctionCode::builder().zip_file(Blob::new(package)).build())
            .environment(
                Environment::builder()
                    .set_variables(Some(variables))
                    .build(),
            )
            .send()
            .await?;
        let (queue_url, queue_arn) = queue_url_and_arn(&sqs, &queue).await?;
        lambda
            .create_event_source_mapping()
            .function_name(FUNCTION)
            .event_source_arn(queue_arn)
            .batch_size(10)
            .function_response_types(FunctionResponseType::ReportBatchItemFailures)
            .enabled(true)
            .send()
            .await?;

        // Orders through the whole flow, and a poison message among them:
        // the function sends it to the DLQ with its reason and succeeds.
        let client = Client::for_stack(&stack);
        let mut ids = Vec::new();
        for n in 0..3 {
            let body = order_body(&format!("ministack-{n}"), &[("SKU-M", 1, 990)]);
            ids.push(client.place(&body).await?);
        }
        sqs.send_message()
            .queue_url(&queue_url)
            .message_body("not an event either")
            .send()
            .await?;
        for id in &ids {
            wait_for_status(&client, *id, "INVOICED").await?;
            assert_eq!(client.invoices_of(*id).await?.len(), 1, "order {id}");
        }
        let dlq = format!("{queue}-dlq");
        wait::until("the poison in the DLQ", SETTLE, || async {
            match probe::queue_depth(&sqs, &dlq).await {
                Ok((1, _)) => Ok(()),
                Ok(depth) => Err(format!("(visible, in flight) = {depth:?}")),
                Err(e) => Err(e.to_string()),
            }
        })
        .await?;
        let dead = dead_letters(&sqs, &queue).await?;
        assert!(
            dead.first()
                .and_then(|(_, r)| r.as_ref())
                .is_some_and(|r| !r.is_empty()),
            "the function dead-lettered the poison with its reason: {dead:?}"
        );
        // Deleted by the mapping once the function answered: nothing left.
        probe::wait_until_drained(&sqs, &[queue.as_str()], SETTLE).await?;
        anyhow::Ok(())
    }
    .await;
    if result.is_err() {
        eprintln!(
            "{}\n--- emulator ---\n{}",
            stack.logs(40),
            stack.emulator.process().log_tail(80)
        );
    }
    result
}

/// The invoice database stops while messages wait: the invocation fails as
/// a whole (the mapping deletes nothing), and the function holds the batch
/// back for the longest retry delay, so that a mapping polling on through an
/// outage does not spend the messages' receives (the long-running consumer
/// pauses instead). A poison message among them reaches the DLQ once, not
/// again with the batch. Once the database is back the same messages are
/// applied, each order invoiced once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_that_does_not_answer_fails_the_whole_invocation() -> anyhow::Result<()> {
    let mut options = StackOptions::for_test("lambda-db-down")?
        .with_env(Service::Invoice, "CONSUMERS_ENABLED", "false")
        .with_env(Service::Invoice, "DATABASE_ACQUIRE_TIMEOUT_MS", "500")
        .with_env(
            Service::Invoice,
            "CONSUMER_RETRY_MAX_DELAY_SECS",
            &HELD_BACK_SECS.to_string(),
        );
    options.postgres = harness::stack::PostgresSource::EphemeralPerService;
    let mut stack = Stack::start(options).await?;
    let sqs = aws_sdk_sqs::Client::new(&emulator_config(&stack.emulator.endpoint()).await);
    let queue = stack.topology.queues_of(Service::Invoice)[0]
        .name
        .to_string();
    let api = RuntimeApi::start(FUNCTION).await?;
    let function = start_function(&mut stack, &api, &[], "invoice-function.log")?;
    let result = async {
        let client = Client::for_stack(&stack);
        let mut ids = Vec::new();
        for n in 0..3 {
            let body = order_body(&format!("db-down-{n}"), &[("SKU-D", 1, 1500)]);
            ids.push(client.place(&body).await?);
        }
        let (queue_url, _) = queue_url_and_arn(&sqs, &queue).await?;
        sqs.send_message()
            .queue_url(&queue_url)
            .message_body("no event at all")
            .send()
            .await?;
        wait_for_visible(&sqs, &queue, 4).await?;
        // The function's init connects to the database: stopping it before
        // the init is done would test the init, not the invocation.
        wait::until("the function initialised", SETTLE, || async {
            api.first_poll()
                .map(|_| ())
                .ok_or_else(|| "no poll for an invocation yet".to_string())
        })
        .await?;
        stack
            .database_cluster(Service::Invoice)
            .context("the invoice service has a server of its own")?
            .stop_server()
            .await?;
        let mut mapping = EventSourceMapping::new(sqs.clone(), &queue).await?;
        mapping.batching_window = Duration::from_secs(2);
        let polled = mapping
            .poll_once(&api, SETTLE)
            .await?
            .context("the three messages were received")?;
        assert!(
            matches!(&polled.answer, Answer::Error(e) if e.to_string().contains("database")),
            "the invocation failed on the database: {:?}",
            polled.answer
        );
        assert_eq!(
            polled.deleted, 0,
            "the mapping deletes nothing after a failed invocation"
        );
        // Held back, not released after the first retry delay (2 s): a
        // receive that waits a few seconds finds nothing.
        mapping.batching_window = Duration::from_secs(HELD_BACK_SECS / 3);
        let received = mapping.receive().await?;
        assert!(
            received.is_empty(),
            "the failed batch is held back for {HELD_BACK_SECS} s, yet {} came back",
            received.len()
        );
        stack
            .database_cluster(Service::Invoice)
            .context("the invoice server")?
            .start_server()
            .await?;
        // The messages come back after their visibility timeout; the mapping
        // polls until every order is invoiced.
        mapping.batching_window = Duration::from_secs(1);
        wait::until(
            "every order invoiced after the database is back",
            SETTLE,
            || async {
                mapping
                    .poll_once(&api, SETTLE)
                    .await
                    .map_err(|e| format!("{e:#}"))?;
                for id in &ids {
                    match client.invoices_of(*id).await {
                        Ok(invoices) if invoices.len() == 1 => {}
                        Ok(invoices) => return Err(format!("order {id}: {invoices:?}")),
                        Err(e) => return Err(e.to_string()),
                    }
                }
                Ok(())
            },
        )
        .await?;
        probe::wait_until_drained(&sqs, &[queue.as_str()], SETTLE).await?;
        let dead = dead_letters(&sqs, &queue).await?;
        assert_eq!(dead.len(), 1, "one DLQ copy of the poison: {dead:?}");
        anyhow::Ok(())
    }
    .await;
    if result.is_err() {
        print_logs(&stack, &function);
    }
    result
}
