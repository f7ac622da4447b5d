//! The order domain: input parsed once into types that cannot hold bad values.
//!
//! An HTTP request becomes a `NewOrder` here or is refused with every problem
//! listed; past this module, an order always has 1 to 100 lines, quantities in
//! 1..=1000, non-negative prices, one ISO currency and a total that fits.

use std::fmt;

use contracts::events::{OrderLine, order_total};
use contracts::money::{Currency, MinorUnits};
use serde::{Deserialize, Serialize};

pub const MAX_LINES: usize = 100;
pub const MAX_QUANTITY: u32 = 1000;
const MAX_ID_LEN: usize = 64;

/// One invalid field, named by its path in the request (`lines[2].quantity`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct FieldError {
    pub field: String,
    pub problem: String,
}

impl FieldError {
    fn new(field: impl Into<String>, problem: impl Into<String>) -> Self {
        FieldError {
            field: field.into(),
            problem: problem.into(),
        }
    }
}

/// The body of `POST /orders` as it arrives: nothing is trusted yet.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PlaceOrderRequest {
    pub customer_id: String,
    pub lines: Vec<LineRequest>,
}

/// One line of an order as a client sends it; the rules are checked when
/// it is parsed (a `422` names every field that breaks them).
#[derive(Debug, Clone, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LineRequest {
    /// The product: 1 to 64 letters, digits, `-`, `_`, `.`, `:` or `@`.
    #[schema(min_length = 1, max_length = 64, example = "BOOK-42")]
    pub sku: String,
    #[schema(minimum = 1, maximum = 1000, example = 2)]
    pub quantity: i64,
    /// The price of one unit in the currency's minor unit (cents for EUR),
    /// as an integer: never a float.
    #[schema(minimum = 0, example = 1999)]
    pub unit_price_minor: i64,
    /// An ISO 4217 currency code; every line of an order has the same one.
    #[schema(pattern = "^[A-Z]{3}$", example = "EUR")]
    pub currency: String,
}

/// A customer id: 1 to 64 letters, digits, `-`, `_`, `.`, `:` or `@`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomerId(String);

impl CustomerId {
    pub fn parse(raw: &str) -> Result<Self, String> {
        parse_identifier(raw).map(CustomerId)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn parse_identifier(raw: &str) -> Result<String, String> {
    if raw.is_empty() {
        return Err("must not be empty".into());
    }
    if raw.chars().count() > MAX_ID_LEN {
        return Err(format!("must be at most {MAX_ID_LEN} characters"));
    }
    if !raw
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "-_.:@".contains(c))
    {
        return Err("may contain only letters, digits and - _ . : @".into());
    }
    Ok(raw.to_string())
}

/// The `Idempotency-Key` of a request: 1 to 255 visible ASCII characters
/// (a UUID is the usual choice).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey(String);

pub const MAX_IDEMPOTENCY_KEY_LEN: usize = 255;

impl IdempotencyKey {
    pub fn parse(raw: &str) -> Result<Self, String> {
        if raw.is_empty() {
            return Err("must not be empty".into());
        }
        if raw.len() > MAX_IDEMPOTENCY_KEY_LEN {
            return Err(format!(
                "must be at most {MAX_IDEMPOTENCY_KEY_LEN} characters"
            ));
        }
        if !raw.bytes().all(|b| b.is_ascii_graphic()) {
            return Err("may contain only visible ASCII characters".into());
        }
        Ok(IdempotencyKey(raw.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A valid order, ready to be stored and announced (`crate::usecases::place_order`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewOrder {
    pub customer_id: CustomerId,
    pub currency: Currency,
    pub lines: Vec<OrderLine>,
    pub total: MinorUnits,
}

impl TryFrom<PlaceOrderRequest> for NewOrder {
    type Error = Vec<FieldError>;

    fn try_from(req: PlaceOrderRequest) -> Result<Self, Self::Error> {
        let mut errors = Vec::new();
        let customer_id = CustomerId::parse(&req.customer_id)
            .map_err(|p| errors.push(FieldError::new("customer_id", p)))
            .ok();
        if req.lines.is_empty() {
            errors.push(FieldError::new("lines", "an order needs at least one line"));
        }
        if req.lines.len() > MAX_LINES {
            errors.push(FieldError::new(
                "lines",
                format!("an order has at most {MAX_LINES} lines"),
            ));
        }
        let mut currency: Option<Currency> = None;
        let mut lines = Vec::with_capacity(req.lines.len());
        for (i, line) in req.lines.iter().enumerate() {
            let at = |f: &str| format!("lines[{i}].{f}");
            let sku = parse_identifier(&line.sku)
                .map_err(|p| errors.push(FieldError::new(at("sku"), p)))
                .ok();
            let quantity = u32::try_from(line.quantity)
                .ok()
                .filter(|q| (1..=MAX_QUANTITY).contains(q))
                .ok_or_else(|| {
                    errors.push(FieldError::new(
                        at("quantity"),
                        format!("must be between 1 and {MAX_QUANTITY}"),
                    ))
                })
                .ok();
            let price = MinorUnits::try_from(line.unit_price_minor)
                .map_err(|e| errors.push(FieldError::new(at("unit_price_minor"), e.to_string())))
                .ok();
            match line.currency.parse::<Currency>() {
                Err(e) => errors.push(FieldError::new(at("currency"), e.to_string())),
                Ok(c) => match currency {
                    None => currency = Some(c),
                    Some(first) if first != c => errors.push(FieldError::new(
                        at("currency"),
                        format!("all lines must share one currency ({first}), got {c}"),
                    )),
                    Some(_) => {}
                },
            }
            if let (Some(sku), Some(quantity), Some(unit_price_minor)) = (sku, quantity, price) {
                lines.push(OrderLine {
                    sku,
                    quantity,
                    unit_price_minor,
                });
            }
        }
        let total = order_total(&lines)
            .map_err(|e| errors.push(FieldError::new("lines", format!("the order total {e}"))))
            .ok();
        match (customer_id, currency, total) {
            (Some(customer_id), Some(currency), Some(total)) if errors.is_empty() => Ok(NewOrder {
                customer_id,
                currency,
                lines,
                total,
            }),
            _ => Err(errors),
        }
    }
}

/// Where an order is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum OrderStatus {
    Placed,
    Invoiced,
    Cancelled,
}

impl OrderStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            OrderStatus::Placed => "PLACED",
            OrderStatus::Invoiced => "INVOICED",
            OrderStatus::Cancelled => "CANCELLED",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [
            OrderStatus::Placed,
            OrderStatus::Invoiced,
            OrderStatus::Cancelled,
        ]
        .into_iter()
        .find(|v| v.as_str() == s)
    }
}

impl fmt::Display for OrderStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idempotency_keys_are_visible_ascii_up_to_255_bytes() {
        assert!(IdempotencyKey::parse("0b6c1c62-7c4c-4a8e-9d57-1f0f3c9e2a41").is_ok());
        assert!(IdempotencyKey::parse(&"k".repeat(255)).is_ok());
        assert!(IdempotencyKey::parse("").is_err());
        assert!(IdempotencyKey::parse(&"k".repeat(256)).is_err());
        assert!(IdempotencyKey::parse("has space").is_err());
        assert!(IdempotencyKey::parse("caf\u{e9}").is_err());
    }

    fn line(sku: &str, quantity: i64, price: i64, currency: &str) -> LineRequest {
        LineRequest {
            sku: sku.into(),
            quantity,
            unit_price_minor: price,
            currency: currency.into(),
        }
    }

    fn request(lines: Vec<LineRequest>) -> PlaceOrderRequest {
        PlaceOrderRequest {
            customer_id: "c-1".into(),
            lines,
        }
    }

    fn fields(r: Result<NewOrder, Vec<FieldError>>) -> Vec<String> {
        r.expect_err("must be invalid")
            .into_iter()
            .map(|e| e.field)
            .collect()
    }

    #[test]
    fn a_valid_request_becomes_an_order_with_its_total() {
        let order = NewOrder::try_from(request(vec![
            line("A", 2, 1999, "EUR"),
            line("B", 1, 1, "EUR"),
        ]))
        .expect("valid");
        assert_eq!(order.total.value(), 3999);
        assert_eq!(order.currency.code(), "EUR");
        assert_eq!(order.lines.len(), 2);
    }

    #[test]
    fn quantities_outside_one_to_a_thousand_are_refused() {
        for q in [0, -1, 1001, i64::MAX] {
            assert_eq!(
                fields(NewOrder::try_from(request(vec![line("A", q, 1, "EUR")]))),
                ["lines[0].quantity"]
            );
        }
        assert!(NewOrder::try_from(request(vec![line("A", 1000, 1, "EUR")])).is_ok());
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let mut req = request(vec![line("", 1, -5, "XYZ")]);
        req.customer_id = String::new();
        let got = fields(NewOrder::try_from(req));
        assert_eq!(
            got,
            [
                "customer_id",
                "lines[0].sku",
                "lines[0].unit_price_minor",
                "lines[0].currency"
            ]
        );
    }

    #[test]
    fn empty_and_oversized_orders_are_refused() {
        assert_eq!(fields(NewOrder::try_from(request(vec![]))), ["lines"]);
        let many = (0..101)
            .map(|i| line(&format!("S{i}"), 1, 1, "EUR"))
            .collect();
        assert_eq!(fields(NewOrder::try_from(request(many))), ["lines"]);
    }

    #[test]
    fn mixed_currencies_are_refused() {
        assert_eq!(
            fields(NewOrder::try_from(request(vec![
                line("A", 1, 1, "EUR"),
                line("B", 1, 1, "USD")
            ]))),
            ["lines[1].currency"]
        );
    }

    #[test]
    fn a_total_that_overflows_is_refused_not_wrapped() {
        let lines = vec![
            line("A", 1000, i64::MAX / 1000, "EUR"),
            line("B", 1000, i64::MAX / 1000, "EUR"),
        ];
        assert_eq!(fields(NewOrder::try_from(request(lines))), ["lines"]);
    }
}
