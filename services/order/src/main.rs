use std::process::ExitCode;

use contracts::topology::Service;
use order::startup::{self, Settings};
use platform::app::StartupError;
use platform::config::Env;

#[tokio::main]
async fn main() -> ExitCode {
    platform::app::exit_code(run().await)
}

async fn run() -> Result<(), StartupError> {
    let env = Env::process();
    let _telemetry = platform::telemetry::init(&env, Service::Order)?;
    let app = startup::build(Settings::from_env(&env)?).await?;
    startup::run(app, platform::shutdown::on_signals()).await
}
