//! Each order's journey, hop by hop, from the rows the services write anyway.
//!
//! Nothing is instrumented for the benchmark: after a step, the timestamps
//! are read from the three databases and joined by order id and event id,
//! beside the client's own times. Every clock is this host's (the services,
//! Postgres and the client run on it), so differences between them are
//! meaningful. What each timestamp is:
//!
//! | timestamp | where | meaning |
//! |---|---|---|
//! | scheduled | the load | when the open-loop schedule sent the request (latency counts from here, so a slow answer cannot hide the requests queued behind it) |
//! | accepted | the load | the `202 Accepted` arrived |
//! | committed | order `outbox.created_at` | the envelope's time, taken just before the order's two inserts and the commit |
//! | published | order `outbox.published_at` | `clock_timestamp()` after SNS answered |
//! | invoice received | invoice `inbox.received_at` | start of the invoice service's inbox transaction |
//! | invoice committed | invoice `outbox.created_at` of `InvoiceIssued` | the envelope's time, the transaction's last statement |
//! | invoice published | invoice `outbox.published_at` | `clock_timestamp()` after EventBridge answered |
//! | order received | order `inbox.received_at` | start of the order service's inbox transaction |
//! | invoiced | `orders.updated_at` | `clock_timestamp()` of the update to `INVOICED` |
//! | notification received | notification `inbox.received_at` | per event (`OrderPlaced`, `InvoiceIssued`) |
//! | notification recorded | `notifications.created_at` | `clock_timestamp()` of the insert, per event |
//!
//! moto delivers to the subscribed queues inside the publish call, so a
//! waiting consumer may start on a message a moment before the relay has
//! recorded `published_at`: such an interval comes out slightly negative; it
//! is counted as zero and the count of them is shown beside the hop.
//!
//! Percentiles come from HDR histograms in microseconds (3 significant
//! digits), reported in milliseconds.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use contracts::topology::Service;
use serde::Serialize;
use sqlx::PgPool;
use uuid::Uuid;

use harness::load::Attempt;

/// Latencies in microseconds, from 1 µs to an hour.
#[derive(Clone)]
pub struct Histogram(hdrhistogram::Histogram<u64>);

const MAX_MICROS: u64 = 3_600_000_000;

impl Default for Histogram {
    fn default() -> Self {
        Histogram::new()
    }
}

impl Histogram {
    pub fn new() -> Histogram {
        Histogram(
            hdrhistogram::Histogram::new_with_bounds(1, MAX_MICROS, 3)
                .expect("constant bounds are valid"),
        )
    }

    pub fn record(&mut self, d: Duration) {
        self.record_micros(d.as_micros().min(u128::from(MAX_MICROS)) as u64);
    }

    pub fn record_micros(&mut self, micros: u64) {
        self.0.saturating_record(micros.clamp(1, MAX_MICROS));
    }

    pub fn add(&mut self, other: &Histogram) {
        // Same bounds on both sides: adding cannot fail.
        let _ = self.0.add(&other.0);
    }

    pub fn len(&self) -> u64 {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn percentiles(&self) -> Percentiles {
        let ms = |q: f64| self.0.value_at_quantile(q) as f64 / 1000.0;
        if self.0.is_empty() {
            return Percentiles::default();
        }
        Percentiles {
            count: self.0.len(),
            p50: ms(0.5),
            p90: ms(0.9),
            p99: ms(0.99),
            p999: ms(0.999),
            max: self.0.max() as f64 / 1000.0,
        }
    }
}

/// Percentiles of a latency, in milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Percentiles {
    pub count: u64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
}

/// One order's timestamps; `None` where a row is missing.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Timeline {
    pub order_id: Uuid,
    pub scheduled: Option<DateTime<Utc>>,
    pub accepted: Option<DateTime<Utc>>,
    pub committed: Option<DateTime<Utc>>,
    pub published: Option<DateTime<Utc>>,
    pub invoice_received: Option<DateTime<Utc>>,
    pub invoice_committed: Option<DateTime<Utc>>,
    pub invoice_published: Option<DateTime<Utc>>,
    pub order_received: Option<DateTime<Utc>>,
    pub invoiced: Option<DateTime<Utc>>,
    pub placed_notification_received: Option<DateTime<Utc>>,
    pub placed_notification_recorded: Option<DateTime<Utc>>,
    pub issued_notification_received: Option<DateTime<Utc>>,
    pub issued_notification_recorded: Option<DateTime<Utc>>,
}

impl Timeline {
    /// Invoiced, and both of its notifications recorded.
    pub fn complete(&self) -> bool {
        self.invoiced.is_some()
            && self.placed_notification_recorded.is_some()
            && self.issued_notification_recorded.is_some()
    }

    /// The later of the two notifications: the end of the order's journey.
    pub fn notified(&self) -> Option<DateTime<Utc>> {
        Some(
            self.placed_notification_recorded?
                .max(self.issued_notification_recorded?),
        )
    }
}

type Stamp = fn(&Timeline) -> Option<DateTime<Utc>>;

/// A hop: from one timestamp to another.
pub struct Hop {
    pub name: &'static str,
    pub from: Stamp,
    pub to: Stamp,
}

/// The relay hops: commit → publish, held to the 20 ms target.
/// The order API's own latency, as its client sees it.
pub const ORDER_API: &str = "request → 202 (order API)";
pub const ORDER_RELAY: &str = "order commit → published (order relay)";
pub const INVOICE_RELAY: &str = "invoice commit → published (invoice relay)";
/// The end-to-end figure held to the 150 ms target.
pub const END_TO_END: &str = "accepted → last notification recorded (end to end)";

/// Every hop, in the order an order travels them, then the end-to-end spans.
pub const HOPS: [Hop; 14] = [
    Hop {
        name: ORDER_API,
        from: |t| t.scheduled,
        to: |t| t.accepted,
    },
    Hop {
        name: ORDER_RELAY,
        from: |t| t.committed,
        to: |t| t.published,
    },
    Hop {
        name: "published → received by invoice (SNS → SQS)",
        from: |t| t.published,
        to: |t| t.invoice_received,
    },
    Hop {
        name: "invoice received → committed (handler)",
        from: |t| t.invoice_received,
        to: |t| t.invoice_committed,
    },
    Hop {
        name: INVOICE_RELAY,
        from: |t| t.invoice_committed,
        to: |t| t.invoice_published,
    },
    Hop {
        name: "published → received by order (EventBridge → SQS)",
        from: |t| t.invoice_published,
        to: |t| t.order_received,
    },
    Hop {
        name: "order received → INVOICED (handler)",
        from: |t| t.order_received,
        to: |t| t.invoiced,
    },
    Hop {
        name: "published → received by notification (SNS → SQS)",
        from: |t| t.published,
        to: |t| t.placed_notification_received,
    },
    Hop {
        name: "notification received → recorded (OrderPlaced)",
        from: |t| t.placed_notification_received,
        to: |t| t.placed_notification_recorded,
    },
    Hop {
        name: "published → received by notification (EventBridge → SQS)",
        from: |t| t.invoice_published,
        to: |t| t.issued_notification_received,
    },
    Hop {
        name: "notification received → recorded (InvoiceIssued)",
        from: |t| t.issued_notification_received,
        to: |t| t.issued_notification_recorded,
    },
    Hop {
        name: "request → last notification recorded",
        from: |t| t.scheduled,
        to: Timeline::notified,
    },
    Hop {
        name: "accepted → INVOICED",
        from: |t| t.accepted,
        to: |t| t.invoiced,
    },
    Hop {
        name: END_TO_END,
        from: |t| t.accepted,
        to: Timeline::notified,
    },
];

/// The percentiles of one hop over a set of orders.
#[derive(Debug, Clone, Serialize)]
pub struct HopStats {
    pub hop: String,
    #[serde(flatten)]
    pub latency: Percentiles,
    /// Intervals that came out negative (counted as zero): clocks of one host
    /// never disagree by much, so more than a few means a timestamp is wrong.
    pub negative: u64,
}

pub fn hop_stats(timelines: &[Timeline]) -> Vec<HopStats> {
    HOPS.iter()
        .map(|hop| {
            let mut histogram = Histogram::new();
            let mut negative = 0;
            for t in timelines {
                if let (Some(from), Some(to)) = ((hop.from)(t), (hop.to)(t)) {
                    let micros = (to - from).num_microseconds().unwrap_or(i64::MAX);
                    if micros < 0 {
                        negative += 1;
                    }
                    histogram.record_micros(micros.max(0) as u64);
                }
            }
            HopStats {
                hop: hop.name.to_string(),
                latency: histogram.percentiles(),
                negative,
            }
        })
        .collect()
}

/// The client's side of an order, when it came through the load.
pub fn client_times(attempt: &Attempt) -> Option<(Uuid, DateTime<Utc>, DateTime<Utc>)> {
    Some((
        attempt.order_id()?,
        attempt.scheduled_at,
        attempt.completed_at(),
    ))
}

/// The three services' databases.
pub struct Databases<'a> {
    pub order: &'a PgPool,
    pub invoice: &'a PgPool,
    pub notification: &'a PgPool,
}

impl<'a> Databases<'a> {
    pub fn of(observer: &'a harness::observe::Observer) -> Databases<'a> {
        Databases {
            order: observer.pool(Service::Order),
            invoice: observer.pool(Service::Invoice),
            notification: observer.pool(Service::Notification),
        }
    }
}

type Stamps = HashMap<Uuid, DateTime<Utc>>;

async fn stamps(db: &PgPool, sql: &'static str, ids: &[Uuid]) -> anyhow::Result<Stamps> {
    let rows: Vec<(Uuid, DateTime<Utc>)> = sqlx::query_as(sql).bind(ids).fetch_all(db).await?;
    Ok(rows.into_iter().collect())
}

/// A relayed event of an order: its id and when it was written and published.
type Relayed = HashMap<Uuid, (Uuid, DateTime<Utc>, Option<DateTime<Utc>>)>;

#[derive(sqlx::FromRow)]
struct RelayedRow {
    subject: String,
    id: Uuid,
    created_at: DateTime<Utc>,
    published_at: Option<DateTime<Utc>>,
}

async fn relayed(db: &PgPool, event_type: &str, orders: &[String]) -> anyhow::Result<Relayed> {
    let rows: Vec<RelayedRow> = sqlx::query_as(
        "SELECT payload->>'subject' AS subject, id, created_at, published_at FROM outbox \
         WHERE event_type = $1 AND payload->>'subject' = ANY($2)",
    )
    .bind(event_type)
    .bind(orders)
    .fetch_all(db)
    .await?;
    Ok(rows
        .into_iter()
        .filter_map(|r| {
            Some((
                r.subject.parse().ok()?,
                (r.id, r.created_at, r.published_at),
            ))
        })
        .collect())
}

/// When the client's request was due and when its `202` arrived.
pub type ClientTimes = (DateTime<Utc>, DateTime<Utc>);

/// The timelines of `orders`: (order id, and the client's scheduled and
/// accepted times when the order came through the load).
pub async fn timelines(
    db: &Databases<'_>,
    orders: &[(Uuid, Option<ClientTimes>)],
) -> anyhow::Result<Vec<Timeline>> {
    let ids: Vec<Uuid> = orders.iter().map(|(id, _)| *id).collect();
    let subjects: Vec<String> = ids.iter().map(Uuid::to_string).collect();
    let placed = relayed(db.order, "OrderPlaced", &subjects).await?;
    let issued = relayed(db.invoice, "InvoiceIssued", &subjects).await?;
    let invoiced = stamps(
        db.order,
        "SELECT id, updated_at FROM orders WHERE status = 'INVOICED' AND id = ANY($1)",
        &ids,
    )
    .await?;
    let placed_ids: Vec<Uuid> = placed.values().map(|(id, _, _)| *id).collect();
    let issued_ids: Vec<Uuid> = issued.values().map(|(id, _, _)| *id).collect();
    let both: Vec<Uuid> = placed_ids.iter().chain(&issued_ids).copied().collect();
    const INBOX: &str = "SELECT event_id, received_at FROM inbox WHERE event_id = ANY($1)";
    let invoice_inbox = stamps(db.invoice, INBOX, &placed_ids).await?;
    let order_inbox = stamps(db.order, INBOX, &issued_ids).await?;
    let notification_inbox = stamps(db.notification, INBOX, &both).await?;
    let recorded = stamps(
        db.notification,
        "SELECT event_id, created_at FROM notifications WHERE event_id = ANY($1)",
        &both,
    )
    .await?;
    Ok(orders
        .iter()
        .map(|(order_id, client)| {
            let mut t = Timeline {
                order_id: *order_id,
                scheduled: client.map(|c| c.0),
                accepted: client.map(|c| c.1),
                invoiced: invoiced.get(order_id).copied(),
                ..Timeline::default()
            };
            if let Some((event, created, published)) = placed.get(order_id) {
                t.committed = Some(*created);
                t.published = *published;
                t.invoice_received = invoice_inbox.get(event).copied();
                t.placed_notification_received = notification_inbox.get(event).copied();
                t.placed_notification_recorded = recorded.get(event).copied();
            }
            if let Some((event, created, published)) = issued.get(order_id) {
                t.invoice_committed = Some(*created);
                t.invoice_published = *published;
                t.order_received = order_inbox.get(event).copied();
                t.issued_notification_received = notification_inbox.get(event).copied();
                t.issued_notification_recorded = recorded.get(event).copied();
            }
            t
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_come_out_in_milliseconds_within_three_digits() {
        let mut h = Histogram::new();
        for ms in 1..=1000u64 {
            h.record(Duration::from_millis(ms));
        }
        let p = h.percentiles();
        assert_eq!(p.count, 1000);
        assert!((p.p50 - 500.0).abs() < 1.0, "{p:?}");
        assert!((p.p99 - 990.0).abs() < 1.0, "{p:?}");
        assert!((p.max - 1000.0).abs() < 1.0, "{p:?}");
    }

    #[test]
    fn a_hop_is_measured_only_where_both_ends_exist_and_a_negative_one_is_counted() {
        let at = |ms: i64| Some(DateTime::<Utc>::UNIX_EPOCH + chrono::Duration::milliseconds(ms));
        let whole = Timeline {
            committed: at(0),
            published: at(12),
            ..Timeline::default()
        };
        let backwards = Timeline {
            committed: at(10),
            published: at(9),
            ..Timeline::default()
        };
        let unpublished = Timeline {
            committed: at(0),
            ..Timeline::default()
        };
        let stats = hop_stats(&[whole, backwards, unpublished]);
        let relay = stats
            .iter()
            .find(|s| s.hop == ORDER_RELAY)
            .expect("the relay hop is listed");
        assert_eq!(relay.latency.count, 2);
        assert_eq!(relay.negative, 1);
        assert!((relay.latency.max - 12.0).abs() < 0.1, "{relay:?}");
    }
}
