//! 3×3, stride-1, padding-1 convolution of one NHWC image as nine shifted
//! GEMMs over a zero-padded copy of the image, with no im2col matrix.
//!
//! With `W2 = w + 2`, the padded image `xp[(y + 1)·W2 + (x + 1), ci] = x[y, x, ci]`
//! (zero border) and the "wide" output row index `u = oy·W2 + ox`, tap
//! `q = ky·3 + kx` reads `xp[u + ky·W2 + kx]` for every output pixel, so
//!
//! ```text
//!   Cw = 0;  for q = 0..9:  Cw += Xp[q-shift] · Wt_q      ([m, cin]·[cin, cout], m = (h−1)·W2 + w)
//!   out[oy·w + ox] = Cw[oy·W2 + ox] + b                    (the two wrap-around rows per image row dropped)
//! ```
//!
//! where `Xp[q-shift]` is a strided view of `xp` (row stride `cin`) starting
//! at pixel `ky·W2 + kx`, and `Wt_q` the rows `q·cin .. (q+1)·cin` of the
//! `[9·cin, cout]` weight of [`super::conv`]. The three taps of one kernel
//! row run as one product over `3·cin` columns ([`shifted_row`]), so there
//! are three GEMMs per image, not nine. Each GEMM continues every
//! element's FMA chain from the stored value (`C += A·B`), so `Cw[u, co]` is
//! one chain over `p = q·cin + ci` in ascending order, starting from 0 and
//! including the products with the zero border, exactly the chain of the
//! im2col product `cols·Wt` of [`super::conv`]: the bits are the same.
//! Per image this copies the input once instead of nine times.
//!
//! Backward ([`conv3_image_backward`]), with `dp` the zero-padded copy of
//! `dout` (`[(h + 2)·W2, cout]`): its view from pixel `W2 + 1` on is `dout`
//! in the wide row order with zeros in the wrap-around rows, so
//!
//! ```text
//!   dWᵀ_q = Xp[q-shift]ᵀ · dp[W2+1 ..]                     ([cin, m]·[m, cout], q = 0..9)
//!   dXw   = Σ_{q'=0..9} dp[q'-shift] · Wd_q'               ([m, cout]·[cout, cin])
//!   dx[oy·w + ox] += dXw[oy·W2 + ox]
//! ```
//!
//! with `Wd_q'[co, ci] = W[co, ci, 8 − q']` (the flipped kernel: input pixel
//! `u` receives from output pixel `u − (ky·W2 + kx) + W2 + 1`). `dWᵀ_q[ci, co]`
//! is one FMA chain over the pixels in row order; the wrap-around rows add
//! `fma(0, x, acc) = acc` exactly, and the border zeros are the zeros of
//! the im2col columns, so `dW` has the bits of the im2col product
//! `doutᵀ·cols`. `dX` is one FMA chain over `(q', co)`, where col2im
//! added nine separately rounded per-tap products: its bits differ from
//! the im2col path in the last places (it is the same sum in another order).

use std::cell::RefCell;

use crate::backend::gemm::{gemm, MatRef};
use crate::backend::simd::{copy_run, dispatch_simd};

thread_local! {
    /// Padded image, wide output, and the bias (and time vector) repeated over one row.
    static BUFS: RefCell<[Vec<f32>; 3]> = const { RefCell::new([Vec::new(), Vec::new(), Vec::new()]) };
    /// Backward: padded image, padded output gradient, wide input gradient.
    static BWD: RefCell<[Vec<f32>; 3]> = const { RefCell::new([Vec::new(), Vec::new(), Vec::new()]) };
}

/// The flipped, transposed weight of the backward:
/// `wd[(q'·cout + co)·cin + ci] = W[co, ci, 8 − q']` (`[9·cout, cin]`).
pub fn flip_weight(w: &[f32], cin: usize, cout: usize, wd: &mut [f32]) {
    for (co, wr) in w.chunks_exact(cin * 9).enumerate().take(cout) {
        for ci in 0..cin {
            for q in 0..9 {
                wd[((8 - q) * cout + co) * cin + ci] = wr[ci * 9 + q];
            }
        }
    }
}

/// One image's backward (module docs): `part = dWᵀ` in the `[9·cin, cout]`
/// layout of the transposed weight (overwritten), and with `dx` given
/// (`[h·w, cin]`) `dx += ∂L/∂x`, or `dx = ∂L/∂x` when `overwrite`. `wd` is
/// [`flip_weight`]'s layout.
#[allow(clippy::too_many_arguments)]
pub fn conv3_image_backward(
    x: &[f32],
    dout: &[f32],
    h: usize,
    w: usize,
    cin: usize,
    cout: usize,
    wd: &[f32],
    part: &mut [f32],
    dx: Option<&mut [f32]>,
    overwrite: bool,
) {
    BWD.with(|cell| {
        let mut guard = cell.try_borrow_mut();
        let mut fresh: [Vec<f32>; 3] = Default::default();
        let [xp, dp, cw] = match guard.as_deref_mut() {
            Ok(b) => b,
            Err(_) => &mut fresh,
        };
        let (w2, m) = (w + 2, wide_rows(h, w));
        pad_image(x, h, w, cin, xp);
        pad_image(dout, h, w, cout, dp);
        let dwide = MatRef::row_major(&dp[(w2 + 1) * cout..][..m * cout], m, cout);
        // Rows (kx, ci) of kernel row ky: the transpose of `shifted_row`.
        for (ky, pk) in part[..9 * cin * cout]
            .chunks_exact_mut(3 * cin * cout)
            .enumerate()
        {
            let a = MatRef {
                data: &xp[ky * w2 * cin..],
                rows: 3 * cin,
                cols: m,
                rs: 1,
                cs: cin,
            };
            gemm(a, dwide, pk, false, false);
        }
        let Some(dx) = dx else { return };
        if cw.len() < m * cin {
            cw.resize(m * cin, 0.0);
        }
        let cw = &mut cw[..m * cin];
        for ky in 0..3 {
            let n = 3 * cout * cin;
            let wk = MatRef::row_major(&wd[ky * n..(ky + 1) * n], 3 * cout, cin);
            gemm(shifted_row(dp, h, w, cout, ky), wk, cw, ky > 0, false);
        }
        for oy in 0..h {
            let src = &cw[oy * w2 * cin..][..w * cin];
            let dst = &mut dx[oy * w * cin..][..w * cin];
            if overwrite {
                // 0 + v: the bits of adding into a zeroed dx (−0 → +0).
                for (d, &v) in dst.iter_mut().zip(src) {
                    *d = 0.0 + v;
                }
            } else {
                for (d, &v) in dst.iter_mut().zip(src) {
                    *d += v;
                }
            }
        }
    });
}

/// Zero-padded copy of one `[h, w, c]` image: `[(h + 2)·(w + 2), c]`. Only
/// the border is zeroed (the interior is overwritten), so a reused buffer
/// is not cleared in full for every image.
pub fn pad_image(x: &[f32], h: usize, w: usize, c: usize, xp: &mut Vec<f32>) {
    let w2 = w + 2;
    let len = (h + 2) * w2 * c;
    if xp.len() < len {
        xp.resize(len, 0.0);
    }
    xp.truncate(len);
    xp[..w2 * c].fill(0.0);
    xp[(h + 1) * w2 * c..].fill(0.0);
    for y in 0..h {
        let row = &mut xp[(y + 1) * w2 * c..][..w2 * c];
        row[..c].fill(0.0);
        row[(w + 1) * c..].fill(0.0);
        copy_run(&mut row[c..(w + 1) * c], &x[y * w * c..][..w * c]);
    }
}

/// Rows of the wide output of an `h × w` image: `(h − 1)·(w + 2) + w`.
pub fn wide_rows(h: usize, w: usize) -> usize {
    (h - 1) * (w + 2) + w
}

/// The three taps `q = 3·ky + kx` (`kx = 0, 1, 2`) of kernel row `ky` as
/// one view of a padded image: `[wide_rows, 3·cin]`, element `(u, kx·cin + ci)`
/// = `xp[u + ky·W2 + kx, ci]`. Neighbouring taps are one pixel (`cin`
/// values) apart, so the three shifted `[m, cin]` views side by side are a
/// single strided view with overlapping rows, and one product over its
/// `3·cin` columns continues each chain over `p = q·cin + ci` in the same
/// order as three products over `cin` would.
pub fn shifted_row<'a>(xp: &'a [f32], h: usize, w: usize, cin: usize, ky: usize) -> MatRef<'a> {
    MatRef {
        data: &xp[ky * (w + 2) * cin..],
        rows: wide_rows(h, w),
        cols: 3 * cin,
        rs: cin,
        cs: 1,
    }
}

/// One image: `out = conv3x3(x) + b` (`[h·w, cout]`), plus `add` (`[cout]`)
/// when given, with the transposed weight `wt` (`[9·cin, cout]`).
#[allow(clippy::too_many_arguments)]
pub fn conv3_image(
    x: &[f32],
    h: usize,
    w: usize,
    cin: usize,
    cout: usize,
    wt: &[f32],
    b: &[f32],
    add: Option<&[f32]>,
    out: &mut [f32],
) {
    BUFS.with(|cell| {
        let mut guard = cell.try_borrow_mut();
        let mut fresh: [Vec<f32>; 3] = Default::default();
        let [xp, cw, reps] = match guard.as_deref_mut() {
            Ok(bufs) => bufs,
            Err(_) => &mut fresh,
        };
        pad_image(x, h, w, cin, xp);
        let m = wide_rows(h, w);
        // The first product starts every chain from 0 (no zeroing pass).
        if cw.len() < m * cout {
            cw.resize(m * cout, 0.0);
        }
        let cw = &mut cw[..m * cout];
        for ky in 0..3 {
            let n = 3 * cin * cout;
            let wk = MatRef::row_major(&wt[ky * n..(ky + 1) * n], 3 * cin, cout);
            gemm(shifted_row(xp, h, w, cin, ky), wk, cw, ky > 0, false);
        }
        // The bias (and `add`) repeated over one output row, so that each
        // row's epilogue is one pass over contiguous values: `(s + b) + a`.
        let (w2, run) = (w + 2, w * cout);
        if reps.len() < 2 * run {
            reps.resize(2 * run, 0.0);
        }
        let (brow, arow) = reps[..2 * run].split_at_mut(run);
        for (bp, ap) in brow.chunks_exact_mut(cout).zip(arow.chunks_exact_mut(cout)) {
            bp.copy_from_slice(b);
            if let Some(v) = add {
                ap.copy_from_slice(v);
            }
        }
        for oy in 0..h {
            let src = &cw[oy * w2 * cout..][..run];
            let dst = &mut out[oy * run..][..run];
            bias_row(dst, src, brow, add.is_some().then_some(&*arow));
        }
    });
}

/// `dst = (src + b) + a` (or `src + b` without `a`), elementwise.
fn bias_row(dst: &mut [f32], src: &[f32], b: &[f32], a: Option<&[f32]>) {
    dispatch_simd!(bias_row_generic(dst, src, b, a))
}

#[inline(always)]
fn bias_row_generic(dst: &mut [f32], src: &[f32], b: &[f32], a: Option<&[f32]>) {
    match a {
        None => {
            for ((d, &s), &bb) in dst.iter_mut().zip(src).zip(b) {
                *d = s + bb;
            }
        }
        Some(a) => {
            for (((d, &s), &bb), &aa) in dst.iter_mut().zip(src).zip(b).zip(a) {
                *d = (s + bb) + aa;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::conv::{conv_forward, ConvShape};

    /// Small integers are exact in f32: the shifted GEMMs must equal the
    /// direct sum over taps, border included, for narrow and wide outputs.
    #[test]
    fn shifted_gemms_equal_the_direct_convolution() {
        for (h, w, cin, cout) in [
            (8, 8, 2, 8),
            (5, 7, 3, 17),
            (4, 4, 16, 32),
            (1, 1, 4, 4),
            (6, 3, 20, 2),
        ] {
            let s = ConvShape {
                images: 3,
                h,
                w,
                cin,
                cout,
                k: 3,
                stride: 1,
            };
            let x: Vec<f32> = (0..3 * h * w * cin)
                .map(|i| ((i * 7 % 11) as f32) - 5.0)
                .collect();
            let wv: Vec<f32> = (0..cout * cin * 9)
                .map(|i| ((i * 5 % 7) as f32) - 3.0)
                .collect();
            let b: Vec<f32> = (0..cout).map(|i| i as f32).collect();
            let add: Vec<f32> = (0..3 * cout).map(|i| (i % 5) as f32).collect();
            let mut out = vec![f32::NAN; 3 * h * w * cout];
            conv_forward(&x, &s, &wv, &b, Some(&add), &mut out, &mut Vec::new());
            for img in 0..3 {
                for oy in 0..h {
                    for ox in 0..w {
                        for co in 0..cout {
                            let mut acc = b[co] as f64 + add[img * cout + co] as f64;
                            for ky in 0..3 {
                                for kx in 0..3 {
                                    let (iy, ix) = (
                                        oy as isize + ky as isize - 1,
                                        ox as isize + kx as isize - 1,
                                    );
                                    if iy < 0 || ix < 0 || iy >= h as isize || ix >= w as isize {
                                        continue;
                                    }
                                    for ci in 0..cin {
                                        let xv = x[((img * h + iy as usize) * w + ix as usize)
                                            * cin
                                            + ci];
                                        acc += xv as f64
                                            * wv[((co * cin + ci) * 3 + ky) * 3 + kx] as f64;
                                    }
                                }
                            }
                            let got = out[((img * h + oy) * w + ox) * cout + co];
                            assert_eq!(
                                got as f64, acc,
                                "h={h} w={w} cin={cin} cout={cout} at {img},{oy},{ox},{co}"
                            );
                        }
                    }
                }
            }
        }
    }
}
