//! `provision`: applies the topology to the endpoint in `AWS_ENDPOINT_URL` (the
//! emulator) or, without it, to the AWS account of the default credentials.

use std::process::ExitCode;

use clap::Parser;

#[derive(Parser)]
#[command(
    about = "Apply the messaging topology (topics, queues, DLQs, subscriptions, bus, rules, archive, policies)"
)]
struct Args {
    /// Print what was provisioned as JSON.
    #[arg(long)]
    json: bool,
    /// The kind of order chain: `standard` or `fifo` (see contracts::topology).
    #[arg(long, env = "ORDERS_CHAIN", default_value = "standard")]
    orders_chain: contracts::topology::Chain,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let config = match aws_adapter::sdk::load_config().await {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    match infra::apply(
        &infra::Clients::from_config(&config),
        &contracts::topology::Topology::declare(args.orders_chain),
    )
    .await
    {
        Ok(out) if args.json => {
            println!("{}", serde_json::to_string_pretty(&out).unwrap_or_default());
            ExitCode::SUCCESS
        }
        Ok(out) => {
            println!(
                "provisioned {} topic(s), {} bus(es), {} queue(s), {} rule(s), {} archive(s)",
                out.topics.len(),
                out.buses.len(),
                out.queues.len(),
                out.rules.len(),
                out.archives.len()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}
