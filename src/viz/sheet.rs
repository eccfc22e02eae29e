//! Labelled sheets of thumbnails: rows (e.g. samplers) × columns (e.g. NFE
//! budgets), each cell a density panel of 2-D points ([`thumbnail_grid`])
//! or a small grid of images ([`image_thumbnail_grid`]); an empty cell is a
//! grey "n/a" box.

use std::path::Path;

use ndarray::ArrayView2;
use plotters::prelude::*;

use super::canvas::{draw_err, ensure_fonts, Align, Canvas, Label, FONT};
use super::density::{render_density, DensityOptions};
use super::grid::{render_grid, GridOptions};
use super::scatter::{FRAME, TEXT};
use crate::error::{Error, Result};

/// Options for [`thumbnail_grid`].
#[derive(Debug, Clone, PartialEq)]
pub struct ThumbnailOptions {
    /// Side of each square thumbnail in pixels (16..=1024). Default 140.
    pub cell_px: u32,
    /// Optional title above the grid.
    pub title: Option<String>,
    /// Range, histogram, colour and style settings.
    pub density: DensityOptions,
}

impl Default for ThumbnailOptions {
    fn default() -> Self {
        ThumbnailOptions {
            cell_px: 140,
            title: None,
            density: DensityOptions {
                bins: 64,
                ..DensityOptions::default()
            },
        }
    }
}

/// Writes a PNG grid of density thumbnails: `cells[r][c]` is drawn in row
/// `r` (labelled `rows[r]` on the left, e.g. a sampler) and column `c`
/// (labelled `cols[c]` on top, e.g. an NFE budget). A `None` cell is drawn
/// as a grey "n/a" box.
///
/// Errors if `rows` or `cols` is empty or `cells` is not `rows.len()` ×
/// `cols.len()`.
pub fn thumbnail_grid(
    path: &Path,
    rows: &[String],
    cols: &[String],
    cells: &[Vec<Option<ArrayView2<'_, f32>>>],
    opts: &ThumbnailOptions,
) -> Result<()> {
    check_shape(rows, cols, cells)?;
    if !(16..=1024).contains(&opts.cell_px) {
        return Err(Error::invalid("cell_px", opts.cell_px, "16..=1024"));
    }
    opts.density.validate()?;

    let c = opts.cell_px;
    sheet(path, rows, cols, (c, c), opts.title.as_deref(), &|i, j| {
        cells[i][j]
            .map(|pts| render_density(pts, c, c, &opts.density))
            .transpose()
    })
}

/// Writes a PNG sheet whose cell `cells[r][c]` is a small grid of images
/// (rows `[c·h·w]` in [−1, 1], laid out by `grid`); row / column labels and
/// the "n/a" boxes as in [`thumbnail_grid`]. Errors on a shape mismatch, on
/// images that do not fit `grid`, or on an empty sheet.
pub fn image_thumbnail_grid(
    path: &Path,
    rows: &[String],
    cols: &[String],
    cells: &[Vec<Option<ArrayView2<'_, f32>>>],
    grid: &GridOptions,
    title: Option<&str>,
) -> Result<()> {
    check_shape(rows, cols, cells)?;
    let Some(first) = cells.iter().flatten().flatten().next() else {
        return Err(Error::invalid(
            "image sheet",
            "no images",
            "at least one cell with images",
        ));
    };
    let (_, cw, ch) = render_grid(*first, grid)?;
    sheet(path, rows, cols, (cw, ch), title, &|i, j| {
        let Some(x) = cells[i][j] else {
            return Ok(None);
        };
        let (rgb, w, h) = render_grid(x, grid)?;
        if (w, h) != (cw, ch) {
            return Err(Error::Mismatch(format!(
                "image sheet: cell ({i}, {j}) renders {w}x{h}, the first cell {cw}x{ch} (give every cell as many images)"
            )));
        }
        Ok(Some(rgb))
    })
}

/// Check the labels match the cells' shape.
fn check_shape<T>(rows: &[String], cols: &[String], cells: &[Vec<T>]) -> Result<()> {
    if rows.is_empty() || cols.is_empty() {
        return Err(Error::invalid(
            "thumbnail grid",
            format!("{}×{}", rows.len(), cols.len()),
            "at least one row and one column",
        ));
    }
    if cells.len() != rows.len() || cells.iter().any(|r| r.len() != cols.len()) {
        return Err(Error::Mismatch(format!(
            "thumbnail sheet: {} row labels × {} column labels but cells have {} rows of lengths {:?}",
            rows.len(),
            cols.len(),
            cells.len(),
            cells.iter().map(Vec::len).collect::<Vec<_>>()
        )));
    }
    Ok(())
}

/// Lay out `rows.len()` × `cols.len()` cells of `cw` × `ch` pixels with
/// row labels on the left, column labels on top and an optional title;
/// `render(r, c)` gives a cell's RGB pixels (None: an "n/a" box).
#[allow(clippy::type_complexity)]
fn sheet(
    path: &Path,
    rows: &[String],
    cols: &[String],
    (cw, ch): (u32, u32),
    title: Option<&str>,
    render: &dyn Fn(usize, usize) -> Result<Option<Vec<u8>>>,
) -> Result<()> {
    ensure_fonts()?;
    const PAD: u32 = 12;
    const GAP: u32 = 10;
    const LABEL_SIZE: f64 = 15.0;
    let mut label_w = 0u32;
    for r in rows {
        let (tw, _) = (FONT, LABEL_SIZE)
            .into_font()
            .box_size(r)
            .map_err(|e| draw_err(path, format!("{e:?}")))?;
        label_w = label_w.max(tw);
    }
    let label_w = label_w.min(320) + 2 * PAD;
    let title_h = if title.is_some_and(|t| !t.is_empty()) {
        40
    } else {
        0
    };
    let col_h = 30;
    let w = label_w + cols.len() as u32 * (cw + GAP) + PAD;
    let h = title_h + col_h + rows.len() as u32 * (ch + GAP) + PAD;
    let mut canvas = Canvas::new(w, h)?;
    let mut labels = Vec::new();
    if let Some(t) = title {
        labels.push(Label {
            text: t,
            x: (w / 2) as i32,
            y: (title_h / 2) as i32 + 2,
            size: 20.0,
            bold: false,
            align: Align::Center,
            v_center: true,
            max_width: w - 2 * PAD,
            color: TEXT,
        });
    }
    for (j, col) in cols.iter().enumerate() {
        labels.push(Label {
            text: col,
            x: (label_w + j as u32 * (cw + GAP) + cw / 2) as i32,
            y: (title_h + col_h / 2) as i32,
            size: LABEL_SIZE,
            bold: false,
            align: Align::Center,
            v_center: true,
            max_width: cw + GAP - 2,
            color: TEXT,
        });
    }
    for (i, row) in rows.iter().enumerate() {
        let cells_row = cols.len();
        let y0 = title_h + col_h + i as u32 * (ch + GAP);
        labels.push(Label {
            text: row,
            x: (label_w - PAD) as i32,
            y: (y0 + ch / 2) as i32,
            size: LABEL_SIZE,
            bold: false,
            align: Align::Right,
            v_center: true,
            max_width: label_w - PAD - 4,
            color: TEXT,
        });
        for j in 0..cells_row {
            let x0 = label_w + j as u32 * (cw + GAP);
            match render(i, j)? {
                Some(img) => canvas.blit(&img, cw, ch, x0, y0),
                None => {
                    canvas.fill_rect(x0, y0, cw, ch, [242, 242, 242]);
                    labels.push(Label {
                        text: "n/a",
                        x: (x0 + cw / 2) as i32,
                        y: (y0 + ch / 2) as i32,
                        size: 14.0,
                        bold: false,
                        align: Align::Center,
                        v_center: true,
                        max_width: cw,
                        color: RGBColor(150, 150, 150),
                    });
                }
            }
            canvas.frame(x0, y0, cw, ch, FRAME);
        }
    }
    canvas.text(path, &labels)?;
    canvas.save_png(path)
}
