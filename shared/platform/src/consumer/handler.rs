//! What a service implements to consume events, and how it says it failed.
//!
//! The error has three ways because each asks the consumer for something
//! different: `Retry` (try again later, then the DLQ), `Reject` (the DLQ now)
//! and `Unavailable` (the service's own database is down: stop receiving
//! until it answers, so an outage does not use up messages' receives).

use std::future::Future;

use sqlx::PgConnection;

use crate::db;
use contracts::events::ReceivedEvent;

/// Why a handler could not apply an event.
#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    /// May succeed later (database down, a precondition not yet met): the
    /// message is retried with backoff, then redriven to the DLQ.
    #[error("{0}")]
    Retry(String),
    /// Can never succeed: the message goes to the DLQ now.
    #[error("{0}")]
    Reject(String),
    /// The service's own database does not answer: the message is retried,
    /// and the consumer receives nothing more until the database answers, so
    /// that an outage does not use up messages' receives and park them in the
    /// DLQ.
    #[error("{0}")]
    Unavailable(String),
}

impl From<sqlx::Error> for HandlerError {
    fn from(e: sqlx::Error) -> Self {
        if db::is_unavailable(&e) {
            HandlerError::Unavailable(format!("database unavailable: {e}"))
        } else {
            HandlerError::Retry(format!("database: {e}"))
        }
    }
}

/// A service's reaction to the events it consumes. Runs inside the inbox
/// transaction: everything written through `tx` commits with the inbox row.
pub trait Handler: Send + Sync + 'static {
    fn handle(
        &self,
        event: &ReceivedEvent,
        tx: &mut PgConnection,
    ) -> impl Future<Output = Result<(), HandlerError>> + Send;
}
