//! The edge's limits, from the environment.

use std::num::NonZeroU32;
use std::time::Duration;

use crate::auth::AuthSettings;
use crate::config::{ConfigError, Env};

#[derive(Debug, Clone)]
pub struct EdgeSettings {
    /// `ADMIN_PORT`, default the service's port + 1000: `/metrics` and the
    /// health endpoints, never exposed where the API is.
    pub admin_port: u16,
    /// `REQUEST_TIMEOUT_MS`, default 10000: the longest a request may take.
    pub request_timeout: Duration,
    /// `MAX_IN_FLIGHT_REQUESTS`, default 512: requests served at once; more
    /// are refused with 503 at once.
    pub max_in_flight: usize,
    /// `RATE_LIMIT_PER_SECOND`, default 50: requests a second per caller.
    pub rate_per_second: NonZeroU32,
    /// `RATE_LIMIT_BURST`, default 100: how many a caller may send at once.
    pub rate_burst: NonZeroU32,
    pub auth: AuthSettings,
}

impl EdgeSettings {
    pub fn from_env<F: Fn(&str) -> Option<String>>(
        env: &Env<F>,
        default_admin_port: u16,
    ) -> Result<Self, ConfigError> {
        let max_in_flight: usize = env.parse_or("MAX_IN_FLIGHT_REQUESTS", 512)?;
        if max_in_flight == 0 {
            return Err(ConfigError::new(
                "MAX_IN_FLIGHT_REQUESTS",
                "must be at least 1",
            ));
        }
        let one = NonZeroU32::MIN;
        Ok(EdgeSettings {
            admin_port: env.parse_or("ADMIN_PORT", default_admin_port)?,
            request_timeout: env.millis_or("REQUEST_TIMEOUT_MS", 10_000)?,
            max_in_flight,
            rate_per_second: env.parse_or("RATE_LIMIT_PER_SECOND", one.saturating_add(49))?,
            rate_burst: env.parse_or("RATE_LIMIT_BURST", one.saturating_add(99))?,
            auth: AuthSettings::from_env(env)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::env_of as env;

    const AUTH: [(&str, &str); 2] = [("OIDC_ISSUER", "https://i"), ("JWT_AUDIENCE", "a")];

    #[test]
    fn defaults_hold_and_zero_limits_are_refused_by_name() {
        let s = EdgeSettings::from_env(&env(&AUTH), 9081).expect("valid");
        assert_eq!(s.admin_port, 9081);
        assert_eq!(s.rate_per_second.get(), 50);
        assert_eq!(s.rate_burst.get(), 100);
        for name in [
            "MAX_IN_FLIGHT_REQUESTS",
            "RATE_LIMIT_PER_SECOND",
            "RATE_LIMIT_BURST",
        ] {
            let mut pairs = AUTH.to_vec();
            pairs.push((name, "0"));
            let err = EdgeSettings::from_env(&env(&pairs), 9081).expect_err("zero");
            assert_eq!(err.name, name);
        }
    }
}
