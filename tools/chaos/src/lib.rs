//! Chaos experiments: the message-driven promise, tested by breaking things.
//!
//! An experiment states a hypothesis about the steady state, injects one
//! fault for a bounded time under an open-loop order load, heals it, and then
//! judges the whole run: the experiment's own criteria (orders still accepted,
//! latency, readiness, no crash...) and a Jepsen-style checker over the
//! history of every request against the final state of all three services.
//!
//! - `plan`: how big a run is (short for the test suite, long by default).
//! - `target`: the fault-injection interface, with `local` (processes this
//!   command starts and signals) and `compose` (`docker compose` commands).
//! - `load`: the open-loop load and its history of ok / fail / unknown
//!   (`harness::load`, shared with the benchmark).
//! - `harness::observe`: reading databases, queues and health from outside.
//! - `experiment`: the named experiments; `method`: the steps they all follow;
//!   `faults`: what each one breaks; `plant`: the duplicates and poison put
//!   in on purpose; `verify`: each experiment's own criteria.
//! - `broker_restart`: `emulator-restart`, the broker itself stopped and
//!   started again (on an emulator that keeps its state).
//! - `compare`: `sync-vs-async`, the same outage against both designs.
//! - `checker`: the verdict over the history.
//! - `report`, `chart`: Markdown, JSON and an SVG timeline per run.

pub mod broker_restart;
pub mod buffer;
pub mod chart;
pub mod checker;
pub mod compare;
pub mod compose;
pub mod experiment;
pub mod faults;
pub mod local;
pub mod method;
pub mod plan;
pub mod plant;
pub mod report;
pub mod target;
pub mod verify;

pub use harness::load;

pub use experiment::Experiment;
pub use method::RunLabels;
pub use plan::Plan;

use std::path::Path;

use compose::{ComposeOptions, ComposeTarget};
use local::{LocalOptions, LocalTarget};

/// Where an experiment runs.
#[derive(Debug, Clone)]
pub enum Where {
    /// A local stack started for the experiment (and stopped after it).
    Local(LocalOptions),
    /// A running docker compose stack.
    Compose(ComposeOptions),
}

/// Runs one experiment and returns whether it passed, with the reports'
/// locations printed along the way.
pub async fn run_one(
    experiment: Experiment,
    place: &Where,
    plan: &Plan,
    results: &Path,
) -> anyhow::Result<bool> {
    if let Where::Local(options) = place
        && let Some(reason) = experiment.refuses(options.emulator)
    {
        anyhow::bail!(reason);
    }
    match place {
        Where::Local(options) if experiment == Experiment::SyncVsAsync => Ok(
            compare::compare_sync_and_async(plan, options.clone(), results)
                .await?
                .passed,
        ),
        Where::Local(options) => {
            let options = experiment.local_options(
                plan,
                LocalOptions {
                    log_dir: options.log_dir.join(experiment.name()),
                    ..options.clone()
                },
            );
            let emulator = options.emulator.to_string();
            let mut target = LocalTarget::start(options).await?;
            let labels = RunLabels {
                emulator,
                variant: None,
            };
            let report = method::run(&mut target, experiment, plan, &labels, results).await;
            target.shutdown().await?;
            Ok(report?.passed)
        }
        Where::Compose(options) => {
            anyhow::ensure!(
                experiment.runs_on("compose"),
                "{experiment} needs the local stack (it sets the stack up itself)"
            );
            let mut target = ComposeTarget::connect(options.clone()).await?;
            let labels = RunLabels {
                emulator: "the compose stack's emulator".into(),
                variant: None,
            };
            Ok(method::run(&mut target, experiment, plan, &labels, results)
                .await?
                .passed)
        }
    }
}
