//! The thin layer between our code and the AWS SDK, shared by the services'
//! runtime and the operator tools so that neither repeats it:
//!
//! - `sdk`: the SDK configuration from the standard chain, with bounded calls
//!   and a one-line error naming the missing setting;
//! - `sqs`: the SQS calls both the consumer and the DLQ tools make.
//!
//! It knows nothing of events, databases or the topology.

pub mod sdk;
pub mod sqs;
