//! Open-loop order load, and the history of every attempt: what the chaos
//! experiments run faults under and what the benchmark measures with.
//!
//! Requests leave at a constant rate whatever the answers do: a slow or
//! failing order service does not slow the load down, so its latency is not
//! hidden (no coordinated omission). Each attempt's latency is measured from
//! the moment it was *scheduled* to leave, not from when it actually left.
//!
//! Every `POST /orders` is recorded, as Jepsen records operations, with one of
//! three outcomes: `ok` (2xx, the order is a promise), `fail` (a definite 4xx,
//! or a connection that was never made: nothing may exist), or `unknown` (a
//! timeout, a 5xx, a reset: the order may or may not exist). Each attempt carries its own customer id, so the checker
//! can find the order it produced, if any, even when the answer was lost.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::client::order_body;

/// What one attempt came to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    Ok { status: u16, order_id: Uuid },
    Fail { status: Option<u16>, reason: String },
    Unknown { status: Option<u16>, reason: String },
}

/// One `POST /orders`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Attempt {
    /// The attempt's number in the run, from 0.
    pub n: u64,
    /// Unique to the attempt: `<run id>-<n>`.
    pub customer_id: String,
    /// When it was due to leave.
    pub scheduled_at: DateTime<Utc>,
    /// From `scheduled_at` to the answer (or the give-up).
    pub latency_ms: f64,
    /// From `scheduled_at` to the moment the request was handed to the HTTP
    /// client: how far the load fell behind its own schedule (near zero
    /// unless this process is short of CPU).
    #[serde(default)]
    pub send_lag_ms: f64,
    #[serde(flatten)]
    pub outcome: Outcome,
}

impl Attempt {
    pub fn order_id(&self) -> Option<Uuid> {
        match self.outcome {
            Outcome::Ok { order_id, .. } => Some(order_id),
            _ => None,
        }
    }

    pub fn completed_at(&self) -> DateTime<Utc> {
        self.scheduled_at + chrono::Duration::microseconds((self.latency_ms * 1000.0) as i64)
    }
}

/// The settings of one load.
#[derive(Debug, Clone)]
pub struct LoadSettings {
    /// Orders per second.
    pub rate: f64,
    /// Give up on an answer after this long (the attempt is `unknown`).
    pub timeout: Duration,
    /// Prefix of every customer id, unique to the run.
    pub run_id: String,
    /// Attempts waiting for an answer at most; beyond it an attempt is not
    /// sent and is counted in `Load::skipped` (the client would be the
    /// bottleneck, not the system).
    pub max_in_flight: usize,
    /// Mints each customer's token; without one the requests go
    /// unauthenticated (and are refused).
    pub minter: Option<crate::issuer::Minter>,
}

/// A running load. `stop` ends it and returns the history.
pub struct Load {
    stop: CancellationToken,
    history: Arc<Mutex<Vec<Attempt>>>,
    skipped: Arc<Mutex<u64>>,
    scheduler: tokio::task::JoinHandle<()>,
}

impl Drop for Load {
    /// A load abandoned on an error path stops too: it must never go on
    /// sending orders into the next experiment.
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl Load {
    /// Starts sending `POST {order_url}/orders` at `settings.rate`.
    pub fn start(http: reqwest::Client, order_url: String, settings: LoadSettings) -> Load {
        let stop = CancellationToken::new();
        let history = Arc::new(Mutex::new(Vec::new()));
        let skipped = Arc::new(Mutex::new(0));
        let scheduler = tokio::spawn(schedule(
            http,
            format!("{order_url}/orders"),
            settings,
            stop.clone(),
            history.clone(),
            skipped.clone(),
        ));
        Load {
            stop,
            history,
            skipped,
            scheduler,
        }
    }

    /// The attempts answered so far (in completion order).
    pub fn snapshot(&self) -> Vec<Attempt> {
        self.history.lock().map(|h| h.clone()).unwrap_or_default()
    }

    /// Stops scheduling, waits for the attempts in flight (each bounded by
    /// its timeout), and returns every attempt sorted by number.
    pub async fn stop(mut self) -> anyhow::Result<(Vec<Attempt>, u64)> {
        self.stop.cancel();
        (&mut self.scheduler).await?;
        let mut history = self
            .history
            .lock()
            .map_err(|_| anyhow::anyhow!("load history poisoned"))?
            .clone();
        history.sort_by_key(|a| a.n);
        let skipped = *self
            .skipped
            .lock()
            .map_err(|_| anyhow::anyhow!("load counter poisoned"))?;
        Ok((history, skipped))
    }
}

async fn schedule(
    http: reqwest::Client,
    url: String,
    settings: LoadSettings,
    stop: CancellationToken,
    history: Arc<Mutex<Vec<Attempt>>>,
    skipped: Arc<Mutex<u64>>,
) {
    let period = Duration::from_secs_f64(1.0 / settings.rate.max(0.001));
    let start = tokio::time::Instant::now();
    let start_wall = Utc::now();
    let mut in_flight = JoinSet::new();
    for n in 0u64.. {
        let due = start + period.mul_f64(n as f64);
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tokio::time::sleep_until(due) => {}
        }
        while in_flight.try_join_next().is_some() {}
        if in_flight.len() >= settings.max_in_flight {
            if let Ok(mut s) = skipped.lock() {
                *s += 1;
            }
            continue;
        }
        let scheduled_at = start_wall + chrono::Duration::from_std(due - start).unwrap_or_default();
        let customer_id = format!("{}-{n}", settings.run_id);
        let body = order_body(
            &customer_id,
            &[("CHAOS-1", 1 + (n % 3) as i64, 100 + (n % 900) as i64)],
        );
        let mut request = http.post(&url).json(&body).timeout(settings.timeout);
        if let Some(token) = settings
            .minter
            .as_ref()
            .and_then(|m| m.customer_token(&customer_id).ok())
        {
            request = request.bearer_auth(token);
        }
        let request = request.send();
        let history = history.clone();
        in_flight.spawn(async move {
            let send_lag_ms = due.elapsed().as_secs_f64() * 1000.0;
            let outcome = classify(request.await).await;
            let latency_ms = due.elapsed().as_secs_f64() * 1000.0;
            if let Ok(mut h) = history.lock() {
                h.push(Attempt {
                    n,
                    customer_id,
                    scheduled_at,
                    latency_ms,
                    send_lag_ms,
                    outcome,
                });
            }
        });
    }
    while in_flight.join_next().await.is_some() {}
}

async fn classify(answer: reqwest::Result<reqwest::Response>) -> Outcome {
    let response = match answer {
        Ok(r) => r,
        Err(e) => {
            if e.is_connect() {
                // Nothing reached the service: a definite failure.
                return Outcome::Fail {
                    status: None,
                    reason: "no connection".to_string(),
                };
            }
            let reason = if e.is_timeout() {
                "timeout".to_string()
            } else {
                format!("request failed: {e}")
            };
            return Outcome::Unknown {
                status: None,
                reason,
            };
        }
    };
    let status = response.status().as_u16();
    match status {
        200..=299 => {
            let body: serde_json::Value = response.json().await.unwrap_or_default();
            match body["order_id"].as_str().and_then(|s| s.parse().ok()) {
                Some(order_id) => Outcome::Ok { status, order_id },
                None => Outcome::Unknown {
                    status: Some(status),
                    reason: format!("{status} without an order id"),
                },
            }
        }
        400..=499 => Outcome::Fail {
            status: Some(status),
            reason: format!("HTTP {status}"),
        },
        _ => Outcome::Unknown {
            status: Some(status),
            reason: format!("HTTP {status}"),
        },
    }
}
