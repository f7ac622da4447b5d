//! Operating the messaging topology declared in `shared::topology`.
//!
//! - `provision`: applies the topology to the emulator or to AWS,
//!   idempotently (bin `provision`).
//!
//! Every name comes from the topology; nothing here types a queue name.

pub mod provision;

pub use provision::{Clients, ProvisionError, Provisioned, QueueRef, apply, queue_policy};
