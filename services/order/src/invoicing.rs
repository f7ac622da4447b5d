//! How an order gets invoiced: by an event (the design), or by a synchronous
//! call (the anti-pattern, kept to measure it).
//!
//! With `ORDER_INVOICING=async`, the default, the order service calls no other
//! service: `POST /orders` commits the order with its `OrderPlaced` event and
//! answers; the invoice service invoices it whenever it hears the event, even
//! if it was down when the order came in.
//!
//! With `ORDER_INVOICING=sync`, `POST /orders` does what the talk this project
//! comes from warns about: before it commits the order, it calls the invoice
//! service's `POST /invoices` (`INVOICE_SERVICE_URL`) and waits, holding the
//! order's transaction open. When that call fails or outlasts
//! `INVOICE_SERVICE_TIMEOUT_MS`, the order is rolled back and the client gets
//! `503`: order-taking is only as available as invoicing. The `sync-vs-async`
//! chaos experiment runs the same outage against both modes. The event flow is
//! the same in both; in sync mode the invoice service finds the order already
//! invoiced when its `OrderPlaced` arrives.
//!
//! The synchronous mode also shows the dual write that the outbox exists to
//! avoid: if the order's commit fails after the invoice service said yes, or
//! the invoice service commits and dies before it answers (a chaos run caught
//! this one), that invoice belongs to an order that does not exist.
//!
//! The call carries the order service's own credential: a bearer token of
//! the client-credentials grant (`OAUTH_TOKEN_URL`, `OAUTH_CLIENT_ID`,
//! `OAUTH_CLIENT_SECRET`, required in sync mode), which the invoice service
//! checks for the `invoices:write` scope.
//!
//! This module holds the setting and the client; `crate::usecases::place_order`
//! is where the mode changes what placing an order does.

use std::sync::Arc;
use std::time::Duration;

use contracts::events::OrderPlaced;
use platform::auth::client::{ClientCredentials, ClientCredentialsSettings};
use platform::config::{ConfigError, Env};

/// The variable that picks the mode.
pub const MODE: &str = "ORDER_INVOICING";
/// The invoice service's base URL, required in sync mode.
pub const URL: &str = "INVOICE_SERVICE_URL";
/// The bound on one synchronous call.
pub const TIMEOUT: &str = "INVOICE_SERVICE_TIMEOUT_MS";

/// The mode, as configured.
#[derive(Debug, Clone)]
pub enum InvoicingSettings {
    Async,
    Sync {
        url: String,
        timeout: Duration,
        credentials: ClientCredentialsSettings,
    },
}

impl InvoicingSettings {
    pub fn from_env<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<Self, ConfigError> {
        match env.get(MODE).as_deref() {
            None | Some("async") => Ok(InvoicingSettings::Async),
            Some("sync") => {
                let url = env.required(URL)?;
                if !url.starts_with("http://") {
                    return Err(ConfigError::new(
                        URL,
                        format!("must be an http:// URL, got '{url}'"),
                    ));
                }
                let timeout = env.millis_or(TIMEOUT, 2000)?;
                if timeout.is_zero() {
                    return Err(ConfigError::new(TIMEOUT, "must be at least 1"));
                }
                Ok(InvoicingSettings::Sync {
                    url: url.trim_end_matches('/').to_string(),
                    timeout,
                    credentials: ClientCredentialsSettings::from_env(env)?,
                })
            }
            Some(other) => Err(ConfigError::new(
                MODE,
                format!("must be 'async' or 'sync', got '{other}'"),
            )),
        }
    }
}

/// The mode, ready to use.
#[derive(Debug, Clone)]
pub enum Invoicing {
    Async,
    Sync(InvoiceClient),
}

impl Invoicing {
    pub fn from_settings(settings: &InvoicingSettings) -> Result<Self, ConfigError> {
        match settings {
            InvoicingSettings::Async => Ok(Invoicing::Async),
            InvoicingSettings::Sync {
                url,
                timeout,
                credentials,
            } => {
                let http = reqwest::Client::builder()
                    .timeout(*timeout)
                    .build()
                    .map_err(|e| ConfigError::new(URL, format!("cannot build a client: {e}")))?;
                Ok(Invoicing::Sync(InvoiceClient {
                    credentials: Arc::new(ClientCredentials::new(
                        credentials.clone(),
                        http.clone(),
                    )),
                    http,
                    invoices_url: format!("{url}/invoices"),
                }))
            }
        }
    }
}

/// Why the synchronous call did not invoice the order.
#[derive(Debug, thiserror::Error)]
pub enum InvoicingError {
    #[error("the invoice service did not answer: {0}")]
    Unreachable(String),
    #[error("the invoice service failed with {0}")]
    Failed(u16),
    /// Any other answer: not something a retry would change.
    #[error("the invoice service refused the order with {0}")]
    Refused(u16),
}

/// The client of the invoice service's `POST /invoices`.
#[derive(Debug, Clone)]
pub struct InvoiceClient {
    http: reqwest::Client,
    credentials: Arc<ClientCredentials>,
    invoices_url: String,
}

impl InvoiceClient {
    /// Asks the invoice service to invoice `order` now. One attempt, bounded
    /// by the timeout: the client of `POST /orders` is waiting.
    #[tracing::instrument(name = "invoice.sync_call", skip_all, fields(order_id = %order.order_id), err)]
    pub async fn invoice(&self, order: &OrderPlaced) -> Result<(), InvoicingError> {
        let mut headers = reqwest::header::HeaderMap::new();
        platform::telemetry::propagation::inject_into_headers(&mut headers);
        let token = self
            .credentials
            .token()
            .await
            .map_err(|e| InvoicingError::Unreachable(e.to_string()))?;
        let response = self
            .http
            .post(&self.invoices_url)
            .headers(headers)
            .bearer_auth(token)
            .json(order)
            .send()
            .await
            .map_err(|e| InvoicingError::Unreachable(e.to_string()))?;
        match response.status().as_u16() {
            200 | 201 => Ok(()),
            status @ 500..=599 => Err(InvoicingError::Failed(status)),
            status => Err(InvoicingError::Refused(status)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use platform::config::env_of;

    #[test]
    fn async_is_the_default() {
        assert!(matches!(
            InvoicingSettings::from_env(&env_of(&[])),
            Ok(InvoicingSettings::Async)
        ));
    }

    #[test]
    fn sync_needs_the_invoice_service_url() {
        let err = InvoicingSettings::from_env(&env_of(&[(MODE, "sync")])).expect_err("must fail");
        assert_eq!(
            err.to_string(),
            "configuration error: INVOICE_SERVICE_URL is not set"
        );
    }

    #[test]
    fn sync_takes_the_url_a_timeout_and_the_client_credentials() {
        let sync = [
            (MODE, "sync"),
            (URL, "http://invoice:8082/"),
            (TIMEOUT, "750"),
        ];
        let err = InvoicingSettings::from_env(&env_of(&sync)).expect_err("no credentials");
        assert_eq!(err.name, "OAUTH_TOKEN_URL");
        let mut with_client = sync.to_vec();
        with_client.extend([
            ("OAUTH_TOKEN_URL", "http://issuer/token"),
            ("OAUTH_CLIENT_ID", "order-service"),
            ("OAUTH_CLIENT_SECRET", "s3cret"),
        ]);
        let Ok(InvoicingSettings::Sync {
            url,
            timeout,
            credentials,
        }) = InvoicingSettings::from_env(&env_of(&with_client))
        else {
            panic!("sync settings expected");
        };
        assert_eq!(url, "http://invoice:8082");
        assert_eq!(timeout, Duration::from_millis(750));
        assert_eq!(credentials.client_id, "order-service");
    }

    #[test]
    fn an_unknown_mode_names_the_variable_and_the_choices() {
        let err = InvoicingSettings::from_env(&env_of(&[(MODE, "maybe")])).expect_err("must fail");
        assert_eq!(err.name, MODE);
        assert!(err.to_string().contains("'async' or 'sync'"), "{err}");
    }
}
