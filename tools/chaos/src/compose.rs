//! The chaos target for a `docker compose` stack that is already up
//! (`docker compose up --wait`): faults are `docker compose kill`, `stop`,
//! `start`, `pause` and `unpause` on the stack's services, and everything is
//! reached through the ports compose publishes on this host.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use contracts::topology::{Chain, Service, Topology};
use testkit::wait;

use harness::observe::Endpoints;

use super::target::{Exit, Part, Target};

/// Where the compose stack is and what its parts are called.
#[derive(Debug, Clone)]
pub struct ComposeOptions {
    /// The compose file (`docker-compose.yml` at the repository root).
    pub file: PathBuf,
    /// The host the published ports are on.
    pub host: String,
}

impl Default for ComposeOptions {
    fn default() -> Self {
        ComposeOptions {
            file: testkit::workspace_root().join("docker-compose.yml"),
            host: "127.0.0.1".into(),
        }
    }
}

/// The compose service that runs `part`.
pub fn compose_service(part: Part) -> String {
    match part {
        Part::Service(s) => s.name().to_string(),
        Part::Database(s) => format!("{}-db", s.name()),
        Part::Emulator => "moto".to_string(),
    }
}

/// Ports and credentials as docker-compose.yml publishes them.
fn published(host: &str) -> Endpoints {
    let ports = [
        ("order", 8081, 5433),
        ("invoice", 8082, 5434),
        ("notification", 8083, 5435),
    ];
    Endpoints {
        services: ports
            .iter()
            .map(|(name, http, _)| (*name, format!("http://{host}:{http}")))
            .collect(),
        // The admin ports are the API's + 1000 (docker-compose.yml).
        admin: ports
            .iter()
            .map(|(name, http, _)| (*name, format!("http://{host}:{}", http + 1000)))
            .collect(),
        // No issuer key reaches a compose stack from outside.
        minter: None,
        emulator: format!("http://{host}:4566"),
        databases: ports
            .iter()
            .map(|(name, _, pg)| {
                (
                    *name,
                    format!("postgres://{name}_svc:{name}_svc@{host}:{pg}/{name}"),
                )
            })
            .collect::<BTreeMap<_, _>>(),
    }
}

/// The services' default `CONSUMER_VISIBILITY_TIMEOUT_SECS`.
const DEFAULT_VISIBILITY_TIMEOUT_SECS: u32 = 30;

pub struct ComposeTarget {
    options: ComposeOptions,
    endpoints: Endpoints,
    topology: Topology,
    http: reqwest::Client,
    /// The consumers' visibility timeout as the compose file sets it.
    visibility_timeout_secs: u32,
}

impl ComposeTarget {
    /// Checks that docker compose answers and the stack's services are up.
    pub async fn connect(options: ComposeOptions) -> anyhow::Result<ComposeTarget> {
        let mut target = ComposeTarget {
            endpoints: published(&options.host),
            options,
            topology: Topology::declare(Chain::Standard),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(5))
                .build()?,
            visibility_timeout_secs: DEFAULT_VISIBILITY_TIMEOUT_SECS,
        };
        target.compose(&["ps", "--quiet"]).await?;
        let config: serde_json::Value =
            serde_json::from_str(&target.compose(&["config", "--format", "json"]).await?)?;
        if let Some(secs) =
            config["services"]["notification"]["environment"]["CONSUMER_VISIBILITY_TIMEOUT_SECS"]
                .as_str()
                .and_then(|v| v.parse().ok())
        {
            target.visibility_timeout_secs = secs;
        }
        Ok(target)
    }

    /// Runs `docker compose -f <file> <args>` and returns its output.
    async fn compose(&self, args: &[&str]) -> anyhow::Result<String> {
        let out = tokio::process::Command::new("docker")
            .arg("compose")
            .arg("-f")
            .arg(&self.options.file)
            .args(args)
            .output()
            .await
            .context("cannot run docker compose (is Docker installed?)")?;
        anyhow::ensure!(
            out.status.success(),
            "docker compose {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// The container's state (`running`, `paused`, `exited`...) and exit code.
    async fn state(&self, part: Part) -> anyhow::Result<(String, i64)> {
        let id = self
            .compose(&["ps", "--all", "--quiet", &compose_service(part)])
            .await?;
        let id = id.lines().next().context("no container for that service")?;
        let out = tokio::process::Command::new("docker")
            .args(["inspect", "-f", "{{.State.Status}} {{.State.ExitCode}}", id])
            .output()
            .await?;
        anyhow::ensure!(
            out.status.success(),
            "docker inspect failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
        let text = String::from_utf8_lossy(&out.stdout);
        let (status, code) = text
            .trim()
            .split_once(' ')
            .context("unexpected docker inspect output")?;
        Ok((status.to_string(), code.parse().unwrap_or(-1)))
    }

    async fn wait_healthy(&self, part: Part) -> anyhow::Result<()> {
        match part {
            Part::Service(s) => {
                let url = format!("{}/health/ready", self.endpoints.admin(s));
                wait::until(
                    &format!("{} to be ready", s.name()),
                    Duration::from_secs(90),
                    || {
                        let request = self.http.get(&url).send();
                        async move {
                            match request.await {
                                Ok(r) if r.status().is_success() => Ok(()),
                                Ok(r) => Err(format!("HTTP {}", r.status())),
                                Err(e) => Err(e.to_string()),
                            }
                        }
                    },
                )
                .await?;
            }
            Part::Database(s) => {
                let url = self.endpoints.database(s).to_string();
                wait::until(
                    &format!("the {} database", s.name()),
                    Duration::from_secs(90),
                    || {
                        let url = url.clone();
                        async move {
                            use sqlx::Connection;
                            sqlx::PgConnection::connect(&url)
                                .await
                                .map(|_| ())
                                .map_err(|e| e.to_string())
                        }
                    },
                )
                .await?;
            }
            Part::Emulator => {}
        }
        Ok(())
    }
}

impl Target for ComposeTarget {
    fn kind(&self) -> &'static str {
        "compose"
    }

    fn endpoints(&self) -> &Endpoints {
        &self.endpoints
    }

    fn topology(&self) -> &Topology {
        &self.topology
    }

    async fn kill(&mut self, part: Part) -> anyhow::Result<()> {
        let signal = match part {
            Part::Service(_) => "SIGKILL",
            // Postgres's fast shutdown: SIGTERM would wait for every client.
            Part::Database(_) => "SIGINT",
            Part::Emulator => anyhow::bail!(
                "the emulator keeps its state in memory only: pause it, do not kill it"
            ),
        };
        let service = compose_service(part);
        self.compose(&["kill", "-s", signal, &service]).await?;
        if let Part::Database(_) = part {
            wait::until(
                &format!("{part} to exit"),
                Duration::from_secs(60),
                || async {
                    match self.state(part).await {
                        Ok((s, _)) if s != "running" => Ok(()),
                        Ok((s, _)) => Err(s),
                        Err(e) => Err(e.to_string()),
                    }
                },
            )
            .await?;
        }
        // Marks it stopped by hand, so that the restart policy does not bring
        // it back before the experiment does (and kills it at once if it did).
        self.compose(&["stop", "--timeout", "0", &service]).await?;
        Ok(())
    }

    async fn terminate(&mut self, service: Service) -> anyhow::Result<Exit> {
        let part = Part::Service(service);
        self.compose(&["stop", "--timeout", "30", &compose_service(part)])
            .await?;
        let (_, code) = self.state(part).await?;
        Ok(if code == 0 {
            Exit::Clean
        } else {
            Exit::Unclean(format!("exit code {code}"))
        })
    }

    async fn start(&mut self, part: Part) -> anyhow::Result<()> {
        self.compose(&["start", &compose_service(part)]).await?;
        self.wait_healthy(part).await
    }

    async fn pause(&mut self, part: Part) -> anyhow::Result<()> {
        self.compose(&["pause", &compose_service(part)]).await?;
        Ok(())
    }

    async fn resume(&mut self, part: Part) -> anyhow::Result<()> {
        self.compose(&["unpause", &compose_service(part)]).await?;
        Ok(())
    }

    async fn is_running(&mut self, part: Part) -> anyhow::Result<bool> {
        let (status, _) = self.state(part).await?;
        Ok(status == "running" || status == "paused")
    }

    fn cpu_seconds(&self, _part: Part) -> Option<f64> {
        None
    }

    fn visibility_timeout_secs(&self) -> Option<u32> {
        Some(self.visibility_timeout_secs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_map_to_the_compose_service_names() {
        assert_eq!(compose_service(Part::Service(Service::Invoice)), "invoice");
        assert_eq!(
            compose_service(Part::Database(Service::Invoice)),
            "invoice-db"
        );
        assert_eq!(compose_service(Part::Emulator), "moto");
        let endpoints = published("127.0.0.1");
        assert_eq!(
            endpoints.database(Service::Order),
            "postgres://order_svc:order_svc@127.0.0.1:5433/order"
        );
        assert_eq!(
            endpoints.service(Service::Notification),
            "http://127.0.0.1:8083"
        );
    }
}
