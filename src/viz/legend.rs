//! The line plots' legend (inside the chart, or in columns beside it) and
//! their markers and colours.

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::canvas::FONT;
use super::lines::{fmt_tick, LinePlot, Pt};
use super::scatter::{SUBTLE, TEXT};

/// Categorical palette (matplotlib "tab10" then four darker extras, so up to
/// 14 series get distinct colours), cycled.
pub(super) const PALETTE: [RGBColor; 14] = [
    RGBColor(0x1f, 0x77, 0xb4),
    RGBColor(0xff, 0x7f, 0x0e),
    RGBColor(0x2c, 0xa0, 0x2c),
    RGBColor(0xd6, 0x27, 0x28),
    RGBColor(0x94, 0x67, 0xbd),
    RGBColor(0x8c, 0x56, 0x4b),
    RGBColor(0xe3, 0x77, 0xc2),
    RGBColor(0x7f, 0x7f, 0x7f),
    RGBColor(0xbc, 0xbd, 0x22),
    RGBColor(0x17, 0xbe, 0xcf),
    RGBColor(0x00, 0x00, 0x00),
    RGBColor(0x39, 0x3b, 0x79),
    RGBColor(0x63, 0x79, 0x39),
    RGBColor(0xad, 0x49, 0x4a),
];

/// Height of one legend row in the side panel, in pixels.
const LEGEND_ROW: u32 = 19;

/// How a legend entry is drawn: a series (colour, marker), the dashed
/// reference line, or a note about hollow (off-scale) markers.
pub(super) enum Key {
    Series(RGBColor, usize),
    Dashed,
    Hollow,
}

/// The side legend's entries, in drawing order: named series, the reference
/// line, and a note when some point is off scale.
pub(super) fn legend_entries(plot: &LinePlot, data: &[Vec<Pt>]) -> Vec<(String, Key)> {
    let mut v: Vec<(String, Key)> = plot
        .series
        .iter()
        .enumerate()
        .filter(|(_, s)| !s.name.is_empty())
        .map(|(k, s)| {
            (
                s.name.clone(),
                Key::Series(PALETTE[k % PALETTE.len()], k % 3),
            )
        })
        .collect();
    if let Some((y, label)) = &plot.hline {
        if y.is_finite() && (!plot.log_y || *y > 0.0) {
            v.push((label.clone(), Key::Dashed));
        }
    }
    if let Some(m) = plot.y_max {
        if data.iter().flatten().any(|p| p.3) {
            // Three significant digits: the note names a level, not a datum.
            let d = 10f64.powf(m.log10().floor() - 2.0);
            let level = fmt_tick((m / d).round() * d);
            v.push((format!("hollow: off scale (above {level})"), Key::Hollow));
        }
    }
    v
}

/// Rows and columns of the side legend for `n` entries beside a chart `h`
/// pixels high: at most three columns of [`LEGEND_ROW`]-pixel rows, and the
/// image height that holds them (taller than `h` when three columns of `h`
/// would not hold every entry).
fn side_layout(n: usize, h: u32) -> (usize, usize, u32) {
    let per_col_fit = (h.saturating_sub(70) / LEGEND_ROW).max(1) as usize;
    let cols = n.div_ceil(per_col_fit).clamp(1, 3);
    let rows = n.div_ceil(cols).max(1);
    (rows, cols, h.max(rows as u32 * LEGEND_ROW + 70))
}

/// Left edge of each legend column and the panel width: each column as wide
/// as its longest name (about 8 px a character at 14 px DejaVu Sans, at
/// most 60 characters) plus the key.
fn column_edges(entries: &[(String, Key)], rows: usize) -> (Vec<i32>, u32) {
    let mut edges = vec![4];
    for col in entries.chunks(rows) {
        let longest = col
            .iter()
            .map(|(n, _)| n.chars().count())
            .max()
            .unwrap_or(0);
        let w = 44 + 8 * longest.min(60) as i32;
        edges.push(edges.last().copied().unwrap_or(0) + w);
    }
    let width = edges.pop().unwrap_or(0) as u32 + 8;
    (edges, width)
}

/// Width of the side legend panel, the image height it needs and its rows
/// per column.
pub(super) fn side_legend_size(entries: &[(String, Key)], h: u32) -> (u32, u32, usize) {
    let (rows, _, h) = side_layout(entries.len(), h);
    (column_edges(entries, rows).1, h, rows)
}

/// Draws the legend entries in columns of `rows`, top to bottom, on the
/// panel to the right of the chart.
pub(super) fn draw_side_legend(
    panel: &DrawingArea<BitMapBackend<'_>, Shift>,
    entries: &[(String, Key)],
    rows: usize,
) -> std::result::Result<(), String> {
    let e = |e: DrawingAreaErrorKind<_>| e.to_string();
    let (edges, _) = column_edges(entries, rows);
    let font = (FONT, 14).into_font().color(&TEXT);
    for (i, (name, key)) in entries.iter().enumerate() {
        let (x, y) = (edges[i / rows], 48 + (i % rows) as i32 * LEGEND_ROW as i32);
        let line = |st: ShapeStyle| PathElement::new(vec![(x, y), (x + 22, y)], st);
        match *key {
            Key::Series(color, m) => {
                panel.draw(&line(color.stroke_width(2))).map_err(e)?;
                panel
                    .draw(&(EmptyElement::at((x + 11, y)) + marker_shape(m, (0, 0), color)))
                    .map_err(e)?;
            }
            Key::Dashed => {
                let st = RGBColor(60, 60, 60).stroke_width(1);
                for (a, b) in [(0, 6), (9, 14), (17, 22)] {
                    panel
                        .draw(&PathElement::new(vec![(x + a, y), (x + b, y)], st))
                        .map_err(e)?;
                }
            }
            Key::Hollow => {
                panel
                    .draw(
                        &(EmptyElement::at((x + 11, y))
                            + marker_outline(0, (0, 0), SUBTLE.stroke_width(2))),
                    )
                    .map_err(e)?;
            }
        }
        let anchor = font.pos(Pos::new(HPos::Left, VPos::Center));
        panel
            .draw(&Text::new(name.as_str(), (x + 30, y), anchor))
            .map_err(e)?;
    }
    Ok(())
}

/// The outline of [`marker_shape`] (for off-scale points).
pub(super) fn marker_outline(
    kind: usize,
    c: (i32, i32),
    style: ShapeStyle,
) -> PathElement<(i32, i32)> {
    let mut pts = marker_points(kind);
    pts.push(pts[0]);
    PathElement::new(
        pts.into_iter()
            .map(|(x, y)| (x + c.0, y + c.1))
            .collect::<Vec<_>>(),
        style,
    )
}

/// Vertices of a small marker centred at pixel offset `c`: an octagon
/// ("circle"), a triangle or a square, so series stay distinguishable in
/// greyscale.
pub(super) fn marker_shape(kind: usize, c: (i32, i32), color: RGBColor) -> Polygon<(i32, i32)> {
    Polygon::new(
        marker_points(kind)
            .into_iter()
            .map(|(x, y)| (x + c.0, y + c.1))
            .collect::<Vec<_>>(),
        color.filled(),
    )
}

/// The vertices of marker `kind` around (0, 0).
fn marker_points(kind: usize) -> Vec<(i32, i32)> {
    match kind % 3 {
        0 => (0..8)
            .map(|k| {
                let a = std::f64::consts::PI / 8.0 + k as f64 * std::f64::consts::PI / 4.0;
                (
                    (4.2 * a.cos()).round() as i32,
                    (4.2 * a.sin()).round() as i32,
                )
            })
            .collect(),
        1 => vec![(0, -5), (5, 4), (-5, 4)],
        _ => vec![(-4, -4), (4, -4), (4, 4), (-4, 4)],
    }
}
