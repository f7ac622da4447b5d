//! Looking inside the running system: queue depths, inbox and outbox rows,
//! the services' metrics. Tests assert on these, not on logs.

use std::time::Duration;

use testkit::wait;
use uuid::Uuid;

/// (visible, in flight) messages of the queue called `name`.
pub async fn queue_depth(sqs: &aws_sdk_sqs::Client, name: &str) -> anyhow::Result<(u64, u64)> {
    let depth = infra::dlq::depth_of(sqs, name).await?;
    Ok((depth.visible, depth.in_flight))
}

/// Waits until every queue in `names` holds nothing, visible or in flight.
pub async fn wait_until_drained(
    sqs: &aws_sdk_sqs::Client,
    names: &[&str],
    deadline: Duration,
) -> anyhow::Result<()> {
    wait::until(
        &format!("{} to drain", names.join(", ")),
        deadline,
        || async {
            for name in names {
                match queue_depth(sqs, name).await {
                    Ok((0, 0)) => {}
                    Ok(depth) => return Err(format!("{name} holds {depth:?}")),
                    Err(e) => return Err(e.to_string()),
                }
            }
            Ok(())
        },
    )
    .await?;
    Ok(())
}

/// How an event stands in a service's inbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InboxEntry {
    /// Rows for the event id: 1 once applied, never more.
    pub rows: i64,
    /// Arrivals after the first, absorbed without effect.
    pub duplicates: i64,
}

pub async fn inbox_entry(db: &sqlx::PgPool, event_id: Uuid) -> anyhow::Result<InboxEntry> {
    let (rows, duplicates): (i64, i64) = sqlx::query_as(
        "SELECT count(*), coalesce(sum(duplicates), 0)::bigint FROM inbox WHERE event_id = $1",
    )
    .bind(event_id)
    .fetch_one(db)
    .await?;
    Ok(InboxEntry { rows, duplicates })
}

/// The id of the event of `event_type` about `order_id` in a service's outbox,
/// and whether it is marked published.
pub async fn outbox_event(
    db: &sqlx::PgPool,
    event_type: &str,
    order_id: Uuid,
) -> anyhow::Result<Option<(Uuid, bool)>> {
    Ok(sqlx::query_as(
        "SELECT id, published_at IS NOT NULL FROM outbox \
         WHERE event_type = $1 AND payload->>'subject' = $2",
    )
    .bind(event_type)
    .bind(order_id.to_string())
    .fetch_optional(db)
    .await?)
}

/// One scrape of a service's `GET /metrics`: each sample's value by its
/// series, `name{label="value",…}` exactly as the service writes it.
#[derive(Debug, Clone, Default)]
pub struct Scrape(pub std::collections::BTreeMap<String, f64>);

impl Scrape {
    /// The value of `name` with `labels`, given in the order the service
    /// writes them; `None` when there is no such series.
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let key = if labels.is_empty() {
            name.to_string()
        } else {
            let labels: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
            format!("{name}{{{}}}", labels.join(","))
        };
        self.0.get(&key).copied()
    }
}

/// Reads `base/metrics` (OpenMetrics text).
pub async fn scrape(http: &reqwest::Client, base: &str) -> anyhow::Result<Scrape> {
    let response = http.get(format!("{base}/metrics")).send().await?;
    anyhow::ensure!(
        response.status().is_success(),
        "GET /metrics: {}",
        response.status()
    );
    let text = response.text().await?;
    let mut samples = std::collections::BTreeMap::new();
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        if let Some((series, value)) = line.rsplit_once(' ') {
            samples.insert(series.to_string(), value.parse::<f64>()?);
        }
    }
    Ok(Scrape(samples))
}
