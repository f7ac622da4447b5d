//! Reading the system from outside: databases, queues, health. What the
//! steady-state probes, the abort conditions and the checker look at.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use chrono::{DateTime, Utc};
use contracts::topology::{Service, Topology};
use serde::Serialize;
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;
use uuid::Uuid;

/// Where everything answers, as seen from this command.
#[derive(Debug, Clone)]
pub struct Endpoints {
    /// Base URLs of the three services' HTTP APIs.
    pub services: BTreeMap<&'static str, String>,
    /// Base URLs of their admin ports (health, metrics).
    pub admin: BTreeMap<&'static str, String>,
    /// Mints the tokens the APIs ask for; `None` where no issuer key is at
    /// hand (the APIs then answer 401).
    pub minter: Option<crate::issuer::Minter>,
    /// `AWS_ENDPOINT_URL` of the emulator.
    pub emulator: String,
    /// Each service's database.
    pub databases: BTreeMap<&'static str, String>,
}

impl Endpoints {
    pub fn service(&self, service: Service) -> &str {
        &self.services[service.name()]
    }

    pub fn admin(&self, service: Service) -> &str {
        &self.admin[service.name()]
    }

    pub fn database(&self, service: Service) -> &str {
        &self.databases[service.name()]
    }
}

/// An order of this run, as the order service stored it.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct OrderRow {
    pub id: Uuid,
    pub customer_id: String,
    pub status: String,
    /// When the order last changed: for an `INVOICED` order, when the
    /// invoice reached it.
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct InvoiceRow {
    pub id: Uuid,
    pub order_id: Uuid,
    pub status: String,
    pub issued_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct NotificationRow {
    pub event_id: Uuid,
    pub event_type: String,
    pub order_id: Uuid,
    pub created_at: DateTime<Utc>,
}

/// Everything the checker judges, read once the run has drained.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SystemState {
    /// Orders whose customer id carries this run's id.
    pub orders: Vec<OrderRow>,
    /// Invoices issued since the run started.
    pub invoices: Vec<InvoiceRow>,
    /// Of the invoices' order ids, those the order service does not know.
    pub orders_unknown_to_the_order_service: Vec<Uuid>,
    /// Notifications recorded since the run started.
    pub notifications: Vec<NotificationRow>,
    /// Duplicates each consumer's inbox absorbed on events since the start.
    pub duplicates: BTreeMap<String, i64>,
    /// Unpublished outbox rows per publishing service.
    pub outbox_backlog: BTreeMap<String, i64>,
    /// (visible, in flight) per consumed queue.
    pub queues: BTreeMap<String, (u64, u64)>,
    /// Every DLQ with what it holds.
    pub dlqs: Vec<infra::dlq::DlqListing>,
}

pub struct Observer {
    pools: BTreeMap<&'static str, PgPool>,
    pub sqs: aws_sdk_sqs::Client,
    pub http: reqwest::Client,
    endpoints: Endpoints,
    topology: Topology,
}

impl Observer {
    /// Pools connect lazily: a database that is down fails the reads that
    /// need it, not the observer.
    pub async fn new(endpoints: &Endpoints, topology: &Topology) -> anyhow::Result<Observer> {
        let mut pools = BTreeMap::new();
        for service in Service::ALL {
            let pool = PgPoolOptions::new()
                .max_connections(2)
                .acquire_timeout(Duration::from_secs(3))
                .connect_lazy(endpoints.database(service))?;
            pools.insert(service.name(), pool);
        }
        let sdk = crate::stack::emulator_config(&endpoints.emulator).await;
        Ok(Observer {
            pools,
            sqs: aws_sdk_sqs::Client::new(&sdk),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(5))
                .build()?,
            endpoints: endpoints.clone(),
            topology: topology.clone(),
        })
    }

    pub fn pool(&self, service: Service) -> &PgPool {
        &self.pools[service.name()]
    }

    /// Whether `/health/ready` answers 200.
    pub async fn ready(&self, service: Service) -> bool {
        let url = format!("{}/health/ready", self.endpoints.admin(service));
        matches!(self.http.get(url).send().await, Ok(r) if r.status().is_success())
    }

    /// Unpublished outbox rows of `service`.
    pub async fn outbox_backlog(&self, service: Service) -> anyhow::Result<i64> {
        let mut conn = self.pool(service).acquire().await?;
        Ok(platform::outbox::store::backlog(&mut conn).await?)
    }

    /// (visible, in flight) of every queue the services consume.
    pub async fn queue_depths(&self) -> anyhow::Result<BTreeMap<String, (u64, u64)>> {
        let mut depths = BTreeMap::new();
        for queue in &self.topology.queues {
            depths.insert(
                queue.name.to_string(),
                crate::probe::queue_depth(&self.sqs, queue.name).await?,
            );
        }
        Ok(depths)
    }

    /// `Ok` once no outbox holds an unpublished row and no queue holds a
    /// message; otherwise what still holds something.
    pub async fn drained(&self) -> Result<(), String> {
        for service in [Service::Order, Service::Invoice] {
            match self.outbox_backlog(service).await {
                Ok(0) => {}
                Ok(n) => return Err(format!("{} outbox holds {n}", service.name())),
                Err(e) => return Err(e.to_string()),
            }
        }
        let depths = self.queue_depths().await.map_err(|e| e.to_string())?;
        match depths.iter().find(|(_, d)| **d != (0, 0)) {
            Some((name, d)) => Err(format!("{name} holds {d:?}")),
            None => Ok(()),
        }
    }

    /// How many of `orders` are invoiced (order `INVOICED`) and notified
    /// twice (received, invoice issued): the run's end-to-end progress.
    pub async fn completed(&self, orders: &[Uuid]) -> anyhow::Result<usize> {
        let invoiced: Vec<Uuid> =
            sqlx::query_scalar("SELECT id FROM orders WHERE status = 'INVOICED' AND id = ANY($1)")
                .bind(orders)
                .fetch_all(self.pool(Service::Order))
                .await?;
        let notified: Vec<Uuid> = sqlx::query_scalar(
            "SELECT order_id FROM notifications WHERE order_id = ANY($1) \
             GROUP BY order_id HAVING count(DISTINCT event_type) = 2",
        )
        .bind(orders)
        .fetch_all(self.pool(Service::Notification))
        .await?;
        let notified: HashSet<Uuid> = notified.into_iter().collect();
        Ok(invoiced.iter().filter(|id| notified.contains(id)).count())
    }

    /// Reads everything the checker needs about the run `run_id`.
    pub async fn state(&self, run_id: &str, since: DateTime<Utc>) -> anyhow::Result<SystemState> {
        // A little slack: database clocks are this host's, but rows carry
        // their transaction's start time.
        let since = since - chrono::Duration::seconds(5);
        let orders: Vec<OrderRow> = sqlx::query_as(
            "SELECT id, customer_id, status, updated_at FROM orders WHERE customer_id LIKE $1 || '-%'",
        )
        .bind(run_id)
        .fetch_all(self.pool(Service::Order))
        .await?;
        let invoices: Vec<InvoiceRow> = sqlx::query_as(
            "SELECT id, order_id, status, issued_at FROM invoices WHERE issued_at >= $1",
        )
        .bind(since)
        .fetch_all(self.pool(Service::Invoice))
        .await?;
        let invoiced_orders: Vec<Uuid> = invoices.iter().map(|i| i.order_id).collect();
        let known: HashSet<Uuid> =
            sqlx::query_scalar::<_, Uuid>("SELECT id FROM orders WHERE id = ANY($1)")
                .bind(&invoiced_orders)
                .fetch_all(self.pool(Service::Order))
                .await?
                .into_iter()
                .collect();
        let notifications: Vec<NotificationRow> = sqlx::query_as(
            "SELECT event_id, event_type, order_id, created_at FROM notifications \
             WHERE created_at >= $1",
        )
        .bind(since)
        .fetch_all(self.pool(Service::Notification))
        .await?;
        let mut duplicates = BTreeMap::new();
        for service in Service::ALL {
            let n: i64 = sqlx::query_scalar(
                "SELECT coalesce(sum(duplicates), 0)::bigint FROM inbox WHERE received_at >= $1",
            )
            .bind(since)
            .fetch_one(self.pool(service))
            .await?;
            duplicates.insert(service.name().to_string(), n);
        }
        let mut outbox_backlog = BTreeMap::new();
        for service in [Service::Order, Service::Invoice] {
            outbox_backlog.insert(
                service.name().to_string(),
                self.outbox_backlog(service).await?,
            );
        }
        Ok(SystemState {
            orders,
            orders_unknown_to_the_order_service: invoiced_orders
                .into_iter()
                .filter(|id| !known.contains(id))
                .collect(),
            invoices,
            notifications,
            duplicates,
            outbox_backlog,
            queues: self.queue_depths().await?,
            dlqs: infra::dlq::list_all(&self.sqs, &self.topology, 100).await?,
        })
    }
}
