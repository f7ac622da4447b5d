//! `ops`: operator commands for the dead-letter queues and the bus archive,
//! and the CloudFormation template of the topology.
//!
//! Talks to the endpoint in `AWS_ENDPOINT_URL` (the emulator) or, without it,
//! to the AWS account of the default credentials, like `provision`. Every
//! name comes from `contracts::topology`. Results go to stdout (text, or JSON
//! with `--json`); logs and notes go to stderr.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use chrono::{DateTime, Utc};
use clap::{Args, Parser, Subcommand};
use contracts::topology::{BILLING_BUS, Chain, Topology};
use infra::dlq::{self, DlqListing, RedriveMethod, RedriveOptions, RedriveReport};
use infra::replay::{self, ReplayRequest, ReplayStatus};
use infra::{cloudformation, ecs, functions};

#[derive(Parser)]
#[command(
    about = "Inspect and redrive dead-letter queues; replay the billing archive; render the CloudFormation template"
)]
struct Cli {
    /// Print the result as JSON.
    #[arg(long, global = true)]
    json: bool,
    /// The kind of order chain: `standard` or `fifo` (see contracts::topology).
    #[arg(long, global = true, env = "ORDERS_CHAIN", default_value = "standard")]
    orders_chain: Chain,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// The dead-letter queues.
    #[command(subcommand)]
    Dlq(DlqCommand),
    /// The EventBridge archive of the `billing` bus.
    #[command(subcommand)]
    Archive(ArchiveCommand),
    /// The topology as a CloudFormation template (no AWS call).
    #[command(subcommand)]
    Cloudformation(CloudformationCommand),
}

#[derive(Subcommand)]
enum CloudformationCommand {
    /// Print the template of the chain in `--orders-chain`.
    Print,
    /// Write the template of each chain, and the compute template (ECS), into
    /// `DIR` (the committed copies).
    Write {
        #[arg(long, default_value = "infra/cloudformation")]
        dir: PathBuf,
    },
}

#[derive(Subcommand)]
enum DlqCommand {
    /// What each DLQ holds and why, without consuming anything.
    List {
        /// Only this queue (or its DLQ); every queue of the topology otherwise.
        #[arg(long)]
        queue: Option<String>,
        /// At most this many messages per DLQ.
        #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=1000))]
        limit: u32,
    },
    /// Move messages from `<queue>-dlq` back to `<queue>`, once the cause is fixed.
    Redrive {
        /// The source queue (or its DLQ).
        #[arg(long)]
        queue: String,
        /// At most this many messages (moved one by one). Default: all that
        /// the DLQ holds when the redrive begins.
        #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
        max: Option<u64>,
        /// How long to wait for an SQS message move task to finish.
        #[arg(long, default_value_t = 900)]
        timeout_secs: u64,
    },
}

#[derive(Subcommand)]
enum ArchiveCommand {
    /// Replay a time window of the archive onto the bus; consumers absorb
    /// what they already applied. Note: moto 5.2.5 ignores the window and
    /// replays the whole archive.
    Replay(ReplayArgs),
}

#[derive(Args)]
struct ReplayArgs {
    /// Start of the window (RFC 3339, e.g. 2026-11-26T10:00:00Z).
    #[arg(long, value_parser = rfc3339)]
    from: DateTime<Utc>,
    /// End of the window (RFC 3339). Default: now.
    #[arg(long, value_parser = rfc3339)]
    to: Option<DateTime<Utc>>,
    /// The replay's name (unique per account and region). Default: from the time.
    #[arg(long)]
    name: Option<String>,
    /// Wait until the replay has completed or failed.
    #[arg(long)]
    wait: bool,
    /// How long `--wait` waits.
    #[arg(long, default_value_t = 900)]
    timeout_secs: u64,
}

fn rfc3339(s: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| format!("not an RFC 3339 time ({e}), e.g. 2026-11-26T10:00:00Z"))
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    let result = match cli.command {
        Command::Cloudformation(command) => return run_cloudformation(&command, cli.orders_chain),
        Command::Dlq(command) => match aws_config().await {
            Ok(config) => {
                run_dlq(
                    &aws_sdk_sqs::Client::new(&config),
                    command,
                    cli.orders_chain,
                    cli.json,
                )
                .await
            }
            Err(code) => return code,
        },
        Command::Archive(ArchiveCommand::Replay(args)) => match aws_config().await {
            Ok(config) => {
                run_replay(
                    &aws_sdk_eventbridge::Client::new(&config),
                    args,
                    cli.orders_chain,
                    cli.json,
                )
                .await
            }
            Err(code) => return code,
        },
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}

/// The AWS configuration, or exit status 2 after one line naming what is missing.
async fn aws_config() -> Result<aws_config::SdkConfig, ExitCode> {
    aws_adapter::sdk::load_config().await.map_err(|e| {
        eprintln!("{e}");
        ExitCode::from(2)
    })
}

fn run_cloudformation(command: &CloudformationCommand, chain: Chain) -> ExitCode {
    match command {
        CloudformationCommand::Print => {
            print!("{}", cloudformation::render_text(chain));
            ExitCode::SUCCESS
        }
        CloudformationCommand::Write { dir } => {
            let templates = [Chain::Standard, Chain::Fifo]
                .into_iter()
                .map(|chain| {
                    (
                        cloudformation::file_name(chain),
                        cloudformation::render_text(chain),
                    )
                })
                .chain([
                    (ecs::FILE_NAME.to_string(), ecs::render_text()),
                    (functions::FILE_NAME.to_string(), functions::render_text()),
                ]);
            for (file, text) in templates {
                let path = dir.join(file);
                let written =
                    std::fs::create_dir_all(dir).and_then(|()| std::fs::write(&path, text));
                if let Err(e) = written {
                    eprintln!("writing {}: {e}", path.display());
                    return ExitCode::FAILURE;
                }
                eprintln!("wrote {}", path.display());
            }
            ExitCode::SUCCESS
        }
    }
}

/// Logs to stderr, so that stdout holds only the result. `RUST_LOG`, default `warn`.
fn init_logging() {
    let filter = std::env::var("RUST_LOG")
        .ok()
        .and_then(|spec| tracing_subscriber::EnvFilter::try_new(spec).ok())
        .unwrap_or_else(|| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
}

async fn run_dlq(
    sqs: &aws_sdk_sqs::Client,
    command: DlqCommand,
    chain: Chain,
    json: bool,
) -> Result<ExitCode, Box<dyn std::error::Error>> {
    let topology = Topology::declare(chain);
    match command {
        DlqCommand::List { queue, limit } => {
            let limit = limit as usize;
            let listings = match queue {
                Some(name) => {
                    vec![dlq::list(sqs, &dlq::find_queue(&topology, &name)?, limit).await?]
                }
                None => dlq::list_all(sqs, &topology, limit).await?,
            };
            if json {
                println!("{}", serde_json::to_string_pretty(&listings)?);
            } else {
                for listing in &listings {
                    print!("{}", listing_text(listing));
                }
            }
        }
        DlqCommand::Redrive {
            queue,
            max,
            timeout_secs,
        } => {
            let options = RedriveOptions {
                max,
                task_deadline: Duration::from_secs(timeout_secs),
            };
            let report = dlq::redrive(sqs, &dlq::find_queue(&topology, &queue)?, &options).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print!("{}", redrive_text(&report));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn run_replay(
    events: &aws_sdk_eventbridge::Client,
    args: ReplayArgs,
    chain: Chain,
    json: bool,
) -> Result<ExitCode, Box<dyn std::error::Error>> {
    let topology = Topology::declare(chain);
    let bus = topology.bus(BILLING_BUS);
    let request = ReplayRequest {
        from: args.from,
        to: args.to.unwrap_or_else(Utc::now),
        name: args.name,
    };
    let mut status = replay::start(events, bus, &request).await?;
    if args.wait && !status.is_finished() {
        status = replay::wait(
            events,
            bus,
            &status.name,
            Duration::from_secs(args.timeout_secs),
        )
        .await?;
    }
    if std::env::var_os("AWS_ENDPOINT_URL").is_some() {
        eprintln!(
            "note: AWS_ENDPOINT_URL is set; an emulator may not honour the window \
             (moto 5.2.5 replays every archived event, whatever --from and --to say)"
        );
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&status)?);
    } else {
        print!("{}", replay_text(&status));
    }
    Ok(match status.state.as_str() {
        "FAILED" | "CANCELLED" => ExitCode::FAILURE,
        _ => ExitCode::SUCCESS,
    })
}

fn listing_text(listing: &DlqListing) -> String {
    let mut out = format!("{} -> {}: ", listing.dlq, listing.queue);
    if listing.depth.total() == 0 && listing.messages.is_empty() {
        out.push_str("empty\n");
        return out;
    }
    out.push_str(&format!(
        "{} visible, {} in flight",
        listing.depth.visible, listing.depth.in_flight
    ));
    if (listing.messages.len() as u64) < listing.depth.visible {
        out.push_str(&format!(" (showing {})", listing.messages.len()));
    }
    out.push('\n');
    for m in &listing.messages {
        let what = match (&m.event_type, &m.event_id) {
            (Some(ty), Some(id)) => format!("{ty} {id}"),
            (Some(ty), None) => ty.clone(),
            (None, Some(id)) => format!("event {id}"),
            (None, None) => format!(
                "message {} (not an event: {:?})",
                m.message_id,
                m.body_preview.as_deref().unwrap_or("")
            ),
        };
        let order = m
            .order_id
            .as_ref()
            .map(|o| format!(", order {o}"))
            .unwrap_or_default();
        let sent = m
            .sent_at
            .map(|t| format!(", sent {}", t.to_rfc3339()))
            .unwrap_or_default();
        out.push_str(&format!("  - {what}{order}{sent}\n"));
        out.push_str(&format!(
            "    reason ({}): {}\n",
            serde_json::to_value(m.dead_lettered_by)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default(),
            m.reason
        ));
    }
    out
}

fn redrive_text(report: &RedriveReport) -> String {
    let how = match report.method {
        RedriveMethod::MessageMoveTask => "by an SQS message move task",
        RedriveMethod::MessageByMessage => "one by one",
    };
    let mut out = format!(
        "moved {} message(s) from {} to {} {how}\n",
        report.moved, report.dlq, report.queue
    );
    if report.also_left_in_dlq > 0 {
        out.push_str(&format!(
            "{} of them could not be deleted from {} and are in both queues; the consumer's inbox absorbs the repeat\n",
            report.also_left_in_dlq, report.dlq
        ));
    }
    if let Some(note) = &report.note {
        out.push_str(&format!("note: {note}\n"));
    }
    out
}

fn replay_text(status: &ReplayStatus) -> String {
    let time = |t: Option<DateTime<Utc>>| t.map(|t| t.to_rfc3339()).unwrap_or_else(|| "?".into());
    let mut out = format!(
        "replay {} of {} onto {}, window {} .. {}: {}\n",
        status.name,
        status.archive,
        status.bus,
        time(status.from),
        time(status.to),
        status.state
    );
    if let Some(reason) = &status.state_reason {
        out.push_str(&format!("reason: {reason}\n"));
    }
    out
}
