//! `dev-issuer`: the harness's OAuth 2.0 / OpenID Connect issuer as a process
//! of its own, for the compose stack (docker-compose.yml's `issuer`), where
//! the services need an issuer to verify tokens against and the README's
//! curls need tokens.
//!
//! DEVELOPMENT ONLY. Its keys live in memory, and `POST /dev/tokens` mints a
//! valid token for any subject and scope to anyone who can reach the port.
//! Never deploy it: point `OIDC_ISSUER` at a real issuer instead
//! (docs/deployment.md).

use std::net::SocketAddr;

use clap::Parser;
use harness::issuer::{DEV_TOKENS_PATH, DevIssuerOptions, Issuer, ORDER_SERVICE_CLIENT};

/// A development OIDC issuer with a token-on-request endpoint. Never deploy it.
#[derive(Parser, Debug)]
#[command(name = "dev-issuer")]
struct Args {
    /// Where to listen.
    #[arg(long, env = "ISSUER_LISTEN", default_value = "0.0.0.0:8090")]
    listen: SocketAddr,
    /// The issuer URL the services know it by: the `iss` of its tokens and
    /// the base of its discovery document.
    #[arg(long, env = "ISSUER_URL", default_value = "http://issuer:8090")]
    url: String,
    /// The order service's client id for the client-credentials grant.
    #[arg(long, env = "OAUTH_CLIENT_ID", default_value = ORDER_SERVICE_CLIENT)]
    client_id: String,
    /// The order service's client secret (the same value the order service gets).
    #[arg(long, env = "OAUTH_CLIENT_SECRET")]
    client_secret: String,
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    if !(args.url.starts_with("http://") || args.url.starts_with("https://")) {
        eprintln!(
            "dev-issuer: configuration error: --url (ISSUER_URL) must be an http:// or https:// URL"
        );
        std::process::exit(2);
    }
    if args.client_secret.is_empty() {
        eprintln!("dev-issuer: configuration error: OAUTH_CLIENT_SECRET must not be empty");
        std::process::exit(2);
    }
    let issuer = match Issuer::start_dev(DevIssuerOptions {
        listen: args.listen,
        url: args.url,
        dev_tokens: true,
        order_client: (args.client_id.clone(), args.client_secret.clone()),
    })
    .await
    {
        Ok(issuer) => issuer,
        Err(e) => {
            eprintln!("dev-issuer: {e:#}");
            std::process::exit(1);
        }
    };
    eprintln!(
        "WARNING: dev-issuer is a DEVELOPMENT issuer: {}{DEV_TOKENS_PATH} gives a token to anyone; never deploy it (listening on {}, issuer {})",
        issuer.url(),
        args.listen,
        issuer.url()
    );
    wait_for_stop().await;
}

/// Until SIGTERM (what `docker stop` sends) or Ctrl-C.
async fn wait_for_stop() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(term) => term,
        Err(e) => {
            eprintln!("dev-issuer: cannot listen for SIGTERM: {e}");
            std::process::exit(1);
        }
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
