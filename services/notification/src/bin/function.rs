//! The notification service's consumers (both of its queues) as an AWS
//! Lambda function, one event source mapping per queue; the API keeps
//! running as `notification-service` (with `CONSUMERS_ENABLED=false`).

use std::process::ExitCode;
use std::sync::Arc;

use contracts::topology::Service;
use notification::handlers::Notify;
use notification::sender::{AnySender, SenderSettings};
use platform::config::Env;

#[tokio::main]
async fn main() -> ExitCode {
    lambda_function::exit_code(run().await)
}

async fn run() -> Result<(), lambda_function::Error> {
    let sender = AnySender::from_settings(&SenderSettings::from_env(&Env::process())?)?;
    let handler = Arc::new(Notify {
        sender: Arc::new(sender),
    });
    lambda_function::run(
        Service::Notification,
        sqlx::migrate!("./migrations"),
        handler,
    )
    .await
}
