//! A time limit per request.

use std::time::Duration;

use axum::extract::Request;
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::problem::Problem;

/// Runs the request for at most `limit`; past it the handler is dropped
/// (whatever it had not committed rolls back) and the answer is 503.
pub async fn bound(limit: Duration, request: Request, next: Next) -> Response {
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => {
            tracing::warn!(?limit, "request timed out");
            Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "timeout",
                "The request took too long",
            )
            .with_detail(format!(
                "it was stopped after {} ms; nothing it had begun was kept",
                limit.as_millis()
            ))
            .into_response()
        }
    }
}
