//! The webhook sender: POSTs each notification as JSON to one HTTP endpoint.
//!
//! The request carries an `Idempotency-Key` header with the id of the event
//! the notification is for. That id is the producer's, so it is the same on
//! every attempt, redelivery, DLQ redrive and archive replay, while the
//! notification's own id is minted per attempt. The receiver dedupes on it.
//!
//! It has to, because delivery is at least once. The call runs inside the
//! consumer's inbox transaction: the notification row is written, the webhook
//! is called, then the transaction commits. If the process dies or the commit
//! fails after the receiver accepted the POST, or the answer is lost to a
//! timeout, nothing is recorded and the event comes back: the receiver sees the
//! same notification again, with the same key. The transaction stays open for
//! at most the request timeout, which must be shorter than the queue's
//! visibility timeout so a slow receiver does not make the message reappear
//! while it is still being handled.
//!
//! How answers map onto retries:
//!
//! | answer | outcome |
//! |---|---|
//! | 2xx | sent |
//! | 408, 429, 5xx, a timeout, no connection | `Transient`: retried, then the DLQ via the redrive policy |
//! | any other status (4xx, an unfollowed 3xx) | `Permanent`: the DLQ now, with the status as the reason |
//!
//! Redirects are not followed: a POST that is redirected is a misconfigured
//! URL, not something to guess about. Plain `http://` only: this build carries
//! no TLS stack for outgoing webhooks.

use std::time::Duration;

use platform::config::{ConfigError, Env};
use reqwest::StatusCode;

use super::{SendError, Sender};
use crate::domain::Notification;

/// The header that lets the receiver recognise a notification it already has.
pub(crate) const IDEMPOTENCY_KEY_HEADER: &str = "Idempotency-Key";

/// How much of a refusal's body is kept as the reason.
const REASON_BODY_CHARS: usize = 200;

/// `NOTIFICATION_WEBHOOK_URL` and `NOTIFICATION_WEBHOOK_TIMEOUT_MS`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookSettings {
    pub url: reqwest::Url,
    pub timeout: Duration,
}

impl WebhookSettings {
    pub const URL: &'static str = "NOTIFICATION_WEBHOOK_URL";
    pub const TIMEOUT: &'static str = "NOTIFICATION_WEBHOOK_TIMEOUT_MS";

    pub fn from_env<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<Self, ConfigError> {
        let raw = env.get(Self::URL).ok_or_else(|| {
            ConfigError::new(
                Self::URL,
                "is not set (required with NOTIFICATION_SENDER=webhook)",
            )
        })?;
        let url = reqwest::Url::parse(raw.trim())
            .map_err(|e| ConfigError::new(Self::URL, format!("is not a URL ('{raw}'): {e}")))?;
        if url.scheme() != "http" || url.host_str().is_none() {
            return Err(ConfigError::new(
                Self::URL,
                format!("must be an http://host/... URL (no TLS in this build), got '{raw}'"),
            ));
        }
        let timeout = env.millis_or(Self::TIMEOUT, 5_000)?;
        if !(Duration::from_millis(1)..=Duration::from_secs(60)).contains(&timeout) {
            return Err(ConfigError::new(
                Self::TIMEOUT,
                "must be between 1 and 60000",
            ));
        }
        Ok(WebhookSettings { url, timeout })
    }
}

pub struct WebhookSender {
    client: reqwest::Client,
    url: reqwest::Url,
    timeout: Duration,
}

impl WebhookSender {
    pub fn new(settings: &WebhookSettings) -> Result<Self, reqwest::Error> {
        let client = reqwest::Client::builder()
            .timeout(settings.timeout)
            .connect_timeout(settings.timeout.min(Duration::from_secs(3)))
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(WebhookSender {
            client,
            url: settings.url.clone(),
            timeout: settings.timeout,
        })
    }
}

impl Sender for WebhookSender {
    fn channel(&self) -> &'static str {
        "webhook"
    }

    #[tracing::instrument(name = "webhook.send", skip_all, fields(event_id = %n.event_id, kind = n.kind), err)]
    async fn send(&self, n: &Notification) -> Result<(), SendError> {
        let response = self
            .client
            .post(self.url.clone())
            .header(IDEMPOTENCY_KEY_HEADER, n.event_id.to_string())
            .json(n)
            .send()
            .await
            .map_err(|e| transport_error(&e, self.timeout))?;
        let status = response.status();
        if status.is_success() {
            tracing::info!(
                status = status.as_u16(),
                "notification delivered to the webhook"
            );
            return Ok(());
        }
        // The body only explains a refusal; a failure to read it changes nothing.
        let body = response.text().await.unwrap_or_default();
        Err(refusal(status, &body))
    }
}

/// What a non-2xx answer means for the event.
fn refusal(status: StatusCode, body: &str) -> SendError {
    let mut reason = format!("webhook answered {status}");
    let body: String = body.trim().chars().take(REASON_BODY_CHARS).collect();
    if !body.is_empty() {
        reason.push_str(": ");
        reason.push_str(&body);
    }
    if is_transient(status) {
        SendError::Transient(reason)
    } else {
        SendError::Permanent(reason)
    }
}

/// Statuses after which the same request may succeed later.
fn is_transient(status: StatusCode) -> bool {
    status.is_server_error()
        || status == StatusCode::REQUEST_TIMEOUT
        || status == StatusCode::TOO_MANY_REQUESTS
}

/// A request that got no answer: always worth retrying.
fn transport_error(e: &reqwest::Error, timeout: Duration) -> SendError {
    let what = if e.is_timeout() {
        format!("webhook timed out after {timeout:?}")
    } else if e.is_connect() {
        "cannot connect to the webhook".to_string()
    } else {
        "webhook request failed".to_string()
    };
    let mut chain = String::new();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        chain.push_str(": ");
        chain.push_str(&s.to_string());
        source = s.source();
    }
    SendError::Transient(format!("{what}{chain}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    use platform::config::env_of as env;

    #[test]
    fn server_errors_timeouts_and_throttling_are_retried() {
        for code in [500, 502, 503, 504, 408, 429] {
            let status = StatusCode::from_u16(code).expect("valid status");
            assert!(
                matches!(refusal(status, ""), SendError::Transient(_)),
                "{code}"
            );
        }
    }

    #[test]
    fn other_client_errors_and_redirects_go_to_the_dlq() {
        for code in [400, 401, 403, 404, 409, 410, 422, 301, 307] {
            let status = StatusCode::from_u16(code).expect("valid status");
            assert!(
                matches!(refusal(status, ""), SendError::Permanent(_)),
                "{code}"
            );
        }
    }

    #[test]
    fn a_refusal_names_the_status_and_a_bounded_part_of_the_body() {
        let long = "x".repeat(1000);
        let SendError::Permanent(reason) = refusal(StatusCode::UNPROCESSABLE_ENTITY, &long) else {
            panic!("422 is permanent");
        };
        assert!(reason.starts_with("webhook answered 422 Unprocessable Entity: xxx"));
        assert!(reason.len() < 300, "{}", reason.len());
    }

    #[test]
    fn the_url_is_required_and_names_the_variable() {
        let err = WebhookSettings::from_env(&env(&[])).expect_err("must fail");
        assert_eq!(err.name, "NOTIFICATION_WEBHOOK_URL");
        assert!(!err.to_string().contains('\n'));
    }

    #[test]
    fn only_plain_http_urls_are_accepted() {
        for bad in ["https://example.com/hook", "localhost:9000", "ftp://h/x"] {
            let err = WebhookSettings::from_env(&env(&[("NOTIFICATION_WEBHOOK_URL", bad)]))
                .expect_err(bad);
            assert_eq!(err.name, "NOTIFICATION_WEBHOOK_URL", "{bad}");
        }
        let ok = WebhookSettings::from_env(&env(&[(
            "NOTIFICATION_WEBHOOK_URL",
            "http://127.0.0.1:9000/hook",
        )]))
        .expect("valid");
        assert_eq!(ok.timeout, Duration::from_secs(5));
    }

    #[test]
    fn a_timeout_out_of_range_names_the_variable() {
        let err = WebhookSettings::from_env(&env(&[
            ("NOTIFICATION_WEBHOOK_URL", "http://h/x"),
            ("NOTIFICATION_WEBHOOK_TIMEOUT_MS", "0"),
        ]))
        .expect_err("must fail");
        assert_eq!(err.name, "NOTIFICATION_WEBHOOK_TIMEOUT_MS");
    }
}
