//! A bounded retry with exponential backoff, for the operator commands.
//!
//! The SDK already retries throttling and transient errors a few times; this
//! outer bound covers what outlasts it (a restarting emulator, a dropped
//! connection) without ever looping forever: after `attempts` tries the last
//! error is returned and the command reports how far it got.

use std::future::Future;
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};

/// How often and how patiently to try.
#[derive(Debug, Clone, Copy)]
pub struct Retry {
    /// Tries in all, the first one included.
    pub attempts: usize,
    pub min_delay: Duration,
    pub max_delay: Duration,
}

impl Retry {
    /// Five tries, 200 ms, 400 ms, ... at most 5 s apart, with jitter.
    pub const DEFAULT: Retry = Retry {
        attempts: 5,
        min_delay: Duration::from_millis(200),
        max_delay: Duration::from_secs(5),
    };

    /// Runs `call` until it succeeds or has failed `attempts` times.
    pub async fn run<T, E, F, Fut>(self, what: &str, mut call: F) -> Result<T, E>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, E>>,
        E: std::fmt::Display,
    {
        let mut backoff = ExponentialBuilder::default()
            .with_min_delay(self.min_delay)
            .with_max_delay(self.max_delay)
            .with_jitter()
            .with_max_times(self.attempts.saturating_sub(1))
            .build();
        loop {
            match call().await {
                Ok(value) => return Ok(value),
                Err(e) => match backoff.next() {
                    Some(delay) => {
                        tracing::warn!(error = %e, retry_in = ?delay, "{what} failed; retrying");
                        tokio::time::sleep(delay).await;
                    }
                    None => return Err(e),
                },
            }
        }
    }
}

/// `Retry::DEFAULT.run(what, call)`.
pub async fn bounded<T, E, F, Fut>(what: &str, call: F) -> Result<T, E>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
    E: std::fmt::Display,
{
    Retry::DEFAULT.run(what, call).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    const FAST: Retry = Retry {
        attempts: 4,
        min_delay: Duration::from_millis(1),
        max_delay: Duration::from_millis(2),
    };

    #[tokio::test]
    async fn gives_up_after_the_bound_with_the_last_error() {
        let calls = Cell::new(0);
        let result: Result<(), String> = FAST
            .run("test", || {
                calls.set(calls.get() + 1);
                let n = calls.get();
                async move { Err(format!("failure {n}")) }
            })
            .await;
        assert_eq!(result, Err("failure 4".to_string()));
        assert_eq!(calls.get(), 4);
    }

    #[tokio::test]
    async fn returns_the_first_success() {
        let calls = Cell::new(0);
        let result: Result<u32, String> = FAST
            .run("test", || {
                calls.set(calls.get() + 1);
                let n = calls.get();
                async move { if n < 3 { Err("not yet".into()) } else { Ok(n) } }
            })
            .await;
        assert_eq!(result, Ok(3));
    }
}
