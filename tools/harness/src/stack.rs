//! The whole system as real processes on this machine.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use std::sync::Arc;

use anyhow::Context;
use contracts::topology::{Chain, Service, Topology};
use nix::sys::signal::Signal;
use testkit::emulator::{Emulator, EmulatorKind};
use testkit::postgres::{self, Cluster};
use testkit::process::ChildGuard;
use testkit::wait;

use crate::issuer::Issuer;

/// Where Postgres comes from.
#[derive(Debug, Clone)]
pub enum PostgresSource {
    /// A fresh cluster in a temporary directory, removed afterwards.
    Ephemeral,
    /// A fresh cluster per service, as in production, so that one service's
    /// database can be stopped while the others run (chaos experiments).
    EphemeralPerService,
    /// An existing server, through a superuser URL; databases are created on it.
    External { admin_url: String },
}

#[derive(Debug, Clone)]
pub struct StackOptions {
    pub postgres: PostgresSource,
    /// Which AWS emulator answers.
    pub emulator: EmulatorKind,
    /// Fixed ports (the demo) or free ones (`None`, the tests).
    pub emulator_port: Option<u16>,
    pub service_ports: Option<BTreeMap<&'static str, u16>>,
    /// Prefix of database and role names, so stacks can share one server.
    pub database_prefix: String,
    /// Extra environment for every service (RUST_LOG, tuning).
    pub service_env: Vec<(String, String)>,
    /// The kind of order chain (standard or FIFO) provisioned and used.
    pub orders_chain: Chain,
    /// Extra environment for one service, applied after `service_env`
    /// (fail points, a webhook URL).
    pub env_for: BTreeMap<&'static str, Vec<(String, String)>>,
    pub log_dir: PathBuf,
}

impl StackOptions {
    /// Free ports, an ephemeral cluster, the emulator `STACK_EMULATOR` names
    /// (MiniStack by default), logs in a fresh temporary directory.
    pub fn for_test(name: &str) -> anyhow::Result<StackOptions> {
        let log_dir = std::env::temp_dir().join(format!("stack-{name}-{}", uuid::Uuid::now_v7()));
        std::fs::create_dir_all(&log_dir)?;
        Ok(StackOptions {
            postgres: PostgresSource::Ephemeral,
            emulator: EmulatorKind::from_env().map_err(anyhow::Error::msg)?,
            emulator_port: None,
            service_ports: None,
            database_prefix: String::new(),
            service_env: vec![("SQS_WAIT_TIME_SECONDS".into(), "2".into())],
            orders_chain: Chain::Standard,
            env_for: BTreeMap::new(),
            log_dir,
        })
    }

    /// Runs the order events on `chain`.
    pub fn with_orders_chain(mut self, chain: Chain) -> Self {
        self.orders_chain = chain;
        self
    }

    /// Sets `key=value` for every service.
    pub fn with_service_env(mut self, key: &str, value: &str) -> Self {
        self.service_env.retain(|(k, _)| k != key);
        self.service_env.push((key.to_string(), value.to_string()));
        self
    }

    /// Sets `key=value` for one service only.
    pub fn with_env(mut self, service: Service, key: &str, value: &str) -> Self {
        self.env_for
            .entry(service.name())
            .or_default()
            .push((key.to_string(), value.to_string()));
        self
    }
}

/// The variables of the caller's environment that the services it starts
/// should see too (they start with a cleared one): the OpenTelemetry SDK's
/// `OTEL_*`, so a trace backend set for the demo receives the services'
/// spans, `RUST_LOG` and `LOG_FORMAT`. `OTEL_SERVICE_NAME` stays behind: each
/// service names itself, and one name for all three would merge them.
pub fn forwarded_env(vars: impl IntoIterator<Item = (String, String)>) -> Vec<(String, String)> {
    vars.into_iter()
        .filter(|(key, _)| {
            (key.starts_with("OTEL_") && key != "OTEL_SERVICE_NAME")
                || key == "RUST_LOG"
                || key == "LOG_FORMAT"
        })
        .collect()
}

/// One service process and how to start it again.
pub struct ServiceProcess {
    pub service: Service,
    /// The API's port.
    pub port: u16,
    /// The admin port: health and metrics.
    pub admin_port: u16,
    binary: PathBuf,
    env: Vec<(String, String)>,
    log: PathBuf,
    process: Option<ChildGuard>,
}

impl ServiceProcess {
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Where the health endpoints and `/metrics` answer.
    pub fn admin_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.admin_port)
    }

    fn spawn(&mut self) -> anyhow::Result<()> {
        let mut command = Command::new(&self.binary);
        command.env_clear();
        for key in ["PATH", "HOME"] {
            if let Some(v) = std::env::var_os(key) {
                command.env(key, v);
            }
        }
        command.envs(self.env.iter().map(|(k, v)| (k, v)));
        self.process = Some(ChildGuard::spawn(self.service.name(), command, &self.log)?);
        Ok(())
    }

    /// Waits until `/health/ready` answers 200, or the process exits.
    pub async fn wait_ready(
        &mut self,
        http: &reqwest::Client,
        deadline: Duration,
    ) -> anyhow::Result<()> {
        let url = format!("{}/health/ready", self.admin_url());
        let name = self.service.name();
        let result = wait::until(&format!("{name} to be ready"), deadline, || {
            let exited = self.process.as_mut().map(|p| p.try_wait()).transpose();
            let request = http.get(&url).send();
            async move {
                if let Ok(Some(Some(status))) = exited {
                    return Err(format!("{name} exited with {status}"));
                }
                match request.await {
                    Ok(r) if r.status().is_success() => Ok(()),
                    Ok(r) => Err(format!("HTTP {}", r.status())),
                    Err(e) => Err(e.to_string()),
                }
            }
        })
        .await;
        result.map_err(|e| anyhow::anyhow!("{e}\n--- {name} log ---\n{}", self.log_tail(30)))
    }

    /// The environment it runs with (a Lambda function of the service takes
    /// the same).
    pub fn env(&self) -> &[(String, String)] {
        &self.env
    }

    /// The process id while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.process.as_ref().map(|p| p.pid())
    }

    /// Whether the process is running (a stopped, SIGSTOPped one counts).
    pub fn is_running(&mut self) -> bool {
        matches!(self.process.as_mut().map(|p| p.try_wait()), Some(Ok(None)))
    }

    /// Sends `signal` to the process (SIGSTOP, SIGCONT, SIGKILL, SIGTERM).
    pub fn signal(&self, signal: Signal) -> anyhow::Result<()> {
        let p = self.process.as_ref().context("service is not running")?;
        p.signal(signal).context("signal")
    }

    /// Stops the process with `signal` and waits for it to exit.
    pub async fn stop(
        &mut self,
        signal: Signal,
    ) -> anyhow::Result<Option<std::process::ExitStatus>> {
        match self.process.take() {
            Some(mut p) => Ok(Some(p.stop(signal, Duration::from_secs(30)).await?)),
            None => Ok(None),
        }
    }

    /// Waits until the process exits by itself (a fail point killed it, say)
    /// and returns how it ended.
    pub async fn wait_exit(
        &mut self,
        deadline: Duration,
    ) -> anyhow::Result<std::process::ExitStatus> {
        let name = self.service.name();
        let process = self.process.as_mut().context("service is not running")?;
        let status = wait::until(&format!("{name} to exit"), deadline, || {
            let state = process.try_wait();
            async move {
                match state {
                    Ok(Some(status)) => Ok(status),
                    Ok(None) => Err("still running".to_string()),
                    Err(e) => Err(e.to_string()),
                }
            }
        })
        .await
        .map_err(|e| anyhow::anyhow!("{e}\n--- {name} log ---\n{}", self.log_tail(30)))?;
        self.process = None;
        Ok(status)
    }

    /// Sets (or replaces) a variable for the next start of the process.
    pub fn set_env(&mut self, key: &str, value: &str) {
        self.remove_env(key);
        self.env.push((key.to_string(), value.to_string()));
    }

    /// Removes a variable for the next start of the process.
    pub fn remove_env(&mut self, key: &str) {
        self.env.retain(|(k, _)| k != key);
    }

    /// Starts the process again with the same environment and port.
    pub async fn restart(&mut self, http: &reqwest::Client) -> anyhow::Result<()> {
        self.stop(Signal::SIGKILL).await?;
        self.spawn()?;
        self.wait_ready(http, Duration::from_secs(60)).await
    }

    pub fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    pub fn log_path(&self) -> &Path {
        &self.log
    }
}

pub struct Stack {
    pub emulator: Emulator,
    /// The ephemeral clusters: one shared (`"shared"`) or one per service
    /// (by service name); none on an external server.
    pub clusters: BTreeMap<&'static str, Cluster>,
    pub services: BTreeMap<&'static str, ServiceProcess>,
    /// Second instances started with `add_replica`, sharing their service's
    /// database and queues.
    pub replicas: Vec<ServiceProcess>,
    pub database_urls: BTreeMap<&'static str, String>,
    pub provisioned: infra::Provisioned,
    /// What was provisioned, by name: the services run on the same declaration.
    pub topology: Topology,
    pub http: reqwest::Client,
    /// The local token issuer the services trust (`crate::issuer`).
    pub issuer: Arc<Issuer>,
    pub log_dir: PathBuf,
}

/// A running stack as `Stack::describe` writes it down.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct StackDescription {
    /// Each service's base URL and process id, by name.
    pub services: BTreeMap<String, DescribedService>,
    /// The emulator's kind (`moto`, `moto-stock`, `fakecloud`, `ministack`, `localstack`).
    pub emulator: String,
    pub emulator_url: String,
    pub emulator_pid: u32,
    /// Each service's database URL, by service name.
    pub databases: BTreeMap<String, String>,
    /// Superuser URLs of the ephemeral Postgres servers (`shared`, or one per
    /// service name); empty on an external server.
    pub postgres_admin_urls: BTreeMap<String, String>,
    pub postgres_pids: Vec<u32>,
    /// `standard` or `fifo`.
    pub orders_chain: String,
    /// The local issuer and its current key, so that a tool in another
    /// process can mint tokens the services accept (a development stack
    /// only: this file then holds a private key).
    #[serde(default)]
    pub issuer: Option<DescribedIssuer>,
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct DescribedService {
    pub url: String,
    /// The admin port's base URL (health, metrics).
    #[serde(default)]
    pub admin_url: String,
    pub pid: Option<u32>,
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct DescribedIssuer {
    pub url: String,
    pub kid: String,
    /// The ES256 private key, PKCS #8 DER.
    pub pkcs8: Vec<u8>,
}

impl DescribedIssuer {
    pub fn minter(&self) -> anyhow::Result<crate::issuer::Minter> {
        Ok(crate::issuer::Minter {
            issuer: self.url.clone(),
            key: Arc::new(crate::issuer::SigningKey::from_es256_pkcs8(
                &self.kid,
                &self.pkcs8,
            )?),
        })
    }
}

/// The directory holding the service binaries: next to the running executable
/// (a test in `target/<profile>/deps`, or the demo in `target/<profile>`), or
/// `STACK_BIN_DIR`.
pub fn bin_dir() -> anyhow::Result<PathBuf> {
    if let Some(dir) = std::env::var_os("STACK_BIN_DIR") {
        return Ok(PathBuf::from(dir));
    }
    let exe = std::env::current_exe()?;
    let mut dir = exe
        .parent()
        .context("executable has no directory")?
        .to_path_buf();
    if dir.ends_with("deps") {
        dir.pop();
    }
    Ok(dir)
}

/// The folder under the binaries' directory that holds the services built with
/// fail points (`scripts/build-failpoint-services.sh`). The plain builds, which
/// the demo and the Dockerfile make, never carry them.
pub const FAILPOINTS_DIR: &str = "failpoints";

/// The binary to run `service` with `env`: the fail-point build when `env`
/// arms fail points, the plain one otherwise.
fn service_binary(
    bins: &Path,
    service: Service,
    env: &[(String, String)],
) -> anyhow::Result<PathBuf> {
    let name = format!("{}-service", service.name());
    let (binary, build) = if env.iter().any(|(k, _)| k == platform::failpoints::VARIABLE) {
        (
            bins.join(FAILPOINTS_DIR).join(&name),
            "scripts/build-failpoint-services.sh (add --release for a release stack)",
        )
    } else {
        (bins.join(&name), "cargo build --workspace --bins")
    };
    anyhow::ensure!(
        binary.exists(),
        "{} is missing: build it first ({build})",
        binary.display()
    );
    Ok(binary)
}

/// The key of the one cluster of an `Ephemeral` stack.
const SHARED_CLUSTER: &str = "shared";

/// Starts the ephemeral clusters `source` asks for, side by side.
async fn start_clusters(
    source: &PostgresSource,
    log_dir: &Path,
) -> anyhow::Result<BTreeMap<&'static str, Cluster>> {
    let start = |name: &'static str| async move {
        let dir = log_dir.join(format!("postgres-{name}"));
        std::fs::create_dir_all(&dir)?;
        anyhow::Ok((name, Cluster::start(&dir).await?))
    };
    let started = match source {
        PostgresSource::External { .. } => vec![],
        PostgresSource::Ephemeral => vec![start(SHARED_CLUSTER).await?],
        PostgresSource::EphemeralPerService => {
            let [order, invoice, notification] = Service::ALL.map(|s| s.name());
            let (a, b, c) = tokio::join!(start(order), start(invoice), start(notification));
            vec![a?, b?, c?]
        }
    };
    Ok(started.into_iter().collect())
}

/// The AWS configuration for talking to the emulator with test credentials.
pub async fn emulator_config(endpoint: &str) -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_sqs::config::Credentials::new(
            "test", "test", None, None, "emulator",
        ))
        .load()
        .await
}

impl Stack {
    /// Starts everything and waits until every service is ready.
    pub async fn start(options: StackOptions) -> anyhow::Result<Stack> {
        let bins = bin_dir()?;
        let log_dir = options.log_dir.clone();
        std::fs::create_dir_all(&log_dir)?;

        let (emulator, clusters) = tokio::join!(
            Emulator::start(options.emulator, options.emulator_port, &log_dir),
            start_clusters(&options.postgres, &log_dir)
        );
        let (emulator, clusters) = (emulator?, clusters?);
        let admin_url_of = |service: Service| -> String {
            match &options.postgres {
                PostgresSource::External { admin_url } => admin_url.clone(),
                PostgresSource::Ephemeral => clusters[SHARED_CLUSTER].admin_url(),
                PostgresSource::EphemeralPerService => clusters[service.name()].admin_url(),
            }
        };

        let mut database_urls = BTreeMap::new();
        for service in Service::ALL {
            let database = format!("{}{}", options.database_prefix, service.name());
            let role = format!("{}{}_svc", options.database_prefix, service.name());
            // Local-only credentials: trust authentication on loopback.
            let url =
                postgres::create_database(&admin_url_of(service), &database, &role, &role).await?;
            database_urls.insert(service.name(), url);
        }

        let sdk = emulator_config(&emulator.endpoint()).await;
        let topology = Topology::declare(options.orders_chain);
        let provisioned = infra::apply(&infra::Clients::from_config(&sdk), &topology).await?;

        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()?;
        let issuer = Arc::new(Issuer::start().await?);
        let mut services = BTreeMap::new();
        for service in Service::ALL {
            let port = match &options.service_ports {
                Some(ports) => *ports.get(service.name()).context("no port for a service")?,
                None => testkit::free_port()?,
            };
            let admin_port = testkit::free_port()?;
            let mut env: Vec<(String, String)> = vec![
                ("PORT".into(), port.to_string()),
                ("ADMIN_PORT".into(), admin_port.to_string()),
                // The load tools send from many customers at once, some from
                // one; the edge tests set their own limit.
                ("RATE_LIMIT_PER_SECOND".into(), "100000".into()),
                ("RATE_LIMIT_BURST".into(), "100000".into()),
                ("DATABASE_URL".into(), database_urls[service.name()].clone()),
                ("AWS_ENDPOINT_URL".into(), emulator.endpoint()),
                ("AWS_REGION".into(), "us-east-1".into()),
                ("AWS_ACCESS_KEY_ID".into(), "test".into()),
                ("AWS_SECRET_ACCESS_KEY".into(), "test".into()),
                ("RUST_LOG".into(), "info".into()),
                (Chain::VARIABLE.into(), options.orders_chain.to_string()),
            ];
            env.extend(issuer.service_env());
            if service == Service::Order {
                env.extend(issuer.order_client_env());
            }
            env.extend(options.service_env.iter().cloned());
            if let Some(extra) = options.env_for.get(service.name()) {
                for (key, value) in extra {
                    env.retain(|(k, _)| k != key);
                    env.push((key.clone(), value.clone()));
                }
            }
            let binary = service_binary(&bins, service, &env)?;
            let mut process = ServiceProcess {
                service,
                port,
                admin_port,
                binary,
                env,
                log: log_dir.join(format!("{}.log", service.name())),
                process: None,
            };
            process.spawn()?;
            services.insert(service.name(), process);
        }
        for process in services.values_mut() {
            process.wait_ready(&http, Duration::from_secs(60)).await?;
        }
        Ok(Stack {
            emulator,
            clusters,
            services,
            replicas: Vec::new(),
            database_urls,
            provisioned,
            topology,
            http,
            issuer,
            log_dir,
        })
    }

    /// The cluster that holds only `service`'s database (a per-service stack).
    pub fn database_cluster(&mut self, service: Service) -> Option<&mut Cluster> {
        self.clusters.get_mut(service.name())
    }

    pub fn service(&mut self, service: Service) -> &mut ServiceProcess {
        self.services
            .get_mut(service.name())
            .expect("every service is started")
    }

    pub fn url(&self, service: Service) -> String {
        self.services[service.name()].url()
    }

    /// Where `service`'s health endpoints and `/metrics` answer.
    pub fn admin_url(&self, service: Service) -> String {
        self.services[service.name()].admin_url()
    }

    /// Where everything answers, with a minter of this stack's issuer.
    pub fn endpoints(&self) -> crate::observe::Endpoints {
        crate::observe::Endpoints {
            services: Service::ALL
                .iter()
                .map(|s| (s.name(), self.url(*s)))
                .collect(),
            admin: Service::ALL
                .iter()
                .map(|s| (s.name(), self.admin_url(*s)))
                .collect(),
            minter: Some(self.issuer.minter()),
            emulator: self.emulator.endpoint(),
            databases: self.database_urls.clone(),
        }
    }

    /// Starts one more instance of `service` on a free port, with the same
    /// environment plus `extra`, and waits until it is ready: a replica that
    /// shares the database and the queues, as a second pod would.
    pub async fn add_replica(
        &mut self,
        service: Service,
        extra: &[(&str, &str)],
    ) -> anyhow::Result<&mut ServiceProcess> {
        let first = &self.services[service.name()];
        let port = testkit::free_port()?;
        let admin_port = testkit::free_port()?;
        let mut env = first.env.clone();
        let ports = [
            ("PORT", port.to_string()),
            ("ADMIN_PORT", admin_port.to_string()),
        ];
        let ports: Vec<(&str, &str)> = ports.iter().map(|(k, v)| (*k, v.as_str())).collect();
        for (key, value) in extra.iter().chain(&ports) {
            env.retain(|(k, _)| k != key);
            env.push((key.to_string(), value.to_string()));
        }
        let mut replica = ServiceProcess {
            service,
            port,
            admin_port,
            binary: first.binary.clone(),
            env,
            log: self.log_dir.join(format!(
                "{}-replica-{}.log",
                service.name(),
                self.replicas.len() + 1
            )),
            process: None,
        };
        replica.spawn()?;
        replica
            .wait_ready(&self.http, Duration::from_secs(60))
            .await?;
        self.replicas.push(replica);
        self.replicas
            .last_mut()
            .context("the replica was just added")
    }

    /// Where everything answers and which processes run it, for a tool
    /// that drives this stack from outside (`bench --running`).
    pub fn describe(&mut self) -> StackDescription {
        StackDescription {
            services: self
                .services
                .iter()
                .map(|(name, p)| {
                    (
                        name.to_string(),
                        DescribedService {
                            url: p.url(),
                            admin_url: p.admin_url(),
                            pid: p.pid(),
                        },
                    )
                })
                .collect(),
            emulator: self.emulator.kind().to_string(),
            emulator_url: self.emulator.endpoint(),
            emulator_pid: self.emulator.process().pid(),
            databases: self
                .database_urls
                .iter()
                .map(|(name, url)| (name.to_string(), url.clone()))
                .collect(),
            postgres_admin_urls: self
                .clusters
                .iter()
                .map(|(name, c)| (name.to_string(), c.admin_url()))
                .collect(),
            postgres_pids: self.clusters.values().filter_map(|c| c.pid()).collect(),
            orders_chain: if self.topology.topics.iter().any(|t| t.fifo) {
                Chain::Fifo.to_string()
            } else {
                Chain::Standard.to_string()
            },
            issuer: {
                let key = self.issuer.current_key();
                Some(DescribedIssuer {
                    url: self.issuer.url(),
                    kid: key.kid.clone(),
                    pkcs8: key.pkcs8.clone(),
                })
            },
        }
    }

    /// The last lines of every log, for a failure message.
    pub fn logs(&self, lines: usize) -> String {
        self.services
            .values()
            .map(|s| {
                format!(
                    "--- {} ({}) ---\n{}",
                    s.service.name(),
                    s.log_path().display(),
                    s.log_tail(lines)
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Stops every service with SIGTERM (graceful), then the emulator and Postgres.
    pub async fn shutdown(
        mut self,
    ) -> anyhow::Result<BTreeMap<&'static str, Option<std::process::ExitStatus>>> {
        let mut statuses = BTreeMap::new();
        // Every process is told at once, then each is waited for: a stopping
        // consumer lets its long poll run out (up to SQS_WAIT_TIME_SECONDS),
        // and one after the other the stops would add up.
        for process in self.replicas.iter().chain(self.services.values()) {
            // One that is not running has nothing to stop; `stop` says so.
            process.signal(Signal::SIGTERM).ok();
        }
        for replica in self.replicas.iter_mut() {
            replica.stop(Signal::SIGTERM).await?;
        }
        for (name, process) in self.services.iter_mut() {
            statuses.insert(*name, process.stop(Signal::SIGTERM).await?);
        }
        for cluster in self.clusters.values_mut() {
            cluster.stop_server().await?;
        }
        Ok(statuses)
    }
}

#[cfg(test)]
mod tests {
    use super::forwarded_env;

    #[test]
    fn the_exporter_and_log_settings_are_forwarded_and_nothing_else() {
        let vars = [
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318"),
            ("OTEL_TRACES_SAMPLER", "always_on"),
            ("OTEL_SERVICE_NAME", "demo"),
            ("RUST_LOG", "debug"),
            ("LOG_FORMAT", "json"),
            ("DATABASE_URL", "postgres://elsewhere"),
            ("AWS_SECRET_ACCESS_KEY", "not-for-the-services"),
            ("XOTEL_EXPORTER", "no"),
        ]
        .map(|(k, v)| (k.to_string(), v.to_string()));
        let forwarded: Vec<String> = forwarded_env(vars).into_iter().map(|(k, _)| k).collect();
        assert_eq!(
            forwarded,
            [
                "OTEL_EXPORTER_OTLP_ENDPOINT",
                "OTEL_TRACES_SAMPLER",
                "RUST_LOG",
                "LOG_FORMAT"
            ]
        );
    }
}
