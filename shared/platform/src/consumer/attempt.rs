//! One message tried: decoded, then applied, in the span that continues its
//! publisher's trace.
//!
//! It says what happened and nothing more; what to do about it is
//! `disposition`'s to decide. Each outcome is logged once here, inside the
//! span, so its line carries the event's ids: at debug for the everyday ones
//! (applied, a duplicate skipped), which the `consumer_messages_*` counters
//! count, since a line per event at info costs more CPU per order than the
//! event's own work; at error for what needs an operator.

use std::time::Instant;

use aws_sdk_sqs::types::Message;
use tracing::{Instrument, Span};

use super::apply::{Applied, apply};
use super::decode::decode;
use super::disposition::Happened;
use super::{Consumer, Handler, HandlerError, span};
use crate::metrics;

impl<H: Handler> Consumer<H> {
    /// Tries `message`, on its `receive_count`th receive; returns its span
    /// too, so that carrying out the decision belongs to it.
    pub(super) async fn attempt(&self, message: &Message, receive_count: u32) -> (Happened, Span) {
        let decoded = decode(
            message.body().unwrap_or(""),
            &self.queue,
            self.expected_source,
        );
        let from_envelope = decoded.as_ref().ok().map(|(_, trace)| trace);
        let span = span::process(self.queue.name, message, receive_count, from_envelope);
        let event = match decoded {
            Ok((event, _)) => event,
            Err(reason) => {
                span::record_failure(&span, &reason);
                span.in_scope(|| tracing::error!(%reason, "poison message refused"));
                return (Happened::Refused(reason), span);
            }
        };
        span::record_event(&span, &event);
        let happened = async {
            let started = Instant::now();
            let applied = apply(&self.pool, &*self.handler, &event, self.queue.name).await;
            metrics::get()
                .consumer
                .handled(self.queue.name, started.elapsed());
            match applied {
                Ok(Applied::Now) => {
                    tracing::debug!("event applied");
                    Happened::Applied
                }
                Ok(Applied::Before) => {
                    tracing::debug!("duplicate event skipped");
                    Happened::Duplicate
                }
                Err(error) => {
                    let (HandlerError::Retry(reason)
                    | HandlerError::Unavailable(reason)
                    | HandlerError::Reject(reason)) = &error;
                    span::record_failure(&Span::current(), reason);
                    if let HandlerError::Reject(reason) = &error {
                        tracing::error!(%reason, "handler rejected the event");
                    }
                    Happened::Failed(error)
                }
            }
        }
        .instrument(span.clone())
        .await;
        (happened, span)
    }
}
