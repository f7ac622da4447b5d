//! The default sender: writes the notification to the log instead of sending it.

use super::{SendError, Sender};
use crate::domain::Notification;

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
