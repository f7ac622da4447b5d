use std::process::ExitCode;

use invoice::startup::{self, Settings};
use shared::app::StartupError;
use shared::config::Env;
use shared::topology::Service;

#[tokio::main]
async fn main() -> ExitCode {
    shared::app::exit_code(run().await)
}

async fn run() -> Result<(), StartupError> {
    let env = Env::process();
    let _telemetry = shared::telemetry::init(&env, Service::Invoice)?;
    let app = startup::build(Settings::from_env(&env)?).await?;
    startup::run(app, shared::shutdown::on_signals()).await
}
