//! The issuer's public keys, fetched over HTTP and cached by `kid`.
//!
//! A key is looked up by the token's `kid`. A kid the cache does not know
//! (the issuer rotated its keys) refetches the key set, at most once every
//! `refresh_min_interval` whatever the callers send; a cache older than
//! `max_age` is refetched before use, so that a key the issuer withdrew stops
//! verifying. One fetch runs at a time; callers that arrive meanwhile wait
//! for it and use its result. A failed fetch keeps the keys already known.
//!
//! Only keys an asymmetric algorithm can use are kept (RSA for RS256, EC
//! P-256 for ES256); `oct` keys and any other kind are skipped, so no token
//! can ever be checked as an HMAC.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, JwkSet, KeyAlgorithm};
use jsonwebtoken::{Algorithm, DecodingKey};

use super::settings::{AuthSettings, KeySource};

/// A verification key and the one algorithm it may be used with.
#[derive(Clone)]
pub struct Key {
    pub decoding: DecodingKey,
    pub algorithm: Algorithm,
}

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("{url}: {error}")]
    Http { url: String, error: String },
    #[error("the discovery document at {0} has no jwks_uri")]
    NoJwksUri(String),
}

#[derive(Default)]
struct Cached {
    keys: HashMap<String, Key>,
    /// When the keys were last fetched successfully.
    fetched: Option<Instant>,
    /// When a fetch was last tried, successful or not.
    attempted: Option<Instant>,
}

pub struct Jwks {
    http: reqwest::Client,
    source: KeySource,
    issuer: String,
    refresh_min_interval: Duration,
    max_age: Duration,
    cached: RwLock<Cached>,
    /// Held while fetching: one fetch at a time.
    fetching: tokio::sync::Mutex<()>,
}

/// What a lookup found.
pub enum Lookup {
    Found(Key),
    /// The issuer does not (or no longer) publish this kid.
    Unknown,
    /// No key set could be fetched, and none is known.
    Unavailable,
}

impl Jwks {
    pub fn new(settings: &AuthSettings) -> Result<Self, reqwest::Error> {
        Ok(Jwks {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(5))
                .build()?,
            source: settings.keys.clone(),
            issuer: settings.issuer.clone(),
            refresh_min_interval: settings.refresh_min_interval,
            max_age: settings.max_age,
            cached: RwLock::new(Cached::default()),
            fetching: tokio::sync::Mutex::new(()),
        })
    }

    /// The key called `kid`, fetching the key set when the cache cannot answer.
    pub async fn key(&self, kid: &str) -> Lookup {
        if let Some(key) = self.fresh(kid) {
            return Lookup::Found(key);
        }
        let _one_at_a_time = self.fetching.lock().await;
        // Another caller may have fetched while this one waited.
        if let Some(key) = self.fresh(kid) {
            return Lookup::Found(key);
        }
        // Fetch at most once an interval, whatever the callers send, and
        // whether or not the last fetch worked: a flood of made-up kids, or
        // an issuer that is down, costs the issuer one call an interval.
        let may_fetch = self
            .read()
            .attempted
            .is_none_or(|t| t.elapsed() >= self.refresh_min_interval);
        if may_fetch {
            self.write().attempted = Some(Instant::now());
            match self.fetch().await {
                Ok(keys) => {
                    tracing::info!(keys = keys.len(), "fetched the issuer's keys");
                    let mut c = self.write();
                    c.keys = keys;
                    c.fetched = Some(Instant::now());
                }
                Err(e) => tracing::warn!(error = %e, "could not fetch the issuer's keys"),
            }
        }
        let c = self.read();
        match c.keys.get(kid) {
            Some(key) => Lookup::Found(key.clone()),
            None if c.fetched.is_none() => Lookup::Unavailable,
            None => Lookup::Unknown,
        }
    }

    fn fresh(&self, kid: &str) -> Option<Key> {
        let c = self.read();
        let fresh = c.fetched.is_some_and(|t| t.elapsed() < self.max_age);
        if fresh {
            c.keys.get(kid).cloned()
        } else {
            None
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Cached> {
        self.cached.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Cached> {
        self.cached.write().unwrap_or_else(|p| p.into_inner())
    }

    async fn fetch(&self) -> Result<HashMap<String, Key>, FetchError> {
        let url = match &self.source {
            KeySource::Jwks(url) => url.clone(),
            KeySource::Discovery => {
                let url = format!(
                    "{}/.well-known/openid-configuration",
                    self.issuer.trim_end_matches('/')
                );
                let doc: serde_json::Value = self.get_json(&url).await?;
                doc["jwks_uri"]
                    .as_str()
                    .map(str::to_string)
                    .ok_or(FetchError::NoJwksUri(url))?
            }
        };
        let set: JwkSet = self.get_json(&url).await?;
        Ok(usable_keys(&set))
    }

    async fn get_json<T: serde::de::DeserializeOwned>(&self, url: &str) -> Result<T, FetchError> {
        let error = |error: reqwest::Error| FetchError::Http {
            url: url.to_string(),
            error: error.to_string(),
        };
        self.http
            .get(url)
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(error)?
            .json()
            .await
            .map_err(error)
    }
}

/// The keys of `set` that have a `kid` and fit RS256 or ES256.
pub fn usable_keys(set: &JwkSet) -> HashMap<String, Key> {
    let mut keys = HashMap::new();
    for jwk in &set.keys {
        let Some(kid) = &jwk.common.key_id else {
            continue;
        };
        let algorithm = match (&jwk.algorithm, jwk.common.key_algorithm) {
            (AlgorithmParameters::RSA(_), None | Some(KeyAlgorithm::RS256)) => Algorithm::RS256,
            (AlgorithmParameters::EllipticCurve(ec), None | Some(KeyAlgorithm::ES256))
                if ec.curve == EllipticCurve::P256 =>
            {
                Algorithm::ES256
            }
            _ => continue,
        };
        match DecodingKey::from_jwk(jwk) {
            Ok(decoding) => {
                keys.insert(
                    kid.clone(),
                    Key {
                        decoding,
                        algorithm,
                    },
                );
            }
            Err(e) => tracing::warn!(%kid, error = %e, "skipping an unreadable key"),
        }
    }
    keys
}

/// The cache shared by every request of a service.
pub type SharedJwks = Arc<Jwks>;
