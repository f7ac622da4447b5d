//! The order service's consumer (`order-invoices`) as an AWS Lambda
//! function; the API keeps running as `order-service` (with
//! `CONSUMERS_ENABLED=false`).

use std::process::ExitCode;
use std::sync::Arc;

use contracts::topology::Service;
use order::handlers::InvoiceEvents;

#[tokio::main]
async fn main() -> ExitCode {
    lambda_function::exit_code(
        lambda_function::run(
            Service::Order,
            sqlx::migrate!("./migrations"),
            Arc::new(InvoiceEvents),
        )
        .await,
    )
}
