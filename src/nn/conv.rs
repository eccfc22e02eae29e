//! Convolution kernels on NHWC batches (`[images, h, w, c]` row-major, so a
//! batch is a `[pixels, c]` matrix).
//!
//! A k×k convolution (k ∈ {1, 3}, padding (k−1)/2, stride s ∈ {1, 2}) with
//! PyTorch weight layout `W[co, ci, ky, kx]` is computed as
//!
//! ```text
//!   cols[p, ci·k² + ky·k + kx] = x[img(p), s·oy(p) + ky − pad, s·ox(p) + kx − pad, ci]  (0 outside)
//!   out = cols · Wᵀ + b                  [P, co]   (P = images · h_out · w_out)
//! ```
//!
//! and its backward as `dW = doutᵀ·cols`, `db = Σ_p dout[p]`,
//! `dcols = dout·W`, `dx = col2im(dcols)` (scatter-add of every column back
//! to the pixel it was read from). Each output row depends only on its own
//! image, and the GEMM rows are batch-size invariant (see [`super::gemm`]).

use rayon::prelude::*;

use super::gemm::{gemm, MatRef};

/// Output side of a padded k×k convolution with stride `s`: ⌊(n + 2·pad − k)/s⌋ + 1.
pub fn out_size(n: usize, k: usize, stride: usize) -> usize {
    let pad = (k - 1) / 2;
    (n + 2 * pad - k) / stride + 1
}

/// Geometry of one convolution over a batch.
#[derive(Clone, Copy, Debug)]
pub struct ConvShape {
    pub images: usize,
    pub h: usize,
    pub w: usize,
    pub cin: usize,
    pub cout: usize,
    pub k: usize,
    pub stride: usize,
}

impl ConvShape {
    pub fn ho(&self) -> usize {
        out_size(self.h, self.k, self.stride)
    }
    pub fn wo(&self) -> usize {
        out_size(self.w, self.k, self.stride)
    }
    /// Output pixels over the batch.
    pub fn rows(&self) -> usize {
        self.images * self.ho() * self.wo()
    }
    /// Columns of the im2col matrix, `cin·k²`.
    pub fn kdim(&self) -> usize {
        self.cin * self.k * self.k
    }
    /// True when `cols` would equal `x` (1×1, stride 1).
    pub fn is_pointwise(&self) -> bool {
        self.k == 1 && self.stride == 1
    }
}

/// Build the im2col matrix `cols` (`[rows, kdim]`) from `x` (NHWC).
pub fn im2col(x: &[f32], s: &ConvShape, cols: &mut [f32]) {
    let (ho, wo, kd) = (s.ho(), s.wo(), s.kdim());
    let pad = (s.k - 1) / 2;
    let per_img_out = ho * wo * kd;
    let per_img_in = s.h * s.w * s.cin;
    cols[..s.images * per_img_out]
        .par_chunks_mut(per_img_out.max(1))
        .enumerate()
        .for_each(|(b, cimg)| {
            let xi = &x[b * per_img_in..(b + 1) * per_img_in];
            for oy in 0..ho {
                for ox in 0..wo {
                    let row = &mut cimg[(oy * wo + ox) * kd..][..kd];
                    for ky in 0..s.k {
                        let iy = (s.stride * oy + ky) as isize - pad as isize;
                        for kx in 0..s.k {
                            let ix = (s.stride * ox + kx) as isize - pad as isize;
                            let inside =
                                iy >= 0 && ix >= 0 && (iy as usize) < s.h && (ix as usize) < s.w;
                            let kk = ky * s.k + kx;
                            if inside {
                                let src = &xi[(iy as usize * s.w + ix as usize) * s.cin..][..s.cin];
                                for (ci, &v) in src.iter().enumerate() {
                                    row[ci * s.k * s.k + kk] = v;
                                }
                            } else {
                                for ci in 0..s.cin {
                                    row[ci * s.k * s.k + kk] = 0.0;
                                }
                            }
                        }
                    }
                }
            }
        });
}

/// Scatter-add `dcols` (`[rows, kdim]`) into `dx` (NHWC, accumulated).
pub fn col2im_add(dcols: &[f32], s: &ConvShape, dx: &mut [f32]) {
    let (ho, wo, kd) = (s.ho(), s.wo(), s.kdim());
    let pad = (s.k - 1) / 2;
    let per_img_out = ho * wo * kd;
    let per_img_in = s.h * s.w * s.cin;
    dx[..s.images * per_img_in]
        .par_chunks_mut(per_img_in.max(1))
        .enumerate()
        .for_each(|(b, dxi)| {
            let cimg = &dcols[b * per_img_out..(b + 1) * per_img_out];
            for oy in 0..ho {
                for ox in 0..wo {
                    let row = &cimg[(oy * wo + ox) * kd..][..kd];
                    for ky in 0..s.k {
                        let iy = (s.stride * oy + ky) as isize - pad as isize;
                        if iy < 0 || iy as usize >= s.h {
                            continue;
                        }
                        for kx in 0..s.k {
                            let ix = (s.stride * ox + kx) as isize - pad as isize;
                            if ix < 0 || ix as usize >= s.w {
                                continue;
                            }
                            let dst =
                                &mut dxi[(iy as usize * s.w + ix as usize) * s.cin..][..s.cin];
                            let kk = ky * s.k + kx;
                            for (ci, d) in dst.iter_mut().enumerate() {
                                *d += row[ci * s.k * s.k + kk];
                            }
                        }
                    }
                }
            }
        });
}

/// Forward: `out = conv(x) + b` (`out`: `[rows, cout]`). `cols` is scratch of
/// at least `rows·kdim` values (unused for pointwise convolutions).
pub fn conv_forward(
    x: &[f32],
    s: &ConvShape,
    w: &[f32],
    b: &[f32],
    out: &mut [f32],
    cols: &mut Vec<f32>,
) {
    let (rows, kd) = (s.rows(), s.kdim());
    let a: &[f32] = if s.is_pointwise() {
        &x[..rows * kd]
    } else {
        if cols.len() < rows * kd {
            cols.resize(rows * kd, 0.0);
        }
        im2col(x, s, cols);
        &cols[..rows * kd]
    };
    let out = &mut out[..rows * s.cout];
    gemm(
        MatRef::row_major(a, rows, kd),
        MatRef::transposed(w, kd, s.cout),
        out,
        false,
        true,
    );
    super::layers::bias_add(out, b);
}

/// Backward: accumulates `dW += doutᵀ·cols`, `db += Σ_p dout[p]` and, when
/// given, `dx += col2im(dout·W)`. `cols`, `dcols` are scratch.
#[allow(clippy::too_many_arguments)]
pub fn conv_backward(
    x: &[f32],
    s: &ConvShape,
    w: &[f32],
    dout: &[f32],
    dw: &mut [f32],
    db: &mut [f32],
    dx: Option<&mut [f32]>,
    cols: &mut Vec<f32>,
    dcols: &mut Vec<f32>,
) {
    let (rows, kd, co) = (s.rows(), s.kdim(), s.cout);
    let dout = &dout[..rows * co];
    let a: &[f32] = if s.is_pointwise() {
        &x[..rows * kd]
    } else {
        if cols.len() < rows * kd {
            cols.resize(rows * kd, 0.0);
        }
        im2col(x, s, cols);
        &cols[..rows * kd]
    };
    gemm(
        MatRef::transposed(dout, co, rows),
        MatRef::row_major(a, rows, kd),
        dw,
        true,
        true,
    );
    for row in dout.chunks_exact(co) {
        for (g, &v) in db.iter_mut().zip(row) {
            *g += v;
        }
    }
    if let Some(dx) = dx {
        if s.is_pointwise() {
            gemm(
                MatRef::row_major(dout, rows, co),
                MatRef::row_major(w, co, kd),
                &mut dx[..rows * kd],
                true,
                true,
            );
        } else {
            if dcols.len() < rows * kd {
                dcols.resize(rows * kd, 0.0);
            }
            gemm(
                MatRef::row_major(dout, rows, co),
                MatRef::row_major(w, co, kd),
                &mut dcols[..rows * kd],
                false,
                true,
            );
            col2im_add(&dcols[..rows * kd], s, dx);
        }
    }
}
