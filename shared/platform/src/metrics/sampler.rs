//! The gauges nothing else updates: the connection pool, the outbox backlog
//! and the depth of each DLQ, sampled every `METRICS_SAMPLE_INTERVAL_MS`.
//!
//! One task per service, on the runtime's `TaskTracker`, stopped by the
//! shutdown token like every other loop. A failed sample (database or broker
//! down) is logged and tried again at the next tick: the interval is the
//! backoff, and a gauge keeps its last value meanwhile.

use std::time::Duration;

use aws_sdk_sqs::types::QueueAttributeName;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use super::{PoolStateLabels, QueueLabels, get};
use crate::outbox::store;
use aws_adapter::sqs::queue_url;

/// A DLQ to sample, and its URL once resolved.
struct Dlq {
    queue: &'static str,
    name: String,
    url: Option<String>,
}

pub struct Sampler {
    pool: PgPool,
    sqs: aws_sdk_sqs::Client,
    /// Whether the service publishes through an outbox.
    outbox: bool,
    dlqs: Vec<Dlq>,
    interval: Duration,
}

impl Sampler {
    /// Samples the outbox (when `outbox`) and the DLQ of each of `queues`.
    pub fn new(
        pool: PgPool,
        sqs: aws_sdk_sqs::Client,
        outbox: bool,
        queues: &[contracts::topology::QueueSpec],
        interval: Duration,
    ) -> Self {
        Sampler {
            pool,
            sqs,
            outbox,
            dlqs: queues
                .iter()
                .map(|q| Dlq {
                    queue: q.name,
                    name: q.dlq_name(),
                    url: None,
                })
                .collect(),
            interval,
        }
    }

    /// Takes one sample of every gauge; `Err` names what could not be read.
    pub async fn sample_once(&mut self) -> Result<(), String> {
        self.sample_pool();
        let mut failures = Vec::new();
        if self.outbox
            && let Err(e) = self.sample_outbox().await
        {
            failures.push(format!("outbox: {e}"));
        }
        for dlq in &mut self.dlqs {
            if let Err(e) = sample_dlq(&self.sqs, dlq).await {
                failures.push(format!("{}: {e}", dlq.name));
            }
        }
        if failures.is_empty() {
            Ok(())
        } else {
            Err(failures.join("; "))
        }
    }

    /// Read from the pool itself, so it is known while the database is
    /// down: the figure that tells a pool waiting for its database from one
    /// whose connections are all held.
    fn sample_pool(&self) {
        let size = self.pool.size();
        let idle = u32::try_from(self.pool.num_idle()).unwrap_or(size);
        let gauges = &get().db_pool;
        gauges
            .get_or_create(&PoolStateLabels { state: "in_use" })
            .set(i64::from(size.saturating_sub(idle)));
        gauges
            .get_or_create(&PoolStateLabels { state: "idle" })
            .set(i64::from(idle));
    }

    async fn sample_outbox(&self) -> Result<(), sqlx::Error> {
        let mut conn = self.pool.acquire().await?;
        let (backlog, oldest) = store::backlog_and_oldest_age(&mut conn).await?;
        let metrics = &get().outbox;
        metrics.backlog.set(backlog);
        metrics.oldest_age_seconds.set(oldest.as_secs_f64());
        Ok(())
    }

    /// Samples until `shutdown`.
    pub async fn run(mut self, shutdown: CancellationToken) {
        loop {
            if let Err(e) = self.sample_once().await {
                tracing::warn!(
                    error = %e,
                    pool_size = self.pool.size(),
                    pool_idle = self.pool.num_idle(),
                    retry_in = ?self.interval,
                    "cannot sample the metrics"
                );
            }
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tokio::time::sleep(self.interval) => {}
            }
        }
        tracing::debug!("metrics sampler stopped");
    }
}

async fn sample_dlq(sqs: &aws_sdk_sqs::Client, dlq: &mut Dlq) -> Result<(), String> {
    let url = match &dlq.url {
        Some(url) => url.clone(),
        None => {
            let url = queue_url(sqs, &dlq.name).await.map_err(|e| e.to_string())?;
            dlq.url = Some(url.clone());
            url
        }
    };
    let out = sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
        .send()
        .await
        .map_err(|e| aws_sdk_sqs::error::DisplayErrorContext(e).to_string())?;
    let depth = out
        .attributes()
        .and_then(|a| a.get(&QueueAttributeName::ApproximateNumberOfMessages))
        .and_then(|v| v.parse::<i64>().ok())
        .ok_or("no ApproximateNumberOfMessages in the answer")?;
    get()
        .consumer
        .dlq_depth
        .get_or_create(&QueueLabels { queue: dlq.queue })
        .set(depth);
    Ok(())
}
