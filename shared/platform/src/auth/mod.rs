//! Who is calling, and what they may do: OAuth 2.0 bearer JWTs (RFC 6750)
//! verified against the issuer's published keys.
//!
//! Every API route sits behind `layer::authenticate`: the request's
//! `Authorization: Bearer …` token is verified (`verifier`) with keys from
//! the issuer's JWKS (`jwks`, cached and refetched on an unknown `kid` at most
//! once an interval), and the caller becomes a `Principal` (the token's
//! subject and scopes) that handlers extract. Only asymmetric algorithms are
//! accepted (RS256, ES256): a token that names `none` or an HMAC algorithm is
//! refused before any key is looked at, so a public key can never be used as
//! an HMAC secret. Failures answer problem+json with the RFC 6750
//! `WWW-Authenticate` challenge (`error`).
//!
//! The cryptography and the JWT format are the `jsonwebtoken` crate's (on the
//! aws-lc-rs backend rustls already brings); nothing here signs or checks a
//! signature by hand.

pub mod client;
pub mod error;
pub mod jwks;
pub mod layer;
pub mod principal;
pub mod settings;
pub mod verifier;

pub use error::AuthError;
pub use layer::authenticate;
pub use principal::{Principal, scopes};
pub use settings::AuthSettings;
pub use verifier::Verifier;
