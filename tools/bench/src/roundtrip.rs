//! The round-trip mode: the system measured at the latency its users deploy
//! into, not at a loopback's microseconds.
//!
//! Every AWS call passes the test kit's proxy (`testkit::proxy`) set to
//! `NetFault::RoundTrip(rtt)`: each chunk is forwarded `rtt / 2` after it
//! was read, in each direction, so each request → response exchange costs
//! one `rtt` more, on a kept-alive connection as on a new one; a new
//! connection's first bytes wait one `rtt` more (the TCP handshake). The
//! latencies given (`--round-trips 5,20,50`) are round-trip times per call.
//!
//! For each emulator, first the **bare client** through a proxy of its own,
//! at each round trip, on a fresh emulator:
//!
//! - one publish call's latency (30 in a row per publisher and batch size),
//!   and the connections the proxy accepted per call;
//! - the **publish ceiling**: `PublishBatch` of ten from many calls in flight
//!   (`plan.ceiling_concurrency`), what the emulator takes from a relay that
//!   the round trip does not limit;
//! - the **receive ceiling**: one queue filled with `plan.burst` messages,
//!   drained by as many receive → delete loops;
//! - the **flow ceiling** (the chained flow with a window scaled with the
//!   round trip) and the **flow at the step's rate** (open loop, one order
//!   per publish call, two receive loops per queue as the consumers run): its
//!   per-order latency is what the services' end to end is compared with.
//!
//! Then a **stack** whose services all call the emulator through one proxy,
//! once with the configured relay (`RELAY_MAX_IN_FLIGHT` =
//! `plan.relay_in_flight`) and once with the single-flight relay (1), both
//! relays restarted between; at each round trip: the relay **burst** (the
//! relay's drain rate), a **consumer burst** (the consumers frozen while the
//! order relay publishes a burst, then thawed: the invoice consumer's drain
//! rate) and a **step** at the rate (end-to-end percentiles, CPU per order).
//!
//! A relay with `in_flight` publish calls of `batch` events can publish at
//! most `in_flight × batch / rtt` events per second: its **round-trip
//! limit**. A consumer with `c` polls per queue receiving ten at a time
//! can take at most `c × 10 / rtt`. Whether the services honour
//! `RELAY_MAX_IN_FLIGHT` is read from the order binary (a build before the
//! setting ignores it: its relay has one call in flight, and the report
//! says so).

use std::time::Duration;

use chrono::{DateTime, Utc};
use contracts::topology::{Chain, Service};
use harness::observe::Observer;
use harness::stack::{PostgresSource, Stack, StackOptions};
use nix::sys::signal::Signal;
use serde::Serialize;
use testkit::emulator::{Emulator, EmulatorKind};
use testkit::proxy::{FaultProxy, NetFault};

use super::ceiling::{
    self, CallLatency, EmulatorCeiling, Load, PublishCeiling, ReceiveCeiling, Route, Routes,
};
use super::hops::{self, Databases, Percentiles, Timeline};
use super::plan::Plan;
use super::report::{Ratio, Verdict, ratios_table, share, targets_table};
use super::step::{self, Burst, Step, Subject};

/// The bare client through the proxy at one round trip.
#[derive(Debug, Clone, Serialize)]
pub struct BareAtRtt {
    pub rtt_ms: f64,
    pub calls: Vec<CallLatency>,
    /// Connections the proxy accepted per call while the calls were timed:
    /// 1 when the emulator closes every connection, near 0 when it keeps
    /// them alive.
    pub connections_per_call: f64,
    pub publish: PublishCeiling,
    pub receive: ReceiveCeiling,
    pub flow: EmulatorCeiling,
    pub flow_at_rate: EmulatorCeiling,
}

/// What the consumers did with a burst that waited for them.
#[derive(Debug, Clone, Serialize)]
pub struct ConsumerBurst {
    pub orders: usize,
    /// `OrderPlaced` messages the invoice service took per second, from the
    /// thaw to its last inbox row.
    pub invoice_events_per_sec: f64,
    /// Orders completed per second, from the thaw to the last notification.
    pub system_orders_per_sec: f64,
    pub completed: usize,
}

/// One relay setting at one round trip, on the stack.
#[derive(Debug, Clone, Serialize)]
pub struct RelayAtRtt {
    pub rtt_ms: f64,
    /// `configured` or `single-flight`.
    pub relay: String,
    /// The `RELAY_MAX_IN_FLIGHT` the services were given.
    pub in_flight_set: u32,
    /// The publish calls in flight the relay can have: what was set when the
    /// services read the setting, 1 when they do not.
    pub in_flight: u32,
    pub batch: u32,
    pub consumer_concurrency: u32,
    pub burst: Burst,
    pub consumers: ConsumerBurst,
    pub step: Step,
    /// Connections the services opened through the proxy per order of the step.
    pub connections_per_order: f64,
}

impl RelayAtRtt {
    /// `in_flight × batch / rtt`, events per second.
    pub fn relay_limit(&self) -> f64 {
        f64::from(self.in_flight * self.batch) / (self.rtt_ms / 1000.0).max(1e-6)
    }

    /// `concurrency × 10 / rtt`, messages per second on one queue.
    pub fn consumer_limit(&self) -> f64 {
        f64::from(self.consumer_concurrency * 10) / (self.rtt_ms / 1000.0).max(1e-6)
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct RoundTripRun {
    pub emulator: String,
    /// The steps' rate, orders per second.
    pub rate: f64,
    /// Whether the order binary reads `RELAY_MAX_IN_FLIGHT`.
    pub honours_in_flight: bool,
    pub bare: Vec<BareAtRtt>,
    pub relays: Vec<RelayAtRtt>,
    pub verdicts: Vec<Verdict>,
    pub ratios: Vec<Ratio>,
}

impl RoundTripRun {
    pub fn bare_at(&self, rtt_ms: f64) -> Option<&BareAtRtt> {
        self.bare.iter().find(|b| b.rtt_ms == rtt_ms)
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Whether the services' build reads `RELAY_MAX_IN_FLIGHT`: the order
/// binary holds the variable's name when its configuration reads it.
pub fn honours_in_flight() -> bool {
    let Ok(dir) = harness::stack::bin_dir() else {
        return false;
    };
    std::fs::read(dir.join(format!("{}-service", Service::Order.name())))
        .map(|bytes| bytes.windows(19).any(|w| w == b"RELAY_MAX_IN_FLIGHT"))
        .unwrap_or(false)
}

/// The whole round-trip mode on `kind`, its steps at `rate`.
pub async fn run(
    kind: EmulatorKind,
    plan: &Plan,
    log_dir: &std::path::Path,
    rate: f64,
) -> anyhow::Result<RoundTripRun> {
    println!(
        "== {kind}: round trips of {:?} ms, steps at {rate:.0} orders/s",
        plan.round_trips.iter().map(|d| ms(*d)).collect::<Vec<_>>()
    );
    // The bursts are smaller, and every wait for a drain longer by the round
    // trips its calls wait.
    let longest = plan.round_trips.iter().max().copied().unwrap_or_default();
    let plan = &Plan {
        burst: plan.round_trip_burst,
        drain_deadline: plan.drain_deadline * (1 + (ms(longest) / 20.0).ceil() as u32),
        ..plan.clone()
    };
    let bare = bare(kind, plan, log_dir, rate).await?;
    let honours = honours_in_flight();
    let relays = on_stack(kind, plan, log_dir, rate, honours).await?;
    Ok(RoundTripRun {
        emulator: kind.to_string(),
        rate,
        honours_in_flight: honours,
        bare,
        relays,
        verdicts: vec![],
        ratios: vec![],
    })
}

/// The bare client's measurements at each round trip, on a fresh emulator.
async fn bare(
    kind: EmulatorKind,
    plan: &Plan,
    log_dir: &std::path::Path,
    rate: f64,
) -> anyhow::Result<Vec<BareAtRtt>> {
    let dir = log_dir.join(format!("round-trip-ceiling-{kind}"));
    std::fs::create_dir_all(&dir)?;
    let emulator = Emulator::start(kind, None, &dir).await?;
    let proxy = FaultProxy::start(([127, 0, 0, 1], emulator.port()).into()).await?;
    let routes = Routes::provision(&proxy.url(), &emulator.endpoint()).await?;
    let consumers = consumer_concurrency(plan);
    let mut measured = Vec::new();
    for rtt in &plan.round_trips {
        let rtt_ms = ms(*rtt);
        proxy.set(NetFault::RoundTrip(*rtt));
        let before = proxy.connections();
        let calls = ceiling::call_latencies(&routes, kind).await?;
        let connections_per_call =
            (proxy.connections() - before) as f64 / (4 * ceiling::CALLS) as f64;
        routes.purge().await;
        let publish =
            ceiling::publish_ceiling(&routes, kind, plan.ceiling_concurrency, plan.ceiling).await?;
        let receive =
            ceiling::receive_ceiling(&routes, kind, plan.ceiling_concurrency, plan.burst).await?;
        // Each order waits about six round trips on its way: a window that
        // grows with the round trip keeps the emulator, not the window, the limit.
        let window = plan.window * (1 + (rtt_ms / 10.0).ceil() as usize);
        let flow = ceiling::measure(
            &routes,
            kind,
            Route::Flow,
            Load::Window {
                orders: window,
                publishers: plan.ceiling_concurrency,
                receivers: (plan.ceiling_concurrency / 4).max(2),
            },
            0,
            plan.ceiling,
        )
        .await?;
        routes.purge().await;
        let flow_at_rate = ceiling::measure(
            &routes,
            kind,
            Route::Flow,
            Load::Rate {
                rate,
                receivers: consumers as usize,
            },
            0,
            plan.reference,
        )
        .await?;
        routes.purge().await;
        println!(
            "   bare at {rtt_ms:.0} ms: PublishBatch p50 {:.1} ms ({:.2} connections per call), publish ceiling {:.0} events/s, receive ceiling {:.0} messages/s, flow ceiling {:.0} orders/s, flow at {rate:.0}/s p99 {:.0} ms",
            calls
                .iter()
                .find(|c| c.call == "PublishBatch" && c.entries == 10)
                .map_or(0.0, |c| c.latency.p50),
            connections_per_call,
            publish.events_per_sec,
            receive.messages_per_sec,
            flow.orders_per_sec,
            flow_at_rate.latency.p99
        );
        measured.push(BareAtRtt {
            rtt_ms,
            calls,
            connections_per_call,
            publish,
            receive,
            flow,
            flow_at_rate,
        });
    }
    Ok(measured)
}

/// The consumers' polls per queue, as the services are given them.
fn consumer_concurrency(plan: &Plan) -> u32 {
    plan.service_setting("CONSUMER_CONCURRENCY")
        .and_then(|v| v.parse().ok())
        .unwrap_or(2)
}

/// A stack behind one proxy: each relay setting at each round trip.
async fn on_stack(
    kind: EmulatorKind,
    plan: &Plan,
    log_dir: &std::path::Path,
    rate: f64,
    honours: bool,
) -> anyhow::Result<Vec<RelayAtRtt>> {
    let emulator_port = testkit::free_port()?;
    let proxy = FaultProxy::start(([127, 0, 0, 1], emulator_port).into()).await?;
    let mut service_env = vec![("RUST_LOG".to_string(), plan.service_log.clone())];
    service_env.extend(plan.service_env.iter().cloned());
    service_env.push(("AWS_ENDPOINT_URL".into(), proxy.url()));
    service_env.push((
        "RELAY_MAX_IN_FLIGHT".into(),
        plan.relay_in_flight.to_string(),
    ));
    println!("== {kind}: starting the stack behind the proxy");
    let mut stack = Stack::start(StackOptions {
        postgres: PostgresSource::EphemeralPerService,
        emulator: kind,
        emulator_port: Some(emulator_port),
        service_ports: None,
        database_prefix: String::new(),
        service_env,
        orders_chain: Chain::Standard,
        env_for: Default::default(),
        log_dir: log_dir.join(format!("round-trip-{kind}")),
    })
    .await?;
    let result = async {
        let batch: u32 = plan
            .service_setting("RELAY_BATCH_SIZE")
            .and_then(|v| v.parse().ok())
            .unwrap_or(10);
        let consumers = consumer_concurrency(plan);
        let subject = Subject::of(&mut stack)?;
        let observer = Observer::new(&subject.endpoints, &subject.topology).await?;
        let mut measured = Vec::new();
        for (label, in_flight_set) in [
            ("configured", plan.relay_in_flight),
            ("single-flight", 1),
        ] {
            if label != "configured" {
                let http = stack.http.clone();
                for service in [Service::Order, Service::Invoice] {
                    let process = stack.service(service);
                    process.set_env("RELAY_MAX_IN_FLIGHT", &in_flight_set.to_string());
                    process.restart(&http).await?;
                }
                // The killed processes' long polls run out first (see the baseline).
                tokio::time::sleep(plan.long_poll() + Duration::from_secs(1)).await;
            }
            let subject = Subject::of(&mut stack)?;
            let in_flight = if honours { in_flight_set } else { 1 };
            for rtt in &plan.round_trips {
                let rtt_ms = ms(*rtt);
                proxy.set(NetFault::RoundTrip(*rtt));
                let name = format!("{label} relay at {rtt_ms:.0} ms");
                let burst = step::burst(&subject, &observer, plan).await?;
                let consumers_burst = consumer_burst(&subject, &observer, plan).await?;
                let before = proxy.connections();
                let step =
                    step::run_step(&subject, &observer, plan, &name, rate, plan.reference).await?;
                let connections = proxy.connections() - before;
                step::print_step(&step);
                println!(
                    "   {name}: relay {:.0} events/s (limit {:.0}), invoice consumer {:.0} messages/s, {:.2} connections per order",
                    burst.relay_events_per_sec,
                    f64::from(in_flight * batch) / (rtt_ms / 1000.0),
                    consumers_burst.invoice_events_per_sec,
                    connections as f64 / step.completed.max(1) as f64
                );
                measured.push(RelayAtRtt {
                    rtt_ms,
                    relay: label.to_string(),
                    in_flight_set,
                    in_flight,
                    batch,
                    consumer_concurrency: consumers,
                    connections_per_order: connections as f64 / step.completed.max(1) as f64,
                    burst,
                    consumers: consumers_burst,
                    step,
                });
            }
        }
        anyhow::Ok(measured)
    }
    .await;
    stack.shutdown().await?;
    result
}

/// Freezes the invoice and notification services, commits `plan.burst`
/// orders and lets the order relay publish them all, then thaws both and
/// times them working through what waits in their queues.
async fn consumer_burst(
    subject: &Subject,
    observer: &Observer,
    plan: &Plan,
) -> anyhow::Result<ConsumerBurst> {
    let consumers = [Service::Invoice, Service::Notification];
    for service in consumers {
        subject.signal(service, Signal::SIGSTOP)?;
    }
    let published = step::publish_burst(subject, observer, plan).await;
    let thawed: DateTime<Utc> = Utc::now();
    for service in consumers {
        subject.signal(service, Signal::SIGCONT)?;
    }
    let ids = published?;
    step::wait_until_complete(observer, &ids, plan.drain_deadline, || {})
        .await
        .map_err(|e| anyhow::anyhow!("the consumer burst did not complete: {e}"))?;
    let orders: Vec<_> = ids.iter().map(|id| (*id, None)).collect();
    let timelines = hops::timelines(&Databases::of(observer), &orders).await?;
    let rate = |stamp: fn(&Timeline) -> Option<DateTime<Utc>>| {
        timelines
            .iter()
            .filter_map(stamp)
            .max()
            .map(|t| (t - thawed).num_microseconds().unwrap_or(0) as f64 / 1e6)
            .filter(|s| *s > 0.0)
            .map_or(0.0, |s| ids.len() as f64 / s)
    };
    Ok(ConsumerBurst {
        orders: ids.len(),
        invoice_events_per_sec: rate(|t| t.invoice_received),
        system_orders_per_sec: rate(Timeline::notified),
        completed: timelines.iter().filter(|t| t.complete()).count(),
    })
}

/// The relay's share of its limit that counts as keeping up with it.
pub const RELAY_SHARE: f64 = 0.8;
/// Events per second one relay should publish at 20 ms on the fastest emulator.
pub const RELAY_EVENTS_AT_20_MS: f64 = 5000.0;
/// The services' CPU per order.
pub const CPU_MS_PER_ORDER: f64 = 1.0;
/// End-to-end p99 against the bare client's flow p99 at the same rate.
pub const E2E_OVER_BARE: f64 = 1.5;

fn e2e(step: &Step) -> Percentiles {
    step.hop(hops::END_TO_END)
        .map(|h| h.latency)
        .unwrap_or_default()
}

/// Judges every round-trip run against issue 15's targets. The 5,000
/// events/s target is judged on the fastest emulator only: the one whose
/// publish ceiling at 20 ms is the highest.
pub fn judge(runs: &mut [RoundTripRun]) {
    let fastest = runs
        .iter()
        .filter_map(|r| Some((r.emulator.clone(), r.bare_at(20.0)?.publish.events_per_sec)))
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .map(|(e, _)| e);
    for run in runs.iter_mut() {
        let mut verdicts = Vec::new();
        let mut ratios = Vec::new();
        for r in &run.relays {
            let Some(bare) = run.bare.iter().find(|b| b.rtt_ms == r.rtt_ms) else {
                continue;
            };
            let at = format!("{} relay at {:.0} ms", r.relay, r.rtt_ms);
            let relay = r.burst.relay_events_per_sec;
            let limit = r.relay_limit();
            let ceiling = bare.publish.events_per_sec;
            let bound = limit.min(ceiling);
            let ratio = share(relay, bound);
            verdicts.push(Verdict {
                target: format!(
                    "{at}: ≥ {RELAY_SHARE} of its round-trip limit ({} × {} / {:.0} ms), or of the emulator's publish ceiling when lower",
                    r.in_flight, r.batch, r.rtt_ms
                ),
                observed: format!(
                    "{relay:.0} events/s; limit {limit:.0}, emulator {ceiling:.0} ({})",
                    if limit <= ceiling { "the limit binds" } else { "the emulator binds" }
                ),
                ratio,
                met: ratio >= RELAY_SHARE,
            });
            ratios.push(Ratio {
                what: format!("{at}: relay ÷ round-trip limit"),
                ratio: share(relay, limit),
            });
            ratios.push(Ratio {
                what: format!("{at}: relay ÷ emulator publish ceiling through the proxy"),
                ratio: share(relay, ceiling),
            });
            let consumer = r.consumers.invoice_events_per_sec;
            ratios.push(Ratio {
                what: format!(
                    "{at}: invoice consumer ÷ its round-trip limit ({} × 10 / {:.0} ms)",
                    r.consumer_concurrency, r.rtt_ms
                ),
                ratio: share(consumer, r.consumer_limit()),
            });
            ratios.push(Ratio {
                what: format!(
                    "{at}: invoice consumer ÷ emulator receive ceiling through the proxy"
                ),
                ratio: share(consumer, bare.receive.messages_per_sec),
            });
            ratios.push(Ratio {
                what: format!("{at}: system burst ÷ bare flow ceiling through the proxy"),
                ratio: share(r.burst.system_orders_per_sec, bare.flow.orders_per_sec),
            });
            if r.relay != "configured" {
                continue;
            }
            if r.rtt_ms == 20.0 && fastest.as_deref() == Some(run.emulator.as_str()) {
                verdicts.push(Verdict {
                    target: format!(
                        "one relay at 20 ms ≥ {RELAY_EVENTS_AT_20_MS:.0} events/s on the fastest emulator ({})",
                        run.emulator
                    ),
                    observed: format!("{relay:.0} events/s"),
                    ratio: relay / RELAY_EVENTS_AT_20_MS,
                    met: relay >= RELAY_EVENTS_AT_20_MS,
                });
            }
            let cpu = r.step.services_cpu_ms_per_order();
            verdicts.push(Verdict {
                target: format!("{at}: services ≤ {CPU_MS_PER_ORDER} ms CPU per order"),
                observed: format!("{cpu:.2} ms per order at {:.0}/s", r.step.offered_rate),
                ratio: cpu / CPU_MS_PER_ORDER,
                met: cpu <= CPU_MS_PER_ORDER,
            });
            let (ours, theirs) = (e2e(&r.step), bare.flow_at_rate.latency);
            let ratio = share(ours.p99, theirs.p99);
            verdicts.push(Verdict {
                target: format!(
                    "{at}: end-to-end p99 ≤ {E2E_OVER_BARE}× the bare client's flow p99 at the same rate"
                ),
                observed: if theirs.count == 0 {
                    format!(
                        "{:.0} ms; the bare client completed none of its orders at {:.0}/s within its bound, so there is no p99 to compare with",
                        ours.p99, r.step.offered_rate
                    )
                } else {
                    format!(
                        "{:.0} ms against {:.0} ms at {:.0}/s",
                        ours.p99, theirs.p99, r.step.offered_rate
                    )
                },
                ratio: ratio / E2E_OVER_BARE,
                met: ratio <= E2E_OVER_BARE && ours.count > 0 && theirs.count > 0,
            });
        }
        for r in run.relays.iter().filter(|r| r.relay == "configured") {
            if let Some(single) = run
                .relays
                .iter()
                .find(|s| s.relay == "single-flight" && s.rtt_ms == r.rtt_ms)
            {
                ratios.push(Ratio {
                    what: format!(
                        "configured ÷ single-flight relay drain at {:.0} ms",
                        r.rtt_ms
                    ),
                    ratio: share(
                        r.burst.relay_events_per_sec,
                        single.burst.relay_events_per_sec,
                    ),
                });
            }
        }
        run.verdicts = verdicts;
        run.ratios = ratios;
    }
}

/// The round-trip section of the report.
pub fn markdown(md: &mut String, runs: &[RoundTripRun]) {
    use harness::report::Table;
    use std::fmt::Write as _;

    use super::report::{ratio, tenths};

    let _ = writeln!(
        md,
        "\n## Round trips\n\nEvery AWS call through a proxy that adds the round-trip time given to each request → response exchange (half each way, per chunk, as a delay line) and one more to a new connection's first bytes (the handshake). Limits: a relay publishes at most in flight × batch / RTT events/s, a consumer takes at most polls × 10 / RTT messages/s per queue."
    );
    for run in runs {
        let _ = writeln!(
            md,
            "\n### {} at round trips, steps at {:.0} orders/s\n\nThe services' build {} `RELAY_MAX_IN_FLIGHT`{}.\n",
            run.emulator,
            run.rate,
            if run.honours_in_flight {
                "reads"
            } else {
                "does not read"
            },
            if run.honours_in_flight {
                ""
            } else {
                ": its relay has one publish call in flight whatever is set, and the limits below count 1"
            }
        );
        let mut bare = Table::new([
            "RTT (ms)",
            "PublishBatch of 10 p50 (ms)",
            "connections per call",
            "publish ceiling (events/s)",
            "receive ceiling (messages/s)",
            "flow ceiling (orders/s)",
            "bare flow at the rate p50 / p99 (ms)",
        ])
        .right_aligned(0..);
        for b in &run.bare {
            let publish = b
                .calls
                .iter()
                .find(|c| c.call == "PublishBatch" && c.entries == 10)
                .map_or(0.0, |c| c.latency.p50);
            bare.row([
                format!("{:.0}", b.rtt_ms),
                tenths(publish),
                format!("{:.2}", b.connections_per_call),
                format!(
                    "{:.0} ({} in flight)",
                    b.publish.events_per_sec, b.publish.publishers
                ),
                format!(
                    "{:.0} ({} loops)",
                    b.receive.messages_per_sec, b.receive.receivers
                ),
                format!("{:.0} ({} in flight)", b.flow.orders_per_sec, b.flow.window),
                format!(
                    "{:.0} / {:.0} ({} of the orders)",
                    b.flow_at_rate.latency.p50,
                    b.flow_at_rate.latency.p99,
                    b.flow_at_rate.latency.count
                ),
            ]);
        }
        let _ = write!(md, "The bare client through the proxy:\n\n{bare}");
        let mut stack = Table::new([
            "RTT (ms)",
            "relay",
            "in flight × batch",
            "relay events/s",
            "÷ RTT limit",
            "÷ emulator publish ceiling",
            "invoice consumer messages/s",
            "÷ its RTT limit",
            "system burst orders/s",
            "e2e p50 / p99 (ms)",
            "÷ bare flow p99",
            "services CPU ms/order",
            "connections per order",
            "step sustained",
        ])
        .right_aligned(0..1)
        .right_aligned(2..13);
        for r in &run.relays {
            let bare = run.bare_at(r.rtt_ms);
            let e2e = e2e(&r.step);
            stack.row([
                format!("{:.0}", r.rtt_ms),
                r.relay.clone(),
                format!("{} × {}", r.in_flight, r.batch),
                format!("{:.0}", r.burst.relay_events_per_sec),
                ratio(r.burst.relay_events_per_sec / r.relay_limit()),
                bare.map_or("–".into(), |b| {
                    ratio(share(
                        r.burst.relay_events_per_sec,
                        b.publish.events_per_sec,
                    ))
                }),
                format!("{:.0}", r.consumers.invoice_events_per_sec),
                ratio(r.consumers.invoice_events_per_sec / r.consumer_limit()),
                format!("{:.0}", r.burst.system_orders_per_sec),
                format!("{:.0} / {:.0}", e2e.p50, e2e.p99),
                bare.map_or("–".into(), |b| {
                    ratio(share(e2e.p99, b.flow_at_rate.latency.p99))
                }),
                format!("{:.2}", r.step.services_cpu_ms_per_order()),
                format!("{:.2}", r.connections_per_order),
                if r.step.sustained {
                    "yes".into()
                } else {
                    format!("no: {}", r.step.why_not.join("; "))
                },
            ]);
        }
        let _ = write!(md, "\nThe services through the proxy:\n\n{stack}");
        let _ = write!(md, "\nTargets:\n\n{}", targets_table(&run.verdicts));
        let _ = write!(md, "\nRatios:\n\n{}", ratios_table(&run.ratios));
    }
}
