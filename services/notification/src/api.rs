//! The notification service's HTTP API: `GET /notifications?order_id=…`,
//! answered by `crate::usecases::notifications_of_order`; errors are
//! problem+json, with internal causes logged here and never shown. The route
//! is behind the platform's edge and needs the `operator` scope.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use platform::auth::{AuthError, Principal, scopes};
use platform::problem::Problem;
use serde::Deserialize;
use sqlx::PgPool;
use uuid::Uuid;

use crate::store::NotificationView;
use crate::usecases::{self, ReadError};

#[derive(Clone)]
pub struct AppState {
    pub pool: PgPool,
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/notifications", get(list_notifications))
        .with_state(state)
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error(transparent)]
    Auth(#[from] AuthError),
    #[error("bad query: {0}")]
    Query(#[from] QueryRejection),
    #[error(transparent)]
    Read(#[from] ReadError),
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match self {
            ApiError::Auth(e) => e.into_response(),
            ApiError::Query(r) => {
                Problem::invalid_query("?order_id=<uuid>", r.body_text()).into_response()
            }
            ApiError::Read(e @ ReadError::Database(_)) => {
                Problem::internal_logged(&e).into_response()
            }
        }
    }
}

#[derive(Deserialize)]
struct ByOrder {
    order_id: Uuid,
}

/// The notifications sent about an order (support and operations).
#[utoipa::path(
    get,
    path = "/notifications",
    tag = "notifications",
    operation_id = "listNotifications",
    params(("order_id" = Uuid, Query, description = "The order whose notifications to list.")),
    responses(
        (status = 200, description = "The order's notifications, one per event.", body = Vec<NotificationView>),
        (status = 400, description = "`invalid-query`: the query is not `?order_id=<uuid>`.", body = Problem, content_type = "application/problem+json"),
        (status = 500, description = "`internal-error`: anything unexpected; the cause is logged, never shown.", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["operator"])),
)]
async fn list_notifications(
    State(state): State<AppState>,
    principal: Principal,
    query: Result<Query<ByOrder>, QueryRejection>,
) -> Result<Json<Vec<NotificationView>>, ApiError> {
    principal.require(scopes::OPERATOR)?;
    let Query(q) = query?;
    Ok(Json(
        usecases::notifications_of_order(&state.pool, q.order_id).await?,
    ))
}
