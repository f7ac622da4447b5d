//! Operating the messaging topology declared in `contracts::topology`.
//!
//! - `provision`: applies the topology to the emulator or to AWS,
//!   idempotently (bin `provision`).
//! - `dlq`: what is in each dead-letter queue and why, and moving messages
//!   back to their source queue once the cause is fixed (bin `ops dlq`).
//! - `replay`: replaying a time window of the `billing` bus from its archive
//!   (bin `ops archive replay`).
//! - `retry`: the bounded retry with backoff those commands use.
//! - `cloudformation`: the same topology as a CloudFormation template for a
//!   real account, with encryption, least-privilege roles and alarms (bin
//!   `ops cloudformation`).
//! - `ecs`: the compute side as a second template: the services on ECS
//!   Fargate with their databases, the order API's load balancer and scaling
//!   on queue backlog, on top of the messaging stack.
//! - `scaling`: the arithmetic of that scaling (backlog per task).
//! - `functions`: the consumers as AWS Lambda functions, a third template on
//!   top of the two others (event source mappings, outbox sweep schedules).
//!
//! Every name comes from the topology; nothing here types a queue name.

pub mod cloudformation;
pub mod dlq;
pub mod ecs;
pub mod functions;
pub mod provision;
pub mod replay;
pub mod retry;
pub mod scaling;

pub use provision::{Clients, ProvisionError, Provisioned, QueueRef, apply, queue_policy};
