//! The named experiments: what each one claims, what fault it injects, and
//! how the local stack must be started for it. They all follow the one
//! method of `method`; their faults are in `faults`.

use std::time::Duration;

use contracts::topology::Service;
use testkit::emulator::EmulatorKind;

use super::local::LocalOptions;
use super::plan::Plan;
use super::target::Part;

/// The experiments, by the name the command takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Experiment {
    InvoiceDown,
    InvoiceCrashLoop,
    OrderCrashMidPublish,
    EmulatorPause,
    EmulatorRestart,
    InvoiceCutOff,
    InvoiceDbDown,
    NotificationHang,
    RollingRestart,
    SyncVsAsync,
}

impl Experiment {
    pub const ALL: [Experiment; 10] = [
        Experiment::InvoiceDown,
        Experiment::InvoiceCrashLoop,
        Experiment::OrderCrashMidPublish,
        Experiment::EmulatorPause,
        Experiment::EmulatorRestart,
        Experiment::InvoiceCutOff,
        Experiment::InvoiceDbDown,
        Experiment::NotificationHang,
        Experiment::RollingRestart,
        Experiment::SyncVsAsync,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Experiment::InvoiceDown => "invoice-down",
            Experiment::InvoiceCrashLoop => "invoice-crash-loop",
            Experiment::OrderCrashMidPublish => "order-crash-mid-publish",
            Experiment::EmulatorPause => "emulator-pause",
            Experiment::EmulatorRestart => "emulator-restart",
            Experiment::InvoiceCutOff => "invoice-cut-off",
            Experiment::InvoiceDbDown => "invoice-db-down",
            Experiment::NotificationHang => "notification-hang",
            Experiment::RollingRestart => "rolling-restart",
            Experiment::SyncVsAsync => "sync-vs-async",
        }
    }

    pub fn hypothesis(self) -> &'static str {
        match self {
            Experiment::InvoiceDown => {
                "With the invoice service dead, orders are still accepted (≥ 99.9 %) as fast as before (p99 within 2× the baseline); once it is back, every accepted order gets exactly one invoice and its notifications."
            }
            Experiment::InvoiceCrashLoop => {
                "Killed again and again while it works, the invoice service still issues exactly one invoice per order and no notification is sent twice."
            }
            Experiment::OrderCrashMidPublish => {
                "Killed while its relay publishes a burst, the order service loses no committed order and publishes none twice in effect: every one is invoiced exactly once downstream."
            }
            Experiment::EmulatorPause => {
                "With the broker frozen, orders are still accepted, the outbox backlog grows and drains afterwards, and no service crashes or spins."
            }
            Experiment::EmulatorRestart => {
                "With the broker itself stopped gracefully and started again on the same port, orders are still accepted while every publish fails, the outbox holds their events, and once the broker is back the backlog drains: nothing lost, nothing doubled."
            }
            Experiment::InvoiceCutOff => {
                "With the invoice service's network to the broker slow, resetting or black-holed, only the invoice service falls behind; orders and their order-received notifications flow as before, and the invoice backlog drains afterwards."
            }
            Experiment::InvoiceDbDown => {
                "With its database down, the invoice service says it is not ready, deletes no message it could not apply, dead-letters nothing, and invoices everything once the database is back."
            }
            Experiment::NotificationHang => {
                "A notification instance frozen longer than the visibility timeout lets its messages be redelivered to the other instance; when it wakes, the inbox absorbs what it handles again: exactly one notification per event."
            }
            Experiment::RollingRestart => {
                "Each service in turn stopped with SIGTERM under load exits cleanly, and no order answered 202 is lost."
            }
            Experiment::SyncVsAsync => {
                "The same invoice outage takes order-taking down when the order service calls the invoice service synchronously, and does not when they talk through messages."
            }
        }
    }

    pub(super) fn fault(self, plan: &Plan) -> String {
        let t = plan.fault.as_secs_f64();
        match self {
            Experiment::InvoiceDown | Experiment::SyncVsAsync => {
                format!("kill -9 the invoice service, keep it down {t:.0} s, start it again")
            }
            Experiment::InvoiceCrashLoop => format!(
                "kill -9 the invoice service {} times at random moments while it works, restarting it each time",
                plan.kills
            ),
            Experiment::OrderCrashMidPublish => format!(
                "a burst of orders at {:.0}/s, and kill -9 the order service while its relay is publishing it",
                plan.burst_rate
            ),
            Experiment::EmulatorPause => {
                format!("freeze the emulator (SIGSTOP) for {t:.0} s, then SIGCONT")
            }
            Experiment::EmulatorRestart => format!(
                "stop the emulator gracefully (SIGTERM: it writes its state), keep it down {t:.0} s, start it again on the same port (it reads its state back)"
            ),
            Experiment::InvoiceCutOff => format!(
                "a proxy between the invoice service and the emulator adds 500 ms latency, then resets connections, then black-holes them, {:.1} s each",
                t / 3.0
            ),
            Experiment::InvoiceDbDown => format!(
                "stop the invoice service's Postgres for {:.0} s (on the local stack its retries are {DB_DOWN_RETRY_CAP_SECS} s apart and it waits 0.5 s for a connection, so {} receives would fit in the outage)",
                db_outage(plan).as_secs_f64(),
                contracts::topology::MAX_RECEIVE_COUNT
            ),
            Experiment::NotificationHang => format!(
                "SIGSTOP one of two notification instances for {:.0} s, longer than its {} s visibility timeout, then SIGCONT",
                hang(plan).as_secs_f64(),
                plan.visibility_timeout_secs
            ),
            Experiment::RollingRestart => {
                "SIGTERM the order, invoice and notification services in turn, starting each again"
                    .into()
            }
        }
    }

    /// Whether the experiment can run on a target of `kind`.
    pub fn runs_on(self, kind: &str) -> bool {
        match self {
            // The proxy and the order service's mode are set when the local
            // stack starts.
            Experiment::InvoiceCutOff | Experiment::SyncVsAsync => kind == "local",
            // The compose stack's emulator is moto, which forgets everything
            // on a restart.
            Experiment::EmulatorRestart => kind == "local",
            _ => true,
        }
    }

    /// Why the experiment cannot run on `emulator`, in one line; `None` when
    /// it can.
    pub fn refuses(self, emulator: EmulatorKind) -> Option<String> {
        match self {
            Experiment::EmulatorRestart if !emulator.keeps_state_across_restart() => Some(format!(
                "{self} needs an emulator that keeps its state across a restart (--emulator ministack); {emulator} keeps it in memory only, so a restart would erase every queue"
            )),
            _ => None,
        }
    }

    /// How the local stack must be started for this experiment.
    pub fn local_options(self, plan: &Plan, base: LocalOptions) -> LocalOptions {
        // A message held by a killed or frozen consumer comes back after the
        // visibility timeout: the plan sets it for every service.
        let visibility = plan.visibility_timeout_secs.to_string();
        let base = Service::ALL.iter().fold(base, |options, service| {
            options.with_env(*service, "CONSUMER_VISIBILITY_TIMEOUT_SECS", &visibility)
        });
        match self {
            Experiment::InvoiceCutOff => LocalOptions {
                invoice_proxy: true,
                ..base
            },
            // Retries 1 s apart and a short wait for a connection: a consumer
            // that kept receiving while its database is down would use up
            // maxReceiveCount within the outage and park messages in the DLQ.
            Experiment::InvoiceDbDown => base
                .with_env(
                    Service::Invoice,
                    "CONSUMER_RETRY_MAX_DELAY_SECS",
                    &DB_DOWN_RETRY_CAP_SECS.to_string(),
                )
                .with_env(Service::Invoice, "DATABASE_ACQUIRE_TIMEOUT_MS", "500"),
            Experiment::NotificationHang => {
                // The instance that will hang works slowly, so it always
                // holds messages when it is frozen.
                let mut options = base.with_env(
                    Service::Notification,
                    platform::failpoints::VARIABLE,
                    &format!("{}=return(150)", platform::failpoints::CONSUMER_HANDLE),
                );
                options.replicas.push((
                    Service::Notification,
                    vec![(platform::failpoints::VARIABLE.to_string(), String::new())],
                ));
                options
            }
            _ => base,
        }
    }

    /// The parts the fault touches on purpose; any other going down aborts.
    pub(super) fn faulted(self) -> Vec<Part> {
        match self {
            Experiment::InvoiceDown | Experiment::InvoiceCrashLoop | Experiment::SyncVsAsync => {
                vec![Part::Service(Service::Invoice)]
            }
            Experiment::OrderCrashMidPublish => vec![Part::Service(Service::Order)],
            Experiment::EmulatorPause | Experiment::EmulatorRestart | Experiment::InvoiceCutOff => {
                vec![]
            }
            Experiment::InvoiceDbDown => vec![Part::Database(Service::Invoice)],
            Experiment::NotificationHang => vec![Part::Service(Service::Notification)],
            Experiment::RollingRestart => Service::ALL.iter().map(|s| Part::Service(*s)).collect(),
        }
    }
}

impl std::fmt::Display for Experiment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// How long `notification-hang` freezes the instance: the fault's length, and
/// at least twice the visibility timeout plus a second.
pub(super) fn hang(plan: &Plan) -> Duration {
    plan.fault.max(Duration::from_secs(
        2 * u64::from(plan.visibility_timeout_secs) + 1,
    ))
}

/// The cap on the invoice service's retry delay in `invoice-db-down`.
const DB_DOWN_RETRY_CAP_SECS: u64 = 1;

/// How long `invoice-db-down` keeps the database down: the fault's length,
/// and at least long enough for maxReceiveCount retries at the capped delay.
pub(super) fn db_outage(plan: &Plan) -> Duration {
    let receives = u64::from(contracts::topology::MAX_RECEIVE_COUNT) + 1;
    plan.fault
        .max(Duration::from_secs(2 * receives * DB_DOWN_RETRY_CAP_SECS))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_experiment_has_a_distinct_kebab_case_name() {
        let mut names: Vec<&str> = Experiment::ALL.iter().map(|e| e.name()).collect();
        for e in Experiment::ALL {
            use clap::ValueEnum;
            let value = e.to_possible_value().expect("named");
            assert_eq!(value.get_name(), e.name());
        }
        names.sort();
        names.dedup();
        assert_eq!(names.len(), Experiment::ALL.len());
    }

    #[test]
    fn only_the_broker_restart_needs_an_emulator_that_keeps_its_state() {
        for e in Experiment::ALL {
            assert_eq!(e.refuses(EmulatorKind::Ministack), None, "{e}");
            let refused = e.refuses(EmulatorKind::Moto);
            assert_eq!(refused.is_some(), e == Experiment::EmulatorRestart, "{e}");
        }
        let reason = Experiment::EmulatorRestart
            .refuses(EmulatorKind::Moto)
            .unwrap_or_default();
        assert!(reason.contains("moto keeps it in memory only"), "{reason}");
        assert!(!reason.contains('\n'), "one line: {reason}");
    }
}
