//! The short versions of the chaos experiments, each on a fresh local stack:
//! seconds of load, a fault of a few seconds, then the whole history judged
//! against the final state of all three services (see the `chaos` crate). Each
//! test passes only when every criterion of its experiment passes; the
//! reports stay under `$TMPDIR/chaos-tests/` for a look after a failure.
//!
//! The experiments run one at a time: they measure latency and CPU, and two
//! stacks side by side on two cores would measure each other.

use chaos::local::LocalOptions;
use chaos::{Experiment, Plan, Where};
use testkit::emulator::EmulatorKind;

static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn passes(experiment: Experiment) -> anyhow::Result<()> {
    let _turn = ONE_AT_A_TIME.lock().await;
    let root = std::env::temp_dir().join("chaos-tests");
    let place = Where::Local(LocalOptions {
        emulator: EmulatorKind::from_env().map_err(anyhow::Error::msg)?,
        log_dir: root.join("logs").join(uuid::Uuid::now_v7().to_string()),
        ..LocalOptions::default()
    });
    let passed = chaos::run_one(experiment, &place, &Plan::short(), &root.join("results")).await?;
    anyhow::ensure!(
        passed,
        "{experiment} failed: its report is under {}",
        root.display()
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invoice_down_orders_are_still_accepted_and_all_invoiced_once_it_is_back()
-> anyhow::Result<()> {
    passes(Experiment::InvoiceDown).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invoice_crash_loop_issues_one_invoice_per_order() -> anyhow::Result<()> {
    passes(Experiment::InvoiceCrashLoop).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn order_crash_mid_publish_loses_and_doubles_no_committed_order() -> anyhow::Result<()> {
    passes(Experiment::OrderCrashMidPublish).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn emulator_pause_keeps_orders_flowing_into_the_outbox_without_spinning() -> anyhow::Result<()>
{
    passes(Experiment::EmulatorPause).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invoice_cut_off_slows_only_the_invoice_service() -> anyhow::Result<()> {
    passes(Experiment::InvoiceCutOff).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invoice_db_down_turns_readiness_red_and_dead_letters_nothing() -> anyhow::Result<()> {
    passes(Experiment::InvoiceDbDown).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notification_hang_is_absorbed_by_the_inbox() -> anyhow::Result<()> {
    passes(Experiment::NotificationHang).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rolling_restart_loses_no_accepted_order() -> anyhow::Result<()> {
    passes(Experiment::RollingRestart).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_vs_async_the_outage_takes_order_taking_down_only_in_sync_mode() -> anyhow::Result<()>
{
    passes(Experiment::SyncVsAsync).await
}
