//! The verified caller: the token's subject and scopes.

use std::collections::BTreeSet;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;

use super::AuthError;

/// The scopes this system's APIs check. Decided once; docs/api.md lists them.
pub mod scopes {
    /// Place and cancel one's own orders.
    pub const ORDERS_WRITE: &str = "orders:write";
    /// Read one's own orders.
    pub const ORDERS_READ: &str = "orders:read";
    /// Read any invoice or notification (support, operations).
    pub const OPERATOR: &str = "operator";
    /// Invoice an order synchronously: the order service's own credential.
    pub const INVOICES_WRITE: &str = "invoices:write";
}

/// Who is calling. The subject is the customer for the order API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub subject: String,
    pub scopes: BTreeSet<String>,
}

impl Principal {
    /// `Ok` when the token carries `scope`, else the 403 to answer.
    pub fn require(&self, scope: &'static str) -> Result<(), AuthError> {
        if self.scopes.contains(scope) {
            Ok(())
        } else {
            Err(AuthError::InsufficientScope(scope))
        }
    }
}

/// A route behind `authenticate` finds the principal in the request; one that
/// is not (a wiring mistake) refuses rather than serving anonymously.
impl<S: Send + Sync> FromRequestParts<S> for Principal {
    type Rejection = AuthError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, AuthError> {
        parts
            .extensions
            .get::<Principal>()
            .cloned()
            .ok_or(AuthError::Missing)
    }
}
