//! The edge's limits on a real router: a bound on requests in flight that
//! sheds with 503 and `Retry-After` at once, and a time limit per request,
//! both answering problem+json.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use axum::middleware::{from_fn, from_fn_with_state};
use axum::routing::get;
use platform::edge::{shed, timeout};
use tokio::sync::{Notify, Semaphore};
use tower::ServiceExt;

async fn body_json(response: axum::response::Response) -> serde_json::Value {
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .expect("body");
    serde_json::from_slice(&bytes).expect("json")
}

fn request() -> Request<Body> {
    Request::get("/slow").body(Body::empty()).expect("request")
}

#[tokio::test]
async fn past_the_in_flight_bound_a_request_is_shed_at_once_with_503() {
    let release = Arc::new(Notify::new());
    let entered = Arc::new(Semaphore::new(0));
    let (r, e) = (release.clone(), entered.clone());
    let app = Router::new()
        .route(
            "/slow",
            get(move || {
                let (r, e) = (r.clone(), e.clone());
                async move {
                    let released = r.notified();
                    e.add_permits(1);
                    released.await;
                    "done"
                }
            }),
        )
        .layer(from_fn_with_state(Arc::new(Semaphore::new(2)), shed::shed));
    let first = tokio::spawn(app.clone().oneshot(request()));
    let second = tokio::spawn(app.clone().oneshot(request()));
    // Both are inside the handler: the bound is reached.
    entered.acquire_many(2).await.expect("entered").forget();
    let started = tokio::time::Instant::now();
    let third = app.clone().oneshot(request()).await.expect("infallible");
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "shed, not queued"
    );
    assert_eq!(third.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(third.headers()[header::RETRY_AFTER], "1");
    assert_eq!(
        third.headers()[header::CONTENT_TYPE],
        "application/problem+json"
    );
    assert_eq!(body_json(third).await["status"], 503);
    release.notify_waiters();
    for handle in [first, second] {
        let response = handle.await.expect("task").expect("infallible");
        assert_eq!(response.status(), StatusCode::OK);
    }
    // With the permits back, a request is served again.
    let again = tokio::spawn(app.oneshot(request()));
    entered.acquire().await.expect("entered").forget();
    release.notify_waiters();
    assert_eq!(
        again.await.expect("task").expect("ok").status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn a_request_past_its_time_limit_is_stopped_with_a_503_problem() {
    let limit = Duration::from_millis(200);
    let app = Router::new()
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(30)).await;
                "too late"
            }),
        )
        .route("/quick", get(|| async { "quick" }))
        .layer(from_fn(move |request, next| {
            timeout::bound(limit, request, next)
        }));
    let started = tokio::time::Instant::now();
    let response = app.clone().oneshot(request()).await.expect("infallible");
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        response.headers()[header::CONTENT_TYPE],
        "application/problem+json"
    );
    assert!(
        body_json(response).await["type"]
            .as_str()
            .unwrap_or_default()
            .ends_with("timeout")
    );
    let quick = app
        .oneshot(Request::get("/quick").body(Body::empty()).expect("request"))
        .await
        .expect("infallible");
    assert_eq!(quick.status(), StatusCode::OK);
}
