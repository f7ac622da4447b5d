//! The runtime every service shares, set up the same way everywhere.
//!
//! - `outbox`, `inbox`, `consumer`: the delivery guarantees (transactional
//!   outbox and relay; idempotent consumption from SQS).
//! - `config`, `aws`, `db`, `telemetry`, `metrics`, `shutdown`, `health`,
//!   `problem`: the plumbing every service needs.
//! - `failpoints`: the named crash windows the tests arm (compiled in only
//!   with the `failpoints` feature).
//! - `app`: the runtime that wires these together for one service.
//! - `openapi`: what the services' OpenAPI documents share (the bearer
//!   scheme, problem+json, the edge's answers) and their drift check.
//!
//! What travels between the services (events, money, the topology) is the
//! `contracts` crate's; a service crate keeps only its own domain, use cases,
//! API, storage and handlers.

pub mod app;
pub mod auth;
pub mod aws;
pub mod config;
pub mod consumer;
pub mod db;
pub mod edge;
pub mod failpoints;
pub mod health;
pub mod inbox;
pub mod metrics;
pub mod openapi;
pub mod outbox;
pub mod problem;
pub mod shutdown;
pub mod telemetry;
