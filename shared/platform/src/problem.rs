//! RFC 9457 problem details: the body of every 4xx and 5xx answer.
//!
//! Each service maps its own API error type to a `Problem` at the edge. The
//! `detail` of a 5xx never carries internal error text: that goes to the log.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

pub const CONTENT_TYPE: &str = "application/problem+json";

/// An RFC 9457 problem details object (`application/problem+json`).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(example = json!({
    "type": "/problems/not-found",
    "title": "No such order",
    "status": 404,
    "detail": "order 0192f0c4-8d4e-7b1a-9c8e-3f2a1b0c9d8e does not exist"
}))]
pub struct Problem {
    /// A URI naming the kind of problem; relative, resolved against the service.
    #[serde(rename = "type")]
    #[schema(example = "/problems/not-found")]
    pub type_uri: String,
    /// A short, human-readable summary of the kind of problem.
    pub title: String,
    /// The HTTP status code of the answer.
    #[schema(minimum = 100, maximum = 599)]
    pub status: u16,
    /// What went wrong in this occurrence; never internal error text.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub detail: Option<String>,
    /// Extension members, such as the list of invalid fields.
    #[serde(flatten, skip_serializing_if = "serde_json::Map::is_empty")]
    pub extensions: serde_json::Map<String, serde_json::Value>,
}

impl Problem {
    /// `kind` is a short slug (`validation-error`) that becomes `/problems/<kind>`.
    pub fn new(status: StatusCode, kind: &str, title: &str) -> Self {
        Problem {
            type_uri: format!("/problems/{kind}"),
            title: title.to_string(),
            status: status.as_u16(),
            detail: None,
            extensions: serde_json::Map::new(),
        }
    }

    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    pub fn with_extension(mut self, key: &str, value: serde_json::Value) -> Self {
        self.extensions.insert(key.to_string(), value);
        self
    }

    /// The answer to a query string that does not parse.
    pub fn invalid_query(expected: &str, detail: String) -> Self {
        Problem::new(
            StatusCode::BAD_REQUEST,
            "invalid-query",
            &format!("Expected {expected}"),
        )
        .with_detail(detail)
    }

    /// Logs `error` once, here at the edge, and answers 500 without its text.
    pub fn internal_logged(error: &dyn std::fmt::Display) -> Self {
        tracing::error!(error = %error, "request failed");
        Problem::internal()
    }

    /// The answer to anything unexpected: no internal detail leaks.
    pub fn internal() -> Self {
        Problem::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal-error",
            "Internal server error",
        )
        .with_detail("The error was logged; retrying later may succeed.")
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = (status, Json(self)).into_response();
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
        response
    }
}
