//! The faults, one function per experiment, each healed before it returns.
//! They act only through `Target`, so they run on the local stack and on a
//! compose stack alike, and record their steps, windows and criteria on the
//! run.

use std::collections::BTreeMap;
use std::time::Duration;

use contracts::topology::Service;
use testkit::proxy::NetFault;
use testkit::wait;

use super::experiment::{Experiment, db_outage, hang};
use super::method::Run;
use super::target::{Exit, Part, Target};
use harness::load::{Load, LoadSettings};

/// The fault itself, healed before it returns.
pub(super) async fn inject<T: Target>(run: &mut Run<'_, T>) -> anyhow::Result<()> {
    let invoice = Part::Service(Service::Invoice);
    match run.experiment {
        Experiment::InvoiceDown | Experiment::SyncVsAsync => {
            run.target.kill(invoice).await?;
            let from = run.now();
            run.step("kill -9 the invoice service");
            run.hold(run.plan.fault).await;
            // The outage is the time the service is dead. Its restart and
            // the catch-up on the backlog after it are the recovery: on a
            // shared machine they take CPU from the order service, and the
            // report shows that as latency after the fault.
            let to = run.now();
            run.window(from, to);
            run.step("start the invoice service again");
            run.target.start(invoice).await?;
            run.step("invoice service ready again");
        }
        Experiment::InvoiceCrashLoop => {
            let from = run.now();
            for i in 1..=run.plan.kills {
                let spread = run.plan.fault.as_millis() as u64 / u64::from(run.plan.kills.max(1));
                let wait = Duration::from_millis(run.rng.u64(spread / 4..=spread.max(1)));
                if !run.hold(wait).await {
                    break;
                }
                run.target.kill(invoice).await?;
                run.step(format!(
                    "kill -9 the invoice service ({i} of {})",
                    run.plan.kills
                ));
                run.target.start(invoice).await?;
                run.step("invoice service started again and ready");
            }
            let to = run.now();
            run.window(from, to);
        }
        Experiment::OrderCrashMidPublish => order_crash_mid_publish(run).await?,
        Experiment::EmulatorPause => emulator_pause(run).await?,
        Experiment::EmulatorRestart => super::broker_restart::inject(run).await?,
        Experiment::InvoiceCutOff => invoice_cut_off(run).await?,
        Experiment::InvoiceDbDown => invoice_db_down(run).await?,
        Experiment::NotificationHang => notification_hang(run).await?,
        Experiment::RollingRestart => {
            let from = run.now();
            let pause = run.plan.fault / 3;
            let mut exits = Vec::new();
            for service in Service::ALL {
                if !run.hold(pause).await {
                    break;
                }
                let exit = run.target.terminate(service).await?;
                run.step(format!("SIGTERM the {} service: {exit:?}", service.name()));
                exits.push((service, exit));
                run.target.start(Part::Service(service)).await?;
                run.step(format!(
                    "{} service started again and ready",
                    service.name()
                ));
            }
            let to = run.now();
            run.window(from, to);
            let unclean: Vec<String> = exits
                .iter()
                .filter_map(|(s, e)| match e {
                    Exit::Clean => None,
                    Exit::Unclean(how) => Some(format!("{} {how}", s.name())),
                })
                .collect();
            run.criterion(
                "graceful exits",
                "each service exits with status 0 on SIGTERM under load",
                unclean.is_empty() && exits.len() == Service::ALL.len(),
                if unclean.is_empty() {
                    format!("{} clean exits", exits.len())
                } else {
                    unclean.join(", ")
                },
            );
        }
    }
    Ok(())
}

async fn order_crash_mid_publish<T: Target>(run: &mut Run<'_, T>) -> anyhow::Result<()> {
    let order = Part::Service(Service::Order);
    let burst_id = format!("{}-burst", run.run_id);
    let burst = Load::start(
        run.observer.http.clone(),
        run.target.endpoints().service(Service::Order).to_string(),
        LoadSettings {
            rate: run.plan.burst_rate,
            timeout: run.plan.request_timeout,
            run_id: burst_id.clone(),
            max_in_flight: 2000,
            minter: run.target.endpoints().minter.clone(),
        },
    );
    let from = run.now();
    run.step(format!("burst of orders at {}/s", run.plan.burst_rate));
    let pool = run.observer.pool(Service::Order).clone();
    // Kill when the relay has published part of the burst and not the rest.
    let mid_publish = wait::until(
        "the relay to be mid-burst",
        run.plan.fault.max(Duration::from_secs(5)),
        || async {
            // The burst's own events: the main load keeps running beside it.
            let (published, pending): (i64, i64) = sqlx::query_as(
                "SELECT count(*) FILTER (WHERE published_at IS NOT NULL), \
                        count(*) FILTER (WHERE published_at IS NULL) FROM outbox \
                 WHERE event_type = 'OrderPlaced' AND payload->'data'->>'customer_id' LIKE $1",
            )
            .bind(format!("{burst_id}-%"))
            .fetch_one(&pool)
            .await
            .map_err(|e| e.to_string())?;
            if published > 0 && pending > 0 {
                Ok((published, pending))
            } else {
                Err(format!("{published} published, {pending} pending"))
            }
        },
    )
    .await;
    run.target.kill(order).await?;
    match mid_publish {
        Ok((published, pending)) => {
            run.step(format!(
                "kill -9 the order service: {published} of the burst published, {pending} committed and not yet published"
            ));
            run.figure(
                "outbox rows committed, not yet published, at the kill",
                pending.to_string(),
            );
        }
        Err(t) => {
            run.step(format!(
                "kill -9 the order service (never caught mid-publish: {})",
                t.last
            ));
            run.figure(
                "outbox rows committed, not yet published, at the kill",
                "0 (not caught mid-publish)",
            );
        }
    }
    let (mut history, _) = burst.stop().await?;
    run.step(format!("burst stopped after {} attempts", history.len()));
    run.extra_history.append(&mut history);
    run.target.start(order).await?;
    run.step("order service started again and ready");
    let to = run.now();
    run.window(from, to);
    Ok(())
}

async fn emulator_pause<T: Target>(run: &mut Run<'_, T>) -> anyhow::Result<()> {
    let cpu_before: BTreeMap<&str, Option<f64>> = Service::ALL
        .iter()
        .map(|s| (s.name(), run.target.cpu_seconds(Part::Service(*s))))
        .collect();
    run.target.pause(Part::Emulator).await?;
    let paused = tokio::time::Instant::now();
    let from = run.now();
    run.step("SIGSTOP the emulator");
    let mut peak = 0i64;
    let until = paused + run.plan.fault;
    while run.sample_until(until).await {
        if let Ok(n) = run.observer.outbox_backlog(Service::Order).await {
            peak = peak.max(n);
        }
    }
    let held_for = paused.elapsed().as_secs_f64();
    let cpu_after: BTreeMap<&str, Option<f64>> = Service::ALL
        .iter()
        .map(|s| (s.name(), run.target.cpu_seconds(Part::Service(*s))))
        .collect();
    run.target.resume(Part::Emulator).await?;
    run.step("SIGCONT the emulator");
    let to = run.now();
    run.window(from, to);
    run.figure(
        "order outbox backlog at its peak during the pause",
        peak.to_string(),
    );
    run.criterion(
        "backlog grows",
        "orders accepted during the pause wait in the outbox",
        peak > 0,
        format!("peak {peak} unpublished rows"),
    );
    let mut usage = Vec::new();
    let mut spinning = Vec::new();
    for service in Service::ALL {
        let (Some(Some(before)), Some(Some(after))) = (
            cpu_before.get(service.name()),
            cpu_after.get(service.name()),
        ) else {
            continue;
        };
        let share = (after - before) / held_for;
        usage.push(format!("{} {:.0} %", service.name(), share * 100.0));
        if share > SPIN_LIMIT {
            spinning.push(service.name());
        }
    }
    if usage.is_empty() {
        run.figure("CPU during the pause", "not measurable on this target");
    } else {
        run.figure("CPU during the pause (share of one core)", usage.join(", "));
        run.criterion(
            "no spinning",
            &format!(
                "no service uses more than {:.0} % of a core while the broker is frozen",
                SPIN_LIMIT * 100.0
            ),
            spinning.is_empty(),
            usage.join(", "),
        );
    }
    let mut down = Vec::new();
    for service in Service::ALL {
        if !run.target.is_running(Part::Service(service)).await? {
            down.push(service.name());
        }
    }
    run.criterion(
        "no crash",
        "every service is still running after the pause",
        down.is_empty(),
        if down.is_empty() {
            "all running".to_string()
        } else {
            format!("down: {}", down.join(", "))
        },
    );
    Ok(())
}

/// A service busier than this while the broker is frozen is spinning: it
/// only serves the load's HTTP requests and backs off its broker calls.
const SPIN_LIMIT: f64 = 0.5;

async fn invoice_cut_off<T: Target>(run: &mut Run<'_, T>) -> anyhow::Result<()> {
    anyhow::ensure!(
        run.target.proxy_of(Service::Invoice).is_some(),
        "invoice-cut-off needs the local stack started with the invoice proxy"
    );
    let third = run.plan.fault / 3;
    let from = run.now();
    let mut peak = 0u64;
    for fault in [
        NetFault::Latency(Duration::from_millis(500)),
        NetFault::Reset,
        NetFault::Blackhole,
    ] {
        if let Some(p) = run.target.proxy_of(Service::Invoice) {
            p.set(fault);
        }
        run.step(format!("invoice ⇄ emulator: {fault}"));
        let until = tokio::time::Instant::now() + third;
        while run.sample_until(until).await {
            if let Ok(d) = infra::dlq::depth_of(&run.observer.sqs, "invoice-orders").await {
                peak = peak.max(d.visible);
            }
        }
    }
    if let Some(p) = run.target.proxy_of(Service::Invoice) {
        p.set(NetFault::Pass);
    }
    run.step("invoice ⇄ emulator: no fault");
    let to = run.now();
    run.window(from, to);
    run.figure("invoice-orders backlog at its peak", peak.to_string());
    run.criterion(
        "the invoice service falls behind",
        "messages for the invoice service wait in its queue during the cut",
        peak > 0,
        format!("peak {peak} visible messages"),
    );
    Ok(())
}

async fn invoice_db_down<T: Target>(run: &mut Run<'_, T>) -> anyhow::Result<()> {
    let db = Part::Database(Service::Invoice);
    run.target.kill(db).await?;
    let stopped = tokio::time::Instant::now();
    let from = run.now();
    run.step("stop the invoice database");
    let red = wait::until(
        "the invoice service to report not ready",
        Duration::from_secs(10),
        || async {
            if run.observer.ready(Service::Invoice).await {
                Err("still ready".to_string())
            } else {
                Ok(())
            }
        },
    )
    .await;
    let red_after = stopped.elapsed().as_secs_f64();
    run.criterion(
        "readiness goes red",
        "the invoice service answers /health/ready with 503 while its database is down",
        red.is_ok(),
        match &red {
            Ok(()) => format!("not ready {red_after:.1} s after the stop"),
            Err(t) => t.to_string(),
        },
    );
    let mut others_unready = Vec::new();
    let mut dead_letters = 0u64;
    let mut held_peak = 0u64;
    let until = stopped + db_outage(&run.plan);
    while run.sample_until(until).await {
        for service in [Service::Order, Service::Notification] {
            if !run.observer.ready(service).await && !others_unready.contains(&service.name()) {
                others_unready.push(service.name());
            }
        }
        if let Ok(d) = infra::dlq::depth_of(&run.observer.sqs, "invoice-orders-dlq").await {
            dead_letters = dead_letters.max(d.total());
        }
        if let Ok(d) = infra::dlq::depth_of(&run.observer.sqs, "invoice-orders").await {
            held_peak = held_peak.max(d.total());
        }
    }
    run.target.start(db).await?;
    run.step("start the invoice database again");
    let green = wait::until(
        "the invoice service to be ready again",
        Duration::from_secs(30),
        || async {
            if run.observer.ready(Service::Invoice).await {
                Ok(())
            } else {
                Err("not ready".to_string())
            }
        },
    )
    .await;
    run.step("invoice service ready again");
    let to = run.now();
    run.window(from, to);
    run.criterion(
        "ready again",
        "the invoice service reports ready once its database is back",
        green.is_ok(),
        match &green {
            Ok(()) => "ready".to_string(),
            Err(t) => t.to_string(),
        },
    );
    run.criterion(
        "others unaffected",
        "the order and notification services stay ready",
        others_unready.is_empty(),
        if others_unready.is_empty() {
            "both stayed ready".to_string()
        } else {
            format!("not ready at some point: {}", others_unready.join(", "))
        },
    );
    run.criterion(
        "nothing dead-lettered",
        "no message reaches invoice-orders-dlq while the database is down",
        dead_letters == 0,
        format!("{dead_letters} in the DLQ at most"),
    );
    run.figure(
        "invoice-orders messages held (not deleted) at the peak",
        held_peak.to_string(),
    );
    Ok(())
}

async fn notification_hang<T: Target>(run: &mut Run<'_, T>) -> anyhow::Result<()> {
    let notification = Part::Service(Service::Notification);
    // Freeze it while it holds messages, so that they are redelivered.
    let holding = wait::until(
        "the notification service to hold messages",
        Duration::from_secs(10),
        || async {
            let mut in_flight = 0;
            for q in ["notification-orders", "notification-invoices"] {
                in_flight += infra::dlq::depth_of(&run.observer.sqs, q)
                    .await
                    .map_err(|e| e.to_string())?
                    .in_flight;
            }
            if in_flight > 0 {
                Ok(in_flight)
            } else {
                Err("nothing in flight".into())
            }
        },
    )
    .await;
    run.target.pause(notification).await?;
    let from = run.now();
    run.step(format!(
        "SIGSTOP a notification instance ({} messages in flight)",
        holding
            .map(|n| n.to_string())
            .unwrap_or_else(|_| "no".into())
    ));
    let hang = hang(&run.plan);
    run.hold(hang).await;
    run.target.resume(notification).await?;
    run.step("SIGCONT the notification instance");
    let to = run.now();
    run.window(from, to);
    run.figure(
        "hang, against the visibility timeout",
        format!(
            "{:.1} s frozen, {} s visibility timeout",
            to - from,
            run.plan.visibility_timeout_secs
        ),
    );
    Ok(())
}
