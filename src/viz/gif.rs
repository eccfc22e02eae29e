//! Animated GIF of a point cloud flowing from noise to data.

use std::path::Path;

use image::codecs::gif::{GifEncoder, Repeat};
use image::{Delay, Frame, RgbaImage};
use ndarray::ArrayView2;

use super::canvas::{write_atomic, Align, Canvas, Label};
use super::density::{render_density_levels, DensityOptions};
use super::scatter::TEXT;
use crate::error::{Error, Result};

/// Options for [`trajectory_gif`].
#[derive(Debug, Clone, PartialEq)]
pub struct GifOptions {
    /// Side of the square density image in pixels (16..=2048); a label band
    /// of [`GifOptions::label_h`] pixels sits above it. Default 320.
    pub size: u32,
    /// Height of the label band above the image. Default 28.
    pub label_h: u32,
    /// Delay between frames in milliseconds (10..=10000). Default 80.
    pub delay_ms: u32,
    /// How long the last frame is shown before the loop restarts, ms. Default 1500.
    pub hold_last_ms: u32,
    /// At most this many frames are written (≥ 2); longer inputs are
    /// subsampled evenly, always keeping the first and last. Default 60.
    pub max_frames: usize,
    /// Colour quantiser speed 1 (best) ..= 30 (fastest). Default 10.
    pub speed: i32,
    /// Range, histogram, colour and style settings.
    pub density: DensityOptions,
}

impl Default for GifOptions {
    fn default() -> Self {
        GifOptions {
            size: 320,
            label_h: 28,
            delay_ms: 80,
            hold_last_ms: 1500,
            max_frames: 60,
            speed: 10,
            density: DensityOptions::default(),
        }
    }
}

/// Which input frames are kept when at most `max` may be written: all of
/// them if they fit, else `max` indices spread evenly from first to last.
pub fn frame_indices(n: usize, max: usize) -> Vec<usize> {
    if n <= max {
        return (0..n).collect();
    }
    if max < 2 {
        return if max == 1 { vec![n - 1] } else { Vec::new() };
    }
    (0..max)
        .map(|k| ((k as f64) * (n - 1) as f64 / (max - 1) as f64).round() as usize)
        .collect()
}

/// Writes an infinitely looping animated GIF, one frame per point set in
/// `frames` (each shape `(n, 2)`), with `labels[i]` (e.g. `"t = 0.53"`)
/// above frame `i`. The last frame is held for `opts.hold_last_ms`.
///
/// Errors if `frames` is empty, `labels.len() != frames.len()`, or an option
/// is out of range. Frames with no finite points are drawn empty.
pub fn trajectory_gif(
    path: &Path,
    frames: &[ArrayView2<'_, f32>],
    labels: &[String],
    opts: &GifOptions,
) -> Result<()> {
    if frames.is_empty() {
        return Err(Error::invalid("frames", 0, "at least one frame"));
    }
    if labels.len() != frames.len() {
        return Err(Error::Mismatch(format!(
            "trajectory_gif: {} frames but {} labels",
            frames.len(),
            labels.len()
        )));
    }
    if !(16..=2048).contains(&opts.size) {
        return Err(Error::invalid("size", opts.size, "16..=2048"));
    }
    if opts.label_h > 200 {
        return Err(Error::invalid("label_h", opts.label_h, "0..=200"));
    }
    for (name, v) in [
        ("delay_ms", opts.delay_ms),
        ("hold_last_ms", opts.hold_last_ms),
    ] {
        if !(10..=60_000).contains(&v) {
            return Err(Error::invalid(name, v, "10..=60000 ms"));
        }
    }
    if opts.max_frames < 2 {
        return Err(Error::invalid("max_frames", opts.max_frames, "at least 2"));
    }
    if !(1..=30).contains(&opts.speed) {
        return Err(Error::invalid("speed", opts.speed, "1..=30"));
    }
    opts.density.validate()?;

    let keep = frame_indices(frames.len(), opts.max_frames);
    let (s, lh) = (opts.size, opts.label_h);
    let mut bytes = Vec::new();
    {
        let gif_err =
            |e: image::ImageError| Error::format(path, format!("GIF encoding failed: {e}"));
        let mut enc = GifEncoder::new_with_speed(&mut bytes, opts.speed);
        enc.set_repeat(Repeat::Infinite).map_err(gif_err)?;
        for (k, &i) in keep.iter().enumerate() {
            // ≤ 65 density colours + ≤ 16 greys for the label band keep every
            // frame within 256 colours: an exact palette, no quantiser noise,
            // and LZW compresses the smooth ramps far better.
            let img = render_density_levels(frames[i], s, s, &opts.density, Some(64))?;
            let mut canvas = Canvas::new(s, s + lh)?;
            canvas.blit(&img, s, s, 0, lh);
            if lh > 0 {
                canvas.fill_rect(0, lh - 1, s, 1, [210, 210, 210]);
                canvas.text(
                    path,
                    &[Label {
                        text: &labels[i],
                        x: 8,
                        y: (lh / 2) as i32 + 1,
                        size: (lh as f64 * 0.62).max(8.0),
                        bold: false,
                        align: Align::Left,
                        v_center: true,
                        max_width: s - 16,
                        color: TEXT,
                    }],
                )?;
            }
            let band = (lh * s * 3) as usize;
            for v in &mut canvas.rgb[..band] {
                *v = ((*v as u16 + 8) / 17 * 17) as u8;
            }
            let delay = if k + 1 == keep.len() {
                opts.hold_last_ms
            } else {
                opts.delay_ms
            };
            let rgba = rgb_to_rgba(canvas.w, canvas.h, &canvas.rgb)
                .ok_or_else(|| Error::format(path, "internal: frame buffer has the wrong size"))?;
            let frame = Frame::from_parts(rgba, 0, 0, Delay::from_numer_denom_ms(delay, 1));
            enc.encode_frame(frame).map_err(gif_err)?;
        }
    }
    write_atomic(path, &bytes)
}

fn rgb_to_rgba(w: u32, h: u32, rgb: &[u8]) -> Option<RgbaImage> {
    let mut out = Vec::with_capacity(rgb.len() / 3 * 4);
    for px in rgb.chunks_exact(3) {
        out.extend_from_slice(&[px[0], px[1], px[2], 255]);
    }
    RgbaImage::from_raw(w, h, out)
}
