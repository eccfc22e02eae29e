//! Plumbing shared by the figure writers: an RGB canvas with blitting, frames
//! and font-fitted text (via plotters + the embedded DejaVu font), PNG
//! encoding and atomic file writes.

use std::path::Path;
use std::sync::OnceLock;

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use plotters::style::{register_font, FontStyle};

use crate::error::{Error, Result};

/// Font family name under which DejaVu Sans is registered with plotters.
pub(crate) const FONT: &str = "sans-serif";

/// Registers DejaVu Sans (regular + bold) with plotters once per process.
/// plotters' ab_glyph backend has no system fonts, so text draws nothing (or
/// errors) without this.
pub(crate) fn ensure_fonts() -> Result<()> {
    static DONE: OnceLock<bool> = OnceLock::new();
    let ok = *DONE.get_or_init(|| {
        register_font(FONT, FontStyle::Normal, dejavu::sans::regular()).is_ok()
            && register_font(FONT, FontStyle::Bold, dejavu::sans::bold()).is_ok()
    });
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(
            "font",
            "DejaVu Sans",
            "a TrueType font plotters can parse",
        ))
    }
}

/// Turns a plotters drawing error into a [`Error::Format`] naming the output.
pub(crate) fn draw_err(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::format(path, format!("drawing the figure failed: {e}"))
}

/// A white RGB image being composed.
pub(crate) struct Canvas {
    pub w: u32,
    pub h: u32,
    pub rgb: Vec<u8>,
}

/// Horizontal alignment of a text line relative to its anchor x.
#[derive(Clone, Copy)]
pub(crate) enum Align {
    Left,
    Center,
    Right,
}

/// One line of text to draw: anchor point, vertical anchor is the top (or
/// the centre with `v_center`), and the widest it may be.
pub(crate) struct Label<'a> {
    pub text: &'a str,
    pub x: i32,
    pub y: i32,
    pub size: f64,
    pub bold: bool,
    pub align: Align,
    pub v_center: bool,
    pub max_width: u32,
    pub color: RGBColor,
}

impl Canvas {
    pub fn new(w: u32, h: u32) -> Result<Self> {
        if w == 0 || h == 0 || w > 20_000 || h > 20_000 || (w as u64 * h as u64) > 100_000_000 {
            return Err(Error::invalid(
                "image size",
                format!("{w}×{h}"),
                "1..=20000 pixels a side and at most 1e8 pixels",
            ));
        }
        Ok(Canvas {
            w,
            h,
            rgb: vec![255; w as usize * h as usize * 3],
        })
    }

    /// Copies a `sw × sh` RGB image with its top-left corner at `(x0, y0)`
    /// (clipped to the canvas).
    pub fn blit(&mut self, src: &[u8], sw: u32, sh: u32, x0: u32, y0: u32) {
        let w = self.w as usize;
        for row in 0..sh as usize {
            let y = y0 as usize + row;
            if y >= self.h as usize || x0 >= self.w {
                break;
            }
            let n = (sw as usize).min(w - x0 as usize);
            let d = (y * w + x0 as usize) * 3;
            let s = row * sw as usize * 3;
            self.rgb[d..d + n * 3].copy_from_slice(&src[s..s + n * 3]);
        }
    }

    /// Draws a 1-pixel rectangle outline just outside `(x0, y0, w, h)`.
    pub fn frame(&mut self, x0: u32, y0: u32, w: u32, h: u32, color: [u8; 3]) {
        let (l, t) = (x0 as i64 - 1, y0 as i64 - 1);
        let (r, b) = (x0 as i64 + w as i64, y0 as i64 + h as i64);
        for x in l..=r {
            self.put(x, t, color);
            self.put(x, b, color);
        }
        for y in t..=b {
            self.put(l, y, color);
            self.put(r, y, color);
        }
    }

    /// Fills a rectangle with a solid colour (clipped).
    pub fn fill_rect(&mut self, x0: u32, y0: u32, w: u32, h: u32, color: [u8; 3]) {
        for y in y0 as i64..y0 as i64 + h as i64 {
            for x in x0 as i64..x0 as i64 + w as i64 {
                self.put(x, y, color);
            }
        }
    }

    fn put(&mut self, x: i64, y: i64, color: [u8; 3]) {
        if x >= 0 && y >= 0 && x < self.w as i64 && y < self.h as i64 {
            let o = (y as usize * self.w as usize + x as usize) * 3;
            self.rgb[o..o + 3].copy_from_slice(&color);
        }
    }

    /// Draws text lines, shrinking each one's font until it fits its
    /// `max_width` (never below 8 px; past that it is clipped by the canvas).
    pub fn text(&mut self, path: &Path, labels: &[Label<'_>]) -> Result<()> {
        ensure_fonts()?;
        let (w, h) = (self.w, self.h);
        let root = BitMapBackend::with_buffer(&mut self.rgb, (w, h)).into_drawing_area();
        for l in labels {
            if l.text.is_empty() {
                continue;
            }
            let style = if l.bold {
                FontStyle::Bold
            } else {
                FontStyle::Normal
            };
            let mut size = l.size;
            let font = loop {
                let font = (FONT, size).into_font().style(style);
                let (tw, _) = root
                    .estimate_text_size(l.text, &TextStyle::from(font.clone()))
                    .map_err(|e| draw_err(path, e))?;
                if tw <= l.max_width || size <= 8.0 {
                    break font;
                }
                size = (size * 0.92).max(8.0);
            };
            let h = match l.align {
                Align::Left => HPos::Left,
                Align::Center => HPos::Center,
                Align::Right => HPos::Right,
            };
            let v = if l.v_center { VPos::Center } else { VPos::Top };
            let ts = font.color(&l.color).pos(Pos::new(h, v));
            root.draw(&Text::new(l.text, (l.x, l.y), ts))
                .map_err(|e| draw_err(path, e))?;
        }
        root.present().map_err(|e| draw_err(path, e))?;
        Ok(())
    }

    /// Encodes the canvas as PNG and writes it atomically to `path`.
    pub fn save_png(&self, path: &Path) -> Result<()> {
        let bytes = encode_png(path, &self.rgb, self.w, self.h)?;
        write_atomic(path, &bytes)
    }
}

/// PNG-encodes an RGB buffer in memory.
pub(crate) fn encode_png(path: &Path, rgb: &[u8], w: u32, h: u32) -> Result<Vec<u8>> {
    use image::ImageEncoder;
    let mut out = Vec::new();
    image::codecs::png::PngEncoder::new(&mut out)
        .write_image(rgb, w, h, image::ExtendedColorType::Rgb8)
        .map_err(|e| Error::format(path, format!("PNG encoding failed: {e}")))?;
    Ok(out)
}

/// Writes `bytes` atomically (see [`crate::fsutil::write_atomic`]), so
/// readers see either the old file or the complete new one.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    if path.file_name().is_none() {
        return Err(Error::invalid(
            "output path",
            path.display(),
            "a path naming a file",
        ));
    }
    crate::fsutil::write_atomic(path, bytes)
}
