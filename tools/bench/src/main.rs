//! `bench`: latency per hop and throughput of the local stack, each beside
//! the emulator's and Postgres's ceilings measured in the same run.
//!
//!     bench                                  # the full run, a few minutes
//!     bench --step-secs 5 --refine 1         # quicker
//!     bench --emulator fakecloud             # where its binary is installed
//!     bench --emulator all                   # every emulator installed here
//!     bench --round-trips 5,20,50            # also at those round-trip times
//!     bench --running                        # the stack scripts/demo.sh runs
//!     bench --smoke                          # seconds: checks the plumbing only
//!
//! Reports go to `results/bench/<time>/` (report.md, report.json,
//! latency-<emulator>.svg); the Markdown is printed at the end too. See
//! BENCHMARKS.md for a run and how to read it.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use bench::Plan;
use clap::Parser;
use harness::report::key_value;
use testkit::emulator::EmulatorKind;

#[derive(Parser)]
#[command(about = "Benchmark every hop of the local stack against the ceilings of the same run")]
struct Args {
    /// The short plan of the smoke test (every flag below still applies).
    #[arg(long)]
    smoke: bool,
    /// Emulators to run the whole benchmark on, repeatable, or `all` for
    /// every one installed here but stock moto (whose ceilings are measured
    /// anyway) [default: moto, and fakecloud when its binary is installed].
    #[arg(long, value_parser = emulator_choice)]
    emulator: Vec<Emulators>,
    /// Drive the running stack that `scripts/demo.sh` started (it describes
    /// itself in .stack/logs/stack.json) instead of starting one; there is no
    /// baseline then, since it restarts services.
    #[arg(long, num_args = 0..=1, default_missing_value = ".stack/logs/stack.json")]
    running: Option<PathBuf>,
    /// Skip the ceilings of stock moto (without the launcher's fixes).
    #[arg(long)]
    no_stock_ceilings: bool,
    /// Seconds of load at each rate of the search.
    #[arg(long)]
    step_secs: Option<f64>,
    /// The search's first rate (orders per second); it doubles from there.
    #[arg(long)]
    start_rate: Option<f64>,
    /// The highest rate the search offers.
    #[arg(long)]
    max_rate: Option<f64>,
    /// Bisections after the doubling.
    #[arg(long)]
    refine: Option<u32>,
    /// How many times the search runs; the sustained rate is their median
    /// [default: 3; the smoke plan 1].
    #[arg(long)]
    search_repeats: Option<u32>,
    /// The round-trip mode: round-trip times in milliseconds,
    /// comma-separated, each added to every AWS call of the services and of
    /// the bare client through a proxy (half each way, per chunk, and one
    /// more for a new connection's handshake).
    #[arg(long, value_delimiter = ',')]
    round_trips: Vec<u64>,
    /// Orders of the round-trip mode's bursts [default: 500].
    #[arg(long)]
    round_trip_burst: Option<usize>,
    /// Only the round-trip mode: skip the run without a proxy.
    #[arg(long)]
    round_trips_only: bool,
    /// The elasticity step's invoice instance counts, comma-separated; 0
    /// alone skips the step [default: 1,2,4].
    #[arg(long, value_delimiter = ',')]
    elastic_instances: Vec<u32>,
    /// The configured relay's RELAY_MAX_IN_FLIGHT in the round-trip mode,
    /// measured beside the single-flight relay [default: 4].
    #[arg(long)]
    relay_in_flight: Option<u32>,
    /// The round-trip mode's load, orders per second [default: the
    /// reference rate of the run without a proxy, or 10].
    #[arg(long)]
    round_trip_rate: Option<f64>,
    /// More rates to measure besides the search's, comma-separated.
    #[arg(long, value_delimiter = ',')]
    rates: Vec<f64>,
    /// Seconds of load at the reference rate (half the sustained rate).
    #[arg(long)]
    reference_secs: Option<f64>,
    /// Seconds each ceiling is measured.
    #[arg(long)]
    ceiling_secs: Option<f64>,
    /// Orders kept in flight through the emulator while a ceiling is measured.
    #[arg(long)]
    window: Option<usize>,
    /// Messages parked in each queue while the flow ceiling is measured,
    /// comma-separated (0 is always measured: the targets are judged on it).
    #[arg(long, value_delimiter = ',')]
    backlogs: Vec<usize>,
    /// Orders committed at once for the relays' drain rate.
    #[arg(long)]
    burst: Option<usize>,
    /// The baseline relay's poll interval, in milliseconds.
    #[arg(long)]
    baseline_poll_ms: Option<u64>,
    /// RUST_LOG of the services.
    #[arg(long)]
    service_log: Option<String>,
    /// More environment for the services, as KEY=VALUE, repeatable (a
    /// setting to try; the baseline's own settings still win for it).
    #[arg(long = "env", value_parser = key_value)]
    service_env: Vec<(String, String)>,
    /// Where reports go.
    #[arg(long, default_value = "results/bench")]
    results: PathBuf,
}

impl Args {
    fn plan(&self) -> Plan {
        let mut plan = if self.smoke {
            Plan::smoke()
        } else {
            Plan::full()
        };
        let secs = Duration::from_secs_f64;
        if !self.emulator.is_empty() {
            let mut kinds = Vec::new();
            for choice in &self.emulator {
                let more = match choice {
                    Emulators::All => bench::plan::all_present(),
                    Emulators::One(kind) => vec![*kind],
                };
                for kind in more {
                    if !kinds.contains(&kind) {
                        kinds.push(kind);
                    }
                }
            }
            plan.emulators = kinds;
        }
        if let Some(n) = self.search_repeats {
            plan.search_repeats = n.max(1);
        }
        if !self.round_trips.is_empty() {
            plan.round_trips = self
                .round_trips
                .iter()
                .map(|ms| Duration::from_millis(*ms))
                .collect();
        }
        plan.round_trips_only = self.round_trips_only;
        if !self.elastic_instances.is_empty() {
            plan.elastic_instances = self
                .elastic_instances
                .iter()
                .copied()
                .filter(|n| *n > 0)
                .collect();
        }
        if let Some(n) = self.round_trip_burst {
            plan.round_trip_burst = n;
        }
        if let Some(n) = self.relay_in_flight {
            plan.relay_in_flight = n;
        }
        if self.round_trip_rate.is_some() {
            plan.round_trip_rate = self.round_trip_rate;
        }
        if self.running.is_some() {
            plan.running = self.running.clone();
        }
        if self.no_stock_ceilings {
            plan.stock_ceilings = false;
        }
        if let Some(s) = self.step_secs {
            plan.step = secs(s);
        }
        if let Some(r) = self.start_rate {
            plan.start_rate = r;
        }
        if let Some(r) = self.max_rate {
            plan.max_rate = r;
        }
        if let Some(n) = self.refine {
            plan.refine = n;
        }
        if !self.rates.is_empty() {
            plan.extra_rates = self.rates.clone();
        }
        if let Some(s) = self.reference_secs {
            plan.reference = secs(s);
        }
        if let Some(s) = self.ceiling_secs {
            plan.ceiling = secs(s);
        }
        if let Some(w) = self.window {
            plan.window = w;
        }
        if !self.backlogs.is_empty() {
            plan.backlogs = std::iter::once(0)
                .chain(self.backlogs.iter().copied().filter(|b| *b > 0))
                .collect();
        }
        if let Some(n) = self.burst {
            plan.burst = n;
        }
        if let Some(ms) = self.baseline_poll_ms {
            plan.baseline_poll = Duration::from_millis(ms);
        }
        if !self.service_env.is_empty() {
            plan.service_env = self.service_env.clone();
        }
        if let Some(log) = &self.service_log {
            plan.service_log = log.clone();
        }
        plan
    }
}

/// An emulator kind, or every one installed.
#[derive(Debug, Clone, Copy)]
enum Emulators {
    All,
    One(EmulatorKind),
}

fn emulator_choice(s: &str) -> Result<Emulators, String> {
    match s {
        "all" => Ok(Emulators::All),
        kind => kind.parse().map(Emulators::One),
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> ExitCode {
    let args = Args::parse();
    let plan = args.plan();
    let command = std::env::args().collect::<Vec<_>>().join(" ");
    match bench::run(&plan, &args.results, &command).await {
        Ok((report, dir)) => {
            println!("\n{}", report.markdown());
            println!("report, JSON and chart: {}", dir.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("bench failed: {e:#}");
            ExitCode::FAILURE
        }
    }
}
