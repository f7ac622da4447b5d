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
//!   of transaction, as the event handler (`crate::usecases::invoice_now`),
//!   so the later `OrderPlaced` issues nothing more.
//!
//! Every route is behind the platform's edge (`platform::edge`). Reading
//! needs the `operator` scope (support and operations; customers see their
//! order, which carries its invoice); `POST /invoices` needs `invoices:write`,
//! the order service's own client credential.
//!
//! The routes call `crate::usecases` and map their errors to RFC 9457
//! problem+json answers: a database that does not answer is a `503`,
//! anything unexpected a `500` whose cause is logged here and never shown.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use contracts::events::OrderPlaced;
use platform::auth::{AuthError, Principal, scopes};
use platform::problem::Problem;
use serde::Deserialize;
use sqlx::PgPool;
use uuid::Uuid;

use crate::store::Invoice;
use crate::usecases::{self, InvoiceNowError, InvoicedNow, InvoicingError, ReadError};

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
    #[error(transparent)]
    Auth(#[from] AuthError),
    #[error("bad path: {0}")]
    Path(#[from] PathRejection),
    #[error("bad query: {0}")]
    Query(#[from] QueryRejection),
    #[error("bad request body: {0}")]
    Body(#[from] JsonRejection),
    #[error(transparent)]
    Read(#[from] ReadError),
    #[error(transparent)]
    InvoiceNow(#[from] InvoiceNowError),
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match self {
            ApiError::Auth(e) => e.into_response(),
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
            ApiError::InvoiceNow(InvoiceNowError::Cancelled(id)) => Problem::new(
                StatusCode::CONFLICT,
                "order-cancelled",
                "The order was cancelled before it was invoiced",
            )
            .with_detail(format!("order {id} was cancelled; no invoice is issued"))
            .into_response(),
            ApiError::InvoiceNow(InvoiceNowError::Invoicing(InvoicingError::Unpublishable(e))) => {
                Problem::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "cannot-invoice",
                    "The order cannot be invoiced",
                )
                .with_detail(e.to_string())
                .into_response()
            }
            ApiError::InvoiceNow(InvoiceNowError::Invoicing(InvoicingError::Database(e)))
            | ApiError::Read(ReadError::Database(e)) => database(&e),
            ApiError::InvoiceNow(InvoiceNowError::NotFound(id))
            | ApiError::Read(ReadError::NotFound(id)) => {
                Problem::new(StatusCode::NOT_FOUND, "not-found", "No such invoice")
                    .with_detail(format!("invoice {id} does not exist"))
                    .into_response()
            }
        }
    }
}

/// The answer to a database error: 503, worth a retry, while the database
/// does not answer; otherwise 500, with the cause logged.
fn database(e: &sqlx::Error) -> Response {
    if !platform::db::is_unavailable(e) {
        return Problem::internal_logged(e).into_response();
    }
    tracing::warn!(reason = %e, "the database does not answer");
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

/// Read an invoice (support and operations).
#[utoipa::path(
    get,
    path = "/invoices/{id}",
    tag = "invoices",
    operation_id = "getInvoice",
    params(("id" = Uuid, Path, description = "The invoice's id.")),
    responses(
        (status = 200, description = "The invoice.", body = Invoice),
        (status = 404, description = "`not-found`: no such invoice (or the id is not a UUID).", body = Problem, content_type = "application/problem+json"),
        (status = 500, description = "`internal-error`: anything unexpected; the cause is logged, never shown.", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "`unavailable`: the invoice service's database does not answer; try again later.", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["operator"])),
)]
async fn get_invoice(
    State(state): State<AppState>,
    principal: Principal,
    id: Result<Path<Uuid>, PathRejection>,
) -> Result<Json<Invoice>, ApiError> {
    principal.require(scopes::OPERATOR)?;
    let Path(id) = id?;
    Ok(Json(usecases::get_invoice(&state.pool, id).await?))
}

/// Invoice an order now (the order service's synchronous mode).
///
/// Services never need it: invoices come from `OrderPlaced` events. It runs
/// the same rules, in the same kind of transaction, as the event handler, so
/// a retry (or the later event) issues nothing more.
#[utoipa::path(
    post,
    path = "/invoices",
    tag = "invoices",
    operation_id = "invoiceOrder",
    request_body(content = OrderPlaced, content_type = "application/json",
        description = "The order, as the `OrderPlaced` event (version 2) carries it."),
    responses(
        (status = 201, description = "A new invoice was issued for the order.", body = Invoice),
        (status = 200, description = "The order already had this invoice: nothing was issued.", body = Invoice),
        (status = 400, description = "`invalid-body`: the body is not valid JSON.", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not-found`: the invoice was committed but could not be read back; retrying answers it.", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`order-cancelled`: the order was cancelled before it was invoiced; no invoice is issued.", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "`invalid-body`: the body is too large.", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "`invalid-body`: the body is not `application/json`.", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`invalid-body`: the JSON is not an order as `OrderPlaced` carries it; or `cannot-invoice`: the order cannot be invoiced (its `InvoiceIssued` event cannot be written as it is, e.g. too large).", body = Problem, content_type = "application/problem+json"),
        (status = 500, description = "`internal-error`: anything unexpected; the cause is logged, never shown.", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "`unavailable`: the invoice service's database does not answer; try again later.", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["invoices:write"])),
)]
#[tracing::instrument(skip_all, fields(order_id = tracing::field::Empty))]
async fn invoice_order(
    State(state): State<AppState>,
    principal: Principal,
    body: Result<Json<OrderPlaced>, JsonRejection>,
) -> Result<Response, ApiError> {
    principal.require(scopes::INVOICES_WRITE)?;
    let Json(order) = body?;
    tracing::Span::current().record("order_id", tracing::field::display(order.order_id));
    let InvoicedNow { invoice, new } = usecases::invoice_now(&state.pool, &order).await?;
    let status = if new {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(invoice)).into_response())
}

/// The invoices of an order: none, or its one (support and operations).
#[utoipa::path(
    get,
    path = "/invoices",
    tag = "invoices",
    operation_id = "listInvoices",
    params(("order_id" = Uuid, Query, description = "The order whose invoices to list.")),
    responses(
        (status = 200, description = "The order's invoices: none, or its one.", body = Vec<Invoice>),
        (status = 400, description = "`invalid-query`: the query is not `?order_id=<uuid>`.", body = Problem, content_type = "application/problem+json"),
        (status = 500, description = "`internal-error`: anything unexpected; the cause is logged, never shown.", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "`unavailable`: the invoice service's database does not answer; try again later.", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["operator"])),
)]
async fn list_invoices(
    State(state): State<AppState>,
    principal: Principal,
    query: Result<Query<ByOrder>, QueryRejection>,
) -> Result<Json<Vec<Invoice>>, ApiError> {
    principal.require(scopes::OPERATOR)?;
    let Query(q) = query?;
    Ok(Json(
        usecases::invoices_of_order(&state.pool, q.order_id).await?,
    ))
}

#[cfg(test)]
mod tests {
    use platform::outbox::OutboxError;

    use super::*;

    fn status(e: impl Into<ApiError>) -> StatusCode {
        e.into().into_response().status()
    }

    #[test]
    fn each_use_case_error_gets_its_status() {
        let database = |e| InvoiceNowError::Invoicing(InvoicingError::Database(e));
        assert_eq!(
            status(database(sqlx::Error::PoolTimedOut)),
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(
            status(ReadError::Database(sqlx::Error::PoolClosed)),
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(
            status(database(sqlx::Error::RowNotFound)),
            StatusCode::INTERNAL_SERVER_ERROR
        );
        let too_large = OutboxError::TooLarge {
            event_type: "InvoiceIssued".into(),
            size: 300_000,
        };
        assert_eq!(
            status(InvoiceNowError::Invoicing(InvoicingError::Unpublishable(
                too_large
            ))),
            StatusCode::UNPROCESSABLE_ENTITY
        );
        assert_eq!(
            status(InvoiceNowError::Cancelled(Uuid::nil())),
            StatusCode::CONFLICT
        );
        assert_eq!(
            status(ReadError::NotFound(Uuid::nil())),
            StatusCode::NOT_FOUND
        );
    }
}
