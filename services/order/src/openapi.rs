//! The order API's OpenAPI 3.1 description, generated from the handlers
//! (`#[utoipa::path]` in `crate::api`) and the types they take and answer.
//!
//! It exists so that a client team can generate a client from a document that
//! cannot drift from the code: it is committed as `docs/openapi/order.json`,
//! and the test below fails when the two differ (`UPDATE_OPENAPI=1 cargo
//! test -p order --lib openapi` rewrites the file). The bearer scheme and the
//! answers of the edge in front of every route are `platform::openapi`'s.
//! Nothing serves the document at run time.

use platform::openapi::Edge;
use platform::problem::Problem;
use serde::Serialize;
use utoipa::OpenApi;

use crate::domain::FieldError;

/// Where the document is committed, from the workspace root.
pub const FILE: &str = "docs/openapi/order.json";

/// The `422` answers of `POST /orders`: a problem, with every invalid field
/// when it is a `validation-error`. Only described, never built: the
/// answer is a `Problem` with the extension `errors`.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ValidationProblem {
    #[serde(flatten)]
    pub problem: Problem,
    /// On `validation-error`: each invalid field, named by its path in the
    /// body (`lines[2].quantity`).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub errors: Option<Vec<FieldError>>,
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Order service API",
        description = "Places, reads and cancels the caller's orders. The caller is the bearer token's subject, and the customer of the orders it may place, read and cancel; another customer's order is answered `404`, exactly as an unknown one. Money is always an integer amount in the currency's minor unit (cents for EUR), never a float. Every error is an RFC 9457 `application/problem+json` answer whose `type` names its kind (`/problems/<kind>`).",
    ),
    servers((url = "http://localhost:8081", description = "The local stack (see the README).")),
    paths(crate::api::place_order, crate::api::get_order, crate::api::cancel_order),
    components(schemas(Problem, ValidationProblem, FieldError)),
    modifiers(&Edge),
    tags((name = "orders", description = "The caller's orders.")),
)]
pub struct ApiDoc;

/// The document as committed.
pub fn render() -> String {
    platform::openapi::render(&ApiDoc::openapi())
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use platform::auth::scopes;

    use super::*;
    use crate::api::{AppState, router};
    use crate::invoicing::Invoicing;

    /// Every route `crate::api::router` serves, with the scope it checks.
    const ROUTES: [(&str, &str, &str); 3] = [
        ("POST", "/orders", scopes::ORDERS_WRITE),
        ("GET", "/orders/{id}", scopes::ORDERS_READ),
        ("POST", "/orders/{id}/cancel", scopes::ORDERS_WRITE),
    ];

    #[test]
    fn openapi_document_is_committed_and_current() {
        let file = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../..")
            .join(FILE);
        if let Err(drift) = platform::openapi::check_committed(
            &render(),
            &file,
            "cargo test -p order --lib openapi",
        ) {
            panic!("{drift}");
        }
    }

    #[test]
    fn openapi_describes_every_route_with_its_scope_and_problems() {
        let document: serde_json::Value =
            serde_json::from_str(&render()).expect("the document is JSON");
        assert_eq!(document["openapi"], "3.1.0");
        let failures = platform::openapi::check_document(&document, &ROUTES);
        assert!(failures.is_empty(), "{failures:#?}");
    }

    /// The router serves each documented operation and no other method on
    /// its paths.
    #[tokio::test]
    async fn openapi_routes_are_the_routers() {
        let pool = sqlx::PgPool::connect_lazy("postgres://localhost/unused").expect("lazy pool");
        let app = router(AppState {
            pool,
            invoicing: Invoicing::Async,
        });
        let failures = platform::openapi::check_router(app, &ROUTES).await;
        assert!(failures.is_empty(), "{failures:#?}");
    }
}
