//! The benchmark's smoke run (`Plan::smoke`, seconds of load): every figure
//! the `bench` command reports is produced, and every order of every step
//! completes. No timing is asserted: the figures of a run this short on a
//! shared machine mean nothing; the real run is the `bench` command's.

use bench::ceiling::Route;
use bench::hops::HOPS;
use bench::step::Step;
use bench::{Plan, report::Report};
use testkit::emulator::EmulatorKind;

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
    // Throughput, two relay hops, end to end, CPU, and memory per service.
    assert_eq!(run.verdicts.len(), 8, "{:#?}", run.verdicts);
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
    let (report, dir) = bench::run(&plan, results.path(), "smoke test").await?;
    every_figure_is_there(&report);
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
    Ok(())
}
