//! The chart of a run: end-to-end latency percentiles (accepted → last
//! notification recorded) and the order relay's p99 against the offered
//! load, on a logarithmic latency axis, with the sustained rate and the
//! emulator's flow ceiling marked, and the baseline relay's p99 as a single
//! point. Its look (palette, canvas, axes, legend) is the tools' shared one,
//! `harness::chart`, as the chaos timeline's is.

use std::path::Path;

use harness::chart::{self, Axis, BLUE, GREEN, ORANGE, RED};
use plotters::prelude::*;

use super::ceiling::EmulatorCeiling;
use super::hops::{self, Percentiles};
use super::report::Run;
use super::step::Step;

const P50: RGBColor = GREEN;
const P90: RGBColor = BLUE;
const P99: RGBColor = ORANGE;
const P999: RGBColor = RED;
const RELAY: RGBColor = RGBColor(106, 27, 154);
const MARK: RGBColor = RGBColor(120, 120, 120);

type Series = (&'static str, RGBColor, fn(&Percentiles) -> f64);

/// Draws `run` into an SVG file at `path`.
pub fn draw(path: &Path, run: &Run, ceiling: Option<&EmulatorCeiling>) -> anyhow::Result<()> {
    let mut steps: Vec<&Step> = run.steps.iter().collect();
    steps.sort_by(|a, b| a.offered_rate.total_cmp(&b.offered_rate));
    let e2e = |s: &Step| {
        s.hop(hops::END_TO_END)
            .map(|h| h.latency)
            .unwrap_or_default()
    };
    let relay = |s: &Step| {
        s.hop(hops::ORDER_RELAY)
            .map(|h| h.latency)
            .unwrap_or_default()
    };
    let right = steps
        .iter()
        .map(|s| s.offered_rate)
        .chain(ceiling.map(|c| c.orders_per_sec))
        .fold(1.0, f64::max)
        * 1.1;
    let top = steps
        .iter()
        .map(|s| e2e(s).max)
        .chain(run.baseline.iter().map(|b| e2e(&b.reference).p99))
        .fold(10.0, f64::max)
        * 2.0;
    let root = chart::canvas(path, 480)?;
    let caption = format!("Latency against offered load ({})", run.emulator);
    let mut chart = chart::builder(&root, &caption, 56)
        .build_cartesian_2d(0f64..right, (0.1f64..top).log_scale())?;
    chart::draw_axes(
        &mut chart,
        Axis {
            desc: "offered load, orders per second",
            label: &|v| format!("{v:.0}"),
        },
        Axis {
            desc: "latency, ms (log scale)",
            label: &|v| format!("{v}"),
        },
    )?;
    let mut marks = vec![(
        format!("sustained {:.0}/s", run.sustained_rate),
        run.sustained_rate,
    )];
    if let Some(c) = ceiling {
        marks.push((
            format!("{} ceiling {:.0}/s", c.emulator, c.orders_per_sec),
            c.orders_per_sec,
        ));
    }
    for (label, x) in marks {
        chart
            .draw_series(LineSeries::new([(x, 0.1), (x, top)], MARK.stroke_width(1)))?
            .label(label)
            .legend(chart::legend_line(MARK.stroke_width(1)));
    }
    let series: [Series; 4] = [
        ("end to end p50", P50, |p| p.p50),
        ("end to end p90", P90, |p| p.p90),
        ("end to end p99", P99, |p| p.p99),
        ("end to end p99.9", P999, |p| p.p999),
    ];
    let floor = |v: f64| v.max(0.1);
    for (label, color, value) in series {
        let points: Vec<(f64, f64)> = steps
            .iter()
            .map(|s| (s.offered_rate, floor(value(&e2e(s)))))
            .collect();
        chart
            .draw_series(LineSeries::new(points.clone(), color.stroke_width(2)))?
            .label(label)
            .legend(chart::legend_line(color.stroke_width(3)));
        chart.draw_series(
            points
                .into_iter()
                .map(|p| Circle::new(p, 3, color.filled())),
        )?;
    }
    chart
        .draw_series(LineSeries::new(
            steps.iter().map(|s| (s.offered_rate, floor(relay(s).p99))),
            RELAY.stroke_width(1),
        ))?
        .label("order relay commit → publish p99")
        .legend(chart::legend_line(RELAY.stroke_width(2)));
    if let Some(baseline) = &run.baseline {
        let base = &baseline.reference;
        chart
            .draw_series(std::iter::once(Cross::new(
                (base.offered_rate, floor(e2e(base).p99)),
                6,
                P999.stroke_width(2),
            )))?
            .label("baseline relay, end to end p99")
            .legend(|(x, y)| Cross::new((x + 9, y), 5, P999.stroke_width(2)));
    }
    chart::draw_legend(&mut chart)?;
    root.present()?;
    Ok(())
}
