//! Building and running the invoice service.

use std::sync::Arc;

use shared::app::{Runtime, StartupError};
use shared::config::{CommonSettings, ConfigError, Env};
use shared::topology::Service;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::api::{self, AppState};
use crate::handlers::OrderEvents;

pub const DEFAULT_PORT: u16 = 8082;

#[derive(Debug, Clone)]
pub struct Settings {
    pub common: CommonSettings,
}

impl Settings {
    pub fn from_env<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<Self, ConfigError> {
        Ok(Settings {
            common: CommonSettings::from_env(env, DEFAULT_PORT)?,
        })
    }
}

pub struct Application {
    runtime: Runtime,
    listener: TcpListener,
}

impl Application {
    pub async fn build(settings: Settings) -> Result<Self, StartupError> {
        let listener = TcpListener::bind(("0.0.0.0", settings.common.port)).await?;
        let runtime = Runtime::connect(
            Service::Invoice,
            settings.common,
            sqlx::migrate!("./migrations"),
        )
        .await?;
        Ok(Application { runtime, listener })
    }

    pub fn port(&self) -> u16 {
        self.listener
            .local_addr()
            .map(|a| a.port())
            .unwrap_or_default()
    }

    pub async fn run_until_stopped(self, shutdown: CancellationToken) -> Result<(), StartupError> {
        let router = api::router(AppState {
            pool: self.runtime.pool.clone(),
        });
        self.runtime
            .run(self.listener, router, Arc::new(OrderEvents), shutdown)
            .await
    }
}
