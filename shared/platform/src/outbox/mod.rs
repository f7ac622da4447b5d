//! The transactional outbox.
//!
//! A service never publishes from a request handler. It writes the event into
//! the `outbox` table in the same transaction as the state change (`enqueue`),
//! so the event exists if and only if the change committed. The relay
//! (`relay`) publishes committed rows afterwards and marks them published.
//!
//! Delivery is at least once: a crash after publishing and before marking
//! publishes the row again, and consumers' inboxes make that harmless.
//!
//! - `limits`: what AWS refuses or silently drops and the emulator lets through.
//! - `store`: SQL on the outbox table (enqueue, claim, mark, prune).
//! - `publisher`: the broker side (SNS topic or EventBridge bus), in batches.
//! - `relay`: the loop that moves rows from the store to the publisher.
//! - `wakeup`: the LISTEN session that wakes the relay on each commit.

pub mod limits;
pub mod pacing;
pub mod publisher;
pub mod relay;
pub mod store;
pub mod wakeup;

pub use limits::{LimitError, MessageAttributes};
pub use publisher::{EventBridgePublisher, PublishError, Publisher, SnsPublisher};
pub use relay::{Claimed, Relay};
pub use store::{OutboxError, OutboxMessage, enqueue};
