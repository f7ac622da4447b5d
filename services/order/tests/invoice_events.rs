//! The order service's rules for invoice events arriving in any order, run
//! through its real handler on a real database.

use contracts::events::{Envelope, Event, InvoiceIssued, InvoiceVoided, ReceivedEvent};
use contracts::money::MinorUnits;
use contracts::topology::Service;
use order::domain::{NewOrder, OrderStatus, PlaceOrderRequest};
use order::handlers::InvoiceEvents;
use order::invoicing::Invoicing;
use order::{store, usecases};
use platform::consumer::{Handler, HandlerError};
use sqlx::PgPool;
use testkit::postgres::ScratchDatabase;
use uuid::Uuid;

async fn db() -> anyhow::Result<ScratchDatabase> {
    let db = ScratchDatabase::start().await?;
    platform::db::migrate(&db.pool, sqlx::migrate!("./migrations")).await?;
    Ok(db)
}

async fn place(pool: &PgPool) -> anyhow::Result<Uuid> {
    let request: PlaceOrderRequest = serde_json::from_value(serde_json::json!({
        "customer_id": "c-1",
        "lines": [{"sku": "SKU-1", "quantity": 2, "unit_price_minor": 250, "currency": "EUR"}]
    }))?;
    let order = NewOrder::try_from(request).map_err(|e| anyhow::anyhow!("{e:?}"))?;
    Ok(usecases::place_order(pool, &Invoicing::Async, &order, None)
        .await?
        .order_id())
}

fn invoice_event(event: Event) -> anyhow::Result<ReceivedEvent> {
    let correlation = event.order_id().to_string();
    Ok(ReceivedEvent::decode(Envelope::new(
        Service::Invoice,
        &event,
        &correlation,
    ))?)
}

fn issued(order_id: Uuid, invoice_id: Uuid) -> anyhow::Result<ReceivedEvent> {
    invoice_event(Event::InvoiceIssued(InvoiceIssued {
        invoice_id,
        order_id,
        customer_id: "c-1".into(),
        total_minor: MinorUnits::try_from(500)?,
        currency: "EUR".parse()?,
    }))
}

fn voided(order_id: Uuid, invoice_id: Uuid) -> anyhow::Result<ReceivedEvent> {
    invoice_event(Event::InvoiceVoided(InvoiceVoided {
        invoice_id,
        order_id,
        customer_id: "c-1".into(),
    }))
}

async fn deliver(pool: &PgPool, event: &ReceivedEvent) -> Result<(), HandlerError> {
    let mut tx = pool.begin().await?;
    InvoiceEvents.handle(event, &mut tx).await?;
    tx.commit().await?;
    Ok(())
}

#[tokio::test]
async fn an_invoice_for_an_order_not_known_here_is_retried_not_dropped() -> anyhow::Result<()> {
    let db = db().await?;
    let unknown = Uuid::now_v7();
    let outcome = deliver(&db.pool, &issued(unknown, Uuid::now_v7())?).await;
    assert!(
        matches!(outcome, Err(HandlerError::Retry(ref reason)) if reason.contains(&unknown.to_string())),
        "{outcome:?}"
    );
    Ok(())
}

#[tokio::test]
async fn a_void_that_overtakes_the_issue_leaves_a_cancelled_order_with_a_voided_invoice()
-> anyhow::Result<()> {
    let db = db().await?;
    let order = place(&db.pool).await?;
    usecases::cancel_order(&db.pool, order, usecases::Owner::Any).await?;
    let invoice = Uuid::now_v7();
    deliver(&db.pool, &voided(order, invoice)?).await?;
    deliver(&db.pool, &issued(order, invoice)?).await?;
    let view = store::get(&db.pool, order).await?.expect("order");
    assert_eq!(view.status, OrderStatus::Cancelled);
    let summary = view.invoice.expect("invoice known");
    assert_eq!(summary.invoice_id, invoice);
    assert!(summary.voided, "the late issue does not un-void it");
    assert_eq!(summary.total_minor, 500);
    Ok(())
}

#[tokio::test]
async fn an_invoice_issued_after_the_cancellation_keeps_the_order_cancelled() -> anyhow::Result<()>
{
    let db = db().await?;
    let order = place(&db.pool).await?;
    usecases::cancel_order(&db.pool, order, usecases::Owner::Any).await?;
    deliver(&db.pool, &issued(order, Uuid::now_v7())?).await?;
    let view = store::get(&db.pool, order).await?.expect("order");
    assert_eq!(view.status, OrderStatus::Cancelled);
    assert!(!view.invoice.expect("invoice known").voided);
    Ok(())
}

#[tokio::test]
async fn an_invoice_issued_for_a_placed_order_makes_it_invoiced() -> anyhow::Result<()> {
    let db = db().await?;
    let order = place(&db.pool).await?;
    deliver(&db.pool, &issued(order, Uuid::now_v7())?).await?;
    let view = store::get(&db.pool, order).await?.expect("order");
    assert_eq!(view.status, OrderStatus::Invoiced);
    Ok(())
}
