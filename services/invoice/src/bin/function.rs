//! The invoice service's consumer (`invoice-orders`) as an AWS Lambda
//! function; the API keeps running as `invoice-service` (with
//! `CONSUMERS_ENABLED=false`).

use std::process::ExitCode;
use std::sync::Arc;

use contracts::topology::Service;
use invoice::handlers::OrderEvents;

#[tokio::main]
async fn main() -> ExitCode {
    lambda_function::exit_code(
        lambda_function::run(
            Service::Invoice,
            sqlx::migrate!("./migrations"),
            Arc::new(OrderEvents),
        )
        .await,
    )
}
