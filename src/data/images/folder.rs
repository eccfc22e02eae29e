//! Any folder of PNG / JPEG images, resized to N×N.

use std::path::{Path, PathBuf};

use image::imageops::FilterType;
use ndarray::Array2;

use super::{u8_to_unit, ImageSet};
use crate::error::{Error, Result};

/// Grey (1 channel, luma) or RGB (3 channels; alpha composited over white).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ColorMode {
    Grey,
    Rgb,
}

/// Largest output side accepted.
pub const MAX_SIZE: usize = 512;
/// Largest image file read (64 MiB); see also
/// [`super::MAX_DECODED_PIXELS`].
pub const MAX_IMAGE_FILE_BYTES: u64 = 64 << 20;

/// The files [`load_folder`] reads: every regular `*.png`, `*.jpg`,
/// `*.jpeg` file directly in `dir` (case-insensitive), sorted by name.
pub fn list_images(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| Error::io(dir, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.is_file()
                && p.extension()
                    .and_then(|e| e.to_str())
                    .map(|e| matches!(e.to_ascii_lowercase().as_str(), "png" | "jpg" | "jpeg"))
                    .unwrap_or(false)
        })
        .collect();
    files.sort();
    Ok(files)
}

/// Load every `*.png`, `*.jpg`, `*.jpeg` file directly in `dir` (sorted by
/// file name; case-insensitive extensions; sub-folders ignored). Each image
/// is centre-cropped to a square (side = its shorter side), resized to
/// `size × size` with a triangle (bilinear) filter, and converted to `mode`.
/// A file that cannot be decoded is an error naming it.
pub fn load_folder(dir: &Path, size: usize, mode: ColorMode) -> Result<ImageSet> {
    if !(1..=MAX_SIZE).contains(&size) {
        return Err(Error::invalid(
            "image size",
            size,
            format!("1..={MAX_SIZE}"),
        ));
    }
    let files = list_images(dir)?;
    if files.is_empty() {
        return Err(Error::format(
            dir,
            "no .png / .jpg / .jpeg files in this folder",
        ));
    }
    let c = if mode == ColorMode::Grey { 1 } else { 3 };
    let total = (files.len() as u64).saturating_mul((c * size * size) as u64);
    if total > super::MAX_FILE_BYTES {
        return Err(Error::format(
            dir,
            format!(
                "{} images of {c}x{size}x{size} are {total} values, more than the {} allowed",
                files.len(),
                super::MAX_FILE_BYTES
            ),
        ));
    }
    let mut pixels = Vec::with_capacity(total as usize);
    for f in &files {
        let img = super::decode_image(f)?.to_rgba8();
        let side = img.width().min(img.height());
        let (x0, y0) = ((img.width() - side) / 2, (img.height() - side) / 2);
        let sq = image::imageops::crop_imm(&img, x0, y0, side, side).to_image();
        let small = image::imageops::resize(&sq, size as u32, size as u32, FilterType::Triangle);
        let over_white = |p: &image::Rgba<u8>, ch: usize| -> f32 {
            let a = p[3] as f32 / 255.0;
            a * p[ch] as f32 + (1.0 - a) * 255.0
        };
        match mode {
            ColorMode::Grey => {
                for p in small.pixels() {
                    // ITU-R 601 luma, as image's to_luma8.
                    let l = 0.299 * over_white(p, 0)
                        + 0.587 * over_white(p, 1)
                        + 0.114 * over_white(p, 2);
                    pixels.push(u8_to_unit(l.round().clamp(0.0, 255.0) as u8));
                }
            }
            ColorMode::Rgb => {
                for ch in 0..3 {
                    for p in small.pixels() {
                        pixels.push(u8_to_unit(over_white(p, ch).round().clamp(0.0, 255.0) as u8));
                    }
                }
            }
        }
    }
    let pixels = Array2::from_shape_vec((files.len(), c * size * size), pixels)
        .map_err(|e| Error::format(dir, e.to_string()))?;
    Ok(ImageSet {
        channels: c,
        height: size,
        width: size,
        pixels,
        labels: None,
    })
}
