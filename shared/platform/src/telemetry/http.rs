//! The server side of every HTTP request: its span and its metrics.
//!
//! One middleware, layered over each service's routes in `app`, so that no
//! route can be forgotten. The span is the root of an order's trace (or the
//! child of the caller's, when the request carries a `traceparent` header) and
//! follows OpenTelemetry's HTTP server conventions; it is named after the
//! matched route, never the raw path, so that `/orders/{id}` is one name and
//! one metric series, not one per order. Health checks and scrapes are
//! counted but not traced: a probe every few seconds would bury the orders.

use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument;
use tracing::field::Empty;

use super::propagation::{self, HeaderCarrier};
use crate::metrics;

/// The route label of a request that matched no route.
pub const UNMATCHED: &str = "unmatched";

/// The method as a label: the standard ones by name, any other as `_OTHER`
/// (OpenTelemetry's HTTP conventions), so that a client inventing methods
/// cannot create new metric series without end.
fn method_label(method: &axum::http::Method) -> String {
    use axum::http::Method;
    let known = [
        Method::GET,
        Method::POST,
        Method::PUT,
        Method::DELETE,
        Method::PATCH,
        Method::HEAD,
        Method::OPTIONS,
        Method::CONNECT,
        Method::TRACE,
    ];
    if known.contains(method) {
        method.as_str().to_string()
    } else {
        "_OTHER".to_string()
    }
}

/// Traces and measures one request (use with `axum::middleware::from_fn`).
pub async fn observe(request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_string())
        .unwrap_or_else(|| UNMATCHED.to_string());
    let method = method_label(request.method());
    let quiet = route.starts_with("/health/") || route == "/metrics";
    let span = if quiet {
        tracing::Span::none()
    } else {
        let span = tracing::info_span!(
            "http.request",
            otel.name = format!("{method} {route}"),
            otel.kind = "server",
            otel.status_code = Empty,
            http.request.method = %method,
            http.route = %route,
            url.path = request.uri().path(),
            http.response.status_code = Empty,
        );
        propagation::set_parent(
            &span,
            propagation::extract(&HeaderCarrier(request.headers())),
        );
        span
    };
    let start = Instant::now();
    let response = next.run(request).instrument(span.clone()).await;
    let status = response.status();
    span.record("http.response.status_code", status.as_u16());
    if status.is_server_error() {
        span.record("otel.status_code", "error");
    }
    metrics::get()
        .http
        .answered(&method, &route, status, start.elapsed());
    response
}
