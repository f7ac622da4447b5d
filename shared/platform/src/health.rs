//! Liveness and readiness.
//!
//! `/health/live` answers 200 while the process serves HTTP. `/health/ready`
//! answers 200 only when the service's database and the message broker answer
//! within a short deadline, and 503 with what is failing otherwise: a load
//! balancer or an orchestrator stops sending work to a service that cannot do it.

use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;
use sqlx::PgPool;

/// What readiness checks.
#[derive(Clone, Debug)]
pub struct Readiness {
    pub pool: PgPool,
    pub sqs: aws_sdk_sqs::Client,
    /// A queue the service consumes: looking up its URL proves the broker answers.
    pub probe_queue: String,
}

const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// Where liveness is served.
pub const LIVE_PATH: &str = "/health/live";
/// Where readiness is served: what orchestrators and the container probe ask.
pub const READY_PATH: &str = "/health/ready";

impl Readiness {
    /// `Ok` when every dependency answers; otherwise the list of failures.
    pub async fn check(&self) -> Result<(), Vec<String>> {
        let db = async {
            match tokio::time::timeout(CHECK_TIMEOUT, sqlx::query("SELECT 1").execute(&self.pool))
                .await
            {
                Ok(Ok(_)) => Ok(()),
                Ok(Err(e)) => Err(format!("database: {e}")),
                Err(_) => Err("database: no answer within 2 s".to_string()),
            }
        };
        let broker = async {
            let call = self
                .sqs
                .get_queue_url()
                .queue_name(&self.probe_queue)
                .send();
            match tokio::time::timeout(CHECK_TIMEOUT, call).await {
                Ok(Ok(_)) => Ok(()),
                Ok(Err(e)) => Err(format!(
                    "broker: {}",
                    aws_sdk_sqs::error::DisplayErrorContext(e)
                )),
                Err(_) => Err("broker: no answer within 2 s".to_string()),
            }
        };
        let (db, broker) = tokio::join!(db, broker);
        let failures: Vec<String> = [db, broker].into_iter().filter_map(Result::err).collect();
        if failures.is_empty() {
            Ok(())
        } else {
            Err(failures)
        }
    }
}

/// `/health/live` and `/health/ready`.
pub fn routes(readiness: Readiness) -> Router {
    Router::new()
        .route(LIVE_PATH, get(|| async { Json(json!({"status": "live"})) }))
        .route(READY_PATH, get(ready))
        .with_state(readiness)
}

async fn ready(State(readiness): State<Readiness>) -> Response {
    match readiness.check().await {
        Ok(()) => Json(json!({"status": "ready"})).into_response(),
        Err(failures) => {
            tracing::warn!(?failures, "not ready");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({"status": "not ready", "failures": failures})),
            )
                .into_response()
        }
    }
}
