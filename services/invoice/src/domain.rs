//! Invoicing rules.
//!
//! An invoice is for the order's total as the order service priced it, which
//! `OrderPlaced` carries (`total_minor`); the invoice service never prices an
//! order itself.

/// What an order's invoice looks like now, as far as cancellation goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
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
