//! The timeline chart of a run: orders accepted, refused, invoiced and
//! notified per second, with the fault windows shaded. SVG, so it renders in
//! any browser and on GitHub, and needs no font files to draw.

use std::path::Path;

use plotters::prelude::*;

use super::report::{Second, Window};

const ACCEPTED: RGBColor = RGBColor(46, 125, 50);
const REFUSED: RGBColor = RGBColor(198, 40, 40);
const INVOICED: RGBColor = RGBColor(21, 101, 192);
const NOTIFIED: RGBColor = RGBColor(239, 108, 0);
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
    let root = SVGBackend::new(path, (960, 420)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(48)
        .build_cartesian_2d(0f64..end, 0f64..top)?;
    chart
        .configure_mesh()
        .x_desc("seconds since the start of the run")
        .y_desc("per second")
        .light_line_style(WHITE.mix(0.0))
        .x_label_formatter(&|v| format!("{v:.0}"))
        .y_label_formatter(&|v| format!("{v:.0}"))
        .draw()?;
    for window in faults {
        chart.draw_series(std::iter::once(Rectangle::new(
            [(window.from, 0.0), (window.to.max(window.from + 0.2), top)],
            FAULT.mix(0.6).filled(),
        )))?;
    }
    let series: [Series; 4] = [
        ("orders accepted", ACCEPTED, |s| s.accepted as f64),
        ("orders refused or unknown", REFUSED, |s| s.refused as f64),
        ("invoices issued", INVOICED, |s| s.invoiced as f64),
        ("notifications ÷ 2", NOTIFIED, |s| s.notified as f64 / 2.0),
    ];
    for (label, color, value) in series {
        chart
            .draw_series(LineSeries::new(
                seconds.iter().map(|s| (s.t as f64 + 0.5, value(s))),
                color.stroke_width(2),
            ))?
            .label(label)
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 18, y)], color.stroke_width(3)));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.3))
        .draw()?;
    root.present()?;
    Ok(())
}
