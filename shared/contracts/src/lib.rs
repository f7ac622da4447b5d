//! The contracts between the three services: what travels and where.
//!
//! - `service`: the service identity (who owns a queue, who publishes an event).
//! - `events`: the one versioned envelope, the four event types and their
//!   versions; `events::schemas` renders their JSON Schemas.
//! - `money`: the integer minor units and currencies events carry.
//! - `topology`: the one declaration of topics, buses, queues, DLQs and rules.
//! - `asyncapi`: renders the AsyncAPI document of the topology and the events.
//!
//! Pure data and rules: no I/O, no runtime. The provisioner, the services and
//! the tools all read these, and a consumer team reads what they render under
//! `contracts/`.

pub mod asyncapi;
pub mod events;
pub mod money;
pub mod service;
pub mod topology;

pub use service::Service;
