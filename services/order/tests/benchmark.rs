//! The benchmark's entry into the order service places an order as
//! `POST /orders` does: the order and its one `OrderPlaced` in the outbox.

use order::benchmark::{self, BenchmarkError};
use serde_json::json;
use testkit::postgres::ScratchDatabase;

#[tokio::test]
async fn the_benchmark_entry_places_an_order_with_its_event_and_refuses_an_invalid_one()
-> anyhow::Result<()> {
    let db = ScratchDatabase::start().await?;
    benchmark::migrate(&db.pool).await?;
    let body = json!({
        "customer_id": "bench-1",
        "lines": [{"sku": "SKU-1", "quantity": 2, "unit_price_minor": 500, "currency": "EUR"}]
    });
    let id = benchmark::place_order(&db.pool, &body).await?;
    let (status, event_type): (String, String) = sqlx::query_as(
        "SELECT o.status, x.event_type FROM orders o JOIN outbox x ON x.payload->>'subject' = o.id::text \
         WHERE o.id = $1",
    )
    .bind(id)
    .fetch_one(&db.pool)
    .await?;
    assert_eq!(
        (status.as_str(), event_type.as_str()),
        ("PLACED", "OrderPlaced")
    );

    let invalid = json!({"customer_id": "bench-1", "lines": []});
    let refused = benchmark::place_order(&db.pool, &invalid).await;
    assert!(
        matches!(refused, Err(BenchmarkError::Invalid(ref why)) if why.contains("lines")),
        "{refused:?}"
    );
    Ok(())
}
