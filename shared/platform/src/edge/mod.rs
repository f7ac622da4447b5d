//! The public port's edge: what every API request passes before its route.
//!
//! From the outside in: a bound on requests in flight (`shed`: past it, `503`
//! with `Retry-After` at once, rather than a queue without end), a time limit
//! per request (`timeout`: `503` problem+json when it runs out; the handler's
//! future is dropped, so its open transaction rolls back), authentication
//! (`crate::auth`), then a rate limit per caller (`rate`: the token's subject,
//! `429` with `Retry-After`). Each answer is problem+json. Body limits stay
//! with each route.

pub mod rate;
pub mod settings;
pub mod shed;
pub mod timeout;

use std::sync::Arc;

use axum::Router;
use axum::middleware::{from_fn, from_fn_with_state};

use crate::auth::{self, Verifier};
pub use settings::EdgeSettings;

/// `api` behind the edge: the layers above, in that order.
pub fn wrap(api: Router, verifier: Arc<Verifier>, settings: &EdgeSettings) -> Router {
    let limiter = Arc::new(rate::Limiter::new(
        settings.rate_per_second,
        settings.rate_burst,
    ));
    let in_flight = Arc::new(tokio::sync::Semaphore::new(settings.max_in_flight));
    let limit = settings.request_timeout;
    api.layer(from_fn_with_state(limiter, rate::limit))
        .layer(from_fn_with_state(verifier, auth::authenticate))
        .layer(from_fn(move |request, next| {
            timeout::bound(limit, request, next)
        }))
        .layer(from_fn_with_state(in_flight, shed::shed))
}
