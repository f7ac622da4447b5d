//! Logging set up once per process.
//!
//! `RUST_LOG` filters (default `info`); `LOG_FORMAT=json` switches to one JSON
//! object per line for log shippers. Everything logs through `tracing`.

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt;
use tracing_subscriber::prelude::*;

use crate::config::{ConfigError, Env};

pub fn init<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<(), ConfigError> {
    let filter = match env.get("RUST_LOG") {
        Some(spec) => EnvFilter::try_new(&spec)
            .map_err(|e| ConfigError::new("RUST_LOG", format!("is invalid: {e}")))?,
        None => EnvFilter::new("info,aws_config=warn,aws_smithy_runtime=warn,sqlx=warn"),
    };
    let json = match env.get("LOG_FORMAT").as_deref() {
        None | Some("text") => false,
        Some("json") => true,
        Some(other) => {
            return Err(ConfigError::new(
                "LOG_FORMAT",
                format!("must be 'text' or 'json', got '{other}'"),
            ));
        }
    };
    let registry = tracing_subscriber::registry().with(filter);
    let result = if json {
        registry
            .with(
                fmt::layer()
                    .json()
                    .with_current_span(true)
                    .with_span_list(false),
            )
            .try_init()
    } else {
        registry.with(fmt::layer().with_target(false)).try_init()
    };
    // A second init (tests that build several apps in one process) keeps the first.
    let _ = result;
    Ok(())
}
