//! Waiting on a condition with a deadline.

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
pub async fn until<T, F, Fut>(what: &str, deadline: Duration, mut check: F) -> Result<T, Timeout>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let start = tokio::time::Instant::now();
    let mut interval = Duration::from_millis(20);
    loop {
        let last = match check().await {
            Ok(v) => return Ok(v),
            Err(state) => state,
        };
        if start.elapsed() >= deadline {
            return Err(Timeout {
                what: what.to_string(),
                waited: start.elapsed(),
                last,
            });
        }
        tokio::time::sleep(interval).await;
        interval = (interval * 2).min(Duration::from_millis(250));
    }
}
