//! Grids of image samples: a PNG of `n` images laid out `cols` per row,
//! each nearest-neighbour upscaled by an integer factor (so 8×8 and 16×16
//! images are visible), and an animated GIF of the whole grid along a
//! sampler trajectory (noise → images).
//!
//! Images are rows of `[c, h, w]` values in [−1, 1] (see
//! [`crate::data::images`]); a value maps to `round((x + 1)/2 · 255)`
//! clamped to 0..=255 (NaN → 0). `c` is 1 (grey) or 3 (RGB).

use std::path::Path;

use image::codecs::gif::{GifEncoder, Repeat};
use image::{Delay, Frame, RgbaImage};
use ndarray::ArrayView2;

use super::canvas::{encode_png, write_atomic};
use super::gif::frame_indices;
use crate::data::images::unit_to_u8;
use crate::error::{Error, Result};

/// Layout of an image grid.
#[derive(Clone, Debug, PartialEq)]
pub struct GridOptions {
    pub channels: usize,
    pub height: usize,
    pub width: usize,
    /// Images per grid row (default 8).
    pub cols: usize,
    /// Integer upscaling factor, 1..=64 (default 4).
    pub scale: usize,
    /// White gap between images, in output pixels (default 2).
    pub pad: usize,
}

impl GridOptions {
    pub fn new(channels: usize, height: usize, width: usize) -> Self {
        GridOptions {
            channels,
            height,
            width,
            cols: 8,
            scale: 4,
            pad: 2,
        }
    }
    fn validate(&self, ncols: usize, n: usize) -> Result<(u32, u32)> {
        if self.channels != 1 && self.channels != 3 {
            return Err(Error::invalid(
                "channels",
                self.channels,
                "1 (grey) or 3 (RGB)",
            ));
        }
        if self.channels * self.height * self.width != ncols {
            return Err(Error::Mismatch(format!(
                "image grid: rows have {ncols} values, {}x{}x{} images need {}",
                self.channels,
                self.height,
                self.width,
                self.channels * self.height * self.width
            )));
        }
        if n == 0 {
            return Err(Error::invalid("images", 0, "at least one image"));
        }
        if !(1..=64).contains(&self.scale) || self.cols == 0 || self.pad > 64 {
            return Err(Error::invalid(
                "grid options",
                format!("scale {} cols {} pad {}", self.scale, self.cols, self.pad),
                "scale 1..=64, cols >= 1, pad <= 64",
            ));
        }
        let cols = self.cols.min(n);
        let rows = n.div_ceil(cols);
        let w = cols * (self.width * self.scale + self.pad) + self.pad;
        let h = rows * (self.height * self.scale + self.pad) + self.pad;
        if w > 16_384 || h > 16_384 {
            return Err(Error::invalid(
                "grid size",
                format!("{w}x{h}"),
                "at most 16384 pixels a side (use fewer images or a smaller scale)",
            ));
        }
        Ok((w as u32, h as u32))
    }
}

/// Render the images of `x` (`[n, c·h·w]`) into an RGB buffer.
pub fn render_grid(x: ArrayView2<f32>, o: &GridOptions) -> Result<(Vec<u8>, u32, u32)> {
    let (w, h) = o.validate(x.ncols(), x.nrows())?;
    let mut rgb = vec![255u8; w as usize * h as usize * 3];
    let cols = o.cols.min(x.nrows());
    let hw = o.height * o.width;
    for (i, img) in x.rows().into_iter().enumerate() {
        let (gx, gy) = (i % cols, i / cols);
        let x0 = o.pad + gx * (o.width * o.scale + o.pad);
        let y0 = o.pad + gy * (o.height * o.scale + o.pad);
        for py in 0..o.height * o.scale {
            for px in 0..o.width * o.scale {
                let p = (py / o.scale) * o.width + px / o.scale;
                let d = ((y0 + py) * w as usize + x0 + px) * 3;
                for ch in 0..3 {
                    let src = if o.channels == 1 { p } else { ch * hw + p };
                    rgb[d + ch] = unit_to_u8(img[src]);
                }
            }
        }
    }
    Ok((rgb, w, h))
}

/// Write a PNG grid of the images in `x` atomically.
pub fn image_grid_png(path: &Path, x: ArrayView2<f32>, o: &GridOptions) -> Result<()> {
    let (rgb, w, h) = render_grid(x, o)?;
    write_atomic(path, &encode_png(path, &rgb, w, h)?)
}

/// Write an infinitely looping GIF, one grid per trajectory frame (each
/// `[n, c·h·w]`, e.g. `Trajectory.frames`), at most `max_frames` frames
/// (evenly subsampled, first and last kept), `delay_ms` between frames and
/// the last frame held for `hold_last_ms`. Colours are quantised per frame
/// by the GIF encoder (NeuQuant, speed 10).
pub fn image_grid_gif(
    path: &Path,
    frames: &[ArrayView2<f32>],
    o: &GridOptions,
    max_frames: usize,
    delay_ms: u32,
    hold_last_ms: u32,
) -> Result<()> {
    if frames.is_empty() {
        return Err(Error::invalid("frames", 0, "at least one frame"));
    }
    if max_frames < 2
        || !(10..=60_000).contains(&delay_ms)
        || !(10..=60_000).contains(&hold_last_ms)
    {
        return Err(Error::invalid(
            "gif options",
            format!("max_frames {max_frames} delay {delay_ms} hold {hold_last_ms}"),
            "max_frames >= 2, delays 10..=60000 ms",
        ));
    }
    let keep = frame_indices(frames.len(), max_frames);
    let mut bytes = Vec::new();
    {
        let gif_err =
            |e: image::ImageError| Error::format(path, format!("GIF encoding failed: {e}"));
        let mut enc = GifEncoder::new_with_speed(&mut bytes, 10);
        enc.set_repeat(Repeat::Infinite).map_err(gif_err)?;
        for (k, &i) in keep.iter().enumerate() {
            if frames[i].dim() != frames[0].dim() {
                return Err(Error::Mismatch(format!(
                    "GIF frame {i} has shape {:?}, frame 0 {:?}",
                    frames[i].dim(),
                    frames[0].dim()
                )));
            }
            let (rgb, w, h) = render_grid(frames[i], o)?;
            let rgba: Vec<u8> = rgb
                .chunks_exact(3)
                .flat_map(|p| [p[0], p[1], p[2], 255])
                .collect();
            let img = RgbaImage::from_raw(w, h, rgba)
                .ok_or_else(|| Error::format(path, "internal: frame buffer size"))?;
            let delay = if k + 1 == keep.len() {
                hold_last_ms
            } else {
                delay_ms
            };
            enc.encode_frame(Frame::from_parts(
                img,
                0,
                0,
                Delay::from_numer_denom_ms(delay, 1),
            ))
            .map_err(gif_err)?;
        }
    }
    write_atomic(path, &bytes)
}
