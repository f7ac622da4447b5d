//! The short versions of the chaos experiments, each on a fresh local stack:
//! seconds of load, a fault of a few seconds, then the whole history judged
//! against the final state of all three services (see the `chaos` crate). Each
//! test passes only when every criterion of its experiment passes; the
//! reports stay under `$TMPDIR/chaos-tests/` for a look after a failure.
//!
//! `emulator-restart` runs on MiniStack whichever emulator the others run
//! on: it restarts the broker itself, which only an emulator that keeps its
//! state can take.
//!
//! The experiments run one at a time: they measure latency and CPU, and two
//! stacks side by side on two cores would measure each other.

use chaos::local::LocalOptions;
use chaos::{Experiment, Plan, Where};
use testkit::emulator::EmulatorKind;

static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn passes(experiment: Experiment) -> anyhow::Result<()> {
    passes_on(
        experiment,
        EmulatorKind::from_env().map_err(anyhow::Error::msg)?,
    )
    .await
}

async fn passes_on(experiment: Experiment, emulator: EmulatorKind) -> anyhow::Result<()> {
    let _turn = ONE_AT_A_TIME.lock().await;
    let root = std::env::temp_dir().join("chaos-tests");
    let place = Where::Local(LocalOptions {
        emulator,
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

/// On MiniStack whatever `STACK_EMULATOR` says: the only emulator here that
/// keeps its state across a restart (the test command installs it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn emulator_restart_under_load_loses_and_doubles_nothing_and_the_backlog_drains()
-> anyhow::Result<()> {
    passes_on(Experiment::EmulatorRestart, EmulatorKind::Ministack).await
}

#[tokio::test]
async fn emulator_restart_is_refused_on_an_emulator_that_keeps_its_state_in_memory() {
    let place = Where::Local(LocalOptions {
        emulator: EmulatorKind::Moto,
        log_dir: std::env::temp_dir().join("chaos-tests").join("refused"),
        ..LocalOptions::default()
    });
    let results = std::env::temp_dir().join("chaos-tests").join("results");
    let refused = chaos::run_one(
        Experiment::EmulatorRestart,
        &place,
        &Plan::short(),
        &results,
    )
    .await
    .expect_err("moto forgets its queues on a restart");
    let reason = refused.to_string();
    assert!(reason.contains("moto keeps it in memory only"), "{reason}");
    assert!(!reason.contains('\n'), "one line: {reason}");
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
