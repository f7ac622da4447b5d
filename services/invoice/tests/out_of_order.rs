//! The invoice service's rules for order events arriving in any order, run
//! through its real handler on a real database. A standard SQS queue promises
//! no order, so each of these arrival orders happens in production. The
//! synchronous `POST /invoices` (the order service's sync mode) is one more
//! arrival: it must agree with the events that come after it.

use contracts::events::{Envelope, Event, OrderCancelled, OrderLine, OrderPlaced, ReceivedEvent};
use contracts::money::MinorUnits;
use contracts::topology::Service;
use invoice::domain::InvoiceStatus;
use invoice::handlers::OrderEvents;
use invoice::store;
use platform::consumer::{Handler, HandlerError};
use sqlx::PgPool;
use testkit::postgres::ScratchDatabase;
use uuid::Uuid;

async fn db() -> anyhow::Result<ScratchDatabase> {
    let db = ScratchDatabase::start().await?;
    platform::db::migrate(&db.pool, sqlx::migrate!("./migrations")).await?;
    Ok(db)
}

fn placed(order_id: Uuid) -> anyhow::Result<ReceivedEvent> {
    let event = Event::OrderPlaced(OrderPlaced {
        order_id,
        customer_id: "c-1".into(),
        currency: "EUR".parse()?,
        lines: vec![OrderLine {
            sku: "SKU-1".into(),
            quantity: 2,
            unit_price_minor: MinorUnits::try_from(250)?,
        }],
        total_minor: MinorUnits::try_from(500)?,
    });
    Ok(ReceivedEvent::decode(Envelope::new(
        Service::Order,
        &event,
        &order_id.to_string(),
    ))?)
}

fn cancelled(order_id: Uuid) -> anyhow::Result<ReceivedEvent> {
    let event = Event::OrderCancelled(OrderCancelled {
        order_id,
        customer_id: "c-1".into(),
    });
    Ok(ReceivedEvent::decode(Envelope::new(
        Service::Order,
        &event,
        &order_id.to_string(),
    ))?)
}

/// Runs the handler in its own committed transaction, as the consumer does.
async fn deliver(pool: &PgPool, event: &ReceivedEvent) -> Result<(), HandlerError> {
    let mut tx = pool.begin().await?;
    OrderEvents.handle(event, &mut tx).await?;
    tx.commit().await?;
    Ok(())
}

/// The event types the invoice service has written to its outbox, oldest first.
async fn emitted(pool: &PgPool, order_id: Uuid) -> anyhow::Result<Vec<String>> {
    Ok(sqlx::query_scalar(
        "SELECT event_type FROM outbox WHERE payload->>'subject' = $1 ORDER BY created_at",
    )
    .bind(order_id.to_string())
    .fetch_all(pool)
    .await?)
}

#[tokio::test]
async fn a_cancellation_that_overtakes_its_order_means_no_invoice_is_ever_issued()
-> anyhow::Result<()> {
    let db = db().await?;
    let order = Uuid::now_v7();
    deliver(&db.pool, &cancelled(order)?).await?;
    deliver(&db.pool, &placed(order)?).await?;
    assert!(store::by_order(&db.pool, order).await?.is_empty());
    assert!(
        emitted(&db.pool, order).await?.is_empty(),
        "nothing to announce"
    );
    Ok(())
}

#[tokio::test]
async fn a_cancellation_after_the_invoice_voids_it_once() -> anyhow::Result<()> {
    let db = db().await?;
    let order = Uuid::now_v7();
    deliver(&db.pool, &placed(order)?).await?;
    deliver(&db.pool, &cancelled(order)?).await?;
    // A second cancellation event (not a redelivery: another event id).
    deliver(&db.pool, &cancelled(order)?).await?;
    let invoices = store::by_order(&db.pool, order).await?;
    assert_eq!(invoices.len(), 1);
    assert_eq!(invoices[0].status.0, InvoiceStatus::Voided);
    assert_eq!(invoices[0].total_minor, 500);
    assert_eq!(
        emitted(&db.pool, order).await?,
        ["InvoiceIssued", "InvoiceVoided"]
    );
    Ok(())
}

#[tokio::test]
async fn the_same_order_placed_twice_under_two_event_ids_is_invoiced_once() -> anyhow::Result<()> {
    // The inbox catches a redelivered event by its id; two events about one
    // order (a producer that published twice) are caught by the domain.
    let db = db().await?;
    let order = Uuid::now_v7();
    deliver(&db.pool, &placed(order)?).await?;
    deliver(&db.pool, &placed(order)?).await?;
    assert_eq!(store::by_order(&db.pool, order).await?.len(), 1);
    assert_eq!(emitted(&db.pool, order).await?, ["InvoiceIssued"]);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_and_its_cancellation_handled_at_once_never_leave_an_issued_invoice()
-> anyhow::Result<()> {
    // Two poll tasks take the two events of one order at the same moment.
    let db = db().await?;
    let mut orders = Vec::new();
    for _ in 0..40 {
        let order = Uuid::now_v7();
        let (placed, cancelled) = (placed(order)?, cancelled(order)?);
        let (a, b) = tokio::join!(deliver(&db.pool, &placed), deliver(&db.pool, &cancelled));
        a?;
        b?;
        orders.push(order);
    }
    for order in orders {
        let invoices = store::by_order(&db.pool, order).await?;
        assert!(
            invoices.iter().all(|i| i.status.0 == InvoiceStatus::Voided),
            "order {order} was cancelled but keeps an issued invoice"
        );
    }
    Ok(())
}

/// The caller the edge lets through: the order service's client credential.
fn order_service(scope: &str) -> platform::auth::Principal {
    platform::auth::Principal {
        subject: "order-service".into(),
        scopes: scope.split_whitespace().map(str::to_string).collect(),
    }
}

/// `POST /invoices` with `order` through the real router: status and body.
async fn invoice_synchronously(
    pool: &PgPool,
    order: &OrderPlaced,
) -> anyhow::Result<(u16, serde_json::Value)> {
    invoice_as(pool, order, order_service("invoices:write")).await
}

/// `POST /invoices` by `caller` (as the edge hands it to the route).
async fn invoice_as(
    pool: &PgPool,
    order: &OrderPlaced,
    caller: platform::auth::Principal,
) -> anyhow::Result<(u16, serde_json::Value)> {
    use tower::ServiceExt;
    let mut request = axum::http::Request::post("/invoices")
        .header("content-type", "application/json")
        .body(axum::body::Body::from(serde_json::to_vec(order)?))?;
    request.extensions_mut().insert(caller);
    let response = invoice::api::router(invoice::api::AppState { pool: pool.clone() })
        .oneshot(request)
        .await?;
    let status = response.status().as_u16();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX).await?;
    Ok((status, serde_json::from_slice(&bytes)?))
}

fn order_of(event: &ReceivedEvent) -> anyhow::Result<OrderPlaced> {
    match &event.event {
        Event::OrderPlaced(order) => Ok(order.clone()),
        other => anyhow::bail!("not an OrderPlaced: {other:?}"),
    }
}

#[tokio::test]
async fn an_order_invoiced_synchronously_is_not_invoiced_again_by_its_event() -> anyhow::Result<()>
{
    let db = db().await?;
    let order_id = Uuid::now_v7();
    let event = placed(order_id)?;
    let order = order_of(&event)?;

    let (status, first) = invoice_synchronously(&db.pool, &order).await?;
    assert_eq!(status, 201, "{first}");
    assert_eq!(first["total_minor"], 500);
    let (status, again) = invoice_synchronously(&db.pool, &order).await?;
    assert_eq!(status, 200, "a retry answers the invoice it made: {again}");
    assert_eq!(again["invoice_id"], first["invoice_id"]);

    deliver(&db.pool, &event).await?;
    assert_eq!(store::by_order(&db.pool, order_id).await?.len(), 1);
    assert_eq!(emitted(&db.pool, order_id).await?, ["InvoiceIssued"]);
    Ok(())
}

#[tokio::test]
async fn a_synchronous_invoice_for_an_order_cancelled_first_is_refused() -> anyhow::Result<()> {
    let db = db().await?;
    let order_id = Uuid::now_v7();
    deliver(&db.pool, &cancelled(order_id)?).await?;

    let (status, problem) = invoice_synchronously(&db.pool, &order_of(&placed(order_id)?)?).await?;
    assert_eq!(status, 409, "{problem}");
    assert_eq!(problem["type"], "/problems/order-cancelled");
    assert!(store::by_order(&db.pool, order_id).await?.is_empty());
    assert!(emitted(&db.pool, order_id).await?.is_empty());
    Ok(())
}

#[tokio::test]
async fn only_the_service_credential_may_invoice_and_only_an_operator_may_read()
-> anyhow::Result<()> {
    let db = db().await?;
    let order_id = Uuid::now_v7();
    let order = order_of(&placed(order_id)?)?;
    // A customer's token, or none at all, invoices nothing.
    let (status, problem) = invoice_as(&db.pool, &order, order_service("orders:write")).await?;
    assert_eq!(status, 403, "{problem}");
    assert_eq!(problem["status"], 403);
    assert!(store::by_order(&db.pool, order_id).await?.is_empty());

    use tower::ServiceExt;
    let read = |scope: Option<&str>| {
        let mut request = axum::http::Request::get(format!("/invoices?order_id={order_id}"))
            .body(axum::body::Body::empty())
            .expect("request");
        if let Some(scope) = scope {
            request.extensions_mut().insert(order_service(scope));
        }
        invoice::api::router(invoice::api::AppState {
            pool: db.pool.clone(),
        })
        .oneshot(request)
    };
    assert_eq!(read(None).await?.status(), 401, "no caller");
    assert_eq!(read(Some("orders:read")).await?.status(), 403, "a customer");
    assert_eq!(read(Some("operator")).await?.status(), 200, "an operator");
    Ok(())
}
