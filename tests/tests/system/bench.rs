//! The benchmark's smoke run (`Plan::smoke`, seconds of load), with the
//! round-trip mode at one round trip: every figure the `bench` command
//! reports is produced, and every order of every step completes. No timing
//! is asserted beyond physics: the figures of a run this short on a shared
//! machine mean nothing (the real run is the `bench` command's), but nothing
//! that crosses a proxy adding 20 ms per round trip can take less than 20 ms.

use std::time::Duration;

use bench::ceiling::Route;
use bench::hops::{END_TO_END, HOPS};
use bench::step::Step;
use bench::{Plan, report::Report};
use testkit::emulator::EmulatorKind;

/// The smoke run's round trip.
const RTT_MS: f64 = 20.0;

fn every_order_completed_and_every_hop_measured(step: &Step) {
    assert!(step.attempts > 0, "{}: no load", step.label);
    assert_eq!(
        step.completed, step.accepted,
        "{} at {}/s: not every accepted order completed",
        step.label, step.offered_rate
    );
    assert_eq!(step.hops.len(), HOPS.len());
    for hop in &step.hops {
        assert_eq!(
            hop.latency.count as usize, step.accepted,
            "{}: hop {} measured {} of {} orders",
            step.label, hop.hop, hop.latency.count, step.accepted
        );
    }
    let services = step.usage.iter().filter(|u| u.rss_max_bytes.is_some());
    assert_eq!(services.clone().count(), 3, "{:?}", step.usage);
    for usage in services {
        assert!(usage.rss_max_bytes.unwrap_or(0) > 0, "{usage:?}");
        assert!(usage.rss_peak_bytes.unwrap_or(0) > 0, "{usage:?}");
        assert!(usage.cpu_ms_per_order.is_finite(), "{usage:?}");
    }
    assert_eq!(
        step.usage.len(),
        6,
        "services, emulator, Postgres and the bench"
    );
    assert!(
        !step.backlog.is_empty(),
        "{}: no backlog sample",
        step.label
    );
}

fn every_figure_is_there(report: &Report) {
    for kind in [EmulatorKind::Moto, EmulatorKind::MotoStock] {
        let calls = report.calls.iter().filter(|c| c.emulator == kind.as_str());
        assert_eq!(calls.clone().count(), 4, "{:?}", report.calls);
        for call in calls {
            assert!(call.latency.count > 0, "{call:?}");
        }
        for route in [Route::Orders, Route::Billing, Route::Flow] {
            let ceiling = report
                .ceilings
                .iter()
                .find(|c| c.emulator == kind.as_str() && c.route == route && c.backlog == 0)
                .unwrap_or_else(|| panic!("no {route:?} ceiling on {kind}"));
            assert!(ceiling.orders_per_sec > 0.0, "{ceiling:?}");
            assert!(ceiling.deliveries_per_sec > 0.0, "{ceiling:?}");
        }
        assert!(
            report
                .ceilings
                .iter()
                .any(|c| c.emulator == kind.as_str() && c.backlog > 0),
            "no flow ceiling with a backlog on {kind}"
        );
    }
    assert!(report.ceiling_message_bytes.order_placed > 0);
    assert_eq!(report.elasticity.len(), 1, "one emulator in the smoke plan");
    let drains = &report.elasticity[0].drains;
    assert_eq!(
        drains.iter().map(|d| d.instances).collect::<Vec<_>>(),
        [1, 2]
    );
    for drain in drains {
        assert_eq!(drain.invoiced_once, drain.orders, "{drain:?}");
        assert!(drain.events_per_sec > 0.0, "{drain:?}");
    }
    assert_eq!(report.functions.len(), 1, "one emulator in the smoke plan");
    let drains = &report.functions[0].drains;
    assert_eq!(
        drains.iter().map(|d| d.concurrency).collect::<Vec<_>>(),
        [1, 2]
    );
    for drain in drains {
        assert_eq!(drain.invoiced_once, drain.orders, "{drain:?}");
        assert_eq!(drain.init_ms.len(), drain.concurrency as usize, "{drain:?}");
        assert!(drain.init_ms.iter().all(|ms| *ms > 0.0), "{drain:?}");
        assert!(!drain.first_invocation_ms.is_empty(), "{drain:?}");
        assert!(drain.events_per_sec > 0.0, "{drain:?}");
    }
    assert_eq!(report.runs.len(), 1);
    let run = &report.runs[0];
    assert!(run.postgres.orders_per_sec > 0.0, "{:?}", run.postgres);
    assert!(run.postgres.latency.count > 0);
    assert!(run.message_bytes.order_placed > 0 && run.message_bytes.invoice_issued > 0);
    // The ceilings publish what the services publish: the same envelopes, and
    // the trace context where the services write one. Only names and
    // counters differ in length.
    for (ceiling, published) in [
        (
            report.ceiling_message_bytes.order_placed,
            run.message_bytes.order_placed,
        ),
        (
            report.ceiling_message_bytes.invoice_issued,
            run.message_bytes.invoice_issued,
        ),
    ] {
        assert!(
            ceiling.abs_diff(published) <= 16,
            "the ceilings publish {:?}, the services {:?}",
            report.ceiling_message_bytes,
            run.message_bytes
        );
    }
    let baseline = run
        .baseline
        .as_ref()
        .expect("the baseline runs on a stack of its own");
    for step in run
        .steps
        .iter()
        .chain([&run.reference, &baseline.reference])
    {
        every_order_completed_and_every_hop_measured(step);
    }
    for burst in [&run.burst, &baseline.burst] {
        assert_eq!(burst.completed, burst.orders, "{burst:?}");
        assert!(burst.relay_events_per_sec > 0.0, "{burst:?}");
        assert!(burst.system_orders_per_sec > 0.0, "{burst:?}");
    }
    assert_eq!(run.rss_peak.len(), 3);
    let auth = &run.auth;
    assert_eq!(auth.verifications, bench::auth_cost::VERIFICATIONS);
    assert!(
        auth.mean_us > 0.0 && auth.p50_us > 0.0 && auth.p50_us <= auth.p99_us,
        "{auth:?}"
    );
    assert!(
        run.ratios
            .iter()
            .any(|r| r.what.starts_with("verifying a bearer token")),
        "{:#?}",
        run.ratios
    );
    assert_eq!(run.sustained_rates.len(), 1, "one search in the smoke plan");
    assert_eq!(run.sustained_rate, run.sustained_rates[0]);
    // Throughput, two relay hops, end to end, CPU at the sustained and at the
    // reference rate, and memory per service.
    assert_eq!(run.verdicts.len(), 9, "{:#?}", run.verdicts);
    for ratio in run
        .verdicts
        .iter()
        .map(|v| v.ratio)
        .chain(run.ratios.iter().map(|r| r.ratio))
    {
        assert!(ratio.is_finite(), "{:#?} {:#?}", run.verdicts, run.ratios);
    }
}

/// The round-trip mode at one round trip: the bare client's figures and
/// both relays', and the proxy really in the way.
fn every_round_trip_figure_is_there(report: &Report) {
    assert_eq!(report.round_trips.len(), 1, "one emulator");
    let run = &report.round_trips[0];
    assert_eq!(run.emulator, "moto");
    assert_eq!(run.bare.len(), 1, "one round trip");
    let bare = &run.bare[0];
    assert_eq!(bare.rtt_ms, RTT_MS);
    assert_eq!(bare.calls.len(), 4, "{:?}", bare.calls);
    for call in &bare.calls {
        assert!(
            call.latency.p50 >= RTT_MS,
            "a call through a {RTT_MS} ms proxy took less: {call:?}"
        );
    }
    assert!(bare.connections_per_call > 0.0, "{bare:?}");
    assert!(bare.publish.events_per_sec > 0.0, "{:?}", bare.publish);
    assert!(bare.receive.messages_per_sec > 0.0, "{:?}", bare.receive);
    assert!(bare.flow.orders_per_sec > 0.0, "{:?}", bare.flow);
    let at_rate = &bare.flow_at_rate;
    assert!(at_rate.latency.count > 0, "{at_rate:?}");
    assert!(at_rate.latency.p50 >= RTT_MS, "{at_rate:?}");
    let relays: Vec<&str> = run.relays.iter().map(|r| r.relay.as_str()).collect();
    assert_eq!(relays, ["configured", "single-flight"]);
    for relay in &run.relays {
        assert_eq!(relay.rtt_ms, RTT_MS);
        assert_eq!(
            relay.in_flight,
            if run.honours_in_flight {
                relay.in_flight_set
            } else {
                1
            }
        );
        assert_eq!(relay.burst.completed, relay.burst.orders, "{relay:?}");
        assert!(relay.burst.relay_events_per_sec > 0.0, "{:?}", relay.burst);
        assert_eq!(
            relay.consumers.completed, relay.consumers.orders,
            "{:?}",
            relay.consumers
        );
        assert!(
            relay.consumers.invoice_events_per_sec > 0.0,
            "{:?}",
            relay.consumers
        );
        every_order_completed_and_every_hop_measured(&relay.step);
        let e2e = relay.step.hop(END_TO_END).expect("end to end").latency;
        assert!(
            e2e.p50 >= RTT_MS,
            "{} crossed the proxy: {e2e:?}",
            relay.relay
        );
        assert!(relay.connections_per_order.is_finite(), "{relay:?}");
    }
    assert!(!run.verdicts.is_empty());
    for ratio in run
        .verdicts
        .iter()
        .map(|v| v.ratio)
        .chain(run.ratios.iter().map(|r| r.ratio))
    {
        assert!(ratio.is_finite(), "{:#?} {:#?}", run.verdicts, run.ratios);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_smoke_run_produces_every_figure_and_completes_every_order() -> anyhow::Result<()> {
    let results = tempfile::tempdir()?;
    let mut plan = Plan::smoke();
    plan.emulators = vec![EmulatorKind::Moto];
    plan.round_trips = vec![Duration::from_secs_f64(RTT_MS / 1000.0)];
    let (report, dir) = bench::run(&plan, results.path(), "smoke test").await?;
    every_figure_is_there(&report);
    every_round_trip_figure_is_there(&report);
    for file in ["report.json", "report.md", "latency-moto.svg"] {
        let path = dir.join(file);
        assert!(
            std::fs::metadata(&path)
                .map(|m| m.len() > 0)
                .unwrap_or(false),
            "{} was not written",
            path.display()
        );
    }
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.join("report.json"))?)?;
    assert!(json["runs"][0]["reference"]["hops"].is_array());
    assert!(json["round_trips"][0]["relays"].is_array());
    let markdown = std::fs::read_to_string(dir.join("report.md"))?;
    assert!(markdown.contains("## Round trips"), "{markdown}");
    assert!(markdown.contains("## Per emulator"), "{markdown}");
    Ok(())
}
