//! The middleware in front of every API route: no verified token, no entry.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::{AuthError, Verifier};

/// Verifies the bearer token and hands the `Principal` to the route.
pub async fn authenticate(
    State(verifier): State<Arc<Verifier>>,
    mut request: Request,
    next: Next,
) -> Response {
    let principal = match bearer(request.headers()) {
        Ok(token) => verifier.verify(token).await,
        Err(e) => Err(e),
    };
    match principal {
        Ok(principal) => {
            request.extensions_mut().insert(principal);
            next.run(request).await
        }
        Err(e) => e.into_response(),
    }
}

/// The token of `Authorization: Bearer <token>` (RFC 6750 §2.1; the scheme
/// is case-insensitive).
pub fn bearer(headers: &HeaderMap) -> Result<&str, AuthError> {
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let Some(value) = values.next() else {
        return Err(AuthError::Missing);
    };
    if values.next().is_some() {
        return Err(AuthError::Malformed("Authorization must be given once"));
    }
    let value = value
        .to_str()
        .map_err(|_| AuthError::Malformed("Authorization must be visible ASCII"))?;
    let (scheme, token) = value
        .split_once(' ')
        .ok_or(AuthError::Malformed("expected: Bearer <token>"))?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(AuthError::Malformed("only the Bearer scheme is accepted"));
    }
    let token = token.trim();
    if token.is_empty() || token.contains(' ') {
        return Err(AuthError::Malformed("expected: Bearer <token>"));
    }
    Ok(token)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn with(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_str(value).expect("ascii"),
        );
        h
    }

    #[test]
    fn a_bearer_token_is_taken_whatever_the_scheme_case() {
        assert_eq!(bearer(&with("Bearer abc.def.ghi")), Ok("abc.def.ghi"));
        assert_eq!(bearer(&with("bearer abc")), Ok("abc"));
    }

    #[test]
    fn no_header_is_missing_and_anything_else_malformed() {
        assert_eq!(bearer(&HeaderMap::new()), Err(AuthError::Missing));
        for bad in [
            "Basic dXNlcjpwYXNz",
            "Bearer",
            "Bearer ",
            "Bearer a b",
            "token",
        ] {
            assert!(
                matches!(bearer(&with(bad)), Err(AuthError::Malformed(_))),
                "{bad}"
            );
        }
        let mut twice = with("Bearer a");
        twice.append(header::AUTHORIZATION, HeaderValue::from_static("Bearer b"));
        assert!(matches!(bearer(&twice), Err(AuthError::Malformed(_))));
    }
}
