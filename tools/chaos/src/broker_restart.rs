//! `emulator-restart`: the broker itself stopped under load and started
//! again. The order API keeps accepting while every publish fails (the
//! relay backs off and the outbox holds the events), the consumers' receives
//! fail and back off, and once the broker is back on the same port with its
//! state the backlog drains through it. Only an emulator that keeps its state
//! across a graceful restart can take this (MiniStack with `PERSIST_STATE=1`,
//! see `testkit::emulator`); the others would come back with no queue at all.

use contracts::topology::Service;

use super::method::Run;
use super::target::{Exit, Part, Target};

/// Stops the emulator gracefully for the plan's fault time, starts it again,
/// and checks that its state came back.
pub(super) async fn inject<T: Target>(run: &mut Run<'_, T>) -> anyhow::Result<()> {
    let queues: Vec<String> = run
        .target
        .topology()
        .queues
        .iter()
        .flat_map(|q| [q.name.to_string(), q.dlq_name()])
        .collect();
    let stopping = tokio::time::Instant::now();
    let from = run.now();
    let exit = run.target.stop_emulator().await?;
    let stop_secs = stopping.elapsed().as_secs_f64();
    run.step(format!(
        "SIGTERM the emulator: {exit:?} after {stop_secs:.1} s"
    ));
    run.criterion(
        "graceful stop",
        "the emulator exits with status 0 on SIGTERM (it writes its state on the way out)",
        exit == Exit::Clean,
        format!("{exit:?} after {stop_secs:.1} s"),
    );
    // Down for the fault's time from the moment it has exited (a graceful
    // stop lets requests in flight finish and takes seconds of its own), the
    // backlog sampled meanwhile and once more at the end.
    let mut peak = 0i64;
    let until = tokio::time::Instant::now() + run.plan.fault;
    loop {
        if let Ok(n) = run.observer.outbox_backlog(Service::Order).await {
            peak = peak.max(n);
        }
        if !run.sample_until(until).await {
            break;
        }
    }
    if let Ok(n) = run.observer.outbox_backlog(Service::Order).await {
        peak = peak.max(n);
    }
    run.step("start the emulator again on the same port");
    run.target.start(Part::Emulator).await?;
    let down_secs = stopping.elapsed().as_secs_f64();
    run.step("emulator answering again");
    let to = run.now();
    run.window(from, to);
    run.figure(
        "broker down (from SIGTERM until it answered again)",
        format!("{down_secs:.1} s"),
    );
    run.figure(
        "order outbox backlog at its peak while the broker was down",
        peak.to_string(),
    );
    run.criterion(
        "backlog grows",
        "orders accepted while the broker is down wait in the outbox",
        peak > 0,
        format!("peak {peak} unpublished rows"),
    );
    let mut missing = Vec::new();
    for queue in &queues {
        if infra::dlq::depth_of(&run.observer.sqs, queue)
            .await
            .is_err()
        {
            missing.push(queue.as_str());
        }
    }
    run.criterion(
        "state kept",
        "every queue and DLQ of the topology is there after the restart",
        missing.is_empty(),
        if missing.is_empty() {
            format!("all {} there", queues.len())
        } else {
            format!("missing: {}", missing.join(", "))
        },
    );
    Ok(())
}
