//! AWS clients, configured from the standard chain.
//!
//! `AWS_ENDPOINT_URL` points every client at the emulator (the SDK reads it
//! itself), `AWS_REGION` and credentials come from the default provider chain,
//! so the same binary talks to moto locally and to AWS in production.

use std::time::Duration;

use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, SdkConfig};

use crate::config::ConfigError;

/// The three clients a service may need; each is cheap to clone.
#[derive(Clone, Debug)]
pub struct AwsClients {
    pub sqs: aws_sdk_sqs::Client,
    pub sns: aws_sdk_sns::Client,
    pub events: aws_sdk_eventbridge::Client,
}

/// Loads the shared SDK configuration, failing with one line when no region is known.
pub async fn load_config() -> Result<SdkConfig, ConfigError> {
    if let Ok(url) = std::env::var("AWS_ENDPOINT_URL")
        && !(url.starts_with("http://") || url.starts_with("https://"))
    {
        return Err(ConfigError::new(
            "AWS_ENDPOINT_URL",
            format!("must be an http(s) URL, got '{url}'"),
        ));
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
        return Err(ConfigError::new(
            "AWS_REGION",
            "is not set (and no region is configured in an AWS profile)",
        ));
    }
    Ok(config)
}

impl AwsClients {
    pub fn new(config: &SdkConfig) -> Self {
        AwsClients {
            sqs: aws_sdk_sqs::Client::new(config),
            sns: aws_sdk_sns::Client::new(config),
            events: aws_sdk_eventbridge::Client::new(config),
        }
    }
}
