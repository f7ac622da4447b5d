//! What the tools' SVG charts share, so chaos's timeline and bench's latency
//! chart look like one family: the palette, the canvas and caption, the axes
//! and the legend.
//!
//! SVG, so a chart renders in any browser and on GitHub, and needs no font
//! files to draw. What each chart plots stays in its tool.

use std::path::Path;

use plotters::coord::Shift;
use plotters::coord::ranged1d::{Ranged, ValueFormatter};
use plotters::prelude::*;

/// The palette: the first four series of every chart, in this order.
pub const GREEN: RGBColor = RGBColor(46, 125, 50);
pub const RED: RGBColor = RGBColor(198, 40, 40);
pub const BLUE: RGBColor = RGBColor(21, 101, 192);
pub const ORANGE: RGBColor = RGBColor(239, 108, 0);

/// Every chart's width in pixels; the height is the chart's own.
pub const WIDTH: u32 = 960;

/// A white SVG canvas of `height` pixels at `path`.
pub fn canvas(path: &Path, height: u32) -> anyhow::Result<DrawingArea<SVGBackend<'_>, Shift>> {
    let root = SVGBackend::new(path, (WIDTH, height)).into_drawing_area();
    root.fill(&WHITE)?;
    Ok(root)
}

/// A chart on `root` with `caption` above it and `y_labels` pixels left for
/// the values of the y axis; build its coordinates next.
pub fn builder<'a, 'b>(
    root: &'a DrawingArea<SVGBackend<'b>, Shift>,
    caption: &str,
    y_labels: u32,
) -> ChartBuilder<'a, 'b, SVGBackend<'b>> {
    let mut builder = ChartBuilder::on(root);
    builder
        .caption(caption, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(y_labels);
    builder
}

/// One axis: its description and how its values read.
pub struct Axis<'f, T> {
    pub desc: &'f str,
    pub label: &'f dyn Fn(&T) -> String,
}

/// Draws both axes described and labelled, without the light grid lines.
pub fn draw_axes<X, Y>(
    chart: &mut ChartContext<'_, SVGBackend<'_>, Cartesian2d<X, Y>>,
    x: Axis<'_, X::ValueType>,
    y: Axis<'_, Y::ValueType>,
) -> anyhow::Result<()>
where
    X: Ranged + ValueFormatter<X::ValueType>,
    Y: Ranged + ValueFormatter<Y::ValueType>,
{
    chart
        .configure_mesh()
        .x_desc(x.desc)
        .y_desc(y.desc)
        .light_line_style(WHITE.mix(0.0))
        .x_label_formatter(x.label)
        .y_label_formatter(y.label)
        .draw()?;
    Ok(())
}

/// A legend entry: a short line in `style`.
pub fn legend_line(style: ShapeStyle) -> impl Fn((i32, i32)) -> PathElement<(i32, i32)> {
    move |(x, y)| PathElement::new([(x, y), (x + 18, y)], style)
}

/// Draws the legend in the upper right corner, over a pale background.
pub fn draw_legend<'a, 'b: 'a, X: Ranged, Y: Ranged>(
    chart: &mut ChartContext<'a, SVGBackend<'b>, Cartesian2d<X, Y>>,
) -> anyhow::Result<()> {
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.3))
        .draw()?;
    Ok(())
}
