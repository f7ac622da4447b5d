//! The one small interface through which experiments inject faults, and the
//! addresses the load, the probes and the checker use.
//!
//! Two implementations: `local::LocalTarget` (the stack this command starts
//! as plain processes, which it signals) and `compose::ComposeTarget` (a
//! `docker compose` stack, driven with `docker compose kill/stop/start/
//! pause/unpause`). An experiment is written once against `Target`.

use contracts::topology::{Service, Topology};
use harness::observe::Endpoints;
use testkit::proxy::FaultProxy;

/// A part of the system a fault can hit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Part {
    /// A service process.
    Service(Service),
    /// The Postgres server that holds one service's database.
    Database(Service),
    /// The AWS emulator.
    Emulator,
}

impl std::fmt::Display for Part {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Part::Service(s) => write!(f, "the {} service", s.name()),
            Part::Database(s) => write!(f, "the {} database", s.name()),
            Part::Emulator => f.write_str("the emulator"),
        }
    }
}

/// How a process ended after `terminate`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Exit {
    /// Exited with status 0.
    Clean,
    /// Exited otherwise, as described.
    Unclean(String),
}

/// Fault injection on a running stack.
#[allow(async_fn_in_trait)] // experiments are generic over it; never boxed.
pub trait Target {
    /// `local` or `compose`, for reports.
    fn kind(&self) -> &'static str;

    fn endpoints(&self) -> &Endpoints;

    /// The topology the stack runs.
    fn topology(&self) -> &Topology;

    /// Kills the part at once (SIGKILL; a database is stopped immediately).
    async fn kill(&mut self, part: Part) -> anyhow::Result<()>;

    /// Stops a service gracefully (SIGTERM) and reports how it exited.
    async fn terminate(&mut self, service: Service) -> anyhow::Result<Exit>;

    /// Stops the emulator gracefully (SIGTERM) and reports how it exited;
    /// `start(Part::Emulator)` brings it back. Only a target whose emulator
    /// keeps its state across a restart can.
    async fn stop_emulator(&mut self) -> anyhow::Result<Exit> {
        anyhow::bail!("this target cannot restart its emulator")
    }

    /// Starts a killed or stopped part again and waits until it is ready.
    async fn start(&mut self, part: Part) -> anyhow::Result<()>;

    /// Freezes the part (SIGSTOP; `docker compose pause`); its state is kept.
    async fn pause(&mut self, part: Part) -> anyhow::Result<()>;

    async fn resume(&mut self, part: Part) -> anyhow::Result<()>;

    /// Whether the part's process is running (paused counts as running).
    async fn is_running(&mut self, part: Part) -> anyhow::Result<bool>;

    /// CPU seconds the part's process has used, where the target can tell.
    fn cpu_seconds(&self, part: Part) -> Option<f64>;

    /// The fault proxy between `service` and the emulator, if there is one.
    fn proxy_of(&self, _service: Service) -> Option<&FaultProxy> {
        None
    }

    /// The consumers' visibility timeout when the target fixes it itself
    /// (a compose stack); `None` when the plan's value was applied.
    fn visibility_timeout_secs(&self) -> Option<u32> {
        None
    }

    /// How many instances of `service` run (faults hit the first).
    fn instances(&self, _service: Service) -> usize {
        1
    }
}
