//! Why a request was not let through, as problem+json with the RFC 6750
//! challenge.
//!
//! - no credentials: `401`, `WWW-Authenticate: Bearer` (no error code, as
//!   RFC 6750 §3.1 asks for a request that carried none);
//! - an `Authorization` header that is not `Bearer <token>`: `400`,
//!   `error="invalid_request"`;
//! - a token that fails verification (shape, algorithm, key, signature,
//!   `iss`, `aud`, `exp`, `nbf`): `401`, `error="invalid_token"`;
//! - a valid token without the scope the route needs: `403`,
//!   `error="insufficient_scope"` with the `scope` needed;
//! - the issuer's keys cannot be fetched: `503` with `Retry-After`, since the
//!   caller's token may well be good.
//!
//! The descriptions are fixed strings: nothing from the token is echoed back.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::problem::Problem;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("no bearer token")]
    Missing,
    #[error("malformed Authorization header: {0}")]
    Malformed(&'static str),
    #[error("invalid token: {0}")]
    InvalidToken(&'static str),
    #[error("the token lacks the scope {0}")]
    InsufficientScope(&'static str),
    #[error("the issuer's keys are unavailable")]
    KeysUnavailable,
}

impl AuthError {
    pub fn status(&self) -> StatusCode {
        match self {
            AuthError::Missing | AuthError::InvalidToken(_) => StatusCode::UNAUTHORIZED,
            AuthError::Malformed(_) => StatusCode::BAD_REQUEST,
            AuthError::InsufficientScope(_) => StatusCode::FORBIDDEN,
            AuthError::KeysUnavailable => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// The `WWW-Authenticate` challenge, when the answer carries one.
    pub fn challenge(&self) -> Option<String> {
        match self {
            AuthError::Missing => Some("Bearer".to_string()),
            AuthError::Malformed(d) => Some(format!(
                "Bearer error=\"invalid_request\", error_description=\"{d}\""
            )),
            AuthError::InvalidToken(d) => Some(format!(
                "Bearer error=\"invalid_token\", error_description=\"{d}\""
            )),
            AuthError::InsufficientScope(scope) => Some(format!(
                "Bearer error=\"insufficient_scope\", scope=\"{scope}\""
            )),
            AuthError::KeysUnavailable => None,
        }
    }

    fn problem(&self) -> Problem {
        let status = self.status();
        match self {
            AuthError::Missing => {
                Problem::new(status, "unauthenticated", "Authentication required")
                    .with_detail("send Authorization: Bearer <token>")
            }
            AuthError::Malformed(d) => Problem::new(
                status,
                "invalid-authorization",
                "The Authorization header is malformed",
            )
            .with_detail(*d),
            AuthError::InvalidToken(d) => {
                Problem::new(status, "invalid-token", "The bearer token is not valid")
                    .with_detail(*d)
            }
            AuthError::InsufficientScope(scope) => Problem::new(
                status,
                "insufficient-scope",
                "The token does not allow this",
            )
            .with_detail(format!("this needs the scope {scope}")),
            AuthError::KeysUnavailable => Problem::new(
                status,
                "issuer-unavailable",
                "The token cannot be checked right now",
            )
            .with_detail("the issuer's keys could not be fetched; try again later"),
        }
    }
}

impl IntoResponse for AuthError {
    fn into_response(self) -> Response {
        if self.status().is_server_error() {
            tracing::warn!(error = %self, "request refused");
        } else {
            tracing::debug!(error = %self, "request refused");
        }
        let mut response = self.problem().into_response();
        let headers = response.headers_mut();
        if let Some(challenge) = self
            .challenge()
            .and_then(|c| HeaderValue::from_str(&c).ok())
        {
            headers.insert(header::WWW_AUTHENTICATE, challenge);
        }
        if matches!(self, AuthError::KeysUnavailable) {
            headers.insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
        }
        response
    }
}
