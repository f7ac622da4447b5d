//! Delivery to the customer, behind a trait so a real channel (email, SMS,
//! push) can replace the log sender without touching the handler.

use std::future::Future;

use crate::domain::Notification;

#[derive(Debug, thiserror::Error)]
#[error("notification not sent: {0}")]
pub struct SendError(pub String);

pub trait Sender: Send + Sync + 'static {
    /// The channel name recorded with each notification.
    fn channel(&self) -> &'static str;

    fn send(
        &self,
        notification: &Notification,
    ) -> impl Future<Output = Result<(), SendError>> + Send;
}

/// Writes the notification to the log instead of sending it.
pub struct LogSender;

impl Sender for LogSender {
    fn channel(&self) -> &'static str {
        "log"
    }

    async fn send(&self, n: &Notification) -> Result<(), SendError> {
        tracing::info!(recipient = %n.recipient, kind = n.kind, message = %n.message, "notification sent");
        Ok(())
    }
}
