//! The order body parser at the edge (the JSON extractor, the caller's
//! customer, the domain's parse), on arbitrary and mutated bodies: every
//! refusal is a 4xx problem, nothing panics, nothing answers 5xx.

use axum::body::Body;
use axum::extract::FromRequest;
use axum::http::{Request, header};
use axum::response::IntoResponse;
use order::api::{ApiJson, OrderBody};
use order::domain::NewOrder;
use platform::auth::Principal;
use proptest::prelude::*;

fn caller() -> Principal {
    Principal {
        subject: "c-1".into(),
        scopes: ["orders:write".to_string()].into_iter().collect(),
    }
}

/// Parses `body` as `POST /orders` does; the status of a refusal.
fn parse(body: Vec<u8>) -> Option<u16> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let request = Request::post("/orders")
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body))
            .expect("request");
        let refused = |e: order::api::ApiError| Some(e.into_response().status().as_u16());
        let ApiJson(body) = match ApiJson::<OrderBody>::from_request(request, &()).await {
            Ok(body) => body,
            Err(e) => return refused(e),
        };
        let request = match body.for_caller(&caller()) {
            Ok(request) => request,
            Err(e) => return refused(e),
        };
        match NewOrder::try_from(request) {
            Ok(_) => None,
            Err(errors) => refused(order::api::ApiError::Validation(errors)),
        }
    })
}

const VALID: &str = r#"{"customer_id":"c-1","lines":[{"sku":"SKU-1","quantity":2,"unit_price_minor":1999,"currency":"EUR"}]}"#;

fn assert_client_error(status: Option<u16>) -> Result<(), TestCaseError> {
    if let Some(status) = status {
        prop_assert!((400..500).contains(&status), "answered {status}");
    }
    Ok(())
}

proptest! {
    #[test]
    fn arbitrary_bytes_are_refused_with_a_4xx(body in prop::collection::vec(any::<u8>(), 0..512)) {
        assert_client_error(parse(body))?;
    }

    #[test]
    fn mutated_orders_are_accepted_or_refused_with_a_4xx(
        at in any::<prop::sample::Index>(),
        replacement in "[0-9a-zA-Z\"{}\\[\\],:.\\-eE ]{0,6}",
    ) {
        let i = at.index(VALID.len());
        let mutated = format!("{}{}{}", &VALID[..i], replacement, &VALID[(i + 1).min(VALID.len())..]);
        assert_client_error(parse(mutated.into_bytes()))?;
    }

    #[test]
    fn any_line_values_are_accepted_or_refused_with_a_4xx(
        quantity in any::<i64>(),
        price in any::<i64>(),
        currency in "[A-Za-z]{0,5}",
        sku in ".{0,80}",
        lines in 0usize..4,
    ) {
        let line = serde_json::json!({"sku": sku, "quantity": quantity, "unit_price_minor": price, "currency": currency});
        let body = serde_json::json!({"lines": vec![line; lines]});
        assert_client_error(parse(body.to_string().into_bytes()))?;
    }
}
