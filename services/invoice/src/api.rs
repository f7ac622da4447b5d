//! The invoice service's HTTP API: read-only views of invoices.
//!
//! - `GET /invoices/{id}`
//! - `GET /invoices?order_id=…`: the order's invoices (zero or one).

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use shared::problem::Problem;
use sqlx::PgPool;
use uuid::Uuid;

use crate::store::{self, Invoice};

#[derive(Clone)]
pub struct AppState {
    pub pool: PgPool,
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/invoices", get(list_invoices))
        .route("/invoices/{id}", get(get_invoice))
        .with_state(state)
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("bad path: {0}")]
    Path(#[from] PathRejection),
    #[error("bad query: {0}")]
    Query(#[from] QueryRejection),
    #[error("invoice {0} not found")]
    NotFound(Uuid),
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
            ApiError::NotFound(id) => {
                Problem::new(StatusCode::NOT_FOUND, "not-found", "No such invoice")
                    .with_detail(format!("invoice {id} does not exist"))
                    .into_response()
            }
            ApiError::Database(e) => Problem::internal_logged(&e).into_response(),
        }
    }
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

async fn list_invoices(
    State(state): State<AppState>,
    query: Result<Query<ByOrder>, QueryRejection>,
) -> Result<Json<Vec<Invoice>>, ApiError> {
    let Query(q) = query?;
    Ok(Json(store::by_order(&state.pool, q.order_id).await?))
}
