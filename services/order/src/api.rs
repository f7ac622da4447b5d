//! The order service's HTTP API.
//!
//! Every route is behind the platform's edge (`platform::edge`): the caller
//! is the bearer token's subject (`Principal`), and the customer of the
//! orders it may place, read and cancel. Placing and cancelling need the
//! scope `orders:write`, reading `orders:read`. Another customer's order is
//! answered `404`, exactly as an unknown one.
//!
//! - `POST /orders`: place an order for the caller. The body's `customer_id`
//!   may be left out; one that differs from the token's subject is refused
//!   with `403` (`customer-mismatch`) and nothing is written; `202 Accepted` once the order and its
//!   `OrderPlaced` event are committed together (in the synchronous mode of
//!   `crate::invoicing`, only after the invoice service invoiced it; `503`
//!   and nothing placed when it could not; `crate::usecases::place_order`
//!   decides). An `Idempotency-Key` header
//!   makes a retry safe: the same key and body answer the first order again
//!   (with `Idempotent-Replayed: true`) and emit nothing; the same key with
//!   another body is refused with 422. Keys are the customer's own: another
//!   customer's key of the same name is another key.
//! - `GET /orders/{id}`: the order, with its invoice once known.
//! - `POST /orders/{id}/cancel`: cancel; emits `OrderCancelled` once.
//!
//! The routes parse the request into domain types, call `crate::usecases`,
//! and turn the outcome into an answer. Every error is an RFC 9457
//! problem+json answer; internal errors are logged here, at the edge, and
//! never shown to the client.

use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::extract::{FromRequest, FromRequestParts, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use platform::auth::{AuthError, Principal, scopes};
use platform::problem::Problem;
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use uuid::Uuid;

use crate::domain::{
    FieldError, IdempotencyKey, LineRequest, NewOrder, OrderStatus, PlaceOrderRequest,
};
use crate::invoicing::{Invoicing, InvoicingError};
use crate::store::OrderView;
use crate::usecases::{
    self, CancelOrderError, GetOrderError, Idempotency, Owner, PlaceOrderError, Placed,
};

/// The request header that makes `POST /orders` safe to retry.
pub const IDEMPOTENCY_KEY: &str = "idempotency-key";
/// Set on an answer that repeats the one given to an earlier request.
pub const IDEMPOTENT_REPLAYED: &str = "idempotent-replayed";

/// The largest request body accepted.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

#[derive(Clone)]
pub struct AppState {
    pub pool: PgPool,
    pub invoicing: Invoicing,
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/orders", post(place_order))
        .route("/orders/{id}", get(get_order))
        .route("/orders/{id}/cancel", post(cancel_order))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}

/// Every way a request can fail.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error(transparent)]
    Auth(#[from] AuthError),
    #[error("the body names customer {body}, the token {token_subject}")]
    CustomerMismatch { body: String, token_subject: String },
    #[error("invalid order")]
    Validation(Vec<FieldError>),
    #[error("bad request body: {0}")]
    Body(#[from] JsonRejection),
    #[error("bad path: {0}")]
    Path(#[from] PathRejection),
    #[error("invalid Idempotency-Key header: {0}")]
    IdempotencyKey(String),
    #[error(transparent)]
    Place(#[from] PlaceOrderError),
    #[error(transparent)]
    Cancel(#[from] CancelOrderError),
    #[error(transparent)]
    Get(#[from] GetOrderError),
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match self {
            ApiError::Auth(e) => e.into_response(),
            ApiError::CustomerMismatch {
                body,
                token_subject,
            } => {
                tracing::info!(%body, %token_subject, "an order for another customer was refused");
                Problem::new(
                    StatusCode::FORBIDDEN,
                    "customer-mismatch",
                    "An order can be placed only for the token's own customer",
                )
                .with_detail("leave customer_id out, or give the token's subject")
                .into_response()
            }
            ApiError::Validation(errors) => Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "validation-error",
                "The order is not valid",
            )
            .with_detail(format!("{} field(s) are invalid", errors.len()))
            .with_extension("errors", serde_json::to_value(errors).unwrap_or_default())
            .into_response(),
            ApiError::Body(rejection) => {
                let status = rejection.status();
                let (kind, title) = match status {
                    StatusCode::PAYLOAD_TOO_LARGE => {
                        ("body-too-large", "The request body is too large")
                    }
                    StatusCode::UNSUPPORTED_MEDIA_TYPE => (
                        "unsupported-media-type",
                        "Expected Content-Type: application/json",
                    ),
                    StatusCode::UNPROCESSABLE_ENTITY => {
                        ("invalid-body", "The body does not match the expected shape")
                    }
                    _ => ("malformed-body", "The body is not valid JSON"),
                };
                Problem::new(status, kind, title)
                    .with_detail(rejection.body_text())
                    .into_response()
            }
            ApiError::Path(rejection) => {
                Problem::new(StatusCode::NOT_FOUND, "not-found", "No such order")
                    .with_detail(rejection.body_text())
                    .into_response()
            }
            ApiError::Get(GetOrderError::NotFound(id))
            | ApiError::Cancel(CancelOrderError::NotFound(id)) => {
                Problem::new(StatusCode::NOT_FOUND, "not-found", "No such order")
                    .with_detail(format!("order {id} does not exist"))
                    .into_response()
            }
            ApiError::IdempotencyKey(problem) => Problem::new(
                StatusCode::BAD_REQUEST,
                "invalid-idempotency-key",
                "The Idempotency-Key header is not valid",
            )
            .with_detail(format!("Idempotency-Key {problem}"))
            .into_response(),
            ApiError::Place(PlaceOrderError::KeyReused(order_id)) => {
                tracing::info!(%order_id, "idempotency key reused with another body");
                Problem::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "idempotency-key-reused",
                    "The Idempotency-Key was already used with another request",
                )
                .with_detail(
                    "the key was used with a different body; use a new key for a new order",
                )
                .into_response()
            }
            ApiError::Place(PlaceOrderError::EventTooLarge { size })
            | ApiError::Cancel(CancelOrderError::EventTooLarge { size }) => Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "event-too-large",
                "The order is too large to announce",
            )
            .with_detail(format!("its event would be {size} bytes"))
            .into_response(),
            ApiError::Place(PlaceOrderError::Invoicing(e @ InvoicingError::Refused(_))) => {
                // Not the client's fault and not passing: the two services
                // disagree about the call.
                tracing::error!(error = %e, "the invoice service refused a synchronous call");
                Problem::new(
                    StatusCode::BAD_GATEWAY,
                    "invoice-service-refused",
                    "The invoice service refused the order, so it was not placed",
                )
                .with_detail("the error was logged")
                .into_response()
            }
            ApiError::Place(PlaceOrderError::Invoicing(e)) => {
                tracing::warn!(error = %e, "synchronous invoicing failed; the order was not placed");
                let mut response = Problem::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "invoice-service-unavailable",
                    "The order could not be invoiced, so it was not placed",
                )
                .with_detail("this service invoices synchronously; try again later")
                .into_response();
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
                response
            }
            ApiError::Place(
                e @ (PlaceOrderError::Encode(_)
                | PlaceOrderError::Outbox(_)
                | PlaceOrderError::Store(_)),
            ) => Problem::internal_logged(&e).into_response(),
            ApiError::Cancel(e @ (CancelOrderError::Outbox(_) | CancelOrderError::Store(_))) => {
                Problem::internal_logged(&e).into_response()
            }
            ApiError::Get(e @ GetOrderError::Store(_)) => {
                Problem::internal_logged(&e).into_response()
            }
        }
    }
}

/// `Json` whose rejection is our problem+json answer.
#[derive(FromRequest)]
#[from_request(via(Json), rejection(ApiError))]
pub struct ApiJson<T>(pub T);

/// An order id from the path; anything that is not a UUID is an unknown order.
pub struct OrderId(pub Uuid);

impl<S: Send + Sync> FromRequestParts<S> for OrderId {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, ApiError> {
        let Path(id) = Path::<Uuid>::from_request_parts(parts, state).await?;
        Ok(OrderId(id))
    }
}

/// The optional `Idempotency-Key` header, parsed.
pub struct IdempotencyKeyHeader(pub Option<IdempotencyKey>);

impl<S: Send + Sync> FromRequestParts<S> for IdempotencyKeyHeader {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _state: &S,
    ) -> Result<Self, ApiError> {
        let mut values = parts.headers.get_all(IDEMPOTENCY_KEY).iter();
        let Some(value) = values.next() else {
            return Ok(IdempotencyKeyHeader(None));
        };
        if values.next().is_some() {
            return Err(ApiError::IdempotencyKey("must be given once".into()));
        }
        let raw = value.to_str().map_err(|_| {
            ApiError::IdempotencyKey("may contain only visible ASCII characters".into())
        })?;
        IdempotencyKey::parse(raw)
            .map(|key| IdempotencyKeyHeader(Some(key)))
            .map_err(ApiError::IdempotencyKey)
    }
}

/// The body of `POST /orders` as a caller sends it: the customer is the
/// token's, so `customer_id` may be left out.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OrderBody {
    /// The token's subject, if given at all: any other customer is refused
    /// with `403` (`customer-mismatch`).
    #[serde(default)]
    pub customer_id: Option<String>,
    /// 1 to 100 lines, all in one currency.
    #[schema(min_items = 1, max_items = 100)]
    pub lines: Vec<LineRequest>,
}

impl OrderBody {
    /// The request for `principal`'s customer, or the refusal of a body
    /// that names someone else.
    pub fn for_caller(self, principal: &Principal) -> Result<PlaceOrderRequest, ApiError> {
        match self.customer_id {
            Some(body) if body != principal.subject => Err(ApiError::CustomerMismatch {
                body,
                token_subject: principal.subject.clone(),
            }),
            _ => Ok(PlaceOrderRequest {
                customer_id: principal.subject.clone(),
                lines: self.lines,
            }),
        }
    }
}

/// The answer to placing or cancelling an order.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Accepted {
    pub order_id: Uuid,
    pub status: OrderStatus,
}

/// Place an order for the caller.
///
/// The order and its `OrderPlaced` event are committed together; the answer
/// is `202` once they are (in the service's synchronous invoicing mode, only
/// after the invoice service invoiced it). A retry with the same
/// `Idempotency-Key` and body answers the first order again and emits
/// nothing.
#[utoipa::path(
    post,
    path = "/orders",
    tag = "orders",
    operation_id = "placeOrder",
    params(
        ("Idempotency-Key" = Option<String>, Header,
            description = "Makes a retry safe: 1 to 255 visible ASCII characters (a UUID is usual), given at most once. The same key with the same body answers the first order again; with another body, `422` (`idempotency-key-reused`). Keys are each customer's own.",
            nullable = false, min_length = 1, max_length = 255, pattern = "^[\\x21-\\x7E]+$"),
    ),
    request_body(content = OrderBody, content_type = "application/json",
        description = "The order: at most 64 KiB of JSON."),
    responses(
        (status = 202, description = "The order was placed (or, with `Idempotent-Replayed: true`, had been placed by an earlier request with the same key and body).",
            body = Accepted,
            headers(
                ("Location" = String, description = "The order's URL: `/orders/{id}`."),
                ("Idempotent-Replayed" = String, description = "`true` when the answer repeats the one given to an earlier request with the same `Idempotency-Key`; absent otherwise."),
            )),
        (status = 400, description = "`invalid-idempotency-key`: the `Idempotency-Key` header is not valid; or `malformed-body`: the body is not valid JSON.",
            body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`customer-mismatch`: the body's `customer_id` is not the token's subject; nothing is written.",
            body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "`body-too-large`: the body exceeds 64 KiB.", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "`unsupported-media-type`: the body is not `application/json`.", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`validation-error`: the order breaks the input rules (every invalid field is listed in `errors`); `invalid-body`: the JSON does not have the expected shape; `idempotency-key-reused`: the key was used with another body; or `event-too-large`: the order is too large to announce.",
            body = crate::openapi::ValidationProblem, content_type = "application/problem+json"),
        (status = 500, description = "`internal-error`: anything unexpected; the cause is logged, never shown.", body = Problem, content_type = "application/problem+json"),
        (status = 502, description = "`invoice-service-refused`: in the synchronous invoicing mode, the invoice service refused the order; it was not placed.", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "`invoice-service-unavailable`: in the synchronous invoicing mode, the order could not be invoiced, so it was not placed.",
            body = Problem, content_type = "application/problem+json",
            headers(("Retry-After" = u32, description = "Seconds to wait before retrying."))),
    ),
    security(("bearer" = ["orders:write"])),
)]
#[tracing::instrument(skip_all, fields(order_id))]
async fn place_order(
    State(state): State<AppState>,
    principal: Principal,
    IdempotencyKeyHeader(key): IdempotencyKeyHeader,
    ApiJson(body): ApiJson<OrderBody>,
) -> Result<Response, ApiError> {
    principal.require(scopes::ORDERS_WRITE)?;
    let body = body.for_caller(&principal)?;
    let idempotency = key.map(|key| Idempotency::new(key, &body)).transpose()?;
    let order = NewOrder::try_from(body).map_err(ApiError::Validation)?;
    let placed =
        usecases::place_order(&state.pool, &state.invoicing, &order, idempotency.as_ref()).await?;
    let id = placed.order_id();
    tracing::Span::current().record("order_id", tracing::field::display(id));
    let mut headers = HeaderMap::new();
    if let Ok(location) = HeaderValue::from_str(&format!("/orders/{id}")) {
        headers.insert(header::LOCATION, location);
    }
    match placed {
        Placed::New(_) => {
            tracing::debug!(total_minor = order.total.value(), currency = %order.currency, "order placed")
        }
        Placed::Replayed(_) => {
            tracing::debug!("idempotent retry answered with the order placed before");
            headers.insert(IDEMPOTENT_REPLAYED, HeaderValue::from_static("true"));
        }
    }
    Ok((
        StatusCode::ACCEPTED,
        headers,
        Json(Accepted {
            order_id: id,
            status: OrderStatus::Placed,
        }),
    )
        .into_response())
}

/// Read one of the caller's orders, with its invoice once known.
///
/// Another customer's order is answered `404`, exactly as an unknown one.
#[utoipa::path(
    get,
    path = "/orders/{id}",
    tag = "orders",
    operation_id = "getOrder",
    params(("id" = Uuid, Path, description = "The order's id.")),
    responses(
        (status = 200, description = "The order.", body = OrderView),
        (status = 404, description = "`not-found`: no such order of the caller's (or the id is not a UUID).", body = Problem, content_type = "application/problem+json"),
        (status = 500, description = "`internal-error`: anything unexpected; the cause is logged, never shown.", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["orders:read"])),
)]
#[tracing::instrument(skip_all, fields(order_id = %id))]
async fn get_order(
    State(state): State<AppState>,
    principal: Principal,
    OrderId(id): OrderId,
) -> Result<Json<OrderView>, ApiError> {
    principal.require(scopes::ORDERS_READ)?;
    let owner = Owner::Customer(&principal.subject);
    Ok(Json(usecases::get_order(&state.pool, id, owner).await?))
}

/// Cancel one of the caller's orders.
///
/// Emits `OrderCancelled` once; cancelling a cancelled order answers `202`
/// again and emits nothing. Another customer's order is answered `404`.
#[utoipa::path(
    post,
    path = "/orders/{id}/cancel",
    tag = "orders",
    operation_id = "cancelOrder",
    params(("id" = Uuid, Path, description = "The order's id.")),
    responses(
        (status = 202, description = "The order is cancelled.", body = Accepted),
        (status = 404, description = "`not-found`: no such order of the caller's (or the id is not a UUID).", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`event-too-large`: the order is too large to announce.", body = Problem, content_type = "application/problem+json"),
        (status = 500, description = "`internal-error`: anything unexpected; the cause is logged, never shown.", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["orders:write"])),
)]
#[tracing::instrument(skip_all, fields(order_id = %id))]
async fn cancel_order(
    State(state): State<AppState>,
    principal: Principal,
    OrderId(id): OrderId,
) -> Result<Response, ApiError> {
    principal.require(scopes::ORDERS_WRITE)?;
    let owner = Owner::Customer(&principal.subject);
    let order = usecases::cancel_order(&state.pool, id, owner).await?;
    tracing::debug!("order cancelled");
    Ok((
        StatusCode::ACCEPTED,
        Json(Accepted {
            order_id: id,
            status: order.status,
        }),
    )
        .into_response())
}
