//! UCI optical-recognition digits (scikit-learn's `digits.csv.gz`): one
//! line per image, 65 comma-separated integers: 64 grey levels 0..=16 of an
//! 8×8 image in row-major order, then the label 0..=9.

use std::io::Read;
use std::path::Path;

use ndarray::Array2;

use super::{open_maybe_gz, read_err, ImageSet};
use crate::error::{Error, Result};

/// Load the digits CSV (gzipped or raw). Grey level `v` maps to
/// `v / 16 · 2 − 1`. Empty lines are skipped; any other malformed line is an
/// error naming its line number.
pub fn load_digits_csv(path: &Path) -> Result<ImageSet> {
    let mut text = String::new();
    open_maybe_gz(path)?
        .read_to_string(&mut text)
        .map_err(|e| read_err(path, e))?;
    let mut pixels = Vec::new();
    let mut labels = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split(',').collect();
        if fields.len() != 65 {
            return Err(Error::format(
                path,
                format!(
                    "line {}: {} fields, expected 65 (64 pixels + label)",
                    i + 1,
                    fields.len()
                ),
            ));
        }
        for (j, f) in fields.iter().enumerate() {
            let v: u8 = f.trim().parse().map_err(|_| {
                Error::format(
                    path,
                    format!("line {}, field {}: '{f}' is not an integer", i + 1, j + 1),
                )
            })?;
            let max = if j < 64 { 16 } else { 9 };
            if v > max {
                return Err(Error::format(
                    path,
                    format!("line {}, field {}: {v} outside 0..={max}", i + 1, j + 1),
                ));
            }
            if j < 64 {
                pixels.push(v as f32 / 16.0 * 2.0 - 1.0);
            } else {
                labels.push(v);
            }
        }
    }
    if labels.is_empty() {
        return Err(Error::format(path, "no images in the file"));
    }
    let pixels = Array2::from_shape_vec((labels.len(), 64), pixels)
        .map_err(|e| Error::format(path, e.to_string()))?;
    Ok(ImageSet {
        channels: 1,
        height: 8,
        width: 8,
        pixels,
        labels: Some(labels),
    })
}
