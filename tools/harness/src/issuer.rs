//! A local OAuth 2.0 / OpenID Connect issuer, so that the demo, the tests,
//! chaos and the benchmark run with authentication on and no account
//! anywhere.
//!
//! It generates its key pairs at start (ES256, with aws-lc-rs), signs tokens
//! with the `jsonwebtoken` crate the services verify with, and serves over
//! HTTP what a real provider (Amazon Cognito, any OIDC issuer) serves and the
//! services read: the discovery document
//! (`/.well-known/openid-configuration`), the key set (`/jwks.json`) and a
//! client-credentials token endpoint (`/token`, RFC 6749 §4.4) for the order
//! service's service-to-service call. Keys can be rotated and withdrawn, as
//! the key rotation tests need. Nothing here is for production: the keys
//! live in memory, and tokens are minted for whoever asks in-process.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use anyhow::Context;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

/// The audience of every token it mints: the system's API.
pub const AUDIENCE: &str = "orders-api";
/// Scopes of a customer token.
pub const CUSTOMER_SCOPES: &str = "orders:read orders:write";
/// The order service's client id for its synchronous call to the invoice service.
pub const ORDER_SERVICE_CLIENT: &str = "order-service";
/// How long a minted token lives.
pub const TOKEN_TTL: Duration = Duration::from_secs(3600);

/// A signing key with its published half.
pub struct SigningKey {
    pub kid: String,
    pub algorithm: Algorithm,
    /// The private key (PKCS #8 DER), for a tool in another process that
    /// mints tokens for this issuer (`bench --running` on the demo's stack).
    pub pkcs8: Vec<u8>,
    encoding: EncodingKey,
    jwk: Jwk,
}

impl SigningKey {
    /// A fresh P-256 key pair for ES256.
    pub fn es256(kid: &str) -> anyhow::Result<SigningKey> {
        let pkcs8 = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING)
            .context("generate an ES256 key")?
            .to_pkcs8v1()
            .context("encode the key")?;
        SigningKey::from_es256_pkcs8(kid, pkcs8.as_ref())
    }

    /// An ES256 key from its PKCS #8 DER.
    pub fn from_es256_pkcs8(kid: &str, pkcs8: &[u8]) -> anyhow::Result<SigningKey> {
        EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8)
            .map_err(|e| anyhow::anyhow!("not an ES256 key: {e}"))?;
        let encoding = EncodingKey::from_ec_der(pkcs8);
        let mut jwk = Jwk::from_encoding_key(&encoding, Algorithm::ES256)?;
        jwk.common.key_id = Some(kid.to_string());
        Ok(SigningKey {
            kid: kid.to_string(),
            algorithm: Algorithm::ES256,
            pkcs8: pkcs8.to_vec(),
            encoding,
            jwk,
        })
    }

    /// The public key, as a JWKS lists it.
    pub fn jwk(&self) -> &Jwk {
        &self.jwk
    }

    /// `claims` signed with this key, its `kid` in the header.
    pub fn sign(&self, claims: &Value) -> anyhow::Result<String> {
        let mut header = Header::new(self.algorithm);
        header.kid = Some(self.kid.clone());
        Ok(jsonwebtoken::encode(&header, claims, &self.encoding)?)
    }
}

/// Mints tokens of one issuer with one key: what a client tool needs, without
/// the issuer's server (the load, `bench --running`).
#[derive(Clone)]
pub struct Minter {
    pub issuer: String,
    pub key: Arc<SigningKey>,
}

impl std::fmt::Debug for Minter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Minter")
            .field("issuer", &self.issuer)
            .field("kid", &self.key.kid)
            .finish()
    }
}

impl Minter {
    /// The claims of a token for `subject` with `scope`, valid from now for
    /// `TOKEN_TTL`: change any of them to make a bad token.
    pub fn claims(&self, subject: &str, scope: &str) -> Value {
        let now = now_secs();
        json!({
            "iss": self.issuer,
            "aud": AUDIENCE,
            "sub": subject,
            "scope": scope,
            "iat": now,
            "nbf": now,
            "exp": now + TOKEN_TTL.as_secs() as i64,
        })
    }

    /// A token for `subject` with `scope`.
    pub fn token(&self, subject: &str, scope: &str) -> anyhow::Result<String> {
        self.key.sign(&self.claims(subject, scope))
    }

    /// A customer's token: its orders, to place, read and cancel.
    pub fn customer_token(&self, customer: &str) -> anyhow::Result<String> {
        self.token(customer, CUSTOMER_SCOPES)
    }

    /// An operator's token: any invoice and notification.
    pub fn operator_token(&self) -> anyhow::Result<String> {
        self.token("operator", "operator")
    }
}

/// Where the development issuer mints tokens on request (off unless
/// `DevIssuerOptions::dev_tokens`).
pub const DEV_TOKENS_PATH: &str = "/dev/tokens";

/// How the `dev-issuer` binary serves: where it binds, the URL it names
/// itself, and whether anyone may ask it for a token.
#[derive(Debug, Clone)]
pub struct DevIssuerOptions {
    pub listen: SocketAddr,
    /// The public issuer URL: the `iss` of its tokens and the base of its
    /// discovery document, which may differ from the bind address (a
    /// container listens on 0.0.0.0 and is reached as `issuer`).
    pub url: String,
    /// Serve `POST /dev/tokens`. Development only: it hands a valid token to
    /// anyone who can reach the port.
    pub dev_tokens: bool,
    /// The order service's client id and secret for the client-credentials
    /// grant, known before the first request can arrive.
    pub order_client: (String, String),
}

/// A client allowed to use the token endpoint.
#[derive(Clone)]
struct ClientRecord {
    secret: String,
    scope: String,
}

struct Keys {
    /// The key new tokens are signed with.
    current: Arc<SigningKey>,
    /// Every key the JWKS publishes (the current one included).
    published: Vec<Arc<SigningKey>>,
    generation: u32,
}

struct Inner {
    url: String,
    /// Whether `POST /dev/tokens` mints tokens for anyone who asks: only the
    /// `dev-issuer` binary turns it on (see `DevIssuerOptions`).
    dev_tokens: bool,
    keys: RwLock<Keys>,
    clients: RwLock<HashMap<String, ClientRecord>>,
}

/// The issuer, serving on a local port until dropped.
pub struct Issuer {
    inner: Arc<Inner>,
    stop: CancellationToken,
}

impl Drop for Issuer {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

fn now_secs() -> i64 {
    chrono::Utc::now().timestamp()
}

impl Issuer {
    /// Serves on a free port of 127.0.0.1.
    pub async fn start() -> anyhow::Result<Issuer> {
        Issuer::start_on(SocketAddr::from(([127, 0, 0, 1], 0))).await
    }

    /// Serves on `addr` (the demo's fixed port).
    pub async fn start_on(addr: SocketAddr) -> anyhow::Result<Issuer> {
        let order_client = (
            ORDER_SERVICE_CLIENT.to_string(),
            uuid::Uuid::now_v7().to_string(),
        );
        Issuer::serve(addr, None, false, order_client).await
    }

    /// The development issuer of the compose stack (the `dev-issuer`
    /// binary): serves on `options.listen` but names itself `options.url`
    /// (what the services reach it at, `http://issuer:8090`), and with
    /// `options.dev_tokens` mints tokens on `POST /dev/tokens` for anyone who
    /// asks. Never deploy it.
    pub async fn start_dev(options: DevIssuerOptions) -> anyhow::Result<Issuer> {
        let url = options.url.trim_end_matches('/').to_string();
        Issuer::serve(
            options.listen,
            Some(url),
            options.dev_tokens,
            options.order_client,
        )
        .await
    }

    /// Binds, then serves; the order service's client is registered before
    /// the first request can be accepted.
    async fn serve(
        addr: SocketAddr,
        url: Option<String>,
        dev_tokens: bool,
        (order_client_id, order_client_secret): (String, String),
    ) -> anyhow::Result<Issuer> {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("bind the issuer on {addr}"))?;
        let bound = listener.local_addr()?;
        let first = Arc::new(SigningKey::es256("key-1")?);
        let inner = Arc::new(Inner {
            url: url.unwrap_or_else(|| format!("http://{bound}")),
            dev_tokens,
            keys: RwLock::new(Keys {
                current: first.clone(),
                published: vec![first],
                generation: 1,
            }),
            clients: RwLock::new(HashMap::from([(
                order_client_id,
                ClientRecord {
                    secret: order_client_secret,
                    scope: "invoices:write".into(),
                },
            )])),
        });
        let app = Router::new()
            .route("/.well-known/openid-configuration", get(discovery))
            .route("/jwks.json", get(jwks))
            .route("/token", post(token))
            .route(DEV_TOKENS_PATH, post(dev_token))
            .with_state(inner.clone());
        let stop = CancellationToken::new();
        let stopped = stop.clone();
        tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move { stopped.cancelled().await })
                .await
                .ok();
        });
        Ok(Issuer { inner, stop })
    }

    /// The issuer URL: the `iss` of its tokens and where discovery starts.
    pub fn url(&self) -> String {
        self.inner.url.clone()
    }

    pub fn jwks_url(&self) -> String {
        format!("{}/jwks.json", self.inner.url)
    }

    pub fn token_url(&self) -> String {
        format!("{}/token", self.inner.url)
    }

    /// What every service needs to verify this issuer's tokens.
    pub fn service_env(&self) -> Vec<(String, String)> {
        vec![
            ("OIDC_ISSUER".into(), self.url()),
            ("JWT_AUDIENCE".into(), AUDIENCE.into()),
        ]
    }

    /// What the order service needs for its synchronous call: its client
    /// credentials and the token endpoint.
    pub fn order_client_env(&self) -> Vec<(String, String)> {
        let secret = self.client_secret(ORDER_SERVICE_CLIENT).unwrap_or_default();
        vec![
            ("OAUTH_TOKEN_URL".into(), self.token_url()),
            ("OAUTH_CLIENT_ID".into(), ORDER_SERVICE_CLIENT.into()),
            ("OAUTH_CLIENT_SECRET".into(), secret),
        ]
    }

    /// Lets `client_id` fetch tokens with `scope` from `/token`.
    pub fn register_client(&self, client_id: &str, secret: &str, scope: &str) {
        self.inner
            .clients
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(
                client_id.to_string(),
                ClientRecord {
                    secret: secret.to_string(),
                    scope: scope.to_string(),
                },
            );
    }

    fn client_secret(&self, client_id: &str) -> Option<String> {
        let clients = self.inner.clients.read().unwrap_or_else(|p| p.into_inner());
        clients.get(client_id).map(|c| c.secret.clone())
    }

    /// A minter with the current key.
    pub fn minter(&self) -> Minter {
        Minter {
            issuer: self.url(),
            key: self.current_key(),
        }
    }

    /// The claims of a token for `subject` with `scope` (see `Minter::claims`).
    pub fn claims(&self, subject: &str, scope: &str) -> Value {
        self.minter().claims(subject, scope)
    }

    /// `claims` signed with the current key.
    pub fn sign(&self, claims: &Value) -> anyhow::Result<String> {
        self.current_key().sign(claims)
    }

    pub fn token(&self, subject: &str, scope: &str) -> anyhow::Result<String> {
        self.minter().token(subject, scope)
    }

    pub fn customer_token(&self, customer: &str) -> anyhow::Result<String> {
        self.minter().customer_token(customer)
    }

    pub fn operator_token(&self) -> anyhow::Result<String> {
        self.minter().operator_token()
    }

    pub fn current_key(&self) -> Arc<SigningKey> {
        self.inner
            .keys
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .current
            .clone()
    }

    /// Publishes a new key and signs with it from now on; the old ones stay
    /// published until `withdraw`n. Returns the new kid.
    pub fn rotate(&self) -> anyhow::Result<String> {
        let mut keys = self.inner.keys.write().unwrap_or_else(|p| p.into_inner());
        keys.generation += 1;
        let key = Arc::new(SigningKey::es256(&format!("key-{}", keys.generation))?);
        keys.current = key.clone();
        keys.published.push(key);
        Ok(keys.current.kid.clone())
    }

    /// Stops publishing `kid`.
    pub fn withdraw(&self, kid: &str) {
        let mut keys = self.inner.keys.write().unwrap_or_else(|p| p.into_inner());
        keys.published.retain(|k| k.kid != kid);
    }
}

async fn discovery(State(inner): State<Arc<Inner>>) -> Json<Value> {
    Json(json!({
        "issuer": inner.url,
        "jwks_uri": format!("{}/jwks.json", inner.url),
        "token_endpoint": format!("{}/token", inner.url),
        "grant_types_supported": ["client_credentials"],
        "id_token_signing_alg_values_supported": ["ES256"],
    }))
}

async fn jwks(State(inner): State<Arc<Inner>>) -> Json<JwkSet> {
    let keys = inner.keys.read().unwrap_or_else(|p| p.into_inner());
    Json(JwkSet {
        keys: keys.published.iter().map(|k| k.jwk().clone()).collect(),
    })
}

/// The client-credentials grant, form-encoded as RFC 6749 §4.4 asks.
async fn token(State(inner): State<Arc<Inner>>, body: String) -> Response {
    let form: HashMap<String, String> = serde_urlencoded::from_str(&body).unwrap_or_default();
    let refuse =
        |error: &str| (StatusCode::BAD_REQUEST, Json(json!({"error": error}))).into_response();
    if form.get("grant_type").map(String::as_str) != Some("client_credentials") {
        return refuse("unsupported_grant_type");
    }
    let (Some(id), Some(secret)) = (form.get("client_id"), form.get("client_secret")) else {
        return refuse("invalid_client");
    };
    let client = {
        let clients = inner.clients.read().unwrap_or_else(|p| p.into_inner());
        clients.get(id).cloned()
    };
    let Some(client) = client.filter(|c| &c.secret == secret) else {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"error": "invalid_client"})),
        )
            .into_response();
    };
    token_response(&inner, id, &client.scope)
}

/// An OAuth token response (RFC 6749 §5.1) with a token for `subject` and
/// `scope`, signed with the current key.
fn token_response(inner: &Inner, subject: &str, scope: &str) -> Response {
    let key = inner
        .keys
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .current
        .clone();
    let minter = Minter {
        issuer: inner.url.clone(),
        key,
    };
    match minter.token(subject, scope) {
        Ok(token) => Json(json!({
            "access_token": token,
            "token_type": "Bearer",
            "expires_in": TOKEN_TTL.as_secs(),
            "scope": scope,
        }))
        .into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

/// What `POST /dev/tokens` takes: the subject (a customer id, or `operator`)
/// and the scope, customer scopes when left out.
#[derive(serde::Deserialize)]
struct DevTokenRequest {
    subject: String,
    scope: Option<String>,
}

/// The development issuer's token on request: 404 unless it was turned on.
async fn dev_token(State(inner): State<Arc<Inner>>, body: String) -> Response {
    if !inner.dev_tokens {
        return StatusCode::NOT_FOUND.into_response();
    }
    let problem = |detail: String| {
        (
            StatusCode::BAD_REQUEST,
            [(axum::http::header::CONTENT_TYPE, "application/problem+json")],
            Json(json!({
                "type": "about:blank",
                "title": "Bad Request",
                "status": 400,
                "detail": detail,
            })),
        )
            .into_response()
    };
    let request: DevTokenRequest = match serde_json::from_str(&body) {
        Ok(r) => r,
        Err(e) => {
            return problem(format!(
                "expected {{\"subject\": \"...\", \"scope\": \"...\"}}: {e}"
            ));
        }
    };
    if request.subject.trim().is_empty() {
        return problem("subject must not be empty".into());
    }
    let scope = request.scope.unwrap_or_else(|| CUSTOMER_SCOPES.to_string());
    token_response(&inner, &request.subject, &scope)
}
