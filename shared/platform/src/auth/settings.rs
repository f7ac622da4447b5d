//! The issuer, the audience and the key cache, from the environment.

use std::time::Duration;

use crate::config::{ConfigError, Env};

/// Where the verifier learns the issuer's keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    /// `JWKS_URL`: the key set itself.
    Jwks(String),
    /// No `JWKS_URL`: the `jwks_uri` of the issuer's OpenID Connect
    /// discovery document (`<OIDC_ISSUER>/.well-known/openid-configuration`).
    Discovery,
}

#[derive(Debug, Clone)]
pub struct AuthSettings {
    /// `OIDC_ISSUER`, required: the `iss` every token must carry, and where
    /// discovery starts.
    pub issuer: String,
    /// `JWKS_URL`, optional: the key set, skipping discovery.
    pub keys: KeySource,
    /// `JWT_AUDIENCE`, required: the `aud` every token must carry (this API).
    pub audience: String,
    /// `JWT_LEEWAY_SECS`, default 30: clock skew allowed on `exp` and `nbf`.
    pub leeway: Duration,
    /// `JWKS_REFRESH_MIN_INTERVAL_MS`, default 10000: an unknown `kid`
    /// refetches the key set at most once this long, so a flood of made-up
    /// key ids cannot turn into a flood of calls to the issuer.
    pub refresh_min_interval: Duration,
    /// `JWKS_MAX_AGE_MS`, default 300000: keys older than this are fetched
    /// again before use, so a key the issuer removed stops working.
    pub max_age: Duration,
}

pub const ISSUER: &str = "OIDC_ISSUER";
pub const JWKS_URL: &str = "JWKS_URL";
pub const AUDIENCE: &str = "JWT_AUDIENCE";

fn http_url(name: &str, value: String) -> Result<String, ConfigError> {
    if value.starts_with("https://") || value.starts_with("http://") {
        Ok(value)
    } else {
        Err(ConfigError::new(name, "must be an http:// or https:// URL"))
    }
}

impl AuthSettings {
    pub fn from_env<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<Self, ConfigError> {
        let issuer = http_url(ISSUER, env.required(ISSUER)?)?;
        let keys = match env.get(JWKS_URL) {
            Some(url) => KeySource::Jwks(http_url(JWKS_URL, url)?),
            None => KeySource::Discovery,
        };
        Ok(AuthSettings {
            issuer,
            keys,
            audience: env.required(AUDIENCE)?,
            leeway: Duration::from_secs(env.parse_or("JWT_LEEWAY_SECS", 30)?),
            refresh_min_interval: env.millis_or("JWKS_REFRESH_MIN_INTERVAL_MS", 10_000)?,
            max_age: env.millis_or("JWKS_MAX_AGE_MS", 300_000)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::env_of as env;

    #[test]
    fn issuer_and_audience_are_required_and_named() {
        let err = AuthSettings::from_env(&env(&[(AUDIENCE, "orders")])).expect_err("no issuer");
        assert_eq!(
            err.to_string(),
            "configuration error: OIDC_ISSUER is not set"
        );
        let err = AuthSettings::from_env(&env(&[(ISSUER, "http://i")])).expect_err("no aud");
        assert_eq!(
            err.to_string(),
            "configuration error: JWT_AUDIENCE is not set"
        );
    }

    #[test]
    fn urls_must_be_http() {
        let err = AuthSettings::from_env(&env(&[(ISSUER, "issuer"), (AUDIENCE, "a")]))
            .expect_err("not a URL");
        assert_eq!(err.name, ISSUER);
        let err = AuthSettings::from_env(&env(&[
            (ISSUER, "https://i"),
            (AUDIENCE, "a"),
            (JWKS_URL, "file:///keys"),
        ]))
        .expect_err("not http");
        assert_eq!(err.name, JWKS_URL);
    }

    #[test]
    fn without_a_jwks_url_keys_come_from_discovery() {
        let s =
            AuthSettings::from_env(&env(&[(ISSUER, "https://i"), (AUDIENCE, "a")])).expect("valid");
        assert_eq!(s.keys, KeySource::Discovery);
        assert_eq!(s.leeway, Duration::from_secs(30));
    }
}
