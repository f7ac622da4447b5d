//! Waiting on a condition with a deadline.
//!
//! The deadline bounds the whole wait, each check included: a check that
//! never finishes (a Postgres handshake sent to a port where something else
//! listens and waits for more bytes, say) ends the wait at its deadline
//! instead of hanging the test.

use std::future::Future;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
#[error("timed out after {waited:?} waiting for {what}; last state: {last}")]
pub struct Timeout {
    pub what: String,
    pub waited: Duration,
    pub last: String,
}

/// Polls `check` until it returns `Ok(value)`, or fails once `deadline` has
/// passed with the last `Err` it saw. The interval starts small and grows.
/// A check still running at the deadline is dropped.
pub async fn until<T, F, Fut>(what: &str, deadline: Duration, mut check: F) -> Result<T, Timeout>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let start = tokio::time::Instant::now();
    let mut interval = Duration::from_millis(20);
    let mut last = String::from("not checked yet");
    loop {
        let left = deadline.saturating_sub(start.elapsed());
        match tokio::time::timeout(left, check()).await {
            Ok(Ok(v)) => return Ok(v),
            Ok(Err(state)) => last = state,
            Err(_) => {
                last = format!("a check was still running at the deadline (before it: {last})")
            }
        }
        if start.elapsed() >= deadline {
            return Err(Timeout {
                what: what.to_string(),
                waited: start.elapsed(),
                last,
            });
        }
        tokio::time::sleep(interval.min(deadline.saturating_sub(start.elapsed()))).await;
        interval = (interval * 2).min(Duration::from_millis(250));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_check_that_never_finishes_ends_at_the_deadline() {
        let started = tokio::time::Instant::now();
        let outcome: Result<(), Timeout> =
            until("a hung check", Duration::from_millis(200), || {
                std::future::pending::<Result<(), String>>()
            })
            .await;
        let timeout = outcome.expect_err("a check that never finishes cannot succeed");
        assert!(
            timeout.last.contains("still running at the deadline"),
            "{timeout}"
        );
        let waited = started.elapsed();
        assert!(
            waited >= Duration::from_millis(200) && waited < Duration::from_secs(2),
            "waited {waited:?} for a 200 ms deadline"
        );
    }

    #[tokio::test]
    async fn the_last_failure_is_reported() {
        let mut calls = 0;
        let outcome: Result<(), Timeout> =
            until("a failing check", Duration::from_millis(100), || {
                calls += 1;
                let n = calls;
                async move { Err(format!("attempt {n} failed")) }
            })
            .await;
        let timeout = outcome.expect_err("the check always fails");
        assert!(calls > 1, "checked {calls} times");
        assert_eq!(timeout.last, format!("attempt {calls} failed"));
    }

    #[tokio::test]
    async fn a_passing_check_returns_its_value() {
        let mut calls = 0;
        let value = until("the third check", Duration::from_secs(5), || {
            calls += 1;
            let n = calls;
            async move {
                if n == 3 {
                    Ok(n)
                } else {
                    Err("not yet".to_string())
                }
            }
        })
        .await
        .expect("passes on the third check");
        assert_eq!(value, 3);
    }
}
