//! How big a benchmark run is. `Plan::full` is the `bench` command's default
//! (a few minutes on a 2-core machine); `Plan::smoke` is what the test suite
//! runs (seconds: every figure is produced, none is worth reading). Every
//! number can be set by a flag of the command.

use std::time::Duration;

use testkit::emulator::EmulatorKind;

#[derive(Debug, Clone, serde::Serialize)]
pub struct Plan {
    /// The emulators the whole benchmark (load, hops, baseline) runs on.
    #[serde(serialize_with = "kinds")]
    pub emulators: Vec<EmulatorKind>,
    /// Drive the running stack this file describes (written by the demo)
    /// instead of starting one per emulator.
    pub running: Option<std::path::PathBuf>,
    /// Also measure the ceilings of stock moto (without the launcher's fixes).
    pub stock_ceilings: bool,
    /// How long the load runs at each rate of the search.
    #[serde(with = "secs")]
    pub step: Duration,
    /// The search's first rate, in orders per second; it doubles while the
    /// system keeps up, then bisects `refine` times.
    pub start_rate: f64,
    /// The search never offers more than this.
    pub max_rate: f64,
    pub refine: u32,
    /// How many times the whole search runs: the sustained rate is the
    /// median of the searches, reported with their spread, so one lucky step
    /// cannot mark a target met.
    pub search_repeats: u32,
    /// More rates to measure, besides the search's.
    pub extra_rates: Vec<f64>,
    /// How long the load runs at the reference rate (half the sustained
    /// rate), where the latency targets are judged.
    #[serde(with = "secs")]
    pub reference: Duration,
    /// Each ceiling's measuring time (after a warm-up of a quarter of it).
    #[serde(with = "secs")]
    pub ceiling: Duration,
    /// Orders kept in flight through the emulator while a ceiling is measured.
    pub window: usize,
    /// Messages parked in each queue of the route (delayed, so never
    /// received) while the flow ceiling is measured: none, as the services
    /// run it, and a backlog, which stock moto walks on every call.
    pub backlogs: Vec<usize>,
    /// Orders committed at once for the relay's drain rate.
    pub burst: usize,
    /// The baseline relay's fixed poll interval.
    #[serde(with = "millis")]
    pub baseline_poll: Duration,
    /// Connections and tasks of the Postgres ceiling (the services' pool size).
    pub postgres_concurrency: usize,
    /// Give up on one `POST /orders` after this long.
    #[serde(with = "secs")]
    pub request_timeout: Duration,
    /// The bound on waiting for a step's orders to complete.
    #[serde(with = "secs")]
    pub drain_deadline: Duration,
    /// `RUST_LOG` of the services.
    pub service_log: String,
    /// More environment for every service of a stack the benchmark starts
    /// (settings to try, such as `CONSUMER_CONCURRENCY=1`).
    pub service_env: Vec<(String, String)>,
    /// The round-trip mode: for each of these round-trip times, every AWS
    /// call of the services and of the bare client passes a proxy that adds
    /// it (half each way, and one more for a new connection's handshake).
    /// Empty: no round-trip mode.
    #[serde(with = "millis_list")]
    pub round_trips: Vec<Duration>,
    /// Skip the run without a proxy (its ceilings, search and baseline):
    /// only the round-trip mode.
    pub round_trips_only: bool,
    /// The configured relay's `RELAY_MAX_IN_FLIGHT` in the round-trip mode,
    /// measured beside the single-flight relay (1).
    pub relay_in_flight: u32,
    /// The load of the round-trip mode's steps, orders per second; by
    /// default the reference rate of the run without a proxy on the same
    /// emulator (or 10 without one).
    pub round_trip_rate: Option<f64>,
    /// Orders of the round-trip mode's bursts (the relay's, the consumers'),
    /// smaller than `burst`: at 50 ms a consumer takes a few dozen messages
    /// a second.
    pub round_trip_burst: usize,
    /// Calls kept in flight by the bare client when it measures an
    /// emulator's publish and receive ceilings through the proxy: enough that
    /// the round trip does not limit it.
    pub ceiling_concurrency: usize,
    /// The invoice instance counts the elasticity step drains a burst with
    /// (`elastic`); empty: no elasticity step.
    pub elastic_instances: Vec<u32>,
}

impl Plan {
    /// The `bench` command's default.
    pub fn full() -> Plan {
        Plan {
            emulators: default_emulators(),
            running: None,
            stock_ceilings: true,
            step: Duration::from_secs(8),
            start_rate: 25.0,
            max_rate: 1600.0,
            refine: 2,
            search_repeats: 3,
            extra_rates: vec![],
            reference: Duration::from_secs(15),
            ceiling: Duration::from_secs(4),
            window: 100,
            backlogs: vec![0, 250],
            burst: 1000,
            baseline_poll: Duration::from_millis(100),
            postgres_concurrency: 8,
            request_timeout: Duration::from_secs(5),
            drain_deadline: Duration::from_secs(90),
            service_log: "info".into(),
            service_env: vec![],
            round_trips: vec![],
            round_trips_only: false,
            relay_in_flight: 4,
            round_trip_rate: None,
            round_trip_burst: 500,
            ceiling_concurrency: 16,
            elastic_instances: vec![1, 2, 4],
        }
    }

    /// Seconds: what the smoke test runs.
    pub fn smoke() -> Plan {
        Plan {
            emulators: vec![EmulatorKind::Moto],
            running: None,
            stock_ceilings: true,
            step: Duration::from_secs(2),
            start_rate: 10.0,
            max_rate: 20.0,
            refine: 0,
            search_repeats: 1,
            extra_rates: vec![],
            reference: Duration::from_secs(2),
            ceiling: Duration::from_millis(1500),
            window: 20,
            backlogs: vec![0, 20],
            burst: 20,
            baseline_poll: Duration::from_millis(100),
            postgres_concurrency: 4,
            request_timeout: Duration::from_secs(5),
            drain_deadline: Duration::from_secs(60),
            service_log: "info".into(),
            service_env: vec![("SQS_WAIT_TIME_SECONDS".into(), "2".into())],
            round_trips: vec![],
            round_trips_only: false,
            relay_in_flight: 4,
            round_trip_rate: None,
            round_trip_burst: 20,
            ceiling_concurrency: 4,
            elastic_instances: vec![1, 2],
        }
    }

    /// The services' long-polling wait (`SQS_WAIT_TIME_SECONDS`, 10 unless
    /// the plan sets it).
    pub fn long_poll(&self) -> Duration {
        self.service_env
            .iter()
            .rev()
            .find(|(k, _)| k == "SQS_WAIT_TIME_SECONDS")
            .and_then(|(_, v)| v.parse().ok())
            .map_or(Duration::from_secs(10), Duration::from_secs)
    }

    /// The value the services get for `key`: the plan's last setting of it.
    pub fn service_setting(&self, key: &str) -> Option<&str> {
        self.service_env
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// moto with the fixes, and fakecloud where its binary is installed.
pub fn default_emulators() -> Vec<EmulatorKind> {
    let mut kinds = vec![EmulatorKind::Moto];
    if testkit::emulator::fakecloud_binary().is_some() {
        kinds.push(EmulatorKind::Fakecloud);
    }
    kinds
}

/// Whether `kind` is installed here (its venv or binary exists).
pub fn present(kind: EmulatorKind) -> bool {
    use testkit::emulator as e;
    match kind {
        EmulatorKind::Moto | EmulatorKind::MotoStock => e::python().exists(),
        EmulatorKind::Fakecloud => e::fakecloud_binary().is_some(),
        EmulatorKind::Ministack => e::ministack().exists(),
        EmulatorKind::Localstack => e::localstack_python().exists(),
    }
}

/// Every emulator installed here that the whole benchmark runs on: all but
/// stock moto, whose ceilings are measured anyway and on which a search
/// would take an hour.
pub fn all_present() -> Vec<EmulatorKind> {
    EmulatorKind::ALL
        .into_iter()
        .filter(|k| *k != EmulatorKind::MotoStock && present(*k))
        .collect()
}

fn kinds<S: serde::Serializer>(kinds: &[EmulatorKind], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(kinds.iter().map(|k| k.as_str()))
}

mod secs {
    pub(super) fn serialize<S: serde::Serializer>(
        d: &std::time::Duration,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64())
    }
}

mod millis_list {
    pub(super) fn serialize<S: serde::Serializer>(
        list: &[std::time::Duration],
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.collect_seq(list.iter().map(|d| d.as_millis()))
    }
}

mod millis {
    pub(super) fn serialize<S: serde::Serializer>(
        d: &std::time::Duration,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.serialize_u128(d.as_millis())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_long_poll_is_the_services_default_unless_the_plan_sets_it() {
        assert_eq!(Plan::full().long_poll(), Duration::from_secs(10));
        assert_eq!(Plan::smoke().long_poll(), Duration::from_secs(2));
    }
}
