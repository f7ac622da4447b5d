//! The order API's edge against a real database: every bad input gets the
//! right 4xx with a problem+json body and changes nothing.

mod support;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use order::invoicing::{Invoicing, InvoicingSettings};
use platform::auth::client::ClientCredentialsSettings;
use platform::config::env_of;
use serde_json::{Value, json};
use support::{line, order, spawn_app, spawn_app_with};
use tower::ServiceExt;

#[tokio::test]
async fn a_valid_order_is_accepted_with_its_event_in_the_outbox() {
    let app = spawn_app().await;
    let (status, _, body) = app
        .post_json("/orders", order(vec![line(2, 1999, "EUR")]))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(body["status"], "PLACED");
    assert_eq!(app.counts().await, (1, 1));
    let id = body["order_id"].as_str().expect("id");
    let (status, _, got) = app
        .call(
            Request::get(format!("/orders/{id}"))
                .body(Body::empty())
                .expect("req"),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(got["total_minor"], 3998);
    assert_eq!(got["status"], "PLACED");
}

#[tokio::test]
async fn every_bad_input_gets_a_problem_and_changes_nothing() {
    let app = spawn_app().await;
    let too_many: Vec<Value> = (0..101).map(|_| line(1, 1, "EUR")).collect();
    let cases: Vec<(&str, String, StatusCode)> = vec![
        ("no lines", order(vec![]), StatusCode::UNPROCESSABLE_ENTITY),
        (
            "quantity 0",
            order(vec![line(0, 1, "EUR")]),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "quantity 1001",
            order(vec![line(1001, 1, "EUR")]),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "negative price",
            order(vec![line(1, -1, "EUR")]),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "bad currency",
            order(vec![line(1, 1, "EURO")]),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "101 lines",
            order(too_many),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "malformed JSON",
            "{\"customer_id\": ".to_string(),
            StatusCode::BAD_REQUEST,
        ),
        (
            "missing field",
            json!({"lines": []}).to_string(),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "over 64 KiB",
            order(vec![
                json!({"sku": "x".repeat(70 * 1024), "quantity": 1, "unit_price_minor": 1, "currency": "EUR"}),
            ]),
            StatusCode::PAYLOAD_TOO_LARGE,
        ),
    ];
    for (name, body, want) in cases {
        let (status, content_type, problem) = app.post_json("/orders", body).await;
        assert_eq!(status, want, "{name}: {problem}");
        assert_eq!(content_type, "application/problem+json", "{name}");
        assert_eq!(problem["status"], want.as_u16(), "{name}");
        assert!(
            problem["title"].is_string() && problem["type"].is_string(),
            "{name}: {problem}"
        );
    }
    let (status, content_type, _) = app
        .call(
            Request::post("/orders")
                .header(header::CONTENT_TYPE, "text/plain")
                .body(Body::from(order(vec![line(1, 1, "EUR")])))
                .expect("req"),
        )
        .await;
    assert_eq!(
        (status, content_type.as_str()),
        (
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "application/problem+json"
        )
    );
    assert_eq!(
        app.counts().await,
        (0, 0),
        "a refused request must not write anything"
    );
}

#[tokio::test]
async fn validation_problems_list_every_invalid_field() {
    let app = spawn_app().await;
    let body = json!({"lines": [line(0, -1, "XYZ")]}).to_string();
    let (status, _, problem) = app.post_json("/orders", body).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let fields: Vec<&str> = problem["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .filter_map(|e| e["field"].as_str())
        .collect();
    assert_eq!(
        fields,
        [
            "lines[0].quantity",
            "lines[0].unit_price_minor",
            "lines[0].currency"
        ]
    );
}

#[tokio::test]
async fn unknown_orders_are_not_found_and_cancelling_twice_emits_one_event() {
    let app = spawn_app().await;
    for uri in [
        "/orders/0190b2a0-0000-7000-8000-000000000000",
        "/orders/not-a-uuid",
    ] {
        let (status, content_type, _) = app
            .call(Request::get(uri).body(Body::empty()).expect("req"))
            .await;
        assert_eq!(
            (status, content_type.as_str()),
            (StatusCode::NOT_FOUND, "application/problem+json"),
            "{uri}"
        );
    }
    let (status, _, _) = app
        .post_json(
            "/orders/0190b2a0-0000-7000-8000-000000000000/cancel",
            String::new(),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let (_, _, placed) = app
        .post_json("/orders", order(vec![line(1, 100, "EUR")]))
        .await;
    let id = placed["order_id"].as_str().expect("id");
    for _ in 0..2 {
        let (status, _, body) = app
            .post_json(&format!("/orders/{id}/cancel"), String::new())
            .await;
        assert_eq!(
            (status, body["status"].as_str()),
            (StatusCode::ACCEPTED, Some("CANCELLED"))
        );
    }
    let cancellations: i64 =
        sqlx::query_scalar("SELECT count(*) FROM outbox WHERE event_type = 'OrderCancelled'")
            .fetch_one(&app.pool)
            .await
            .expect("count");
    assert_eq!(cancellations, 1);
}

fn keyed(key: &str, body: String) -> Request<Body> {
    Request::post("/orders")
        .header(header::CONTENT_TYPE, "application/json")
        .header("Idempotency-Key", key)
        .body(Body::from(body))
        .expect("request")
}

#[tokio::test]
async fn an_idempotency_key_returns_the_same_order_and_emits_one_event() {
    let app = spawn_app().await;
    let body = order(vec![line(2, 1999, "EUR")]);
    let (status, _, first) = app.call(keyed("key-1", body.clone())).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    // The same JSON value, written differently, is the same request.
    let reordered = json!({"lines": [line(2, 1999, "EUR")], "customer_id": "c-1"});
    let response = app
        .router()
        .oneshot(app.as_customer(keyed("key-1", format!("{reordered:#}"))))
        .await
        .expect("infallible");
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    assert_eq!(
        response
            .headers()
            .get("idempotent-replayed")
            .and_then(|v| v.to_str().ok()),
        Some("true")
    );
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .expect("body");
    let again: Value = serde_json::from_slice(&bytes).expect("json");
    assert_eq!(again["order_id"], first["order_id"]);
    assert_eq!(app.counts().await, (1, 1), "one order, one event");

    // Another key is another order.
    let (status, _, other) = app.call(keyed("key-2", body)).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_ne!(other["order_id"], first["order_id"]);
    assert_eq!(app.counts().await, (2, 2));
}

#[tokio::test]
async fn an_idempotency_key_reused_with_another_body_is_refused() {
    let app = spawn_app().await;
    let (status, _, first) = app
        .call(keyed("key-1", order(vec![line(1, 100, "EUR")])))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let (status, content_type, problem) = app
        .call(keyed("key-1", order(vec![line(2, 100, "EUR")])))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(content_type, "application/problem+json");
    assert!(
        problem["type"]
            .as_str()
            .unwrap_or_default()
            .ends_with("idempotency-key-reused"),
        "{problem}"
    );
    // The answer does not leak the order the key placed first.
    let first_id = first["order_id"].as_str().expect("id");
    assert!(!problem.to_string().contains(first_id), "{problem}");
    assert_eq!(app.counts().await, (1, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_with_one_key_place_one_order() {
    let app = spawn_app().await;
    let body = order(vec![line(3, 500, "USD")]);
    let mut calls = tokio::task::JoinSet::new();
    let app_token = app.token(support::CUSTOMER);
    for _ in 0..8 {
        let app = app.router();
        let request = app_request(&app_token, keyed("same-key", body.clone()));
        calls.spawn(async move {
            let response = app.oneshot(request).await.expect("infallible");
            let status = response.status();
            let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
                .await
                .expect("body");
            (
                status,
                serde_json::from_slice::<Value>(&bytes).unwrap_or(Value::Null),
            )
        });
    }
    let mut ids = std::collections::BTreeSet::new();
    while let Some(answer) = calls.join_next().await {
        let (status, body) = answer.expect("task");
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        ids.insert(body["order_id"].as_str().expect("id").to_string());
    }
    assert_eq!(ids.len(), 1, "every answer names the same order: {ids:?}");
    assert_eq!(app.counts().await, (1, 1));
}

#[tokio::test]
async fn a_malformed_idempotency_key_is_a_bad_request_and_changes_nothing() {
    let app = spawn_app().await;
    let body = order(vec![line(1, 100, "EUR")]);
    for key in [String::new(), "k".repeat(256), "two words".to_string()] {
        let (status, content_type, problem) = app.call(keyed(&key, body.clone())).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "key {key:?}: {problem}");
        assert_eq!(content_type, "application/problem+json");
        assert!(
            problem["detail"]
                .as_str()
                .unwrap_or_default()
                .starts_with("Idempotency-Key"),
            "{problem}"
        );
    }
    assert_eq!(app.counts().await, (0, 0));
}

/// A stand-in for the invoice service's `POST /invoices`: answers `status`
/// after `delay` and keeps every body it was sent.
struct FakeInvoiceService {
    url: String,
    received: std::sync::Arc<std::sync::Mutex<Vec<Value>>>,
}

async fn fake_invoice_service(
    status: StatusCode,
    delay: std::time::Duration,
) -> FakeInvoiceService {
    use axum::extract::State;
    let received = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = received.clone();
    let app = axum::Router::new()
        .route(
            "/invoices",
            axum::routing::post(
                move |State(seen): State<std::sync::Arc<std::sync::Mutex<Vec<Value>>>>,
                      axum::Json(body): axum::Json<Value>| async move {
                    seen.lock().expect("lock").push(body);
                    tokio::time::sleep(delay).await;
                    status
                },
            ),
        )
        .with_state(seen);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    FakeInvoiceService { url, received }
}

/// The sync mode against `url`, with the order service's client credentials
/// at `issuer`.
fn sync_invoicing(issuer: &harness::issuer::Issuer, url: &str, timeout_ms: u64) -> Invoicing {
    let env = issuer.order_client_env();
    let pairs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let credentials = ClientCredentialsSettings::from_env(&env_of(&pairs)).expect("credentials");
    Invoicing::from_settings(&InvoicingSettings::Sync {
        url: url.to_string(),
        timeout: std::time::Duration::from_millis(timeout_ms),
        credentials,
    })
    .expect("client")
}

/// `request` with `token` as its bearer.
fn app_request(token: &str, mut request: Request<Body>) -> Request<Body> {
    request.headers_mut().insert(
        header::AUTHORIZATION,
        format!("Bearer {token}").parse().expect("header"),
    );
    request
}

trait AsCustomer {
    fn as_customer(&self, request: Request<Body>) -> Request<Body>;
}

impl AsCustomer for support::TestApp {
    fn as_customer(&self, request: Request<Body>) -> Request<Body> {
        app_request(&self.token(support::CUSTOMER), request)
    }
}

#[tokio::test]
async fn in_sync_mode_an_order_is_placed_only_after_the_invoice_service_invoiced_it() {
    let invoices = fake_invoice_service(StatusCode::CREATED, std::time::Duration::ZERO).await;
    let app = spawn_app_with(&[], |issuer| sync_invoicing(issuer, &invoices.url, 2000)).await;
    let (status, _, body) = app
        .post_json("/orders", order(vec![line(2, 1999, "EUR")]))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(app.counts().await, (1, 1));
    let sent = invoices.received.lock().expect("lock").clone();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0]["order_id"], body["order_id"]);
    assert_eq!(sent[0]["total_minor"], 3998);
}

#[tokio::test]
async fn in_sync_mode_an_invoice_service_that_is_down_fails_refuses_or_is_slow_fails_the_order_and_places_nothing()
 {
    let closed = format!("http://127.0.0.1:{}", testkit::free_port().expect("port"));
    let failing =
        fake_invoice_service(StatusCode::INTERNAL_SERVER_ERROR, std::time::Duration::ZERO).await;
    let refusing =
        fake_invoice_service(StatusCode::UNPROCESSABLE_ENTITY, std::time::Duration::ZERO).await;
    let slow = fake_invoice_service(StatusCode::CREATED, std::time::Duration::from_secs(5)).await;
    // (case, invoice service, timeout, answer, whether a retry may help)
    for (case, url, timeout_ms, expected, retry) in [
        (
            "down",
            closed.as_str(),
            2000,
            StatusCode::SERVICE_UNAVAILABLE,
            true,
        ),
        (
            "answering 500",
            failing.url.as_str(),
            2000,
            StatusCode::SERVICE_UNAVAILABLE,
            true,
        ),
        (
            "slower than the timeout",
            slow.url.as_str(),
            200,
            StatusCode::SERVICE_UNAVAILABLE,
            true,
        ),
        (
            "refusing with 422",
            refusing.url.as_str(),
            2000,
            StatusCode::BAD_GATEWAY,
            false,
        ),
    ] {
        let app = spawn_app_with(&[], |issuer| sync_invoicing(issuer, url, timeout_ms)).await;
        let response = app
            .router()
            .oneshot(
                app.as_customer(
                    Request::post("/orders")
                        .header(header::CONTENT_TYPE, "application/json")
                        .body(Body::from(order(vec![line(1, 100, "EUR")])))
                        .expect("request"),
                ),
            )
            .await
            .expect("infallible");
        assert_eq!(response.status(), expected, "{case}");
        assert_eq!(
            response.headers()[header::CONTENT_TYPE],
            "application/problem+json",
            "{case}"
        );
        assert_eq!(
            response.headers().get(header::RETRY_AFTER).is_some(),
            retry,
            "{case}: Retry-After only when a retry may help"
        );
        assert_eq!(app.counts().await, (0, 0), "{case}: nothing may be placed");
    }
}
