//! Building and running the order service.

use std::sync::Arc;

use contracts::topology::Service;
use platform::app::{Application, StartupError};
use platform::config::{CommonSettings, ConfigError, Env};
use platform::edge::EdgeSettings;
use tokio_util::sync::CancellationToken;

use crate::api::{self, AppState};
use crate::handlers::InvoiceEvents;
use crate::invoicing::{Invoicing, InvoicingSettings};

/// The API's port; the admin port (health, metrics) is `DEFAULT_ADMIN_PORT`.
pub const DEFAULT_PORT: u16 = 8081;
pub const DEFAULT_ADMIN_PORT: u16 = 9081;

#[derive(Debug, Clone)]
pub struct Settings {
    pub common: CommonSettings,
    /// The admin port, the edge's limits and the token issuer.
    pub edge: EdgeSettings,
    /// `ORDER_INVOICING` and, in sync mode, the invoice service's address.
    pub invoicing: InvoicingSettings,
}

impl Settings {
    pub fn from_env<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<Self, ConfigError> {
        Ok(Settings {
            common: CommonSettings::from_env(env, DEFAULT_PORT)?,
            edge: EdgeSettings::from_env(env, DEFAULT_ADMIN_PORT)?,
            invoicing: InvoicingSettings::from_env(env)?,
        })
    }
}

/// The service with its port bound, its database migrated and its invoicing
/// mode ready.
pub struct OrderApp {
    pub app: Application,
    pub invoicing: Invoicing,
}

/// Binds the port, connects and migrates.
pub async fn build(settings: Settings) -> Result<OrderApp, StartupError> {
    let invoicing = Invoicing::from_settings(&settings.invoicing)?;
    if let Invoicing::Sync(_) = &invoicing {
        tracing::warn!("synchronous invoicing: orders fail whenever the invoice service does");
    }
    let app = Application::build(
        Service::Order,
        settings.common,
        settings.edge,
        sqlx::migrate!("./migrations"),
    )
    .await?;
    Ok(OrderApp { app, invoicing })
}

/// Serves the API and consumes the service's queues until `shutdown`.
pub async fn run(built: OrderApp, shutdown: CancellationToken) -> Result<(), StartupError> {
    let OrderApp { app, invoicing } = built;
    let router = api::router(AppState {
        pool: app.pool(),
        invoicing,
    });
    app.run_until_stopped(router, Arc::new(InvoiceEvents), shutdown)
        .await
}
