//! Payload versions producers no longer write, kept so that consumers still
//! decode them: an event written before an upgrade can wait in a queue, a DLQ
//! or the bus archive and be redriven or replayed after it.
//!
//! Each type here is frozen: its schema is committed under `contracts/` and the
//! drift test fails if it changes, even through a type it shares with the
//! current version (`OrderLine`, `Currency`). Each comes with the conversion
//! into the current type, so handlers only ever see the current version.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{EventType, OrderLine, OrderPlaced, Payload, order_total};
use crate::money::{AmountError, Currency};

/// `OrderPlaced` version 1: an accepted order without its total, which every
/// consumer summed from the lines.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct OrderPlacedV1 {
    pub order_id: Uuid,
    pub customer_id: String,
    pub currency: Currency,
    /// At least one line, all in `currency`.
    pub lines: Vec<OrderLine>,
}

impl Payload for OrderPlacedV1 {
    const TYPE: EventType = EventType::OrderPlaced;
    const VERSION: u32 = 1;
}

/// Version 2 carries the total a version-1 consumer computed: the sum of
/// quantity × unit price over the lines. It fails only when that sum overflows.
impl TryFrom<OrderPlacedV1> for OrderPlaced {
    type Error = AmountError;

    fn try_from(v1: OrderPlacedV1) -> Result<Self, AmountError> {
        let total_minor = order_total(&v1.lines)?;
        Ok(OrderPlaced {
            order_id: v1.order_id,
            customer_id: v1.customer_id,
            currency: v1.currency,
            lines: v1.lines,
            total_minor,
        })
    }
}
