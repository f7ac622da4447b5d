//! `chaos`: runs named chaos experiments and writes their reports.
//!
//!     chaos --list
//!     chaos invoice-down                      # the long version, on a local stack it starts
//!     chaos invoice-down --short --rate 40    # seconds, not minutes
//!     chaos all --short                       # every experiment, one after the other
//!     chaos invoice-down --target compose     # against `docker compose up --wait`
//!
//! Reports go to `results/chaos/<time>-<experiment>/` (report.md,
//! verdict.json, history.json, timeline.svg). The exit status is 1 when any
//! experiment fails, 2 on a usage error or when a named experiment cannot run
//! on the chosen emulator (`emulator-restart` needs one that keeps its state).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use chaos::compose::ComposeOptions;
use chaos::local::LocalOptions;
use chaos::{Experiment, Plan, Where};
use clap::{Parser, ValueEnum};
use testkit::emulator::EmulatorKind;

#[derive(Parser)]
#[command(about = "Run chaos experiments against the local stack or a docker compose stack")]
struct Args {
    /// Experiments to run, or `all`.
    experiments: Vec<String>,
    /// List the experiments with their hypotheses and exit.
    #[arg(long)]
    list: bool,
    /// `local`: start a fresh stack of processes per experiment; `compose`:
    /// use the running `docker compose` stack.
    #[arg(long, default_value = "local")]
    target: TargetKind,
    /// The short plan (seconds per experiment) instead of the long one.
    #[arg(long)]
    short: bool,
    /// Orders per second.
    #[arg(long)]
    rate: Option<f64>,
    /// Seconds of load before the fault.
    #[arg(long)]
    warmup_secs: Option<f64>,
    /// Seconds the fault lasts.
    #[arg(long)]
    fault_secs: Option<f64>,
    /// Seconds of load after the fault heals.
    #[arg(long)]
    recovery_secs: Option<f64>,
    /// Bound on draining after the load stops, in seconds.
    #[arg(long)]
    drain_secs: Option<f64>,
    /// Kills in `invoice-crash-loop`.
    #[arg(long)]
    kills: Option<u32>,
    /// Seed of the random kill moments.
    #[arg(long)]
    seed: Option<u64>,
    /// The emulator of the local stack.
    #[arg(long, env = "STACK_EMULATOR", default_value_t = EmulatorKind::default())]
    emulator: EmulatorKind,
    /// Where reports go.
    #[arg(long, default_value = "results/chaos")]
    results: PathBuf,
    /// Where the local stack's logs go.
    #[arg(long, default_value = ".stack/chaos-logs")]
    log_dir: PathBuf,
    /// The compose file of `--target compose`.
    #[arg(long, default_value = "docker-compose.yml")]
    compose_file: PathBuf,
}

#[derive(Clone, Copy, ValueEnum)]
enum TargetKind {
    Local,
    Compose,
}

impl Args {
    fn plan(&self) -> Plan {
        let mut plan = if self.short {
            Plan::short()
        } else {
            Plan::long()
        };
        let secs = Duration::from_secs_f64;
        if let Some(r) = self.rate {
            plan.rate = r;
        }
        if let Some(s) = self.warmup_secs {
            plan.warmup = secs(s);
        }
        if let Some(s) = self.fault_secs {
            plan.fault = secs(s);
        }
        if let Some(s) = self.recovery_secs {
            plan.recovery = secs(s);
        }
        if let Some(s) = self.drain_secs {
            plan.drain_deadline = secs(s);
        }
        if let Some(k) = self.kills {
            plan.kills = k;
        }
        if let Some(s) = self.seed {
            plan.seed = s;
        }
        plan
    }

    fn experiments(&self) -> Result<Vec<Experiment>, String> {
        let mut chosen = Vec::new();
        for name in &self.experiments {
            if name == "all" {
                chosen.extend(Experiment::ALL);
            } else {
                chosen.push(Experiment::from_str(name, false).map_err(|_| {
                    format!("unknown experiment '{name}'; `chaos --list` shows them")
                })?);
            }
        }
        Ok(chosen)
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> ExitCode {
    let args = Args::parse();
    if args.list {
        for e in Experiment::ALL {
            println!("{:<24} {}", e.name(), e.hypothesis());
        }
        return ExitCode::SUCCESS;
    }
    let experiments = match args.experiments() {
        Ok(e) if !e.is_empty() => e,
        Ok(_) => {
            eprintln!("name an experiment, or `all`; `chaos --list` shows them");
            return ExitCode::from(2);
        }
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let place = match args.target {
        TargetKind::Local => Where::Local(LocalOptions {
            emulator: args.emulator,
            log_dir: args.log_dir.clone(),
            ..LocalOptions::default()
        }),
        TargetKind::Compose => Where::Compose(ComposeOptions {
            file: args.compose_file.clone(),
            ..ComposeOptions::default()
        }),
    };
    // Named, an experiment this emulator cannot take is refused; as part of
    // `all`, it is skipped with the same reason.
    let refused = |experiment: Experiment| match &place {
        Where::Local(options) => experiment.refuses(options.emulator),
        Where::Compose(_) => None,
    };
    for name in args.experiments.iter().filter(|n| *n != "all") {
        if let Some(reason) = Experiment::from_str(name, false).ok().and_then(refused) {
            eprintln!("{reason}");
            return ExitCode::from(2);
        }
    }
    let plan = args.plan();
    let mut failed = Vec::new();
    for experiment in experiments {
        if let Where::Compose(_) = place
            && !experiment.runs_on("compose")
        {
            println!("== {experiment}: skipped, it needs the local stack");
            continue;
        }
        if let Some(reason) = refused(experiment) {
            println!("== {experiment}: skipped: {reason}");
            continue;
        }
        match chaos::run_one(experiment, &place, &plan, &args.results).await {
            Ok(true) => {}
            Ok(false) => failed.push(experiment.name().to_string()),
            Err(e) => {
                eprintln!("{experiment} could not run: {e:#}");
                failed.push(experiment.name().to_string());
            }
        }
    }
    if failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        eprintln!("failed: {}", failed.join(", "));
        ExitCode::FAILURE
    }
}
