//! Convolution kernels on NHWC batches (`[images, h, w, c]` row-major, so a
//! batch is a `[pixels, c]` matrix).
//!
//! A k×k convolution (k ∈ {1, 3}, padding (k−1)/2, stride s ∈ {1, 2}) with
//! PyTorch weight layout `W[co, ci, ky, kx]` is computed as
//!
//! ```text
//!   cols[p, (ky·k + kx)·cin + ci] = x[img(p), s·oy(p) + ky − pad, s·ox(p) + kx − pad, ci]  (0 outside)
//!   Wp[co, (ky·k + kx)·cin + ci]  = W[co, ci, ky, kx]
//!   out = cols · Wpᵀ + b                 [P, co]   (P = images · h_out · w_out)
//! ```
//!
//! and its backward as `dW = permute(Σ_img doutᵀ·cols)`, `db = Σ_p dout[p]`,
//! `dcols = dout·Wp`, `dx = col2im(dcols)` (scatter-add of every column back
//! to the pixel it was read from). The `[ky, kx, ci]` column order makes
//! every im2col copy and col2im add a contiguous run of `cin` values; the
//! permuted weight `Wp` is a per-call scratch copy (parameters and
//! checkpoints keep the PyTorch layout).
//!
//! 3×3 stride-1 convolutions (with the AVX-512 kernel) skip the im2col
//! matrix in both directions: [`super::conv_shift`] computes them as
//! shifted GEMMs over a zero-padded copy of each image.
//!
//! The work runs in tiles of at most `tile_rows` output pixels whose columns
//! stay in cache: the forward splits the batch into tiles across rayon
//! threads, the backward splits it by image (col2im of neighbouring tiles
//! overlaps) and walks each image's tiles in order. Each output row depends
//! only on its own image and the GEMM rows are batch-size invariant (see
//! [`crate::backend::gemm`]); `dW` is a sum of per-image partials taken in image
//! order, so it does not depend on the thread count.
//!
//! Layout: this file holds the shape, the im2col layout and the forward;
//! [`backward`] the backward (col2im, the per-image `dW` partials) and the
//! test of its two paths against each other.

use std::cell::RefCell;

use rayon::prelude::*;

use crate::backend::gemm::{gemm, MatRef};
use crate::backend::simd::copy_run;

mod backward;

pub use backward::conv_backward;

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
    /// Output pixels per tile: about `TILE_VALUES` im2col values, a
    /// multiple of 16 (the GEMM micro-kernel height), at least 16.
    fn tile_rows(&self) -> usize {
        (TILE_VALUES / self.kdim().max(1)).max(16) / 16 * 16
    }
}

/// Target im2col values per tile (128 KiB of f32: the tile's columns, its
/// packed copy and the GEMM output stay in L2).
const TILE_VALUES: usize = 32 * 1024;

thread_local! {
    /// Per-thread im2col tile (forward and backward) and dcols tile.
    static TILE: RefCell<(Vec<f32>, Vec<f32>)> = const { RefCell::new((Vec::new(), Vec::new())) };
}

/// `Wp[co, (ky·k + kx)·cin + ci] = W[co, ci, ky, kx]` into `wp`.
fn permute_weight(w: &[f32], s: &ConvShape, wp: &mut [f32]) {
    let (kk, cin) = (s.k * s.k, s.cin);
    for (wr, pr) in w.chunks_exact(cin * kk).zip(wp.chunks_exact_mut(cin * kk)) {
        for ci in 0..cin {
            for q in 0..kk {
                pr[q * cin + ci] = wr[ci * kk + q];
            }
        }
    }
}

/// im2col rows `p0 .. p0 + n` of the batch (global output-pixel indices)
/// into `cols` (`[n, kdim]`, `[ky, kx, ci]` column order).
fn im2col_rows(x: &[f32], s: &ConvShape, p0: usize, n: usize, cols: &mut [f32]) {
    let (ho, wo, kd, cin) = (s.ho(), s.wo(), s.kdim(), s.cin);
    let pad = (s.k - 1) / 2;
    let per_img_in = s.h * s.w * cin;
    for (r, row) in cols[..n * kd].chunks_exact_mut(kd).enumerate() {
        let p = p0 + r;
        let (b, q) = (p / (ho * wo), p % (ho * wo));
        let (oy, ox) = (q / wo, q % wo);
        let xi = &x[b * per_img_in..(b + 1) * per_img_in];
        for ky in 0..s.k {
            let iy = (s.stride * oy + ky) as isize - pad as isize;
            for kx in 0..s.k {
                let ix = (s.stride * ox + kx) as isize - pad as isize;
                let dst = &mut row[(ky * s.k + kx) * cin..][..cin];
                if iy >= 0 && ix >= 0 && (iy as usize) < s.h && (ix as usize) < s.w {
                    copy_run(dst, &xi[(iy as usize * s.w + ix as usize) * cin..][..cin]);
                } else {
                    dst.fill(0.0);
                }
            }
        }
    }
}

/// `Wt[(ky·k + kx)·cin + ci, co] = W[co, ci, ky, kx]` into `wt` (`[kdim, cout]`
/// row-major, the layout the GEMM reads in place as the right-hand factor).
fn transpose_weight(w: &[f32], s: &ConvShape, wt: &mut [f32]) {
    let (kk, cin, co) = (s.k * s.k, s.cin, s.cout);
    for (o, wr) in w.chunks_exact(cin * kk).enumerate().take(co) {
        for ci in 0..cin {
            for q in 0..kk {
                wt[(q * cin + ci) * co + o] = wr[ci * kk + q];
            }
        }
    }
}

/// Forward: `out = conv(x) + b` (`out`: `[rows, cout]`), and with `add`
/// (`[images, cout]`, a per-image channel vector such as the time
/// projection) `out = (conv(x) + b) + add[img]` in the same pass. `wt` is
/// scratch for the transposed weight.
#[allow(clippy::too_many_arguments)]
pub fn conv_forward(
    x: &[f32],
    s: &ConvShape,
    w: &[f32],
    b: &[f32],
    add: Option<&[f32]>,
    out: &mut [f32],
    wt: &mut Vec<f32>,
) {
    let (rows, kd, co) = (s.rows(), s.kdim(), s.cout);
    let ppi = s.ho() * s.wo();
    let pointwise = s.is_pointwise();
    wt.resize(co * kd, 0.0);
    transpose_weight(w, s, wt);
    let wk: &[f32] = wt;
    if s.k == 3 && s.stride == 1 && crate::backend::kernel::available() {
        // Same bits as the im2col product below (see `conv_shift`).
        let (per_in, per_out) = (s.h * s.w * s.cin, ppi * co);
        out[..rows * co]
            .par_chunks_mut(per_out)
            .enumerate()
            .for_each(|(img, o)| {
                let v = add.map(|v| &v[img * co..(img + 1) * co]);
                let xi = &x[img * per_in..(img + 1) * per_in];
                super::conv_shift::conv3_image(xi, s.h, s.w, s.cin, co, wk, b, v, o);
            });
        return;
    }
    let tile = s.tile_rows();
    out[..rows * co]
        .par_chunks_mut(tile * co)
        .enumerate()
        .for_each(|(i, o)| {
            let (p0, n) = (i * tile, o.len() / co);
            let wm = MatRef::row_major(wk, kd, co);
            if pointwise {
                let a = MatRef::row_major(&x[p0 * kd..(p0 + n) * kd], n, kd);
                gemm(a, wm, o, false, false);
            } else {
                TILE.with_borrow_mut(|(cols, _)| {
                    grow(cols, n * kd);
                    im2col_rows(x, s, p0, n, cols);
                    gemm(
                        MatRef::row_major(&cols[..n * kd], n, kd),
                        wm,
                        o,
                        false,
                        false,
                    );
                });
            }
            super::layers::bias_add(o, b);
            if let Some(v) = add {
                for (r, row) in o.chunks_exact_mut(co).enumerate() {
                    let img = (p0 + r) / ppi;
                    for (y, &a) in row.iter_mut().zip(&v[img * co..(img + 1) * co]) {
                        *y += a;
                    }
                }
            }
        });
}

fn grow(v: &mut Vec<f32>, n: usize) {
    if v.len() < n {
        v.resize(n, 0.0);
    }
}
