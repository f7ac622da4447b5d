//! What verifying a bearer token costs each request.
//!
//! Every request to the services carries a token that the platform's
//! verifier checks (signature, `iss`, `aud`, `exp`, `nbf`, scopes) before the
//! handler runs. Its cost is measured here with the same verifier, in this
//! process, against an issuer of the harness like the one the stack runs:
//! one ES256 token verified many times with the key set cached, as in a
//! service's steady state. The report sets it beside the order API's latency
//! of the same run, so the share of a request that authentication takes
//! reads directly.

use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::Serialize;

use harness::issuer::{AUDIENCE, Issuer};
use platform::auth::settings::KeySource;
use platform::auth::{AuthSettings, Verifier};

/// The verifications timed (after a few untimed ones that fetch the keys).
pub const VERIFICATIONS: usize = 2000;
const WARM_UP: usize = 20;

/// Microseconds per verification of one token.
#[derive(Debug, Clone, Serialize)]
pub struct AuthCost {
    pub verifications: usize,
    pub mean_us: f64,
    pub p50_us: f64,
    pub p99_us: f64,
}

/// Times `verifications` verifications of one customer's token.
pub async fn measure(verifications: usize) -> anyhow::Result<AuthCost> {
    let issuer = Issuer::start().await?;
    let verifier = Verifier::new(&AuthSettings {
        issuer: issuer.url(),
        keys: KeySource::Jwks(issuer.jwks_url()),
        audience: AUDIENCE.to_string(),
        leeway: Duration::from_secs(30),
        refresh_min_interval: Duration::from_secs(10),
        max_age: Duration::from_secs(300),
    })?;
    let token = issuer.customer_token("bench-customer")?;
    for _ in 0..WARM_UP {
        verifier.verify(&token).await?;
    }
    let mut histogram = Histogram::<u64>::new(3)?;
    let started = Instant::now();
    for _ in 0..verifications {
        let one = Instant::now();
        verifier.verify(&token).await?;
        histogram.record(u64::try_from(one.elapsed().as_nanos()).unwrap_or(u64::MAX))?;
    }
    let total = started.elapsed();
    Ok(AuthCost {
        verifications,
        mean_us: total.as_secs_f64() * 1e6 / verifications.max(1) as f64,
        p50_us: histogram.value_at_quantile(0.5) as f64 / 1e3,
        p99_us: histogram.value_at_quantile(0.99) as f64 / 1e3,
    })
}
