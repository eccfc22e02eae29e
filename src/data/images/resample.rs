//! Resolution changes of image rows (`[c, h, w]` order, values in [−1, 1]):
//! MNIST 28×28 ↔ 16×16 for training at a lower resolution and scoring
//! the samples with the 28×28 classifier.
//!
//! ```text
//!   down:  28×28 --pad 2 px with −1 (background)--> 32×32 --2×2 mean--> 16×16
//!   up:    16×16 --bilinear ×2 (half-pixel centres)--> 32×32 --crop 2 px--> 28×28
//! ```

use ndarray::Array2;

use super::ImageSet;
use crate::error::{Error, Result};

/// Pad every image by `p` pixels of `value` on each side.
pub fn pad(x: &Array2<f32>, c: usize, h: usize, w: usize, p: usize, value: f32) -> Array2<f32> {
    let (h2, w2) = (h + 2 * p, w + 2 * p);
    let mut out = Array2::from_elem((x.nrows(), c * h2 * w2), value);
    for (src, mut dst) in x.rows().into_iter().zip(out.rows_mut()) {
        for ch in 0..c {
            for y in 0..h {
                for xx in 0..w {
                    dst[ch * h2 * w2 + (y + p) * w2 + xx + p] = src[ch * h * w + y * w + xx];
                }
            }
        }
    }
    out
}

/// Remove `p` pixels from each side of every image.
pub fn crop(x: &Array2<f32>, c: usize, h: usize, w: usize, p: usize) -> Array2<f32> {
    let (h2, w2) = (h - 2 * p, w - 2 * p);
    let mut out = Array2::zeros((x.nrows(), c * h2 * w2));
    for (src, mut dst) in x.rows().into_iter().zip(out.rows_mut()) {
        for ch in 0..c {
            for y in 0..h2 {
                for xx in 0..w2 {
                    dst[ch * h2 * w2 + y * w2 + xx] = src[ch * h * w + (y + p) * w + xx + p];
                }
            }
        }
    }
    out
}

/// k×k mean pooling: `out[y, x] = mean_{i,j<k} in[k y + i, k x + j]`
/// (`h`, `w` divisible by `k`).
pub fn mean_pool(x: &Array2<f32>, c: usize, h: usize, w: usize, k: usize) -> Array2<f32> {
    let (h2, w2) = (h / k, w / k);
    let inv = 1.0 / (k * k) as f32;
    let mut out = Array2::zeros((x.nrows(), c * h2 * w2));
    for (src, mut dst) in x.rows().into_iter().zip(out.rows_mut()) {
        for ch in 0..c {
            for y in 0..h2 {
                for xx in 0..w2 {
                    let mut s = 0.0f32;
                    for i in 0..k {
                        for j in 0..k {
                            s += src[ch * h * w + (k * y + i) * w + k * xx + j];
                        }
                    }
                    dst[ch * h2 * w2 + y * w2 + xx] = s * inv;
                }
            }
        }
    }
    out
}

/// Bilinear ×2 upsampling with half-pixel centres (PyTorch
/// `align_corners=False`): output pixel y samples input coordinate
/// `(y + 0.5)/2 − 0.5`, clamped to the image.
pub fn upsample2_bilinear(x: &Array2<f32>, c: usize, h: usize, w: usize) -> Array2<f32> {
    let (h2, w2) = (2 * h, 2 * w);
    let taps = |o: usize, n: usize| -> (usize, usize, f32) {
        let s = ((o as f32 + 0.5) * 0.5 - 0.5).clamp(0.0, (n - 1) as f32);
        let i0 = s.floor() as usize;
        let i1 = (i0 + 1).min(n - 1);
        (i0, i1, s - i0 as f32)
    };
    let mut out = Array2::zeros((x.nrows(), c * h2 * w2));
    for (src, mut dst) in x.rows().into_iter().zip(out.rows_mut()) {
        for ch in 0..c {
            let at = |y: usize, xx: usize| src[ch * h * w + y * w + xx];
            for y in 0..h2 {
                let (y0, y1, fy) = taps(y, h);
                for xx in 0..w2 {
                    let (x0, x1, fx) = taps(xx, w);
                    let top = at(y0, x0) * (1.0 - fx) + at(y0, x1) * fx;
                    let bot = at(y1, x0) * (1.0 - fx) + at(y1, x1) * fx;
                    dst[ch * h2 * w2 + y * w2 + xx] = top * (1.0 - fy) + bot * fy;
                }
            }
        }
    }
    out
}

/// MNIST 28×28 → 16×16 (pad to 32 with background, 2×2 mean).
pub fn mnist_to_16(set: &ImageSet) -> Result<ImageSet> {
    if (set.channels, set.height, set.width) != (1, 28, 28) {
        return Err(Error::Mismatch(format!(
            "mnist_to_16 needs 1x28x28 images, got {}x{}x{}",
            set.channels, set.height, set.width
        )));
    }
    let padded = pad(&set.pixels, 1, 28, 28, 2, -1.0);
    Ok(ImageSet {
        channels: 1,
        height: 16,
        width: 16,
        pixels: mean_pool(&padded, 1, 32, 32, 2),
        labels: set.labels.clone(),
    })
}

/// 16×16 rows (as made by [`mnist_to_16`]) back to 28×28 for the classifier.
pub fn mnist16_to_28(x: &Array2<f32>) -> Array2<f32> {
    crop(&upsample2_bilinear(x, 1, 16, 16), 1, 32, 32, 2)
}
