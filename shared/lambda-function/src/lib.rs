//! A service's consumers as an AWS Lambda function.
//!
//! An SQS event source mapping receives from the service's queues and invokes
//! the function with up to ten messages; it deletes every message the function
//! does not report as failed (`ReportBatchItemFailures`). The function runs
//! each message through the very code the long-running consumer runs
//! (`platform::consumer::Consumer::handle_delivered`: decoding and admission,
//! the inbox transaction around the handler, the DLQ with the reason, the
//! retry's growing delay); only the driver is this crate's:
//!
//! - an applied or duplicate message, and a poison one once its DLQ copy is
//!   sent, succeed; a message to retry is reported failed, so only it comes
//!   back (after the delay the consumer set on it);
//! - a database that does not answer fails the whole invocation; where the
//!   long-running consumer would pause, the batch's unfinished messages are
//!   hidden for the longest retry delay so that a mapping polling on does
//!   not spend their receives, and the finished ones are deleted
//!   (`Consumer::handle_delivered`);
//! - after the batch, the service's outbox is relayed in the same invocation,
//!   so the events the batch committed leave at once (`relay`);
//! - an EventBridge schedule invokes the same function to sweep the outbox:
//!   whatever an invocation that died after its commit left behind.
//!
//! `run` is all a service's function binary calls (see
//! `services/invoice/src/bin/function.rs`).

mod event;
mod function;

pub use event::{Invocation, InvocationError, message_of};
pub use function::{Function, Outcome, SWEEP_ROUNDS};

use std::sync::Arc;

use contracts::topology::Service;
use platform::config::Env;
use platform::consumer::Handler;
use sqlx::migrate::Migrator;

/// What a function's `main` returns.
pub type Error = lambda_runtime::Error;

/// Connects (the database, migrated; the queues; the relay), then serves the
/// Lambda Runtime API's invocations until the process is stopped.
pub async fn run<H: Handler>(
    service: Service,
    migrator: Migrator,
    handler: Arc<H>,
) -> Result<(), Error> {
    let env = Env::process();
    let telemetry = Arc::new(platform::telemetry::init(&env, service)?);
    // Boxed: the nested futures of a handler with a sender inside are deep
    // enough to overflow the compiler's layout depth in release builds.
    let function = Arc::new(Box::pin(Function::connect(service, &env, migrator, handler)).await?);
    let serve = lambda_runtime::run(lambda_runtime::service_fn(
        move |event: lambda_runtime::LambdaEvent<serde_json::Value>| {
            let (function, telemetry) = (function.clone(), telemetry.clone());
            async move {
                let deadline = deadline_of(&event.context);
                let answer = function.invoke(event.payload, deadline).await;
                // Lambda may freeze the process once it answers: the spans
                // of this invocation leave now.
                telemetry.flush().await;
                answer
            }
        },
    ));
    Box::pin(serve).await
}

/// The invocation's deadline (Lambda gives it in milliseconds since the
/// epoch) on this process's clock: now, when it has passed.
fn deadline_of(context: &lambda_runtime::Context) -> Option<std::time::Instant> {
    let deadline = std::time::UNIX_EPOCH + std::time::Duration::from_millis(context.deadline);
    let left = deadline
        .duration_since(std::time::SystemTime::now())
        .unwrap_or_default();
    Some(std::time::Instant::now() + left)
}

/// The process's exit code: a failure (a bad setting, a database that never
/// answered) is one line on stderr, which Lambda records as the init error.
pub fn exit_code(result: Result<(), Error>) -> std::process::ExitCode {
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{e}");
            std::process::ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

    use super::deadline_of;

    #[test]
    fn the_deadline_is_the_contexts_on_this_clock_and_now_once_passed() {
        let mut context = lambda_runtime::Context::default();
        context.deadline = 0;
        let passed = deadline_of(&context).expect("a deadline");
        assert!(passed <= Instant::now());

        let in_three_seconds = SystemTime::now() + Duration::from_secs(3);
        context.deadline = in_three_seconds
            .duration_since(UNIX_EPOCH)
            .expect("after the epoch")
            .as_millis() as u64;
        let left = deadline_of(&context)
            .expect("a deadline")
            .saturating_duration_since(Instant::now());
        assert!(
            left > Duration::from_secs(2) && left <= Duration::from_secs(3),
            "{left:?}"
        );
    }
}
