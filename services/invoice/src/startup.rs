//! Building and running the invoice service.

use std::sync::Arc;

use contracts::topology::Service;
use platform::app::{Application, StartupError};
use platform::config::{CommonSettings, ConfigError, Env};
use platform::edge::EdgeSettings;
use tokio_util::sync::CancellationToken;

use crate::api::{self, AppState};
use crate::handlers::OrderEvents;

/// The API's port; the admin port (health, metrics) is `DEFAULT_ADMIN_PORT`.
pub const DEFAULT_PORT: u16 = 8082;
pub const DEFAULT_ADMIN_PORT: u16 = 9082;

#[derive(Debug, Clone)]
pub struct Settings {
    pub common: CommonSettings,
    /// The admin port, the edge's limits and the token issuer.
    pub edge: EdgeSettings,
}

impl Settings {
    pub fn from_env<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<Self, ConfigError> {
        Ok(Settings {
            common: CommonSettings::from_env(env, DEFAULT_PORT)?,
            edge: EdgeSettings::from_env(env, DEFAULT_ADMIN_PORT)?,
        })
    }
}

/// Binds the port, connects and migrates.
pub async fn build(settings: Settings) -> Result<Application, StartupError> {
    Application::build(
        Service::Invoice,
        settings.common,
        settings.edge,
        sqlx::migrate!("./migrations"),
    )
    .await
}

/// Serves the API and consumes the service's queues until `shutdown`.
pub async fn run(app: Application, shutdown: CancellationToken) -> Result<(), StartupError> {
    let router = api::router(AppState { pool: app.pool() });
    app.run_until_stopped(router, Arc::new(OrderEvents), shutdown)
        .await
}
