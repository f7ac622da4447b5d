//! One token in, a `Principal` or the reason it is refused out.

use std::collections::HashSet;

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, Validation};
use serde::Deserialize;

use super::jwks::{Jwks, Lookup};
use super::{AuthError, AuthSettings, Principal};

/// The only algorithms accepted: asymmetric ones, so the keys the issuer
/// publishes can verify but never sign.
pub const ALGORITHMS: [Algorithm; 2] = [Algorithm::RS256, Algorithm::ES256];

/// The claims read from a verified token (`exp`, `nbf`, `iss`, `aud` are
/// checked by `jsonwebtoken`'s validation).
#[derive(Deserialize)]
struct Claims {
    sub: String,
    /// Space-separated scopes (RFC 8693 §4.2, as OAuth servers issue them).
    #[serde(default)]
    scope: String,
}

pub struct Verifier {
    jwks: Jwks,
    issuer: String,
    audience: String,
    leeway_secs: u64,
}

impl Verifier {
    pub fn new(settings: &AuthSettings) -> Result<Self, reqwest::Error> {
        Ok(Verifier {
            jwks: Jwks::new(settings)?,
            issuer: settings.issuer.clone(),
            audience: settings.audience.clone(),
            leeway_secs: settings.leeway.as_secs(),
        })
    }

    pub async fn verify(&self, token: &str) -> Result<Principal, AuthError> {
        let header = jsonwebtoken::decode_header(token)
            // `alg: none` lands here too: it is no algorithm the crate knows.
            .map_err(|_| AuthError::InvalidToken("the token is not a signed JWT"))?;
        if !ALGORITHMS.contains(&header.alg) {
            return Err(AuthError::InvalidToken("only RS256 and ES256 are accepted"));
        }
        let kid = header
            .kid
            .ok_or(AuthError::InvalidToken("the token names no key (kid)"))?;
        let key = match self.jwks.key(&kid).await {
            Lookup::Found(key) => key,
            Lookup::Unknown => {
                return Err(AuthError::InvalidToken("the issuer has no such key (kid)"));
            }
            Lookup::Unavailable => return Err(AuthError::KeysUnavailable),
        };
        if key.algorithm != header.alg {
            return Err(AuthError::InvalidToken(
                "the algorithm does not fit the key",
            ));
        }
        let mut validation = Validation::new(key.algorithm);
        validation.set_issuer(&[&self.issuer]);
        validation.set_audience(&[&self.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.validate_nbf = true;
        validation.leeway = self.leeway_secs;
        let data = jsonwebtoken::decode::<Claims>(token, &key.decoding, &validation)
            .map_err(|e| AuthError::InvalidToken(reason(e.kind())))?;
        if data.claims.sub.is_empty() {
            return Err(AuthError::InvalidToken("the token has an empty subject"));
        }
        Ok(Principal {
            subject: data.claims.sub,
            scopes: data
                .claims
                .scope
                .split_whitespace()
                .map(str::to_string)
                .collect::<HashSet<_>>()
                .into_iter()
                .collect(),
        })
    }
}

fn reason(kind: &ErrorKind) -> &'static str {
    match kind {
        ErrorKind::ExpiredSignature => "the token has expired",
        ErrorKind::ImmatureSignature => "the token is not valid yet",
        ErrorKind::InvalidIssuer => "the token is from another issuer",
        ErrorKind::InvalidAudience => "the token is for another audience",
        ErrorKind::InvalidSignature => "the signature does not verify",
        ErrorKind::MissingRequiredClaim(_) => "the token lacks a required claim",
        ErrorKind::InvalidAlgorithm => "the algorithm does not fit the key",
        _ => "the token is malformed",
    }
}
