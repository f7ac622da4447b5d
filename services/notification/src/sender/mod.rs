//! Delivery to the customer, behind a trait so a channel can be swapped
//! without touching the handler.
//!
//! - `log`: writes the notification to the log (the default).
//! - `webhook`: POSTs it as JSON to an HTTP endpoint, with an idempotency key.
//!
//! `NOTIFICATION_SENDER` picks one at start (`SenderSettings`); `AnySender`
//! holds the chosen one, so the handler stays generic over one type.
//!
//! A failure says whether trying again can help: a `Transient` one leaves the
//! event on its queue to be retried (and, after `maxReceiveCount`, moved to the
//! DLQ by the redrive policy), a `Permanent` one sends it to the DLQ at once
//! with the reason. Either way, once the cause is fixed, `ops dlq redrive`
//! brings the event back.

mod log;
mod webhook;

use std::future::Future;

use platform::config::{ConfigError, Env};

pub use self::log::LogSender;
pub use self::webhook::{WebhookSender, WebhookSettings};

use crate::domain::Notification;

/// Why a notification was not sent.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// May work later: the channel is down, slow or throttling.
    #[error("notification not sent, will retry: {0}")]
    Transient(String),
    /// Will not work as it is: the channel refused this notification.
    #[error("notification refused: {0}")]
    Permanent(String),
}

pub trait Sender: Send + Sync + 'static {
    /// The channel name recorded with each notification.
    fn channel(&self) -> &'static str;

    fn send(
        &self,
        notification: &Notification,
    ) -> impl Future<Output = Result<(), SendError>> + Send;
}

/// Which sender to use, from `NOTIFICATION_SENDER`: `log` (the default) or
/// `webhook` (which then needs `NOTIFICATION_WEBHOOK_URL`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SenderSettings {
    Log,
    Webhook(WebhookSettings),
}

impl SenderSettings {
    pub const VARIABLE: &'static str = "NOTIFICATION_SENDER";

    pub fn from_env<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<Self, ConfigError> {
        match env.get(Self::VARIABLE).as_deref().map(str::trim) {
            None | Some("log") => Ok(SenderSettings::Log),
            Some("webhook") => Ok(SenderSettings::Webhook(WebhookSettings::from_env(env)?)),
            Some(other) => Err(ConfigError::new(
                Self::VARIABLE,
                format!("must be 'log' or 'webhook', got '{other}'"),
            )),
        }
    }
}

/// The sender chosen at start.
pub enum AnySender {
    Log(LogSender),
    Webhook(WebhookSender),
}

impl AnySender {
    pub fn from_settings(settings: &SenderSettings) -> Result<Self, ConfigError> {
        Ok(match settings {
            SenderSettings::Log => AnySender::Log(LogSender),
            SenderSettings::Webhook(w) => {
                AnySender::Webhook(WebhookSender::new(w).map_err(|e| {
                    ConfigError::new(
                        SenderSettings::VARIABLE,
                        format!("webhook client cannot be built: {e}"),
                    )
                })?)
            }
        })
    }
}

impl Sender for AnySender {
    fn channel(&self) -> &'static str {
        match self {
            AnySender::Log(s) => s.channel(),
            AnySender::Webhook(s) => s.channel(),
        }
    }

    async fn send(&self, notification: &Notification) -> Result<(), SendError> {
        match self {
            AnySender::Log(s) => s.send(notification).await,
            AnySender::Webhook(s) => s.send(notification).await,
        }
    }
}
