//! The timeline chart of a run: orders accepted, refused, invoiced and
//! notified per second, with the fault windows shaded, and on a right axis of
//! its own the depth of the buffer in front of the fault (`crate::buffer`).
//! Its look (palette, canvas, axes, legend) is the tools' shared one,
//! `harness::chart`.

use std::path::Path;

use harness::chart::{self, Axis, BLUE, GREEN, ORANGE, RED};
use plotters::prelude::*;

use super::report::{Second, Window};

const FAULT: RGBColor = RGBColor(255, 205, 210);

/// A line of the chart: its label, its colour and its value in a second.
type Series = (&'static str, RGBColor, fn(&Second) -> f64);

/// The buffer's line: dark grey, dashed, so that it reads apart from the rates.
const BUFFER: RGBColor = RGBColor(66, 66, 66);

/// Draws `seconds` into an SVG file at `path`; `buffer` names what
/// `Second::buffer` measures, when it was sampled.
pub fn draw(
    path: &Path,
    title: &str,
    seconds: &[Second],
    faults: &[Window],
    buffer: Option<&str>,
) -> anyhow::Result<()> {
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
    // More headroom than the rates: the buffer peaks as the fault heals,
    // at the right, under the legend.
    let buffer_top = seconds
        .iter()
        .filter_map(|s| s.buffer)
        .max()
        .unwrap_or(1)
        .max(1) as f64
        * 1.6;
    let root = chart::canvas(path, 420)?;
    let mut builder = chart::builder(&root, title, 48);
    if buffer.is_some() {
        builder.right_y_label_area_size(56);
    }
    let mut chart = builder
        .build_cartesian_2d(0f64..end, 0f64..top)?
        .set_secondary_coord(0f64..end, 0f64..buffer_top);
    let whole = |v: &f64| format!("{v:.0}");
    chart::draw_axes(
        &mut *chart,
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
    if let Some(label) = buffer {
        chart
            .configure_secondary_axes()
            .y_desc("messages waiting")
            .y_label_formatter(&whole)
            .draw()?;
        // A second without a sample (the broker or the database was the
        // fault) breaks the line rather than bridging it with a guess.
        let mut runs: Vec<Vec<(f64, f64)>> = Vec::new();
        let mut previous = None;
        for s in seconds {
            let Some(depth) = s.buffer else { continue };
            if previous.is_none_or(|t| t + 1 != s.t) {
                runs.push(Vec::new());
            }
            previous = Some(s.t);
            if let Some(run) = runs.last_mut() {
                run.push((s.t as f64 + 0.5, depth as f64));
            }
        }
        for (i, run) in runs.into_iter().enumerate() {
            let line = chart.draw_secondary_series(DashedLineSeries::new(
                run,
                6,
                4,
                BUFFER.stroke_width(2),
            ))?;
            if i == 0 {
                line.label(label)
                    .legend(chart::legend_line(BUFFER.stroke_width(3)));
            }
        }
    }
    chart::draw_legend(&mut *chart)?;
    root.present()?;
    Ok(())
}
