//! The local stack and the end-to-end tests.
//!
//! - `stack`: starts moto, Postgres (an ephemeral cluster, or a server you
//!   name), one database and role per service, the provisioned topology and
//!   the three services as separate processes, and stops them all on drop.
//!   The demo (`src/bin/demo.rs`) and every end-to-end test use it.
//! - `client`: a small HTTP client for the three services' APIs.
//! - `chaos`: the chaos experiments (the `chaos` command and the chaos tests).
//! - `bench`: the benchmark (the `bench` command and its smoke test).
//! - `load`: the open-loop order load both of them drive the stack with.
//! - `procfs`: CPU time and resident memory of a process, from `/proc`.
//! - `probe`: queue depths, inbox and outbox rows, metrics, for assertions.

pub mod bench;
pub mod chaos;
pub mod client;
pub mod load;
pub mod probe;
pub mod procfs;
pub mod stack;
