//! The skeleton every service runs on.
//!
//! `Runtime::connect` loads the AWS configuration, opens the database pool and
//! applies migrations. `Runtime::run` then spawns the outbox relay (for a
//! service that publishes), the consumers of the service's queues and the
//! metrics sampler on one `TaskTracker`, serves HTTP on two ports, and on
//! shutdown lets everything finish its current step before returning, within
//! `SHUTDOWN_TIMEOUT_MS`. The public port (`PORT`) serves only the service's
//! API, behind the edge (`crate::edge`: in-flight bound, timeout, bearer
//! authentication, rate limit); the admin port (`ADMIN_PORT`) serves the
//! health routes and `/metrics`, for the orchestrator and Prometheus only.
//! Every request on either is traced and measured.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use backon::{BackoffBuilder, ExponentialBuilder};
use sqlx::PgPool;
use sqlx::migrate::Migrator;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::auth::Verifier;
use crate::aws::{self, AwsClients};
use crate::config::{CommonSettings, ConfigError, RelaySettings};
use crate::consumer::{Consumer, Handler};
use crate::db;
use crate::edge::{self, EdgeSettings};
use crate::health::{self, Readiness};
use crate::metrics::{self, sampler::Sampler};
use crate::outbox::relay::{Published, RelayError};
use crate::outbox::{EventBridgePublisher, Relay, SnsPublisher};
use contracts::topology::{Channel, Service, Topology};

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("database: {0}")]
    Database(String),
    #[error("broker: {0}")]
    Broker(String),
    #[error("http: {0}")]
    Http(#[from] std::io::Error),
}

/// A service ready to run: its ports bound, its database migrated.
pub struct Application {
    runtime: Runtime,
    listeners: Listeners,
}

/// The public (API) and admin (health, metrics) listeners.
pub struct Listeners {
    pub public: TcpListener,
    pub admin: TcpListener,
}

impl Application {
    /// Binds the ports (0 picks a free one), connects and applies migrations.
    pub async fn build(
        service: Service,
        settings: CommonSettings,
        edge: EdgeSettings,
        migrator: Migrator,
    ) -> Result<Self, StartupError> {
        if let Some(spec) = &settings.failpoints {
            crate::failpoints::configure(spec)?;
            tracing::warn!(failpoints = %spec, "fail points armed");
        }
        let listeners = Listeners {
            public: TcpListener::bind(("0.0.0.0", settings.port)).await?,
            admin: TcpListener::bind(("0.0.0.0", edge.admin_port)).await?,
        };
        let runtime = Runtime::connect(service, settings, edge, migrator).await?;
        Ok(Application { runtime, listeners })
    }

    pub fn port(&self) -> u16 {
        self.listeners
            .public
            .local_addr()
            .map(|a| a.port())
            .unwrap_or_default()
    }

    pub fn pool(&self) -> PgPool {
        self.runtime.pool.clone()
    }

    /// Serves `router` and runs `handler` on the service's queues until `shutdown`.
    pub async fn run_until_stopped<H: Handler>(
        self,
        router: Router,
        handler: Arc<H>,
        shutdown: CancellationToken,
    ) -> Result<(), StartupError> {
        self.runtime
            .run(self.listeners, router, handler, shutdown)
            .await
    }
}

/// A service's connections and background work.
pub struct Runtime {
    pub service: Service,
    pub settings: CommonSettings,
    pub pool: PgPool,
    pub aws: AwsClients,
    pub edge: EdgeSettings,
    pub verifier: Arc<Verifier>,
    tracker: TaskTracker,
}

/// How long start-up waits for the database to accept migrations: long enough
/// for a database container that starts beside the service.
const MIGRATE_DEADLINE: Duration = Duration::from_secs(60);

impl Runtime {
    pub async fn connect(
        service: Service,
        settings: CommonSettings,
        edge: EdgeSettings,
        migrator: Migrator,
    ) -> Result<Self, StartupError> {
        let verifier =
            Verifier::new(&edge.auth).map_err(|e| StartupError::Http(std::io::Error::other(e)))?;
        let sdk = aws::load_config().await?;
        let aws = AwsClients::new(&sdk);
        let pool = connect_database(&settings, migrator).await?;
        Ok(Runtime {
            service,
            settings,
            pool,
            aws,
            edge,
            verifier: Arc::new(verifier),
            tracker: TaskTracker::new(),
        })
    }

    /// Readiness of this service: its database and its first queue.
    pub fn readiness(&self) -> Readiness {
        let probe_queue = Topology::declare(self.settings.orders_chain)
            .queues_of(self.service)
            .first()
            .map(|q| q.name.to_string())
            .unwrap_or_default();
        Readiness {
            pool: self.pool.clone(),
            sqs: self.aws.sqs.clone(),
            probe_queue,
        }
    }

    /// Starts the relay and the consumers, serves `router` behind the edge on
    /// the public listener and the health routes and metrics on the admin
    /// one until `shutdown`, then waits for everything to stop.
    pub async fn run<H: Handler>(
        self,
        listeners: Listeners,
        router: Router,
        handler: Arc<H>,
        shutdown: CancellationToken,
    ) -> Result<(), StartupError> {
        self.spawn_relay(&shutdown).await?;
        self.spawn_consumers(handler, &shutdown).await?;
        self.spawn_sampler(&shutdown);
        let observe = || axum::middleware::from_fn(crate::telemetry::http::observe);
        let api = edge::wrap(router, self.verifier.clone(), &self.edge).layer(observe());
        let admin = health::routes(self.readiness())
            .merge(metrics::routes())
            .layer(observe());
        tracing::info!(
            service = self.service.name(),
            addr = %listeners.public.local_addr()?,
            admin = %listeners.admin.local_addr()?,
            "serving"
        );
        let serve = |listener: TcpListener, app: Router| {
            let stop = shutdown.clone();
            async move {
                axum::serve(listener, app)
                    .with_graceful_shutdown(async move { stop.cancelled().await })
                    .await
            }
        };
        let (served, admin_served) = tokio::join!(
            async {
                let served = serve(listeners.public, api).await;
                // Whatever stopped the public server stops the admin one.
                shutdown.cancel();
                served
            },
            serve(listeners.admin, admin)
        );
        let served = served.and(admin_served);
        // The server stops when the token is cancelled; make sure every
        // background loop sees the same, whatever stopped the server.
        shutdown.cancel();
        self.tracker.close();
        if tokio::time::timeout(self.settings.shutdown_timeout, self.tracker.wait())
            .await
            .is_err()
        {
            tracing::error!(timeout = ?self.settings.shutdown_timeout, "background tasks did not stop in time");
        }
        self.pool.close().await;
        tracing::info!(service = self.service.name(), "stopped");
        served.map_err(StartupError::Http)
    }

    async fn spawn_relay(&self, shutdown: &CancellationToken) -> Result<(), StartupError> {
        if let Some(relay) = ServiceRelay::connect(
            self.service,
            &Topology::declare(self.settings.orders_chain),
            &self.aws,
            &self.pool,
            &self.settings.relay,
        )
        .await?
        {
            self.tracker.spawn(relay.run(shutdown.clone()));
        }
        Ok(())
    }

    /// Samples the outbox backlog (for a service that publishes) and the DLQ
    /// depths of the service's queues.
    fn spawn_sampler(&self, shutdown: &CancellationToken) {
        let topology = Topology::declare(self.settings.orders_chain);
        let sampler = Sampler::new(
            self.pool.clone(),
            self.aws.sqs.clone(),
            topology.channel_of(self.service).is_some(),
            &topology.queues_of(self.service),
            self.settings.metrics_sample_interval,
        );
        self.tracker.spawn(sampler.run(shutdown.clone()));
    }

    async fn spawn_consumers<H: Handler>(
        &self,
        handler: Arc<H>,
        shutdown: &CancellationToken,
    ) -> Result<(), StartupError> {
        if !self.settings.consumer.enabled {
            tracing::info!(
                service = self.service.name(),
                "consumers off (CONSUMERS_ENABLED=false): the service's queues are consumed elsewhere"
            );
            return Ok(());
        }
        for queue in Topology::declare(self.settings.orders_chain).queues_of(self.service) {
            metrics::get().register_queue(queue.name);
            for _ in 0..self.settings.consumer.concurrency {
                let consumer = Consumer::new(
                    self.aws.sqs.clone(),
                    self.pool.clone(),
                    handler.clone(),
                    queue.clone(),
                    &self.settings.consumer,
                )
                .await
                .map_err(|e| StartupError::Broker(e.to_string()))?;
                self.tracker.spawn(consumer.run(shutdown.clone()));
            }
        }
        Ok(())
    }
}

/// The outbox relay of a service that publishes: to its topic or its bus.
pub enum ServiceRelay {
    Topic(Relay<SnsPublisher>),
    Bus(Relay<EventBridgePublisher>),
}

impl ServiceRelay {
    /// The relay of `service` in `topology`; `None` when it publishes nothing.
    pub async fn connect(
        service: Service,
        topology: &Topology,
        aws: &AwsClients,
        pool: &PgPool,
        settings: &RelaySettings,
    ) -> Result<Option<ServiceRelay>, StartupError> {
        let (pool, settings) = (pool.clone(), settings.clone());
        Ok(match topology.channel_of(service) {
            None => None,
            Some(Channel::Topic(topic)) => {
                let arn = topic_arn(&aws.sns, topic.name).await?;
                let publisher = SnsPublisher::new(aws.sns.clone(), arn, topic.fifo);
                Some(ServiceRelay::Topic(Relay::new(pool, publisher, settings)))
            }
            Some(Channel::Bus(bus)) => {
                let publisher = EventBridgePublisher::new(
                    aws.events.clone(),
                    bus.name.to_string(),
                    service.source().to_string(),
                );
                Some(ServiceRelay::Bus(Relay::new(pool, publisher, settings)))
            }
        })
    }

    /// Claims and publishes one batch (see `Relay::publish_once`).
    pub async fn publish_once(&self) -> Result<Published, RelayError> {
        match self {
            ServiceRelay::Topic(relay) => relay.publish_once().await,
            ServiceRelay::Bus(relay) => relay.publish_once().await,
        }
    }

    /// Relays until `shutdown` (see `Relay::run`).
    pub async fn run(self, shutdown: CancellationToken) {
        match self {
            ServiceRelay::Topic(relay) => relay.run(shutdown).await,
            ServiceRelay::Bus(relay) => relay.run(shutdown).await,
        }
    }
}

/// The service's pool, its database migrated (waiting, with backoff, for a
/// database that is not up yet).
pub async fn connect_database(
    settings: &CommonSettings,
    migrator: Migrator,
) -> Result<PgPool, StartupError> {
    let pool = db::pool(
        &settings.database_url,
        settings.database_max_connections,
        settings.database_acquire_timeout,
    )
    .map_err(|e| ConfigError::new("DATABASE_URL", format!("is invalid: {e}")))?;
    migrate_with_retry(&pool, migrator).await?;
    Ok(pool)
}

/// Applies migrations, retrying with backoff while the database is not up yet.
async fn migrate_with_retry(pool: &PgPool, migrator: Migrator) -> Result<(), StartupError> {
    let deadline = tokio::time::Instant::now() + MIGRATE_DEADLINE;
    let mut backoff = ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(200))
        .with_max_delay(Duration::from_secs(5))
        .without_max_times()
        .build();
    loop {
        match db::migrate(pool, clone_migrator(&migrator)).await {
            Ok(()) => return Ok(()),
            Err(sqlx::migrate::MigrateError::Execute(e))
                if db::is_unavailable(&e) && tokio::time::Instant::now() < deadline =>
            {
                let delay = backoff.next().unwrap_or(Duration::from_secs(5));
                tracing::warn!(error = %e, retry_in = ?delay, "database not reachable yet");
                tokio::time::sleep(delay).await;
            }
            Err(e) => return Err(StartupError::Database(format!("migrations failed: {e}"))),
        }
    }
}

fn clone_migrator(m: &Migrator) -> Migrator {
    Migrator {
        migrations: m.migrations.clone(),
        ignore_missing: m.ignore_missing,
        locking: m.locking,
        no_tx: m.no_tx,
        table_name: m.table_name.clone(),
        create_schemas: m.create_schemas.clone(),
    }
}

/// Finds a topic's ARN by name; services never create topics.
pub async fn topic_arn(sns: &aws_sdk_sns::Client, name: &str) -> Result<String, StartupError> {
    let suffix = format!(":{name}");
    let mut pages = sns.list_topics().into_paginator().items().send();
    while let Some(topic) = pages.next().await {
        let topic = topic.map_err(|e| {
            StartupError::Broker(aws_sdk_sns::error::DisplayErrorContext(e).to_string())
        })?;
        if let Some(arn) = topic.topic_arn()
            && arn.ends_with(&suffix)
        {
            return Ok(arn.to_string());
        }
    }
    Err(StartupError::Broker(format!(
        "topic '{name}' does not exist: run the provisioner first"
    )))
}

/// Turns a service's result into its exit status: one line on stderr naming
/// what went wrong; 2 for a configuration error, 1 for anything else.
pub fn exit_code(result: Result<(), StartupError>) -> std::process::ExitCode {
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "service failed");
            eprintln!("{e}");
            match e {
                StartupError::Config(_) => std::process::ExitCode::from(2),
                _ => std::process::ExitCode::FAILURE,
            }
        }
    }
}
