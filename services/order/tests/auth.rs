//! Who may do what on the order API, against the real edge, a local issuer
//! over HTTP and a real database: every refusal is problem+json, carries the
//! RFC 6750 challenge where one applies, and writes nothing.

mod support;

use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use jsonwebtoken::{EncodingKey, Header};
use serde_json::{Value, json};
use support::{CUSTOMER, TestApp, line, order, spawn_app, spawn_app_with};

/// `POST /orders` of `CUSTOMER`'s order with `authorization` as the header.
fn place(authorization: Option<&str>) -> Request<Body> {
    let mut request = Request::post("/orders").header(header::CONTENT_TYPE, "application/json");
    if let Some(value) = authorization {
        request = request.header(header::AUTHORIZATION, value);
    }
    request
        .body(Body::from(order(vec![line(1, 100, "EUR")])))
        .expect("request")
}

async fn place_with_token(app: &TestApp, token: &str) -> support::Answer {
    app.send(place(Some(&format!("Bearer {token}")))).await
}

/// The `WWW-Authenticate` challenge of the answer to `request`.
async fn challenge(app: &TestApp, request: Request<Body>) -> (StatusCode, String) {
    use tower::ServiceExt;
    let response = app.router().oneshot(request).await.expect("infallible");
    let challenge = response
        .headers()
        .get(header::WWW_AUTHENTICATE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    (response.status(), challenge)
}

fn assert_problem(answer: &support::Answer, status: StatusCode, case: &str) {
    let (got, content_type, body) = answer;
    assert_eq!(*got, status, "{case}: {body}");
    assert_eq!(content_type, "application/problem+json", "{case}");
    assert_eq!(body["status"], status.as_u16(), "{case}");
}

/// `alg: none`: the header `{"alg":"none","typ":"JWT"}`, the claims of a
/// good token, no signature.
fn unsigned(app: &TestApp) -> String {
    let good = app.token(CUSTOMER);
    let claims = good.split('.').nth(1).expect("claims");
    format!("eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.{claims}.")
}

/// HS256 "signed" with the issuer's public key as the secret: the classic
/// algorithm confusion, which a verifier that lets the token pick the
/// algorithm would accept.
fn hs256_with_public_key(app: &TestApp) -> String {
    let key = app.issuer.current_key();
    let public = serde_json::to_vec(key.jwk()).expect("jwk");
    let mut header = Header::new(jsonwebtoken::Algorithm::HS256);
    header.kid = Some(key.kid.clone());
    let claims = app
        .issuer
        .claims(CUSTOMER, harness::issuer::CUSTOMER_SCOPES);
    jsonwebtoken::encode(&header, &claims, &EncodingKey::from_secret(&public)).expect("sign")
}

#[tokio::test]
async fn every_bad_credential_is_refused_with_a_problem_and_writes_nothing() {
    let app = spawn_app().await;
    let now = chrono::Utc::now().timestamp();
    let signed = |patch: Value| {
        let mut claims = app
            .issuer
            .claims(CUSTOMER, harness::issuer::CUSTOMER_SCOPES);
        for (k, v) in patch.as_object().expect("object") {
            claims[k] = v.clone();
        }
        app.issuer.sign(&claims).expect("sign")
    };
    let good = app.token(CUSTOMER);
    let (head, body, signature) = {
        let mut parts = good.split('.');
        (
            parts.next().expect("head").to_string(),
            parts.next().expect("body").to_string(),
            parts.next().expect("signature").to_string(),
        )
    };
    // Another key pair's signature on the same header and claims.
    let stranger = harness::issuer::SigningKey::es256(&app.issuer.current_key().kid).expect("key");
    let forged = stranger
        .sign(
            &app.issuer
                .claims(CUSTOMER, harness::issuer::CUSTOMER_SCOPES),
        )
        .expect("sign");
    let unknown_kid = harness::issuer::SigningKey::es256("no-such-key")
        .expect("key")
        .sign(
            &app.issuer
                .claims(CUSTOMER, harness::issuer::CUSTOMER_SCOPES),
        )
        .expect("sign");
    // The signature's first character changed: its first six bits differ, so
    // the bytes do (a character replaced only where it occurs may not occur).
    let tampered_signature = {
        let first = if signature.starts_with('A') { 'B' } else { 'A' };
        format!("{head}.{body}.{first}{}", &signature[1..])
    };
    let tampered_claims = {
        let other = app.token("someone-else");
        let other_body = other.split('.').nth(1).expect("body").to_string();
        format!("{head}.{other_body}.{signature}")
    };

    // (case, Authorization header, status, RFC 6750 error code in the challenge)
    let cases: Vec<(&str, Option<String>, StatusCode, &str)> = vec![
        ("no token", None, StatusCode::UNAUTHORIZED, "Bearer"),
        (
            "another scheme",
            Some("Basic dXNlcjpwYXNz".into()),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            "a malformed header",
            Some("Bearer".into()),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            "not a JWT",
            Some("Bearer not-a-token".into()),
            StatusCode::UNAUTHORIZED,
            "invalid_token",
        ),
        (
            "expired",
            Some(format!(
                "Bearer {}",
                signed(json!({"exp": now - 600, "nbf": now - 1200}))
            )),
            StatusCode::UNAUTHORIZED,
            "invalid_token",
        ),
        (
            "not yet valid",
            Some(format!("Bearer {}", signed(json!({"nbf": now + 600})))),
            StatusCode::UNAUTHORIZED,
            "invalid_token",
        ),
        (
            "another issuer",
            Some(format!(
                "Bearer {}",
                signed(json!({"iss": "https://evil.example"}))
            )),
            StatusCode::UNAUTHORIZED,
            "invalid_token",
        ),
        (
            "another audience",
            Some(format!("Bearer {}", signed(json!({"aud": "another-api"})))),
            StatusCode::UNAUTHORIZED,
            "invalid_token",
        ),
        (
            "no subject",
            Some(format!("Bearer {}", signed(json!({"sub": null})))),
            StatusCode::UNAUTHORIZED,
            "invalid_token",
        ),
        (
            "a bad signature (another key, same kid)",
            Some(format!("Bearer {forged}")),
            StatusCode::UNAUTHORIZED,
            "invalid_token",
        ),
        (
            "a tampered signature",
            Some(format!("Bearer {tampered_signature}")),
            StatusCode::UNAUTHORIZED,
            "invalid_token",
        ),
        (
            "tampered claims",
            Some(format!("Bearer {tampered_claims}")),
            StatusCode::UNAUTHORIZED,
            "invalid_token",
        ),
        (
            "alg none",
            Some(format!("Bearer {}", unsigned(&app))),
            StatusCode::UNAUTHORIZED,
            "invalid_token",
        ),
        (
            "HS256 signed with the public key",
            Some(format!("Bearer {}", hs256_with_public_key(&app))),
            StatusCode::UNAUTHORIZED,
            "invalid_token",
        ),
        (
            "an unknown kid",
            Some(format!("Bearer {unknown_kid}")),
            StatusCode::UNAUTHORIZED,
            "invalid_token",
        ),
    ];
    for (case, authorization, status, code) in cases {
        let answer = app.send(place(authorization.as_deref())).await;
        assert_problem(&answer, status, case);
        let (_, got) = challenge(&app, place(authorization.as_deref())).await;
        assert!(got.starts_with("Bearer"), "{case}: challenge {got:?}");
        if code != "Bearer" {
            assert!(got.contains(&format!("error=\"{code}\"")), "{case}: {got}");
        }
    }
    // The same refusals on the read and cancel routes.
    let id = "0190b2a0-0000-7000-8000-000000000000";
    for request in [
        Request::get(format!("/orders/{id}")).body(Body::empty()),
        Request::post(format!("/orders/{id}/cancel")).body(Body::empty()),
    ] {
        let answer = app.send(request.expect("request")).await;
        assert_problem(&answer, StatusCode::UNAUTHORIZED, "a read without a token");
    }
    assert_eq!(
        app.counts().await,
        (0, 0),
        "a refused request writes nothing"
    );
    // And the good token does get in.
    let (status, _, body) = place_with_token(&app, &good).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
}

#[tokio::test]
async fn a_token_without_the_scope_is_forbidden() {
    let app = spawn_app().await;
    let read_only = app.issuer.token(CUSTOMER, "orders:read").expect("token");
    let answer = place_with_token(&app, &read_only).await;
    assert_problem(&answer, StatusCode::FORBIDDEN, "orders:read only");
    let (_, got) = challenge(&app, place(Some(&format!("Bearer {read_only}")))).await;
    assert!(got.contains("error=\"insufficient_scope\""), "{got}");
    assert!(got.contains("scope=\"orders:write\""), "{got}");
    assert_eq!(app.counts().await, (0, 0));
}

#[tokio::test]
async fn the_customer_is_the_token_subject_and_another_in_the_body_is_forbidden() {
    let app = spawn_app().await;
    let body = json!({"customer_id": "mallory", "lines": [line(1, 100, "EUR")]}).to_string();
    let answer = app.post_json("/orders", body).await;
    assert_problem(
        &answer,
        StatusCode::FORBIDDEN,
        "another customer in the body",
    );
    assert!(
        answer.2["type"]
            .as_str()
            .unwrap_or_default()
            .ends_with("customer-mismatch"),
        "{}",
        answer.2
    );
    assert_eq!(app.counts().await, (0, 0));

    // Left out, the customer is the token's.
    let body = json!({"lines": [line(1, 100, "EUR")]}).to_string();
    let (status, _, placed) = app.post_json("/orders", body).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{placed}");
    let id = placed["order_id"].as_str().expect("id");
    let (_, _, got) = app
        .call(
            Request::get(format!("/orders/{id}"))
                .body(Body::empty())
                .expect("req"),
        )
        .await;
    assert_eq!(got["customer_id"], CUSTOMER);
}

#[tokio::test]
async fn another_customers_order_is_not_found_exactly_as_an_unknown_one() {
    let app = spawn_app().await;
    let (status, _, placed) = app
        .post_json("/orders", order(vec![line(1, 100, "EUR")]))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let id = placed["order_id"].as_str().expect("id");
    let unknown = "0190b2a0-0000-7000-8000-000000000000";
    let bob = format!("Bearer {}", app.token("bob"));
    let as_bob = |request: axum::http::request::Builder| {
        request
            .header(header::AUTHORIZATION, &bob)
            .body(Body::empty())
            .expect("request")
    };
    for (what, path) in [("read", ""), ("cancel", "/cancel")] {
        let method = |uri: String| {
            if path.is_empty() {
                Request::get(uri)
            } else {
                Request::post(uri)
            }
        };
        let (s1, ct1, theirs) = app
            .send(as_bob(method(format!("/orders/{id}{path}"))))
            .await;
        let (s2, ct2, missing) = app
            .send(as_bob(method(format!("/orders/{unknown}{path}"))))
            .await;
        assert_eq!(
            (s1, s2),
            (StatusCode::NOT_FOUND, StatusCode::NOT_FOUND),
            "{what}"
        );
        assert_eq!(ct1, ct2);
        assert_eq!(theirs["type"], missing["type"], "{what}");
        assert_eq!(theirs["title"], missing["title"], "{what}");
    }
    // Bob's cancel changed nothing: still placed, one event.
    let (_, _, order) = app
        .call(
            Request::get(format!("/orders/{id}"))
                .body(Body::empty())
                .expect("req"),
        )
        .await;
    assert_eq!(order["status"], "PLACED");
    assert_eq!(app.counts().await, (1, 1));
}

#[tokio::test]
async fn idempotency_keys_are_each_customers_own() {
    let app = spawn_app().await;
    let keyed = |customer: &str, lines: Vec<Value>| {
        Request::post("/orders")
            .header(header::CONTENT_TYPE, "application/json")
            .header("Idempotency-Key", "shared-key")
            .header(
                header::AUTHORIZATION,
                format!("Bearer {}", app.token(customer)),
            )
            .body(Body::from(
                json!({"customer_id": customer, "lines": lines}).to_string(),
            ))
            .expect("request")
    };
    let (status, _, alice) = app.send(keyed("alice", vec![line(1, 100, "EUR")])).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    // Bob's request with the same key and another body is Bob's own new
    // order, neither a replay of Alice's nor a conflict that would tell him
    // her key was used.
    let (status, _, bob) = app.send(keyed("bob", vec![line(2, 300, "EUR")])).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{bob}");
    assert_ne!(bob["order_id"], alice["order_id"]);
    // Bob's own key, reused with another body, is refused as his own: the
    // answer does not name Alice's order.
    let (status, _, bob_again) = app.send(keyed("bob", vec![line(1, 100, "EUR")])).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{bob_again}");
    assert!(
        !bob_again
            .to_string()
            .contains(alice["order_id"].as_str().expect("id"))
    );
    assert_eq!(app.counts().await, (2, 2));
}

#[tokio::test]
async fn a_rotated_key_is_picked_up_and_a_withdrawn_one_refused() {
    // Refetch on an unknown kid at once, keys trusted for 1 s.
    let app = spawn_app_with(
        &[
            ("JWKS_REFRESH_MIN_INTERVAL_MS", "0"),
            ("JWKS_MAX_AGE_MS", "1000"),
        ],
        |_| order::invoicing::Invoicing::Async,
    )
    .await;
    let old = app.token(CUSTOMER);
    assert_eq!(place_with_token(&app, &old).await.0, StatusCode::ACCEPTED);
    let old_kid = app.issuer.current_key().kid.clone();
    let new_kid = app.issuer.rotate().expect("rotate");
    let new = app.token(CUSTOMER);
    assert_eq!(
        place_with_token(&app, &new).await.0,
        StatusCode::ACCEPTED,
        "the new key {new_kid} is fetched on first sight"
    );
    app.issuer.withdraw(&old_kid);
    // Once the cache is older than its bound, the withdrawn key is gone
    // (asked with a read, which writes nothing either way).
    let read_unknown = || {
        Request::get("/orders/0190b2a0-0000-7000-8000-000000000000")
            .header(header::AUTHORIZATION, format!("Bearer {old}"))
            .body(Body::empty())
            .expect("request")
    };
    testkit::wait::until(
        "the old key to be refused",
        Duration::from_secs(10),
        || async {
            let (status, _, body) = app.send(read_unknown()).await;
            if status == StatusCode::UNAUTHORIZED {
                Ok(body)
            } else {
                Err(format!("still {status}"))
            }
        },
    )
    .await
    .expect("the old key refused");
    let answer = place_with_token(&app, &old).await;
    assert_problem(&answer, StatusCode::UNAUTHORIZED, "a withdrawn key");
    assert_eq!(app.counts().await, (2, 2), "only the two good orders");
}

#[tokio::test]
async fn an_unknown_kid_refetches_the_keys_at_most_once_an_interval() {
    // A long interval: the first unknown kid may refetch, the next may not.
    let app = spawn_app_with(&[("JWKS_REFRESH_MIN_INTERVAL_MS", "600000")], |_| {
        order::invoicing::Invoicing::Async
    })
    .await;
    assert_eq!(
        place_with_token(&app, &app.token(CUSTOMER)).await.0,
        StatusCode::ACCEPTED,
        "first fetch"
    );
    app.issuer.rotate().expect("rotate");
    let answer = place_with_token(&app, &app.token(CUSTOMER)).await;
    assert_problem(
        &answer,
        StatusCode::UNAUTHORIZED,
        "a new kid within the interval is not fetched",
    );
}

#[tokio::test]
async fn a_caller_past_its_rate_limit_gets_429_with_retry_after() {
    let app = spawn_app_with(
        &[("RATE_LIMIT_PER_SECOND", "1"), ("RATE_LIMIT_BURST", "2")],
        |_| order::invoicing::Invoicing::Async,
    )
    .await;
    use tower::ServiceExt;
    let token = format!("Bearer {}", app.token(CUSTOMER));
    let router = app.router();
    let mut statuses = Vec::new();
    let mut retry_after = None;
    for _ in 0..3 {
        let response = router
            .clone()
            .oneshot(place(Some(&token)))
            .await
            .expect("infallible");
        if response.status() == StatusCode::TOO_MANY_REQUESTS {
            retry_after = response
                .headers()
                .get(header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok());
            assert_problem(
                &support::read(response).await,
                StatusCode::TOO_MANY_REQUESTS,
                "429",
            );
            statuses.push(StatusCode::TOO_MANY_REQUESTS);
        } else {
            statuses.push(response.status());
        }
    }
    assert_eq!(
        statuses,
        [
            StatusCode::ACCEPTED,
            StatusCode::ACCEPTED,
            StatusCode::TOO_MANY_REQUESTS
        ]
    );
    assert!(
        retry_after.is_some_and(|s| s >= 1),
        "Retry-After in seconds"
    );
    // Another customer is not limited by the first one's rate.
    let bob = Request::post("/orders")
        .header(header::CONTENT_TYPE, "application/json")
        .header(
            header::AUTHORIZATION,
            format!("Bearer {}", app.token("bob")),
        )
        .body(Body::from(
            json!({"lines": [line(1, 100, "EUR")]}).to_string(),
        ))
        .expect("request");
    let response = router.oneshot(bob).await.expect("infallible");
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    assert_eq!(app.counts().await, (3, 3));
}
