//! What every service's OpenAPI document shares: the bearer security scheme,
//! the problem+json schema, the answers of the edge, and the drift check.
//!
//! Each service describes its own routes with `utoipa` (its `openapi`
//! module) and commits the rendered document as `docs/openapi/<service>.json`
//! for clients to generate code from. What the routes do not say themselves,
//! because `crate::edge` and `crate::auth` answer it in front of every route,
//! is added here by [`Edge`]: the `bearer` scheme (JWT, RFC 6750), and on
//! every operation the `400` of a malformed `Authorization`, the `401`, the
//! `403` of a missing scope, the `429` of the rate limit and the `503` of
//! shedding, the time limit and an unreachable issuer. An operation that
//! answers one of those statuses for its own reasons keeps its description,
//! with the edge's appended.
//!
//! [`check_committed`] is the drift check each service's test runs: the
//! document rendered from the code must equal the committed file, and
//! `UPDATE_OPENAPI=1` rewrites the file instead.

use std::path::Path;

use utoipa::openapi::header::{Header, HeaderBuilder};
use utoipa::openapi::path::Operation;
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{Content, OpenApi, RefOr, Response, ResponseBuilder};
use utoipa::{Modify, PartialSchema, ToSchema};

use crate::auth::scopes;
use crate::problem::{self, Problem};

/// The name of the security scheme every operation requires.
pub const BEARER: &str = "bearer";

/// The environment variable that makes [`check_committed`] rewrite the file.
pub const UPDATE: &str = "UPDATE_OPENAPI";

/// Adds the security scheme, the `Problem` schema and the edge's answers to
/// a service's document (`#[openapi(modifiers(&platform::openapi::Edge))]`).
pub struct Edge;

impl Modify for Edge {
    fn modify(&self, openapi: &mut OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(BEARER, bearer_scheme());
        components
            .schemas
            .insert(Problem::name().into_owned(), Problem::schema());
        for item in openapi.paths.paths.values_mut() {
            for operation in [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
            ]
            .into_iter()
            .flatten()
            {
                add_edge_answers(operation);
            }
        }
    }
}

fn bearer_scheme() -> SecurityScheme {
    let description = format!(
        "An OAuth 2.0 access token (JWT, RS256 or ES256) of the issuer the services trust, \
         sent as `Authorization: Bearer <token>` (RFC 6750). Its `sub` is the caller (the \
         customer, for the order API) and its space-separated `scope` claim the scopes; \
         each operation names the one it needs: `{}` (place and cancel one's own orders), \
         `{}` (read one's own orders), `{}` (read any invoice or notification), `{}` \
         (invoice an order synchronously: the order service's own credential).",
        scopes::ORDERS_WRITE,
        scopes::ORDERS_READ,
        scopes::OPERATOR,
        scopes::INVOICES_WRITE,
    );
    SecurityScheme::Http(
        HttpBuilder::new()
            .scheme(HttpAuthScheme::Bearer)
            .bearer_format("JWT")
            .description(Some(description))
            .build(),
    )
}

fn string_header(description: &str) -> Header {
    HeaderBuilder::new()
        .schema(ObjectBuilder::new().schema_type(Type::String))
        .description(Some(description))
        .build()
}

fn integer_header(description: &str) -> Header {
    HeaderBuilder::new()
        .schema(
            ObjectBuilder::new()
                .schema_type(Type::Integer)
                .minimum(Some(1)),
        )
        .description(Some(description))
        .build()
}

/// One answer of the edge: its status, what it means, and the header it
/// carries.
struct EdgeAnswer {
    status: &'static str,
    description: &'static str,
    header: (&'static str, Header),
}

/// The answers of the edge and of authentication, in front of every route.
fn edge_answers() -> [EdgeAnswer; 5] {
    let challenge = || {
        (
            "WWW-Authenticate",
            string_header(
                "On a refusal of authentication: the RFC 6750 challenge, `Bearer` with `error` and, for a missing scope, `scope`.",
            ),
        )
    };
    let retry = || {
        (
            "Retry-After",
            integer_header("Seconds to wait before retrying (not sent with `timeout`)."),
        )
    };
    [
        EdgeAnswer {
            status: "400",
            description: "`invalid-authorization`: the `Authorization` header is not `Bearer <token>` (`error=\"invalid_request\"`).",
            header: challenge(),
        },
        EdgeAnswer {
            status: "401",
            description: "`unauthenticated`: no bearer token; or `invalid-token`: the token failed verification (`error=\"invalid_token\"`).",
            header: challenge(),
        },
        EdgeAnswer {
            status: "403",
            description: "`insufficient-scope`: the token lacks the operation's scope (`error=\"insufficient_scope\"`).",
            header: challenge(),
        },
        EdgeAnswer {
            status: "429",
            description: "`rate-limited`: this caller (token subject) exceeded its rate limit.",
            header: retry(),
        },
        EdgeAnswer {
            status: "503",
            description: "`overloaded`: too many requests in flight; `timeout`: the request took too long and nothing it began was kept; or `issuer-unavailable`: the issuer's keys cannot be fetched.",
            header: retry(),
        },
    ]
}

fn add_edge_answers(operation: &mut Operation) {
    let responses = &mut operation.responses.responses;
    for EdgeAnswer {
        status,
        description,
        header,
    } in edge_answers()
    {
        match responses.get_mut(status) {
            Some(RefOr::T(response)) => {
                response.description = format!("{} Or {description}", response.description);
                let (name, header) = header;
                response.headers.entry(name.to_string()).or_insert(header);
            }
            Some(RefOr::Ref(_)) => {}
            None => {
                responses.insert(
                    status.to_string(),
                    RefOr::T(problem_response(description, header)),
                );
            }
        }
    }
}

fn problem_response(description: &str, (name, header): (&str, Header)) -> Response {
    ResponseBuilder::new()
        .description(description)
        .content(
            problem::CONTENT_TYPE,
            Content::new(Some(RefOr::Ref(utoipa::openapi::Ref::from_schema_name(
                Problem::name(),
            )))),
        )
        .header(name, header)
        .build()
}

/// The document as committed: pretty JSON ending in a newline (maps are
/// ordered, so the text is stable).
pub fn render(openapi: &OpenApi) -> String {
    let mut text = openapi
        .to_pretty_json()
        .unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"));
    text.push('\n');
    text
}

/// The drift check: `Ok` when `rendered` equals the file at `path`; with
/// `UPDATE_OPENAPI=1` the file is rewritten (and `Ok`). The error says how
/// to update it; `command` is the test command that does.
pub fn check_committed(rendered: &str, path: &Path, command: &str) -> Result<(), String> {
    if std::env::var_os(UPDATE).is_some_and(|v| v == "1") {
        return std::fs::write(path, rendered)
            .map_err(|e| format!("cannot write {}: {e}", path.display()));
    }
    let committed = std::fs::read_to_string(path).unwrap_or_default();
    if committed == rendered {
        return Ok(());
    }
    let line = committed
        .lines()
        .zip(rendered.lines())
        .position(|(a, b)| a != b)
        .unwrap_or_else(|| committed.lines().count().min(rendered.lines().count()))
        + 1;
    Err(format!(
        "{} is not the OpenAPI document the code describes (first difference at line {line}); \
         if the change is intended, regenerate it with `{UPDATE}=1 {command}` and commit it",
        path.display()
    ))
}

/// What a service's test checks in its rendered document besides drift:
/// that its operations are exactly `expected` (`(method, path, scope)`),
/// that each requires the bearer scheme with exactly its scope, and that
/// each error answer (4xx, 5xx) is `application/problem+json`. Returns
/// every failure found.
pub fn check_document(
    document: &serde_json::Value,
    expected: &[(&str, &str, &str)],
) -> Vec<String> {
    let mut failures = Vec::new();
    let mut wanted: Vec<String> = expected
        .iter()
        .map(|(method, path, _)| format!("{method} {path}"))
        .collect();
    wanted.sort();
    let found = operations(document);
    if found != wanted {
        failures.push(format!(
            "the document describes {found:?}, the API serves {wanted:?}"
        ));
    }
    for (method, path, scope) in expected {
        match required_scopes(document, method, path) {
            Some(scopes) if scopes == [scope.to_string()] => {}
            other => failures.push(format!(
                "{method} {path} must require `{BEARER}` with the scope {scope}, requires {other:?}"
            )),
        }
        let responses = document
            .pointer(&format!(
                "/paths/{}/{}/responses",
                path.replace('~', "~0").replace('/', "~1"),
                method.to_lowercase()
            ))
            .and_then(|r| r.as_object());
        for (status, response) in responses.into_iter().flatten() {
            if status.starts_with('4') || status.starts_with('5') {
                let content = response.get("content").and_then(|c| c.as_object());
                if content.is_none_or(|c| c.keys().ne([problem::CONTENT_TYPE])) {
                    failures.push(format!(
                        "{method} {path} answers {status} with something else than {}",
                        problem::CONTENT_TYPE
                    ));
                }
            }
        }
    }
    failures
}

/// The router's side of the same routes: each documented operation is
/// served (asked without a token it answers `401`, not `404`) and no other
/// method on a documented path (`405`). `{id}` in a path is asked as a nil
/// UUID. Returns every failure found.
pub async fn check_router(router: axum::Router, expected: &[(&str, &str, &str)]) -> Vec<String> {
    use axum::http::{Method, Request, StatusCode};
    use tower::ServiceExt;

    let mut failures = Vec::new();
    let methods = [
        Method::GET,
        Method::POST,
        Method::PUT,
        Method::PATCH,
        Method::DELETE,
    ];
    for (_, path, _) in expected {
        let uri = path.replace("{id}", "00000000-0000-0000-0000-000000000000");
        for method in &methods {
            let documented = expected
                .iter()
                .any(|(m, p, _)| p == path && *m == method.as_str());
            let want = if documented {
                StatusCode::UNAUTHORIZED
            } else {
                StatusCode::METHOD_NOT_ALLOWED
            };
            let request = Request::builder()
                .method(method)
                .uri(&uri)
                .body(axum::body::Body::empty());
            let got = match request {
                Ok(request) => match router.clone().oneshot(request).await {
                    Ok(response) => response.status(),
                    Err(e) => match e {},
                },
                Err(e) => {
                    failures.push(format!("{method} {uri}: {e}"));
                    continue;
                }
            };
            if got != want {
                failures.push(format!("{method} {path} answers {got}, expected {want}"));
            }
        }
    }
    failures
}

/// Every operation of a rendered document as `METHOD /path`, sorted.
pub fn operations(document: &serde_json::Value) -> Vec<String> {
    let mut found = Vec::new();
    if let Some(paths) = document.get("paths").and_then(|p| p.as_object()) {
        for (path, item) in paths {
            for method in ["get", "put", "post", "delete", "patch"] {
                if item.get(method).is_some() {
                    found.push(format!("{} {path}", method.to_uppercase()));
                }
            }
        }
    }
    found.sort();
    found
}

/// The scopes an operation of a rendered document requires through the
/// bearer scheme, or `None` if it has no such security requirement.
pub fn required_scopes(
    document: &serde_json::Value,
    method: &str,
    path: &str,
) -> Option<Vec<String>> {
    let requirements = document
        .get("paths")?
        .get(path)?
        .get(method.to_lowercase())?
        .get("security")?
        .as_array()?;
    let [requirement] = requirements.as_slice() else {
        return None;
    };
    let scopes = requirement.get(BEARER)?.as_array()?;
    Some(
        scopes
            .iter()
            .filter_map(|s| s.as_str().map(str::to_string))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use axum::Router;
    use axum::http::StatusCode;
    use axum::routing::get;

    use super::check_router;

    /// Stands for a route behind the authentication layer: no token, `401`.
    fn router() -> Router {
        Router::new().route("/things/{id}", get(|| async { StatusCode::UNAUTHORIZED }))
    }

    #[tokio::test]
    async fn the_router_check_passes_on_the_served_routes_and_names_every_other() {
        assert!(
            check_router(router(), &[("GET", "/things/{id}", "s")])
                .await
                .is_empty()
        );
        let failures = check_router(router(), &[("POST", "/things/{id}", "s")]).await;
        assert_eq!(
            failures,
            [
                "GET /things/{id} answers 401 Unauthorized, expected 405 Method Not Allowed",
                "POST /things/{id} answers 405 Method Not Allowed, expected 401 Unauthorized",
            ]
        );
        let failures = check_router(router(), &[("GET", "/nothing", "s")]).await;
        assert_eq!(
            failures[0],
            "GET /nothing answers 404 Not Found, expected 401 Unauthorized"
        );
        assert_eq!(
            failures.len(),
            5,
            "every method of an unserved path: {failures:?}"
        );
    }
}
