//! Side-by-side 2-D density panels with a title above and a caption below
//! each, written as one PNG.

use std::path::Path;

use ndarray::ArrayView2;
use plotters::style::RGBColor;

use super::canvas::{Align, Canvas, Label};
use super::density::{render_density, DensityOptions};
use crate::error::{Error, Result};

/// One panel of a [`scatter_panels`] figure.
#[derive(Debug, Clone)]
pub struct Panel<'a> {
    /// Text above the panel, e.g. `"Euler–Maruyama"`.
    pub title: String,
    /// Text below the panel, e.g. `"SWD 0.041 (1.3× floor), NFE 1000"`.
    pub caption: String,
    /// The points, shape `(n, 2)`; non-finite rows are skipped.
    pub points: ArrayView2<'a, f32>,
}

/// Options for [`scatter_panels`].
#[derive(Debug, Clone, PartialEq)]
pub struct ScatterOptions {
    /// Side of each square density image in pixels (16..=4096). Default 400.
    pub panel_px: u32,
    /// Range, histogram, colour and style settings.
    pub density: DensityOptions,
}

impl Default for ScatterOptions {
    fn default() -> Self {
        ScatterOptions {
            panel_px: 400,
            density: DensityOptions::default(),
        }
    }
}

/// Horizontal margin on each side of a panel.
const MARGIN: u32 = 16;
/// Height of the title band above each panel.
const TITLE_H: u32 = 40;
/// Height of the caption band below each panel.
const CAPTION_H: u32 = 36;
pub(crate) const TEXT: RGBColor = RGBColor(20, 20, 20);
pub(crate) const SUBTLE: RGBColor = RGBColor(70, 70, 70);
pub(crate) const FRAME: [u8; 3] = [150, 150, 150];

/// Writes a PNG with `panels` side by side, each a density image of its
/// points on `opts.density.range` with its title above and caption below.
/// The image is `n·(panel_px + 32)` wide and `panel_px + 76` tall.
///
/// Zero panels is an error ([`Error::InvalidArgument`]); a panel with no
/// (finite, in-range) points is drawn empty. Long titles and captions are
/// shrunk to fit the panel width.
pub fn scatter_panels(path: &Path, panels: &[Panel<'_>], opts: &ScatterOptions) -> Result<()> {
    if panels.is_empty() {
        return Err(Error::invalid("panels", 0, "at least one panel"));
    }
    if !(16..=4096).contains(&opts.panel_px) {
        return Err(Error::invalid("panel_px", opts.panel_px, "16..=4096"));
    }
    let p = opts.panel_px;
    let cell_w = p + 2 * MARGIN;
    let mut canvas = Canvas::new(cell_w * panels.len() as u32, TITLE_H + p + CAPTION_H)?;
    let mut labels = Vec::with_capacity(2 * panels.len());
    for (k, panel) in panels.iter().enumerate() {
        let img = render_density(panel.points, p, p, &opts.density)?;
        let x0 = k as u32 * cell_w + MARGIN;
        canvas.blit(&img, p, p, x0, TITLE_H);
        canvas.frame(x0, TITLE_H, p, p, FRAME);
        let cx = (x0 + p / 2) as i32;
        labels.push(Label {
            text: &panel.title,
            x: cx,
            y: (TITLE_H / 2) as i32 + 2,
            size: 20.0,
            bold: false,
            align: Align::Center,
            v_center: true,
            max_width: cell_w - 8,
            color: TEXT,
        });
        labels.push(Label {
            text: &panel.caption,
            x: cx,
            y: (TITLE_H + p + CAPTION_H / 2) as i32,
            size: 15.0,
            bold: false,
            align: Align::Center,
            v_center: true,
            max_width: cell_w - 8,
            color: SUBTLE,
        });
    }
    canvas.text(path, &labels)?;
    canvas.save_png(path)
}
