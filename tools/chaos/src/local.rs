//! The chaos target this command starts itself: the local stack as plain
//! processes, with one Postgres cluster per service (so one database can be
//! stopped alone), optional extra instances, and an optional fault proxy
//! between the invoice service and the emulator.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::Context;
use contracts::topology::{Service, Topology};
use nix::sys::signal::Signal;
use testkit::emulator::EmulatorKind;
use testkit::proxy::FaultProxy;

use harness::observe::Endpoints;

use super::target::{Exit, Part, Target};
use harness::procfs::process_cpu_seconds;
use harness::stack::{PostgresSource, Stack, StackOptions};

/// How to start the local stack for one experiment.
#[derive(Debug, Clone, Default)]
pub struct LocalOptions {
    pub emulator: EmulatorKind,
    /// Extra environment for one service each (settings an experiment
    /// needs), handed to `StackOptions::with_env` in this order.
    pub env: Vec<(Service, String, String)>,
    /// Put a fault proxy between the invoice service and the emulator.
    pub invoice_proxy: bool,
    /// Run the order service in synchronous invoicing mode.
    pub sync_invoicing: bool,
    /// Start a second instance of these services, with this extra environment.
    pub replicas: Vec<(Service, Vec<(String, String)>)>,
    pub log_dir: PathBuf,
}

impl LocalOptions {
    /// Sets `key=value` for `service` only.
    pub fn with_env(mut self, service: Service, key: &str, value: &str) -> Self {
        self.env.push((service, key.to_string(), value.to_string()));
        self
    }
}

/// How long a graceful stop of the emulator may take before it is killed
/// (and, killed, loses its state).
const EMULATOR_STOP_BOUND: std::time::Duration = std::time::Duration::from_secs(30);

pub struct LocalTarget {
    pub stack: Stack,
    endpoints: Endpoints,
    /// Between the invoice service and the emulator, when asked for.
    pub invoice_proxy: Option<FaultProxy>,
}

impl LocalTarget {
    pub async fn start(options: LocalOptions) -> anyhow::Result<LocalTarget> {
        let emulator_port = testkit::free_port()?;
        let ports: BTreeMap<&'static str, u16> = Service::ALL
            .iter()
            .map(|s| Ok((s.name(), testkit::free_port()?)))
            .collect::<std::io::Result<_>>()?;
        let invoice_proxy = if options.invoice_proxy {
            Some(FaultProxy::start(([127, 0, 0, 1], emulator_port).into()).await?)
        } else {
            None
        };
        std::fs::create_dir_all(&options.log_dir)?;
        let mut stack_options = StackOptions {
            postgres: PostgresSource::EphemeralPerService,
            emulator: options.emulator,
            emulator_port: Some(emulator_port),
            service_ports: Some(ports.clone()),
            database_prefix: String::new(),
            service_env: vec![],
            orders_chain: contracts::topology::Chain::Standard,
            env_for: BTreeMap::new(),
            log_dir: options.log_dir.clone(),
        };
        for (service, key, value) in &options.env {
            stack_options = stack_options.with_env(*service, key, value);
        }
        if let Some(proxy) = &invoice_proxy {
            stack_options =
                stack_options.with_env(Service::Invoice, "AWS_ENDPOINT_URL", &proxy.url());
        }
        if options.sync_invoicing {
            // The order service's documented settings for the synchronous
            // mode (README, configuration): the tool drives the service
            // through its environment, not its code.
            let invoice_url = format!("http://127.0.0.1:{}", ports[Service::Invoice.name()]);
            stack_options = stack_options
                .with_env(Service::Order, "ORDER_INVOICING", "sync")
                .with_env(Service::Order, "INVOICE_SERVICE_URL", &invoice_url);
        }
        let mut stack = Stack::start(stack_options).await?;
        for (service, extra) in &options.replicas {
            let extra: Vec<(&str, &str)> = extra
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            stack.add_replica(*service, &extra).await?;
        }
        let endpoints = stack.endpoints();
        Ok(LocalTarget {
            stack,
            endpoints,
            invoice_proxy,
        })
    }

    fn cluster(&mut self, service: Service) -> anyhow::Result<&mut testkit::postgres::Cluster> {
        self.stack
            .database_cluster(service)
            .with_context(|| format!("the {} database has no cluster of its own", service.name()))
    }

    /// Stops everything gracefully.
    pub async fn shutdown(self) -> anyhow::Result<()> {
        self.stack.shutdown().await?;
        Ok(())
    }
}

impl Target for LocalTarget {
    fn kind(&self) -> &'static str {
        "local"
    }

    fn endpoints(&self) -> &Endpoints {
        &self.endpoints
    }

    fn topology(&self) -> &Topology {
        &self.stack.topology
    }

    async fn kill(&mut self, part: Part) -> anyhow::Result<()> {
        match part {
            Part::Service(s) => {
                self.stack.service(s).stop(Signal::SIGKILL).await?;
            }
            Part::Database(s) => self.cluster(s)?.stop_server().await?,
            Part::Emulator => anyhow::bail!(
                "the emulator keeps its state in memory only: pause it, do not kill it"
            ),
        }
        Ok(())
    }

    async fn terminate(&mut self, service: Service) -> anyhow::Result<Exit> {
        let status = self
            .stack
            .service(service)
            .stop(Signal::SIGTERM)
            .await?
            .with_context(|| format!("{} was not running", service.name()))?;
        Ok(if status.success() {
            Exit::Clean
        } else {
            Exit::Unclean(status.to_string())
        })
    }

    async fn stop_emulator(&mut self) -> anyhow::Result<Exit> {
        let kind = self.stack.emulator.kind();
        anyhow::ensure!(
            kind.keeps_state_across_restart(),
            "{kind} keeps its state in memory only: a restart would erase every queue"
        );
        let status = self.stack.emulator.stop(EMULATOR_STOP_BOUND).await?;
        Ok(if status.success() {
            Exit::Clean
        } else {
            Exit::Unclean(status.to_string())
        })
    }

    async fn start(&mut self, part: Part) -> anyhow::Result<()> {
        match part {
            Part::Service(s) => {
                let http = self.stack.http.clone();
                self.stack.service(s).restart(&http).await?;
            }
            Part::Database(s) => self.cluster(s)?.start_server().await?,
            Part::Emulator => self.stack.emulator.start_again().await?,
        }
        Ok(())
    }

    async fn pause(&mut self, part: Part) -> anyhow::Result<()> {
        match part {
            Part::Service(s) => self.stack.service(s).signal(Signal::SIGSTOP)?,
            Part::Emulator => self.stack.emulator.pause()?,
            Part::Database(_) => anyhow::bail!("pausing a database is not supported; kill it"),
        }
        Ok(())
    }

    async fn resume(&mut self, part: Part) -> anyhow::Result<()> {
        match part {
            Part::Service(s) => self.stack.service(s).signal(Signal::SIGCONT)?,
            Part::Emulator => self.stack.emulator.resume()?,
            Part::Database(_) => anyhow::bail!("pausing a database is not supported; kill it"),
        }
        Ok(())
    }

    async fn is_running(&mut self, part: Part) -> anyhow::Result<bool> {
        Ok(match part {
            Part::Service(s) => self.stack.service(s).is_running(),
            Part::Emulator => matches!(self.stack.emulator.process().try_wait(), Ok(None)),
            Part::Database(s) => self.cluster(s)?.pid().is_some(),
        })
    }

    fn proxy_of(&self, service: Service) -> Option<&FaultProxy> {
        match service {
            Service::Invoice => self.invoice_proxy.as_ref(),
            _ => None,
        }
    }

    fn instances(&self, service: Service) -> usize {
        1 + self
            .stack
            .replicas
            .iter()
            .filter(|r| r.service == service)
            .count()
    }

    fn cpu_seconds(&self, part: Part) -> Option<f64> {
        let pid = match part {
            Part::Service(s) => self.stack.services.get(s.name())?.pid()?,
            Part::Emulator => return None,
            Part::Database(_) => return None,
        };
        process_cpu_seconds(pid)
    }
}
