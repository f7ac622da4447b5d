//! The order API as a client meets it, in process: the service's router
//! behind the platform's edge (limits, bearer authentication against a local
//! issuer over HTTP) on a scratch database.

#![allow(dead_code, unreachable_pub)]

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use harness::issuer::Issuer;
use order::api::{AppState, router};
use order::invoicing::Invoicing;
use platform::auth::Verifier;
use platform::config::env_of;
use platform::edge::{self, EdgeSettings};
use serde_json::{Value, json};
use sqlx::PgPool;
use testkit::postgres::ScratchDatabase;
use tower::ServiceExt;

/// The customer whose token `TestApp::call` sends.
pub const CUSTOMER: &str = "c-1";

pub struct TestApp {
    /// Keeps the cluster running for as long as the app.
    _db: ScratchDatabase,
    pub pool: PgPool,
    pub invoicing: Invoicing,
    pub issuer: Issuer,
    pub edge: EdgeSettings,
    verifier: Arc<Verifier>,
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(&[], |_| Invoicing::Async).await
}

/// An app whose edge reads `env` too, with the invoicing `invoicing` makes
/// (it may need the issuer, for the sync mode's client credentials).
pub async fn spawn_app_with(
    env: &[(&str, &str)],
    invoicing: impl FnOnce(&Issuer) -> Invoicing,
) -> TestApp {
    let db = ScratchDatabase::start().await.expect("postgres");
    platform::db::migrate(&db.pool, sqlx::migrate!("./migrations"))
        .await
        .expect("migrate");
    let issuer = Issuer::start().await.expect("issuer");
    let issuer_url = issuer.url();
    let mut pairs = vec![
        ("OIDC_ISSUER", issuer_url.as_str()),
        ("JWT_AUDIENCE", harness::issuer::AUDIENCE),
    ];
    pairs.extend_from_slice(env);
    let edge = EdgeSettings::from_env(&env_of(&pairs), 0).expect("edge settings");
    let verifier = Arc::new(Verifier::new(&edge.auth).expect("verifier"));
    TestApp {
        pool: db.pool.clone(),
        _db: db,
        invoicing: invoicing(&issuer),
        issuer,
        edge,
        verifier,
    }
}

/// A response's status, content type and JSON body (`Null` when none).
pub type Answer = (StatusCode, String, Value);

impl TestApp {
    /// The public port's service: the API behind the edge.
    pub fn router(&self) -> axum::Router {
        edge::wrap(
            router(AppState {
                pool: self.pool.clone(),
                invoicing: self.invoicing.clone(),
            }),
            self.verifier.clone(),
            &self.edge,
        )
    }

    pub fn token(&self, customer: &str) -> String {
        self.issuer.customer_token(customer).expect("token")
    }

    /// Sends `request`, with `CUSTOMER`'s token unless it has an
    /// `Authorization` header already.
    pub async fn call(&self, mut request: Request<Body>) -> Answer {
        if !request.headers().contains_key(header::AUTHORIZATION) {
            let bearer = format!("Bearer {}", self.token(CUSTOMER));
            request
                .headers_mut()
                .insert(header::AUTHORIZATION, bearer.parse().expect("header"));
        }
        self.send(request).await
    }

    /// Sends `request` as it is.
    pub async fn send(&self, request: Request<Body>) -> Answer {
        let response = self.router().oneshot(request).await.expect("infallible");
        read(response).await
    }

    pub async fn post_json(&self, uri: &str, body: String) -> Answer {
        self.call(
            Request::post(uri)
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(body))
                .expect("request"),
        )
        .await
    }

    /// (orders, outbox rows, idempotency keys).
    pub async fn counts(&self) -> (i64, i64) {
        let orders = sqlx::query_scalar("SELECT count(*) FROM orders")
            .fetch_one(&self.pool)
            .await
            .expect("count");
        let outbox = sqlx::query_scalar("SELECT count(*) FROM outbox")
            .fetch_one(&self.pool)
            .await
            .expect("count");
        (orders, outbox)
    }
}

pub async fn read(response: axum::response::Response) -> Answer {
    let status = response.status();
    let content_type = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .expect("body");
    (
        status,
        content_type,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

pub fn line(quantity: i64, price: i64, currency: &str) -> Value {
    json!({"sku": "SKU-1", "quantity": quantity, "unit_price_minor": price, "currency": currency})
}

/// An order of `CUSTOMER`'s.
pub fn order(lines: Vec<Value>) -> String {
    json!({"customer_id": CUSTOMER, "lines": lines}).to_string()
}
