//! The invoice service's HTTP API.
//!
//! - `GET /invoices/{id}`
//! - `GET /invoices?order_id=…`: the order's invoices (zero or one).
//! - `POST /invoices`: invoice an order *synchronously*. The services never
//!   need it: invoices come from `OrderPlaced` events. It exists for the order
//!   service's synchronous mode, the anti-pattern the `sync-vs-async` chaos
//!   experiment measures (see `order::invoicing`). The body is the order as
//!   `OrderPlaced` carries it; the answer is `201` with a new invoice, `200`
//!   with the one the order already has (so a retry is safe), or `409` when
//!   the order was cancelled first. It runs the same rules, in the same kind
//!   of transaction, as the event handler, so the later `OrderPlaced` issues
//!   nothing more.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use contracts::events::OrderPlaced;
use platform::consumer::HandlerError;
use platform::problem::Problem;
use serde::Deserialize;
use sqlx::PgPool;
use uuid::Uuid;

use crate::handlers::{self, Issued};
use crate::store::{self, Invoice};

#[derive(Clone)]
pub struct AppState {
    pub pool: PgPool,
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/invoices", get(list_invoices).post(invoice_order))
        .route("/invoices/{id}", get(get_invoice))
        .with_state(state)
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("bad path: {0}")]
    Path(#[from] PathRejection),
    #[error("bad query: {0}")]
    Query(#[from] QueryRejection),
    #[error("bad request body: {0}")]
    Body(#[from] JsonRejection),
    #[error("invoice {0} not found")]
    NotFound(Uuid),
    #[error("order {0} was cancelled before it was invoiced")]
    Cancelled(Uuid),
    #[error("cannot invoice: {0}")]
    Invoicing(HandlerError),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match self {
            ApiError::Path(r) => {
                Problem::new(StatusCode::NOT_FOUND, "not-found", "No such invoice")
                    .with_detail(r.body_text())
                    .into_response()
            }
            ApiError::Query(r) => {
                Problem::invalid_query("?order_id=<uuid>", r.body_text()).into_response()
            }
            ApiError::Body(r) => Problem::new(
                r.status(),
                "invalid-body",
                "The body is not an order as OrderPlaced carries it",
            )
            .with_detail(r.body_text())
            .into_response(),
            ApiError::Cancelled(id) => Problem::new(
                StatusCode::CONFLICT,
                "order-cancelled",
                "The order was cancelled before it was invoiced",
            )
            .with_detail(format!("order {id} was cancelled; no invoice is issued"))
            .into_response(),
            ApiError::Invoicing(HandlerError::Reject(reason)) => Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "cannot-invoice",
                "The order cannot be invoiced",
            )
            .with_detail(reason)
            .into_response(),
            ApiError::Invoicing(e @ HandlerError::Retry(_)) => {
                Problem::internal_logged(&e).into_response()
            }
            ApiError::Invoicing(HandlerError::Unavailable(reason)) => unavailable(&reason),
            ApiError::Database(e) if platform::db::is_unavailable(&e) => unavailable(&e),
            ApiError::NotFound(id) => {
                Problem::new(StatusCode::NOT_FOUND, "not-found", "No such invoice")
                    .with_detail(format!("invoice {id} does not exist"))
                    .into_response()
            }
            ApiError::Database(e) => Problem::internal_logged(&e).into_response(),
        }
    }
}

/// The answer while the database does not answer: 503, worth a retry.
fn unavailable(reason: &dyn std::fmt::Display) -> Response {
    tracing::warn!(%reason, "the database does not answer");
    Problem::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "unavailable",
        "The invoice service cannot answer right now",
    )
    .with_detail("its database does not answer; try again later")
    .into_response()
}

#[derive(Deserialize)]
struct ByOrder {
    order_id: Uuid,
}

async fn get_invoice(
    State(state): State<AppState>,
    id: Result<Path<Uuid>, PathRejection>,
) -> Result<Json<Invoice>, ApiError> {
    let Path(id) = id?;
    store::get(&state.pool, id)
        .await?
        .map(Json)
        .ok_or(ApiError::NotFound(id))
}

/// Invoices an order now, with the rules and the lock of the event handler.
#[tracing::instrument(skip_all, fields(order_id = tracing::field::Empty))]
async fn invoice_order(
    State(state): State<AppState>,
    body: Result<Json<OrderPlaced>, JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(order) = body?;
    tracing::Span::current().record("order_id", tracing::field::display(order.order_id));
    let mut tx = state.pool.begin().await?;
    store::lock_order(&mut tx, order.order_id).await?;
    let issued = handlers::issue(&mut tx, &order, &order.order_id.to_string())
        .await
        .map_err(ApiError::Invoicing)?;
    tx.commit().await?;
    let status = match issued {
        Issued::New(_) => StatusCode::CREATED,
        Issued::AlreadyInvoiced => StatusCode::OK,
        Issued::Cancelled => return Err(ApiError::Cancelled(order.order_id)),
    };
    let invoice = store::by_order(&state.pool, order.order_id)
        .await?
        .pop()
        .ok_or(ApiError::NotFound(order.order_id))?;
    Ok((status, Json(invoice)).into_response())
}

async fn list_invoices(
    State(state): State<AppState>,
    query: Result<Query<ByOrder>, QueryRejection>,
) -> Result<Json<Vec<Invoice>>, ApiError> {
    let Query(q) = query?;
    Ok(Json(store::by_order(&state.pool, q.order_id).await?))
}
