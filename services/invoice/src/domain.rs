//! Invoicing rules.
//!
//! The total of an invoice is the sum of quantity × unit price over the
//! order's lines, in integer minor units, checked for overflow.

use shared::events::OrderLine;
use shared::money::{AmountError, MinorUnits};

pub fn invoice_total(lines: &[OrderLine]) -> Result<MinorUnits, AmountError> {
    lines.iter().try_fold(MinorUnits::ZERO, |acc, l| {
        l.unit_price_minor.checked_mul(l.quantity)?.checked_add(acc)
    })
}

/// What an order's invoice looks like now, as far as cancellation goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum InvoiceStatus {
    Issued,
    Voided,
}

impl InvoiceStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            InvoiceStatus::Issued => "ISSUED",
            InvoiceStatus::Voided => "VOIDED",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [InvoiceStatus::Issued, InvoiceStatus::Voided]
            .into_iter()
            .find(|v| v.as_str() == s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(quantity: u32, price: i64) -> OrderLine {
        OrderLine {
            sku: "S".into(),
            quantity,
            unit_price_minor: MinorUnits::try_from(price).expect("valid"),
        }
    }

    #[test]
    fn the_total_sums_quantity_times_price() {
        assert_eq!(
            invoice_total(&[line(2, 1999), line(3, 1)]).map(i64::from),
            Ok(4001)
        );
        assert_eq!(invoice_total(&[]).map(i64::from), Ok(0));
    }

    #[test]
    fn an_overflowing_total_is_an_error() {
        assert_eq!(
            invoice_total(&[line(1000, i64::MAX / 999)]),
            Err(AmountError::Overflow)
        );
    }
}
