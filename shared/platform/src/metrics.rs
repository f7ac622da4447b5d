//! The metrics an operator needs, served as `GET /metrics`.
//!
//! A message-driven system fails quietly: nothing returns an error when the
//! outbox stops draining or a queue's DLQ fills up. These are the numbers that
//! show where messages pile up and how fast they move:
//!
//! | metric | labels | what |
//! |---|---|---|
//! | `outbox_backlog` | | unpublished outbox rows (sampled) |
//! | `outbox_oldest_unpublished_age_seconds` | | age of the oldest of them (sampled) |
//! | `relay_publish_batch_size` | `destination` | events per publish call (histogram) |
//! | `relay_publish_duration_seconds` | `destination` | latency of a publish call (histogram) |
//! | `relay_messages_published_total` | `destination` | events the broker accepted |
//! | `relay_messages_failed_total` | `destination` | events refused or whose call failed, to be retried |
//! | `consumer_messages_received_total` | `queue` | messages received from SQS |
//! | `consumer_messages_processed_total` | `queue` | events applied |
//! | `consumer_messages_duplicates_total` | `queue` | duplicates skipped by the inbox |
//! | `consumer_messages_failed_total` | `queue`, `outcome` | `retry` (left for a later attempt), `unavailable` (left because the service's database did not answer; receiving pauses) or `dead_letter` (sent to the DLQ) |
//! | `consumer_handler_duration_seconds` | `queue` | inbox transaction with the handler (histogram) |
//! | `consumer_messages_deleted_total` | `queue` | messages deleted after their effect committed (or was found a duplicate) |
//! | `consumer_delete_batch_size` | `queue` | receipts per `DeleteMessageBatch` (histogram): above one when deletes of several polls share a call |
//! | `consumer_deletes_lost_total` | `queue` | deletes refused or given up after retries: each message comes back and the inbox skips it |
//! | `consumer_dlq_depth` | `queue` | messages in the queue's DLQ (sampled) |
//! | `db_pool_connections` | `state` | the service's pooled Postgres connections, `in_use` or `idle` (sampled): all in use while the database answers means something holds them |
//! | `http_requests_total` | `method`, `route`, `status` | requests answered |
//! | `http_request_duration_seconds` | `method`, `route` | request latency (histogram) |
//!
//! Counters and histograms are recorded where the work happens; the gauges
//! are sampled by a background task ([`sampler`]) every
//! `METRICS_SAMPLE_INTERVAL_MS`. The registry is one per process: a service
//! is one process, and tests that build several apps in one process share it.
//! The text is OpenMetrics, which Prometheus scrapes natively.

pub mod sampler;

use std::sync::LazyLock;
use std::time::Duration;

use axum::Router;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets, linear_buckets};
use prometheus_client::registry::{Registry, Unit};

/// The content type of the OpenMetrics text format.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PoolStateLabels {
    pub state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct QueueLabels {
    pub queue: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FailureLabels {
    pub queue: &'static str,
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DestinationLabels {
    pub destination: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub method: String,
    pub route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub method: String,
    pub route: String,
    pub status: String,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

/// Latencies from 1 ms to about 16 s.
fn latency() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 15))
}

/// Batch sizes 1 to 10, the AWS batch limit.
fn batch_size() -> Histogram {
    Histogram::new(linear_buckets(1.0, 1.0, 10))
}

/// The outbox and its relay.
pub struct OutboxMetrics {
    pub backlog: Gauge,
    pub oldest_age_seconds: Gauge<f64, std::sync::atomic::AtomicU64>,
    pub batch_size: HistogramFamily<DestinationLabels>,
    pub publish_duration: HistogramFamily<DestinationLabels>,
    pub published: Family<DestinationLabels, Counter>,
    pub failed: Family<DestinationLabels, Counter>,
}

/// The SQS consumers.
pub struct ConsumerMetrics {
    pub received: Family<QueueLabels, Counter>,
    pub processed: Family<QueueLabels, Counter>,
    pub duplicates: Family<QueueLabels, Counter>,
    pub failed: Family<FailureLabels, Counter>,
    pub handler_duration: HistogramFamily<QueueLabels>,
    pub deleted: Family<QueueLabels, Counter>,
    pub delete_batch_size: HistogramFamily<QueueLabels>,
    pub deletes_lost: Family<QueueLabels, Counter>,
    pub dlq_depth: Family<QueueLabels, Gauge>,
}

/// The HTTP edge.
pub struct HttpMetrics {
    pub requests: Family<RequestLabels, Counter>,
    pub duration: HistogramFamily<RouteLabels>,
}

/// Every metric of the process, and the registry that renders them.
pub struct Metrics {
    registry: Registry,
    pub outbox: OutboxMetrics,
    pub consumer: ConsumerMetrics,
    pub http: HttpMetrics,
    pub db_pool: Family<PoolStateLabels, Gauge>,
}

static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);

/// The process's metrics.
pub fn get() -> &'static Metrics {
    &METRICS
}

impl Metrics {
    fn new() -> Self {
        let mut registry = Registry::default();
        let outbox = OutboxMetrics {
            backlog: Gauge::default(),
            oldest_age_seconds: Gauge::default(),
            batch_size: Family::new_with_constructor(batch_size),
            publish_duration: Family::new_with_constructor(latency),
            published: Family::default(),
            failed: Family::default(),
        };
        registry.register(
            "outbox_backlog",
            "Outbox rows not yet published (sampled)",
            outbox.backlog.clone(),
        );
        registry.register_with_unit(
            "outbox_oldest_unpublished_age",
            "Age of the oldest unpublished outbox row, 0 when there is none (sampled)",
            Unit::Seconds,
            outbox.oldest_age_seconds.clone(),
        );
        registry.register(
            "relay_publish_batch_size",
            "Events per publish call",
            outbox.batch_size.clone(),
        );
        registry.register_with_unit(
            "relay_publish_duration",
            "Latency of one publish call to the broker",
            Unit::Seconds,
            outbox.publish_duration.clone(),
        );
        registry.register(
            "relay_messages_published",
            "Events the broker accepted",
            outbox.published.clone(),
        );
        registry.register(
            "relay_messages_failed",
            "Events the broker refused or whose publish call failed; they are retried",
            outbox.failed.clone(),
        );

        let consumer = ConsumerMetrics {
            received: Family::default(),
            processed: Family::default(),
            duplicates: Family::default(),
            failed: Family::default(),
            handler_duration: Family::new_with_constructor(latency),
            deleted: Family::default(),
            delete_batch_size: Family::new_with_constructor(batch_size),
            deletes_lost: Family::default(),
            dlq_depth: Family::default(),
        };
        registry.register(
            "consumer_messages_received",
            "Messages received from the queue",
            consumer.received.clone(),
        );
        registry.register(
            "consumer_messages_processed",
            "Events applied",
            consumer.processed.clone(),
        );
        registry.register(
            "consumer_messages_duplicates",
            "Events already applied before, skipped by the inbox",
            consumer.duplicates.clone(),
        );
        registry.register(
            "consumer_messages_failed",
            "Messages not applied: left for a retry, or sent to the DLQ",
            consumer.failed.clone(),
        );
        registry.register_with_unit(
            "consumer_handler_duration",
            "The inbox transaction with the handler, per message",
            Unit::Seconds,
            consumer.handler_duration.clone(),
        );
        registry.register(
            "consumer_messages_deleted",
            "Messages deleted after their effect committed or was found a duplicate",
            consumer.deleted.clone(),
        );
        registry.register(
            "consumer_delete_batch_size",
            "Receipts per DeleteMessageBatch call",
            consumer.delete_batch_size.clone(),
        );
        registry.register(
            "consumer_deletes_lost",
            "Deletes refused or given up after retries; the messages come back and the inbox skips them",
            consumer.deletes_lost.clone(),
        );
        registry.register(
            "consumer_dlq_depth",
            "Messages in the queue's dead-letter queue (sampled)",
            consumer.dlq_depth.clone(),
        );

        let http = HttpMetrics {
            requests: Family::default(),
            duration: Family::new_with_constructor(latency),
        };
        registry.register(
            "http_requests",
            "HTTP requests answered",
            http.requests.clone(),
        );
        registry.register_with_unit(
            "http_request_duration",
            "HTTP request latency",
            Unit::Seconds,
            http.duration.clone(),
        );
        let db_pool = Family::<PoolStateLabels, Gauge>::default();
        registry.register(
            "db_pool_connections",
            "Pooled database connections by state, in_use or idle (sampled)",
            db_pool.clone(),
        );
        Metrics {
            registry,
            outbox,
            consumer,
            http,
            db_pool,
        }
    }

    /// The metrics in the OpenMetrics text format.
    pub fn render(&self) -> String {
        let mut text = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut text, &self.registry) {
            tracing::error!(error = %e, "cannot render the metrics");
        }
        text
    }

    /// Creates the series of `queue` at zero, so a scrape shows every queue
    /// before its first message.
    pub fn register_queue(&self, queue: &'static str) {
        let labels = QueueLabels { queue };
        for counter in [
            &self.consumer.received,
            &self.consumer.processed,
            &self.consumer.duplicates,
            &self.consumer.deleted,
            &self.consumer.deletes_lost,
        ] {
            counter.get_or_create(&labels).inc_by(0);
        }
        for outcome in [FAILED_RETRY, FAILED_UNAVAILABLE, FAILED_DEAD_LETTER] {
            self.consumer
                .failed
                .get_or_create(&FailureLabels { queue, outcome })
                .inc_by(0);
        }
    }
}

/// `consumer_messages_failed` outcome: left on the queue for a later attempt.
pub const FAILED_RETRY: &str = "retry";
/// `consumer_messages_failed` outcome: left on the queue because the
/// service's own database did not answer (receiving pauses until it does).
pub const FAILED_UNAVAILABLE: &str = "unavailable";
/// `consumer_messages_failed` outcome: sent to the DLQ.
pub const FAILED_DEAD_LETTER: &str = "dead_letter";

impl ConsumerMetrics {
    pub fn received(&self, queue: &'static str, count: usize) {
        self.received
            .get_or_create(&QueueLabels { queue })
            .inc_by(count as u64);
    }

    /// One `DeleteMessageBatch` of `receipts` entries is about to be sent.
    pub fn delete_batch(&self, queue: &'static str, receipts: usize) {
        self.delete_batch_size
            .get_or_create(&QueueLabels { queue })
            .observe(receipts as f64);
    }

    pub fn deleted(&self, queue: &'static str, count: usize) {
        self.deleted
            .get_or_create(&QueueLabels { queue })
            .inc_by(count as u64);
    }

    pub fn delete_lost(&self, queue: &'static str, count: usize) {
        self.deletes_lost
            .get_or_create(&QueueLabels { queue })
            .inc_by(count as u64);
    }

    pub fn handled(&self, queue: &'static str, elapsed: Duration) {
        self.handler_duration
            .get_or_create(&QueueLabels { queue })
            .observe(elapsed.as_secs_f64());
    }
}

impl HttpMetrics {
    /// Records one answered request.
    pub fn answered(&self, method: &str, route: &str, status: StatusCode, elapsed: Duration) {
        self.requests
            .get_or_create(&RequestLabels {
                method: method.to_string(),
                route: route.to_string(),
                status: status.as_u16().to_string(),
            })
            .inc();
        self.duration
            .get_or_create(&RouteLabels {
                method: method.to_string(),
                route: route.to_string(),
            })
            .observe(elapsed.as_secs_f64());
    }
}

/// `GET /metrics`.
pub fn routes() -> Router {
    Router::new().route("/metrics", routing::get(serve))
}

async fn serve() -> Response {
    ([(header::CONTENT_TYPE, CONTENT_TYPE)], get().render()).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rendered_text_names_every_metric_with_its_labels() {
        let m = get();
        m.register_queue("test-queue");
        m.consumer
            .duplicates
            .get_or_create(&QueueLabels {
                queue: "test-queue",
            })
            .inc();
        m.http.answered(
            "POST",
            "/orders",
            StatusCode::ACCEPTED,
            Duration::from_millis(3),
        );
        let orders = DestinationLabels {
            destination: "test-topic".into(),
        };
        m.outbox
            .publish_duration
            .get_or_create(&orders)
            .observe(0.01);
        let text = m.render();
        for line in [
            "consumer_messages_duplicates_total{queue=\"test-queue\"} 1",
            "consumer_messages_processed_total{queue=\"test-queue\"} 0",
            "consumer_messages_deleted_total{queue=\"test-queue\"} 0",
            "consumer_deletes_lost_total{queue=\"test-queue\"} 0",
            "consumer_messages_failed_total{queue=\"test-queue\",outcome=\"dead_letter\"} 0",
            "http_requests_total{method=\"POST\",route=\"/orders\",status=\"202\"} 1",
            "http_request_duration_seconds_count{method=\"POST\",route=\"/orders\"} 1",
            "# TYPE outbox_backlog gauge",
            "# TYPE outbox_oldest_unpublished_age_seconds gauge",
            "# TYPE relay_publish_duration_seconds histogram",
            "relay_publish_duration_seconds_count{destination=\"test-topic\"} 1",
            "# EOF",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line:?} in\n{text}"
            );
        }
    }
}
