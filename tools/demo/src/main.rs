//! `demo`: the whole system on this machine, with a few sample orders.
//!
//! Starts the emulator (MiniStack by default), Postgres (an ephemeral cluster, or `--postgres-url`), the
//! topology and the three services, places sample orders, prints each order's
//! journey (order → invoice → notification), then keeps running until Ctrl-C.
//! `OTEL_*` (but the service name), `RUST_LOG` and `LOG_FORMAT` set for the
//! demo are handed on to the services it starts.

use std::collections::BTreeMap;
use std::time::Duration;

use clap::Parser;
use harness::client::{Client, order_body};
use harness::stack::{PostgresSource, Stack, StackOptions};
use testkit::emulator::EmulatorKind;
use testkit::wait;

#[derive(Parser)]
#[command(about = "Run the order → invoice → notification demo on this machine")]
struct Args {
    /// Superuser URL of an existing Postgres server to use instead of an ephemeral cluster.
    #[arg(long, env = "DEMO_POSTGRES_URL")]
    postgres_url: Option<String>,
    /// Port of the AWS emulator.
    #[arg(long, default_value_t = 4566)]
    emulator_port: u16,
    /// The AWS emulator: `ministack` (the default), `moto` (with the backlog
    /// fixes of infra/emulator/moto_launcher.py), `moto-stock`, `localstack`
    /// (once `SETUP_LOCALSTACK=1 scripts/setup.sh` installed it; see
    /// docs/emulators.md), or `fakecloud` (when its binary is installed).
    #[arg(long, env = "STACK_EMULATOR", default_value_t = EmulatorKind::default())]
    emulator: EmulatorKind,
    #[arg(long, default_value_t = 8081)]
    order_port: u16,
    #[arg(long, default_value_t = 8082)]
    invoice_port: u16,
    #[arg(long, default_value_t = 8083)]
    notification_port: u16,
    /// Where the processes' logs go.
    #[arg(long, default_value = ".stack/logs")]
    log_dir: std::path::PathBuf,
    /// Start, run the sample orders, and stop instead of waiting for Ctrl-C.
    #[arg(long)]
    once: bool,
    /// The kind of order chain: `standard` or `fifo` (SNS FIFO to SQS FIFO,
    /// one message group per order).
    #[arg(long, env = "ORDERS_CHAIN", default_value = "standard")]
    orders_chain: contracts::topology::Chain,
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let started = std::time::Instant::now();
    let options = StackOptions {
        postgres: match args.postgres_url {
            Some(admin_url) => PostgresSource::External { admin_url },
            None => PostgresSource::Ephemeral,
        },
        emulator: args.emulator,
        emulator_port: Some(args.emulator_port),
        service_ports: Some(BTreeMap::from([
            ("order", args.order_port),
            ("invoice", args.invoice_port),
            ("notification", args.notification_port),
        ])),
        database_prefix: "demo_".into(),
        // A trace backend, a log level or format set for the demo reaches
        // the services too.
        service_env: harness::stack::forwarded_env(std::env::vars()),
        orders_chain: args.orders_chain,
        env_for: BTreeMap::new(),
        log_dir: args.log_dir.clone(),
    };
    println!(
        "starting {}, Postgres, the topology and three services…",
        args.emulator
    );
    let mut stack = Stack::start(options).await?;
    // What `bench --running` reads to drive this stack.
    let description = args.log_dir.join("stack.json");
    std::fs::write(&description, serde_json::to_vec_pretty(&stack.describe())?)?;
    println!(
        "stack ready in {:.1} s (logs in {}, addresses and processes in {})\n",
        started.elapsed().as_secs_f64(),
        args.log_dir.display(),
        description.display()
    );
    let client = Client::for_stack(&stack);

    let samples = [
        ("alice", vec![("BOOK-42", 2, 1999), ("PEN-7", 3, 150)]),
        ("bob", vec![("LAMP-1", 1, 4900)]),
        ("carol", vec![("MUG-3", 4, 800)]),
    ];
    let mut placed = Vec::new();
    for (customer, lines) in &samples {
        let id = client.place(&order_body(customer, lines)).await?;
        println!("POST /orders ({customer}) → 202 Accepted, order {id}");
        placed.push(id);
    }
    let cancel = placed[2];
    wait::until(
        "the last order to be invoiced",
        Duration::from_secs(60),
        || async {
            let order = client.order(cancel).await.map_err(|e| e.to_string())?.body;
            if order["status"] == "INVOICED" {
                Ok(())
            } else {
                Err(order.to_string())
            }
        },
    )
    .await?;
    client.cancel(cancel).await?;
    println!("POST /orders/{cancel}/cancel → 202 Accepted\n");

    for id in &placed {
        let expected = if *id == cancel { 4 } else { 2 };
        wait::until(
            "the journey to complete",
            Duration::from_secs(60),
            || async {
                let n = client
                    .notifications_of(*id)
                    .await
                    .map_err(|e| e.to_string())?
                    .len();
                if n >= expected {
                    Ok(())
                } else {
                    Err(format!("{n} notifications"))
                }
            },
        )
        .await?;
        let order = client.order(*id).await?.body;
        println!(
            "order {id}: {} (total {} {})",
            order["status"].as_str().unwrap_or("?"),
            order["total_minor"],
            order["currency"].as_str().unwrap_or("")
        );
        for invoice in client.invoices_of(*id).await? {
            println!(
                "  invoice {}: {} {} minor units, {}",
                invoice["invoice_id"].as_str().unwrap_or("?"),
                invoice["total_minor"],
                invoice["currency"].as_str().unwrap_or(""),
                invoice["status"].as_str().unwrap_or("?")
            );
        }
        for n in client.notifications_of(*id).await? {
            println!(
                "  notified {}: {}",
                n["recipient"].as_str().unwrap_or("?"),
                n["message"].as_str().unwrap_or("")
            );
        }
    }
    // Tokens from the demo's own issuer, as a real provider would issue
    // them: one per sample customer, and an operator's for invoices and
    // notifications.
    let alice = stack.issuer.customer_token("alice")?;
    let bob = stack.issuer.customer_token("bob")?;
    let operator = stack.issuer.operator_token()?;
    println!("\ntokens (issuer {}, valid 1 h):", stack.issuer.url());
    println!("  ALICE_TOKEN={alice}");
    println!("  BOB_TOKEN={bob}");
    println!("  OPERATOR_TOKEN={operator}");
    println!("\nlook around (set the tokens above in your shell first):");
    println!(
        "  curl -H \"Authorization: Bearer $ALICE_TOKEN\" {}/orders/{}",
        client.order, placed[0]
    );
    println!(
        "  curl -H \"Authorization: Bearer $BOB_TOKEN\" {}/orders/{}   (404: not bob's)",
        client.order, placed[0]
    );
    println!(
        "  curl -H \"Authorization: Bearer $OPERATOR_TOKEN\" '{}/invoices?order_id={}'",
        client.invoice, placed[0]
    );
    println!(
        "  curl -H \"Authorization: Bearer $OPERATOR_TOKEN\" '{}/notifications?order_id={}'",
        client.notification, placed[0]
    );
    println!(
        "  curl {}/metrics   (the admin port; logs carry trace_id and order_id)",
        stack.admin_url(contracts::topology::Service::Order)
    );
    println!(
        "  AWS_ENDPOINT_URL={} ({})",
        stack.emulator.endpoint(),
        stack.emulator.kind()
    );
    if !args.once {
        println!("\nrunning; Ctrl-C stops everything");
        tokio::signal::ctrl_c().await?;
    }
    println!("stopping…");
    stack.shutdown().await?;
    println!("stopped");
    Ok(())
}
