//! The end-to-end tests, in one test binary: each links the AWS SDKs, and on
//! two cores linking is most of the build. Every test starts its own emulator
//! and Postgres cluster on free ports, so they run side by side.
//!
//! - `auth`: tokens and the two listeners on the real processes.
//! - `flow`: the whole journey through the three services as processes, on
//!   both order chains; a redelivered event changes nothing.
//! - `lambda`: the invoice consumer as a Lambda function behind a local
//!   Runtime API and event source mapping: the flow, a partial batch
//!   response, the sweep after a killed invocation.
//! - `outbox`: the relay on a real table and the emulator: two relays, the
//!   NOTIFY wake-up, an unreachable broker, partial and oversized batches.
//! - `crash`: a SIGKILL at each named fail point loses and doubles nothing.
//! - `shutdown`: SIGTERM under load loses no accepted order.
//! - `dlq`: poison to the DLQ, `ops dlq list` and `redrive`, archive replay.
//! - `telemetry`: one order is one trace; the metrics count what happened.
//! - `provision`: the topology read back from the emulator.
//! - `compose`: compose, the Dockerfile and the workflow agree with the code.
//! - `bench`: a smoke run of every measurement the benchmark makes.
//!
//! The chaos experiments are a binary of their own (`tests/chaos.rs`): they
//! measure latency and must not share the two cores with these.

mod auth;
mod bench;
mod compose;
mod crash;
mod dlq;
mod flow;
mod lambda;
mod outbox;
mod provision;
mod shutdown;
mod telemetry;
