//! What each experiment must show beyond the checker's rules (orders still
//! accepted during the fault, latency, the others unaffected, redelivery
//! absorbed), and the figures of the load.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use contracts::topology::Service;
use uuid::Uuid;

use super::experiment::Experiment;
use super::method::Run;
use super::target::Target;
use harness::load::{Attempt, Outcome};
use harness::observe::SystemState;

/// The nearest-rank percentile `q` (0..=1) of `values`, which it sorts.
pub fn percentile(values: &mut [f64], q: f64) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let rank = ((q * values.len() as f64).ceil() as usize).clamp(1, values.len());
    Some(values[rank - 1])
}

/// Attempts scheduled inside `from..to` seconds of the run.
fn scheduled_within(
    history: &[Attempt],
    started: DateTime<Utc>,
    from: f64,
    to: f64,
) -> Vec<&Attempt> {
    history
        .iter()
        .filter(|a| {
            let t = (a.scheduled_at - started).num_milliseconds() as f64 / 1000.0;
            t >= from && t < to
        })
        .collect()
}

/// What the experiment must show beyond the checker's rules. Returns the
/// share of orders accepted during the fault.
pub(super) fn verify<T: Target>(
    run: &mut Run<'_, T>,
    history: &[Attempt],
    state: &SystemState,
    heal_at: f64,
) -> Option<f64> {
    let during: Vec<&Attempt> = run
        .windows
        .clone()
        .iter()
        .flat_map(|w| scheduled_within(history, run.started_at, w.from, w.to))
        .collect();
    let accepted = during
        .iter()
        .filter(|a| matches!(a.outcome, Outcome::Ok { .. }))
        .count();
    let acceptance = accepted as f64 / during.len().max(1) as f64;
    let needs_acceptance = !matches!(
        run.experiment,
        Experiment::OrderCrashMidPublish | Experiment::RollingRestart
    );
    if needs_acceptance {
        run.criterion(
            "orders accepted during the fault",
            "≥ 99.9 % of the orders sent during the fault are accepted",
            !during.is_empty() && acceptance >= 0.999,
            format!(
                "{accepted} of {} ({:.1} %)",
                during.len(),
                acceptance * 100.0
            ),
        );
    }
    if matches!(
        run.experiment,
        Experiment::InvoiceDown | Experiment::SyncVsAsync
    ) {
        let first_fault = run.windows.first().map(|w| w.from).unwrap_or(heal_at);
        let mut baseline: Vec<f64> = scheduled_within(history, run.started_at, 0.5, first_fault)
            .iter()
            .map(|a| a.latency_ms)
            .collect();
        let mut faulted: Vec<f64> = during.iter().map(|a| a.latency_ms).collect();
        let (b, f) = (
            percentile(&mut baseline, 0.99),
            percentile(&mut faulted, 0.99),
        );
        run.criterion(
            "latency during the fault",
            "POST /orders p99 during the fault within 2× the baseline p99",
            matches!((b, f), (Some(b), Some(f)) if f <= 2.0 * b),
            match (b, f) {
                (Some(b), Some(f)) => {
                    format!("{f:.1} ms during, {b:.1} ms baseline ({:.2}×)", f / b)
                }
                _ => "not enough samples".to_string(),
            },
        );
    }
    if run.experiment == Experiment::InvoiceCutOff {
        // The others are unaffected: an order accepted during the cut gets
        // its order-received notification as fast as ever.
        let received: BTreeMap<Uuid, DateTime<Utc>> = state
            .notifications
            .iter()
            .filter(|n| n.event_type == "OrderPlaced")
            .map(|n| (n.order_id, n.created_at))
            .collect();
        let mut slow = 0;
        let mut total = 0;
        for a in &during {
            let Some(id) = a.order_id() else { continue };
            total += 1;
            match received.get(&id) {
                Some(at) if (*at - a.completed_at()).num_milliseconds() <= 3000 => {}
                _ => slow += 1,
            }
        }
        run.criterion(
            "others unaffected",
            "orders accepted during the cut get their order-received notification within 3 s",
            total > 0 && slow == 0,
            format!("{} of {total} within 3 s", total - slow),
        );
    }
    if run.experiment == Experiment::NotificationHang
        && run.target.instances(Service::Notification) > 1
    {
        let injected = run
            .expect
            .injected_duplicates
            .get("notification")
            .copied()
            .unwrap_or(0);
        let absorbed = state.duplicates.get("notification").copied().unwrap_or(0);
        run.criterion(
            "redelivery absorbed",
            "the frozen instance's messages were redelivered and handled again, and the inbox absorbed them",
            absorbed > injected,
            format!("{absorbed} duplicates absorbed, {injected} of them injected"),
        );
    }
    (!during.is_empty()).then_some(acceptance)
}

/// The figure of `backlog_worked_off`.
pub(super) const BACKLOG_WORKED_OFF: &str = "backlog worked off";

/// Seconds from the heal until the backlog the fault built was worked off:
/// until the last order accepted before the heal completed its journey (the
/// later of its invoice, its two notifications and its turn to `INVOICED`).
/// The drain after the load stops cannot show this, since the recovery's
/// load runs first. 0 when nothing was left at the heal; `None` when an
/// order accepted before the heal never completed.
pub(super) fn backlog_worked_off(
    history: &[Attempt],
    state: &SystemState,
    started_at: DateTime<Utc>,
    heal_at: f64,
) -> Option<f64> {
    let order_invoiced_at: BTreeMap<Uuid, DateTime<Utc>> = state
        .orders
        .iter()
        .filter(|o| o.status == "INVOICED")
        .map(|o| (o.id, o.updated_at))
        .collect();
    let mut invoice_issued_at = BTreeMap::<Uuid, DateTime<Utc>>::new();
    for i in &state.invoices {
        let at = invoice_issued_at.entry(i.order_id).or_insert(i.issued_at);
        *at = (*at).max(i.issued_at);
    }
    let mut notified: BTreeMap<Uuid, (BTreeSet<&str>, DateTime<Utc>)> = BTreeMap::new();
    for n in &state.notifications {
        let (types, at) = notified
            .entry(n.order_id)
            .or_insert((BTreeSet::new(), n.created_at));
        types.insert(&n.event_type);
        *at = (*at).max(n.created_at);
    }
    let mut done = started_at;
    for a in scheduled_within(history, started_at, f64::MIN, heal_at) {
        let Some(id) = a.order_id() else { continue };
        let (Some(order), Some(invoice), Some((types, notice))) = (
            order_invoiced_at.get(&id),
            invoice_issued_at.get(&id),
            notified.get(&id),
        ) else {
            return None;
        };
        if types.len() < 2 {
            return None;
        }
        done = done.max(*order).max(*invoice).max(*notice);
    }
    let heal = started_at + chrono::Duration::microseconds((heal_at * 1e6) as i64);
    Some(((done - heal).num_milliseconds() as f64 / 1000.0).max(0.0))
}

/// Figures about the load itself.
pub(super) fn summarise_load<T: Target>(
    run: &mut Run<'_, T>,
    history: &[Attempt],
    fault_from: f64,
    heal_at: f64,
) {
    let count = |f: fn(&Outcome) -> bool| history.iter().filter(|a| f(&a.outcome)).count();
    run.figure(
        "attempts (ok / fail / unknown)",
        format!(
            "{} / {} / {}",
            count(|o| matches!(o, Outcome::Ok { .. })),
            count(|o| matches!(o, Outcome::Fail { .. })),
            count(|o| matches!(o, Outcome::Unknown { .. }))
        ),
    );
    let windows = run.windows.clone();
    let mut during: Vec<f64> = windows
        .iter()
        .flat_map(|w| scheduled_within(history, run.started_at, w.from, w.to))
        .map(|a| a.latency_ms)
        .collect();
    let mut before: Vec<f64> = scheduled_within(history, run.started_at, 0.5, fault_from)
        .iter()
        .map(|a| a.latency_ms)
        .collect();
    // After the last fault window, which may end before the heal returns
    // (a restart belongs to the recovery, not to the outage).
    let recovery_from = windows.last().map_or(heal_at, |w| w.to);
    let mut after: Vec<f64> = scheduled_within(history, run.started_at, recovery_from, f64::MAX)
        .iter()
        .map(|a| a.latency_ms)
        .collect();
    for (name, values) in [
        ("POST /orders latency before the fault", &mut before),
        ("POST /orders latency during the fault", &mut during),
        ("POST /orders latency after the fault", &mut after),
    ] {
        let p50 = percentile(values, 0.5);
        let p99 = percentile(values, 0.99);
        let max = percentile(values, 1.0);
        if let (Some(p50), Some(p99), Some(max)) = (p50, p99, max) {
            run.figure(
                name,
                format!(
                    "p50 {p50:.1} ms, p99 {p99:.1} ms, max {max:.1} ms ({} requests)",
                    values.len()
                ),
            );
        }
    }
    let mut errors: BTreeMap<String, usize> = BTreeMap::new();
    for a in history {
        match &a.outcome {
            Outcome::Ok { .. } => {}
            Outcome::Fail { reason, .. } | Outcome::Unknown { reason, .. } => {
                *errors.entry(reason.clone()).or_default() += 1
            }
        }
    }
    if !errors.is_empty() {
        run.figure(
            "errors",
            errors
                .iter()
                .map(|(r, n)| format!("{n}× {r}"))
                .collect::<Vec<_>>()
                .join(", "),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use harness::load::Attempt;
    use harness::observe::{InvoiceRow, NotificationRow, OrderRow};

    /// An order accepted `sent` seconds into the run whose journey ended
    /// `done` seconds into it (`None`: it has no invoice-issued notification).
    fn journey(
        state: &mut SystemState,
        start: DateTime<Utc>,
        sent: f64,
        done: Option<f64>,
    ) -> Attempt {
        let at = |s: f64| start + chrono::Duration::milliseconds((s * 1000.0) as i64);
        let id = Uuid::now_v7();
        let end = at(done.unwrap_or(sent + 0.1));
        state.orders.push(OrderRow {
            id,
            customer_id: format!("run-{sent}"),
            status: "INVOICED".into(),
            updated_at: end,
        });
        state.invoices.push(InvoiceRow {
            id: Uuid::now_v7(),
            order_id: id,
            status: "ISSUED".into(),
            issued_at: end,
        });
        let types: &[&str] = if done.is_some() {
            &["OrderPlaced", "InvoiceIssued"]
        } else {
            &["OrderPlaced"]
        };
        for ty in types {
            state.notifications.push(NotificationRow {
                event_id: Uuid::now_v7(),
                event_type: ty.to_string(),
                order_id: id,
                created_at: end,
            });
        }
        Attempt {
            n: 0,
            customer_id: format!("run-{sent}"),
            scheduled_at: at(sent),
            latency_ms: 3.0,
            send_lag_ms: 0.0,
            outcome: Outcome::Ok {
                status: 202,
                order_id: id,
            },
        }
    }

    #[test]
    fn the_backlog_is_worked_off_when_the_last_order_from_before_the_heal_completes() {
        let start = Utc::now();
        let mut state = SystemState::default();
        let history = vec![
            journey(&mut state, start, 1.0, Some(1.2)),
            journey(&mut state, start, 4.0, Some(13.5)),
            journey(&mut state, start, 8.0, Some(12.0)),
            // After the heal at 10 s: not part of the backlog, however late.
            journey(&mut state, start, 11.0, Some(30.0)),
        ];
        let secs = backlog_worked_off(&history, &state, start, 10.0).expect("all complete");
        assert!((secs - 3.5).abs() < 0.01, "{secs}");
    }

    #[test]
    fn nothing_left_at_the_heal_is_zero_and_an_unfinished_journey_is_none() {
        let start = Utc::now();
        let mut state = SystemState::default();
        let quick = vec![journey(&mut state, start, 1.0, Some(1.2))];
        assert_eq!(backlog_worked_off(&quick, &state, start, 10.0), Some(0.0));
        let stuck = vec![journey(&mut state, start, 2.0, None)];
        assert_eq!(backlog_worked_off(&stuck, &state, start, 10.0), None);
    }

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let mut v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&mut v, 0.5), Some(50.0));
        assert_eq!(percentile(&mut v, 0.99), Some(99.0));
        assert_eq!(percentile(&mut v, 1.0), Some(100.0));
        assert_eq!(percentile(&mut [], 0.5), None);
        assert_eq!(percentile(&mut [3.0], 0.99), Some(3.0));
    }
}
