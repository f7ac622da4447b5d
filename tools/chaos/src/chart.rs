//! The timeline chart of a run: orders accepted, refused, invoiced and
//! notified per second, with the fault windows shaded. Its look (palette,
//! canvas, axes, legend) is the tools' shared one, `harness::chart`.

use std::path::Path;

use harness::chart::{self, Axis, BLUE, GREEN, ORANGE, RED};
use plotters::prelude::*;

use super::report::{Second, Window};

const FAULT: RGBColor = RGBColor(255, 205, 210);

/// A line of the chart: its label, its colour and its value in a second.
type Series = (&'static str, RGBColor, fn(&Second) -> f64);

/// Draws `seconds` into an SVG file at `path`.
pub fn draw(path: &Path, title: &str, seconds: &[Second], faults: &[Window]) -> anyhow::Result<()> {
    let end = seconds.last().map(|s| s.t + 1).unwrap_or(1) as f64;
    let top = seconds
        .iter()
        .map(|s| {
            s.accepted
                .max(s.refused)
                .max(s.invoiced)
                .max(s.notified / 2)
        })
        .max()
        .unwrap_or(1)
        .max(1) as f64
        * 1.4;
    let root = chart::canvas(path, 420)?;
    let mut chart = chart::builder(&root, title, 48).build_cartesian_2d(0f64..end, 0f64..top)?;
    let whole = |v: &f64| format!("{v:.0}");
    chart::draw_axes(
        &mut chart,
        Axis {
            desc: "seconds since the start of the run",
            label: &whole,
        },
        Axis {
            desc: "per second",
            label: &whole,
        },
    )?;
    for window in faults {
        chart.draw_series(std::iter::once(Rectangle::new(
            [(window.from, 0.0), (window.to.max(window.from + 0.2), top)],
            FAULT.mix(0.6).filled(),
        )))?;
    }
    let series: [Series; 4] = [
        ("orders accepted", GREEN, |s| s.accepted as f64),
        ("orders refused or unknown", RED, |s| s.refused as f64),
        ("invoices issued", BLUE, |s| s.invoiced as f64),
        ("notifications ÷ 2", ORANGE, |s| s.notified as f64 / 2.0),
    ];
    for (label, color, value) in series {
        chart
            .draw_series(LineSeries::new(
                seconds.iter().map(|s| (s.t as f64 + 0.5, value(s))),
                color.stroke_width(2),
            ))?
            .label(label)
            .legend(chart::legend_line(color.stroke_width(3)));
    }
    chart::draw_legend(&mut chart)?;
    root.present()?;
    Ok(())
}
