//! What the three services share.
//!
//! - `topology`: the one declaration of topics, buses, queues and rules.
//! - `events`, `money`: the event contracts and the money types they carry.
//! - `outbox`, `inbox`, `consumer`: the delivery guarantees (transactional
//!   outbox and relay; idempotent consumption from SQS).
//! - `config`, `aws`, `db`, `telemetry`, `metrics`, `shutdown`, `health`,
//!   `problem`: the plumbing every service needs, set up the same way
//!   everywhere.
//! - `app`: the runtime that wires these together for one service.
//!
//! A service crate keeps only its own domain, API, storage and handlers.

pub mod app;
pub mod aws;
pub mod config;
pub mod consumer;
pub mod db;
pub mod events;
pub mod failpoints;
pub mod health;
pub mod inbox;
pub mod metrics;
pub mod money;
pub mod outbox;
pub mod problem;
pub mod shutdown;
pub mod telemetry;
pub mod topology;
