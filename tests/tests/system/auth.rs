//! Authentication and the two listeners on the real processes: the public
//! port serves only the API and refuses a request without a valid token with
//! problem+json; health and metrics answer on the admin port only; a token of
//! the stack's issuer works end to end, the synchronous mode's service
//! credential included.

use contracts::topology::Service;
use harness::client::{Client, order_body};
use harness::stack::{Stack, StackOptions};

#[tokio::test]
async fn the_public_port_serves_only_the_api_and_only_with_a_token() -> anyhow::Result<()> {
    let stack = Stack::start(StackOptions::for_test("auth-ports")?).await?;
    let result = check_ports(&stack).await;
    if result.is_err() {
        eprintln!("{}", stack.logs(40));
    }
    stack.shutdown().await?;
    result
}

async fn check_ports(stack: &Stack) -> anyhow::Result<()> {
    let http = &stack.http;
    for service in Service::ALL {
        let public = stack.url(service);
        let admin = stack.admin_url(service);
        for path in ["/metrics", "/health/ready", "/health/live"] {
            let on_public = http.get(format!("{public}{path}")).send().await?;
            assert_ne!(
                on_public.status(),
                200,
                "{} serves {path} publicly",
                service.name()
            );
            let on_admin = http.get(format!("{admin}{path}")).send().await?;
            assert_eq!(on_admin.status(), 200, "{} admin {path}", service.name());
        }
    }
    let order = stack.url(Service::Order);
    let anonymous = http
        .post(format!("{order}/orders"))
        .json(&order_body("alice", &[("SKU-1", 1, 100)]))
        .send()
        .await?;
    assert_eq!(anonymous.status(), 401);
    assert_eq!(
        anonymous
            .headers()
            .get("www-authenticate")
            .and_then(|v| v.to_str().ok()),
        Some("Bearer")
    );
    assert_eq!(
        anonymous.headers()["content-type"],
        "application/problem+json"
    );
    let bad = http
        .get(format!(
            "{}/invoices?order_id=0190b2a0-0000-7000-8000-000000000000",
            stack.url(Service::Invoice)
        ))
        .bearer_auth("not.a.token")
        .send()
        .await?;
    assert_eq!(bad.status(), 401);
    // A customer's token may not read invoices: that is an operator's.
    let customer = http
        .get(format!(
            "{}/notifications?order_id=0190b2a0-0000-7000-8000-000000000000",
            stack.url(Service::Notification)
        ))
        .bearer_auth(stack.issuer.customer_token("alice")?)
        .send()
        .await?;
    assert_eq!(customer.status(), 403);

    let client = Client::for_stack(stack);
    let id = client
        .place(&order_body("alice", &[("SKU-1", 1, 100)]))
        .await?;
    assert_eq!(client.order(id).await?.status, 200);
    let other = http
        .get(format!("{order}/orders/{id}"))
        .bearer_auth(stack.issuer.customer_token("bob")?)
        .send()
        .await?;
    assert_eq!(other.status(), 404, "bob may not see alice's order");
    Ok(())
}

#[tokio::test]
async fn the_synchronous_call_carries_the_order_services_client_credential() -> anyhow::Result<()> {
    // The invoice service's port must be known before the order service
    // starts: fixed ones, free now.
    let ports: std::collections::BTreeMap<&'static str, u16> = Service::ALL
        .iter()
        .map(|s| Ok((s.name(), testkit::free_port()?)))
        .collect::<anyhow::Result<_>>()?;
    let mut options = StackOptions::for_test("auth-sync")?;
    let invoice_url = format!("http://127.0.0.1:{}", ports["invoice"]);
    options.service_ports = Some(ports);
    let options = options
        .with_env(Service::Order, "ORDER_INVOICING", "sync")
        .with_env(Service::Order, "INVOICE_SERVICE_URL", &invoice_url);
    let stack = Stack::start(options).await?;
    let client = Client::for_stack(&stack);
    let result = async {
        let answer = client
            .place_order(&order_body("alice", &[("SKU-1", 1, 100)]))
            .await?;
        anyhow::ensure!(answer.status == 202, "sync order: {answer:?}");
        let id = serde_json::from_value(answer.body["order_id"].clone())?;
        anyhow::ensure!(client.invoices_of(id).await?.len() == 1, "invoiced at once");
        Ok(())
    }
    .await;
    if result.is_err() {
        eprintln!("{}", stack.logs(40));
    }
    stack.shutdown().await?;
    result
}

/// The compose stack's `dev-issuer`, as a real process: it names itself by
/// its public URL (not its bind address), its development endpoint mints a
/// token, and the platform's verifier, discovering the keys from that URL as
/// a service does, accepts it with the subject and scope asked for.
#[tokio::test]
async fn the_dev_issuer_binary_mints_tokens_the_services_verifier_accepts() -> anyhow::Result<()> {
    use std::time::Duration;

    use platform::auth::settings::AuthSettings;
    use platform::auth::verifier::Verifier;
    use platform::config::Env;

    let port = testkit::free_port()?;
    // Another name for the same host: the `iss` must be this, not the bind address.
    let url = format!("http://localhost:{port}");
    let log = std::env::temp_dir().join(format!("dev-issuer-{port}.log"));
    let mut command = std::process::Command::new(harness::stack::bin_dir()?.join("dev-issuer"));
    command
        .args(["--listen", &format!("127.0.0.1:{port}"), "--url", &url])
        .env("OAUTH_CLIENT_SECRET", "test-secret");
    let mut child = testkit::process::ChildGuard::spawn("dev-issuer", command, &log)?;
    let result = async {
        let http = reqwest::Client::new();
        let discovery_url = format!("http://127.0.0.1:{port}/.well-known/openid-configuration");
        let discovery: serde_json::Value = testkit::wait::until(
            "dev-issuer serves discovery",
            Duration::from_secs(20),
            || {
                let (http, discovery_url) = (&http, &discovery_url);
                async move {
                    let response = http
                        .get(discovery_url)
                        .send()
                        .await
                        .map_err(|e| e.to_string())?;
                    response.json().await.map_err(|e| e.to_string())
                }
            },
        )
        .await
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
        anyhow::ensure!(discovery["issuer"] == url, "{discovery}");
        anyhow::ensure!(
            discovery["jwks_uri"] == format!("{url}/jwks.json"),
            "{discovery}"
        );

        let minted: serde_json::Value = http
            .post(format!(
                "http://127.0.0.1:{port}{}",
                harness::issuer::DEV_TOKENS_PATH
            ))
            .json(&serde_json::json!({"subject": "alice"}))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        let token = minted["access_token"].as_str().expect("a token");

        let env = [
            ("OIDC_ISSUER", url.as_str()),
            ("JWT_AUDIENCE", harness::issuer::AUDIENCE),
        ];
        let settings = AuthSettings::from_env(&Env(|n: &str| {
            env.iter()
                .find(|(k, _)| *k == n)
                .map(|(_, v)| v.to_string())
        }))?;
        let principal = Verifier::new(&settings)?.verify(token).await?;
        anyhow::ensure!(principal.subject == "alice", "{principal:?}");
        anyhow::ensure!(principal.scopes.contains("orders:write"), "{principal:?}");

        // A bad request gets problem+json, not a token.
        let bad = http
            .post(format!(
                "http://127.0.0.1:{port}{}",
                harness::issuer::DEV_TOKENS_PATH
            ))
            .body("{}")
            .send()
            .await?;
        anyhow::ensure!(bad.status() == 400, "{}", bad.status());
        anyhow::ensure!(bad.headers()["content-type"] == "application/problem+json");

        // The order service's client credential from the environment works.
        let granted = http
            .post(format!("http://127.0.0.1:{port}/token"))
            .form(&[
                ("grant_type", "client_credentials"),
                ("client_id", harness::issuer::ORDER_SERVICE_CLIENT),
                ("client_secret", "test-secret"),
            ])
            .send()
            .await?;
        anyhow::ensure!(granted.status() == 200, "{}", granted.status());
        Ok(())
    }
    .await;
    if result.is_err() {
        eprintln!("{}", child.log_tail(40));
    }
    child
        .stop(nix::sys::signal::Signal::SIGTERM, Duration::from_secs(10))
        .await?;
    result
}
