//! Configuration from the environment, loaded once at start.
//!
//! Every setting has a documented default except the ones that cannot have a
//! safe one (`DATABASE_URL`). A missing or malformed value stops the service
//! with one line that names the variable, before anything else starts.

use std::str::FromStr;
use std::time::Duration;

use secrecy::SecretString;

use contracts::topology::Chain;

/// A setting that is missing or malformed. Displays as one line naming it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("configuration error: {name} {problem}")]
pub struct ConfigError {
    pub name: String,
    pub problem: String,
}

impl ConfigError {
    pub fn new(name: &str, problem: impl Into<String>) -> Self {
        ConfigError {
            name: name.to_string(),
            problem: problem.into(),
        }
    }
}

/// Reads variables through a lookup function, so tests need not touch the
/// process environment.
pub struct Env<F: Fn(&str) -> Option<String>>(pub F);

impl Env<fn(&str) -> Option<String>> {
    pub fn process() -> Self {
        Env(|name| std::env::var(name).ok())
    }
}

/// An environment of the given pairs only, for tests of settings.
pub fn env_of(pairs: &[(&str, &str)]) -> Env<impl Fn(&str) -> Option<String> + use<>> {
    let map: std::collections::HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Env(move |k: &str| map.get(k).cloned())
}

impl<F: Fn(&str) -> Option<String>> Env<F> {
    /// The value of `name`, treating an empty string as unset.
    pub fn get(&self, name: &str) -> Option<String> {
        (self.0)(name).filter(|v| !v.trim().is_empty())
    }

    pub fn required(&self, name: &str) -> Result<String, ConfigError> {
        self.get(name)
            .ok_or_else(|| ConfigError::new(name, "is not set"))
    }

    pub fn parse_or<T>(&self, name: &str, default: T) -> Result<T, ConfigError>
    where
        T: FromStr,
        T::Err: std::fmt::Display,
    {
        match self.get(name) {
            None => Ok(default),
            Some(raw) => raw
                .trim()
                .parse()
                .map_err(|e| ConfigError::new(name, format!("is invalid ('{raw}'): {e}"))),
        }
    }

    /// A duration in milliseconds.
    pub fn millis_or(&self, name: &str, default_ms: u64) -> Result<Duration, ConfigError> {
        self.parse_or(name, default_ms).map(Duration::from_millis)
    }
}

/// What every service reads, whatever it does.
#[derive(Debug, Clone)]
pub struct CommonSettings {
    /// `PORT`: the HTTP port (each service has its own default).
    pub port: u16,
    /// `DATABASE_URL`: the service's own Postgres database. Required.
    pub database_url: SecretString,
    /// `DATABASE_MAX_CONNECTIONS`, default 8.
    pub database_max_connections: u32,
    /// `DATABASE_ACQUIRE_TIMEOUT_MS`, default 5000: how long a request or a
    /// message waits for a database connection before it fails (and, for a
    /// message, before the consumer pauses for the database).
    pub database_acquire_timeout: Duration,
    pub relay: RelaySettings,
    pub consumer: ConsumerSettings,
    /// `SHUTDOWN_TIMEOUT_MS`, default 20000 (or `SQS_WAIT_TIME_SECONDS` + 10 s,
    /// if more): the bound on a graceful stop.
    pub shutdown_timeout: Duration,
    /// `ORDERS_CHAIN`, default `standard`: the kind of SNS/SQS chain that
    /// carries order events (`standard` or `fifo`, see `contracts::topology`).
    pub orders_chain: Chain,
    /// `FAILPOINTS`, unset by default: fail points to arm, for tests
    /// (see `crate::failpoints`).
    pub failpoints: Option<String>,
    /// `METRICS_SAMPLE_INTERVAL_MS`, default 15000: how often the outbox
    /// backlog and the DLQ depths are sampled (see `crate::metrics`).
    pub metrics_sample_interval: Duration,
}

/// Settings of the outbox relay.
#[derive(Debug, Clone)]
pub struct RelaySettings {
    /// `RELAY_BATCH_SIZE`, default 10 (the SNS and EventBridge batch limit).
    pub batch_size: u32,
    /// `RELAY_POLL_INTERVAL_MS`, default 1000: the fallback when no NOTIFY arrives.
    pub poll_interval: Duration,
    /// `RELAY_RETENTION_HOURS`, default 24: how long published rows are kept.
    pub retention: Duration,
    /// `RELAY_LISTEN`, default true: wake on the outbox's NOTIFY at commit.
    /// `false` polls at the interval only, as the benchmark's baseline does.
    pub listen: bool,
    /// `RELAY_MAX_IN_FLIGHT`, default 4: publish calls in flight at once, each
    /// on its own claimed batch and its own database connection (held until
    /// the broker answers), so it must stay below `DATABASE_MAX_CONNECTIONS`.
    /// 1 is the single-flight relay: one batch per broker round trip.
    pub max_in_flight: u32,
    /// `RELAY_LINGER_MS`, default 0: after a claim that found fewer rows than
    /// a batch, how long the next claim may wait for more rows to commit
    /// (it stops waiting as soon as a batch's worth of commits is notified).
    /// An idle relay's first claim never waits.
    pub linger: Duration,
}

/// Settings of the SQS consumers.
#[derive(Debug, Clone)]
pub struct ConsumerSettings {
    /// `CONSUMER_CONCURRENCY`, default 2: poll tasks per queue.
    pub concurrency: u32,
    /// `SQS_WAIT_TIME_SECONDS`, default 10: long polling.
    pub wait_time_secs: i32,
    /// `CONSUMER_VISIBILITY_TIMEOUT_SECS`, default 30: how long a received
    /// message stays hidden from other consumers; a handler that runs longer
    /// extends it (the heartbeat) instead of letting it reappear.
    pub visibility_timeout_secs: i32,
    /// `CONSUMER_RETRY_MAX_DELAY_SECS`, default 300: the cap on the growing
    /// delay before a failed message is tried again.
    pub retry_max_delay: Duration,
    /// `CONSUMER_READ_AHEAD`, default true: each poll task sends its next
    /// receive while it handles a batch, so it holds up to two batches.
    pub read_ahead: bool,
    /// `CONSUMERS_ENABLED`, default true: whether this process consumes the
    /// service's queues. False where the queues are consumed elsewhere (the
    /// service's Lambda functions), so that the process serves the API and
    /// relays its outbox only.
    pub enabled: bool,
}

impl CommonSettings {
    pub fn from_env<F: Fn(&str) -> Option<String>>(
        env: &Env<F>,
        default_port: u16,
    ) -> Result<Self, ConfigError> {
        let database_url = env.required("DATABASE_URL")?;
        if !(database_url.starts_with("postgres://") || database_url.starts_with("postgresql://")) {
            return Err(ConfigError::new(
                "DATABASE_URL",
                "must be a postgres:// URL",
            ));
        }
        let batch_size = env.parse_or("RELAY_BATCH_SIZE", 10u32)?;
        if !(1..=10).contains(&batch_size) {
            return Err(ConfigError::new(
                "RELAY_BATCH_SIZE",
                "must be between 1 and 10",
            ));
        }
        let database_max_connections = env.parse_or("DATABASE_MAX_CONNECTIONS", 8u32)?;
        let max_in_flight = env.parse_or("RELAY_MAX_IN_FLIGHT", 4u32)?;
        if !(1..=64).contains(&max_in_flight) {
            return Err(ConfigError::new(
                "RELAY_MAX_IN_FLIGHT",
                "must be between 1 and 64",
            ));
        }
        // Each batch in flight holds a pooled connection until the broker
        // answers; the requests and the consumers need at least one more.
        if max_in_flight >= database_max_connections {
            return Err(ConfigError::new(
                "RELAY_MAX_IN_FLIGHT",
                format!(
                    "({max_in_flight}) must be below DATABASE_MAX_CONNECTIONS ({database_max_connections}): each batch in flight holds a connection"
                ),
            ));
        }
        let linger = env.millis_or("RELAY_LINGER_MS", 0)?;
        if linger > Duration::from_secs(1) {
            return Err(ConfigError::new(
                "RELAY_LINGER_MS",
                "must be between 0 and 1000",
            ));
        }
        let wait_time_secs = env.parse_or("SQS_WAIT_TIME_SECONDS", 10i32)?;
        if !(0..=20).contains(&wait_time_secs) {
            return Err(ConfigError::new(
                "SQS_WAIT_TIME_SECONDS",
                "must be between 0 and 20",
            ));
        }
        let concurrency = env.parse_or("CONSUMER_CONCURRENCY", 2u32)?;
        if concurrency == 0 {
            return Err(ConfigError::new(
                "CONSUMER_CONCURRENCY",
                "must be at least 1",
            ));
        }
        let visibility_timeout_secs = env.parse_or("CONSUMER_VISIBILITY_TIMEOUT_SECS", 30i32)?;
        if !(2..=43_200).contains(&visibility_timeout_secs) {
            return Err(ConfigError::new(
                "CONSUMER_VISIBILITY_TIMEOUT_SECS",
                "must be between 2 and 43200 (the SQS maximum)",
            ));
        }
        let retry_max_delay_secs = env.parse_or("CONSUMER_RETRY_MAX_DELAY_SECS", 300u64)?;
        if !(1..=43_200).contains(&retry_max_delay_secs) {
            return Err(ConfigError::new(
                "CONSUMER_RETRY_MAX_DELAY_SECS",
                "must be between 1 and 43200 (the SQS maximum)",
            ));
        }
        let metrics_sample_interval = env.millis_or("METRICS_SAMPLE_INTERVAL_MS", 15_000)?;
        if !(Duration::from_millis(100)..=Duration::from_secs(3600))
            .contains(&metrics_sample_interval)
        {
            return Err(ConfigError::new(
                "METRICS_SAMPLE_INTERVAL_MS",
                "must be between 100 and 3600000",
            ));
        }
        let acquire_timeout = env.millis_or("DATABASE_ACQUIRE_TIMEOUT_MS", 5000)?;
        if acquire_timeout < Duration::from_millis(100) {
            return Err(ConfigError::new(
                "DATABASE_ACQUIRE_TIMEOUT_MS",
                "must be at least 100",
            ));
        }
        Ok(CommonSettings {
            port: env.parse_or("PORT", default_port)?,
            database_url: SecretString::from(database_url),
            database_max_connections,
            database_acquire_timeout: acquire_timeout,
            relay: RelaySettings {
                batch_size,
                poll_interval: env.millis_or("RELAY_POLL_INTERVAL_MS", 1000)?,
                retention: Duration::from_secs(
                    3600 * env.parse_or("RELAY_RETENTION_HOURS", 24u64)?,
                ),
                listen: env.parse_or("RELAY_LISTEN", true)?,
                max_in_flight,
                linger,
            },
            consumer: ConsumerSettings {
                concurrency,
                wait_time_secs,
                visibility_timeout_secs,
                retry_max_delay: Duration::from_secs(retry_max_delay_secs),
                read_ahead: env.parse_or("CONSUMER_READ_AHEAD", true)?,
                enabled: env.parse_or("CONSUMERS_ENABLED", true)?,
            },
            // A stopping consumer lets its long poll in flight return: the
            // default leaves room for the longest poll and its batch.
            shutdown_timeout: env.millis_or(
                "SHUTDOWN_TIMEOUT_MS",
                20_000u64.max((wait_time_secs as u64 + 10) * 1000),
            )?,
            orders_chain: env.parse_or(Chain::VARIABLE, Chain::Standard)?,
            failpoints: env.get(crate::failpoints::VARIABLE),
            metrics_sample_interval,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use super::env_of as env;

    #[test]
    fn defaults_apply_when_only_the_database_is_given() {
        let s = CommonSettings::from_env(&env(&[("DATABASE_URL", "postgres://u@h/db")]), 8081)
            .expect("valid");
        assert_eq!(s.port, 8081);
        assert_eq!(s.relay.batch_size, 10);
        assert!(s.relay.listen);
        assert_eq!(s.relay.max_in_flight, 4);
        assert_eq!(s.relay.linger, Duration::ZERO);
        assert_eq!(s.consumer.wait_time_secs, 10);
        assert_eq!(s.consumer.visibility_timeout_secs, 30);
        assert_eq!(s.consumer.retry_max_delay, Duration::from_secs(300));
        assert!(s.consumer.read_ahead);
        assert!(s.consumer.enabled);
        assert_eq!(s.metrics_sample_interval, Duration::from_secs(15));
    }

    #[test]
    fn consumers_can_be_left_to_lambda_functions_and_a_bad_switch_is_named() {
        let off = CommonSettings::from_env(
            &env(&[
                ("DATABASE_URL", "postgres://u@h/db"),
                ("CONSUMERS_ENABLED", "false"),
            ]),
            8081,
        )
        .expect("valid");
        assert!(!off.consumer.enabled);
        let err = CommonSettings::from_env(
            &env(&[
                ("DATABASE_URL", "postgres://u@h/db"),
                ("CONSUMERS_ENABLED", "lambda"),
            ]),
            8081,
        )
        .expect_err("not a bool");
        assert!(err.to_string().contains("CONSUMERS_ENABLED"), "{err}");
    }

    #[test]
    fn a_metrics_sample_interval_below_100_ms_is_refused() {
        let err = CommonSettings::from_env(
            &env(&[
                ("DATABASE_URL", "postgres://x"),
                ("METRICS_SAMPLE_INTERVAL_MS", "5"),
            ]),
            1,
        )
        .expect_err("must fail");
        assert_eq!(err.name, "METRICS_SAMPLE_INTERVAL_MS");
    }

    #[test]
    fn a_missing_database_url_names_the_variable() {
        let err = CommonSettings::from_env(&env(&[]), 8081).expect_err("must fail");
        assert_eq!(
            err.to_string(),
            "configuration error: DATABASE_URL is not set"
        );
    }

    #[test]
    fn a_malformed_port_names_the_variable_and_the_value() {
        let err = CommonSettings::from_env(
            &env(&[("DATABASE_URL", "postgres://x"), ("PORT", "80a")]),
            1,
        )
        .expect_err("must fail");
        assert_eq!(err.name, "PORT");
        assert!(err.to_string().contains("'80a'"), "{err}");
        assert!(!err.to_string().contains('\n'));
    }

    #[test]
    fn a_visibility_timeout_too_short_for_a_heartbeat_is_refused() {
        let err = CommonSettings::from_env(
            &env(&[
                ("DATABASE_URL", "postgres://x"),
                ("CONSUMER_VISIBILITY_TIMEOUT_SECS", "1"),
            ]),
            1,
        )
        .expect_err("must fail");
        assert_eq!(err.name, "CONSUMER_VISIBILITY_TIMEOUT_SECS");
    }

    #[test]
    fn the_relay_can_be_told_not_to_listen_and_a_bad_value_is_one_line() {
        let s = CommonSettings::from_env(
            &env(&[("DATABASE_URL", "postgres://x"), ("RELAY_LISTEN", "false")]),
            1,
        )
        .expect("valid");
        assert!(!s.relay.listen);
        let err = CommonSettings::from_env(
            &env(&[("DATABASE_URL", "postgres://x"), ("RELAY_LISTEN", "no")]),
            1,
        )
        .expect_err("must fail");
        assert_eq!(err.name, "RELAY_LISTEN");
        assert!(!err.to_string().contains('\n'), "{err}");
    }

    #[test]
    fn read_ahead_can_be_turned_off_and_a_bad_value_is_one_line() {
        let s = CommonSettings::from_env(
            &env(&[
                ("DATABASE_URL", "postgres://x"),
                ("CONSUMER_READ_AHEAD", "false"),
            ]),
            1,
        )
        .expect("valid");
        assert!(!s.consumer.read_ahead);
        let err = CommonSettings::from_env(
            &env(&[
                ("DATABASE_URL", "postgres://x"),
                ("CONSUMER_READ_AHEAD", "off"),
            ]),
            1,
        )
        .expect_err("must fail");
        assert_eq!(err.name, "CONSUMER_READ_AHEAD");
        assert!(!err.to_string().contains('\n'), "{err}");
    }

    #[test]
    fn a_batch_size_beyond_the_aws_limit_is_refused() {
        let err = CommonSettings::from_env(
            &env(&[("DATABASE_URL", "postgres://x"), ("RELAY_BATCH_SIZE", "11")]),
            1,
        )
        .expect_err("must fail");
        assert_eq!(err.name, "RELAY_BATCH_SIZE");
    }

    #[test]
    fn publish_calls_in_flight_must_leave_a_pooled_connection_for_the_rest() {
        let s = CommonSettings::from_env(
            &env(&[
                ("DATABASE_URL", "postgres://x"),
                ("RELAY_MAX_IN_FLIGHT", "1"),
                ("RELAY_LINGER_MS", "5"),
            ]),
            1,
        )
        .expect("valid");
        assert_eq!(s.relay.max_in_flight, 1);
        assert_eq!(s.relay.linger, Duration::from_millis(5));
        for (in_flight, pool) in [("0", "8"), ("65", "100"), ("8", "8"), ("9", "8")] {
            let err = CommonSettings::from_env(
                &env(&[
                    ("DATABASE_URL", "postgres://x"),
                    ("RELAY_MAX_IN_FLIGHT", in_flight),
                    ("DATABASE_MAX_CONNECTIONS", pool),
                ]),
                1,
            )
            .expect_err("must fail");
            assert_eq!(err.name, "RELAY_MAX_IN_FLIGHT", "{in_flight} of {pool}");
            assert!(!err.to_string().contains('\n'), "{err}");
        }
        let s = CommonSettings::from_env(
            &env(&[
                ("DATABASE_URL", "postgres://x"),
                ("RELAY_MAX_IN_FLIGHT", "16"),
                ("DATABASE_MAX_CONNECTIONS", "20"),
            ]),
            1,
        )
        .expect("a larger pool allows more in flight");
        assert_eq!(s.relay.max_in_flight, 16);
    }

    #[test]
    fn a_linger_over_a_second_is_refused() {
        let err = CommonSettings::from_env(
            &env(&[
                ("DATABASE_URL", "postgres://x"),
                ("RELAY_LINGER_MS", "1001"),
            ]),
            1,
        )
        .expect_err("must fail");
        assert_eq!(err.name, "RELAY_LINGER_MS");
    }
}
