//! AWS SDK configuration, from the standard chain.
//!
//! `AWS_ENDPOINT_URL` points every client at the emulator (the SDK reads it
//! itself), `AWS_REGION` and credentials come from the default provider chain,
//! so the same binary talks to an emulator locally and to AWS in production.

use std::time::Duration;

use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, SdkConfig};

/// A setting the SDK configuration cannot do without, or a malformed one.
#[derive(Debug, thiserror::Error)]
#[error("configuration error: {name} {problem}")]
pub struct SettingError {
    /// The environment variable to fix.
    pub name: &'static str,
    pub problem: String,
}

/// Loads the SDK configuration, failing with one line when no region is known
/// or the endpoint is not a URL.
pub async fn load_config() -> Result<SdkConfig, SettingError> {
    if let Ok(url) = std::env::var("AWS_ENDPOINT_URL")
        && !(url.starts_with("http://") || url.starts_with("https://"))
    {
        return Err(SettingError {
            name: "AWS_ENDPOINT_URL",
            problem: format!("must be an http(s) URL, got '{url}'"),
        });
    }
    let config = aws_config::defaults(BehaviorVersion::latest())
        .timeout_config(
            // Bounded calls: a frozen emulator must not hang a relay or a
            // consumer forever. The attempt timeout exceeds the 20 s maximum
            // of SQS long polling.
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(3))
                .operation_attempt_timeout(Duration::from_secs(25))
                .build(),
        )
        .load()
        .await;
    if config.region().is_none() {
        return Err(SettingError {
            name: "AWS_REGION",
            problem: "is not set (and no region is configured in an AWS profile)".into(),
        });
    }
    Ok(config)
}
