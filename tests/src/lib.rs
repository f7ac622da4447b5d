//! The local stack and the end-to-end tests.
//!
//! - `stack`: starts moto, Postgres (an ephemeral cluster, or a server you
//!   name), one database and role per service, the provisioned topology and
//!   the three services as separate processes, and stops them all on drop.
//!   The demo (`src/bin/demo.rs`) and every end-to-end test use it.
//! - `client`: a small HTTP client for the three services' APIs.
//! - `chaos`: the chaos experiments (the `chaos` command and the chaos tests).
//! - `probe`: queue depths, inbox and outbox rows, metrics, for assertions.

pub mod chaos;
pub mod client;
pub mod probe;
pub mod stack;
