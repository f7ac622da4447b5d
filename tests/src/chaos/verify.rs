//! What each experiment must show beyond the checker's rules (orders still
//! accepted during the fault, latency, the others unaffected, redelivery
//! absorbed), and the figures of the load.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use shared::topology::Service;
use uuid::Uuid;

use super::experiment::Experiment;
use super::load::{Attempt, Outcome};
use super::method::Run;
use super::observe::SystemState;
use super::target::Target;

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
