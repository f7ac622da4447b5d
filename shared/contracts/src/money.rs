//! Money as integer minor units with an ISO 4217 currency: never floats.
//!
//! `Currency` and `MinorUnits` are parsed once at the edge; past that point a
//! value of these types is known to be valid, and arithmetic on them is checked.
//!
//! Both travel in events, so each also describes itself as JSON Schema: what a
//! consumer in any language may rely on, not just "a string" and "a number".

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Serialize};

/// An active ISO 4217 currency code, such as `EUR`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Currency(iso_currency::Currency);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{0}' is not an ISO 4217 currency code")]
pub struct InvalidCurrency(pub String);

impl Currency {
    pub fn code(&self) -> &'static str {
        self.0.code()
    }
}

impl FromStr for Currency {
    type Err = InvalidCurrency;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        iso_currency::Currency::from_code(s)
            .map(Currency)
            .ok_or_else(|| InvalidCurrency(s.to_string()))
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

impl Serialize for Currency {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.code())
    }
}

impl<'de> Deserialize<'de> for Currency {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let code = String::deserialize(d)?;
        code.parse().map_err(serde::de::Error::custom)
    }
}

impl JsonSchema for Currency {
    fn schema_name() -> Cow<'static, str> {
        "Currency".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "An active ISO 4217 currency code: three upper-case letters, such as EUR.",
            "type": "string",
            "pattern": "^[A-Z]{3}$",
            "examples": ["EUR"]
        })
    }
}

/// A non-negative amount in the currency's minor unit (cents for EUR).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "i64", into = "i64")]
pub struct MinorUnits(i64);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AmountError {
    #[error("amount must not be negative, got {0}")]
    Negative(i64),
    #[error("amount overflows 64-bit minor units")]
    Overflow,
}

impl MinorUnits {
    pub const ZERO: MinorUnits = MinorUnits(0);

    pub fn value(self) -> i64 {
        self.0
    }

    pub fn checked_add(self, other: MinorUnits) -> Result<MinorUnits, AmountError> {
        self.0
            .checked_add(other.0)
            .map(MinorUnits)
            .ok_or(AmountError::Overflow)
    }

    pub fn checked_mul(self, factor: u32) -> Result<MinorUnits, AmountError> {
        self.0
            .checked_mul(i64::from(factor))
            .map(MinorUnits)
            .ok_or(AmountError::Overflow)
    }
}

impl TryFrom<i64> for MinorUnits {
    type Error = AmountError;

    fn try_from(v: i64) -> Result<Self, Self::Error> {
        if v < 0 {
            Err(AmountError::Negative(v))
        } else {
            Ok(MinorUnits(v))
        }
    }
}

impl From<MinorUnits> for i64 {
    fn from(m: MinorUnits) -> i64 {
        m.0
    }
}

impl JsonSchema for MinorUnits {
    fn schema_name() -> Cow<'static, str> {
        "MinorUnits".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "A non-negative amount in the currency's minor unit (cents for EUR), as an integer: never a float.",
            "type": "integer",
            "format": "int64",
            "minimum": 0,
            "maximum": i64::MAX
        })
    }
}

/// The same description for the services' OpenAPI documents (`utoipa`).
impl utoipa::PartialSchema for Currency {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .description(Some(
                "An active ISO 4217 currency code: three upper-case letters, such as EUR.",
            ))
            .pattern(Some("^[A-Z]{3}$"))
            .examples(["EUR"])
            .into()
    }
}

impl utoipa::ToSchema for Currency {
    fn name() -> Cow<'static, str> {
        "Currency".into()
    }
}

/// The same description for the services' OpenAPI documents (`utoipa`).
impl utoipa::PartialSchema for MinorUnits {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{KnownFormat, SchemaFormat, Type};
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(Type::Integer)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int64)))
            .description(Some(
                "A non-negative amount in the currency's minor unit (cents for EUR), as an integer: never a float.",
            ))
            .minimum(Some(0))
            .maximum(Some(i64::MAX))
            .into()
    }
}

impl utoipa::ToSchema for MinorUnits {
    fn name() -> Cow<'static, str> {
        "MinorUnits".into()
    }
}

impl fmt::Display for MinorUnits {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn currency_accepts_iso_codes_and_rejects_others() {
        assert_eq!("EUR".parse::<Currency>().map(|c| c.code()), Ok("EUR"));
        assert!("eur".parse::<Currency>().is_err());
        assert!("XYZ".parse::<Currency>().is_err());
        assert!("EURO".parse::<Currency>().is_err());
    }

    #[test]
    fn minor_units_reject_negative_amounts() {
        assert_eq!(MinorUnits::try_from(-1), Err(AmountError::Negative(-1)));
        assert_eq!(MinorUnits::try_from(0).map(i64::from), Ok(0));
    }

    #[test]
    fn arithmetic_reports_overflow_instead_of_wrapping() {
        let big = MinorUnits::try_from(i64::MAX / 2 + 1).expect("valid");
        assert_eq!(big.checked_mul(2), Err(AmountError::Overflow));
        assert_eq!(big.checked_add(big), Err(AmountError::Overflow));
    }

    #[test]
    fn deserialising_a_negative_amount_fails() {
        assert!(serde_json::from_str::<MinorUnits>("-5").is_err());
        assert_eq!(
            serde_json::from_str::<MinorUnits>("5").map(i64::from).ok(),
            Some(5)
        );
    }
}
