//! A rate limit per caller: the GCRA of the `governor` crate, keyed by the
//! token's subject (the layer sits after authentication, so a caller cannot
//! dodge it by making up names).

use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::clock::Clock;
use governor::{DefaultKeyedRateLimiter, Quota};

use crate::auth::Principal;
use crate::problem::Problem;

/// How many checks between two sweeps of callers idle long enough to have a
/// full bucket again: keeps the table as small as the set of active callers.
const SWEEP_EVERY: u64 = 4096;

pub struct Limiter {
    limiter: DefaultKeyedRateLimiter<String>,
    checks: AtomicU64,
}

impl Limiter {
    pub fn new(per_second: NonZeroU32, burst: NonZeroU32) -> Self {
        Limiter {
            limiter: governor::RateLimiter::keyed(Quota::per_second(per_second).allow_burst(burst)),
            checks: AtomicU64::new(0),
        }
    }

    /// `Ok` when `caller` may go on, else how many seconds to wait (at least 1).
    pub fn check(&self, caller: &str) -> Result<(), u64> {
        if self.checks.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY == SWEEP_EVERY - 1 {
            self.limiter.retain_recent();
        }
        self.limiter
            .check_key(&caller.to_string())
            .map_err(|not_until| {
                let wait = not_until.wait_time_from(self.limiter.clock().now());
                wait.as_secs() + u64::from(wait.subsec_nanos() > 0)
            })
            .map(|_| ())
    }
}

pub async fn limit(State(limiter): State<Arc<Limiter>>, request: Request, next: Next) -> Response {
    let caller = request
        .extensions()
        .get::<Principal>()
        .map(|p| p.subject.clone())
        .unwrap_or_default();
    match limiter.check(&caller) {
        Ok(()) => next.run(request).await,
        Err(wait_secs) => {
            let wait_secs = wait_secs.max(1);
            let mut response = Problem::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate-limited",
                "Too many requests",
            )
            .with_detail(format!(
                "this caller's rate limit is reached; retry in {wait_secs} s"
            ))
            .into_response();
            if let Ok(v) = HeaderValue::from_str(&wait_secs.to_string()) {
                response.headers_mut().insert(header::RETRY_AFTER, v);
            }
            response
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_caller_past_its_burst_waits_and_others_do_not() {
        let one = NonZeroU32::MIN;
        let limiter = Limiter::new(one, one.saturating_add(1));
        assert!(limiter.check("a").is_ok());
        assert!(limiter.check("a").is_ok());
        assert_eq!(limiter.check("a"), Err(1));
        assert!(limiter.check("b").is_ok());
    }
}
