//! A service's own credential for calling another service: the OAuth 2.0
//! client-credentials grant (RFC 6749 §4.4), its token cached until shortly
//! before it expires.

use std::time::{Duration, Instant};

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use crate::config::{ConfigError, Env};

pub const TOKEN_URL: &str = "OAUTH_TOKEN_URL";
pub const CLIENT_ID: &str = "OAUTH_CLIENT_ID";
pub const CLIENT_SECRET: &str = "OAUTH_CLIENT_SECRET";

/// A token is fetched again this long before it expires.
const EARLY: Duration = Duration::from_secs(30);

#[derive(Debug, Clone)]
pub struct ClientCredentialsSettings {
    /// `OAUTH_TOKEN_URL`: the issuer's token endpoint.
    pub token_url: String,
    /// `OAUTH_CLIENT_ID`, `OAUTH_CLIENT_SECRET`: this service's client.
    pub client_id: String,
    pub client_secret: SecretString,
}

impl ClientCredentialsSettings {
    pub fn from_env<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<Self, ConfigError> {
        let token_url = env.required(TOKEN_URL)?;
        if !(token_url.starts_with("http://") || token_url.starts_with("https://")) {
            return Err(ConfigError::new(
                TOKEN_URL,
                "must be an http:// or https:// URL",
            ));
        }
        Ok(ClientCredentialsSettings {
            token_url,
            client_id: env.required(CLIENT_ID)?,
            client_secret: SecretString::from(env.required(CLIENT_SECRET)?),
        })
    }
}

#[derive(Debug, thiserror::Error)]
#[error("cannot get a token from the issuer: {0}")]
pub struct TokenError(String);

#[derive(Deserialize)]
struct TokenAnswer {
    access_token: String,
    #[serde(default)]
    expires_in: Option<u64>,
}

/// Fetches and caches the service's token.
#[derive(Debug)]
pub struct ClientCredentials {
    settings: ClientCredentialsSettings,
    http: reqwest::Client,
    cached: tokio::sync::Mutex<Option<(String, Instant)>>,
}

impl ClientCredentials {
    pub fn new(settings: ClientCredentialsSettings, http: reqwest::Client) -> Self {
        ClientCredentials {
            settings,
            http,
            cached: tokio::sync::Mutex::new(None),
        }
    }

    /// A token valid for a while yet: the cached one, or a new one.
    pub async fn token(&self) -> Result<String, TokenError> {
        let mut cached = self.cached.lock().await;
        if let Some((token, until)) = cached.as_ref()
            && Instant::now() < *until
        {
            return Ok(token.clone());
        }
        let answer: TokenAnswer = self
            .http
            .post(&self.settings.token_url)
            .form(&[
                ("grant_type", "client_credentials"),
                ("client_id", self.settings.client_id.as_str()),
                ("client_secret", self.settings.client_secret.expose_secret()),
            ])
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(|e| TokenError(e.to_string()))?
            .json()
            .await
            .map_err(|e| TokenError(e.to_string()))?;
        let lifetime = Duration::from_secs(answer.expires_in.unwrap_or(300));
        let until = Instant::now() + lifetime.saturating_sub(EARLY);
        *cached = Some((answer.access_token.clone(), until));
        Ok(answer.access_token)
    }
}
