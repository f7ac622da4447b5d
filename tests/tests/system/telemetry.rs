//! End to end: one order is one trace across the three services, and each
//! service's `/metrics` counts what happened to it, a redelivery included.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use anyhow::Context;
use contracts::topology::Service;
use harness::client::{Client, order_body};
use harness::probe::{self, Scrape};
use harness::stack::{Stack, StackOptions, emulator_config};
use testkit::otlp::{OtlpReceiver, ReceivedSpan};
use testkit::wait;
use uuid::Uuid;

const SETTLE: Duration = Duration::from_secs(60);

/// The spans of one order's journey, found in what the services exported.
struct Journey {
    trace_id: String,
    http: ReceivedSpan,
    publish_orders: ReceivedSpan,
    process_invoice_orders: ReceivedSpan,
    publish_billing: ReceivedSpan,
    process_order_invoices: ReceivedSpan,
    process_notification_invoices: ReceivedSpan,
    process_notification_orders: ReceivedSpan,
    /// Every span of the trace, by span id.
    spans: BTreeMap<String, ReceivedSpan>,
}

/// The journey of `order_id`, once every hop has exported its span; `Err`
/// says what is still missing.
fn journey(spans: &[ReceivedSpan], order_id: Uuid) -> Result<Journey, String> {
    let order_id = order_id.to_string();
    let trace_ids: BTreeSet<&str> = spans
        .iter()
        .filter(|s| s.attribute("order_id") == Some(order_id.as_str()))
        .map(|s| s.trace_id.as_str())
        .collect();
    let trace_id = match trace_ids.len() {
        0 => return Err("no span names the order yet".into()),
        1 => trace_ids.into_iter().next().unwrap_or_default().to_string(),
        _ => {
            return Err(format!(
                "the order's spans are in {} traces",
                trace_ids.len()
            ));
        }
    };
    let trace: BTreeMap<String, ReceivedSpan> = spans
        .iter()
        .filter(|s| s.trace_id == trace_id)
        .map(|s| (s.span_id.clone(), s.clone()))
        .collect();
    let find = |service: &str, name: &str| {
        trace
            .values()
            .find(|s| s.service == service && s.name == name)
            .cloned()
            .ok_or_else(|| {
                let seen: Vec<String> = trace
                    .values()
                    .map(|s| format!("{}: {}", s.service, s.name))
                    .collect();
                format!("no '{name}' span from {service} yet; the trace has {seen:?}")
            })
    };
    Ok(Journey {
        http: find("order-service", "POST /orders")?,
        publish_orders: find("order-service", "publish orders")?,
        process_invoice_orders: find("invoice-service", "process invoice-orders")?,
        publish_billing: find("invoice-service", "publish billing")?,
        process_order_invoices: find("order-service", "process order-invoices")?,
        process_notification_invoices: find(
            "notification-service",
            "process notification-invoices",
        )?,
        process_notification_orders: find("notification-service", "process notification-orders")?,
        trace_id,
        spans: trace,
    })
}

impl Journey {
    /// Whether `ancestor` is `span`'s parent, or its parent's, and so on.
    fn descends_from(&self, span: &ReceivedSpan, ancestor: &ReceivedSpan) -> bool {
        let mut parent = span.parent_span_id.clone();
        while let Some(id) = parent {
            if id == ancestor.span_id {
                return true;
            }
            parent = self.spans.get(&id).and_then(|s| s.parent_span_id.clone());
        }
        false
    }
}

fn is_parent(parent: &ReceivedSpan, child: &ReceivedSpan) -> bool {
    child.parent_span_id.as_deref() == Some(parent.span_id.as_str())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_order_is_one_trace_from_the_http_request_to_every_consumer() -> anyhow::Result<()> {
    let receiver = OtlpReceiver::start().await?;
    let options = StackOptions::for_test("telemetry-trace")?
        .with_service_env("OTEL_EXPORTER_OTLP_ENDPOINT", &receiver.endpoint())
        // Export within a fraction of a second instead of the default 5 s.
        .with_service_env("OTEL_BSP_SCHEDULE_DELAY", "100");
    let stack = Stack::start(options).await?;
    let client = Client::for_stack(&stack);
    let id = client
        .place(&order_body("erin", &[("SKU-1", 2, 1250)]))
        .await?;
    let found = wait::until("every hop of the order to export its span", SETTLE, || {
        let spans = receiver.spans();
        async move { journey(&spans, id) }
    })
    .await;
    let j = match found {
        Ok(journey) => journey,
        Err(e) => {
            eprintln!("{}", stack.logs(30));
            return Err(e.into());
        }
    };

    let services: BTreeSet<&str> = j.spans.values().map(|s| s.service.as_str()).collect();
    assert_eq!(
        services,
        BTreeSet::from(["invoice-service", "notification-service", "order-service"]),
        "trace {}",
        j.trace_id
    );
    // The request starts the trace; the relay's publish, run later from the
    // outbox, is a child of the request, not a root of its own.
    assert_eq!(j.http.parent_span_id, None);
    assert_eq!(j.http.kind, "server");
    assert_eq!(j.http.attribute("http.route"), Some("/orders"));
    assert_eq!(j.http.attribute("http.response.status_code"), Some("202"));
    assert!(j.descends_from(&j.publish_orders, &j.http));
    // Each consumer continues from the span that published its message: SNS
    // carries it in the message attributes, EventBridge in the envelope.
    for (parent, child) in [
        (&j.publish_orders, &j.process_invoice_orders),
        (&j.publish_orders, &j.process_notification_orders),
        (&j.publish_billing, &j.process_order_invoices),
        (&j.publish_billing, &j.process_notification_invoices),
    ] {
        assert!(
            is_parent(parent, child),
            "'{}' of {} is not the parent of '{}' of {}",
            parent.name,
            parent.service,
            child.name,
            child.service
        );
        assert_eq!(child.kind, "consumer");
        assert_eq!(child.attribute("messaging.system"), Some("aws_sqs"));
        assert_eq!(child.attribute("messaging.operation.type"), Some("process"));
        assert!(child.attribute("messaging.message.id").is_some());
    }
    // The invoice is put on the bus by the invoice service's relay, as a
    // child of the handler that issued it.
    assert!(j.descends_from(&j.publish_billing, &j.process_invoice_orders));
    for (publish, system, destination) in [
        (&j.publish_orders, "aws_sns", "orders"),
        (&j.publish_billing, "aws_eventbridge", "billing"),
    ] {
        assert_eq!(publish.kind, "producer");
        assert_eq!(publish.attribute("messaging.system"), Some(system));
        assert_eq!(
            publish.attribute("messaging.destination.name"),
            Some(destination)
        );
        assert!(publish.attribute("messaging.message.id").is_some());
    }
    // The relay's batch span links to the events it sent.
    let batch = receiver
        .spans()
        .into_iter()
        .find(|s| {
            s.name == "send orders"
                && s.links
                    .iter()
                    .any(|(_, span)| span == &j.publish_orders.span_id)
        })
        .context("no 'send orders' batch span links to the publish span")?;
    assert_eq!(batch.attribute("messaging.operation.type"), Some("send"));
    // Database spans follow the conventions too.
    let insert = j
        .spans
        .values()
        .find(|s| s.name == "INSERT outbox" && s.service == "order-service")
        .context("no outbox insert span in the order's trace")?;
    assert_eq!(insert.attribute("db.system.name"), Some("postgresql"));
    assert_eq!(insert.attribute("db.collection.name"), Some("outbox"));
    Ok(())
}

async fn scrape(stack: &Stack, service: Service) -> anyhow::Result<Scrape> {
    probe::scrape(&stack.http, &stack.admin_url(service)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_metrics_count_an_order_its_requests_and_a_skipped_duplicate() -> anyhow::Result<()> {
    let options = StackOptions::for_test("telemetry-metrics")?
        .with_service_env("METRICS_SAMPLE_INTERVAL_MS", "200");
    let stack = Stack::start(options).await?;
    let result = metrics_flow(&stack).await;
    if result.is_err() {
        eprintln!("{}", stack.logs(30));
    }
    result
}

async fn metrics_flow(stack: &Stack) -> anyhow::Result<()> {
    let client = Client::for_stack(stack);
    let id = client
        .place(&order_body("frank", &[("SKU-1", 1, 1000)]))
        .await?;
    wait::until("the order's invoice and notifications", SETTLE, || async {
        let invoices = client.invoices_of(id).await.map_err(|e| e.to_string())?;
        let kinds = client
            .notification_kinds(id)
            .await
            .map_err(|e| e.to_string())?;
        if invoices.len() == 1 && kinds.len() == 2 {
            Ok(())
        } else {
            Err(format!("invoices {invoices:?}, notifications {kinds:?}"))
        }
    })
    .await?;
    assert_eq!(client.order(id).await?.status, 200);
    assert_eq!(client.order(Uuid::now_v7()).await?.status, 404);

    // Redeliver the OrderPlaced envelope, as SQS may: both consumers skip it.
    let pool = sqlx::PgPool::connect(&stack.database_urls["order"]).await?;
    let envelope: String = sqlx::query_scalar(
        "SELECT payload::text FROM outbox WHERE event_type = 'OrderPlaced' AND payload->>'subject' = $1",
    )
    .bind(id.to_string())
    .fetch_one(&pool)
    .await?;
    let sqs = aws_sdk_sqs::Client::new(&emulator_config(&stack.emulator.endpoint()).await);
    for queue in ["invoice-orders", "notification-orders"] {
        sqs.send_message()
            .queue_url(&stack.provisioned.queues[queue].url)
            .message_body(&envelope)
            .send()
            .await?;
    }

    let q = |queue| [("queue", queue)];
    let (invoice, notification) = wait::until(
        "both duplicates to be counted as skipped",
        SETTLE,
        || async {
            let invoice = scrape(stack, Service::Invoice)
                .await
                .map_err(|e| e.to_string())?;
            let notification = scrape(stack, Service::Notification)
                .await
                .map_err(|e| e.to_string())?;
            let skipped = (
                invoice.value("consumer_messages_duplicates_total", &q("invoice-orders")),
                notification.value(
                    "consumer_messages_duplicates_total",
                    &q("notification-orders"),
                ),
            );
            if skipped == (Some(1.0), Some(1.0)) {
                Ok((invoice, notification))
            } else {
                Err(format!(
                    "duplicates skipped (invoice, notification): {skipped:?}"
                ))
            }
        },
    )
    .await?;

    // Each queue: what arrived, what was applied, what was skipped, nothing failed.
    for (scrape, queue, received, processed, duplicates) in [
        (&invoice, "invoice-orders", 2.0, 1.0, 1.0),
        (&notification, "notification-orders", 2.0, 1.0, 1.0),
        (&notification, "notification-invoices", 1.0, 1.0, 0.0),
    ] {
        let counts = (
            scrape.value("consumer_messages_received_total", &q(queue)),
            scrape.value("consumer_messages_processed_total", &q(queue)),
            scrape.value("consumer_messages_duplicates_total", &q(queue)),
            scrape.value("consumer_handler_duration_seconds_count", &q(queue)),
        );
        assert_eq!(
            counts,
            (
                Some(received),
                Some(processed),
                Some(duplicates),
                Some(received)
            ),
            "{queue}: received, processed, duplicates, handled"
        );
        for outcome in ["retry", "dead_letter"] {
            assert_eq!(
                scrape.value(
                    "consumer_messages_failed_total",
                    &[("queue", queue), ("outcome", outcome)]
                ),
                Some(0.0),
                "{queue} {outcome}"
            );
        }
    }
    assert_eq!(
        invoice.value(
            "relay_messages_published_total",
            &[("destination", "billing")]
        ),
        Some(1.0)
    );

    // The order service: its requests by route and status, its relay, its
    // consumer, and the sampled gauges once the sampler has run.
    let order = wait::until(
        "the order service's gauges to be sampled",
        SETTLE,
        || async {
            let order = scrape(stack, Service::Order)
                .await
                .map_err(|e| e.to_string())?;
            let sampled = (
                order.value("outbox_backlog", &[]),
                order.value("consumer_dlq_depth", &q("order-invoices")),
            );
            if sampled == (Some(0.0), Some(0.0)) {
                Ok(order)
            } else {
                Err(format!("backlog and DLQ depth: {sampled:?}"))
            }
        },
    )
    .await?;
    let request = |method, route, status| {
        order.value(
            "http_requests_total",
            &[("method", method), ("route", route), ("status", status)],
        )
    };
    assert_eq!(request("POST", "/orders", "202"), Some(1.0));
    assert_eq!(request("GET", "/orders/{id}", "200"), Some(1.0));
    assert_eq!(request("GET", "/orders/{id}", "404"), Some(1.0));
    assert!(
        order
            .value(
                "http_request_duration_seconds_count",
                &[("method", "GET"), ("route", "/orders/{id}")]
            )
            .is_some_and(|n| n >= 2.0)
    );
    assert_eq!(
        order.value(
            "relay_messages_published_total",
            &[("destination", "orders")]
        ),
        Some(1.0)
    );
    assert!(
        order
            .value(
                "relay_publish_batch_size_count",
                &[("destination", "orders")]
            )
            .is_some_and(|n| n >= 1.0)
    );
    assert_eq!(
        order.value("outbox_oldest_unpublished_age_seconds", &[]),
        Some(0.0)
    );
    assert_eq!(
        order.value("consumer_messages_processed_total", &q("order-invoices")),
        Some(1.0)
    );
    Ok(())
}
