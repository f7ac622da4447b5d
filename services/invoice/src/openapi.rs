//! The invoice API's OpenAPI 3.1 description, generated from the handlers
//! (`#[utoipa::path]` in `crate::api`) and the types they take and answer.
//!
//! It exists so that a client can be generated from a document that cannot
//! drift from the code: it is committed as `docs/openapi/invoice.json`, and
//! the test below fails when the two differ (`UPDATE_OPENAPI=1 cargo test -p
//! invoice --lib openapi` rewrites the file). The bearer scheme and the
//! answers of the edge in front of every route are `platform::openapi`'s.
//! Nothing serves the document at run time.

use platform::openapi::Edge;
use platform::problem::Problem;
use utoipa::OpenApi;

/// Where the document is committed, from the workspace root.
pub const FILE: &str = "docs/openapi/invoice.json";

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Invoice service API",
        description = "Shows the invoices the service issued from `OrderPlaced` events (one per order, for the order's total; voided when the order is cancelled) to support and operations (scope `operator`; customers see their order, which carries its invoice). `POST /invoices` exists only for the order service's synchronous invoicing mode, with its own client credential (scope `invoices:write`). Money is always an integer amount in the currency's minor unit (cents for EUR), never a float. Every error is an RFC 9457 `application/problem+json` answer whose `type` names its kind (`/problems/<kind>`).",
    ),
    servers((url = "http://localhost:8082", description = "The local stack (see the README).")),
    paths(crate::api::list_invoices, crate::api::invoice_order, crate::api::get_invoice),
    components(schemas(Problem)),
    modifiers(&Edge),
    tags((name = "invoices", description = "The invoices of orders.")),
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

    /// Every route `crate::api::router` serves, with the scope it checks.
    const ROUTES: [(&str, &str, &str); 3] = [
        ("GET", "/invoices", scopes::OPERATOR),
        ("POST", "/invoices", scopes::INVOICES_WRITE),
        ("GET", "/invoices/{id}", scopes::OPERATOR),
    ];

    #[test]
    fn openapi_document_is_committed_and_current() {
        let file = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../..")
            .join(FILE);
        if let Err(drift) = platform::openapi::check_committed(
            &render(),
            &file,
            "cargo test -p invoice --lib openapi",
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
        let app = router(AppState { pool });
        let failures = platform::openapi::check_router(app, &ROUTES).await;
        assert!(failures.is_empty(), "{failures:#?}");
    }
}
