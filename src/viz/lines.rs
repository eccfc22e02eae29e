//! Line plots (sample quality against NFE or wall time, optional log axes,
//! error bars, a reference line).

use std::path::Path;

use plotters::coord::ranged1d::{AsRangedCoord, ValueFormatter};
use plotters::coord::Shift;
use plotters::prelude::*;

use super::canvas::{draw_err, ensure_fonts, Canvas, FONT};
use super::legend::{
    draw_side_legend, legend_entries, marker_outline, marker_shape, side_legend_size, PALETTE,
};
use super::scatter::{SUBTLE, TEXT};
use crate::error::{Error, Result};

/// One named curve of a [`LinePlot`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Series {
    /// Legend entry.
    pub name: String,
    /// `(x, y)` points, drawn in the given order. Non-finite points (and
    /// non-positive ones on a log axis) are skipped.
    pub points: Vec<(f64, f64)>,
    /// Optional ± error (half-height of the error bar) per point; must have
    /// the same length as `points`.
    pub err: Option<Vec<f64>>,
}

/// A line chart: see [`line_plot`].
#[derive(Debug, Clone, PartialEq)]
pub struct LinePlot {
    /// Title above the plot.
    pub title: String,
    /// x-axis description, e.g. `"NFE"`.
    pub x_label: String,
    /// y-axis description, e.g. `"sliced Wasserstein distance"`.
    pub y_label: String,
    /// Logarithmic x axis.
    pub log_x: bool,
    /// Logarithmic y axis.
    pub log_y: bool,
    /// The curves; each gets its own colour and marker.
    pub series: Vec<Series>,
    /// Optional dashed horizontal reference line `(y, legend label)`, e.g.
    /// the noise floor of the metric.
    pub hline: Option<(f64, String)>,
    /// Optional upper end of the y axis: points above it are drawn on the
    /// top edge with hollow markers (off scale), so a few diverged runs do
    /// not flatten the curves that matter.
    pub y_max: Option<f64>,
    /// Size of the chart in pixels `(width, height)`. Default 760 × 500.
    /// A legend of more than [`INSIDE_LEGEND`] entries goes to a panel to the
    /// right of the chart, which widens the image (and, for a long legend,
    /// heightens it).
    pub size: (u32, u32),
}

/// Legends with at most this many entries are drawn inside the chart (upper
/// right); longer ones in columns beside it, where they cover no data.
pub const INSIDE_LEGEND: usize = 6;

impl Default for LinePlot {
    fn default() -> Self {
        LinePlot {
            title: String::new(),
            x_label: String::new(),
            y_label: String::new(),
            log_x: false,
            log_y: false,
            series: Vec::new(),
            hline: None,
            y_max: None,
            size: (760, 500),
        }
    }
}

/// A point that survived filtering: x, y (clamped to `y_max`), its error
/// bar if any, and whether it was clamped (off scale).
pub(super) type Pt = (f64, f64, Option<f64>, bool);

/// Writes `plot` as a PNG line chart with a legend (upper right), distinct
/// colours and markers per series, optional ± error bars and an optional
/// dashed reference line.
///
/// Non-finite points, points ≤ 0 on a log axis, and non-finite or
/// non-positive error values are skipped (an `hline` that cannot be placed
/// is left out). Errors if an `err` vector's length differs from its
/// series' points, the size is out of range (100..=8000 a side), or no
/// series has a plottable point.
pub fn line_plot(path: &Path, plot: &LinePlot) -> Result<()> {
    let (w, h) = plot.size;
    if !(100..=8000).contains(&w) || !(100..=8000).contains(&h) {
        return Err(Error::invalid(
            "size",
            format!("{w}×{h}"),
            "100..=8000 pixels a side",
        ));
    }
    let ok_x = |x: f64| x.is_finite() && (!plot.log_x || x > 0.0);
    let ok_y = |y: f64| y.is_finite() && (!plot.log_y || y > 0.0);
    let y_max = plot.y_max.filter(|&m| ok_y(m));
    let mut data: Vec<Vec<Pt>> = Vec::with_capacity(plot.series.len());
    for s in &plot.series {
        if let Some(e) = &s.err {
            if e.len() != s.points.len() {
                return Err(Error::Mismatch(format!(
                    "line_plot series {:?}: {} points but {} error values",
                    s.name,
                    s.points.len(),
                    e.len()
                )));
            }
        }
        let pts = s
            .points
            .iter()
            .enumerate()
            .filter(|(_, &(x, y))| ok_x(x) && ok_y(y))
            .map(|(i, &(x, y))| match y_max {
                Some(m) if y > m => (x, m, None, true),
                _ => {
                    let e = s
                        .err
                        .as_ref()
                        .map(|e| e[i])
                        .filter(|e| e.is_finite() && *e > 0.0);
                    let e = e.map(|e| y_max.map_or(e, |m| e.min(m - y)));
                    (x, y, e.filter(|e| *e > 0.0), false)
                }
            })
            .collect();
        data.push(pts);
    }
    let xs: Vec<f64> = data.iter().flatten().map(|p| p.0).collect();
    let mut ys: Vec<f64> = Vec::new();
    for &(_, y, e, _) in data.iter().flatten() {
        ys.push(y);
        if let Some(e) = e {
            ys.push(y + e);
            if ok_y(y - e) {
                ys.push(y - e);
            }
        }
    }
    if let Some((y, _)) = &plot.hline {
        if ok_y(*y) {
            ys.push(*y);
        }
    }
    let (Some(xr), Some(yr)) = (padded_range(&xs, plot.log_x), padded_range(&ys, plot.log_y))
    else {
        return Err(Error::invalid(
            "line_plot series",
            format!("{} series", plot.series.len()),
            "at least one finite point (positive on log axes) and a range that fits in f64",
        ));
    };

    ensure_fonts()?;
    let legend = legend_entries(plot, &data);
    let side = legend.len() > INSIDE_LEGEND;
    let (panel_w, h, rows) = if side {
        side_legend_size(&legend, h)
    } else {
        (0, h, 0)
    };
    let total_w = w + panel_w;
    if total_w > 8000 || h > 8000 {
        return Err(Error::invalid(
            "line_plot legend",
            format!("{} entries", legend.len()),
            "a legend that fits in 8000 pixels a side",
        ));
    }
    let mut buf = vec![255u8; total_w as usize * h as usize * 3];
    {
        let full = BitMapBackend::with_buffer(&mut buf, (total_w, h)).into_drawing_area();
        full.fill(&WHITE).map_err(|e| draw_err(path, e))?;
        // With a side legend the title spans chart and legend, so a long
        // one is not cut at the chart's edge.
        let body = if side {
            full.titled(&plot.title, (FONT, 21).into_font().color(&TEXT))
                .map_err(|e| draw_err(path, e))?
        } else {
            full.clone()
        };
        let (root, panel) = body.split_horizontally(w);
        if side {
            draw_side_legend(&panel, &legend, rows).map_err(|e| draw_err(path, e))?;
        }
        let lx = || {
            (xr.0..xr.1)
                .log_scale()
                .with_key_points(log_ticks(xr).0)
                .with_light_points(log_ticks(xr).1)
        };
        let ly = || {
            (yr.0..yr.1)
                .log_scale()
                .with_key_points(log_ticks(yr).0)
                .with_light_points(log_ticks(yr).1)
        };
        let r = match (plot.log_x, plot.log_y) {
            (false, false) => draw_chart(&root, plot, &data, yr, !side, xr.0..xr.1, yr.0..yr.1),
            (true, false) => draw_chart(&root, plot, &data, yr, !side, lx(), yr.0..yr.1),
            (false, true) => draw_chart(&root, plot, &data, yr, !side, xr.0..xr.1, ly()),
            (true, true) => draw_chart(&root, plot, &data, yr, !side, lx(), ly()),
        };
        r.map_err(|e| draw_err(path, e))?;
        full.present().map_err(|e| draw_err(path, e))?;
    }
    let canvas = Canvas {
        w: total_w,
        h,
        rgb: buf,
    };
    canvas.save_png(path)
}

/// Data range with a margin: 5 % of the span on a linear axis, 5 % of the
/// decades on a log axis; a single value gets a fixed margin.
/// `None` if there are no values or the padded range overflows.
fn padded_range(v: &[f64], log: bool) -> Option<(f64, f64)> {
    let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if !(lo.is_finite() && hi.is_finite()) {
        return None;
    }
    let r = padded_range_unchecked(lo, hi, log);
    (r.0.is_finite() && r.1.is_finite() && r.0 < r.1 && (!log || r.0 > 0.0)).then_some(r)
}

fn padded_range_unchecked(lo: f64, hi: f64, log: bool) -> (f64, f64) {
    if log {
        let (a, b) = (lo.log10(), hi.log10());
        let pad = if b - a < 1e-9 { 0.3 } else { 0.06 * (b - a) };
        (10f64.powf(a - pad), 10f64.powf(b + pad))
    } else {
        let span = hi - lo;
        let pad = if span < 1e-12 * hi.abs().max(1.0) {
            0.5 * hi.abs().max(1.0)
        } else {
            0.06 * span
        };
        (lo - pad, hi + pad)
    }
}

/// Labelled ("bold") and grid-only ("light") tick values of a log axis:
/// powers of ten (every k-th if there are many), plus 2× and 5× when fewer
/// than three decades are labelled, plus every integer multiple when the
/// range is inside one decade. Light ticks are the remaining m·10^d.
fn log_ticks((lo, hi): (f64, f64)) -> (Vec<f64>, Vec<f64>) {
    let (d0, d1) = (lo.log10().floor() as i32, hi.log10().ceil() as i32);
    let in_range = |v: f64| v >= lo * (1.0 - 1e-9) && v <= hi * (1.0 + 1e-9);
    let decades: Vec<i32> = (d0..=d1).filter(|&d| in_range(10f64.powi(d))).collect();
    let step = decades.len().div_ceil(8).max(1);
    let mut bold: Vec<f64> = decades
        .iter()
        .filter(|&&d| ((d - d0) as usize).is_multiple_of(step))
        .map(|&d| 10f64.powi(d))
        .collect();
    let multiples = |ms: &[f64]| -> Vec<f64> {
        (d0..=d1)
            .flat_map(|d| ms.iter().map(move |m| m * 10f64.powi(d)))
            .filter(|&v| in_range(v))
            .collect()
    };
    if bold.len() < 3 {
        bold = multiples(&[1.0, 2.0, 5.0]);
    }
    if bold.len() < 3 {
        bold = multiples(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0]);
    }
    let light = multiples(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0])
        .into_iter()
        .filter(|v| !bold.iter().any(|b| (b - v).abs() <= 1e-9 * v))
        .collect();
    (bold, light)
}

/// Tick label: integers plainly up to 1e5, otherwise compact.
pub(super) fn fmt_tick(v: f64) -> String {
    let a = v.abs();
    if v == 0.0 {
        "0".into()
    } else if !(1e-3..1e5).contains(&a) {
        let s = format!("{v:.0e}");
        s.replace("e-0", "e-").replace("e0", "")
    } else if (v - v.round()).abs() < 1e-9 * a.max(1.0) {
        format!("{}", v.round() as i64)
    } else {
        let s = format!("{v:.4}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

fn draw_chart<XS, YS>(
    root: &DrawingArea<BitMapBackend<'_>, Shift>,
    plot: &LinePlot,
    data: &[Vec<Pt>],
    yr: (f64, f64),
    inside_legend: bool,
    xs: XS,
    ys: YS,
) -> std::result::Result<(), String>
where
    XS: AsRangedCoord<Value = f64>,
    YS: AsRangedCoord<Value = f64>,
    XS::CoordDescType: ValueFormatter<f64>,
    YS::CoordDescType: ValueFormatter<f64>,
{
    let e = |e: DrawingAreaErrorKind<_>| e.to_string();
    let mut chart = ChartBuilder::on(root)
        .caption(
            if inside_legend {
                plot.title.as_str()
            } else {
                ""
            },
            (FONT, 21).into_font().color(&TEXT),
        )
        .margin(16)
        .margin_right(24)
        .x_label_area_size(50)
        .y_label_area_size(76)
        .build_cartesian_2d(xs, ys)
        .map_err(e)?;
    chart
        .configure_mesh()
        .x_desc(plot.x_label.as_str())
        .y_desc(plot.y_label.as_str())
        .axis_desc_style((FONT, 16).into_font().color(&TEXT))
        .label_style((FONT, 13).into_font().color(&SUBTLE))
        .axis_style(RGBColor(90, 90, 90))
        .bold_line_style(BLACK.mix(0.09))
        .light_line_style(BLACK.mix(0.035))
        // Minor grid only on log axes, where it shows the scale.
        .x_max_light_lines(if plot.log_x { 10 } else { 0 })
        .y_max_light_lines(if plot.log_y { 10 } else { 0 })
        .x_label_formatter(&|v| fmt_tick(*v))
        .y_label_formatter(&|v| fmt_tick(*v))
        .x_labels(8)
        .y_labels(8)
        .draw()
        .map_err(e)?;

    for (k, (s, pts)) in plot.series.iter().zip(data).enumerate() {
        let color = PALETTE[k % PALETTE.len()];
        let marker = k % 3;
        // Error bars first so that lines and markers sit on top.
        for &(x, y, err, _) in pts {
            let Some(err) = err else { continue };
            let lo = if y - err > yr.0 { y - err } else { yr.0 };
            let hi = y + err;
            let st = color.mix(0.8).stroke_width(1);
            chart
                .draw_series([PathElement::new(vec![(x, lo), (x, hi)], st)])
                .map_err(e)?;
            for cap in [lo, hi] {
                chart
                    .draw_series([
                        EmptyElement::at((x, cap)) + PathElement::new(vec![(-4, 0), (4, 0)], st)
                    ])
                    .map_err(e)?;
            }
        }
        let line: Vec<(f64, f64)> = pts.iter().map(|p| (p.0, p.1)).collect();
        let hollow: Vec<(f64, f64)> = pts.iter().filter(|p| p.3).map(|p| (p.0, p.1)).collect();
        chart
            .draw_series(LineSeries::new(line.clone(), color.stroke_width(2)))
            .map_err(e)?
            .label(s.name.as_str())
            .legend(move |(x, y)| {
                EmptyElement::at((x, y))
                    + PathElement::new(vec![(0, 0), (22, 0)], color.stroke_width(2))
                    + marker_shape(marker, (11, 0), color)
            });
        chart
            .draw_series(
                pts.iter()
                    .filter(|p| !p.3)
                    .map(|p| EmptyElement::at((p.0, p.1)) + marker_shape(marker, (0, 0), color)),
            )
            .map_err(e)?;
        chart
            .draw_series(hollow.iter().map(|&p| {
                EmptyElement::at(p) + marker_outline(marker, (0, 0), color.stroke_width(2))
            }))
            .map_err(e)?;
    }
    if let Some((y, label)) = &plot.hline {
        if y.is_finite() && (!plot.log_y || *y > 0.0) {
            let (x0, x1) = (chart.x_range().start, chart.x_range().end);
            let st = RGBColor(60, 60, 60).stroke_width(1);
            chart
                .draw_series(DashedLineSeries::new(vec![(x0, *y), (x1, *y)], 7, 5, st))
                .map_err(e)?
                .label(label.as_str())
                .legend(move |(x, y)| {
                    EmptyElement::at((x, y))
                        + PathElement::new(vec![(0, 0), (6, 0)], st)
                        + PathElement::new(vec![(9, 0), (14, 0)], st)
                        + PathElement::new(vec![(17, 0), (22, 0)], st)
                });
        }
    }
    if inside_legend && (plot.series.iter().any(|s| !s.name.is_empty()) || plot.hline.is_some()) {
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .margin(10)
            .legend_area_size(30)
            .label_font((FONT, 14).into_font().color(&TEXT))
            .background_style(WHITE.mix(0.9))
            .border_style(RGBColor(180, 180, 180))
            .draw()
            .map_err(e)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{fmt_tick, log_ticks};

    fn close(a: &[f64], b: &[f64]) -> bool {
        a.len() == b.len()
            && a.iter()
                .zip(b)
                .all(|(x, y)| (x - y).abs() <= 1e-9 * y.abs())
    }

    #[test]
    fn log_ticks_label_decades_then_2_5_then_every_multiple() {
        let (bold, light) = log_ticks((8.0, 1200.0));
        assert!(close(&bold, &[10.0, 100.0, 1000.0]), "{bold:?}");
        assert!(light.contains(&20.0) && light.contains(&9.0) && !light.contains(&100.0));
        let (bold, _) = log_ticks((0.025, 1.2));
        assert!(close(&bold, &[0.05, 0.1, 0.2, 0.5, 1.0]), "{bold:?}");
        let (bold, _) = log_ticks((2.5, 8.5));
        assert!(close(&bold, &[3.0, 4.0, 5.0, 6.0, 7.0, 8.0]), "{bold:?}");
        // Many decades: at most ~8 labels.
        let (bold, _) = log_ticks((1e-20, 1e20));
        assert!(bold.len() <= 9 && bold.len() >= 4, "{bold:?}");
    }

    #[test]
    fn tick_labels_are_compact() {
        assert_eq!(fmt_tick(1000.0), "1000");
        assert_eq!(fmt_tick(0.05), "0.05");
        assert_eq!(fmt_tick(1e6), "1e6");
        assert_eq!(fmt_tick(2e-5), "2e-5");
        assert_eq!(fmt_tick(0.0), "0");
    }
}
