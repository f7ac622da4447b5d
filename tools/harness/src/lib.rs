//! What the tools (demo, chaos, bench) and the end-to-end tests stand on.
//!
//! - `stack`: starts the emulator, Postgres (an ephemeral cluster, or a
//!   server you name), one database and role per service, the provisioned
//!   topology and the three services as separate processes, and stops them
//!   all on drop.
//! - `client`: a small HTTP client for the three services' APIs, with a
//!   token per customer.
//! - `issuer`: the local token issuer (keys, JWKS, client credentials).
//! - `lambda`: AWS Lambda locally: the Runtime API, a function process, and
//!   the SQS event source mapping that feeds it the emulator's messages.
//! - `load`: the open-loop order load and its history of ok / fail / unknown.
//! - `observe`: reading the system from outside (databases, queues, health),
//!   what the probes, abort conditions and checkers look at.
//! - `probe`: queue depths, inbox and outbox rows, metrics, for assertions.
//! - `procfs`: CPU time and resident memory of a process, from `/proc`.
//! - `report` and `chart`: what the chaos and bench reports share (the
//!   results folder, JSON files, Markdown tables, the machine, `KEY=VALUE`
//!   settings) and what their SVG charts share (palette, canvas, axes,
//!   legend).
//!
//! It drives the services only through their public interfaces: HTTP, the
//! environment, and their databases' documented tables.

pub mod chart;
pub mod client;
pub mod issuer;
pub mod lambda;
pub mod load;
pub mod observe;
pub mod probe;
pub mod procfs;
pub mod report;
pub mod stack;
