//! AWS clients, configured from the standard chain.
//!
//! `AWS_ENDPOINT_URL` points every client at the emulator (the SDK reads it
//! itself), `AWS_REGION` and credentials come from the default provider chain,
//! so the same binary talks to moto locally and to AWS in production. The
//! loading itself lives in `aws_adapter::sdk`, which the operator tools share.

use aws_config::SdkConfig;

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
    aws_adapter::sdk::load_config()
        .await
        .map_err(|e| ConfigError::new(e.name, e.problem))
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
