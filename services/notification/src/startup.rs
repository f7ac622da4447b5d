//! Building and running the notification service.

use std::sync::Arc;

use contracts::topology::Service;
use platform::app::{Application, StartupError};
use platform::config::{CommonSettings, ConfigError, Env};
use platform::edge::EdgeSettings;
use tokio_util::sync::CancellationToken;

use crate::api::{self, AppState};
use crate::handlers::Notify;
use crate::sender::{AnySender, SenderSettings, WebhookSettings};

/// The API's port; the admin port (health, metrics) is `DEFAULT_ADMIN_PORT`.
pub const DEFAULT_PORT: u16 = 8083;
pub const DEFAULT_ADMIN_PORT: u16 = 9083;

#[derive(Debug, Clone)]
pub struct Settings {
    pub common: CommonSettings,
    /// The admin port, the edge's limits and the token issuer.
    pub edge: EdgeSettings,
    /// `NOTIFICATION_SENDER` and the chosen sender's own variables.
    pub sender: SenderSettings,
}

impl Settings {
    pub fn from_env<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<Self, ConfigError> {
        let common = CommonSettings::from_env(env, DEFAULT_PORT)?;
        let sender = SenderSettings::from_env(env)?;
        if let SenderSettings::Webhook(webhook) = &sender {
            // The webhook is called while the message is hidden; a call that
            // outlives the visibility timeout lets the message reappear.
            let visibility_ms =
                1000 * u128::from(common.consumer.visibility_timeout_secs.unsigned_abs());
            if webhook.timeout.as_millis() >= visibility_ms {
                return Err(ConfigError::new(
                    WebhookSettings::TIMEOUT,
                    format!(
                        "must be shorter than CONSUMER_VISIBILITY_TIMEOUT_SECS ({} s)",
                        common.consumer.visibility_timeout_secs
                    ),
                ));
            }
        }
        let edge = EdgeSettings::from_env(env, DEFAULT_ADMIN_PORT)?;
        Ok(Settings {
            common,
            edge,
            sender,
        })
    }
}

/// The service with its port bound, its database migrated and its sender ready.
pub struct NotificationApp {
    pub app: Application,
    pub sender: AnySender,
}

/// Binds the port, connects, migrates and sets up the sender.
pub async fn build(settings: Settings) -> Result<NotificationApp, StartupError> {
    let sender = AnySender::from_settings(&settings.sender)?;
    let app = Application::build(
        Service::Notification,
        settings.common,
        settings.edge,
        sqlx::migrate!("./migrations"),
    )
    .await?;
    Ok(NotificationApp { app, sender })
}

/// Serves the API and consumes the service's queues until `shutdown`.
pub async fn run(built: NotificationApp, shutdown: CancellationToken) -> Result<(), StartupError> {
    let NotificationApp { app, sender } = built;
    tracing::info!(
        channel = crate::sender::Sender::channel(&sender),
        "notification sender"
    );
    let router = api::router(AppState { pool: app.pool() });
    app.run_until_stopped(
        router,
        Arc::new(Notify {
            sender: Arc::new(sender),
        }),
        shutdown,
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    use platform::config::env_of as env;

    #[test]
    fn the_log_sender_is_the_default() {
        let s = Settings::from_env(&env(&[
            ("DATABASE_URL", "postgres://x"),
            ("OIDC_ISSUER", "https://issuer.example"),
            ("JWT_AUDIENCE", "orders-api"),
        ]))
        .expect("valid");
        assert_eq!(s.sender, SenderSettings::Log);
    }

    #[test]
    fn an_unknown_sender_names_the_variable_and_the_choices() {
        let err = Settings::from_env(&env(&[
            ("DATABASE_URL", "postgres://x"),
            ("NOTIFICATION_SENDER", "sms"),
        ]))
        .expect_err("must fail");
        assert_eq!(
            err.to_string(),
            "configuration error: NOTIFICATION_SENDER must be 'log' or 'webhook', got 'sms'"
        );
    }

    #[test]
    fn the_webhook_sender_needs_its_url() {
        let err = Settings::from_env(&env(&[
            ("DATABASE_URL", "postgres://x"),
            ("NOTIFICATION_SENDER", "webhook"),
        ]))
        .expect_err("must fail");
        assert_eq!(err.name, "NOTIFICATION_WEBHOOK_URL");
    }

    #[test]
    fn a_webhook_timeout_beyond_the_visibility_timeout_is_refused() {
        let err = Settings::from_env(&env(&[
            ("DATABASE_URL", "postgres://x"),
            ("NOTIFICATION_SENDER", "webhook"),
            ("NOTIFICATION_WEBHOOK_URL", "http://127.0.0.1:9/hook"),
            ("CONSUMER_VISIBILITY_TIMEOUT_SECS", "5"),
            ("NOTIFICATION_WEBHOOK_TIMEOUT_MS", "5000"),
        ]))
        .expect_err("must fail");
        assert_eq!(err.name, "NOTIFICATION_WEBHOOK_TIMEOUT_MS");
    }
}
