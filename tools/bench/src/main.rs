//! `bench`: latency per hop and throughput of the local stack, each beside
//! the emulator's and Postgres's ceilings measured in the same run.
//!
//!     bench                                  # the full run, a few minutes
//!     bench --step-secs 5 --refine 1         # quicker
//!     bench --emulator fakecloud             # where its binary is installed
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
    /// Emulators to run the whole benchmark on, repeatable [default: moto,
    /// and fakecloud when its binary is installed].
    #[arg(long)]
    emulator: Vec<EmulatorKind>,
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
            plan.emulators = self.emulator.clone();
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
