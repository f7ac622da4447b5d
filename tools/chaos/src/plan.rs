//! How big a run is: the load, the phases and the fault's size. The short
//! plan is what the test suite runs (seconds per experiment); the long one is
//! the default of the `chaos` command; every number can be set by a flag.

use std::time::Duration;

#[derive(Debug, Clone)]
pub struct Plan {
    /// Orders per second, open loop.
    pub rate: f64,
    /// Load before the fault: the baseline and the steady-state check.
    pub warmup: Duration,
    /// How long the fault lasts (a crash loop spreads its kills over it).
    pub fault: Duration,
    /// Load after the fault heals.
    pub recovery: Duration,
    /// The bound on waiting for the system to drain after the load stops.
    pub drain_deadline: Duration,
    /// Give up on one `POST /orders` after this long (it is then `unknown`).
    pub request_timeout: Duration,
    /// Kills of a crash loop.
    pub kills: u32,
    /// Copies of handled events injected into each consumer's queue.
    pub duplicates: usize,
    /// Orders per second of the burst that `order-crash-mid-publish` kills
    /// the order service in.
    pub burst_rate: f64,
    /// The consumers' visibility timeout on the local stack: how long a
    /// message held by a killed or frozen consumer stays hidden (the drain
    /// after a kill waits at least this long), and what `notification-hang`
    /// outlasts.
    pub visibility_timeout_secs: u32,
    /// Seeds the random kill moments, so a run can be repeated.
    pub seed: u64,
}

impl Plan {
    /// Seconds per experiment: what the test suite runs.
    pub fn short() -> Plan {
        Plan {
            rate: 20.0,
            // Long enough that the baseline holds more than 100 requests,
            // as the 5 s outage does: below 100 a nearest-rank p99 is the
            // maximum, and one hiccup in the warm-up would set the bar.
            warmup: Duration::from_secs(6),
            fault: Duration::from_secs(5),
            recovery: Duration::from_secs(2),
            drain_deadline: Duration::from_secs(90),
            request_timeout: Duration::from_secs(3),
            kills: 3,
            duplicates: 3,
            burst_rate: 200.0,
            visibility_timeout_secs: 3,
            seed: 7,
        }
    }

    /// Minutes per experiment: the command's default.
    pub fn long() -> Plan {
        Plan {
            rate: 25.0,
            warmup: Duration::from_secs(15),
            fault: Duration::from_secs(30),
            recovery: Duration::from_secs(15),
            drain_deadline: Duration::from_secs(300),
            request_timeout: Duration::from_secs(5),
            kills: 6,
            duplicates: 10,
            burst_rate: 300.0,
            visibility_timeout_secs: 10,
            seed: 7,
        }
    }
}
